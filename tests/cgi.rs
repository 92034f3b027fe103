//! CGI mounts (spec CGI-1..CGI-11, issue 5) with real programs over real
//! sockets: the shell and python3 scripts in `tests/cgi-bin/`, and php-cgi
//! (which `scripts/test` installs) behind a program mount.
//!
//! Most tests run an in-process [`Server`]; those that measure the
//! server's own memory, or read its log, run the `warren` binary with
//! `--cgi`. Processes are looked at through `/proc/PID/stat` (state,
//! parent, process group). Every wait is bounded.

mod support;

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Barrier, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};
use support::*;
use warren::{CgiLimits, ContextInfo, Mount};

// ---------------------------------------------------------------------------
// Helpers

/// Tests that count this process's descriptors and zombie children hold
/// this exclusively; every other test holds it shared, so nothing else
/// opens sockets or spawns programs while they count.
static EXCLUSIVE: RwLock<()> = RwLock::new(());

fn shared() -> RwLockReadGuard<'static, ()> {
    EXCLUSIVE.read().unwrap_or_else(|e| e.into_inner())
}

fn exclusive() -> RwLockWriteGuard<'static, ()> {
    EXCLUSIVE.write().unwrap_or_else(|e| e.into_inner())
}

/// `tests/cgi-bin`, absolute.
fn cgi_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cgi-bin")
}

const PHP_CGI: &str = "/usr/bin/php-cgi";

/// An in-process server: [`site`] at `/` and `tests/cgi-bin` at
/// `/cgi-bin`, that mount shaped by `tweak`.
struct CgiSite {
    server: Server,
    root: PathBuf,
    _t: tempfile::TempDir,
}

fn serve(tweak: impl FnOnce(Mount) -> Mount) -> CgiSite {
    serve_mounts(|_| vec![tweak(Mount::cgi("/cgi-bin", cgi_dir()))])
}

/// [`site`] at `/` plus the mounts `more(root)` returns.
fn serve_mounts(more: impl FnOnce(&Path) -> Vec<Mount>) -> CgiSite {
    let (t, root) = site();
    let mut vh = vhost().mount(files_mount("/", &root));
    for m in more(&root) {
        vh = vh.mount(m);
    }
    let server = Server::start(ContextInfo::new().vhost(vh));
    CgiSite { server, root, _t: t }
}

/// Sends `req` on a new connection; returns the client's port and the
/// response.
fn exchange(addr: SocketAddr, req: &[u8]) -> (u16, Response) {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(20))).expect("timeout");
    let port = s.local_addr().expect("local addr").port();
    s.write_all(req).expect("write request");
    let head = req.starts_with(b"HEAD ");
    (port, Reader::new(s).response(head).expect("response"))
}

fn get_at(addr: SocketAddr, path: &str) -> Response {
    let req = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    exchange(addr, req.as_bytes()).1
}

fn post_at(addr: SocketAddr, path: &str, content_type: &str, body: &[u8]) -> Response {
    let mut req = format!(
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(body);
    exchange(addr, &req).1
}

/// Reads until EOF (or an error, or `within`); returns what came.
fn read_to_close(s: &mut TcpStream, within: Duration) -> Vec<u8> {
    let deadline = Instant::now() + within;
    let mut out = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "the server did not close within {within:?}; got {} bytes", out.len());
        s.set_read_timeout(Some(left)).expect("timeout");
        match s.read(&mut buf) {
            Ok(0) => return out,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return out,
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => continue,
            Err(e) => panic!("read: {e}"),
        }
    }
}

/// `NAME=value` lines (env.sh's output) as a map.
fn env_map(r: &Response) -> BTreeMap<String, String> {
    r.text().lines().filter_map(|l| l.split_once('=')).map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn canonical(p: &str) -> PathBuf {
    Path::new(p).canonicalize().unwrap_or_else(|e| panic!("{p}: {e}"))
}

/// One line of `/proc/PID/stat`.
#[derive(Debug, Clone)]
struct Proc {
    pid: i32,
    comm: String,
    state: char,
    ppid: i32,
    pgrp: i32,
}

fn processes() -> Vec<Proc> {
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else { return out };
    for e in dir.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else { continue };
        // The process may be gone by now: skip it.
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else { continue };
        let mut f = stat[close + 1..].split_whitespace();
        let state = f.next().and_then(|s| s.chars().next()).unwrap_or('?');
        let ppid = f.next().and_then(|s| s.parse().ok()).unwrap_or(0);
        let pgrp = f.next().and_then(|s| s.parse().ok()).unwrap_or(0);
        out.push(Proc { pid, comm: stat[open + 1..close].to_string(), state, ppid, pgrp });
    }
    out
}

/// The members of process group `pgid` that still count: every live
/// process, and zombies the server (`server_pid`) has not reaped. A zombie
/// whose parent is someone else (an orphan, which init reaps in its own
/// time) is not the server's to reap.
fn group_members(pgid: i32, server_pid: u32) -> Vec<Proc> {
    let server_pid = server_pid as i32;
    processes().into_iter().filter(|p| p.pgrp == pgid && (p.state != 'Z' || p.ppid == server_pid)).collect()
}

