//! The connection's output side: the transport, the one pending remainder,
//! and the writer a protocol gets in a writeable callback.

use crate::http::{error_page, ResponseHead, Version};
use mio::net::TcpStream;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, BorrowedFd};

/// The byte stream under a role. Only plain TCP today; TLS (rustls) slots
/// in here as a second variant without the roles changing, which is why
/// roles never touch the socket except through this type.
#[derive(Debug)]
pub(crate) enum Transport {
    Plain(TcpStream),
}

impl Transport {
    pub(crate) fn stream(&self) -> &TcpStream {
        match self {
            Transport::Plain(s) => s,
        }
    }

    pub(crate) fn stream_mut(&mut self) -> &mut TcpStream {
        match self {
            Transport::Plain(s) => s,
        }
    }

    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Transport::Plain(s) => s.read(buf),
        }
    }

    /// `send(2)` with MSG_NOSIGNAL, and MSG_MORE when `more` (so a head
    /// and the start of a body sent by `sendfile` share a segment).
    fn send(&mut self, data: &[u8], more: bool) -> io::Result<usize> {
        match self {
            Transport::Plain(s) => {
                let flags = libc::MSG_NOSIGNAL | if more { libc::MSG_MORE } else { 0 };
                // SAFETY: the pointer and length describe `data`, which
                // outlives the call; the fd is owned by `s`.
                let n = unsafe { libc::send(s.as_raw_fd(), data.as_ptr().cast(), data.len(), flags) };
                if n < 0 {
                    Err(io::Error::last_os_error())
                } else {
                    Ok(n as usize)
                }
            }
        }
    }

    /// Copies up to `len` bytes of `fd` from `offset` with `sendfile(2)`.
    /// `None`: this transport cannot (TLS must see the bytes).
    fn sendfile(&mut self, fd: BorrowedFd<'_>, offset: u64, len: usize) -> Option<io::Result<usize>> {
        match self {
            Transport::Plain(s) => {
                let mut off = offset as libc::off_t;
                // SAFETY: both fds are valid for the call; `off` is a local
                // the kernel updates.
                let n = unsafe { libc::sendfile(s.as_raw_fd(), fd.as_raw_fd(), &mut off, len) };
                Some(if n < 0 { Err(io::Error::last_os_error()) } else { Ok(n as usize) })
            }
        }
    }
}

/// Turns `WouldBlock` into `Ok(None)`, once, at the edge.
fn no_block<T>(r: io::Result<T>) -> io::Result<Option<T>> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
        Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(None),
        Err(e) => Err(e),
    }
}

/// Socket plus the one remainder of a write the kernel took in part.
///
/// `writable` is what we know of the socket: set by a WRITABLE event,
/// cleared when a write comes back short. With edge-triggered readiness
/// that is the whole truth: while it is set, another write may succeed.
#[derive(Debug)]
pub(crate) struct Out {
    pub(crate) sock: Transport,
    pending: Vec<u8>,
    pending_off: usize,
    pub(crate) writable: bool,
    /// Bytes written on this connection (for logs and stats).
    pub(crate) sent: u64,
}

impl Out {
    pub(crate) fn new(sock: Transport) -> Out {
        Out { sock, pending: Vec::new(), pending_off: 0, writable: false, sent: 0 }
    }

    pub(crate) fn has_pending(&self) -> bool {
        self.pending_off < self.pending.len()
    }

    /// Writes `data` now as far as the socket takes it; the rest becomes
    /// the pending remainder. Must only be called with nothing pending.
    pub(crate) fn write(&mut self, data: &[u8], more: bool) -> io::Result<()> {
        debug_assert!(!self.has_pending(), "one pending write per connection");
        let mut done = 0;
        if self.writable {
            while done < data.len() {
                match no_block(self.sock.send(&data[done..], more))? {
                    Some(0) => return Err(io::ErrorKind::WriteZero.into()),
                    Some(n) => done += n,
                    None => {
                        self.writable = false;
                        break;
                    }
                }
            }
        }
        self.sent += done as u64;
        if done < data.len() {
            self.pending.clear();
            self.pending.extend_from_slice(&data[done..]);
            self.pending_off = 0;
            self.writable = false;
        }
        Ok(())
    }

