//! Stopping and reloading a running `warren` with real signals (issue 14
//! items 1 and 2; spec CFG-10): SIGTERM finishes what is in flight and
//! exits 0, SIGHUP loads the configuration again on the same listening
//! sockets while connections in flight finish on the old one.
//!
//! No test here waits for a time to pass: each holds its client where it
//! wants it (a download not read, a CGI program waiting for a file the
//! test creates), sends the signal, and waits for warren to say (in its
//! log) that it acted, before going on.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::process::ExitStatus;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::tls::fd_count;
use support::*;

/// Generous: only reached when something is wrong.
const PATIENCE: Duration = Duration::from_secs(60);

fn signal(w: &Running, sig: libc::c_int) {
    // SAFETY: kill with a child's pid and a valid signal number.
    assert_eq!(unsafe { libc::kill(w.0.id() as libc::pid_t, sig) }, 0, "kill");
}

/// Reads log lines until one contains `needle`; returns it.
fn wait_line(log: &Receiver<String>, needle: &str) -> String {
    wait_line_seeing(log, needle, &mut Vec::new())
}

/// Waits until every service loop has begun the drain (each says
/// "draining"; with `WARREN_TEST_THREADS` there are several, and the
/// port closes only once the last has closed its copy of the listener).
fn wait_drain(log: &Receiver<String>) {
    for _ in 0..support::test_threads().unwrap_or(1).max(1) {
        wait_line(log, "draining");
    }
}

/// [`wait_line`], keeping every line read in `seen`.
fn wait_line_seeing(log: &Receiver<String>, needle: &str, seen: &mut Vec<String>) -> String {
    let until = Instant::now() + PATIENCE;
    loop {
        let left = until.saturating_duration_since(Instant::now());
        match log.recv_timeout(left) {
            Ok(line) => {
                seen.push(line.clone());
                if line.contains(needle) {
                    return line;
                }
            }
            Err(e) => panic!("no log line with {needle:?}: {e}"),
        }
    }
}

fn wait_exit(w: &mut Running) -> ExitStatus {
    let until = Instant::now() + PATIENCE;
    loop {
        if let Some(status) = w.0.try_wait().expect("try_wait") {
            return status;
        }
        assert!(Instant::now() < until, "warren did not exit");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// SIGTERM, and warren exits 0.
fn stop(w: &mut Running) {
    signal(w, libc::SIGTERM);
    let status = wait_exit(w);
    assert_eq!(status.code(), Some(0), "{status:?}");
}

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// Sends a GET for `path` and reads the response head; the body is left
/// to the caller. Returns the stream and the head.
fn begin_get(port: u16, path: &str) -> (BufReader<TcpStream>, String) {
    let mut s = TcpStream::connect(addr(port)).expect("connect");
    s.set_read_timeout(Some(PATIENCE)).expect("timeout");
    write!(s, "GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").expect("send");
    let mut r = BufReader::new(s);
    let mut head = String::new();
    loop {
        let mut line = String::new();
        assert!(r.read_line(&mut line).expect("head") > 0, "closed in the head: {head}");
        head.push_str(&line);
        if line == "\r\n" {
            return (r, head);
        }
    }
}

fn content_length(head: &str) -> usize {
    head.lines()
        .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_string()))
        .and_then(|v| v.parse().ok())
        .expect("content-length")
}

/// A GET with `Connection: close`: (status, body).
fn fetch(port: u16, path: &str) -> (u16, Vec<u8>) {
    let mut s = TcpStream::connect(addr(port)).expect("connect");
    s.set_read_timeout(Some(PATIENCE)).expect("timeout");
    write!(s, "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").expect("send");
    let mut all = Vec::new();
    s.read_to_end(&mut all).expect("read");
    let end = all.windows(4).position(|w| w == b"\r\n\r\n").expect("a head") + 4;
    let status = std::str::from_utf8(&all[9..12]).expect("status").parse().expect("status");
    (status, all[end..].to_vec())
}

fn refused(port: u16) -> bool {
    matches!(TcpStream::connect(addr(port)), Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused)
}

