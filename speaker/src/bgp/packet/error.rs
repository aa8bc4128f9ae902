//! Decoding and encoding errors. Every [`DecodeError`] names the NOTIFICATION (code, subcode,
//! data) that RFC 4271 §6 requires the session to send before it closes the connection.

use super::BGP_VERSION;
use super::notification::{ErrorCode, HeaderSubcode, Notification, OpenSubcode, UpdateSubcode};

/// A received message that the session cannot accept. The session sends
/// [`DecodeError::notification`] and closes (RFC 4271 §6).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// 1/1: the header marker is not all ones.
    #[error("connection not synchronized: the header marker is not all ones")]
    ConnectionNotSynchronized,
    /// 1/2: the Length field is out of range for the message type.
    #[error("bad message length {length}")]
    BadMessageLength {
        /// The erroneous Length field.
        length: u16,
    },
    /// 1/3: unknown message type.
    #[error("bad message type {message_type}")]
    BadMessageType {
        /// The erroneous Type field.
        message_type: u8,
    },
    /// 2/1: the peer bid a version other than 4.
    #[error("unsupported BGP version {version}")]
    UnsupportedVersion {
        /// The version the peer bid.
        version: u8,
    },
    /// 2/0: the optional parameters overrun or underrun their announced length.
    #[error("malformed OPEN optional parameters: {reason}")]
    MalformedOptionalParameters {
        /// What was inconsistent.
        reason: &'static str,
    },
    /// 2/4: an optional parameter other than Capabilities (RFC 5492).
    #[error("unsupported OPEN optional parameter type {parameter_type}")]
    UnsupportedOptionalParameter {
        /// The parameter type.
        parameter_type: u8,
    },
    /// 2/0: a recognised capability with a malformed value (RFC 4271 §6.2: "If one of the
    /// Optional Parameters in the OPEN message is recognized, but is malformed, then the Error
    /// Subcode MUST be set to 0 (Unspecific).").
    #[error("malformed capability {code} of length {length}")]
    MalformedCapability {
        /// Capability code.
        code: u8,
        /// Capability length.
        length: usize,
    },
    /// 3/x: an UPDATE error that RFC 7606 handles by resetting the session.
    #[error("UPDATE: {0}")]
    Update(UpdateError),
}

impl DecodeError {
    /// The NOTIFICATION this error requires.
    pub fn notification(&self) -> Notification {
        match self {
            DecodeError::ConnectionNotSynchronized => Notification::new(ErrorCode::MessageHeader(
                HeaderSubcode::ConnectionNotSynchronized,
            )),
            // RFC 4271 §6.1: "The Data field MUST contain the erroneous Length field."
            DecodeError::BadMessageLength { length } => Notification::with_data(
                ErrorCode::MessageHeader(HeaderSubcode::BadMessageLength),
                length.to_be_bytes().to_vec(),
            ),
            DecodeError::BadMessageType { message_type } => Notification::with_data(
                ErrorCode::MessageHeader(HeaderSubcode::BadMessageType),
                vec![*message_type],
            ),
            // RFC 4271 §6.2: "The Data field is a 2-octet unsigned integer, which indicates the
            // largest, locally-supported version number less than the version the remote BGP
            // peer bid".
            DecodeError::UnsupportedVersion { .. } => Notification::with_data(
                ErrorCode::Open(OpenSubcode::UnsupportedVersionNumber),
                u16::from(BGP_VERSION).to_be_bytes().to_vec(),
            ),
            DecodeError::MalformedOptionalParameters { .. }
            | DecodeError::MalformedCapability { .. } => {
                Notification::new(ErrorCode::Open(OpenSubcode::Unspecific))
            }
            DecodeError::UnsupportedOptionalParameter { .. } => {
                Notification::new(ErrorCode::Open(OpenSubcode::UnsupportedOptionalParameter))
            }
            DecodeError::Update(error) => error.notification(),
        }
    }
}

/// An UPDATE Message Error (RFC 4271 §6.3). `attribute` fields hold the whole erroneous
/// attribute (type, length, value) because §6.3 puts exactly that in the NOTIFICATION data.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum UpdateError {
    /// 3/1.
    #[error("malformed attribute list: {reason}")]
    MalformedAttributeList {
        /// What was inconsistent.
        reason: &'static str,
    },
    /// 3/2.
    #[error("unrecognized well-known attribute {type_code}")]
    UnrecognizedWellKnownAttribute {
        /// Attribute type code.
        type_code: u8,
        /// The attribute.
        attribute: Vec<u8>,
    },
    /// 3/3.
    #[error("missing well-known attribute {type_code}")]
    MissingWellKnownAttribute {
        /// Attribute type code.
        type_code: u8,
    },
    /// 3/4.
    #[error("attribute flags conflict with attribute type {type_code}")]
    AttributeFlags {
        /// Attribute type code.
        type_code: u8,
        /// The attribute.
        attribute: Vec<u8>,
    },
    /// 3/5.
    #[error("attribute {type_code} has a wrong length")]
    AttributeLength {
        /// Attribute type code.
        type_code: u8,
        /// The attribute.
        attribute: Vec<u8>,
    },
    /// 3/6.
    #[error("invalid ORIGIN value")]
    InvalidOrigin {
        /// The attribute.
        attribute: Vec<u8>,
    },
    /// 3/8.
    #[error("invalid NEXT_HOP")]
    InvalidNextHop {
        /// The attribute.
        attribute: Vec<u8>,
    },
    /// 3/9.
    #[error("malformed optional attribute {type_code}: {reason}")]
    OptionalAttribute {
        /// Attribute type code.
        type_code: u8,
        /// What was wrong.
        reason: &'static str,
        /// The attribute.
        attribute: Vec<u8>,
    },
    /// 3/10.
    #[error("invalid network field: {reason}")]
    InvalidNetworkField {
        /// Which field.
        reason: &'static str,
    },
    /// 3/11.
    #[error("malformed AS_PATH")]
    MalformedAsPath {
        /// The attribute.
        attribute: Vec<u8>,
    },
}

