//! Speaker membership (SPEC §5): speakers learn each other's addresses from the API but judge
//! liveness only by their own authenticated UDP heartbeats, so failover keeps working while the API
//! server is down.
//!
//! - [`packet`]: the heartbeat wire format and its HMAC-SHA256 authentication;
//! - [`liveness`]: the sans-IO table that turns heartbeats and time into up/down transitions;
//! - [`driver`]: the tokio UDP task around it.

pub mod driver;
pub mod liveness;
pub mod packet;
