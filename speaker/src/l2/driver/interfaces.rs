//! The node's interfaces as the kernel reports them right now (getifaddrs(3)): index, MAC,
//! carrier and the networks of their addresses. The driver takes a snapshot at start and again on
//! every rtnetlink link or address notification, and publishes it when it changed: the control
//! plane decides from it which interface may carry which Service IP (SPEC §5, "has an interface
//! whose subnet holds the IP").

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;
use nix::ifaddrs::getifaddrs;
use nix::net::if_::InterfaceFlags;
use nix::sys::socket::SockaddrStorage;

use super::LinkError;
use crate::l2::MacAddr;

/// One interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    pub index: u32,
    /// `None` for interfaces without a 6-octet hardware address (tunnels, …).
    pub mac: Option<MacAddr>,
    /// `IFF_RUNNING`: up with carrier, frames can flow.
    pub running: bool,
    /// Its addresses with their prefix lengths, in kernel order.
    pub networks: Vec<IpNet>,
}

/// Every interface by name.
pub type Interfaces = BTreeMap<String, Interface>;

/// The kernel's current view.
pub(super) fn snapshot() -> Result<Interfaces, LinkError> {
    let entries = getifaddrs().map_err(|source| LinkError::ListInterfaces { source })?;
    let mut interfaces = Interfaces::new();
    // getifaddrs lists the AF_PACKET entry of each interface before its addresses.
    let mut networks: Vec<(String, IpNet)> = Vec::new();
    for entry in entries {
        let Some(address) = entry.address.as_ref() else {
            continue;
        };
        if let Some(link) = address.as_link_addr() {
            let Ok(index) = u32::try_from(link.ifindex()) else {
                continue;
            };
            let mac = link.addr().filter(|_| link.halen() == 6).map(MacAddr);
            interfaces.insert(
                entry.interface_name,
                Interface {
                    index,
                    mac,
                    running: entry.flags.contains(InterfaceFlags::IFF_RUNNING),
                    networks: Vec::new(),
                },
            );
        } else if let Some(network) = network(address, entry.netmask.as_ref()) {
            networks.push((entry.interface_name, network));
        }
    }
    for (name, network) in networks {
        if let Some(interface) = interfaces.get_mut(&name) {
            interface.networks.push(network);
        }
    }
    Ok(interfaces)
}

/// An IPv4 or IPv6 address with the prefix length of its netmask.
fn network(address: &SockaddrStorage, netmask: Option<&SockaddrStorage>) -> Option<IpNet> {
    let (ip, prefix_len) = if let Some(v4) = address.as_sockaddr_in() {
        let mask = netmask.and_then(|m| m.as_sockaddr_in()).map(|m| m.ip());
        (
            IpAddr::V4(v4.ip()),
            mask.map_or(32, |m| u32::from(m).count_ones()),
        )
    } else if let Some(v6) = address.as_sockaddr_in6() {
        let mask = netmask.and_then(|m| m.as_sockaddr_in6()).map(|m| m.ip());
        (
            IpAddr::V6(v6.ip()),
            mask.map_or(128, |m| u128::from(m).count_ones()),
        )
    } else {
        return None;
    };
    IpNet::new(ip, u8::try_from(prefix_len).ok()?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_is_listed_with_its_address() {
        let interfaces = snapshot().expect("getifaddrs");
        let lo = interfaces.get("lo").expect("every namespace has lo");
        assert_eq!(lo.index, 1);
        if lo.running {
            assert!(
                lo.networks.contains(&"127.0.0.1/8".parse().expect("net")),
                "{lo:?}"
            );
        }
    }
}
