//! Which Services a ferrolb binary serves (SPEC §3): the `--lb-class` / `--handle-classless` flag
//! group and the [`ClassFilter`] it yields. The controller and the speaker flatten the same group, so
//! both answer to exactly the same Services.

use k8s_openapi::api::core::v1::Service;

/// The default `spec.loadBalancerClass` ferrolb answers to.
pub const DEFAULT_LOAD_BALANCER_CLASS: &str = "ferrolb.io/lb";

/// The Service class flags.
#[derive(Debug, Clone, clap::Args)]
pub struct ClassArgs {
    /// The `spec.loadBalancerClass` of the Services ferrolb serves.
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

impl ClassArgs {
    /// Which Services these flags make ours.
    pub fn filter(&self) -> ClassFilter {
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

    /// Whether `service` is a LoadBalancer of our class that is not being deleted.
    pub fn serves(&self, service: &Service) -> bool {
        let Some(spec) = &service.spec else {
            return false;
        };
        self.serves_parts(
            spec.type_.as_deref() == Some("LoadBalancer"),
            spec.load_balancer_class.as_deref(),
            service.metadata.deletion_timestamp.is_some(),
        )
    }

    /// [`ClassFilter::serves`] for a Service held in another form (the controller caches a
    /// projection, not `k8s-openapi` objects): whether it is of `type: LoadBalancer`, its
    /// `spec.loadBalancerClass`, and whether it is being deleted.
    pub fn serves_parts(&self, load_balancer: bool, class: Option<&str>, deleting: bool) -> bool {
        load_balancer && self.claims(class) && !deleting
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
    use crate::args::command_with_env;
    use clap::{CommandFactory, FromArgMatches, Parser};
    use k8s_openapi::api::core::v1::ServiceSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    #[derive(Debug, Parser)]
    struct TestArgs {
        #[command(flatten)]
        class: ClassArgs,
    }

    fn parse(args: &[&str], env: &[(&str, &'static str)]) -> Result<ClassArgs, clap::Error> {
        let command = command_with_env(TestArgs::command(), env);
        let matches =
            command.try_get_matches_from(std::iter::once("test").chain(args.iter().copied()))?;
        TestArgs::from_arg_matches(&matches).map(|args| args.class)
    }

    fn lb(class: Option<&str>) -> Service {
        Service {
            metadata: ObjectMeta {
                namespace: Some("ns".into()),
                name: Some("web".into()),
                ..ObjectMeta::default()
            },
            spec: Some(ServiceSpec {
                type_: Some("LoadBalancer".into()),
                load_balancer_class: class.map(str::to_owned),
                ..ServiceSpec::default()
            }),
            status: None,
        }
    }

    #[test]
    fn defaults_serve_our_class_and_classless_services() {
        let args = parse(&[], &[]).expect("parses");
        assert_eq!(args.lb_class, "ferrolb.io/lb");
        assert!(args.handle_classless);
    }

    #[test]
    fn classless_handling_can_be_turned_off_by_flag_or_env() {
        let by_flag = parse(&["--handle-classless", "false"], &[]).expect("parses");
        assert!(!by_flag.handle_classless);
        let env = [
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
            let error = parse(&["--lb-class", class], &[]).expect_err(class);
            assert_eq!(
                error.kind(),
                clap::error::ErrorKind::ValueValidation,
                "{class}"
            );
        }
    }

    #[test]
    fn filter_claims_our_class_and_classless_when_enabled() {
        let filter = parse(&[], &[]).expect("parses").filter();
        assert!(filter.claims(Some("ferrolb.io/lb")));
        assert!(filter.claims(None));
        assert!(!filter.claims(Some("metallb.io/metallb")));
    }

    #[test]
    fn filter_leaves_classless_services_to_the_default_implementation_when_disabled() {
        let filter = parse(&["--handle-classless=false"], &[])
            .expect("parses")
            .filter();
        assert!(!filter.claims(None));
        assert!(filter.claims(Some("ferrolb.io/lb")));
    }

    #[test]
    fn our_class_and_classless_load_balancers_are_served() {
        let all = parse(&[], &[]).expect("parses").filter();
        let classed = parse(&["--handle-classless=false"], &[])
            .expect("parses")
            .filter();
        assert!(all.serves(&lb(None)));
        assert!(all.serves(&lb(Some("ferrolb.io/lb"))));
        assert!(!all.serves(&lb(Some("other.io/lb"))));
        assert!(!classed.serves(&lb(None)));
    }

    #[test]
    fn cluster_ip_and_deleted_services_are_not_served() {
        let filter = parse(&[], &[]).expect("parses").filter();
        let mut cluster_ip = lb(None);
        if let Some(spec) = cluster_ip.spec.as_mut() {
            spec.type_ = Some("ClusterIP".into());
        }
        assert!(!filter.serves(&cluster_ip));
        let mut deleted = lb(None);
        deleted.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
            ));
        assert!(!filter.serves(&deleted));
    }
}
