//! placeholder crate root; replaced by the first real module.
#![forbid(unsafe_code)]

pub mod args;
pub mod metrics;
