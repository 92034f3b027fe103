//! Service threads (seed "smp"; lws `count_threads`; the `count-threads`
//! key, `--threads`): several loops in one process share the vhosts and
//! the listening sockets; each connection is served by the loop with the
//! fewest when it came; each loop has its own protocol instances; stop,
//! drain, cancel_service, add_vhost and the peer limits reach every loop.

mod support;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::*;
use warren::protocol::{Action, Cx, Event, Protocol};
use warren::{Context, ContextInfo, Limits, Mount, VhostInfo};

/// Answers each request with the number of the instance (of the loop)
/// that served it; counts the `EventWaitCancelled` each instance got.
struct Which {
    instance: usize,
    cancelled: Arc<Mutex<Vec<usize>>>,
}

impl Protocol for Which {
    type Session = ();

    fn name(&self) -> &str {
        "which"
    }

    fn callback(&mut self, cx: &mut Cx<'_>, event: Event<'_, ()>) -> Action {
        match event {
            Event::Http(wsi, _) => cx.callback_on_writable(wsi.id),
            Event::HttpWriteable(_, writer) => {
                let sent = writer.respond(200, "text/plain", self.instance.to_string().as_bytes());
                return if sent.is_ok() { Action::Continue } else { Action::Close };
            }
            Event::EventWaitCancelled => {
                if let Ok(mut c) = self.cancelled.lock() {
                    c.push(self.instance);
                }
            }
            _ => {}
        }
        Action::Continue
    }
}

/// A context of `threads` loops serving `Which` at `/which` and files at
/// `/`; how many instances were made, and the cancellations they saw.
fn which_info(threads: usize) -> (ContextInfo, Arc<AtomicUsize>, Arc<Mutex<Vec<usize>>>, tempfile::TempDir) {
    let (t, root) = site();
    let made = Arc::new(AtomicUsize::new(0));
    let cancelled = Arc::new(Mutex::new(Vec::new()));
    let (m, c) = (Arc::clone(&made), Arc::clone(&cancelled));
    let v = vhost()
        .protocol_per_loop(move || Which { instance: m.fetch_add(1, Ordering::SeqCst), cancelled: Arc::clone(&c) })
        .mount(Mount::callback("/which", "which"))
        .mount(files_mount("/", &root));
    (ContextInfo::new().threads(threads).vhost(v), made, cancelled, t)
}

/// A keep-alive connection that has had one answer from `/which`: the
/// instance that served it.
fn which_conn(addr: SocketAddr) -> (TcpStream, String) {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(20))).expect("timeout");
    s.write_all(b"GET /which HTTP/1.1\r\nHost: localhost\r\n\r\n").expect("write");
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    let body = loop {
        let n = s.read(&mut buf).expect("read");
        assert!(n > 0, "closed before an answer: {:?}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&got).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let len: usize = head
                .lines()
                .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_string()))
                .and_then(|v| v.parse().ok())
                .expect("a length");
            if body.len() >= len {
                assert!(head.starts_with("HTTP/1.1 200"), "{head}");
                break body[..len].to_string();
            }
        }
    };
    (s, body)
}

/// `warren_loop_connections_total` by loop.
fn per_loop(m: &warren::Metrics) -> BTreeMap<String, u64> {
    per_loop_in(&m.render())
}

/// `warren_loop_connections_total` by loop, in a metrics text.
fn per_loop_in(text: &str) -> BTreeMap<String, u64> {
    text.lines()
        .filter_map(|l| l.strip_prefix("warren_loop_connections_total{loop=\""))
        .filter_map(|l| l.split_once("\"} "))
        .map(|(i, n)| (i.to_string(), n.parse().expect("a count")))
        .collect()
}

/// The whole answer to `GET path` on a connection of its own.
fn get_close(addr: SocketAddr, path: &str) -> String {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(20))).expect("timeout");
    write!(s, "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").expect("write");
    let mut got = String::new();
    s.read_to_string(&mut got).expect("read");
    got
}