/// Waits up to `within` for process group `pgid` to be gone; returns how
/// long that took, or panics naming what is left.
fn wait_group_gone(pgid: i32, server_pid: u32, within: Duration) -> Duration {
    let start = Instant::now();
    loop {
        let left = group_members(pgid, server_pid);
        if left.is_empty() {
            return start.elapsed();
        }
        assert!(start.elapsed() < within, "process group {pgid} still has {left:?} after {within:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Zombie children of `parent`.
fn zombies_of(parent: u32) -> Vec<Proc> {
    processes().into_iter().filter(|p| p.ppid == parent as i32 && p.state == 'Z').collect()
}

/// The pid a test script wrote to `path` (`CGI_TEST_PIDFILE`).
fn read_pid(path: &Path) -> i32 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(pid) = std::fs::read_to_string(path).ok().and_then(|s| s.trim().parse().ok()) {
            return pid;
        }
        assert!(Instant::now() < deadline, "no pid in {} after 10 s", path.display());
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Waits up to 10 s for a child of `parent` to exist; returns its pid.
fn wait_child_of(parent: u32) -> i32 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(p) = processes().into_iter().find(|p| p.ppid == parent as i32 && p.state != 'Z') {
            return p.pid;
        }
        assert!(Instant::now() < deadline, "warren {parent} started no CGI within 10 s");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").expect("/proc/self/fd").count()
}

/// Waits up to 5 s for this process's descriptor count to come down to
/// `want` (sockets and pipes closed by the service thread); returns the
/// last count.
fn settle_fds(want: usize) -> usize {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let n = open_fds();
        if n <= want || Instant::now() > deadline {
            return n;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn local(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

// ---------------------------------------------------------------------------
// The environment

/// CGI-2 (and RFC 3875 §4.1): every meta-variable, one by one, for a POST
/// with a query, PATH_INFO and request headers; `Proxy` and
/// `Authorization` are not passed on; nothing of the server's own
/// environment is.
#[test]
fn the_environment_is_rfc_3875_and_nothing_else() {
    let _g = shared();
    let s = serve(|m| m.cgi_env("MY_EXTRA", "extra value").cgi_env("ANOTHER", "2"));
    let req = "POST /cgi-bin/env.sh/extra/path?a=1&b=%20 HTTP/1.1\r\nHost: localhost\r\nX-Custom: hello there\r\n\
               Proxy: http://evil.example/\r\nAuthorization: Basic Zm9vOmJhcg==\r\nContent-Type: text/x-test\r\n\
               Content-Length: 5\r\nConnection: close\r\n\r\nhello";
    let (client_port, r) = exchange(s.server.addr, req.as_bytes());
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("text/plain"));
    let env = env_map(&r);
    let root = s.root.canonicalize().expect("root");
    let want: Vec<(&str, String)> = vec![
        ("GATEWAY_INTERFACE", "CGI/1.1".into()),
        ("SERVER_NAME", "localhost".into()),
        ("SERVER_PORT", s.server.addr.port().to_string()),
        ("SERVER_PROTOCOL", "HTTP/1.1".into()),
        ("REQUEST_METHOD", "POST".into()),
        ("SCRIPT_NAME", "/cgi-bin/env.sh".into()),
        ("PATH_INFO", "/extra/path".into()),
        ("PATH_TRANSLATED", root.join("extra/path").display().to_string()),
        ("QUERY_STRING", "a=1&b=%20".into()),
        ("REMOTE_ADDR", "127.0.0.1".into()),
        ("REMOTE_PORT", client_port.to_string()),
        ("CONTENT_TYPE", "text/x-test".into()),
        ("CONTENT_LENGTH", "5".into()),
        ("HTTP_X_CUSTOM", "hello there".into()),
        ("HTTP_HOST", "localhost".into()),
        ("DOCUMENT_ROOT", root.display().to_string()),
        // As Apache and PHP have it: the request-target, query included.
        ("REQUEST_URI", "/cgi-bin/env.sh/extra/path?a=1&b=%20".into()),
        ("REQUEST_SCHEME", "http".into()),
        ("MY_EXTRA", "extra value".into()),
        ("ANOTHER", "2".into()),
        ("PATH", "/usr/local/bin:/usr/bin:/bin".into()),
    ];
    for (k, v) in &want {
        assert_eq!(env.get(*k), Some(v), "{k} in {env:#?}");
    }
    let software = env.get("SERVER_SOFTWARE").expect("SERVER_SOFTWARE");
    assert!(software.starts_with("warren"), "SERVER_SOFTWARE={software}");
    let filename = env.get("SCRIPT_FILENAME").expect("SCRIPT_FILENAME");
    assert_eq!(canonical(filename), cgi_dir().join("env.sh").canonicalize().expect("env.sh"));
    // httpoxy (CVE-2016-5385) and credentials (RFC 3875 §4.1.18).
    for k in ["HTTP_PROXY", "HTTP_AUTHORIZATION", "HTTP_CONTENT_TYPE", "HTTP_CONTENT_LENGTH", "HTTPS"] {
        assert_eq!(env.get(k), None, "{k} must not be set");
    }
    // Nothing of the server's (this test process's) environment.
    for k in ["HOME", "USER", "SHELL", "CARGO", "CARGO_MANIFEST_DIR", "CARGO_PKG_NAME", "RUST_BACKTRACE", "LANG"] {
        assert_eq!(env.get(k), None, "{k} leaked from the server's environment");
    }
    for (k, _) in std::env::vars() {
        if !want.iter().any(|(w, _)| *w == k) && k != "PWD" {
            assert_eq!(env.get(&k), None, "{k} leaked from the server's environment");
        }
    }
    // The script sees exactly the listed names (dash adds PWD itself).
    let allowed = [
        "GATEWAY_INTERFACE",
        "SERVER_SOFTWARE",
        "SERVER_NAME",
        "SERVER_PORT",
        "SERVER_PROTOCOL",
        "REQUEST_METHOD",
        "SCRIPT_NAME",
        "PATH_INFO",
        "PATH_TRANSLATED",
        "QUERY_STRING",
        "REMOTE_ADDR",
        "REMOTE_PORT",
        "CONTENT_TYPE",
        "CONTENT_LENGTH",
        "DOCUMENT_ROOT",
        "REQUEST_URI",
        "REQUEST_SCHEME",
        "SCRIPT_FILENAME",
        "SCRIPT_PATH",
        "REDIRECT_STATUS",
        "REDIRECT_URL",
        "PATH",
        "PWD",
        "MY_EXTRA",
        "ANOTHER",
    ];
    for k in env.keys() {
        assert!(allowed.contains(&k.as_str()) || k.starts_with("HTTP_"), "unexpected variable {k}");
    }
}

/// CGI-2: PATH_INFO is decoded; a GET has no CONTENT_LENGTH; the lws name
/// SCRIPT_PATH is kept; the working directory is the script's (CGI-5).
#[test]
fn path_info_is_decoded_and_a_get_has_no_body_variables() {
    let _g = shared();
    let s = serve(|m| m);
    let r = get_at(s.server.addr, "/cgi-bin/env.sh/a%20b/c?x=%2F");
    assert_eq!(r.status, 200);
    let env = env_map(&r);
    assert_eq!(env.get("PATH_INFO").map(String::as_str), Some("/a b/c"));
    assert_eq!(env.get("QUERY_STRING").map(String::as_str), Some("x=%2F"), "the raw query (CGI-3 [REC])");
    assert_eq!(env.get("REQUEST_METHOD").map(String::as_str), Some("GET"));
    assert_eq!(env.get("CONTENT_LENGTH"), None);
    assert_eq!(env.get("CONTENT_TYPE"), None);
    let script_path = env.get("SCRIPT_PATH").expect("SCRIPT_PATH (lws's name)");
    assert_eq!(canonical(script_path), cgi_dir().join("env.sh").canonicalize().expect("env.sh"));
    let pwd = env.get("PWD").expect("PWD");
    assert_eq!(canonical(pwd), cgi_dir().canonicalize().expect("cgi-bin"), "cwd is the script's directory");
    // No PATH_INFO at all.
    let env = env_map(&get_at(s.server.addr, "/cgi-bin/env.sh"));
    assert_eq!(env.get("PATH_INFO").map(String::as_str), Some(""));
    assert_eq!(env.get("SCRIPT_NAME").map(String::as_str), Some("/cgi-bin/env.sh"));
}

/// CGI-1: a mount whose origin is one program gets the whole rest of the
/// path as PATH_INFO, translated through the file mounts, with
/// REDIRECT_STATUS as Apache's `Action` sets it.
#[test]
fn a_program_mount_works_like_apache_action() {
    let _g = shared();
    let s = serve_mounts(|_| vec![Mount::cgi("/run", cgi_dir().join("env.sh"))]);
    let r = get_at(s.server.addr, "/run/sub/index.html?k=v");
    assert_eq!(r.status, 200, "{}", r.text());
    let env = env_map(&r);
    let root = s.root.canonicalize().expect("root");
    assert_eq!(env.get("SCRIPT_NAME").map(String::as_str), Some("/run"));
    assert_eq!(env.get("PATH_INFO").map(String::as_str), Some("/sub/index.html"));
    assert_eq!(env.get("PATH_TRANSLATED"), Some(&root.join("sub/index.html").display().to_string()));
    assert_eq!(env.get("REDIRECT_STATUS").map(String::as_str), Some("200"));
    assert_eq!(env.get("QUERY_STRING").map(String::as_str), Some("k=v"));
    let filename = env.get("SCRIPT_FILENAME").expect("SCRIPT_FILENAME");
    assert_eq!(canonical(filename), cgi_dir().join("env.sh").canonicalize().expect("env.sh"));
}

/// CGI-1 [REC]: in a directory mount, a path naming no executable is 404.
#[test]
fn a_missing_script_is_404() {
    let _g = shared();
    let s = serve(|m| m);
    assert_eq!(get_at(s.server.addr, "/cgi-bin/no-such.sh").status, 404);
    assert_eq!(get_at(s.server.addr, "/cgi-bin/").status, 404);
    assert_eq!(get_at(s.server.addr, "/cgi-bin/env.sh.bak").status, 404);
    assert_eq!(get_at(s.server.addr, "/cgi-bin/env.sh").status, 200);
}

/// CGI-1: a directory mount does not follow a linked directory out of
/// itself (`root -> /`, `data -> elsewhere`): 403, nothing runs. A linked
/// directory inside it, and a linked program, still run; a segment too
/// long for the filesystem is 404, not 500.
#[test]
fn linked_directories_cannot_lead_out_of_a_cgi_directory() {
    let _g = shared();
    let t = tempfile::tempdir().expect("tempdir");
    let (bin, outside) = (t.path().join("cgi-bin"), t.path().join("outside"));
    std::fs::create_dir_all(bin.join("real")).expect("mkdir");
    std::fs::create_dir_all(&outside).expect("mkdir");
    let ran = t.path().join("ran");
    let script = format!("#!/bin/sh\ntouch '{}'\nprintf 'Content-Type: text/plain\\n\\nran\\n'\n", ran.display());
    for p in [outside.join("x.sh"), bin.join("real/in.sh")] {
        std::fs::write(&p, &script).expect("write");
        std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod");
    }
    std::os::unix::fs::symlink("/", bin.join("root")).expect("symlink");
    std::os::unix::fs::symlink(&outside, bin.join("data")).expect("symlink");
    std::os::unix::fs::symlink("real", bin.join("inner")).expect("symlink");
    std::os::unix::fs::symlink(outside.join("x.sh"), bin.join("prog.sh")).expect("symlink");
    let s = serve_mounts(|_| vec![Mount::cgi("/cgi", &bin)]);
    for path in ["/cgi/root/usr/bin/id", "/cgi/data/x.sh", "/cgi/data/x.sh/more"] {
        // Twice: the second is not served from what the first found.
        for _ in 0..2 {
            let r = get_at(s.server.addr, path);
            assert_eq!(r.status, 403, "{path}: {}", r.text());
        }
    }
    assert!(!ran.exists(), "a program outside the mount ran");
    for path in ["/cgi/inner/in.sh", "/cgi/prog.sh"] {
        let r = get_at(s.server.addr, path);
        assert_eq!((r.status, r.text().as_str()), (200, "ran\n"), "{path}");
    }
    let long = "a".repeat(4000);
    assert_eq!(get_at(s.server.addr, &format!("/cgi/{long}")).status, 404);
    assert_eq!(get_at(s.server.addr, &format!("/cgi/real/in.sh/{long}")).status, 404);
    assert_eq!(get_at(s.server.addr, &format!("/cgi/real/{long}/x")).status, 404);
}

/// RFC 9112 §2.2, §7.1: a chunked body's lines end as a head's do (bare
/// LF too), so a trailer section ended by a bare LF ends there, and the
/// request pipelined after it is answered, not swallowed as trailers.
#[test]
fn the_request_after_a_bare_lf_trailer_section_is_answered() {
    let _g = shared();
    let s = serve(|m| m);
    for ending in ["0\r\nX-T: 1\n\n", "0\r\n\n", "0\nX-T: 1\r\n\n", "0\r\nX-T: 1\r\n\r\n"] {
        let mut c = s.server.connect();
        let req = format!(
            "POST /cgi-bin/echo-body.py HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n\
             5\r\nhello\r\n{ending}GET /index.html HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
        );
        c.write_all(req.as_bytes()).expect("write");
        let mut reader = Reader::new(c);
        let r = reader.response(false).expect("response");
        assert_eq!((r.status, r.text().as_str()), (200, "hello"), "{ending:?}");
        assert_eq!(r.header("connection"), None, "{ending:?}: the connection stays usable");
        let r = reader.response(false).expect("the pipelined request's response");
        assert_eq!((r.status, r.text().as_str()), (200, "<h1>root index</h1>\n"), "{ending:?}");
    }
}

/// Per-mount resource limits, set in the child with setrlimit.
#[test]
fn resource_limits_apply_to_the_child() {
    let _g = shared();
    let s = serve(|m| m.cgi_limits(CgiLimits { cpu_secs: Some(7), address_space: None, open_files: Some(33) }));
    let r = get_at(s.server.addr, "/cgi-bin/limits.sh");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "33\n7\n");
}

// ---------------------------------------------------------------------------
// The response head

/// CGI-7 [REC]: `Status:` sets the status line and is not passed on; other
/// fields are.
#[test]
fn status_sets_the_status_and_is_not_passed_on() {
    let _g = shared();
    let s = serve(|m| m);
    let r = get_at(s.server.addr, "/cgi-bin/status.sh");
    assert_eq!(r.status, 418);
    assert_eq!(r.header("status"), None, "{:?}", r.headers);
    assert_eq!(r.header("x-cgi"), Some("status"));
    assert_eq!(r.header("content-type"), Some("text/plain"));
    assert_eq!(r.text(), "short and stout\n");
}

/// CGI-7 [REC] (RFC 3875 §6.2.2): a local `Location` without a status is
/// served in place, as a GET of that path.
#[test]
fn a_local_location_is_served_in_place() {
    let _g = shared();
    let s = serve(|m| m);
    let r = get_at(s.server.addr, "/cgi-bin/redirect-local.sh");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "<h1>root index</h1>\n");
    assert_eq!(r.header("location"), None);
    // Also when the script was POSTed to: the redirect is a GET.
    let r = post_at(s.server.addr, "/cgi-bin/redirect-local.sh", "text/plain", b"ignored");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "<h1>root index</h1>\n");
}

/// CGI-7 (RFC 3875 §6.2.3): an absolute `Location` is a 302 to it.
#[test]
fn an_absolute_location_is_a_302() {
    let _g = shared();
    let s = serve(|m| m);
    let r = get_at(s.server.addr, "/cgi-bin/redirect-abs.sh");
    assert_eq!(r.status, 302);
    assert_eq!(r.header("location"), Some("http://example.com/x"));
}

/// CGI-7: head lines ended by a bare LF are accepted.
#[test]
fn a_head_with_bare_lf_line_ends_is_accepted() {
    let _g = shared();
    let s = serve(|m| m);
    let r = get_at(s.server.addr, "/cgi-bin/lf-only.sh");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-lf"), Some("yes"));
    assert_eq!(r.header("content-type"), Some("text/plain"));
    assert_eq!(r.text(), "lf body\n");
}

/// CGI-7 [REC], CGI-5 [REC]: a malformed head, a head over 8 KiB, a
/// program that crashes or exits before a head: 502 each, and the server
/// goes on.
#[test]
fn bad_heads_and_crashes_are_502() {
    let _g = shared();
    let s = serve(|m| m);
    for script in ["garbage.sh", "bighead.sh", "crash.sh", "silent.sh"] {
        let start = Instant::now();
        let r = get_at(s.server.addr, &format!("/cgi-bin/{script}"));
        assert_eq!(r.status, 502, "{script}: {}", r.text());
        assert!(start.elapsed() < Duration::from_secs(5), "{script}: 502 took {:?}", start.elapsed());
        assert!(!r.text().contains("SCRIPT-BODY"), "{script}: the script's body must not be sent");
    }
    assert_eq!(get_at(s.server.addr, "/cgi-bin/env.sh").status, 200);
}

/// CGI-8 [REC]: without a Content-Length from the script, HTTP/1.1 gets
/// chunked and HTTP/1.0 gets the body up to the close; with one, it is
/// passed on.
#[test]
fn framing_without_a_length_is_chunked_on_1_1_and_closed_on_1_0() {
    let _g = shared();
    let s = serve(|m| m);
    let n = 300_000;
    // 1.1 without a length: chunked.
    let mut c = s.server.connect();
    let req = format!("GET /cgi-bin/big.sh?bytes={n}&nolength HTTP/1.1\r\nHost: localhost\r\n\r\n");
    c.write_all(req.as_bytes()).expect("write");
    let mut reader = Reader::new(c);
    let r = reader.response(false).expect("response");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("transfer-encoding"), Some("chunked"));
    assert_eq!(r.header("content-length"), None);
    assert_eq!(r.body.len(), n);
    assert!(r.body.iter().all(|&b| b == 0));
    // The framing is exact: unless the server said it closes, the
    // connection carries a next request.
    if !r.header("connection").is_some_and(|v| v.eq_ignore_ascii_case("close")) {
        let req = "GET /index.html HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
        reader.stream.write_all(req.as_bytes()).expect("write");
        let r = reader.response(false).expect("second response");
        assert_eq!((r.status, r.text().as_str()), (200, "<h1>root index</h1>\n"));
    }
    // 1.1 with the script's length: passed on.
    let r = get_at(s.server.addr, &format!("/cgi-bin/big.sh?bytes={n}"));
    assert_eq!(r.header("content-length"), Some(n.to_string().as_str()));
    assert_eq!(r.header("transfer-encoding"), None);
    assert_eq!(r.body.len(), n);
    // 1.0 without a length: no chunking; the close ends the body.
    let mut c = s.server.connect();
    let req = format!("GET /cgi-bin/big.sh?bytes={n}&nolength HTTP/1.0\r\nHost: localhost\r\n\r\n");
    c.write_all(req.as_bytes()).expect("write");
    let raw = read_to_close(&mut c, Duration::from_secs(20));
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("a head");
    let head = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
    assert!(head.starts_with("http/1.") && head.contains(" 200 "), "{head}");
    assert!(!head.contains("transfer-encoding"), "{head}");
    assert_eq!(raw.len() - split - 4, n, "{head}");
    assert!(raw[split + 4..].iter().all(|&b| b == 0));
}