    /// Sends what it can of the remainder. Returns whether anything moved.
    pub(crate) fn flush(&mut self) -> io::Result<bool> {
        let mut moved = false;
        while self.has_pending() {
            match no_block(self.sock.send(&self.pending[self.pending_off..], false))? {
                Some(0) => return Err(io::ErrorKind::WriteZero.into()),
                Some(n) => {
                    self.pending_off += n;
                    self.sent += n as u64;
                    moved = true;
                }
                None => {
                    self.writable = false;
                    return Ok(moved);
                }
            }
        }
        // Free the buffer: an idle connection owns none.
        self.pending = Vec::new();
        self.pending_off = 0;
        Ok(moved)
    }

    /// `sendfile` of up to `len` bytes; `Ok(None)` when the socket is full.
    pub(crate) fn sendfile(
        &mut self,
        fd: BorrowedFd<'_>,
        offset: u64,
        len: usize,
    ) -> Option<io::Result<Option<usize>>> {
        debug_assert!(!self.has_pending());
        let r = self.sock.sendfile(fd, offset, len)?;
        Some(no_block(r).inspect(|n| match n {
            Some(n) => {
                self.sent += *n as u64;
                if *n < len {
                    self.writable = false;
                }
            }
            None => self.writable = false,
        }))
    }

    /// Reads; `Ok(None)` when nothing is there now.
    pub(crate) fn read(&mut self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        no_block(self.sock.read(buf))
    }
}

/// What the response head of the current transaction depends on.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TxInfo {
    pub(crate) version: Version,
    pub(crate) keep_alive: bool,
    pub(crate) head_only: bool,
    pub(crate) status: u16,
}

impl Default for TxInfo {
    fn default() -> Self {
        TxInfo { version: Version::Http11, keep_alive: false, head_only: false, status: 0 }
    }
}

/// Per-vhost values every response head carries.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HeadEnv<'a> {
    pub(crate) date: &'a str,
    pub(crate) headers: &'a [(String, String)],
    pub(crate) server: Option<&'a str>,
}

/// How the body of the response being written is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyFraming {
    Length(u64),
    Chunked,
    /// HTTP/1.0 without a length: the end of the body is the close.
    Close,
}

/// Starts a head with the fields every response has.
pub(crate) fn begin_head<'b>(buf: &'b mut Vec<u8>, tx: &mut TxInfo, status: u16, env: HeadEnv<'_>) -> ResponseHead<'b> {
    tx.status = status;
    let mut head = ResponseHead::new(buf, tx.version, status);
    head.header("Date", env.date);
    if let Some(s) = env.server {
        head.header("Server", s);
    }
    for (k, v) in env.headers {
        head.header(k, v);
    }
    head
}

/// Adds the framing and `Connection` fields and ends the head.
pub(crate) fn end_head(mut head: ResponseHead<'_>, tx: &mut TxInfo, framing: BodyFraming) {
    match framing {
        BodyFraming::Length(n) => {
            head.header_u64("Content-Length", n);
        }
        BodyFraming::Chunked => {
            head.header("Transfer-Encoding", "chunked");
        }
        BodyFraming::Close => tx.keep_alive = false,
    }
    match (tx.keep_alive, tx.version) {
        (false, _) => {
            head.header("Connection", "close");
        }
        (true, Version::Http10) => {
            head.header("Connection", "keep-alive");
        }
        (true, Version::Http11) => {}
    }
    head.finish();
}

/// Appends a complete error response (head and, unless HEAD, the page).
pub(crate) fn error_response(
    buf: &mut Vec<u8>,
    tx: &mut TxInfo,
    status: u16,
    message: &str,
    extra: &[(&str, &str)],
    env: HeadEnv<'_>,
) {
    let mut body = Vec::with_capacity(320);
    error_page::write_body(&mut body, status, message);
    let mut head = begin_head(buf, tx, status, env);
    head.header("Content-Type", "text/html; charset=utf-8");
    for (k, v) in extra {
        head.header(k, v);
    }
    end_head(head, tx, BodyFraming::Length(body.len() as u64));
    if !tx.head_only {
        buf.extend_from_slice(&body);
    }
}

/// Where a protocol-written response stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CbResp {
    /// Nothing sent yet.
    AwaitHead,
    /// Head sent; body going out with this framing; `left` for Length.
    Body { framing: BodyFraming, left: u64 },
    /// Complete.
    Done,
}

