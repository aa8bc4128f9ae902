//! Native BGP-4 speaker core (RFC 4271), pure logic: no async, no I/O.
//!
//! - [`packet`]: the wire codec. Bytes in, typed messages out, and every decoding error maps to
//!   the NOTIFICATION that RFC 4271 §6 (as revised by RFC 7606) requires.
//! - [`fsm`]: the per-peer session state machine of RFC 4271 §8, `handle(now, input) -> Vec<Action>`.
//! - [`rib_out`]: the per-peer Adj-RIB-Out, turning the desired routes into minimal UPDATEs.
//! - [`peer_set`]: the sessions a node's desired state asks for, planned purely and run on the
//!   [`driver`].
//!
//! Sockets, timers and TCP-MD5 belong to a thin driver that feeds these cores.

pub mod driver;
pub mod fsm;
pub mod packet;
pub mod peer_set;
pub mod rib_out;
