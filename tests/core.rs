//! The loop itself: timeouts, limits, many connections, protocols with
//! bodies, flow control and cross-thread wake-ups (spec CORE-*, MNT-5/6,
//! HTTP-5/6/7/11).

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::*;
use warren::protocol::{Cx, Event, WsiId};
use warren::{Action, ContextInfo, Limits, Mount, Protocol};

fn short_limits() -> Limits {
    Limits { header_timeout: Duration::from_millis(800), ..Limits::default() }
}

#[test]
fn slow_header_client_is_dropped_while_others_are_served() {
    // HTTP-5 [REC]: an absolute header deadline; trickling does not extend it.
    let (_t, root) = site();
    let server = Server::start(ContextInfo::new().limits(short_limits()).vhost(vhost().mount(files_mount("/", &root))));
    let started = Instant::now();
    let mut slow = server.connect();
    slow.write_all(b"GET /index.html HTTP/1.1\r\nHost: x\r\n").expect("write");
    // Trickle a byte now and then, as slowloris does.
    let mut dropped = false;
    for _ in 0..30 {
        std::thread::sleep(Duration::from_millis(100));
        // Meanwhile another client is served at once.
        let r = get(&server, "/index.html");
        assert_eq!(r.status, 200);
        if slow.write_all(b"X").is_err() {
            dropped = true;
            break;
        }
        let mut rd = Reader::new(slow.try_clone().expect("clone"));
        if rd.closed_within(Duration::from_millis(1)) {
            dropped = true;
            break;
        }
    }
    let elapsed = started.elapsed();
    assert!(dropped, "slow client still connected after {elapsed:?}");
    assert!(elapsed >= Duration::from_millis(700), "dropped too early: {elapsed:?}");
}

#[test]
fn silent_client_is_dropped() {
    let (_t, root) = site();
    let server = Server::start(ContextInfo::new().limits(short_limits()).vhost(vhost().mount(files_mount("/", &root))));
    let mut rd = Reader::new(server.connect());
    assert!(rd.closed_within(Duration::from_secs(5)));
}

#[test]
fn idle_keep_alive_times_out() {
    // HTTP-11
    let (_t, root) = site();
    let server = Server::start(
        ContextInfo::new().vhost(vhost().mount(files_mount("/", &root)).keepalive_timeout(Duration::from_millis(300))),
    );
    let mut s = server.connect();
    s.write_all(b"GET /index.html HTTP/1.1\r\nHost: x\r\n\r\n").expect("write");
    let mut rd = Reader::new(s);
    assert_eq!(rd.response(false).expect("response").status, 200);
    let t = Instant::now();
    assert!(rd.closed_within(Duration::from_secs(5)));
    assert!(t.elapsed() >= Duration::from_millis(200), "{:?}", t.elapsed());
}

#[test]
fn a_thousand_keep_alive_connections() {
    raise_fd_limit();
    let (_t, root) = site();
    let server = Server::start(
        ContextInfo::new().vhost(vhost().mount(files_mount("/", &root)).keepalive_timeout(Duration::from_secs(60))),
    );
    let mut conns: Vec<TcpStream> = (0..1000).map(|_| server.connect()).collect();
    for round in 0..2 {
        for s in conns.iter_mut() {
            s.write_all(b"GET /sub/index.html HTTP/1.1\r\nHost: x\r\n\r\n").expect("write");
        }
        for (i, s) in conns.iter_mut().enumerate() {
            let mut rd = Reader::new(s.try_clone().expect("clone"));
            let r = rd.response(false).unwrap_or_else(|e| panic!("round {round} conn {i}: {e}"));
            assert_eq!(r.text(), "<p>sub index</p>\n");
        }
    }
    let stats = server.handle.stats();
    assert_eq!(stats.open, 1000);
    assert_eq!(stats.requests, 2000);
    assert_eq!(stats.refused, 0);
}

