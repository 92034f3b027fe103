//! What user code implements: a [`Protocol`] with one callback.
//!
//! A protocol is told what happens through [`Event`]s and answers with an
//! [`Action`]. It never writes on its own initiative: it asks for a
//! writeable callback with [`Cx::callback_on_writable`], and when the
//! connection can take data the loop delivers [`Event::HttpWriteable`],
//! carrying a [`Writer`] that can be used for exactly one write.
//!
//! # The one-write rule is a type
//!
//! Every write method of [`Writer`] takes `self` by value, so a second
//! write in the same callback does not compile:
//!
//! ```compile_fail
//! use warren::protocol::{Action, Cx, Event, Protocol};
//! struct Twice;
//! impl Protocol for Twice {
//!     type Session = ();
//!     fn name(&self) -> &str { "twice" }
//!     fn callback(&mut self, _cx: &mut Cx<'_>, event: Event<'_, ()>) -> Action {
//!         if let Event::HttpWriteable(_, writer) = event {
//!             let _ = writer.body(b"one", false);
//!             let _ = writer.body(b"two", true); // error[E0382]: use of moved value
//!         }
//!         Action::Continue
//!     }
//! }
//! ```
//!
//! A write the kernel takes only in part is kept by the connection (its one
//! pending remainder) and sent before any further writeable event is
//! delivered; memory per connection stays bounded by one write whatever
//! the peer does. Writeable events may also arrive when nothing was asked
//! for (after such a remainder drains, say): dropping the `Writer` unused is
//! always fine.

use crate::context::MAX_TIMEOUT;
use crate::http::request::Request;
#[cfg(feature = "ws")]
use crate::ws::{CloseCode, Rx, WsWriter};
use crate::wsi::ResponseWriter;
use std::any::Any;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// What a callback asks the loop to do with the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum Action {
    /// Carry on.
    Continue,
    /// Close the connection (lws: return -1).
    Close,
}

/// A protocol: named, with one callback and per-connection session data.
///
/// `Session` is created (with `Default`) when a connection is bound to the
/// protocol ([`Event::HttpBindProtocol`]) and dropped when it is unbound
/// ([`Event::HttpDropProtocol`]); the core owns it, the protocol sees it in
/// every event about that connection.
pub trait Protocol: Send + 'static {
    /// Per-connection state.
    type Session: Default + Send + 'static;

    /// The name mounts and clients use to pick this protocol.
    fn name(&self) -> &str;

    /// Handles one event.
    fn callback(&mut self, cx: &mut Cx<'_>, event: Event<'_, Self::Session>) -> Action;

    /// The most WebSocket payload bytes one [`Event::Receive`] carries
    /// (lws's `rx_buffer_size`); 0 means the loop's receive buffer size
    /// (64 KiB).
    /// A delivery size, not a message limit.
    fn rx_buffer_size(&self) -> usize {
        0
    }

    /// The largest WebSocket message this protocol accepts, in bytes
    /// (after inflation); a bigger one closes the connection with 1009.
    /// 0 means [`Limits::ws_max_message`](crate::Limits::ws_max_message).
    fn max_message_size(&self) -> u64 {
        0
    }
}

