//! The HTTP/1.1 server role: reads request heads and bodies, dispatches to
//! mounts, and writes responses one step per writeable moment.
//!
//! A connection is two state machines side by side: [`Reading`] (head,
//! body, done, lingering) and [`Writing`] (idle, streaming a file, a
//! protocol's response, complete, shutting down). A transaction ends when
//! the response is complete and its bytes have left; then the connection
//! either waits for the next request (keep-alive; pipelined bytes already
//! read are parsed at once) or closes.

use crate::auth;
use crate::context::VhostInfo;
use crate::http::plan::{plan_file, FileBody, FileMeta, FilePolicy, Multipart};
use crate::http::request::{self, Framing, HeadError, Limits as HeadLimits, Method, Request};
use crate::http::{uri, BodyDecoder, Version};
use crate::mount::{self, Origin};
use crate::protocol::{Action, Command, Cx, RawEvent, Session, Writer, WsiId};
use crate::roles::cgi::{CgiRun, Exit, OutFraming, EXIT_WAIT};
use crate::roles::ws::{Upgrade, WsConn};
use crate::service::Shared;
use crate::ws::handshake::{self, Refusal};
use crate::wsi::{
    begin_head, end_head, error_response, BodyFraming, CbResp, HeadEnv, Out, ResponseWriter, Transport, TxInfo,
};
use mio::net::TcpStream;
use std::fmt;
use std::io;
use std::io::SeekFrom;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use warren_vfs::{ContentEncoding, FileFlags, FileHandle, OpenFlags, VPath};

/// Steps a connection may take per service call before others get a turn.
const BUDGET: usize = 16;
/// The most bytes one `sendfile` is asked for (nginx's default
/// `sendfile_max_chunk`); the kernel sends what fits in the socket.
const SENDFILE_CHUNK: u64 = 2 << 20;
/// The most bytes one read-and-write step moves for a file that cannot be
/// sent with `sendfile`.
const READ_CHUNK: usize = 16 * 1024;
/// Formatted validators kept at most (see `Shared::validators`).
const VALIDATOR_CACHE: usize = 4096;
/// How long a request waits for a CGI slot before 503 (it is started as
/// soon as one frees: `Shared::cgi_waiters`).
const CGI_SLOT_WAIT: std::time::Duration = std::time::Duration::from_secs(2);
/// How long a request waits for a file that is not ready yet (a big
/// archive's directory loading) before it gets 503.
const FILE_WAIT: std::time::Duration = std::time::Duration::from_secs(10);
/// How often it tries again when the fops gave nothing to wait on.
const FILE_WAIT_POLL: std::time::Duration = std::time::Duration::from_millis(50);
/// Local CGI redirects followed for one request.
const MAX_LOCAL_REDIRECTS: u8 = 3;
/// Bodies up to this size go out in the same write as the head.
const SMALL_BODY: usize = 32 * 1024;

/// What the service should do with a connection after serving it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    Keep,
    Close,
    /// The connection switched protocols: hand it to the ws role.
    Upgrade,
}

/// Why a connection is being closed (for the debug log).
#[derive(Debug)]
pub(crate) struct Close(pub(crate) String);

impl From<io::Error> for Close {
    fn from(e: io::Error) -> Close {
        Close(e.to_string())
    }
}

#[derive(Debug)]
enum Reading {
    /// Waiting for a request head; `started`: some of it has arrived and
    /// the absolute header deadline runs.
    Head { started: bool },
    /// Reading the body, which goes to the bound protocol.
    Body(BodyDecoder),
    /// The request is read; the response is under way.
    Done,
    /// Closing: read and drop whatever comes until EOF or the deadline.
    Linger,
}

#[derive(Debug)]
enum Writing {
    /// No response started.
    Idle,
    /// A file body is streaming.
    File { file: Box<dyn FileHandle>, remaining: u64 },
    /// A multipart/byteranges body is streaming.
    Multipart(Box<MultipartSend>),
    /// A protocol writes the response.
    Callback(CbResp),
    /// A file going through a protocol's ProcessHtml (FILE-9).
    Interpret { file: Box<dyn FileHandle>, remaining: u64 },
    /// A CGI program is answering.
    Cgi(Box<CgiRun>),
    /// A CGI mount is at its process limit: the request waits for a slot
    /// (rx paused) until `until`, then gets 503.
    CgiWait { req: Box<Request>, mount: usize, until: std::time::Instant, redirects: u8 },
    /// The file's fops answered `WouldBlock` (a big archive's directory
    /// is loading): the open is tried again when the loop is woken for it
    /// (or every `FILE_WAIT_POLL` when `poll`), until `until`, then 503.
    FileWait { req: Box<Request>, mount: usize, until: std::time::Instant, poll: bool },
    /// The response is complete once the pending remainder drains.
    Complete,
    /// Close after the remainder drains.
    Shutdown,
    /// Our side is shut down.
    Closed,
}

#[derive(Debug)]
struct Binding {
    vhost: usize,
    protocol: usize,
    session: Session,
}

/// An HTTP/1 connection.
#[derive(Debug)]
pub(crate) struct Conn {
    pub(crate) key: usize,
    pub(crate) generation: u32,
    pub(crate) out: Out,
    /// The socket may have bytes for us (cleared at `WouldBlock`).
    pub(crate) readable: bool,
    /// Queued on the forced-service list.
    pub(crate) forced: bool,
    /// A protocol asked for a writeable callback.
    pub(crate) want_writable: bool,
    /// The peer has shut down its side (EPOLLRDHUP): a short read no
    /// longer means "drained", since no new edge will announce the EOF.
    pub(crate) hup: bool,
    rx_paused: bool,
    peer: SocketAddr,
    listener: usize,
    vhost: usize,
    /// Bytes read but not yet consumed: a partial head, or pipelined
    /// requests. Empty (no allocation) on an idle connection.
    input: Vec<u8>,
    reading: Reading,
    writing: Writing,
    tx: TxInfo,
    binding: Option<Binding>,
    /// The request being answered, for the access log (only when the
    /// vhost has one), and the byte count when its response began.
    logging: Option<Box<(crate::access_log::Entry, u64)>>,
    /// A WebSocket upgrade was accepted: the 101 is written (or pending)
    /// and the connection is to become a ws one.
    upgrade: Option<Box<Upgrade>>,
    /// rx is paused for a CGI (its stdin is full, or it waits for a slot),
    /// not by a protocol.
    cgi_paused_rx: bool,
    /// The current request has a body that has not been read to its end.
    /// Whatever path answered it, the connection is not reused while this
    /// holds: the unread bytes would be parsed as the next request.
    body_unread: bool,
    /// While a body is read: when it must be complete unless more bytes
    /// come (`Limits::body_timeout`, pushed back by each byte at
    /// `Limits::body_min_rate` and by the time rx is paused on our side).
    body_deadline: Option<std::time::Instant>,
    /// Since when rx has been paused (for `body_deadline`).
    rx_paused_at: Option<std::time::Instant>,
}

impl Conn {
    pub(crate) fn new(
        key: usize,
        generation: u32,
        stream: TcpStream,
        peer: SocketAddr,
        listener: usize,
        vhost: usize,
    ) -> Conn {
        let mut out = Out::new(Transport::Plain(stream));
        // A new socket has an empty send buffer.
        out.writable = true;
        Conn {
            key,
            generation,
            out,
            readable: false,
            forced: false,
            want_writable: false,
            hup: false,
            rx_paused: false,
            peer,
            listener,
            vhost,
            input: Vec::new(),
            reading: Reading::Head { started: false },
            writing: Writing::Idle,
            tx: TxInfo::default(),
            binding: None,
            logging: None,
            upgrade: None,
            cgi_paused_rx: false,
            body_unread: false,
            body_deadline: None,
            rx_paused_at: None,
        }
    }

    pub(crate) fn peer_addr(&self) -> SocketAddr {
        self.peer
    }