/// Waits (at most 20 s) until `done` holds.
fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "{what}: not within 20 s");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn connections_are_spread_evenly_over_the_loops() {
    let (info, made, _, _t) = which_info(4);
    let server = Server::start(info);
    assert_eq!(made.load(Ordering::SeqCst), 4, "one protocol instance per loop");
    // Held open one after another: each goes to the loop with the
    // fewest, so four each, whichever loop accepted.
    let held: Vec<(TcpStream, String)> = (0..16).map(|_| which_conn(server.addr)).collect();
    let mut served: BTreeMap<String, usize> = BTreeMap::new();
    for (_, instance) in &held {
        *served.entry(instance.clone()).or_default() += 1;
    }
    assert_eq!(served.len(), 4, "every loop's instance served: {served:?}");
    assert!(served.values().all(|&n| n == 4), "{served:?}");
    let counted = per_loop(&server.handle.metrics());
    assert_eq!(counted.len(), 4, "{counted:?}");
    assert!(counted.values().all(|&n| n == 4), "{counted:?}");
}

#[test]
fn a_protocol_given_as_one_instance_is_refused_with_threads() {
    let made = Arc::new(Mutex::new(Vec::new()));
    let one = Which { instance: 0, cancelled: made };
    let info = ContextInfo::new().threads(2).vhost(vhost().protocol(one).mount(Mount::callback("/w", "which")));
    let e = Context::new(info).expect_err("refused");
    let text = e.to_string();
    assert!(e.is_invalid_input(), "{text}");
    assert!(text.contains("\"which\"") && text.contains("protocol_per_loop"), "{text}");
    assert!(Context::new(ContextInfo::new().threads(65).vhost(vhost())).is_err(), "at most 64");
}

#[test]
fn cancel_service_reaches_every_loop() {
    let (info, _, cancelled, _t) = which_info(3);
    let server = Server::start(info);
    server.handle.cancel_service();
    wait_for("every instance told", || cancelled.lock().map(|c| c.len() >= 3).unwrap_or(false));
    let mut got = cancelled.lock().expect("lock").clone();
    got.sort();
    assert_eq!(got, [0, 1, 2], "each loop's instance, once");
}

#[test]
fn a_vhost_added_later_is_served_by_every_loop() {
    let (info, _, _, _t) = which_info(3);
    let server = Server::start(info);
    let (t2, root2) = site();
    std::fs::write(root2.join("added.txt"), "added").expect("write");
    // Its own address (127.0.0.1:0 would share the first vhost's port).
    let own = SocketAddr::from(([127, 0, 0, 2], 0));
    let added = server.handle.add_vhost(VhostInfo::new("added", own).mount(files_mount("/", &root2)));
    let addr = added.recv_timeout(Duration::from_secs(20)).expect("an answer").expect("added");
    let before = per_loop(&server.handle.metrics());
    let mut held = Vec::new();
    for _ in 0..6 {
        let mut s = TcpStream::connect(addr).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(20))).expect("timeout");
        s.write_all(b"GET /added.txt HTTP/1.1\r\nHost: localhost\r\n\r\n").expect("write");
        let mut buf = [0u8; 512];
        let n = s.read(&mut buf).expect("read");
        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
        assert!(text.starts_with("HTTP/1.1 200") && text.ends_with("added"), "{text}");
        held.push(s);
    }
    let after = per_loop(&server.handle.metrics());
    let took: Vec<u64> = after.iter().map(|(k, n)| n - before.get(k).copied().unwrap_or(0)).collect();
    assert_eq!(took, [2, 2, 2], "the new address's connections on every loop");
    drop(t2);
}

#[test]
fn a_drain_ends_every_loop_and_closes_the_port() {
    let (info, _, _, _t) = which_info(4);
    let context = Context::new(info).expect("context");
    let addr = context.local_addr(0).expect("addr");
    let handle = context.handle();
    let run = std::thread::spawn(move || context.run());
    // Idle keep-alive connections on every loop.
    let mut held: Vec<TcpStream> = (0..8).map(|_| which_conn(addr).0).collect();
    let closed = handle.drain(Duration::from_secs(30));
    closed.recv_timeout(Duration::from_secs(20)).expect("the listeners of every loop closed");
    // Each idle connection is closed by its loop, and run returns.
    for s in &mut held {
        let mut buf = [0u8; 16];
        assert_eq!(s.read(&mut buf).expect("read"), 0, "closed by the drain");
    }
    let result = run.join().expect("no panic");
    assert!(result.is_ok(), "{result:?}");
    assert!(TcpStream::connect(addr).is_err(), "the port is closed");
}

