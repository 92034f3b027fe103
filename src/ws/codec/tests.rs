//! The codec against hand-made client frames: every rule of RFC 6455 it
//! enforces, permessage-deflate, pauses and feed boundaries.

use super::tx::{Encoded, SendError};
use super::*;
use crate::ws::deflate::{Deflater, Inflater, TAIL};
use crate::ws::WriteKind;

const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// A masked client frame; `b0` is the first byte as sent (fin, rsv, opcode).
fn raw(b0: u8, payload: &[u8]) -> Vec<u8> {
    crate::ws::frame::client_frame(b0, payload, MASK)
}

fn frame(fin: bool, op: u8, payload: &[u8]) -> Vec<u8> {
    raw(u8::from(fin) << 7 | op, payload)
}

/// A client's compressed message in `parts` fragments (RSV1 on the first).
fn compressed(op: u8, msg: &[u8], parts: usize) -> Vec<u8> {
    let cfg = deflate_cfg();
    let client = DeflateConfig { server_no_context_takeover: cfg.client_no_context_takeover, ..cfg };
    let mut d = Deflater::new(&client);
    let mut wire = Vec::new();
    let step = msg.len().div_ceil(parts).max(1);
    let pieces: Vec<&[u8]> = if msg.is_empty() { vec![&[][..]] } else { msg.chunks(step).collect() };
    for (i, p) in pieces.iter().enumerate() {
        let fin = i + 1 == pieces.len();
        let mut z = Vec::new();
        d.compress(p, fin, &mut z).expect("compress");
        let b0 = u8::from(fin) << 7 | if i == 0 { 0x40 | op } else { 0 };
        wire.extend(raw(b0, &z));
    }
    wire
}

fn deflate_cfg() -> DeflateConfig {
    DeflateConfig::from_offers("permessage-deflate").expect("offer")
}

fn config(deflate: bool) -> Config {
    Config { deflate: deflate.then(deflate_cfg), rx_chunk: 4096, inflate_chunk: 1000, max_message: 1 << 20 }
}

/// An event, owned.
#[derive(Debug, Clone, PartialEq)]
enum Ev {
    Data { data: Vec<u8>, binary: bool, first: bool, last: bool },
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    Close(u16, String, bool),
    Failed(u16),
}

fn own(e: Event<'_>) -> Ev {
    match e {
        Event::Data(rx) => Ev::Data { data: rx.data.to_vec(), binary: rx.binary, first: rx.first, last: rx.last },
        Event::Ping(p) => Ev::Ping(p.to_vec()),
        Event::Pong(p) => Ev::Pong(p.to_vec()),
        Event::Close { code, reason, open } => Ev::Close(code.0, reason.to_string(), open),
        Event::Failed { code, .. } => Ev::Failed(code.0),
    }
}

/// Reads all it can from `pending` as a connection would: unused bytes
/// stay for later, an owed pong is written at once.
fn pump(c: &mut Codec, pending: &mut Vec<u8>, out: &mut Vec<Ev>) {
    loop {
        let r = c.read(&mut pending[..]);
        let (used, ev) = (r.used, r.event.map(own));
        pending.drain(..used);
        match ev {
            Some(e) => {
                if matches!(e, Ev::Ping(_)) {
                    assert_eq!(c.take_owed(&mut Vec::new()), Some(Owed::Pong));
                }
                out.push(e);
            }
            None if used == 0 => break,
            None => {}
        }
    }
    c.settle();
}

/// Feeds `wire` in pieces of `step` bytes.
fn drive(c: &mut Codec, wire: &[u8], step: usize) -> Vec<Ev> {
    let (mut pending, mut out) = (Vec::new(), Vec::new());
    for piece in wire.chunks(step) {
        pending.extend_from_slice(piece);
        pump(c, &mut pending, &mut out);
    }
    out
}

fn events(cfg: Config, wire: &[u8]) -> Vec<Ev> {
    drive(&mut Codec::new(cfg), wire, wire.len().max(1))
}