/// A big file, a download of it begun and held (the test reads 64 KiB
/// and then nothing: warren's writes wait on the full socket), SIGTERM:
/// no new connection is taken, the download completes whole, warren
/// exits 0 once it has, and the access log has its line.
#[test]
fn sigterm_lets_a_download_in_flight_finish() {
    let t = tempfile::tempdir().expect("tempdir");
    let big = pattern(24 << 20);
    std::fs::write(t.path().join("big.bin"), &big).expect("write");
    let log_path = t.path().join("access.log");
    let cfg = t.path().join("cfg");
    std::fs::create_dir_all(cfg.join("conf.d")).expect("mkdir");
    std::fs::write(cfg.join("conf"), "{}").expect("conf");
    std::fs::write(
        cfg.join("conf.d/site"),
        format!(
            r#"{{ "vhosts": [ {{ "name": "localhost", "port": "0", "interface": "127.0.0.1",
                "access-log": "{log}",
                "mounts": [ {{ "mountpoint": "/", "origin": "file://{root}" }} ] }} ] }}"#,
            log = log_path.display(),
            root = t.path().display()
        ),
    )
    .expect("site");
    let (mut w, port, log) = start_warren_logged(&["--config", &cfg.to_string_lossy(), "--grace", "600"]);
    let (mut r, head) = begin_get(port, "/big.bin");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(content_length(&head), big.len());
    let mut body = vec![0; 64 * 1024];
    r.read_exact(&mut body).expect("the first bytes");
    signal(&w, libc::SIGTERM);
    wait_drain(&log);
    assert!(refused(port), "the listener is closed once the drain begins");
    let mut rest = Vec::new();
    r.read_to_end(&mut rest).expect("the rest");
    body.extend_from_slice(&rest);
    assert!(body == big, "the download in flight completed whole ({} of {} bytes)", body.len(), big.len());
    let status = wait_exit(&mut w);
    assert_eq!(status.code(), Some(0), "{status:?}");
    let logged = std::fs::read_to_string(&log_path).expect("access log");
    let sent: usize = logged
        .split("\"GET /big.bin HTTP/1.1\" 200 ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no line for the download: {logged}"));
    assert!(sent > big.len(), "the line counts the whole response: {logged}");
}

/// A second SIGTERM (or SIGINT) stops at once: the held download is cut.
#[test]
fn a_second_signal_stops_at_once() {
    let t = tempfile::tempdir().expect("tempdir");
    let big = pattern(24 << 20);
    std::fs::write(t.path().join("big.bin"), &big).expect("write");
    let root = t.path().to_string_lossy().into_owned();
    let (mut w, port, log) = start_warren_logged(&["--root", &root, "--grace", "600"]);
    let (mut r, _) = begin_get(port, "/big.bin");
    let mut first = vec![0; 64 * 1024];
    r.read_exact(&mut first).expect("the first bytes");
    signal(&w, libc::SIGTERM);
    wait_drain(&log);
    signal(&w, libc::SIGINT);
    let status = wait_exit(&mut w);
    assert_eq!(status.code(), Some(0), "{status:?}");
    let mut rest = Vec::new();
    let _ = r.read_to_end(&mut rest);
    assert!(first.len() + rest.len() < big.len(), "the download was cut");
}

/// A WebSocket to the echo protocol, which has echoed `text`.
fn echoing(port: u16, text: &str) -> ws::WsClient {
    let mut ws = ws::WsClient::connect(addr(port), "/", &[]).expect("upgrade");
    ws.text(text).expect("send");
    assert_eq!(ws.recv_message().expect("echo"), (ws::TEXT, text.as_bytes().to_vec()));
    ws
}

/// SIGTERM closes a WebSocket with 1001 (going away).
#[test]
fn sigterm_closes_websockets_with_1001() {
    let (mut w, port, log) = start_warren_logged(&["--grace", "600"]);
    let mut ws = echoing(port, "hello");
    signal(&w, libc::SIGTERM);
    wait_drain(&log);
    let close = ws.recv().expect("a close frame");
    assert_eq!(close.close_code(), Some(1001), "{close:?}");
    // Answer it: the handshake completes and warren exits.
    ws.send(true, ws::CLOSE, &1001u16.to_be_bytes()).expect("close back");
    let status = wait_exit(&mut w);
    assert_eq!(status.code(), Some(0), "{status:?}");
}

/// A CGI program that waits for a file, with a program of its own left
/// running in the background (in its process group).
fn waiting_cgi(dir: &Path) -> std::path::PathBuf {
    let bin = dir.join("cgi-bin");
    std::fs::create_dir_all(&bin).expect("mkdir");
    let go = dir.join("go");
    let prog = bin.join("wait.sh");
    std::fs::write(
        &prog,
        format!(
            "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\n'\nsleep 300 >/dev/null 2>&1 &\necho \"pid $$ bg $!\"\n\
             while [ ! -e '{go}' ]; do sleep 0.05; done\necho done\n",
            go = go.display()
        ),
    )
    .expect("write");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&prog, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    bin
}

/// Orphans of the CGI programs (their background children, once warren
/// ended the program) come to this process to be reaped, not to PID 1
/// (which in a container may reap nothing).
fn become_subreaper() {
    // SAFETY: prctl with an integer option.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
}

