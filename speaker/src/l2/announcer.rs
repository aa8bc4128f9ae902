//! The layer-2 responder and announcer: a sans-IO state machine that decides which ARP / NDP frames
//! this node sends for the Service IPs it currently owns (SPEC §5).
//!
//! Contract: pure logic, no async, no I/O. The driver feeds [`Input`]s with the current time to
//! [`Announcer::handle`] and carries out the returned [`Output`]s (send a frame, join or leave a
//! multicast group, report a conflict); it calls `handle(now, Input::Tick)` no later than
//! [`Announcer::next_wakeup`].
//!
//! Behaviour:
//! - **Answering.** An ARP request (RFC 826) or Neighbor Solicitation (RFC 4861 §7.2.3) whose target
//!   is owned on the interface it arrived on is answered from that interface's MAC; nothing else is
//!   answered. An RFC 5227 §1.1 ARP Probe (sender IP 0.0.0.0) for an owned IP is answered too — that
//!   is what makes the prober back off. ARP Announcements (sender IP = target IP) are statements,
//!   not questions, and are never answered.
//! - **Announcing.** On gaining an IP the announcer sends, at each offset of
//!   [`AnnouncerConfig::announce_at`] after the gain, a gratuitous ARP request *and* reply
//!   (RFC 5227 §3, RFC 5944 §4.6) for IPv4 or an unsolicited Neighbor Advertisement with Override
//!   to ff02::1 (RFC 4861 §7.2.6) for IPv6. The default offsets 0, 200 ms, 500 ms, 1 s give four
//!   chances inside the first second, so one lost frame on a busy segment does not cost a failover
//!   its sub-second target, and RFC 4861 §7.2.6 ("MAX_NEIGHBOR_ADVERTISEMENT", 3) is met for IPv6 by the
//!   first three. After the burst an optional periodic refresh repeats the announcement
//!   ([`AnnouncerConfig::refresh_every`], off by default, like MetalLB). A gain of an IP already
//!   owned with the same MAC is a no-op, so a resync never re-bursts; [`Input::Reannounce`] is the
//!   explicit way to burst again (the control plane asks for it when a member reappears after a
//!   partition, since clients may have followed the other side's announcements meanwhile).
//! - **Losing** an IP stops answering and announcing for it at once.
//! - **Own frames** (Ethernet source or sender hardware address equal to the interface MAC) are
//!   ignored: an AF_PACKET socket also sees what this node sends.
//! - **Conflicts.** RFC 5227 §2.4: any ARP packet whose sender IP is an owned IP but whose sender
//!   hardware address is not ours, and any NA for an owned IP with a foreign target link-layer
//!   address, yields [`Output::Conflict`] and is counted. As RFC 5227 §2.4 (b) allows, the announcer
//!   then defends the address with one announcement, at most once per
//!   [`AnnouncerConfig::defend_interval`] (RFC 5227's DEFEND_INTERVAL, 10 s) per address, so two
//!   nodes that both believe they own an IP cannot start a frame storm.
//! - **Multicast groups.** For an owned IPv6 address the interface must listen on its solicited-node
//!   group (RFC 4291 §2.7.1); [`Output::JoinGroup`] / [`Output::LeaveGroup`] are emitted when the
//!   first / last owned address of a group on an interface comes / goes.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use super::arp::{ArpFrame, ArpOperation};
use super::ethernet::{ETHERTYPE_ARP, ETHERTYPE_IPV6, EthernetHeader, MacAddr};
use super::ndp::{NdpError, NdpFrame, NdpMessage, solicited_node};

/// Timing of announcements. Defaults are written once, here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnnouncerConfig {
    /// Offsets after gaining an IP at which it is announced; empty means no burst.
    pub announce_at: Vec<Duration>,
    /// Period of the refresh after the burst; `None` (or zero, which would mean a frame storm)
    /// disables it.
    pub refresh_every: Option<Duration>,
    /// Minimum time between two defending announcements for one address (RFC 5227 §2.4 (b)).
    pub defend_interval: Duration,
}

impl Default for AnnouncerConfig {
    fn default() -> Self {
        AnnouncerConfig {
            announce_at: vec![
                Duration::ZERO,
                Duration::from_millis(200),
                Duration::from_millis(500),
                Duration::from_secs(1),
            ],
            refresh_every: None,
            // RFC 5227 §1.1: DEFEND_INTERVAL 10 seconds.
            defend_interval: Duration::from_secs(10),
        }
    }
}

