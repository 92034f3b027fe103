//! Raw wsis (issue 18; spec RAW-1, RAW-2, RAW-5, PLUG-6): raw ports,
//! the fallback from HTTP, adopted descriptors (a pipe, a FIFO written by
//! a shell, UDP), wsi timers, and flow control against a slow reader.
//! Real sockets, real processes.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::os::fd::{FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};
use support::{files_mount, vhost, Server};
use warren::protocol::{Action, Cx, Event, Protocol, RawKind, WsiId};
use warren::ContextInfo;

/// A raw echo: holds what one read gave, pauses rx until it is written
/// back. Panics on `boom`, closes on `close`.
#[derive(Default)]
struct Echo;

#[derive(Default)]
struct EchoSession {
    pending: Vec<u8>,
}

impl Protocol for Echo {
    type Session = EchoSession;
    fn name(&self) -> &str {
        "t-echo"
    }
    fn callback(&mut self, cx: &mut Cx<'_>, event: Event<'_, EchoSession>) -> Action {
        match event {
            Event::RawRx(_, b"boom") => panic!("boom, as asked"),
            Event::RawRx(_, b"close") => return Action::Close,
            Event::RawRx(wsi, data) => {
                wsi.session.pending.extend_from_slice(data);
                cx.rx_flow_control(wsi.id, false);
                cx.callback_on_writable(wsi.id);
            }
            Event::RawWriteable(wsi, w) => {
                if w.write(&wsi.session.pending).is_err() {
                    return Action::Close;
                }
                wsi.session.pending.clear();
                cx.rx_flow_control(wsi.id, true);
            }
            _ => {}
        }
        Action::Continue
    }
}

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(20))).expect("timeout");
    s
}

/// Reads exactly `n` bytes.
fn read_n(s: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut buf = vec![0; n];
    s.read_exact(&mut buf).expect("read");
    buf
}

/// Reads until the peer closes (a reset counts); a read that times out
/// (20 s) fails the test: the connection was left open.
fn read_to_close(s: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return out,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return out,
            Err(e) => panic!("not closed: {e} (after {} bytes)", out.len()),
        }
    }
}

#[test]
fn a_raw_port_echoes_from_the_first_byte() {
    // RAW-1: no HTTP at all, even for bytes that are a request.
    let server = Server::start(
        ContextInfo::new().vhost(vhost().protocol(Echo).listen_accept_protocol("t-echo").apply_listen_accept(true)),
    );
    let mut s = connect(server.addr);
    let req = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    s.write_all(req).expect("write");
    assert_eq!(read_n(&mut s, req.len()), req);
    s.write_all(b"\x00\x01binary").expect("write");
    assert_eq!(read_n(&mut s, 8), b"\x00\x01binary");
    // Its open-connections gauge says raw.
    let metrics = server.handle.metrics().render();
    assert!(metrics.contains("warren_connections_open{role=\"raw\"} 1"), "{metrics}");
}

fn fallback_server(on: bool) -> (Server, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("index.html"), "<p>hello</p>").expect("write");
    let v = vhost()
        .mount(files_mount("/", dir.path()))
        .protocol(Echo)
        .listen_accept_protocol("t-echo")
        .fallback_listen_accept(on);
    (Server::start(ContextInfo::new().vhost(v)), dir)
}

#[test]
fn a_fallback_port_serves_http_and_makes_other_bytes_raw() {
    // RAW-2.
    let (server, _dir) = fallback_server(true);
    let r = support::get(&server, "/index.html");
    assert_eq!((r.status, r.text()), (200, "<p>hello</p>".to_string()));
    let mut s = connect(server.addr);
    s.write_all(b"SSH-2.0-OpenSSH_9.2\r\n").expect("write");
    assert_eq!(read_n(&mut s, 21), b"SSH-2.0-OpenSSH_9.2\r\n");
    // Later bytes, with or without new lines, are the raw protocol's.
    s.write_all(b"GET / HTTP/1.1\r\n\r\n").expect("write");
    assert_eq!(read_n(&mut s, 18), b"GET / HTTP/1.1\r\n\r\n");
}

