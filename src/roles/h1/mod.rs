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
use crate::conn::{Core, Env, Role};
use crate::http::plan::Multipart;
use crate::http::request::{self, Framing, HeadError, Limits as HeadLimits, Method, Request, Sniff};
use crate::http::respond::TxInfo;
use crate::http::{uri, BodyDecoder, Version};
use crate::mount::{self, Origin};
use crate::protocol::{Command, Cx, RawEvent, Session, Writer};
#[cfg(feature = "cgi")]
use crate::roles::cgi::CgiRun;
#[cfg(feature = "ws")]
use crate::roles::ws::Upgrade;
use crate::service::DRAIN_IDLE;
use crate::vhost::select_vhost;
#[cfg(feature = "ws")]
use crate::ws::handshake;
use crate::wsi::{CbResp, ResponseWriter};
use std::io;
use warren_vfs::FileHandle;

mod callback;
#[cfg(feature = "cgi")]
mod cgi;
#[cfg(feature = "cgi")]
pub(crate) use cgi::slots_in_use;
mod files;
mod respond;
#[cfg(feature = "ws")]
mod upgrade;

use files::content_type;

/// Steps a connection may take per service call before others get a turn.
const BUDGET: usize = 16;
/// The most bytes one `sendfile` is asked for (nginx's default
/// `sendfile_max_chunk`); the kernel sends what fits in the socket.
const SENDFILE_CHUNK: u64 = 2 << 20;
/// The most bytes one read-and-write step moves for a file that cannot be
/// sent with `sendfile`.
const READ_CHUNK: usize = 16 * 1024;
/// Formatted validators kept at most (see `Env::validators`).
pub(super) const VALIDATOR_CACHE: usize = 4096;
/// How long a request waits for a file that is not ready yet (a big
/// archive's directory loading) before it gets 503.
const FILE_WAIT: std::time::Duration = std::time::Duration::from_secs(10);
/// How often it tries again when the fops gave nothing to wait on.
const FILE_WAIT_POLL: std::time::Duration = std::time::Duration::from_millis(50);
/// Bodies up to this size go out in the same write as the head.
pub(super) const SMALL_BODY: usize = 32 * 1024;

pub(crate) use crate::conn::{Close, Step};

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
    #[cfg(feature = "cgi")]
    Cgi(Box<CgiRun>),
    /// A CGI mount is at its process limit: the request waits for a slot
    /// (rx paused) until `until`, then gets 503.
    #[cfg(feature = "cgi")]
    CgiWait {
        req: Box<Request>,
        mount: usize,
        slots: crate::roles::cgi::Slots,
        until: std::time::Instant,
        redirects: u8,
        /// It waits only `CGI_SLOT_WAIT`, the server having been at its
        /// configured limit when it came.
        short: bool,
    },
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

impl Writing {
    /// A CGI program answers, or the request waits for a slot to run one.
    fn is_cgi(&self) -> bool {
        #[cfg(feature = "cgi")]
        if matches!(self, Writing::Cgi(_) | Writing::CgiWait { .. }) {
            return true;
        }
        false
    }

    /// The request waits for a CGI slot.
    fn is_cgi_wait(&self) -> bool {
        #[cfg(feature = "cgi")]
        if matches!(self, Writing::CgiWait { .. }) {
            return true;
        }
        false
    }
}

#[derive(Debug)]
struct Binding {
    vhost: usize,
    protocol: usize,
    session: Session,
}

/// An HTTP/1 connection.
#[derive(Debug)]
pub(crate) struct H1 {
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
    /// A transaction began whose status is not yet counted in the
    /// vhost's metrics (counted where the access log writes its line).
    uncounted: bool,
    /// A WebSocket upgrade was accepted: the 101 is written (or pending)
    /// and the connection is to become a ws one.
    #[cfg(feature = "ws")]
    upgrade: Option<Box<Upgrade>>,
    /// rx is paused for a CGI (its stdin is full, or it waits for a slot),
    /// not by a protocol.
    #[cfg(feature = "cgi")]
    cgi_paused_rx: bool,
    /// The next FastCGI request is a retry: on a new connection, not an
    /// idle kept one (see `H1::cgi_finish`).
    #[cfg(feature = "cgi")]
    fcgi_fresh: bool,
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
    /// The request in progress, counted against its peer's
    /// `Limits::peer_requests` (given back when dropped).
    peer_slot: Option<crate::peers::RequestSlot>,
    /// In `Env::peer_waiters`, not read until the loop grants a slot.
    peer_waiting: bool,
    /// No request head has begun on this connection yet: on a port that
    /// falls back to raw, its first bytes decide (RAW-2).
    fresh: bool,
    /// What arrived is not HTTP and the port falls back to raw: the
    /// loop is to make the connection raw ([`Step::Raw`]).
    fallback: bool,
}

