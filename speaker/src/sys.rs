//! The speaker's only `unsafe` code: socket options, socket addresses and registrations that
//! neither `socket2`, `nix` nor tokio offer safely. Every `unsafe` block carries a `// SAFETY:`
//! note; the rest of the crate stays under `deny(unsafe_code)`.
//!
//! - `TCP_MD5SIG` (RFC 2385, Linux `tcp(7)`): installs a TCP-MD5 key for one peer address on a
//!   socket. On a listening socket the key covers the connections accepted from that peer; on a
//!   connecting socket it signs the SYN. The kernel then drops every segment from that peer whose
//!   signature does not verify, so a password mismatch keeps the connection from ever forming.
//! - `sockaddr_ll` (packet(7)): the address that binds the layer-2 driver's AF_PACKET sockets to
//!   one interface and EtherType.
//! - tokio registration of sockets tokio has no type for (the layer-2 driver's packet and
//!   netlink sockets).
//! - jemalloc's options (`malloc_conf`, jemalloc(3)): an exported C string it reads at start-up.
#![allow(unsafe_code)]

use std::ffi::CStr;
use std::io;
use std::mem::size_of;
use std::net::IpAddr;
use std::os::fd::{AsFd, AsRawFd};

use socket2::{SockAddr, Socket, socklen_t};
use tokio::io::unix::AsyncFd;

// ---------------------------------------------------------------------------------------------
// TCP-MD5 (BGP sessions)
// ---------------------------------------------------------------------------------------------

/// `TCP_MD5SIG_MAXKEYLEN` from `<linux/tcp.h>`.
pub const TCP_MD5_MAX_KEY_LEN: usize = 80;

/// Size of `struct __kernel_sockaddr_storage`.
const SOCKADDR_STORAGE_LEN: usize = 128;

/// `struct tcp_md5sig` from `<linux/tcp.h>` (216 octets, aligned like `sockaddr_storage`).
#[repr(C, align(8))]
struct TcpMd5Sig {
    /// `struct __kernel_sockaddr_storage tcpm_addr`: the peer, as a `sockaddr_in` or `sockaddr_in6`.
    addr: [u8; SOCKADDR_STORAGE_LEN],
    flags: u8,
    prefix_len: u8,
    key_len: u16,
    ifindex: i32,
    key: [u8; TCP_MD5_MAX_KEY_LEN],
}

/// Installs `key` for connections with `peer` on `socket` (RFC 2385). An empty key removes it.
pub fn set_tcp_md5(socket: &impl AsFd, peer: IpAddr, key: &[u8]) -> io::Result<()> {
    if key.len() > TCP_MD5_MAX_KEY_LEN {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "TCP-MD5 key of {} octets exceeds {TCP_MD5_MAX_KEY_LEN}",
                key.len()
            ),
        ));
    }
    let mut sig = TcpMd5Sig {
        addr: [0; SOCKADDR_STORAGE_LEN],
        flags: 0,
        prefix_len: 0,
        key_len: u16::try_from(key.len()).unwrap_or(u16::MAX),
        ifindex: 0,
        key: [0; TCP_MD5_MAX_KEY_LEN],
    };
    sig.key[..key.len()].copy_from_slice(key);
    // sockaddr_in / sockaddr_in6: family in host order, port (unused: 0), then the address
    // (after sin6_flowinfo for IPv6).
    match peer {
        IpAddr::V4(v4) => {
            let family = u16::try_from(libc::AF_INET).unwrap_or_default();
            sig.addr[..2].copy_from_slice(&family.to_ne_bytes());
            sig.addr[4..8].copy_from_slice(&v4.octets());
        }
        IpAddr::V6(v6) => {
            let family = u16::try_from(libc::AF_INET6).unwrap_or_default();
            sig.addr[..2].copy_from_slice(&family.to_ne_bytes());
            sig.addr[8..24].copy_from_slice(&v6.octets());
        }
    }
    let len = libc::socklen_t::try_from(size_of::<TcpMd5Sig>()).unwrap_or(libc::socklen_t::MAX);
    // SAFETY: the descriptor is open for the duration of the borrow; `sig` is a fully
    // initialised `struct tcp_md5sig` with the kernel's layout, and `len` is its exact size, so
    // the kernel reads only memory we own.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_fd().as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_MD5SIG,
            (&raw const sig).cast(),
            len,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