/// Data pieces joined into whole messages (checking first/last).
fn messages(evs: &[Ev]) -> Vec<Ev> {
    let mut out: Vec<Ev> = Vec::new();
    // The message being joined, by its index in `out`.
    let mut open: Option<usize> = None;
    for e in evs {
        match e {
            Ev::Data { data, binary, first, last } => {
                assert_eq!(*first, open.is_none(), "first flag in {evs:?}");
                match open.and_then(|at| out.get_mut(at)) {
                    Some(Ev::Data { data: d, last: l, .. }) => {
                        d.extend_from_slice(data);
                        *l = *last;
                    }
                    _ => out.push(Ev::Data { data: data.clone(), binary: *binary, first: true, last: *last }),
                }
                open = if *last { None } else { open.or(Some(out.len() - 1)) };
            }
            other => out.push(other.clone()),
        }
    }
    out
}

fn text(s: &str, first: bool, last: bool) -> Ev {
    Ev::Data { data: s.as_bytes().to_vec(), binary: false, first, last }
}

fn failed_with(cfg: Config, wire: &[u8]) -> u16 {
    let mut c = Codec::new(cfg);
    let evs = drive(&mut c, wire, wire.len());
    let Some(Ev::Failed(code)) = evs.last() else { panic!("no failure in {evs:?}") };
    // The close owed carries the same code.
    let mut buf = Vec::new();
    assert_eq!(c.take_owed(&mut buf), Some(Owed::Close));
    assert_eq!(&buf[..4], &[0x88, buf[1], (code >> 8) as u8, *code as u8]);
    assert_eq!(c.closing(), &Closing::Sent);
    *code
}

#[test]
fn fragments_arrive_in_order_with_first_and_last() {
    let mut wire = frame(false, 1, b"Hel");
    wire.extend(frame(false, 0, b"lo, "));
    wire.extend(frame(true, 0, b"world"));
    wire.extend(frame(true, 2, &[1, 2, 3]));
    assert_eq!(
        events(config(false), &wire),
        [
            text("Hel", true, false),
            text("lo, ", false, false),
            text("world", false, true),
            Ev::Data { data: vec![1, 2, 3], binary: true, first: true, last: true }
        ]
    );
}

#[test]
fn plain_pieces_are_at_most_rx_chunk_and_count_what_remains() {
    let cfg = Config { rx_chunk: 4, ..config(false) };
    let mut wire = frame(true, 2, b"0123456789");
    let mut c = Codec::new(cfg);
    let mut got = Vec::new();
    loop {
        let r = c.read(&mut wire[..]);
        let (used, rx) = match r.event {
            Some(Event::Data(rx)) => (r.used, Some((rx.data.to_vec(), rx.first, rx.last, rx.remaining))),
            None => (r.used, None),
            Some(e) => panic!("{e:?}"),
        };
        wire.drain(..used);
        match rx {
            Some(x) => got.push(x),
            None => break,
        }
    }
    assert_eq!(
        got,
        [(b"0123".to_vec(), true, false, 6), (b"4567".to_vec(), false, false, 2), (b"89".to_vec(), false, true, 0)]
    );
}

#[test]
fn control_frames_between_fragments_are_answered() {
    let mut wire = frame(false, 1, b"ab");
    wire.extend(frame(true, 9, b"are you there"));
    wire.extend(frame(true, 0xA, b"unsolicited"));
    wire.extend(frame(true, 0, b"cd"));
    let mut c = Codec::new(config(false));
    let mut pending = wire.clone();
    let mut evs = Vec::new();
    // Up to the ping: then reading waits for the pong to be taken.
    loop {
        let r = c.read(&mut pending[..]);
        let (used, ev) = (r.used, r.event.map(own));
        pending.drain(..used);
        match ev {
            Some(e) => evs.push(e),
            None => break,
        }
    }
    assert_eq!(evs, [text("ab", true, false), Ev::Ping(b"are you there".to_vec())]);
    assert!(c.pong_owed());
    assert!(c.read(&mut pending[..]).used == 0, "reading waits for the pong");
    let mut buf = Vec::new();
    assert_eq!(c.take_owed(&mut buf), Some(Owed::Pong));
    assert_eq!(buf, [&[0x8A, 13][..], b"are you there"].concat());
    pump(&mut c, &mut pending, &mut evs);
    assert_eq!(evs[2..], [Ev::Pong(b"unsolicited".to_vec()), text("cd", false, true)]);
    assert!(c.is_idle());
}

