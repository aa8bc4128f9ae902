//! BFD Control packet codec (RFC 5880 §4.1) with the packet-level reception checks of §6.8.6.
//!
//! Contract: pure functions over byte slices, no I/O. [`ControlPacket::decode`] either returns a
//! packet that passed every check RFC 5880 §6.8.6 can make without session state, or a
//! [`DecodeError`] naming the rule that discarded it; it never panics on any input.
//! [`ControlPacket::encode`] writes the 24-byte mandatory section. ferrolb configures no BFD
//! authentication, so a packet with the A bit set is always discarded (§6.8.6) and encoded packets
//! never carry an Authentication Section.

use std::num::{NonZeroU8, NonZeroU32};

use thiserror::Error;

/// Length of the mandatory section, the whole packet when no authentication is in use.
pub const MANDATORY_LEN: usize = 24;

/// Minimum Length when the A bit is set: mandatory section plus Auth Type and Auth Len (§6.8.6).
const MIN_LEN_WITH_AUTH: usize = 26;

/// The only protocol version RFC 5880 defines.
const VERSION: u8 = 1;

const FLAG_POLL: u8 = 0x20;
const FLAG_FINAL: u8 = 0x10;
const FLAG_CONTROL_PLANE_INDEPENDENT: u8 = 0x08;
const FLAG_AUTH_PRESENT: u8 = 0x04;
const FLAG_DEMAND: u8 = 0x02;
const FLAG_MULTIPOINT: u8 = 0x01;

/// Session state carried in the Sta field (RFC 5880 §4.1, §6.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SessionState {
    AdminDown = 0,
    Down = 1,
    Init = 2,
    Up = 3,
}

impl SessionState {
    fn from_bits(bits: u8) -> Self {
        match bits & 0x03 {
            0 => Self::AdminDown,
            1 => Self::Down,
            2 => Self::Init,
            _ => Self::Up,
        }
    }
}

/// Diagnostic code (RFC 5880 §4.1): the local system's reason for its last state change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Diagnostic {
    NoDiagnostic,
    ControlDetectionTimeExpired,
    EchoFunctionFailed,
    NeighborSignaledSessionDown,
    ForwardingPlaneReset,
    PathDown,
    ConcatenatedPathDown,
    AdministrativelyDown,
    ReverseConcatenatedPathDown,
    /// Codes 9–31, reserved for future use. The field is informational, so a reserved value is
    /// kept rather than discarding the packet; only [`Diagnostic::from_code`] creates it.
    Reserved(u8),
}

impl Diagnostic {
    /// Maps the 5-bit field; bits above the field are ignored.
    pub fn from_code(code: u8) -> Self {
        match code & 0x1f {
            0 => Self::NoDiagnostic,
            1 => Self::ControlDetectionTimeExpired,
            2 => Self::EchoFunctionFailed,
            3 => Self::NeighborSignaledSessionDown,
            4 => Self::ForwardingPlaneReset,
            5 => Self::PathDown,
            6 => Self::ConcatenatedPathDown,
            7 => Self::AdministrativelyDown,
            8 => Self::ReverseConcatenatedPathDown,
            other => Self::Reserved(other),
        }
    }

    pub fn code(self) -> u8 {
        match self {
            Self::NoDiagnostic => 0,
            Self::ControlDetectionTimeExpired => 1,
            Self::EchoFunctionFailed => 2,
            Self::NeighborSignaledSessionDown => 3,
            Self::ForwardingPlaneReset => 4,
            Self::PathDown => 5,
            Self::ConcatenatedPathDown => 6,
            Self::AdministrativelyDown => 7,
            Self::ReverseConcatenatedPathDown => 8,
            Self::Reserved(code) => code & 0x1f,
        }
    }
}

/// Auth Type of an Authentication Section (RFC 5880 §4.1), named in the discard reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthType {
    SimplePassword,
    KeyedMd5,
    MeticulousKeyedMd5,
    KeyedSha1,
    MeticulousKeyedSha1,
    Reserved(u8),
}