    /// A word for logs: what the connection was doing.
    pub(crate) fn phase(&self) -> &'static str {
        match (&self.reading, &self.writing) {
            (Reading::Head { started: false }, _) => "keep-alive idle",
            (Reading::Head { started: true }, _) => "request head",
            (Reading::Body(_), _) => "request body",
            (Reading::Linger, _) => "close",
            (Reading::Done, Writing::File { .. }) => "file response",
            (Reading::Done, Writing::Callback(_)) => "protocol response",
            (Reading::Done, _) => "response",
        }
    }

    fn writing_is(&self, state: CbResp) -> bool {
        matches!(&self.writing, Writing::Callback(s) if *s == state)
    }

    /// The (vhost, protocol) this connection is bound to.
    pub(crate) fn bound_to(&self) -> Option<(usize, usize)> {
        self.binding.as_ref().map(|b| (b.vhost, b.protocol))
    }

    fn id(&self) -> WsiId {
        WsiId { key: self.key as u32, generation: self.generation }
    }

    /// Serves the connection as far as it can go now.
    pub(crate) fn service(&mut self, sh: &mut Shared) -> Step {
        for _ in 0..BUDGET {
            let r = self.step(sh);
            if self.upgrade.is_some() {
                return Step::Upgrade;
            }
            match r {
                Ok(true) => {}
                Ok(false) => {
                    self.track_rx_pause(sh.now);
                    return Step::Keep;
                }
                Err(Close(why)) => {
                    log::debug!("{}: closing: {why}", self.peer);
                    return Step::Close;
                }
            }
        }
        self.track_rx_pause(sh.now);
        sh.force(self);
        Step::Keep
    }

    /// Time rx spends paused on our side (a protocol's flow control, a
    /// CGI's full stdin) does not count against the body's deadline.
    fn track_rx_pause(&mut self, now: std::time::Instant) {
        match (self.rx_paused, self.rx_paused_at) {
            (true, None) => self.rx_paused_at = Some(now),
            (false, Some(since)) => {
                if let Some(d) = self.body_deadline.as_mut() {
                    *d += now.saturating_duration_since(since);
                }
                self.rx_paused_at = None;
            }
            _ => {}
        }
    }

    fn step(&mut self, sh: &mut Shared) -> Result<bool, Close> {
        self.track_rx_pause(sh.now);
        if self.hup && matches!(self.writing, Writing::Cgi(_) | Writing::CgiWait { .. }) {
            // The client hung up (or half-closed, which we take the same
            // way, as nginx does for upstreams): end the program now
            // (CGI-9) rather than when its output meets a dead socket.
            return Err(Close("client went away during a CGI response".into()));
        }
        if self.hup && matches!(self.writing, Writing::FileWait { .. }) {
            return Err(Close("client went away while its file was not ready".into()));
        }
        let mut progress = false;
        if self.out.writable {
            progress |= self.write_step(sh)?;
        }
        if !self.rx_paused {
            progress |= self.read_step(sh)?;
        }
        Ok(progress)
    }

    // ---- writing ----------------------------------------------------------

    fn write_step(&mut self, sh: &mut Shared) -> Result<bool, Close> {
        let mut progress = false;
        if self.out.has_pending() {
            progress = self.out.flush()?;
            if progress {
                // A CGI response keeps its own timeout (any byte out is
                // progress for it); everything else the I/O one.
                let timeout = match &self.writing {
                    Writing::Cgi(run) => sh.vhosts[run.vhost].mounts[run.mount].cgi.timeout,
                    _ => sh.limits.io_timeout,
                };
                sh.timers.set(self.key, sh.now + timeout);
            }
            if self.out.has_pending() {
                return Ok(progress);
            }
        }
        match &mut self.writing {
            Writing::Idle | Writing::Closed => Ok(progress),
            Writing::Complete | Writing::Callback(CbResp::Done) => {
                self.finish_transaction(sh);
                Ok(true)
            }
            Writing::File { .. } => Ok(self.send_file_chunk(sh)? || progress),
            Writing::Multipart(_) => Ok(self.send_multipart_step(sh)? || progress),
            Writing::Interpret { .. } => Ok(self.interpret_step(sh)? || progress),
            Writing::Cgi(_) => Ok(self.cgi_step(sh)? || progress),
            Writing::CgiWait { .. } | Writing::FileWait { .. } => Ok(progress),
            Writing::Callback(_) => {
                if !self.want_writable {
                    return Ok(progress);
                }
                self.want_writable = false;
                let sent = self.out.sent;
                self.deliver_writeable(sh)?;
                if let Some(kind) = self.out.failed {
                    return Err(Close(format!("write failed: {}", io::Error::from(kind))));
                }
                if self.out.sent != sent {
                    sh.timers.set(self.key, sh.now + sh.limits.io_timeout);
                }
                Ok(true)
            }
            Writing::Shutdown => {
                if let Err(e) = self.out.sock.stream().shutdown(std::net::Shutdown::Write) {
                    return Err(e.into());
                }
                self.writing = Writing::Closed;
                self.reading = Reading::Linger;
                self.rx_paused = false;
                self.input = Vec::new();
                sh.timers.set(self.key, sh.now + sh.limits.linger);
                Ok(true)
            }
        }
    }

    fn send_file_chunk(&mut self, sh: &mut Shared) -> Result<bool, Close> {
        let Conn { writing, out, key, .. } = self;
        let Writing::File { file, remaining } = writing else { return Ok(false) };
        if *remaining == 0 {
            *writing = Writing::Complete;
            return Ok(true);
        }
        send_chunk(out, file.as_mut(), remaining, sh, *key)
    }

    /// One piece of an interpreted file: read, hand to the protocol,
    /// send what it leaves as a chunk (or raw on HTTP/1.0).
    fn interpret_step(&mut self, sh: &mut Shared) -> Result<bool, Close> {
        let Writing::Interpret { file, remaining } = &mut self.writing else { return Ok(false) };
        let mut chunk = std::mem::take(&mut sh.tx);
        chunk.clear();
        chunk.resize(READ_CHUNK.min(*remaining as usize), 0);
        let n = match file.read(&mut chunk) {
            Ok(n) => n,
            Err(e) => {
                sh.tx = chunk;
                return Err(e.into());
            }
        };
        if n == 0 && *remaining > 0 {
            sh.tx = chunk;
            return Err(Close("file shrank while being sent".into()));
        }
        chunk.truncate(n);
        *remaining -= n as u64;
        let last = *remaining == 0;
        let (id, peer) = (self.id(), self.peer);
        let r = self.dispatch(sh, RawEvent::ProcessHtml(id, peer, &mut chunk, last));
        if let Err(e) = r {
            sh.tx = chunk;
            return Err(e);
        }
        if chunk.len() > crate::protocol::HtmlChunk::MAX {
            sh.tx = chunk;
            return Err(Close("an interpreting protocol grew a piece past HtmlChunk::MAX".into()));
        }
        let chunked = self.tx.version == Version::Http11;
        let size = format!("{:x}\r\n", chunk.len());
        let empty = chunk.is_empty();
        if chunked && !empty {
            chunk.extend_from_slice(b"\r\n");
        }
        if chunked && last {
            chunk.extend_from_slice(b"0\r\n\r\n");
        }
        let r = if chunked && !empty {
            self.out.write_parts(size.as_bytes(), &chunk)
        } else {
            self.out.write(&chunk, false)
        };
        sh.tx = chunk;
        r?;
        sh.timers.set(self.key, sh.now + sh.limits.io_timeout);
        if last {
            self.writing = Writing::Complete;
        }
        Ok(true)
    }

    /// One step of a multipart/byteranges body: a part's header, a chunk
    /// of its bytes, or the closing boundary.
    fn send_multipart_step(&mut self, sh: &mut Shared) -> Result<bool, Close> {
        let Conn { writing, out, key, .. } = self;
        let Writing::Multipart(m) = writing else { return Ok(false) };
        if m.in_part > 0 {
            return send_chunk(out, m.file.as_mut(), &mut m.in_part, sh, *key);
        }
        let buf = &mut sh.tx;
        buf.clear();
        match m.plan.parts.get(m.next) {
            Some(&(a, b)) => {
                m.plan.part_header(buf, m.next);
                m.file.seek(SeekFrom::Start(a))?;
                m.in_part = b - a + 1;
                m.next += 1;
                out.write(buf, true)?;
            }
            None => {
                m.plan.closing(buf);
                out.write(buf, false)?;
                *writing = Writing::Complete;
            }
        }
        Ok(true)
    }

    fn deliver_writeable(&mut self, sh: &mut Shared) -> Result<(), Close> {
        let id = self.id();
        let body_unread = !matches!(self.reading, Reading::Done);
        let Conn { out, writing, tx, binding, peer, .. } = self;
        let (Some(b), Writing::Callback(state)) = (binding.as_mut(), writing) else { return Ok(()) };
        let Shared { vhosts, date, tx: scratch, commands, handle, .. } = sh;
        let VhostInfo { protocols, headers, server_string, .. } = &mut vhosts[b.vhost];
        let env = HeadEnv { date: date.text(), headers, server: server_string.as_deref() };
        let writer = Writer { inner: ResponseWriter { out, state, tx, scratch, env, body_unread } };
        let mut cx = Cx { commands, vhost: b.vhost, protocol: b.protocol, handle };
        let action =
            protocols[b.protocol].dispatch(&mut cx, RawEvent::Writeable(id, *peer, writer), Some(&mut b.session));
        self.after_callback(sh, action)
    }

    /// Ends a transaction whose response has fully left.
    fn finish_transaction(&mut self, sh: &mut Shared) {
        self.want_writable = false;
        self.log_transaction(sh);
        if self.tx.keep_alive && matches!(self.reading, Reading::Done) && !self.body_unread {
            // A pause of rx was about the request that just ended.
            self.rx_paused = false;
            self.writing = Writing::Idle;
            self.reading = Reading::Head { started: false };
            let keepalive = sh.vhosts[self.vhost].keepalive_timeout;
            sh.timers.set(self.key, sh.now + keepalive);
        } else {
            self.writing = Writing::Shutdown;
        }
    }

    // ---- reading ----------------------------------------------------------

    fn read_step(&mut self, sh: &mut Shared) -> Result<bool, Close> {
        if matches!(self.reading, Reading::Done) {
            return Ok(false);
        }
        if !self.input.is_empty() && !matches!(self.reading, Reading::Linger) {
            let input = std::mem::take(&mut self.input);
            let used = self.consume(sh, &input)?;
            if used > 0 {
                self.input = input;
                self.input.drain(..used);
                if self.input.is_empty() {
                    self.input = Vec::new();
                }
                return Ok(true);
            }
            self.input = input;
        }
        if !self.readable {
            return Ok(false);
        }
        let mut rx = std::mem::take(&mut sh.rx);
        let r = self.read_into(sh, &mut rx);
        sh.rx = rx;
        r
    }

    fn read_into(&mut self, sh: &mut Shared, rx: &mut [u8]) -> Result<bool, Close> {
        let n = match self.out.read(rx)? {
            None => {
                self.readable = false;
                return Ok(false);
            }
            Some(0) => {
                return Err(Close(match self.reading {
                    Reading::Linger => "done".into(),
                    _ => "peer closed".into(),
                }))
            }
            Some(n) => n,
        };
        if n < rx.len() && !self.hup {
            // A short read means the socket is drained (edge-triggered: a
            // new edge comes with new data), saving the WouldBlock read.
            self.readable = false;
        }
        if matches!(self.reading, Reading::Linger) {
            return Ok(true);
        }
        if self.input.is_empty() {
            let used = self.consume(sh, &rx[..n])?;
            if used < n {
                self.input.extend_from_slice(&rx[used..n]);
            }
        } else {
            self.input.extend_from_slice(&rx[..n]);
            // PERF: a head can only complete with a new line; while a
            // trickling client sends none, do not re-parse what we have.
            let head = matches!(self.reading, Reading::Head { .. });
            if head && !rx[..n].contains(&b'\n') && self.input.len() <= sh.limits.max_head {
                return Ok(true);
            }
            let input = std::mem::take(&mut self.input);
            let used = self.consume(sh, &input)?;
            self.input = input;
            self.input.drain(..used);
            if self.input.is_empty() {
                self.input = Vec::new();
            }
        }
        Ok(true)
    }

    /// Consumes what the reading state can take from `input`.
    fn consume(&mut self, sh: &mut Shared, input: &[u8]) -> Result<usize, Close> {
        let mut used = 0;
        while used < input.len() && !self.rx_paused {
            match &mut self.reading {
                Reading::Head { started } => {
                    let limits = HeadLimits { max_head: sh.limits.max_head, max_uri: sh.limits.max_uri };
                    match request::parse(&input[used..], limits) {
                        Ok(None) => {
                            if !*started {
                                *started = true;
                                sh.timers.set(self.key, sh.now + sh.limits.header_timeout);
                            }
                            break;
                        }
                        Ok(Some((req, n))) => {
                            used += n;
                            self.on_request(sh, req)?;
                        }
                        Err(e) => {
                            self.refuse_head(sh, e);
                            return Ok(input.len());
                        }
                    }
                }
                Reading::Body(decoder) => {
                    let (n, data) = match decoder.decode(&input[used..]) {
                        Ok(r) => r,
                        Err(e) => {
                            log::debug!("{}: bad request body: {e:?}", self.peer);
                            self.body_failed(sh, 400, "bad request body")?;
                            return Ok(input.len());
                        }
                    };
                    if let Some(deadline) = self.body_deadline.as_mut() {
                        if sh.now > *deadline {
                            // Slower than the minimum rate for too long: the
                            // slot goes to someone else (as Apache's
                            // mod_reqtimeout does).
                            log::info!("{}: request body too slow; 408", self.peer);
                            self.body_deadline = None;
                            self.body_failed(sh, 408, "request body too slow")?;
                            return Ok(input.len());
                        }
                        let credit = rate_credit(n, sh.limits.body_min_rate);
                        *deadline = (*deadline + credit).min(sh.now + crate::MAX_TIMEOUT);
                    }
                    used += n;
                    let done = decoder.is_done();
                    if done {
                        self.reading = Reading::Done;
                        self.body_unread = false;
                        self.body_deadline = None;
                    }
                    if let Writing::Cgi(run) = &mut self.writing {
                        // CGI: the body goes to the program's stdin; bytes
                        // it takes are progress for its timeout.
                        let mut moved = false;
                        if let Some(data) = data {
                            moved |= run.feed(data);
                        }
                        if done {
                            run.body_done = true;
                            moved |= run.flush_stdin();
                        }
                        if run.input_blocked() {
                            self.rx_paused = true;
                            self.cgi_paused_rx = true;
                        }
                        if moved {
                            let timeout = sh.vhosts[run.vhost].mounts[run.mount].cgi.timeout;
                            sh.timers.set(self.key, sh.now + timeout);
                        }
                        sh.force(self);
                    } else {
                        if let Some(data) = data {
                            let (id, peer) = (self.id(), self.peer);
                            self.dispatch(sh, RawEvent::Body(id, peer, data))?;
                        }
                        if done {
                            let (id, peer) = (self.id(), self.peer);
                            self.dispatch(sh, RawEvent::BodyCompletion(id, peer))?;
                        } else {
                            sh.timers.set(self.key, sh.now + sh.limits.io_timeout);
                        }
                    }
                    if n == 0 {
                        break;
                    }
                }
                Reading::Done | Reading::Linger => break,
            }
        }
        Ok(used)
    }

    /// Answers a head we could not accept, then closes.
    fn refuse_head(&mut self, sh: &mut Shared, e: HeadError) {
        log::debug!("{}: bad request head: {e:?}", self.peer);
        self.tx = TxInfo { version: Version::Http11, keep_alive: false, head_only: false, status: 0 };
        self.reading = Reading::Done;
        if sh.access_logs.get(self.vhost).is_some_and(Option::is_some) {
            let entry = crate::access_log::Entry {
                method: "-".into(),
                path: "-".into(),
                proto: "HTTP/1.1",
                referer: String::new(),
                user_agent: String::new(),
            };
            self.logging = Some(Box::new((entry, self.out.sent)));
        }
        self.send_error(sh, e.status(), None);
    }

    // ---- requests ---------------------------------------------------------

    fn on_request(&mut self, sh: &mut Shared, req: Request) -> Result<(), Close> {
        sh.handle.inner.counters.requests.fetch_add(1, Ordering::Relaxed);
        self.tx = TxInfo {
            version: req.version(),
            keep_alive: req.keep_alive(),
            head_only: req.method() == Method::Head,
            status: 0,
        };
        sh.timers.set(self.key, sh.now + sh.limits.io_timeout);
        self.reading = Reading::Done;
        self.body_unread = !matches!(req.framing(), Framing::None | Framing::Length(0));
        if self.body_unread {
            // Only the paths that read the body (a protocol's, a CGI's)
            // let the connection be reused; every other answer closes.
            self.tx.keep_alive = false;
        }
        let rate_checked = self.body_unread && sh.limits.body_min_rate > 0;
        self.body_deadline = rate_checked.then(|| sh.now + sh.limits.body_timeout);
        self.vhost = select_vhost(&sh.vhosts, &sh.listeners[self.listener], req.host());
        if sh.access_logs.get(self.vhost).is_some_and(Option::is_some) {
            let entry = crate::access_log::Entry {
                method: req.method_str().to_string(),
                path: req.path().to_string(),
                proto: req.version().as_str(),
                referer: req.header_str("referer").unwrap_or("").to_string(),
                user_agent: req.header_str("user-agent").unwrap_or("").to_string(),
            };
            self.logging = Some(Box::new((entry, self.out.sent)));
        }
        if req.path() == "*" {
            self.skip_body(&req);
            self.send_simple(sh, 200, &[("Allow", "GET, HEAD, OPTIONS")], false);
            return Ok(());
        }
        if handshake::is_upgrade(&req) {
            self.upgrade_to_ws(sh, req);
            return Ok(());
        }
        let now = sh.now;
        let found = mount::find(&sh.vhosts[self.vhost].mounts, req.path()).map(|(i, _)| i).map(|i| {
            let m = &mut sh.vhosts[self.vhost].mounts[i];
            let verdict = m.basic_auth.as_mut().map(|c| c.check(req.header("authorization"), now));
            (i, matches!(m.origin, Origin::Callback(_)), verdict)
        });
        if let Some((mi, _, None | Some(auth::Verdict::Allowed))) = found {
            if matches!(sh.vhosts[self.vhost].mounts[mi].origin, Origin::Cgi(_)) {
                self.unbind(sh);
                self.serve_cgi(sh, req, mi, 0, false);
                return Ok(());
            }
        }
        match found {
            Some((_, _, Some(verdict))) if verdict != auth::Verdict::Allowed => {
                // AUTH-2: a challenge without a body, or 403 for nonsense.
                self.unbind(sh);
                self.skip_body(&req);
                match verdict {
                    auth::Verdict::Malformed => self.send_simple(sh, 403, &[], true),
                    _ => self.send_simple(sh, 401, &[("WWW-Authenticate", "Basic realm=\"lwsws\"")], false),
                }
            }
            Some((mi, true, _)) => return self.serve_callback(sh, req, mi),
            Some((mi, false, _)) => {
                self.unbind(sh);
                self.skip_body(&req);
                let redirect = match &sh.vhosts[self.vhost].mounts[mi].origin {
                    Origin::Redirect { to, append_path } => {
                        let m = &sh.vhosts[self.vhost].mounts[mi];
                        let rest = if *append_path { uri::encode_path(m.remainder(req.path())) } else { String::new() };
                        Some(format!("{to}{rest}"))
                    }
                    _ => None,
                };
                match redirect {
                    // REDIR-2/4: 301, Location exactly the target.
                    Some(to) => self.send_simple(sh, 301, &[("Location", &to), ("Content-Type", "text/html")], false),
                    None => self.serve_file(sh, &req, mi),
                }
            }
            None => {
                self.unbind(sh);
                self.skip_body(&req);
                self.send_error(sh, 404, Some(&req));
            }
        }
        Ok(())
    }

    /// Answers a WebSocket upgrade (WS-1..4): refused with 400/426 and the
    /// styled page, or accepted with a 101, after which the service hands
    /// the connection to the ws role.
    fn upgrade_to_ws(&mut self, sh: &mut Shared, req: Request) {
        self.unbind(sh);
        self.skip_body(&req);
        let vhost = &sh.vhosts[self.vhost];
        // Bytes after the head would be taken as frames: refuse a body.
        let body =
            if self.body_unread { Err(Refusal::BadRequest("a WebSocket upgrade cannot carry a body")) } else { Ok(()) };
        let chosen = body.and_then(|()| handshake::check(&req)).and_then(|o| {
            let found = if o.named_protocol {
                // WS-2: the first the client names that the vhost has.
                o.protocols.iter().find_map(|name| vhost.protocols.iter().position(|p| p.name() == name))
            } else {
                vhost.default_protocol.as_deref().and_then(|d| vhost.protocols.iter().position(|p| p.name() == d))
            };
            match found {
                Some(p) => Ok((o, p)),
                None if o.named_protocol => Err(Refusal::BadRequest("none of the subprotocols offered is served here")),
                None => Err(Refusal::BadRequest(
                    "this server has no default WebSocket protocol; name one in Sec-WebSocket-Protocol",
                )),
            }
        });
        let (offer, protocol) = match chosen {
            Ok(c) => c,
            Err(Refusal::Version) => {
                self.tx.keep_alive = false;
                return self.send_page(sh, 426, "WebSocket version 13 is required", &[("Sec-WebSocket-Version", "13")]);
            }
            Err(Refusal::BadRequest(why)) => {
                self.tx.keep_alive = false;
                return self.send_page(sh, 400, why, &[]);
            }
        };
        let name = vhost.protocols[protocol].name().to_string();
        let takes = crate::ws::deflate::protocol_takes_deflate(vhost.protocols[protocol].rx_buffer_size());
        let deflate = offer.deflate.filter(|_| vhost.ws_deflate && takes);
        sh.handle.inner.counters.ws_upgrades.fetch_add(1, Ordering::Relaxed);
        let buf = &mut sh.tx;
        buf.clear();
        buf.extend_from_slice(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n");
        buf.extend_from_slice(b"Sec-WebSocket-Accept: ");
        buf.extend_from_slice(offer.accept.as_bytes());
        if offer.named_protocol {
            buf.extend_from_slice(b"\r\nSec-WebSocket-Protocol: ");
            buf.extend_from_slice(name.as_bytes());
        }
        if let Some(d) = &deflate {
            buf.extend_from_slice(b"\r\nSec-WebSocket-Extensions: ");
            buf.extend_from_slice(d.response().as_bytes());
        }
        buf.extend_from_slice(b"\r\n\r\n");
        let bytes = std::mem::take(buf);
        self.send_buffered_from(&bytes);
        sh.tx = bytes;
        // LOG-1: the upgrade is logged as a 101 on "/path (protocol)".
        self.tx.status = 101;
        if let Some(entry) = self.logging.as_mut() {
            entry.0.path = format!("{} ({name})", entry.0.path);
        }
        self.log_transaction(sh);
        self.upgrade = Some(Box::new(Upgrade { protocol, deflate, request: req }));
    }

    /// Turns this connection into a WebSocket one after an accepted
    /// upgrade; returns it with the request that asked (for the
    /// protocol's established event).
    pub(crate) fn into_ws(mut self, sh: &Shared) -> Option<(WsConn, Request)> {
        let up = self.upgrade.take()?;
        let input = std::mem::take(&mut self.input);
        let ws = WsConn::new(self.key, self.generation, self.out, self.peer, self.vhost, &up, input, sh);
        Some((ws, up.request))
    }

    /// An error page with an explanation and extra headers.
    fn send_page(&mut self, sh: &mut Shared, status: u16, message: &str, extra: &[(&str, &str)]) {
        let (env, buf) = Self::env(sh, self.vhost);
        error_response(buf, &mut self.tx, status, message, extra, env);
        let bytes = std::mem::take(buf);
        self.send_buffered_from(&bytes);
        sh.tx = bytes;
    }

    /// A request body nobody will read: rather than read and drop an
    /// unbounded amount, answer and close.
    fn skip_body(&mut self, req: &Request) {
        if !matches!(req.framing(), Framing::None | Framing::Length(0)) {
            self.tx.keep_alive = false;
        }
    }

    fn serve_file(&mut self, sh: &mut Shared, req: &Request, mount_index: usize) {
        if !matches!(req.method(), Method::Get | Method::Head) {
            self.send_simple(sh, 405, &[("Allow", "GET, HEAD")], true);
            return;
        }
        let vh = &sh.vhosts[self.vhost];
        let m = &vh.mounts[mount_index];
        let Origin::File(fops) = &m.origin else { return };
        let rem = m.remainder(req.path());
        if rem.is_empty() {
            let to = format!("{}/", raw_path(req));
            self.redirect(sh, 301, &to, req);
            return;
        }
        let Ok(vpath) = VPath::new(rem) else {
            self.send_error(sh, 403, Some(req));
            return;
        };
        let dir_url = rem.ends_with('/');
        let target = if dir_url { vpath.join(&m.default) } else { Ok(vpath) };
        let interpreter = match &target {
            Ok(p) => m.interpreter_for(p.file_name().unwrap_or("")).map(str::to_string),
            Err(_) => None,
        };
        // An interpreted file is read as it is stored, never as gzip.
        let flags = if accepts_gzip(req) && interpreter.is_none() { OpenFlags::ACCEPT_GZIP } else { OpenFlags::READ };
        let opened = match target {
            Ok(p) => fops.open(&p, flags).map(|h| (h, p)),
            Err(_) => Err(io::ErrorKind::PermissionDenied.into()),
        };
        let (file, path) = match opened {
            Ok(x) => x,
            Err(e) if e.kind() == io::ErrorKind::IsADirectory && !dir_url => {
                let to = format!("{}/", raw_path(req));
                self.redirect(sh, 301, &to, req);
                return;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                self.wait_for_file(sh, req, mount_index, &e);
                return;
            }
            Err(e) => {
                let status = open_error_status(&e);
                if status >= 500 {
                    log::error!("{}: open {:?}: {e}", self.peer, log_path(req.path()));
                } else {
                    log::debug!("{}: open {:?}: {e}", self.peer, log_path(req.path()));
                }
                self.send_error(sh, status, Some(req));
                return;
            }
        };
        let status = if vh.error_document_404.as_deref() == Some(req.path()) { 404 } else { 200 };
        if let Some(protocol) = interpreter {
            return self.serve_interpreted(sh, req, file, &path, status, mount_index, &protocol);
        }
        let info = file.info().clone();
        let gz = info.encoding == ContentEncoding::Gzip;
        let stamp = info.mod_time.and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok()).map_or(0, |d| d.as_secs());
        let key = (info.version.unwrap_or(0), gz, stamp);
        if sh.validators.len() >= VALIDATOR_CACHE {
            sh.validators.clear();
        }
        // PERF: formatting dates and hex per request shows in profiles.
        let (etag, last_modified) = &*sh.validators.entry(key).or_insert_with(|| {
            let etag = info.version.map_or(String::new(), |v| format!("\"{v:016x}{}\"", if gz { "-gz" } else { "" }));
            let lm = info.mod_time.map_or(String::new(), httpdate::fmt_http_date);
            (etag.into(), lm.into())
        });
        let etag = (!etag.is_empty()).then_some(&**etag);
        let last_modified = (!last_modified.is_empty()).then_some(&**last_modified);
        let m = &sh.vhosts[self.vhost].mounts[mount_index];
        let cache = m.cache.map(|c| c.header_value());
        // PERF: borrowed, not copied: the content type is on every response.
        let name = path.file_name().unwrap_or("");
        let content_type: Option<&str> =
            if m.extra_mimetypes.is_empty() { Some(content_type(name)) } else { m.content_type_for(name, known_type) };
        let meta = FileMeta {
            len: info.len,
            mod_time: info.mod_time,
            version: info.version.unwrap_or(0),
            etag,
            last_modified,
            content_type,
            gzip: gz,
            negotiated: info.flags.contains(FileFlags::NEGOTIATED),
        };
        let plan = plan_file(req, &meta, &FilePolicy { status, cache_control: cache.as_deref() });
        if plan.body == FileBody::Page {
            let status = plan.status;
            match plan.content_range {
                Some(r) => self.send_simple(sh, status, &[("Content-Range", &r)], true),
                None => self.send_simple(sh, status, &[], true),
            }
            return;
        }
        let mut file = file;
        let buf = &mut sh.tx;
        let vh = &sh.vhosts[self.vhost];
        buf.clear();
        let env = HeadEnv { date: sh.date.text(), headers: &vh.headers, server: vh.server_string.as_deref() };
        let mut head = begin_head(buf, &mut self.tx, plan.status, env);
        plan.each_header(|n, v| {
            head.header(n, v);
        });
        let (body_start, body_len) = match plan.body {
            FileBody::None | FileBody::Page => {
                // RFC 9110 §15.4.5: validators and Vary, no content.
                end_head(head, &mut self.tx, BodyFraming::None);
                self.send_buffered_from(buf);
                return;
            }
            FileBody::Multipart(m) => {
                end_head(head, &mut self.tx, BodyFraming::Length(m.body_len()));
                let r = self.out.write(buf, true);
                self.writing = Writing::Multipart(Box::new(MultipartSend { file, plan: m, next: 0, in_part: 0 }));
                if let Err(e) = r {
                    log::debug!("{}: write: {e}", self.peer);
                    self.writing = Writing::Shutdown;
                }
                return;
            }
            FileBody::Whole(len) => (0, len),
            FileBody::Range { start, len } => (start, len),
        };
        end_head(head, &mut self.tx, BodyFraming::Length(body_len));
        if self.tx.head_only || body_len == 0 {
            self.send_buffered_from(buf);
            return;
        }
        if body_start > 0 && file.seek(SeekFrom::Start(body_start)).is_err() {
            self.tx.keep_alive = false;
            self.send_simple(sh, 500, &[], true);
            return;
        }
        if body_len <= SMALL_BODY as u64 {
            // PERF: a small body costs one read into the head's buffer and
            // one send, instead of a send plus a sendfile.
            let start = buf.len();
            buf.resize(start + body_len as usize, 0);
            let mut got = 0;
            let mut failure = None;
            while start + got < buf.len() {
                match file.read(&mut buf[start + got..]) {
                    Ok(0) => break,
                    Ok(n) => got += n,
                    Err(e) => {
                        failure = Some(e);
                        break;
                    }
                }
            }
            if failure.is_some() || got as u64 != body_len {
                // Nothing has been sent yet: say so with a status.
                log::error!(
                    "{}: reading {:?} failed: {}",
                    self.peer,
                    log_path(req.path()),
                    failure.map_or("it shrank".into(), |e| e.to_string())
                );
                self.tx.keep_alive = false;
                self.send_simple(sh, 500, &[], true);
                return;
            }
            self.send_buffered_from(buf);
            return;
        }
        // Bytes that cannot go by sendfile before the first ones that can
        // (a gzip header before the deflate stream, or a handle with no
        // descriptor) ride in the head's write.
        let mut remaining = body_len;
        let head_len = buf.len();
        while remaining > 0 && buf.len() - head_len < READ_CHUNK && file.sendfile_span().is_none_or(|s| s.len == 0) {
            let at = buf.len();
            buf.resize(at + (READ_CHUNK - (at - head_len)).min(remaining as usize), 0);
            match file.read(&mut buf[at..]) {
                Ok(n) if n > 0 => {
                    buf.truncate(at + n);
                    remaining -= n as u64;
                }
                Ok(_) | Err(_) => {
                    // Reported when the body step reads again.
                    buf.truncate(at);
                    break;
                }
            }
        }
        let r = self.out.write(buf, remaining > 0);
        self.writing = if remaining > 0 { Writing::File { file, remaining } } else { Writing::Complete };
        if let Err(e) = r {
            log::debug!("{}: write: {e}", self.peer);
            self.writing = Writing::Shutdown;
        }
    }

    /// The file for `req` is not ready (`WouldBlock`): wait, reading
    /// nothing, until the fops says it is done (or poll when it gives
    /// nothing to wait on). The open is tried again from `on_timer`.
    fn wait_for_file(&mut self, sh: &mut Shared, req: &Request, mount: usize, e: &io::Error) {
        log::debug!("{}: open {:?}: {e}; waiting", self.peer, log_path(req.path()));
        let woken = warren_vfs::Pending::of(e).is_some_and(|p| p.wake_on_done(&sh.files_waker));
        let until = sh.now + FILE_WAIT;
        self.writing = Writing::FileWait { req: Box::new(req.clone()), mount, until, poll: !woken };
        sh.timers.set(self.key, if woken { until } else { sh.now + FILE_WAIT_POLL });
    }

    /// Waiting for a file that was not ready (`wait_for_file`).
    pub(crate) fn waits_for_file(&self) -> bool {
        matches!(self.writing, Writing::FileWait { .. })
    }

    // ---- CGI ----------------------------------------------------------------

    /// Starts the CGI program for `req` on the `cgi://` mount `mi`, or
    /// makes the request wait for a slot when the mount is at its limit or
    /// others already wait (`queued`: it is the one whose turn it is).
    fn serve_cgi(&mut self, sh: &mut Shared, req: Request, mi: usize, redirects: u8, queued: bool) {
        let vi = self.vhost;
        let now = sh.now;
        let looked = {
            let m = &mut sh.vhosts[vi].mounts[mi];
            let rest = m.remainder(req.path());
            let Origin::Cgi(origin) = &m.origin else { return };
            mount::cgi_lookup_cached(origin, &m.mountpoint, rest, &mut m.cgi.cache, now)
        };
        let m = &sh.vhosts[vi].mounts[mi];
        let Origin::Cgi(origin) = &m.origin else { return };
        let target = match looked {
            Ok(t) => t,
            Err(why) => {
                log::info!("{}: cgi {:?}: refused ({}): {}", self.peer, log_path(req.path()), why.status(), why.why());
                self.skip_body(&req);
                self.send_error(sh, why.status(), Some(&req));
                return;
            }
        };
        // Paths handed to the program are confined as file opens are: one
        // that resolves outside its mount's root refuses the request.
        let mounts = &sh.vhosts[vi].mounts;
        let translated =
            if target.path_info.is_empty() { Ok(None) } else { mount::translate(mounts, &target.path_info) };
        let path_translated = match translated {
            Ok(p) => p.map(|p| p.to_string_lossy().into_owned()),
            Err(e) => {
                // As a file open there: out of the root 403, a name too
                // long or a loop of links (the request's fault) 404.
                let status = open_error_status(&e);
                log::info!(
                    "{}: cgi {:?}: refused ({status}): PATH_TRANSLATED for {:?}: {e}",
                    self.peer,
                    log_path(req.path()),
                    log_path(&target.path_info)
                );
                self.skip_body(&req);
                self.send_error(sh, status, Some(&req));
                return;
            }
        };
        let framing = req.framing();
        self.reading = body_reading(framing);
        self.tx.keep_alive = req.keep_alive();
        if m.cgi.running >= m.cgi.max_processes || (!queued && sh.cgi_waiters.has_waiters(vi, mi)) {
            // CGI-3 [REC]: wait briefly for a slot, reading nothing, in
            // line: the loop starts the first waiter when a slot frees.
            if !sh.cgi_waiters.push(vi, mi, self.key, self.generation) {
                log::warn!("{}: too many requests wait for CGI slots of {:?}; 503", self.peer, log_path(req.path()));
                self.tx.keep_alive = false;
                self.reading = Reading::Done;
                self.send_simple(sh, 503, &[("Retry-After", "1")], true);
                sh.force(self);
                return;
            }
            self.rx_paused = true;
            self.cgi_paused_rx = true;
            let until = sh.now + CGI_SLOT_WAIT;
            self.writing = Writing::CgiWait { req: Box::new(req), mount: mi, until, redirects };
            sh.timers.set(self.key, until);
            return;
        }
        let mounts = &sh.vhosts[vi].mounts;
        let document_root = mount::translate(mounts, "/").ok().flatten().map(|p| p.to_string_lossy().into_owned());
        // The origin is the program itself (no `stat` for that here).
        let program_mount = target.program == *origin;
        let no_script = path_translated.is_none();
        let host = req.host().map(strip_port).filter(|h| !h.is_empty());
        let cgi_req = warren_cgi::CgiRequest {
            method: req.method_str().to_string(),
            script_name: target.script_name.clone(),
            path_info: target.path_info.clone(),
            path_translated,
            query: req.query().unwrap_or("").to_string(),
            request_uri: req.target().to_string(),
            remote: Some(self.peer),
            server_name: host.unwrap_or(&sh.vhosts[vi].name).to_string(),
            server_port: self.out.sock.stream().local_addr().map_or(0, |a| a.port()),
            protocol: req.version().as_str().to_string(),
            https: false,
            document_root,
            // A program mount (php-cgi, say) with no path after it has no
            // script: php-cgi would take SCRIPT_FILENAME, its own file,
            // as the script. Without one it answers "No input file".
            script_filename: if program_mount && no_script {
                String::new()
            } else {
                target.program.to_string_lossy().into_owned()
            },
            content_type: req.header_str("content-type").map(str::to_string),
            content_length: match framing {
                Framing::Length(n) => Some(n),
                _ => None,
            },
            headers: req.headers().map(|(k, v)| (k.to_string(), String::from_utf8_lossy(v).into_owned())).collect(),
            // An interpreter mount (php-cgi): as Apache's Action does.
            redirect: program_mount.then(|| (200, req.path().to_string())),
            extra: m.cgi.env.clone(),
            path: m.cgi.path.clone(),
        };
        let cwd = target.program.parent().map_or_else(|| std::path::PathBuf::from("/"), |p| p.to_path_buf());
        let child = warren_cgi::spawn(&target.program, &[], &cgi_req.environment(), &cwd, m.cgi.limits);
        let child = match child {
            Ok(c) => c,
            Err(e) => {
                log::error!("cgi {}: cannot start {}: {e}", target.script_name, target.program.display());
                self.skip_body(&req);
                self.reading = Reading::Done;
                let status = if e.kind() == io::ErrorKind::PermissionDenied { 403 } else { 500 };
                self.send_error(sh, status, Some(&req));
                return;
            }
        };
        let timeout = m.cgi.timeout;
        sh.vhosts[vi].mounts[mi].cgi.running += 1;
        let mut run = CgiRun::new(child, target.script_name, vi, mi, redirects);
        if matches!(framing, Framing::None | Framing::Length(0)) {
            // No body: the program sees the end of its input at once.
            self.reading = Reading::Done;
            run.body_done = true;
            run.flush_stdin();
        }
        // How the body will leave is settled by the head; until then,
        // remember what the request allows.
        run.framing = if self.tx.head_only {
            OutFraming::Discard
        } else if self.tx.version == Version::Http11 {
            OutFraming::Chunk
        } else {
            OutFraming::Close
        };
        if self.cgi_paused_rx {
            self.cgi_paused_rx = false;
            self.rx_paused = false;
        }
        self.writing = Writing::Cgi(Box::new(run));
        if let Err(e) = self.continue_if_expected(&req) {
            log::debug!("{}: write: {e}", self.peer);
        }
        sh.timers.set(self.key, sh.now + timeout);
        sh.force(self);
    }

    /// One step of a CGI response: stderr to the log, body to stdin,
    /// and, when the client can take it, one read of stdout sent on.
    fn cgi_step(&mut self, sh: &mut Shared) -> Result<bool, Close> {
        let Writing::Cgi(mut run) = std::mem::replace(&mut self.writing, Writing::Idle) else { return Ok(false) };
        // stderr is drained a bounded amount per step (and does not count
        // as progress for the timeout: a program that only talks to its
        // log is not answering).
        let logged = run.drain_stderr();
        if run.stderr_pending() {
            sh.force(self);
        }
        let mut progress = run.flush_stdin();
        if self.cgi_paused_rx && !run.input_blocked() {
            self.cgi_paused_rx = false;
            self.rx_paused = false;
            progress = true;
        }
        if !run.stdout_eof && run.stdout_ready && self.out.writable && !self.out.has_pending() {
            let mut buf = std::mem::take(&mut sh.tx);
            buf.resize(READ_CHUNK, 0);
            let r = run.read_stdout(&mut buf);
            let r = match r {
                Ok(Some(n)) if n > 0 => {
                    progress = true;
                    self.cgi_output(sh, run, &buf[..n])
                }
                Ok(_) => Ok(Some(run)),
                Err(e) => {
                    log::warn!("cgi {}: stdout: {e}", run.script);
                    run.stdout_eof = true;
                    Ok(Some(run))
                }
            };
            sh.tx = buf;
            run = match r? {
                Some(run) => run,
                // The run ended (an error page, a redirect).
                None => return Ok(true),
            };
        }
        if run.stdout_eof {
            self.cgi_finish(sh, run);
            // Still waiting for its exit status: the timer comes back.
            return Ok(!matches!(self.writing, Writing::Cgi(_)));
        }
        if progress {
            let timeout = sh.vhosts[run.vhost].mounts[run.mount].cgi.timeout;
            sh.timers.set(self.key, sh.now + timeout);
        }
        self.writing = Writing::Cgi(run);
        Ok(progress || logged)
    }

    /// Bytes from stdout: the head while it lasts, then the body.
    /// Returns the run if it goes on.
    fn cgi_output(&mut self, sh: &mut Shared, mut run: Box<CgiRun>, data: &[u8]) -> Result<Option<Box<CgiRun>>, Close> {
        let Some(parser) = run.parser.as_mut() else {
            if let Err(e) = self.cgi_body(&mut run, data, Vec::new()) {
                // The client is gone: so is the program.
                self.cgi_end(sh, *run, true);
                return Err(e);
            }
            return Ok(Some(run));
        };
        let (head, used) = match parser.feed(data) {
            Ok(None) => return Ok(Some(run)),
            Ok(Some(h)) => h,
            Err(e) => {
                log::warn!("cgi {}: bad response head: {e:?}", run.script);
                self.cgi_end(sh, *run, true);
                self.tx.keep_alive = false;
                self.send_error(sh, 502, None);
                return Ok(None);
            }
        };
        run.parser = None;
        if let Some(warren_cgi::Redirect::Local(path)) = &head.redirect {
            // RFC 3875 §6.2.2: serve that path instead, as a GET.
            let path = path.clone();
            let redirects = run.redirects;
            self.cgi_end(sh, *run, true);
            self.internal_redirect(sh, &path, redirects + 1);
            return Ok(None);
        }
        let discard = run.framing == OutFraming::Discard || matches!(head.status, 100..=199 | 204 | 304);
        if head.chunked && self.tx.version == Version::Http10 && !discard {
            // An HTTP/1.0 client cannot take chunks, and passing them on
            // as body bytes would corrupt it.
            log::warn!("cgi {}: a chunked response for an HTTP/1.0 client", run.script);
            self.cgi_end(sh, *run, true);
            self.tx.keep_alive = false;
            self.send_error(sh, 502, None);
            return Ok(None);
        }
        let framing = if discard {
            BodyFraming::None
        } else if head.chunked {
            BodyFraming::Chunked
        } else if let Some(n) = head.content_length {
            BodyFraming::Length(n)
        } else if self.tx.version == Version::Http11 {
            BodyFraming::Chunked
        } else {
            BodyFraming::Close
        };
        run.framing = match framing {
            _ if discard => OutFraming::Discard,
            BodyFraming::Chunked if head.chunked => OutFraming::Passthrough,
            BodyFraming::Chunked => OutFraming::Chunk,
            BodyFraming::Length(n) => OutFraming::Length(n),
            _ => OutFraming::Close,
        };
        let mut out = Vec::with_capacity(512 + data.len());
        let vh = &sh.vhosts[self.vhost];
        let env = HeadEnv { date: sh.date.text(), headers: &vh.headers, server: vh.server_string.as_deref() };
        let mut rh = begin_head(&mut out, &mut self.tx, head.status, env);
        for (k, v) in &head.headers {
            // The server owns the framing and these fields.
            if !["content-length", "transfer-encoding", "connection", "keep-alive", "date", "server"]
                .iter()
                .any(|o| k.eq_ignore_ascii_case(o))
            {
                rh.header(k, v);
            }
        }
        end_head(rh, &mut self.tx, framing);
        if let Err(e) = self.cgi_body(&mut run, &data[used..], out) {
            self.cgi_end(sh, *run, true);
            return Err(e);
        }
        Ok(Some(run))
    }

    /// Sends body bytes framed as the head said, after `head` (the
    /// response head, for the first piece), in one write and without
    /// copying the data.
    fn cgi_body(&mut self, run: &mut CgiRun, data: &[u8], mut head: Vec<u8>) -> Result<(), Close> {
        use std::io::Write as _;
        let mut line = [0u8; 24];
        let mut line_len = 0;
        let body: &[u8] = match run.framing {
            OutFraming::Discard => &[],
            OutFraming::Chunk if data.is_empty() => &[],
            OutFraming::Chunk => {
                let mut c = io::Cursor::new(&mut line[..]);
                let close = if run.chunk_open { "\r\n" } else { "" };
                write!(c, "{close}{:x}\r\n", data.len())?;
                line_len = c.position() as usize;
                run.chunk_open = true;
                data
            }
            OutFraming::Length(rem) => {
                // Bytes past the length the script announced are dropped.
                let n = (data.len() as u64).min(rem) as usize;
                run.framing = OutFraming::Length(rem - n as u64);
                &data[..n]
            }
            OutFraming::Passthrough => {
                // The script's own chunks: followed as they pass, so that
                // the body ends at the last chunk and nothing after it
                // (a second response, say) reaches the client.
                let mut used = 0;
                while used < data.len() && !run.own_chunks.is_done() {
                    match run.own_chunks.decode(&data[used..]) {
                        Ok((0, _)) => break,
                        Ok((n, _)) => used += n,
                        Err(e) => {
                            log::warn!("cgi {}: bad chunked framing in its body: {e:?}", run.script);
                            return Err(Close("bad chunked framing from a CGI".into()));
                        }
                    }
                }
                &data[..used]
            }
            OutFraming::Close => data,
        };
        let prefix: &[u8] = if head.is_empty() {
            &line[..line_len]
        } else {
            head.extend_from_slice(&line[..line_len]);
            &head
        };
        if prefix.is_empty() && body.is_empty() {
            return Ok(());
        }
        self.out.write_parts(prefix, body)?;
        Ok(())
    }

    /// stdout reached its end: close the response, retire the program.
    /// When we frame the body, the last chunk goes out only if the program
    /// did not die of a signal, which may take a moment to learn: until
    /// then (at most `EXIT_WAIT`) the run waits here, polled by the timer.
    fn cgi_finish(&mut self, sh: &mut Shared, mut run: Box<CgiRun>) {
        if run.parser.is_some() {
            // It ended (or crashed) before a whole head: CGI-5, 502.
            log::warn!("cgi {}: ended without a complete response head", run.script);
            self.cgi_end(sh, *run, true);
            self.tx.keep_alive = false;
            self.send_error(sh, 502, None);
            return;
        }
        let complete = match run.framing {
            OutFraming::Chunk => match run.exit() {
                Exit::Killed => false,
                Exit::Exited => true,
                Exit::Running => {
                    let until = *run.exit_wait.get_or_insert(sh.now + EXIT_WAIT);
                    if sh.now < until {
                        sh.timers.set(self.key, (sh.now + run.exit_poll()).min(until));
                        self.writing = Writing::Cgi(run);
                        return;
                    }
                    // It closed stdout and lives on: its answer is whole.
                    true
                }
            },
            OutFraming::Length(rem) => rem == 0,
            OutFraming::Passthrough => run.own_chunks.is_done(),
            OutFraming::Close | OutFraming::Discard => true,
        };
        if complete {
            if run.framing == OutFraming::Chunk {
                let end: &[u8] = if run.chunk_open { b"\r\n0\r\n\r\n" } else { b"0\r\n\r\n" };
                if let Err(e) = self.out.write(end, false) {
                    log::debug!("{}: write: {e}", self.peer);
                }
            }
        } else {
            // Cut short (killed, or short of its own framing): the body
            // must not look whole, so it ends without its last chunk or
            // short of its length, by closing; and its group is ended.
            log::warn!("cgi {}: the response body was cut short; closing the connection", run.script);
            self.tx.keep_alive = false;
        }
        self.cgi_end(sh, *run, !complete);
        self.writing = Writing::Complete;
        sh.force(self);
    }

    /// The request body's framing is broken: the program is ended, and the
    /// client gets 400 if its response has not begun (else the
    /// connection just closes).
    /// The request body cannot go on (bad framing, 400; too slow, 408):
    /// answer with `status` if no response has begun, else close.
    fn body_failed(&mut self, sh: &mut Shared, status: u16, why: &str) -> Result<(), Close> {
        if matches!(self.writing, Writing::Cgi(_)) {
            return self.cgi_bad_body(sh, status);
        }
        if self.writing_is(CbResp::AwaitHead) && !self.out.has_pending() {
            self.tx.keep_alive = false;
            self.reading = Reading::Done;
            self.send_error(sh, status, None);
            return Ok(());
        }
        Err(Close(why.into()))
    }

    fn cgi_bad_body(&mut self, sh: &mut Shared, status: u16) -> Result<(), Close> {
        let Writing::Cgi(run) = std::mem::replace(&mut self.writing, Writing::Idle) else { return Ok(()) };
        let head_sent = run.parser.is_none();
        log::info!("cgi {}: request body failed ({status}); ending it", run.script);
        self.cgi_end(sh, *run, true);
        self.tx.keep_alive = false;
        self.reading = Reading::Done;
        if head_sent {
            self.writing = Writing::Closed;
            return Err(Close("bad request body during a CGI response".into()));
        }
        self.send_error(sh, status, None);
        sh.force(self);
        Ok(())
    }

    /// The run is over: its program goes to the reaper (`kill`: cut
    /// short), its slot is free, its pipes' tokens are let go.
    fn cgi_end(&mut self, sh: &mut Shared, run: CgiRun, kill: bool) {
        let m = &mut sh.vhosts[run.vhost].mounts[run.mount].cgi;
        m.running = m.running.saturating_sub(1);
        let linger = m.timeout;
        if let Some(tokens) = run.tokens {
            sh.dead_pipes.extend(tokens.into_iter().flatten());
        }
        if self.cgi_paused_rx {
            self.cgi_paused_rx = false;
            self.rx_paused = false;
        }
        run.retire(&mut sh.reaper, kill, linger, sh.now);
    }

    /// Serves `path` as a GET in place of the CGI's response (a local
    /// redirect); a chain of more than a few is an error.
    fn internal_redirect(&mut self, sh: &mut Shared, path: &str, redirects: u8) {
        if redirects > MAX_LOCAL_REDIRECTS {
            log::warn!("{}: more than {MAX_LOCAL_REDIRECTS} local CGI redirects", self.peer);
            self.tx.keep_alive = false;
            self.send_error(sh, 500, None);
            return;
        }
        let host = sh.vhosts[self.vhost].name.clone();
        let head = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n");
        let limits = HeadLimits { max_head: sh.limits.max_head, max_uri: sh.limits.max_uri };
        let keep_alive = self.tx.keep_alive;
        let version = self.tx.version;
        match request::parse(head.as_bytes(), limits) {
            Ok(Some((req, _))) => {
                let body_pending = !matches!(self.reading, Reading::Done);
                let reading = std::mem::replace(&mut self.reading, Reading::Done);
                self.writing = Writing::Idle;
                if let Err(Close(why)) = self.on_request(sh, req) {
                    log::debug!("{}: local redirect: {why}", self.peer);
                }
                // The client's own request stays what it was.
                self.tx.keep_alive &= keep_alive && !body_pending;
                self.tx.version = version;
                if body_pending {
                    self.reading = reading;
                }
                if let Writing::Cgi(run) = &mut self.writing {
                    run.redirects = redirects;
                }
            }
            _ => {
                self.tx.keep_alive = false;
                self.send_error(sh, 500, None);
            }
        }
    }

    /// The connection's timer fired: the CGI slot wait and the CGI
    /// timeout are handled here; anything else closes. (The loop also
    /// calls it for a request waiting for a CGI slot when its turn comes.)
    pub(crate) fn on_timer(&mut self, sh: &mut Shared) -> Step {
        match std::mem::replace(&mut self.writing, Writing::Idle) {
            Writing::CgiWait { req, mount, until, redirects } => {
                let m = &sh.vhosts[self.vhost].mounts[mount].cgi;
                if m.running < m.max_processes {
                    sh.cgi_waiters.remove(self.vhost, mount, self.key);
                    self.serve_cgi(sh, *req, mount, redirects, true);
                } else if sh.now >= until {
                    sh.cgi_waiters.remove(self.vhost, mount, self.key);
                    log::warn!("{}: CGI slots of {:?} all busy; 503", self.peer, log_path(req.path()));
                    self.cgi_paused_rx = false;
                    self.rx_paused = false;
                    self.tx.keep_alive = false;
                    self.reading = Reading::Done;
                    self.send_simple(sh, 503, &[("Retry-After", "1")], true);
                } else {
                    // Early (the timer was moved): the deadline stays.
                    self.writing = Writing::CgiWait { req, mount, until, redirects };
                    sh.timers.set(self.key, until);
                    return Step::Keep;
                }
                sh.force(self);
                Step::Keep
            }
            Writing::FileWait { req, mount, until, .. } => {
                self.serve_file(sh, &req, mount);
                if let Writing::FileWait { until: first, poll, .. } = &mut self.writing {
                    // Still not ready: the wait keeps its first deadline.
                    *first = until;
                    let poll = *poll;
                    if sh.now < until {
                        let next = if poll { (sh.now + FILE_WAIT_POLL).min(until) } else { until };
                        sh.timers.set(self.key, next);
                        return Step::Keep;
                    }
                    log::warn!("{}: {:?} still not ready after {FILE_WAIT:?}; 503", self.peer, log_path(req.path()));
                    self.writing = Writing::Idle;
                    self.send_simple(sh, 503, &[("Retry-After", "1")], true);
                }
                sh.timers.set(self.key, sh.now + sh.limits.io_timeout);
                sh.force(self);
                Step::Keep
            }
            Writing::Cgi(run) if run.exit_wait.is_some() => {
                // stdout has ended; was it a crash?
                self.cgi_finish(sh, run);
                Step::Keep
            }
            Writing::Cgi(run) if !self.out.writable && self.out.peer_progress() => {
                // The program waits on a slow but steady reader (its
                // output backs up behind our full socket): not stuck.
                let timeout = sh.vhosts[run.vhost].mounts[run.mount].cgi.timeout;
                self.writing = Writing::Cgi(run);
                sh.timers.set(self.key, sh.now + timeout);
                Step::Keep
            }
            Writing::Cgi(run) => {
                let head_sent = run.parser.is_none();
                log::warn!("cgi {}: no progress within its timeout; ending it", run.script);
                self.cgi_end(sh, *run, true);
                if head_sent || self.out.has_pending() {
                    return Step::Close;
                }
                // CGI-10: 504 when nothing was sent yet.
                self.tx.keep_alive = false;
                self.reading = Reading::Done;
                self.send_error(sh, 504, None);
                sh.timers.set(self.key, sh.now + sh.limits.io_timeout);
                sh.force(self);
                Step::Keep
            }
            other => {
                self.writing = other;
                if self.waits_for_reader() && self.out.peer_progress() {
                    // A slow but steady reader: what it drained from the
                    // kernel's send queue is progress, though none of our
                    // writes could move.
                    sh.timers.set(self.key, sh.now + sh.limits.io_timeout);
                    return Step::Keep;
                }
                log::debug!("{}: timed out in {}", self.peer, self.phase());
                Step::Close
            }
        }
    }

    /// A response is under way and blocked on the peer taking bytes.
    fn waits_for_reader(&self) -> bool {
        !self.out.writable
            && matches!(self.reading, Reading::Done | Reading::Body(_))
            && !matches!(
                self.writing,
                Writing::Idle | Writing::Closed | Writing::CgiWait { .. } | Writing::FileWait { .. }
            )
    }

    /// The request waits for a CGI slot.
    pub(crate) fn waits_for_cgi(&self) -> bool {
        matches!(self.writing, Writing::CgiWait { .. })
    }

    /// The CGI run, if one needs its pipes registered.
    pub(crate) fn cgi_to_register(&mut self) -> Option<&mut CgiRun> {
        match &mut self.writing {
            Writing::Cgi(run) if run.tokens.is_none() => Some(run),
            _ => None,
        }
    }

    /// A pipe of this connection's CGI is ready.
    pub(crate) fn cgi_ready(&mut self, pipe: crate::roles::cgi::Pipe) {
        if let Writing::Cgi(run) = &mut self.writing {
            match pipe {
                crate::roles::cgi::Pipe::Stdin => run.stdin_ready = true,
                crate::roles::cgi::Pipe::Stdout => run.stdout_ready = true,
                crate::roles::cgi::Pipe::Stderr => run.stderr_ready = true,
            }
        }
    }

    /// Starts an interpreted file (FILE-9): bound to the protocol, sent
    /// chunked through its ProcessHtml, with no validators or ranges (the
    /// bytes depend on the protocol).
    #[allow(clippy::too_many_arguments)]
    fn serve_interpreted(
        &mut self,
        sh: &mut Shared,
        req: &Request,
        file: Box<dyn FileHandle>,
        path: &VPath,
        status: u16,
        mount_index: usize,
        protocol: &str,
    ) {
        let vi = self.vhost;
        let Some(pi) = sh.vhosts[vi].protocols.iter().position(|p| p.name() == protocol) else {
            // Context::new checked every interpret protocol exists.
            self.send_error(sh, 500, Some(req));
            return;
        };
        if self.bind(sh, vi, pi).is_err() {
            self.tx.keep_alive = false;
            self.send_simple(sh, 500, &[], true);
            return;
        }
        let remaining = file.info().len;
        let framing = if self.tx.version == Version::Http11 { BodyFraming::Chunked } else { BodyFraming::Close };
        let Shared { vhosts, date, tx: buf, .. } = sh;
        let vh = &vhosts[vi];
        let m = &vh.mounts[mount_index];
        let name = path.file_name().unwrap_or("");
        let ctype =
            if m.extra_mimetypes.is_empty() { Some(content_type(name)) } else { m.content_type_for(name, known_type) };
        buf.clear();
        let env = HeadEnv { date: date.text(), headers: &vh.headers, server: vh.server_string.as_deref() };
        let mut head = begin_head(buf, &mut self.tx, status, env);
        if let Some(t) = ctype {
            head.header("Content-Type", t);
        }
        if let Some(c) = m.cache.map(|c| c.header_value()) {
            head.header("Cache-Control", &c);
        }
        end_head(head, &mut self.tx, framing);
        if self.tx.head_only {
            self.send_buffered_from(buf);
            return;
        }
        let r = self.out.write(buf, true);
        self.writing = Writing::Interpret { file, remaining };
        if let Err(e) = r {
            log::debug!("{}: write: {e}", self.peer);
            self.writing = Writing::Shutdown;
        }
    }

    fn serve_callback(&mut self, sh: &mut Shared, req: Request, mount_index: usize) -> Result<(), Close> {
        let vi = self.vhost;
        let vh = &sh.vhosts[vi];
        let name = match &vh.mounts[mount_index].origin {
            Origin::Callback(name) => name.as_str(),
            _ => "",
        };
        let Some(pi) = vh.protocols.iter().position(|p| p.name() == name) else {
            // Context::new checked every callback mount's protocol exists.
            self.send_error(sh, 500, Some(&req));
            return Ok(());
        };
        self.bind(sh, vi, pi)?;
        self.writing = Writing::Callback(CbResp::AwaitHead);
        let framing = req.framing();
        self.reading = body_reading(framing);
        self.tx.keep_alive = req.keep_alive();
        self.continue_if_expected(&req)?;
        let (id, peer) = (self.id(), self.peer);
        self.dispatch(sh, RawEvent::Http(id, peer, &req))?;
        if framing == Framing::Length(0) {
            self.reading = Reading::Done;
            self.dispatch(sh, RawEvent::BodyCompletion(id, peer))?;
        }
        Ok(())
    }

    // ---- responses made here ----------------------------------------------

    /// Sends `sh.tx`'s bytes as the whole response.
    fn send_buffered_from(&mut self, buf: &[u8]) {
        self.writing = Writing::Complete;
        if let Err(e) = self.out.write(buf, false) {
            log::debug!("{}: write: {e}", self.peer);
            self.writing = Writing::Shutdown;
        }
    }

    fn env<'a>(sh: &'a mut Shared, vhost: usize) -> (HeadEnv<'a>, &'a mut Vec<u8>) {
        let Shared { vhosts, date, tx, .. } = sh;
        let vh = &vhosts[vhost];
        tx.clear();
        (HeadEnv { date: date.text(), headers: &vh.headers, server: vh.server_string.as_deref() }, tx)
    }

    /// `/error.css` from [`crate::http::error_page::ERROR_CSS`].
    fn send_builtin_error_css(&mut self, sh: &mut Shared) {
        let css = crate::http::error_page::ERROR_CSS.as_bytes();
        let (env, buf) = Self::env(sh, self.vhost);
        let mut head = begin_head(buf, &mut self.tx, 200, env);
        head.header("Content-Type", "text/css; charset=utf-8");
        head.header("Cache-Control", "public, max-age=3600");
        end_head(head, &mut self.tx, BodyFraming::Length(css.len() as u64));
        if !self.tx.head_only {
            buf.extend_from_slice(css);
        }
        let bytes = std::mem::take(buf);
        self.send_buffered_from(&bytes);
        sh.tx = bytes;
    }

    /// The error page for `status` (ERR-1), or for a 404 on a vhost with
    /// `error_document_404`, a 302 there (ERR-4).
    fn send_error(&mut self, sh: &mut Shared, status: u16, req: Option<&Request>) {
        if let (404, Some(req)) = (status, req) {
            if req.path() == "/error.css" && matches!(req.method(), Method::Get | Method::Head) {
                // The site has no error style of its own: lend it ours,
                // so its error pages are not bare Times text.
                return self.send_builtin_error_css(sh);
            }
        }
        if status == 404 {
            let doc = sh.vhosts[self.vhost].error_document_404.clone();
            if let (Some(doc), Some(req)) = (doc, req) {
                if req.path() != doc {
                    self.redirect(sh, 302, &doc, req);
                    return;
                }
            }
        }
        if let Some(body) = self.custom_error_page(sh, status) {
            let (env, buf) = Self::env(sh, self.vhost);
            let mut head = begin_head(buf, &mut self.tx, status, env);
            head.header("Content-Type", body.1);
            end_head(head, &mut self.tx, BodyFraming::Length(body.0.len() as u64));
            if !self.tx.head_only {
                buf.extend_from_slice(&body.0);
            }
            let bytes = std::mem::take(buf);
            self.send_buffered_from(&bytes);
            sh.tx = bytes;
            return;
        }
        self.send_simple(sh, status, &[], true);
    }

    /// The vhost's own page for `status` (held in memory, see
    /// [`crate::reload::ErrorPage`]), with its content type.
    fn custom_error_page(&self, sh: &mut Shared, status: u16) -> Option<(std::sync::Arc<[u8]>, &'static str)> {
        let now = sh.now;
        let VhostInfo { mounts, error_pages, .. } = &mut sh.vhosts[self.vhost];
        let page = error_pages.iter_mut().find(|p| p.status == status)?;
        let name = page.path.rsplit('/').next().unwrap_or("");
        let ty = content_type(name);
        Some((page.body(mounts, now)?, ty))
    }

    /// A response made here: the error page for `status` when `page`,
    /// else an empty body; `extra` fields added.
    fn send_simple(&mut self, sh: &mut Shared, status: u16, extra: &[(&str, &str)], page: bool) {
        let (env, buf) = Self::env(sh, self.vhost);
        if page {
            error_response(buf, &mut self.tx, status, crate::http::reason(status), extra, env);
        } else {
            let mut head = begin_head(buf, &mut self.tx, status, env);
            for (k, v) in extra {
                head.header(k, v);
            }
            end_head(head, &mut self.tx, BodyFraming::Length(0));
        }
        let bytes = std::mem::take(buf);
        self.send_buffered_from(&bytes);
        sh.tx = bytes;
    }

    /// A redirect (REDIR-4 shape) to `to`: a path, made absolute with the
    /// request's Host when it is a plain host name, with the query kept.
    fn redirect(&mut self, sh: &mut Shared, status: u16, to: &str, req: &Request) {
        let mut location = String::with_capacity(to.len() + 64);
        if to.starts_with('/') {
            if let Some(host) = req.host().filter(|h| plain_host(h)) {
                location.push_str("http://");
                location.push_str(host);
            }
        }
        location.push_str(to);
        if let (Some(q), true) = (req.query(), status == 301) {
            location.push('?');
            location.push_str(q);
        }
        self.send_simple(sh, status, &[("Location", &location), ("Content-Type", "text/html")], false);
    }

    // ---- protocols --------------------------------------------------------

    fn dispatch(&mut self, sh: &mut Shared, event: RawEvent<'_>) -> Result<(), Close> {
        let Some(b) = self.binding.as_mut() else { return Ok(()) };
        let Shared { vhosts, commands, handle, .. } = sh;
        let mut cx = Cx { commands, vhost: b.vhost, protocol: b.protocol, handle };
        let action = vhosts[b.vhost].protocols[b.protocol].dispatch(&mut cx, event, Some(&mut b.session));
        self.after_callback(sh, action)
    }

    /// Applies the callback's requests about this connection now (so a
    /// pause of rx takes effect before the next byte is delivered); the
    /// service applies the rest when we return.
    fn after_callback(&mut self, sh: &mut Shared, action: Action) -> Result<(), Close> {
        for cmd in sh.take_commands_for(self.id()) {
            self.apply(cmd, sh);
        }
        match action {
            Action::Continue => Ok(()),
            Action::Close => Err(Close("protocol asked to close".into())),
        }
    }

    /// Applies one callback request to this connection.
    pub(crate) fn apply(&mut self, cmd: Command, sh: &mut Shared) {
        match cmd {
            Command::Writable(_) => {
                self.want_writable = true;
                sh.force(self);
            }
            Command::RxFlow(_, enable) => {
                self.rx_paused = !enable;
                if enable {
                    sh.force(self);
                }
            }
            Command::Timeout(_, Some(after)) => sh.timers.set(self.key, sh.now + after),
            Command::Timeout(_, None) => sh.timers.clear(self.key),
            Command::WritableAllProtocol { .. } | Command::InflateChunk(..) | Command::Schedule { .. } => {}
        }
    }

    /// Binds the connection to protocol `pi` of vhost `vi` (unless it is
    /// already): the old binding is dropped, a session made, and the
    /// protocol told.
    fn bind(&mut self, sh: &mut Shared, vi: usize, pi: usize) -> Result<(), Close> {
        if self.bound_to() == Some((vi, pi)) {
            return Ok(());
        }
        self.unbind(sh);
        let session = sh.vhosts[vi].protocols[pi].new_session();
        self.binding = Some(Binding { vhost: vi, protocol: pi, session });
        let (id, peer) = (self.id(), self.peer);
        self.dispatch(sh, RawEvent::Bind(id, peer))
    }

    /// Answers `Expect: 100-continue` for a request with a body.
    fn continue_if_expected(&mut self, req: &Request) -> io::Result<()> {
        if req.expects_continue() && !matches!(req.framing(), Framing::None | Framing::Length(0)) {
            self.out.write(b"HTTP/1.1 100 Continue\r\n\r\n", false)?;
        }
        Ok(())
    }

    fn unbind(&mut self, sh: &mut Shared) {
        if self.binding.is_some() {
            let (id, peer) = (self.id(), self.peer);
            let _ = self.dispatch(sh, RawEvent::Drop(id, peer));
            self.binding = None;
        }
    }

    /// The connection is going away: tell its protocol.
    /// Writes the access-log line of the transaction that just ended.
    fn log_transaction(&mut self, sh: &mut Shared) {
        let Some(entry) = self.logging.take() else { return };
        if let Some(Some(log)) = sh.access_logs.get(self.vhost) {
            let (entry, start) = *entry;
            log.log(self.peer, &entry, self.tx.status, self.out.sent - start);
        }
    }

    pub(crate) fn on_close(&mut self, sh: &mut Shared) {
        match std::mem::replace(&mut self.writing, Writing::Closed) {
            // The client went away: so does the program (CGI-9).
            Writing::Cgi(run) => self.cgi_end(sh, *run, true),
            // It leaves the line of requests waiting for a slot.
            Writing::CgiWait { mount, .. } => sh.cgi_waiters.remove(self.vhost, mount, self.key),
            _ => {}
        }
        // A transaction cut short is logged with what was sent.
        self.log_transaction(sh);
        if self.binding.is_some() {
            let (id, peer) = (self.id(), self.peer);
            let _ = self.dispatch(sh, RawEvent::Closed(id, peer));
            self.unbind(sh);
        }
    }
}

