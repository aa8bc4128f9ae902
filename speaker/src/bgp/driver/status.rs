//! What a peer's session looks like from outside: the RFC 4271 state, since when, how many
//! prefixes the peer holds from us, and the last error in words (NOTIFICATIONs decoded).

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use super::BfdPeerStatus;
use crate::bfd::packet::Diagnostic;
use crate::bgp::fsm::{SessionError, State};
use crate::bgp::packet::{CeaseSubcode, ErrorCode, Notification};
use crate::bgp::rib_out::RibOutError;

/// One peer's session, published on a watch channel after every event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerStatus {
    /// The session state (RFC 4271 §8.2.2).
    pub state: State,
    /// When the session entered `state`.
    pub since: SystemTime,
    /// Prefixes the peer has been sent and not withdrawn, this session.
    pub prefixes_sent: usize,
    /// Whether End-of-RIB went out after the initial sync (RFC 4724 §2).
    pub end_of_rib_sent: bool,
    /// UPDATE messages written to the peer since the peer was added, across sessions
    /// (End-of-RIB markers included: they are UPDATEs on the wire).
    pub updates_sent: u64,
    /// Why the last attempt or session failed.
    pub last_error: Option<PeerError>,
    /// The BFD session protecting this one, when configured.
    pub bfd: Option<BfdPeerStatus>,
}

impl PeerStatus {
    pub(crate) fn new() -> Self {
        PeerStatus {
            state: State::Idle,
            since: SystemTime::now(),
            prefixes_sent: 0,
            end_of_rib_sent: false,
            updates_sent: 0,
            last_error: None,
            bfd: None,
        }
    }

    /// The state's name as RFC 4271 §8.2.2 spells it.
    pub fn state_name(&self) -> &'static str {
        match self.state {
            State::Idle => "Idle",
            State::Connect => "Connect",
            State::Active => "Active",
            State::OpenSent => "OpenSent",
            State::OpenConfirm => "OpenConfirm",
            State::Established => "Established",
        }
    }
}

/// Why a peer's session attempt or session failed, in terms an operator can act on.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PeerError {
    /// The TCP connection attempt failed.
    #[error("TCP connection to {peer} failed: {detail}")]
    Connect {
        /// The peer.
        peer: SocketAddr,
        /// The OS error kind.
        kind: io::ErrorKind,
        /// The OS error text.
        detail: String,
    },
    /// The TCP connection attempt was not answered before the ConnectRetry timer fired.
    #[error(
        "no TCP connection to {peer} within {after:?}: the peer is down or unreachable, or the \
         TCP-MD5 passwords differ (the kernel drops unsigned or wrongly signed segments)"
    )]
    ConnectTimeout {
        /// The peer.
        peer: SocketAddr,
        /// How long the attempt ran.
        after: Duration,
    },
    /// The peer sent a NOTIFICATION.
    #[error("NOTIFICATION received: {text}")]
    NotificationReceived {
        /// Code, subcode and data in words.
        text: String,
    },
    /// This speaker sent a NOTIFICATION.
    #[error("NOTIFICATION sent: {text}")]
    NotificationSent {
        /// Code, subcode and data in words.
        text: String,
    },
    /// The session ended for another reason.
    #[error("{0}")]
    Session(SessionError),
    /// The routes cannot be announced on this session.
    #[error("cannot announce routes: {0}")]
    Routes(RibOutError),
    /// BFD reported the forwarding path down and the session was closed for it (RFC 5882 §3.2).
    #[error("BFD session down ({diag:?}): BGP session closed")]
    BfdDown {
        /// The BFD diagnostic of the change (RFC 5880 §4.1).
        diag: Diagnostic,
    },
    /// The BFD session could not be set up or changed.
    #[error("BFD: {detail}")]
    Bfd {
        /// What failed.
        detail: String,
    },
    /// Writing to the connection failed.
    #[error("writing to {peer} failed: {detail}")]
    Write {
        /// The peer.
        peer: SocketAddr,
        /// What failed.
        detail: String,
    },
}

impl PeerError {
    pub(super) fn from_session(error: &SessionError) -> Self {
        match error {
            SessionError::NotificationReceived(notification) => PeerError::NotificationReceived {
                text: notification_text(notification),
            },
            other => PeerError::Session(other.clone()),
        }
    }
}

/// A NOTIFICATION in words: code and subcode as named by RFC 4271 §4.5 and RFC 4486, with the
/// RFC 8203 shutdown communication when the peer sent one, otherwise the data in hex.
pub fn notification_text(notification: &Notification) -> String {
    let (code, subcode) = notification.code.to_wire();
    let name = format!("{:?}", notification.code);
    let shutdown = matches!(
        notification.code,
        ErrorCode::Cease(CeaseSubcode::AdministrativeShutdown | CeaseSubcode::AdministrativeReset)
    );
    let data = &notification.data;
    let detail = match data.split_first() {
        None => String::new(),
        // RFC 8203 §2: a length octet, then that many octets of UTF-8.
        Some((&len, text)) if shutdown && usize::from(len) == text.len() => {
            format!(": \"{}\"", String::from_utf8_lossy(text))
        }
        Some(_) => {
            let hex: String = data.iter().map(|b| format!("{b:02x}")).collect();
            format!(", data {hex}")
        }
    };
    format!("{name} ({code}/{subcode}){detail}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bgp::packet::OpenSubcode;

    #[test]
    fn shutdown_communication_is_shown_as_text() {
        let mut data = vec![11];
        data.extend_from_slice(b"maintenance");
        let text = notification_text(&Notification::with_data(
            ErrorCode::Cease(CeaseSubcode::AdministrativeShutdown),
            data,
        ));
        assert_eq!(text, "Cease(AdministrativeShutdown) (6/2): \"maintenance\"");
    }

    #[test]
    fn other_notification_data_is_shown_in_hex() {
        let text = notification_text(&Notification::with_data(
            ErrorCode::Open(OpenSubcode::BadPeerAs),
            vec![0xfb, 0xf4],
        ));
        assert_eq!(text, "Open(BadPeerAs) (2/2), data fbf4");
    }
}
