//! Binding listening sockets as a [`Context`](crate::Context) does.

use std::io;
use std::net::SocketAddr;

/// Binds a listening socket on `addr` as a [`Context`](crate::Context) would (address
/// reuse, the kernel's largest backlog, close-on-exec), for
/// [`ContextInfo::listener`](crate::ContextInfo::listener): for instance to bind several addresses on
/// the one port the system chose for the first.
///
/// # Errors
///
/// [`is_bind`](crate::Error::is_bind): the address cannot be bound; the
/// message names it.
pub fn bind_listener(addr: SocketAddr) -> crate::Result<std::net::TcpListener> {
    stream_listener(addr, false)
        .map_err(|e| crate::Error::bind(io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}"))))
}

/// [`bind_listener`] with `SO_REUSEPORT` set, for a context with
/// [`ContextInfo::reuse_port`](crate::ContextInfo::reuse_port): its other loops then bind sockets of
/// their own on the same address.
///
/// # Errors
///
/// The address cannot be bound ([`is_bind`](crate::Error::is_bind), the
/// message names it).
pub fn bind_reuse_port_listener(addr: SocketAddr) -> crate::Result<std::net::TcpListener> {
    reuse_port_listener(addr)
        .map_err(|e| crate::Error::bind(io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}"))))
}

/// A listening socket on `addr` that other sockets may share
/// (`SO_REUSEPORT`; [`ContextInfo::reuse_port`](crate::ContextInfo::reuse_port)), non-blocking.
pub(crate) fn reuse_port_listener(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    stream_listener(addr, true)
}

/// A non-blocking, close-on-exec listening socket on `addr` with address
/// reuse (and `SO_REUSEPORT` if `reuse_port`), and the kernel's largest
/// accept queue: a backlog past `net.core.somaxconn` is cut to it, so
/// connections a busy or paused loop has not accepted yet wait in the
/// kernel rather than being refused (mio's own bind asks for 128).
fn stream_listener(addr: SocketAddr, reuse_port: bool) -> io::Result<std::net::TcpListener> {
    let s = socket2::Socket::new(socket2::Domain::for_address(addr), socket2::Type::STREAM, None)?;
    s.set_reuse_address(true)?;
    if reuse_port {
        s.set_reuse_port(true)?;
    }
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    s.listen(65535)?;
    Ok(s.into())
}