/// One keep-alive connection carries CGI responses of every framing (the
/// script's length, chunked, a HEAD with no body) and then a file.
#[test]
fn cgi_responses_keep_the_connection_usable() {
    let _g = shared();
    let s = serve(|m| m);
    let mut r = Reader::new(s.server.connect());
    let ask = |r: &mut Reader, line: &str, head: bool| {
        r.stream.write_all(format!("{line} HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes()).expect("write");
        r.response(head).unwrap_or_else(|e| panic!("{line}: {e}"))
    };
    let a = ask(&mut r, "GET /cgi-bin/big.sh?bytes=1000", false);
    assert_eq!((a.status, a.body.len()), (200, 1000));
    let b = ask(&mut r, "GET /cgi-bin/big.sh?bytes=2000&nolength", false);
    assert_eq!((b.status, b.body.len()), (200, 2000));
    let h = ask(&mut r, "HEAD /cgi-bin/env.sh", true);
    assert_eq!(h.status, 200);
    assert_eq!(h.header("content-type"), Some("text/plain"));
    let t = ask(&mut r, "GET /cgi-bin/status.sh", false);
    assert_eq!((t.status, t.text().as_str()), (418, "short and stout\n"));
    let f = ask(&mut r, "GET /index.html", false);
    assert_eq!((f.status, f.text().as_str()), (200, "<h1>root index</h1>\n"), "the HEAD left no body bytes behind");
}

/// A script that answers without reading its (large) body: the client
/// still gets the answer.
#[test]
fn a_script_that_ignores_its_body_still_answers() {
    let _g = shared();
    let s = serve(|m| m);
    let body = pattern(8 << 20);
    let c = s.server.connect();
    let head = format!(
        "POST /cgi-bin/status.sh HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let writer = {
        let mut w = c.try_clone().expect("clone");
        // The server may stop reading and close: a failed write is fine.
        std::thread::spawn(move || {
            let _ = w.write_all(head.as_bytes()).and_then(|_| w.write_all(&body));
        })
    };
    c.set_read_timeout(Some(Duration::from_secs(20))).expect("timeout");
    let r = Reader::new(c).response(false).expect("response");
    assert_eq!((r.status, r.text().as_str()), (418, "short and stout\n"));
    writer.join().expect("writer");
    assert_eq!(get_at(s.server.addr, "/cgi-bin/env.sh").status, 200);
}

/// A script that closes stdout early and lives on: what it sent arrives,
/// and the response ends at the close, not when the script exits (2 s
/// later).
#[test]
fn a_script_closing_stdout_early_ends_the_response() {
    let _g = shared();
    let s = serve(|m| m);
    let start = Instant::now();
    let r = get_at(s.server.addr, "/cgi-bin/early-close.sh");
    let took = start.elapsed();
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "early bytes\n");
    assert!(took < Duration::from_millis(1800), "the response ended only after {took:?}");
}

// ---------------------------------------------------------------------------
// Request bodies

/// CGI-6: the body streams into stdin, with a Content-Length and chunked
/// (de-chunked, stdin closed at the last chunk [REC]).
#[test]
fn request_bodies_reach_stdin_sized_and_chunked() {
    let _g = shared();
    let s = serve(|m| m);
    let body = pattern(1 << 20);
    let r = post_at(s.server.addr, "/cgi-bin/echo-body.py", "application/octet-stream", &body);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-length"), Some("1048576"));
    assert!(r.body == body, "echoed body differs ({} bytes back)", r.body.len());
    // Chunked, in uneven pieces.
    let mut req = b"POST /cgi-bin/echo-body.py HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\
                    Connection: close\r\n\r\n"
        .to_vec();
    for piece in body.chunks(70_001) {
        req.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        req.extend_from_slice(piece);
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"0\r\n\r\n");
    let c = s.server.connect();
    let writer = {
        let mut w = c.try_clone().expect("clone");
        std::thread::spawn(move || w.write_all(&req))
    };
    c.set_read_timeout(Some(Duration::from_secs(20))).expect("timeout");
    let r = Reader::new(c).response(false).expect("response");
    writer.join().expect("writer").expect("write body");
    assert_eq!(r.status, 200);
    assert!(r.body == body, "chunked echo differs ({} bytes back)", r.body.len());
}

/// CGI-6, CGI-9: a 50 MiB POST streams through a script that hashes stdin
/// in 64 KiB reads: the hash matches, and the server's peak RSS stays
/// under 40 MiB (it never holds the body).
#[test]
fn a_50_mib_post_streams_through_with_bounded_memory() {
    let _g = shared();
    let t = tempfile::tempdir().expect("tempdir");
    let n = 50 << 20;
    let body = pattern(n);
    let file = t.path().join("body.bin");
    std::fs::write(&file, &body).expect("write");
    let out = Command::new("sha256sum").arg(&file).output().expect("sha256sum");
    let want = String::from_utf8_lossy(&out.stdout).split_whitespace().next().expect("digest").to_string();
    let cgi = format!("/cgi-bin={}", cgi_dir().display());
    let (w, port) = start_warren(&["--root", &t.path().to_string_lossy(), "--cgi", &cgi]);
    let c = TcpStream::connect(local(port)).expect("connect");
    c.set_read_timeout(Some(Duration::from_secs(60))).expect("timeout");
    let head = format!(
        "POST /cgi-bin/hash.py HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/octet-stream\r\n\
         Content-Length: {n}\r\nConnection: close\r\n\r\n"
    );
    let writer = {
        let mut wr = c.try_clone().expect("clone");
        std::thread::spawn(move || -> io::Result<()> {
            wr.write_all(head.as_bytes())?;
            for piece in body.chunks(256 * 1024) {
                wr.write_all(piece)?;
            }
            Ok(())
        })
    };
    let r = Reader::new(c).response(false).expect("response");
    writer.join().expect("writer").expect("write body");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.text(), format!("{want} {n}\n"));
    let peak = w.peak_rss_kib();
    eprintln!("50 MiB POST: warren peak RSS {peak} KiB");
    assert!(peak < 40 * 1024, "warren's peak RSS was {peak} KiB for a 50 MiB POST");
}

