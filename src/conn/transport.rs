//! The transport seam: what a connection's bytes go through between the
//! socket and its role.
//!
//! It is shaped like a rustls connection: the role reads and writes
//! plaintext; the transport may hold bytes of its own that must reach the
//! socket before anything else (TLS records: [`Transport::wants_write`],
//! pushed by [`Transport::write_pending`]), and reads record by record
//! ([`Transport::short_read_drains`]). Plain TCP ([`PlainTcp`]) holds
//! nothing; TLS (`super::tls`) is the second implementation, whose
//! handshake the connection layer drives before any role runs, and no
//! role changes for it: roles only ever see the transport through
//! [`super::Out`].

use mio::net::TcpStream;
use std::fmt;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, BorrowedFd};

/// The byte stream under a role.
pub(crate) trait Transport: fmt::Debug + Send {
    /// Reads plaintext into `buf`: `Ok(0)` at the peer's end,
    /// `WouldBlock` when there is nothing now.
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize>;

    /// Writes plaintext, returning how much was taken; `more` says more
    /// follows at once (so a head and a body share a segment).
    fn send(&mut self, data: &[u8], more: bool) -> io::Result<usize>;

    /// Writes `a` then `b` as one operation where the transport can
    /// (a frame header and its payload, without copying them together).
    fn send2(&mut self, a: &[u8], b: &[u8]) -> io::Result<usize> {
        let n = self.send(a, true)?;
        if n < a.len() {
            return Ok(n);
        }
        match self.send(b, false) {
            Ok(m) => Ok(n + m),
            // What went out of `a` went out: report it.
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(n),
            Err(e) => Err(e),
        }
    }

    /// Copies up to `len` bytes of `fd` from `offset` to the peer
    /// without them passing through user space. `None`: this transport
    /// cannot (TLS must see the bytes); the caller reads and sends.
    fn sendfile(&mut self, _fd: BorrowedFd<'_>, _offset: u64, _len: usize) -> Option<io::Result<usize>> {
        None
    }

    /// The transport holds bytes of its own for the socket (TLS records
    /// made from plaintext already taken, a handshake message, an alert).
    fn wants_write(&self) -> bool {
        false
    }

    /// Pushes some of what [`Transport::wants_write`] holds to the
    /// socket, returning the bytes moved (`WouldBlock` when it is full).
    fn write_pending(&mut self) -> io::Result<usize> {
        Ok(0)
    }

    /// Whether a read that returned less than asked means the socket is
    /// drained (so the readable flag may drop without a `WouldBlock`
    /// read). True of TCP; not of TLS, which reads record by record.
    fn short_read_drains(&self) -> bool {
        true
    }

    /// Ends our side of the stream (TLS: after its close_notify).
    fn shutdown_write(&mut self) -> io::Result<()>;

    /// The count of bytes the peer has acknowledged, if the kernel says.
    fn bytes_acked(&self) -> Option<u64> {
        None
    }

    /// The bytes (received, sent) that crossed the socket since the last
    /// call, when the transport counts them itself because they differ
    /// from the plaintext (TLS). `None`: the plaintext is what crossed.
    fn take_traffic(&mut self) -> Option<(u64, u64)> {
        None
    }

    /// Sends one datagram to `to` (UDP); `Unsupported` on a stream.
    fn send_to(&mut self, _data: &[u8], _to: std::net::SocketAddr) -> io::Result<usize> {
        Err(io::ErrorKind::Unsupported.into())
    }

    /// Receives one datagram and its sender (UDP); `Unsupported` on a
    /// stream.
    fn recv_from(&mut self, _buf: &mut [u8]) -> io::Result<(usize, std::net::SocketAddr)> {
        Err(io::ErrorKind::Unsupported.into())
    }

    /// The descriptor, to register and deregister with the loop's poll.
    fn source(&mut self) -> &mut dyn mio::event::Source;
}

/// A connection's transport: plain TCP held in place (no allocation per
/// connection for the common case), TLS, or any other [`Transport`] boxed.
#[derive(Debug)]
pub(crate) enum Link {
    Plain(PlainTcp),
    /// TLS (boxed: a rustls session is some hundreds of bytes).
    #[cfg(feature = "tls")]
    Tls(Box<super::tls::TlsLink>),
    /// Any other transport (a raw file or a UDP socket:
    /// [`super::rawio`]), behind a thin pointer so a plain connection
    /// pays nothing.
    #[allow(clippy::redundant_allocation)]
    Boxed(Box<Box<dyn Transport>>),
}

