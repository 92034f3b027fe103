//! FastCGI: a request to an application server (php-fpm, say) over one
//! connection, registered in the loop like a CGI program's pipes.
//!
//! One request at a time per connection (request id 1; no multiplexing,
//! which php-fpm does not do either). The records come from the pure
//! codec [`warren_cgi::fcgi`]; this is their I/O:
//!
//! - `FCGI_BEGIN_REQUEST` and the `FCGI_PARAMS` stream (the environment
//!   the CGI role builds) go out in the connection's first write, with the
//!   empty `FCGI_STDIN` record when the request has no body;
//! - body bytes go out as `FCGI_STDIN` records written from where they lie
//!   (header and data in one vectored write); what the socket cannot take
//!   now is held, and the client is not read until it drains;
//! - records are read into one buffer of [`fcgi::MAX_RECORD`] bytes, and
//!   only when the client can take data: `FCGI_STDOUT` content is handed
//!   on as the CGI role's stdout, `FCGI_STDERR` goes to the log,
//!   `FCGI_END_REQUEST` ends the response;
//! - a connection whose request ended cleanly goes back to its server's
//!   idle list ([`FcgiPool`], bounded) when the server was asked to keep
//!   it (`FCGI_KEEP_CONN`); one cut short gets `FCGI_ABORT_REQUEST` and is
//!   closed.

