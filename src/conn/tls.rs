//! TLS under a connection: the rustls session as a [`Transport`], and the
//! handshake that comes before its role sees a byte.
//!
//! A connection accepted on a TLS listener starts as a [`TlsLink`] in its
//! first state. The loop drives the handshake ([`handshake`]) until it is
//! done; only then does the role (HTTP/1 first) serve, reading and
//! writing plaintext through the [`Transport`] methods as over TCP. The
//! first read sees the first bytes: a TLS record goes to a rustls
//! `Acceptor`, which reads the ClientHello, so the vhost is picked from
//! its SNI before a certificate or any setting of the vhost is chosen;
//! anything else is a plaintext client on a TLS port (spec RAW-4).
//!
//! Records rustls made from plaintext already taken are the connection's
//! pending output: [`Transport::wants_write`] holds while they wait, the
//! connection's [`Out`](super::Out) pushes them before anything else, and
//! rustls is told to hold at most [`SEND_LIMIT`] of them, so a stalled
//! reader costs that much and no more.

use super::env::Env;
use super::transport::{PlainTcp, Transport};
use super::{Close, Core, Link};
use crate::tls::config::OnEvent;
use crate::tls::{TlsEvent, TlsSession};
use mio::net::TcpStream;
use rustls::server::{AcceptedAlert, Acceptor, ServerConnection};
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::os::fd::BorrowedFd;
use std::sync::Arc;

/// The most bytes of records rustls holds for the socket: four full
/// records, so that one 64 KiB WebSocket message or file chunk is taken
/// whole.
const SEND_LIMIT: usize = 64 * 1024 + 4 * 64;

enum State {
    /// Accepted; nothing read yet.
    New,
    /// Reading the ClientHello.
    Hello(Box<Acceptor>),
    /// A session: handshaking until `TlsLink::done`, then open.
    Session(Box<ServerConnection>),
    /// Not TLS after all: plain HTTP on the TLS port (RAW-4).
    Plain,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            State::New => "New",
            State::Hello(_) => "Hello",
            State::Session(_) => "Session",
            State::Plain => "Plain",
        })
    }
}

/// A connection's TLS transport.
pub(crate) struct TlsLink {
    tcp: Wire,
    state: State,
    /// The handshake is complete (or the connection went plain).
    done: bool,
    /// The vhost's event callback, told of errors after the handshake.
    on_event: Option<OnEvent>,
    /// Our side is shut down: records still in rustls then (a
    /// close_notify the full socket did not take) are dropped, not sent
    /// into a half-closed socket.
    shut: bool,
}

/// The socket under a TLS link, counting the bytes that cross it (records,
/// or plaintext once the link went plain) for the metrics.
#[derive(Debug)]
struct Wire {
    tcp: PlainTcp,
    received: u64,
    sent: u64,
}

impl Wire {
    fn counted(n: io::Result<usize>, count: &mut u64) -> io::Result<usize> {
        if let Ok(n) = n {
            *count += n as u64;
        }
        n
    }

    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        Wire::counted(self.tcp.read(buf), &mut self.received)
    }

    fn send(&mut self, data: &[u8], more: bool) -> io::Result<usize> {
        Wire::counted(self.tcp.send(data, more), &mut self.sent)
    }

    fn send2(&mut self, a: &[u8], b: &[u8]) -> io::Result<usize> {
        Wire::counted(self.tcp.send2(a, b), &mut self.sent)
    }

    fn sendfile(&mut self, fd: BorrowedFd<'_>, offset: u64, len: usize) -> Option<io::Result<usize>> {
        Some(Wire::counted(self.tcp.sendfile(fd, offset, len)?, &mut self.sent))
    }

    fn shutdown_write(&mut self) -> io::Result<()> {
        self.tcp.shutdown_write()
    }

    fn bytes_acked(&self) -> Option<u64> {
        self.tcp.bytes_acked()
    }
}

impl Read for Wire {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        Wire::read(self, buf)
    }
}

