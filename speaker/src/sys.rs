//! The speaker's one module with `unsafe` code: the few system interfaces that neither socket2 nor
//! nix wrap safely. Every `unsafe` block carries a `// SAFETY:` note; everything else in the crate
//! stays under `deny(unsafe_code)`.
#![allow(unsafe_code)]

use std::io;
use std::mem::size_of;

use nix::libc;
use socket2::{SockAddr, Socket, socklen_t};
use tokio::io::unix::AsyncFd;

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

#[cfg(test)]
mod tests {
    use super::*;

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
