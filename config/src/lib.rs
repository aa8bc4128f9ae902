//! ferrolb configuration: CRD types, their validation, and the validated config snapshot.
#![forbid(unsafe_code)]

pub mod addresses;
pub mod annotations;
pub mod check;
pub mod community;
pub mod crd;
pub mod duration;
pub mod import_metallb;
pub mod model;