/// Whether any process of group `pgid` is left, after reaping those of
/// it that became this process's children.
fn group_alive(pgid: i32) -> bool {
    // SAFETY: waitpid for any child in the group, with a null status
    // pointer; it returns 0 or -1 when there is none to reap.
    while unsafe { libc::waitpid(-pgid, std::ptr::null_mut(), libc::WNOHANG) } > 0 {}
    // SAFETY: kill with signal 0 sends nothing.
    unsafe { libc::kill(-pgid, 0) == 0 }
}

fn cgi_pids(line: &str) -> (i32, i32) {
    let mut words = line.split_whitespace();
    let mut next = |w: &str| {
        assert_eq!(words.next(), Some(w), "{line}");
        words.next().and_then(|v| v.parse().ok()).expect("a pid")
    };
    (next("pid"), next("bg"))
}

/// warren with `--grace grace` and the [`waiting_cgi`], its response
/// begun: the program's first line read, which gives its process group.
/// The test becomes a subreaper first, to see the group's orphans.
fn cgi_in_flight(grace: &str) -> (tempfile::TempDir, Running, Receiver<String>, BufReader<TcpStream>, i32) {
    become_subreaper();
    let t = tempfile::tempdir().expect("tempdir");
    let bin = waiting_cgi(t.path());
    let (w, port, log) = start_warren_logged(&["--cgi", &format!("/cgi-bin={}", bin.display()), "--grace", grace]);
    let (mut r, head) = begin_get(port, "/cgi-bin/wait.sh");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let mut line = String::new();
    // Chunked: the size line, then the program's first line.
    r.read_line(&mut line).expect("chunk size");
    line.clear();
    r.read_line(&mut line).expect("pids");
    let (pid, bg) = cgi_pids(&line);
    assert!(bg > 0, "{line}");
    (t, w, log, r, pid)
}

/// A CGI response in flight when SIGTERM comes finishes within the
/// grace; after warren exits, the program's whole process group is gone
/// (its background child too), and warren reaped the program itself.
#[test]
fn sigterm_lets_a_cgi_finish_then_ends_its_group() {
    let (t, mut w, log, mut r, pid) = cgi_in_flight("600");
    signal(&w, libc::SIGTERM);
    wait_drain(&log);
    std::fs::write(t.path().join("go"), b"").expect("go");
    let mut rest = String::new();
    r.read_to_string(&mut rest).expect("the rest");
    assert!(rest.contains("done") && rest.ends_with("0\r\n\r\n"), "the response completed: {rest:?}");
    let status = wait_exit(&mut w);
    assert_eq!(status.code(), Some(0), "{status:?}");
    // SAFETY: waitpid on a pid, with a null status pointer.
    let reaped_by_us = unsafe { libc::waitpid(pid, std::ptr::null_mut(), libc::WNOHANG) } == pid;
    assert!(!reaped_by_us, "warren reaped its CGI program before exiting (no zombie left to others)");
    let until = Instant::now() + PATIENCE;
    while group_alive(pid) {
        assert!(Instant::now() < until, "the CGI program's process group {pid} outlived warren");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A CGI program still running when the grace ends is ended with its
/// group, and warren exits 0.
#[test]
fn a_cgi_past_the_grace_is_ended_with_its_group() {
    let (_t, mut w, log, mut r, pid) = cgi_in_flight("1");
    signal(&w, libc::SIGTERM);
    wait_drain(&log);
    // Never told to go on: the grace ends it.
    let mut rest = String::new();
    let _ = r.read_to_string(&mut rest);
    assert!(!rest.contains("done"), "{rest:?}");
    let status = wait_exit(&mut w);
    assert_eq!(status.code(), Some(0), "{status:?}");
    let until = Instant::now() + PATIENCE;
    while group_alive(pid) {
        assert!(Instant::now() < until, "the CGI program's process group {pid} outlived warren");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A configuration directory serving `root` at `/` on 127.0.0.1, any port.
fn write_config(cfg: &Path, root: &Path) {
    std::fs::create_dir_all(cfg.join("conf.d")).expect("mkdir");
    std::fs::write(cfg.join("conf"), "{}").expect("conf");
    std::fs::write(
        cfg.join("conf.d/site"),
        format!(
            r#"{{ "vhosts": [ {{ "name": "localhost", "port": "0", "interface": "127.0.0.1",
                "mounts": [ {{ "mountpoint": "/", "origin": "file://{}" }} ] }} ] }}"#,
            root.display()
        ),
    )
    .expect("site");
}

