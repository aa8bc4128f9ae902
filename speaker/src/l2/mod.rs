//! Layer-2 mode: the wire codecs (ARP, NDP) and the sans-IO responder/announcer that decides which
//! frames to send for the Service IPs this node owns (SPEC §5).
//!
//! Everything here is pure: frames in as byte slices, frames out as byte vectors, time passed in.
//! The AF_PACKET / ICMPv6 sockets that carry these frames live in a driver outside this module.

pub mod announcer;
pub mod arp;
pub mod ethernet;
pub mod ndp;

pub use ethernet::MacAddr;
