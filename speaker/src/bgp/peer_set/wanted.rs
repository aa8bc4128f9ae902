//! From the validated `BGPPeer` (and its `BFDProfile`) to the driver's [`PeerSpec`]: pure, no
//! I/O. The rules are in the parent module's docs; every refusal is a [`PeerSetError`] naming the
//! BGPPeer and the field.

use std::collections::{BTreeMap, BTreeSet};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU8;
use std::time::Duration;

use ferrolb_config::model::{BfdProfile as ModelBfdProfile, Config, Peer, PeerAsn, SecretRef};

use super::PeerSetError;
use crate::bgp::driver::{BfdProfile, PeerSpec};
use crate::bgp::fsm::{GracefulRestartConfig, PeerAs, PeerConfig};
use crate::bgp::packet::Family;
use crate::bgp::rib_out::{NextHops, Routes};

/// Longest TCP-MD5 key the kernel takes (`TCP_MD5SIG_MAXKEYLEN`, RFC 2385 gives no bound).
pub(super) const MAX_PASSWORD_LEN: usize = 80;

/// The first ConnectRetry interval; `connectTime` is the ceiling the backoff doubles up to.
pub(super) const FIRST_CONNECT_RETRY: Duration = Duration::from_secs(1);

/// One BGPPeer this node should run.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Wanted {
    /// How to run it; `None` when its configuration cannot be built (the errors say why): a
    /// running session is then left as it is, a stopped one is not started.
    pub(super) spec: Option<PeerSpec>,
    /// The routes it should hold.
    pub(super) routes: Routes,
}

/// The peers `routes` names, mapped. `restarted` is the graceful-restart R bit for sessions
/// started now (RFC 4724 §3: set by a speaker that has just restarted).
pub(super) fn wanted_peers(
    config: &Config,
    routes: &BTreeMap<String, Routes>,
    passwords: &BTreeMap<SecretRef, String>,
    node_addresses: &[IpAddr],
    restarted: bool,
) -> (BTreeMap<String, Wanted>, Vec<PeerSetError>) {
    let mut errors = Vec::new();
    let mut wanted = BTreeMap::new();
    // The driver tells peers apart by address: the first BGPPeer (by name) keeps it.
    let mut addresses: BTreeMap<IpAddr, &str> = BTreeMap::new();
    for (name, peer_routes) in routes {
        let Some(peer) = config.peers.get(name) else {
            errors.push(PeerSetError::UnknownPeer { peer: name.clone() });
            continue;
        };
        if let Some(first) = addresses.get(&peer.address) {
            errors.push(PeerSetError::DuplicateAddress {
                peer: name.clone(),
                other: (*first).to_owned(),
                address: peer.address,
            });
            continue;
        }
        addresses.insert(peer.address, name);
        let spec = match peer_spec(peer, config, passwords, node_addresses, restarted) {
            Ok((spec, warnings)) => {
                errors.extend(warnings);
                Some(spec)
            }
            Err(refusals) => {
                errors.extend(refusals);
                None
            }
        };
        wanted.insert(
            name.clone(),
            Wanted {
                spec,
                routes: peer_routes.clone(),
            },
        );
    }
    (wanted, errors)
}

