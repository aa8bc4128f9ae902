//! ferrolb speaker: makes LoadBalancer IPs reachable by layer 2 or BGP.
#![forbid(unsafe_code)]

pub mod bgp;
