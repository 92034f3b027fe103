//! The WebSocket message layer as a pure codec: bytes from the peer in,
//! [`Event`]s out ([`Codec::read`]); messages and control frames in,
//! frame bytes out ([`Codec::send_data`] and friends). No socket, timer
//! or protocol callback is involved: the connection that owns a `Codec`
//! does the I/O and decides what each event means to it.
//!
//! What the codec owns: frame parsing and unmasking (server side: every
//! client frame is masked), the fragmentation rules, control frames
//! interleaved with fragments, UTF-8 checking of text across fragments
//! and reads, permessage-deflate in both directions, the message size
//! limit, the pong owed for the latest ping, and the close handshake
//! ([`Closing`]). A protocol error becomes [`Event::Failed`] with the
//! close code to send (1002, 1007, 1009), and the codec then owes that
//! close frame ([`Codec::take_owed`]).
//!
//! Pausing: `read` returns at most one event, and a data event's bytes
//! are at most `rx_chunk` (plain) or `inflate_chunk` (compressed) long
//! (a text piece up to 3 bytes more: the start of a character the last
//! piece cut, carried over).
//! A caller that wants no more data (rx flow control) just stops calling
//! `read`; inflation resumes where it stood on the next call, so the
//! delivered bytes do not depend on where pauses fell.
//!
//! Memory: an idle codec (between messages, no pong owed) holds no
//! buffer: the reading state lives in a box made when a frame starts and
//! dropped by [`Codec::settle`], and compressors and inflaters are lent
//! from a per-thread pool ([`super::pool`]) for one message.

mod rx;
mod tx;

#[cfg(test)]
mod tests;

use super::deflate::DeflateConfig;
use super::frame::{HeaderParser, Opcode};
use super::pool::InflateRx;
use super::utf8::Utf8Stream;
use super::{CloseCode, Rx};
use std::ops::Range;

/// What a codec is set up with at the upgrade.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Config {
    /// The agreed permessage-deflate parameters, if any.
    pub(crate) deflate: Option<DeflateConfig>,
    /// The longest piece of a plain message one event carries.
    pub(crate) rx_chunk: usize,
    /// The inflate buffer: the longest piece of a compressed message.
    pub(crate) inflate_chunk: usize,
    /// The largest message accepted (after inflation); above: 1009.
    pub(crate) max_message: u64,
}

/// Where the close handshake stands.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Closing {
    /// Messages flow both ways.
    Open,
    /// We owe the peer this close frame (we start the handshake: the
    /// peer broke the protocol, or our side asked to close).
    Send(Box<[u8]>),
    /// The peer closed: echo this, then the connection is done.
    Reply(Box<[u8]>),
    /// Ours is sent; reading on until the peer's arrives.
    Sent,
    /// Nothing left but to flush and close.
    Done,
}

/// Whether received data frames are delivered or skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reading {
    Messages,
    /// The peer broke the protocol: data frames are still parsed (so that
    /// its answering close is found) but their payload is dropped.
    Discarding,
}

/// What one [`Codec::read`] call produced.
#[derive(Debug)]
pub(crate) struct Read<'a> {
    /// Input bytes used; the rest (still masked) must be offered again.
    pub(crate) used: usize,
    /// At most one event.
    pub(crate) event: Option<Event<'a>>,
    /// A frame ended or a control frame arrived: the peer is alive.
    pub(crate) alive: bool,
}

