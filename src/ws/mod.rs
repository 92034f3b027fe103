//! WebSocket (RFC 6455) as a protocol sees it: the data it receives
//! ([`Rx`]), the one write it may make per writeable callback
//! ([`WsWriter`]), and close codes.
//!
//! A connection becomes a WebSocket when an HTTP/1.1 request asks to
//! upgrade and the vhost has a protocol for it: the one the client names
//! first in `Sec-WebSocket-Protocol` that the vhost has, or, when it names
//! none, the vhost's default protocol ([`crate::VhostInfo::default_protocol`]).
//! The protocol then gets [`Event::Established`](crate::protocol::Event::Established),
//! [`Event::Receive`](crate::protocol::Event::Receive) for data as it
//! arrives, [`Event::ServerWriteable`](crate::protocol::Event::ServerWriteable)
//! when it asked to write and the socket can take it, and
//! [`Event::Closed`](crate::protocol::Event::Closed) at the end.
//!
//! The core answers pings, runs the close handshake, validates UTF-8 in
//! text messages (each text [`Rx`] holds whole characters), inflates and
//! deflates permessage-deflate messages, and closes with the right code
//! when the peer breaks the protocol.

pub(crate) mod codec;
pub(crate) mod deflate;
pub(crate) mod frame;
pub(crate) mod handshake;
pub(crate) mod pool;
pub(crate) mod utf8;

use crate::conn::Out;
use codec::Codec;
use std::fmt;
use std::io;

/// A close status code (RFC 6455 §7.4).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct CloseCode(pub u16);

impl CloseCode {
    /// 1000: the purpose of the connection is fulfilled.
    pub const NORMAL: CloseCode = CloseCode(1000);
    /// 1001: the endpoint is going away (server shutdown, page left).
    pub const GOING_AWAY: CloseCode = CloseCode(1001);
    /// 1002: the peer broke the protocol.
    pub const PROTOCOL_ERROR: CloseCode = CloseCode(1002);
    /// 1003: a kind of data the endpoint cannot accept.
    pub const UNSUPPORTED_DATA: CloseCode = CloseCode(1003);
    /// 1005: (never sent) the close frame had no code.
    pub const NO_STATUS: CloseCode = CloseCode(1005);
    /// 1007: a text message was not UTF-8.
    pub const INVALID_PAYLOAD: CloseCode = CloseCode(1007);
    /// 1008: a policy was violated.
    pub const POLICY: CloseCode = CloseCode(1008);
    /// 1009: a message was too big to process.
    pub const TOO_BIG: CloseCode = CloseCode(1009);
    /// 1011: the server met a condition it could not handle.
    pub const INTERNAL_ERROR: CloseCode = CloseCode(1011);

    /// Whether a peer may send this code in a close frame (§7.4.1/§7.4.2).
    pub fn is_valid_on_wire(self) -> bool {
        matches!(self.0, 1000..=1003 | 1007..=1011 | 3000..=4999)
    }
}

impl fmt::Debug for CloseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CloseCode({})", self.0)
    }
}

impl fmt::Display for CloseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A piece of a received message, delivered as it arrives.
///
/// Pieces are at most the protocol's
/// [`rx_buffer_size`](crate::Protocol::rx_buffer_size) long. A protocol
/// can stream them, or assemble a message from the first piece
/// ([`is_first_fragment`](Rx::is_first_fragment)) to the last
/// ([`is_final_fragment`](Rx::is_final_fragment)). A text piece always
/// holds whole UTF-8 characters, so [`Rx::text`] is `Some` for it.
#[derive(Debug, Clone, Copy)]
pub struct Rx<'a> {
    pub(crate) data: &'a [u8],
    pub(crate) binary: bool,
    pub(crate) first: bool,
    pub(crate) last: bool,
    pub(crate) remaining: u64,
}