/// How much later a body may finish for `n` more bytes at `rate` (> 0)
/// bytes per second.
fn rate_credit(n: usize, rate: u64) -> std::time::Duration {
    std::time::Duration::from_nanos((n as u64).saturating_mul(1_000_000_000) / rate.max(1))
}

/// How a request's body is read, by its framing.
fn body_reading(framing: Framing) -> Reading {
    match framing {
        Framing::None => Reading::Done,
        Framing::Length(n) => Reading::Body(BodyDecoder::Length(n)),
        Framing::Chunked => Reading::Body(BodyDecoder::chunked()),
    }
}

/// Sends the next chunk of `file` (up to `remaining` bytes): by
/// `sendfile` when the handle offers a descriptor, else one bounded read.
fn send_chunk(
    out: &mut Out,
    file: &mut dyn FileHandle,
    remaining: &mut u64,
    sh: &mut Shared,
    key: usize,
) -> Result<bool, Close> {
    let want = (*remaining).min(SENDFILE_CHUNK);
    if let Some(span) = file.sendfile_span().filter(|s| s.len > 0) {
        let len = want.min(span.len) as usize;
        if let Some(r) = out.sendfile(span.fd, span.offset, len) {
            return match r? {
                None => Ok(false),
                Some(0) => Err(Close("file shrank while being sent".into())),
                Some(n) => {
                    file.advance(n as u64)?;
                    *remaining -= n as u64;
                    sh.timers.set(key, sh.now + sh.limits.io_timeout);
                    Ok(true)
                }
            };
        }
    }
    let buf = &mut sh.tx;
    buf.resize(READ_CHUNK.min(want as usize), 0);
    // A failure here (a CRC mismatch, say) comes after the head: all
    // that is left is to abort the connection. The fops logged it.
    let n = file.read(buf)?;
    if n == 0 {
        return Err(Close("file shrank while being sent".into()));
    }
    *remaining -= n as u64;
    out.write(&buf[..n], *remaining > 0)?;
    sh.timers.set(key, sh.now + sh.limits.io_timeout);
    Ok(true)
}

