//! ferrolb speaker: makes LoadBalancer IPs reachable from the node it runs on (layer 2 or BGP, with BFD).
// `deny`, not `forbid`: `sys` is the one module allowed `unsafe` (socket options, addresses and
// registrations no safe crate wraps).
#![deny(unsafe_code)]

pub mod agent;
pub mod bfd;
pub mod bgp;
pub mod desired;
pub mod election;
pub mod l2;
pub mod membership;
pub mod sys;
