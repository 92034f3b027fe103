//! The connection layer: what every connection has, whatever it speaks.
//!
//! A connection is a [`Core`] (its transport and the one pending write,
//! its slab token and generation, readiness, peer and vhost) and a role
//! (`roles::Role`: HTTP/1, WebSocket, later raw sockets and HTTP/2) that
//! decides what the bytes mean. The loop owns connections and drives
//! them through the small [`Role`] trait; a role gets the [`Core`] of its
//! connection and an [`Env`], the narrow view of the loop it may use
//! (the time, timers, the forced-service list, commands, the read-only
//! vhosts, scratch buffers), and never the loop itself.
//!
//! Layers, from the bottom: the codecs (`http`, `ws`: bytes in, events
//! out, no I/O), this layer (transport, output, environment, child
//! streams), the roles, and the loop (`service`), which alone polls and
//! registers.

mod env;
mod out;
pub(crate) mod rawio;
pub(crate) mod streams;
#[cfg(feature = "tls")]
pub(crate) mod tls;
pub(crate) mod transport;

#[cfg(feature = "ws")]
pub(crate) use env::RX_BUF;
pub(crate) use env::{Env, MountLive, VhostLive};
pub(crate) use out::Out;
pub(crate) use transport::{Link, PlainTcp};

use crate::protocol::{Command, WsiId};
use std::io;
use std::net::SocketAddr;

/// What the loop should do with a connection after a role's turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    Keep,
    Close,
    /// The connection switched protocols: its role changes in place.
    #[cfg(feature = "ws")]
    Upgrade,
    /// What arrived is not HTTP and the port falls back to raw (RAW-2):
    /// the role becomes raw in place.
    Raw,
}

/// Why a connection is being closed (for the debug log).
#[derive(Debug)]
pub(crate) struct Close(pub(crate) String);

impl From<io::Error> for Close {
    fn from(e: io::Error) -> Close {
        Close(e.to_string())
    }
}

/// What every connection owns, whatever its role.
#[derive(Debug)]
pub(crate) struct Core {
    /// Slab key (the poll token) and the generation telling this
    /// connection from an earlier one that had the key.
    pub(crate) key: usize,
    pub(crate) generation: u32,
    /// The transport and the one pending remainder.
    pub(crate) out: Out,
    /// The socket may have bytes for us (cleared at `WouldBlock`).
    pub(crate) readable: bool,
    /// The peer has shut down its side (EPOLLRDHUP): a short read no
    /// longer means "drained", since no new edge will announce the EOF.
    pub(crate) hup: bool,
    /// Queued on the forced-service list.
    pub(crate) forced: bool,
    /// A protocol asked for a writeable callback.
    pub(crate) want_writable: bool,
    /// Reading is paused (a protocol's flow control, a CGI's full stdin).
    pub(crate) rx_paused: bool,
    pub(crate) peer: SocketAddr,
    /// The listening socket it came from, and the vhost serving it (the
    /// listener's first until a request names another).
    pub(crate) listener: usize,
    pub(crate) vhost: usize,
    /// What the TLS handshake settled (none on plain connections).
    #[cfg(feature = "tls")]
    pub(crate) tls: Option<std::sync::Arc<crate::tls::TlsSession>>,
    /// A plaintext client on a TLS port (RAW-4): each request is served,
    /// redirected or refused as the vhost its Host names says.
    #[cfg(feature = "tls")]
    pub(crate) plain_on_tls: bool,
    /// A UDP socket (datagrams, `sendto`).
    pub(crate) udp: bool,
    /// Adopted from a descriptor rather than accepted: not counted
    /// against its peer's connections.
    pub(crate) adopted: bool,
}

