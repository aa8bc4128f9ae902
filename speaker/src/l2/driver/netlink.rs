//! Link and address changes from the kernel (rtnetlink(7), `RTMGRP_LINK`, `RTMGRP_IPV4_IFADDR`,
//! `RTMGRP_IPV6_IFADDR`): the driver re-opens and re-announces on link changes and republishes
//! the interface inventory on any change, instead of polling.
//!
//! Only the names of changed links are taken from the messages (an address notification just
//! means "take a new snapshot"); the driver then looks the interfaces up again (index, MAC) and
//! compares with what it has open. That keeps the parser small and makes a
//! lost notification (`ENOBUFS` when the socket buffer overflowed, netlink(7)) harmless: the
//! driver re-checks every interface it uses.
//!
//! ```text
//! struct nlmsghdr (16)  : len u32 | type u16 | flags u16 | seq u32 | pid u32   (host byte order)
//! struct ifinfomsg (16) : family u8 | pad u8 | type u16 | index i32 | flags u32 | change u32
//! struct rtattr (4 + …) : len u16 | type u16 | payload, padded to 4 octets
//! ```
//! Messages and attributes are aligned to 4 octets (`NLMSG_ALIGN`, `RTA_ALIGN`, netlink(7),
//! rtnetlink(7)). Parsing never panics on any input; whatever does not parse is skipped.

use std::io::{self, Read};
use std::os::fd::AsRawFd;

use nix::sys::socket::{
    AddressFamily, NetlinkAddr, SockFlag, SockProtocol, SockType, bind, socket,
};
use socket2::Socket;
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

use crate::sys::async_socket;

const NLMSG_HEADER_LEN: usize = 16;
const IFINFOMSG_LEN: usize = 16;
const RTATTR_HEADER_LEN: usize = 4;
const RTM_NEWLINK: u16 = 16;
const RTM_DELLINK: u16 = 17;
const IFLA_IFNAME: u16 = 3;
/// rtnetlink(7) multicast groups of link and address notifications.
const RTMGRP_LINK: u32 = 0x1;
const RTMGRP_IPV4_IFADDR: u32 = 0x10;
const RTMGRP_IPV6_IFADDR: u32 = 0x100;

fn align4(len: usize) -> usize {
    len.saturating_add(3) & !3
}

fn u16_at(bytes: &[u8], at: usize) -> Option<u16> {
    let raw = bytes.get(at..at.checked_add(2)?)?;
    Some(u16::from_ne_bytes([raw[0], raw[1]]))
}

fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    let raw = bytes.get(at..at.checked_add(4)?)?;
    Some(u32::from_ne_bytes([raw[0], raw[1], raw[2], raw[3]]))
}

/// Names of the interfaces that an `RTM_NEWLINK` / `RTM_DELLINK` in `datagram` speaks of.
pub(super) fn changed_links(datagram: &[u8]) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = datagram;
    while let Some(len) = u32_at(rest, 0).and_then(|len| usize::try_from(len).ok()) {
        let Some(message) = rest.get(..len).filter(|_| len >= NLMSG_HEADER_LEN) else {
            break;
        };
        if matches!(u16_at(message, 4), Some(RTM_NEWLINK | RTM_DELLINK))
            && let Some(name) = message
                .get(NLMSG_HEADER_LEN + IFINFOMSG_LEN..)
                .and_then(link_name)
        {
            names.push(name);
        }
        rest = rest.get(align4(len)..).unwrap_or_default();
    }
    names
}

/// The `IFLA_IFNAME` attribute among `attributes`.
fn link_name(mut attributes: &[u8]) -> Option<String> {
    while let Some(len) = u16_at(attributes, 0).map(usize::from) {
        let attribute = attributes.get(..len).filter(|_| len >= RTATTR_HEADER_LEN)?;
        if u16_at(attribute, 2) == Some(IFLA_IFNAME) {
            let value = attribute.get(RTATTR_HEADER_LEN..)?;
            let name = value.split(|b| *b == 0).next()?;
            return String::from_utf8(name.to_vec()).ok();
        }
        attributes = attributes.get(align4(len)..)?;
    }
    None
}

/// A non-blocking rtnetlink socket subscribed to link and address notifications.
pub(super) fn link_monitor() -> io::Result<AsyncFd<Socket>> {
    let fd = socket(
        AddressFamily::Netlink,
        SockType::Raw,
        SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
        SockProtocol::NetlinkRoute,
    )?;
    let groups = RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR;
    bind(fd.as_raw_fd(), &NetlinkAddr::new(0, groups))?;
    async_socket(Socket::from(fd))
}

/// Reads one datagram of notifications.
pub(super) async fn receive(socket: &AsyncFd<Socket>, buffer: &mut [u8]) -> io::Result<usize> {
    socket
        .async_io(Interest::READABLE, |socket| {
            let mut socket: &Socket = socket;
            socket.read(buffer)
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attribute(kind: u16, value: &[u8]) -> Vec<u8> {
        let len = (RTATTR_HEADER_LEN + value.len()) as u16;
        let mut out = Vec::new();
        out.extend_from_slice(&len.to_ne_bytes());
        out.extend_from_slice(&kind.to_ne_bytes());
        out.extend_from_slice(value);
        out.resize(align4(out.len()), 0);
        out
    }

    fn message(kind: u16, attributes: &[Vec<u8>]) -> Vec<u8> {
        let body: Vec<u8> = attributes.concat();
        let len = (NLMSG_HEADER_LEN + IFINFOMSG_LEN + body.len()) as u32;
        let mut out = Vec::new();
        out.extend_from_slice(&len.to_ne_bytes());
        out.extend_from_slice(&kind.to_ne_bytes());
        out.extend_from_slice(&[0; 10]); // flags, seq, pid
        out.extend_from_slice(&[0; IFINFOMSG_LEN]);
        out.extend_from_slice(&body);
        out
    }

    #[test]
    fn names_of_new_and_deleted_links_are_found_past_other_attributes() {
        let address = attribute(1, &[2, 0, 0, 0, 0, 1]);
        let datagram = [
            message(
                RTM_NEWLINK,
                &[address.clone(), attribute(IFLA_IFNAME, b"eth0\0")],
            ),
            message(RTM_DELLINK, &[attribute(IFLA_IFNAME, b"veth12\0"), address]),
        ]
        .concat();
        assert_eq!(changed_links(&datagram), vec!["eth0", "veth12"]);
    }

    #[test]
    fn other_message_types_are_ignored() {
        // RTM_NEWADDR (20) carries no link name for us.
        let datagram = message(20, &[attribute(IFLA_IFNAME, b"eth0\0")]);
        assert!(changed_links(&datagram).is_empty());
    }

    #[test]
    fn truncated_or_garbled_datagrams_never_panic() {
        let good = message(RTM_NEWLINK, &[attribute(IFLA_IFNAME, b"eth0\0")]);
        for cut in 0..good.len() {
            let _ = changed_links(&good[..cut]);
        }
        let mut zero_attribute = message(RTM_NEWLINK, &[]);
        zero_attribute.extend_from_slice(&[0, 0, 3, 0]);
        let _ = changed_links(&zero_attribute);
        assert!(changed_links(&[0xff; 64]).is_empty());
    }
}
