//! The speaker's command line (names fixed by the speaker contract): the shared flag groups of
//! `ferrolb-runtime` plus the node, membership and layer-2 settings. Every flag also reads an
//! environment variable.

use std::net::SocketAddr;
use std::time::Duration;

use clap::{CommandFactory, FromArgMatches, Parser};
use ferrolb_runtime::args::{AdminArgs, KubeArgs, LogArgs, parse_duration, with_admin_default};
use ferrolb_runtime::class::ClassArgs;

use crate::desired::{DEFAULT_EXCLUDED_INTERFACES, InterfaceExclusions};
use crate::membership::liveness::LivenessConfig;

/// The speaker's admin address: 7473, since it shares the host network with other agents that
/// commonly take 9090.
pub const DEFAULT_ADMIN_ADDR: &str = "0.0.0.0:7473";

/// Flags of `ferrolb-speaker`.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "ferrolb-speaker",
    about = "Makes ferrolb LoadBalancer IPs reachable from this node (layer 2 or BGP)"
)]
pub struct SpeakerArgs {
    #[command(flatten)]
    pub kube: KubeArgs,
    #[command(flatten)]
    pub admin: AdminArgs,
    #[command(flatten)]
    pub log: LogArgs,
    #[command(flatten)]
    pub class: ClassArgs,
    /// The Node this speaker runs on (downward API `spec.nodeName`).
    #[arg(long, env = "NODE_NAME", value_name = "NAME")]
    pub node_name: String,
    /// ferrolb's namespace; the membership Secret lives there.
    #[arg(long, env = "POD_NAMESPACE", value_name = "NAMESPACE")]
    pub namespace: String,
    /// Secret in `--namespace` whose key `key` (at least 32 bytes) authenticates heartbeats.
    #[arg(
        long,
        env = "MEMBERSHIP_SECRET",
        default_value = "ferrolb-membership",
        value_name = "NAME"
    )]
    pub membership_secret: String,
    /// UDP port of the membership heartbeats, the same on every node.
    #[arg(
        long,
        env = "MEMBERSHIP_PORT",
        default_value_t = 7946,
        value_name = "PORT"
    )]
    pub membership_port: u16,
    /// How often this speaker sends a heartbeat to every other.
    #[arg(long, env = "HEARTBEAT_INTERVAL", default_value = "100ms", value_parser = parse_duration)]
    pub heartbeat_interval: Duration,
    /// A speaker missing this many heartbeats is dead.
    #[arg(long, env = "DETECT_MULTIPLIER", default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    pub detect_multiplier: u32,
    /// Interface name patterns never chosen for layer 2 by subnet (`*` and `?` globs); replaces
    /// the default list.
    #[arg(
        long,
        env = "EXCLUDED_INTERFACES",
        value_delimiter = ',',
        default_values_t = DEFAULT_EXCLUDED_INTERFACES.iter().map(|p| (*p).to_owned()),
        value_name = "PATTERNS"
    )]
    pub excluded_interfaces: Vec<String>,
    /// Where to accept BGP connections; empty: do not listen.
    #[arg(long, env = "BGP_LISTEN", default_value = "[::]:179", value_parser = parse_listen, value_name = "ADDR")]
    pub bgp_listen: Listen,
}

/// `--bgp-listen`: an address, or empty for none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Listen(pub Option<SocketAddr>);

/// `--bgp-listen` is neither empty nor a socket address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not an address with port like [::]:179 (or empty to not listen)")]
pub struct ListenError(String);

fn parse_listen(text: &str) -> Result<Listen, ListenError> {
    if text.trim().is_empty() {
        return Ok(Listen(None));
    }
    text.parse()
        .map(|addr| Listen(Some(addr)))
        .map_err(|_| ListenError(text.to_owned()))
}

impl SpeakerArgs {
    /// The command with the speaker's own admin default.
    pub fn command_with_defaults() -> clap::Command {
        with_admin_default(SpeakerArgs::command(), DEFAULT_ADMIN_ADDR)
    }

    /// Parses the process's arguments and environment.
    pub fn from_env() -> SpeakerArgs {
        let matches = SpeakerArgs::command_with_defaults().get_matches();
        match SpeakerArgs::from_arg_matches(&matches) {
            Ok(args) => args,
            Err(error) => error.exit(),
        }
    }

    pub fn liveness(&self) -> LivenessConfig {
        LivenessConfig {
            interval: self.heartbeat_interval,
            detect_multiplier: self.detect_multiplier,
            ..LivenessConfig::default()
        }
    }

    pub fn exclusions(&self) -> InterfaceExclusions {
        InterfaceExclusions::new(
            self.excluded_interfaces
                .iter()
                .map(|p| p.trim().to_owned())
                .filter(|p| !p.is_empty()),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrolb_runtime::args::command_with_env;

    const NODE_ENV: &[(&str, &str)] = &[("NODE_NAME", "node-a"), ("POD_NAMESPACE", "ferrolb")];

    fn parse(args: &[&str], env: &[(&str, &'static str)]) -> Result<SpeakerArgs, clap::Error> {
        let command = command_with_env(SpeakerArgs::command_with_defaults(), env);
        let matches = command
            .try_get_matches_from(std::iter::once("ferrolb-speaker").chain(args.iter().copied()))?;
        SpeakerArgs::from_arg_matches(&matches)
    }

    #[test]
    fn defaults_follow_the_contract() {
        let args = parse(&[], NODE_ENV).expect("parses");
        assert_eq!(args.admin.admin_addr, "0.0.0.0:7473".parse().expect("addr"));
        assert_eq!(args.class.lb_class, "ferrolb.io/lb");
        assert!(args.class.handle_classless);
        assert_eq!(args.node_name, "node-a");
        assert_eq!(args.namespace, "ferrolb");
        assert_eq!(args.membership_secret, "ferrolb-membership");
        assert_eq!(args.membership_port, 7946);
        assert_eq!(args.liveness().detect_time(), Duration::from_millis(300));
        assert_eq!(args.exclusions(), InterfaceExclusions::default());
        assert_eq!(
            args.bgp_listen,
            Listen(Some("[::]:179".parse().expect("addr")))
        );
    }

    #[test]
    fn environment_sets_membership_and_exclusions() {
        let env = [
            ("NODE_NAME", "node-b"),
            ("POD_NAMESPACE", "lb"),
            ("MEMBERSHIP_PORT", "17946"),
            ("HEARTBEAT_INTERVAL", "50ms"),
            ("DETECT_MULTIPLIER", "4"),
            ("EXCLUDED_INTERFACES", "lo,veth*"),
            ("BGP_LISTEN", ""),
        ];
        let args = parse(&[], &env).expect("parses");
        assert_eq!(args.membership_port, 17946);
        assert_eq!(args.liveness().detect_time(), Duration::from_millis(200));
        assert_eq!(
            args.exclusions(),
            InterfaceExclusions::new(["lo".to_owned(), "veth*".to_owned()])
        );
        assert_eq!(args.bgp_listen, Listen(None));
    }

    #[test]
    fn node_name_is_required_and_zero_multiplier_refused() {
        let missing = parse(&[], &[("POD_NAMESPACE", "ferrolb")]).expect_err("no node");
        assert_eq!(
            missing.kind(),
            clap::error::ErrorKind::MissingRequiredArgument
        );
        let zero = parse(&["--detect-multiplier", "0"], NODE_ENV).expect_err("zero");
        assert_eq!(zero.kind(), clap::error::ErrorKind::ValueValidation);
    }
}
