//! The controller's command line: the shared flag groups of `ferrolb-runtime` plus which
//! Services are ours (SPEC §3). Every flag also reads an environment variable.

use clap::Parser;
use ferrolb_runtime::args::{AdminArgs, KubeArgs, LeaderElectionArgs, LogArgs};
use ferrolb_runtime::class::ClassArgs;

/// Flags of `ferrolb-controller`.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "ferrolb-controller",
    about = "Assigns external IPs from ferrolb address pools to LoadBalancer Services"
)]
pub struct ControllerArgs {
    #[command(flatten)]
    pub kube: KubeArgs,
    #[command(flatten)]
    pub admin: AdminArgs,
    #[command(flatten)]
    pub log: LogArgs,
    #[command(flatten)]
    pub leader: LeaderElectionArgs,
    #[command(flatten)]
    pub class: ClassArgs,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, FromArgMatches};
    use ferrolb_runtime::args::command_with_env;

    const POD_ENV: &[(&str, &str)] = &[("POD_NAME", "ctl-0"), ("POD_NAMESPACE", "ferrolb-system")];

    fn parse(args: &[&str], env: &[(&str, &'static str)]) -> Result<ControllerArgs, clap::Error> {
        let command = command_with_env(ControllerArgs::command(), env);
        let matches = command.try_get_matches_from(
            std::iter::once("ferrolb-controller").chain(args.iter().copied()),
        )?;
        ControllerArgs::from_arg_matches(&matches)
    }

    #[test]
    fn defaults_serve_our_class_and_classless_services() {
        let args = parse(&[], POD_ENV).expect("parses");
        assert_eq!(args.class.lb_class, "ferrolb.io/lb");
        assert!(args.class.handle_classless);
        assert_eq!(args.admin.admin_addr.port(), 9090);
        assert_eq!(args.leader.identity, "ctl-0");
        assert_eq!(args.leader.lease_name, "ferrolb-controller");
    }

    #[test]
    fn class_flags_keep_their_names_and_environment() {
        let env = [
            ("POD_NAME", "ctl-0"),
            ("POD_NAMESPACE", "ns"),
            ("LB_CLASS", "example.com/other"),
        ];
        let args = parse(&["--handle-classless", "false"], &env).expect("parses");
        assert!(!args.class.handle_classless);
        assert_eq!(args.class.lb_class, "example.com/other");
    }
}