use super::Reaper;
use crate::mount::FcgiAddr;
use std::borrow::Cow;
use std::collections::HashMap;
use std::io::{self, IoSlice, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;
use warren_cgi::fcgi::{self, RecordType, Role};

/// The request id of every request (one per connection).
const ID: u16 = 1;
/// Socket reads per [`FcgiLink::read_stdout`].
const FILLS_PER_READ: usize = 4;
/// The record buffer's first size: a small answer's records fit.
const FIRST_READ: usize = 16 * 1024;
/// The most completions a server's limit waits, after a failed try of
/// one more connection, before the next try (see [`Server::learn`]).
const MAX_PROBE_BACKOFF: u32 = 256;
/// How long a request waits under a server's learned limit, nothing
/// ending, before it may try one more connection (see
/// [`FcgiPool::try_more`]).
pub(crate) const TRY_AFTER: std::time::Duration = std::time::Duration::from_millis(500);
/// How long a kept connection may stay idle: it holds a php-fpm worker
/// that another client of the pool may want.
pub(crate) const IDLE_KEPT: std::time::Duration = std::time::Duration::from_secs(10);

/// A connection to a FastCGI server.
#[derive(Debug)]
enum Stream {
    Unix(mio::net::UnixStream),
    Tcp(mio::net::TcpStream),
}

impl Stream {
    /// Starts connecting (non-blocking: a TCP connection completes later).
    fn connect(addr: &FcgiAddr) -> io::Result<Stream> {
        match addr {
            FcgiAddr::Unix(p) => mio::net::UnixStream::connect(p).map(Stream::Unix),
            FcgiAddr::Tcp(a) => {
                let s = mio::net::TcpStream::connect(*a)?;
                // Small records (a head, an end-request) are not held back.
                let _ = s.set_nodelay(true);
                Ok(Stream::Tcp(s))
            }
        }
    }

    fn take_error(&self) -> io::Result<Option<io::Error>> {
        match self {
            Stream::Unix(s) => s.take_error(),
            Stream::Tcp(s) => s.take_error(),
        }
    }

    /// Whether a TCP connection in progress has completed.
    fn connected(&self) -> bool {
        match self {
            Stream::Unix(_) => true,
            Stream::Tcp(s) => s.peer_addr().is_ok(),
        }
    }

    /// Whether an idle connection is still open and quiet: the server
    /// may have closed it meanwhile (a worker that ended), and a byte
    /// from it now would be out of turn.
    fn quiet(&self) -> bool {
        let mut b = [0u8; 1];
        // SAFETY: recv(2) into a one-byte buffer we own; MSG_PEEK leaves
        // the data, MSG_DONTWAIT never blocks.
        let r = unsafe { libc::recv(self.as_raw_fd(), b.as_mut_ptr().cast(), 1, libc::MSG_PEEK | libc::MSG_DONTWAIT) };
        r < 0 && io::Error::last_os_error().kind() == io::ErrorKind::WouldBlock
    }
}

impl AsRawFd for Stream {
    fn as_raw_fd(&self) -> RawFd {
        match self {
            Stream::Unix(s) => s.as_raw_fd(),
            Stream::Tcp(s) => s.as_raw_fd(),
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Unix(s) => s.read(buf),
            Stream::Tcp(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Unix(s) => s.write(buf),
            Stream::Tcp(s) => s.write(buf),
        }
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        match self {
            Stream::Unix(s) => s.write_vectored(bufs),
            Stream::Tcp(s) => s.write_vectored(bufs),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// One request's connection to a FastCGI server.
#[derive(Debug)]
pub(crate) struct FcgiLink {
    stream: Stream,
    addr: FcgiAddr,
    /// A TCP connection not yet made.
    connecting: bool,
    /// The server was asked to keep the connection (`FCGI_KEEP_CONN`).
    keep_conn: bool,
    /// Taken from the idle list, not new.
    reused: bool,
    /// Readiness as the loop reported it; cleared at `WouldBlock`.
    pub(crate) readable: bool,
    pub(crate) writable: bool,
    /// Records read and not yet taken: `rbuf[rstart..rend]`. Never more
    /// than one record is needed to make progress.
    rbuf: Vec<u8>,
    rstart: usize,
    rend: usize,
    /// `FCGI_STDOUT` content in `rbuf` not yet handed on.
    out: (usize, usize),
    /// Records to write: `wbuf[wpos..]`.
    wbuf: Vec<u8>,
    wpos: usize,
    /// The empty `FCGI_STDIN` record is queued (the body is all sent).
    stdin_ended: bool,
    /// `FCGI_END_REQUEST`: the application's status and the protocol's.
    ended: Option<(u32, u8)>,
    /// The connection failed, closed or spoke nonsense before the end.
    failed: bool,
    /// Something has come back for this request.
    answered: bool,
    /// [`read_stdout`](Self::read_stdout) stopped at its limit of socket
    /// reads, the socket still readable.
    capped: bool,
    /// The server stopped taking the request (a write failed: it closed
    /// its reading side, having answered without the whole body, or
    /// being about to): the rest of the body is dropped, the answer is
    /// still read to its end, and the connection is not kept.
    input_gone: bool,
    /// The loop's token for the connection, once it is in the poll. A
    /// kept connection stays in the poll, under its token, while idle
    /// and for the next request on it; the token is let go when the
    /// connection is closed.
    pub(crate) token: Option<usize>,
    /// Something of this request has been written.
    sent: bool,
    /// While a new connection is not answered: whether the server has
    /// taken it from its listen queue yet (see [`Watch`]).
    watch: Option<Arc<Watch>>,
}

/// Whether a new connection has been taken by the server: a php-fpm
/// worker serves one connection at a time, and the others wait, unread,
/// in the listen queue. Seen from here, on a Unix socket, as the bytes
/// written and not yet read (`SIOCOUTQ`): they fall when the server reads
/// the request's first write, whatever the script then takes to answer
/// (a slow script is not a queued connection). Over TCP the kernel takes
/// the bytes for the server before it accepts, so nothing can be told
/// until the first answer.
#[derive(Debug)]
struct Watch {
    fd: RawFd,
    /// Unix: `SIOCOUTQ` after the last write (0: nothing written yet).
    mark: AtomicUsize,
    state: AtomicU8,
    unix: bool,
    /// Counted as taken by [`Server::queued`].
    counted: AtomicBool,
}

/// [`Watch::state`]: in the listen queue, as far as is known.
const WAITING: u8 = 0;
/// Read by the server (a worker took it), not answered yet.
const TAKEN: u8 = 1;
/// Answered: the watch is over.
const DONE: u8 = 2;
/// Closed without an answer: the watch is over, and says nothing.
const GONE: u8 = 3;

/// What the watches of a server's new connections say.
#[derive(Debug, Default, Clone, Copy)]
struct Queued {
    /// Connections known to wait in the listen queue.
    waiting: usize,
    /// Connections that may or may not (TCP, or nothing written yet).
    unknown: usize,
    /// Connections taken since the last look.
    taken: usize,
}

impl Watch {
    /// Bytes written on the socket that the server has not read.
    fn unread(&self) -> Option<usize> {
        let mut n: libc::c_int = 0;
        // SAFETY: TIOCOUTQ (SIOCOUTQ) stores one int into `n`; `fd` is
        // open while the watch is not DONE (the link marks it DONE before
        // its stream is closed).
        let r = unsafe { libc::ioctl(self.fd, libc::TIOCOUTQ, &mut n) };
        (r == 0).then_some(usize::try_from(n).unwrap_or(0))
    }

    /// Updates the state from the socket: TAKEN once fewer bytes are
    /// unread than after the last write.
    fn look(&self) -> u8 {
        let state = self.state.load(Ordering::Relaxed);
        if state != WAITING || !self.unix {
            return state;
        }
        let mark = self.mark.load(Ordering::Relaxed);
        if mark > 0 && self.unread().is_some_and(|n| n < mark) {
            self.state.store(TAKEN, Ordering::Relaxed);
            return TAKEN;
        }
        state
    }

    /// After a write: the bytes now unread are the new mark. (Before
    /// each write, [`look`](Self::look) sees whether the server read
    /// since the last.)
    fn wrote(&self) {
        if self.unix && self.state.load(Ordering::Relaxed) == WAITING {
            match self.unread() {
                // Read already, as soon as written.
                Some(0) => self.state.store(TAKEN, Ordering::Relaxed),
                Some(n) => self.mark.store(n, Ordering::Relaxed),
                None => {}
            }
        }
    }
}

impl FcgiLink {
    /// The descriptor to register in the loop.
    pub(crate) fn fd(&self) -> RawFd {
        self.stream.as_raw_fd()
    }

    /// Whether the request came to its end (`FCGI_END_REQUEST`).
    pub(crate) fn ended(&self) -> bool {
        self.ended.is_some()
    }

    /// Whether this request may be sent again on a new connection: it
    /// went on a kept one that closed before any answer (a php-fpm
    /// worker that ended after its `pm.max_requests`, between its last
    /// answer and closing), so the server did not run it.
    pub(crate) fn retryable(&self) -> bool {
        self.reused && !self.answered && self.ended.is_none()
    }

    /// Whether the last read stopped at its limit with more to read
    /// (then cleared).
    pub(crate) fn take_capped(&mut self) -> bool {
        std::mem::take(&mut self.capped)
    }

    /// Whether all `FCGI_STDOUT` content read has been handed on.
    pub(crate) fn drained(&self) -> bool {
        self.out.0 == self.out.1
    }

    /// Whether the connection failed before the end.
    pub(crate) fn failed(&self) -> bool {
        self.failed
    }

    /// Whether the connection is still being made.
    pub(crate) fn connecting(&self) -> bool {
        self.connecting
    }

    /// The server's address, for logs.
    pub(crate) fn addr(&self) -> &FcgiAddr {
        &self.addr
    }

    /// Queues the request: its begin record and parameters, and the end
    /// of its (empty) body when `no_body`.
    ///
    /// # Errors
    ///
    /// A variable too long for one record (see [`fcgi::params`]): the
    /// link is then failed, nothing sent.
    pub(crate) fn begin(&mut self, env: &[(Cow<'_, str>, Cow<'_, str>)], no_body: bool) -> Result<(), fcgi::FcgiError> {
        self.wbuf.clear();
        self.wpos = 0;
        fcgi::begin_request(&mut self.wbuf, ID, Role::Responder, self.keep_conn);
        if let Err(e) = fcgi::params(&mut self.wbuf, ID, env.iter().map(|(k, v)| (k.as_bytes(), v.as_bytes()))) {
            self.wbuf.clear();
            self.failed = true;
            return Err(e);
        }
        if no_body && !self.first_write_alone() {
            fcgi::end_stream(&mut self.wbuf, RecordType::Stdin, ID);
            self.stdin_ended = true;
        }
        Ok(())
    }

    /// Whether the request's first write (begin and parameters) goes
    /// out alone: on a new Unix connection, so that the server's reading
    /// it shows (see [`Watch`]). The end of an empty body follows in a
    /// second write ([`flush`](Self::flush) queues it), as a script may
    /// not read its input until it ends.
    fn first_write_alone(&self) -> bool {
        !self.sent && self.watch.as_ref().is_some_and(|w| w.unix)
    }

    /// Whether body bytes wait for the socket (the client is not read).
    pub(crate) fn input_blocked(&self) -> bool {
        self.wpos < self.wbuf.len()
    }

    /// Whether there is something to read: buffered, or on the socket.
    pub(crate) fn can_read(&self) -> bool {
        self.out.0 < self.out.1 || self.rstart < self.rend || self.readable || self.failed
    }

    /// Sends body bytes as `FCGI_STDIN` records: written now from where
    /// they lie when nothing waits before them, else queued (the caller
    /// stops reading the client until they drain). Returns whether
    /// anything moved.
    pub(crate) fn feed(&mut self, data: &[u8]) -> bool {
        if self.failed || self.input_gone || self.stdin_ended || self.ended.is_some() || data.is_empty() {
            // The server is gone, or answered without (all of) the body,
            // or this request's input has ended (a request after a local
            // redirect has none): the bytes are dropped, never sent after
            // the stream's end, where they would be taken for the next
            // request's.
            return false;
        }
        let mut moved = false;
        if self.first_write_alone() && !self.connecting {
            // The parameters go out on their own first.
            moved = self.flush(false);
        }
        if self.connecting || self.input_blocked() || !self.writable {
            fcgi::stream(&mut self.wbuf, RecordType::Stdin, ID, data);
            return moved;
        }
        for (i, piece) in data.chunks(fcgi::MAX_WRITE).enumerate() {
            let head = fcgi::header(RecordType::Stdin, ID, piece.len() as u16, 0);
            let n = match self.write_parts(&head, piece) {
                Some(n) => n,
                None => return moved,
            };
            moved |= n > 0;
            if n < head.len() + piece.len() {
                // The rest of this record, then the pieces after it.
                let (h, p) = if n < head.len() { (&head[n..], piece) } else { (&[][..], &piece[n - head.len()..]) };
                self.wbuf.clear();
                self.wpos = 0;
                self.wbuf.extend_from_slice(h);
                self.wbuf.extend_from_slice(p);
                let rest = (i + 1) * fcgi::MAX_WRITE;
                if rest < data.len() {
                    fcgi::stream(&mut self.wbuf, RecordType::Stdin, ID, &data[rest..]);
                }
                return moved;
            }
        }
        moved
    }

    /// One vectored write; `None` when the connection failed.
    fn write_parts(&mut self, head: &[u8], body: &[u8]) -> Option<usize> {
        self.before_write();
        loop {
            match self.stream.write_vectored(&[IoSlice::new(head), IoSlice::new(body)]) {
                Ok(n) => {
                    self.after_write(n);
                    return Some(n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.writable = false;
                    return Some(0);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.write_failed(&e);
                    return None;
                }
            }
        }
    }

    /// Before a write on a new connection: has the server read since the
    /// last?
    fn before_write(&self) {
        if let Some(w) = &self.watch {
            w.look();
        }
    }

    fn after_write(&mut self, n: usize) {
        self.sent |= n > 0;
        if let Some(w) = &self.watch {
            w.wrote();
        }
    }

    /// A write failed: the server takes nothing more of this request,
    /// but what it answered may be there to read (see `input_gone`).
    fn write_failed(&mut self, e: &io::Error) {
        log::info!("{}: stopped taking the request body: {e}", self.addr);
        self.input_gone = true;
        self.keep_conn = false;
        self.wbuf.clear();
        self.wpos = 0;
    }

    fn fail(&mut self, e: &io::Error) {
        if !self.failed && self.ended.is_none() {
            log::warn!("{}: {e}", self.addr);
        }
        self.failed = true;
    }

    /// Completes a TCP connection when it becomes writable, writes what
    /// is queued, and queues the end of the body once `body_done`.
    /// Returns whether anything moved.
    pub(crate) fn flush(&mut self, body_done: bool) -> bool {
        if self.failed || self.input_gone {
            return false;
        }
        if self.connecting {
            if !self.writable {
                return false;
            }
            match self.stream.take_error() {
                Ok(None) if self.stream.connected() => self.connecting = false,
                Ok(None) => {
                    // Woken early: not made yet.
                    self.writable = false;
                    return false;
                }
                Ok(Some(e)) | Err(e) => {
                    self.fail(&e);
                    return true;
                }
            }
        }
        let mut moved = false;
        loop {
            // The end of the body joins what is queued, unless the first
            // write must go alone and has not gone yet.
            if body_done && !self.stdin_ended && self.ended.is_none() && !self.first_write_alone() {
                if self.wpos == self.wbuf.len() {
                    self.wbuf.clear();
                    self.wpos = 0;
                }
                fcgi::end_stream(&mut self.wbuf, RecordType::Stdin, ID);
                self.stdin_ended = true;
            }
            let queued = self.wbuf.len() - self.wpos;
            while self.wpos < self.wbuf.len() && self.writable && self.ended.is_none() {
                self.before_write();
                match self.stream.write(&self.wbuf[self.wpos..]) {
                    Ok(0) => {
                        self.write_failed(&io::Error::from(io::ErrorKind::WriteZero));
                        return true;
                    }
                    Ok(n) => {
                        self.after_write(n);
                        self.wpos += n;
                        moved = true;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.writable = false,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        self.write_failed(&e);
                        return true;
                    }
                }
            }
            if self.wpos == self.wbuf.len() && self.wpos > 0 {
                self.wbuf.clear();
                self.wpos = 0;
            }
            // Once more for the end of the body held back behind a first
            // write that has now gone.
            if !(body_done && !self.stdin_ended && queued > 0 && self.wbuf.is_empty() && self.writable) {
                return moved;
            }
        }
    }

    /// Reads the response: `FCGI_STDOUT` content into `buf`, `FCGI_STDERR`
    /// content to `stderr`. `Ok(Some(0))`: the response is over (ended,
    /// or the connection closed before its end); `Ok(None)`: nothing now.
    /// Reads the socket only when nothing buffered is left to hand on.
    /// At most [`FILLS_PER_READ`] reads of the socket: a server sending
    /// only records that are not stdout cannot hold the loop (`Ok(None)`
    /// then, with [`take_capped`](Self::take_capped) true, for the
    /// caller to come back).
    pub(crate) fn read_stdout(&mut self, buf: &mut [u8], stderr: &mut dyn FnMut(&[u8])) -> io::Result<Option<usize>> {
        let mut n = 0;
        let mut fills = 0;
        loop {
            if self.out.0 < self.out.1 {
                let k = (self.out.1 - self.out.0).min(buf.len() - n);
                buf[n..n + k].copy_from_slice(&self.rbuf[self.out.0..self.out.0 + k]);
                self.out.0 += k;
                n += k;
                if n == buf.len() {
                    return Ok(Some(n));
                }
                continue;
            }
            if self.ended.is_some() || self.failed {
                return Ok(Some(n));
            }
            if self.decode_one(stderr)? {
                continue;
            }
            if n > 0 {
                return Ok(Some(n));
            }
            if !self.readable {
                return Ok(None);
            }
            if fills == FILLS_PER_READ {
                self.capped = true;
                return Ok(None);
            }
            fills += 1;
            match self.fill() {
                Ok(0) => {
                    self.fail(&io::Error::new(io::ErrorKind::UnexpectedEof, "closed before the end of the response"));
                    return Ok(Some(0));
                }
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.readable = false;
                    return Ok(None);
                }
                Err(e) => {
                    self.fail(&e);
                    return Err(e);
                }
            }
        }
    }

    /// Reads once into the record buffer, making room first.
    fn fill(&mut self) -> io::Result<usize> {
        if self.rstart == self.rend {
            (self.rstart, self.rend) = (0, 0);
        } else if self.rend == self.rbuf.len() && self.rstart > 0 {
            self.rbuf.copy_within(self.rstart..self.rend, 0);
            (self.rstart, self.rend) = (0, self.rend - self.rstart);
        }
        if self.rend == self.rbuf.len() {
            // Small answers fit the first size; a record needs at most
            // the largest.
            let size = if self.rbuf.is_empty() { FIRST_READ } else { fcgi::MAX_RECORD };
            self.rbuf.resize(size.max(self.rend + 1), 0);
        }
        loop {
            match self.stream.read(&mut self.rbuf[self.rend..]) {
                Ok(k) => {
                    self.rend += k;
                    if k > 0 {
                        self.answer();
                    }
                    return Ok(k);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Takes the next whole record in the buffer, if there is one.
    fn decode_one(&mut self, stderr: &mut dyn FnMut(&[u8])) -> io::Result<bool> {
        let (kind, id, len, used) = match fcgi::decode(&self.rbuf[self.rstart..self.rend]) {
            Ok(Some((r, used))) => (r.kind, r.request_id, r.content.len(), used),
            Ok(None) => return Ok(false),
            Err(e) => {
                let e = io::Error::new(io::ErrorKind::InvalidData, e);
                self.fail(&e);
                return Err(e);
            }
        };
        let at = self.rstart + fcgi::HEADER_LEN;
        self.rstart += used;
        if id != ID {
            // Another request's, or the connection's (management
            // records): nothing this request asked for.
            return Ok(true);
        }
        match kind {
            RecordType::Stdout => self.out = (at, at + len),
            RecordType::Stderr => stderr(&self.rbuf[at..at + len]),
            RecordType::EndRequest => match fcgi::end_request(&self.rbuf[at..at + len]) {
                Ok(status) => {
                    if status.1 != 0 {
                        log::warn!("{}: the request ended with protocol status {}", self.addr, status.1);
                    }
                    self.ended = Some(status);
                }
                Err(e) => {
                    let e = io::Error::new(io::ErrorKind::InvalidData, e);
                    self.fail(&e);
                    return Err(e);
                }
            },
            _ => {}
        }
        Ok(true)
    }

    fn answer(&mut self) {
        self.answered = true;
        if let Some(w) = self.watch.take() {
            w.state.store(DONE, Ordering::Relaxed);
        }
    }

    /// The request is over: its watch too (GONE when never answered).
    fn unwatch(&mut self) {
        if let Some(w) = self.watch.take() {
            w.state.store(if self.answered { DONE } else { GONE }, Ordering::Relaxed);
        }
    }

    /// The protocol status of the end, if the request ended.
    pub(crate) fn protocol_status(&self) -> Option<u8> {
        self.ended.map(|(_, p)| p)
    }

    /// Looks, without waiting, for the end of a response whose rest is
    /// not wanted (an X-Sendfile answer): what is buffered or can be read
    /// now is taken and dropped, up to `FCGI_END_REQUEST`.
    fn settle(&mut self) {
        let mut drop_buf = [0u8; 4096];
        for _ in 0..16 {
            self.out = (0, 0);
            match self.read_stdout(&mut drop_buf, &mut |_| {}) {
                Ok(Some(_)) if self.ended.is_none() && !self.failed => {}
                _ => return,
            }
        }
    }

    /// Whether the connection can serve another request.
    fn reusable(&self) -> bool {
        self.keep_conn
            && !self.failed
            && self.ended.is_some_and(|(_, p)| p == 0)
            && self.stdin_ended
            && self.wpos == self.wbuf.len()
            && self.rstart == self.rend
            && self.out.0 == self.out.1
    }

    /// Ready for the next request on the same connection.
    fn reset(&mut self) {
        self.reused = true;
        self.capped = false;
        (self.rstart, self.rend, self.out) = (0, 0, (0, 0));
        self.wbuf.clear();
        self.wpos = 0;
        self.stdin_ended = false;
        self.sent = false;
        self.ended = None;
        self.answered = false;
        self.readable = true;
        self.writable = true;
    }
}

impl Drop for FcgiLink {
    fn drop(&mut self) {
        self.answer();
    }
}

/// Why no connection could be had.
#[derive(Debug)]
pub(crate) enum ConnectError {
    /// The server's listen queue is full (`EAGAIN` on a Unix socket).
    Busy(io::Error),
    /// Refused, no such socket, no route: the server is not there.
    Down(io::Error),
}

/// Each FastCGI server's requests in flight and idle connections.
#[derive(Debug, Default)]
pub(crate) struct FcgiPool {
    servers: HashMap<FcgiAddr, Server>,
}

#[derive(Debug, Default)]
struct Server {
    running: usize,
    /// The limit the last request planned for it carried.
    max: usize,
    /// Kept connections and since when, the oldest first.
    idle: Vec<(FcgiLink, Instant)>,
    /// The new connections not answered yet.
    watches: Vec<Arc<Watch>>,
    /// How many requests at once the server has been seen to take (its
    /// workers, as far as it lends them to this loop); `None` until a
    /// connection was seen to wait in its listen queue. See
    /// [`learn`](Self::learn).
    workers: Option<usize>,
    /// The watch of a connection made over `workers`, to see whether
    /// there is one more worker now.
    trying: Option<Arc<Watch>>,
    /// Requests to end before the next try, and the wait after the next
    /// failed one.
    try_in: u32,
    backoff: u32,
    /// Workers freed by closing connections while others waited in the
    /// listen queue, not yet seen taking one: between requests, still
    /// the server's (see [`learn`](Self::learn)).
    freed: usize,
    /// Workers still running a script whose client left: warren closed
    /// the connection (after `FCGI_ABORT_REQUEST`), and PHP stops the
    /// script only at its next output. Counted as busy until a new
    /// connection is seen taken, so the line does not send requests into
    /// the listen queue behind them.
    ghosts: usize,
}

impl Server {
    /// Looks at the new connections' watches (the ended ones let go).
    fn queued(&mut self) -> Queued {
        let mut q = Queued::default();
        self.watches.retain(|w| {
            let state = w.look();
            if matches!(state, TAKEN | DONE) && !w.counted.swap(true, Ordering::Relaxed) {
                q.taken += 1;
            }
            match state {
                DONE | GONE => false,
                TAKEN => true,
                _ => {
                    if w.unix && w.mark.load(Ordering::Relaxed) > 0 {
                        q.waiting += 1;
                    } else {
                        q.unknown += 1;
                    }
                    true
                }
            }
        });
        // Each connection taken had a free worker: maybe one this loop
        // freed, or one a left script let go. With none waiting, those
        // freed are idle.
        let by_freed = self.freed.min(q.taken);
        self.freed = if q.waiting == 0 { 0 } else { self.freed - by_freed };
        self.ghosts = self.ghosts.saturating_sub(q.taken - by_freed);
        q
    }

    /// A request ended (`running` still counts it; `taken`: it had a
    /// worker) with `q` waiting: the server's worker count, learned from
    /// its listen queue.
    ///
    /// A php-fpm worker serves one connection at a time, so with more
    /// connections than workers the rest wait in the listen queue, and a
    /// kept connection holds its worker while idle. When connections are
    /// seen waiting, the workers are those running the others: the
    /// limit becomes `running - waiting`, and requests over it wait in
    /// this loop's queue (in order, for up to `cgi-timeout`) instead,
    /// where a kept connection is handed to the next. Now and then one
    /// request over the limit tries a new connection: the pool may have
    /// grown (a `dynamic` or `ondemand` pool starts workers as needed);
    /// taken, the limit grows by one and the next try follows at once;
    /// left waiting, the next waits twice as many requests as the last
    /// (up to [`MAX_PROBE_BACKOFF`]). Only Unix sockets can tell (see
    /// [`Watch`]); over TCP the limit stays the configured one.
    fn learn(&mut self, addr: &FcgiAddr, q: Queued, taken: bool) {
        self.try_in = self.try_in.saturating_sub(1);
        // The requests that have a worker: all running but those seen
        // waiting, and this one if it never had one.
        let busy = self.running.saturating_sub(usize::from(!taken));
        let before = self.workers;
        // A try is judged at the first end after it began: a worker that
        // end frees (once its connection is closed) could take it next,
        // which would say nothing of the pool.
        if let Some(t) = &self.trying {
            if matches!(t.look(), TAKEN | DONE) {
                self.tried();
            } else {
                self.trying = None;
                self.backoff = (self.backoff * 2).clamp(2, MAX_PROBE_BACKOFF);
                self.try_in = self.backoff;
            }
        }
        if q.unknown > 0 {
            return;
        }
        if q.waiting > 0 {
            // Those running and not waiting have a worker each, and so
            // has each idle kept connection; and those freed by closing
            // a connection will take a waiting one.
            self.workers = Some((busy.saturating_sub(q.waiting) + self.idle.len() + self.freed + self.ghosts).max(1));
        } else if let Some(w) = self.workers {
            // None waits: every request running has a worker, and so has
            // every idle kept connection (a pool that forks workers as
            // connections wait has grown under the last tries).
            self.workers = Some(w.max(busy + self.idle.len() + self.ghosts));
        }
        if self.workers != before {
            if let Some(w) = self.workers {
                log::debug!("{addr}: {w} request(s) at once (learned from its listen queue)");
            }
        }
    }

    /// The connection being tried was taken, with no request ending
    /// meanwhile: one more worker; the next try may follow at once.
    fn tried(&mut self) {
        if self.trying.take().is_some() {
            self.workers = self.workers.map(|w| w + 1);
            self.backoff = 0;
            self.try_in = 0;
        }
    }

    /// How many requests may run: the mount's limit, or fewer when the
    /// server was seen to take fewer (one more while trying).
    fn limit(&self) -> usize {
        let max = self.max.max(1);
        match self.workers {
            Some(w) if w < max => {
                w.saturating_sub(self.ghosts) + usize::from(self.trying.is_some() || self.try_in == 0)
            }
            _ => max,
        }
    }
}

impl FcgiPool {
    /// Requests in flight at `addr`, and how many may be (`max`, from the
    /// mount of the request asking, is remembered for the waiters).
    pub(crate) fn slots(&mut self, addr: &FcgiAddr, max: Option<usize>) -> (usize, usize) {
        let s = self.servers.entry(addr.clone()).or_default();
        if let Some(m) = max {
            s.max = m;
        }
        (s.running, s.limit())
    }

    /// A request has waited [`TRY_AFTER`] for a server under its learned
    /// limit with nothing ending meanwhile (long scripts): whether one
    /// more connection may be tried now, whatever the backoff. Not while
    /// a connection is seen waiting in the listen queue.
    pub(crate) fn try_more(&mut self, addr: &FcgiAddr) -> bool {
        let Some(s) = self.servers.get_mut(addr) else { return false };
        let q = s.queued();
        if q.waiting + q.unknown > 0 || s.workers.is_none() {
            return false;
        }
        s.tried();
        s.try_in = 0;
        s.running < s.limit()
    }

    /// Closes connections idle for [`IDLE_KEPT`] (each holds a php-fpm
    /// worker; and a server a reload removed is let go).
    pub(crate) fn expire(&mut self, now: Instant, reaper: &mut Reaper) {
        for s in self.servers.values_mut() {
            let old = s.idle.iter().take_while(|(_, since)| now.saturating_duration_since(*since) >= IDLE_KEPT).count();
            for (link, _) in s.idle.drain(..old) {
                close(link, reaper);
            }
        }
    }

    /// When [`expire`](Self::expire) has something to do next.
    pub(crate) fn next_expiry(&self) -> Option<Instant> {
        self.servers.values().filter_map(|s| s.idle.first()).map(|(_, since)| *since + IDLE_KEPT).min()
    }

    /// Whether `addr` runs as many requests as the mount allows (not
    /// only as many as it has been seen to take).
    pub(crate) fn at_max(&self, addr: &FcgiAddr) -> bool {
        self.servers.get(addr).is_some_and(|s| s.running >= s.max.max(1))
    }

    /// A connection for a request to `addr`: an idle one that is still
    /// open, or a new one. `keep_conn`: ask the server to keep it.
    /// `fresh`: a new one, whatever is idle.
    pub(crate) fn connect(
        &mut self,
        addr: &FcgiAddr,
        keep_conn: bool,
        fresh: bool,
        reaper: &mut Reaper,
    ) -> Result<FcgiLink, ConnectError> {
        let s = self.servers.entry(addr.clone()).or_default();
        while let Some((mut link, _)) = s.idle.pop().filter(|_| !fresh) {
            if link.stream.quiet() {
                link.keep_conn = keep_conn;
                if s.workers.is_some_and(|w| s.running >= w) {
                    // Kept, it has a worker: one more than was thought.
                    s.workers = Some(s.running + 1);
                }
                s.running += 1;
                return Ok(link);
            }
            close(link, reaper);
        }
        let stream = match Stream::connect(addr) {
            Ok(st) => st,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Err(ConnectError::Busy(e)),
            Err(e) => return Err(ConnectError::Down(e)),
        };
        let watch = Arc::new(Watch {
            fd: stream.as_raw_fd(),
            mark: AtomicUsize::new(0),
            state: AtomicU8::new(WAITING),
            unix: matches!(stream, Stream::Unix(_)),
            counted: AtomicBool::new(false),
        });
        if s.trying.is_none() && s.workers.is_some_and(|w| s.running >= w) {
            s.trying = Some(watch.clone());
        }
        s.running += 1;
        s.watches.push(watch.clone());
        Ok(FcgiLink {
            connecting: matches!(stream, Stream::Tcp(_)),
            stream,
            addr: addr.clone(),
            keep_conn,
            reused: false,
            readable: true,
            writable: true,
            rbuf: Vec::new(),
            rstart: 0,
            rend: 0,
            out: (0, 0),
            wbuf: Vec::new(),
            wpos: 0,
            stdin_ended: false,
            sent: false,
            ended: None,
            failed: false,
            answered: false,
            input_gone: false,
            capped: false,
            token: None,
            watch: Some(watch),
        })
    }

    /// A request is over: its connection is kept for the next one when
    /// it ended cleanly, the server was asked to keep it, fewer than
    /// `keepalive` are idle, and no new connection to this server waits
    /// in its listen queue (or may: over TCP, one not answered yet). It
    /// may be waiting for the worker this one would hold: php-fpm's
    /// workers serve one connection at a time. Else it is closed, after
    /// `FCGI_ABORT_REQUEST` when the request was cut short (`abort`).
    pub(crate) fn release(&mut self, mut link: FcgiLink, keepalive: usize, abort: bool, reaper: &mut Reaper) {
        let Some(s) = self.servers.get_mut(&link.addr) else { return close(link, reaper) };
        // Whether it had a worker: a request whose client left while it
        // waited in the listen queue had none.
        let taken =
            link.answered || (link.reused && !link.failed) || link.watch.as_ref().is_some_and(|w| w.look() == TAKEN);
        // This one's watch is over, whatever it says.
        link.unwatch();
        let q = s.queued();
        s.learn(&link.addr, q, taken);
        s.running = s.running.saturating_sub(1);
        // Closed, its worker (if it had one) takes a waiting connection.
        if q.waiting > 0 && taken {
            s.freed += 1;
        }
        if abort && link.ended.is_none() && !link.failed && !link.connecting {
            if taken && s.workers.is_some() {
                s.ghosts = (s.ghosts + 1).min(s.workers.unwrap_or(0));
            }
            if link.wpos == link.wbuf.len() {
                let mut rec = Vec::with_capacity(fcgi::HEADER_LEN);
                fcgi::abort_request(&mut rec, ID);
                // Best effort: the connection is closed right after.
                let _ = link.stream.write(&rec);
            }
            return close(link, reaper);
        }
        if !abort && link.ended.is_none() {
            link.settle();
        }
        if link.reusable() && s.idle.len() < keepalive && q.waiting + q.unknown == 0 {
            link.reset();
            s.idle.push((link, Instant::now()));
        } else {
            close(link, reaper);
        }
    }
}

/// Closes `link`: out of the poll first (see [`Reaper::forget`]), its
/// token let go.
fn close(link: FcgiLink, reaper: &mut Reaper) {
    if let Some(token) = link.token {
        reaper.forget_token(link.fd(), token);
    }
}