#[test]
fn bytes_that_begin_like_a_method_are_held_until_they_differ() {
    let (server, _dir) = fallback_server(true);
    let mut s = connect(server.addr);
    s.set_nodelay(true).expect("nodelay");
    // "PO" could be POST: nothing is decided, nothing echoed...
    s.write_all(b"PO").expect("write");
    s.flush().expect("flush");
    // ...until a byte no method has; then all of it is the first rx,
    // though no new line came.
    std::thread::sleep(Duration::from_millis(50));
    s.write_all(b"X\x00\x01").expect("write");
    assert_eq!(read_n(&mut s, 5), b"POX\x00\x01");
}

#[test]
fn without_the_fallback_other_bytes_get_an_http_error() {
    let (server, _dir) = fallback_server(false);
    let mut s = connect(server.addr);
    s.write_all(b"SSH-2.0-OpenSSH_9.2\r\n").expect("write");
    let answer = read_to_close(&mut s);
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 4"), "{text}");
    assert!(!text.contains("SSH-2.0"), "{text}");
}

/// An echo that keeps reading while its answer waits (so the end of
/// the stream is read in the same turn as the last bytes).
struct EagerEcho;

impl Protocol for EagerEcho {
    type Session = EchoSession;
    fn name(&self) -> &str {
        "t-eager"
    }
    fn callback(&mut self, cx: &mut Cx<'_>, event: Event<'_, EchoSession>) -> Action {
        match event {
            Event::RawRx(wsi, data) => {
                wsi.session.pending.extend_from_slice(data);
                cx.callback_on_writable(wsi.id);
            }
            Event::RawWriteable(wsi, w) => {
                let _ = w.write(&wsi.session.pending);
                wsi.session.pending.clear();
            }
            _ => {}
        }
        Action::Continue
    }
}

#[test]
fn a_half_close_still_gets_its_answer() {
    // `printf data | nc -N host port`: the peer ends its side after
    // sending; the echo still comes back, then the server closes.
    let server = Server::start(
        ContextInfo::new()
            .vhost(vhost().protocol(EagerEcho).listen_accept_protocol("t-eager").apply_listen_accept(true)),
    );
    let mut s = connect(server.addr);
    s.write_all(b"said before the end").expect("write");
    s.shutdown(std::net::Shutdown::Write).expect("shutdown");
    assert_eq!(read_to_close(&mut s), b"said before the end");
}

#[test]
fn a_panic_in_a_raw_callback_costs_its_connection_only() {
    let server = Server::start(
        ContextInfo::new().vhost(vhost().protocol(Echo).listen_accept_protocol("t-echo").apply_listen_accept(true)),
    );
    let mut other = connect(server.addr);
    let mut s = connect(server.addr);
    s.write_all(b"boom").expect("write");
    assert!(read_to_close(&mut s).is_empty());
    other.write_all(b"still here").expect("write");
    assert_eq!(read_n(&mut other, 10), b"still here");
    // A protocol's Close closes.
    other.write_all(b"close").expect("write");
    assert!(read_to_close(&mut other).is_empty());
}

/// What the pipe-adopting protocol saw.
#[derive(Default)]
struct PipeSeen {
    refused_regular: Option<std::io::ErrorKind>,
    writer: Option<OwnedFd>,
}

struct PipeReader {
    seen: Arc<Mutex<PipeSeen>>,
    rx: mpsc::Sender<(RawKind, Vec<u8>)>,
    regular: std::path::PathBuf,
}

#[derive(Default)]
struct Kind(Option<RawKind>);

impl Protocol for PipeReader {
    type Session = Kind;
    fn name(&self) -> &str {
        "t-pipe"
    }
    fn callback(&mut self, cx: &mut Cx<'_>, event: Event<'_, Kind>) -> Action {
        match event {
            Event::ProtocolInit => {
                let mut seen = self.seen.lock().expect("lock");
                let file = std::fs::File::open(&self.regular).expect("open");
                seen.refused_regular = cx.adopt_file(file.into()).err().map(|e| e.kind());
                let mut fds = [0; 2];
                // SAFETY: fds is a local array of two ints.
                assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
                // SAFETY: both were just made and are owned by nothing else.
                let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
                cx.adopt_file(r).expect("adopt the pipe");
                seen.writer = Some(w);
            }
            Event::RawAdopt(wsi, kind) => wsi.session.0 = Some(kind),
            Event::RawRx(wsi, data) => {
                let _ = self.rx.send((wsi.session.0.expect("adopted first"), data.to_vec()));
            }
            Event::RawClose(wsi) => {
                let _ = self.rx.send((wsi.session.0.expect("adopted first"), b"<closed>".to_vec()));
            }
            _ => {}
        }
        Action::Continue
    }
}