// ---------------------------------------------------------------------------------------------
// tokio registration of sockets tokio has no type for (layer-2 driver's packet sockets)
// ---------------------------------------------------------------------------------------------

/// Registers `socket` with the current tokio reactor. tokio 1.54 made registration `unsafe`
/// (`AsyncFd::new` is deprecated as unsound for arbitrary `AsRawFd` types); a socket2 `Socket`
/// meets its contract. Must be called inside a tokio runtime.
pub fn async_socket(socket: Socket) -> io::Result<AsyncFd<Socket>> {
    // SAFETY: `Socket` owns its file descriptor (an `OwnedFd` inside): the descriptor is valid and
    // open, `as_raw_fd` returns that same descriptor on every call, and it is closed only when the
    // `Socket` is dropped, which happens after the `AsyncFd` that owns it deregisters it.
    unsafe { AsyncFd::register(socket) }.map_err(io::Error::from)
}

// ---------------------------------------------------------------------------------------------
// AF_PACKET link-layer addresses (layer-2 driver)
// ---------------------------------------------------------------------------------------------

/// The `sockaddr_ll` (packet(7)) that binds an AF_PACKET socket to interface `ifindex` and
/// EtherType `ethertype` (host byte order). socket2 has no constructor for link-layer addresses
/// and nix's `LinkAddr` can only be read, so this one is written by hand.
pub fn packet_bind_address(ifindex: u32, ethertype: u16) -> io::Result<SockAddr> {
    let ifindex = libc::c_int::try_from(ifindex).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("interface index {ifindex} out of range"),
        )
    })?;
    let address = libc::sockaddr_ll {
        sll_family: libc::AF_PACKET as libc::c_ushort,
        // packet(7): "sll_protocol is the standard ethernet protocol type in network byte order".
        sll_protocol: ethertype.to_be(),
        sll_ifindex: ifindex,
        sll_hatype: 0,
        sll_pkttype: 0,
        sll_halen: 0,
        sll_addr: [0; 8],
    };
    // SAFETY: `try_init` hands the closure a zeroed `sockaddr_storage` (128 bytes, aligned for
    // every socket address type) and its length. A `sockaddr_ll` (20 bytes) fits into it; the
    // closure writes exactly one fully initialised `sockaddr_ll` at its start and reports that
    // size, so the resulting `SockAddr` covers only initialised bytes of the right family.
    let ((), address) = unsafe {
        SockAddr::try_init(|storage, len| {
            storage.cast::<libc::sockaddr_ll>().write(address);
            *len = size_of::<libc::sockaddr_ll>() as socklen_t;
            Ok(())
        })
    }?;
    Ok(address)
}

// ---------------------------------------------------------------------------------------------
// Memory: jemalloc, handing freed pages back
// ---------------------------------------------------------------------------------------------

/// The speaker's allocator (and that of every binary linking this crate): jemalloc. With glibc
/// malloc the speaker that takes over 10,000 IPs kept about 20 MiB freed but resident, even with
/// one arena and a periodic `malloc_trim`: the takeover's transient state and its 10,000 condition
/// writes leave free holes among long-lived allocations that glibc cannot give back. jemalloc's
/// size-class slabs keep them apart and purge what is freed (docs/BENCHMARKS.md: 63 → 41 MiB).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's options (jemalloc(3), "TUNING"), read once when it initializes:
/// - `narenas:1`: one arena; the speaker allocates far too rarely for its lock to matter, and each
///   arena keeps free memory of its own;
/// - `background_thread:true`: a jemalloc thread purges, so an idle speaker shrinks too;
/// - `dirty_decay_ms:1000,muzzy_decay_ms:0`: freed pages go back to the kernel (`MADV_DONTNEED`)
///   within about a second, never as lazily freed pages that still count in RSS.
///
/// The environment variable `_RJEM_MALLOC_CONF` overrides them (jemalloc's own precedence).
pub const ALLOCATOR_OPTIONS: &CStr =
    c"narenas:1,background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0";