/// The reasons a protocol is called (lws's callback reasons that matter).
#[non_exhaustive]
pub enum Event<'a, S> {
    /// The vhost the protocol is on has been created.
    ProtocolInit,
    /// The context is going away.
    ProtocolDestroy,
    /// Some thread called [`ContextHandle::cancel_service`](crate::ContextHandle::cancel_service):
    /// look at whatever shared state that thread changed.
    EventWaitCancelled,
    /// The time asked for with [`Cx::schedule`] has come (lws's
    /// `lws_timed_callback_vh_protocol`).
    Timer,
    /// A connection enters this protocol's area; its session was just made.
    HttpBindProtocol(Wsi<'a, S>),
    /// A connection leaves this protocol's area or closes; its session is
    /// dropped after this.
    HttpDropProtocol(Wsi<'a, S>),
    /// A request head has arrived.
    Http(Wsi<'a, S>, &'a Request),
    /// A piece of the request body (decoded from chunked if need be).
    HttpBody(Wsi<'a, S>, &'a [u8]),
    /// The request body is complete.
    HttpBodyCompletion(Wsi<'a, S>),
    /// The connection can take one write.
    HttpWriteable(Wsi<'a, S>, Writer<'a>),
    /// The connection closed (then [`Event::HttpDropProtocol`] follows).
    ClosedHttp(Wsi<'a, S>),
    /// A piece of a file an `interpret` mount sends through this protocol
    /// (lws `PROCESS_HTML`, spec FILE-9): change it as you like; what is
    /// left is sent. The connection is bound to the protocol for the
    /// response, so the session can carry state between pieces.
    ProcessHtml(Wsi<'a, S>, HtmlChunk<'a>),
    #[cfg(feature = "ws")]
    /// A WebSocket connection to this protocol is open: the 101 answer
    /// to this request is on its way. The session was just made.
    Established(Wsi<'a, S>, &'a Request),
    #[cfg(feature = "ws")]
    /// A piece of a WebSocket message (see [`Rx`]).
    Receive(Wsi<'a, S>, Rx<'a>),
    #[cfg(feature = "ws")]
    /// The WebSocket connection can take one write.
    ServerWriteable(Wsi<'a, S>, WsWriter<'a>),
    #[cfg(feature = "ws")]
    /// A pong arrived (the payload of our ping, or an unsolicited one).
    ReceivePong(Wsi<'a, S>, &'a [u8]),
    #[cfg(feature = "ws")]
    /// The peer started the close handshake with this code (1005 when it
    /// gave none) and reason; the core answers it.
    PeerInitiatedClose(Wsi<'a, S>, CloseCode, &'a str),
    #[cfg(feature = "ws")]
    /// The WebSocket connection closed; its session is dropped after this.
    Closed(Wsi<'a, S>),
    /// A raw wsi is bound to this protocol (lws `RAW_ADOPT`,
    /// `RAW_ADOPT_FILE`): a connection on a raw port or one that fell
    /// back to raw (RAW-1, RAW-2), or a descriptor adopted with
    /// [`Cx::adopt_file`], [`Cx::adopt_udp`] or [`Cx::adopt_socket`].
    /// The session was just made.
    RawAdopt(Wsi<'a, S>, RawKind),
    /// Bytes arrived on a raw wsi (lws `RAW_RX`, `RAW_RX_FILE`): what one
    /// read gave, or one datagram, whose sender is then
    /// [`Wsi::peer`]. Nothing may be written here: keep what you need,
    /// ask for [`Event::RawWriteable`], and pause rx
    /// ([`Cx::rx_flow_control`]) if you cannot keep more.
    RawRx(Wsi<'a, S>, &'a [u8]),
    /// A raw wsi can take one write (lws `RAW_WRITEABLE`).
    RawWriteable(Wsi<'a, S>, RawWriter<'a>),
    /// A raw wsi closed (lws `RAW_CLOSE`); its session is dropped after
    /// this.
    RawClose(Wsi<'a, S>),
    /// The wsi's own timer ([`Cx::set_timer`]) came due (lws
    /// `LWS_CALLBACK_TIMER`, from `lws_set_timer_usecs`). Any wsi bound
    /// to the protocol gets it: HTTP, WebSocket or raw.
    WsiTimer(Wsi<'a, S>),
}

impl<S> fmt::Debug for Event<'_, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Event::ProtocolInit => "ProtocolInit",
            Event::ProtocolDestroy => "ProtocolDestroy",
            Event::EventWaitCancelled => "EventWaitCancelled",
            Event::Timer => "Timer",
            Event::HttpBindProtocol(..) => "HttpBindProtocol",
            Event::HttpDropProtocol(..) => "HttpDropProtocol",
            Event::Http(..) => "Http",
            Event::HttpBody(..) => "HttpBody",
            Event::HttpBodyCompletion(..) => "HttpBodyCompletion",
            Event::HttpWriteable(..) => "HttpWriteable",
            Event::ClosedHttp(..) => "ClosedHttp",
            Event::ProcessHtml(..) => "ProcessHtml",
            #[cfg(feature = "ws")]
            Event::Established(..) => "Established",
            #[cfg(feature = "ws")]
            Event::Receive(..) => "Receive",
            #[cfg(feature = "ws")]
            Event::ServerWriteable(..) => "ServerWriteable",
            #[cfg(feature = "ws")]
            Event::ReceivePong(..) => "ReceivePong",
            #[cfg(feature = "ws")]
            Event::PeerInitiatedClose(..) => "PeerInitiatedClose",
            #[cfg(feature = "ws")]
            Event::Closed(..) => "Closed",
            Event::RawAdopt(..) => "RawAdopt",
            Event::RawRx(..) => "RawRx",
            Event::RawWriteable(..) => "RawWriteable",
            Event::RawClose(..) => "RawClose",
            Event::WsiTimer(..) => "WsiTimer",
        };
        f.write_str(name)
    }
}

/// A piece of an interpreted file ([`Event::ProcessHtml`]).
#[derive(Debug)]
pub struct HtmlChunk<'a> {
    /// The bytes to send; the protocol may rewrite them (at most
    /// [`HtmlChunk::MAX`] bytes are sent per piece; more closes the
    /// connection).
    pub data: &'a mut Vec<u8>,
    /// The file's last piece.
    pub last: bool,
}

impl HtmlChunk<'_> {
    /// The most bytes one piece may grow to.
    pub const MAX: usize = 256 * 1024;
}

/// Names a connection across callbacks. Stale ids (of a connection that
/// has closed) are ignored by every call that takes one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct WsiId {
    pub(crate) key: u32,
    pub(crate) generation: u32,
}

/// The connection an event is about, with the protocol's session for it.
#[derive(Debug)]
pub struct Wsi<'a, S> {
    /// The connection's id, to use with [`Cx`] later.
    pub id: WsiId,
    /// The protocol's state for this connection.
    pub session: &'a mut S,
    /// The peer's address.
    pub peer: SocketAddr,
}

