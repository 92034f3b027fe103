//! Transports of raw wsis that are not TCP: a descriptor that is not a
//! socket (a FIFO, a pipe, a character device) and a UDP socket. Both
//! sit behind [`super::Link::Boxed`], so the connection layer (one
//! pending write, readiness, rx flow control, timers) is the same as a
//! TCP connection's.

use super::transport::Transport;
use mio::event::Source;
use mio::unix::SourceFd;
use mio::{Interest, Registry, Token};
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, OwnedFd};

/// A descriptor that is not a socket, read with `read(2)` and written
/// with `write(2)`.
#[derive(Debug)]
pub(crate) struct FileLink(pub(crate) OwnedFd);

/// A system call's return as a byte count or the OS error.
fn counted(n: isize) -> io::Result<usize> {
    usize::try_from(n).map_err(|_| io::Error::last_os_error())
}

impl Transport for FileLink {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        // SAFETY: the pointer and length describe `buf`, writable for the
        // call; the descriptor is owned.
        counted(unsafe { libc::read(self.0.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) })
    }

    fn send(&mut self, data: &[u8], _more: bool) -> io::Result<usize> {
        // SAFETY: the pointer and length describe `data`, which outlives
        // the call; the descriptor is owned.
        counted(unsafe { libc::write(self.0.as_raw_fd(), data.as_ptr().cast(), data.len()) })
    }

    /// A terminal gives a line per read, whatever is waiting: only
    /// `EAGAIN` says a descriptor is drained.
    fn short_read_drains(&self) -> bool {
        false
    }

    fn shutdown_write(&mut self) -> io::Result<()> {
        Ok(())
    }

    fn source(&mut self) -> &mut dyn Source {
        self
    }
}

impl Source for FileLink {
    fn register(&mut self, registry: &Registry, token: Token, interests: Interest) -> io::Result<()> {
        SourceFd(&self.0.as_raw_fd()).register(registry, token, interests)
    }

    fn reregister(&mut self, registry: &Registry, token: Token, interests: Interest) -> io::Result<()> {
        SourceFd(&self.0.as_raw_fd()).reregister(registry, token, interests)
    }

    fn deregister(&mut self, registry: &Registry) -> io::Result<()> {
        SourceFd(&self.0.as_raw_fd()).deregister(registry)
    }
}

/// A UDP socket: a datagram per read and per write.
#[derive(Debug)]
pub(crate) struct UdpLink(pub(crate) mio::net::UdpSocket);

impl Transport for UdpLink {
    /// A datagram, its sender dropped (use [`Transport::recv_from`]).
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.recv_from(buf).map(|(n, _)| n)
    }

    /// One datagram to the connected peer.
    fn send(&mut self, data: &[u8], _more: bool) -> io::Result<usize> {
        self.0.send(data)
    }

    fn send_to(&mut self, data: &[u8], to: SocketAddr) -> io::Result<usize> {
        self.0.send_to(data, to)
    }

    fn recv_from(&mut self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.0.recv_from(buf)
    }

    /// A datagram shorter than the buffer says nothing about the next.
    fn short_read_drains(&self) -> bool {
        false
    }

    fn shutdown_write(&mut self) -> io::Result<()> {
        Ok(())
    }

    fn source(&mut self) -> &mut dyn Source {
        &mut self.0
    }
}
