//! Peer limits (CORE-9, seed "peer_limits"): connections per peer
//! address (`Limits::peer_connections`, lwsws's global `ip-limit-wsi`,
//! `--peer-connections`). One more than the limit is closed at once with
//! no answer; other addresses are not affected; a connection that closes
//! makes room again.

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
    std::fs::write(conf.path().join("conf"), r#"{"global": {"ip-limit-wsi": "2"}}"#).expect("conf");
    std::fs::write(
        conf.path().join("conf.d/site"),
        format!(
            r#"{{"vhosts": [{{"name": "localhost", "port": "0", "interface": "127.0.0.1",
                "mounts": [{{"mountpoint": "/", "origin": "file://{root}"}}]}}]}}"#
        ),
    )
    .expect("site");
    let (_w, port) = start_warren(&["--config", conf.path().to_str().expect("utf-8")]);
    let (_f, flag_port) = start_warren(&["--root", &root, "--peer-connections", "2"]);
    for port in [port, flag_port] {
        let to: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
        let mut held: Vec<TcpStream> = (0..2).map(|_| connect_from("127.0.0.1", to)).collect();
        assert!(held.iter_mut().all(answered));
        assert!(!answered(&mut connect_from("127.0.0.1", to)), "a third, on {port}");
    }
}