#[test]
fn connections_past_the_limit_are_refused_and_counted() {
    // CORE-7
    let (_t, root) = site();
    let limits = Limits { max_connections: Some(5), ..Limits::default() };
    let server = Server::start(ContextInfo::new().limits(limits).vhost(vhost().mount(files_mount("/", &root))));
    let mut held: Vec<Reader> = Vec::new();
    for _ in 0..5 {
        let mut s = server.connect();
        s.write_all(b"GET /index.html HTTP/1.1\r\nHost: x\r\n\r\n").expect("write");
        let mut rd = Reader::new(s);
        assert_eq!(rd.response(false).expect("response").status, 200);
        held.push(rd);
    }
    let mut extra = Reader::new(server.connect());
    let r = extra.response(false).expect("503");
    assert_eq!(r.status, 503);
    assert!(extra.closed_within(Duration::from_secs(5)));
    assert_eq!(server.handle.stats().refused, 1);
    // Freeing a slot lets the next one in.
    drop(held.pop());
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut s = server.connect();
        s.write_all(b"GET /index.html HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").expect("write");
        if Reader::new(s).response(false).map(|r| r.status).ok() == Some(200) {
            break;
        }
        assert!(Instant::now() < deadline, "slot never freed");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// What the recording protocol saw, shared with the test.
#[derive(Default, Debug)]
struct Seen {
    events: Vec<String>,
    body: Vec<u8>,
    paused: Option<WsiId>,
    cancels: usize,
}

/// Answers `POST`s with the length and a checksum of the body; records
/// its lifecycle. `pause` stops rx when a request arrives, until
/// `cancel_service` is called from another thread.
struct Recorder {
    seen: Arc<Mutex<Seen>>,
    pause: bool,
}

#[derive(Default)]
struct Session {
    len: usize,
    sum: u64,
    complete: bool,
    path: String,
}

impl Protocol for Recorder {
    type Session = Session;

    fn name(&self) -> &str {
        "recorder"
    }

    fn callback(&mut self, cx: &mut Cx<'_>, event: Event<'_, Session>) -> Action {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        match event {
            Event::HttpBindProtocol(_) => seen.events.push("bind".into()),
            Event::HttpDropProtocol(_) => seen.events.push("drop".into()),
            Event::ClosedHttp(_) => seen.events.push("closed".into()),
            Event::Http(wsi, req) => {
                seen.events.push(format!("http {} {}", req.method_str(), req.path()));
                *wsi.session = Session { path: req.path().to_string(), ..Session::default() };
                if self.pause {
                    cx.rx_flow_control(wsi.id, false);
                    seen.paused = Some(wsi.id);
                }
                if req.framing() == warren::http::request::Framing::None {
                    wsi.session.complete = true;
                    cx.callback_on_writable(wsi.id);
                }
            }
            Event::HttpBody(wsi, data) => {
                wsi.session.len += data.len();
                for &b in data {
                    wsi.session.sum = wsi.session.sum.wrapping_mul(31).wrapping_add(u64::from(b));
                }
                if seen.body.len() < 4096 {
                    seen.body.extend_from_slice(data);
                }
            }
            Event::HttpBodyCompletion(wsi) => {
                seen.events.push("complete".into());
                wsi.session.complete = true;
                cx.callback_on_writable(wsi.id);
            }
            Event::HttpWriteable(wsi, writer) if wsi.session.complete => {
                let text = format!("{} {} {}", wsi.session.path, wsi.session.len, wsi.session.sum);
                if writer.respond(200, "text/plain", text.as_bytes()).is_err() {
                    return Action::Close;
                }
            }
            Event::EventWaitCancelled => {
                seen.cancels += 1;
                if let Some(id) = seen.paused.take() {
                    cx.rx_flow_control(id, true);
                }
            }
            _ => {}
        }
        Action::Continue
    }
}

fn checksum(data: &[u8]) -> u64 {
    data.iter().fold(0u64, |s, &b| s.wrapping_mul(31).wrapping_add(u64::from(b)))
}

fn recorder_server(root: &std::path::Path, pause: bool) -> (Server, Arc<Mutex<Seen>>) {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let server = Server::start(
        ContextInfo::new().vhost(
            vhost()
                .mount(files_mount("/", root))
                .mount(Mount::callback("/rec", "recorder"))
                .protocol(Recorder { seen: seen.clone(), pause }),
        ),
    );
    (server, seen)
}

#[test]
fn protocol_gets_bodies_by_length_and_chunked() {
    // MNT-5, HTTP-6 [REC]: chunked bodies arrive decoded.
    let (_t, root) = site();
    let (server, seen) = recorder_server(&root, false);
    let body = pattern(300_000);
    let mut s = server.connect();
    write!(s, "POST /rec/len HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n", body.len()).expect("write");
    s.write_all(&body).expect("body");
    // Chunked, in odd pieces, on the same connection.
    s.write_all(b"POST /rec/chunked HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n").expect("write");
    for piece in body.chunks(7777) {
        write!(s, "{:x};ext=1\r\n", piece.len()).expect("size");
        s.write_all(piece).expect("data");
        s.write_all(b"\r\n").expect("crlf");
    }
    s.write_all(b"0\r\nTrailer: x\r\n\r\n").expect("last");
    let mut rd = Reader::new(s);
    let want_len = format!("/rec/len {} {}", body.len(), checksum(&body));
    assert_eq!(rd.response(false).expect("first").text(), want_len);
    let want_chunked = format!("/rec/chunked {} {}", body.len(), checksum(&body));
    assert_eq!(rd.response(false).expect("second").text(), want_chunked);
    // Leaving the area drops the binding (MNT-6); closing then says nothing more.
    rd.stream.write_all(b"GET /index.html HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").expect("write");
    assert_eq!(rd.response(false).expect("third").status, 200);
    assert!(rd.closed_within(Duration::from_secs(5)));
    let events = seen.lock().map(|s| s.events.clone()).unwrap_or_default();
    assert_eq!(
        events,
        ["bind", "http POST /rec/len", "complete", "http POST /rec/chunked", "complete", "drop"],
        "one binding for both requests in the area"
    );
}

#[test]
fn curl_posts_reach_the_protocol() {
    // Expect: 100-continue (curl sends it for large bodies) and chunked uploads.
    let (t, root) = site();
    let (server, seen) = recorder_server(&root, false);
    let file = t.path().join("upload.bin");
    let body = pattern(2_000_000);
    std::fs::write(&file, &body).expect("write");
    let at = format!("@{}", file.display());
    let (ok, out) = curl(&["--data-binary", &at, &server.url("/rec/up")]);
    assert!(ok);
    assert_eq!(String::from_utf8_lossy(&out), format!("/rec/up {} {}", body.len(), checksum(&body)));
    let (ok, out) = curl(&["-H", "Transfer-Encoding: chunked", "--data-binary", &at, &server.url("/rec/chunk")]);
    assert!(ok);
    assert_eq!(String::from_utf8_lossy(&out), format!("/rec/chunk {} {}", body.len(), checksum(&body)));
    let (ok, out) = curl(&[&server.url("/rec/get")]);
    assert!(ok);
    assert_eq!(String::from_utf8_lossy(&out), "/rec/get 0 0");
    // HEAD through a protocol: the same head, no body.
    let r = request(&server, "HEAD /rec/get HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_eq!((r.status, r.header("content-length"), r.body.len()), (200, Some("12"), 0));
    let events = seen.lock().map(|s| s.events.clone()).unwrap_or_default();
    assert!(events.contains(&"closed".to_string()), "{events:?}");
}

#[test]
fn rx_flow_control_pushes_back_and_cancel_service_resumes() {
    // CORE-4, CORE-5
    let (_t, root) = site();
    let (server, seen) = recorder_server(&root, true);
    let total = 64 << 20;
    let mut s = server.connect();
    write!(s, "POST /rec/slow HTTP/1.1\r\nHost: x\r\nContent-Length: {total}\r\n\r\n").expect("write");
    s.set_nonblocking(true).expect("nonblocking");
    let chunk = vec![7u8; 64 * 1024];
    let mut sent = 0usize;
    let mut blocked_since: Option<Instant> = None;
    // Write until the kernel buffers are full and stay full: TCP pushback.
    let deadline = Instant::now() + Duration::from_secs(20);
    while sent < total {
        match s.write(&chunk[..chunk.len().min(total - sent)]) {
            Ok(n) => {
                sent += n;
                blocked_since = None;
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                let since = *blocked_since.get_or_insert_with(Instant::now);
                if since.elapsed() > Duration::from_millis(500) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => panic!("write: {e}"),
        }
        assert!(Instant::now() < deadline, "never blocked");
    }
    assert!(sent < total, "the whole body went through while rx was paused");
    assert!(blocked_since.is_some());
    let delivered = seen.lock().map(|s| s.body.len()).unwrap_or(0);
    assert_eq!(delivered, 0, "body delivered while paused");

    // Another thread wakes the loop; the protocol resumes rx.
    let handle = server.handle.clone();
    std::thread::spawn(move || handle.cancel_service()).join().expect("join");
    s.set_nonblocking(false).expect("blocking");
    while sent < total {
        let n = s.write(&chunk[..chunk.len().min(total - sent)]).expect("write after resume");
        sent += n;
    }
    let mut rd = Reader::new(s);
    let r = rd.response(false).expect("response");
    let want = vec![7u8; total];
    assert_eq!(r.text(), format!("/rec/slow {total} {}", checksum(&want)));
    assert!(seen.lock().map(|s| s.cancels).unwrap_or(0) >= 1);
}

/// Misuses the writer: body before head, then a second head.
struct Misuser {
    errors: Arc<Mutex<Vec<String>>>,
}

impl Protocol for Misuser {
    type Session = u8;

    fn name(&self) -> &str {
        "misuser"
    }

    fn callback(&mut self, cx: &mut Cx<'_>, event: Event<'_, u8>) -> Action {
        match event {
            Event::Http(wsi, _) => cx.callback_on_writable(wsi.id),
            Event::HttpWriteable(wsi, writer) => {
                *wsi.session += 1;
                let r = match *wsi.session {
                    1 => writer.body(b"too early", false),
                    2 => writer.head(200, &[("Content-Length", "5")], Some(2)),
                    3 => writer.head(200, &[("X-Split", "a\r\nSet-Cookie: evil")], Some(2)),
                    4 => writer.head(200, &[("Content-Type", "text/plain")], Some(2)),
                    5 => writer.head(200, &[], Some(2)),
                    _ => writer.body(b"ok", true),
                };
                if let Err(e) = r {
                    if let Ok(mut errs) = self.errors.lock() {
                        errs.push(e.to_string());
                    }
                }
                cx.callback_on_writable(wsi.id);
            }
            _ => {}
        }
        Action::Continue
    }
}

#[test]
fn writer_misuse_is_an_error_value() {
    // CORE-2: the second write in one callback does not compile (see the
    // compile_fail doc test in warren::protocol); out-of-order writes across
    // callbacks are refused at run time.
    let errors = Arc::new(Mutex::new(Vec::new()));
    let server = Server::start(
        ContextInfo::new()
            .vhost(vhost().mount(Mount::callback("/", "misuser")).protocol(Misuser { errors: errors.clone() })),
    );
    let r = get(&server, "/x");
    assert_eq!((r.status, r.text().as_str()), (200, "ok"));
    let errors = errors.lock().map(|e| e.clone()).unwrap_or_default();
    assert_eq!(
        errors,
        ["body before head", "header name not allowed", "header value has CR, LF or NUL", "response head already sent"]
    );
}

#[test]
fn stale_bytes_after_close_do_not_reset_the_answer() {
    // A refused request whose client keeps sending still gets its response.
    let (_t, root) = site();
    let server = Server::files(&root);
    let mut s = server.connect();
    let mut req = b"POST /index.html HTTP/1.1\r\nHost: x\r\nContent-Length: 200000\r\n\r\n".to_vec();
    req.extend(vec![b'z'; 200_000]);
    s.write_all(&req).expect("write");
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).expect("read");
    assert!(buf.starts_with(b"HTTP/1.1 405"), "{}", String::from_utf8_lossy(&buf[..buf.len().min(80)]));
}

/// Holds every request until `cancel_service`, then answers all of them
/// through `callback_on_writable_all_protocol`.
struct Broadcaster {
    released: bool,
}

impl Protocol for Broadcaster {
    type Session = ();

    fn name(&self) -> &str {
        "broadcaster"
    }

    fn callback(&mut self, cx: &mut Cx<'_>, event: Event<'_, ()>) -> Action {
        match event {
            Event::EventWaitCancelled => {
                self.released = true;
                cx.callback_on_writable_all_protocol();
            }
            Event::HttpWriteable(wsi, writer) if self.released => {
                let text = format!("released {}", wsi.peer.port());
                if writer.respond(200, "text/plain", text.as_bytes()).is_err() {
                    return Action::Close;
                }
            }
            _ => {}
        }
        Action::Continue
    }
}

#[test]
fn writable_all_protocol_reaches_every_bound_connection() {
    let server = Server::start(
        ContextInfo::new()
            .vhost(vhost().mount(Mount::callback("/", "broadcaster")).protocol(Broadcaster { released: false })),
    );
    let mut readers: Vec<Reader> = (0..3)
        .map(|_| {
            let mut s = server.connect();
            s.write_all(b"GET /wait HTTP/1.1\r\nHost: x\r\n\r\n").expect("write");
            Reader::new(s)
        })
        .collect();
    // Nothing is answered before the release.
    std::thread::sleep(Duration::from_millis(200));
    for rd in readers.iter_mut() {
        rd.stream.set_nonblocking(true).expect("nonblocking");
        let mut b = [0u8; 1];
        assert!(matches!(rd.stream.read(&mut b), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock));
        rd.stream.set_nonblocking(false).expect("blocking");
    }
    server.handle.cancel_service();
    for rd in readers.iter_mut() {
        let port = rd.stream.local_addr().expect("addr").port();
        assert_eq!(rd.response(false).expect("response").text(), format!("released {port}"));
    }
}

/// Streams a numbered byte pattern forever, one 1 MiB write per writeable
/// callback, counting the callbacks.
struct Firehose {
    callbacks: Arc<Mutex<usize>>,
}

#[derive(Default)]
struct Offset(u64);

const HOSE_CHUNK: usize = 1 << 20;

fn hose_byte(i: u64) -> u8 {
    (i % 251) as u8
}

impl Protocol for Firehose {
    type Session = Offset;

    fn name(&self) -> &str {
        "firehose"
    }

    fn callback(&mut self, cx: &mut Cx<'_>, event: Event<'_, Offset>) -> Action {
        match event {
            Event::Http(wsi, _) => cx.callback_on_writable(wsi.id),
            Event::HttpWriteable(wsi, writer) => {
                if let Ok(mut n) = self.callbacks.lock() {
                    *n += 1;
                }
                let r = if wsi.session.0 == 0 && self.callbacks.lock().map_or(0, |n| *n) == 1 {
                    writer.head(200, &[("Content-Type", "application/octet-stream")], None)
                } else {
                    let start = wsi.session.0;
                    let chunk: Vec<u8> = (start..start + HOSE_CHUNK as u64).map(hose_byte).collect();
                    wsi.session.0 += HOSE_CHUNK as u64;
                    writer.body(&chunk, false)
                };
                if r.is_err() {
                    return Action::Close;
                }
                cx.callback_on_writable(wsi.id);
            }
            _ => {}
        }
        Action::Continue
    }
}

#[test]
fn a_reader_that_stops_gets_no_more_writeable_callbacks() {
    // CORE-2: a partial write is kept and no writeable event is delivered
    // until it has drained, so a stalled reader costs one remainder and no
    // spinning.
    let callbacks = Arc::new(Mutex::new(0));
    let server = Server::start(
        ContextInfo::new()
            .vhost(vhost().mount(Mount::callback("/", "firehose")).protocol(Firehose { callbacks: callbacks.clone() })),
    );
    let mut s = server.connect();
    s.write_all(b"GET /hose HTTP/1.1\r\nHost: x\r\n\r\n").expect("write");
    std::thread::sleep(Duration::from_millis(500));
    let stalled = callbacks.lock().map_or(0, |n| *n);
    std::thread::sleep(Duration::from_millis(500));
    let later = callbacks.lock().map_or(0, |n| *n);
    assert_eq!(stalled, later, "callbacks kept coming while the reader was stalled");
    assert!(stalled < 64, "{stalled} MiB accepted by a reader that reads nothing");
    // Now read 24 MiB of body and check every byte: remainders went out in order.
    let mut rd = Reader::new(s);
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        rd.stream.read_exact(&mut b).expect("head");
        head.push(b[0]);
    }
    assert!(head.starts_with(b"HTTP/1.1 200"));
    // Chunked framing: collect 24 MiB of payload.
    let mut payload = Vec::new();
    let mut raw = Vec::new();
    let mut buf = vec![0u8; 1 << 16];
    while payload.len() < 24 << 20 {
        let n = rd.stream.read(&mut buf).expect("read");
        assert!(n > 0, "closed early");
        raw.extend_from_slice(&buf[..n]);
        // Decode complete chunks from `raw`.
        while let Some(eol) = raw.windows(2).position(|w| w == b"\r\n") {
            let size = usize::from_str_radix(std::str::from_utf8(&raw[..eol]).expect("hex"), 16).expect("size");
            if raw.len() < eol + 2 + size + 2 {
                break;
            }
            payload.extend_from_slice(&raw[eol + 2..eol + 2 + size]);
            raw.drain(..eol + 2 + size + 2);
        }
    }
    for (i, &byte) in payload.iter().enumerate() {
        assert_eq!(byte, hose_byte(i as u64), "byte {i}");
    }
}

#[test]
fn the_connection_limit_comes_from_rlimit_nofile() {
    // CORE-7
    let (_t, root) = site();
    let context =
        warren::Context::new(ContextInfo::new().vhost(vhost().mount(files_mount("/", &root)))).expect("context");
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: a plain syscall on a local struct.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) }, 0);
    // The context raised the soft limit to the hard one.
    assert_eq!(lim.rlim_cur, lim.rlim_max);
    // Less what the loop holds itself (its poll twice, its waker, one
    // listener copy per vhost: 4 here) and the reserve of 512.
    let want = (lim.rlim_cur as usize).min(1 << 24).saturating_sub(4).saturating_sub(512) / 2;
    assert_eq!(context.max_connections(), want);
}