/// The single write a writeable callback may make.
///
/// Each method consumes the writer; see the [module docs](self).
#[derive(Debug)]
pub struct Writer<'a> {
    pub(crate) inner: ResponseWriter<'a>,
}

impl Writer<'_> {
    /// Sends the response head. `length` is the body's length if known;
    /// without one the body is sent chunked (HTTP/1.1) or delimited by
    /// closing the connection (HTTP/1.0). Headers the server owns
    /// (`Date`, `Content-Length`, `Transfer-Encoding`, `Connection`) are
    /// added for you and must not be in `headers`.
    pub fn head(self, status: u16, headers: &[(&str, &str)], length: Option<u64>) -> io::Result<()> {
        self.inner.head(status, headers, length)
    }

    /// Sends a piece of the body; `last` ends the response.
    pub fn body(self, data: &[u8], last: bool) -> io::Result<()> {
        self.inner.body(data, last)
    }

    /// Sends a whole response, head and body, in one write.
    pub fn respond(self, status: u16, content_type: &str, body: &[u8]) -> io::Result<()> {
        self.inner.respond(status, content_type, body)
    }

    /// Sends the server's error page for `status` (what
    /// `lws_return_http_status()` does); `message` is an HTML fragment.
    pub fn status(self, status: u16, message: &str) -> io::Result<()> {
        self.inner.status(status, message)
    }
}

/// What a raw wsi is ([`Event::RawAdopt`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RawKind {
    /// A TCP connection (accepted on a raw port, fallen back from HTTP,
    /// or adopted): a byte stream.
    Socket,
    /// A descriptor that is not a socket: a FIFO, a pipe, a character
    /// device, a terminal. [`Wsi::peer`] is `0.0.0.0:0`.
    File,
    /// A UDP socket: each [`Event::RawRx`] is one datagram, from
    /// [`Wsi::peer`]; write with [`RawWriter::send_to`].
    Udp,
}

