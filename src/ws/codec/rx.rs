//! The receiving half: frames parsed, unmasked, checked and inflated
//! into events, one per call.

use super::{Codec, Event, FrameRx, MsgRx, Pending, Read, Reading, Resume, Src};
use crate::ws::deflate::{DeflateConfig, TAIL};
use crate::ws::frame::{unmask, Header, Opcode};
use crate::ws::pool::{take_inflater, InflateRx};
use crate::ws::{CloseCode, Rx};

impl Codec {
    /// Reads what it can of `input` (bytes as they came from the peer,
    /// masked) up to the first event. `input` is unmasked in place where
    /// used; the unused rest is left as it was, to be offered again.
    ///
    /// Call again (with the rest, then more input) while it makes
    /// progress; it returns `used == 0` and no event when it needs more
    /// input, owes a pong ([`Codec::pong_owed`]), or reads no more.
    pub(crate) fn read<'a>(&'a mut self, input: &'a mut [u8]) -> Read<'a> {
        self.settle();
        let mut alive = false;
        let (used, pending) = self.step(input, &mut alive);
        let input: &'a [u8] = input;
        let event = pending.map(|p| self.event(p, input));
        Read { used, event, alive }
    }

    /// Turns a pending event into one borrowing its bytes.
    fn event<'a>(&'a self, p: Pending, input: &'a [u8]) -> Event<'a> {
        let busy = self.busy.as_deref();
        let control = busy.map_or(&[][..], |b| &b.control[..]);
        match p {
            Pending::Data { src, binary, first, last, remaining } => {
                let data = match src {
                    Src::Input(r) => &input[r],
                    Src::Inflated(r) => self.inflate.as_ref().map_or(&[][..], |inf| &inf.buf[r]),
                    Src::Joined => busy.map_or(&[][..], |b| &b.joined[..]),
                };
                Event::Data(Rx { data, binary, first, last, remaining })
            }
            Pending::Ping => Event::Ping(busy.and_then(|b| b.pong.as_deref()).unwrap_or_default()),
            Pending::Pong => Event::Pong(control),
            Pending::Close { code, open } => {
                let reason = control.get(2..).and_then(|r| std::str::from_utf8(r).ok()).unwrap_or_default();
                Event::Close { code, reason, open }
            }
            Pending::Failed { code, reason } => Event::Failed { code, reason },
        }
    }

    fn step(&mut self, input: &mut [u8], alive: &mut bool) -> (usize, Option<Pending>) {
        if !self.reading() || self.pong_owed() {
            return (0, None);
        }
        if self.resume.is_some() {
            if let Some(p) = self.resume_inflate() {
                return (0, Some(p));
            }
        }
        let mut used = 0;
        while used < input.len() && !self.pong_owed() && self.reading() {
            let (rsv1_ok, rx_chunk) = (self.cfg.deflate.is_some(), self.cfg.rx_chunk);
            let b = self.b();
            let Some(frame) = &b.frame else {
                match b.header.feed(&input[used..], rsv1_ok) {
                    Ok((n, header)) => {
                        used += n;
                        if let Some(h) = header {
                            if let Some(p) = self.begin_frame(h, input, used, alive) {
                                return (used, Some(p));
                            }
                        }
                    }
                    Err(e) => {
                        // No frame boundary to find again: drop the rest of
                        // this input; the next starts afresh.
                        self.b().header.reset();
                        return (input.len(), Some(self.fail(e.close_code(), e.reason())));
                    }
                }
                continue;
            };
            let avail = (input.len() - used) as u64;
            let compressed = b.msg.as_ref().is_some_and(|m| m.compressed) && !frame.opcode.is_control();
            let mut take = frame.remaining.min(avail) as usize;
            if !frame.opcode.is_control() && !compressed {
                take = take.min(rx_chunk);
            }
            let (mask, offset) = (frame.mask, frame.offset);
            unmask(&mut input[used..used + take], mask, offset);
            let (consumed, p) = self.payload(input, used, take, alive);
            if consumed < take {
                // Stopped part-way through a compressed piece: mask the
                // rest again so it can be offered like the bytes after it.
                unmask(&mut input[used + consumed..used + take], mask, offset + consumed as u64);
            }
            used += consumed;
            if p.is_some() {
                return (used, p);
            }
            if consumed == 0 && take > 0 {
                // The inflater took nothing and gave nothing: not deflate.
                return (used, Some(self.fail(CloseCode::INVALID_PAYLOAD, "invalid compressed data")));
            }
        }
        (used, None)
    }

