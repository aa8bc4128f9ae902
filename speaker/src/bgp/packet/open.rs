//! OPEN message (RFC 4271 §4.2) and capabilities (RFC 5492, 4760, 2918, 4724, 6793).

use std::net::Ipv4Addr;

use bytes::{BufMut, BytesMut};

use super::reader::Reader;
use super::{BGP_VERSION, DecodeError, EncodeError, Family};

/// RFC 6793 §9: the 2-octet placeholder for an ASN that needs four octets.
pub const AS_TRANS: u16 = 23456;

/// Optional parameter type for capabilities (RFC 5492 §4).
const PARAM_CAPABILITIES: u8 = 2;

const CAP_MULTIPROTOCOL: u8 = 1;
const CAP_ROUTE_REFRESH: u8 = 2;
const CAP_GRACEFUL_RESTART: u8 = 64;
const CAP_FOUR_OCTET_AS: u8 = 65;

/// The first message of a session.
///
/// ```text
///  0                   1                   2                   3
///  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
/// +-+-+-+-+-+-+-+-+
/// |    Version    |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |     My Autonomous System      |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |           Hold Time           |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                         BGP Identifier                        |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// | Opt Parm Len  |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |             Optional Parameters (variable)                    |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// ```
/// The version is always 4: any other fails decoding with 2/1.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Open {
    /// The sender's AS, or [`AS_TRANS`] when it needs four octets (RFC 6793 §3).
    pub my_as: u16,
    /// Proposed hold time in seconds.
    pub hold_time: u16,
    /// The sender's BGP Identifier.
    pub bgp_identifier: Ipv4Addr,
    /// Optional parameters as sent (BIRD groups all capabilities in one, FRR and GoBGP send
    /// one parameter per capability); [`Open::capabilities`] flattens them.
    pub parameters: Vec<OptionalParameter>,
}

/// One Capabilities optional parameter (RFC 5492 §4); other parameter types fail decoding with 2/4.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OptionalParameter {
    /// The capabilities it carries.
    pub capabilities: Vec<Capability>,
}

/// One capability (RFC 5492 §4).
///
/// ```text
/// +------------------------------+
/// | Capability Code (1 octet)    |
/// +------------------------------+
/// | Capability Length (1 octet)  |
/// +------------------------------+
/// | Capability Value (variable)  |
/// +------------------------------+
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Capability {
    /// Code 1, RFC 4760 §8: AFI (2), Reserved (1), SAFI (1).
    Multiprotocol(Family),
    /// Code 2, RFC 2918 §2: no value.
    RouteRefresh,
    /// Code 64, RFC 4724 §3.
    GracefulRestart(GracefulRestart),
    /// Code 65, RFC 6793 §3: the sender's 4-octet ASN.
    FourOctetAs(u32),
    /// Any other capability, kept as received.
    Unknown {
        /// Capability code.
        code: u8,
        /// Capability value.
        value: Vec<u8>,
    },
}

/// Graceful restart capability value (RFC 4724 §3, N bit of RFC 8538 §2).
///
/// ```text
/// +--------------------------------------------------+
/// | Restart Flags (4 bits)                           |
/// +--------------------------------------------------+
/// | Restart Time in seconds (12 bits)                |
/// +--------------------------------------------------+
/// | Address Family Identifier (16 bits)              |
/// +--------------------------------------------------+
/// | Subsequent Address Family Identifier (8 bits)    |
/// +--------------------------------------------------+
/// | Flags for Address Family (8 bits)                |
/// +--------------------------------------------------+
/// | ...                                              |
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GracefulRestart {
    /// R bit: the sender has restarted.
    pub restarting: bool,
    /// N bit (RFC 8538): the sender supports graceful restart for NOTIFICATIONs.
    pub notification: bool,
    /// Seconds the peer should keep our routes while we restart (0..=4095).
    pub restart_time: u16,
    /// Families whose routes the sender preserves.
    pub families: Vec<GracefulRestartFamily>,
}

/// One <AFI, SAFI, Flags> tuple of the graceful restart capability.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GracefulRestartFamily {
    /// The family.
    pub family: Family,
    /// F bit: forwarding state was preserved across the restart.
    pub forwarding_preserved: bool,
}

