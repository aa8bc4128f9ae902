//! ferrolb speaker: makes LoadBalancer IPs reachable from the node it runs on.
#![forbid(unsafe_code)]

pub mod l2;