    /// A header arrived: check it against the message state. A frame
    /// with no payload is taken at once (its payload is `input[at..at]`).
    fn begin_frame(&mut self, h: Header, input: &[u8], at: usize, alive: &mut bool) -> Option<Pending> {
        let frame = FrameRx { opcode: h.opcode, fin: h.fin, remaining: h.len, offset: 0, mask: h.mask };
        if self.reading == Reading::Discarding && !h.opcode.is_control() {
            // Failed already: skip the frame's payload, deliver nothing.
            self.b().frame = (h.len > 0).then_some(frame);
            return None;
        }
        let max = self.cfg.max_message;
        let b = self.b();
        let refused = match h.opcode {
            Opcode::Continuation if b.msg.is_none() => Some("continuation frame with no message begun"),
            Opcode::Continuation if h.rsv1 => Some("RSV1 set on a continuation frame"),
            Opcode::Text | Opcode::Binary if b.msg.is_some() => Some("new message inside a fragmented one"),
            Opcode::Text | Opcode::Binary => {
                b.msg =
                    Some(MsgRx { binary: h.opcode == Opcode::Binary, compressed: h.rsv1, size: 0, delivered: false });
                b.utf8.reset();
                None
            }
            Opcode::Continuation => None,
            Opcode::Close | Opcode::Ping | Opcode::Pong => {
                b.control.clear();
                b.control_done = false;
                None
            }
        };
        let too_big = b
            .msg
            .as_ref()
            .is_some_and(|m| !h.opcode.is_control() && !m.compressed && m.size.saturating_add(h.len) > max);
        if refused.is_some() || too_big {
            // The frame is tracked so that its payload is skipped (the
            // message is dropped) and the next header is found.
            b.frame = (h.len > 0).then_some(frame);
            return Some(match refused {
                Some(why) => self.fail(CloseCode::PROTOCOL_ERROR, why),
                None => self.fail(CloseCode::TOO_BIG, "message too big"),
            });
        }
        b.frame = Some(frame);
        if h.len == 0 {
            return self.payload(input, at, 0, alive).1;
        }
        None
    }

    /// Takes `input[start..start + len]`, unmasked payload of the current
    /// frame. Returns how much it used (less only when a chunk of
    /// inflated data went out part-way) and the event, if any.
    fn payload(&mut self, input: &[u8], start: usize, len: usize, alive: &mut bool) -> (usize, Option<Pending>) {
        let piece = &input[start..start + len];
        let b = self.b();
        let Some(frame) = b.frame.as_mut() else { return (len, None) };
        if frame.opcode.is_control() {
            b.control.extend_from_slice(piece);
            frame.remaining -= len as u64;
            frame.offset += len as u64;
            if frame.remaining == 0 {
                let opcode = frame.opcode;
                b.frame = None;
                return (len, self.control_received(opcode, alive));
            }
            return (len, None);
        }
        let compressed = b.msg.as_ref().is_some_and(|m| m.compressed);
        let (used, p) = if compressed {
            let ends = frame.fin && frame.remaining == len as u64;
            let (used, p) = self.inflate_piece(piece);
            if let Some(f) = self.b().frame.as_mut() {
                f.remaining -= used as u64;
                f.offset += used as u64;
            }
            let ends = ends && used == len && self.b().msg.is_some();
            match p {
                Some(p @ Pending::Data { .. }) => {
                    // Output may still be waiting in the inflater: go on
                    // with it at the next call.
                    self.resume = Some(if ends { Resume::Tail(0) } else { Resume::MidMessage });
                    (used, Some(p))
                }
                Some(p) => (used, Some(p)),
                None if ends => (used, self.finish_compressed(0)),
                None => (used, None),
            }
        } else {
            frame.remaining -= len as u64;
            frame.offset += len as u64;
            let last = frame.fin && frame.remaining == 0;
            if let Some(m) = b.msg.as_mut() {
                m.size += len as u64;
            }
            (len, self.deliver(Src::Input(start..start + len), piece, last))
        };
        let b = self.b();
        if b.frame.as_ref().is_some_and(|f| f.remaining == 0) {
            b.frame = None;
        }
        if b.frame.is_none() || b.msg.is_none() {
            *alive = true;
        }
        (used, p)
    }

