//! RFC 6455 §5 framing, without I/O: an incremental header parser for
//! client frames, unmasking, and the header encoder for server frames.

use super::CloseCode;

/// Frame opcodes (RFC 6455 §5.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Opcode {
    Continuation,
    Text,
    Binary,
    Close,
    Ping,
    Pong,
}

impl Opcode {
    fn from_bits(bits: u8) -> Option<Opcode> {
        Some(match bits {
            0x0 => Opcode::Continuation,
            0x1 => Opcode::Text,
            0x2 => Opcode::Binary,
            0x8 => Opcode::Close,
            0x9 => Opcode::Ping,
            0xA => Opcode::Pong,
            _ => return None,
        })
    }

    pub(crate) fn bits(self) -> u8 {
        match self {
            Opcode::Continuation => 0x0,
            Opcode::Text => 0x1,
            Opcode::Binary => 0x2,
            Opcode::Close => 0x8,
            Opcode::Ping => 0x9,
            Opcode::Pong => 0xA,
        }
    }

    pub(crate) fn is_control(self) -> bool {
        matches!(self, Opcode::Close | Opcode::Ping | Opcode::Pong)
    }
}

/// A parsed frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    pub(crate) fin: bool,
    /// RSV1: "compressed" under permessage-deflate.
    pub(crate) rsv1: bool,
    pub(crate) opcode: Opcode,
    pub(crate) len: u64,
    pub(crate) mask: [u8; 4],
}

/// Why a header is refused; each maps to a close code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FrameError {
    Unmasked,
    ReservedBits,
    ReservedOpcode,
    ControlTooLong,
    ControlFragmented,
    NonMinimalLength,
    LengthTooLarge,
}

impl FrameError {
    pub(crate) fn close_code(self) -> CloseCode {
        CloseCode::PROTOCOL_ERROR
    }

    pub(crate) fn reason(self) -> &'static str {
        match self {
            FrameError::Unmasked => "client frames must be masked",
            FrameError::ReservedBits => "reserved bits set",
            FrameError::ReservedOpcode => "reserved opcode",
            FrameError::ControlTooLong => "control frame longer than 125 bytes",
            FrameError::ControlFragmented => "fragmented control frame",
            FrameError::NonMinimalLength => "payload length not minimally encoded",
            FrameError::LengthTooLarge => "payload length has its top bit set",
        }
    }
}

/// Gathers a header's bytes, which may arrive split across reads.
#[derive(Debug, Default)]
pub(crate) struct HeaderParser {
    buf: [u8; 14],
    have: usize,
}

impl HeaderParser {
    /// Forgets a partial header (after an error: the next bytes start
    /// afresh).
    pub(crate) fn reset(&mut self) {
        self.have = 0;
    }

    /// No part of a header is held.
    pub(crate) fn is_empty(&self) -> bool {
        self.have == 0
    }

    /// Takes bytes from `input` until a header is complete. Returns the
    /// bytes consumed and the header once it is whole. `rsv1_allowed`:
    /// an extension (permessage-deflate) gave RSV1 a meaning.
    pub(crate) fn feed(&mut self, input: &[u8], rsv1_allowed: bool) -> Result<(usize, Option<Header>), FrameError> {
        let mut used = 0;
        loop {
            let need = self.needed();
            if self.have >= need {
                break;
            }
            let take = (need - self.have).min(input.len() - used);
            if take == 0 {
                return Ok((used, None));
            }
            self.buf[self.have..self.have + take].copy_from_slice(&input[used..used + take]);
            self.have += take;
            used += take;
            if self.have == 2 {
                // Check what we can as early as we can.
                self.check_first_two(rsv1_allowed)?;
            }
        }
        let header = self.finish()?;
        self.have = 0;
        Ok((used, Some(header)))
    }

    /// Header bytes needed given what has arrived.
    fn needed(&self) -> usize {
        if self.have < 2 {
            return 2;
        }
        let ext = match self.buf[1] & 0x7f {
            126 => 2,
            127 => 8,
            _ => 0,
        };
        let mask = if self.buf[1] & 0x80 != 0 { 4 } else { 0 };
        2 + ext + mask
    }

    fn check_first_two(&self, rsv1_allowed: bool) -> Result<(), FrameError> {
        let (b0, b1) = (self.buf[0], self.buf[1]);
        let opcode = Opcode::from_bits(b0 & 0x0f).ok_or(FrameError::ReservedOpcode)?;
        let rsv = b0 & 0x70;
        if rsv & 0x30 != 0 || (rsv & 0x40 != 0 && (!rsv1_allowed || opcode.is_control())) {
            return Err(FrameError::ReservedBits);
        }
        if b1 & 0x80 == 0 {
            return Err(FrameError::Unmasked);
        }
        if opcode.is_control() {
            if b0 & 0x80 == 0 {
                return Err(FrameError::ControlFragmented);
            }
            if b1 & 0x7f > 125 {
                return Err(FrameError::ControlTooLong);
            }
        }
        Ok(())
    }

