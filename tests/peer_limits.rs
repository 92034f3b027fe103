//! Peer limits (CORE-9, seed "peer_limits"): connections per peer
//! address (`Limits::peer_connections`, lwsws's global `ip-limit-wsi`,
//! `--peer-connections`): one more than the limit is closed at once with
//! no answer; other addresses are not affected; a connection that closes
//! makes room again. And requests in progress per peer address
//! (`Limits::peer_requests`, `ip-limit-ah`, `--peer-requests`): one more
//! waits, unread, until one ends.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};
use support::*;
use warren::{ContextInfo, Limits};

/// A connection from `from` (any 127/8 address) to `to`.
fn connect_from(from: &str, to: SocketAddr) -> TcpStream {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    let local: SocketAddr = format!("{from}:0").parse().expect("addr");
    s.bind(&local.into()).expect("bind");
    s.connect(&to.into()).expect("connect");
    let s: TcpStream = s.into();
    s.set_read_timeout(Some(Duration::from_secs(20))).expect("timeout");
    s
}

/// Whether the server answers a request on `c` (else it closed it
/// unanswered).
fn answered(c: &mut TcpStream) -> bool {
    if c.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n").is_err() {
        return false;
    }
    let mut first = [0u8; 12];
    match c.read(&mut first) {
        Ok(n) if n > 0 => first[..n].starts_with(b"HTTP/1.1"),
        _ => false,
    }
}

fn refused_count(m: &warren::Metrics) -> String {
    m.render().lines().find(|l| l.starts_with("warren_peer_refused_total ")).expect("the counter").to_string()
}

#[test]
fn one_connection_over_the_peer_limit_is_closed_unanswered() {
    let (_t, root) = site();
    let limits = Limits { peer_connections: 3, ..Limits::default() };
    let server = Server::start(ContextInfo::new().limits(limits).vhost(vhost().mount(files_mount("/", &root))));
    let mut held: Vec<TcpStream> = (0..3).map(|_| connect_from("127.0.0.1", server.addr)).collect();
    for c in &mut held {
        assert!(answered(c), "within the limit");
    }
    let mut over = connect_from("127.0.0.1", server.addr);
    assert!(!answered(&mut over), "the fourth from one address");
    let mut other = connect_from("127.0.0.2", server.addr);
    assert!(answered(&mut other), "another address has its own count");
    assert_eq!(refused_count(&server.handle.metrics()), "warren_peer_refused_total 1");
    // One closes: room for one more, once the server has seen the close.
    drop(held.pop());
    let until = Instant::now() + Duration::from_secs(20);
    loop {
        let mut again = connect_from("127.0.0.1", server.addr);
        if answered(&mut again) {
            held.push(again);
            break;
        }
        assert!(Instant::now() < until, "no room after a connection closed");
        std::thread::sleep(Duration::from_millis(20));
    }
    // Full again.
    assert!(!answered(&mut connect_from("127.0.0.1", server.addr)));
}

#[test]
fn the_configuration_and_the_flag_set_the_limit() {
    let (_t, root) = site();
    let root = root.to_string_lossy().into_owned();
    let conf = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(conf.path().join("conf.d")).expect("mkdir");
    std::fs::write(conf.path().join("conf"), r#"{"global": {"ip-limit-wsi": "2", "ip-limit-ah": "1"}}"#).expect("conf");
    std::fs::write(
        conf.path().join("conf.d/site"),
        format!(
            r#"{{"vhosts": [{{"name": "localhost", "port": "0", "interface": "127.0.0.1",
                "mounts": [{{"mountpoint": "/", "origin": "file://{root}"}}]}}]}}"#
        ),
    )
    .expect("site");
    let (_w, port) = start_warren(&["--config", conf.path().to_str().expect("utf-8")]);
    let (_f, flag_port) = start_warren(&["--root", &root, "--peer-connections", "2", "--peer-requests", "1"]);
    for port in [port, flag_port] {
        let to: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
        let mut held: Vec<TcpStream> = (0..2).map(|_| connect_from("127.0.0.1", to)).collect();
        assert!(held.iter_mut().all(answered));
        assert!(!answered(&mut connect_from("127.0.0.1", to)), "a third, on {port}");
    }
}

/// The peer's own counter of waits, from the metrics.
fn waits(m: &warren::Metrics) -> String {
    m.render().lines().find(|l| l.starts_with("warren_peer_waits_total ")).expect("the counter").to_string()
}

/// A server with `limits` whose peer 127.0.0.1 holds one request slot:
/// a download far bigger than the socket buffers hold, begun and not
/// read, so its response stays in progress. Returns the server, the site
/// and the downloading connection, and the download's size.
fn one_slot_held(limits: Limits) -> (Server, tempfile::TempDir, TcpStream, usize) {
    let (t, root) = site();
    let big = 32usize << 20;
    std::fs::write(root.join("big.bin"), vec![b'x'; big]).expect("big");
    let server = Server::start(ContextInfo::new().limits(limits).vhost(vhost().mount(files_mount("/", &root))));
    let mut first = connect_from("127.0.0.1", server.addr);
    first.write_all(b"GET /big.bin HTTP/1.1\r\nHost: localhost\r\n\r\n").expect("write");
    let mut peek = [0u8; 1];
    assert_eq!(first.peek(&mut peek).expect("the response begins"), 1);
    (server, t, first, big)
}

/// `Limits::peer_requests` (lwsws's `ip-limit-ah`) is soft: a request
/// from a peer that has as many in progress waits, unread, and is
/// answered once one of them ends; another address is served meanwhile.
#[test]
fn a_request_over_the_peer_limit_waits_for_one_to_end() {
    let (server, _t, first, big) = one_slot_held(Limits { peer_requests: 1, ..Limits::default() });

    let mut second = connect_from("127.0.0.1", server.addr);
    second.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n").expect("write");
    let until = Instant::now() + Duration::from_secs(20);
    while waits(&server.handle.metrics()) != "warren_peer_waits_total 1" {
        assert!(Instant::now() < until, "the second request never waited");
        std::thread::sleep(Duration::from_millis(10));
    }
    second.set_nonblocking(true).expect("nonblocking");
    let mut buf = [0u8; 64];
    assert!(
        matches!(second.read(&mut buf), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "answered while its peer's one request was in progress"
    );
    assert!(answered(&mut connect_from("127.0.0.2", server.addr)), "another address is served meanwhile");

    let whole = Reader::new(first).response(false).expect("the big response");
    assert_eq!((whole.status, whole.body.len()), (200, big));
    second.set_nonblocking(false).expect("blocking");
    let r = Reader::new(second).response(false).expect("the waiting one is answered");
    assert_eq!(r.status, 200);
}

/// A request that waits for its peer's slot until its header timeout is
/// answered 503 with `Retry-After`, not closed unanswered.
#[test]
fn a_request_still_waiting_at_its_deadline_gets_503() {
    // The first response outlives the second's header timeout whatever
    // the machine's speed: its own io timeout is far longer.
    let limits = Limits {
        peer_requests: 1,
        header_timeout: Duration::from_secs(1),
        io_timeout: Duration::from_secs(600),
        ..Limits::default()
    };
    let (server, _t, first, _) = one_slot_held(limits);
    let mut second = connect_from("127.0.0.1", server.addr);
    second.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n").expect("write");
    let r = Reader::new(second).response(false).expect("an answer at the deadline");
    assert_eq!((r.status, r.header("retry-after")), (503, Some("1")));
    drop(first);
}