/// [`ALLOCATOR_OPTIONS`] as jemalloc's `malloc_conf` (named with tikv-jemalloc-sys's `_rjem_`
/// prefix).
// SAFETY: jemalloc reads this symbol as a `const char *` to a NUL-terminated string: a `&u8` has
// the layout of a plain pointer, and it points at the first byte of a 'static C string literal
// (NUL-terminated by construction) that nothing writes.
#[unsafe(export_name = "_rjem_malloc_conf")]
static MALLOC_CONF: &u8 = &ALLOCATOR_OPTIONS.to_bytes_with_nul()[0];

/// The options jemalloc was given, for the start-up log. Reading [`MALLOC_CONF`] here also keeps
/// it in the binary: the linker may leave out a library's symbol that nothing references.
#[inline(never)]
pub fn allocator_options() -> &'static str {
    std::hint::black_box(MALLOC_CONF);
    ALLOCATOR_OPTIONS.to_str().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, TcpListener};
    use std::time::Duration;

    fn connect_with_key(listener_key: &[u8], client_key: &[u8]) -> io::Result<()> {
        let loopback = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let listener = TcpListener::bind((loopback, 0))?;
        set_tcp_md5(&listener, loopback, listener_key)?;
        let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
        set_tcp_md5(&socket, loopback, client_key)?;
        socket.connect_timeout(&listener.local_addr()?.into(), Duration::from_millis(500))
    }

    #[test]
    fn matching_md5_keys_connect() {
        connect_with_key(b"s3cret", b"s3cret").expect("connect with matching keys");
    }

    #[test]
    fn mismatched_md5_keys_never_connect() {
        let error = connect_with_key(b"s3cret", b"wrong").expect_err("mismatched keys connect");
        assert_eq!(error.kind(), io::ErrorKind::TimedOut, "{error}");
    }

    #[test]
    fn removed_md5_key_lets_unsigned_connections_in() {
        let loopback = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let listener = TcpListener::bind((loopback, 0)).expect("bind");
        set_tcp_md5(&listener, loopback, b"s3cret").expect("install");
        set_tcp_md5(&listener, loopback, &[]).expect("remove");
        let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
            .expect("socket");
        let address = listener.local_addr().expect("address");
        socket
            .connect_timeout(&address.into(), Duration::from_millis(500))
            .expect("unsigned connect after the key was removed");
    }

    #[test]
    fn md5_key_longer_than_80_octets_is_refused() {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
        let error = set_tcp_md5(&listener, IpAddr::V4(Ipv4Addr::LOCALHOST), &[b'k'; 81])
            .expect_err("long key accepted");
        assert_eq!(error.kind(), io::ErrorKind::InvalidInput);
    }

    /// Resident memory of this process in KiB (`VmRSS`).
    fn resident_kib() -> u64 {
        std::fs::read_to_string("/proc/self/status")
            .expect("/proc/self/status")
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS")
    }

    #[test]
    fn freed_memory_goes_back_to_the_kernel_within_seconds_without_being_asked() {
        // 64 MiB in small blocks, then one block that stays allocated after them, so nothing
        // shrinks merely from the top of the heap.
        let blocks: Vec<Vec<u8>> = (0..16 * 1024).map(|_| vec![1u8; 4096]).collect();
        let pinned = vec![1u8; 4096];
        let before = resident_kib();
        drop(blocks);
        // dirty_decay_ms 1000 with the background thread: about a second (jemalloc's defaults,
        // 10 s and lazy MADV_FREE, would not get there in time).
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        let mut after = resident_kib();
        while before.saturating_sub(after) < 32 * 1024 && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
            after = resident_kib();
        }
        assert!(
            before.saturating_sub(after) >= 32 * 1024,
            "RSS {before} KiB with the blocks, {after} KiB 5 s after freeing them"
        );
        assert_eq!(pinned[0], 1);
        assert!(allocator_options().contains("narenas:1"));
    }

    #[test]
    fn packet_bind_address_is_a_link_layer_address_of_sockaddr_ll_size() {
        let address = packet_bind_address(7, 0x0806).expect("address");
        assert_eq!(address.family(), libc::AF_PACKET as socket2::sa_family_t);
        assert_eq!(address.len() as usize, size_of::<libc::sockaddr_ll>());
    }

    #[test]
    fn packet_bind_address_refuses_an_index_beyond_c_int() {
        let err = packet_bind_address(u32::MAX, 0x0806).expect_err("out of range");
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }
}