// ---------------------------------------------------------------------------
// Slow clients, disconnects, timeouts

/// CGI-9, CGI-11: a script writing 1 GiB to a client that reads 4 KiB
/// every 10 ms for about 8 s: the server's peak RSS stays under 40 MiB, and
/// once the client closes, the script's process group is gone within a
/// second.
#[test]
fn a_1_gib_response_to_a_slow_reader_costs_no_memory() {
    let _g = shared();
    let t = tempfile::tempdir().expect("tempdir");
    let cgi = format!("/cgi-bin={}", cgi_dir().display());
    let (w, port) = start_warren(&["--root", &t.path().to_string_lossy(), "--cgi", &cgi]);
    let server_pid = w.0.id();
    let mut c = TcpStream::connect(local(port)).expect("connect");
    c.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    let gib: u64 = 1 << 30;
    c.write_all(format!("GET /cgi-bin/big.sh?bytes={gib} HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes())
        .expect("write");
    let pgid = wait_child_of(server_pid);
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(8) {
        let n = c.read(&mut buf).expect("read");
        assert!(n > 0, "the response ended early after {} bytes", got.len());
        if got.len() < 65536 {
            got.extend_from_slice(&buf[..n]);
        } else {
            assert!(buf[..n].iter().all(|&b| b == 0), "body bytes are zeros");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let text = String::from_utf8_lossy(&got).to_ascii_lowercase();
    assert!(text.starts_with("http/1.1 200"), "{text:.200}");
    assert!(text.contains(&format!("content-length: {gib}")), "{text:.300}");
    assert!(!group_members(pgid, server_pid).is_empty(), "the script must still run while the client reads");
    let peak = w.peak_rss_kib();
    eprintln!("1 GiB to a slow reader: warren peak RSS {peak} KiB");
    assert!(peak < 40 * 1024, "warren's peak RSS was {peak} KiB");
    drop(c);
    let took = wait_group_gone(pgid, server_pid, Duration::from_secs(1));
    eprintln!("slow reader closed: process group {pgid} gone after {took:?}");
}

/// CGI-11: a client that disconnects mid-response ends the script's
/// process group (the script and its background child) within a second.
#[test]
fn a_client_disconnecting_mid_stream_ends_the_process_group() {
    let _g = shared();
    let pidfile = tempfile::tempdir().expect("tempdir");
    let pidfile = pidfile.path().join("pid");
    let s = serve(|m| m.cgi_env("CGI_TEST_PIDFILE", pidfile.to_string_lossy().as_ref()));
    let mut c = s.server.connect();
    c.write_all(b"GET /cgi-bin/stall.sh HTTP/1.1\r\nHost: localhost\r\n\r\n").expect("write");
    let pgid = read_pid(&pidfile);
    // Wait for the head and the first bytes, so the response is under way.
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    while !String::from_utf8_lossy(&got).contains("partial") {
        let n = c.read(&mut buf).expect("read the partial response");
        assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    assert!(String::from_utf8_lossy(&got).starts_with("HTTP/1.1 200"));
    let deadline = Instant::now() + Duration::from_secs(5);
    while group_members(pgid, std::process::id()).len() < 2 {
        assert!(Instant::now() < deadline, "stall.sh's background sleep never started");
        std::thread::sleep(Duration::from_millis(10));
    }
    drop(c);
    let took = wait_group_gone(pgid, std::process::id(), Duration::from_secs(1));
    eprintln!("client gone: process group {pgid} gone after {took:?}");
    assert_eq!(get_at(s.server.addr, "/cgi-bin/env.sh").status, 200);
}

/// CGI-10 [REC], CGI-11: a script silent for longer than cgi-timeout: 504,
/// and the whole process group (the script and its background sleep) is
/// ended.
#[test]
fn a_silent_script_times_out_with_504_and_its_group_ends() {
    let _g = shared();
    let pidfile = tempfile::tempdir().expect("tempdir");
    let pidfile = pidfile.path().join("pid");
    let s = serve(|m| {
        m.cgi_timeout(Duration::from_secs(2)).cgi_env("CGI_TEST_PIDFILE", pidfile.to_string_lossy().as_ref())
    });
    let addr = s.server.addr;
    let start = Instant::now();
    let req = std::thread::spawn(move || get_at(addr, "/cgi-bin/sleep.sh"));
    let pgid = read_pid(&pidfile);
    let deadline = Instant::now() + Duration::from_secs(5);
    while group_members(pgid, std::process::id()).len() < 2 {
        assert!(Instant::now() < deadline, "sleep.sh's background sleep never started");
        std::thread::sleep(Duration::from_millis(10));
    }
    let r = req.join().expect("request thread");
    let took = start.elapsed();
    assert_eq!(r.status, 504, "{}", r.text());
    assert!(took >= Duration::from_millis(1900) && took < Duration::from_secs(6), "504 after {took:?}");
    let gone = wait_group_gone(pgid, std::process::id(), Duration::from_secs(5));
    eprintln!("timeout: 504 after {took:?}, group gone {gone:?} later");
}

/// CGI-11 [REC]: a script that ignores SIGTERM gets SIGKILL after the
/// grace period; the client still gets its 504.
#[test]
fn a_script_ignoring_sigterm_is_killed() {
    let _g = shared();
    let pidfile = tempfile::tempdir().expect("tempdir");
    let pidfile = pidfile.path().join("pid");
    let s = serve(|m| {
        m.cgi_timeout(Duration::from_secs(1)).cgi_env("CGI_TEST_PIDFILE", pidfile.to_string_lossy().as_ref())
    });
    let r = get_at(s.server.addr, "/cgi-bin/stubborn.sh");
    assert_eq!(r.status, 504);
    let pgid = read_pid(&pidfile);
    let gone = wait_group_gone(pgid, std::process::id(), Duration::from_secs(10));
    eprintln!("stubborn group gone {gone:?} after the 504");
}

/// CGI-10: after the head was sent, a timeout cuts the connection (the
/// chunked body never gets its last chunk) and ends the group.
#[test]
fn a_timeout_after_the_head_cuts_the_connection() {
    let _g = shared();
    let pidfile = tempfile::tempdir().expect("tempdir");
    let pidfile = pidfile.path().join("pid");
    let s = serve(|m| {
        m.cgi_timeout(Duration::from_secs(1)).cgi_env("CGI_TEST_PIDFILE", pidfile.to_string_lossy().as_ref())
    });
    let mut c = s.server.connect();
    c.write_all(b"GET /cgi-bin/stall.sh HTTP/1.1\r\nHost: localhost\r\n\r\n").expect("write");
    let raw = read_to_close(&mut c, Duration::from_secs(10));
    let text = String::from_utf8_lossy(&raw);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains("partial\n"), "{text}");
    assert!(!text.ends_with("0\r\n\r\n"), "a cut response must not look complete: {text}");
    let pgid = read_pid(&pidfile);
    wait_group_gone(pgid, std::process::id(), Duration::from_secs(5));
}

/// CGI-10: the timeout counts silence, not the response's whole length: a
/// script writing a line every 0.4 s for 2.4 s finishes under a 1 s
/// timeout.
#[test]
fn a_slow_but_steady_script_is_not_timed_out() {
    let _g = shared();
    let s = serve(|m| m.cgi_timeout(Duration::from_secs(1)));
    let r = get_at(s.server.addr, "/cgi-bin/drip.sh");
    assert_eq!(r.status, 200);
    let want: String = (1..=6).map(|i| format!("drip {i}\n")).collect();
    assert_eq!(r.text(), want);
}

// ---------------------------------------------------------------------------
// Load, limits, cleanup

fn timed_get(addr: SocketAddr, path: &str) -> (u16, String, Duration) {
    let start = Instant::now();
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").as_bytes())
        .expect("write");
    let r = Reader::new(s).response(false).expect("response");
    (r.status, r.text(), start.elapsed())
}

/// Issue 5: 200 concurrent CGI requests all succeed (or get 503 past the
/// limit); with a limit of 4, no more than 4 run at once, the excess waits
/// about 2 s and then gets 503; afterwards there is no zombie child and no
/// leaked descriptor.
#[test]
fn two_hundred_concurrent_requests_leave_no_zombie_and_no_fd() {
    let _g = exclusive();
    raise_fd_limit();
    let me = std::process::id();
    let fds_before_server = open_fds();
    let zombies_before: Vec<i32> = zombies_of(me).iter().map(|p| p.pid).collect();
    let s = serve_mounts(|_| {
        vec![Mount::cgi("/cgi-bin", cgi_dir()), Mount::cgi("/limited", cgi_dir()).cgi_max_processes(4)]
    });
    let addr = s.server.addr;
    let fds_before = open_fds();

    // 200 at once, default limit (64): every answer is 200 or 503.
    let barrier = Barrier::new(200);
    let results: Vec<(u16, String, Duration)> = std::thread::scope(|sc| {
        let handles: Vec<_> = (0..200)
            .map(|_| {
                sc.spawn(|| {
                    barrier.wait();
                    timed_get(addr, "/cgi-bin/nap.sh?0.05")
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("client thread")).collect()
    });
    let ok = results.iter().filter(|(st, body, _)| *st == 200 && body == "napped 0.05\n").count();
    let busy = results.iter().filter(|(st, _, _)| *st == 503).count();
    eprintln!("200 concurrent: {ok} ok, {busy} busy");
    assert_eq!(
        ok + busy,
        200,
        "other answers: {:?}",
        results.iter().filter(|r| r.0 != 200 && r.0 != 503).collect::<Vec<_>>()
    );
    assert!(ok >= 64, "only {ok} of 200 succeeded");

    // 40 at once on a mount limited to 4, each taking 0.5 s.
    let sampling = std::sync::atomic::AtomicBool::new(true);
    let barrier = Barrier::new(40);
    let (results, max_running) = std::thread::scope(|sc| {
        let sampler = sc.spawn(|| {
            let mut max = 0;
            while sampling.load(std::sync::atomic::Ordering::Relaxed) {
                let n =
                    processes().iter().filter(|p| p.ppid == me as i32 && p.comm == "nap.sh" && p.state != 'Z').count();
                max = max.max(n);
                std::thread::sleep(Duration::from_millis(5));
            }
            max
        });
        let handles: Vec<_> = (0..40)
            .map(|_| {
                sc.spawn(|| {
                    barrier.wait();
                    timed_get(addr, "/limited/nap.sh?0.5")
                })
            })
            .collect();
        let results: Vec<_> = handles.into_iter().map(|h| h.join().expect("client thread")).collect();
        sampling.store(false, std::sync::atomic::Ordering::Relaxed);
        (results, sampler.join().expect("sampler"))
    });
    let ok = results.iter().filter(|(st, body, _)| *st == 200 && body == "napped 0.5\n").count();
    let busy: Vec<Duration> = results.iter().filter(|(st, _, _)| *st == 503).map(|r| r.2).collect();
    eprintln!("40 on a limit of 4: {ok} ok, {} busy, at most {max_running} running", busy.len());
    assert_eq!(ok + busy.len(), 40);
    assert!(ok >= 4, "only {ok} succeeded");
    assert!(!busy.is_empty(), "40 half-second scripts on 4 slots cannot all start within 2 s");
    assert!((1..=4).contains(&max_running), "{max_running} ran at once on a limit of 4");
    for t in &busy {
        assert!(*t >= Duration::from_millis(1500), "a 503 after only {t:?}: excess requests wait for a slot");
    }

    // Settled: no zombie, no descriptor left.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let new: Vec<Proc> = zombies_of(me).into_iter().filter(|p| !zombies_before.contains(&p.pid)).collect();
        if new.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "zombie children after the load: {new:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
    let after = settle_fds(fds_before);
    assert_eq!(after, fds_before, "descriptors leaked with the server running");
    drop(s);
    let after = settle_fds(fds_before_server);
    assert_eq!(after, fds_before_server, "descriptors leaked after the server stopped");
}

/// A request over the limit that gets a slot within 2 s is served.
#[test]
fn a_queued_request_is_served_when_a_slot_frees() {
    let _g = shared();
    let s = serve(|m| m.cgi_max_processes(1));
    let addr = s.server.addr;
    let start = Instant::now();
    let results: Vec<_> = std::thread::scope(|sc| {
        let hs: Vec<_> = (0..2).map(|_| sc.spawn(|| timed_get(addr, "/cgi-bin/nap.sh?0.5"))).collect();
        hs.into_iter().map(|h| h.join().expect("client")).collect()
    });
    for (st, body, _) in &results {
        assert_eq!((*st, body.as_str()), (200, "napped 0.5\n"));
    }
    assert!(start.elapsed() >= Duration::from_millis(1000), "two 0.5 s scripts ran at once on a limit of 1");
}

/// Writes a line to the FIFO at `path` once a program has it open for
/// reading (waits up to 10 s for that, never blocking on the open).
fn release(path: &Path) {
    use std::os::unix::fs::OpenOptionsExt;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match std::fs::OpenOptions::new().write(true).custom_flags(libc::O_NONBLOCK).open(path) {
            Ok(mut f) => {
                f.write_all(b"go\n").expect("write to the FIFO");
                return;
            }
            Err(e) if e.raw_os_error() == Some(libc::ENXIO) => {
                assert!(Instant::now() < deadline, "no program opened {} within 10 s", path.display());
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => panic!("open {}: {e}", path.display()),
        }
    }
}

/// The lines of `path` (empty if it is not there yet).
fn lines_of(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path).unwrap_or_default().lines().map(str::to_string).collect()
}

/// Waits up to 10 s for `path` to have `n` lines; returns them.
fn wait_lines(path: &Path, n: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let lines = lines_of(path);
        if lines.len() >= n {
            return lines;
        }
        assert!(Instant::now() < deadline, "{} has {lines:?}, waited for {n} lines", path.display());
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Issue 12 (8), CGI-3: requests waiting for a slot are started in the
/// order they came, as soon as a slot frees, ahead of any request that
/// comes later. With a limit of 1, `H` holds the slot until the test
/// releases it; `W1`..`W4` wait meanwhile; `N` comes only after `H`'s
/// response has ended, so its slot is already free then: it must not take
/// it from the waiters (a waiter woken by a timer tick would lose it).
#[test]
fn waiting_requests_start_in_order_as_soon_as_a_slot_frees() {
    let _g = shared();
    let t = tempfile::tempdir().expect("tempdir");
    let dir = t.path().to_path_buf();
    let order = dir.join("order");
    mkfifo(&dir.join("H.fifo"));
    let s = serve(|m| m.cgi_max_processes(1).cgi_env("CGI_TEST_DIR", dir.to_string_lossy().as_ref()));
    let addr = s.server.addr;
    let names = ["W1", "W2", "W3", "W4"];
    let (h, waiters, n) = std::thread::scope(|sc| {
        let holder = sc.spawn(|| timed_get(addr, "/cgi-bin/gate.sh?H"));
        assert_eq!(wait_lines(&order, 1), ["H"], "the first program started");
        // Each request is on the server's socket before the next connects,
        // so they reach the loop in this order.
        let conns: Vec<TcpStream> = names
            .iter()
            .map(|name| {
                let mut c = TcpStream::connect(addr).expect("connect");
                c.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
                let req =
                    format!("GET /cgi-bin/gate.sh?{name} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
                c.write_all(req.as_bytes()).expect("write");
                c
            })
            .collect();
        let readers: Vec<_> =
            conns.into_iter().map(|c| sc.spawn(move || Reader::new(c).response(false).expect("response"))).collect();
        assert_eq!(lines_of(&order), ["H"], "a request ran past the limit of 1");
        let released = Instant::now();
        release(&dir.join("H.fifo"));
        let h = holder.join().expect("holder");
        let freed = released.elapsed();
        // H's slot is free now; a new request queues behind the waiters.
        let n = timed_get(addr, "/cgi-bin/gate.sh?N");
        eprintln!("H answered {freed:?} after its release");
        let waiters: Vec<Response> = readers.into_iter().map(|r| r.join().expect("reader")).collect();
        (h, waiters, n)
    });
    assert_eq!((h.0, h.1.as_str()), (200, "H\n"));
    for (r, name) in waiters.iter().zip(names) {
        assert_eq!((r.status, r.text()), (200, format!("{name}\n")), "{name}");
    }
    assert_eq!((n.0, n.1.as_str()), (200, "N\n"));
    assert_eq!(lines_of(&order), ["H", "W1", "W2", "W3", "W4", "N"], "programs started out of order");
}

/// Descriptors of this process that are pidfds, with the pid each is for
/// (`Pid:` of fdinfo).
fn pidfds_of(pid: u32) -> Vec<i64> {
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) else { return out };
    for e in dir.flatten() {
        let is_pidfd = std::fs::read_link(e.path()).is_ok_and(|l| l.to_string_lossy() == "anon_inode:[pidfd]");
        if !is_pidfd {
            continue;
        }
        let info = std::fs::read_to_string(format!("/proc/{pid}/fdinfo/{}", e.file_name().to_string_lossy()));
        let watched =
            info.ok().and_then(|i| i.lines().find_map(|l| l.strip_prefix("Pid:").map(|v| v.trim().parse().ok())));
        out.push(watched.flatten().unwrap_or(0));
    }
    out
}

/// Waits up to 10 s until `pid` is no zombie child of `parent` (reaped).
fn wait_reaped(pid: i32, parent: u32) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let p = processes().into_iter().find(|p| p.pid == pid && p.ppid == parent as i32);
        match p {
            None => return,
            Some(p) => assert!(Instant::now() < deadline, "{pid} not reaped within 10 s: {p:?}"),
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Issue 12 (8): a program's exit is an event. While it lives on after
/// its response, the server watches it through a pidfd; when it exits it
/// is reaped (no zombie left) though nothing polls for it any more; the
/// pidfd is closed with it.
#[test]
fn a_programs_exit_is_seen_through_its_pidfd_and_it_is_reaped() {
    let _g = exclusive();
    let me = std::process::id();
    let t = tempfile::tempdir().expect("tempdir");
    mkfifo(&t.path().join("go"));
    let s = serve(|m| m);
    let before = pidfds_of(me);
    let r = get_at(s.server.addr, &format!("/cgi-bin/linger.sh?{}", t.path().display()));
    assert_eq!((r.status, r.text().as_str()), (200, "answered\n"));
    let pid = read_pid(&t.path().join("pid"));
    let p = processes().into_iter().find(|p| p.pid == pid).expect("the program lives on");
    assert!(p.ppid == me as i32 && p.state != 'Z', "{p:?}");
    let watched = pidfds_of(me);
    assert!(watched.contains(&i64::from(pid)), "no pidfd for {pid} among {watched:?}");
    release(&t.path().join("go"));
    wait_reaped(pid, me);
    assert_eq!(settle_pidfds(me, before.len()), before, "the pidfd was not closed with the reaped program");
}

/// Waits up to 5 s for `pid` to hold `n` pidfds; returns what it holds.
fn settle_pidfds(pid: u32, n: usize) -> Vec<i64> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let fds = pidfds_of(pid);
        if fds.len() <= n || Instant::now() > deadline {
            return fds;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Issue 12 (8): without pidfds (a kernel before 5.3, or refused; forced
/// here with `WARREN_NO_PIDFD`), exits are polled as before: a program
/// living on after its response is reaped when it exits, and no pidfd is
/// opened.
#[test]
fn without_pidfds_programs_are_still_reaped() {
    let _g = shared();
    let t = tempfile::tempdir().expect("tempdir");
    mkfifo(&t.path().join("go"));
    let cgi = format!("/cgi-bin={}", cgi_dir().display());
    let (w, port, _log) =
        start_warren_with_env(&["--root", &t.path().to_string_lossy(), "--cgi", &cgi], &[("WARREN_NO_PIDFD", "1")]);
    let server = w.0.id();
    let r = get_at(local(port), &format!("/cgi-bin/linger.sh?{}", t.path().display()));
    assert_eq!((r.status, r.text().as_str()), (200, "answered\n"));
    let pid = read_pid(&t.path().join("pid"));
    assert!(processes().iter().any(|p| p.pid == pid && p.ppid == server as i32), "the program lives on");
    assert_eq!(pidfds_of(server), Vec::<i64>::new(), "a pidfd was opened though WARREN_NO_PIDFD is set");
    release(&t.path().join("go"));
    wait_reaped(pid, server);
    assert!(zombies_of(server).is_empty(), "zombies: {:?}", zombies_of(server));
}

// ---------------------------------------------------------------------------
// The binary, its log, its configuration

/// CGI-5: stderr lines go to the server's log at warn level, tagged with
/// the script.
#[test]
fn stderr_lines_are_logged_with_the_script() {
    let _g = shared();
    let t = tempfile::tempdir().expect("tempdir");
    let cgi = format!("/cgi-bin={}", cgi_dir().display());
    let (_w, port, log) = start_warren_logged(&["--root", &t.path().to_string_lossy(), "--cgi", &cgi]);
    let r = get_at(local(port), "/cgi-bin/stderr.sh");
    assert_eq!((r.status, r.text().as_str()), (200, "logged\n"));
    let mut found = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while found.len() < 2 {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = log.recv_timeout(left).unwrap_or_else(|_| panic!("log lines so far: {found:?}"));
        if line.contains("complaint") {
            found.push(line);
        }
    }
    for (line, what) in found.iter().zip(["first complaint", "second complaint"]) {
        assert!(line.contains("WARN"), "{line}");
        assert!(line.contains("cgi ") && line.contains("stderr.sh"), "{line}");
        assert!(line.ends_with(what), "{line}");
    }
}

/// `--cgi` with a relative path (to the directory warren was started in,
/// here the package root, where cargo runs tests): the programs run,
/// although each runs in its own directory.
#[test]
fn a_relative_cgi_path_works() {
    let _g = shared();
    let t = tempfile::tempdir().expect("tempdir");
    assert!(Path::new("tests/cgi-bin/env.sh").exists(), "tests run in the package root");
    let (_w, port) = start_warren(&["--root", &t.path().to_string_lossy(), "--cgi", "/cgi-bin=tests/cgi-bin"]);
    let r = get_at(local(port), "/cgi-bin/env.sh/x");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(env_map(&r).get("PATH_INFO").map(String::as_str), Some("/x"));
}

/// `--cgi` needs MOUNTPOINT=PATH.
#[test]
fn a_bad_cgi_flag_is_refused() {
    let _g = shared();
    let out = Command::new(BIN).args(["--cgi", "no-equals-sign", "--port", "0"]).output().expect("run");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--cgi"), "{err}");
}

/// The lwsws keys: `cgi://` origins, `cgi-timeout`, `cgi-env`, and
/// warren's `cgi-max-processes`.
#[test]
fn the_configuration_keys_work() {
    let _g = shared();
    let (t, root) = site();
    let cfg = t.path().join("cfg");
    std::fs::create_dir_all(cfg.join("conf.d")).expect("mkdir");
    std::fs::write(cfg.join("conf"), r#"{ "global": { "server-string": "warren-cgi-test" } }"#).expect("write");
    let pidfile = t.path().join("pid");
    let site_conf = format!(
        r#"{{ "vhosts": [ {{
  "name": "localhost", "port": "0", "interface": "127.0.0.1",
  "mounts": [
    {{ "mountpoint": "/", "origin": "file://{root}" }},
    # a directory of scripts
    {{ "mountpoint": "/cgi-bin", "origin": "cgi://{cgi}", "cgi-timeout": "1",
       "cgi-env": [ {{ "FROM_CONFIG": "yes" }}, {{ "CGI_TEST_PIDFILE": "{pidfile}" }} ] }},
    # the same, one process at a time
    {{ "mountpoint": "/one", "origin": "cgi://{cgi}", "cgi-max-processes": "1" }},
    # one program
    {{ "mountpoint": "/env", "origin": "cgi://{cgi}/env.sh" }}
  ] }} ] }}"#,
        root = root.display(),
        cgi = cgi_dir().display(),
        pidfile = pidfile.display()
    );
    std::fs::write(cfg.join("conf.d/site"), site_conf).expect("write");
    let info = warren::config::load_dir(&cfg).unwrap_or_else(|e| panic!("{e}"));
    let server = Server::start(info);
    let addr = server.addr;
    let r = get_at(addr, "/cgi-bin/env.sh");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("server"), Some("warren-cgi-test"));
    assert_eq!(env_map(&r).get("FROM_CONFIG").map(String::as_str), Some("yes"));
    let r = get_at(addr, "/env/x/y");
    assert_eq!(env_map(&r).get("PATH_INFO").map(String::as_str), Some("/x/y"));
    // cgi-timeout "1".
    let start = Instant::now();
    assert_eq!(get_at(addr, "/cgi-bin/sleep.sh").status, 504);
    assert!(start.elapsed() < Duration::from_secs(4), "504 after {:?}", start.elapsed());
    wait_group_gone(read_pid(&pidfile), std::process::id(), Duration::from_secs(5));
    // cgi-max-processes "1", three 1.2 s scripts at once: the second waits
    // 1.2 s for the slot and is served, the third would wait 2.4 s: 503.
    let mut results: Vec<(u16, String, Duration)> = std::thread::scope(|sc| {
        let hs: Vec<_> = (0..3).map(|_| sc.spawn(move || timed_get(addr, "/one/nap.sh?1.2"))).collect();
        hs.into_iter().map(|h| h.join().expect("client")).collect()
    });
    results.sort_by_key(|r| (r.0, r.2));
    let statuses: Vec<u16> = results.iter().map(|r| r.0).collect();
    assert_eq!(statuses, [200, 200, 503], "{results:?}");
    assert!(results[1].2 >= Duration::from_millis(2300), "the second ran at once: {results:?}");
    assert!(results[2].2 >= Duration::from_millis(1900), "the 503 came without waiting: {results:?}");
    drop(server);
}

// ---------------------------------------------------------------------------
// php-cgi

const INFO_PHP: &str = r#"<?php
header("X-Php: yes");
echo "php ok ", PHP_VERSION, "\n";
foreach (["GATEWAY_INTERFACE", "REQUEST_METHOD", "QUERY_STRING", "SERVER_PORT", "SERVER_SOFTWARE"] as $k) {
    echo $k, "=", $_SERVER[$k] ?? "(unset)", "\n";
}
echo "q=", $_GET["q"] ?? "", "\n";
"#;

const FORM_PHP: &str = r#"<?php
if ($_SERVER["REQUEST_METHOD"] === "POST") {
    echo "name=", htmlspecialchars($_POST["name"] ?? ""), "\n";
    echo "count=", count($_POST), "\n";
} else {
    echo "<form method=\"post\"><input name=\"name\"><button>send</button></form>\n";
}
"#;

/// CGI-1, CGI-2: php-cgi behind a program mount, the scripts named by
/// PATH_INFO and found through the file mount (PATH_TRANSLATED,
/// REDIRECT_STATUS): a phpinfo-like page and a form POST.
#[test]
fn php_cgi_serves_a_page_and_a_form() {
    let _g = shared();
    assert!(Path::new(PHP_CGI).exists(), "{PHP_CGI} is missing: scripts/test installs Debian's php-cgi");
    let s = serve_mounts(|root| {
        std::fs::write(root.join("info.php"), INFO_PHP).expect("write");
        std::fs::write(root.join("form.php"), FORM_PHP).expect("write");
        vec![Mount::cgi("/php", PHP_CGI)]
    });
    let addr = s.server.addr;
    let r = get_at(addr, "/php/info.php?q=hello");
    assert_eq!(r.status, 200, "{}", r.text());
    let text = r.text();
    assert!(text.starts_with("php ok 8."), "{text}");
    assert_eq!(r.header("x-php"), Some("yes"));
    assert!(r.header("content-type").is_some_and(|v| v.starts_with("text/html")), "{:?}", r.headers);
    for line in [
        "GATEWAY_INTERFACE=CGI/1.1".to_string(),
        "REQUEST_METHOD=GET".into(),
        "QUERY_STRING=q=hello".into(),
        format!("SERVER_PORT={}", addr.port()),
        "q=hello".into(),
    ] {
        assert!(text.lines().any(|l| l == line), "{line} in {text}");
    }
    let r = get_at(addr, "/php/form.php");
    assert!(r.text().contains("<form method=\"post\">"), "{}", r.text());
    let r = post_at(addr, "/php/form.php", "application/x-www-form-urlencoded", b"name=Ada+%3CLovelace%3E&x=1");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "name=Ada &lt;Lovelace&gt;\ncount=2\n");
    // A script that is not there: php-cgi's own 404.
    let r = get_at(addr, "/php/missing.php");
    assert_eq!(r.status, 404, "{}", r.text());
}

/// A program flooding stderr is read a bounded amount per turn: the rest
/// of the server goes on, and its timeout still ends it (stderr is not
/// progress).
#[test]
fn a_program_flooding_stderr_does_not_hold_the_loop() {
    let _g = shared();
    let s = serve(|m| m.cgi_timeout(Duration::from_secs(2)));
    let addr = s.server.addr;
    let flood = std::thread::spawn(move || {
        let started = Instant::now();
        (get_at(addr, "/cgi-bin/errflood.sh").status, started.elapsed())
    });
    std::thread::sleep(Duration::from_millis(300));
    for _ in 0..5 {
        let started = Instant::now();
        assert_eq!(get_at(addr, "/index.html").status, 200);
        assert!(started.elapsed() < Duration::from_secs(1), "a static file took {:?}", started.elapsed());
    }
    let (status, took) = flood.join().expect("flood thread");
    assert_eq!(status, 504, "after {took:?}");
    assert!(took < Duration::from_secs(8), "the timeout took {took:?}");
}

/// A request without a body closes the program's stdin at once, so one
/// that reads its input to the end answers (GET and Content-Length: 0).
#[test]
fn a_request_without_a_body_gives_the_program_eof() {
    let _g = shared();
    let s = serve(|m| m.cgi_timeout(Duration::from_secs(10)));
    let started = Instant::now();
    let r = get_at(s.server.addr, "/cgi-bin/stdin-eof.sh");
    assert_eq!((r.status, r.text().as_str()), (200, "read 0 bytes\n"));
    let r = post_at(s.server.addr, "/cgi-bin/stdin-eof.sh", "text/plain", b"");
    assert_eq!((r.status, r.text().as_str()), (200, "read 0 bytes\n"));
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
}

/// Clients that reset the connection while output flows: every program is
/// ended and reaped, and the slots come back (a leak would leave the
/// mount answering 503).
#[test]
fn clients_resetting_mid_output_leak_no_slot_or_child() {
    let _g = exclusive();
    let s = serve(|m| m.cgi_max_processes(4));
    let before = open_fds();
    for _ in 0..24 {
        let mut c = s.server.connect();
        c.write_all(b"GET /cgi-bin/big.sh?bytes=1073741824 HTTP/1.1\r\nHost: localhost\r\n\r\n").expect("write");
        let mut buf = vec![0u8; 65536];
        let mut got = 0;
        while got < 200_000 {
            let n = c.read(&mut buf).expect("read");
            assert!(n > 0, "closed early");
            got += n;
        }
        // SO_LINGER 0: close with a reset.
        let linger = libc::linger { l_onoff: 1, l_linger: 0 };
        // SAFETY: setsockopt on our own socket with a valid linger struct.
        unsafe {
            use std::os::fd::AsRawFd;
            libc::setsockopt(
                c.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_LINGER,
                (&linger as *const libc::linger).cast(),
                std::mem::size_of::<libc::linger>() as libc::socklen_t,
            );
        }
        drop(c);
    }
    assert_eq!(get_at(s.server.addr, "/cgi-bin/env.sh").status, 200, "a slot leaked");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !zombies_of(std::process::id()).is_empty() || wait_for_no_children() {
        assert!(Instant::now() < deadline, "children left: {:?}", zombies_of(std::process::id()));
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(settle_fds(before), before, "descriptors leaked");
}

/// Whether this process still has children (running or not reaped).
fn wait_for_no_children() -> bool {
    processes().iter().any(|p| p.ppid == std::process::id() as i32)
}

/// Header names with `_` are not passed (nginx and Apache drop them):
/// `X_Forwarded_For` must not merge into `HTTP_X_FORWARDED_FOR`.
#[test]
fn header_names_with_underscores_are_not_passed() {
    let _g = shared();
    let s = serve(|m| m);
    let req = b"GET /cgi-bin/env.sh HTTP/1.1\r\nHost: localhost\r\nX_Forwarded_For: evil\r\n\
        X-Forwarded-For: 10.0.0.1\r\nConnection: close\r\n\r\n";
    let (_, r) = exchange(s.server.addr, req);
    let env = env_map(&r);
    assert_eq!(env.get("HTTP_X_FORWARDED_FOR").map(String::as_str), Some("10.0.0.1"));
}

/// A program that chunks its own body: passed through to HTTP/1.1, and a
/// 502 for HTTP/1.0, which cannot take chunks.
#[test]
fn a_self_chunked_body_goes_to_1_1_and_is_refused_to_1_0() {
    let _g = shared();
    let s = serve(|m| m);
    let r = get_at(s.server.addr, "/cgi-bin/chunked.sh");
    assert_eq!((r.status, r.text().as_str()), (200, "hello"));
    let (_, r) = exchange(s.server.addr, b"GET /cgi-bin/chunked.sh HTTP/1.0\r\n\r\n");
    assert_eq!(r.status, 502);
}

/// php-cgi through the binary, whose `--root` goes through the default
/// filesystem (open cache and zip layer): PATH_TRANSLATED and
/// DOCUMENT_ROOT must still be the site's files.
#[test]
fn php_cgi_through_the_binary_finds_the_sites_script() {
    let _g = shared();
    let (t, root) = site();
    std::fs::write(
        root.join("hello.php"),
        "<?php echo 'php ', $_SERVER['DOCUMENT_ROOT'], ' ', $_SERVER['SCRIPT_FILENAME'];",
    )
    .expect("write");
    let (_w, port) = start_warren(&["--root", &root.to_string_lossy(), "--cgi", &format!("/php={PHP_CGI}")]);
    let r = get_at(local(port), "/php/hello.php");
    let canon = canonical(&root.to_string_lossy());
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.text(), format!("php {} {}", canon.display(), canon.join("hello.php").display()));
    drop(t);
}

/// Hostile paths under a CGI mount never run anything outside its
/// directory: each gets a 4xx, and the mount still works afterwards.
#[test]
fn hostile_cgi_paths_run_nothing_outside_the_directory() {
    let _g = shared();
    let s = serve(|m| m);
    let paths = [
        "/cgi-bin/../../../../bin/sh",
        "/cgi-bin/%2e%2e/%2e%2e/%2e%2e/bin/sh",
        "/cgi-bin/..%2f..%2f..%2fbin%2fsh",
        "/cgi-bin/env.sh%00.txt",
        "/cgi-bin/%00",
        "/cgi-bin/./../cgi-bin/../../etc/passwd",
        "/cgi-bin/nonexistent.sh/../../env.sh",
        "/cgi-bin/\\..\\..\\bin\\sh",
    ];
    for p in paths {
        let r = get_at(s.server.addr, p);
        assert!((400..500).contains(&r.status), "{p}: {} {}", r.status, r.text());
        assert!(!r.text().contains("GATEWAY_INTERFACE"), "{p} ran a program");
    }
    // Random bytes as the path: never a 5xx, never a crash.
    let mut seed = 0x2545_f491_u32;
    for _ in 0..200 {
        let mut path = String::from("/cgi-bin/");
        for _ in 0..(seed % 40) {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            let c = b"./%2e%00abc.sh\\"[(seed % 15) as usize] as char;
            path.push(c);
        }
        let req = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
        let (_, r) = exchange(s.server.addr, req.as_bytes());
        assert!(r.status < 500, "{path:?}: {}", r.status);
    }
    assert_eq!(get_at(s.server.addr, "/cgi-bin/env.sh").status, 200);
}

// ---------------------------------------------------------------------------
// Output framing (issue 10, item 5)

/// A program that chunks its own body and then writes more (a whole
/// second response): the client gets the body up to its last chunk and
/// nothing after it, and the connection stays in step (a second request
/// on it is answered as such).
#[test]
fn bytes_after_a_programs_last_chunk_never_reach_the_client() {
    let _g = shared();
    let s = serve(|m| m);
    let mut c = s.server.connect();
    c.write_all(b"GET /cgi-bin/chunked-extra.sh HTTP/1.1\r\nHost: localhost\r\n\r\n").expect("write");
    c.write_all(b"GET /cgi-bin/status.sh HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").expect("write");
    let raw = read_to_close(&mut c, Duration::from_secs(20));
    let text = String::from_utf8_lossy(&raw);
    assert!(!text.contains("smuggled"), "{text}");
    let first_body = "\r\n\r\n5\r\nhello\r\n0\r\n\r\n";
    assert!(text.starts_with("HTTP/1.1 200") && text.contains(first_body), "{text}");
    // What follows the first response is the answer to the second request.
    let after = &text[text.find(first_body).map_or(0, |i| i + first_body.len())..];
    assert!(after.starts_with("HTTP/1.1 418"), "after the first response: {after:?}");
    assert_eq!(text.matches("HTTP/1.1 ").count(), 2, "{text}");
}

/// A program killed mid-body: the client can tell. Chunked by us: the
/// connection closes without the last chunk; its own Content-Length or
/// its own chunks: closed short.
#[test]
fn a_program_killed_mid_body_leaves_the_response_visibly_cut() {
    let _g = shared();
    let s = serve(|m| m);
    for mode in ["", "length", "chunked"] {
        let mut c = s.server.connect();
        let req = format!("GET /cgi-bin/die-mid-body.sh?{mode} HTTP/1.1\r\nHost: localhost\r\n\r\n");
        c.write_all(req.as_bytes()).expect("write");
        let raw = read_to_close(&mut c, Duration::from_secs(20));
        let text = String::from_utf8_lossy(&raw);
        assert!(text.starts_with("HTTP/1.1 200"), "{mode}: {text}");
        assert!(text.contains("partial\n"), "{mode}: {text}");
        assert!(!text.ends_with("0\r\n\r\n"), "{mode}: a cut response must not look complete: {text:?}");
        if mode == "length" {
            assert!(text.contains("Content-Length: 1000") || text.contains("content-length: 1000"), "{text}");
        }
    }
    // A program that exits normally still gets its last chunk.
    let r = get_at(s.server.addr, "/cgi-bin/env.sh");
    assert_eq!(r.status, 200);
}

/// A CGI may not answer with an interim status: 101 (which would hand it
/// the connection) and any 1xx get 502.
#[test]
fn an_interim_status_from_a_program_is_502() {
    let _g = shared();
    let s = serve(|m| m);
    for code in ["101", "100", "103"] {
        let r = get_at(s.server.addr, &format!("/cgi-bin/status-1xx.sh?{code}"));
        assert_eq!(r.status, 502, "Status: {code}: {}", r.text());
        assert!(!r.text().contains("not a websocket"), "{code}");
    }
}

/// Broken chunked framing in a request body for a CGI: 400 (the program
/// has answered nothing yet), and the program is ended.
#[test]
fn bad_chunked_request_framing_on_a_cgi_is_400() {
    let _g = shared();
    let s = serve(|m| m);
    let req = b"POST /cgi-bin/hash.py HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n\
                5\r\nhello\r\nzz-not-hex\r\n\r\n";
    let (_, r) = exchange(s.server.addr, req);
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(get_at(s.server.addr, "/cgi-bin/env.sh").status, 200);
}

// ---------------------------------------------------------------------------
// Uploads and the timeout (issue 10, item 8)

/// A steady upload slower in total than the timeout, but with every step
/// well inside it, is not ended: each write into stdin is progress. The
/// pacing: 16 KiB every 250 ms (64 KiB/s) for 8 s, under a 3 s timeout.
#[test]
fn a_slow_steady_upload_is_not_timed_out() {
    let _g = shared();
    let s = serve(|m| m.cgi_timeout(Duration::from_secs(3)));
    let steps = 32;
    let piece = pattern(16 * 1024);
    let total = piece.len() * steps;
    let mut c = s.server.connect();
    c.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
    let head = format!(
        "POST /cgi-bin/hash.py HTTP/1.1\r\nHost: localhost\r\nContent-Length: {total}\r\nConnection: close\r\n\r\n"
    );
    c.write_all(head.as_bytes()).expect("write head");
    for _ in 0..steps {
        std::thread::sleep(Duration::from_millis(250));
        if c.write_all(&piece).is_err() {
            // Answered (504) and closed early: the response says so below.
            break;
        }
    }
    let r = Reader::new(c).response(false).expect("response");
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().trim_end().ends_with(&format!(" {total}")), "{}", r.text());
}

// ---------------------------------------------------------------------------
// Process groups (issue 10, item 11)

/// A program that answers, leaves a background child holding its stdout
/// and exits: the response cannot end (stdout stays open), the timeout
/// ends the request, and with it the whole group although its leader is
/// long gone.
#[test]
fn a_background_child_outliving_its_leader_is_ended_with_the_request() {
    let _g = shared();
    let pidfile = tempfile::tempdir().expect("tempdir");
    let pidfile = pidfile.path().join("pid");
    let s = serve(|m| {
        m.cgi_timeout(Duration::from_secs(2)).cgi_env("CGI_TEST_PIDFILE", pidfile.to_string_lossy().as_ref())
    });
    let mut c = s.server.connect();
    c.write_all(b"GET /cgi-bin/bg-exit.sh HTTP/1.1\r\nHost: localhost\r\n\r\n").expect("write");
    let raw = read_to_close(&mut c, Duration::from_secs(20));
    let text = String::from_utf8_lossy(&raw);
    assert!(text.starts_with("HTTP/1.1 200") && text.contains("answered\n"), "{text}");
    let pgid = read_pid(&pidfile);
    let gone = wait_group_gone(pgid, std::process::id(), Duration::from_secs(10));
    eprintln!("leaderless group {pgid} gone {gone:?} after the request ended");
}

/// A program that starts a detached child (a daemon in its group) and
/// exits normally: the child is let run after the request, as lighttpd
/// and nginx do; when the server stops, it is ended.
#[test]
fn a_daemonised_child_runs_on_until_the_server_stops() {
    let _g = shared();
    let pidfile = tempfile::tempdir().expect("tempdir");
    let pidfile = pidfile.path().join("pid");
    let s = serve(|m| m.cgi_env("CGI_TEST_PIDFILE", pidfile.to_string_lossy().as_ref()));
    let r = get_at(s.server.addr, "/cgi-bin/daemon.sh");
    assert_eq!((r.status, r.text().as_str()), (200, "daemon started\n"));
    let pgid = read_pid(&pidfile);
    // Its leader has exited; the detached child is still there.
    let left = group_members(pgid, std::process::id());
    assert!(left.iter().any(|p| p.pid != pgid && p.state != 'Z'), "the daemon should run on: {left:?}");
    drop(s);
    let gone = wait_group_gone(pgid, std::process::id(), Duration::from_secs(10));
    eprintln!("daemon group {pgid} gone {gone:?} after the server stopped");
}

/// The binary: SIGTERM stops it cleanly, ending what its programs left
/// running; it exits with success.
#[test]
fn sigterm_to_the_binary_ends_the_groups_it_started() {
    let _g = shared();
    let t = tempfile::tempdir().expect("tempdir");
    let pidfile = t.path().join("pid");
    let cgi = format!("/cgi-bin={}", cgi_dir().display());
    let (mut w, port) = start_warren(&["--root", &t.path().to_string_lossy(), "--cgi", &cgi]);
    let r = get_at(local(port), &format!("/cgi-bin/daemon.sh?{}", pidfile.display()));
    assert_eq!(r.status, 200, "{}", r.text());
    let pgid = read_pid(&pidfile);
    let server_pid = w.0.id();
    assert!(group_members(pgid, server_pid).iter().any(|p| p.pid != pgid), "the daemon should run on");
    // SAFETY: a signal to the warren we started.
    assert_eq!(unsafe { libc::kill(server_pid as i32, libc::SIGTERM) }, 0);
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(st) = w.0.try_wait().expect("wait") {
            break st;
        }
        assert!(Instant::now() < deadline, "warren did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(10));
    };
    assert!(status.success(), "{status:?}");
    wait_group_gone(pgid, server_pid, Duration::from_secs(5));
}

// ---------------------------------------------------------------------------
// Paths handed to programs (issue 10, item 2; issue 11, item 7)

/// With a link to `/` and one to a directory outside the root in the
/// site, an interpreter mount refuses (403) what the file mount refuses,
/// runs nothing from outside, and hands in-root paths on resolved.
#[test]
fn interpreter_mounts_confine_paths_as_file_opens_do() {
    let _g = shared();
    let outside = tempfile::tempdir().expect("tempdir");
    std::fs::write(outside.path().join("x.php"), "<?php echo 'outside ran';").expect("write");
    std::fs::write(outside.path().join("x.txt"), "outside").expect("write");
    let s = serve_mounts(|root| {
        std::os::unix::fs::symlink("/", root.join("rootlink")).expect("symlink");
        std::os::unix::fs::symlink(outside.path(), root.join("shared")).expect("symlink");
        std::fs::create_dir_all(root.join("sub")).expect("mkdir");
        std::fs::write(root.join("sub/real.php"), "<?php echo 'inside ', $_SERVER['SCRIPT_FILENAME'];").expect("w");
        std::os::unix::fs::symlink("sub/real.php", root.join("alias.php")).expect("symlink");
        vec![Mount::cgi("/php", PHP_CGI), Mount::cgi("/env", cgi_dir().join("env.sh"))]
    });
    let addr = s.server.addr;
    // The file mount's own answers, for comparison.
    assert_eq!(get_at(addr, "/rootlink/etc/passwd").status, 403);
    assert_eq!(get_at(addr, "/shared/x.txt").status, 403);
    for p in ["/php/rootlink/etc/passwd", "/php/shared/x.php", "/php/rootlink/nonexistent/x.php", "/php/shared"] {
        let r = get_at(addr, p);
        assert_eq!(r.status, 403, "{p}: {}", r.text());
        assert!(!r.text().contains("root:") && !r.text().contains("outside ran"), "{p}: {}", r.text());
    }
    for p in ["/env/rootlink/etc/passwd", "/env/shared/x.txt"] {
        let r = get_at(addr, p);
        assert_eq!(r.status, 403, "{p}: {}", r.text());
        assert!(!r.text().contains("GATEWAY_INTERFACE"), "{p} ran the program");
    }
    // Inside the root: a link is resolved to where it leads.
    let root = s.root.canonicalize().expect("canonical root");
    let r = get_at(addr, "/php/alias.php");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.text(), format!("inside {}", root.join("sub/real.php").display()));
    // A path that does not exist: its existing part resolved, the rest as is.
    let env = env_map(&get_at(addr, "/env/sub/missing/x"));
    assert_eq!(env.get("PATH_TRANSLATED"), Some(&root.join("sub/missing/x").to_string_lossy().into_owned()));
}

/// PATH_TRANSLATED is confined on every request: a directory below the
/// root swapped for a link out of it is refused at once, as a file open
/// there is, even though the same path was translated a moment before.
#[test]
fn a_link_swapped_in_under_path_info_is_refused_at_once() {
    let _g = shared();
    let outside = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(outside.path().join("sub")).expect("mkdir");
    std::fs::write(outside.path().join("sub/x.txt"), "OUTSIDE").expect("write");
    let s = serve_mounts(|root| {
        std::fs::create_dir_all(root.join("sub")).expect("mkdir");
        std::fs::write(root.join("sub/x.txt"), "inside").expect("write");
        vec![Mount::cgi("/env", cgi_dir().join("env.sh"))]
    });
    let addr = s.server.addr;
    let root = s.root.canonicalize().expect("canonical root");
    let env = env_map(&get_at(addr, "/env/sub/x.txt"));
    assert_eq!(env.get("PATH_TRANSLATED"), Some(&root.join("sub/x.txt").to_string_lossy().into_owned()));
    // Swapped: `sub` now leads out of the root.
    std::fs::rename(s.root.join("sub"), s.root.join("sub.old")).expect("rename");
    std::os::unix::fs::symlink(outside.path().join("sub"), s.root.join("sub")).expect("symlink");
    assert_eq!(get_at(addr, "/sub/x.txt").status, 403, "the file mount refuses it");
    for p in ["/env/sub/x.txt", "/env/sub/./x.txt"] {
        let r = get_at(addr, p);
        assert_eq!(r.status, 403, "{p}: {}", r.text());
        assert!(!r.text().contains("GATEWAY_INTERFACE"), "{p} ran the program");
    }
}

/// A script that is not executable: 403 (as Apache does), and a log line
/// at info saying why, once; a missing one: 404, logged too.
#[test]
fn a_refused_cgi_request_is_logged_with_its_cause() {
    let _g = shared();
    use std::os::unix::fs::PermissionsExt;
    let t = tempfile::tempdir().expect("tempdir");
    let bin = t.path().join("bin");
    std::fs::create_dir(&bin).expect("mkdir");
    std::fs::write(bin.join("plain.sh"), "#!/bin/sh\necho\n").expect("write");
    std::fs::set_permissions(bin.join("plain.sh"), std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let cgi = format!("/cgi-bin={}", bin.display());
    let (_w, port, log) = start_warren_logged(&["--root", &t.path().to_string_lossy(), "--cgi", &cgi]);
    assert_eq!(get_at(local(port), "/cgi-bin/plain.sh").status, 403);
    assert_eq!(get_at(local(port), "/cgi-bin/missing.sh").status, 404);
    let mut lines = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while lines.len() < 2 {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = log.recv_timeout(left).unwrap_or_else(|_| panic!("log lines so far: {lines:?}"));
        if line.contains("refused") {
            lines.push(line);
        }
    }
    let first = log_body(&lines[0]).unwrap_or_default();
    assert!(first.starts_with("INFO") && first.contains("/cgi-bin/plain.sh"), "{lines:?}");
    assert!(lines[0].contains("403") && lines[0].contains("not executable"), "{lines:?}");
    assert!(lines[1].contains("/cgi-bin/missing.sh") && lines[1].contains("404"), "{lines:?}");
}