impl AuthType {
    fn from_code(code: u8) -> Self {
        match code {
            1 => Self::SimplePassword,
            2 => Self::KeyedMd5,
            3 => Self::MeticulousKeyedMd5,
            4 => Self::KeyedSha1,
            5 => Self::MeticulousKeyedSha1,
            other => Self::Reserved(other),
        }
    }
}

/// A BFD Control packet without Authentication Section (RFC 5880 §4.1).
///
/// ```text
///  0                   1                   2                   3
///  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |Vers |  Diag   |Sta|P|F|C|A|D|M|  Detect Mult  |    Length     |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                       My Discriminator                        |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                      Your Discriminator                       |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                    Desired Min TX Interval                    |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                   Required Min RX Interval                    |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                 Required Min Echo RX Interval                 |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
///
/// An optional Authentication Section MAY be present:
/// |   Auth Type   |   Auth Len    |    Authentication Data...     |
/// ```
///
/// The fields the checks of §6.8.6 forbid are unrepresentable: Detect Mult and My Discriminator
/// are non-zero, the Multipoint bit does not exist (it "MUST be zero" on transmit), and so does
/// the A bit (no authentication is configured). Intervals are in microseconds, as on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ControlPacket {
    pub diag: Diagnostic,
    pub state: SessionState,
    /// P: the sender requests verification of connectivity or of a parameter change (§6.5).
    pub poll: bool,
    /// F: the sender answers a packet that had P set (§6.5).
    pub final_: bool,
    /// C: the sender's BFD does not share fate with its control plane.
    pub control_plane_independent: bool,
    /// D: the sender wishes to operate in Demand mode (§6.6).
    pub demand: bool,
    pub detect_mult: NonZeroU8,
    pub my_discriminator: NonZeroU32,
    /// `None` while the sender has not learned the receiver's discriminator.
    pub your_discriminator: Option<NonZeroU32>,
    pub desired_min_tx_us: u32,
    pub required_min_rx_us: u32,
    pub required_min_echo_rx_us: u32,
}

/// Why a received datagram is not a usable Control packet, one variant per discard rule of
/// RFC 5880 §6.8.6 (checked in the RFC's order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum DecodeError {
    #[error("datagram of {received} bytes is too short to hold a BFD Control header")]
    Truncated { received: usize },
    #[error("BFD version {version} is not 1")]
    UnsupportedVersion { version: u8 },
    #[error("Length field {length} is below the minimum {minimum}")]
    LengthTooSmall { length: u8, minimum: u8 },
    #[error("Length field {length} exceeds the {received} bytes received")]
    LengthExceedsPayload { length: u8, received: usize },
    #[error("Detect Mult is zero")]
    ZeroDetectMult,
    #[error("Multipoint bit is set")]
    MultipointSet,
    #[error("My Discriminator is zero")]
    ZeroMyDiscriminator,
    #[error("Your Discriminator is zero in state {state:?}")]
    ZeroYourDiscriminator { state: SessionState },
    #[error("authentication ({auth_type:?}) is present but none is configured")]
    AuthenticationNotConfigured { auth_type: AuthType },
}

impl DecodeError {
    /// Stable, label-friendly name of the rule, for drop counters.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Truncated { .. } => "truncated",
            Self::UnsupportedVersion { .. } => "unsupported_version",
            Self::LengthTooSmall { .. } => "length_too_small",
            Self::LengthExceedsPayload { .. } => "length_exceeds_payload",
            Self::ZeroDetectMult => "zero_detect_mult",
            Self::MultipointSet => "multipoint_set",
            Self::ZeroMyDiscriminator => "zero_my_discriminator",
            Self::ZeroYourDiscriminator { .. } => "zero_your_discriminator",
            Self::AuthenticationNotConfigured { .. } => "authentication_not_configured",
        }
    }
}

fn be_u32(bytes: &[u8], at: usize) -> u32 {
    let mut word = [0u8; 4];
    if let Some(src) = bytes.get(at..at + 4) {
        word.copy_from_slice(src);
    }
    u32::from_be_bytes(word)
}

