//! One interface's sockets: what the layer-2 driver reads frames from and sends them through.
//!
//! Per interface:
//! - an AF_PACKET `SOCK_RAW` socket bound to EtherType ARP: every ARP frame of the link, Ethernet
//!   header included, exactly what [`ArpFrame`](crate::l2::arp::ArpFrame) decodes and encodes;
//! - an AF_PACKET `SOCK_RAW` socket bound to EtherType IPv6 with a classic BPF filter that keeps
//!   only ICMPv6 type 135/136 (NS/NA) directly after the IPv6 header. AF_PACKET rather than an
//!   ICMPv6 raw socket because the announcer works on whole frames: the NA it builds already
//!   carries hop limit 255 (RFC 4861 §7.1.2), its own source address and checksum, and on
//!   receipt it checks the hop limit and the Ethernet source itself — an ICMPv6 raw socket would
//!   hide both headers and rewrite them on send;
//! - unbound UDP/IPv6 sockets that hold the solicited-node multicast memberships
//!   (RFC 4291 §2.7.1, `IPV6_JOIN_GROUP`). Joining through the IPv6 stack, not
//!   `PACKET_ADD_MEMBERSHIP`, makes the kernel program the link's multicast filter *and* send MLD
//!   reports, so MLD-snooping switches forward the solicitations to this node. Never bound to a
//!   port, they receive nothing. A socket's memberships are charged to its option memory
//!   (`net.core.optmem_max`, 128 KiB by default: about 2,300 groups), so when the kernel refuses
//!   a join with `ENOMEM`/`ENOBUFS` another socket is opened: 10,000 IPv6 Service IPs need five.
//!
//! Both packet sockets drop frames this host sends (`PACKET_OUTGOING`) in the filter: the
//! announcer would ignore them anyway. They are created with protocol 0 (receiving nothing),
//! given their filter, and only then bound, so no unfiltered frame is ever queued.

use std::collections::BTreeMap;
use std::io::{self, Read};
use std::net::Ipv6Addr;
use std::sync::Arc;

use socket2::{Domain, Protocol, SockFilter, Socket, Type};
use thiserror::Error;
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

use super::interfaces::{self, Interface};
use crate::l2::MacAddr;
use crate::l2::ethernet::{ETHERTYPE_ARP, ETHERTYPE_IPV6, EthernetHeader};
use crate::sys::{async_socket, packet_bind_address};

/// Why an interface's sockets could not be opened or used.
#[derive(Debug, Error)]
pub enum LinkError {
    #[error("listing interfaces failed: {source}")]
    ListInterfaces { source: nix::Error },
    #[error("interface {interface} not found")]
    NotFound { interface: String },
    #[error("interface {interface} has no Ethernet address")]
    NoEthernetAddress { interface: String },
    #[error("{operation} on interface {interface} failed: {source}")]
    Socket {
        interface: String,
        operation: &'static str,
        source: io::Error,
    },
}

/// Largest frame read; NS/NA and ARP are far smaller, this covers jumbo frames without truncation.
const RECEIVE_BUFFER: usize = 9216;

// Classic BPF (linux/filter.h) opcodes used by the socket filters.
const BPF_LD_W_ABS: u16 = 0x20;
const BPF_LD_B_ABS: u16 = 0x30;
const BPF_JEQ_K: u16 = 0x15;
const BPF_RET_K: u16 = 0x06;
/// Ancillary load of the packet type (`SKF_AD_OFF + SKF_AD_PKTTYPE`).
const LOAD_PKTTYPE: u32 = (libc::SKF_AD_OFF + libc::SKF_AD_PKTTYPE) as u32;
/// `PACKET_OUTGOING` of linux/if_packet.h: a frame this host sent.
const PACKET_OUTGOING: u32 = 4;
const ACCEPT: u32 = u32::MAX;
/// Offsets in the frame: IPv6 Next Header (14 + 6) and the ICMPv6 type (14 + 40).
const IPV6_NEXT_HEADER_AT: u32 = 20;
const ICMPV6_TYPE_AT: u32 = 54;

