//! The WebSocket role: a connection after its 101.
//!
//! Reading parses frames incrementally from the loop's receive buffer and
//! hands message data to the protocol as it arrives (unmasked in place,
//! inflated through one bounded buffer, UTF-8 checked on the way).
//! Control frames are answered by the core. Writing follows the same
//! rule as HTTP: the protocol writes once per writeable callback, and a
//! partial write is the connection's one pending remainder; pongs and
//! close frames the core owes go out between the protocol's writes.

mod read;

use crate::conn::Out;
use crate::conn::{Close, Step};
use crate::conn::{Core, Env, Role};
use crate::protocol::{Action, Command, Cx, RawEvent, Session};
use crate::ws::deflate::{DeflateConfig, Deflater, TAIL};
use crate::ws::frame::{encode_header, unmask, Header, HeaderParser, Opcode};
use crate::ws::pool::{give_deflater, give_inflater, take_deflater, take_inflater, InflateRx};
use crate::ws::utf8::Utf8Stream;
use crate::ws::{CloseCode, Rx, WriteKind, WsWriter};
use crate::wsi::misuse;
use std::io;

/// Steps a connection may take per service call before others get a turn.
const BUDGET: usize = 16;
/// The default inflate buffer (per connection that receives compressed
/// messages): the protocol's rx_buffer_size, at most this.
const INFLATE_CHUNK: usize = 16 * 1024;
/// Longest frame header we send.
const MAX_HEADER: usize = 10;

/// Where the close handshake stands.
#[derive(Debug, PartialEq, Eq)]
enum Closing {
    Open,
    /// We owe the peer this close frame (we start the handshake).
    Send(Box<[u8]>),
    /// The peer closed: echo this, then close the TCP connection.
    Reply(Box<[u8]>),
    /// Ours is sent; reading on until the peer's arrives (timer-bounded).
    Sent,
    /// Nothing left but to flush and close.
    Done,
}

/// The frame being read.
#[derive(Debug)]
struct FrameRx {
    opcode: Opcode,
    fin: bool,
    remaining: u64,
    offset: u64,
    mask: [u8; 4],
}

/// The message being read.
#[derive(Debug)]
struct MsgRx {
    binary: bool,
    compressed: bool,
    size: u64,
    delivered: bool,
}

/// What a connection holds only while it is in the middle of something.
#[derive(Debug, Default)]
struct Busy {
    header: HeaderParser,
    frame: Option<FrameRx>,
    msg: Option<MsgRx>,
    utf8: Utf8Stream,
    /// A control frame's payload as it arrives.
    control: Vec<u8>,
    /// Bytes read but not yet parsed (still masked): left when the
    /// protocol paused rx in the middle of a read.
    input: Vec<u8>,
    /// How much of `input` is used: the front is not shifted out per
    /// frame (a pause after each small message would move the whole
    /// remainder each time).
    input_off: usize,
    /// A pong we owe (the latest ping's payload).
    pong: Option<Vec<u8>>,
}

impl Busy {
    fn idle(&self) -> bool {
        self.header.is_empty()
            && self.frame.is_none()
            && self.msg.is_none()
            && self.utf8.at_boundary()
            && self.control.is_empty()
            && self.input.is_empty()
            && self.pong.is_none()
    }
}

/// What the writer side remembers between writes.
#[derive(Debug, Default)]
pub(crate) struct TxState {
    /// A message begun and not ended: whether it is compressed.
    in_message: Option<bool>,
    deflate: Option<DeflateConfig>,
    deflater: Option<Box<Deflater>>,
}

/// Where inflation stood when the protocol paused rx.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Resume {
    MidMessage,
    BeforeTail,
    AfterTail,
}

/// What the upgrade settled, handed from h1 to the new connection.
#[derive(Debug)]
pub(crate) struct Upgrade {
    pub(crate) protocol: usize,
    pub(crate) deflate: Option<DeflateConfig>,
    pub(crate) request: crate::http::request::Request,
}

