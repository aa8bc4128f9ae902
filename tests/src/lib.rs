//! The ferrolb lab: network namespaces, routers and a real control plane that the end-to-end
//! suite and the benchmarks drive as a library.
#![forbid(unsafe_code)]

pub mod backend;
pub mod binaries;
pub mod capture;
pub mod cluster;
pub mod control_plane;
pub mod demo;
pub mod kube_access;
pub mod l2_mode;
pub mod lab;
pub mod netns;
pub mod pki;
pub mod probe;
pub mod routers;
pub mod topology;
pub mod versions;
pub mod workload;
