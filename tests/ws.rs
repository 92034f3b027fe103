//! WebSocket on the core, driven over real sockets by the raw client in
//! `support::ws` (spec WS-1..WS-7, PLUG-1/2; RFC 6455 and 7692).

mod support;

use std::io::{self, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::ws::{raw_upgrade, upgrade_request, WsClient, BINARY, CLOSE, CONTINUATION, PING, PONG, TEXT};
use support::{vhost, Server};
use warren::protocol::{Action, Cx, Event, Protocol};
use warren::ws::CloseCode;
use warren::{ContextInfo, VhostInfo};

/// One delivery as a protocol saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    data: Vec<u8>,
    first: bool,
    last: bool,
    remaining: u64,
    binary: bool,
    text_ok: bool,
}

/// Records every Receive; pieces of at most 10 bytes, messages of at
/// most 100.
#[derive(Default)]
struct Record(Arc<Mutex<Vec<Seen>>>);

impl Protocol for Record {
    type Session = ();
    fn name(&self) -> &str {
        "record"
    }
    fn rx_buffer_size(&self) -> usize {
        10
    }
    fn max_message_size(&self) -> u64 {
        100
    }
    fn callback(&mut self, _cx: &mut Cx<'_>, event: Event<'_, ()>) -> Action {
        if let Event::Receive(_, rx) = event {
            self.0.lock().expect("lock").push(Seen {
                data: rx.data().to_vec(),
                first: rx.is_first_fragment(),
                last: rx.is_final_fragment(),
                remaining: rx.remaining_packet_payload(),
                binary: rx.is_binary(),
                text_ok: rx.is_binary() || rx.text().is_some(),
            });
        }
        Action::Continue
    }
}

/// Pauses rx as soon as the connection opens, resumes it on a timer
/// [`Pause::HOLD`] later, and counts what it then receives.
#[derive(Default)]
struct Pause {
    received: Arc<Mutex<u64>>,
    paused: Vec<warren::protocol::WsiId>,
}

impl Pause {
    const HOLD: Duration = Duration::from_secs(4);
}

impl Protocol for Pause {
    type Session = ();
    fn name(&self) -> &str {
        "pause"
    }
    fn max_message_size(&self) -> u64 {
        1 << 30
    }
    fn callback(&mut self, cx: &mut Cx<'_>, event: Event<'_, ()>) -> Action {
        match event {
            Event::Established(wsi, _) => {
                cx.rx_flow_control(wsi.id, false);
                self.paused.push(wsi.id);
                cx.schedule(Self::HOLD);
            }
            Event::Timer => {
                for id in self.paused.drain(..) {
                    cx.rx_flow_control(id, true);
                }
            }
            Event::Receive(_, rx) => *self.received.lock().expect("lock") += rx.data().len() as u64,
            _ => {}
        }
        Action::Continue
    }
}

fn ws_vhost() -> VhostInfo {
    let mut v = vhost().default_protocol("echo");
    assert!(v.plugin("echo"));
    v
}

fn echo_server() -> Server {
    Server::start(ContextInfo::new().vhost(ws_vhost()))
}

fn status_of(head: &str) -> u16 {
    head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0)
}

/// WS-4: the 101, the accept key of RFC 6455 §1.3, and WS-2's choice of
/// subprotocol: the first the client names that the vhost has.
#[test]
fn upgrade_answers_101_and_picks_the_subprotocol() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let server = Server::start(ContextInfo::new().vhost(ws_vhost().protocol(Record(log))));
    let c = WsClient::connect(server.addr, "/", &[]).expect("upgrade");
    assert!(c.head.contains("\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"), "{}", c.head);
    assert!(!c.head.to_ascii_lowercase().contains("sec-websocket-protocol"), "{}", c.head);
    let c = WsClient::connect(server.addr, "/", &["Sec-WebSocket-Protocol: nope, record, echo"]).expect("upgrade");
    assert!(c.head.contains("\r\nSec-WebSocket-Protocol: record\r\n"), "{}", c.head);
    let c = WsClient::connect(server.addr, "/any/path?x=1", &["Sec-WebSocket-Protocol: echo"]).expect("upgrade");
    assert!(c.head.contains("\r\nSec-WebSocket-Protocol: echo\r\n"), "{}", c.head);
    assert_eq!(server.handle.stats().ws_upgrades, 3);
}

