//! The sending half: messages and control frames to frame bytes, and the
//! close and pong frames the codec owes.

use super::{close_payload, Closing, Codec, Owed};
use crate::ws::deflate::Deflater;
use crate::ws::frame::{encode_header, Opcode};
use crate::ws::pool::{give_deflater, take_deflater};
use crate::ws::{CloseCode, WriteKind};
use std::fmt;
use std::io;

/// Longest frame header we send.
const MAX_HEADER: usize = 10;

/// What the sending side remembers between writes.
#[derive(Debug, Default)]
pub(super) struct TxState {
    /// A message begun and not ended: whether it is compressed.
    in_message: Option<bool>,
    /// The compressor, lent from the pool for the message being sent.
    deflater: Option<Box<Deflater>>,
}

impl TxState {
    #[cfg(test)]
    pub(super) fn is_idle(&self) -> bool {
        self.deflater.is_none()
    }
}

/// Where the frame [`Codec::send_data`] made is: `buf[start..]`, then
/// (when `data_follows`) the caller's data itself, not copied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Encoded {
    pub(crate) start: usize,
    pub(crate) data_follows: bool,
}

/// A send the codec refused; nothing was sent and its state is unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SendError {
    /// Not allowed now (closing, no message begun, a payload too long...).
    Misuse(&'static str),
    /// The compressor failed (it is dropped).
    Deflate(miniz_oxide::MZError),
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::Misuse(what) => f.write_str(what),
            SendError::Deflate(e) => write!(f, "deflate failed: {e:?}"),
        }
    }
}

impl From<SendError> for io::Error {
    fn from(e: SendError) -> io::Error {
        match e {
            SendError::Misuse(_) => io::Error::new(io::ErrorKind::InvalidInput, e.to_string()),
            SendError::Deflate(_) => io::Error::other(e.to_string()),
        }
    }
}

impl Codec {
    /// Encodes `data` as one frame of a message into `buf` (cleared
    /// first). `fin` ends the message; a message begun without it goes on
    /// with [`WriteKind::Continuation`]. Under permessage-deflate every
    /// message is compressed.
    pub(crate) fn send_data(
        &mut self,
        data: &[u8],
        kind: WriteKind,
        fin: bool,
        buf: &mut Vec<u8>,
    ) -> Result<Encoded, SendError> {
        if self.closing != Closing::Open {
            return Err(SendError::Misuse("the connection is closing"));
        }
        let first = match (kind, self.tx.in_message) {
            (WriteKind::Continuation, Some(_)) => false,
            (WriteKind::Continuation, None) => return Err(SendError::Misuse("a continuation with no message begun")),
            (_, Some(_)) => return Err(SendError::Misuse("a new message before the last one ended")),
            (_, None) => true,
        };
        let compressed = match self.tx.in_message {
            Some(c) => c,
            // Every message, however small: RFC 7692 allows plain ones,
            // but lws clients (4.1) stall on a plain message once deflate
            // is agreed.
            None => self.cfg.deflate.is_some(),
        };
        let opcode = match kind {
            WriteKind::Text => Opcode::Text,
            WriteKind::Binary => Opcode::Binary,
            WriteKind::Continuation => Opcode::Continuation,
        };
        buf.clear();
        let encoded = if compressed {
            let cfg = self.cfg.deflate.as_ref().ok_or(SendError::Misuse("no deflate"))?;
            let mut deflater = match self.tx.deflater.take() {
                Some(d) => d,
                None => take_deflater(cfg),
            };
            buf.resize(MAX_HEADER, 0);
            // A compressor that failed is dropped, not kept or pooled.
            deflater.compress(data, fin, buf).map_err(SendError::Deflate)?;
            if fin && deflater.fits(cfg) {
                give_deflater(deflater);
            } else {
                self.tx.deflater = Some(deflater);
            }
            let mut head = Vec::with_capacity(MAX_HEADER);
            encode_header(&mut head, fin, first, opcode, (buf.len() - MAX_HEADER) as u64);
            let start = MAX_HEADER - head.len();
            buf[start..MAX_HEADER].copy_from_slice(&head);
            Encoded { start, data_follows: false }
        } else {
            encode_header(buf, fin, false, opcode, data.len() as u64);
            Encoded { start: 0, data_follows: true }
        };
        self.tx.in_message = if fin { None } else { Some(compressed) };
        Ok(encoded)
    }

    /// Encodes a ping (at most 125 bytes of payload) into `buf`.
    pub(crate) fn send_ping(&mut self, payload: &[u8], buf: &mut Vec<u8>) -> Result<(), SendError> {
        if payload.len() > 125 {
            return Err(SendError::Misuse("a ping payload is at most 125 bytes"));
        }
        if self.closing != Closing::Open {
            return Err(SendError::Misuse("the connection is closing"));
        }
        encode_control(buf, Opcode::Ping, payload);
        Ok(())
    }

    /// Encodes our close frame into `buf`: the handshake is then
    /// [`Closing::Sent`], and nothing but the peer's answer is awaited.
    pub(crate) fn send_close(&mut self, code: CloseCode, reason: &str, buf: &mut Vec<u8>) -> Result<(), SendError> {
        if !code.is_valid_on_wire() {
            return Err(SendError::Misuse("not a close code an endpoint may send"));
        }
        if self.closing != Closing::Open {
            return Err(SendError::Misuse("the connection is closing"));
        }
        encode_control(buf, Opcode::Close, &close_payload(code, reason));
        self.sent_close();
        Ok(())
    }

    /// Encodes into `buf` the next frame the codec owes, if any: our
    /// close, the echo of the peer's, or a pong. They go before anything
    /// else the connection would write.
    pub(crate) fn take_owed(&mut self, buf: &mut Vec<u8>) -> Option<Owed> {
        match std::mem::replace(&mut self.closing, Closing::Open) {
            Closing::Send(payload) => {
                encode_control(buf, Opcode::Close, &payload);
                self.sent_close();
                return Some(Owed::Close);
            }
            Closing::Reply(payload) => {
                encode_control(buf, Opcode::Close, &payload);
                self.closing = Closing::Done;
                return Some(Owed::CloseReply);
            }
            Closing::Open => {}
            other => {
                self.closing = other;
                return None;
            }
        }
        let payload = self.busy.as_mut().and_then(|b| b.pong.take())?;
        encode_control(buf, Opcode::Pong, &payload);
        Some(Owed::Pong)
    }

    /// Our close frame is out: nothing follows it, not even a pong owed.
    fn sent_close(&mut self) {
        if let Some(b) = self.busy.as_mut() {
            b.pong = None;
        }
        self.closing = Closing::Sent;
    }
}

/// A whole control frame (fin, unmasked) in `buf`, cleared first.
pub(crate) fn encode_control(buf: &mut Vec<u8>, opcode: Opcode, payload: &[u8]) {
    buf.clear();
    encode_header(buf, true, false, opcode, payload.len() as u64);
    buf.extend_from_slice(payload);
}