impl Write for Wire {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        Wire::counted(self.tcp.0.write(buf), &mut self.sent)
    }

    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        Wire::counted(self.tcp.0.write_vectored(bufs), &mut self.sent)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl std::fmt::Debug for TlsLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsLink").field("state", &self.state).field("done", &self.done).finish_non_exhaustive()
    }
}

impl TlsLink {
    /// A connection accepted on a TLS listener.
    pub(crate) fn new(stream: TcpStream) -> TlsLink {
        TlsLink {
            tcp: Wire { tcp: PlainTcp(stream), received: 0, sent: 0 },
            state: State::New,
            done: false,
            on_event: None,
            shut: false,
        }
    }

    /// Whether the handshake is still to finish.
    pub(crate) fn handshaking(&self) -> bool {
        !self.done
    }

    /// Pushes records to the socket until none are left (`Ok`) or it is
    /// full (`WouldBlock`).
    fn push(&mut self) -> io::Result<()> {
        if let State::Session(conn) = &mut self.state {
            while conn.wants_write() {
                if conn.write_tls(&mut self.tcp)? == 0 {
                    return Err(io::ErrorKind::WriteZero.into());
                }
            }
        }
        Ok(())
    }

    /// Pushes what the socket takes now; `WouldBlock` is not an error
    /// here (the records wait, and `wants_write` says so).
    fn push_some(&mut self) -> io::Result<()> {
        match self.push() {
            Err(e) if e.kind() != io::ErrorKind::WouldBlock => Err(e),
            _ => Ok(()),
        }
    }
}

impl Drop for TlsLink {
    /// However the connection ends (a timeout, the end of keep-alive, a
    /// stop), an established session ends with close_notify, as lws's
    /// `SSL_shutdown` does, so the client sees the end of the session
    /// and not a truncation. Best effort, one non-blocking write; rustls
    /// sends nothing after a fatal alert or a close_notify already sent.
    fn drop(&mut self) {
        if let (true, false, State::Session(conn)) = (self.done, self.shut, &mut self.state) {
            conn.send_close_notify();
            if conn.wants_write() {
                let _ = conn.write_tls(&mut self.tcp);
            }
        }
    }
}