const GR_RESTARTING: u8 = 0x80;
const GR_NOTIFICATION: u8 = 0x40;
const GR_FORWARDING: u8 = 0x80;

impl Open {
    /// An OPEN for `asn` in one Capabilities parameter; `my_as` is [`AS_TRANS`] when `asn` needs
    /// four octets (RFC 6793 §3: "a NEW BGP speaker ... MUST place the AS_TRANS in the My
    /// Autonomous System field").
    pub fn new(
        asn: u32,
        hold_time: u16,
        bgp_identifier: Ipv4Addr,
        capabilities: Vec<Capability>,
    ) -> Self {
        Open {
            my_as: u16::try_from(asn).unwrap_or(AS_TRANS),
            hold_time,
            bgp_identifier,
            parameters: vec![OptionalParameter { capabilities }],
        }
    }

    /// All capabilities, in the order sent.
    pub fn capabilities(&self) -> impl Iterator<Item = &Capability> {
        self.parameters.iter().flat_map(|p| p.capabilities.iter())
    }

    /// The 4-octet ASN capability value, if advertised.
    pub fn four_octet_as(&self) -> Option<u32> {
        self.capabilities().find_map(|c| match c {
            Capability::FourOctetAs(asn) => Some(*asn),
            _ => None,
        })
    }

    /// The sender's AS: RFC 6793 §4.1, the capability value when present, else My AS.
    pub fn asn(&self) -> u32 {
        self.four_octet_as().unwrap_or(u32::from(self.my_as))
    }

    pub(super) fn encode_body(&self, out: &mut BytesMut) -> Result<(), EncodeError> {
        out.put_u8(BGP_VERSION);
        out.put_u16(self.my_as);
        out.put_u16(self.hold_time);
        out.put_slice(&self.bgp_identifier.octets());
        let mut params = Vec::new();
        for parameter in &self.parameters {
            let mut value = Vec::new();
            for capability in &parameter.capabilities {
                capability.encode(&mut value)?;
            }
            params.push(PARAM_CAPABILITIES);
            params.push(
                u8::try_from(value.len()).map_err(|_| EncodeError::ParametersTooLong {
                    length: value.len(),
                })?,
            );
            params.extend_from_slice(&value);
        }
        out.put_u8(
            u8::try_from(params.len()).map_err(|_| EncodeError::ParametersTooLong {
                length: params.len(),
            })?,
        );
        out.put_slice(&params);
        Ok(())
    }
}

impl Capability {
    fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let (code, value) = match self {
            Capability::Multiprotocol(family) => {
                let [a0, a1] = family.afi.to_be_bytes();
                (CAP_MULTIPROTOCOL, vec![a0, a1, 0, family.safi])
            }
            Capability::RouteRefresh => (CAP_ROUTE_REFRESH, Vec::new()),
            Capability::GracefulRestart(gr) => {
                if gr.restart_time > 0x0fff {
                    return Err(EncodeError::RestartTimeOutOfRange {
                        restart_time: gr.restart_time,
                    });
                }
                let mut flags_time = gr.restart_time;
                if gr.restarting {
                    flags_time |= u16::from(GR_RESTARTING) << 8;
                }
                if gr.notification {
                    flags_time |= u16::from(GR_NOTIFICATION) << 8;
                }
                let mut value = flags_time.to_be_bytes().to_vec();
                for f in &gr.families {
                    value.extend_from_slice(&f.family.afi.to_be_bytes());
                    value.push(f.family.safi);
                    value.push(if f.forwarding_preserved {
                        GR_FORWARDING
                    } else {
                        0
                    });
                }
                (CAP_GRACEFUL_RESTART, value)
            }
            Capability::FourOctetAs(asn) => (CAP_FOUR_OCTET_AS, asn.to_be_bytes().to_vec()),
            Capability::Unknown { code, value } => (*code, value.clone()),
        };
        out.push(code);
        out.push(
            u8::try_from(value.len()).map_err(|_| EncodeError::CapabilityTooLong {
                code,
                length: value.len(),
            })?,
        );
        out.extend_from_slice(&value);
        Ok(())
    }

    fn decode(code: u8, value: &[u8]) -> Result<Capability, DecodeError> {
        let malformed = DecodeError::MalformedCapability {
            code,
            length: value.len(),
        };
        Ok(match (code, value) {
            (CAP_MULTIPROTOCOL, &[a0, a1, _reserved, safi]) => Capability::Multiprotocol(Family {
                afi: u16::from_be_bytes([a0, a1]),
                safi,
            }),
            (CAP_ROUTE_REFRESH, []) => Capability::RouteRefresh,
            (CAP_FOUR_OCTET_AS, &[a, b, c, d]) => {
                Capability::FourOctetAs(u32::from_be_bytes([a, b, c, d]))
            }
            (CAP_GRACEFUL_RESTART, [f0, f1, tuples @ ..]) if tuples.len().is_multiple_of(4) => {
                let flags_time = u16::from_be_bytes([*f0, *f1]);
                let families = tuples
                    .chunks_exact(4)
                    .map(|t| GracefulRestartFamily {
                        family: Family {
                            afi: u16::from_be_bytes([t[0], t[1]]),
                            safi: t[2],
                        },
                        forwarding_preserved: t[3] & GR_FORWARDING != 0,
                    })
                    .collect();
                Capability::GracefulRestart(GracefulRestart {
                    restarting: f0 & GR_RESTARTING != 0,
                    notification: f0 & GR_NOTIFICATION != 0,
                    restart_time: flags_time & 0x0fff,
                    families,
                })
            }
            (
                CAP_MULTIPROTOCOL | CAP_ROUTE_REFRESH | CAP_FOUR_OCTET_AS | CAP_GRACEFUL_RESTART,
                _,
            ) => {
                return Err(malformed);
            }
            (code, value) => Capability::Unknown {
                code,
                value: value.to_vec(),
            },
        })
    }
}

