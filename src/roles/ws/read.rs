//! The reading side of a WebSocket connection: frames from the socket,
//! unmasked, checked and inflated, delivered to the protocol as they
//! arrive; control frames and the close handshake answered.

use super::*;

impl Ws {
    /// Reading waits: the protocol paused it, or a pong is owed (one at a
    /// time: a peer that pings faster than it reads gets TCP pushback,
    /// and every ping still gets its pong).
    pub(super) fn rx_blocked(&self, c: &mut Core) -> bool {
        c.rx_paused || self.busy.as_ref().is_some_and(|b| b.pong.is_some())
    }

    pub(super) fn reading(&self) -> bool {
        matches!(self.closing, Closing::Open | Closing::Send(_) | Closing::Sent)
    }

    pub(super) fn read_step(&mut self, c: &mut Core, sh: &mut Env) -> Result<bool, Close> {
        if !self.reading() {
            return Ok(false);
        }
        if self.inflate_resume.is_some() {
            self.resume_inflate(c, sh)?;
            if self.rx_blocked(c) {
                return Ok(true);
            }
        }
        if self.busy.as_ref().is_some_and(|b| !b.input.is_empty()) {
            let mut input = std::mem::take(&mut self.b().input);
            let off = self.b().input_off;
            let used = self.process(c, sh, &mut input[off..])?;
            if off + used < input.len() {
                let b = self.b();
                b.input = input;
                b.input_off = off + used;
            } else {
                self.b().input_off = 0;
            }
            if used > 0 || self.rx_blocked(c) {
                return Ok(used > 0);
            }
        }
        if !c.readable {
            return Ok(false);
        }
        let mut rx = std::mem::take(&mut sh.rx);
        let r = self.read_into(c, sh, &mut rx);
        sh.rx = rx;
        r
    }

    pub(super) fn read_into(&mut self, c: &mut Core, sh: &mut Env, rx: &mut [u8]) -> Result<bool, Close> {
        let n = match c.out.read(rx)? {
            None => {
                c.readable = false;
                return Ok(false);
            }
            Some(0) => return Err(Close("peer closed the TCP connection".into())),
            Some(n) => n,
        };
        if n < rx.len() && !c.hup {
            c.readable = false;
        }
        let used = self.process(c, sh, &mut rx[..n])?;
        if used < n && self.reading() {
            self.b().input.extend_from_slice(&rx[used..n]);
        }
        Ok(true)
    }

    /// Parses and delivers what it can of `data` (masked as it came).
    /// Returns the bytes used; the rest is still masked.
    pub(super) fn process(&mut self, c: &mut Core, sh: &mut Env, data: &mut [u8]) -> Result<usize, Close> {
        let mut used = 0;
        while used < data.len() && !self.rx_blocked(c) && self.reading() {
            // After a failure frames are still parsed (their data dropped)
            // so that the peer's answering close ends things at once.
            let (rsv1_ok, rx_chunk) = (self.tx.deflate.is_some(), self.rx_chunk);
            let b = self.b();
            let Some(frame) = &b.frame else {
                match b.header.feed(&data[used..], rsv1_ok) {
                    Ok((n, header)) => {
                        used += n;
                        if let Some(h) = header {
                            self.begin_frame(c, sh, h)?;
                        }
                    }
                    Err(e) => {
                        // No frame boundary to find again: drop the rest of
                        // this read; the next one starts afresh.
                        self.b().header.reset();
                        self.fail(c, e.close_code(), e.reason());
                        return Ok(data.len());
                    }
                }
                continue;
            };
            let avail = (data.len() - used) as u64;
            let compressed = b.msg.as_ref().is_some_and(|m| m.compressed) && !frame.opcode.is_control();
            let mut take = frame.remaining.min(avail) as usize;
            if !frame.opcode.is_control() && !compressed {
                take = take.min(rx_chunk as usize);
            }
            let (mask, offset) = (frame.mask, frame.offset);
            let piece = &mut data[used..used + take];
            unmask(piece, mask, offset);
            let consumed = self.payload(c, sh, piece)?;
            if consumed < take {
                // Paused part-way through a compressed piece: mask the
                // rest again so it can be read like the bytes after it.
                unmask(&mut piece[consumed..], mask, offset + consumed as u64);
            }
            used += consumed;
        }
        Ok(used)
    }