/// ARP socket filter: everything but this host's own frames.
fn arp_filter() -> [SockFilter; 4] {
    [
        SockFilter::new(BPF_LD_W_ABS, 0, 0, LOAD_PKTTYPE),
        SockFilter::new(BPF_JEQ_K, 0, 1, PACKET_OUTGOING),
        SockFilter::new(BPF_RET_K, 0, 0, 0),
        SockFilter::new(BPF_RET_K, 0, 0, ACCEPT),
    ]
}

/// IPv6 socket filter: NS (135) and NA (136) right after the IPv6 header, not sent by this host.
fn ndp_filter() -> [SockFilter; 9] {
    [
        SockFilter::new(BPF_LD_W_ABS, 0, 0, LOAD_PKTTYPE),
        SockFilter::new(BPF_JEQ_K, 5, 0, PACKET_OUTGOING),
        SockFilter::new(BPF_LD_B_ABS, 0, 0, IPV6_NEXT_HEADER_AT),
        SockFilter::new(BPF_JEQ_K, 0, 3, 58),
        SockFilter::new(BPF_LD_B_ABS, 0, 0, ICMPV6_TYPE_AT),
        SockFilter::new(BPF_JEQ_K, 2, 0, 135),
        SockFilter::new(BPF_JEQ_K, 1, 0, 136),
        SockFilter::new(BPF_RET_K, 0, 0, 0),
        SockFilter::new(BPF_RET_K, 0, 0, ACCEPT),
    ]
}

/// A packet socket ready for tokio, shared between its reader task and the sending driver.
pub(super) type PacketSocket = Arc<AsyncFd<Socket>>;

/// What the kernel says about an interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct LinkState {
    pub index: u32,
    pub mac: MacAddr,
    /// `IFF_RUNNING`: up with carrier, frames can flow.
    pub running: bool,
}

impl LinkState {
    /// Same interface and address: the open sockets still fit.
    pub fn same_identity(&self, other: &LinkState) -> bool {
        (self.index, self.mac) == (other.index, other.mac)
    }
}

/// The open sockets of one interface.
#[derive(Debug)]
pub(super) struct Link {
    /// The state when last looked up.
    pub state: LinkState,
    pub arp: PacketSocket,
    pub ndp: PacketSocket,
    /// Membership sockets, filled in order.
    groups: Vec<Socket>,
    /// Which of `groups` holds each joined group.
    joined: BTreeMap<Ipv6Addr, usize>,
}

impl Link {
    /// Looks `name` up and opens its sockets. Must run inside the tokio runtime (and the network
    /// namespace) the link is used in.
    pub fn open(name: &str) -> Result<Link, LinkError> {
        let state = lookup(name)?;
        let socket_error = |operation| {
            move |source| LinkError::Socket {
                interface: name.to_owned(),
                operation,
                source,
            }
        };
        let arp = packet_socket(state.index, ETHERTYPE_ARP, &arp_filter())
            .map_err(socket_error("opening the ARP socket"))?;
        let ndp = packet_socket(state.index, ETHERTYPE_IPV6, &ndp_filter())
            .map_err(socket_error("opening the NDP socket"))?;
        let groups = vec![
            membership_socket().map_err(socket_error("opening the multicast membership socket"))?,
        ];
        Ok(Link {
            state,
            arp,
            ndp,
            groups,
            joined: BTreeMap::new(),
        })
    }

