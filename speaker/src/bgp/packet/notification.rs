//! NOTIFICATION message (RFC 4271 §4.5) with the error codes of §4.5/§6, RFC 4486 (Cease),
//! RFC 6608 (FSM) and RFC 7313 (ROUTE-REFRESH).

use bytes::{BufMut, BytesMut};

use super::{DecodeError, body_length};

/// Declares a subcode enum whose unknown values are kept (`Unassigned`), so decoding never loses
/// what the peer sent.
macro_rules! subcodes {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $value:literal,)* }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)*
            /// A value this implementation has no name for.
            Unassigned(u8),
        }

        impl From<u8> for $name {
            fn from(value: u8) -> Self {
                match value {
                    $($value => $name::$variant,)*
                    other => $name::Unassigned(other),
                }
            }
        }

        impl From<$name> for u8 {
            fn from(subcode: $name) -> u8 {
                match subcode {
                    $($name::$variant => $value,)*
                    $name::Unassigned(other) => other,
                }
            }
        }
    };
}

subcodes! {
    /// Message Header Error subcodes (RFC 4271 §4.5).
    HeaderSubcode {
        /// 0: RFC 4271 §6.2 "Unspecific".
        Unspecific = 0,
        /// 1: the marker is not all ones.
        ConnectionNotSynchronized = 1,
        /// 2: the Length field is out of range for the type; data carries it.
        BadMessageLength = 2,
        /// 3: unknown message type; data carries it.
        BadMessageType = 3,
    }
}

subcodes! {
    /// OPEN Message Error subcodes (RFC 4271 §4.5, RFC 5492 §5).
    OpenSubcode {
        /// 0: malformed optional parameter (RFC 4271 §6.2).
        Unspecific = 0,
        /// 1: data is the largest supported version.
        UnsupportedVersionNumber = 1,
        /// 2
        BadPeerAs = 2,
        /// 3
        BadBgpIdentifier = 3,
        /// 4
        UnsupportedOptionalParameter = 4,
        /// 6
        UnacceptableHoldTime = 6,
        /// 7: RFC 5492 §5.
        UnsupportedCapability = 7,
    }
}

subcodes! {
    /// UPDATE Message Error subcodes (RFC 4271 §4.5).
    UpdateSubcode {
        /// 0
        Unspecific = 0,
        /// 1
        MalformedAttributeList = 1,
        /// 2
        UnrecognizedWellKnownAttribute = 2,
        /// 3
        MissingWellKnownAttribute = 3,
        /// 4
        AttributeFlagsError = 4,
        /// 5
        AttributeLengthError = 5,
        /// 6
        InvalidOriginAttribute = 6,
        /// 8
        InvalidNextHopAttribute = 8,
        /// 9
        OptionalAttributeError = 9,
        /// 10
        InvalidNetworkField = 10,
        /// 11
        MalformedAsPath = 11,
    }
}

subcodes! {
    /// Finite State Machine Error subcodes (RFC 6608 §3).
    FsmSubcode {
        /// 0
        Unspecified = 0,
        /// 1
        UnexpectedMessageInOpenSent = 1,
        /// 2
        UnexpectedMessageInOpenConfirm = 2,
        /// 3
        UnexpectedMessageInEstablished = 3,
    }
}

subcodes! {
    /// Cease subcodes (RFC 4486 §4).
    CeaseSubcode {
        /// 1
        MaximumPrefixesReached = 1,
        /// 2
        AdministrativeShutdown = 2,
        /// 3
        PeerDeconfigured = 3,
        /// 4
        AdministrativeReset = 4,
        /// 5
        ConnectionRejected = 5,
        /// 6
        OtherConfigurationChange = 6,
        /// 7
        ConnectionCollisionResolution = 7,
        /// 8
        OutOfResources = 8,
        /// 10: the BFD session protecting the connection went down (RFC 9384 §2).
        BfdDown = 10,
    }
}

subcodes! {
    /// ROUTE-REFRESH Message Error subcodes (RFC 7313 §5).
    RouteRefreshSubcode {
        /// 1
        InvalidMessageLength = 1,
    }
}

/// Error code and subcode of a NOTIFICATION.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorCode {
    /// 1
    MessageHeader(HeaderSubcode),
    /// 2
    Open(OpenSubcode),
    /// 3
    Update(UpdateSubcode),
    /// 4, subcode 0.
    HoldTimerExpired,
    /// 5
    FiniteStateMachine(FsmSubcode),
    /// 6
    Cease(CeaseSubcode),
    /// 7
    RouteRefresh(RouteRefreshSubcode),
    /// A code this implementation has no name for, or code 4 with a nonzero subcode.
    Unassigned {
        /// Error code.
        code: u8,
        /// Error subcode.
        subcode: u8,
    },
}

impl ErrorCode {
    /// The (code, subcode) octets.
    pub fn to_wire(self) -> (u8, u8) {
        match self {
            ErrorCode::MessageHeader(s) => (1, s.into()),
            ErrorCode::Open(s) => (2, s.into()),
            ErrorCode::Update(s) => (3, s.into()),
            ErrorCode::HoldTimerExpired => (4, 0),
            ErrorCode::FiniteStateMachine(s) => (5, s.into()),
            ErrorCode::Cease(s) => (6, s.into()),
            ErrorCode::RouteRefresh(s) => (7, s.into()),
            ErrorCode::Unassigned { code, subcode } => (code, subcode),
        }
    }

    /// Names the (code, subcode) octets.
    pub fn from_wire(code: u8, subcode: u8) -> Self {
        match (code, subcode) {
            (1, s) => ErrorCode::MessageHeader(s.into()),
            (2, s) => ErrorCode::Open(s.into()),
            (3, s) => ErrorCode::Update(s.into()),
            (4, 0) => ErrorCode::HoldTimerExpired,
            (5, s) => ErrorCode::FiniteStateMachine(s.into()),
            (6, s) => ErrorCode::Cease(s.into()),
            (7, s) => ErrorCode::RouteRefresh(s.into()),
            (code, subcode) => ErrorCode::Unassigned { code, subcode },
        }
    }
}

/// An error report; the sender closes the connection right after it.
///
/// ```text
///  0                   1                   2                   3
///  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// | Error code    | Error subcode |   Data (variable)             |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notification {
    /// Code and subcode.
    pub code: ErrorCode,
    /// Diagnostic data whose meaning depends on the code (RFC 4271 §6; RFC 8203 shutdown text).
    pub data: Vec<u8>,
}

impl Notification {
    /// A NOTIFICATION without data.
    pub fn new(code: ErrorCode) -> Self {
        Notification {
            code,
            data: Vec::new(),
        }
    }

    /// A NOTIFICATION with diagnostic data.
    pub fn with_data(code: ErrorCode, data: Vec<u8>) -> Self {
        Notification { code, data }
    }

    pub(super) fn encode_body(&self, out: &mut BytesMut) {
        let (code, subcode) = self.code.to_wire();
        out.put_u8(code);
        out.put_u8(subcode);
        out.put_slice(&self.data);
    }
}

pub(super) fn decode(body: &[u8]) -> Result<Notification, DecodeError> {
    match body {
        [code, subcode, data @ ..] => Ok(Notification {
            code: ErrorCode::from_wire(*code, *subcode),
            data: data.to_vec(),
        }),
        _ => Err(DecodeError::BadMessageLength {
            length: body_length(body),
        }),
    }
}