    /// A header arrived: check it against the message state.
    pub(super) fn begin_frame(&mut self, c: &mut Core, sh: &mut Env, h: Header) -> Result<(), Close> {
        if self.discard && !h.opcode.is_control() {
            // Failed already: skip the frame's payload, deliver nothing.
            self.b().frame = Some(FrameRx { opcode: h.opcode, fin: h.fin, remaining: h.len, offset: 0, mask: h.mask });
            if h.len == 0 {
                self.b().frame = None;
            }
            return Ok(());
        }
        match h.opcode {
            Opcode::Continuation if self.b().msg.is_none() => {
                self.fail(c, CloseCode::PROTOCOL_ERROR, "continuation frame with no message begun");
                return Ok(());
            }
            Opcode::Continuation if h.rsv1 => {
                self.fail(c, CloseCode::PROTOCOL_ERROR, "RSV1 set on a continuation frame");
                return Ok(());
            }
            Opcode::Text | Opcode::Binary if self.b().msg.is_some() => {
                self.fail(c, CloseCode::PROTOCOL_ERROR, "new message inside a fragmented one");
                return Ok(());
            }
            Opcode::Text | Opcode::Binary => {
                self.b().msg =
                    Some(MsgRx { binary: h.opcode == Opcode::Binary, compressed: h.rsv1, size: 0, delivered: false });
                self.b().utf8.reset();
            }
            _ => self.b().control.clear(),
        }
        if let Some(m) = &self.b().msg {
            if !h.opcode.is_control() && !m.compressed && m.size.saturating_add(h.len) > self.max_message {
                {
                    self.fail(c, CloseCode::TOO_BIG, "message too big");
                    return Ok(());
                };
            }
        }
        self.b().frame = Some(FrameRx { opcode: h.opcode, fin: h.fin, remaining: h.len, offset: 0, mask: h.mask });
        if h.len == 0 {
            self.payload(c, sh, &mut [])?;
        }
        Ok(())
    }

    /// Takes unmasked payload bytes of the current frame. Returns how many
    /// it used (fewer only when the protocol paused rx mid-way).
    pub(super) fn payload(&mut self, c: &mut Core, sh: &mut Env, piece: &mut [u8]) -> Result<usize, Close> {
        let b = self.b();
        let Some(frame) = b.frame.as_mut() else { return Ok(piece.len()) };
        if frame.opcode.is_control() {
            b.control.extend_from_slice(piece);
            frame.remaining -= piece.len() as u64;
            frame.offset += piece.len() as u64;
            if frame.remaining == 0 {
                let opcode = frame.opcode;
                b.frame = None;
                self.control_received(c, sh, opcode)?;
            }
            return Ok(piece.len());
        }
        let compressed = b.msg.as_ref().is_some_and(|m| m.compressed);
        let used = if compressed {
            let ends = frame.fin && frame.remaining == piece.len() as u64;
            let used = self.inflate_piece(c, sh, piece)?;
            if let Some(f) = self.b().frame.as_mut() {
                f.remaining -= used as u64;
                f.offset += used as u64;
            }
            let ends = ends && used == piece.len() && self.b().msg.is_some();
            if c.rx_paused {
                // The protocol paused while output may still be waiting
                // in the inflater: finish when it resumes.
                self.inflate_resume = Some(if ends { Resume::BeforeTail } else { Resume::MidMessage });
            } else if ends {
                self.finish_compressed(c, sh)?;
            }
            used
        } else {
            frame.remaining -= piece.len() as u64;
            frame.offset += piece.len() as u64;
            let last = frame.fin && frame.remaining == 0;
            if let Some(m) = b.msg.as_mut() {
                m.size += piece.len() as u64;
            }
            self.deliver(c, sh, piece, last)?;
            piece.len()
        };
        if self.b().frame.as_ref().is_some_and(|f| f.remaining == 0) {
            self.b().frame = None;
        }
        if self.b().frame.is_none() || self.b().msg.is_none() {
            self.arm_keepalive(c, sh);
        }
        Ok(used)
    }

