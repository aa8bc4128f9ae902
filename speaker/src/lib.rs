//! ferrolb speaker: makes Service IPs reachable (layer 2 or BGP, with BFD).
#![forbid(unsafe_code)]

pub mod bfd;