pub(super) fn decode(body: &[u8]) -> Result<Open, DecodeError> {
    let mut r = Reader::new(body);
    let truncated = DecodeError::MalformedOptionalParameters {
        reason: "OPEN body truncated",
    };
    let version = r.u8().ok_or_else(|| truncated.clone())?;
    // RFC 4271 §6.2: "If the version number in the Version field of the received OPEN message is
    // not supported, then the Error Subcode MUST be set to Unsupported Version Number."
    if version != BGP_VERSION {
        return Err(DecodeError::UnsupportedVersion { version });
    }
    let my_as = r.u16().ok_or_else(|| truncated.clone())?;
    let hold_time = r.u16().ok_or_else(|| truncated.clone())?;
    let bgp_identifier = r.ipv4().ok_or_else(|| truncated.clone())?;
    let params_len = r.u8().ok_or(truncated)?;
    if usize::from(params_len) != r.remaining() {
        return Err(DecodeError::MalformedOptionalParameters {
            reason: "Opt Parm Len disagrees with the message length",
        });
    }
    let mut parameters = Vec::new();
    while !r.is_empty() {
        let overrun = DecodeError::MalformedOptionalParameters {
            reason: "optional parameter overruns Opt Parm Len",
        };
        let parameter_type = r.u8().ok_or_else(|| overrun.clone())?;
        let length = r.u8().ok_or_else(|| overrun.clone())?;
        let value = r.take(usize::from(length)).ok_or(overrun)?;
        // RFC 4271 §6.2: "If one of the Optional Parameters in the OPEN message is not
        // recognized, then the Error Subcode MUST be set to Unsupported Optional Parameters."
        if parameter_type != PARAM_CAPABILITIES {
            return Err(DecodeError::UnsupportedOptionalParameter { parameter_type });
        }
        parameters.push(OptionalParameter {
            capabilities: decode_capabilities(value)?,
        });
    }
    Ok(Open {
        my_as,
        hold_time,
        bgp_identifier,
        parameters,
    })
}

fn decode_capabilities(value: &[u8]) -> Result<Vec<Capability>, DecodeError> {
    let mut r = Reader::new(value);
    let mut capabilities = Vec::new();
    while !r.is_empty() {
        let code = r.u8().unwrap_or_default();
        let overrun = DecodeError::MalformedCapability {
            code,
            length: r.remaining(),
        };
        let length = r.u8().ok_or_else(|| overrun.clone())?;
        let value = r.take(usize::from(length)).ok_or(overrun)?;
        capabilities.push(Capability::decode(code, value)?);
    }
    Ok(capabilities)
}