impl H1 {
    /// A new connection's role: waiting for its first request.
    pub(crate) fn new() -> H1 {
        H1 {
            input: Vec::new(),
            reading: Reading::Head { started: false },
            fresh: true,
            fallback: false,
            writing: Writing::Idle,
            tx: TxInfo::default(),
            binding: None,
            logging: None,
            uncounted: false,
            #[cfg(feature = "ws")]
            upgrade: None,
            #[cfg(feature = "cgi")]
            cgi_paused_rx: false,
            #[cfg(feature = "cgi")]
            fcgi_fresh: false,
            body_unread: false,
            body_deadline: None,
            rx_paused_at: None,
            peer_slot: None,
            peer_waiting: false,
        }
    }

    /// The loop gives a waiting connection its peer's freed request slot.
    pub(crate) fn grant_peer_slot(&mut self, slot: crate::peers::RequestSlot) {
        self.peer_slot = Some(slot);
        self.peer_waiting = false;
    }

    /// Whether the first bytes of a new request may be read: with a peer
    /// request limit, only holding one of the peer's slots. Else the
    /// connection waits in line, unread.
    fn may_start_request(&mut self, c: &mut Core, sh: &mut Env) -> bool {
        let max = sh.limits.peer_requests;
        if max == 0 || self.peer_slot.is_some() {
            return true;
        }
        if !self.peer_waiting {
            if let Some(slot) = crate::peers::Peers::begin(&sh.handle.inner, c.peer.ip(), max) {
                self.peer_slot = Some(slot);
                return true;
            }
            self.peer_waiting = true;
            sh.peer_waiters.push((c.key, c.generation));
            crate::metrics::inc(&sh.handle.inner.metrics.peer_waits);
            log::debug!("{}: {max} requests of this peer in progress; this one waits", c.peer);
        }
        c.rx_paused = true;
        false
    }

    /// Its peer's other requests held every slot (`Limits::peer_requests`)
    /// until this one's deadline: it is told so, with when to try again,
    /// rather than cut off in silence. Its head was never read, so the
    /// answer is HTTP/1.1 and the connection closes after it.
    fn peer_wait_expired(&mut self, c: &mut Core, sh: &mut Env) -> Step {
        self.peer_waiting = false;
        sh.peer_waiters.retain(|&(key, _)| key != c.key);
        log::info!("{}: still waiting for its peer's request slot at its deadline; 503", c.peer);
        self.tx = TxInfo { version: Version::Http11, keep_alive: false, head_only: false, status: 0 };
        self.reading = Reading::Done;
        self.uncounted = true;
        self.send_simple(c, sh, 503, &[("Retry-After", "1")], true);
        sh.timers.set(c.key, sh.now + sh.limits.io_timeout);
        sh.force(c);
        Step::Keep
    }

    /// Bytes a plaintext client sent a TLS port (RAW-4), read before the
    /// role began: they are its first request.
    #[cfg(feature = "tls")]
    pub(crate) fn preload(&mut self, bytes: Vec<u8>) {
        self.input = bytes;
    }