/// WS-1, WS-3: what is not a good upgrade gets the styled 400, or 426
/// with the version we speak.
#[test]
fn bad_upgrades_get_400_or_426() {
    let server = echo_server();
    let key = "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==";
    let cases: &[(String, u16)] = &[
        (upgrade_request("/", &[]).replace("Version: 13", "Version: 8"), 426),
        (upgrade_request("/", &[]).replace(&format!("{key}\r\n"), ""), 400),
        (upgrade_request("/", &[]).replace("dGhlIHNhbXBsZSBub25jZQ==", "c2hvcnQ="), 400),
        (upgrade_request("/", &[]).replacen("GET", "POST", 1), 400),
        (upgrade_request("/", &[]).replace("Connection: Upgrade", "Connection: keep-alive"), 400),
        (upgrade_request("/", &[]).replace("HTTP/1.1", "HTTP/1.0"), 400),
        (upgrade_request("/", &["Sec-WebSocket-Protocol: nope, nada"]), 400),
    ];
    for (req, want) in cases {
        let (_s, head, body) = raw_upgrade(server.addr, req).expect("answer");
        assert_eq!(status_of(&head), *want, "{req}\n{head}");
        if *want == 426 {
            assert!(head.contains("\r\nSec-WebSocket-Version: 13\r\n"), "{head}");
        }
        assert!(head.contains("text/html"), "styled page expected: {head}");
        let _ = body;
    }
    // A vhost without a default protocol refuses upgrades that name none.
    let bare = Server::start(ContextInfo::new().vhost({
        let mut v = vhost();
        v.plugin("echo");
        v
    }));
    let (_s, head, _) = raw_upgrade(bare.addr, &upgrade_request("/", &[])).expect("answer");
    assert_eq!(status_of(&head), 400, "{head}");
    assert!(WsClient::connect(bare.addr, "/", &["Sec-WebSocket-Protocol: echo"]).is_ok());
}

#[test]
fn echo_returns_text_binary_fragmented_and_large_messages() {
    let server = echo_server();
    let mut c = WsClient::connect(server.addr, "/", &[]).expect("upgrade");
    c.text("hello").expect("socket");
    assert_eq!(c.recv_message().expect("recv message"), (TEXT, b"hello".to_vec()));
    c.send(true, TEXT, b"").expect("socket");
    assert_eq!(c.recv_message().expect("recv message"), (TEXT, Vec::new()));
    c.send(false, TEXT, "κό".as_bytes()).expect("socket");
    c.send(false, CONTINUATION, "σ".as_bytes()).expect("socket");
    c.send(true, CONTINUATION, "με".as_bytes()).expect("socket");
    assert_eq!(c.recv_message().expect("recv message"), (TEXT, "κόσμε".as_bytes().to_vec()));
    let big: Vec<u8> = (0..(1u32 << 20)).map(|i| (i * 31 % 251) as u8).collect();
    c.send(true, BINARY, &big).expect("socket");
    let (op, got) = c.recv_message().expect("recv message");
    assert_eq!(op, BINARY);
    assert!(got == big, "1 MiB binary message came back different ({} bytes)", got.len());
}

/// WS-5: pieces of at most rx_buffer_size, first/final flags and the
/// remaining-payload count, across frames.
#[test]
fn fragments_arrive_as_they_come_with_the_fragment_api() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let server =
        Server::start(ContextInfo::new().vhost(vhost().default_protocol("record").protocol(Record(log.clone()))));
    let mut c = WsClient::connect(server.addr, "/", &[]).expect("upgrade");
    c.send(false, BINARY, b"0123456789abcde").expect("socket");
    c.send(false, CONTINUATION, b"").expect("socket");
    c.send(true, CONTINUATION, b"fghij").expect("socket");
    c.send(true, PING, b"sync").expect("socket");
    assert_eq!(c.recv().expect("recv frame").opcode, PONG);
    let seen = log.lock().expect("lock").clone();
    let summary: Vec<(usize, bool, bool, u64)> =
        seen.iter().map(|s| (s.data.len(), s.first, s.last, s.remaining)).collect();
    assert_eq!(summary, vec![(10, true, false, 5), (5, false, false, 0), (5, false, true, 0)]);
    let all: Vec<u8> = seen.iter().flat_map(|s| s.data.clone()).collect();
    assert_eq!(all, b"0123456789abcdefghij");
    assert!(seen.iter().all(|s| s.binary));
}