/// A WebSocket connection.
#[derive(Debug)]
pub(crate) struct Ws {
    /// The vhost and protocol it is bound to, for good.
    vhost: usize,
    protocol: usize,
    session: Session,
    /// Reading state, only while a frame, message or pong is in progress:
    /// an idle connection holds none.
    busy: Option<Box<Busy>>,
    /// Reading has failed: bytes are read and dropped until the peer's
    /// close or EOF.
    discard: bool,
    closing: Closing,
    /// Liveness: a keepalive ping is due / was sent and not yet answered.
    ping_due: bool,
    ping_outstanding: bool,
    /// The protocol set a timeout ([`Cx::set_timeout`]): the timer means
    /// "close", whatever liveness would do.
    user_timeout: bool,
    /// Our side of the TCP connection is shut down (after our close frame).
    fin_sent: bool,
    /// The close timer is armed.
    close_timer: bool,
    tx: TxState,
    inflate: Option<Box<InflateRx>>,
    /// Inflation was cut short by a pause of rx.
    inflate_resume: Option<Resume>,
    inflate_chunk: u32,
    rx_chunk: u32,
    max_message: u64,
}

impl Ws {
    /// The role of connection `c` after its 101 went out (or is
    /// pending): `input` holds what the peer sent after the request.
    pub(crate) fn new(c: &mut Core, up: &Upgrade, input: Vec<u8>, sh: &Env) -> Ws {
        // Bytes may wait in the kernel already; the rest starts afresh.
        c.readable = true;
        c.want_writable = false;
        c.hup = false;
        c.rx_paused = false;
        let p = &sh.live[c.vhost].protocols[up.protocol];
        let rx_chunk = match p.rx_buffer_size() {
            0 => crate::conn::RX_BUF,
            n => n,
        };
        let max_message = match p.max_message_size() {
            0 => sh.limits.ws_max_message,
            n => n,
        };
        Ws {
            vhost: c.vhost,
            protocol: up.protocol,
            session: p.new_session(),
            busy: (!input.is_empty()).then(|| Box::new(Busy { input, ..Busy::default() })),
            discard: false,
            closing: Closing::Open,
            ping_due: false,
            ping_outstanding: false,
            user_timeout: false,
            fin_sent: false,
            close_timer: false,
            tx: TxState { in_message: None, deflate: up.deflate, deflater: None },
            inflate: None,
            inflate_resume: None,
            inflate_chunk: rx_chunk.min(INFLATE_CHUNK) as u32,
            rx_chunk: rx_chunk.min(u32::MAX as usize) as u32,
            max_message,
        }
    }

    /// The reading state, made if the connection was idle.
    fn b(&mut self) -> &mut Busy {
        self.busy.get_or_insert_with(Box::default)
    }

    /// Frees the reading state once nothing is in progress.
    fn settle(&mut self) {
        if self.busy.as_ref().is_some_and(|b| b.idle()) {
            self.busy = None;
        }
    }

    /// Tells the protocol the connection is open.
    pub(crate) fn established(&mut self, c: &mut Core, sh: &mut Env, req: &crate::http::request::Request) -> Step {
        self.arm_keepalive(c, sh);
        let (id, peer) = (c.id(), c.peer);
        match self.dispatch(c, sh, RawEvent::Established(id, peer, req)) {
            Ok(()) => Step::Keep,
            Err(Close(why)) => {
                log::debug!("{peer}: closing: {why}");
                Step::Close
            }
        }
    }

    /// Serves the connection as far as it can go now.
    fn serve(&mut self, c: &mut Core, sh: &mut Env) -> Step {
        for _ in 0..BUDGET {
            match self.step(c, sh) {
                Ok(true) => {}
                Ok(false) => return Step::Keep,
                Err(Close(why)) => {
                    log::debug!("{}: ws closing: {why}", c.peer);
                    return Step::Close;
                }
            }
        }
        sh.force(c);
        Step::Keep
    }

    fn step(&mut self, c: &mut Core, sh: &mut Env) -> Result<bool, Close> {
        if self.closing == Closing::Done && !c.out.has_pending() {
            return Err(Close("close handshake done".into()));
        }
        if self.closing != Closing::Open && !self.close_timer {
            // However the close began (our failure, the protocol, the
            // peer), it has ws_close_timeout to finish, even if the peer
            // reads nothing and our close frame cannot be written.
            self.close_timer = true;
            sh.timers.set(c.key, sh.now + sh.limits.ws_close_timeout);
        }
        let mut progress = false;
        if c.out.writable {
            progress |= self.write_step(c, sh)?;
        }
        if !self.rx_blocked(c) {
            progress |= self.read_step(c, sh)?;
        }
        self.settle();
        Ok(progress)
    }