impl Transport for TlsLink {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let conn = match &mut self.state {
            State::Plain => return self.tcp.read(buf),
            State::Session(conn) if self.done => conn,
            _ => return Err(io::ErrorKind::WouldBlock.into()),
        };
        loop {
            match conn.reader().read(buf) {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                // The peer closed TCP without close_notify: for HTTP/1,
                // whose messages are delimited, that is an end like any.
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
                Err(e) => return Err(e),
            }
            match conn.read_tls(&mut self.tcp) {
                Ok(0) => return Ok(0),
                Ok(_) => {}
                Err(e) => return Err(e),
            }
            if let Err(e) = conn.process_new_packets() {
                if let Some(f) = &self.on_event {
                    let peer = self.tcp.tcp.0.peer_addr().unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
                    f(&TlsEvent::Error { peer, error: &e.to_string() });
                }
                // Then the alert rustls queued goes out, if the socket
                // takes it: a peer that sees it knows the callback ran.
                let _ = conn.write_tls(&mut self.tcp);
                return Err(io::Error::new(io::ErrorKind::InvalidData, e));
            }
        }
    }

    fn send(&mut self, data: &[u8], more: bool) -> io::Result<usize> {
        match self.state {
            State::Plain => return self.tcp.send(data, more),
            State::Session(_) if self.done => {}
            // No plaintext goes out before the handshake is done.
            _ => return Err(io::ErrorKind::NotConnected.into()),
        }
        // Records made before go first; while they wait, nothing more is
        // taken.
        self.push()?;
        let State::Session(conn) = &mut self.state else { return Ok(0) };
        let n = conn.writer().write(data)?;
        self.push_some()?;
        Ok(n)
    }

    fn send2(&mut self, a: &[u8], b: &[u8]) -> io::Result<usize> {
        match self.state {
            State::Plain => return self.tcp.send2(a, b),
            State::Session(_) if self.done => {}
            _ => return Err(io::ErrorKind::NotConnected.into()),
        }
        self.push()?;
        let State::Session(conn) = &mut self.state else { return Ok(0) };
        let n = conn.writer().write_vectored(&[io::IoSlice::new(a), io::IoSlice::new(b)])?;
        self.push_some()?;
        Ok(n)
    }

    fn sendfile(&mut self, fd: BorrowedFd<'_>, offset: u64, len: usize) -> Option<io::Result<usize>> {
        match self.state {
            State::Plain => self.tcp.sendfile(fd, offset, len),
            _ => None,
        }
    }

    fn wants_write(&self) -> bool {
        !self.shut && matches!(&self.state, State::Session(conn) if conn.wants_write())
    }

    fn write_pending(&mut self) -> io::Result<usize> {
        match &mut self.state {
            State::Session(conn) => conn.write_tls(&mut self.tcp),
            _ => Ok(0),
        }
    }

    /// A short read of plaintext says nothing of the socket: rustls may
    /// have read one record of several that are waiting.
    fn short_read_drains(&self) -> bool {
        matches!(self.state, State::Plain)
    }

    fn shutdown_write(&mut self) -> io::Result<()> {
        if let State::Session(conn) = &mut self.state {
            conn.send_close_notify();
            // Best effort: a full socket gets the TCP FIN alone.
            let _ = conn.write_tls(&mut self.tcp);
        }
        self.shut = true;
        self.tcp.shutdown_write()
    }

    fn bytes_acked(&self) -> Option<u64> {
        self.tcp.bytes_acked()
    }

    fn take_traffic(&mut self) -> Option<(u64, u64)> {
        Some((std::mem::take(&mut self.tcp.received), std::mem::take(&mut self.tcp.sent)))
    }

    fn source(&mut self) -> &mut dyn mio::event::Source {
        self.tcp.tcp.source()
    }
}

/// Where a connection's handshake stands after a turn.
#[derive(Debug)]
pub(crate) enum Handshake {
    /// Waiting for the peer (or for the socket to take our flight).
    Pending,
    /// Done: the role may serve. `Some(bytes)`: the client speaks plain
    /// HTTP and the port lets it (RAW-4); these are its first bytes.
    Done(Option<Vec<u8>>),
    /// The connection is to close.
    Failed(Close),
}

/// Drives the handshake of `c` (whose transport is a [`TlsLink`]) as far
/// as the socket allows.
pub(crate) fn handshake(c: &mut Core, env: &mut Env) -> Handshake {
    loop {
        if c.out.has_pending() && c.out.writable {
            if let Err(e) = c.out.flush() {
                return fail(c, env, &format!("writing the handshake: {e}"), None);
            }
        }
        let Link::Tls(link) = &mut c.out.sock else { return Handshake::Done(None) };
        if link.done {
            return Handshake::Done(None);
        }
        if let State::Session(conn) = &link.state {
            if !conn.is_handshaking() {
                return established(c, env);
            }
        }
        if !c.readable {
            return Handshake::Pending;
        }
        let read = match &mut link.state {
            State::New => {
                let mut rx = std::mem::take(&mut env.rx);
                let r = first_read(c, env, &mut rx);
                env.rx = rx;
                match r {
                    Some(done) => return done,
                    None => continue,
                }
            }
            State::Hello(acceptor) => acceptor.read_tls(&mut link.tcp),
            State::Session(conn) => conn.read_tls(&mut link.tcp),
            State::Plain => return Handshake::Done(None),
        };
        match read {
            Ok(0) => return Handshake::Failed(Close("peer closed during the TLS handshake".into())),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                c.readable = false;
                continue;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return fail(c, env, &format!("reading the handshake: {e}"), None),
        }
        let Link::Tls(link) = &mut c.out.sock else { return Handshake::Done(None) };
        match &mut link.state {
            State::Hello(_) => {
                if let Err((why, alert)) = accept(c, env) {
                    return fail(c, env, &why, alert);
                }
            }
            State::Session(conn) => {
                if let Err(e) = conn.process_new_packets() {
                    return fail(c, env, &e.to_string(), None);
                }
            }
            _ => {}
        }
    }
}

