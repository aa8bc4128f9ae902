//! BGP-4 wire codec (RFC 4271 §4, with RFC 4760, 5492, 6793, 2918, 4724, 1997, 8092, 7606).
//!
//! Contract: [`decode`] takes exactly one message (as delimited by [`frame_length`]) and returns a
//! typed [`Message`] or a [`DecodeError`] whose [`DecodeError::notification`] is the NOTIFICATION
//! the session must send before closing. UPDATE attribute errors that RFC 7606 downgrades to
//! "treat-as-withdraw" or "attribute discard" do not fail decoding: they are listed in
//! [`Update::malformed`]. [`Message::encode`] is the inverse for every value it accepts.
//! Extended messages (RFC 8654) are not negotiated, so no message exceeds 4096 octets.

mod error;
mod notification;
mod open;
mod reader;
mod route_refresh;
mod update;

#[cfg(test)]
mod tests;

use bytes::{BufMut, BytesMut};

pub use error::{AttributeError, DecodeError, EncodeError, Recovery, UpdateError};
pub use notification::{
    CeaseSubcode, ErrorCode, FsmSubcode, HeaderSubcode, Notification, OpenSubcode,
    RouteRefreshSubcode, UpdateSubcode,
};
pub use open::{
    AS_TRANS, Capability, GracefulRestart, GracefulRestartFamily, Open, OptionalParameter,
};
pub use route_refresh::RouteRefresh;
pub(crate) use update::WirePrefix;
pub use update::{
    Aggregator, AsPath, AsSegment, AsSegmentKind, Community, LargeCommunity, MpReach, MpUnreach,
    Origin, PathAttribute, RawAttribute, Update,
};

/// Length of the fixed header: marker (16), length (2), type (1).
pub const HEADER_LEN: usize = 19;
/// RFC 4271 §4.1: "The value of the Length field MUST always be at least 19 and no greater
/// than 4096".
pub const MAX_MESSAGE_LEN: usize = 4096;
/// The only BGP version spoken (RFC 4271 §4.2).
pub const BGP_VERSION: u8 = 4;

const MARKER: [u8; 16] = [0xff; 16];

/// Message type codes (RFC 4271 §4.1, RFC 2918 §3).
const TYPE_OPEN: u8 = 1;
const TYPE_UPDATE: u8 = 2;
const TYPE_NOTIFICATION: u8 = 3;
const TYPE_KEEPALIVE: u8 = 4;
const TYPE_ROUTE_REFRESH: u8 = 5;

/// An address family as carried by MP-BGP (RFC 4760 §3 AFI, §6 SAFI) and by capabilities.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Family {
    /// Address Family Identifier (IANA: 1 IPv4, 2 IPv6).
    pub afi: u16,
    /// Subsequent Address Family Identifier (IANA: 1 unicast).
    pub safi: u8,
}

impl Family {
    /// IPv4 unicast.
    pub const IPV4_UNICAST: Family = Family { afi: 1, safi: 1 };
    /// IPv6 unicast.
    pub const IPV6_UNICAST: Family = Family { afi: 2, safi: 1 };
}

/// What the two speakers agreed at OPEN that changes the wire format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Codec {
    /// RFC 6793 §4: AS numbers in AS_PATH and AGGREGATOR are four octets once both sides
    /// advertised the capability; two octets otherwise.
    pub four_octet_as: bool,
}

impl Codec {
    /// The format of a session where both sides advertised 4-octet AS support (always true with
    /// BIRD, FRR and GoBGP).
    pub const FOUR_OCTET_AS: Codec = Codec {
        four_octet_as: true,
    };
}

/// One BGP message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// RFC 4271 §4.2.
    Open(Open),
    /// RFC 4271 §4.3.
    Update(Update),
    /// RFC 4271 §4.5.
    Notification(Notification),
    /// RFC 4271 §4.4: the header alone.
    Keepalive,
    /// RFC 2918 §3.
    RouteRefresh(RouteRefresh),
}

