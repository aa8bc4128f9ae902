//! Which interfaces of a node may carry a layer-2 announcement (SPEC §5).
//!
//! A node's loopback, container veths, CNI bridges and tunnels also hold addresses, sometimes in
//! the same subnet as a Service IP (a CNI that routes the pool, a Docker bridge on a lab host).
//! Answering ARP there would either do nothing or, worse, attract traffic into a pod network, so
//! interfaces whose name matches one of the exclusion patterns are never chosen by subnet. An
//! interface that an `L2Advertisement` lists by name in `interfaces` is the operator's explicit
//! choice and is used even when a pattern matches it.

use std::net::IpAddr;

use ipnet::IpNet;

/// The patterns excluded by default: loopback, container and VM plumbing of the common CNIs and
/// runtimes. Written once, here; the speaker's flag replaces the whole list.
pub const DEFAULT_EXCLUDED_INTERFACES: &[&str] = &[
    "lo",
    "veth*",
    "docker*",
    "cni*",
    "cali*",
    "flannel*",
    "kube-ipvs*",
    "kube-bridge",
    "nodelocaldns",
    "cilium*",
    "lxc*",
    "virbr*",
    "vxlan*",
    "genev*",
    "tunl*",
    "weave*",
    "tailscale*",
];

/// One network interface of a node, as netlink reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    pub name: String,
    /// Operationally up (`IFF_UP` and carrier); a down link cannot answer ARP.
    pub up: bool,
    /// Addresses with their prefix length, e.g. `198.51.100.4/24`.
    pub addresses: Vec<IpNet>,
}

impl Interface {
    /// Whether one of the interface's subnets holds `ip`.
    pub fn subnet_holds(&self, ip: IpAddr) -> bool {
        self.addresses.iter().any(|net| net.contains(&ip))
    }
}

/// Interface name patterns never chosen by subnet match. `*` matches any run of bytes (also
/// none), `?` exactly one; everything else matches itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterfaceExclusions {
    patterns: Vec<String>,
}

impl Default for InterfaceExclusions {
    fn default() -> Self {
        InterfaceExclusions::new(DEFAULT_EXCLUDED_INTERFACES.iter().map(|p| (*p).to_owned()))
    }
}

impl InterfaceExclusions {
    pub fn new(patterns: impl IntoIterator<Item = String>) -> Self {
        InterfaceExclusions {
            patterns: patterns.into_iter().collect(),
        }
    }

    pub fn patterns(&self) -> &[String] {
        &self.patterns
    }

    /// Whether `name` matches one of the patterns.
    pub fn excludes(&self, name: &str) -> bool {
        self.patterns.iter().any(|p| glob_matches(p, name))
    }
}

/// Glob match of `pattern` against the whole of `name`, byte by byte (Linux interface names are
/// byte strings, so `?` stands for one byte). Iterative,
/// with backtracking to the last `*`, so it runs in O(len(pattern) × len(name)) at worst and never
/// recurses or allocates.
fn glob_matches(pattern: &str, name: &str) -> bool {
    let (pattern, name) = (pattern.as_bytes(), name.as_bytes());
    let (mut p, mut n) = (0, 0);
    // Position of the last `*` seen and the name position it currently stands for.
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, n));
                p += 1;
            }
            Some(c) if *c == b'?' || Some(c) == name.get(n) => {
                p += 1;
                n += 1;
            }
            _ => match star {
                // Let the last `*` swallow one more character and retry after it.
                Some((star_p, star_n)) => {
                    star = Some((star_p, star_n + 1));
                    p = star_p + 1;
                    n = star_n + 1;
                }
                None => return false,
            },
        }
    }
    pattern
        .get(p..)
        .unwrap_or_default()
        .iter()
        .all(|c| *c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn default_exclusions_cover_spec_list() {
        let exclusions = InterfaceExclusions::default();
        for name in [
            "lo",
            "veth12ab",
            "docker0",
            "cni0",
            "cali7f3",
            "flannel.1",
            "kube-ipvs0",
            "cilium_host",
            "lxc9a",
            "virbr0",
        ] {
            assert!(exclusions.excludes(name), "{name} should be excluded");
        }
        for name in ["eth0", "ens3", "bond0", "br0", "enp1s0f1", "lo1x"] {
            assert!(!exclusions.excludes(name), "{name} should be usable");
        }
    }

    #[test]
    fn exclusion_patterns_are_configurable() {
        let exclusions = InterfaceExclusions::new(["eth?".to_owned(), "*-mgmt".to_owned()]);
        assert!(exclusions.excludes("eth1"));
        assert!(!exclusions.excludes("eth10"));
        assert!(exclusions.excludes("bond-mgmt"));
        assert!(!exclusions.excludes("veth0"));
    }

    #[test]
    fn glob_star_backtracks() {
        assert!(glob_matches("a*b*c", "axxbyybzc"));
        assert!(glob_matches("*", ""));
        assert!(glob_matches("**x", "x"));
        assert!(!glob_matches("a*b", "axxbc"));
        assert!(!glob_matches("", "a"));
    }

    #[test]
    fn subnet_holds_only_addresses_inside_prefixes() {
        let interface = Interface {
            name: "eth0".into(),
            up: true,
            addresses: vec!["198.51.100.4/24".parse().expect("net")],
        };
        assert!(interface.subnet_holds("198.51.100.200".parse().expect("ip")));
        assert!(!interface.subnet_holds("198.51.101.1".parse().expect("ip")));
    }

    proptest! {
        #[test]
        fn a_name_matches_itself_and_star(name in "[a-z0-9._-]{0,15}") {
            prop_assert!(glob_matches(&name, &name));
            prop_assert!(glob_matches("*", &name));
            let prefix: String = name.chars().take(2).collect();
            let pattern = format!("{prefix}*");
            prop_assert!(glob_matches(&pattern, &name));
        }
    }
}