/// The first bytes of a connection: a ClientHello begins (fed to an
/// acceptor), or a plaintext client. `Some` ends the handshake turn.
fn first_read(c: &mut Core, env: &mut Env, rx: &mut [u8]) -> Option<Handshake> {
    let Link::Tls(link) = &mut c.out.sock else { return Some(Handshake::Done(None)) };
    let n = match link.tcp.read(rx) {
        Ok(0) => return Some(Handshake::Failed(Close("peer closed before its TLS handshake".into()))),
        Ok(n) => n,
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
            c.readable = false;
            return Some(Handshake::Pending);
        }
        Err(e) if e.kind() == io::ErrorKind::Interrupted => return None,
        Err(e) => return Some(Handshake::Failed(e.into())),
    };
    let first = &rx[..n];
    // RAW-4: a first byte of 0x20 or more is no TLS record type (those
    // are 0x14 to 0x18): a plaintext client. Below it, rustls judges.
    if first[0] >= 0x20 {
        return Some(not_tls(c, env, first));
    }
    link.state = State::Hello(Box::default());
    let mut rest = first;
    while !rest.is_empty() {
        let Link::Tls(link) = &mut c.out.sock else { break };
        match &mut link.state {
            State::Hello(acceptor) => {
                if let Err(e) = acceptor.read_tls(&mut rest) {
                    return Some(fail(c, env, &format!("ClientHello: {e}"), None));
                }
                if let Err((why, alert)) = accept(c, env) {
                    return Some(fail(c, env, &why, alert));
                }
            }
            // What followed the ClientHello in the same read.
            State::Session(conn) => {
                if let Err(e) = conn.read_tls(&mut rest) {
                    return Some(fail(c, env, &format!("handshake: {e}"), None));
                }
                if let Err(e) = conn.process_new_packets() {
                    return Some(fail(c, env, &e.to_string(), None));
                }
            }
            _ => break,
        }
    }
    None
}

/// The acceptor may have a whole ClientHello: pick the vhost from its SNI
/// and start the session with that vhost's configuration.
/// A failure comes back with the alert for the peer, which [`fail`]
/// sends after telling the event callback.
fn accept(c: &mut Core, env: &mut Env) -> Result<(), (String, Option<AcceptedAlert>)> {
    let Link::Tls(link) = &mut c.out.sock else { return Ok(()) };
    let State::Hello(acceptor) = &mut link.state else { return Ok(()) };
    let accepted = match acceptor.accept() {
        Ok(None) => return Ok(()),
        Ok(Some(accepted)) => accepted,
        Err((e, alert)) => return Err((format!("ClientHello: {e}"), Some(alert))),
    };
    let sni = accepted.client_hello().server_name().map(str::to_string);
    let vi = crate::vhost::select_vhost(&env.vhosts, &env.listeners[c.listener], sni.as_deref());
    let Some(tls) = &env.vhosts[vi].tls else { return Err(("the vhost picked by SNI has no TLS".into(), None)) };
    c.vhost = vi;
    link.on_event = tls.on_event.clone();
    match accepted.into_connection(Arc::clone(&tls.config)) {
        Ok(mut conn) => {
            conn.set_buffer_limit(Some(SEND_LIMIT));
            link.state = State::Session(Box::new(conn));
            Ok(())
        }
        Err((e, alert)) => {
            let why = match sni {
                Some(name) => format!("handshake for {name:?}: {e}"),
                None => format!("handshake (no SNI): {e}"),
            };
            Err((why, Some(alert)))
        }
    }
}

