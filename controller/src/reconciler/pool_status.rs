//! The status of an `IPAddressPool` (SPEC §2): assigned/available per family and the `Ready` and
//! `Conflict` conditions from the config model's diagnostics.
//!
//! Contract: pure. [`desired`] gives the status without transition times; [`differs`] compares
//! it with what the pool shows, so the writer only writes on change.

use ferrolb_config::crd::IPAddressPoolStatus;
use ferrolb_config::model::{Diagnostic, ObjectKind, Reason};

use crate::allocator::PoolUsage;

/// A condition as the status writer decides it; the transition time is added on write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolCondition {
    pub type_: &'static str,
    pub status: bool,
    pub reason: String,
    pub message: String,
}

/// The status a pool should show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredPoolStatus {
    pub observed_generation: Option<i64>,
    pub assigned_ipv4: i64,
    pub available_ipv4: i64,
    pub assigned_ipv6: i64,
    pub available_ipv6: i64,
    pub conditions: Vec<PoolCondition>,
}

/// JSON integers are 64-bit signed; an IPv6 /64 alone holds 2^64 addresses.
fn saturate(count: u128) -> i64 {
    i64::try_from(count).unwrap_or(i64::MAX)
}

/// What pool `name` should show. `usage` is `None` when the pool is not in the config snapshot
/// (invalid or conflicting), and then it offers nothing.
pub fn desired(
    name: &str,
    generation: Option<i64>,
    usage: Option<PoolUsage>,
    diagnostics: &[Diagnostic],
) -> DesiredPoolStatus {
    let own: Vec<&Diagnostic> = diagnostics
        .iter()
        .filter(|d| d.kind == ObjectKind::IPAddressPool && d.name == name && d.is_error())
        .collect();
    let describe = |filter: &dyn Fn(&Diagnostic) -> bool| {
        own.iter()
            .filter(|d| filter(d))
            .map(|d| format!("{}: {}", d.field, d.message))
            .collect::<Vec<_>>()
            .join("; ")
    };
    let ready = match (&usage, own.first()) {
        (Some(_), _) => PoolCondition {
            type_: "Ready",
            status: true,
            reason: "Ready".into(),
            message: "the pool hands out addresses".into(),
        },
        (None, first) => PoolCondition {
            type_: "Ready",
            status: false,
            reason: first
                .map(|d| d.reason.as_str())
                .unwrap_or("NotUsable")
                .into(),
            message: describe(&|_| true),
        },
    };
    let conflicts = describe(&|d| d.reason == Reason::Conflict);
    let conflict = PoolCondition {
        type_: "Conflict",
        status: !conflicts.is_empty(),
        reason: if conflicts.is_empty() {
            "NoConflict".into()
        } else {
            "Overlap".into()
        },
        message: conflicts,
    };
    let usage = usage.unwrap_or_default();
    DesiredPoolStatus {
        observed_generation: generation,
        assigned_ipv4: saturate(usage.ipv4.assigned),
        available_ipv4: saturate(usage.ipv4.available),
        assigned_ipv6: saturate(usage.ipv6.assigned),
        available_ipv6: saturate(usage.ipv6.available),
        conditions: vec![ready, conflict],
    }
}

/// Whether the pool's current status differs from `desired` (transition times aside).
pub fn differs(current: Option<&IPAddressPoolStatus>, desired: &DesiredPoolStatus) -> bool {
    let Some(current) = current else {
        return true;
    };
    let conditions_match = current.conditions.len() == desired.conditions.len()
        && desired.conditions.iter().all(|want| {
            current.conditions.iter().any(|have| {
                have.type_ == want.type_
                    && (have.status == "True") == want.status
                    && have.reason == want.reason
                    && have.message == want.message
            })
        });
    !(conditions_match
        && current.observed_generation == desired.observed_generation
        && current.assigned_ipv4 == desired.assigned_ipv4
        && current.available_ipv4 == desired.available_ipv4
        && current.assigned_ipv6 == desired.assigned_ipv6
        && current.available_ipv6 == desired.available_ipv6)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::allocator::FamilyUsage;
    use ferrolb_config::model::Severity;

    fn conflict(name: &str) -> Diagnostic {
        Diagnostic {
            kind: ObjectKind::IPAddressPool,
            name: name.into(),
            field: "spec.addresses[0]".into(),
            severity: Severity::Error,
            reason: Reason::Conflict,
            message: "overlaps pool \"old\"".into(),
        }
    }

    #[test]
    fn usable_pool_is_ready_without_conflict_and_counts_use() {
        let usage = PoolUsage {
            ipv4: FamilyUsage {
                assigned: 2,
                available: 6,
            },
            ipv6: FamilyUsage {
                assigned: 0,
                available: u128::MAX,
            },
        };
        let status = desired("p", Some(3), Some(usage), &[]);
        assert_eq!(status.assigned_ipv4, 2);
        assert_eq!(status.available_ipv4, 6);
        assert_eq!(status.available_ipv6, i64::MAX);
        assert!(status.conditions[0].status);
        assert!(!status.conditions[1].status);
    }

    #[test]
    fn overlapping_newer_pool_is_not_ready_and_in_conflict() {
        let status = desired("new", Some(1), None, &[conflict("new"), conflict("other")]);
        assert!(!status.conditions[0].status);
        assert_eq!(status.conditions[0].reason, "Conflict");
        assert!(status.conditions[1].status);
        assert!(status.conditions[1].message.contains("overlaps pool"));
        assert!(!status.conditions[1].message.contains("other"));
    }

    #[test]
    fn status_already_shown_does_not_differ() {
        let want = desired("p", Some(1), Some(PoolUsage::default()), &[]);
        let current = IPAddressPoolStatus {
            observed_generation: Some(1),
            conditions: want
                .conditions
                .iter()
                .map(
                    |c| k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
                        type_: c.type_.into(),
                        status: if c.status { "True" } else { "False" }.into(),
                        reason: c.reason.clone(),
                        message: c.message.clone(),
                        last_transition_time: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                            k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
                        ),
                        observed_generation: None,
                    },
                )
                .collect(),
            ..IPAddressPoolStatus::default()
        };
        assert!(!differs(Some(&current), &want));
        let mut used = want.clone();
        used.assigned_ipv4 = 1;
        assert!(differs(Some(&current), &used));
        assert!(differs(None, &want));
    }
}