/// The single write a raw writeable callback may make
/// ([`Event::RawWriteable`]); like [`Writer`], each method consumes it.
#[derive(Debug)]
pub struct RawWriter<'a> {
    pub(crate) core: &'a mut crate::conn::Core,
}

impl RawWriter<'_> {
    /// Writes `data` to a stream or file. What the kernel does not take
    /// now is kept by the wsi (its one pending write) and sent before
    /// the next [`Event::RawWriteable`]; an empty write does nothing. On
    /// a UDP socket: sends one datagram to its connected peer, if
    /// [`connect`](std::net::UdpSocket::connect)ed before adoption.
    pub fn write(self, data: &[u8]) -> io::Result<()> {
        if data.is_empty() {
            return Ok(());
        }
        if self.core.udp {
            return self.datagram(data, None);
        }
        self.core.out.write(data, false)
    }

    /// Sends `data` as one datagram to `to` (UDP wsis only). When the
    /// kernel refuses it (its buffer is full: `WouldBlock`), nothing was
    /// sent, the error says so, and another [`Event::RawWriteable`]
    /// comes when the socket can take more: send it again then.
    pub fn send_to(self, data: &[u8], to: SocketAddr) -> io::Result<()> {
        if !self.core.udp {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "send_to on a wsi that is not UDP"));
        }
        self.datagram(data, Some(to))
    }

    fn datagram(self, data: &[u8], to: Option<SocketAddr>) -> io::Result<()> {
        let sock = &mut self.core.out.sock;
        let r = match to {
            Some(to) => sock.send_to(data, to),
            None => sock.send(data, false),
        };
        match r {
            Ok(n) if n == data.len() => Ok(()),
            Ok(n) => Err(io::Error::other(format!("datagram cut: {n} of {} bytes sent", data.len()))),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock || e.raw_os_error() == Some(libc::ENOBUFS) => {
                // Asked again when the socket can take more.
                self.core.out.writable = false;
                self.core.want_writable = true;
                Err(io::Error::new(io::ErrorKind::WouldBlock, "the kernel refused the datagram; send it again"))
            }
            Err(e) => Err(e),
        }
    }
}

/// A descriptor to adopt as a raw wsi, made by the `Cx::adopt_*` calls
/// and adopted by the loop when the callback returns.
#[derive(Debug)]
pub(crate) enum Adoptee {
    File(std::os::fd::OwnedFd),
    Udp(mio::net::UdpSocket),
    Socket(mio::net::TcpStream, SocketAddr),
}

/// A request made from inside a callback, applied when it returns.
#[derive(Debug)]
pub(crate) enum Command {
    Writable(WsiId),
    WritableAllProtocol {
        vhost: usize,
        protocol: usize,
        /// On every service loop, not only the caller's.
        all_loops: bool,
    },
    RxFlow(WsiId, bool),
    Timeout(WsiId, Option<Duration>),
    /// permessage-deflate's inflate buffer size for a connection.
    #[cfg(feature = "ws")]
    InflateChunk(WsiId, usize),
    /// An [`Event::Timer`] for a protocol after a delay.
    Schedule {
        vhost: usize,
        protocol: usize,
        after: Duration,
    },
    /// A wsi's own timer (`None`: cancelled).
    WsiTimer(WsiId, Option<Duration>),
    /// A descriptor to adopt as a raw wsi bound to a protocol.
    Adopt {
        vhost: usize,
        protocol: usize,
        what: Adoptee,
    },
}

impl Command {
    /// The connection a command is about, if it is about one.
    pub(crate) fn target(&self) -> Option<WsiId> {
        match *self {
            Command::Writable(id) | Command::RxFlow(id, _) | Command::Timeout(id, _) => Some(id),
            #[cfg(feature = "ws")]
            Command::InflateChunk(id, _) => Some(id),
            // The loop's own to apply (the wsi's role has no part in them).
            Command::WsiTimer(..)
            | Command::WritableAllProtocol { .. }
            | Command::Schedule { .. }
            | Command::Adopt { .. } => None,
        }
    }
}

