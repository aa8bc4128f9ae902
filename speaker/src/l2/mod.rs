//! Layer-2 mode: the wire codecs (ARP, NDP) and the sans-IO responder/announcer that decides which
//! frames to send for the Service IPs this node owns (SPEC §5).
//!
//! The codecs and the announcer are pure: frames in as byte slices, frames out as byte vectors,
//! time passed in. [`driver`] is the thin tokio edge that carries those frames over AF_PACKET
//! sockets.

pub mod announcer;
pub mod arp;
pub mod driver;
pub mod ethernet;
pub mod ndp;

pub use ethernet::MacAddr;
