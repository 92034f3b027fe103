//! The WebSocket role: a connection after its 101.
//!
//! The message layer is the pure codec ([`crate::ws::codec`]): it turns
//! the peer's bytes into events and our messages into frames. This role
//! does the rest: it reads the socket into the codec and hands its events
//! to the protocol, writes what the codec owes (pongs, close frames)
//! before the protocol's own writes, and runs the connection's one timer
//! (liveness pings, a protocol's timeout, the close handshake's bound).
//! Writing follows the same rule as HTTP: the protocol writes once per
//! writeable callback, and a partial write is the connection's one
//! pending remainder.

mod read;

use crate::conn::{Close, Step};
use crate::conn::{Core, Env, Role};
use crate::protocol::{Action, Command, Cx, RawEvent, Session};
use crate::ws::codec::{Closing, Codec, Config, Owed};
use crate::ws::deflate::DeflateConfig;
use crate::ws::{CloseCode, FrameWriter, WsWriter};
use std::io;

/// Steps a connection may take per service call before others get a turn.
const BUDGET: usize = 16;
/// The default inflate buffer (per connection that receives compressed
/// messages): the protocol's rx_buffer_size, at most this.
const INFLATE_CHUNK: usize = 16 * 1024;

/// What the connection's one deadline means now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Deadline {
    /// Liveness (WS-6), when the vhost has it on.
    Liveness(Liveness),
    /// The protocol set a timeout ([`Cx::set_timeout`]): it means
    /// "close", whatever liveness would do.
    User,
    /// The close handshake began: `ws_close_timeout` bounds it.
    /// `fin_sent`: our close frame is out and our side of TCP shut down.
    Closing { fin_sent: bool },
}

/// Where the keepalive ping stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Liveness {
    /// Valid traffic came lately; a ping goes out when the timer fires.
    Quiet,
    /// The peer was silent: a ping is to be written, then awaited.
    PingDue,
    /// The ping is out: silence until the timer fires means hanging up.
    PingSent,
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
    /// The message layer: frames, fragments, UTF-8, deflate, the close
    /// handshake. Holds no buffer between messages.
    codec: Codec,
    /// Bytes read but not yet taken by the codec: only while reading
    /// is paused in the middle of a read.
    held: Option<Box<Held>>,
    deadline: Deadline,
}

/// Bytes read but not yet taken by the codec (still masked), left when
/// reading paused in the middle of a read (the protocol's rx flow
/// control, a pong owed).
#[derive(Debug)]
struct Held {
    input: Vec<u8>,
    /// How much of `input` is used: the front is not shifted out per
    /// event (a pause after each small message would move the whole
    /// remainder each time).
    off: usize,
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
        let cfg = Config { deflate: up.deflate, rx_chunk, inflate_chunk: rx_chunk.min(INFLATE_CHUNK), max_message };
        Ws {
            vhost: c.vhost,
            protocol: up.protocol,
            session: p.new_session(),
            codec: Codec::new(cfg),
            held: (!input.is_empty()).then(|| Box::new(Held { input, off: 0 })),
            deadline: Deadline::Liveness(Liveness::Quiet),
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
        if *self.codec.closing() == Closing::Done && !c.out.has_pending() {
            return Err(Close("close handshake done".into()));
        }
        if *self.codec.closing() != Closing::Open && !matches!(self.deadline, Deadline::Closing { .. }) {
            // However the close began (the peer's failure, the protocol,
            // the peer), it has ws_close_timeout to finish, even if the
            // peer reads nothing and our close frame cannot be written.
            self.arm_close_timer(c, sh);
        }
        let mut progress = false;
        if c.out.writable {
            progress |= self.write_step(c, sh)?;
        }
        if !self.rx_blocked(c) {
            progress |= self.read_step(c, sh)?;
        }
        self.codec.settle();
        Ok(progress)
    }