#[test]
fn a_pipe_is_adopted_and_a_regular_file_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let regular = dir.path().join("plain.txt");
    std::fs::write(&regular, "x").expect("write");
    let seen = Arc::new(Mutex::new(PipeSeen::default()));
    let (tx, rx) = mpsc::channel();
    let p = PipeReader { seen: Arc::clone(&seen), rx: tx, regular };
    let _server = Server::start(ContextInfo::new().vhost(vhost().protocol(p)));
    let writer = loop {
        if let Some(w) = seen.lock().expect("lock").writer.take() {
            break w;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    assert_eq!(seen.lock().expect("lock").refused_regular, Some(std::io::ErrorKind::InvalidInput));
    let mut w = std::fs::File::from(writer);
    w.write_all(b"through the pipe").expect("write");
    let (kind, data) = rx.recv_timeout(Duration::from_secs(20)).expect("rx");
    assert_eq!((kind, data.as_slice()), (RawKind::File, &b"through the pipe"[..]));
    // The writer's end closing is the file's end: RawClose.
    drop(w);
    let (_, data) = rx.recv_timeout(Duration::from_secs(20)).expect("close");
    assert_eq!(data, b"<closed>");
}

/// Arms timers as the client asks, and reports through the connection
/// what they did. A "stray" timer is one that fired on a wsi that never
/// armed one, or after it was cancelled: a wrong one, whatever the
/// scheduling (one that fired before its cancel is not stray).
#[derive(Default)]
struct Timers {
    stray: Arc<AtomicUsize>,
    /// The wsi the vhost timer reports to.
    reporter: Option<WsiId>,
}

#[derive(Default)]
struct TimerSession {
    armed: bool,
    cancelled: bool,
    ticks: u32,
    out: Vec<u8>,
}

impl Protocol for Timers {
    type Session = TimerSession;
    fn name(&self) -> &str {
        "t-timers"
    }
    fn callback(&mut self, cx: &mut Cx<'_>, event: Event<'_, TimerSession>) -> Action {
        match event {
            Event::RawRx(wsi, b"tick") => {
                wsi.session.armed = true;
                cx.set_timer(wsi.id, Some(Duration::from_millis(60)));
            }
            Event::RawRx(wsi, b"arm") => {
                wsi.session.armed = true;
                cx.set_timer(wsi.id, Some(Duration::from_millis(300)));
                wsi.session.out.extend_from_slice(b"armed;");
                cx.callback_on_writable(wsi.id);
            }
            Event::RawRx(wsi, b"cancel") => {
                wsi.session.cancelled = true;
                cx.set_timer(wsi.id, None);
                self.reporter = Some(wsi.id);
                cx.schedule(Duration::from_millis(600));
            }
            Event::RawRx(wsi, b"report") => {
                self.reporter = Some(wsi.id);
                cx.schedule(Duration::from_millis(600));
            }
            Event::RawRx(_, b"close") => return Action::Close,
            Event::RawRx(wsi, b"timeout") => cx.set_timeout(wsi.id, Some(Duration::from_millis(100))),
            Event::WsiTimer(wsi) if !wsi.session.armed || wsi.session.cancelled => {
                self.stray.fetch_add(1, Ordering::SeqCst);
            }
            Event::WsiTimer(wsi) => {
                wsi.session.ticks += 1;
                wsi.session.out.extend_from_slice(format!("tick {};", wsi.session.ticks).as_bytes());
                cx.callback_on_writable(wsi.id);
                if wsi.session.ticks < 3 {
                    cx.set_timer(wsi.id, Some(Duration::from_millis(60)));
                }
            }
            Event::Timer => {
                if let Some(id) = self.reporter {
                    cx.callback_on_writable(id);
                }
            }
            Event::RawWriteable(wsi, w) if self.reporter == Some(wsi.id) && wsi.session.out.is_empty() => {
                self.reporter = None;
                let _ = w.write(format!("stray {};", self.stray.load(Ordering::SeqCst)).as_bytes());
            }
            Event::RawWriteable(wsi, w) => {
                let _ = w.write(&wsi.session.out);
                wsi.session.out.clear();
            }
            _ => {}
        }
        Action::Continue
    }
}

fn timer_server() -> Server {
    let v = vhost().protocol(Timers::default()).listen_accept_protocol("t-timers").apply_listen_accept(true);
    Server::start(ContextInfo::new().vhost(v))
}

/// Reads until `want` bytes came.
fn read_text(s: &mut TcpStream, want: usize) -> String {
    String::from_utf8(read_n(s, want)).expect("utf-8")
}

#[test]
fn a_wsi_timer_fires_and_rearms() {
    let server = timer_server();
    let mut s = connect(server.addr);
    s.write_all(b"tick").expect("write");
    // Written as each fires, so the three may come in one read or three.
    assert_eq!(read_text(&mut s, 21), "tick 1;tick 2;tick 3;");
}

#[test]
fn a_cancelled_wsi_timer_never_fires() {
    let server = timer_server();
    let mut s = connect(server.addr);
    s.write_all(b"arm").expect("write");
    assert_eq!(read_text(&mut s, 6), "armed;");
    // Cancelled in a later callback; the vhost timer, due after the
    // cancelled one would have been, reports.
    s.write_all(b"cancel").expect("write");
    assert_eq!(read_text(&mut s, 8), "stray 0;");
}

#[test]
fn a_closed_wsis_timer_is_cancelled_with_it() {
    let server = timer_server();
    let mut a = connect(server.addr);
    a.write_all(b"arm").expect("write");
    assert_eq!(read_text(&mut a, 6), "armed;");
    a.write_all(b"close").expect("write");
    assert!(read_to_close(&mut a).is_empty());
    // The next connection is likely to get the closed one's slot: a
    // timer left behind would fire on it, which armed none.
    let mut b = connect(server.addr);
    b.write_all(b"report").expect("write");
    assert_eq!(read_text(&mut b, 8), "stray 0;");
}

#[test]
fn a_protocol_timeout_closes_a_raw_connection() {
    let server = timer_server();
    let mut s = connect(server.addr);
    s.write_all(b"timeout").expect("write");
    assert!(read_to_close(&mut s).is_empty());
}

/// The binary with a configuration in `dir`: `site` is conf.d/site.
fn start_config(dir: &std::path::Path, site: &str) -> (support::Running, u16, mpsc::Receiver<String>) {
    std::fs::create_dir_all(dir.join("conf.d")).expect("mkdir");
    std::fs::write(dir.join("conf"), "{}").expect("write");
    std::fs::write(dir.join("conf.d/site"), site).expect("write");
    support::start_warren_logged(&["--config", dir.to_str().expect("utf-8")])
}

/// Waits (up to 20 s) for a log line containing `needle`.
fn wait_log(log: &mpsc::Receiver<String>, needle: &str) -> String {
    let until = Instant::now() + Duration::from_secs(20);
    while let Some(left) = until.checked_duration_since(Instant::now()) {
        match log.recv_timeout(left) {
            Ok(line) if line.contains(needle) => return line,
            Ok(_) => {}
            Err(_) => break,
        }
    }
    panic!("no log line with {needle:?}");
}

fn raw_test_site(root: &std::path::Path, options: &str, raw_keys: &str) -> String {
    format!(
        r#"{{ "vhosts": [ {{ "name": "localhost", "port": "0", "interface": "127.0.0.1", {raw_keys}
  "ws-protocols": [ {{ "protocol-lws-raw-test": {{ "status": "ok" {options} }} }} ],
  "mounts": [ {{ "mountpoint": "/", "origin": "file://{root}" }} ] }} ] }}"#,
        root = root.display()
    )
}

