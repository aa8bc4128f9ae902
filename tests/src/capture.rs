//! Packet capture on the lab's L2 segment: `tcpdump -w` on the segment bridge (inside the segment
//! namespace, so it sees every node's, router's and client's frames), stopped by pid, and a small
//! pcap reader that returns the ARP (RFC 826) and NDP (RFC 4861 §4.3/§4.4) frames as values.
//!
//! The reader handles the classic pcap format (microsecond or nanosecond, either byte order) with
//! Ethernet link type, which is what tcpdump writes; anything else is an error, never a panic.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::netns::{NetNs, NetnsError, NsProcess, wait_for};

/// Failures of capturing or reading a capture.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error(transparent)]
    Command(#[from] NetnsError),
    #[error("reading capture {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("capture is not a pcap file we read: {detail}")]
    Format { detail: String },
}

/// A MAC address.
pub type Mac = [u8; 6];

/// An ARP or NDP frame seen on the segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Capture timestamp since the Unix epoch.
    pub time: Duration,
    /// Ethernet source and destination.
    pub eth_src: Mac,
    pub eth_dst: Mac,
    pub kind: FrameKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameKind {
    /// RFC 826 ARP for IPv4 over Ethernet.
    Arp {
        /// 1 request, 2 reply.
        op: u16,
        sender_mac: Mac,
        sender_ip: Ipv4Addr,
        target_mac: Mac,
        target_ip: Ipv4Addr,
    },
    /// RFC 4861 §4.3 Neighbor Solicitation.
    NeighborSolicitation {
        src: Ipv6Addr,
        dst: Ipv6Addr,
        target: Ipv6Addr,
        /// Source link-layer address option.
        source_mac: Option<Mac>,
    },
    /// RFC 4861 §4.4 Neighbor Advertisement.
    NeighborAdvertisement {
        src: Ipv6Addr,
        dst: Ipv6Addr,
        target: Ipv6Addr,
        router: bool,
        solicited: bool,
        override_: bool,
        /// Target link-layer address option.
        target_mac: Option<Mac>,
    },
}

impl Frame {
    /// A gratuitous ARP announces the sender's own address (sender IP equals target IP).
    pub fn is_gratuitous_arp(&self) -> bool {
        matches!(self.kind, FrameKind::Arp { sender_ip, target_ip, .. } if sender_ip == target_ip)
    }

    /// An unsolicited Neighbor Advertisement (RFC 4861 §7.2.6): Solicited flag clear.
    pub fn is_unsolicited_na(&self) -> bool {
        matches!(
            self.kind,
            FrameKind::NeighborAdvertisement {
                solicited: false,
                ..
            }
        )
    }
}

/// A running `tcpdump` writing ARP and ICMPv6 frames of one interface to a file.
#[derive(Debug)]
pub struct Capture {
    process: NsProcess,
    file: PathBuf,
}

impl Capture {
    /// Time tcpdump gets to write out queued frames before it is stopped.
    pub const SETTLE: Duration = Duration::from_millis(300);

    /// Starts capturing on `interface` in `ns` into `file` and returns once tcpdump listens.
    pub fn start(ns: &NetNs, interface: &str, file: &Path) -> Result<Self, CaptureError> {
        let log = file.with_extension("log");
        let process = ns.spawn(
            &[
                "tcpdump",
                "-i",
                interface,
                "-w",
                &file.to_string_lossy(),
                // Hand every frame over at once (the default batches them per ring block, and a
                // stop within the block timeout would lose them) and write it out unbuffered.
                "--immediate-mode",
                "-U",
                // Stay root: the run directory is root's.
                "-Z",
                "root",
                "-n",
                "arp or icmp6",
            ],
            &log,
        )?;
        wait_for(
            &format!("tcpdump on {interface} in {}", ns.name()),
            Duration::from_secs(5),
            || {
                std::fs::read_to_string(&log)
                    .ok()
                    .filter(|text| text.contains("listening on"))
            },
        )?;
        Ok(Self {
            process,
            file: file.to_owned(),
        })
    }