    /// Inflates a piece of a compressed message into the bounded buffer,
    /// delivering each time it fills.
    pub(super) fn inflate_piece(&mut self, c: &mut Core, sh: &mut Env, piece: &[u8]) -> Result<usize, Close> {
        let cfg = self.tx.deflate.unwrap_or(DeflateConfig {
            server_no_context_takeover: false,
            client_no_context_takeover: false,
            server_max_window_bits: 15,
        });
        let chunk = self.inflate_chunk as usize;
        let mut inf = self.inflate.take().unwrap_or_else(|| take_inflater(&cfg, chunk));
        let r = self.inflate_into(c, sh, &mut inf, piece);
        self.inflate = Some(inf);
        r
    }

    /// Inflates `input`, delivering each time the buffer fills, until the
    /// input is used up or the protocol pauses. Returns the bytes used.
    pub(super) fn inflate_into(
        &mut self,
        c: &mut Core,
        sh: &mut Env,
        inf: &mut InflateRx,
        input: &[u8],
    ) -> Result<usize, Close> {
        let mut used = 0;
        loop {
            let (took, n) = match inf.inflater.inflate(&input[used..], &mut inf.buf[inf.filled..]) {
                Ok(r) => r,
                Err(_) => {
                    self.fail(c, CloseCode::INVALID_PAYLOAD, "invalid compressed data");
                    return Ok(input.len());
                }
            };
            used += took;
            inf.filled += n;
            if let Some(m) = self.b().msg.as_mut() {
                m.size += n as u64;
                if m.size > self.max_message {
                    self.fail(c, CloseCode::TOO_BIG, "message too big");
                    return Ok(input.len());
                }
            }
            if inf.filled == inf.buf.len() {
                let filled = std::mem::replace(&mut inf.filled, 0);
                self.deliver(c, sh, &inf.buf[..filled], false)?;
                if !self.reading() || self.discard || c.rx_paused {
                    return Ok(used);
                }
                continue;
            }
            if used == input.len() || (took == 0 && n == 0) {
                return Ok(used);
            }
        }
    }

    /// The last frame of a compressed message is in: inflate the tail the
    /// sender stripped, then deliver the rest as the final piece.
    pub(super) fn finish_compressed(&mut self, c: &mut Core, sh: &mut Env) -> Result<(), Close> {
        let Some(mut inf) = self.inflate.take() else { return Ok(()) };
        let tail: &[u8] = if inf.inflater.needs_tail() { &TAIL } else { &[] };
        let r = self.inflate_into(c, sh, &mut inf, tail);
        self.inflate = Some(inf);
        r?;
        if c.rx_paused {
            self.inflate_resume = Some(Resume::AfterTail);
            return Ok(());
        }
        self.final_piece(c, sh)
    }

    /// Delivers what is left in the inflate buffer as the message's end.
    pub(super) fn final_piece(&mut self, c: &mut Core, sh: &mut Env) -> Result<(), Close> {
        let Some(mut inf) = self.inflate.take() else { return Ok(()) };
        let filled = std::mem::replace(&mut inf.filled, 0);
        inf.inflater.end_message();
        let r = if self.b().msg.is_some() { self.deliver(c, sh, &inf.buf[..filled], true) } else { Ok(()) };
        if inf.inflater.reusable() {
            // Reset by end_message: nothing of this connection is left in it.
            give_inflater(inf);
        } else {
            self.inflate = Some(inf);
        }
        r
    }

    /// Picks up inflation where a pause left it: drain the inflater, then
    /// end the message if that is where it stood.
    pub(super) fn resume_inflate(&mut self, c: &mut Core, sh: &mut Env) -> Result<(), Close> {
        let Some(at) = self.inflate_resume.take() else { return Ok(()) };
        if let Some(mut inf) = self.inflate.take() {
            let r = self.inflate_into(c, sh, &mut inf, &[]);
            self.inflate = Some(inf);
            r?;
        }
        if c.rx_paused {
            self.inflate_resume = Some(at);
            return Ok(());
        }
        match at {
            Resume::MidMessage => Ok(()),
            Resume::BeforeTail => self.finish_compressed(c, sh),
            Resume::AfterTail => self.final_piece(c, sh),
        }
    }