impl std::ops::Deref for Link {
    type Target = dyn Transport;

    fn deref(&self) -> &(dyn Transport + 'static) {
        match self {
            Link::Plain(p) => p,
            #[cfg(feature = "tls")]
            Link::Tls(t) => t.as_ref(),
            Link::Boxed(b) => b.as_ref().as_ref(),
        }
    }
}

impl std::ops::DerefMut for Link {
    fn deref_mut(&mut self) -> &mut (dyn Transport + 'static) {
        match self {
            Link::Plain(p) => p,
            #[cfg(feature = "tls")]
            Link::Tls(t) => t.as_mut(),
            Link::Boxed(b) => b.as_mut().as_mut(),
        }
    }
}

impl Link {
    /// Whether a TLS handshake is still to finish before the role serves.
    pub(crate) fn handshaking(&self) -> bool {
        match self {
            #[cfg(feature = "tls")]
            Link::Tls(t) => t.handshaking(),
            _ => false,
        }
    }
}

/// Plain TCP: plaintext is what goes on the wire.
#[derive(Debug)]
pub(crate) struct PlainTcp(pub(crate) TcpStream);

/// A system call's return as a byte count or the OS error.
fn syscall_result(n: isize) -> io::Result<usize> {
    usize::try_from(n).map_err(|_| io::Error::last_os_error())
}

impl Transport for PlainTcp {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }

    /// `send(2)` with MSG_NOSIGNAL, and MSG_MORE when `more`.
    fn send(&mut self, data: &[u8], more: bool) -> io::Result<usize> {
        let flags = libc::MSG_NOSIGNAL | if more { libc::MSG_MORE } else { 0 };
        // SAFETY: the pointer and length describe `data`, which outlives
        // the call; the fd is owned by the stream.
        syscall_result(unsafe { libc::send(self.0.as_raw_fd(), data.as_ptr().cast(), data.len(), flags) })
    }

    /// `sendmsg(2)` of `a` then `b` in one call, with MSG_NOSIGNAL.
    fn send2(&mut self, a: &[u8], b: &[u8]) -> io::Result<usize> {
        let mut iov = [
            libc::iovec { iov_base: a.as_ptr() as *mut libc::c_void, iov_len: a.len() },
            libc::iovec { iov_base: b.as_ptr() as *mut libc::c_void, iov_len: b.len() },
        ];
        // SAFETY: zeroed is a valid msghdr (no name, no control).
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = iov.as_mut_ptr();
        msg.msg_iovlen = iov.len() as _;
        // SAFETY: the iovecs describe `a` and `b`, which outlive the call
        // and are only read; the fd is owned by the stream.
        syscall_result(unsafe { libc::sendmsg(self.0.as_raw_fd(), &msg, libc::MSG_NOSIGNAL) })
    }

    fn sendfile(&mut self, fd: BorrowedFd<'_>, offset: u64, len: usize) -> Option<io::Result<usize>> {
        let mut off = offset as libc::off_t;
        // SAFETY: both fds are valid for the call; `off` is a local the
        // kernel updates.
        Some(syscall_result(unsafe { libc::sendfile(self.0.as_raw_fd(), fd.as_raw_fd(), &mut off, len) }))
    }

    fn shutdown_write(&mut self) -> io::Result<()> {
        self.0.shutdown(std::net::Shutdown::Write)
    }

    /// `tcpi_bytes_acked` (Linux 4.2 and later).
    fn bytes_acked(&self) -> Option<u64> {
        // SAFETY: zeroed is a valid tcp_info (plain integers).
        let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
        let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
        // SAFETY: `info` and `len` are locals of the sizes given; the fd
        // is owned by the stream.
        let r = unsafe {
            libc::getsockopt(
                self.0.as_raw_fd(),
                libc::IPPROTO_TCP,
                libc::TCP_INFO,
                (&mut info as *mut libc::tcp_info).cast(),
                &mut len,
            )
        };
        // Older kernels fill in less; the field must be there.
        let needed = std::mem::offset_of!(libc::tcp_info, tcpi_bytes_acked) + 8;
        (r == 0 && len as usize >= needed).then_some(info.tcpi_bytes_acked)
    }

    fn source(&mut self) -> &mut dyn mio::event::Source {
        &mut self.0
    }
}
