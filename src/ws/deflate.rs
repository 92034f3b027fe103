//! permessage-deflate (RFC 7692) with miniz_oxide: negotiation, and the
//! per-connection compressor and inflater.
//!
//! miniz_oxide always keeps a 32 KiB window, which is what a client gets
//! unless it asks for less with `server_max_window_bits`. When it does,
//! we compress with the RLE strategy: its matches all have distance 1,
//! valid under any window, so the promise holds at some cost in ratio.
//! Inflating needs no such care: a 32 KiB window reads any smaller one.
//!
//! Memory: warren always answers with `server_no_context_takeover` and
//! `client_no_context_takeover` (RFC 7692 lets a server add both to any
//! offer it accepts), so neither side's compression state outlives a
//! message. A compressor (about 240 KiB) or inflater (about 43 KiB) is
//! then only lent to a connection for one message, from a small pool per
//! loop thread (`super::pool`): a connection between messages holds none.

use miniz_oxide::deflate::core::{create_comp_flags_from_zip_params, CompressorOxide};
use miniz_oxide::inflate::stream::InflateState;
use miniz_oxide::{DataFormat, MZError, MZFlush, MZStatus};
use std::fmt::Write as _;

/// The empty stored block a sync flush ends with; stripped from each
/// outgoing message and put back behind each incoming one (§7.2.1).
pub(crate) const TAIL: [u8; 4] = [0, 0, 0xff, 0xff];

/// Compression level: fast, which suits small interactive messages.
const LEVEL: i32 = 1;
/// zlib's `Z_RLE`.
const STRATEGY_RLE: i32 = 3;

/// Whether a protocol with this `rx_buffer_size` takes permessage-deflate.
/// lws's rule: under 128 bytes it does not (lws fails the extension's
/// construction, on servers and on clients alike). An lws client whose
/// protocol has a small buffer, such as `libwebsockets-test-client`'s
/// dumb-increment (20 bytes), drops the extension itself even when the
/// server agrees it, and then takes a compressed message for a protocol
/// error; so warren does not agree it for such protocols either.
pub(crate) fn protocol_takes_deflate(rx_buffer_size: usize) -> bool {
    rx_buffer_size == 0 || rx_buffer_size >= 128
}

/// Agreed parameters (§7.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DeflateConfig {
    pub(crate) server_no_context_takeover: bool,
    pub(crate) client_no_context_takeover: bool,
    /// The window the client allowed us (15 when it set no limit).
    pub(crate) server_max_window_bits: u8,
}

impl DeflateConfig {
    /// The first usable `permessage-deflate` offer in one
    /// `Sec-WebSocket-Extensions` value, if any.
    pub(crate) fn from_offers(header: &str) -> Option<DeflateConfig> {
        header.split(',').find_map(DeflateConfig::from_offer)
    }

    fn from_offer(offer: &str) -> Option<DeflateConfig> {
        let mut parts = offer.split(';').map(str::trim);
        if !parts.next()?.eq_ignore_ascii_case("permessage-deflate") {
            return None;
        }
        // No context takeover either way, whatever the offer says (RFC
        // 7692 §7.1.1.1 and §7.1.1.2 let the server add both): it is what
        // keeps per-connection memory small, see the module doc.
        let mut cfg = DeflateConfig {
            server_no_context_takeover: true,
            client_no_context_takeover: true,
            server_max_window_bits: 15,
        };
        let mut seen: Vec<&str> = Vec::new();
        for p in parts {
            let (name, value) = match p.split_once('=') {
                Some((n, v)) => (n.trim(), Some(v.trim().trim_matches('"'))),
                None => (p, None),
            };
            // §7.1: an offer naming a parameter twice is declined.
            if seen.iter().any(|s| s.eq_ignore_ascii_case(name)) {
                return None;
            }
            seen.push(name);
            let bits = |v: Option<&str>| v.and_then(|v| v.parse::<u8>().ok()).filter(|b| (8..=15).contains(b));
            match name.to_ascii_lowercase().as_str() {
                "server_no_context_takeover" | "client_no_context_takeover" if value.is_none() => {}
                "server_max_window_bits" => cfg.server_max_window_bits = bits(value)?,
                // A hint that the client can take a limit; we set none,
                // so the client compresses with the window it likes.
                "client_max_window_bits" => {
                    if value.is_some() {
                        bits(value)?;
                    }
                }
                _ => return None,
            }
        }
        Some(cfg)
    }

