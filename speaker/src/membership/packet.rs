//! The authenticated UDP heartbeat that speakers exchange to judge each other's liveness (SPEC §5).
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |  Version (1)  |  Flags      |L|  Name length  |   Reserved 0  |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                  Incarnation (64 bits, big endian)            |
//! +                                                               +
//! |                                                               |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                  Sequence number (64 bits)                    |
//! +                                                               +
//! |                                                               |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |         Timestamp, Unix time in milliseconds (64 bits)        |
//! +                                                               +
//! |                                                               |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |            Node name (UTF-8, Name length octets, 1–253)       |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |     HMAC-SHA256 (RFC 2104, FIPS 180-4) over all octets above  |
//! |                          (32 octets)                          |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//! L = leaving: the sender is shutting down and must be considered down at once. The other flag bits
//! are sent as zero and ignored on receive, so a later version can use them without a version bump.
//!
//! The incarnation identifies one run of the sender (its start time in nanoseconds, chosen by the
//! driver), the sequence number counts heartbeats within it; together with the timestamp they let
//! the liveness table reject replays. The tag is checked in constant time before any field is trusted.

use std::fmt;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use thiserror::Error;

type HmacSha256 = Hmac<Sha256>;

/// The only wire version this code speaks.
pub const VERSION: u8 = 1;
const FLAG_LEAVING: u8 = 0x01;
const FIXED_LEN: usize = 28;
const TAG_LEN: usize = 32;
/// Longest node name: a DNS subdomain (Kubernetes object name rules).
pub const MAX_NAME_LEN: usize = 253;

/// The shared secret that authenticates heartbeats, kept as a keyed HMAC state; its bytes are never
/// printed.
#[derive(Clone)]
pub struct HeartbeatKey {
    keyed: HmacSha256,
    len: usize,
}

impl HeartbeatKey {
    /// Wraps the secret; an empty secret would authenticate nothing and is refused.
    pub fn new(secret: &[u8]) -> Result<HeartbeatKey, PacketError> {
        if secret.is_empty() {
            return Err(PacketError::EmptyKey);
        }
        // RFC 2104 §2: HMAC takes keys of any length, so this only fails for the empty key above.
        let keyed = HmacSha256::new_from_slice(secret).map_err(|_| PacketError::EmptyKey)?;
        Ok(HeartbeatKey {
            keyed,
            len: secret.len(),
        })
    }

    fn mac(&self) -> HmacSha256 {
        self.keyed.clone()
    }
}

impl fmt::Debug for HeartbeatKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HeartbeatKey(<{} octets redacted>)", self.len)
    }
}

/// Why a datagram is not an authentic heartbeat (or a heartbeat cannot be built).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PacketError {
    #[error("heartbeat too short: {len} octets, need {needed}")]
    Truncated { len: usize, needed: usize },
    #[error("heartbeat version {version}, this speaker speaks {VERSION}")]
    WrongVersion { version: u8 },
    #[error("heartbeat authentication failed (wrong key or altered packet)")]
    BadMac,
    #[error("heartbeat node name of {len} octets, must be 1 to {MAX_NAME_LEN}")]
    NameLength { len: usize },
    #[error("heartbeat node name is not UTF-8")]
    NameNotUtf8,
    #[error("heartbeat key is empty")]
    EmptyKey,
}

/// One heartbeat as sent by a speaker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heartbeat {
    pub node: String,
    pub incarnation: u64,
    pub sequence: u64,
    pub leaving: bool,
    /// Sender's wall clock, Unix milliseconds.
    pub timestamp_ms: u64,
}

impl Heartbeat {
    /// Serialises and authenticates the heartbeat.
    pub fn encode(&self, key: &HeartbeatKey) -> Result<Vec<u8>, PacketError> {
        let name = self.node.as_bytes();
        let name_len = u8::try_from(name.len())
            .ok()
            .filter(|len| (1..=MAX_NAME_LEN).contains(&usize::from(*len)))
            .ok_or(PacketError::NameLength { len: name.len() })?;
        let mut out = Vec::with_capacity(FIXED_LEN + name.len() + TAG_LEN);
        let flags = if self.leaving { FLAG_LEAVING } else { 0 };
        out.extend_from_slice(&[VERSION, flags, name_len, 0]);
        out.extend_from_slice(&self.incarnation.to_be_bytes());
        out.extend_from_slice(&self.sequence.to_be_bytes());
        out.extend_from_slice(&self.timestamp_ms.to_be_bytes());
        out.extend_from_slice(name);
        let mut mac = key.mac();
        mac.update(&out);
        out.extend_from_slice(&mac.finalize().into_bytes());
        Ok(out)
    }

