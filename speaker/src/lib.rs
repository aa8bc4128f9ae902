//! ferrolb speaker: makes LoadBalancer IPs reachable from the node it runs on (layer 2 or BGP, with BFD).
// `deny`, not `forbid`: the `sys` module is the one place allowed to opt out (with SAFETY notes).
#![deny(unsafe_code)]

pub mod bfd;
pub mod bgp;
pub mod election;
pub mod l2;
pub mod membership;
mod sys;