    /// The connection's timer fired.
    fn timer(&mut self, c: &mut Core, sh: &mut Env) -> Step {
        if self.closing != Closing::Open {
            log::debug!("{}: ws close handshake timed out", c.peer);
            return Step::Close;
        }
        if self.user_timeout {
            log::debug!("{}: ws timeout set by the protocol", c.peer);
            return Step::Close;
        }
        match sh.vhosts[c.vhost].ws_keepalive {
            Some((_, hangup)) if !self.ping_outstanding => {
                self.ping_due = true;
                self.ping_outstanding = true;
                sh.timers.set(c.key, sh.now + hangup);
                sh.force(c);
                Step::Keep
            }
            Some(_) => {
                log::debug!("{}: ws peer silent after a ping; hanging up", c.peer);
                Step::Close
            }
            // A timeout the protocol set.
            None => Step::Close,
        }
    }

    /// Valid traffic arrived: the peer is alive.
    fn arm_keepalive(&mut self, c: &mut Core, sh: &mut Env) {
        if self.user_timeout || self.closing != Closing::Open {
            return;
        }
        if let Some((ping_after, _)) = sh.vhosts[c.vhost].ws_keepalive {
            self.ping_outstanding = false;
            sh.timers.set(c.key, sh.now + ping_after);
        }
    }

    // ---- writing ----------------------------------------------------------

    fn write_step(&mut self, c: &mut Core, sh: &mut Env) -> Result<bool, Close> {
        let mut progress = false;
        if c.out.has_pending() {
            progress = c.out.flush()?;
            if c.out.has_pending() {
                return Ok(progress);
            }
        }
        if self.closing == Closing::Sent && !self.fin_sent {
            // Our close frame is out: nothing follows it, so say so at
            // the TCP level too. The peer answers and closes; we read and
            // drop until it does (bounded by the close timer).
            self.fin_sent = true;
            if let Err(e) = c.out.sock.shutdown_write() {
                return Err(e.into());
            }
            return Ok(true);
        }
        match std::mem::replace(&mut self.closing, Closing::Open) {
            Closing::Send(payload) => {
                // Nothing but the close goes out from now on.
                if let Some(b) = self.busy.as_mut() {
                    b.pong = None;
                }
                self.control_frame(c, sh, Opcode::Close, &payload)?;
                self.closing = Closing::Sent;
                sh.timers.set(c.key, sh.now + sh.limits.ws_close_timeout);
                return Ok(true);
            }
            Closing::Reply(payload) => {
                self.control_frame(c, sh, Opcode::Close, &payload)?;
                self.closing = Closing::Done;
                return Ok(true);
            }
            Closing::Done => {
                self.closing = Closing::Done;
                return Ok(progress);
            }
            other => self.closing = other,
        }
        if let Some(payload) = self.busy.as_mut().and_then(|b| b.pong.take()) {
            self.control_frame(c, sh, Opcode::Pong, &payload)?;
            return Ok(true);
        }
        if self.ping_due {
            self.ping_due = false;
            self.control_frame(c, sh, Opcode::Ping, b"")?;
            return Ok(true);
        }
        if c.want_writable && self.closing == Closing::Open {
            c.want_writable = false;
            self.deliver_writeable(c, sh)?;
            if let Some(kind) = c.out.failed {
                return Err(Close(format!("write failed: {}", io::Error::from(kind))));
            }
            return Ok(true);
        }
        Ok(progress)
    }

    fn control_frame(&mut self, c: &mut Core, sh: &mut Env, opcode: Opcode, payload: &[u8]) -> Result<(), Close> {
        let buf = &mut sh.tx;
        buf.clear();
        encode_header(buf, true, false, opcode, payload.len() as u64);
        buf.extend_from_slice(payload);
        c.out.write(buf, false)?;
        Ok(())
    }