    /// Hands message bytes to the protocol (text checked as UTF-8 and cut
    /// at character boundaries). `last` ends the message.
    pub(super) fn deliver(&mut self, c: &mut Core, sh: &mut Env, bytes: &[u8], last: bool) -> Result<(), Close> {
        let Some(msg) = self.b().msg.as_ref() else { return Ok(()) };
        let (binary, first) = (msg.binary, !msg.delivered);
        let mut joined = Vec::new();
        let data: &[u8] = if binary {
            bytes
        } else {
            match self.b().utf8.feed(bytes) {
                Err(_) => {
                    self.fail(c, CloseCode::INVALID_PAYLOAD, "text message is not UTF-8");
                    return Ok(());
                }
                Ok(p) if p.prefix_len == 0 => p.whole,
                Ok(p) => {
                    // A character cut by a frame or read boundary, made
                    // whole: rare, so a small copy is fine.
                    joined.extend_from_slice(&p.prefix[..p.prefix_len]);
                    joined.extend_from_slice(p.whole);
                    &joined
                }
            }
        };
        if last && !binary && !self.b().utf8.at_boundary() {
            self.fail(c, CloseCode::INVALID_PAYLOAD, "text message ends inside a character");
            return Ok(());
        }
        if last {
            self.b().msg = None;
        } else if data.is_empty() {
            return Ok(());
        } else if let Some(m) = self.b().msg.as_mut() {
            m.delivered = true;
        }
        if self.closing != Closing::Open {
            return Ok(());
        }
        let remaining = self.b().frame.as_ref().map_or(0, |f| f.remaining);
        let rx = Rx { data, binary, first, last, remaining };
        let (id, peer) = (c.id(), c.peer);
        self.dispatch(c, sh, RawEvent::Receive(id, peer, rx))
    }

    /// A whole control frame is in `self.b().control`.
    pub(super) fn control_received(&mut self, c: &mut Core, sh: &mut Env, opcode: Opcode) -> Result<(), Close> {
        let payload = std::mem::take(&mut self.b().control);
        self.arm_keepalive(c, sh);
        let open = self.closing == Closing::Open;
        match opcode {
            Opcode::Ping if open => {
                self.b().pong = Some(payload);
                sh.force(c);
            }
            Opcode::Pong if open => {
                let (id, peer) = (c.id(), c.peer);
                self.dispatch(c, sh, RawEvent::Pong(id, peer, &payload))?;
            }
            Opcode::Close => self.peer_closed(c, sh, &payload)?,
            _ => {}
        }
        Ok(())
    }

    pub(super) fn peer_closed(&mut self, c: &mut Core, sh: &mut Env, payload: &[u8]) -> Result<(), Close> {
        if self.closing == Closing::Sent {
            // The answer to ours: done.
            self.closing = Closing::Done;
            return Ok(());
        }
        let (code, reason) = match payload.len() {
            0 => (CloseCode::NO_STATUS, ""),
            1 => {
                self.fail(c, CloseCode::PROTOCOL_ERROR, "close frame with a one-byte payload");
                return Ok(());
            }
            _ => {
                let code = CloseCode(u16::from_be_bytes([payload[0], payload[1]]));
                if !code.is_valid_on_wire() {
                    self.fail(c, CloseCode::PROTOCOL_ERROR, "invalid close code");
                    return Ok(());
                }
                let Ok(reason) = std::str::from_utf8(&payload[2..]) else {
                    self.fail(c, CloseCode::INVALID_PAYLOAD, "close reason is not UTF-8");
                    return Ok(());
                };
                (code, reason)
            }
        };
        let was_open = self.closing == Closing::Open;
        // Echo the code (RFC 6455 §5.5.1); no code, no payload.
        self.closing = Closing::Reply(if code == CloseCode::NO_STATUS { Box::default() } else { payload[..2].into() });
        // A peer that closes and then stops reading cannot hold us.
        sh.timers.set(c.key, sh.now + sh.limits.ws_close_timeout);
        sh.force(c);
        if was_open {
            let (id, peer) = (c.id(), c.peer);
            self.dispatch(c, sh, RawEvent::PeerClose(id, peer, code, reason))?;
        }
        Ok(())
    }

    /// The peer broke the protocol: close with `code`, read no more data.
    pub(super) fn fail(&mut self, c: &mut Core, code: CloseCode, reason: &str) {
        log::debug!("{}: ws: {reason}; closing with {code}", c.peer);
        self.discard = true;
        // The current frame is still tracked, so its payload is skipped
        // and the next header is found; the message is abandoned.
        self.b().msg = None;
        if self.closing == Closing::Open {
            self.closing = Closing::Send(close_payload(code, reason));
        }
    }
}