/// warren on a configuration (in `dir`/cfg) serving `root`.
fn start_config(dir: &Path, root: &Path) -> (std::path::PathBuf, Running, u16, Receiver<String>) {
    let cfg = dir.join("cfg");
    write_config(&cfg, root);
    let (w, port, log) = start_warren_logged(&["--config", &cfg.to_string_lossy()]);
    (cfg, w, port, log)
}

/// SIGHUP with a changed mount: new requests get the new one on the same
/// port, while a download begun before finishes from the old one.
#[test]
fn reload_switches_new_requests_while_a_download_in_flight_finishes() {
    let t = tempfile::tempdir().expect("tempdir");
    let (one, two) = (t.path().join("one"), t.path().join("two"));
    for (dir, name) in [(&one, "one"), (&two, "two")] {
        std::fs::create_dir_all(dir).expect("mkdir");
        std::fs::write(dir.join("which.txt"), name).expect("write");
    }
    let big = pattern(24 << 20);
    std::fs::write(one.join("big.bin"), &big).expect("write");
    let cfg = t.path().join("cfg");
    write_config(&cfg, &one);
    let (mut w, port, log) = start_warren_logged(&["--config", &cfg.to_string_lossy(), "--grace", "600"]);
    assert_eq!(fetch(port, "/which.txt"), (200, b"one".to_vec()));
    let (mut r, _) = begin_get(port, "/big.bin");
    let mut body = vec![0; 64 * 1024];
    r.read_exact(&mut body).expect("the first bytes");
    write_config(&cfg, &two);
    signal(&w, libc::SIGHUP);
    let line = wait_line(&log, "reloaded");
    assert!(line.contains(&format!("127.0.0.1:{port}")), "the same port: {line}");
    assert_eq!(fetch(port, "/which.txt"), (200, b"two".to_vec()), "new connections get the new configuration");
    assert_eq!(fetch(port, "/big.bin").0, 404, "not in the new mount");
    let mut rest = Vec::new();
    r.read_to_end(&mut rest).expect("the rest");
    body.extend_from_slice(&rest);
    assert!(body == big, "the old connection finished on the old configuration");
    stop(&mut w);
}

/// A configuration that does not load (broken JSON, a port another
/// process holds, a missing certificate, a missing mount origin) is
/// logged with its error at SIGHUP, and the one before keeps serving.
#[test]
fn a_reload_that_fails_keeps_the_running_configuration() {
    let (t, root) = site();
    let (cfg, mut w, port, log) = start_config(t.path(), &root);
    let held = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let taken = held.local_addr().expect("addr").port();
    let site = cfg.join("conf.d/site");
    let cases = [
        ("broken JSON", r#"{ "vhosts": [ { "name": "localhost", "port": "0" "#.to_string(), "conf.d/site:"),
        (
            "a port taken",
            format!(
                r#"{{ "vhosts": [ {{ "name": "localhost", "port": "{taken}", "interface": "127.0.0.1",
                    "mounts": [ {{ "mountpoint": "/", "origin": "file://{}" }} ] }} ] }}"#,
                root.display()
            ),
            &format!("127.0.0.1:{taken}"),
        ),
        (
            "a missing certificate",
            format!(
                r#"{{ "vhosts": [ {{ "name": "localhost", "port": "0", "interface": "127.0.0.1",
                    "host-ssl-cert": "{0}/no-cert.pem", "host-ssl-key": "{0}/no-key.pem",
                    "mounts": [ {{ "mountpoint": "/", "origin": "file://{1}" }} ] }} ] }}"#,
                t.path().display(),
                root.display()
            ),
            "no-cert.pem",
        ),
        (
            "a missing origin",
            r#"{ "vhosts": [ { "name": "localhost", "port": "0", "interface": "127.0.0.1",
                "mounts": [ { "mountpoint": "/", "origin": "file:///no/such/dir" } ] } ] }"#
                .to_string(),
            "/no/such/dir",
        ),
    ];
    std::fs::write(cfg.join("conf"), r#"{ "global": { "init-ssl": "1" } }"#).expect("conf");
    for (what, text, named) in &cases {
        std::fs::write(&site, text).expect("write");
        signal(&w, libc::SIGHUP);
        let line = wait_line(&log, "reload failed");
        assert!(line.contains(named), "{what}: the error names {named:?}: {line}");
        assert_eq!(fetch(port, "/index.html"), (200, b"<h1>root index</h1>\n".to_vec()), "{what}");
    }
    drop(held);
    stop(&mut w);
}

