//! ferrolb configuration: CRD types, their validation, and the validated config snapshot.
#![forbid(unsafe_code)]

pub mod addresses;
pub mod crd;
