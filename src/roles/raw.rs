//! The raw role (RAW-1, RAW-2, RAW-5; seed "rawfd", "rawsrvsocket",
//! "rawudp"): bytes in, bytes out, nothing interpreted. A raw wsi is a
//! TCP connection on a raw port or one that fell back from HTTP, or a
//! descriptor a protocol adopted: a FIFO, a pipe, a character device, a
//! UDP socket. Its protocol gets [`Event::RawAdopt`], then
//! [`Event::RawRx`] per read (per datagram for UDP),
//! [`Event::RawWriteable`] when it asked and the wsi can take one write,
//! and [`Event::RawClose`]; the connection layer's rules hold as for
//! every role: one pending write, rx flow control that stops reading the
//! descriptor, timeouts set by the protocol.
//!
//! [`Event::RawAdopt`]: crate::protocol::Event::RawAdopt
//! [`Event::RawRx`]: crate::protocol::Event::RawRx
//! [`Event::RawWriteable`]: crate::protocol::Event::RawWriteable
//! [`Event::RawClose`]: crate::protocol::Event::RawClose

use crate::conn::{Close, Core, Env, Step};
use crate::protocol::{Action, Command, Cx, RawEvent, RawKind, RawWriter, Session};
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::os::fd::{AsRawFd, OwnedFd};

/// Reads one wsi makes per turn before the others get theirs.
const READS_PER_TURN: usize = 16;

/// A raw wsi's role state.
#[derive(Debug)]
pub(crate) struct Raw {
    vhost: usize,
    protocol: usize,
    session: Session,
    kind: RawKind,
    /// Bytes read before the role began (an HTTP port's first bytes,
    /// RAW-2): delivered in one [`RawEvent::RawRx`] before any read.
    held: Vec<u8>,
    /// [`RawEvent::RawAdopt`] has been delivered.
    adopted: bool,
    /// The peer ended its side (a read gave 0): nothing more is read,
    /// and the wsi closes once what its protocol asked to write is out.
    eof: bool,
    /// Closed after this long without a byte either way (a raw port's
    /// connections: `Limits::io_timeout`), until its protocol sets a
    /// timeout of its own ([`Cx::set_timeout`]).
    idle: Option<std::time::Duration>,
}

/// The address a wsi with no peer (a file) reports.
pub(crate) const NO_PEER: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0);

impl Raw {
    /// A raw wsi bound to protocol `protocol` of `vhost`; `held`: bytes
    /// already read that are its first rx. Its adopt event is delivered
    /// at its first service ([`Raw::service`]), after any TLS handshake.
    pub(crate) fn new(env: &Env, vhost: usize, protocol: usize, kind: RawKind, held: Vec<u8>) -> Raw {
        let session = env.live[vhost].protocols[protocol].new_session();
        Raw { vhost, protocol, session, kind, held, adopted: false, eof: false, idle: None }
    }

    /// Closed after `idle` without traffic unless its protocol sets a
    /// timeout of its own: a connection from a port, which any client
    /// can open, must not hold its slot for ever by saying nothing.
    pub(crate) fn idle_timeout(mut self, idle: std::time::Duration) -> Raw {
        self.idle = Some(idle);
        self
    }

    /// Traffic moved: the idle timeout starts again.
    fn progressed(&self, c: &Core, env: &mut Env) {
        if let Some(idle) = self.idle {
            env.timers.set(c.key, env.now + idle);
        }
    }

    /// Bytes read before the role began (a plaintext client on a TLS
    /// port, RAW-4): its first rx.
    #[cfg(feature = "tls")]
    pub(crate) fn preload(&mut self, bytes: Vec<u8>) {
        self.held = bytes;
    }