/// The state a [`Writer`](crate::protocol::Writer) writes through.
#[derive(Debug)]
pub(crate) struct ResponseWriter<'a> {
    pub(crate) out: &'a mut Out,
    pub(crate) state: &'a mut CbResp,
    pub(crate) tx: &'a mut TxInfo,
    pub(crate) scratch: &'a mut Vec<u8>,
    pub(crate) env: HeadEnv<'a>,
}

fn misuse(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, what.to_string())
}

impl ResponseWriter<'_> {
    fn framing_for(&self, length: Option<u64>) -> BodyFraming {
        match (length, self.tx.version) {
            (Some(n), _) => BodyFraming::Length(n),
            (None, Version::Http11) => BodyFraming::Chunked,
            (None, Version::Http10) => BodyFraming::Close,
        }
    }

    pub(crate) fn head(self, status: u16, headers: &[(&str, &str)], length: Option<u64>) -> io::Result<()> {
        if *self.state != CbResp::AwaitHead {
            return Err(misuse("response head already sent"));
        }
        let framing = self.framing_for(length);
        self.scratch.clear();
        let mut head = begin_head(self.scratch, self.tx, status, self.env);
        for (k, v) in headers {
            head.header(k, v);
        }
        end_head(head, self.tx, framing);
        *self.state = match framing {
            BodyFraming::Length(0) => CbResp::Done,
            BodyFraming::Length(left) => CbResp::Body { framing, left },
            _ => CbResp::Body { framing, left: 0 },
        };
        self.out.write(self.scratch, false)
    }

    pub(crate) fn body(self, data: &[u8], last: bool) -> io::Result<()> {
        let CbResp::Body { framing, left } = *self.state else {
            return Err(misuse(if *self.state == CbResp::Done {
                "response already complete"
            } else {
                "body before head"
            }));
        };
        self.scratch.clear();
        if self.tx.head_only {
            // HEAD: the protocol may produce the body as for GET; none of
            // it is sent.
            let left = left.saturating_sub(data.len() as u64);
            let done = last || matches!(framing, BodyFraming::Length(_)) && left == 0;
            *self.state = if done { CbResp::Done } else { CbResp::Body { framing, left } };
            return Ok(());
        }
        match framing {
            BodyFraming::Length(_) => {
                if data.len() as u64 > left {
                    return Err(misuse("body longer than its Content-Length"));
                }
                let left = left - data.len() as u64;
                if last && left > 0 {
                    // The promised length cannot be met: end the connection
                    // after what we have, the only honest signal left.
                    self.tx.keep_alive = false;
                }
                *self.state = if last || left == 0 { CbResp::Done } else { CbResp::Body { framing, left } };
                return self.out.write(data, false);
            }
            BodyFraming::Chunked => {
                if !data.is_empty() {
                    use std::io::Write;
                    let _ = write!(self.scratch, "{:x}\r\n", data.len());
                    self.scratch.extend_from_slice(data);
                    self.scratch.extend_from_slice(b"\r\n");
                }
                if last {
                    self.scratch.extend_from_slice(b"0\r\n\r\n");
                }
            }
            BodyFraming::Close => self.scratch.extend_from_slice(data),
        }
        if last {
            *self.state = CbResp::Done;
        }
        self.out.write(self.scratch, false)
    }

    pub(crate) fn respond(self, status: u16, content_type: &str, body: &[u8]) -> io::Result<()> {
        if *self.state != CbResp::AwaitHead {
            return Err(misuse("response head already sent"));
        }
        self.scratch.clear();
        let mut head = begin_head(self.scratch, self.tx, status, self.env);
        head.header("Content-Type", content_type);
        end_head(head, self.tx, BodyFraming::Length(body.len() as u64));
        if !self.tx.head_only {
            self.scratch.extend_from_slice(body);
        }
        *self.state = CbResp::Done;
        self.out.write(self.scratch, false)
    }

    pub(crate) fn status(self, status: u16, message: &str) -> io::Result<()> {
        if *self.state != CbResp::AwaitHead {
            return Err(misuse("response head already sent"));
        }
        self.scratch.clear();
        error_response(self.scratch, self.tx, status, message, &[], self.env);
        *self.state = CbResp::Done;
        self.out.write(self.scratch, false)
    }
}