    /// The connection's timer fired.
    fn timer(&mut self, c: &mut Core, sh: &mut Env) -> Step {
        if *self.codec.closing() != Closing::Open {
            log::debug!("{}: ws close handshake timed out", c.peer);
            return Step::Close;
        }
        match (self.deadline, sh.vhosts[c.vhost].ws_keepalive) {
            (Deadline::Liveness(Liveness::Quiet), Some((_, hangup))) => {
                self.deadline = Deadline::Liveness(Liveness::PingDue);
                sh.timers.set(c.key, sh.now + hangup);
                sh.force(c);
                Step::Keep
            }
            (Deadline::Liveness(_), Some(_)) => {
                log::debug!("{}: ws peer silent after a ping; hanging up", c.peer);
                Step::Close
            }
            (Deadline::User, _) => {
                log::debug!("{}: ws timeout set by the protocol", c.peer);
                Step::Close
            }
            (Deadline::Closing { .. }, _) => {
                log::debug!("{}: ws close handshake timed out", c.peer);
                Step::Close
            }
            // No keepalive: a timeout the protocol set.
            (Deadline::Liveness(_), None) => Step::Close,
        }
    }

    /// Valid traffic arrived: the peer is alive.
    fn arm_keepalive(&mut self, c: &mut Core, sh: &mut Env) {
        if !matches!(self.deadline, Deadline::Liveness(_)) || *self.codec.closing() != Closing::Open {
            return;
        }
        if let Some((ping_after, _)) = sh.vhosts[c.vhost].ws_keepalive {
            self.deadline = Deadline::Liveness(Liveness::Quiet);
            sh.timers.set(c.key, sh.now + ping_after);
        }
    }

    /// The close handshake has `ws_close_timeout` from now to finish.
    fn arm_close_timer(&mut self, c: &mut Core, sh: &mut Env) {
        if !matches!(self.deadline, Deadline::Closing { .. }) {
            self.deadline = Deadline::Closing { fin_sent: false };
        }
        sh.timers.set(c.key, sh.now + sh.limits.ws_close_timeout);
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
        if *self.codec.closing() == Closing::Sent && self.deadline != (Deadline::Closing { fin_sent: true }) {
            // Our close frame is out: nothing follows it, so say so at
            // the TCP level too. The peer answers and closes; we read and
            // drop until it does (bounded by the close timer, armed when
            // the close began).
            self.deadline = Deadline::Closing { fin_sent: true };
            if let Err(e) = c.out.sock.shutdown_write() {
                return Err(e.into());
            }
            return Ok(true);
        }
        // What the codec owes (our close, the echo of the peer's, a pong)
        // goes before anything else.
        let buf = &mut sh.tx;
        if let Some(owed) = self.codec.take_owed(buf) {
            c.out.write(buf, false)?;
            if owed == Owed::Close {
                // Bound the wait for the answer from when ours went out.
                self.arm_close_timer(c, sh);
            }
            return Ok(true);
        }
        if *self.codec.closing() != Closing::Open {
            return Ok(progress);
        }
        if self.deadline == Deadline::Liveness(Liveness::PingDue) {
            self.deadline = Deadline::Liveness(Liveness::PingSent);
            if self.codec.send_ping(b"", buf).is_ok() {
                c.out.write(buf, false)?;
            }
            return Ok(true);
        }
        if c.want_writable {
            c.want_writable = false;
            self.deliver_writeable(c, sh)?;
            if let Some(kind) = c.out.failed {
                return Err(Close(format!("write failed: {}", io::Error::from(kind))));
            }
            return Ok(true);
        }
        Ok(progress)
    }

    fn deliver_writeable(&mut self, c: &mut Core, sh: &mut Env) -> Result<(), Close> {
        let id = c.id();
        let (out, peer) = (&mut c.out, c.peer);
        let Ws { codec, session, vhost, protocol, .. } = self;
        let Env { live, tx: scratch, commands, handle, .. } = sh;
        let writer = WsWriter { inner: FrameWriter { out, codec, scratch } };
        let mut cx = Cx { commands, vhost: *vhost, protocol: *protocol, handle };
        let action =
            live[*vhost].protocols[*protocol].dispatch(&mut cx, RawEvent::WsWriteable(id, peer, writer), Some(session));
        if *self.codec.closing() == Closing::Sent {
            // The protocol wrote a close frame: bound the wait for the answer.
            self.arm_close_timer(c, sh);
        }
        self.after_callback(c, sh, action)
    }