/// The loop, as a callback sees it.
///
/// Requests made through `Cx` take effect when the callback returns
/// (lws: "a change requested inside a callback is applied when the
/// callback returns").
#[derive(Debug)]
pub struct Cx<'a> {
    pub(crate) commands: &'a mut Vec<Command>,
    pub(crate) vhost: usize,
    pub(crate) protocol: usize,
    pub(crate) handle: &'a crate::ContextHandle,
}

impl Cx<'_> {
    /// Asks for one [`Event::HttpWriteable`] on `wsi` when it can take data.
    pub fn callback_on_writable(&mut self, wsi: WsiId) {
        self.commands.push(Command::Writable(wsi));
    }

    /// Asks for a writeable callback on every connection bound to the
    /// calling protocol on this vhost, in this service loop: the
    /// connections this instance of the protocol serves (with one loop,
    /// all of them). Only those connections are visited (the loop keeps
    /// a list per protocol), however many others it serves.
    pub fn callback_on_writable_all_protocol(&mut self) {
        self.commands.push(Command::WritableAllProtocol {
            vhost: self.vhost,
            protocol: self.protocol,
            all_loops: false,
        });
    }

    /// [`callback_on_writable_all_protocol`](Self::callback_on_writable_all_protocol)
    /// on every service loop ([`ContextInfo::threads`](crate::ContextInfo::threads)):
    /// each other loop is woken and gives its connections of this
    /// protocol their callback, on its own thread, to its own instance
    /// (lws's `lws_callback_on_writable_all_protocol` across threads).
    /// What those instances write is theirs to share, e.g. through an
    /// `Arc<Mutex<_>>` their maker hands each
    /// ([`VhostInfo::protocol_per_loop`](crate::VhostInfo::protocol_per_loop)).
    pub fn callback_on_writable_all_protocol_all_loops(&mut self) {
        self.commands.push(Command::WritableAllProtocol {
            vhost: self.vhost,
            protocol: self.protocol,
            all_loops: true,
        });
    }

    /// Stops (`false`) or resumes (`true`) reading from `wsi`. While
    /// stopped nothing more is read from the socket, so TCP pushes back on
    /// the sender; bytes already read are held and delivered on resume.
    pub fn rx_flow_control(&mut self, wsi: WsiId, enable: bool) {
        self.commands.push(Command::RxFlow(wsi, enable));
    }

    /// Closes `wsi` if it has not finished its business within `after`
    /// (`None` cancels a timeout set this way).
    /// Longer than [`MAX_TIMEOUT`] counts as [`MAX_TIMEOUT`].
    pub fn set_timeout(&mut self, wsi: WsiId, after: Option<Duration>) {
        self.commands.push(Command::Timeout(wsi, after.map(|a| a.min(MAX_TIMEOUT))));
    }

    /// Asks for one [`Event::Timer`] to this protocol on this vhost after
    /// `after` (at the loop's timer resolution, 50 ms). Each call asks
    /// for one more. Longer than [`MAX_TIMEOUT`] counts as [`MAX_TIMEOUT`].
    pub fn schedule(&mut self, after: Duration) {
        let after = after.min(MAX_TIMEOUT);
        self.commands.push(Command::Schedule { vhost: self.vhost, protocol: self.protocol, after });
    }

    /// Arms (or re-arms, or with `None` cancels) `wsi`'s own timer: one
    /// [`Event::WsiTimer`] after `after`, at the loop's timer resolution
    /// (50 ms), unless re-armed or cancelled first. It is cancelled when
    /// the wsi closes. Independent of [`set_timeout`](Self::set_timeout),
    /// which closes the wsi; longer than [`MAX_TIMEOUT`] counts as
    /// [`MAX_TIMEOUT`].
    pub fn set_timer(&mut self, wsi: WsiId, after: Option<Duration>) {
        self.commands.push(Command::WsiTimer(wsi, after.map(|a| a.min(MAX_TIMEOUT))));
    }

    /// Adopts a descriptor that is not a socket (a FIFO, a pipe, a
    /// character device, stdin) as a raw wsi bound to the calling
    /// protocol on this vhost, as lws's `lws_adopt_descriptor_vhost`
    /// does: [`Event::RawAdopt`] with [`RawKind::File`] follows once the
    /// callback returns, then [`Event::RawRx`] as bytes arrive, and
    /// [`Event::RawClose`] at end of file or an error. The descriptor is
    /// made non-blocking. Regular files and directories are refused (the
    /// kernel's poll cannot watch them: they are always ready).
    pub fn adopt_file(&mut self, fd: std::os::fd::OwnedFd) -> io::Result<()> {
        crate::roles::raw::check_pollable(&fd)?;
        crate::roles::raw::set_nonblocking(&fd)?;
        self.adopt(Adoptee::File(fd));
        Ok(())
    }

    /// Makes a UDP socket bound to `addr` (port 0: any free port) and
    /// adopts it as a raw wsi bound to the calling protocol on this vhost
    /// (lws's `lws_create_adopt_udp`), returning the address it is bound
    /// to. Each datagram arrives as one [`Event::RawRx`] whose
    /// [`Wsi::peer`] is the sender; answer with [`RawWriter::send_to`].
    pub fn adopt_udp(&mut self, addr: SocketAddr) -> io::Result<SocketAddr> {
        let sock = mio::net::UdpSocket::bind(addr)?;
        let local = sock.local_addr()?;
        self.adopt(Adoptee::Udp(sock));
        Ok(local)
    }

    /// Adopts a UDP socket made elsewhere (connected, with options set);
    /// see [`adopt_udp`](Self::adopt_udp).
    pub fn adopt_udp_socket(&mut self, sock: std::net::UdpSocket) -> io::Result<()> {
        sock.set_nonblocking(true)?;
        self.adopt(Adoptee::Udp(mio::net::UdpSocket::from_std(sock)));
        Ok(())
    }

    /// Adopts a connected TCP stream (one this program connected or
    /// accepted itself) as a raw wsi bound to the calling protocol on
    /// this vhost, with [`RawKind::Socket`].
    pub fn adopt_socket(&mut self, stream: std::net::TcpStream) -> io::Result<()> {
        let peer = stream.peer_addr()?;
        stream.set_nonblocking(true)?;
        self.adopt(Adoptee::Socket(mio::net::TcpStream::from_std(stream), peer));
        Ok(())
    }

    fn adopt(&mut self, what: Adoptee) {
        self.commands.push(Command::Adopt { vhost: self.vhost, protocol: self.protocol, what });
    }

    /// Sets an option of an extension on a WebSocket connection, as lws's
    /// `lws_set_extension_option()` does; call it from
    /// [`Event::Established`]. Known: `permessage-deflate` /
    /// `rx_buf_size`, the inflate buffer as a power of two (`"8"` to
    /// `"16"`, that is 256 B to 64 KiB), which is also the most inflated
    /// bytes one [`Event::Receive`] carries.
    #[cfg(feature = "ws")]
    pub fn set_extension_option(&mut self, wsi: WsiId, extension: &str, option: &str, value: &str) -> io::Result<()> {
        let bad = |what: String| io::Error::new(io::ErrorKind::InvalidInput, what);
        if extension != "permessage-deflate" {
            return Err(bad(format!("no extension {extension:?}; known: permessage-deflate")));
        }
        if option != "rx_buf_size" {
            return Err(bad(format!("permessage-deflate has no option {option:?}; known: rx_buf_size")));
        }
        let bits: u32 = value
            .trim()
            .parse()
            .ok()
            .filter(|b| (8..=16).contains(b))
            .ok_or_else(|| bad(format!("rx_buf_size: expected a power of two from 8 to 16, found {value:?}")))?;
        self.commands.push(Command::InflateChunk(wsi, 1 << bits));
        Ok(())
    }

    /// A handle other threads can use to wake this loop.
    pub fn handle(&self) -> crate::ContextHandle {
        self.handle.clone()
    }
}