/// What happens to the announcer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input<'a> {
    /// This node now owns `ip` on `interface`, whose MAC is `mac`.
    Gained {
        ip: IpAddr,
        interface: &'a str,
        mac: MacAddr,
    },
    /// This node no longer owns `ip` on `interface`.
    Lost { ip: IpAddr, interface: &'a str },
    /// Announce an owned `ip` on `interface` again, as on a gain; ignored when not owned.
    Reannounce { ip: IpAddr, interface: &'a str },
    /// An ARP or ICMPv6 frame (Ethernet header included) arrived on `interface`.
    Frame { interface: &'a str, frame: &'a [u8] },
    /// Time passed; send what is due.
    Tick,
}

/// What the driver must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Transmit `frame` (a complete Ethernet frame) on `interface`.
    Send { interface: String, frame: Vec<u8> },
    /// Start receiving the IPv6 multicast `group` on `interface`.
    JoinGroup { interface: String, group: Ipv6Addr },
    /// Stop receiving the IPv6 multicast `group` on `interface`.
    LeaveGroup { interface: String, group: Ipv6Addr },
    /// Another station claims an owned IP (RFC 5227 §2.4); to be logged and reported.
    Conflict {
        ip: IpAddr,
        foreign_mac: MacAddr,
        interface: String,
    },
}

/// Counters of one address family (ARP for IPv4, NDP for IPv6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FamilyCounters {
    /// ARP requests and Neighbor Solicitations received (for any address).
    pub requests_seen: u64,
    /// Of those, the ones whose target is owned here (answered or, when sent by this node itself,
    /// not).
    pub requests_for_owned: u64,
    /// Of those, the ones answered.
    pub requests_answered: u64,
    /// Gratuitous ARP and unsolicited NA frames sent (bursts, refreshes and defences).
    pub gratuitous_sent: u64,
    /// Conflicting frames seen for owned addresses.
    pub conflicts: u64,
}

impl FamilyCounters {
    fn plus(self, other: FamilyCounters) -> FamilyCounters {
        FamilyCounters {
            requests_seen: self.requests_seen + other.requests_seen,
            requests_for_owned: self.requests_for_owned + other.requests_for_owned,
            requests_answered: self.requests_answered + other.requests_answered,
            gratuitous_sent: self.gratuitous_sent + other.gratuitous_sent,
            conflicts: self.conflicts + other.conflicts,
        }
    }
}

/// Plain counters, exported as metrics by the driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counters {
    pub ipv4: FamilyCounters,
    pub ipv6: FamilyCounters,
    /// ARP frames and NS/NA that break their RFC's validity rules (truncated, bad checksum, hop
    /// limit below 255, …).
    pub malformed: u64,
    /// Well-formed frames that are neither ARP nor NS/NA (other EtherTypes, other ICMPv6 types,
    /// other IPv6 upper layers); the socket filter should keep these away, so a rising count points
    /// at the driver.
    pub ignored: u64,
}

impl Counters {
    /// Both families added up.
    pub fn total(&self) -> FamilyCounters {
        self.ipv4.plus(self.ipv6)
    }

    fn family(&mut self, ip: IpAddr) -> &mut FamilyCounters {
        match ip {
            IpAddr::V4(_) => &mut self.ipv4,
            IpAddr::V6(_) => &mut self.ipv6,
        }
    }
}

#[derive(Debug, Clone)]
struct Owned {
    mac: MacAddr,
    gained_at: Instant,
    /// Index into `announce_at` of the next burst announcement.
    next_burst: usize,
    next_refresh: Option<Instant>,
    last_defence: Option<Instant>,
}

/// The responder/announcer state: owned (IP, interface) pairs and counters.
#[derive(Debug)]
pub struct Announcer {
    config: AnnouncerConfig,
    owned: BTreeMap<(IpAddr, String), Owned>,
    /// Owned IPv6 addresses per (interface, solicited-node group).
    groups: BTreeMap<(String, Ipv6Addr), usize>,
    counters: Counters,
}

impl Announcer {
    /// An announcer with no owned addresses. `announce_at` is sorted here, so callers may list the
    /// offsets in any order; a zero refresh period is treated as none.
    pub fn new(mut config: AnnouncerConfig) -> Announcer {
        config.announce_at.sort_unstable();
        config.refresh_every = config.refresh_every.filter(|every| !every.is_zero());
        Announcer {
            config,
            owned: BTreeMap::new(),
            groups: BTreeMap::new(),
            counters: Counters::default(),
        }
    }

    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// The owned (IP, interface) pairs, for status reporting.
    pub fn owned(&self) -> impl Iterator<Item = (IpAddr, &str)> {
        self.owned.keys().map(|(ip, iface)| (*ip, iface.as_str()))
    }

    /// When the driver must call `handle(now, Input::Tick)` next; `None` when nothing is scheduled.
    pub fn next_wakeup(&self) -> Option<Instant> {
        self.owned
            .values()
            .filter_map(|owned| self.next_due(owned))
            .min()
    }