/// Twenty SIGHUPs at once: warren keeps serving, and once the reloads
/// are over it holds no more descriptors than before them.
#[test]
fn a_sighup_storm_leaves_one_configuration_serving() {
    let (t, root) = site();
    let (_cfg, mut w, port, log) = start_config(t.path(), &root);
    assert_eq!(fetch(port, "/index.html").0, 200);
    let pid = w.0.id();
    let before = fd_count(pid);
    for _ in 0..20 {
        signal(&w, libc::SIGHUP);
    }
    wait_line(&log, "reloaded");
    assert_eq!(fetch(port, "/index.html").0, 200);
    // A last reload, alone, after the storm: once it is in and the one
    // before has drained (it had no connection), one context is left.
    std::thread::sleep(Duration::from_millis(200));
    while log.try_recv().is_ok() {}
    signal(&w, libc::SIGHUP);
    wait_line(&log, "reloaded");
    let until = Instant::now() + PATIENCE;
    while fd_count(pid) > before {
        assert!(Instant::now() < until, "descriptors: {} before the storm, {} after", before, fd_count(pid));
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(fetch(port, "/index.html").0, 200);
    stop(&mut w);
}

/// Clients that keep requesting over keep-alive connections while warren
/// reloads twenty times see no failed request: the listening socket is
/// never closed, and the old configuration's connections end after a
/// response (`Connection: close`), never under a request.
#[test]
fn twenty_reloads_under_load_fail_no_request() {
    let (t, root) = site();
    let (_cfg, mut w, port, log) = start_config(t.path(), &root);
    let done = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let (done, ok, failed) = (done.clone(), ok.clone(), failed.clone());
            std::thread::spawn(move || {
                let mut conn: Option<BufReader<TcpStream>> = None;
                let mut errors = Vec::new();
                while !done.load(Ordering::Relaxed) {
                    let c = match conn.take() {
                        Some(c) => c,
                        None => match TcpStream::connect(addr(port)) {
                            Ok(s) => {
                                s.set_read_timeout(Some(PATIENCE)).expect("timeout");
                                BufReader::new(s)
                            }
                            Err(e) => {
                                failed.fetch_add(1, Ordering::Relaxed);
                                errors.push(format!("connect: {e}"));
                                continue;
                            }
                        },
                    };
                    match keepalive_get(c, "/data.bin", 100 * 1024 + 7) {
                        Ok(next) => {
                            ok.fetch_add(1, Ordering::Relaxed);
                            conn = next;
                        }
                        Err(e) => {
                            failed.fetch_add(1, Ordering::Relaxed);
                            errors.push(e);
                        }
                    }
                }
                errors
            })
        })
        .collect();
    for i in 0..20 {
        let before = ok.load(Ordering::Relaxed);
        signal(&w, libc::SIGHUP);
        wait_line(&log, "reloaded");
        // Some requests between reloads, so each drains connections.
        let until = Instant::now() + PATIENCE;
        while ok.load(Ordering::Relaxed) < before + 20 {
            assert!(Instant::now() < until, "no progress after reload {i}");
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    done.store(true, Ordering::Relaxed);
    let errors: Vec<String> = clients.into_iter().flat_map(|c| c.join().expect("client")).collect();
    assert!(errors.is_empty(), "{} failed of {}: {errors:?}", errors.len(), ok.load(Ordering::Relaxed));
    assert_eq!(failed.load(Ordering::Relaxed), 0);
    stop(&mut w);
}

/// One keep-alive GET of `path` whose body is `len` bytes; the connection
/// back unless the response said it closes.
fn keepalive_get(mut c: BufReader<TcpStream>, path: &str, len: usize) -> Result<Option<BufReader<TcpStream>>, String> {
    write!(c.get_mut(), "GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").map_err(|e| format!("send: {e}"))?;
    let mut head = String::new();
    loop {
        let mut line = String::new();
        match c.read_line(&mut line) {
            Ok(0) => return Err(format!("closed before the response ended its head: {head:?}")),
            Ok(_) => {}
            Err(e) => return Err(format!("head: {e}")),
        }
        head.push_str(&line);
        if line == "\r\n" {
            break;
        }
    }
    if !head.starts_with("HTTP/1.1 200") {
        return Err(format!("status: {head:?}"));
    }
    let mut body = vec![0; len];
    c.read_exact(&mut body).map_err(|e| format!("body: {e}"))?;
    let closes = head.to_ascii_lowercase().contains("connection: close");
    Ok((!closes).then_some(c))
}

/// The library's side of a reload: a second context takes the first
/// one's listening socket (`ContextHandle::listeners`,
/// `ContextInfo::listener`); once the first has been retired and says its
/// listeners are closed, every new connection is the second's, a
/// keep-alive connection of the first gets `Connection: close` on its
/// next response, and the first's loop ends with its last connection.
#[test]
fn a_context_hands_its_listener_to_the_next() {
    let (t, root) = site();
    let other = t.path().join("other");
    std::fs::create_dir_all(&other).expect("mkdir");
    std::fs::write(other.join("index.html"), b"second\n").expect("write");
    let listener = warren::bind_listener(addr(0)).expect("bind");
    let at = listener.local_addr().expect("addr");
    let first = warren::Context::new(
        warren::ContextInfo::new().vhost(vhost_at(at).mount(files_mount("/", &root))).listener(listener),
    )
    .expect("first");
    assert_eq!(first.local_addr(0), Some(at), "the vhost took the socket handed over");
    let first_handle = first.handle();
    let first_loop = std::thread::spawn(move || first.run());
    // A keep-alive connection of the first.
    let old = TcpStream::connect(at).expect("connect");
    old.set_read_timeout(Some(PATIENCE)).expect("timeout");
    let old = BufReader::new(old);
    let old = keepalive_get(old, "/index.html", 20).expect("first").expect("kept alive");
    let handed = first_handle.listeners().expect("listeners");
    assert_eq!(handed.len(), 1);
    let second = warren::Context::new(
        warren::ContextInfo::new()
            .vhost(vhost_at(at).mount(files_mount("/", &other)))
            .listener(handed.into_iter().next().expect("one")),
    )
    .expect("second on the same address: no bind error");
    let second_handle = second.handle();
    let second_loop = std::thread::spawn(move || second.run());
    first_handle.retire(Duration::from_secs(600)).recv_timeout(PATIENCE).expect("the first closed its listeners");
    assert!(first_handle.listeners().expect("listeners").is_empty());
    assert_eq!(fetch(at.port(), "/index.html"), (200, b"second\n".to_vec()));
    // The old connection: served by the first, and told it is the last.
    let mut old = old.into_inner();
    write!(old, "GET /index.html HTTP/1.1\r\nHost: localhost\r\n\r\n").expect("send");
    let mut answer = Vec::new();
    old.read_to_end(&mut answer).expect("read");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.contains("root index") && answer.to_ascii_lowercase().contains("connection: close"), "{answer}");
    first_loop.join().expect("first loop").expect("first ran");
    assert_eq!(fetch(at.port(), "/index.html").0, 200, "the second serves on");
    second_handle.drain(Duration::from_secs(600));
    second_loop.join().expect("second loop").expect("second ran");
    assert!(refused(at.port()), "the socket closed with the last context");
}