    /// The `Sec-WebSocket-Extensions` value accepting this offer.
    pub(crate) fn response(&self) -> String {
        let mut s = String::from("permessage-deflate");
        if self.server_no_context_takeover {
            s.push_str("; server_no_context_takeover");
        }
        if self.client_no_context_takeover {
            s.push_str("; client_no_context_takeover");
        }
        if self.server_max_window_bits < 15 {
            let _ = write!(s, "; server_max_window_bits={}", self.server_max_window_bits);
        }
        s
    }
}

/// Compresses outgoing messages.
pub(crate) struct Deflater {
    comp: Box<CompressorOxide>,
    no_context_takeover: bool,
    /// Compresses for a window under 15 bits (RLE).
    limited: bool,
}

impl std::fmt::Debug for Deflater {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deflater").field("no_context_takeover", &self.no_context_takeover).finish()
    }
}

impl Deflater {
    pub(crate) fn new(cfg: &DeflateConfig) -> Deflater {
        // miniz_oxide's one-probe fast path (level 1) ignores the RLE
        // flag, so a limited window takes level 2, which honours it.
        let (level, strategy) = if Self::limited(cfg) { (2, STRATEGY_RLE) } else { (LEVEL, 0) };
        let flags = create_comp_flags_from_zip_params(level, -15, strategy);
        Deflater {
            comp: Box::new(CompressorOxide::new(flags)),
            no_context_takeover: cfg.server_no_context_takeover,
            limited: Self::limited(cfg),
        }
    }

    fn limited(cfg: &DeflateConfig) -> bool {
        cfg.server_max_window_bits < 15
    }

    /// Whether this compressor may serve a connection that agreed `cfg`
    /// (the same window rule; no context carried between messages).
    pub(crate) fn fits(&self, cfg: &DeflateConfig) -> bool {
        self.no_context_takeover && cfg.server_no_context_takeover && self.limited == Self::limited(cfg)
    }

    /// Appends the compressed form of `input`, the next bytes of the
    /// message, to `out`; `fin` ends the message (sync flush, tail off).
    pub(crate) fn compress(&mut self, input: &[u8], fin: bool, out: &mut Vec<u8>) -> Result<(), MZError> {
        let flush = if fin { MZFlush::Sync } else { MZFlush::None };
        let start = out.len();
        let mut input = input;
        loop {
            let at = out.len();
            let room = (input.len() / 2).max(4096);
            out.resize(at + room, 0);
            let r = miniz_oxide::deflate::stream::deflate(&mut self.comp, input, &mut out[at..], flush);
            out.truncate(at + r.bytes_written);
            input = &input[r.bytes_consumed..];
            match r.status {
                Ok(_) => {}
                // No progress possible: everything is in.
                Err(MZError::Buf) => break,
                Err(e) => return Err(e),
            }
            // Done when the input is in and the output did not fill up.
            if input.is_empty() && r.bytes_written < room {
                break;
            }
        }
        if fin {
            if out[start..].ends_with(&TAIL) {
                out.truncate(out.len() - TAIL.len());
            }
            if self.no_context_takeover {
                self.comp.reset();
            }
        }
        Ok(())
    }
}

/// Inflates incoming messages into a bounded buffer, piece by piece.
pub(crate) struct Inflater {
    state: Box<InflateState>,
    no_context_takeover: bool,
    /// This message has put bytes into the inflater.
    fed: bool,
    /// This message ended its deflate stream (a BFINAL block, RFC 7692
    /// §7.2.3.3): no tail follows, and the next message starts afresh.
    ended: bool,
}

impl std::fmt::Debug for Inflater {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inflater").field("no_context_takeover", &self.no_context_takeover).finish()
    }
}

/// The compressed data was not valid deflate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BadData;

impl Inflater {
    pub(crate) fn new(cfg: &DeflateConfig) -> Inflater {
        Inflater {
            state: InflateState::new_boxed(DataFormat::Raw),
            no_context_takeover: cfg.client_no_context_takeover,
            fed: false,
            ended: false,
        }
    }

    /// Inflates from `input` into `out`; returns (consumed, written). Call
    /// again while `written == out.len()`: more output may be waiting.
    pub(crate) fn inflate(&mut self, input: &[u8], out: &mut [u8]) -> Result<(usize, usize), BadData> {
        self.fed |= !input.is_empty();
        let r = miniz_oxide::inflate::stream::inflate(&mut self.state, input, out, MZFlush::None);
        match r.status {
            Ok(MZStatus::StreamEnd) => {
                // The client ended the deflate stream (BFINAL). Anything
                // after it in this message starts a new stream.
                self.state.reset(DataFormat::Raw);
                self.ended = true;
                Ok((r.bytes_consumed, r.bytes_written))
            }
            Ok(_) | Err(MZError::Buf) => Ok((r.bytes_consumed, r.bytes_written)),
            Err(_) => Err(BadData),
        }
    }