    /// Checks version, length and tag, then parses. Nothing but the version is looked at before
    /// the tag has been verified.
    pub fn decode(datagram: &[u8], key: &HeartbeatKey) -> Result<Heartbeat, PacketError> {
        let truncated = |needed| PacketError::Truncated {
            len: datagram.len(),
            needed,
        };
        let Some(&version) = datagram.first() else {
            return Err(truncated(FIXED_LEN + 1 + TAG_LEN));
        };
        if version != VERSION {
            return Err(PacketError::WrongVersion { version });
        }
        let (body, tag) = datagram
            .split_last_chunk::<TAG_LEN>()
            .filter(|(body, _)| body.len() > FIXED_LEN)
            .ok_or_else(|| truncated(FIXED_LEN + 1 + TAG_LEN))?;
        let mut mac = key.mac();
        mac.update(body);
        mac.verify_slice(tag).map_err(|_| PacketError::BadMac)?;

        let (fixed, name) = body
            .split_first_chunk::<FIXED_LEN>()
            .ok_or_else(|| truncated(FIXED_LEN + 1 + TAG_LEN))?;
        let name_len = usize::from(fixed[2]);
        if name_len == 0 || name_len != name.len() {
            return Err(PacketError::NameLength { len: name.len() });
        }
        let node = std::str::from_utf8(name)
            .map_err(|_| PacketError::NameNotUtf8)?
            .to_owned();
        let u64_at = |at: usize| {
            let mut octets = [0u8; 8];
            octets.copy_from_slice(&fixed[at..at + 8]);
            u64::from_be_bytes(octets)
        };
        Ok(Heartbeat {
            node,
            incarnation: u64_at(4),
            sequence: u64_at(12),
            leaving: fixed[1] & FLAG_LEAVING != 0,
            timestamp_ms: u64_at(20),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key() -> HeartbeatKey {
        HeartbeatKey::new(b"ferrolb-test-key").expect("non-empty")
    }

    fn heartbeat() -> Heartbeat {
        Heartbeat {
            node: "node-a".to_owned(),
            incarnation: 1_700_000_000_000_000_000,
            sequence: 42,
            leaving: false,
            timestamp_ms: 1_700_000_000_123,
        }
    }

    // Tag computed independently with Python's hmac/hashlib.
    #[rustfmt::skip]
    const GOLDEN: [u8; 66] = [
        0x01, 0x00, 0x06, 0x00,                         // version 1, no flags, name 6 octets
        0x17, 0x97, 0x9c, 0xfe, 0x36, 0x2a, 0x00, 0x00, // incarnation
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x2a, // sequence 42
        0x00, 0x00, 0x01, 0x8b, 0xcf, 0xe5, 0x68, 0x7b, // timestamp
        0x6e, 0x6f, 0x64, 0x65, 0x2d, 0x61,             // "node-a"
        0xf1, 0x7e, 0xf1, 0xe5, 0x04, 0x21, 0xa7, 0x1b, // HMAC-SHA256
        0x15, 0x4e, 0x14, 0x42, 0x2c, 0x58, 0x31, 0x42,
        0x86, 0xb7, 0x49, 0xbd, 0x59, 0xa4, 0xb7, 0x8f,
        0x17, 0xe2, 0xa5, 0x6a, 0xbc, 0xd2, 0x73, 0xc4,
    ];

    #[test]
    fn heartbeat_matches_golden_bytes() {
        assert_eq!(heartbeat().encode(&key()), Ok(GOLDEN.to_vec()));
        assert_eq!(Heartbeat::decode(&GOLDEN, &key()), Ok(heartbeat()));
    }

    #[test]
    fn leaving_flag_is_bit_zero_and_authenticated() {
        let leaving = Heartbeat {
            leaving: true,
            sequence: 43,
            timestamp_ms: 1_700_000_000_223,
            ..heartbeat()
        };
        let bytes = leaving.encode(&key()).expect("encodes");
        assert_eq!(bytes[1], 0x01);
        assert_eq!(
            bytes[34..],
            [
                0x54, 0x4e, 0x9e, 0xc1, 0x9f, 0x6d, 0x17, 0x55, 0xce, 0xff, 0xd2, 0x53, 0x4d, 0x88,
                0x45, 0xfb, 0xab, 0x7e, 0xd3, 0x10, 0xe4, 0x09, 0x6d, 0x9e, 0x10, 0xec, 0x3e, 0x65,
                0x08, 0xb4, 0x00, 0x9b
            ]
        );
        assert_eq!(Heartbeat::decode(&bytes, &key()), Ok(leaving));
    }

    #[test]
    fn forged_heartbeat_with_wrong_key_is_rejected() {
        let forged = heartbeat()
            .encode(&HeartbeatKey::new(b"attacker").expect("non-empty"))
            .expect("encodes");
        assert_eq!(Heartbeat::decode(&forged, &key()), Err(PacketError::BadMac));
    }

    #[test]
    fn altered_heartbeat_is_rejected() {
        let mut altered = GOLDEN;
        altered[1] = FLAG_LEAVING;
        assert_eq!(
            Heartbeat::decode(&altered, &key()),
            Err(PacketError::BadMac)
        );
    }

    #[test]
    fn wrong_version_and_truncation_are_rejected() {
        let mut v2 = GOLDEN;
        v2[0] = 2;
        assert_eq!(
            Heartbeat::decode(&v2, &key()),
            Err(PacketError::WrongVersion { version: 2 })
        );
        // Cut inside the name: the tag is then taken from the wrong octets.
        assert_eq!(
            Heartbeat::decode(&GOLDEN[..62], &key()),
            Err(PacketError::BadMac)
        );
        assert_eq!(
            Heartbeat::decode(&GOLDEN[..60], &key()),
            Err(PacketError::Truncated {
                len: 60,
                needed: 61
            })
        );
        assert_eq!(
            Heartbeat::decode(&GOLDEN[..40], &key()),
            Err(PacketError::Truncated {
                len: 40,
                needed: 61
            })
        );
        assert_eq!(
            Heartbeat::decode(&[], &key()),
            Err(PacketError::Truncated { len: 0, needed: 61 })
        );
    }

    #[test]
    fn name_length_field_must_match_the_name() {
        let mut body = GOLDEN[..34].to_vec();
        body[2] = 5;
        let mut mac = key().mac();
        mac.update(&body);
        body.extend_from_slice(&mac.finalize().into_bytes());
        assert_eq!(
            Heartbeat::decode(&body, &key()),
            Err(PacketError::NameLength { len: 6 })
        );
    }

    #[test]
    fn empty_or_overlong_names_and_empty_keys_are_refused() {
        let empty = Heartbeat {
            node: String::new(),
            ..heartbeat()
        };
        assert_eq!(
            empty.encode(&key()),
            Err(PacketError::NameLength { len: 0 })
        );
        let long = Heartbeat {
            node: "n".repeat(254),
            ..heartbeat()
        };
        assert_eq!(
            long.encode(&key()),
            Err(PacketError::NameLength { len: 254 })
        );
        assert_eq!(HeartbeatKey::new(b"").err(), Some(PacketError::EmptyKey));
        assert_eq!(format!("{:?}", key()), "HeartbeatKey(<16 octets redacted>)");
    }

    proptest! {
        #[test]
        fn arbitrary_datagrams_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..120)) {
            let _ = Heartbeat::decode(&bytes, &key());
        }

        #[test]
        fn heartbeats_round_trip(
            node in "[a-z0-9.-]{1,253}", incarnation: u64, sequence: u64, leaving: bool, timestamp_ms: u64,
        ) {
            let beat = Heartbeat { node, incarnation, sequence, leaving, timestamp_ms };
            let bytes = beat.encode(&key()).expect("valid name");
            prop_assert_eq!(Heartbeat::decode(&bytes, &key()), Ok(beat));
        }
    }
}