fn vhost_at(at: SocketAddr) -> warren::VhostInfo {
    warren::VhostInfo::new("localhost", at)
}

/// `--metrics PATH` serves the counters, which reloads share: requests
/// counted before a reload are still there after it, and each reload is
/// counted by its result.
#[test]
fn metrics_survive_reloads_and_count_them() {
    let (t, root) = site();
    let (mut w, port, log) = start_warren_logged(&["--root", &root.to_string_lossy(), "--metrics", "/metrics"]);
    assert_eq!(fetch(port, "/index.html").0, 200);
    signal(&w, libc::SIGHUP);
    wait_line(&log, "reloaded");
    // A reload that fails: the root is gone.
    let moved = t.path().join("moved");
    std::fs::rename(&root, &moved).expect("rename");
    signal(&w, libc::SIGHUP);
    wait_line(&log, "reload failed");
    let (status, body) = fetch(port, "/metrics");
    let text = String::from_utf8_lossy(&body);
    assert_eq!(status, 200, "{text}");
    let value = |series: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(series).map(|v| v.trim().parse().expect("a number")))
            .unwrap_or_else(|| panic!("no {series} in {text}"))
    };
    assert_eq!(value("warren_reloads_total{result=\"ok\"}"), 1, "{text}");
    assert_eq!(value("warren_reloads_total{result=\"failed\"}"), 1, "{text}");
    let served_2xx: u64 = text
        .lines()
        .filter(|l| l.starts_with("warren_http_requests_total{") && l.contains("class=\"2xx\""))
        .map(|l| l.rsplit(' ').next().and_then(|v| v.parse::<u64>().ok()).unwrap_or(0))
        .sum();
    assert!(served_2xx >= 1, "the request before the reload is still counted: {text}");
    stop(&mut w);
}