    /// Whether this inflater keeps nothing between messages, so that
    /// another connection may use it after [`Inflater::end_message`].
    pub(crate) fn reusable(&self) -> bool {
        self.no_context_takeover
    }

    /// Whether the message's stripped tail must be fed: not when the
    /// message sent nothing, nor when it ended its stream itself.
    pub(crate) fn needs_tail(&self) -> bool {
        self.fed && !self.ended
    }

    /// The message ended (after its tail, if any, was inflated).
    pub(crate) fn end_message(&mut self) {
        if self.no_context_takeover && !self.ended {
            self.state.reset(DataFormat::Raw);
        }
        self.fed = false;
        self.ended = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(header: &str) -> Option<DeflateConfig> {
        DeflateConfig::from_offers(header)
    }

    #[test]
    fn offers_are_accepted_or_declined_as_rfc_7692_says() {
        // Context takeover is refused both ways, whatever the offer.
        let both = "permessage-deflate; server_no_context_takeover; client_no_context_takeover";
        let plain = cfg("permessage-deflate").expect("plain offer");
        assert_eq!(plain.response(), both);
        let c = cfg("permessage-deflate; client_max_window_bits").expect("hint");
        assert_eq!(c.response(), both);
        let c = cfg("permessage-deflate; server_max_window_bits=10; server_no_context_takeover").expect("limits");
        assert_eq!(c.response(), format!("{both}; server_max_window_bits=10"));
        assert_eq!(cfg("permessage-deflate; server_max_window_bits=\"9\"").map(|c| c.server_max_window_bits), Some(9));
        // Declined: bad values, duplicates, unknown parameters...
        for bad in [
            "permessage-deflate; server_max_window_bits=7",
            "permessage-deflate; server_max_window_bits",
            "permessage-deflate; client_max_window_bits=16",
            "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
            "permessage-deflate; mystery",
            "x-webkit-deflate-frame",
        ] {
            assert_eq!(cfg(bad), None, "{bad}");
        }
        // ...but a later offer in the list may still be taken.
        assert!(cfg("permessage-deflate; server_max_window_bits=7, permessage-deflate").is_some());
    }

    fn roundtrip(cfg: &DeflateConfig, messages: &[Vec<u8>]) {
        let mut d = Deflater::new(cfg);
        let client = DeflateConfig { client_no_context_takeover: cfg.server_no_context_takeover, ..*cfg };
        let mut i = Inflater::new(&client);
        for m in messages {
            let mut wire = Vec::new();
            // In three writes, as a protocol streaming fragments would.
            let (a, rest) = m.split_at(m.len() / 3);
            let (b, c) = rest.split_at(rest.len() / 2);
            d.compress(a, false, &mut wire).expect("compress");
            d.compress(b, false, &mut wire).expect("compress");
            d.compress(c, true, &mut wire).expect("compress");
            assert!(!wire.ends_with(&TAIL));
            wire.extend_from_slice(&TAIL);
            let mut got = Vec::new();
            let mut buf = [0u8; 1000];
            let mut input = &wire[..];
            loop {
                let (used, n) = i.inflate(input, &mut buf).expect("inflate");
                got.extend_from_slice(&buf[..n]);
                input = &input[used..];
                if input.is_empty() && n < buf.len() {
                    break;
                }
            }
            i.end_message();
            assert_eq!(&got, m);
        }
    }

    #[test]
    fn messages_survive_compression_with_and_without_context() {
        let text: Vec<u8> = b"Hello, warren! ".iter().cycle().take(20_000).copied().collect();
        let noise: Vec<u8> = (0..50_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
        let messages = vec![text.clone(), noise, Vec::new(), text];
        let agreed = cfg("permessage-deflate").expect("offer");
        roundtrip(&agreed, &messages);
        // The context-carrying path, which warren no longer agrees to.
        let carried = DeflateConfig { server_no_context_takeover: false, client_no_context_takeover: false, ..agreed };
        roundtrip(&carried, &messages);
        // A small window: RLE output, still correct.
        roundtrip(&cfg("permessage-deflate; server_max_window_bits=8").expect("offer"), &messages);
    }
}