impl ControlPacket {
    /// Decodes one UDP payload, applying the discard rules of RFC 5880 §6.8.6 that need no session.
    ///
    /// Bytes after Length are ignored (the Length field, not the datagram, delimits the packet).
    /// Selecting the session by Your Discriminator or by addresses is the caller's job.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let [vers_diag, state_flags, detect_mult, length, ..] = *bytes else {
            return Err(DecodeError::Truncated {
                received: bytes.len(),
            });
        };
        // "If the version number is not correct (1), the packet MUST be discarded."
        let version = vers_diag >> 5;
        if version != VERSION {
            return Err(DecodeError::UnsupportedVersion { version });
        }
        // "If the Length field is less than the minimum correct value (24 if the A bit is clear,
        // or 26 if the A bit is set), the packet MUST be discarded."
        let auth_present = state_flags & FLAG_AUTH_PRESENT != 0;
        let minimum = if auth_present {
            MIN_LEN_WITH_AUTH
        } else {
            MANDATORY_LEN
        };
        if usize::from(length) < minimum {
            return Err(DecodeError::LengthTooSmall {
                length,
                minimum: minimum as u8,
            });
        }
        // "If the Length field is greater than the payload of the encapsulating protocol, the
        // packet MUST be discarded."
        if usize::from(length) > bytes.len() {
            return Err(DecodeError::LengthExceedsPayload {
                length,
                received: bytes.len(),
            });
        }
        // "If the Detect Mult field is zero, the packet MUST be discarded."
        let detect_mult = NonZeroU8::new(detect_mult).ok_or(DecodeError::ZeroDetectMult)?;
        // "If the Multipoint (M) bit is nonzero, the packet MUST be discarded."
        if state_flags & FLAG_MULTIPOINT != 0 {
            return Err(DecodeError::MultipointSet);
        }
        // "If the My Discriminator field is zero, the packet MUST be discarded."
        let my_discriminator =
            NonZeroU32::new(be_u32(bytes, 4)).ok_or(DecodeError::ZeroMyDiscriminator)?;
        // "If the Your Discriminator field is zero and the State field is not Down or AdminDown,
        // the packet MUST be discarded."
        let state = SessionState::from_bits(state_flags >> 6);
        let your_discriminator = NonZeroU32::new(be_u32(bytes, 8));
        if your_discriminator.is_none() && matches!(state, SessionState::Init | SessionState::Up) {
            return Err(DecodeError::ZeroYourDiscriminator { state });
        }
        // "If the A bit is set and no authentication is in use (bfd.AuthType is zero), the packet
        // MUST be discarded." Length >= 26 was checked above, so the Auth Type byte is present.
        if auth_present {
            let auth_type = AuthType::from_code(bytes.get(MANDATORY_LEN).copied().unwrap_or(0));
            return Err(DecodeError::AuthenticationNotConfigured { auth_type });
        }
        Ok(Self {
            diag: Diagnostic::from_code(vers_diag),
            state,
            poll: state_flags & FLAG_POLL != 0,
            final_: state_flags & FLAG_FINAL != 0,
            control_plane_independent: state_flags & FLAG_CONTROL_PLANE_INDEPENDENT != 0,
            demand: state_flags & FLAG_DEMAND != 0,
            detect_mult,
            my_discriminator,
            your_discriminator,
            desired_min_tx_us: be_u32(bytes, 12),
            required_min_rx_us: be_u32(bytes, 16),
            required_min_echo_rx_us: be_u32(bytes, 20),
        })
    }

    /// Encodes the mandatory section; Length is 24, A and M are clear (RFC 5880 §6.8.7).
    pub fn encode(&self) -> [u8; MANDATORY_LEN] {
        let mut flags = (self.state as u8) << 6;
        for (set, bit) in [
            (self.poll, FLAG_POLL),
            (self.final_, FLAG_FINAL),
            (
                self.control_plane_independent,
                FLAG_CONTROL_PLANE_INDEPENDENT,
            ),
            (self.demand, FLAG_DEMAND),
        ] {
            if set {
                flags |= bit;
            }
        }
        let mut out = [0u8; MANDATORY_LEN];
        out[0] = (VERSION << 5) | self.diag.code();
        out[1] = flags;
        out[2] = self.detect_mult.get();
        out[3] = MANDATORY_LEN as u8;
        let words = [
            self.my_discriminator.get(),
            self.your_discriminator.map_or(0, NonZeroU32::get),
            self.desired_min_tx_us,
            self.required_min_rx_us,
            self.required_min_echo_rx_us,
        ];
        for (chunk, word) in out[4..].chunks_exact_mut(4).zip(words) {
            chunk.copy_from_slice(&word.to_be_bytes());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn nz32(v: u32) -> NonZeroU32 {
        NonZeroU32::new(v).unwrap()
    }

    /// An Up packet with P set, discriminators 1 and 2, 300 ms intervals, hand-assembled per §4.1.
    const UP_WITH_POLL: [u8; 24] = [
        0x20, 0xe0, 0x03, 0x18, // v1, diag 0, Up + P, mult 3, len 24
        0x00, 0x00, 0x00, 0x01, // my discriminator
        0x00, 0x00, 0x00, 0x02, // your discriminator
        0x00, 0x04, 0x93, 0xe0, // desired min tx 300000 us
        0x00, 0x04, 0x93, 0xe0, // required min rx 300000 us
        0x00, 0x00, 0x00, 0x00, // no echo
    ];

    fn up_with_poll() -> ControlPacket {
        ControlPacket {
            diag: Diagnostic::NoDiagnostic,
            state: SessionState::Up,
            poll: true,
            final_: false,
            control_plane_independent: false,
            demand: false,
            detect_mult: NonZeroU8::new(3).unwrap(),
            my_discriminator: nz32(1),
            your_discriminator: Some(nz32(2)),
            desired_min_tx_us: 300_000,
            required_min_rx_us: 300_000,
            required_min_echo_rx_us: 0,
        }
    }

    fn decode_edited(edit: impl FnOnce(&mut [u8; 24])) -> Result<ControlPacket, DecodeError> {
        let mut bytes = UP_WITH_POLL;
        edit(&mut bytes);
        ControlPacket::decode(&bytes)
    }

    #[test]
    fn up_packet_with_poll_decodes_and_encodes_to_the_same_bytes() {
        assert_eq!(ControlPacket::decode(&UP_WITH_POLL), Ok(up_with_poll()));
        assert_eq!(up_with_poll().encode(), UP_WITH_POLL);
    }

    fn hex(text: &str) -> Vec<u8> {
        text.split_whitespace()
            .map(|byte| u8::from_str_radix(byte, 16).unwrap())
            .collect()
    }

    /// Captured with tcpdump between FRR bfdd 8.4 and BIRD 2.0.12 (100 ms x 3) on a veth pair;
    /// tcpdump's own BFD dissector agreed on state and flags.
    #[test]
    fn packets_captured_from_frr_and_bird_decode_and_reencode_byte_for_byte() {
        let frr = nz32(0x7d91_8851);
        let bird = nz32(0x3fb4_58fd);
        let captured = [
            // BIRD, Down, before hearing FRR: 1 s TX floor while down, 100 ms RX.
            (
                "20 40 03 18 3f b4 58 fd 00 00 00 00 00 0f 42 40 00 01 86 a0 00 00 00 00",
                SessionState::Down,
                false,
                false,
                bird,
                None,
                1_000_000,
                100_000,
                0,
            ),
            // FRR, Init in answer; it advertises 50 ms Echo RX.
            (
                "20 80 03 18 7d 91 88 51 3f b4 58 fd 00 0f 42 40 00 0f 42 40 00 00 c3 50",
                SessionState::Init,
                false,
                false,
                frr,
                Some(bird),
                1_000_000,
                1_000_000,
                50_000,
            ),
            // BIRD, Up with Poll for its new 100 ms timers.
            (
                "20 e0 03 18 3f b4 58 fd 7d 91 88 51 00 01 86 a0 00 01 86 a0 00 00 00 00",
                SessionState::Up,
                true,
                false,
                bird,
                Some(frr),
                100_000,
                100_000,
                0,
            ),
            // FRR, Final answering it.
            (
                "20 d0 03 18 7d 91 88 51 3f b4 58 fd 00 01 86 a0 00 01 86 a0 00 00 c3 50",
                SessionState::Up,
                false,
                true,
                frr,
                Some(bird),
                100_000,
                100_000,
                50_000,
            ),
        ];
        for (bytes, state, poll, final_, my, your, tx, rx, echo) in captured {
            let bytes = hex(bytes);
            let packet = ControlPacket::decode(&bytes).unwrap();
            assert_eq!(
                packet,
                ControlPacket {
                    diag: Diagnostic::NoDiagnostic,
                    state,
                    poll,
                    final_,
                    control_plane_independent: false,
                    demand: false,
                    detect_mult: NonZeroU8::new(3).unwrap(),
                    my_discriminator: my,
                    your_discriminator: your,
                    desired_min_tx_us: tx,
                    required_min_rx_us: rx,
                    required_min_echo_rx_us: echo,
                }
            );
            assert_eq!(packet.encode().as_slice(), bytes.as_slice());
        }
    }

    #[test]
    fn every_flag_and_diag_lands_in_its_bit() {
        let packet = ControlPacket {
            diag: Diagnostic::ReverseConcatenatedPathDown,
            state: SessionState::Init,
            poll: false,
            final_: true,
            control_plane_independent: true,
            demand: true,
            your_discriminator: Some(nz32(0xdead_beef)),
            ..up_with_poll()
        };
        let bytes = packet.encode();
        assert_eq!(bytes[0], 0x28);
        assert_eq!(bytes[1], 0x80 | 0x10 | 0x08 | 0x02);
        assert_eq!(&bytes[8..12], &[0xde, 0xad, 0xbe, 0xef]);
        assert_eq!(ControlPacket::decode(&bytes), Ok(packet));
    }

    #[test]
    fn reserved_diagnostic_is_kept_not_discarded() {
        let mut bytes = UP_WITH_POLL;
        bytes[0] = 0x20 | 31;
        let packet = ControlPacket::decode(&bytes).unwrap();
        assert_eq!(packet.diag, Diagnostic::Reserved(31));
        assert_eq!(packet.encode()[0], 0x3f);
    }

    #[test]
    fn datagram_shorter_than_the_header_is_truncated() {
        assert_eq!(
            ControlPacket::decode(&UP_WITH_POLL[..3]),
            Err(DecodeError::Truncated { received: 3 })
        );
    }

    #[test]
    fn version_zero_is_discarded() {
        assert_eq!(
            decode_edited(|b| b[0] = 0x00),
            Err(DecodeError::UnsupportedVersion { version: 0 })
        );
    }

    #[test]
    fn length_below_24_is_discarded() {
        assert_eq!(
            decode_edited(|b| b[3] = 23),
            Err(DecodeError::LengthTooSmall {
                length: 23,
                minimum: 24
            })
        );
    }

    #[test]
    fn length_below_26_with_auth_bit_is_discarded() {
        assert_eq!(
            decode_edited(|b| b[1] |= FLAG_AUTH_PRESENT),
            Err(DecodeError::LengthTooSmall {
                length: 24,
                minimum: 26
            })
        );
    }

    #[test]
    fn length_beyond_the_datagram_is_discarded() {
        assert_eq!(
            ControlPacket::decode(&UP_WITH_POLL[..20]),
            Err(DecodeError::LengthExceedsPayload {
                length: 24,
                received: 20
            })
        );
    }

    #[test]
    fn trailing_bytes_after_length_are_ignored() {
        let mut bytes = UP_WITH_POLL.to_vec();
        bytes.extend_from_slice(&[0xff; 8]);
        assert_eq!(ControlPacket::decode(&bytes), Ok(up_with_poll()));
    }

    #[test]
    fn zero_detect_mult_is_discarded() {
        assert_eq!(
            decode_edited(|b| b[2] = 0),
            Err(DecodeError::ZeroDetectMult)
        );
    }

    #[test]
    fn multipoint_bit_is_discarded() {
        assert_eq!(
            decode_edited(|b| b[1] |= FLAG_MULTIPOINT),
            Err(DecodeError::MultipointSet)
        );
    }

    #[test]
    fn zero_my_discriminator_is_discarded() {
        assert_eq!(
            decode_edited(|b| b[4..8].fill(0)),
            Err(DecodeError::ZeroMyDiscriminator)
        );
    }

    #[test]
    fn zero_your_discriminator_is_discarded_in_init_and_up_only() {
        let without_your = |state: SessionState| {
            decode_edited(|b| {
                b[1] = (state as u8) << 6;
                b[8..12].fill(0);
            })
        };
        for state in [SessionState::Init, SessionState::Up] {
            assert_eq!(
                without_your(state),
                Err(DecodeError::ZeroYourDiscriminator { state })
            );
        }
        for state in [SessionState::Down, SessionState::AdminDown] {
            let packet = without_your(state).unwrap();
            assert_eq!((packet.state, packet.your_discriminator), (state, None));
        }
    }

    #[test]
    fn authenticated_packet_is_discarded_naming_its_auth_type() {
        // Keyed SHA1 section: type 4, len 28, key id, reserved, sequence, 20-byte hash.
        let mut bytes = UP_WITH_POLL.to_vec();
        bytes[1] |= FLAG_AUTH_PRESENT;
        bytes[3] = 24 + 28;
        bytes.extend_from_slice(&[4, 28, 1, 0]);
        bytes.extend_from_slice(&[0; 24]);
        assert_eq!(
            ControlPacket::decode(&bytes),
            Err(DecodeError::AuthenticationNotConfigured {
                auth_type: AuthType::KeyedSha1
            })
        );
    }

    fn any_packet() -> impl Strategy<Value = ControlPacket> {
        let state = prop_oneof![
            Just(SessionState::AdminDown),
            Just(SessionState::Down),
            Just(SessionState::Init),
            Just(SessionState::Up),
        ];
        (
            (0u8..32, state, any::<[bool; 4]>(), 1u8..=255),
            (1u32..=u32::MAX, 1u32..=u32::MAX, any::<[u32; 3]>()),
        )
            .prop_map(|((diag, state, flags, mult), (my, your, intervals))| {
                let [poll, final_, control_plane_independent, demand] = flags;
                ControlPacket {
                    diag: Diagnostic::from_code(diag),
                    state,
                    poll,
                    final_,
                    control_plane_independent,
                    demand,
                    detect_mult: NonZeroU8::new(mult).unwrap(),
                    my_discriminator: nz32(my),
                    your_discriminator: Some(nz32(your)),
                    desired_min_tx_us: intervals[0],
                    required_min_rx_us: intervals[1],
                    required_min_echo_rx_us: intervals[2],
                }
            })
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic_and_decoded_packets_reencode_stably(
            bytes in proptest::collection::vec(any::<u8>(), 0..64)
        ) {
            if let Ok(packet) = ControlPacket::decode(&bytes) {
                let again = ControlPacket::decode(&packet.encode());
                prop_assert_eq!(again, Ok(packet));
            }
        }

        #[test]
        fn valid_packets_round_trip(packet in any_packet()) {
            prop_assert_eq!(ControlPacket::decode(&packet.encode()), Ok(packet));
        }

        #[test]
        fn header_prefixed_noise_never_panics(
            tail in proptest::collection::vec(any::<u8>(), 0..40),
            flags in any::<u8>(),
            length in any::<u8>(),
        ) {
            // Valid version byte so the fuzz reaches the later rules, not just the version check.
            let mut bytes = vec![0x20, flags, 3, length];
            bytes.extend_from_slice(&tail);
            let _ = ControlPacket::decode(&bytes);
        }
    }
}