    fn deliver_writeable(&mut self, c: &mut Core, sh: &mut Env) -> Result<(), Close> {
        let id = c.id();
        let (out, peer) = (&mut c.out, c.peer);
        let Ws { tx, closing, session, vhost, protocol, .. } = self;
        let Env { live, tx: scratch, commands, handle, .. } = sh;
        let writer = WsWriter { inner: FrameWriter { out, tx, scratch, closing } };
        let mut cx = Cx { commands, vhost: *vhost, protocol: *protocol, handle };
        let action =
            live[*vhost].protocols[*protocol].dispatch(&mut cx, RawEvent::WsWriteable(id, peer, writer), Some(session));
        if self.closing == Closing::Sent {
            // The protocol wrote a close frame: bound the wait for the answer.
            sh.timers.set(c.key, sh.now + sh.limits.ws_close_timeout);
        }
        self.after_callback(c, sh, action)
    }

    // ---- protocols --------------------------------------------------------

    fn dispatch(&mut self, c: &mut Core, sh: &mut Env, event: RawEvent<'_>) -> Result<(), Close> {
        let Env { live, commands, handle, .. } = sh;
        let mut cx = Cx { commands, vhost: self.vhost, protocol: self.protocol, handle };
        let action = live[self.vhost].protocols[self.protocol].dispatch(&mut cx, event, Some(&mut self.session));
        self.after_callback(c, sh, action)
    }

    /// Applies the callback's requests about this connection now; the
    /// service applies the rest when we return.
    fn after_callback(&mut self, c: &mut Core, sh: &mut Env, action: Action) -> Result<(), Close> {
        for cmd in sh.take_commands_for(c.id()) {
            self.apply_command(c, cmd, sh);
        }
        if action == Action::Close && self.closing == Closing::Open {
            // WS-7: a close frame, then wait (bounded) for the answer.
            self.closing = Closing::Send(close_payload(CloseCode::NORMAL, ""));
            sh.force(c);
        }
        Ok(())
    }

    /// Applies one callback request to this connection.
    fn apply_command(&mut self, c: &mut Core, cmd: Command, sh: &mut Env) {
        match cmd {
            Command::Writable(_) => {
                c.want_writable = true;
                sh.force(c);
            }
            Command::RxFlow(_, enable) => {
                c.rx_paused = !enable;
                if enable {
                    sh.force(c);
                }
            }
            // Closing: the close timer is not the protocol's to move.
            Command::Timeout(..) if self.closing != Closing::Open => {}
            Command::Timeout(_, Some(after)) => {
                self.user_timeout = true;
                sh.timers.set(c.key, sh.now + after);
            }
            Command::Timeout(_, None) => {
                self.user_timeout = false;
                sh.timers.clear(c.key);
                self.arm_keepalive(c, sh);
            }
            Command::InflateChunk(_, size) => {
                self.inflate_chunk = size as u32;
                if let Some(inf) = self.inflate.as_mut() {
                    if inf.filled == 0 {
                        inf.buf = vec![0; size].into_boxed_slice();
                    }
                }
            }
            Command::WritableAllProtocol { .. } | Command::Schedule { .. } => {}
        }
    }

    /// The connection is going away: tell its protocol.
    fn closed(&mut self, c: &mut Core, sh: &mut Env) {
        let (id, peer) = (c.id(), c.peer);
        let _ = self.dispatch(c, sh, RawEvent::WsClosed(id, peer));
    }
}

impl Role for Ws {
    fn service(&mut self, c: &mut Core, env: &mut Env) -> Step {
        self.serve(c, env)
    }

    fn on_timer(&mut self, c: &mut Core, env: &mut Env) -> Step {
        self.timer(c, env)
    }

    fn apply(&mut self, c: &mut Core, cmd: Command, env: &mut Env) {
        self.apply_command(c, cmd, env)
    }

    fn on_close(&mut self, c: &mut Core, env: &mut Env) {
        self.closed(c, env)
    }

    fn bound_to(&self) -> Option<(usize, usize)> {
        Some((self.vhost, self.protocol))
    }