impl Core {
    /// A connection accepted on `listener`, over `transport`.
    pub(crate) fn new(
        key: usize,
        generation: u32,
        transport: Link,
        peer: SocketAddr,
        listener: usize,
        vhost: usize,
    ) -> Core {
        let mut out = Out::new(transport);
        // A new socket has an empty send buffer.
        out.writable = true;
        Core {
            key,
            generation,
            out,
            readable: false,
            hup: false,
            forced: false,
            want_writable: false,
            rx_paused: false,
            peer,
            listener,
            vhost,
            #[cfg(feature = "tls")]
            tls: None,
            #[cfg(feature = "tls")]
            plain_on_tls: false,
            udp: false,
            adopted: false,
        }
    }

    /// Whether the connection is over TLS (its handshake done).
    pub(crate) fn is_tls(&self) -> bool {
        #[cfg(feature = "tls")]
        return self.tls.is_some();
        #[cfg(not(feature = "tls"))]
        false
    }

    /// The id protocols know this connection by.
    pub(crate) fn id(&self) -> WsiId {
        WsiId { key: self.key as u32, generation: self.generation }
    }

    /// Reads into `rx`: `Ok(None)` when nothing is there now, `Some(0)` at
    /// the peer's end. Keeps `readable` true to the edge: cleared at
    /// `WouldBlock`, and at a short read, which means the socket is
    /// drained (a new edge comes with new data), saving the `WouldBlock`
    /// read; not after EPOLLRDHUP, when no new edge would announce the EOF.
    pub(crate) fn read(&mut self, rx: &mut [u8]) -> io::Result<Option<usize>> {
        let r = self.out.read(rx)?;
        // Reading may have made records of the transport's own to send
        // (a TLS alert, key update or session ticket): they go now.
        if self.out.sock.wants_write() && self.out.writable {
            self.out.flush()?;
        }
        match r {
            None => self.readable = false,
            Some(n) if n > 0 && n < rx.len() && !self.hup && self.out.sock.short_read_drains() => self.readable = false,
            Some(_) => {}
        }
        Ok(r)
    }

    /// Applies the commands every role takes the same way (a writeable
    /// callback asked for, rx flow control); gives the others back.
    pub(crate) fn apply(&mut self, cmd: Command, env: &mut Env) -> Option<Command> {
        match cmd {
            Command::Writable(_) => {
                self.want_writable = true;
                env.force(self);
            }
            Command::RxFlow(_, enable) => {
                self.rx_paused = !enable;
                if enable {
                    env.force(self);
                }
            }
            other => return Some(other),
        }
        None
    }

    /// Sets the readiness flags from an event of the poll.
    pub(crate) fn note_readiness(&mut self, ev: &mio::event::Event) {
        if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
            self.readable = true;
        }
        if ev.is_read_closed() || ev.is_error() {
            self.hup = true;
        }
        if ev.is_writable() || ev.is_write_closed() || ev.is_error() {
            self.out.writable = true;
        }
    }
}

/// What a connection speaks. The loop calls these, and only these.
pub(crate) trait Role {
    /// Serves the connection as far as it can go now.
    fn service(&mut self, c: &mut Core, env: &mut Env) -> Step;
    /// The connection's deadline passed (or the loop woke it as its
    /// timer would have: a CGI slot or a file became free).
    fn on_timer(&mut self, c: &mut Core, env: &mut Env) -> Step;
    /// A callback asked something of this connection.
    fn apply(&mut self, c: &mut Core, cmd: Command, env: &mut Env);
    /// The connection is going away: tell whoever must know.
    fn on_close(&mut self, c: &mut Core, env: &mut Env);
    /// The loop began draining (`Env::draining` is set): idle
    /// connections close soon, busy ones after their response;
    /// `websockets`: a WebSocket is to go away now (1001).
    fn drain(&mut self, c: &mut Core, env: &mut Env, websockets: bool) -> Step;
    /// The (vhost, protocol) it is bound to, for broadcasts.
    fn bound_to(&self) -> Option<(usize, usize)>;
    /// A word for logs: what it was doing.
    fn phase(&self) -> &'static str;
    /// The child streams it carries (HTTP/2), if it can carry any.
    #[allow(dead_code)]
    fn streams(&mut self) -> Option<&mut streams::Streams> {
        None
    }
}