impl crate::service::Served for Conn {
    fn forced_slot(&mut self) -> (usize, &mut bool) {
        (self.key, &mut self.forced)
    }

    fn readiness(&mut self) -> (&mut bool, &mut bool, &mut bool) {
        (&mut self.readable, &mut self.hup, &mut self.out.writable)
    }
}

impl fmt::Display for Conn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.peer, self.phase())
    }
}

/// The media type for a file name if known (quick match, then mime_guess).
fn known_type(name: &str) -> Option<&'static str> {
    match content_type(name) {
        "application/octet-stream" if !name.to_ascii_lowercase().ends_with(".bin") => None,
        t => Some(t),
    }
}

/// The media type for a file name: the common web types by a quick
/// match, the rest from mime_guess; unknown is `application/octet-stream`.
fn content_type(name: &str) -> &'static str {
    let ext = name.rsplit_once('.').map_or("", |(_, e)| e);
    let quick = match ext {
        "html" | "htm" => "text/html",
        "css" => "text/css",
        "js" | "mjs" => "text/javascript",
        "json" => "application/json",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "svg" => "image/svg+xml",
        "txt" => "text/plain",
        "woff2" => "font/woff2",
        "wasm" => "application/wasm",
        "ico" => "image/x-icon",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "xml" => "text/xml",
        "pdf" => "application/pdf",
        "bin" => "application/octet-stream",
        _ => "",
    };
    if !quick.is_empty() {
        return quick;
    }
    mime_guess::from_path(name).first_raw().unwrap_or("application/octet-stream")
}