    /// Stops tcpdump by pid and returns the ARP/NDP frames captured. Frames still queued in the
    /// capture ring when SIGTERM arrives are dropped (tcpdump breaks its loop at once), so tcpdump
    /// first gets [`Capture::SETTLE`] to drain what the test just sent.
    pub fn stop(mut self) -> Result<Vec<Frame>, CaptureError> {
        std::thread::sleep(Self::SETTLE);
        self.process.stop();
        let bytes = std::fs::read(&self.file).map_err(|source| CaptureError::Read {
            path: self.file.clone(),
            source,
        })?;
        parse_pcap(&bytes)
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    little: bool,
}

impl Reader<'_> {
    fn u32_at(&self, at: usize) -> Option<u32> {
        let b: [u8; 4] = self.bytes.get(at..at + 4)?.try_into().ok()?;
        Some(if self.little {
            u32::from_le_bytes(b)
        } else {
            u32::from_be_bytes(b)
        })
    }
}

fn format_err(detail: impl Into<String>) -> CaptureError {
    CaptureError::Format {
        detail: detail.into(),
    }
}

/// Reads a classic pcap file and returns its ARP and NDP frames (other frames are skipped).
pub fn parse_pcap(bytes: &[u8]) -> Result<Vec<Frame>, CaptureError> {
    let magic = bytes
        .get(..4)
        .ok_or_else(|| format_err("shorter than the 24-byte header"))?;
    let (little, nanos) = match magic {
        [0xd4, 0xc3, 0xb2, 0xa1] => (true, false),
        [0xa1, 0xb2, 0xc3, 0xd4] => (false, false),
        [0x4d, 0x3c, 0xb2, 0xa1] => (true, true),
        [0xa1, 0xb2, 0x3c, 0x4d] => (false, true),
        other => return Err(format_err(format!("unknown magic {other:02x?}"))),
    };
    let r = Reader { bytes, little };
    let link = r
        .u32_at(20)
        .ok_or_else(|| format_err("shorter than the 24-byte header"))?;
    if link != 1 {
        return Err(format_err(format!(
            "link type {link}, expected 1 (Ethernet)"
        )));
    }
    let mut frames = Vec::new();
    let mut at = 24;
    while at < bytes.len() {
        let (Some(sec), Some(frac), Some(len)) = (r.u32_at(at), r.u32_at(at + 4), r.u32_at(at + 8))
        else {
            return Err(format_err(format!("truncated record header at byte {at}")));
        };
        let start = at + 16;
        let end = start + len as usize;
        let data = bytes
            .get(start..end)
            .ok_or_else(|| format_err(format!("truncated record at byte {at}")))?;
        let time = Duration::from_secs(u64::from(sec))
            + if nanos {
                Duration::from_nanos(u64::from(frac))
            } else {
                Duration::from_micros(u64::from(frac))
            };
        if let Some(frame) = parse_ethernet(time, data) {
            frames.push(frame);
        }
        at = end;
    }
    Ok(frames)
}

fn mac_at(data: &[u8], at: usize) -> Option<Mac> {
    data.get(at..at + 6)?.try_into().ok()
}

fn v4_at(data: &[u8], at: usize) -> Option<Ipv4Addr> {
    let b: [u8; 4] = data.get(at..at + 4)?.try_into().ok()?;
    Some(Ipv4Addr::from(b))
}

fn v6_at(data: &[u8], at: usize) -> Option<Ipv6Addr> {
    let b: [u8; 16] = data.get(at..at + 16)?.try_into().ok()?;
    Some(Ipv6Addr::from(b))
}

fn u16_at(data: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(data.get(at..at + 2)?.try_into().ok()?))
}

/// An Ethernet frame's ARP or NDP content; `None` for anything else or anything truncated.
fn parse_ethernet(time: Duration, data: &[u8]) -> Option<Frame> {
    let eth_dst = mac_at(data, 0)?;
    let eth_src = mac_at(data, 6)?;
    let payload = data.get(14..)?;
    let kind = match u16_at(data, 12)? {
        0x0806 => parse_arp(payload)?,
        0x86dd => parse_ndp(payload)?,
        _ => return None,
    };
    Some(Frame {
        time,
        eth_src,
        eth_dst,
        kind,
    })
}

/// RFC 826 packet: htype(2) ptype(2) hlen(1) plen(1) op(2) sha(6) spa(4) tha(6) tpa(4).
fn parse_arp(p: &[u8]) -> Option<FrameKind> {
    if u16_at(p, 0)? != 1 || u16_at(p, 2)? != 0x0800 || p.get(4..6)? != [6, 4] {
        return None;
    }
    Some(FrameKind::Arp {
        op: u16_at(p, 6)?,
        sender_mac: mac_at(p, 8)?,
        sender_ip: v4_at(p, 14)?,
        target_mac: mac_at(p, 18)?,
        target_ip: v4_at(p, 24)?,
    })
}