/// The events of [`Event`] without the session type, as the core makes them.
pub(crate) enum RawEvent<'a> {
    ProtocolInit,
    ProtocolDestroy,
    EventWaitCancelled,
    Timer,
    Bind(WsiId, SocketAddr),
    Drop(WsiId, SocketAddr),
    Http(WsiId, SocketAddr, &'a Request),
    Body(WsiId, SocketAddr, &'a [u8]),
    BodyCompletion(WsiId, SocketAddr),
    Writeable(WsiId, SocketAddr, Writer<'a>),
    Closed(WsiId, SocketAddr),
    ProcessHtml(WsiId, SocketAddr, &'a mut Vec<u8>, bool),
    #[cfg(feature = "ws")]
    Established(WsiId, SocketAddr, &'a Request),
    #[cfg(feature = "ws")]
    Receive(WsiId, SocketAddr, Rx<'a>),
    #[cfg(feature = "ws")]
    WsWriteable(WsiId, SocketAddr, WsWriter<'a>),
    #[cfg(feature = "ws")]
    Pong(WsiId, SocketAddr, &'a [u8]),
    #[cfg(feature = "ws")]
    PeerClose(WsiId, SocketAddr, CloseCode, &'a str),
    #[cfg(feature = "ws")]
    WsClosed(WsiId, SocketAddr),
    RawAdopt(WsiId, SocketAddr, RawKind),
    RawRx(WsiId, SocketAddr, &'a [u8]),
    RawWriteable(WsiId, SocketAddr, RawWriter<'a>),
    RawClose(WsiId, SocketAddr),
    WsiTimer(WsiId, SocketAddr),
}

/// A session as the core stores it.
pub(crate) type Session = Box<dyn Any + Send>;

/// [`Protocol`] with its session type erased, so the core can keep many.
pub(crate) trait AnyProtocol: Send {
    fn name(&self) -> &str;
    fn new_session(&self) -> Session;
    fn dispatch(&mut self, cx: &mut Cx<'_>, event: RawEvent<'_>, session: Option<&mut Session>) -> Action;
    #[cfg_attr(not(feature = "ws"), allow(dead_code))]
    fn rx_buffer_size(&self) -> usize;
    #[cfg_attr(not(feature = "ws"), allow(dead_code))]
    fn max_message_size(&self) -> u64;
    /// A fresh instance for another service loop; `None`: this one is
    /// the only one there can be ([`crate::VhostInfo::protocol`]).
    fn replica(&self) -> Option<Box<dyn AnyProtocol>> {
        None
    }
    /// Whether [`replica`](Self::replica) makes instances.
    fn per_loop(&self) -> bool {
        false
    }
}

/// How a per-loop protocol's instances are made.
pub(crate) type MakeProtocol = Arc<dyn Fn() -> Option<Box<dyn AnyProtocol>> + Send + Sync>;

/// A protocol each service loop has an instance of
/// ([`crate::VhostInfo::protocol_per_loop`], and the built-in plugins).
pub(crate) struct PerLoop {
    inner: Box<dyn AnyProtocol>,
    make: MakeProtocol,
}

impl PerLoop {
    /// With a first instance, unless the maker fails (or panics: it may
    /// run on a loop's thread, for a vhost added while serving).
    pub(crate) fn new(make: MakeProtocol) -> Option<PerLoop> {
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| make())) {
            Ok(inner) => Some(PerLoop { inner: inner?, make }),
            Err(_) => {
                log::error!("a protocol's maker (VhostInfo::protocol_per_loop) panicked");
                None
            }
        }
    }
}

impl AnyProtocol for PerLoop {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn new_session(&self) -> Session {
        self.inner.new_session()
    }

    fn dispatch(&mut self, cx: &mut Cx<'_>, event: RawEvent<'_>, session: Option<&mut Session>) -> Action {
        self.inner.dispatch(cx, event, session)
    }

    fn rx_buffer_size(&self) -> usize {
        self.inner.rx_buffer_size()
    }

    fn max_message_size(&self) -> u64 {
        self.inner.max_message_size()
    }

    fn replica(&self) -> Option<Box<dyn AnyProtocol>> {
        Some(Box::new(PerLoop::new(Arc::clone(&self.make))?))
    }

    fn per_loop(&self) -> bool {
        true
    }
}

impl<P: Protocol> AnyProtocol for P {
    fn name(&self) -> &str {
        Protocol::name(self)
    }

    fn new_session(&self) -> Session {
        Box::new(P::Session::default())
    }

    fn rx_buffer_size(&self) -> usize {
        Protocol::rx_buffer_size(self)
    }

    fn max_message_size(&self) -> u64 {
        Protocol::max_message_size(self)
    }

    fn dispatch(&mut self, cx: &mut Cx<'_>, event: RawEvent<'_>, session: Option<&mut Session>) -> Action {
        let session = session.and_then(|s| s.downcast_mut::<P::Session>());
        let event = match (event, session) {
            (RawEvent::ProtocolInit, _) => Event::ProtocolInit,
            (RawEvent::ProtocolDestroy, _) => Event::ProtocolDestroy,
            (RawEvent::EventWaitCancelled, _) => Event::EventWaitCancelled,
            (RawEvent::Timer, _) => Event::Timer,
            (RawEvent::Bind(id, peer), Some(session)) => Event::HttpBindProtocol(Wsi { id, session, peer }),
            (RawEvent::Drop(id, peer), Some(session)) => Event::HttpDropProtocol(Wsi { id, session, peer }),
            (RawEvent::Http(id, peer, r), Some(session)) => Event::Http(Wsi { id, session, peer }, r),
            (RawEvent::Body(id, peer, b), Some(session)) => Event::HttpBody(Wsi { id, session, peer }, b),
            (RawEvent::BodyCompletion(id, peer), Some(session)) => Event::HttpBodyCompletion(Wsi { id, session, peer }),
            (RawEvent::Writeable(id, peer, w), Some(session)) => Event::HttpWriteable(Wsi { id, session, peer }, w),
            (RawEvent::Closed(id, peer), Some(session)) => Event::ClosedHttp(Wsi { id, session, peer }),
            (RawEvent::ProcessHtml(id, peer, data, last), Some(session)) => {
                Event::ProcessHtml(Wsi { id, session, peer }, HtmlChunk { data, last })
            }
            #[cfg(feature = "ws")]
            (RawEvent::Established(id, peer, r), Some(session)) => Event::Established(Wsi { id, session, peer }, r),
            #[cfg(feature = "ws")]
            (RawEvent::Receive(id, peer, rx), Some(session)) => Event::Receive(Wsi { id, session, peer }, rx),
            #[cfg(feature = "ws")]
            (RawEvent::WsWriteable(id, peer, w), Some(session)) => Event::ServerWriteable(Wsi { id, session, peer }, w),
            #[cfg(feature = "ws")]
            (RawEvent::Pong(id, peer, p), Some(session)) => Event::ReceivePong(Wsi { id, session, peer }, p),
            #[cfg(feature = "ws")]
            (RawEvent::PeerClose(id, peer, code, reason), Some(session)) => {
                Event::PeerInitiatedClose(Wsi { id, session, peer }, code, reason)
            }
            #[cfg(feature = "ws")]
            (RawEvent::WsClosed(id, peer), Some(session)) => Event::Closed(Wsi { id, session, peer }),
            (RawEvent::RawAdopt(id, peer, kind), Some(session)) => Event::RawAdopt(Wsi { id, session, peer }, kind),
            (RawEvent::RawRx(id, peer, data), Some(session)) => Event::RawRx(Wsi { id, session, peer }, data),
            (RawEvent::RawWriteable(id, peer, w), Some(session)) => Event::RawWriteable(Wsi { id, session, peer }, w),
            (RawEvent::RawClose(id, peer), Some(session)) => Event::RawClose(Wsi { id, session, peer }),
            (RawEvent::WsiTimer(id, peer), Some(session)) => Event::WsiTimer(Wsi { id, session, peer }),
            // A connection event without this protocol's session: the
            // binding is inconsistent, which is our bug; drop the connection.
            (_, None) => return Action::Close,
        };
        self.callback(cx, event)
    }
}

impl fmt::Debug for dyn AnyProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Protocol({:?})", self.name())
    }
}