    // ---- protocols --------------------------------------------------------

    fn dispatch(&mut self, c: &mut Core, sh: &mut Env, event: RawEvent<'_>) -> Result<(), Close> {
        let action = call(sh, self.vhost, self.protocol, &mut self.session, event);
        self.after_callback(c, sh, action)
    }

    /// Applies the callback's requests about this connection now; the
    /// service applies the rest when we return.
    fn after_callback(&mut self, c: &mut Core, sh: &mut Env, action: Action) -> Result<(), Close> {
        for cmd in sh.take_commands_for(c.id()) {
            self.apply_command(c, cmd, sh);
        }
        if action == Action::Close && *self.codec.closing() == Closing::Open {
            // WS-7: a close frame, then wait (bounded) for the answer.
            self.codec.close(CloseCode::NORMAL, "");
            sh.force(c);
        }
        Ok(())
    }

    /// Applies one callback request to this connection.
    fn apply_command(&mut self, c: &mut Core, cmd: Command, sh: &mut Env) {
        let Some(cmd) = c.apply(cmd, sh) else { return };
        match cmd {
            // Closing: the close timer is not the protocol's to move.
            Command::Timeout(..) if *self.codec.closing() != Closing::Open => {}
            Command::Timeout(_, Some(after)) => {
                self.deadline = Deadline::User;
                sh.timers.set(c.key, sh.now + after);
            }
            Command::Timeout(_, None) => {
                self.deadline = Deadline::Liveness(Liveness::Quiet);
                sh.timers.clear(c.key);
                self.arm_keepalive(c, sh);
            }
            Command::InflateChunk(_, size) => self.codec.set_inflate_chunk(size),
            // Taken by the core, or not about one connection.
            _ => {}
        }
    }

    /// The wsi's own timer ([`Cx::set_timer`](crate::protocol::Cx::set_timer))
    /// came due: its protocol is told.
    pub(crate) fn user_timer(&mut self, c: &mut Core, sh: &mut Env) -> Step {
        let (id, peer) = (c.id(), c.peer);
        match self.dispatch(c, sh, RawEvent::WsiTimer(id, peer)) {
            Ok(()) => Step::Keep,
            Err(_) => Step::Close,
        }
    }

    /// Its close handshake has begun (whoever began it).
    pub(crate) fn closing(&self) -> bool {
        *self.codec.closing() != Closing::Open
    }

    /// The connection is going away: tell its protocol.
    fn closed(&mut self, c: &mut Core, sh: &mut Env) {
        let (id, peer) = (c.id(), c.peer);
        let _ = self.dispatch(c, sh, RawEvent::WsClosed(id, peer));
    }
}

/// Calls protocol `protocol` of `vhost` with `event` for `session`.
fn call(sh: &mut Env, vhost: usize, protocol: usize, session: &mut Session, event: RawEvent<'_>) -> Action {
    let Env { live, commands, handle, .. } = sh;
    let mut cx = Cx { commands, vhost, protocol, handle };
    live[vhost].protocols[protocol].dispatch(&mut cx, event, Some(session))
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

    fn drain(&mut self, c: &mut Core, env: &mut Env, websockets: bool) -> Step {
        if websockets && *self.codec.closing() == Closing::Open {
            // WS-7 as for a protocol's close, with 1001: the server goes.
            self.codec.close(CloseCode::GOING_AWAY, "server going away");
            env.force(c);
        }
        Step::Keep
    }

    fn bound_to(&self) -> Option<(usize, usize)> {
        Some((self.vhost, self.protocol))
    }

    fn phase(&self) -> &'static str {
        "websocket"
    }
}