/// Text arrives as whole characters even when frames cut them; bad UTF-8
/// closes with 1007 at once (fail fast), before the message ends.
#[test]
fn text_pieces_are_whole_characters_and_bad_utf8_closes_1007() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let server =
        Server::start(ContextInfo::new().vhost(vhost().default_protocol("record").protocol(Record(log.clone()))));
    let mut c = WsClient::connect(server.addr, "/", &[]).expect("upgrade");
    let text = "€uro €€ and 𝄞 clef";
    let bytes = text.as_bytes();
    // Cut inside the first euro sign and inside the clef.
    c.send(false, TEXT, &bytes[..1]).expect("socket");
    c.send(false, CONTINUATION, &bytes[1..17]).expect("socket");
    c.send(true, CONTINUATION, &bytes[17..]).expect("socket");
    c.send(true, PING, b"").expect("socket");
    assert_eq!(c.recv().expect("recv frame").opcode, PONG);
    let seen = log.lock().expect("lock").clone();
    assert!(seen.iter().all(|s| s.text_ok && !s.binary), "{seen:?}");
    let all: Vec<u8> = seen.iter().flat_map(|s| s.data.clone()).collect();
    assert_eq!(all, bytes);
    // Invalid: the first piece is fine, the bad byte comes in a frame that
    // does not end the message; the close must not wait for the end.
    c.send(false, TEXT, b"ok so far ").expect("socket");
    c.send(false, CONTINUATION, b"\xc3\x28").expect("socket");
    let f = c.recv().expect("recv frame");
    assert_eq!(f.close_code(), Some(1007), "{f:?}");
    assert!(c.closed_within(Duration::from_secs(3)));
}

/// Builds the bytes a test sends.
type MakeFrame = Box<dyn Fn(&mut WsClient) -> Vec<u8>>;

/// WS-5: protocol errors close with 1002, a too-big message with 1009.
#[test]
fn protocol_errors_close_with_1002_and_too_big_with_1009() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let server = Server::start(ContextInfo::new().vhost(ws_vhost().protocol(Record(log))));
    let unmasked = vec![0x81, 0x02, b'h', b'i'];
    let cases: Vec<(MakeFrame, u16, &str)> = vec![
        (Box::new(move |_| unmasked.clone()), 1002, "unmasked frame"),
        (Box::new(|c| c.frame_bytes(true, false, 0x3, b"x")), 1002, "reserved opcode"),
        (Box::new(|c| c.frame_bytes(true, false, CONTINUATION, b"x")), 1002, "continuation first"),
        (Box::new(|c| c.frame_bytes(true, true, TEXT, b"x")), 1002, "RSV1 without deflate"),
        (Box::new(|c| c.frame_bytes(false, false, PING, b"x")), 1002, "fragmented ping"),
        (Box::new(|c| c.frame_bytes(true, false, PING, &[0; 126])), 1002, "long ping"),
        (
            Box::new(|c| {
                let mut v = c.frame_bytes(false, false, TEXT, b"a");
                v.extend(c.frame_bytes(true, false, TEXT, b"b"));
                v
            }),
            1002,
            "new message inside a fragmented one",
        ),
        (Box::new(|c| c.frame_bytes(true, false, CLOSE, &[0x03])), 1002, "one-byte close"),
        (Box::new(|c| c.frame_bytes(true, false, CLOSE, &1005u16.to_be_bytes())), 1002, "close code 1005 on the wire"),
        (
            Box::new(|c| {
                let mut p = 1000u16.to_be_bytes().to_vec();
                p.extend_from_slice(b"\xff");
                c.frame_bytes(true, false, CLOSE, &p)
            }),
            1007,
            "close reason not UTF-8",
        ),
    ];
    for (make, want, what) in &cases {
        let mut c = WsClient::connect(server.addr, "/", &[]).expect("upgrade");
        let bytes = make(&mut c);
        c.send_raw(&bytes).expect("socket");
        // Skip what the echo sent back before the error.
        let f = loop {
            let f = c.recv().unwrap_or_else(|e| panic!("{what}: no close frame: {e}"));
            if f.opcode == CLOSE {
                break f;
            }
        };
        assert_eq!(f.close_code(), Some(*want), "{what}: {f:?}");
        // Our answer to their close ends it at once, not after the close
        // timeout (5 s).
        std::thread::sleep(Duration::from_millis(50));
        let _ = c.send(true, CLOSE, &f.payload);
        assert!(c.closed_within(Duration::from_secs(2)), "{what}: TCP left open after the close handshake");
    }
    let mut c = WsClient::connect(server.addr, "/", &["Sec-WebSocket-Protocol: record"]).expect("upgrade");
    c.send(true, BINARY, &[7; 101]).expect("socket");
    assert_eq!(c.recv().expect("recv frame").close_code(), Some(1009));
}