/// A multipart/byteranges body being sent (RFC 9110 §14.6).
#[derive(Debug)]
struct MultipartSend {
    file: Box<dyn FileHandle>,
    plan: Multipart,
    /// The next part to start.
    next: usize,
    /// Bytes of the current part still to send.
    in_part: u64,
}

/// The status for a file that could not be opened.
fn open_error_status(e: &io::Error) -> u16 {
    // A name too long for the filesystem, or a loop of links, is the
    // request's fault: nothing by that name can be served.
    if matches!(e.raw_os_error(), Some(libc::ENAMETOOLONG | libc::ELOOP)) {
        return 404;
    }
    match e.kind() {
        io::ErrorKind::NotFound | io::ErrorKind::IsADirectory | io::ErrorKind::NotADirectory => 404,
        io::ErrorKind::InvalidInput => 404,
        io::ErrorKind::PermissionDenied => 403,
        // An archive entry in a compression method we do not implement.
        io::ErrorKind::Unsupported => 501,
        // A corrupt or truncated archive: our data is broken, not the request.
        _ => 500,
    }
}

/// A request path as the error log shows it: at most 256 bytes of it,
/// so one request cannot write kilobytes per line (`{:?}` escapes the
/// control characters).
fn log_path(path: &str) -> &str {
    const MAX: usize = 256;
    if path.len() <= MAX {
        return path;
    }
    let mut end = MAX;
    while !path.is_char_boundary(end) {
        end -= 1;
    }
    &path[..end]
}

