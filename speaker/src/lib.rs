//! ferrolb speaker: makes LoadBalancer IPs reachable from the node it runs on.
#![forbid(unsafe_code)]

pub mod election;
pub mod l2;
pub mod membership;