/// Checks the fixed header at the start of `buf` and returns the length of the whole message,
/// or `None` until 19 octets are there. The driver reads that many octets and calls [`decode`].
///
/// ```text
///  0                   1                   2                   3
///  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                                                               |
/// +                                                               +
/// |                           Marker                              |
/// +                                                               +
/// |                                                               |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |          Length               |      Type     |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// ```
pub fn frame_length(buf: &[u8]) -> Result<Option<usize>, DecodeError> {
    if buf.len() < HEADER_LEN {
        return Ok(None);
    }
    // RFC 4271 §6.1: "If the Marker field of the message header is not as expected, then a
    // synchronization error has occurred and the Error Subcode MUST be set to Connection Not
    // Synchronized."
    if buf[..16] != MARKER {
        return Err(DecodeError::ConnectionNotSynchronized);
    }
    let length = u16::from_be_bytes([buf[16], buf[17]]);
    let message_type = buf[18];
    // RFC 4271 §6.1: the Length field is erroneous if it is "less than 19 or greater than
    // 4096", or too short or too long for the message type.
    let (min, max) = match message_type {
        TYPE_OPEN => (29, MAX_MESSAGE_LEN),
        TYPE_UPDATE => (23, MAX_MESSAGE_LEN),
        TYPE_NOTIFICATION => (21, MAX_MESSAGE_LEN),
        TYPE_KEEPALIVE => (HEADER_LEN, HEADER_LEN),
        // RFC 2918 §3: the message is the header plus AFI (2), Reserved (1), SAFI (1).
        TYPE_ROUTE_REFRESH => (23, 23),
        // RFC 4271 §6.1: "If the Type field of the message header is not recognized, then the
        // Error Subcode MUST be set to Bad Message Type. The Data field MUST contain the
        // erroneous Type field."
        _ if (HEADER_LEN..=MAX_MESSAGE_LEN).contains(&usize::from(length)) => {
            return Err(DecodeError::BadMessageType { message_type });
        }
        _ => (HEADER_LEN, MAX_MESSAGE_LEN),
    };
    if !(min..=max).contains(&usize::from(length)) {
        return Err(DecodeError::BadMessageLength { length });
    }
    Ok(Some(usize::from(length)))
}

/// The Length field value of a message with this body, for Bad Message Length data.
fn body_length(body: &[u8]) -> u16 {
    u16::try_from(body.len() + HEADER_LEN).unwrap_or(u16::MAX)
}

/// Decodes exactly one message; `buf` must be the whole message, header included.
pub fn decode(buf: &[u8], codec: Codec) -> Result<Message, DecodeError> {
    let short = DecodeError::BadMessageLength {
        length: u16::try_from(buf.len()).unwrap_or(u16::MAX),
    };
    let length = frame_length(buf)?.ok_or_else(|| short.clone())?;
    if buf.len() != length {
        // The framing layer handed over a different number of octets than the header announces.
        return Err(short);
    }
    let body = &buf[HEADER_LEN..];
    match buf[18] {
        TYPE_OPEN => open::decode(body).map(Message::Open),
        TYPE_UPDATE => update::decode(body, codec).map(Message::Update),
        TYPE_NOTIFICATION => notification::decode(body).map(Message::Notification),
        TYPE_KEEPALIVE => Ok(Message::Keepalive),
        TYPE_ROUTE_REFRESH => route_refresh::decode(body).map(Message::RouteRefresh),
        message_type => Err(DecodeError::BadMessageType { message_type }),
    }
}

impl Message {
    /// Encodes the message with its header. Fails only for values the wire cannot carry, such as
    /// a message longer than 4096 octets.
    pub fn encode(&self, codec: Codec) -> Result<BytesMut, EncodeError> {
        let mut out = BytesMut::with_capacity(64);
        out.put_slice(&MARKER);
        out.put_u16(0); // patched below
        let message_type = match self {
            Message::Open(open) => {
                out.put_u8(TYPE_OPEN);
                open.encode_body(&mut out)?;
                TYPE_OPEN
            }
            Message::Update(update) => {
                out.put_u8(TYPE_UPDATE);
                update.encode_body(&mut out, codec)?;
                TYPE_UPDATE
            }
            Message::Notification(notification) => {
                out.put_u8(TYPE_NOTIFICATION);
                notification.encode_body(&mut out);
                TYPE_NOTIFICATION
            }
            Message::Keepalive => {
                out.put_u8(TYPE_KEEPALIVE);
                TYPE_KEEPALIVE
            }
            Message::RouteRefresh(refresh) => {
                out.put_u8(TYPE_ROUTE_REFRESH);
                refresh.encode_body(&mut out);
                TYPE_ROUTE_REFRESH
            }
        };
        let length = out.len();
        if length > MAX_MESSAGE_LEN {
            return Err(EncodeError::MessageTooLong {
                message_type,
                length,
            });
        }
        let [hi, lo] = u16::try_from(length)
            .map_err(|_| EncodeError::MessageTooLong {
                message_type,
                length,
            })?
            .to_be_bytes();
        out[16] = hi;
        out[17] = lo;
        Ok(out)
    }
}