/// RFC 6455 §5.5.1: the server answers a close with the same code and
/// closes the TCP connection; pings get pongs with their payload.
#[test]
fn close_handshake_and_ping() {
    let server = echo_server();
    let mut c = WsClient::connect(server.addr, "/", &[]).expect("upgrade");
    c.send(true, PING, b"are you there").expect("socket");
    let f = c.recv().expect("recv frame");
    assert_eq!((f.opcode, f.payload.as_slice()), (PONG, &b"are you there"[..]));
    let mut payload = 4000u16.to_be_bytes().to_vec();
    payload.extend_from_slice("bye ✓".as_bytes());
    c.send(true, CLOSE, &payload).expect("socket");
    let f = c.recv().expect("recv frame");
    assert_eq!(f.close_code(), Some(4000));
    assert!(c.closed_within(Duration::from_secs(2)));
    // A close with no payload is answered with none.
    let mut c = WsClient::connect(server.addr, "/", &[]).expect("upgrade");
    c.send(true, CLOSE, b"").expect("socket");
    let f = c.recv().expect("recv frame");
    assert_eq!((f.opcode, f.payload.len()), (CLOSE, 0));
}

/// rx_flow_control: while the protocol has reading stopped, the server
/// reads nothing, so the sender's socket fills and its writes block (TCP
/// pushback). When it resumes, everything arrives.
#[test]
fn rx_flow_control_is_tcp_pushback() {
    let received = Arc::new(Mutex::new(0u64));
    let proto = Pause { received: received.clone(), paused: Vec::new() };
    let server = Server::start(ContextInfo::new().vhost(vhost().default_protocol("pause").protocol(proto)));
    let mut c = WsClient::connect(server.addr, "/", &[]).expect("upgrade");
    let total: usize = 64 << 20;
    let frame = c.frame_bytes(true, false, BINARY, &vec![0x5a; total]);
    c.stream.set_nonblocking(true).expect("socket");
    let started = Instant::now();
    let mut sent = 0;
    // Write until the kernel stops taking bytes.
    let mut blocked_for = Duration::ZERO;
    while sent < frame.len() && blocked_for < Duration::from_millis(300) {
        match c.stream.write(&frame[sent..]) {
            Ok(n) => {
                sent += n;
                blocked_for = Duration::ZERO;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(20));
                blocked_for += Duration::from_millis(20);
            }
            Err(e) => panic!("write: {e}"),
        }
    }
    assert!(started.elapsed() < Pause::HOLD, "the test was too slow to observe the pause");
    assert!(sent < frame.len() / 4, "the sender was not pushed back: {sent} of {} bytes taken", frame.len());
    assert_eq!(*received.lock().expect("lock"), 0, "data delivered while paused");
    // After the protocol resumes, the rest goes through.
    c.stream.set_nonblocking(false).expect("socket");
    c.stream.write_all(&frame[sent..]).expect("socket");
    let deadline = Instant::now() + Duration::from_secs(20);
    while *received.lock().expect("lock") < total as u64 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(*received.lock().expect("lock"), total as u64);
}

