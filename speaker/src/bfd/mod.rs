//! Bidirectional Forwarding Detection: sub-second failure detection for BGP sessions.
//!
//! - [`packet`]: RFC 5880 §4.1 Control packet codec with the §6.8.6 discard rules (pure).
//! - [`session`]: the RFC 5880 §6 session state machine and timers (pure, sans-IO).
//! - [`driver`]: RFC 5881 single-hop and RFC 5883 multihop UDP transport (tokio).
//!
//! Only Asynchronous mode is spoken: no Echo function, no Demand mode of our own, no
//! authentication.

pub mod driver;
pub mod packet;
pub mod session;