#[test]
fn the_peer_limit_counts_across_loops() {
    let (t, root) = site();
    let limits = Limits { peer_connections: 3, ..Limits::default() };
    let info = ContextInfo::new().threads(3).limits(limits).vhost(vhost().mount(files_mount("/", &root)));
    let server = Server::start(info);
    let ask = |s: &mut TcpStream| -> bool {
        if s.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n").is_err() {
            return false;
        }
        let mut buf = [0u8; 12];
        matches!(s.read(&mut buf), Ok(n) if n > 0 && buf[..n].starts_with(b"HTTP/1.1"))
    };
    let mut held: Vec<TcpStream> = (0..3).map(|_| server.connect()).collect();
    for s in &mut held {
        assert!(ask(s), "within the limit");
    }
    assert_eq!(per_loop(&server.handle.metrics()).len(), 3, "one on each loop");
    let mut over = server.connect();
    assert!(!ask(&mut over), "the fourth, whatever loop would take it");
    drop(t);
}

#[test]
fn the_binary_runs_count_threads_loops() {
    let (t, root) = site();
    let root = root.to_string_lossy().into_owned();
    let (running, port) = start_warren(&["--root", &root, "--threads", "3"]);
    // The loops' threads name themselves once started (until then they
    // carry their parent's name).
    let pid = running.0.id();
    let names = || -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/task"))
            .map(|d| {
                d.filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok()).collect::<Vec<String>>()
            })
            .unwrap_or_default()
            .into_iter()
            .map(|n: String| n.trim().to_string())
            .filter(|n| n.starts_with("warren-loop-"))
            .collect();
        names.sort();
        names
    };
    wait_for("three loops", || names() == ["warren-loop-0", "warren-loop-1", "warren-loop-2"]);
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    for _ in 0..6 {
        let got = get_close(addr, "/");
        assert!(got.starts_with("HTTP/1.1 200"), "{got}");
    }
    // SIGTERM drains every loop and the process exits.
    running.signal(libc::SIGTERM);
    let mut running = running;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = running.0.try_wait().expect("wait") {
            assert!(status.success(), "{status}");
            break;
        }
        assert!(Instant::now() < deadline, "still running 20 s after SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    }
    for bad in ["0", "65", "x"] {
        let out = std::process::Command::new(BIN).args(["--root", &root, "--threads", bad]).output().expect("run");
        assert!(!out.status.success(), "--threads {bad}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("--threads"), "--threads {bad}");
    }
    drop(t);
}

#[test]
fn count_threads_in_the_configuration() {
    let t = tempfile::tempdir().expect("tempdir");
    let (site_dir, root) = site();
    let conf = |threads: &str| {
        std::fs::write(t.path().join("conf"), format!(r#"{{ "global": {{ "count-threads": "{threads}" }} }}"#))
            .expect("write");
        let site = format!(
            r#"{{ "vhosts": [ {{ "name": "localhost", "port": "0", "interface": "127.0.0.1",
                   "mounts": [ {{ "mountpoint": "/", "origin": "file://{}" }} ] }} ] }}"#,
            root.display()
        );
        std::fs::create_dir_all(t.path().join("conf.d")).expect("mkdir");
        std::fs::write(t.path().join("conf.d/site"), site).expect("write");
    };
    conf("2");
    let info = warren::config::load_dir(t.path()).expect("loads");
    let context = Context::new(info).expect("context");
    assert_eq!(context.threads(), 2);
    for bad in ["0", "65", "two"] {
        conf(bad);
        let e = warren::config::load_dir(t.path()).expect_err("refused").to_string();
        assert!(e.contains("conf") && e.contains("global.count-threads"), "{bad}: {e}");
    }
    drop(site_dir);
}