/// The handshake completed: the connection has its session facts and
/// vhost, and the header timeout starts.
fn established(c: &mut Core, env: &mut Env) -> Handshake {
    let Link::Tls(link) = &mut c.out.sock else { return Handshake::Done(None) };
    let State::Session(conn) = &link.state else { return Handshake::Done(None) };
    let session = Arc::new(TlsSession::of(conn, c.vhost));
    link.done = true;
    // rustls verified the certificate of a full handshake; a resumed one
    // carries what its first handshake had. A vhost's own session cache
    // and ticket keys keep other vhosts' sessions out; this says so again.
    let required = env.vhosts[c.vhost].tls.as_ref().is_some_and(|t| t.client_cert_required);
    if required && session.client_cert.is_none() {
        return fail(c, env, "a session without a client certificate on a vhost that requires one", None);
    }
    if let Some(f) = env.vhosts[c.vhost].tls.as_ref().and_then(|t| t.on_event.as_ref()) {
        if !f(&TlsEvent::Established { peer: c.peer, session: &session }) {
            return Handshake::Failed(Close("closed by the TLS event callback".into()));
        }
    }
    log::debug!("{}: {} {} sni {:?}", c.peer, session.version, session.cipher, session.sni);
    c.tls = Some(session);
    // Draining: a request sent with the handshake is answered; an idle
    // client (a browser's preconnect) does not hold the drain for long.
    let wait = if env.draining {
        env.limits.header_timeout.min(crate::service::DRAIN_IDLE)
    } else {
        env.limits.header_timeout
    };
    env.timers.set(c.key, env.now + wait);
    // Plaintext may already wait in rustls (a request sent with the
    // client's Finished): the role reads before any new edge.
    c.readable = true;
    Handshake::Done(None)
}

/// The first byte is not a TLS handshake record: a plaintext client on a
/// TLS port. The listener's first vhost says what happens (RAW-4).
fn not_tls(c: &mut Core, env: &mut Env, first: &[u8]) -> Handshake {
    let home = env.listeners[c.listener].first().copied().unwrap_or(c.vhost);
    let mode = env.vhosts[home].plain_on_tls;
    let Link::Tls(link) = &mut c.out.sock else { return Handshake::Done(None) };
    match mode {
        crate::tls::PlainOnTls::Drop => {
            let shown: String = first.iter().take(16).map(|b| format!("{b:02x}")).collect();
            log::info!("{}: not TLS on a TLS port (first bytes {shown}); closed", c.peer);
            Handshake::Failed(Close("not TLS".into()))
        }
        crate::tls::PlainOnTls::Redirect | crate::tls::PlainOnTls::Serve => {
            link.state = State::Plain;
            link.done = true;
            c.plain_on_tls = true;
            env.timers.set(c.key, env.now + env.limits.header_timeout);
            Handshake::Done(Some(first.to_vec()))
        }
    }
}

/// A handshake failed: tell the vhost's event callback, then the peer
/// (the alert rustls made, or `alert` from the acceptor), and close. In
/// that order, so that a peer that sees the alert knows the callback ran.
fn fail(c: &mut Core, env: &mut Env, why: &str, alert: Option<AcceptedAlert>) -> Handshake {
    // The vhost SNI picked, or (before the ClientHello was whole) the
    // listener's first, which a connection starts on.
    let vi = c.vhost;
    let sni = match &c.out.sock {
        Link::Tls(link) => match &link.state {
            State::Session(conn) => conn.server_name().map(str::to_string),
            _ => None,
        },
        _ => None,
    };
    if let Some(f) = env.vhosts[vi].tls.as_ref().and_then(|t| t.on_event.as_ref()) {
        f(&TlsEvent::Failed { peer: c.peer, sni: sni.as_deref(), error: why });
    }
    log::debug!("{}: TLS handshake failed: {why}", c.peer);
    if let Link::Tls(link) = &mut c.out.sock {
        match (alert, &mut link.state) {
            (Some(mut alert), _) => {
                let _ = alert.write_all(&mut link.tcp);
            }
            (None, State::Session(conn)) => {
                let _ = conn.write_tls(&mut link.tcp);
            }
            _ => {}
        }
    }
    Handshake::Failed(Close(format!("TLS: {why}")))
}