    /// What was read and not consumed, for a raw role taking over
    /// (RAW-2).
    pub(crate) fn take_input(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.input)
    }

    /// A word for logs: what the connection was doing.
    fn phase_word(&self) -> &'static str {
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
    pub(super) fn bound_to(&self) -> Option<(usize, usize)> {
        self.binding.as_ref().map(|b| (b.vhost, b.protocol))
    }

    /// Time rx spends paused on our side (a protocol's flow control, a
    /// CGI's full stdin) does not count against the body's deadline.
    fn track_rx_pause(&mut self, c: &mut Core, now: std::time::Instant) {
        match (c.rx_paused, self.rx_paused_at) {
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

    fn step(&mut self, c: &mut Core, sh: &mut Env) -> Result<bool, Close> {
        self.track_rx_pause(c, sh.now);
        if c.hup && self.writing.is_cgi() {
            // The client hung up (or half-closed, which we take the same
            // way, as nginx does for upstreams): end the program now
            // (CGI-9) rather than when its output meets a dead socket.
            return Err(Close("client went away during a CGI response".into()));
        }
        if c.hup && matches!(self.writing, Writing::FileWait { .. }) {
            return Err(Close("client went away while its file was not ready".into()));
        }
        let mut progress = false;
        if c.out.writable {
            progress |= self.write_step(c, sh)?;
        }
        if !c.rx_paused {
            progress |= self.read_step(c, sh)?;
        }
        Ok(progress)
    }

    // ---- writing ----------------------------------------------------------

    fn write_step(&mut self, c: &mut Core, sh: &mut Env) -> Result<bool, Close> {
        let mut progress = false;
        if c.out.has_pending() {
            progress = c.out.flush()?;
            if progress {
                // A CGI response keeps its own timeout (any byte out is
                // progress for it); everything else the I/O one.
                let timeout = match &self.writing {
                    #[cfg(feature = "cgi")]
                    Writing::Cgi(run) => sh.vhosts[run.vhost].mounts[run.mount].cgi.timeout,
                    _ => sh.limits.io_timeout,
                };
                sh.timers.set(c.key, sh.now + timeout);
            }
            if c.out.has_pending() {
                return Ok(progress);
            }
        }
        match &mut self.writing {
            Writing::Idle | Writing::Closed => Ok(progress),
            Writing::Complete | Writing::Callback(CbResp::Done) => {
                self.finish_transaction(c, sh);
                Ok(true)
            }
            Writing::File { .. } => Ok(self.send_file_chunk(c, sh)? || progress),
            Writing::Multipart(_) => Ok(self.send_multipart_step(c, sh)? || progress),
            Writing::Interpret { .. } => Ok(self.interpret_step(c, sh)? || progress),
            #[cfg(feature = "cgi")]
            Writing::Cgi(_) => Ok(self.cgi_step(c, sh)? || progress),
            #[cfg(feature = "cgi")]
            Writing::CgiWait { .. } => Ok(progress),
            Writing::FileWait { .. } => Ok(progress),
            Writing::Callback(_) => {
                if !c.want_writable {
                    return Ok(progress);
                }
                c.want_writable = false;
                let sent = c.out.sent;
                self.deliver_writeable(c, sh)?;
                if let Some(kind) = c.out.failed {
                    return Err(Close(format!("write failed: {}", io::Error::from(kind))));
                }
                if c.out.sent != sent {
                    sh.timers.set(c.key, sh.now + sh.limits.io_timeout);
                }
                Ok(true)
            }
            Writing::Shutdown => {
                if let Err(e) = c.out.sock.shutdown_write() {
                    return Err(e.into());
                }
                self.writing = Writing::Closed;
                self.reading = Reading::Linger;
                c.rx_paused = false;
                self.input = Vec::new();
                sh.timers.set(c.key, sh.now + sh.limits.linger);
                Ok(true)
            }
        }
    }

    fn deliver_writeable(&mut self, c: &mut Core, sh: &mut Env) -> Result<(), Close> {
        let id = c.id();
        let body_unread = !matches!(self.reading, Reading::Done);
        let secure = c.is_tls();
        let (out, peer) = (&mut c.out, c.peer);
        let H1 { writing, tx, binding, .. } = self;
        let (Some(b), Writing::Callback(state)) = (binding.as_mut(), writing) else { return Ok(()) };
        let Env { vhosts, live, date, tx: scratch, commands, handle, .. } = sh;
        let (vh, protocols) = (&vhosts[b.vhost], &mut live[b.vhost].protocols);
        let env = vh.head_env(date.text(), secure);
        let writer = Writer { inner: ResponseWriter { out, state, tx, scratch, env, body_unread } };
        let mut cx = Cx { commands, vhost: b.vhost, protocol: b.protocol, handle };
        let action =
            protocols[b.protocol].dispatch(&mut cx, RawEvent::Writeable(id, peer, writer), Some(&mut b.session));
        self.after_callback(c, sh, action)
    }

    /// Ends a transaction whose response has fully left.
    fn finish_transaction(&mut self, c: &mut Core, sh: &mut Env) {
        c.want_writable = false;
        // The request is over: its peer may start another.
        self.peer_slot = None;
        self.log_transaction(c, sh);
        if self.tx.keep_alive && matches!(self.reading, Reading::Done) && !self.body_unread {
            // A pause of rx was about the request that just ended.
            c.rx_paused = false;
            self.writing = Writing::Idle;
            self.reading = Reading::Head { started: false };
            let keepalive = sh.vhosts[c.vhost].keepalive_timeout;
            // Its head said keep-alive before a drain began: closing now
            // would meet the next request the client may have sent; it is
            // answered (and is the last) if it comes within DRAIN_IDLE.
            let wait = if sh.draining { keepalive.min(DRAIN_IDLE) } else { keepalive };
            sh.timers.set(c.key, sh.now + wait);
        } else {
            self.writing = Writing::Shutdown;
        }
    }

    // ---- reading ----------------------------------------------------------

    fn read_step(&mut self, c: &mut Core, sh: &mut Env) -> Result<bool, Close> {
        if matches!(self.reading, Reading::Done) {
            return Ok(false);
        }
        if !self.input.is_empty() && !matches!(self.reading, Reading::Linger) {
            let input = std::mem::take(&mut self.input);
            let used = self.consume(c, sh, &input)?;
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
        if !c.readable {
            return Ok(false);
        }
        let mut rx = std::mem::take(&mut sh.rx);
        let r = self.read_into(c, sh, &mut rx);
        sh.rx = rx;
        r
    }

    fn read_into(&mut self, c: &mut Core, sh: &mut Env, rx: &mut [u8]) -> Result<bool, Close> {
        let n = match c.read(rx)? {
            None => return Ok(false),
            Some(0) => {
                return Err(Close(match self.reading {
                    Reading::Linger => "done".into(),
                    _ => "peer closed".into(),
                }))
            }
            Some(n) => n,
        };
        if matches!(self.reading, Reading::Linger) {
            return Ok(true);
        }
        if self.input.is_empty() {
            let used = self.consume(c, sh, &rx[..n])?;
            if used < n {
                self.input.extend_from_slice(&rx[used..n]);
            }
        } else {
            self.input.extend_from_slice(&rx[..n]);
            // PERF: a head can only complete with a new line; while a
            // trickling client sends none, do not re-parse what we have.
            let head = matches!(self.reading, Reading::Head { .. });
            // (Not while a raw fallback is still undecided: a raw
            // protocol's bytes need not hold new lines.)
            let sniffing = self.fresh && falls_back(c, sh);
            if head && !sniffing && !rx[..n].contains(&b'\n') && self.input.len() <= sh.limits.max_head {
                return Ok(true);
            }
            let input = std::mem::take(&mut self.input);
            let used = self.consume(c, sh, &input)?;
            self.input = input;
            self.input.drain(..used);
            if self.input.is_empty() {
                self.input = Vec::new();
            }
        }
        Ok(true)
    }

    /// Consumes what the reading state can take from `input`.
    fn consume(&mut self, c: &mut Core, sh: &mut Env, input: &[u8]) -> Result<usize, Close> {
        let mut used = 0;
        while used < input.len() && !c.rx_paused {
            match &mut self.reading {
                Reading::Head { started } => {
                    if !*started && self.peer_slot.is_none() && !self.may_start_request(c, sh) {
                        break;
                    }
                    if self.fresh && falls_back(c, sh) {
                        match crate::http::request::sniff_method(&input[used..]) {
                            Sniff::Http => self.fresh = false,
                            Sniff::NotHttp => {
                                // RAW-2: nothing consumed; the raw role
                                // gets it all as its first rx.
                                self.fallback = true;
                                return Ok(used);
                            }
                            // Empty lines alone, past what a head may
                            // hold: no more sniffing; the HTTP path's
                            // limits take them (a flood of CRLFs must
                            // not grow the buffer).
                            Sniff::Maybe if input.len() - used > sh.limits.max_head => self.fresh = false,
                            Sniff::Maybe => {
                                if let Reading::Head { started: started @ false } = &mut self.reading {
                                    *started = true;
                                    sh.timers.set(c.key, sh.now + sh.limits.header_timeout);
                                }
                                break;
                            }
                        }
                    }
                    let Reading::Head { started } = &mut self.reading else { break };
                    let limits = HeadLimits { max_head: sh.limits.max_head, max_uri: sh.limits.max_uri };
                    match request::parse(&input[used..], limits) {
                        Ok(None) => {
                            if !*started {
                                *started = true;
                                sh.timers.set(c.key, sh.now + sh.limits.header_timeout);
                            }
                            break;
                        }
                        Ok(Some((req, n))) => {
                            used += n;
                            self.on_request(c, sh, req)?;
                        }
                        Err(e) => {
                            self.refuse_head(c, sh, e);
                            return Ok(input.len());
                        }
                    }
                }
                Reading::Body(decoder) => {
                    let (n, data) = match decoder.decode(&input[used..]) {
                        Ok(r) => r,
                        Err(e) => {
                            log::debug!("{}: bad request body: {e:?}", c.peer);
                            self.body_failed(c, sh, 400, "bad request body")?;
                            return Ok(input.len());
                        }
                    };
                    if let Some(deadline) = self.body_deadline.as_mut() {
                        if sh.now > *deadline {
                            // Slower than the minimum rate for too long: the
                            // slot goes to someone else (as Apache's
                            // mod_reqtimeout does).
                            log::info!("{}: request body too slow; 408", c.peer);
                            self.body_deadline = None;
                            self.body_failed(c, sh, 408, "request body too slow")?;
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
                    if self.writing.is_cgi() {
                        #[cfg(feature = "cgi")]
                        self.cgi_feed(c, sh, data, done);
                    } else {
                        if let Some(data) = data {
                            let (id, peer) = (c.id(), c.peer);
                            self.dispatch(c, sh, RawEvent::Body(id, peer, data))?;
                        }
                        if done {
                            let (id, peer) = (c.id(), c.peer);
                            self.dispatch(c, sh, RawEvent::BodyCompletion(id, peer))?;
                        } else {
                            sh.timers.set(c.key, sh.now + sh.limits.io_timeout);
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
    fn refuse_head(&mut self, c: &mut Core, sh: &mut Env, e: HeadError) {
        log::debug!("{}: bad request head: {e:?}", c.peer);
        self.tx = TxInfo { version: Version::Http11, keep_alive: false, head_only: false, status: 0 };
        self.reading = Reading::Done;
        if sh.live[c.vhost].access_log.is_some() {
            let entry = crate::access_log::Entry {
                method: "-".into(),
                path: "-".into(),
                proto: "HTTP/1.1",
                referer: String::new(),
                user_agent: String::new(),
            };
            self.logging = Some(Box::new((entry, c.out.sent)));
        }
        self.uncounted = true;
        self.send_error(c, sh, e.status(), None);
    }

    // ---- requests ---------------------------------------------------------

    fn on_request(&mut self, c: &mut Core, sh: &mut Env, #[allow(unused_mut)] mut req: Request) -> Result<(), Close> {
        crate::metrics::inc(&sh.handle.inner.metrics.requests);
        self.uncounted = true;
        self.tx = TxInfo {
            version: req.version(),
            // Draining: this is the connection's last response.
            keep_alive: req.keep_alive() && !sh.draining,
            head_only: req.method() == Method::Head,
            status: 0,
        };
        sh.timers.set(c.key, sh.now + sh.limits.io_timeout);
        self.reading = Reading::Done;
        self.body_unread = !matches!(req.framing(), Framing::None | Framing::Length(0));
        if self.body_unread {
            // Only the paths that read the body (a protocol's, a CGI's)
            // let the connection be reused; every other answer closes.
            self.tx.keep_alive = false;
        }
        let rate_checked = self.body_unread && sh.limits.body_min_rate > 0;
        self.body_deadline = rate_checked.then(|| sh.now + sh.limits.body_timeout);
        c.vhost = select_vhost(&sh.vhosts, &sh.listeners[c.listener], req.host());
        // VH-3: without a Host, a TLS connection stays on the vhost its
        // SNI picked.
        #[cfg(feature = "tls")]
        if let Some(t) = &c.tls {
            if req.host().is_none() {
                c.vhost = t.vhost;
            }
            req.set_tls(Some(crate::tls::policy::session_for(t, c.vhost)));
        }
        if sh.live[c.vhost].access_log.is_some() {
            let entry = crate::access_log::Entry {
                method: req.method_str().to_string(),
                path: req.path().to_string(),
                proto: req.version().as_str(),
                referer: req.header_str("referer").unwrap_or("").to_string(),
                user_agent: req.header_str("user-agent").unwrap_or("").to_string(),
            };
            self.logging = Some(Box::new((entry, c.out.sent)));
        }
        #[cfg(feature = "tls")]
        if self.tls_refusal(c, sh, &req)? {
            return Ok(());
        }
        if req.path() == "*" {
            self.skip_body(&req);
            self.send_simple(c, sh, 200, &[("Allow", "GET, HEAD, OPTIONS")], false);
            return Ok(());
        }
        // Without the `ws` feature an Upgrade header is ignored (RFC 9110
        // §7.8) and the request served as any other.
        #[cfg(feature = "ws")]
        if handshake::is_upgrade(&req) {
            self.upgrade_to_ws(c, sh, req);
            return Ok(());
        }
        let now = sh.now;
        let found = mount::find(&sh.vhosts[c.vhost].mounts, req.path()).map(|(i, m)| {
            let auth = sh.live[c.vhost].mounts[i].auth.as_mut();
            let verdict = auth.map(|creds| creds.check(req.header("authorization"), now));
            (i, matches!(m.origin, Origin::Callback(_)), verdict)
        });
        if let Some((mi, _, None | Some(auth::Verdict::Allowed))) = found {
            let m = &sh.vhosts[c.vhost].mounts[mi];
            // Deny rules and dotfiles of a file mount (a `cgi://` mount's
            // are decided where its program is: `serve_cgi`).
            let ruled = matches!(m.origin, Origin::File(_));
            if let Some((status, why)) = ruled.then(|| crate::mount::refusal(m, req.path())).flatten() {
                log::info!("{}: \"{}\": refused ({status}): {why}", c.peer, log_path(req.path()));
                self.unbind(c, sh);
                self.skip_body(&req);
                self.send_error(c, sh, status, Some(&req));
                return Ok(());
            }
            #[cfg(feature = "cgi")]
            if matches!(m.origin, Origin::Cgi(_) | Origin::Fcgi(_)) {
                self.unbind(c, sh);
                self.serve_cgi(c, sh, req, mi, 0, None, None);
                return Ok(());
            }
        }
        match found {
            Some((_, _, Some(verdict))) if verdict != auth::Verdict::Allowed => {
                // AUTH-2: a challenge without a body, or 403 for nonsense.
                self.unbind(c, sh);
                self.skip_body(&req);
                match verdict {
                    auth::Verdict::Malformed => self.send_simple(c, sh, 403, &[], true),
                    _ => self.send_simple(c, sh, 401, &[("WWW-Authenticate", crate::auth::CHALLENGE)], false),
                }
            }
            Some((mi, true, _)) => return self.serve_callback(c, sh, req, mi),
            Some((mi, false, _)) => {
                self.unbind(c, sh);
                self.skip_body(&req);
                let redirect = match &sh.vhosts[c.vhost].mounts[mi].origin {
                    Origin::Redirect { to, append_path } => {
                        let m = &sh.vhosts[c.vhost].mounts[mi];
                        let rest = if *append_path { uri::encode_path(m.remainder(req.path())) } else { String::new() };
                        Some(format!("{to}{rest}"))
                    }
                    _ => None,
                };
                match redirect {
                    // REDIR-2/4: 301, Location exactly the target.
                    Some(to) => {
                        self.send_simple(c, sh, 301, &[("Location", &to), ("Content-Type", "text/html")], false)
                    }
                    None => self.serve_file(c, sh, &req, mi),
                }
            }
            None => {
                self.unbind(c, sh);
                self.skip_body(&req);
                self.send_error(c, sh, 404, Some(&req));
            }
        }
        Ok(())
    }

    /// Answers what TLS decides before any mount (`tls::policy::admit`):
    /// a plaintext request on a TLS port the vhost its Host names does not
    /// serve in plaintext (301 to https, REDIR-3, or 421), and a TLS request
    /// Host moves into a vhost whose CA did not verify its handshake (421,
    /// answered by the handshake's vhost, nothing of the other's given).
    #[cfg(feature = "tls")]
    fn tls_refusal(&mut self, c: &mut Core, sh: &mut Env, req: &Request) -> Result<bool, Close> {
        use crate::tls::policy::{admit, Admit};
        if c.tls.is_none() && !c.plain_on_tls {
            return Ok(false);
        }
        let port_first = sh.listeners[c.listener].first().copied().unwrap_or(c.vhost);
        match admit(&sh.vhosts, port_first, c.vhost, c.tls.as_deref()) {
            Admit::Serve => return Ok(false),
            Admit::Redirect => {
                // REDIR-3: a Host missing or longer than 128 closes.
                let Some(host) = req.host().filter(|h| h.len() <= 128 && crate::vhost::plain_host(h)) else {
                    return Err(Close("plaintext request on a TLS port without a usable Host".into()));
                };
                let mut location = format!("https://{host}{}", raw_path(req));
                if let Some(q) = req.query() {
                    location.push('?');
                    location.push_str(q);
                }
                self.skip_body(req);
                self.send_simple(c, sh, 301, &[("Location", &location), ("Content-Type", "text/html")], false);
            }
            Admit::Misdirected { vhost } => {
                log::info!(
                    "{}: Host {:?} names vhost {:?}, which does not serve this connection ({}); 421",
                    c.peer,
                    crate::access_log::log_safe(req.host().unwrap_or(""), 128),
                    sh.vhosts[c.vhost].name,
                    if c.plain_on_tls { "plaintext" } else { "its handshake was for another vhost" },
                );
                c.vhost = vhost;
                self.skip_body(req);
                self.send_simple(c, sh, 421, &[], true);
            }
        }
        Ok(true)
    }

    /// A request body nobody will read: rather than read and drop an
    /// unbounded amount, answer and close.
    fn skip_body(&mut self, req: &Request) {
        if !matches!(req.framing(), Framing::None | Framing::Length(0)) {
            self.tx.keep_alive = false;
        }
    }

    /// The request body cannot go on (bad framing, 400; too slow, 408):
    /// answer with `status` if no response has begun, else close.
    fn body_failed(&mut self, c: &mut Core, sh: &mut Env, status: u16, why: &str) -> Result<(), Close> {
        #[cfg(feature = "cgi")]
        if matches!(self.writing, Writing::Cgi(_)) {
            return self.cgi_bad_body(c, sh, status);
        }
        if self.writing_is(CbResp::AwaitHead) && !c.out.has_pending() {
            self.tx.keep_alive = false;
            self.reading = Reading::Done;
            self.send_error(c, sh, status, None);
            return Ok(());
        }
        Err(Close(why.into()))
    }

    /// A response is under way and blocked on the peer taking bytes.
    fn waits_for_reader(&self, c: &mut Core) -> bool {
        !c.out.writable
            && matches!(self.reading, Reading::Done | Reading::Body(_))
            && !matches!(self.writing, Writing::Idle | Writing::Closed | Writing::FileWait { .. })
            && !self.writing.is_cgi_wait()
    }

    /// Answers `Expect: 100-continue` for a request with a body.
    fn continue_if_expected(&mut self, c: &mut Core, req: &Request) -> io::Result<()> {
        if req.expects_continue() && !matches!(req.framing(), Framing::None | Framing::Length(0)) {
            c.out.write(b"HTTP/1.1 100 Continue\r\n\r\n", false)?;
        }
        Ok(())
    }

    /// The connection is going away: tell its protocol.
    /// Writes the access-log line of the transaction that just ended.
    fn log_transaction(&mut self, c: &mut Core, sh: &mut Env) {
        if std::mem::take(&mut self.uncounted) {
            sh.live[c.vhost].metrics.response(self.tx.status);
        }
        let Some(entry) = self.logging.take() else { return };
        if let Some(log) = &sh.live[c.vhost].access_log {
            let (entry, start) = *entry;
            log.log(c.peer, &entry, self.tx.status, c.out.sent - start);
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

impl Role for H1 {
    /// Serves the connection as far as it can go now.
    fn service(&mut self, c: &mut Core, sh: &mut Env) -> Step {
        for _ in 0..BUDGET {
            let r = self.step(c, sh);
            #[cfg(feature = "ws")]
            if self.upgrade.is_some() {
                return Step::Upgrade;
            }
            if self.fallback {
                return Step::Raw;
            }
            match r {
                Ok(true) => {}
                Ok(false) => {
                    self.track_rx_pause(c, sh.now);
                    return Step::Keep;
                }
                Err(Close(why)) => {
                    log::debug!("{}: closing: {why}", c.peer);
                    return Step::Close;
                }
            }
        }
        self.track_rx_pause(c, sh.now);
        sh.force(c);
        Step::Keep
    }

    /// The connection's timer fired: the CGI slot wait and the CGI
    /// timeout are handled here; anything else closes. (The loop also
    /// calls it for a request waiting for a CGI slot when its turn comes.)
    fn on_timer(&mut self, c: &mut Core, sh: &mut Env) -> Step {
        match std::mem::replace(&mut self.writing, Writing::Idle) {
            #[cfg(feature = "cgi")]
            w @ (Writing::CgiWait { .. } | Writing::Cgi(_)) => self.cgi_timer(c, sh, w),
            Writing::FileWait { req, mount, until, .. } => {
                self.serve_file(c, sh, &req, mount);
                if let Writing::FileWait { until: first, poll, .. } = &mut self.writing {
                    // Still not ready: the wait keeps its first deadline.
                    *first = until;
                    let poll = *poll;
                    if sh.now < until {
                        let next = if poll { (sh.now + FILE_WAIT_POLL).min(until) } else { until };
                        sh.timers.set(c.key, next);
                        return Step::Keep;
                    }
                    log::warn!("{}: \"{}\" still not ready after {FILE_WAIT:?}; 503", c.peer, log_path(req.path()));
                    self.writing = Writing::Idle;
                    self.send_simple(c, sh, 503, &[("Retry-After", "1")], true);
                }
                sh.timers.set(c.key, sh.now + sh.limits.io_timeout);
                sh.force(c);
                Step::Keep
            }
            other => {
                self.writing = other;
                if self.waits_for_reader(c) && c.out.peer_progress() {
                    // A slow but steady reader: what it drained from the
                    // kernel's send queue is progress, though none of our
                    // writes could move.
                    sh.timers.set(c.key, sh.now + sh.limits.io_timeout);
                    return Step::Keep;
                }
                if self.peer_waiting {
                    return self.peer_wait_expired(c, sh);
                }
                log::debug!("{}: timed out in {}", c.peer, self.phase());
                Step::Close
            }
        }
    }

    fn apply(&mut self, c: &mut Core, cmd: Command, env: &mut Env) {
        self.apply_command(c, cmd, env)
    }

    /// Idle between requests (or not yet sent one): the connection is
    /// kept for [`DRAIN_IDLE`] at most, as its client may have sent a
    /// request already; one that comes is answered, and is its last. A
    /// connection busy with a request ends after its response
    /// (`finish_transaction` and `on_request` see `draining`).
    fn drain(&mut self, c: &mut Core, sh: &mut Env, _websockets: bool) -> Step {
        let idle = matches!((&self.reading, &self.writing), (Reading::Head { started: false }, Writing::Idle));
        if idle && self.input.is_empty() {
            let wait = DRAIN_IDLE.min(sh.vhosts[c.vhost].keepalive_timeout);
            sh.timers.set(c.key, sh.now + wait);
        }
        Step::Keep
    }

    fn on_close(&mut self, c: &mut Core, sh: &mut Env) {
        if std::mem::take(&mut self.peer_waiting) {
            sh.peer_waiters.retain(|&(key, _)| key != c.key);
        }
        match std::mem::replace(&mut self.writing, Writing::Closed) {
            // The client went away: so does the program (CGI-9).
            #[cfg(feature = "cgi")]
            Writing::Cgi(run) => self.cgi_end(c, sh, *run, true),
            // It leaves the line of requests waiting for a slot.
            #[cfg(feature = "cgi")]
            Writing::CgiWait { slots, .. } => sh.cgi_waiters.remove(&slots, c.key),
            _ => {}
        }
        // A transaction cut short is logged with what was sent.
        self.log_transaction(c, sh);
        if self.binding.is_some() {
            let (id, peer) = (c.id(), c.peer);
            let _ = self.dispatch(c, sh, RawEvent::Closed(id, peer));
            self.unbind(c, sh);
        }
    }

    fn bound_to(&self) -> Option<(usize, usize)> {
        H1::bound_to(self)
    }

    fn phase(&self) -> &'static str {
        self.phase_word()
    }
}

/// A multipart/byteranges body being sent (RFC 9110 §14.6).
#[derive(Debug)]
pub(super) struct MultipartSend {
    file: Box<dyn FileHandle>,
    plan: Multipart,
    /// The next part to start.
    next: usize,
    /// Bytes of the current part still to send.
    in_part: u64,
}

/// A request path as the error log shows it: escaped as the access log
/// escapes fields (no line can be forged) and cut to 256 bytes (one
/// request cannot write kilobytes per line).
fn log_path(path: &str) -> String {
    crate::access_log::log_safe(path, 256)
}

/// The path as the client sent it (still percent-encoded), for Location.
/// Leading `/` runs are collapsed so the result can never read as a
/// scheme-relative `//host` reference.
/// A target that is not a path (`*`) gives `/`.
pub(super) fn raw_path(req: &Request) -> &str {
    let path = uri::split_target(req.target()).map_or("/", |t| t.path);
    let trimmed = path.trim_start_matches('/');
    match path.len() - trimmed.len() {
        0 => "/",
        slashes => &path[slashes - 1..],
    }
}

/// Whether the port `c` came in on falls back to raw when its first bytes
/// are not HTTP (RAW-2: the port's first vhost decides). TLS ports do
/// not: their fallback is RAW-4's, decided before any role.
fn falls_back(c: &Core, sh: &Env) -> bool {
    if c.is_tls() {
        return false;
    }
    let first = sh.listeners.get(c.listener).and_then(|l| l.first());
    first.is_some_and(|&v| sh.vhosts[v].raw_accept.is_some_and(|a| a.fallback))
}