/// The head of a keep-alive response went out before a reload, its body
/// after; the client had already sent its next request (pipelined, so
/// the test does not race the server): that request is answered, says
/// `Connection: close`, and only then does the connection close. Each kind
/// of response that sets its own keep-alive is tried as the next request:
/// a file, a protocol's (`callback://`), a CGI program's.
#[test]
fn a_request_after_a_keep_alive_response_in_a_reload_is_answered() {
    let t = tempfile::tempdir().expect("tempdir");
    let big = pattern(24 << 20);
    std::fs::write(t.path().join("big.bin"), &big).expect("write");
    std::fs::write(t.path().join("small.txt"), b"small").expect("write");
    let bin = t.path().join("cgi-bin");
    std::fs::create_dir_all(&bin).expect("mkdir");
    let prog = bin.join("hi.sh");
    std::fs::write(&prog, "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\nhi from cgi\\n'\n").expect("write");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&prog, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let root = t.path().to_string_lossy().into_owned();
    let cgi = format!("/cgi-bin={}", bin.display());
    let (mut w, port, log) = start_warren_logged(&["--root", &root, "--cgi", &cgi, "--grace", "600"]);
    let nexts = [("/small.txt", "small"), ("/formtest", "<form"), ("/cgi-bin/hi.sh", "hi from cgi")];
    let mut held = Vec::new();
    for (path, _) in nexts {
        let (mut r, head) = begin_get(port, "/big.bin");
        assert!(!head.to_ascii_lowercase().contains("connection: close"), "{head}");
        write!(r.get_mut(), "GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").expect("pipelined request");
        let mut first = vec![0; 64 * 1024];
        r.read_exact(&mut first).expect("the first bytes");
        held.push((r, first));
    }
    signal(&w, libc::SIGHUP);
    wait_line(&log, "reloaded");
    for ((mut r, mut body), (path, needle)) in held.into_iter().zip(nexts) {
        let mut rest = vec![0; big.len() - body.len()];
        r.read_exact(&mut rest).expect("the rest of the download");
        body.extend_from_slice(&rest);
        assert!(body == big, "{path}: the download completed whole");
        let mut answer = Vec::new();
        r.read_to_end(&mut answer).expect("the pipelined answer");
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 200"), "{path}: answered: {answer:?}");
        assert!(answer.contains(needle), "{path}: {answer:?}");
        assert!(
            answer.to_ascii_lowercase().contains("connection: close"),
            "{path}: the last response says so: {answer:?}"
        );
    }
    stop(&mut w);
}

/// SIGTERM after a reload: the configuration being retired (whose
/// WebSockets would keep going until the grace) is drained too, and its
/// WebSockets get 1001 at once.
#[test]
fn sigterm_after_a_reload_tells_the_old_websockets_too() {
    let (mut w, port, log) = start_warren_logged(&["--grace", "600"]);
    let mut ws = echoing(port, "before");
    signal(&w, libc::SIGHUP);
    wait_line(&log, "reloaded");
    // Still served by the old configuration, until its grace.
    ws.text("during").expect("send");
    assert_eq!(ws.recv_message().expect("echo"), (ws::TEXT, b"during".to_vec()));
    signal(&w, libc::SIGTERM);
    let close = ws.recv().expect("a close frame");
    assert_eq!(close.close_code(), Some(1001), "{close:?}");
    ws.send(true, ws::CLOSE, &1001u16.to_be_bytes()).expect("close back");
    assert_eq!(wait_exit(&mut w).code(), Some(0));
}

/// An access log that is a FIFO with no reader is an error at start
/// (and in `warren check`), not an open that hangs the process with its
/// signals blocked.
#[test]
fn an_access_log_fifo_with_no_reader_is_refused_not_waited_for() {
    let t = tempfile::tempdir().expect("tempdir");
    let fifo = t.path().join("fifo");
    mkfifo(&fifo);
    let fifo = fifo.to_string_lossy().into_owned();
    for args in [&["--port", "0", "--access-log", &fifo][..], &["check", "--access-log", &fifo]] {
        let mut child = std::process::Command::new(BIN)
            .args(args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn");
        let mut err = String::new();
        // Read to its end: warren exits by itself (a hang fails the wait).
        let mut stderr = child.stderr.take().expect("stderr");
        let reader = std::thread::spawn(move || {
            let _ = stderr.read_to_string(&mut err);
            err
        });
        let mut w = Running(child);
        let status = wait_exit(&mut w);
        let err = reader.join().expect("stderr");
        assert_eq!(status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains("a FIFO with no reader"), "{args:?}: {err}");
    }
}

/// A reader of the access log that stops reading (a full pipe) costs
/// lines, never the exit: SIGTERM still ends warren, 0.
#[test]
fn a_stalled_access_log_reader_does_not_hold_the_exit() {
    let t = tempfile::tempdir().expect("tempdir");
    let fifo = t.path().join("fifo");
    mkfifo(&fifo);
    // The reader: open, never read.
    let reader = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&fifo)
        .expect("open the FIFO to read");
    let (_site, root) = site();
    let (mut w, port, _log) =
        start_warren_logged(&["--root", &root.to_string_lossy(), "--access-log", &fifo.to_string_lossy()]);
    // Lines of about 500 bytes: a few hundred fill the pipe (64 KiB).
    let agent = "a".repeat(400);
    for _ in 0..400 {
        let mut s = TcpStream::connect(addr(port)).expect("connect");
        s.set_read_timeout(Some(PATIENCE)).expect("timeout");
        write!(s, "GET /index.html HTTP/1.1\r\nHost: x\r\nUser-Agent: {agent}\r\nConnection: close\r\n\r\n")
            .expect("send");
        let mut answer = Vec::new();
        s.read_to_end(&mut answer).expect("answer");
        assert!(answer.starts_with(b"HTTP/1.1 200"), "requests are answered while the log is stuck");
    }
    stop(&mut w);
    drop(reader);
}