/// Issue 17 item 2: the mirror's members meet across loops. Eight
/// clients on four loops each send one message; each gets all eight,
/// and every loop served some of them.
#[test]
fn the_mirror_reaches_members_on_every_loop() {
    use support::ws::{WsClient, TEXT};
    let (running, port) = start_warren(&["--threads", "4", "--metrics", "/metrics"]);
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let proto = "Sec-WebSocket-Protocol: lws-mirror-protocol";
    // A client is a member once it gets its own message back (the 101
    // leaves before its loop has made it one: a message another loop
    // mirrors meanwhile is not for it).
    let mut clients: Vec<WsClient> = (0..8)
        .map(|i| {
            let mut c = WsClient::connect(addr, "/?mirror=x", &[proto]).expect("upgrade");
            c.stream.set_read_timeout(Some(Duration::from_secs(20))).expect("timeout");
            let hello = format!("hello {i}");
            c.send(true, TEXT, hello.as_bytes()).expect("send");
            while c.recv_message().expect("its own hello").1 != hello.as_bytes() {}
            c
        })
        .collect();
    for (i, c) in clients.iter_mut().enumerate() {
        c.send(true, TEXT, format!("from {i}").as_bytes()).expect("send");
    }
    for (i, c) in clients.iter_mut().enumerate() {
        let mut got = Vec::new();
        while got.len() < 8 {
            let (op, m) = c.recv_message().expect("a message");
            assert_eq!(op, TEXT);
            let m = String::from_utf8_lossy(&m).into_owned();
            if m.starts_with("from ") {
                got.push(m);
            }
        }
        got.sort();
        let want: Vec<String> = (0..8).map(|j| format!("from {j}")).collect();
        assert_eq!(got, want, "client {i}");
    }
    // Every loop had members (the metrics scrape is one more connection).
    let text = get_close(addr, "/metrics");
    let loops = per_loop_in(&text);
    assert_eq!(loops.len(), 4, "{text}");
    assert!(loops.values().all(|&n| n >= 2), "{loops:?}");
    drop(running);
}

/// Issue 17 item 2: lws-status lists the connections of every loop.
#[test]
fn lws_status_lists_the_connections_of_every_loop() {
    use support::ws::WsClient;
    let (running, port) = start_warren(&["--threads", "3"]);
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let proto = "Sec-WebSocket-Protocol: lws-status";
    let mut clients: Vec<WsClient> = (0..3)
        .map(|_| {
            let c = WsClient::connect(addr, "/", &[proto]).expect("upgrade");
            c.stream.set_read_timeout(Some(Duration::from_secs(20))).expect("timeout");
            c
        })
        .collect();
    // One client per loop; each is told, sooner or later, of all three.
    for (i, c) in clients.iter_mut().enumerate() {
        loop {
            let (_, m) = c.recv_message().unwrap_or_else(|e| panic!("client {i}: no report of 3: {e}"));
            let report: serde_json::Value = serde_json::from_slice(&m).expect("json");
            if report["wsi"] == "3" {
                assert_eq!(report["conns"].as_array().map(Vec::len), Some(3), "{report}");
                break;
            }
        }
    }
    drop(running);
}

/// Listening sockets on `port` (any process; the tests' ports are
/// their own).
fn listeners_on(port: u16) -> usize {
    let mut n = 0;
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = std::fs::read_to_string(table).unwrap_or_default();
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            let local_port = f.get(1).and_then(|a| a.rsplit(':').next()).and_then(|p| u16::from_str_radix(p, 16).ok());
            if local_port == Some(port) && f.get(3) == Some(&"0A") {
                n += 1;
            }
        }
    }
    n
}

#[test]
fn reuse_port_gives_each_loop_a_socket_of_its_own() {
    let (t, root) = site();
    let root = root.to_string_lossy().into_owned();
    let (plain, plain_port) = start_warren(&["--root", &root, "--threads", "3", "--metrics", "/metrics"]);
    assert_eq!(listeners_on(plain_port), 1, "by default one socket, handed out by load");
    drop(plain);
    let (running, port) = start_warren(&["--root", &root, "--threads", "3", "--reuse-port", "--metrics", "/metrics"]);
    assert_eq!(listeners_on(port), 3, "one per loop");
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    for _ in 0..30 {
        let got = get_close(addr, "/");
        assert!(got.starts_with("HTTP/1.1 200"), "{got}");
    }
    drop(running);
    let out = std::process::Command::new(BIN).args(["--root", &root, "--reuse-port"]).output().expect("run");
    assert!(!out.status.success(), "--reuse-port needs --threads");
    // The library: a vhost added later gets a socket per loop too.
    let info = ContextInfo::new().threads(2).reuse_port(true).vhost(vhost().mount(files_mount("/", Path::new(&root))));
    let server = Server::start(info);
    assert_eq!(listeners_on(server.addr.port()), 2);
    let own = SocketAddr::from(([127, 0, 0, 2], 0));
    let added = server.handle.add_vhost(VhostInfo::new("added", own).mount(files_mount("/", Path::new(&root))));
    let addr = added.recv_timeout(Duration::from_secs(20)).expect("an answer").expect("added");
    wait_for("the second loop's socket", || listeners_on(addr.port()) == 2);
    drop(t);
}