/// WS-6, issue 10 item 10: liveness is on by default, and a silent peer
/// gets a ping and is then hung up on, while one that answers stays.
/// Short values through the same setting; nothing here races a timer: the
/// answering peer answers at once from its own thread, and each wait is
/// for an event, bounded only to fail instead of hanging.
#[test]
fn keepalive_pings_and_hangs_up_on_a_dead_peer() {
    assert_eq!(vhost().ws_keepalive_settings(), Some((warren::DEFAULT_WS_PING, warren::DEFAULT_WS_HANGUP)));
    let v = ws_vhost().ws_keepalive(Duration::from_millis(200), Duration::from_secs(3));
    let server = Server::start(ContextInfo::new().vhost(v));
    let mut dead = WsClient::connect(server.addr, "/", &[]).expect("upgrade");
    let mut alive = WsClient::connect(server.addr, "/", &[]).expect("upgrade");
    // The answering peer: pongs every ping at once, until it has answered
    // pings well past the silent one's hang-up.
    let dead_gone = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let gone = dead_gone.clone();
    let answering = std::thread::spawn(move || -> Result<WsClient, String> {
        alive.stream.set_read_timeout(Some(Duration::from_secs(30))).map_err(|e| e.to_string())?;
        let mut after = 0;
        while after < 3 {
            let f = alive.recv().map_err(|e| format!("answering peer lost: {e}"))?;
            if f.opcode != PING {
                return Err(format!("unexpected {f:?}"));
            }
            alive.send(true, PONG, &f.payload).map_err(|e| e.to_string())?;
            if gone.load(std::sync::atomic::Ordering::SeqCst) {
                after += 1;
            }
        }
        Ok(alive)
    });
    let ping = dead.recv().expect("recv frame");
    assert_eq!(ping.opcode, PING);
    assert!(dead.closed_within(Duration::from_secs(30)), "the silent peer was not hung up on");
    dead_gone.store(true, std::sync::atomic::Ordering::SeqCst);
    let mut alive = answering.join().expect("thread").expect("the answering peer stayed");
    alive.text("still here").expect("socket");
    loop {
        let f = alive.recv().expect("recv frame");
        match f.opcode {
            PING => alive.send(true, PONG, &f.payload).expect("socket"),
            TEXT => {
                assert_eq!(f.payload, b"still here");
                break;
            }
            _ => panic!("unexpected {f:?}"),
        }
    }
}

