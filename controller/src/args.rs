//! The controller's command line: the shared flag groups of `ferrolb-runtime` plus which
//! Services are ours (SPEC §3). Every flag also reads an environment variable.

use clap::Parser;
use ferrolb_runtime::args::{AdminArgs, KubeArgs, LeaderElectionArgs, LogArgs};

/// The default `spec.loadBalancerClass` the controller answers to.
pub const DEFAULT_LOAD_BALANCER_CLASS: &str = "ferrolb.io/lb";

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
    /// The `spec.loadBalancerClass` of the Services this controller serves.
    #[arg(
        long,
        env = "LB_CLASS",
        default_value = DEFAULT_LOAD_BALANCER_CLASS,
        value_parser = parse_class,
        value_name = "CLASS"
    )]
    pub lb_class: String,
    /// Whether Services without `spec.loadBalancerClass` are ours too. Turn off when another
    /// load-balancer implementation is the cluster's default.
    #[arg(
        long,
        env = "HANDLE_CLASSLESS",
        default_value_t = true,
        action = clap::ArgAction::Set,
        value_name = "BOOL"
    )]
    pub handle_classless: bool,
}

impl ControllerArgs {
    /// Which Services these flags make ours.
    pub fn class_filter(&self) -> ClassFilter {
        ClassFilter {
            class: self.lb_class.clone(),
            handle_classless: self.handle_classless,
        }
    }
}

/// Decides from `spec.loadBalancerClass` whether a LoadBalancer Service is ours (SPEC §3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassFilter {
    class: String,
    handle_classless: bool,
}

impl ClassFilter {
    /// Ours when the class is ours, or unset and class-less Services are handled.
    pub fn claims(&self, load_balancer_class: Option<&str>) -> bool {
        match load_balancer_class {
            Some(class) => class == self.class,
            None => self.handle_classless,
        }
    }
}

/// `--lb-class` is not a class name Kubernetes would accept on a Service.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "load balancer class {0:?} must be a prefixed name like {DEFAULT_LOAD_BALANCER_CLASS} (Kubernetes requires a domain prefix)"
)]
pub struct ClassError(pub String);

/// Kubernetes requires `spec.loadBalancerClass` to be a label-style name with a prefix
/// (`example.com/name`), so a class without one could never match a Service.
fn parse_class(text: &str) -> Result<String, ClassError> {
    match text.split_once('/') {
        Some((prefix, name)) if !prefix.is_empty() && !name.is_empty() && !name.contains('/') => {
            Ok(text.to_owned())
        }
        _ => Err(ClassError(text.to_owned())),
    }
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
        assert_eq!(args.lb_class, "ferrolb.io/lb");
        assert!(args.handle_classless);
        assert_eq!(args.admin.admin_addr.port(), 9090);
        assert_eq!(args.leader.identity, "ctl-0");
        assert_eq!(args.leader.lease_name, "ferrolb-controller");
    }

    #[test]
    fn classless_handling_can_be_turned_off_by_flag_or_env() {
        let by_flag = parse(&["--handle-classless", "false"], POD_ENV).expect("parses");
        assert!(!by_flag.handle_classless);
        let env = [
            ("POD_NAME", "ctl-0"),
            ("POD_NAMESPACE", "ns"),
            ("HANDLE_CLASSLESS", "false"),
            ("LB_CLASS", "example.com/other"),
        ];
        let by_env = parse(&[], &env).expect("parses");
        assert!(!by_env.handle_classless);
        assert_eq!(by_env.lb_class, "example.com/other");
    }

    #[test]
    fn class_without_prefix_is_refused() {
        for class in ["lb", "/lb", "ferrolb.io/", "a/b/c"] {
            let error = parse(&["--lb-class", class], POD_ENV).expect_err(class);
            assert_eq!(
                error.kind(),
                clap::error::ErrorKind::ValueValidation,
                "{class}"
            );
        }
    }

    #[test]
    fn filter_claims_our_class_and_classless_when_enabled() {
        let args = parse(&[], POD_ENV).expect("parses");
        let filter = args.class_filter();
        assert!(filter.claims(Some("ferrolb.io/lb")));
        assert!(filter.claims(None));
        assert!(!filter.claims(Some("metallb.io/metallb")));
    }

    #[test]
    fn filter_leaves_classless_services_to_the_default_implementation_when_disabled() {
        let args = parse(&["--handle-classless=false"], POD_ENV).expect("parses");
        let filter = args.class_filter();
        assert!(!filter.claims(None));
        assert!(filter.claims(Some("ferrolb.io/lb")));
    }
}