    fn dispatch(&mut self, c: &mut Core, env: &mut Env, event: RawEvent<'_>) -> Result<(), Close> {
        let Env { live, commands, handle, .. } = env;
        let mut cx = Cx { commands, vhost: self.vhost, protocol: self.protocol, handle };
        let action = live[self.vhost].protocols[self.protocol].dispatch(&mut cx, event, Some(&mut self.session));
        // This wsi's own requests apply now (a pause of rx before the
        // next read); the loop applies the rest.
        for cmd in env.take_commands_for(c.id()) {
            self.apply_command(c, cmd, env);
        }
        match action {
            Action::Continue => Ok(()),
            Action::Close => Err(Close("protocol asked to close".into())),
        }
    }

    fn apply_command(&mut self, c: &mut Core, cmd: Command, env: &mut Env) {
        let Some(cmd) = c.apply(cmd, env) else { return };
        match cmd {
            // The protocol's own timeout replaces the idle one.
            Command::Timeout(_, Some(after)) => {
                self.idle = None;
                env.timers.set(c.key, env.now + after)
            }
            Command::Timeout(_, None) => {
                self.idle = None;
                env.timers.clear(c.key)
            }
            _ => {}
        }
    }

    fn serve(&mut self, c: &mut Core, env: &mut Env) -> Result<(), Close> {
        if !self.adopted {
            self.adopted = true;
            self.progressed(c, env);
            let (id, peer, kind) = (c.id(), c.peer, self.kind);
            self.dispatch(c, env, RawEvent::RawAdopt(id, peer, kind))?;
        }
        // What is pending goes first; a writeable callback only once the
        // wsi holds nothing (the one-write rule).
        if c.out.has_pending() && c.out.writable {
            c.out.flush()?;
            self.progressed(c, env);
        }
        if c.want_writable && c.out.writable && !c.out.has_pending() {
            c.want_writable = false;
            let (id, peer) = (c.id(), c.peer);
            let writer = RawWriter { core: c };
            // SAFETY-free reborrow: the writer holds the core for the call.
            let Env { live, commands, handle, .. } = &mut *env;
            let mut cx = Cx { commands, vhost: self.vhost, protocol: self.protocol, handle };
            let action = live[self.vhost].protocols[self.protocol].dispatch(
                &mut cx,
                RawEvent::RawWriteable(id, peer, writer),
                Some(&mut self.session),
            );
            self.progressed(c, env);
            for cmd in env.take_commands_for(id) {
                self.apply_command(c, cmd, env);
            }
            if action == Action::Close {
                return Err(Close("protocol asked to close".into()));
            }
        }
        if self.eof {
            // A half-close (`nc -N`, `shutdown(SHUT_WR)`): the answer to
            // what came before it still goes out, then the wsi closes.
            return match c.want_writable || c.out.has_pending() {
                true => Ok(()),
                false => Err(Close("end of stream".into())),
            };
        }
        if c.rx_paused {
            return Ok(());
        }
        if !self.held.is_empty() {
            let held = std::mem::take(&mut self.held);
            let (id, peer) = (c.id(), c.peer);
            self.dispatch(c, env, RawEvent::RawRx(id, peer, &held))?;
        }
        let mut rx = std::mem::take(&mut env.rx);
        let r = self.read_some(c, env, &mut rx);
        env.rx = rx;
        r
    }