/// RFC 7692: permessage-deflate is agreed, compressed messages are
/// inflated for the protocol and the echo comes back compressed.
#[test]
fn permessage_deflate_round_trips() {
    use miniz_oxide::deflate::core::{create_comp_flags_from_zip_params, CompressorOxide};
    use miniz_oxide::MZFlush;
    let server = echo_server();
    let mut c = WsClient::connect(
        server.addr,
        "/",
        &["Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits, permessage-deflate"],
    )
    .expect("upgrade");
    // RFC 7692 §7.1.1: context takeover refused both ways, unasked.
    assert!(
        c.head.contains(
            "\r\nSec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; client_no_context_takeover\r\n"
        ),
        "{}",
        c.head
    );
    let text = "warren serves zip files untouched; ".repeat(400);
    let mut comp = CompressorOxide::new(create_comp_flags_from_zip_params(6, -15, 0));
    let mut wire = vec![0u8; text.len() + 1024];
    let r = miniz_oxide::deflate::stream::deflate(&mut comp, text.as_bytes(), &mut wire, MZFlush::Sync);
    wire.truncate(r.bytes_written);
    assert!(wire.ends_with(&[0, 0, 0xff, 0xff]));
    wire.truncate(wire.len() - 4);
    assert!(wire.len() < text.len() / 10);
    // Sent in two frames, RSV1 on the first only.
    let (a, b) = wire.split_at(wire.len() / 2);
    let mut bytes = c.frame_bytes(false, true, TEXT, a);
    bytes.extend(c.frame_bytes(true, false, CONTINUATION, b));
    c.send_raw(&bytes).expect("socket");
    let mut payload = Vec::new();
    let first = c.recv().expect("recv frame");
    assert!(first.rsv1 && first.opcode == TEXT, "echo not compressed: {first:?}");
    let mut f = first;
    loop {
        payload.extend_from_slice(&f.payload);
        if f.fin {
            break;
        }
        f = c.recv().expect("recv frame");
    }
    // server_no_context_takeover: each message inflates on its own.
    let inflate = move |mut payload: Vec<u8>| -> Vec<u8> {
        let mut inflater = miniz_oxide::inflate::stream::InflateState::new_boxed(miniz_oxide::DataFormat::Raw);
        payload.extend_from_slice(&[0, 0, 0xff, 0xff]);
        let mut out = vec![0u8; 1 << 20];
        let r = miniz_oxide::inflate::stream::inflate(&mut inflater, &payload, &mut out, MZFlush::Sync);
        assert!(r.status.is_ok(), "{:?}", r.status);
        assert_eq!(r.bytes_consumed, payload.len());
        out.truncate(r.bytes_written);
        out
    };
    assert_eq!(inflate(payload), text.as_bytes());
    // Messages that fill the inflate buffer exactly, or many times over:
    // the echo pauses rx after each piece, and inflation must pick up
    // where it stopped. client_no_context_takeover: the client starts
    // each message afresh.
    for len in [16384usize, 100_000] {
        comp.reset();
        let msg: Vec<u8> = (0..len).map(|i| b"abcdefghij"[(i * 7 + i / 13) % 10]).collect();
        let mut wire = vec![0u8; len + 1024];
        let r = miniz_oxide::deflate::stream::deflate(&mut comp, &msg, &mut wire, MZFlush::Sync);
        wire.truncate(r.bytes_written - 4);
        let bytes = c.frame_bytes(true, true, BINARY, &wire);
        c.send_raw(&bytes).expect("socket");
        let mut payload = Vec::new();
        loop {
            let f = c.recv().expect("recv frame");
            payload.extend_from_slice(&f.payload);
            if f.fin {
                break;
            }
        }
        assert!(inflate(payload) == msg, "{len}-byte compressed message came back different");
    }
    // A client may end a message's deflate stream (BFINAL, RFC 7692
    // §7.2.3.3) and then send no tail; and a compressed message may be
    // empty. Neither may upset the next message.
    for round in 0..2 {
        let msg = format!("final block, round {round}; ").repeat(20);
        let mut fresh = CompressorOxide::new(create_comp_flags_from_zip_params(6, -15, 0));
        let mut wire = vec![0u8; msg.len() + 64];
        let r = miniz_oxide::deflate::stream::deflate(&mut fresh, msg.as_bytes(), &mut wire, MZFlush::Finish);
        wire.truncate(r.bytes_written);
        let bytes = c.frame_bytes(true, true, TEXT, &wire);
        c.send_raw(&bytes).expect("socket");
        let mut payload = Vec::new();
        loop {
            let f = c.recv().expect("recv frame");
            payload.extend_from_slice(&f.payload);
            if f.fin {
                break;
            }
        }
        assert_eq!(inflate(payload), msg.as_bytes(), "round {round}");
        let empty = c.frame_bytes(true, true, BINARY, b"");
        c.send_raw(&empty).expect("socket");
        let f = c.recv().expect("recv frame");
        assert!(f.rsv1 && f.fin && f.opcode == BINARY, "{f:?}");
        assert_eq!(inflate(f.payload), b"");
    }
    // Uncompressed messages are still fine (the echo comes back compressed).
    c.text("plain").expect("socket");
    let f = c.recv().expect("recv frame");
    assert!(f.rsv1 && f.fin && f.opcode == TEXT, "{f:?}");
    assert_eq!(inflate(f.payload), b"plain");
    // A compressed message with garbage closes with 1007.
    let bytes = c.frame_bytes(true, true, BINARY, &[0xff; 20]);
    c.send_raw(&bytes).expect("socket");
    assert_eq!(c.recv().expect("recv frame").close_code(), Some(1007));
}

/// A protocol's `Action::Close` starts the close handshake (WS-7).
#[test]
fn dumb_increment_counts_resets_and_says_seeya() {
    let mut v = vhost().default_protocol("dumb-increment-protocol");
    assert!(v.plugin("dumb-increment-protocol"));
    let server = Server::start(ContextInfo::new().vhost(v));
    let mut c = WsClient::connect(server.addr, "/", &[]).expect("upgrade");
    let mut numbers = Vec::new();
    for _ in 0..5 {
        let (op, n) = c.recv_message().expect("recv message");
        assert_eq!(op, TEXT);
        numbers.push(String::from_utf8(n).expect("socket").parse::<u64>().expect("socket"));
    }
    assert_eq!(numbers, vec![0, 1, 2, 3, 4]);
    c.text("reset\n").expect("socket");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (_, n) = c.recv_message().expect("recv message");
        if n == b"0" {
            break;
        }
        assert!(Instant::now() < deadline, "counter never reset");
    }
    c.text("closeme\n").expect("socket");
    let close = loop {
        let f = c.recv().expect("recv frame");
        if f.opcode == CLOSE {
            break f;
        }
    };
    assert_eq!(close.close_code(), Some(CloseCode::GOING_AWAY.0));
    assert_eq!(&close.payload[2..], b"seeya");
}