    /// Inflates a piece of a compressed message into the bounded buffer.
    fn inflate_piece(&mut self, piece: &[u8]) -> (usize, Option<Pending>) {
        let cfg = self.cfg.deflate.unwrap_or(DeflateConfig {
            server_no_context_takeover: false,
            client_no_context_takeover: false,
            server_max_window_bits: 15,
        });
        // An inflater whose message ended serves the next one.
        self.inflate_done = false;
        let chunk = self.cfg.inflate_chunk;
        let mut inf = self.inflate.take().unwrap_or_else(|| take_inflater(&cfg, chunk));
        let r = self.inflate_into(&mut inf, piece);
        self.inflate = Some(inf);
        r
    }

    /// Inflates `input` until it is used up or the buffer fills (that
    /// chunk is the event). Returns the bytes used.
    fn inflate_into(&mut self, inf: &mut InflateRx, input: &[u8]) -> (usize, Option<Pending>) {
        let mut used = 0;
        loop {
            let Ok((c, n)) = inf.inflater.inflate(&input[used..], &mut inf.buf[inf.filled..]) else {
                return (input.len(), Some(self.fail(CloseCode::INVALID_PAYLOAD, "invalid compressed data")));
            };
            used += c;
            inf.filled += n;
            let max = self.cfg.max_message;
            if let Some(m) = self.b().msg.as_mut() {
                m.size += n as u64;
                if m.size > max {
                    return (input.len(), Some(self.fail(CloseCode::TOO_BIG, "message too big")));
                }
            }
            if inf.filled == inf.buf.len() {
                let filled = std::mem::replace(&mut inf.filled, 0);
                let p = self.deliver(Src::Inflated(0..filled), &inf.buf[..filled], false);
                if p.is_some() || !self.reading() || self.reading == Reading::Discarding {
                    return (used, p);
                }
                continue;
            }
            if used == input.len() || (c == 0 && n == 0) {
                return (used, None);
            }
        }
    }

    /// The last frame of a compressed message is in: inflate the tail the
    /// sender stripped (from byte `k`), then the rest is the final piece.
    fn finish_compressed(&mut self, k: u8) -> Option<Pending> {
        let mut inf = self.inflate.take()?;
        let k = usize::from(k).min(TAIL.len());
        let tail: &[u8] = if k > 0 || inf.inflater.needs_tail() { &TAIL[k..] } else { &[] };
        let (c, p) = self.inflate_into(&mut inf, tail);
        self.inflate = Some(inf);
        match p {
            Some(p @ Pending::Data { .. }) => {
                self.resume = Some(Resume::Tail((k + c) as u8));
                Some(p)
            }
            Some(p) => {
                // Failed: the inflater is done with this message anyway.
                self.final_piece();
                Some(p)
            }
            None => self.final_piece(),
        }
    }

    /// Delivers what is left in the inflate buffer as the message's end.
    fn final_piece(&mut self) -> Option<Pending> {
        let mut inf = self.inflate.take()?;
        let filled = std::mem::replace(&mut inf.filled, 0);
        inf.inflater.end_message();
        let p = if self.b().msg.is_some() {
            self.deliver(Src::Inflated(0..filled), &inf.buf[..filled], true)
        } else {
            None
        };
        self.inflate = Some(inf);
        self.inflate_done = true;
        p
    }

    /// Picks up inflation where the last chunk left it.
    fn resume_inflate(&mut self) -> Option<Pending> {
        match self.resume.take()? {
            Resume::MidMessage => {
                let mut inf = self.inflate.take()?;
                let (_, p) = self.inflate_into(&mut inf, &[]);
                self.inflate = Some(inf);
                if matches!(p, Some(Pending::Data { .. })) {
                    self.resume = Some(Resume::MidMessage);
                }
                p
            }
            Resume::Tail(k) => self.finish_compressed(k),
        }
    }