    /// Sends one complete Ethernet frame through the socket of its EtherType.
    pub async fn send(&self, frame: &[u8]) -> io::Result<()> {
        let socket = match EthernetHeader::split(frame) {
            Some((header, _)) if header.ethertype == ETHERTYPE_ARP => &self.arp,
            Some((header, _)) if header.ethertype == ETHERTYPE_IPV6 => &self.ndp,
            _ => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "frame is neither ARP nor IPv6",
                ));
            }
        };
        let sent = socket
            .async_io(Interest::WRITABLE, |socket| socket.send(frame))
            .await?;
        if sent != frame.len() {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                format!("sent {sent} of {} octets", frame.len()),
            ));
        }
        Ok(())
    }

    /// Joins `group` on the interface, through a new membership socket when the last one is full.
    pub fn join(&mut self, group: Ipv6Addr) -> io::Result<()> {
        if self.joined.contains_key(&group) {
            return Ok(());
        }
        let index = self.state.index;
        if let Some(last) = self.groups.last() {
            match last.join_multicast_v6(&group, index) {
                Ok(()) => {
                    self.joined.insert(group, self.groups.len() - 1);
                    return Ok(());
                }
                Err(error) if !is_out_of_option_memory(&error) => return Err(error),
                Err(_) => {}
            }
        }
        let socket = membership_socket()?;
        socket.join_multicast_v6(&group, index)?;
        self.groups.push(socket);
        self.joined.insert(group, self.groups.len() - 1);
        Ok(())
    }

    pub fn leave(&mut self, group: Ipv6Addr) -> io::Result<()> {
        let Some(holder) = self.joined.remove(&group) else {
            return Ok(());
        };
        match self.groups.get(holder) {
            Some(socket) => socket.leave_multicast_v6(&group, self.state.index),
            None => Ok(()),
        }
    }
}

/// Reads one frame from `socket` into `buffer`, waiting until one is there.
pub(super) async fn receive(socket: &PacketSocket, buffer: &mut [u8]) -> io::Result<usize> {
    socket
        .async_io(Interest::READABLE, |socket| {
            let mut socket: &Socket = socket;
            socket.read(buffer)
        })
        .await
}

/// A receive buffer of the right size for [`receive`].
pub(super) fn receive_buffer() -> Vec<u8> {
    vec![0; RECEIVE_BUFFER]
}

/// Index, MAC and carrier of `name`.
pub(super) fn lookup(name: &str) -> Result<LinkState, LinkError> {
    let interfaces = interfaces::snapshot()?;
    LinkState::of(name, interfaces.get(name))
}

impl LinkState {
    /// The state of interface `name` as found in a snapshot (`None`: not there).
    pub fn of(name: &str, interface: Option<&Interface>) -> Result<LinkState, LinkError> {
        let interface = interface.ok_or_else(|| LinkError::NotFound {
            interface: name.to_owned(),
        })?;
        let mac = interface.mac.ok_or_else(|| LinkError::NoEthernetAddress {
            interface: name.to_owned(),
        })?;
        Ok(LinkState {
            index: interface.index,
            mac,
            running: interface.running,
        })
    }
}

fn membership_socket() -> io::Result<Socket> {
    Socket::new(Domain::IPV6, Type::DGRAM.cloexec(), Some(Protocol::UDP))
}

/// The kernel's answer when a socket's option memory (`optmem_max`) holds no more memberships.
fn is_out_of_option_memory(error: &io::Error) -> bool {
    matches!(error.raw_os_error(), Some(libc::ENOMEM | libc::ENOBUFS))
}

fn packet_socket(index: u32, ethertype: u16, filter: &[SockFilter]) -> io::Result<PacketSocket> {
    // Protocol 0: the socket receives nothing until it is bound below, after the filter is on.
    let socket = Socket::new(Domain::PACKET, Type::RAW.nonblocking().cloexec(), None)?;
    socket.attach_filter(filter)?;
    socket.bind(&packet_bind_address(index, ethertype)?)?;
    Ok(Arc::new(async_socket(socket)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_interface_is_named_in_the_error() {
        let err = lookup("flbnosuchif0").expect_err("no such interface");
        assert!(matches!(&err, LinkError::NotFound { interface } if interface == "flbnosuchif0"));
    }
}