    pub fn handle(&mut self, now: Instant, input: Input<'_>) -> Vec<Output> {
        let mut out = Vec::new();
        match input {
            Input::Gained { ip, interface, mac } => self.gain(now, ip, interface, mac, &mut out),
            Input::Lost { ip, interface } => self.lose(ip, interface, &mut out),
            Input::Reannounce { ip, interface } => self.reannounce(now, ip, interface, &mut out),
            Input::Frame { interface, frame } => self.receive(now, interface, frame, &mut out),
            Input::Tick => self.announce_due(now, &mut out),
        }
        out
    }

    fn gain(
        &mut self,
        now: Instant,
        ip: IpAddr,
        interface: &str,
        mac: MacAddr,
        out: &mut Vec<Output>,
    ) {
        let key = (ip, interface.to_owned());
        match self.owned.get(&key) {
            Some(owned) if owned.mac == mac => return,
            // A new MAC for an address already owned: same group, restart the announcements.
            Some(_) => {}
            None => {
                if let IpAddr::V6(v6) = ip {
                    let users = self
                        .groups
                        .entry((interface.to_owned(), solicited_node(v6)))
                        .or_default();
                    *users += 1;
                    if *users == 1 {
                        out.push(Output::JoinGroup {
                            interface: interface.to_owned(),
                            group: solicited_node(v6),
                        });
                    }
                }
            }
        }
        self.owned.insert(
            key,
            Owned {
                mac,
                gained_at: now,
                next_burst: 0,
                // Without a burst the refresh period starts at the gain.
                next_refresh: self
                    .config
                    .refresh_every
                    .filter(|_| self.config.announce_at.is_empty())
                    .map(|every| now + every),
                last_defence: None,
            },
        );
        self.announce_due(now, out);
    }

    fn reannounce(&mut self, now: Instant, ip: IpAddr, interface: &str, out: &mut Vec<Output>) {
        let Some(owned) = self.owned.get_mut(&(ip, interface.to_owned())) else {
            return;
        };
        owned.gained_at = now;
        owned.next_burst = 0;
        self.announce_due(now, out);
    }

    fn lose(&mut self, ip: IpAddr, interface: &str, out: &mut Vec<Output>) {
        if self.owned.remove(&(ip, interface.to_owned())).is_none() {
            return;
        }
        let IpAddr::V6(v6) = ip else {
            return;
        };
        let group_key = (interface.to_owned(), solicited_node(v6));
        if let Some(users) = self.groups.get_mut(&group_key) {
            *users -= 1;
            if *users == 0 {
                self.groups.remove(&group_key);
                out.push(Output::LeaveGroup {
                    interface: interface.to_owned(),
                    group: solicited_node(v6),
                });
            }
        }
    }

    fn next_due(&self, owned: &Owned) -> Option<Instant> {
        match self.config.announce_at.get(owned.next_burst) {
            Some(offset) => Some(owned.gained_at + *offset),
            None => owned.next_refresh,
        }
    }

    /// Sends one announcement for every owned address whose burst step or refresh is due. A late
    /// tick that finds several burst steps due sends once and skips to the next future step.
    fn announce_due(&mut self, now: Instant, out: &mut Vec<Output>) {
        let config = &self.config;
        let counters = &mut self.counters;
        for ((ip, interface), owned) in &mut self.owned {
            let due_burst = config
                .announce_at
                .iter()
                .skip(owned.next_burst)
                .take_while(|offset| owned.gained_at + **offset <= now)
                .count();
            let due = if due_burst > 0 {
                owned.next_burst += due_burst;
                if owned.next_burst == config.announce_at.len() {
                    owned.next_refresh = config.refresh_every.map(|every| now + every);
                }
                true
            } else if owned.next_burst == config.announce_at.len()
                && owned.next_refresh.is_some_and(|at| at <= now)
            {
                owned.next_refresh = config.refresh_every.map(|every| now + every);
                true
            } else {
                false
            };
            if due {
                counters.family(*ip).gratuitous_sent +=
                    push_announcement(*ip, interface, owned.mac, out);
            }
        }
    }

    fn receive(&mut self, now: Instant, interface: &str, frame: &[u8], out: &mut Vec<Output>) {
        let Some((eth, _)) = EthernetHeader::split(frame) else {
            self.counters.malformed += 1;
            return;
        };
        match eth.ethertype {
            ETHERTYPE_ARP => match ArpFrame::decode(frame) {
                Ok(arp) => self.receive_arp(now, interface, &arp, out),
                Err(_) => self.counters.malformed += 1,
            },
            ETHERTYPE_IPV6 => match NdpFrame::decode(frame) {
                Ok(ndp) => self.receive_ndp(now, interface, &ndp, out),
                Err(NdpError::NotNeighborDiscovery { .. } | NdpError::NextHeader { .. }) => {
                    self.counters.ignored += 1;
                }
                Err(_) => self.counters.malformed += 1,
            },
            _ => self.counters.ignored += 1,
        }
    }