impl<'a> Rx<'a> {
    /// The bytes of this piece (inflated if the message was compressed).
    pub fn data(&self) -> &'a [u8] {
        self.data
    }

    /// This piece as text, if it belongs to a text message.
    pub fn text(&self) -> Option<&'a str> {
        if self.binary {
            None
        } else {
            std::str::from_utf8(self.data).ok()
        }
    }

    /// Whether the message is binary (else text).
    pub fn is_binary(&self) -> bool {
        self.binary
    }

    /// The first piece of a message.
    pub fn is_first_fragment(&self) -> bool {
        self.first
    }

    /// The last piece of a message: after it, a new message starts.
    pub fn is_final_fragment(&self) -> bool {
        self.last
    }

    /// Payload bytes of the current frame not delivered yet (as they are
    /// on the wire, so compressed bytes for a compressed message).
    pub fn remaining_packet_payload(&self) -> u64 {
        self.remaining
    }
}

/// What a [`WsWriter::write`] sends: the start of a text or binary
/// message, or the continuation of the message being sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteKind {
    /// A text message (must be UTF-8 as a whole).
    Text,
    /// A binary message.
    Binary,
    /// More of the message whose earlier fragments were written without
    /// `fin`.
    Continuation,
}

/// The single write a WebSocket writeable callback may make.
///
/// Like [`crate::protocol::Writer`], every method takes `self`, so a
/// second write in one callback does not compile. A write the socket
/// takes only in part is finished by the core before the next writeable
/// callback.
#[derive(Debug)]
pub struct WsWriter<'a> {
    pub(crate) inner: FrameWriter<'a>,
}

impl WsWriter<'_> {
    /// Sends `data` as one frame of a message. `fin` ends the message; a
    /// message begun without it continues with [`WriteKind::Continuation`]
    /// writes. Under permessage-deflate the message is compressed.
    pub fn write(self, data: &[u8], kind: WriteKind, fin: bool) -> io::Result<()> {
        self.inner.data(data, kind, fin)
    }

    /// Sends a whole text message.
    pub fn text(self, text: &str) -> io::Result<()> {
        self.inner.data(text.as_bytes(), WriteKind::Text, true)
    }

    /// Sends a whole binary message.
    pub fn binary(self, data: &[u8]) -> io::Result<()> {
        self.inner.data(data, WriteKind::Binary, true)
    }

    /// Sends a ping (at most 125 bytes of payload).
    pub fn ping(self, payload: &[u8]) -> io::Result<()> {
        self.inner.ping(payload)
    }

    /// Starts the close handshake with `code` and `reason` (at most 123
    /// bytes). Nothing more can be written; the connection closes when
    /// the peer answers, or after a few seconds.
    pub fn close(self, code: CloseCode, reason: &str) -> io::Result<()> {
        self.inner.close(code, reason)
    }
}

/// The writer behind [`WsWriter`]: the codec makes the frame, the
/// connection's output takes it (or keeps the part the socket did not).
#[derive(Debug)]
pub(crate) struct FrameWriter<'a> {
    pub(crate) out: &'a mut Out,
    pub(crate) codec: &'a mut Codec,
    /// Scratch for the frame's header (and compressed payload).
    pub(crate) scratch: &'a mut Vec<u8>,
}

impl FrameWriter<'_> {
    fn data(self, data: &[u8], kind: WriteKind, fin: bool) -> io::Result<()> {
        let e = self.codec.send_data(data, kind, fin, self.scratch)?;
        let frame = &self.scratch[e.start..];
        if e.data_follows {
            self.out.write_parts(frame, data)
        } else {
            self.out.write(frame, false)
        }
    }

    fn ping(self, payload: &[u8]) -> io::Result<()> {
        self.codec.send_ping(payload, self.scratch)?;
        self.out.write(self.scratch, false)
    }

    fn close(self, code: CloseCode, reason: &str) -> io::Result<()> {
        self.codec.send_close(code, reason, self.scratch)?;
        self.out.write(self.scratch, false)
    }
}
