//! ROUTE-REFRESH message (RFC 2918 §3).

use bytes::{BufMut, BytesMut};

use super::{DecodeError, Family, body_length};

/// A request to re-send the Adj-RIB-Out of one address family.
///
/// ```text
///  0       7      15      23      31
/// +-------+-------+-------+-------+
/// |      AFI      | Res.  | SAFI  |
/// +-------+-------+-------+-------+
/// ```
/// RFC 7313 reuses the Reserved octet as a message subtype (0 = normal request).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RouteRefresh {
    /// The family whose routes are requested.
    pub family: Family,
    /// RFC 7313 §3 subtype: 0 request, 1 BoRR, 2 EoRR. RFC 2918: "Reserved ... SHOULD be set to 0
    /// by the sender and ignored by the receiver" — kept so decoding loses nothing.
    pub subtype: u8,
}

impl RouteRefresh {
    /// A plain RFC 2918 request for `family`.
    pub fn request(family: Family) -> Self {
        RouteRefresh { family, subtype: 0 }
    }

    pub(super) fn encode_body(&self, out: &mut BytesMut) {
        out.put_u16(self.family.afi);
        out.put_u8(self.subtype);
        out.put_u8(self.family.safi);
    }
}

pub(super) fn decode(body: &[u8]) -> Result<RouteRefresh, DecodeError> {
    match *body {
        [a0, a1, subtype, safi] => Ok(RouteRefresh {
            family: Family {
                afi: u16::from_be_bytes([a0, a1]),
                safi,
            },
            subtype,
        }),
        _ => Err(DecodeError::BadMessageLength {
            length: body_length(body),
        }),
    }
}
