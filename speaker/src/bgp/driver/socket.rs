//! TCP sockets of BGP sessions: listening and connecting sockets with TCP-MD5 (RFC 2385), source
//! address, TTL / hop limit (RFC 4271 §5.1.3 eBGP on a shared link; multihop), and the framing
//! that cuts the byte stream into messages (RFC 4271 §4.1).

use std::io;
use std::net::{IpAddr, SocketAddr};

use socket2::{Domain, Protocol, SockRef, Socket, Type};
use tokio::io::AsyncReadExt;
use tokio::net::tcp::OwnedReadHalf;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::mpsc;

use crate::bgp::fsm::ConnectionId;
use crate::bgp::packet::{DecodeError, HEADER_LEN, MAX_MESSAGE_LEN, frame_length};
use crate::sys;

/// Pending connections a listening socket queues.
const LISTEN_BACKLOG: i32 = 64;

/// Binds a listening socket (IPv6 sockets accept IPv6 only, so both families can listen on the
/// same port side by side).
pub(super) fn listen(address: SocketAddr) -> io::Result<TcpListener> {
    let socket = Socket::new(
        Domain::for_address(address),
        Type::STREAM,
        Some(Protocol::TCP),
    )?;
    if address.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&address.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    TcpListener::from_std(socket.into())
}

/// How to open a connection to one peer.
#[derive(Clone, Debug)]
pub(super) struct ConnectSpec {
    pub(super) peer: SocketAddr,
    pub(super) local: Option<IpAddr>,
    pub(super) password: Option<String>,
    pub(super) ttl: Option<u8>,
}

/// Opens a TCP connection to the peer: bound to the source address, with the TTL and the
/// TCP-MD5 key set before the SYN leaves.
pub(super) async fn connect(spec: ConnectSpec) -> io::Result<TcpStream> {
    let socket = Socket::new(
        Domain::for_address(spec.peer),
        Type::STREAM,
        Some(Protocol::TCP),
    )?;
    socket.set_nonblocking(true)?;
    if let Some(local) = spec.local {
        socket.bind(&SocketAddr::new(local, 0).into())?;
    }
    set_ttl(&SockRef::from(&socket), spec.peer.ip(), spec.ttl)?;
    if let Some(password) = &spec.password {
        sys::set_tcp_md5(&socket, spec.peer.ip(), password.as_bytes())?;
    }
    let stream = TcpSocket::from_std_stream(socket.into())
        .connect(spec.peer)
        .await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// Sets the TTL (IPv4) or unicast hop limit (IPv6) of packets to `peer`; `None` keeps the
/// kernel's default.
pub(super) fn set_ttl(socket: &SockRef<'_>, peer: IpAddr, ttl: Option<u8>) -> io::Result<()> {
    match (ttl, peer) {
        (None, _) => Ok(()),
        (Some(ttl), IpAddr::V4(_)) => socket.set_ttl_v4(u32::from(ttl)),
        (Some(hops), IpAddr::V6(_)) => socket.set_unicast_hops_v6(u32::from(hops)),
    }
}

/// What a connection's reader reports to its session.
#[derive(Debug)]
pub(super) enum ConnectionEvent {
    /// One whole message, header included, not yet decoded (the codec depends on the OPENs).
    Frame(ConnectionId, Vec<u8>),
    /// The header was invalid; the stream cannot be resynchronised and reading stopped.
    BadHeader(ConnectionId, DecodeError),
    /// The peer closed the connection or it failed.
    Closed(ConnectionId),
}

/// Reads messages until the connection ends: the 19-octet header first, then as many octets as
/// its Length field announces.
pub(super) async fn read_frames(
    id: ConnectionId,
    mut reader: OwnedReadHalf,
    events: mpsc::UnboundedSender<ConnectionEvent>,
) {
    let mut buf = vec![0u8; MAX_MESSAGE_LEN];
    loop {
        let event = match reader.read_exact(&mut buf[..HEADER_LEN]).await {
            Err(_) => ConnectionEvent::Closed(id),
            Ok(_) => match frame_length(&buf[..HEADER_LEN]) {
                Err(error) => ConnectionEvent::BadHeader(id, error),
                // Unreachable with a full header; treated like a broken stream.
                Ok(None) => ConnectionEvent::Closed(id),
                Ok(Some(length)) => match reader.read_exact(&mut buf[HEADER_LEN..length]).await {
                    Err(_) => ConnectionEvent::Closed(id),
                    Ok(_) => ConnectionEvent::Frame(id, buf[..length].to_vec()),
                },
            },
        };
        let last = !matches!(event, ConnectionEvent::Frame(..));
        if events.send(event).is_err() || last {
            return;
        }
    }
}
