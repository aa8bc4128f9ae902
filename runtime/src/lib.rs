//! Process plumbing that both ferrolb binaries share, so it exists once: command-line flag groups
//! with environment fallbacks, logging, the admin HTTP server (`/livez`, `/readyz`, `/metrics`),
//! graceful shutdown on signals, Events, leader election on a `coordination.k8s.io/v1` Lease, the
//! watch caches, and the response type of writes whose responses are not read.
//!
//! The pure crates (`config`, the protocol cores) never depend on this one; it is where the
//! Kubernetes client and the process lifecycle live.
#![forbid(unsafe_code)]

pub mod admin;
pub mod args;
pub mod cache;
pub mod class;
pub mod events;
pub mod leader;
pub mod lease;
pub mod logging;
pub mod shutdown;
pub mod unread;