/// Reloads that each leave a configuration finishing a long download do
/// not pile up without bound: past eight, the oldest is stopped (its
/// download cut), while the newer ones go on.
#[test]
fn retired_configurations_are_bounded() {
    let t = tempfile::tempdir().expect("tempdir");
    let big = pattern(24 << 20);
    std::fs::write(t.path().join("big.bin"), &big).expect("write");
    let root = t.path().to_string_lossy().into_owned();
    let (mut w, port, log) = start_warren_logged(&["--root", &root, "--grace", "600"]);
    let mut held = Vec::new();
    let mut seen = Vec::new();
    for i in 0..9 {
        let (mut r, _) = begin_get(port, "/big.bin");
        let mut first = vec![0; 64 * 1024];
        r.read_exact(&mut first).expect("the first bytes");
        held.push((r, first));
        signal(&w, libc::SIGHUP);
        wait_line_seeing(&log, "reloaded", &mut seen);
        let stopped = seen.iter().any(|l| l.contains("the oldest stops now"));
        assert_eq!(stopped, i == 8, "after reload {}: {seen:?}", i + 1);
    }
    let mut outcomes = Vec::new();
    for (mut r, mut body) in held {
        let mut rest = Vec::new();
        let _ = r.read_to_end(&mut rest);
        body.extend_from_slice(&rest);
        outcomes.push(body == big);
    }
    assert_eq!(outcomes, [false, true, true, true, true, true, true, true, true], "only the oldest was cut");
    stop(&mut w);
}

/// Contexts that share their metrics share the connection limit: a
/// reload's new configuration refuses connections past it while the old
/// one still holds some.
#[test]
fn contexts_sharing_metrics_share_the_connection_limit() {
    let (_t, root) = site();
    let metrics = std::sync::Arc::new(warren::Metrics::new());
    let limits = warren::Limits { max_connections: Some(2), ..warren::Limits::default() };
    let listener = warren::bind_listener(addr(0)).expect("bind");
    let at = listener.local_addr().expect("addr");
    let info = |l| {
        warren::ContextInfo::new()
            .vhost(vhost_at(at).mount(files_mount("/", &root)))
            .limits(limits)
            .metrics(std::sync::Arc::clone(&metrics))
            .listener(l)
    };
    let first = warren::Context::new(info(listener)).expect("first");
    let first_handle = first.handle();
    let first_loop = std::thread::spawn(move || first.run());
    // Two connections of the first, idle in keep-alive.
    let held: Vec<_> = (0..2)
        .map(|_| {
            let s = TcpStream::connect(at).expect("connect");
            s.set_read_timeout(Some(PATIENCE)).expect("timeout");
            keepalive_get(BufReader::new(s), "/index.html", 20).expect("served").expect("kept alive")
        })
        .collect();
    let handed = first_handle.listeners().expect("listeners").into_iter().next().expect("one");
    let second = warren::Context::new(info(handed)).expect("second");
    let second_handle = second.handle();
    let second_loop = std::thread::spawn(move || second.run());
    first_handle.retire(Duration::from_secs(600)).recv_timeout(PATIENCE).expect("the first stopped accepting");
    // Refused at accept: the 503 comes without a request.
    let mut s = TcpStream::connect(at).expect("connect");
    s.set_read_timeout(Some(PATIENCE)).expect("timeout");
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.starts_with("HTTP/1.1 503"),
        "the first's two connections count against the second's limit: {answer:?}"
    );
    drop(held);
    first_loop.join().expect("first loop").expect("first ran");
    assert_eq!(fetch(at.port(), "/index.html").0, 200, "once they are gone, the second serves");
    second_handle.stop();
    second_loop.join().expect("second loop").expect("second ran");
}