/// Something the peer sent, as the connection should see it.
#[derive(Debug)]
pub(crate) enum Event<'a> {
    /// A piece of a message (text pieces hold whole characters).
    Data(Rx<'a>),
    /// A ping arrived while open: a pong is owed ([`Codec::take_owed`]),
    /// and reading waits until it is taken.
    Ping(&'a [u8]),
    /// A pong arrived while open.
    Pong(&'a [u8]),
    /// The peer's close frame, not an answer to ours: the echo is owed.
    /// `open`: the handshake was open, so the application should hear of
    /// it (else we had failed and owed a close of our own).
    Close { code: CloseCode, reason: &'a str, open: bool },
    /// The peer broke the protocol: a close with `code` is owed (if the
    /// handshake was open) and data is dropped from now on.
    Failed { code: CloseCode, reason: &'static str },
}

/// A close or pong the codec owes, taken by [`Codec::take_owed`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Owed {
    /// Our close frame (the handshake is now [`Closing::Sent`]).
    Close,
    /// The echo of the peer's close (now [`Closing::Done`]).
    CloseReply,
    /// The pong for the latest ping.
    Pong,
}

/// The WebSocket message layer of one server-side connection.
#[derive(Debug)]
pub(crate) struct Codec {
    cfg: Config,
    closing: Closing,
    reading: Reading,
    /// Reading state, only while a frame, message or pong is in progress.
    busy: Option<Box<Busy>>,
    /// The inflater lent for the compressed message being read.
    inflate: Option<Box<InflateRx>>,
    /// The message the inflater served has ended: give it back at the
    /// next [`Codec::settle`] (the last event may still borrow it).
    inflate_done: bool,
    /// Inflation stopped at a delivered chunk: where to pick it up.
    resume: Option<Resume>,
    tx: tx::TxState,
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

/// What a codec holds only while it is in the middle of something.
#[derive(Debug, Default)]
struct Busy {
    header: HeaderParser,
    frame: Option<FrameRx>,
    msg: Option<MsgRx>,
    utf8: Utf8Stream,
    /// A control frame's payload as it arrives.
    control: Vec<u8>,
    /// The control payload of the last event is in `control`: cleared
    /// before reading on.
    control_done: bool,
    /// A character cut by a boundary, joined to what followed it.
    joined: Vec<u8>,
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
            && self.pong.is_none()
    }
}

/// Where inflation stood when a chunk went out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Resume {
    /// More of the message's payload is to come from the input.
    MidMessage,
    /// The message's payload is all in; `n` bytes of the stripped tail
    /// are inflated (4: no tail is due).
    Tail(u8),
}

/// Where the bytes of a pending data event are.
#[derive(Debug)]
enum Src {
    Input(Range<usize>),
    Inflated(Range<usize>),
    Joined,
}

/// An event described without borrowing, made real at the end of `read`.
#[derive(Debug)]
enum Pending {
    Data { src: Src, binary: bool, first: bool, last: bool, remaining: u64 },
    Ping,
    Pong,
    Close { code: CloseCode, open: bool },
    Failed { code: CloseCode, reason: &'static str },
}

impl Codec {
    /// A codec for a connection just upgraded.
    pub(crate) fn new(cfg: Config) -> Codec {
        Codec {
            cfg,
            closing: Closing::Open,
            reading: Reading::Messages,
            busy: None,
            inflate: None,
            inflate_done: false,
            resume: None,
            tx: tx::TxState::default(),
        }
    }

    /// Where the close handshake stands.
    pub(crate) fn closing(&self) -> &Closing {
        &self.closing
    }

    /// Whether frames from the peer are still read (until its close
    /// arrives, or ours is answered).
    pub(crate) fn reading(&self) -> bool {
        matches!(self.closing, Closing::Open | Closing::Send(_) | Closing::Sent)
    }

    /// A pong is owed: reading waits for it to be taken (a peer that
    /// pings faster than it reads gets TCP pushback, and every ping still
    /// gets its pong).
    pub(crate) fn pong_owed(&self) -> bool {
        self.busy.as_ref().is_some_and(|b| b.pong.is_some())
    }

    /// Inflation stopped at a delivered chunk and has more to give: a
    /// `read` with no input goes on with it.
    pub(crate) fn has_pending_output(&self) -> bool {
        self.resume.is_some()
    }

    /// Our side starts the close handshake (if it is open) with `code`.
    pub(crate) fn close(&mut self, code: CloseCode, reason: &str) {
        if self.closing == Closing::Open {
            self.closing = Closing::Send(close_payload(code, reason));
        }
    }

    /// The inflate buffer size for the next compressed message (and for
    /// this one if it holds nothing yet).
    pub(crate) fn set_inflate_chunk(&mut self, size: usize) {
        self.cfg.inflate_chunk = size;
        if let Some(inf) = self.inflate.as_mut() {
            if inf.filled == 0 {
                inf.buf = vec![0; size].into_boxed_slice();
            }
        }
    }

    /// Frees what an idle codec does not need: call when done with the
    /// events of a [`Codec::read`].
    pub(crate) fn settle(&mut self) {
        if self.inflate_done {
            self.inflate_done = false;
            if let Some(inf) = self.inflate.take() {
                if inf.inflater.reusable() {
                    // Reset by end_message: nothing of this connection is
                    // left in it.
                    super::pool::give_inflater(inf);
                } else {
                    self.inflate = Some(inf);
                }
            }
        }
        if let Some(b) = self.busy.as_mut() {
            if b.control_done {
                b.control_done = false;
                b.control.clear();
            }
            b.joined = Vec::new();
            if b.idle() {
                self.busy = None;
            }
        }
    }

    /// Holds no buffer: nothing is in progress.
    #[cfg(test)]
    pub(crate) fn is_idle(&self) -> bool {
        self.busy.is_none() && self.inflate.is_none() && self.tx.is_idle()
    }

    /// The reading state, made if the codec was idle.
    fn b(&mut self) -> &mut Busy {
        self.busy.get_or_insert_with(Box::default)
    }

    /// The peer broke the protocol: close with `code`, read no more data.
    fn fail(&mut self, code: CloseCode, reason: &'static str) -> Pending {
        self.reading = Reading::Discarding;
        // The current frame is still tracked, so its payload is skipped
        // and the next header is found; the message is abandoned.
        self.b().msg = None;
        self.close(code, reason);
        Pending::Failed { code, reason }
    }
}

/// A close frame's payload: the code, then the reason cut to fit 123
/// bytes on a character boundary.
pub(crate) fn close_payload(code: CloseCode, reason: &str) -> Box<[u8]> {
    let mut cut = reason.len().min(123);
    while !reason.is_char_boundary(cut) {
        cut -= 1;
    }
    let mut p = code.0.to_be_bytes().to_vec();
    p.extend_from_slice(&reason.as_bytes()[..cut]);
    p.into_boxed_slice()
}
