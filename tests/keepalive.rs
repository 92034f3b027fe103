//! TCP keepalive per vhost (seed "ka"; lws's `ka_time`, `ka_probes`,
//! `ka_interval`): what the library, the `--tcp-keepalive` flag and the
//! `ka-*` configuration keys ask for is what the kernel has on the
//! server's end of each accepted connection, read back from outside
//! the server through its descriptors.

mod support;

use std::io::Write;
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;
use support::sockets::{keepalive, server_end};
use support::*;

/// A connection to `port`, with one request answered (so the server has
/// accepted it), and the server's end's keepalive.
fn keepalive_seen(pid: u32, port: u16) -> Option<(Duration, u32, Duration)> {
    let mut c = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    c.set_read_timeout(Some(Duration::from_secs(20))).expect("timeout");
    c.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n").expect("write");
    let mut r = Reader::new(c.try_clone().expect("clone"));
    assert!(r.response(false).expect("response").status < 500);
    let mine = c.local_addr().expect("local").port();
    keepalive(&server_end(pid, port, mine))
}

#[test]
fn a_vhost_turns_tcp_keepalive_on() {
    let (_t, root) = site();
    let on = Server::start(warren::ContextInfo::new().vhost(
        vhost().tcp_keepalive(Duration::from_secs(7), 4, Duration::from_secs(3)).mount(files_mount("/", &root)),
    ));
    let off = Server::start(warren::ContextInfo::new().vhost(vhost().mount(files_mount("/", &root))));
    let me = std::process::id();
    assert_eq!(keepalive_seen(me, on.addr.port()), Some((Duration::from_secs(7), 4, Duration::from_secs(3))));
    assert_eq!(keepalive_seen(me, off.addr.port()), None, "off unless asked for");
}

#[test]
fn the_flag_and_the_configuration_keys_set_it() {
    let (_t, root) = site();
    let root = root.to_string_lossy().into_owned();
    let (w, port) = start_warren(&["--root", &root, "--tcp-keepalive", "30,5,10"]);
    assert_eq!(keepalive_seen(w.0.id(), port), Some((Duration::from_secs(30), 5, Duration::from_secs(10))));
    let (w, port) = start_warren(&["--root", &root, "--tcp-keepalive", "45"]);
    // Linux's own defaults for what is left out.
    assert_eq!(keepalive_seen(w.0.id(), port), Some((Duration::from_secs(45), 9, Duration::from_secs(75))));

    let conf = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(conf.path().join("conf.d")).expect("mkdir");
    std::fs::write(conf.path().join("conf"), "{}").expect("conf");
    std::fs::write(
        conf.path().join("conf.d/site"),
        format!(
            r#"{{"vhosts": [{{"name": "localhost", "port": "0", "interface": "127.0.0.1",
                "ka-time": "20", "ka-probes": "2", "ka-interval": "4",
                "mounts": [{{"mountpoint": "/", "origin": "file://{root}"}}]}}]}}"#
        ),
    )
    .expect("site");
    let (w, port) = start_warren(&["--config", conf.path().to_str().expect("utf-8")]);
    assert_eq!(keepalive_seen(w.0.id(), port), Some((Duration::from_secs(20), 2, Duration::from_secs(4))));
}

#[test]
fn values_out_of_range_are_refused() {
    for bad in ["0", "30,0", "30,128", "30,5,0", "x", "30,5,10,1", "40000"] {
        let out = Command::new(env!("CARGO_BIN_EXE_warren"))
            .args(["--tcp-keepalive", bad])
            .stdin(Stdio::null())
            .output()
            .expect("run");
        assert_eq!(out.status.code(), Some(2), "--tcp-keepalive {bad}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("--tcp-keepalive") && err.contains("expected"), "{bad}: {err}");
    }
    let t = tempfile::tempdir().expect("tempdir");
    for (keys, key, says) in [
        (r#""ka-probes": "3""#, "vhosts[0].ka-probes", "\"ka-time\" too"),
        (r#""ka-time": "10", "ka-probes": "200""#, "vhosts[0].ka-probes", "from 0 to 127"),
        (r#""ka-time": "10", "ka-interval": "0""#, "vhosts[0].ka-interval", "at least 1"),
        (r#""ka-time": "99999""#, "vhosts[0].ka-time", "from 0 to 32767"),
        (r#""ka-time": "soon""#, "vhosts[0].ka-time", "expected a number"),
    ] {
        std::fs::create_dir_all(t.path().join("conf.d")).expect("mkdir");
        std::fs::write(t.path().join("conf"), "{}").expect("conf");
        std::fs::write(
            t.path().join("conf.d/site"),
            format!(r#"{{"vhosts": [{{"name": "a", "port": "0", {keys}}}]}}"#),
        )
        .expect("site");
        let e = warren::config::load_dir(t.path()).map(|_| ()).expect_err(keys);
        assert!(e.message.contains(key) && e.message.contains(says), "{keys}: {e}");
    }
    // From code: not whole seconds.
    let e = warren::Context::new(warren::ContextInfo::new().vhost(vhost().tcp_keepalive(
        Duration::from_millis(1500),
        3,
        Duration::from_secs(1),
    )))
    .expect_err("1.5 s");
    assert!(e.is_invalid_input() && e.to_string().contains("whole seconds"), "{e}");
}