#[test]
fn fragmentation_rules_are_enforced_with_1002() {
    let cfg = config(false);
    // A continuation with no message begun.
    assert_eq!(failed_with(cfg, &frame(true, 0, b"x")), 1002);
    // A new message inside a fragmented one.
    let mut wire = frame(false, 1, b"a");
    wire.extend(frame(true, 1, b"b"));
    assert_eq!(failed_with(cfg, &wire), 1002);
    // A fragmented control frame.
    assert_eq!(failed_with(cfg, &frame(false, 9, b"")), 1002);
    // RSV1 on a continuation, even with deflate on.
    let mut wire = frame(false, 2, b"a");
    wire.extend(raw(0xC0, b"b"));
    assert_eq!(failed_with(config(true), &wire), 1002);
}

#[test]
fn reserved_bits_and_opcodes_are_refused_with_1002() {
    for b0 in [0xC1, 0xA1, 0x91, 0x83, 0x87, 0x8B, 0x8F, 0xC9] {
        assert_eq!(failed_with(config(false), &raw(b0, b"x")), 1002, "{b0:#x}");
    }
}

#[test]
fn unmasked_client_frame_is_a_protocol_error() {
    assert_eq!(failed_with(config(false), &[0x81, 0x02, b'h', b'i']), 1002);
}

#[test]
fn oversize_control_frame_is_a_protocol_error() {
    assert_eq!(failed_with(config(false), &frame(true, 9, &[0; 126])), 1002);
    // 125 is fine.
    assert_eq!(events(config(false), &frame(true, 9, &[7; 125])), [Ev::Ping(vec![7; 125])]);
}

#[test]
fn utf8_is_checked_across_fragments() {
    let cfg = config(false);
    // "€" (e2 82 ac) cut across three fragments arrives whole.
    let mut wire = frame(false, 1, b"a\xe2");
    wire.extend(frame(false, 0, b"\x82"));
    wire.extend(frame(true, 0, b"\xacb"));
    assert_eq!(messages(&events(cfg, &wire)), [text("a€b", true, true)]);
    // An invalid sequence split across fragments: 1007.
    let mut wire = frame(false, 1, b"ok\xed");
    wire.extend(frame(true, 0, b"\xa0\x80"));
    assert_eq!(failed_with(cfg, &wire), 1007);
    // A message that ends inside a character: 1007.
    let mut wire = frame(false, 1, b"ok");
    wire.extend(frame(true, 0, b"\xe2\x82"));
    assert_eq!(failed_with(cfg, &wire), 1007);
    // Binary is not checked.
    assert_eq!(events(cfg, &frame(true, 2, b"\xff")).len(), 1);
}

#[test]
fn close_codes_and_reasons_are_checked() {
    let cfg = config(false);
    let close = |code: u16, reason: &[u8]| frame(true, 8, &[&code.to_be_bytes()[..], reason].concat());
    let mut c = Codec::new(cfg);
    assert_eq!(drive(&mut c, &close(1000, b"bye"), 64), [Ev::Close(1000, "bye".into(), true)]);
    assert!(!c.reading());
    let mut buf = Vec::new();
    assert_eq!(c.take_owed(&mut buf), Some(Owed::CloseReply));
    assert_eq!(buf, [0x88, 2, 0x03, 0xe8], "the code is echoed");
    assert_eq!(c.closing(), &Closing::Done);
    // No code: 1005 reported, an empty close echoed.
    let mut c = Codec::new(cfg);
    assert_eq!(drive(&mut c, &frame(true, 8, b""), 64), [Ev::Close(1005, String::new(), true)]);
    assert_eq!(c.take_owed(&mut buf), Some(Owed::CloseReply));
    assert_eq!(buf, [0x88, 0]);
    assert_eq!(events(cfg, &close(3000, b"")), [Ev::Close(3000, String::new(), true)]);
    assert_eq!(events(cfg, &close(4999, b"")), [Ev::Close(4999, String::new(), true)]);
    // Codes a peer may not send, and a one-byte payload: 1002.
    for bad in [0, 999, 1004, 1005, 1006, 1012, 1016, 2999, 5000] {
        assert_eq!(failed_with(cfg, &close(bad, b"")), 1002, "{bad}");
    }
    assert_eq!(failed_with(cfg, &frame(true, 8, &[3])), 1002);
    // A reason that is not UTF-8: 1007.
    assert_eq!(failed_with(cfg, &close(1000, b"\xff")), 1007);
}