/// VH-1: among the vhosts of a listener, the one named by `host` (port
/// stripped, case-insensitive), else the nearest wildcard parent
/// (`a.b.example.com` → `example.com`), else the first.
fn select_vhost(vhosts: &[VhostInfo], candidates: &[usize], host: Option<&str>) -> usize {
    let first = candidates.first().copied().unwrap_or(0);
    let Some(host) = host.map(strip_port) else { return first };
    if candidates.len() == 1 {
        return first;
    }
    if let Some(&v) = candidates.iter().find(|&&v| vhosts[v].name.eq_ignore_ascii_case(host)) {
        return v;
    }
    let parent = candidates
        .iter()
        .filter(|&&v| {
            let name = vhosts[v].name.as_bytes();
            let h = host.as_bytes();
            h.len() > name.len() + 1
                && h[h.len() - name.len() - 1] == b'.'
                && h[h.len() - name.len()..].eq_ignore_ascii_case(name)
        })
        .max_by_key(|&&v| vhosts[v].name.len());
    parent.copied().unwrap_or(first)
}

fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host.find(']').map_or(host, |i| &host[..=i]);
    }
    match host.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    }
}

/// A Host value we are willing to echo into a Location header.
fn plain_host(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= 255
        && h.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']' | b'_'))
}

