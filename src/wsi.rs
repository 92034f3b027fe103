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

    /// `sendmsg(2)` of `a` then `b` in one call, with MSG_NOSIGNAL: a
    /// frame header and its payload leave together without being copied
    /// into one buffer first.
    fn send2(&mut self, a: &[u8], b: &[u8]) -> io::Result<usize> {
        match self {
            Transport::Plain(s) => {
                let mut iov = [
                    libc::iovec { iov_base: a.as_ptr() as *mut libc::c_void, iov_len: a.len() },
                    libc::iovec { iov_base: b.as_ptr() as *mut libc::c_void, iov_len: b.len() },
                ];
                // SAFETY: zeroed is a valid msghdr (no name, no control).
                let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
                msg.msg_iov = iov.as_mut_ptr();
                msg.msg_iovlen = iov.len() as _;
                // SAFETY: the iovecs describe `a` and `b`, which outlive the
                // call and are only read; the fd is owned by `s`.
                let n = unsafe { libc::sendmsg(s.as_raw_fd(), &msg, libc::MSG_NOSIGNAL) };
                if n < 0 {
                    Err(io::Error::last_os_error())
                } else {
                    Ok(n as usize)
                }
            }
        }
    }

    /// The count of bytes the peer has acknowledged (`tcpi_bytes_acked`,
    /// Linux 4.2 and later); `None` where the kernel does not say.
    fn bytes_acked(&self) -> Option<u64> {
        match self {
            Transport::Plain(s) => {
                // SAFETY: zeroed is a valid tcp_info (plain integers).
                let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
                let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
                // SAFETY: `info` and `len` are locals of the sizes given;
                // the fd is owned by `s`.
                let r = unsafe {
                    libc::getsockopt(
                        s.as_raw_fd(),
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
    /// The first write error: once the socket has failed, every later
    /// write fails too, and the connection closes after the callback that
    /// met it (so a protocol that ignores the error cannot spin).
    pub(crate) failed: Option<io::ErrorKind>,
    /// The peer's acknowledged byte count when the socket last filled
    /// up: a reader that drains slowly is told from a stalled one by it.
    acked_mark: u64,
}

impl Out {
    pub(crate) fn new(sock: Transport) -> Out {
        Out { sock, pending: Vec::new(), pending_off: 0, writable: false, sent: 0, failed: None, acked_mark: 0 }
    }

    /// The socket took less than it was given: it is full until the next
    /// WRITABLE edge. When this call `moved` bytes (so the io timeout was
    /// just re-armed), remembers how much the peer had acknowledged: the
    /// mark must date from the arming, or a write that moved nothing just
    /// before the timer fires would hide what the peer drained.
    fn blocked(&mut self, moved: bool) {
        self.writable = false;
        if moved {
            self.acked_mark = self.sock.bytes_acked().unwrap_or(0);
        }
    }

    /// Whether the peer acknowledged more bytes since the socket filled up
    /// (or since the last call that said so). A slow but steady reader
    /// makes progress even while no write of ours can, because megabytes
    /// may sit in the kernel's send queue; a stalled reader acknowledges
    /// nothing. With no way to know (another transport), `false`.
    pub(crate) fn peer_progress(&mut self) -> bool {
        match self.sock.bytes_acked() {
            Some(acked) if acked > self.acked_mark => {
                self.acked_mark = acked;
                true
            }
            _ => false,
        }
    }

    pub(crate) fn has_pending(&self) -> bool {
        self.pending_off < self.pending.len()
    }

    /// Writes `data` now as far as the socket takes it; the rest becomes
    /// the pending remainder. Refused while a remainder is pending: there
    /// is one per connection.
    pub(crate) fn write(&mut self, data: &[u8], more: bool) -> io::Result<()> {
        if let Some(kind) = self.failed {
            return Err(kind.into());
        }
        if self.has_pending() {
            return Err(io::Error::other("a write is already pending"));
        }
        let mut done = 0;
        if self.writable {
            while done < data.len() {
                match self.no_block(|sock| sock.send(&data[done..], more))? {
                    Some(n) => done += n,
                    None => {
                        self.blocked(done > 0);
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

    /// Like [`Out::write`] for `head` followed by `body`, sent with one
    /// system call where the transport allows.
    pub(crate) fn write_parts(&mut self, head: &[u8], body: &[u8]) -> io::Result<()> {
        if let Some(kind) = self.failed {
            return Err(kind.into());
        }
        if self.has_pending() {
            return Err(io::Error::other("a write is already pending"));
        }
        let total = head.len() + body.len();
        let mut done = 0;
        if self.writable {
            while done < total {
                let r = if done < head.len() {
                    self.no_block(|sock| sock.send2(&head[done..], body))
                } else {
                    self.no_block(|sock| sock.send(&body[done - head.len()..], false))
                };
                match r? {
                    Some(n) => done += n,
                    None => {
                        self.blocked(done > 0);
                        break;
                    }
                }
            }
        }
        self.sent += done as u64;
        if done < total {
            self.pending.clear();
            if done < head.len() {
                self.pending.extend_from_slice(&head[done..]);
                self.pending.extend_from_slice(body);
            } else {
                self.pending.extend_from_slice(&body[done - head.len()..]);
            }
            self.pending_off = 0;
            self.writable = false;
        }
        Ok(())
    }

    /// Runs one socket operation: `WouldBlock` becomes `Ok(None)`, a
    /// zero-length write an error, and any error is latched in `failed`.
    fn no_block(&mut self, op: impl FnOnce(&mut Transport) -> io::Result<usize>) -> io::Result<Option<usize>> {
        let r = match no_block(op(&mut self.sock)) {
            Ok(Some(0)) => Err(io::ErrorKind::WriteZero.into()),
            other => other,
        };
        if let Err(e) = &r {
            self.failed = Some(e.kind());
        }
        r
    }

    /// Sends what it can of the remainder. Returns whether anything moved.
    pub(crate) fn flush(&mut self) -> io::Result<bool> {
        let mut moved = false;
        while self.has_pending() {
            let (pending, off) = (std::mem::take(&mut self.pending), self.pending_off);
            let r = self.no_block(|sock| sock.send(&pending[off..], false));
            self.pending = pending;
            match r? {
                Some(n) => {
                    self.pending_off += n;
                    self.sent += n as u64;
                    moved = true;
                }
                None => {
                    self.blocked(moved);
                    return Ok(moved);
                }
            }
        }
        // Free the buffer: an idle connection owns none.
        self.pending = Vec::new();
        self.pending_off = 0;
        Ok(moved)
    }

    /// `sendfile` of up to `len` bytes; `Ok(None)` when the socket is full,
    /// `Ok(Some(0))` at the end of the file.
    pub(crate) fn sendfile(
        &mut self,
        fd: BorrowedFd<'_>,
        offset: u64,
        len: usize,
    ) -> Option<io::Result<Option<usize>>> {
        if let Some(kind) = self.failed {
            return Some(Err(kind.into()));
        }
        if self.has_pending() {
            return Some(Err(io::Error::other("a write is already pending")));
        }
        let r = no_block(self.sock.sendfile(fd, offset, len)?);
        if let Err(e) = &r {
            self.failed = Some(e.kind());
        }
        Some(r.inspect(|n| match n {
            Some(n) => {
                self.sent += *n as u64;
                // PERF: a short count almost always means the socket buffer
                // is full; treating it so saves a sendfile that would only
                // say EAGAIN. (A file that shrank since it was opened then
                // waits for the io timeout instead of failing at once.)
                if *n < len && *n > 0 {
                    self.blocked(true);
                }
            }
            None => self.blocked(false),
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
    /// The status of the response head sent (for the access log).
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
    /// No content at all (1xx, 204, 304): no length field either.
    None,
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
        BodyFraming::None => {}
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
    /// The request body has not been read to its end: answering now means
    /// closing afterwards, so the head must say `Connection: close`.
    pub(crate) body_unread: bool,
}

pub(crate) fn misuse(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, what.to_string())
}

/// Fields a protocol may not set: the server owns the framing.
const RESERVED: [&str; 5] = ["content-length", "transfer-encoding", "connection", "date", "upgrade"];

/// Checks a protocol-supplied field: a token name, not one the server
/// owns, and a value without CR, LF or NUL (no response splitting).
fn check_header(name: &str, value: &str) -> io::Result<()> {
    if !crate::http::is_token(name) || RESERVED.iter().any(|r| r.eq_ignore_ascii_case(name)) {
        return Err(misuse("header name not allowed"));
    }
    if value.bytes().any(|b| matches!(b, b'\r' | b'\n' | 0)) {
        return Err(misuse("header value has CR, LF or NUL"));
    }
    Ok(())
}

impl ResponseWriter<'_> {
    fn framing_for(&self, status: u16, length: Option<u64>) -> BodyFraming {
        match (length, self.tx.version) {
            // RFC 9110 §6.4.1: these never have content.
            _ if status < 200 || status == 204 || status == 304 => BodyFraming::None,
            (Some(n), _) => BodyFraming::Length(n),
            (None, Version::Http11) => BodyFraming::Chunked,
            (None, Version::Http10) => BodyFraming::Close,
        }
    }

    /// Refuses a second head; a response that leaves the body unread ends
    /// the connection.
    fn begin(&mut self) -> io::Result<()> {
        if *self.state != CbResp::AwaitHead {
            return Err(misuse("response head already sent"));
        }
        if self.body_unread {
            self.tx.keep_alive = false;
        }
        self.scratch.clear();
        Ok(())
    }

    pub(crate) fn head(mut self, status: u16, headers: &[(&str, &str)], length: Option<u64>) -> io::Result<()> {
        for (k, v) in headers {
            check_header(k, v)?;
        }
        self.begin()?;
        let framing = self.framing_for(status, length);
        let mut head = begin_head(self.scratch, self.tx, status, self.env);
        for (k, v) in headers {
            head.header(k, v);
        }
        end_head(head, self.tx, framing);
        *self.state = match framing {
            BodyFraming::None | BodyFraming::Length(0) => CbResp::Done,
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
            BodyFraming::None => return Err(misuse("this status has no body")),
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

    pub(crate) fn respond(mut self, status: u16, content_type: &str, body: &[u8]) -> io::Result<()> {
        check_header("Content-Type", content_type)?;
        self.begin()?;
        let mut head = begin_head(self.scratch, self.tx, status, self.env);
        head.header("Content-Type", content_type);
        end_head(head, self.tx, BodyFraming::Length(body.len() as u64));
        if !self.tx.head_only {
            self.scratch.extend_from_slice(body);
        }
        *self.state = CbResp::Done;
        self.out.write(self.scratch, false)
    }

    pub(crate) fn status(mut self, status: u16, message: &str) -> io::Result<()> {
        self.begin()?;
        error_response(self.scratch, self.tx, status, message, &[], self.env);
        *self.state = CbResp::Done;
        self.out.write(self.scratch, false)
    }
}