#[test]
fn a_streaming_response_is_not_cut_by_the_io_timeout() {
    // The io timeout is a progress timeout: each write that moves re-arms
    // it, and so does what the peer drains from the kernel's queue. Even a
    // reader that never pauses can see no acknowledgement for hundreds of
    // milliseconds on loopback (a closed receive window reopens after the
    // sender's zero-window probe, whose interval backs off from 200 ms), so
    // the timeout here is seconds, as any real one is, and the reading
    // lasts well past it.
    let callbacks = Arc::new(Mutex::new(0));
    let limits = Limits { io_timeout: Duration::from_secs(2), ..Limits::default() };
    let server =
        Server::start(ContextInfo::new().limits(limits).vhost(
            vhost().mount(Mount::callback("/", "firehose")).protocol(Firehose { callbacks: callbacks.clone() }),
        ));
    let mut s = server.connect();
    s.write_all(b"GET /hose HTTP/1.1\r\nHost: x\r\n\r\n").expect("write");
    // Read slowly for well over the timeout: 5 s at ~20 MiB/s.
    let mut buf = vec![0u8; 1 << 20];
    let started = Instant::now();
    let mut total = 0;
    while started.elapsed() < Duration::from_secs(5) {
        let n = s.read(&mut buf).expect("read");
        assert!(n > 0, "closed after {:?} and {total} bytes", started.elapsed());
        total += n;
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(total > 4 << 20, "{total}");
}

/// Ignores every write error and keeps asking for more.
struct Stubborn;

impl Protocol for Stubborn {
    type Session = bool;

    fn name(&self) -> &str {
        "stubborn"
    }

    fn callback(&mut self, cx: &mut Cx<'_>, event: Event<'_, bool>) -> Action {
        match event {
            Event::Http(wsi, _) => cx.callback_on_writable(wsi.id),
            Event::HttpWriteable(wsi, writer) => {
                // A head, then body chunks forever; errors ignored.
                if !std::mem::replace(wsi.session, true) {
                    let _ = writer.head(200, &[], None);
                } else {
                    let _ = writer.body(&[b'x'; 100_000], false);
                }
                cx.callback_on_writable(wsi.id);
            }
            _ => {}
        }
        Action::Continue
    }
}

#[test]
fn a_failed_write_closes_even_if_the_protocol_ignores_it() {
    let server =
        Server::start(ContextInfo::new().vhost(vhost().mount(Mount::callback("/", "stubborn")).protocol(Stubborn)));
    {
        let mut s = server.connect();
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").expect("write");
        let mut b = [0u8; 16];
        let _ = s.read(&mut b);
        // Reset, not FIN: the next write fails at once.
        let _ = socket2_linger_zero(&s);
    }
    let deadline = Instant::now() + Duration::from_secs(3);
    while server.handle.stats().open > 0 {
        assert!(Instant::now() < deadline, "connection kept after its write failed");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// SO_LINGER 0 so that close sends RST.
fn socket2_linger_zero(s: &TcpStream) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let l = libc::linger { l_onoff: 1, l_linger: 0 };
    // SAFETY: setsockopt with a valid fd and a correctly sized struct.
    let r = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&l as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

fn close_on_error(r: std::io::Result<()>) -> Action {
    if r.is_err() {
        Action::Close
    } else {
        Action::Continue
    }
}

/// Refuses uploads before reading them.
struct Refuser;

impl Protocol for Refuser {
    type Session = ();

    fn name(&self) -> &str {
        "refuser"
    }

    fn callback(&mut self, cx: &mut Cx<'_>, event: Event<'_, ()>) -> Action {
        match event {
            Event::Http(wsi, _) => cx.callback_on_writable(wsi.id),
            Event::HttpWriteable(_, writer) => return close_on_error(writer.status(413, "too big")),
            _ => {}
        }
        Action::Continue
    }
}

#[test]
fn answering_before_the_body_is_read_says_connection_close() {
    let server =
        Server::start(ContextInfo::new().vhost(vhost().mount(Mount::callback("/", "refuser")).protocol(Refuser)));
    let mut s = server.connect();
    s.write_all(b"POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000\r\n\r\n").expect("write");
    s.write_all(&[b'a'; 1000]).expect("write");
    let mut rd = Reader::new(s);
    let r = rd.response(false).expect("response");
    assert_eq!((r.status, r.header("connection")), (413, Some("close")));
    assert!(rd.closed_within(Duration::from_secs(5)));
}

#[test]
fn random_garbage_never_stops_the_server() {
    // Bad input never crashes the server: pseudo-random bytes, truncated
    // heads and bodies, on many connections, then normal service.
    let (_t, root) = site();
    let server = Server::files(&root);
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let seeds: [&[u8]; 6] = [
        b"GET / HTTP/1.1\r\nHost: x\r\n",
        b"POST /index.html HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"GET /%",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
        b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999\r\n\r\nab",
        b"",
    ];
    for i in 0..300 {
        let mut s = server.connect();
        let mut bytes = seeds[i % seeds.len()].to_vec();
        let extra = (next() % 300) as usize;
        bytes.extend((0..extra).map(|_| (next() & 0xff) as u8));
        let _ = s.write_all(&bytes);
        if i % 3 == 0 {
            let _ = s.shutdown(std::net::Shutdown::Write);
        }
        // Some are dropped at once, some read what comes back.
        if i % 2 == 0 {
            s.set_read_timeout(Some(Duration::from_millis(50))).expect("timeout");
            let mut sink = [0u8; 4096];
            let _ = s.read(&mut sink);
        }
    }
    assert_eq!(get(&server, "/index.html").text(), "<h1>root index</h1>\n");
    // Nothing leaked: every garbage connection is closed in time.
    let deadline = Instant::now() + Duration::from_secs(15);
    while server.handle.stats().open > 0 {
        assert!(Instant::now() < deadline, "{} connections still open", server.handle.stats().open);
        std::thread::sleep(Duration::from_millis(50));
    }
}