/// Probe finding: 64 loops hold descriptors of their own (a poll, a
/// waker, listener copies); the connection limit used to ignore them, so
/// with `ulimit -n 300` the process ran out at about 37 connections while
/// it counted on 112: new clients then waited, unanswered, and every loop
/// logged EMFILE ten times a second. Now the limit leaves them out: one
/// connection too many gets its 503, and the log stays quiet.
#[test]
fn many_loops_count_their_own_descriptors() {
    let (t, root) = site();
    let root = root.to_string_lossy().into_owned();
    let (running, port, log) = start_warren_with_fd_limit(&["--root", &root, "--threads", "64"], 300);
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let ask = |s: &mut TcpStream| -> String {
        s.set_read_timeout(Some(Duration::from_secs(20))).expect("timeout");
        if s.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n").is_err() {
            return "write failed".into();
        }
        let mut buf = [0u8; 12];
        match s.read(&mut buf) {
            Ok(n) => String::from_utf8_lossy(&buf[..n]).into_owned(),
            Err(e) => format!("no answer: {e}"),
        }
    };
    let mut held = Vec::new();
    let mut refused = 0;
    for _ in 0..60 {
        let mut s = TcpStream::connect(addr).expect("connect");
        let got = ask(&mut s);
        match got.as_str() {
            "HTTP/1.1 200" => held.push(s),
            "HTTP/1.1 503" => refused += 1,
            other => panic!("after {} served and {refused} refused: {other:?}", held.len()),
        }
    }
    assert!(refused > 0 && held.len() >= 8, "{} served, {refused} refused", held.len());
    drop(held);
    let mut s = TcpStream::connect(addr).expect("connect");
    wait_for("served again", || {
        ask(&mut s) == "HTTP/1.1 200" || {
            s = TcpStream::connect(addr).expect("connect");
            false
        }
    });
    drop(running);
    let lines: Vec<String> = log.iter().collect();
    let emfile = lines.iter().filter(|l| l.contains("Too many open files")).count();
    assert!(emfile <= 64, "{emfile} EMFILE warnings");
    drop(t);
}

/// A protocol's maker runs on the first loop's thread for a vhost added
/// while serving: one that panics refuses that vhost, on every loop, and
/// the loops go on serving.
#[test]
fn a_maker_that_panics_refuses_the_vhost_not_the_loops() {
    let (info, _, cancelled, _t) = which_info(2);
    let server = Server::start(info);
    let calls = Arc::new(AtomicUsize::new(0));
    let (c, seen) = (Arc::clone(&calls), Arc::clone(&cancelled));
    let v = VhostInfo::new("added", SocketAddr::from(([127, 0, 0, 2], 0)))
        .protocol_per_loop(move || {
            // The first instance is made here; the second, for the other
            // loop, on the first loop's thread.
            assert!(c.fetch_add(1, Ordering::SeqCst) == 0, "a maker that fails");
            Which { instance: 9, cancelled: Arc::clone(&seen) }
        })
        .mount(Mount::callback("/which", "which"));
    let answer = server.handle.add_vhost(v).recv_timeout(Duration::from_secs(20)).expect("an answer");
    let e = answer.expect_err("refused");
    assert!(e.to_string().contains("maker failed"), "{e}");
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    // Held open, so that the second goes to the other loop.
    let held: Vec<(TcpStream, String)> = (0..2).map(|_| which_conn(server.addr)).collect();
    let served: std::collections::BTreeSet<&String> = held.iter().map(|(_, i)| i).collect();
    assert_eq!(served.len(), 2, "both loops still serve: {served:?}");
}