/// PLUG-2 with one client that never reads and eleven that do (one of
/// them sending): the ring fills, every member's rx pauses, the stuck one
/// is closed after its grace period, and the others get every message,
/// in order, while the server's memory stays bounded.
#[test]
fn mirror_survives_a_client_that_never_reads() {
    const MESSAGES: u32 = 6000;
    const SIZE: usize = 4000;
    let (warren, port) = support::start_warren(&[]);
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let proto = "Sec-WebSocket-Protocol: lws-mirror-protocol";
    let stuck = WsClient::connect(addr, "/?mirror=t", &[proto]).expect("upgrade");
    let readers: Vec<_> = (0..11)
        .map(|i| {
            let mut c = WsClient::connect(addr, "/?mirror=t", &[proto]).expect("upgrade");
            c.stream.set_read_timeout(Some(Duration::from_secs(20))).expect("socket");
            // A member once its own hello comes back (with several loops
            // the 101 may arrive before its loop has made it one).
            let hello = format!("hello {i}");
            c.send(true, TEXT, hello.as_bytes()).expect("hello");
            while c.recv_message().expect("its own hello").1 != hello.as_bytes() {}
            std::thread::spawn(move || -> Result<u32, String> {
                let mut next = 0u32;
                loop {
                    let (op, m) = c.recv_message().map_err(|e| format!("after {next} messages: {e}"))?;
                    if m.starts_with(b"hello ") {
                        // A later reader's.
                        continue;
                    }
                    if op != TEXT || m.len() != SIZE {
                        return Err(format!("after {next}: unexpected op {op} len {}", m.len()));
                    }
                    let n: u32 = String::from_utf8_lossy(&m[..10]).trim().parse().map_err(|e| format!("{e}"))?;
                    if n != next {
                        return Err(format!("expected message {next}, got {n}"));
                    }
                    next += 1;
                    if next == MESSAGES {
                        return Ok(next);
                    }
                }
            })
        })
        .collect();
    let mut sender = WsClient::connect(addr, "/?mirror=t", &[proto]).expect("upgrade");
    // A server that stops reading for good fails the test, not hangs it.
    sender.stream.set_write_timeout(Some(Duration::from_secs(30))).expect("timeout");
    let mut drain = sender.try_clone_reader();
    let drainer = std::thread::spawn(move || while drain.recv().is_ok() {});
    let started = Instant::now();
    for i in 0..MESSAGES {
        let mut m = format!("{i:>10}").into_bytes();
        m.resize(SIZE, b'.');
        sender.send(true, TEXT, &m).expect("send");
    }
    for r in readers {
        assert_eq!(r.join().expect("reader thread"), Ok(MESSAGES));
    }
    let took = started.elapsed();
    let peak = warren.peak_rss_kib();
    assert!(peak < 48 * 1024, "warren peaked at {peak} KiB of RSS");
    let _ = sender.stream.shutdown(std::net::Shutdown::Both);
    drop(stuck);
    let _ = drainer.join();
    eprintln!("mirror: {MESSAGES} messages of {SIZE} B to 12 members in {took:?}; warren peak RSS {peak} KiB");
}

/// Random bytes after a good handshake, with and without deflate, then
/// the client's end of TCP: every connection is closed and the server goes
/// on echoing (no panic, no stuck connection).
#[test]
fn random_bytes_after_the_upgrade_close_the_connection_not_the_server() {
    let server = echo_server();
    let mut seed = 0x9e37_79b9_u32;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        seed
    };
    for i in 0..150 {
        let ext = if i % 2 == 0 { vec!["Sec-WebSocket-Extensions: permessage-deflate"] } else { Vec::new() };
        let mut c = WsClient::connect(server.addr, "/", &ext).expect("upgrade");
        let len = (next() % 3000) as usize + 1;
        let mut junk: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        if i % 3 == 0 {
            // A valid masked header first, then garbage as its payload
            // and beyond.
            let mut framed =
                c.frame_bytes(i % 5 != 0, i % 2 == 0, [TEXT, BINARY, CONTINUATION][i % 3], &junk[..len / 2]);
            framed.extend_from_slice(&junk[len / 2..]);
            junk = framed;
        }
        let _ = c.send_raw(&junk);
        let _ = c.stream.shutdown(std::net::Shutdown::Write);
        assert!(c.closed_within(Duration::from_secs(8)), "connection {i} left open");
    }
    let mut c = WsClient::connect(server.addr, "/", &[]).expect("upgrade after the junk");
    c.text("still echoing").expect("send");
    assert_eq!(c.recv_message().expect("echo"), (TEXT, b"still echoing".to_vec()));
    assert_eq!(server.handle.stats().ws_open, 1);
}