/// The driver's spec for one peer, with the problems that leave it running in a reduced form
/// (a family without a next hop, BFD impossible); or every reason it cannot run at all.
pub(super) fn peer_spec(
    peer: &Peer,
    config: &Config,
    passwords: &BTreeMap<SecretRef, String>,
    node_addresses: &[IpAddr],
    restarted: bool,
) -> Result<(PeerSpec, Vec<PeerSetError>), Vec<PeerSetError>> {
    let name = || peer.name.clone();
    let mut refusals = Vec::new();
    let mut warnings = Vec::new();
    let first_v4 = node_addresses.iter().find_map(|a| match a {
        IpAddr::V4(v4) => Some(*v4),
        IpAddr::V6(_) => None,
    });
    let first_v6 = node_addresses.iter().find_map(|a| match a {
        IpAddr::V6(v6) => Some(*v6),
        IpAddr::V4(_) => None,
    });

    let bgp_identifier = peer.router_id.or(first_v4);
    if bgp_identifier.is_none() {
        refusals.push(PeerSetError::NoRouterId { peer: name() });
    }
    let password = match &peer.password_secret {
        None => None,
        Some(secret) => match passwords.get(secret) {
            None => {
                refusals.push(PeerSetError::MissingPassword {
                    peer: name(),
                    secret: secret.clone(),
                });
                None
            }
            Some(password) if password.is_empty() || password.len() > MAX_PASSWORD_LEN => {
                refusals.push(PeerSetError::BadPassword {
                    peer: name(),
                    secret: secret.clone(),
                    len: password.len(),
                });
                None
            }
            Some(password) => Some(password.clone()),
        },
    };
    // RFC 4271 §4.2: Hold Time is a 2-octet field.
    let hold_time = u16::try_from(peer.hold_time.as_secs()).unwrap_or_else(|_| {
        refusals.push(PeerSetError::HoldTimeTooLong {
            peer: name(),
            hold_time: peer.hold_time,
        });
        0
    });

    // Next hop self (SPEC §6): the source address for its family, else the node's first address.
    let (source_v4, source_v6) = match peer.source_address {
        Some(IpAddr::V4(v4)) => (Some(v4), None),
        Some(IpAddr::V6(v6)) => (None, Some(v6)),
        None => (None, None),
    };
    let next_hops = NextHops {
        ipv4: source_v4.or(first_v4),
        ipv6: source_v6.or(first_v6),
        ipv6_link_local: None,
    };
    let own = family_of(peer.address);
    let mut families = vec![own];
    if peer.dual_stack_address_family {
        let other = if own == Family::IPV4_UNICAST {
            Family::IPV6_UNICAST
        } else {
            Family::IPV4_UNICAST
        };
        families.push(other);
    }
    families.retain(|&family| {
        let has_next_hop = if family == Family::IPV4_UNICAST {
            next_hops.ipv4.is_some()
        } else {
            next_hops.ipv6.is_some()
        };
        if !has_next_hop {
            let error = PeerSetError::NoNextHop {
                peer: name(),
                family: family_name(family),
            };
            if family == own {
                refusals.push(error);
            } else {
                warnings.push(error);
            }
        }
        has_next_hop
    });

    // The session's own address: BFD needs one (RFC 5881 §3), and it keeps TCP, BFD and the
    // next hop on the same address.
    let local_address = peer.source_address.or(match peer.address {
        IpAddr::V4(_) => first_v4.map(IpAddr::V4),
        IpAddr::V6(_) => first_v6.map(IpAddr::V6),
    });
    let bfd = peer
        .bfd_profile
        .as_ref()
        .and_then(|profile| config.bfd_profiles.get(profile))
        .and_then(|profile| match bfd_profile(profile) {
            Ok(_) if local_address.is_none() => {
                warnings.push(PeerSetError::BfdWithoutLocalAddress { peer: name() });
                None
            }
            Ok(profile) => Some(profile),
            Err(reason) => {
                warnings.push(PeerSetError::BadBfdProfile {
                    peer: name(),
                    profile: profile.name.clone(),
                    reason,
                });
                None
            }
        });

    let (Some(bgp_identifier), true) = (bgp_identifier, refusals.is_empty()) else {
        return Err(refusals);
    };
    let graceful_restart = peer.graceful_restart.map(|time| GracefulRestartConfig {
        // The model keeps restart times within 1..=4095 s (RFC 4724 §3, 12 bits).
        restart_time: u16::try_from(time.as_secs()).unwrap_or(0x0fff).min(0x0fff),
        restarted,
    });
    let session = PeerConfig {
        local_as: peer.my_asn,
        peer_as: match peer.peer_asn {
            PeerAsn::Fixed(asn) => PeerAs::Fixed(asn),
            PeerAsn::Internal => PeerAs::Internal,
            PeerAsn::External => PeerAs::External,
        },
        bgp_identifier,
        hold_time,
        keepalive: (hold_time > 0)
            .then(|| u16::try_from(peer.keepalive_time.as_secs()).unwrap_or(u16::MAX)),
        connect_retry: FIRST_CONNECT_RETRY.min(peer.connect_time),
        connect_retry_max: peer.connect_time,
        passive: peer.passive,
        families,
        graceful_restart,
        jitter_seed: jitter_seed(&peer.name),
    };
    let spec = PeerSpec {
        address: SocketAddr::new(peer.address, peer.port),
        local_address,
        session,
        next_hops,
        password,
        ttl: peer.ebgp_multi_hop,
        bfd,
    };
    Ok((spec, warnings))
}

/// The driver's BFD profile for a `BFDProfile` (RFC 5880 §4.1 fields), or why it has none.
pub(super) fn bfd_profile(profile: &ModelBfdProfile) -> Result<BfdProfile, String> {
    let detect_multiplier = NonZeroU8::new(profile.detect_multiplier)
        .ok_or_else(|| "spec.detectMultiplier must not be 0 (RFC 5880 section 4.1)".to_owned())?;
    let mapped = BfdProfile {
        receive_interval: profile.receive_interval,
        transmit_interval: profile.transmit_interval,
        detect_multiplier,
        passive: profile.passive_mode,
        minimum_ttl: profile.minimum_ttl,
    };
    mapped.session_config().map_err(|e| e.to_string())?;
    Ok(mapped)
}

/// A per-peer seed for the ConnectRetry jitter (RFC 4271 §10), stable across applies so a
/// re-applied configuration compares equal.
fn jitter_seed(name: &str) -> u64 {
    let mut hasher = DefaultHasher::new();
    name.hash(&mut hasher);
    hasher.finish()
}

fn family_of(address: IpAddr) -> Family {
    match address {
        IpAddr::V4(_) => Family::IPV4_UNICAST,
        IpAddr::V6(_) => Family::IPV6_UNICAST,
    }
}

fn family_name(family: Family) -> &'static str {
    if family == Family::IPV4_UNICAST {
        "IPv4"
    } else {
        "IPv6"
    }
}

/// Secrets the peers of `routes` reference (the caller resolves them into passwords).
pub(super) fn referenced_secrets(
    config: &Config,
    routes: &BTreeMap<String, Routes>,
) -> BTreeSet<SecretRef> {
    routes
        .keys()
        .filter_map(|name| config.peers.get(name)?.password_secret.clone())
        .collect()
}