    fn finish(&self) -> Result<Header, FrameError> {
        let b = &self.buf;
        let (len, at) = match b[1] & 0x7f {
            126 => {
                let n = u16::from_be_bytes([b[2], b[3]]) as u64;
                if n < 126 {
                    return Err(FrameError::NonMinimalLength);
                }
                (n, 4)
            }
            127 => {
                let mut be = [0; 8];
                be.copy_from_slice(&b[2..10]);
                let n = u64::from_be_bytes(be);
                if n >> 63 != 0 {
                    return Err(FrameError::LengthTooLarge);
                }
                if n <= 0xffff {
                    return Err(FrameError::NonMinimalLength);
                }
                (n, 10)
            }
            n => (n as u64, 2),
        };
        let mut mask = [0; 4];
        mask.copy_from_slice(&b[at..at + 4]);
        Ok(Header {
            fin: b[0] & 0x80 != 0,
            rsv1: b[0] & 0x40 != 0,
            opcode: Opcode::from_bits(b[0] & 0x0f).ok_or(FrameError::ReservedOpcode)?,
            len,
            mask,
        })
    }
}

/// Unmasks `data` in place; `offset` is its position in the payload.
pub(crate) fn unmask(data: &mut [u8], mask: [u8; 4], offset: u64) {
    // The key as it lines up with `data[0]`, repeated to 8 bytes; XOR by
    // bytes in memory order, so byte order does not matter.
    let phase = (offset % 4) as usize;
    let key: [u8; 8] = std::array::from_fn(|i| mask[(i + phase) % 4]);
    let wide = u64::from_ne_bytes(key);
    let mut chunks = data.chunks_exact_mut(8);
    for c in &mut chunks {
        let mut w = [0; 8];
        w.copy_from_slice(c);
        c.copy_from_slice(&(u64::from_ne_bytes(w) ^ wide).to_ne_bytes());
    }
    for (b, k) in chunks.into_remainder().iter_mut().zip(key) {
        *b ^= k;
    }
}

/// Appends a server frame header (never masked) to `buf`.
pub(crate) fn encode_header(buf: &mut Vec<u8>, fin: bool, rsv1: bool, opcode: Opcode, len: u64) {
    buf.push(u8::from(fin) << 7 | u8::from(rsv1) << 6 | opcode.bits());
    if len < 126 {
        buf.push(len as u8);
    } else if len <= 0xffff {
        buf.push(126);
        buf.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        buf.push(127);
        buf.extend_from_slice(&len.to_be_bytes());
    }
}

/// A client frame as a peer sends it: first byte `b0` (fin, rsv,
/// opcode), the shortest length encoding, masked with `mask` (tests).
#[cfg(test)]
pub(crate) fn client_frame(b0: u8, payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
    let mut v = vec![b0];
    match payload.len() {
        n if n < 126 => v.push(0x80 | n as u8),
        n if n <= 0xffff => {
            v.push(0x80 | 126);
            v.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            v.push(0x80 | 127);
            v.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    v.extend_from_slice(&mask);
    v.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn masked(fin: bool, op: u8, payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
        client_frame((u8::from(fin) << 7) | op, payload, mask)
    }

    #[test]
    fn headers_of_each_length_form_parse_byte_by_byte() {
        for len in [0usize, 5, 125, 126, 65535, 65536, 70000] {
            let payload: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
            let frame = masked(true, 2, &payload, [1, 2, 3, 4]);
            let mut p = HeaderParser::default();
            let mut header = None;
            let mut at = 0;
            while header.is_none() {
                let (n, h) = p.feed(&frame[at..at + 1], false).expect("valid header");
                at += n;
                header = h;
            }
            let h = header.expect("header");
            assert_eq!((h.fin, h.opcode, h.len), (true, Opcode::Binary, len as u64));
            let mut body = frame[at..].to_vec();
            // Unmask in uneven pieces: the offset carries the key's phase.
            let (a, b) = body.split_at_mut(len / 3);
            unmask(a, h.mask, 0);
            unmask(b, h.mask, (len / 3) as u64);
            assert_eq!(body, payload);
        }
    }

    #[test]
    fn bad_headers_are_refused() {
        let cases: &[(&[u8], FrameError)] = &[
            (&[0x82, 0x05], FrameError::Unmasked),
            (&[0xC2, 0x85], FrameError::ReservedBits),
            (&[0x92, 0x85], FrameError::ReservedBits),
            (&[0x83, 0x85], FrameError::ReservedOpcode),
            (&[0x8B, 0x85], FrameError::ReservedOpcode),
            (&[0x09, 0x80], FrameError::ControlFragmented),
            (&[0x89, 0xFE], FrameError::ControlTooLong),
            (&[0xC9, 0x80], FrameError::ReservedBits),
            (&[0x82, 0xFE, 0x00, 0x05], FrameError::NonMinimalLength),
            (&[0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0], FrameError::LengthTooLarge),
        ];
        for (bytes, want) in cases {
            let mut full = bytes.to_vec();
            full.extend_from_slice(&[0; 14]);
            assert_eq!(HeaderParser::default().feed(&full, false).err(), Some(*want), "{bytes:x?}");
        }
        // RSV1 is fine on a data frame once permessage-deflate is on.
        let ok = HeaderParser::default().feed(&[0xC1, 0x80, 0, 0, 0, 0], true);
        assert!(matches!(ok, Ok((6, Some(Header { rsv1: true, .. })))));
    }

    #[test]
    fn server_headers_use_the_shortest_length_form() {
        for (len, want) in [(0u64, 2usize), (125, 2), (126, 4), (65535, 4), (65536, 10)] {
            let mut b = Vec::new();
            encode_header(&mut b, true, false, Opcode::Text, len);
            assert_eq!(b.len(), want, "len {len}");
            assert_eq!(b[0], 0x81);
        }
    }
}