#[test]
fn messages_over_the_limit_fail_with_1009() {
    let cfg = Config { max_message: 10, ..config(true) };
    assert_eq!(events(cfg, &frame(true, 2, &[0; 10])).len(), 1);
    assert_eq!(failed_with(cfg, &frame(true, 2, &[0; 11])), 1009);
    let mut wire = frame(false, 2, &[0; 6]);
    wire.extend(frame(true, 0, &[0; 5]));
    assert_eq!(failed_with(cfg, &wire), 1009);
    // Compressed: what counts is the inflated size.
    assert_eq!(events(cfg, &compressed(2, &[0; 10], 1)).len(), 1);
    assert_eq!(failed_with(cfg, &compressed(2, &[0; 11], 1)), 1009);
}

#[test]
fn after_a_failure_data_is_dropped_until_the_peers_close() {
    let mut wire = frame(true, 0, b"stray");
    wire.extend(frame(true, 1, b"dropped"));
    wire.extend(frame(true, 9, b"ping"));
    let mut c = Codec::new(config(false));
    assert_eq!(drive(&mut c, &wire, 1), [Ev::Failed(1002)]);
    assert!(matches!(c.closing(), Closing::Send(_)));
    assert_eq!(c.take_owed(&mut Vec::new()), Some(Owed::Close));
    // The peer's answer ends the handshake.
    assert_eq!(drive(&mut c, &frame(true, 8, &1002u16.to_be_bytes()), 1), []);
    assert_eq!(c.closing(), &Closing::Done);
    assert!(!c.reading());
}

#[test]
fn after_our_close_messages_are_read_and_not_delivered() {
    let mut c = Codec::new(config(true));
    c.close(CloseCode::GOING_AWAY, "shutting down");
    let mut buf = Vec::new();
    assert_eq!(c.take_owed(&mut buf), Some(Owed::Close));
    assert_eq!(buf, [&[0x88, 15, 0x03, 0xe9][..], b"shutting down"].concat());
    assert_eq!(c.send_data(b"x", WriteKind::Text, true, &mut buf), Err(SendError::Misuse("the connection is closing")));
    let mut wire = frame(true, 1, b"late");
    wire.extend(compressed(2, &[9; 5000], 2));
    wire.extend(frame(true, 9, b""));
    wire.extend(frame(true, 8, b""));
    assert_eq!(drive(&mut c, &wire, 3), []);
    assert_eq!(c.closing(), &Closing::Done);
    assert_eq!(c.take_owed(&mut buf), None);
    assert!(c.is_idle());
}