/// IPv6 header (40 bytes, next header 58 = ICMPv6) carrying an NS (135) or NA (136).
fn parse_ndp(p: &[u8]) -> Option<FrameKind> {
    if *p.get(6)? != 58 {
        return None;
    }
    let src = v6_at(p, 8)?;
    let dst = v6_at(p, 24)?;
    let icmp = p.get(40..)?;
    let target = v6_at(icmp, 8)?;
    // Options start after type(1) code(1) checksum(2) reserved/flags(4) target(16).
    let option_mac = |wanted: u8| -> Option<Mac> {
        let mut opts = icmp.get(24..)?;
        while opts.len() >= 8 {
            let len = usize::from(*opts.get(1)?) * 8;
            if len == 0 {
                return None;
            }
            if opts[0] == wanted {
                return mac_at(opts, 2);
            }
            opts = opts.get(len..)?;
        }
        None
    };
    match *icmp.first()? {
        135 => Some(FrameKind::NeighborSolicitation {
            src,
            dst,
            target,
            source_mac: option_mac(1),
        }),
        136 => {
            let flags = *icmp.get(4)?;
            Some(FrameKind::NeighborAdvertisement {
                src,
                dst,
                target,
                router: flags & 0x80 != 0,
                solicited: flags & 0x40 != 0,
                override_: flags & 0x20 != 0,
                target_mac: option_mac(2),
            })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pcap(records: &[Vec<u8>]) -> Vec<u8> {
        let mut out = vec![0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0];
        out.extend([0u8; 8]);
        out.extend(65535u32.to_le_bytes());
        out.extend(1u32.to_le_bytes());
        for (i, r) in records.iter().enumerate() {
            out.extend((1_700_000_000u32 + i as u32).to_le_bytes());
            out.extend(250_000u32.to_le_bytes());
            out.extend((r.len() as u32).to_le_bytes());
            out.extend((r.len() as u32).to_le_bytes());
            out.extend(r);
        }
        out
    }

    const MAC: Mac = [0x02, 0, 0, 0, 0, 0x11];

    fn gratuitous_arp() -> Vec<u8> {
        let mut f = vec![0xff; 6];
        f.extend(MAC);
        f.extend([0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1]);
        f.extend(MAC);
        f.extend([192, 0, 2, 200]);
        f.extend([0; 6]);
        f.extend([192, 0, 2, 200]);
        f
    }

    fn unsolicited_na() -> Vec<u8> {
        let mut f = vec![0x33, 0x33, 0, 0, 0, 1];
        f.extend(MAC);
        f.extend([0x86, 0xdd, 0x60, 0, 0, 0, 0, 32, 58, 255]);
        f.extend("2001:db8:2::11".parse::<Ipv6Addr>().expect("v6").octets());
        f.extend("ff02::1".parse::<Ipv6Addr>().expect("v6").octets());
        f.extend([136, 0, 0, 0, 0x20, 0, 0, 0]);
        f.extend("2001:db8:2::1:5".parse::<Ipv6Addr>().expect("v6").octets());
        f.extend([2, 1]);
        f.extend(MAC);
        f
    }

    #[test]
    fn reads_gratuitous_arp_and_unsolicited_na() {
        let frames = parse_pcap(&pcap(&[gratuitous_arp(), unsolicited_na()])).expect("parses");
        assert_eq!(frames.len(), 2);
        assert!(frames[0].is_gratuitous_arp());
        assert_eq!(frames[0].time, Duration::from_millis(1_700_000_000_250));
        assert!(frames[1].is_unsolicited_na());
        match &frames[1].kind {
            FrameKind::NeighborAdvertisement {
                target,
                override_,
                target_mac,
                ..
            } => {
                assert_eq!(target.to_string(), "2001:db8:2::1:5");
                assert!(*override_);
                assert_eq!(*target_mac, Some(MAC));
            }
            other => panic!("expected an NA, got {other:?}"),
        }
    }

    #[test]
    fn truncated_frames_are_skipped_and_truncated_files_refused() {
        let mut short = gratuitous_arp();
        short.truncate(30);
        assert_eq!(parse_pcap(&pcap(&[short])).expect("parses"), vec![]);
        let mut file = pcap(&[gratuitous_arp()]);
        file.truncate(file.len() - 3);
        assert!(matches!(
            parse_pcap(&file),
            Err(CaptureError::Format { .. })
        ));
        assert!(matches!(
            parse_pcap(b"nope"),
            Err(CaptureError::Format { .. })
        ));
    }
}
