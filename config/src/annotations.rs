//! The Service annotations and fields that request addresses (SPEC §3), parsed purely.
//!
//! `ferrolb.io/*` names are canonical; MetalLB's `metallb.io/*` and `metallb.universe.tf/*`
//! spellings are accepted and reported in [`RequestAnnotations::aliases`] so the reconciler can
//! emit a Warning Event naming the new spelling. Two spellings with different values are an error
//! rather than a silent choice.

use std::collections::BTreeMap;
use std::net::IpAddr;

use crate::addresses::{Family, parse_ip};

/// Requested addresses: one, or two of different families, comma-separated.
pub const LOAD_BALANCER_IPS: &str = "ferrolb.io/loadBalancerIPs";
/// Requested pool.
pub const ADDRESS_POOL: &str = "ferrolb.io/address-pool";
/// Sharing key.
pub const ALLOW_SHARED_IP: &str = "ferrolb.io/allow-shared-ip";

const CANONICAL_PREFIX: &str = "ferrolb.io/";
const ALIAS_PREFIXES: [&str; 2] = ["metallb.io/", "metallb.universe.tf/"];

/// A MetalLB spelling found on a Service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AliasUsed {
    /// The annotation as written, e.g. `metallb.universe.tf/address-pool`.
    pub annotation: String,
    /// The ferrolb name to use instead.
    pub preferred: &'static str,
}

/// What a Service's annotations and `spec.loadBalancerIP` request.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RequestAnnotations {
    pub requested_ips: Vec<IpAddr>,
    pub requested_pool: Option<String>,
    /// `None` when absent or empty.
    pub sharing_key: Option<String>,
    pub aliases: Vec<AliasUsed>,
}

/// Why the annotations cannot be honoured; each names the annotation or field at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnnotationError {
    /// `annotation` names the annotation or `spec.loadBalancerIP`.
    #[error("{annotation}: {value:?} is not an IP address")]
    BadIp { annotation: String, value: String },
    #[error("annotation {annotation}: {count} IPs given; give one, or two of different families")]
    TooManyIps { annotation: String, count: usize },
    #[error(
        "annotation {annotation}: both IPs are {family}; two IPs must be of different families"
    )]
    SameFamilyTwice { annotation: String, family: Family },
    #[error("annotation {annotation} is empty")]
    Empty { annotation: String },
    #[error("annotations {first} and {second} disagree ({first_value:?} vs {second_value:?})")]
    ConflictingSpellings {
        first: String,
        first_value: String,
        second: String,
        second_value: String,
    },
    #[error(
        "spec.loadBalancerIP {field_ip} disagrees with annotation {annotation} ({annotation_value:?})"
    )]
    ConflictingIpRequests {
        field_ip: String,
        annotation: String,
        annotation_value: String,
    },
}

/// Parses the requests of one Service from its annotations and `spec.loadBalancerIP`.
pub fn parse_annotations(
    annotations: &BTreeMap<String, String>,
    load_balancer_ip: Option<&str>,
) -> Result<RequestAnnotations, AnnotationError> {
    let mut aliases = Vec::new();
    let ips = lookup(annotations, LOAD_BALANCER_IPS, &mut aliases)?;
    let pool = lookup(annotations, ADDRESS_POOL, &mut aliases)?;
    let key = lookup(annotations, ALLOW_SHARED_IP, &mut aliases)?;

    let mut requested_ips = match &ips {
        Some((annotation, value)) => parse_ip_list(annotation, value)?,
        None => Vec::new(),
    };
    if let Some(field) = load_balancer_ip.filter(|v| !v.is_empty()) {
        let ip = parse_ip(field).map_err(|_| AnnotationError::BadIp {
            annotation: "spec.loadBalancerIP".to_owned(),
            value: field.to_owned(),
        })?;
        match &ips {
            None => requested_ips.push(ip),
            Some(_) if requested_ips == [ip] => {}
            Some((annotation, value)) => {
                return Err(AnnotationError::ConflictingIpRequests {
                    field_ip: field.to_owned(),
                    annotation: annotation.clone(),
                    annotation_value: value.clone(),
                });
            }
        }
    }
    let requested_pool = match pool {
        Some((annotation, value)) if value.trim().is_empty() => {
            return Err(AnnotationError::Empty { annotation });
        }
        Some((_, value)) => Some(value.trim().to_owned()),
        None => None,
    };
    Ok(RequestAnnotations {
        requested_ips,
        requested_pool,
        sharing_key: key
            .map(|(_, v)| v.trim().to_owned())
            .filter(|v| !v.is_empty()),
        aliases,
    })
}

/// Whether `key` is one of the annotations ferrolb reads on a Service: its own (`ferrolb.io/…`)
/// or a MetalLB spelling of one. Components that cache Services keep only these.
pub fn is_ferrolb_annotation(key: &str) -> bool {
    std::iter::once(CANONICAL_PREFIX)
        .chain(ALIAS_PREFIXES)
        .any(|prefix| key.starts_with(prefix))
}

/// The value of annotation `canonical` under any spelling, with the spelling found; records alias
/// uses and refuses spellings that disagree.
fn lookup(
    annotations: &BTreeMap<String, String>,
    canonical: &'static str,
    aliases: &mut Vec<AliasUsed>,
) -> Result<Option<(String, String)>, AnnotationError> {
    let suffix = canonical.trim_start_matches(CANONICAL_PREFIX);
    let mut found: Option<(String, String)> = None;
    let spellings = std::iter::once(canonical.to_owned()).chain(
        ALIAS_PREFIXES
            .iter()
            .map(|prefix| format!("{prefix}{suffix}")),
    );
    for name in spellings {
        let Some(value) = annotations.get(&name) else {
            continue;
        };
        if name != canonical {
            aliases.push(AliasUsed {
                annotation: name.clone(),
                preferred: canonical,
            });
        }
        match &found {
            Some((first, first_value)) if first_value.trim() != value.trim() => {
                return Err(AnnotationError::ConflictingSpellings {
                    first: first.clone(),
                    first_value: first_value.clone(),
                    second: name,
                    second_value: value.clone(),
                });
            }
            Some(_) => {}
            None => found = Some((name, value.clone())),
        }
    }
    Ok(found)
}

fn parse_ip_list(annotation: &str, value: &str) -> Result<Vec<IpAddr>, AnnotationError> {
    if value.trim().is_empty() {
        return Err(AnnotationError::Empty {
            annotation: annotation.to_owned(),
        });
    }
    let ips = value
        .split(',')
        .map(|part| {
            parse_ip(part.trim()).map_err(|_| AnnotationError::BadIp {
                annotation: annotation.to_owned(),
                value: part.trim().to_owned(),
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    match ips.as_slice() {
        [_] => Ok(ips),
        [a, b] if Family::of(*a) == Family::of(*b) => Err(AnnotationError::SameFamilyTwice {
            annotation: annotation.to_owned(),
            family: Family::of(*a),
        }),
        [_, _] => Ok(ips),
        _ => Err(AnnotationError::TooManyIps {
            annotation: annotation.to_owned(),
            count: ips.len(),
        }),
    }
}