    /// Reads while the descriptor has bytes and the protocol takes them,
    /// up to [`READS_PER_TURN`]; then asks for another turn.
    fn read_some(&mut self, c: &mut Core, env: &mut Env, rx: &mut [u8]) -> Result<(), Close> {
        for _ in 0..READS_PER_TURN {
            if !c.readable || c.rx_paused {
                return Ok(());
            }
            if c.udp {
                match c.out.sock.recv_from(rx) {
                    Ok((n, from)) => {
                        let id = c.id();
                        self.dispatch(c, env, RawEvent::RawRx(id, from, &rx[..n]))?;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => c.readable = false,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    // An ICMP error about an earlier datagram (a port
                    // unreachable): the socket itself is fine.
                    Err(e) if matches!(e.raw_os_error(), Some(libc::ECONNREFUSED | libc::EHOSTUNREACH)) => {
                        log::debug!("udp: {e}");
                    }
                    Err(e) => return Err(e.into()),
                }
                continue;
            }
            match c.read(rx) {
                Ok(None) => return Ok(()),
                Ok(Some(0)) => {
                    self.eof = true;
                    if c.want_writable || c.out.has_pending() {
                        // Served again when it can write.
                        return Ok(());
                    }
                    return Err(Close("end of stream".into()));
                }
                Ok(Some(n)) => {
                    self.progressed(c, env);
                    let (id, peer) = (c.id(), c.peer);
                    self.dispatch(c, env, RawEvent::RawRx(id, peer, &rx[..n]))?;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
        if c.readable && !c.rx_paused {
            env.force(c);
        }
        Ok(())
    }

    /// The wsi's own timer came due.
    pub(crate) fn user_timer(&mut self, c: &mut Core, env: &mut Env) -> Step {
        let (id, peer) = (c.id(), c.peer);
        match self.dispatch(c, env, RawEvent::WsiTimer(id, peer)) {
            Ok(()) => Step::Keep,
            Err(_) => Step::Close,
        }
    }
}

impl crate::conn::Role for Raw {
    fn service(&mut self, c: &mut Core, env: &mut Env) -> Step {
        match self.serve(c, env) {
            Ok(()) => Step::Keep,
            Err(Close(why)) => {
                log::debug!("{}: raw: closing: {why}", c.peer);
                Step::Close
            }
        }
    }

    /// A timeout the protocol set ([`Cx::set_timeout`]) passed, or the
    /// idle one.
    fn on_timer(&mut self, c: &mut Core, _env: &mut Env) -> Step {
        match self.idle {
            Some(idle) => log::debug!("{}: raw: nothing either way for {idle:?}; closing", c.peer),
            None => log::debug!("{}: raw: timed out", c.peer),
        }
        Step::Close
    }

    fn apply(&mut self, c: &mut Core, cmd: Command, env: &mut Env) {
        self.apply_command(c, cmd, env)
    }

    fn on_close(&mut self, c: &mut Core, env: &mut Env) {
        if self.adopted {
            let (id, peer) = (c.id(), c.peer);
            let _ = self.dispatch(c, env, RawEvent::RawClose(id, peer));
        }
    }

    /// Raw wsis have no requests to finish: they go when WebSockets do
    /// (at once for a stop, at the end of a reload's grace).
    fn drain(&mut self, _c: &mut Core, _env: &mut Env, websockets: bool) -> Step {
        if websockets {
            Step::Close
        } else {
            Step::Keep
        }
    }

    fn bound_to(&self) -> Option<(usize, usize)> {
        Some((self.vhost, self.protocol))
    }

    fn phase(&self) -> &'static str {
        match self.kind {
            RawKind::File => "raw file",
            RawKind::Udp => "raw udp",
            _ => "raw",
        }
    }
}

/// Refuses what epoll cannot watch: a regular file or a directory is
/// always "ready", and `epoll_ctl` says `EPERM`.
pub(crate) fn check_pollable(fd: &OwnedFd) -> io::Result<()> {
    // SAFETY: zeroed is a valid stat (plain integers); `st` is a local
    // the call fills; the descriptor is owned.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    if unsafe { libc::fstat(fd.as_raw_fd(), &mut st) } != 0 {
        return Err(io::Error::last_os_error());
    }
    match st.st_mode & libc::S_IFMT {
        libc::S_IFREG | libc::S_IFDIR => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "a regular file or directory cannot be adopted: it is always ready to read (read it as a file)",
        )),
        _ => Ok(()),
    }
}

/// Sets `O_NONBLOCK` on a descriptor.
pub(crate) fn set_nonblocking(fd: &OwnedFd) -> io::Result<()> {
    // SAFETY: F_GETFL and F_SETFL on an owned descriptor.
    let flags = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) };
    if flags < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: as above.
    if unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