/// Compresses one whole message as a client under
/// client_no_context_takeover would (fresh context, tail stripped).
fn deflate_message(data: &[u8]) -> Vec<u8> {
    use miniz_oxide::deflate::core::{create_comp_flags_from_zip_params, CompressorOxide};
    let mut comp = CompressorOxide::new(create_comp_flags_from_zip_params(6, -15, 0));
    let mut wire = vec![0u8; data.len() + 64];
    let r = miniz_oxide::deflate::stream::deflate(&mut comp, data, &mut wire, miniz_oxide::MZFlush::Sync);
    wire.truncate(r.bytes_written - 4);
    wire
}

/// Inflates one whole message on its own (server_no_context_takeover).
fn inflate_message(payload: &[u8]) -> Vec<u8> {
    let mut state = miniz_oxide::inflate::stream::InflateState::new_boxed(miniz_oxide::DataFormat::Raw);
    let mut input = payload.to_vec();
    input.extend_from_slice(&[0, 0, 0xff, 0xff]);
    let mut out = vec![0u8; 1 << 16];
    let r = miniz_oxide::inflate::stream::inflate(&mut state, &input, &mut out, miniz_oxide::MZFlush::Sync);
    assert!(r.status.is_ok(), "{:?}", r.status);
    out.truncate(r.bytes_written);
    out
}

/// The process's current resident set (VmRSS), in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// Issue 11 item 2: once deflate is agreed every message goes out
/// compressed, however short (lws 4.1 clients stall on a plain one).
#[test]
fn small_messages_are_compressed_once_deflate_is_agreed() {
    let server = echo_server();
    let mut c =
        WsClient::connect(server.addr, "/", &["Sec-WebSocket-Extensions: permessage-deflate"]).expect("upgrade");
    for msg in [&b"hi"[..], b"", b"x", b"0123456789012345678901234567890"] {
        let bytes = c.frame_bytes(true, true, TEXT, &deflate_message(msg));
        c.send_raw(&bytes).expect("socket");
        let f = c.recv().expect("echo");
        assert!(f.rsv1 && f.fin && f.opcode == TEXT, "{} bytes echoed plain: {f:?}", msg.len());
        assert_eq!(inflate_message(&f.payload), msg);
    }
}

/// Issue 10 item 12: a permessage-deflate connection that exchanged a
/// message keeps no compressor or inflater (each used to keep about
/// 270 KiB): 300 of them cost the server far less than 64 KiB each.
#[test]
fn deflate_connections_keep_no_compression_state_between_messages() {
    const CONNS: usize = 300;
    support::raise_fd_limit();
    let (warren, port) = support::start_warren(&[]);
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let msg = b"a 47-byte message, compressed by the client....";
    let warm = |n: usize| -> Vec<WsClient> {
        (0..n)
            .map(|_| {
                let mut c =
                    WsClient::connect(addr, "/", &["Sec-WebSocket-Extensions: permessage-deflate"]).expect("upgrade");
                assert!(c.head.contains("permessage-deflate"), "{}", c.head);
                let bytes = c.frame_bytes(true, true, TEXT, &deflate_message(msg));
                c.send_raw(&bytes).expect("socket");
                let f = c.recv().expect("echo");
                assert!(f.rsv1, "echo not compressed");
                assert_eq!(inflate_message(&f.payload), msg);
                c
            })
            .collect()
    };
    // One round first, so that pools and buffers that are made once per
    // loop are not counted against the connections.
    drop(warm(4));
    let before = rss_kib(warren.0.id());
    let conns = warm(CONNS);
    let after = rss_kib(warren.0.id());
    let per = after.saturating_sub(before) / CONNS as u64;
    eprintln!("{CONNS} deflate connections: RSS {before} -> {after} KiB, {per} KiB each");
    assert!(per < 64, "{per} KiB per deflate connection ({before} -> {after} KiB)");
    drop(conns);
}