    fn phase(&self) -> &'static str {
        "websocket"
    }
}

/// A close frame's payload: the code, then the reason cut to fit 123
/// bytes on a character boundary.
fn close_payload(code: CloseCode, reason: &str) -> Box<[u8]> {
    let mut cut = reason.len().min(123);
    while !reason.is_char_boundary(cut) {
        cut -= 1;
    }
    let mut p = code.0.to_be_bytes().to_vec();
    p.extend_from_slice(&reason.as_bytes()[..cut]);
    p.into_boxed_slice()
}

/// The writer behind [`WsWriter`].
#[derive(Debug)]
pub(crate) struct FrameWriter<'a> {
    out: &'a mut Out,
    tx: &'a mut TxState,
    scratch: &'a mut Vec<u8>,
    closing: &'a mut Closing,
}

impl FrameWriter<'_> {
    pub(crate) fn data(self, data: &[u8], kind: WriteKind, fin: bool) -> io::Result<()> {
        if *self.closing != Closing::Open {
            return Err(misuse("the connection is closing"));
        }
        let first = match (kind, self.tx.in_message) {
            (WriteKind::Continuation, Some(_)) => false,
            (WriteKind::Continuation, None) => return Err(misuse("a continuation with no message begun")),
            (_, Some(_)) => return Err(misuse("a new message before the last one ended")),
            (_, None) => true,
        };
        let compressed = match self.tx.in_message {
            Some(found) => found,
            // Every message, however small: RFC 7692 allows plain ones,
            // but lws clients (4.1) stall on a plain message once deflate
            // is agreed.
            None => self.tx.deflate.is_some(),
        };
        let opcode = match kind {
            WriteKind::Text => Opcode::Text,
            WriteKind::Binary => Opcode::Binary,
            WriteKind::Continuation => Opcode::Continuation,
        };
        let buf = self.scratch;
        buf.clear();
        if compressed {
            let cfg = self.tx.deflate.as_ref().ok_or_else(|| misuse("no deflate"))?;
            let mut deflater = match self.tx.deflater.take() {
                Some(d) => d,
                None => take_deflater(cfg),
            };
            buf.resize(MAX_HEADER, 0);
            // A compressor that failed is dropped, not kept or pooled.
            deflater.compress(data, fin, buf).map_err(|e| io::Error::other(format!("deflate failed: {e:?}")))?;
            if fin && deflater.fits(cfg) {
                give_deflater(deflater);
            } else {
                self.tx.deflater = Some(deflater);
            }
            let mut head = Vec::with_capacity(MAX_HEADER);
            encode_header(&mut head, fin, first, opcode, (buf.len() - MAX_HEADER) as u64);
            let start = MAX_HEADER - head.len();
            buf[start..MAX_HEADER].copy_from_slice(&head);
            self.out.write(&buf[start..], false)?;
        } else {
            encode_header(buf, fin, false, opcode, data.len() as u64);
            self.out.write_parts(buf, data)?;
        }
        self.tx.in_message = if fin { None } else { Some(compressed) };
        Ok(())
    }

    pub(crate) fn ping(self, payload: &[u8]) -> io::Result<()> {
        if payload.len() > 125 {
            return Err(misuse("a ping payload is at most 125 bytes"));
        }
        if *self.closing != Closing::Open {
            return Err(misuse("the connection is closing"));
        }
        self.scratch.clear();
        encode_header(self.scratch, true, false, Opcode::Ping, payload.len() as u64);
        self.scratch.extend_from_slice(payload);
        self.out.write(self.scratch, false)
    }

    pub(crate) fn close(self, code: CloseCode, reason: &str) -> io::Result<()> {
        if !code.is_valid_on_wire() {
            return Err(misuse("not a close code an endpoint may send"));
        }
        if *self.closing != Closing::Open {
            return Err(misuse("the connection is closing"));
        }
        let payload = close_payload(code, reason);
        self.scratch.clear();
        encode_header(self.scratch, true, false, Opcode::Close, payload.len() as u64);
        self.scratch.extend_from_slice(&payload);
        self.out.write(self.scratch, false)?;
        *self.closing = Closing::Sent;
        Ok(())
    }
}
