//! ferrolb controller: IP allocation for LoadBalancer Services (SPEC §3, §4).
#![forbid(unsafe_code)]

pub mod allocator;
pub mod args;
pub mod metrics;
pub mod reconciler;