    /// Message bytes for the connection (text checked as UTF-8 and cut
    /// at character boundaries); `bytes` are where `src` says. `last`
    /// ends the message.
    fn deliver(&mut self, src: Src, bytes: &[u8], last: bool) -> Option<Pending> {
        let b = self.busy.as_deref_mut()?;
        let msg = b.msg.as_ref()?;
        let (binary, first) = (msg.binary, !msg.delivered);
        let (src, len) = if binary {
            (src, bytes.len())
        } else {
            match b.utf8.feed(bytes) {
                Err(_) => return Some(self.fail(CloseCode::INVALID_PAYLOAD, "text message is not UTF-8")),
                // Whole characters from the start of `bytes` (a carried
                // partial one, if any, is still incomplete: none).
                Ok(p) if p.prefix_len == 0 => (shrink(src, p.whole.len()), p.whole.len()),
                Ok(p) => {
                    // A character cut by a frame or read boundary, made
                    // whole: rare, so a small copy is fine.
                    b.joined.clear();
                    b.joined.extend_from_slice(&p.prefix[..p.prefix_len]);
                    b.joined.extend_from_slice(p.whole);
                    (Src::Joined, b.joined.len())
                }
            }
        };
        if last && !binary && !b.utf8.at_boundary() {
            return Some(self.fail(CloseCode::INVALID_PAYLOAD, "text message ends inside a character"));
        }
        if last {
            b.msg = None;
        } else if len == 0 {
            return None;
        } else if let Some(m) = b.msg.as_mut() {
            m.delivered = true;
        }
        if self.closing != super::Closing::Open {
            return None;
        }
        let remaining = b.frame.as_ref().map_or(0, |f| f.remaining);
        Some(Pending::Data { src, binary, first, last, remaining })
    }

    /// A whole control frame is in `control`.
    fn control_received(&mut self, opcode: Opcode, alive: &mut bool) -> Option<Pending> {
        *alive = true;
        let open = self.closing == super::Closing::Open;
        let b = self.b();
        b.control_done = true;
        match opcode {
            Opcode::Ping if open => {
                b.pong = Some(std::mem::take(&mut b.control));
                Some(Pending::Ping)
            }
            Opcode::Pong if open => Some(Pending::Pong),
            Opcode::Close => self.peer_closed(),
            _ => None,
        }
    }

    /// The peer's close frame (its payload in `control`).
    fn peer_closed(&mut self) -> Option<Pending> {
        use super::Closing;
        if self.closing == Closing::Sent {
            // The answer to ours: done.
            self.closing = Closing::Done;
            return None;
        }
        let open = self.closing == Closing::Open;
        let payload = &self.b().control;
        let code = match payload.len() {
            0 => CloseCode::NO_STATUS,
            1 => return Some(self.fail(CloseCode::PROTOCOL_ERROR, "close frame with a one-byte payload")),
            _ => {
                let code = CloseCode(u16::from_be_bytes([payload[0], payload[1]]));
                if !code.is_valid_on_wire() {
                    return Some(self.fail(CloseCode::PROTOCOL_ERROR, "invalid close code"));
                }
                if std::str::from_utf8(&payload[2..]).is_err() {
                    return Some(self.fail(CloseCode::INVALID_PAYLOAD, "close reason is not UTF-8"));
                }
                code
            }
        };
        // Echo the code (RFC 6455 §5.5.1); no code, no payload.
        let echo = if code == CloseCode::NO_STATUS { Box::default() } else { payload[..2].into() };
        self.closing = Closing::Reply(echo);
        Some(Pending::Close { code, open })
    }
}

/// `src` cut to its first `len` bytes.
fn shrink(src: Src, len: usize) -> Src {
    match src {
        Src::Input(r) => Src::Input(r.start..r.start + len),
        Src::Inflated(r) => Src::Inflated(r.start..r.start + len),
        Src::Joined => Src::Joined,
    }
}