/// The path as the client sent it (still percent-encoded), for Location.
/// Leading `/` runs are collapsed so the result can never read as a
/// scheme-relative `//host` reference.
fn raw_path(req: &Request) -> &str {
    let path = uri::split_target(req.target()).map_or("/", |t| t.path);
    let trimmed = path.trim_start_matches('/');
    &path[path.len() - trimmed.len() - 1..]
}

/// Whether `Accept-Encoding` allows gzip (RFC 9110 §12.5.3, q-values).
fn accepts_gzip(req: &Request) -> bool {
    let Some(v) = req.header_str("accept-encoding") else { return false };
    let mut star = None;
    for item in v.split(',') {
        let mut parts = item.split(';');
        let coding = parts.next().unwrap_or("").trim();
        let q = parts
            .filter_map(|p| p.trim().strip_prefix("q=").or_else(|| p.trim().strip_prefix("Q=")))
            .find_map(|q| q.trim().parse::<f32>().ok())
            .unwrap_or(1.0);
        if coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip") {
            return q > 0.0;
        }
        if coding == "*" {
            star = Some(q > 0.0);
        }
    }
    star.unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, SocketAddr};

    fn vhosts(names: &[&str]) -> Vec<VhostInfo> {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
        names.iter().map(|n| VhostInfo::new(*n, addr)).collect()
    }

    #[test]
    fn vhost_selection() {
        let v = vhosts(&["first", "abc.com", "x.abc.com", "abc"]);
        let all = [0, 1, 2, 3];
        assert_eq!(select_vhost(&v, &all, Some("ABC.com:8080")), 1);
        assert_eq!(select_vhost(&v, &all, Some("cats.abc.com")), 1);
        assert_eq!(select_vhost(&v, &all, Some("y.x.abc.com")), 2);
        assert_eq!(select_vhost(&v, &all, Some("abc")), 3, "no prefix-match bug");
        assert_eq!(select_vhost(&v, &all, Some("ab")), 0);
        assert_eq!(select_vhost(&v, &all, None), 0);
        assert_eq!(strip_port("[::1]:80"), "[::1]");
        assert_eq!(strip_port("h:x"), "h:x");
    }

    #[test]
    fn gzip_acceptance() {
        let req = |ae: &str| {
            let raw = format!("GET / HTTP/1.1\r\nHost: h\r\nAccept-Encoding: {ae}\r\n\r\n");
            let limits = HeadLimits { max_head: 8192, max_uri: 4096 };
            match request::parse(raw.as_bytes(), limits) {
                Ok(Some((r, _))) => r,
                other => panic!("{other:?}"),
            }
        };
        assert!(accepts_gzip(&req("gzip, deflate")));
        assert!(accepts_gzip(&req("br;q=1.0, gzip;q=0.5")));
        assert!(!accepts_gzip(&req("gzip;q=0")));
        assert!(!accepts_gzip(&req("identity")));
        assert!(accepts_gzip(&req("*")));
        assert!(!accepts_gzip(&req("*;q=0")));
    }
}