    fn receive_arp(
        &mut self,
        now: Instant,
        interface: &str,
        arp: &ArpFrame,
        out: &mut Vec<Output>,
    ) {
        if arp.operation == ArpOperation::Request {
            self.counters.ipv4.requests_seen += 1;
        }
        // RFC 5227 §2.4: a packet whose sender IP is ours but whose sender hardware address is not.
        if let Some(owned) = self
            .owned
            .get(&(IpAddr::V4(arp.sender_ip), interface.to_owned()))
            && arp.sender_mac != owned.mac
            && arp.eth_source != owned.mac
        {
            self.conflict(
                now,
                IpAddr::V4(arp.sender_ip),
                interface,
                arp.sender_mac,
                out,
            );
            return;
        }
        if arp.operation != ArpOperation::Request || arp.is_gratuitous() {
            return;
        }
        let Some(owned) = self
            .owned
            .get(&(IpAddr::V4(arp.target_ip), interface.to_owned()))
        else {
            return;
        };
        self.counters.ipv4.requests_for_owned += 1;
        if arp.eth_source == owned.mac || arp.sender_mac == owned.mac {
            return;
        }
        out.push(Output::Send {
            interface: interface.to_owned(),
            frame: arp.reply_from(owned.mac).encode(),
        });
        self.counters.ipv4.requests_answered += 1;
    }

    fn receive_ndp(
        &mut self,
        now: Instant,
        interface: &str,
        ndp: &NdpFrame,
        out: &mut Vec<Output>,
    ) {
        let key = (IpAddr::V6(ndp.message.target()), interface.to_owned());
        match ndp.message {
            NdpMessage::Solicitation { .. } => {
                self.counters.ipv6.requests_seen += 1;
                let Some(owned) = self.owned.get(&key) else {
                    return;
                };
                self.counters.ipv6.requests_for_owned += 1;
                if ndp.eth_source == owned.mac {
                    return;
                }
                if let Some(reply) = ndp.advertisement_reply(owned.mac) {
                    out.push(Output::Send {
                        interface: interface.to_owned(),
                        frame: reply.encode(),
                    });
                    self.counters.ipv6.requests_answered += 1;
                }
            }
            NdpMessage::Advertisement {
                target,
                target_link_layer,
                ..
            } => {
                let Some(owned) = self.owned.get(&key) else {
                    return;
                };
                let foreign_mac = target_link_layer.unwrap_or(ndp.eth_source);
                if ndp.eth_source != owned.mac && foreign_mac != owned.mac {
                    self.conflict(now, IpAddr::V6(target), interface, foreign_mac, out);
                }
            }
        }
    }

    fn conflict(
        &mut self,
        now: Instant,
        ip: IpAddr,
        interface: &str,
        foreign_mac: MacAddr,
        out: &mut Vec<Output>,
    ) {
        self.counters.family(ip).conflicts += 1;
        out.push(Output::Conflict {
            ip,
            foreign_mac,
            interface: interface.to_owned(),
        });
        let defend_interval = self.config.defend_interval;
        let Some(owned) = self.owned.get_mut(&(ip, interface.to_owned())) else {
            return;
        };
        if owned
            .last_defence
            .is_some_and(|at| now.saturating_duration_since(at) < defend_interval)
        {
            return;
        }
        owned.last_defence = Some(now);
        let mac = owned.mac;
        self.counters.family(ip).gratuitous_sent += push_announcement(ip, interface, mac, out);
    }
}

/// Pushes the announcement frames for `ip` and returns how many.
fn push_announcement(ip: IpAddr, interface: &str, mac: MacAddr, out: &mut Vec<Output>) -> u64 {
    let frames: Vec<Vec<u8>> = match ip {
        IpAddr::V4(v4) => announce_v4(mac, v4),
        IpAddr::V6(v6) => vec![NdpFrame::unsolicited_advertisement(mac, v6).encode()],
    };
    let count = frames.len() as u64;
    out.extend(frames.into_iter().map(|frame| Output::Send {
        interface: interface.to_owned(),
        frame,
    }));
    count
}

fn announce_v4(mac: MacAddr, ip: Ipv4Addr) -> Vec<Vec<u8>> {
    vec![
        ArpFrame::gratuitous_request(mac, ip).encode(),
        ArpFrame::gratuitous_reply(mac, ip).encode(),
    ]
}