#[test]
fn compressed_messages_round_trip() {
    let text: String = "warren ✓ ".repeat(3000);
    let noise: Vec<u8> = (0..40_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    let mut wire = compressed(1, text.as_bytes(), 3);
    wire.extend(compressed(2, &noise, 1));
    wire.extend(compressed(2, b"", 1));
    wire.extend(frame(true, 1, b"plain"));
    let evs = events(config(true), &wire);
    // A piece is at most the inflate buffer, or for text up to 3 bytes
    // more: the carried start of a character cut by the last piece.
    let longest = |binary: bool| {
        let lens = evs.iter().filter_map(|e| match e {
            Ev::Data { data, binary: b, .. } if *b == binary => Some(data.len()),
            _ => None,
        });
        lens.max().unwrap_or_default()
    };
    assert_eq!(longest(true), 1000);
    assert!((999..=1003).contains(&longest(false)), "{}", longest(false));
    assert_eq!(
        messages(&evs),
        [text_ev(text.as_bytes(), false), text_ev(&noise, true), text_ev(b"", true), text_ev(b"plain", false),]
    );
    // And what the codec sends inflates back to what was sent.
    let mut tx = Codec::new(config(true));
    let mut inf = Inflater::new(&deflate_cfg());
    let mut buf = Vec::new();
    let mut got = Vec::new();
    let parts: Vec<&[u8]> = noise.chunks(15_000).collect();
    for (i, p) in parts.iter().enumerate() {
        let kind = if i == 0 { WriteKind::Binary } else { WriteKind::Continuation };
        let fin = i + 1 == parts.len();
        let e = tx.send_data(p, kind, fin, &mut buf).expect("send");
        assert!(!e.data_follows);
        let f = &buf[e.start..];
        assert_eq!(f[0], u8::from(fin) << 7 | if i == 0 { 0x42 } else { 0 }, "rsv1 on the first frame only");
        let (len, at) = match f[1] {
            126 => (u16::from_be_bytes([f[2], f[3]]) as usize, 4),
            127 => (u64::from_be_bytes(f[2..10].try_into().expect("8 bytes")) as usize, 10),
            n => (n as usize, 2),
        };
        assert_eq!(f.len(), at + len);
        let mut z = f[at..].to_vec();
        if fin {
            z.extend_from_slice(&TAIL);
        }
        let mut out = vec![0; 70_000];
        let (used, n) = inf.inflate(&z, &mut out).expect("inflate");
        assert_eq!(used, z.len());
        got.extend_from_slice(&out[..n]);
    }
    assert_eq!(got, noise);
    assert!(tx.is_idle(), "the compressor went back to the pool");
}

fn text_ev(data: &[u8], binary: bool) -> Ev {
    Ev::Data { data: data.to_vec(), binary, first: true, last: true }
}

#[test]
fn pausing_mid_inflate_gives_the_same_bytes() {
    let msg: Vec<u8> = (0..60_000u32).map(|i| (i % 251) as u8 ^ (i >> 9) as u8).collect();
    let mut wire = compressed(2, &msg, 4);
    wire.extend(frame(true, 1, b"next"));
    let whole = events(config(true), &wire);
    assert!(whole.len() > 60, "chunks of at most 1000 bytes");
    // Pause after every event: the caller stops reading, more bytes
    // arrive meanwhile (16 at a time), then it reads on.
    let mut c = Codec::new(config(true));
    let (mut pending, mut got) = (Vec::new(), Vec::new());
    let mut feed = wire.chunks(16);
    loop {
        let r = c.read(&mut pending[..]);
        let (used, ev) = (r.used, r.event.map(own));
        pending.drain(..used);
        match ev {
            Some(e) => {
                got.push(e);
                // Paused: the pending output waits in the codec.
                c.settle();
                if let Some(more) = feed.next() {
                    pending.extend_from_slice(more);
                }
            }
            None if used > 0 => {}
            None => match feed.next() {
                Some(more) => pending.extend_from_slice(more),
                None => break,
            },
        }
    }
    assert_eq!(got, whole, "the same pieces, cut at the same places");
    assert!(c.is_idle());
}

#[test]
fn any_feed_boundaries_give_the_same_events() {
    let mut wire = frame(false, 1, "κό".as_bytes());
    wire.extend(frame(true, 9, b"p"));
    wire.extend(frame(true, 0, "σμε €".as_bytes()));
    wire.extend(compressed(1, "𝄞 music ".repeat(500).as_bytes(), 2));
    wire.extend(frame(true, 2, &[0xff; 300]));
    wire.extend(frame(true, 0xA, b"q"));
    wire.extend(frame(true, 8, &[0x03, 0xe8, b'o', b'k']));
    let once = messages(&events(config(true), &wire));
    assert_eq!(once.len(), 6, "{once:?}");
    for step in [1, 2, 3, 7, 100] {
        let evs = drive(&mut Codec::new(config(true)), &wire, step);
        assert_eq!(messages(&evs), once, "fed {step} bytes at a time");
    }
}

#[test]
fn an_idle_codec_holds_nothing() {
    let mut c = Codec::new(config(true));
    assert!(c.is_idle());
    let wire = frame(false, 1, b"part");
    let mut pending = wire[..3].to_vec();
    let r = c.read(&mut pending[..]);
    assert_eq!(r.used, 3);
    c.settle();
    assert!(!c.is_idle(), "a header in progress");
    pending = wire[3..].to_vec();
    pump(&mut c, &mut pending, &mut Vec::new());
    assert!(!c.is_idle(), "a message in progress");
    let mut rest = frame(true, 0, b"!");
    rest.extend(compressed(2, &[5; 3000], 2));
    drive(&mut c, &rest, 5);
    assert!(c.is_idle(), "nothing held between messages");
}

#[test]
fn sending_follows_the_message_and_close_rules() {
    let mut c = Codec::new(config(false));
    let mut buf = Vec::new();
    fn misuse<T>(what: &'static str) -> Result<T, SendError> {
        Err(SendError::Misuse(what))
    }
    assert_eq!(
        c.send_data(b"x", WriteKind::Continuation, true, &mut buf),
        misuse("a continuation with no message begun")
    );
    let e = c.send_data(b"ab", WriteKind::Text, false, &mut buf).expect("send");
    assert_eq!((e, &buf[..]), (Encoded { start: 0, data_follows: true }, &[0x01, 2][..]));
    assert_eq!(c.send_data(b"x", WriteKind::Binary, true, &mut buf), misuse("a new message before the last one ended"));
    c.send_data(b"c", WriteKind::Continuation, true, &mut buf).expect("send");
    assert_eq!(buf, [0x80, 1]);
    c.send_data(&[0; 300], WriteKind::Binary, true, &mut buf).expect("send");
    assert_eq!(buf, [0x82, 126, 1, 44]);
    assert_eq!(c.send_ping(&[0; 126], &mut buf), misuse("a ping payload is at most 125 bytes"));
    c.send_ping(b"hi", &mut buf).expect("ping");
    assert_eq!(buf, [0x89, 2, b'h', b'i']);
    assert_eq!(c.send_close(CloseCode::NO_STATUS, "", &mut buf), misuse("not a close code an endpoint may send"));
    let long = "é".repeat(100);
    c.send_close(CloseCode::NORMAL, &long, &mut buf).expect("close");
    assert_eq!(buf.len(), 2 + 2 + 122, "the reason is cut on a character boundary");
    assert_eq!(c.closing(), &Closing::Sent);
    assert_eq!(c.send_ping(b"", &mut buf), misuse("the connection is closing"));
    assert_eq!(c.send_close(CloseCode::NORMAL, "", &mut buf), misuse("the connection is closing"));
    assert_eq!(c.take_owed(&mut buf), None);
}

#[test]
fn our_close_drops_the_pong_owed() {
    let mut c = Codec::new(config(false));
    let mut wire = frame(true, 9, b"x");
    assert!(matches!(c.read(&mut wire[..]).event, Some(Event::Ping(b"x"))));
    assert!(c.pong_owed());
    c.close(CloseCode::NORMAL, "");
    assert_eq!(c.take_owed(&mut Vec::new()), Some(Owed::Close));
    assert!(!c.pong_owed(), "nothing follows our close");
}

#[test]
fn a_fragments_inflated_bytes_all_come_before_a_ping_after_it() {
    let noise: Vec<u8> = (0..40_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    let client = DeflateConfig { server_no_context_takeover: true, ..deflate_cfg() };
    let mut d = Deflater::new(&client);
    let mut z = Vec::new();
    d.compress(&noise, true, &mut z).expect("compress");
    let (z1, z2) = z.split_at(z.len() / 2);
    // What the first fragment alone inflates to.
    let mut out = vec![0; 50_000];
    let (_, n1) = Inflater::new(&deflate_cfg()).inflate(z1, &mut out).expect("inflate");
    assert!(n1 > 2000, "the first fragment carries data");
    let mut wire = raw(0x42, z1);
    wire.extend(frame(true, 9, b"p"));
    wire.extend(raw(0x80, z2));
    let evs = events(config(true), &wire);
    let at = evs.iter().position(|e| matches!(e, Ev::Ping(_))).expect("a ping");
    let before: usize = evs[..at].iter().map(|e| if let Ev::Data { data, .. } = e { data.len() } else { 0 }).sum();
    // Whole chunks only: the rest waits in the buffer for more.
    assert_eq!(before, n1 - n1 % 1000);
    assert_eq!(messages(&evs), [text_ev(&noise, true), Ev::Ping(b"p".to_vec())]);
}