#[test]
fn the_raw_test_plugin_logs_what_a_shell_writes_to_its_fifo() {
    // PLUG-6: the FIFO is made, adopted, and read through the loop.
    let dir = tempfile::tempdir().expect("tempdir");
    let fifo = dir.path().join("raw-fifo");
    let site = raw_test_site(dir.path(), &format!(r#", "fifo-path": "{}""#, fifo.display()), "");
    let (_warren, _port, log) = start_config(dir.path(), &site);
    wait_log(&log, "reading the FIFO");
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("printf 'hello from sh\\n' > '{}'", fifo.display()))
        .status()
        .expect("sh");
    assert!(status.success());
    wait_log(&log, "raw-test: fifo: hello from sh");
}

#[test]
fn the_raw_test_plugin_echoes_udp_to_each_sender() {
    let dir = tempfile::tempdir().expect("tempdir");
    let site = raw_test_site(dir.path(), r#", "udp": "127.0.0.1:0""#, "");
    let (_warren, _port, log) = start_config(dir.path(), &site);
    let line = wait_log(&log, "UDP echo on ");
    let addr: SocketAddr = line.rsplit("UDP echo on ").next().expect("addr").trim().parse().expect("address");
    let a = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let b = UdpSocket::bind("127.0.0.1:0").expect("bind");
    for s in [&a, &b] {
        s.set_read_timeout(Some(Duration::from_secs(20))).expect("timeout");
    }
    a.send_to(b"from a", addr).expect("send");
    b.send_to(b"from b, longer", addr).expect("send");
    let mut buf = [0; 64];
    let (n, from) = a.recv_from(&mut buf).expect("a's echo");
    assert_eq!((&buf[..n], from), (&b"from a"[..], addr));
    let (n, from) = b.recv_from(&mut buf).expect("b's echo");
    assert_eq!((&buf[..n], from), (&b"from b, longer"[..], addr));
    // An empty datagram is a datagram.
    a.send_to(b"", addr).expect("send");
    let (n, _) = a.recv_from(&mut buf).expect("empty echo");
    assert_eq!(n, 0);
}

#[test]
fn a_raw_echo_against_a_reader_that_does_not_read_keeps_memory_flat() {
    // RAW-5 with CORE-4: the echo holds one read and pauses rx, so a
    // client that writes without reading meets TCP pushback.
    let dir = tempfile::tempdir().expect("tempdir");
    let keys = r#""apply-listen-accept": "1", "listen-accept-protocol": "protocol-lws-raw-test","#;
    let site = raw_test_site(dir.path(), "", keys);
    let (warren, port, _log) = start_config(dir.path(), &site);
    let baseline = warren.peak_rss_kib();
    let mut s = connect(SocketAddr::from(([127, 0, 0, 1], port)));
    let mut w = s.try_clone().expect("clone");
    // Writes until the server stops taking bytes (a write blocked for
    // 3 s), and says how many it wrote.
    w.set_write_timeout(Some(Duration::from_secs(3))).expect("timeout");
    let total: usize = 256 << 20;
    let writer = std::thread::spawn(move || {
        let chunk = support::pattern(64 * 1024);
        let mut written = 0;
        while written < total {
            // From where a short write left off, so the bytes sent are
            // the pattern repeated.
            match w.write(&chunk[written % chunk.len()..]) {
                Ok(n) => written += n,
                Err(_) => break,
            }
        }
        written
    });
    let written = writer.join().expect("writer");
    assert!(written < total / 2, "the server took {written} bytes without their echo being read");
    let grew = warren.peak_rss_kib().saturating_sub(baseline);
    assert!(grew < 16 * 1024, "the server grew by {grew} KiB");
    // Everything taken comes back, in order.
    let echoed = read_n(&mut s, written);
    let expected: Vec<u8> = support::pattern(64 * 1024).into_iter().cycle().take(written).collect();
    assert!(echoed == expected, "the echo differs from what was sent");
}

/// Loads a configuration whose site is `site` and returns its error.
fn config_error(site: &str) -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join("conf.d")).expect("mkdir");
    std::fs::write(dir.path().join("conf"), "{}").expect("write");
    std::fs::write(dir.path().join("conf.d/site"), site).expect("write");
    let info = match warren::config::load_dir(dir.path()) {
        Ok(info) => info,
        Err(e) => return e.to_string(),
    };
    // What only building the vhost can tell (its protocols' names).
    match warren::Context::new(info) {
        Ok(_) => panic!("accepted:\n{site}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn raw_keys_that_cannot_work_are_config_errors() {
    let root = tempfile::tempdir().expect("tempdir");
    let raw_test = r#""ws-protocols": [ { "protocol-lws-raw-test": { "status": "ok" } } ]"#;
    let site = |keys: &str| {
        format!(
            r#"{{ "vhosts": [ {{ "name": "a", "port": "0", "interface": "127.0.0.1", {keys}, {raw_test},
  "mounts": [ {{ "mountpoint": "/", "origin": "file://{}" }} ] }} ] }}"#,
            root.path().display()
        )
    };
    let e = config_error(&site(r#""listen-accept-role": "raw-proxy""#));
    assert!(e.contains("conf.d/site") && e.contains("vhosts[0].listen-accept-role") && e.contains("raw-skt"), "{e}");
    let e = config_error(&site(r#""fallback-listen-accept": "1""#));
    assert!(e.contains("vhosts[0].fallback-listen-accept") && e.contains("listen-accept-protocol"), "{e}");
    let e = config_error(&site(r#""onlyraw": "1""#));
    assert!(e.contains("vhosts[0].apply-listen-accept") && e.contains("listen-accept-protocol"), "{e}");
    let e = config_error(&site(r#""apply-listen-accept": "1", "listen-accept-protocol": "nope""#));
    assert!(e.contains("vhosts[0].listen-accept-protocol") && e.contains("\"nope\""), "{e}");
    assert!(e.contains("protocol-lws-raw-test"), "{e}");
}

#[test]
fn a_flood_of_empty_lines_on_a_fallback_port_is_not_kept() {
    // Empty lines may come before a request (RFC 9112 §2.2), so they
    // leave the fallback undecided; past what a head may hold, the HTTP
    // path's limits take them instead of the buffer growing.
    let dir = tempfile::tempdir().expect("tempdir");
    let keys = r#""fallback-listen-accept": "1", "listen-accept-protocol": "protocol-lws-raw-test","#;
    let (warren, port, _log) = start_config(dir.path(), &raw_test_site(dir.path(), "", keys));
    let baseline = warren.peak_rss_kib();
    let mut s = connect(SocketAddr::from(([127, 0, 0, 1], port)));
    s.set_write_timeout(Some(Duration::from_secs(20))).expect("timeout");
    let lines = b"\r\n".repeat(32 * 1024);
    let total: usize = 128 << 20;
    let mut written = 0;
    while written < total {
        match s.write(&lines) {
            Ok(n) => written += n,
            Err(_) => break,
        }
    }
    let grew = warren.peak_rss_kib().saturating_sub(baseline);
    assert!(grew < 16 * 1024, "the server grew by {grew} KiB after {written} bytes of empty lines");
    // The connection is refused as a head too big (what the HTTP path
    // does with so many empty lines), not left to the header timeout.
    let answer = read_to_close(&mut s);
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 431 "), "{answer}");
}

#[test]
fn a_raw_ports_connection_over_the_limit_is_closed_without_http() {
    let dir = tempfile::tempdir().expect("tempdir");
    let keys = r#""apply-listen-accept": "1", "listen-accept-protocol": "protocol-lws-raw-test","#;
    let site = raw_test_site(dir.path(), "", keys);
    std::fs::create_dir_all(dir.path().join("conf.d")).expect("mkdir");
    std::fs::write(dir.path().join("conf"), "{}").expect("write");
    std::fs::write(dir.path().join("conf.d/site"), site).expect("write");
    let (warren, port, log) =
        support::start_warren_with_fd_limit(&["--config", dir.path().to_str().expect("utf-8")], 64);
    let line = log.iter().find(|l| l.contains("up to")).expect("the limit line");
    let limit: usize =
        line.split("up to ").nth(1).and_then(|r| r.split(' ').next()).and_then(|n| n.parse().ok()).expect("limit");
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    // Each is echoed once served, so that all count before the next.
    let mut held = Vec::new();
    for _ in 0..limit {
        let mut s = connect(addr);
        s.write_all(b"x").expect("write");
        assert_eq!(read_n(&mut s, 1), b"x");
        held.push(s);
    }
    let mut over = connect(addr);
    let _ = over.write_all(b"SSH-2.0-x\r\n");
    let answer = read_to_close(&mut over);
    assert!(answer.is_empty(), "{:?}", String::from_utf8_lossy(&answer));
    drop(warren);
}

#[test]
fn a_silent_raw_connection_closes_after_the_io_timeout() {
    let limits = warren::Limits { io_timeout: Duration::from_secs(1), ..warren::Limits::default() };
    let server = Server::start(
        ContextInfo::new()
            .limits(limits)
            .vhost(vhost().protocol(Echo).listen_accept_protocol("t-echo").apply_listen_accept(true)),
    );
    let mut s = connect(server.addr);
    s.write_all(b"one").expect("write");
    assert_eq!(read_n(&mut s, 3), b"one");
    // Then nothing either way: closed by the server.
    assert!(read_to_close(&mut s).is_empty());
}

/// One UDP datagram from port 0 of 127.0.0.1 to `to`, sent through a
/// raw socket (the kernel will not send from port 0 otherwise).
fn datagram_from_port_zero(to: SocketAddr, payload: &[u8]) {
    // SAFETY: a raw IPv4 socket for UDP; the kernel adds the IP header.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_UDP) };
    assert!(fd >= 0, "a raw socket (needs root): {}", std::io::Error::last_os_error());
    // SAFETY: fd was just made and is owned by nothing else.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut packet = Vec::new();
    packet.extend_from_slice(&0u16.to_be_bytes()); // source port 0
    packet.extend_from_slice(&to.port().to_be_bytes());
    packet.extend_from_slice(&(8 + payload.len() as u16).to_be_bytes());
    packet.extend_from_slice(&0u16.to_be_bytes()); // no checksum (IPv4 allows it)
    packet.extend_from_slice(payload);
    let sin = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: 0,
        sin_addr: libc::in_addr { s_addr: u32::from_ne_bytes([127, 0, 0, 1]) },
        sin_zero: [0; 8],
    };
    // SAFETY: the buffer and the address are locals of the sizes given.
    let n = unsafe {
        libc::sendto(
            std::os::fd::AsRawFd::as_raw_fd(&fd),
            packet.as_ptr().cast(),
            packet.len(),
            0,
            (&sin as *const libc::sockaddr_in).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    };
    assert_eq!(n, packet.len() as isize, "{}", std::io::Error::last_os_error());
}

#[test]
fn a_datagram_that_cannot_be_answered_does_not_close_the_udp_echo() {
    let dir = tempfile::tempdir().expect("tempdir");
    let site = raw_test_site(dir.path(), r#", "udp": "127.0.0.1:0""#, "");
    let (_warren, _port, log) = start_config(dir.path(), &site);
    let line = wait_log(&log, "UDP echo on ");
    let addr: SocketAddr = line.rsplit("UDP echo on ").next().expect("addr").trim().parse().expect("address");
    datagram_from_port_zero(addr, b"forged");
    let a = UdpSocket::bind("127.0.0.1:0").expect("bind");
    a.set_read_timeout(Some(Duration::from_secs(20))).expect("timeout");
    a.send_to(b"after", addr).expect("send");
    let mut buf = [0; 16];
    let (n, _) = a.recv_from(&mut buf).expect("the echo still answers");
    assert_eq!(&buf[..n], b"after");
}

#[test]
fn a_reload_keeps_the_raw_test_plugins_fifo_and_udp_echo() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fifo = dir.path().join("raw-fifo");
    let options = format!(r#", "fifo-path": "{}", "udp": "127.0.0.1:0""#, fifo.display());
    std::fs::create_dir_all(dir.path().join("conf.d")).expect("mkdir");
    std::fs::write(dir.path().join("conf"), "{}").expect("write");
    std::fs::write(dir.path().join("conf.d/site"), raw_test_site(dir.path(), &options, "")).expect("write");
    let (warren, _port, log) =
        support::start_warren_logged(&["--config", dir.path().to_str().expect("utf-8"), "--grace", "1"]);
    let line = wait_log(&log, "UDP echo on ");
    let addr: SocketAddr = line.rsplit("UDP echo on ").next().expect("addr").trim().parse().expect("address");
    // The new configuration binds the same address (port 0 was made
    // concrete: give it the one the first got).
    let site = raw_test_site(dir.path(), &format!(r#", "fifo-path": "{}", "udp": "{addr}""#, fifo.display()), "");
    std::fs::write(dir.path().join("conf.d/site"), site).expect("write");
    // SAFETY: a signal to the child we started.
    unsafe { libc::kill(warren.0.id() as libc::pid_t, libc::SIGHUP) };
    wait_log(&log, "reloaded: serving");
    // The first configuration is gone once its instance says so.
    wait_log(&log, "raw-test: done");
    let a = UdpSocket::bind("127.0.0.1:0").expect("bind");
    a.set_read_timeout(Some(Duration::from_secs(20))).expect("timeout");
    a.send_to(b"after the reload", addr).expect("send");
    let mut buf = [0; 32];
    let (n, _) = a.recv_from(&mut buf).expect("the echo answers after the reload");
    assert_eq!(&buf[..n], b"after the reload");
    use std::os::unix::fs::FileTypeExt;
    let kind = std::fs::symlink_metadata(&fifo).expect("the FIFO is still there").file_type();
    assert!(kind.is_fifo());
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("printf 'after reload\\n' > '{}'", fifo.display()))
        .status()
        .expect("sh");
    assert!(status.success());
    wait_log(&log, "raw-test: fifo: after reload");
}