impl UpdateError {
    /// The NOTIFICATION this error requires when it resets the session.
    pub fn notification(&self) -> Notification {
        let code = |subcode| ErrorCode::Update(subcode);
        match self {
            UpdateError::MalformedAttributeList { .. } => {
                Notification::new(code(UpdateSubcode::MalformedAttributeList))
            }
            UpdateError::UnrecognizedWellKnownAttribute { attribute, .. } => {
                Notification::with_data(
                    code(UpdateSubcode::UnrecognizedWellKnownAttribute),
                    attribute.clone(),
                )
            }
            // RFC 4271 §6.3: "The Data field MUST contain the Attribute Type Code of the missing,
            // well-known attribute."
            UpdateError::MissingWellKnownAttribute { type_code } => Notification::with_data(
                code(UpdateSubcode::MissingWellKnownAttribute),
                vec![*type_code],
            ),
            UpdateError::AttributeFlags { attribute, .. } => {
                Notification::with_data(code(UpdateSubcode::AttributeFlagsError), attribute.clone())
            }
            UpdateError::AttributeLength { attribute, .. } => Notification::with_data(
                code(UpdateSubcode::AttributeLengthError),
                attribute.clone(),
            ),
            UpdateError::InvalidOrigin { attribute } => Notification::with_data(
                code(UpdateSubcode::InvalidOriginAttribute),
                attribute.clone(),
            ),
            UpdateError::InvalidNextHop { attribute } => Notification::with_data(
                code(UpdateSubcode::InvalidNextHopAttribute),
                attribute.clone(),
            ),
            UpdateError::OptionalAttribute { attribute, .. } => Notification::with_data(
                code(UpdateSubcode::OptionalAttributeError),
                attribute.clone(),
            ),
            UpdateError::InvalidNetworkField { .. } => {
                Notification::new(code(UpdateSubcode::InvalidNetworkField))
            }
            // RFC 4271 §6.3: "The Data field is empty" is not said for AS_PATH; implementations
            // send no data, and the Error Subcode alone identifies the attribute.
            UpdateError::MalformedAsPath { .. } => {
                Notification::new(code(UpdateSubcode::MalformedAsPath))
            }
        }
    }
}

/// How RFC 7606 §2 says a malformed attribute is handled when it does not reset the session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Recovery {
    /// Every route the UPDATE announces is handled as withdrawn (RFC 7606 §2 "treat-as-withdraw").
    TreatAsWithdraw,
    /// The attribute is dropped and the UPDATE processed without it (RFC 7606 §2 "attribute
    /// discard").
    AttributeDiscard,
}

/// A malformed attribute that was dropped while decoding an UPDATE.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttributeError {
    /// What was wrong, with the NOTIFICATION code RFC 4271 would have used.
    pub error: UpdateError,
    /// What RFC 7606 says to do instead of resetting the session.
    pub recovery: Recovery,
}

/// A value the wire format cannot carry.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// Longer than the 4096-octet maximum.
    #[error("message type {message_type} would be {length} octets, more than 4096")]
    MessageTooLong {
        /// Message type code.
        message_type: u8,
        /// Encoded length.
        length: usize,
    },
    /// An attribute value longer than 65535 octets.
    #[error("attribute {type_code} value of {length} octets does not fit the length field")]
    AttributeTooLong {
        /// Attribute type code.
        type_code: u8,
        /// Value length.
        length: usize,
    },
    /// OPEN optional parameters longer than 255 octets (RFC 9072 is not negotiated).
    #[error("OPEN optional parameters of {length} octets exceed 255")]
    ParametersTooLong {
        /// Encoded length.
        length: usize,
    },
    /// A capability value longer than 255 octets.
    #[error("capability {code} value of {length} octets exceeds 255")]
    CapabilityTooLong {
        /// Capability code.
        code: u8,
        /// Value length.
        length: usize,
    },
    /// An AS_PATH segment of more than 255 ASNs, or an empty one.
    #[error("AS_PATH segment of {length} ASNs (1..=255 allowed)")]
    AsSegmentLength {
        /// Number of ASNs.
        length: usize,
    },
    /// A 4-octet ASN on a session that did not negotiate 4-octet AS (RFC 6793 needs AS4_PATH).
    #[error("AS {asn} needs the 4-octet AS capability")]
    AsnNeedsFourOctets {
        /// The ASN.
        asn: u32,
    },
    /// RFC 4724 §3: the restart time is a 12-bit field.
    #[error("graceful restart time {restart_time} s exceeds 4095")]
    RestartTimeOutOfRange {
        /// Seconds.
        restart_time: u16,
    },
}
