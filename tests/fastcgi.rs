//! FastCGI (issue 16): warren in front of a real php-fpm (Debian's
//! `php8.2-fpm`, started per test by `support::fpm` with its own pool on a
//! socket in a temp dir). `.php` files of a file mount run through it in
//! place (`cgi-assign` with `fcgi://`), with the parameters the CGI role
//! builds (RFC 3875 §4.1; spec CGI-2), the body streamed as FCGI_STDIN
//! and the response as FCGI_STDOUT at the client's pace (CGI-6, CGI-9),
//! the server told when the client goes away (CGI-11), and every failure
//! of the server an HTTP answer or a cut response, never a stuck
//! connection (CGI-5, CGI-10).

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};
use support::fpm::{Fpm, FpmOptions};
use support::{start_warren_logged, Reader, Response, Running};

/// warren serving `fpm`'s docroot at `/`, `.php` through `fpm`, with
/// `keys` (more mount keys, each ending with a comma) from an lwsws
/// configuration; its metrics at `/metrics`.
fn serve(fpm: &Fpm, keys: &str) -> (Running, u16, Receiver<String>) {
    serve_with(fpm, keys, &[])
}

/// [`serve`] with more command-line arguments.
fn serve_with(fpm: &Fpm, keys: &str, args: &[&str]) -> (Running, u16, Receiver<String>) {
    let dir = fpm.dir().join("warren");
    std::fs::create_dir_all(dir.join("conf.d")).expect("mkdir");
    std::fs::write(dir.join("conf"), "{ \"global\": {} }\n").expect("conf");
    let vhost = format!(
        r#"{{ "vhosts": [ {{ "name": "localhost", "port": "0", "interface": "127.0.0.1",
    "ws-protocols": [ {{ "warren-metrics": {{}} }} ],
    "mounts": [ {{ "mountpoint": "/", "origin": "file://{root}", {keys}
      "default": [ "index.php", "index.html" ], "cgi-assign": {{ ".php": "fcgi://{addr}" }} }},
      {{ "mountpoint": "/metrics", "origin": "callback://warren-metrics" }} ] }} ] }}"#,
        root = fpm.docroot().display(),
        addr = fpm.addr(),
    );
    std::fs::write(dir.join("conf.d/site"), vhost).expect("conf.d");
    let mut all = vec!["--config", dir.to_str().expect("utf-8")];
    all.extend_from_slice(args);
    start_warren_logged(&all)
}

fn connect(port: u16) -> Reader {
    let s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(60))).expect("timeout");
    Reader::new(s)
}

/// One request on `r`'s connection and its response.
fn ask(r: &mut Reader, req: &str) -> Response {
    r.stream.write_all(req.as_bytes()).expect("write");
    r.response(req.starts_with("HEAD ")).expect("response")
}

fn get(port: u16, path: &str) -> Response {
    ask(&mut connect(port), &format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"))
}

/// Waits (bounded) for `f` to hold; the wait is for an outcome, never a
/// measure of time.
fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let until = Instant::now() + Duration::from_secs(60);
    while !f() {
        assert!(Instant::now() < until, "waited a minute for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A line of the log that contains `needle`, waited for.
fn logged(log: &Receiver<String>, needle: &str) -> String {
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        let left = until.saturating_duration_since(Instant::now());
        match log.recv_timeout(left) {
            Ok(line) if line.contains(needle) => return line,
            Ok(_) => {}
            Err(_) => panic!("no log line with {needle:?}"),
        }
    }
}

/// Descriptors warren has open.
fn fds(w: &Running) -> usize {
    std::fs::read_dir(format!("/proc/{}/fd", w.0.id())).expect("fds").count()
}

/// Waits (bounded) for warren's descriptors to come back to `base`. A
/// client connection warren has answered may still be open for a moment
/// after the client has its answer (the lingering close reads the
/// client's EOF), so a count taken at once can be one high; a leak never
/// comes back down.
fn fds_back_to(w: &Running, base: usize) {
    wait_for("descriptors back to the count before", || fds(w) <= base);
}

const ENV_PHP: &str = r#"<?php
header('Content-Type: text/plain');
foreach (['SCRIPT_FILENAME', 'SCRIPT_NAME', 'PATH_INFO', 'PATH_TRANSLATED', 'REQUEST_METHOD',
          'QUERY_STRING', 'REQUEST_URI', 'CONTENT_TYPE', 'CONTENT_LENGTH', 'HTTPS', 'REDIRECT_STATUS',
          'DOCUMENT_ROOT', 'SERVER_PROTOCOL', 'GATEWAY_INTERFACE', 'HTTP_X_PROBE', 'REMOTE_ADDR'] as $k) {
    echo $k, '=', $_SERVER[$k] ?? '(unset)', "\n";
}
echo 'body=', file_get_contents('php://input'), "\n";
error_log('env.php was here');
"#;

/// The RFC 3875 parameters reach php-fpm as the CGI role builds them
/// (spec CGI-2): the script found where it sits, PATH_INFO after it,
/// REDIRECT_STATUS for PHP's force-redirect check, HTTPS unset on plain
/// HTTP; the body arrives; stderr records land in warren's log.
#[test]
fn parameters_body_and_stderr() {
    let fpm = Fpm::start(FpmOptions::default());
    fpm.script("env.php", ENV_PHP);
    std::fs::create_dir(fpm.docroot().join("data")).expect("mkdir");
    let (_w, port, log) = serve(&fpm, "");
    let body = "a=1&b=2";
    let req = format!(
        "POST /env.php/data/x?q=1 HTTP/1.1\r\nHost: localhost\r\nX-Probe: probe\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let r = ask(&mut connect(port), &req);
    assert_eq!(r.status, 200, "{}", r.text());
    let root = fpm.docroot().canonicalize().expect("canonical");
    let text = r.text();
    for want in [
        format!("SCRIPT_FILENAME={}/env.php", root.display()),
        "SCRIPT_NAME=/env.php".into(),
        "PATH_INFO=/data/x".into(),
        format!("PATH_TRANSLATED={}/data/x", root.display()),
        "REQUEST_METHOD=POST".into(),
        "QUERY_STRING=q=1".into(),
        "REQUEST_URI=/env.php/data/x?q=1".into(),
        "CONTENT_TYPE=application/x-www-form-urlencoded".into(),
        "CONTENT_LENGTH=7".into(),
        "HTTPS=(unset)".into(),
        "REDIRECT_STATUS=200".into(),
        format!("DOCUMENT_ROOT={}", root.display()),
        "SERVER_PROTOCOL=HTTP/1.1".into(),
        "GATEWAY_INTERFACE=CGI/1.1".into(),
        "HTTP_X_PROBE=probe".into(),
        "REMOTE_ADDR=127.0.0.1".into(),
        format!("body={body}"),
    ] {
        assert!(text.lines().any(|l| l == want), "no {want:?} in:\n{text}");
    }
    assert_eq!(r.header("content-type"), Some("text/plain;charset=UTF-8"));
    let line = logged(&log, "env.php was here");
    assert!(line.contains("/env.php"), "the log line names the script: {line}");
    // The default document runs through it too.
    fpm.script("index.php", "<?php echo 'index ran';");
    assert_eq!(get(port, "/").text(), "index ran");
}

/// A 50 MiB body streams through as FCGI_STDIN records (the client is
/// read only as php-fpm takes them) and arrives whole: php-fpm's hash of
/// what it read is the hash of what was sent.
#[test]
fn a_large_body_arrives_whole() {
    let opts = FpmOptions {
        php_admin_values: vec![("post_max_size".into(), "64M".into()), ("memory_limit".into(), "32M".into())],
        ..FpmOptions::default()
    };
    let fpm = Fpm::start(opts);
    fpm.script(
        "hash.php",
        "<?php $h = hash_init('sha256'); $in = fopen('php://input', 'rb'); $n = 0;\n\
         while (!feof($in)) { $b = fread($in, 65536); $n += strlen($b); hash_update($h, $b); }\n\
         echo $n, ' ', hash_final($h);",
    );
    let (_w, port, _log) = serve(&fpm, "");
    let body = support::pattern(50 << 20);
    let mut r = connect(port);
    let head = format!(
        "POST /hash.php HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/octet-stream\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    r.stream.write_all(head.as_bytes()).expect("head");
    r.stream.write_all(&body).expect("body");
    let resp = r.response(false).expect("response");
    assert_eq!(resp.status, 200, "{}", resp.text());
    let out = std::process::Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            c.stdin.take().expect("stdin").write_all(&body)?;
            c.wait_with_output()
        })
        .expect("sha256sum");
    let want = String::from_utf8_lossy(&out.stdout).split_whitespace().next().unwrap_or("").to_string();
    assert_eq!(resp.text(), format!("{} {want}", body.len()));
}

/// A 1 GiB response to a reader that stalls, then reads: php-fpm is held
/// back through the connection (warren reads FCGI_STDOUT only as the
/// client takes it), so warren's memory stays flat, and every byte
/// arrives.
#[test]
fn a_gigabyte_to_a_slow_reader_keeps_memory_flat() {
    let fpm = Fpm::start(FpmOptions::default());
    fpm.script(
        "big.php",
        "<?php header('Content-Type: application/octet-stream'); $s = str_repeat('z', 65536);\n\
         for ($i = 0; $i < 16384; $i++) { echo $s; }",
    );
    let (w, port, _log) = serve(&fpm, "");
    // Warm: the first request's allocations are not the stream's.
    assert_eq!(get(port, "/big.php?warm").status, 200);
    let before = w.peak_rss_kib();
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(60))).expect("timeout");
    s.write_all(b"GET /big.php HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").expect("write");
    let mut buf = vec![0u8; 1 << 16];
    let mut total = 0u64;
    let mut stalls = 0;
    loop {
        let n = s.read(&mut buf).expect("read");
        if n == 0 {
            break;
        }
        total += n as u64;
        // Stall a few times early on: the sockets fill, php-fpm blocks.
        if stalls < 5 && total > (stalls + 1) * (4 << 20) {
            stalls += 1;
            std::thread::sleep(Duration::from_millis(300));
        }
    }
    assert_eq!(stalls, 5);
    // Chunked framing adds a few bytes per chunk; the body is 1 GiB.
    assert!(total > 1 << 30, "got {total} bytes");
    let after = w.peak_rss_kib();
    assert!(after < before + 16 * 1024, "peak RSS grew from {before} KiB to {after} KiB");
}

/// The client going away mid-response ends the request at php-fpm: the
/// connection is aborted and closed, and the script, at its next write,
/// finds itself aborted (`connection_status()` 1) instead of running on.
#[test]
fn a_client_going_away_aborts_the_script() {
    let fpm = Fpm::start(FpmOptions::default());
    let marker = fpm.docroot().join("status.txt");
    fpm.script(
        "stream.php",
        &format!(
            "<?php ignore_user_abort(false);\n\
             register_shutdown_function(function () {{ file_put_contents('{m}', (string) connection_status()); }});\n\
             header('Content-Type: text/plain');\n\
             for ($i = 0; $i < 6000; $i++) {{ echo str_repeat('y', 8191), \"\\n\"; flush(); usleep(10000); }}",
            m = marker.display()
        ),
    );
    let (_w, port, _log) = serve(&fpm, "");
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.write_all(b"GET /stream.php HTTP/1.1\r\nHost: localhost\r\n\r\n").expect("write");
    let mut got = 0;
    let mut buf = [0u8; 8192];
    while got < 65536 {
        got += s.read(&mut buf).expect("read");
    }
    drop(s);
    // Without the abort it would run for a minute, then say 0.
    wait_for("the script's shutdown", || marker.exists());
    wait_for("the marker's content", || std::fs::read_to_string(&marker).is_ok_and(|m| !m.is_empty()));
    assert_eq!(std::fs::read_to_string(&marker).expect("marker"), "1", "connection_status()");
}

/// php-fpm killed mid-response: the response ends without its last
/// chunk (so the client knows it is cut), and the next request, with the
/// server gone, gets 502 with the styled page; nothing is left open.
#[test]
fn a_server_killed_mid_response_cuts_it() {
    let mut fpm = Fpm::start(FpmOptions::default());
    fpm.script(
        "slow.php",
        "<?php header('Content-Type: text/plain');\n\
         for ($i = 0; $i < 6000; $i++) { echo str_repeat('s', 1023), \"\\n\"; flush(); usleep(10000); }",
    );
    let (w, port, _log) = serve(&fpm, "");
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(60))).expect("timeout");
    s.write_all(b"GET /slow.php HTTP/1.1\r\nHost: localhost\r\n\r\n").expect("write");
    let mut got = Vec::new();
    let mut buf = [0u8; 8192];
    while got.len() < 16384 {
        let n = s.read(&mut buf).expect("read");
        assert!(n > 0, "closed early");
        got.extend_from_slice(&buf[..n]);
    }
    assert!(got.starts_with(b"HTTP/1.1 200 OK\r\n"));
    fpm.kill();
    // Read to the end: the connection closes, without the last chunk.
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => panic!("not closed: {e}"),
        }
    }
    assert!(!got.ends_with(b"0\r\n\r\n"), "a cut response must not end as a whole one");
    let r = get(port, "/slow.php");
    assert_eq!(r.status, 502);
    assert!(r.header("content-type").is_some_and(|t| t.starts_with("text/html")));
    assert!(r.text().contains("502"), "the styled page: {}", r.text());
    // The failed connections are all closed.
    let base = fds(&w);
    for _ in 0..20 {
        assert_eq!(get(port, "/slow.php").status, 502);
    }
    fds_back_to(&w, base);
}

/// A server that is not there: 502 with the styled page, over a Unix
/// socket that does not exist and a TCP port nobody listens on; a file
/// beside the scripts is still served.
#[test]
fn a_server_not_started_is_502() {
    let site = tempfile::tempdir().expect("tempdir");
    std::fs::write(site.path().join("a.php"), "<?php echo 1;").expect("script");
    std::fs::write(site.path().join("a.txt"), "plain").expect("file");
    let free = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let closed = free.local_addr().expect("addr");
    drop(free);
    let gone = site.path().join("no-such.sock");
    for addr in [gone.display().to_string(), closed.to_string()] {
        let root = site.path().to_str().expect("utf-8");
        let (w, port, log) = start_warren_logged(&["--root", root, "--cgi-assign", &format!(".php=fcgi://{addr}")]);
        let r = get(port, "/a.php");
        assert_eq!(r.status, 502, "{addr}");
        assert!(r.text().contains("502"), "the styled page: {}", r.text());
        logged(&log, &addr);
        assert_eq!(get(port, "/a.txt").text(), "plain");
        let base = fds(&w);
        for _ in 0..10 {
            assert_eq!(get(port, "/a.php").status, 502);
        }
        fds_back_to(&w, base);
    }
}

/// A script that says nothing within the mount's `cgi-timeout` gets the
/// client a 504 (CGI-10), and a server that does not accept the
/// connection within `fcgi-connect-timeout` (a listener whose queue is
/// full) gets one too.
#[test]
fn silence_and_an_unmade_connection_are_504() {
    let fpm = Fpm::start(FpmOptions::default());
    fpm.script("sleep.php", "<?php sleep(20); echo 'late';");
    let (_w, port, _log) = serve(&fpm, r#""cgi-timeout": "1","#);
    let r = get(port, "/sleep.php");
    assert_eq!(r.status, 504, "{}", r.text());

    // A listener that never accepts, its queue full: a connection to it
    // is never made.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    // SAFETY: listen(2) again on our own listening socket: a backlog of 0.
    assert_eq!(unsafe { libc::listen(std::os::fd::AsRawFd::as_raw_fd(&listener), 0) }, 0);
    let addr = listener.local_addr().expect("addr");
    let mut fillers = Vec::new();
    for _ in 0..4 {
        // Once the queue is full, connections hang: these give up.
        if let Ok(s) = TcpStream::connect_timeout(&addr, Duration::from_millis(300)) {
            fillers.push(s);
        }
    }
    let site = tempfile::tempdir().expect("tempdir");
    std::fs::write(site.path().join("a.php"), "<?php echo 1;").expect("script");
    let dir = site.path().join("warren");
    std::fs::create_dir_all(dir.join("conf.d")).expect("mkdir");
    std::fs::write(dir.join("conf"), "{ \"global\": {} }\n").expect("conf");
    let vhost = format!(
        r#"{{ "vhosts": [ {{ "name": "localhost", "port": "0", "interface": "127.0.0.1",
    "mounts": [ {{ "mountpoint": "/", "origin": "file://{root}", "fcgi-connect-timeout": "1",
      "cgi-assign": {{ ".php": "fcgi://{addr}" }} }} ] }} ] }}"#,
        root = site.path().display()
    );
    std::fs::write(dir.join("conf.d/site"), vhost).expect("conf.d");
    let (_w2, port2, log) = start_warren_logged(&["--config", dir.to_str().expect("utf-8")]);
    let r = get(port2, "/a.php");
    assert_eq!(r.status, 504, "{}", r.text());
    logged(&log, "cannot connect");
}

/// At `fcgi-max-requests`, a request waits in line briefly, then gets
/// 503 with `Retry-After`; the one in flight is unharmed.
#[test]
fn past_the_request_limit_is_503() {
    let fpm = Fpm::start(FpmOptions::default());
    let go = fpm.docroot().join("go");
    let started = fpm.docroot().join("started");
    fpm.script(
        "hold.php",
        &format!(
            "<?php touch('{s}'); while (!file_exists('{g}')) usleep(10000); echo 'released';",
            s = started.display(),
            g = go.display()
        ),
    );
    fpm.script("hello.php", "<?php echo 'hello';");
    let (_w, port, _log) = serve(&fpm, r#""fcgi-max-requests": "1","#);
    let first = std::thread::spawn(move || get(port, "/hold.php"));
    wait_for("the first request to run", || started.exists());
    let r = get(port, "/hello.php");
    assert_eq!(r.status, 503);
    assert_eq!(r.header("retry-after"), Some("1"));
    std::fs::write(&go, "").expect("go");
    let r = first.join().expect("first");
    assert_eq!((r.status, r.text().as_str()), (200, "released"));
    assert_eq!(get(port, "/hello.php").text(), "hello");
}

/// Unix sockets warren has open (its listener, clients, FastCGI
/// connections).
fn sockets(w: &Running) -> usize {
    let dir = format!("/proc/{}/fd", w.0.id());
    std::fs::read_dir(&dir)
        .expect("fds")
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|l| l.to_string_lossy().starts_with("socket:"))
        .count()
}

/// Connections to php-fpm are kept for the next request (FCGI_KEEP_CONN),
/// no more than `fcgi-keepalive` of them idle, and reused: sequential
/// requests open none.
#[test]
fn connections_are_kept_and_bounded() {
    let fpm = Fpm::start(FpmOptions { children: 6, ..FpmOptions::default() });
    let go = fpm.docroot().join("go");
    fpm.script(
        "hold.php",
        &format!(
            "<?php while (ob_get_level()) ob_end_flush();\n\
             echo 'a'; flush(); while (!file_exists('{g}')) usleep(10000); echo 'b';",
            g = go.display()
        ),
    );
    fpm.script("hello.php", "<?php echo 'hello';");
    std::fs::write(fpm.docroot().join("static.txt"), "static").expect("file");
    let (w, port, _log) = serve(&fpm, r#""fcgi-keepalive": "2","#);
    let mut c = connect(port);
    let get_on = |c: &mut Reader, path: &str| ask(c, &format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n"));
    assert_eq!(get_on(&mut c, "/static.txt").text(), "static");
    let base = sockets(&w);
    // Six at once: six connections; when they end, two stay.
    let mut held = Vec::new();
    for _ in 0..6 {
        let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        s.write_all(b"GET /hold.php HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").expect("write");
        let mut b = [0u8; 1];
        // The head and the first byte of the body: the request is in flight.
        let mut seen = Vec::new();
        while !seen.ends_with(b"\r\n\r\n") {
            s.read_exact(&mut b).expect("head");
            seen.push(b[0]);
        }
        held.push(s);
    }
    std::fs::write(&go, "").expect("go");
    for mut s in held {
        let mut rest = Vec::new();
        s.read_to_end(&mut rest).expect("rest");
        assert!(rest.windows(1).any(|w| w == b"b"), "{}", String::from_utf8_lossy(&rest));
    }
    // A request after them on the kept client connection: their ends
    // have all been dealt with.
    assert_eq!(get_on(&mut c, "/static.txt").text(), "static");
    // (Counted once the six clients' lingering closes are over.)
    wait_for("two idle connections kept", || sockets(&w) == base + 2);
    for _ in 0..20 {
        assert_eq!(get_on(&mut c, "/hello.php").text(), "hello");
    }
    assert_eq!(get_on(&mut c, "/static.txt").text(), "static");
    wait_for("the two reused, none opened", || sockets(&w) == base + 2);
}

/// A field value with obs-text (bytes 0x80-0xFF, RFC 9110 §5.5), here a
/// Latin-1 file name, is passed on as it came, not refused as a bad head.
#[test]
fn a_latin1_field_value_is_passed_on() {
    let fpm = Fpm::start(FpmOptions::default());
    fpm.script(
        "latin1.php",
        "<?php header(\"Content-Disposition: attachment; filename=\\\"caf\\xe9.txt\\\"\"); echo 'ok';",
    );
    let (_w, port, _log) = serve(&fpm, "");
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.write_all(b"GET /latin1.php HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").expect("write");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read");
    assert!(raw.starts_with(b"HTTP/1.1 200 "), "{}", String::from_utf8_lossy(&raw));
    let want: &[u8] = b"\r\nContent-Disposition: attachment; filename=\"caf\xe9.txt\"\r\n";
    assert!(raw.windows(want.len()).any(|w| w == want), "{}", String::from_utf8_lossy(&raw));
}

/// A kept connection idle for 10 s is closed: it holds a php-fpm worker
/// that another client of the pool may need.
#[test]
fn an_idle_kept_connection_is_let_go() {
    let fpm = Fpm::start(FpmOptions { children: 1, ..FpmOptions::default() });
    fpm.script("hello.php", "<?php echo 'hello';");
    std::fs::write(fpm.docroot().join("static.txt"), "static").expect("file");
    let (w, port, _log) = serve(&fpm, "");
    let mut c = connect(port);
    let get_on = |c: &mut Reader, path: &str| ask(c, &format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n"));
    assert_eq!(get_on(&mut c, "/static.txt").text(), "static");
    let base = sockets(&w);
    assert_eq!(get_on(&mut c, "/hello.php").text(), "hello");
    assert_eq!(sockets(&w), base + 1, "the connection kept");
    wait_for("the kept connection closed", || sockets(&w) == base);
    // The only worker is free: a client of its own gets it.
    assert!(String::from_utf8_lossy(&fpm.get("hello.php", "").expect("direct").stdout).ends_with("hello"));
}

/// An `fcgi://` mount: every request below it goes to the server, the
/// path below the mountpoint as PATH_INFO, SCRIPT_NAME the mountpoint; a
/// front controller is named with `cgi-env` (`SCRIPT_FILENAME`), as
/// docs/cgi.md shows. Without one, php-fpm has no script and says so.
#[test]
fn a_whole_mount_goes_to_the_server() {
    let fpm = Fpm::start(FpmOptions::default());
    let app = fpm.script(
        "app.php",
        "<?php echo $_SERVER['SCRIPT_NAME'], '|', $_SERVER['PATH_INFO'] ?? '', '|', $_SERVER['QUERY_STRING'];",
    );
    let dir = fpm.dir().join("warren");
    std::fs::create_dir_all(dir.join("conf.d")).expect("mkdir");
    std::fs::write(dir.join("conf"), "{ \"global\": {} }\n").expect("conf");
    let vhost = format!(
        r#"{{ "vhosts": [ {{ "name": "localhost", "port": "0", "interface": "127.0.0.1",
    "mounts": [ {{ "mountpoint": "/app", "origin": "fcgi://{addr}", "cgi-env": [ {{ "SCRIPT_FILENAME": "{app}" }} ] }},
                {{ "mountpoint": "/bare", "origin": "fcgi://{addr}" }} ] }} ] }}"#,
        addr = fpm.addr(),
        app = app.display()
    );
    std::fs::write(dir.join("conf.d/site"), vhost).expect("conf.d");
    let (_w, port, _log) = start_warren_logged(&["--config", dir.to_str().expect("utf-8")]);
    let r = get(port, "/app/users/7?x=1");
    assert_eq!((r.status, r.text().as_str()), (200, "/app|/users/7|x=1"));
    let r = get(port, "/bare/x");
    assert_eq!(r.status, 404, "php-fpm's own answer: {}", r.text());
}

/// More requests at once than php-fpm has workers: those past the
/// workers wait (in php-fpm's listen queue, then, once warren has seen
/// that, in its own), and no connection is kept idle while another waits
/// in the listen queue (a kept connection holds its worker), so every
/// request is answered, none waits for a timeout.
#[test]
fn more_requests_than_workers_all_get_answers() {
    let fpm = Fpm::start(FpmOptions { children: 2, ..FpmOptions::default() });
    fpm.script("nap.php", "<?php usleep(200000); echo 'rested';");
    let (_w, port, _log) = serve(&fpm, r#""cgi-timeout": "20", "fcgi-keepalive": "8","#);
    let clients: Vec<_> = (0..6).map(|_| std::thread::spawn(move || get(port, "/nap.php"))).collect();
    for c in clients {
        let r = c.join().expect("client");
        assert_eq!((r.status, r.text().as_str()), (200, "rested"));
    }
}

/// PHP that prints the sockets its worker has open (`socket:[INODE]`,
/// space-separated): the pool's listening socket, the same in every
/// worker, and the connection the request came on.
const SOCKETS_PHP: &str = "$s = []; foreach (scandir('/proc/self/fd') as $f) { $l = @readlink(\"/proc/self/fd/$f\"); \
    if ($l && str_starts_with($l, 'socket:')) $s[] = $l; } echo implode(' ', $s);";

/// How many connections the answers of [`SOCKETS_PHP`] came on: the
/// sockets seen, less the listening one.
fn connections_seen<'a>(answers: impl IntoIterator<Item = &'a str>) -> usize {
    let seen: std::collections::HashSet<&str> = answers.into_iter().flat_map(str::split_whitespace).collect();
    seen.len().saturating_sub(1)
}

/// A script that waits for the file `go-G` (G from the query, default
/// 0) before it answers (with [`SOCKETS_PHP`]), after touching
/// `started-N` (N from the query): a request its worker runs but has not
/// answered yet. Returns `go-0`.
fn hold_script(fpm: &Fpm) -> std::path::PathBuf {
    let d = fpm.docroot();
    fpm.script(
        "hold.php",
        &format!(
            "<?php touch('{d}/started-' . intval($_GET['n'])); $g = '{d}/go-' . intval($_GET['g'] ?? 0);\n\
             while (!file_exists($g)) usleep(10000); {SOCKETS_PHP}",
            d = d.display(),
        ),
    );
    d.join("go-0")
}

/// Requests for the hold script numbered `ns`, waiting for `go-G`, each
/// from a thread of its own.
fn hold(port: u16, ns: std::ops::Range<usize>, g: usize) -> Vec<std::thread::JoinHandle<Response>> {
    ns.map(|n| std::thread::spawn(move || get(port, &format!("/hold.php?n={n}&g={g}")))).collect()
}

/// The answers of `held` requests, each a 200.
fn answers(held: Vec<std::thread::JoinHandle<Response>>) -> Vec<String> {
    held.into_iter()
        .map(|h| {
            let r = h.join().expect("held");
            assert_eq!(r.status, 200, "{}", r.text());
            r.text()
        })
        .collect()
}

/// Whether the hold scripts numbered `ns` have all started.
fn started(fpm: &Fpm, ns: std::ops::Range<usize>) -> bool {
    ns.into_iter().all(|i| fpm.docroot().join(format!("started-{i}")).exists())
}

/// More clients than workers on a Unix socket: warren sees connections
/// wait in php-fpm's listen queue and learns how many requests the pool
/// takes at once; the rest wait in its own queue, and the connections
/// are kept and handed on, not opened and closed per request (which is
/// what the pool's `accepted conn` counts). Requests that wait behind
/// slow scripts wait as long as the scripts take (up to `cgi-timeout`),
/// not the 2 s of a mount's own `fcgi-max-requests`.
#[test]
fn more_clients_than_workers_share_kept_connections() {
    let fpm = Fpm::start(FpmOptions { children: 2, ..FpmOptions::default() });
    fpm.script("conn.php", &format!("<?php {SOCKETS_PHP}"));
    let go = hold_script(&fpm);
    let (_w, port, _log) = serve(&fpm, r#""cgi-timeout": "30","#);
    let (clients, each) = (8, 40);
    let threads: Vec<_> = (0..clients)
        .map(|_| {
            std::thread::spawn(move || {
                let mut c = connect(port);
                (0..each)
                    .map(|_| ask(&mut c, "GET /conn.php HTTP/1.1\r\nHost: localhost\r\n\r\n"))
                    .filter(|r| r.status == 200)
                    .map(|r| r.text())
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let texts: Vec<String> = threads.into_iter().flat_map(|t| t.join().expect("client")).collect();
    assert_eq!(texts.len(), clients * each);
    let conns = connections_seen(texts.iter().map(String::as_str));
    // Opened per request, it would be 320.
    assert!(conns < clients * each / 4, "{conns} connections for {} requests", clients * each);

    // Four slow requests on two workers: two wait, past 2 s.
    let held = hold(port, 0..4, 0);
    let running = || (0..4).filter(|&i| started(&fpm, i..i + 1)).count();
    wait_for("two scripts running", || running() == 2);
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(running(), 2, "more ran than two workers");
    std::fs::write(&go, "").expect("go");
    answers(held);
}

/// A script slow to answer is not a connection waiting in the listen
/// queue: php-fpm has read its request (the bytes warren wrote are gone
/// from the socket), so connections that end meanwhile are kept, and the
/// next requests use them.
#[test]
fn a_slow_answer_does_not_stop_connections_being_kept() {
    let fpm = Fpm::start(FpmOptions { children: 4, ..FpmOptions::default() });
    let go = hold_script(&fpm);
    let (_w, port, _log) = serve(&fpm, "");
    let batch = |first: usize| {
        let held = hold(port, first..first + 3, 0);
        wait_for("three scripts running", || started(&fpm, first..first + 3));
        std::fs::write(&go, "").expect("go");
        let got = answers(held);
        std::fs::remove_file(&go).expect("rm go");
        got
    };
    let mut got = batch(0);
    got.extend(batch(3));
    // Three connections for both batches.
    assert_eq!(connections_seen(got.iter().map(String::as_str)), 3, "{got:?}");
}

/// An `ondemand` pool starts with no worker and forks them as
/// connections wait: what warren learns while they are forked is too
/// low, and it tries one more connection now and then (after requests
/// end, or when a request has waited with none ending), so four long
/// requests still run at once on four workers.
#[test]
fn an_ondemand_pool_gets_all_its_workers_used() {
    let fpm = Fpm::start(FpmOptions { children: 4, ondemand: true, ..FpmOptions::default() });
    fpm.script("hello.php", "<?php echo 'hello';");
    let go = hold_script(&fpm);
    let (_w, port, _log) = serve(&fpm, r#""cgi-timeout": "60","#);
    let threads: Vec<_> = (0..12)
        .map(|_| {
            std::thread::spawn(move || {
                let mut c = connect(port);
                (0..10).all(|_| ask(&mut c, "GET /hello.php HTTP/1.1\r\nHost: localhost\r\n\r\n").status == 200)
            })
        })
        .collect();
    assert!(threads.into_iter().all(|t| t.join().expect("client")));
    let held = hold(port, 0..4, 0);
    wait_for("four scripts running at once", || started(&fpm, 0..4));
    std::fs::write(&go, "").expect("go");
    answers(held);
}

/// A limit learned while other clients held workers grows back when they
/// let go: three of four workers held by direct connections, warren's
/// three requests find one and learn 1; once the others are free, four
/// long requests through warren get a worker each, one more tried each
/// time a request has waited with none ending.
#[test]
fn a_limit_learned_too_low_grows_back() {
    let fpm = Fpm::start(FpmOptions { children: 4, ..FpmOptions::default() });
    hold_script(&fpm);
    let (_w, port, _log) = serve(&fpm, r#""cgi-timeout": "60","#);
    let fpm = std::sync::Arc::new(fpm);
    let go = |g: usize| std::fs::write(fpm.docroot().join(format!("go-{g}")), "").expect("go");
    let direct: Vec<_> = (10..13)
        .map(|n| {
            let fpm = fpm.clone();
            std::thread::spawn(move || fpm.get("hold.php", &format!("n={n}&g=1")).expect("direct").stdout)
        })
        .collect();
    wait_for("three workers held directly", || started(&fpm, 10..13));
    let through = hold(port, 20..23, 2);
    wait_for("one of warren's three running", || (20..23).any(|i| started(&fpm, i..i + 1)));
    go(2);
    answers(through);
    go(1);
    for d in direct {
        assert!(!d.join().expect("direct").is_empty());
    }
    let held = hold(port, 30..34, 3);
    wait_for("four scripts running at once", || started(&fpm, 30..34));
    go(3);
    answers(held);
}

/// Requests warren holds for php-fpm now: running (in a worker or its
/// listen queue) and waiting in warren's own queue.
fn in_hand(port: u16) -> u64 {
    let text = get(port, "/metrics").text();
    let gauge = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse::<u64>().ok())
            .unwrap_or_else(|| panic!("no {name} in {text}"))
    };
    gauge("warren_cgi_running") + gauge("warren_cgi_waiting")
}

/// Requests that wait for a FastCGI server start in the order they came:
/// only the first waiter takes a worker that frees (or tries one more
/// connection), and one that waits again keeps its place and its
/// deadline. On one worker that warren has learned it has, ten requests
/// sent one after another behind a held one run in that order, and none
/// is refused however long the queue waits (within `cgi-timeout`).
#[test]
fn waiters_start_in_arrival_order() {
    let fpm = Fpm::start(FpmOptions { children: 1, ..FpmOptions::default() });
    let go = hold_script(&fpm);
    let order = fpm.docroot().join("order");
    fpm.script(
        "order.php",
        &format!(
            "<?php file_put_contents('{}', intval($_GET['n']) . \"\\n\", FILE_APPEND | LOCK_EX); usleep(200000); echo 'ok';",
            order.display()
        ),
    );
    let (_w, port, log) = serve_with(&fpm, r#""cgi-timeout": "60","#, &["--log-level", "debug"]);
    learn_one_worker(&fpm, port, &log);
    let held = hold(port, 0..1, 0);
    wait_for("the held script running", || started(&fpm, 0..1));
    let mut sent = Vec::new();
    for n in 1..=10 {
        sent.push(std::thread::spawn(move || get(port, &format!("/order.php?n={n}"))));
        // In warren's hands (the held one and those before) before the next.
        wait_for("the request in hand", || in_hand(port) == n + 1);
    }
    std::fs::write(&go, "").expect("go");
    answers(held);
    for r in sent {
        let r = r.join().expect("sent");
        assert_eq!((r.status, r.text().as_str()), (200, "ok"));
    }
    let ran: Vec<usize> =
        std::fs::read_to_string(&order).expect("order").lines().map(|l| l.parse().expect("n")).collect();
    assert_eq!(ran, (1..=10).collect::<Vec<_>>());
}

/// A request whose client leaves while it waits in php-fpm's listen
/// queue is not run when a worker takes it later: warren holds back the
/// record that ends its parameters until a worker has taken the
/// connection, so the worker reads a request cut short and drops it
/// (before, it ran every such request, each holding a worker for
/// nobody).
#[test]
fn a_request_left_in_the_listen_queue_is_not_run() {
    let fpm = Fpm::start(FpmOptions { children: 1, ..FpmOptions::default() });
    let go = hold_script(&fpm);
    let (_w, port, _log) = serve(&fpm, r#""cgi-timeout": "60","#);
    let held = hold(port, 0..1, 0);
    wait_for("the one worker busy", || started(&fpm, 0..1));
    // warren has not seen the pool full yet: this one goes to php-fpm's
    // listen queue.
    let mut left = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    left.write_all(b"GET /hold.php?n=1 HTTP/1.1\r\nHost: localhost\r\n\r\n").expect("write");
    wait_for("both requests in warren's hands", || in_hand(port) == 2);
    drop(left);
    wait_for("the one that left let go", || in_hand(port) == 1);
    std::fs::write(&go, "").expect("go");
    answers(held);
    // php-fpm takes its listen queue in order: the left one before this.
    assert_eq!(get(port, "/hold.php?n=2").status, 200);
    assert!(started(&fpm, 2..3));
    assert!(!started(&fpm, 1..2), "the request whose client left was run");
}

/// Bursts on a pool of one worker until warren has seen requests wait in
/// php-fpm's listen queue and learned that it takes one at a time.
fn learn_one_worker(fpm: &Fpm, port: u16, log: &Receiver<String>) {
    fpm.script("hello.php", "<?php echo 'hello';");
    let learned = (0..20).any(|_| {
        let burst: Vec<_> = (0..6).map(|_| std::thread::spawn(move || get(port, "/hello.php").status)).collect();
        assert!(burst.into_iter().all(|b| b.join().expect("burst") == 200));
        std::iter::from_fn(|| log.try_recv().ok()).any(|l| l.contains("1 request(s) at once"))
    });
    assert!(learned, "warren never learned the pool's one worker");
}

/// A script whose client left keeps its worker until its next output
/// (PHP notices only then): warren counts that worker as busy until a
/// new connection is seen taken, so the requests after it wait in
/// warren's line, not in php-fpm's listen queue behind it (at most one
/// tries a connection). Before, every client that gave up freed a slot
/// at once, and a stream of them filled the listen queue with requests
/// php-fpm then ran for nobody.
#[test]
fn a_worker_whose_client_left_still_counts_as_busy() {
    let fpm = Fpm::start(FpmOptions { children: 1, ..FpmOptions::default() });
    let go = hold_script(&fpm);
    let (_w, port, log) = serve_with(&fpm, r#""cgi-timeout": "60","#, &["--log-level", "debug"]);
    learn_one_worker(&fpm, port, &log);
    let mut left = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    left.write_all(b"GET /hold.php?n=0 HTTP/1.1\r\nHost: localhost\r\n\r\n").expect("write");
    wait_for("the script running", || started(&fpm, 0..1));
    drop(left);
    wait_for("its client's leaving seen", || in_hand(port) == 0);
    let after = hold(port, 1..5, 0);
    wait_for("four more in hand", || in_hand(port) == 4);
    let text = get(port, "/metrics").text();
    let waiting: u64 =
        text.lines().find_map(|l| l.strip_prefix("warren_cgi_waiting ")?.parse().ok()).expect("warren_cgi_waiting");
    assert!(waiting >= 3, "{waiting} of 4 wait in warren's line; the rest went to the listen queue");
    std::fs::write(&go, "").expect("go");
    answers(after);
}

/// A worker killed while it runs a request on a kept connection closes
/// it without an answer, as one retiring after `pm.max_requests` does
/// before it reads one: a `GET` may be sent again, but a `POST` is not
/// (it would run twice), and gets `502`.
#[test]
fn a_post_whose_worker_dies_is_not_sent_again() {
    let fpm = Fpm::start(FpmOptions { children: 1, ..FpmOptions::default() });
    let ran = fpm.docroot().join("ran");
    fpm.script(
        "once.php",
        &format!(
            "<?php file_put_contents('{}', \"x\", FILE_APPEND); touch('{}/started'); sleep(30);",
            ran.display(),
            fpm.docroot().display()
        ),
    );
    fpm.script("hello.php", "<?php echo 'hello';");
    let (_w, port, _log) = serve(&fpm, "");
    let mut c = connect(port);
    // The connection is kept after this one.
    assert_eq!(ask(&mut c, "GET /hello.php HTTP/1.1\r\nHost: localhost\r\n\r\n").status, 200);
    let post = std::thread::spawn(move || {
        ask(&mut c, "POST /once.php HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\n\r\n").status
    });
    wait_for("the script running", || fpm.docroot().join("started").exists());
    for pid in fpm.worker_pids() {
        // SAFETY: a plain signal to a process this test's php-fpm started.
        unsafe { libc::kill(i32::try_from(pid).expect("pid"), libc::SIGKILL) };
    }
    assert_eq!(post.join().expect("post"), 502);
    assert_eq!(std::fs::read_to_string(&ran).expect("ran"), "x", "the POST ran more than once");
}

/// A body without a length (chunked) is refused with 411 and the styled
/// page: PHP reads stdin only up to CONTENT_LENGTH, so the script would
/// see no body at all (an upload silently lost). Nothing reaches the
/// server, and a body of 8 MiB is not waited for.
#[test]
fn a_body_without_a_length_is_411() {
    let fpm = Fpm::start(FpmOptions::default());
    fpm.script("len.php", "<?php echo strlen(file_get_contents('php://input'));");
    let (w, port, _log) = serve(&fpm, "");
    let mut c = connect(port);
    let r = ask(&mut c, "POST /len.php HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\n\r\nhello");
    assert_eq!((r.status, r.text()), (200, "5".to_string()), "with a length");
    let r = ask(
        &mut c,
        "POST /len.php HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    );
    assert_eq!(r.status, 411);
    assert!(r.text().contains("411"), "the styled page: {}", r.text());
    let mut big = connect(port);
    big.stream
        .write_all(b"POST /len.php HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n10000\r\n")
        .expect("head");
    let chunk = vec![b'x'; 0x10000];
    let _ = big.stream.write_all(&chunk);
    assert_eq!(big.response(false).expect("response").status, 411);
    drop(big);
    drop(c);
    let base = fds(&w);
    assert_eq!(get(port, "/len.php").text(), "0");
    fds_back_to(&w, base);
}

/// A server that answers without reading the body and closes (a write
/// to it then fails): its answer is read and sent, the rest of the body
/// dropped (the answer was thrown away, a 502).
#[test]
fn an_answer_before_the_body_is_sent() {
    let fake = FakeFcgi::start();
    let (w, port, _log) = start_warren_logged(&["--fcgi", &format!("/app={}", fake.path.display())]);
    let mut c = connect(port);
    c.stream
        .write_all(b"POST /app/early HTTP/1.1\r\nHost: localhost\r\nContent-Length: 8388608\r\n\r\n")
        .expect("head");
    let chunk = vec![b'x'; 64 * 1024];
    for _ in 0..128 {
        if c.stream.write_all(&chunk).is_err() {
            break;
        }
    }
    let r = c.response(false).expect("response");
    assert_eq!((r.status, r.text()), (200, "early".to_string()));
    drop(c);
    // The next request's connection is kept: counted from after it.
    assert_eq!(get(port, "/app/ok").text(), "ok");
    let base = fds(&w);
    for _ in 0..5 {
        assert_eq!(get(port, "/app/ok").text(), "ok");
    }
    fds_back_to(&w, base);
}

/// php-fpm's `pm.max_requests`: each worker ends after two requests and
/// is replaced, closing the connection warren kept; every request still
/// gets its answer, one at a time and several at once.
#[test]
fn workers_that_retire_are_not_errors() {
    let fpm = Fpm::start(FpmOptions { children: 2, max_requests: Some(2), ..FpmOptions::default() });
    fpm.script("hello.php", "<?php echo 'hello';");
    let (_w, port, _log) = serve(&fpm, r#""fcgi-keepalive": "8","#);
    let mut c = connect(port);
    for i in 0..30 {
        let r = ask(&mut c, "GET /hello.php HTTP/1.1\r\nHost: localhost\r\n\r\n");
        assert_eq!((r.status, r.text()), (200, "hello".to_string()), "request {i}");
    }
    let clients: Vec<_> = (0..4)
        .map(|_| {
            std::thread::spawn(move || {
                let mut c = connect(port);
                (0..15)
                    .map(|_| ask(&mut c, "GET /hello.php HTTP/1.1\r\nHost: localhost\r\n\r\n").status)
                    .collect::<Vec<u16>>()
            })
        })
        .collect();
    for t in clients {
        assert!(t.join().expect("client").iter().all(|&s| s == 200));
    }
}

/// A variable too long for one FastCGI record (here a `cgi-env` value of
/// 70,000 bytes; PHP reads each record's pairs on their own) is refused
/// with 431 and the styled page; nothing reaches the server and nothing
/// is left open.
#[test]
fn a_variable_longer_than_a_record_is_431() {
    let fpm = Fpm::start(FpmOptions::default());
    fpm.script("hello.php", "<?php echo 'hello';");
    let long = "v".repeat(70_000);
    let (w, port, _log) = serve(&fpm, &format!(r#""cgi-env": [ {{ "LONG": "{long}" }} ],"#));
    let r = get(port, "/hello.php");
    assert_eq!(r.status, 431);
    assert!(r.text().contains("431"), "the styled page: {}", r.text());
    let base = fds(&w);
    for _ in 0..10 {
        assert_eq!(get(port, "/hello.php").status, 431);
    }
    fds_back_to(&w, base);
    let (_w, port, _log) = serve(&fpm, &format!(r#""cgi-env": [ {{ "LONG": "{}" }} ],"#, "v".repeat(60_000)));
    assert_eq!(get(port, "/hello.php").text(), "hello", "60,000 bytes fit");
}

/// `fcgi-connect-timeout` bounds making the connection, not the answer:
/// over TCP (made at once on loopback), a script slower than it but
/// within `cgi-timeout` is answered (it got a 504 at the connect timeout).
#[test]
fn the_connect_timeout_does_not_bound_the_answer() {
    let fpm = Fpm::start(FpmOptions { tcp: true, ..FpmOptions::default() });
    fpm.script("slow.php", "<?php sleep(2); echo 'slow';");
    let (_w, port, _log) = serve(&fpm, r#""fcgi-connect-timeout": "1", "cgi-timeout": "30","#);
    let r = get(port, "/slow.php");
    assert_eq!((r.status, r.text()), (200, "slow".to_string()));
}

/// A FastCGI server of the test's own on a Unix socket, for what php-fpm
/// will not do on demand: one connection at a time, kept while warren
/// asks; `/app/send?PATH` is answered with `X-Sendfile: PATH`;
/// `/app/flood` is answered after 2 MiB of records of an unknown
/// type; `/app/early` is answered at once and the connection closed,
/// the body unread; `REQUEST_URI` `/app/redir` is answered at once with a local
/// redirect (`Location` without `Status`) and its body left unread,
/// anything else after its body with `ok`. Each record that comes where
/// a request's `FCGI_BEGIN_REQUEST` must is noted in `stray`.
struct FakeFcgi {
    path: std::path::PathBuf,
    stray: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    /// `/app/wait` is answered (after its body) once this is set.
    go: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// `/app/wait` has come, with the end of its body.
    waiting: std::sync::Arc<std::sync::atomic::AtomicBool>,
    _dir: tempfile::TempDir,
}

impl FakeFcgi {
    fn start() -> FakeFcgi {
        use std::sync::atomic::Ordering;
        use warren_cgi::fcgi::{self, RecordType};
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("fake.sock");
        let listener = std::os::unix::net::UnixListener::bind(&path).expect("bind");
        let stray = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let noted = stray.clone();
        let go = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let gone = go.clone();
        let waiting = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let came = waiting.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { return };
                let mut buf = Vec::new();
                // Reads the next record (kind, content); None at EOF.
                let mut next = |conn: &mut std::os::unix::net::UnixStream| loop {
                    if let Ok(Some((r, used))) = fcgi::decode(&buf) {
                        let got = (r.kind, r.content.to_vec());
                        buf.drain(..used);
                        return Some(got);
                    }
                    let mut chunk = [0u8; 65536];
                    match conn.read(&mut chunk) {
                        Ok(0) | Err(_) => return None,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                };
                'requests: loop {
                    let keep = loop {
                        match next(&mut conn) {
                            None => break 'requests,
                            Some((RecordType::BeginRequest, c)) => break c.get(2) == Some(&fcgi::KEEP_CONN),
                            Some(_) => {
                                noted.fetch_add(1, Ordering::SeqCst);
                            }
                        }
                    };
                    let mut params = Vec::new();
                    loop {
                        match next(&mut conn) {
                            Some((RecordType::Params, c)) if c.is_empty() => break,
                            Some((RecordType::Params, c)) => params.extend_from_slice(&c),
                            _ => break 'requests,
                        }
                    }
                    let uri = |u: &[u8]| {
                        fcgi::pairs(&params).flatten().any(|(n, v)| n == b"SCRIPT_NAME" && v == b"/app")
                            && fcgi::pairs(&params).flatten().any(|(n, v)| n == b"PATH_INFO" && v == &u[4..])
                    };
                    let (redirect, wait, early) = (uri(b"/app/redir"), uri(b"/app/wait"), uri(b"/app/early"));
                    if let Some((_, file)) = fcgi::pairs(&params)
                        .flatten()
                        .find(|(n, _)| *n == b"QUERY_STRING")
                        .filter(|_| uri(b"/app/send"))
                    {
                        // X-Sendfile: the file the query names.
                        let mut head = b"X-Sendfile: ".to_vec();
                        head.extend_from_slice(file);
                        head.extend_from_slice(b"\r\n\r\n");
                        let mut out = Vec::new();
                        fcgi::stream(&mut out, RecordType::Stdout, 1, &head);
                        fcgi::end_stream(&mut out, RecordType::Stdout, 1);
                        out.extend_from_slice(&fcgi::header(RecordType::EndRequest, 1, 8, 0));
                        out.extend_from_slice(&[0; 8]);
                        let _ = conn.write_all(&out);
                        break 'requests;
                    }
                    if uri(b"/app/flood") {
                        // 2 MiB of records of a type nobody knows, then
                        // the answer.
                        let mut out = Vec::new();
                        for _ in 0..256 {
                            fcgi::stream(&mut out, RecordType::Other(200), 1, &[b'j'; 8192]);
                        }
                        fcgi::stream(&mut out, RecordType::Stdout, 1, b"Content-Type: text/plain\r\n\r\nflooded");
                        fcgi::end_stream(&mut out, RecordType::Stdout, 1);
                        out.extend_from_slice(&fcgi::header(RecordType::EndRequest, 1, 8, 0));
                        out.extend_from_slice(&[0; 8]);
                        let _ = conn.write_all(&out);
                        break 'requests;
                    }
                    if early {
                        let mut out = Vec::new();
                        fcgi::stream(&mut out, RecordType::Stdout, 1, b"Content-Type: text/plain\r\n\r\nearly");
                        fcgi::end_stream(&mut out, RecordType::Stdout, 1);
                        out.extend_from_slice(&fcgi::header(RecordType::EndRequest, 1, 8, 0));
                        out.extend_from_slice(&[0; 8]);
                        let _ = conn.write_all(&out);
                        // Closed with the body unread.
                        break 'requests;
                    }
                    let answer: &[u8] = if redirect {
                        b"Location: /app/wait\r\n\r\n"
                    } else {
                        loop {
                            match next(&mut conn) {
                                Some((RecordType::Stdin, c)) if c.is_empty() => break,
                                Some((RecordType::Stdin, _)) => {}
                                _ => break 'requests,
                            }
                        }
                        came.store(wait, Ordering::SeqCst);
                        while wait && !gone.load(Ordering::SeqCst) {
                            // Whatever comes meanwhile is after this
                            // request's end of input.
                            conn.set_read_timeout(Some(Duration::from_millis(10))).expect("timeout");
                            let mut chunk = [0u8; 65536];
                            if let Ok(n) = conn.read(&mut chunk) {
                                if n == 0 {
                                    break 'requests;
                                }
                                noted.fetch_add(1, Ordering::SeqCst);
                            }
                        }
                        conn.set_read_timeout(None).expect("timeout");
                        b"Content-Type: text/plain\r\n\r\nok"
                    };
                    let mut out = Vec::new();
                    fcgi::stream(&mut out, RecordType::Stdout, 1, answer);
                    fcgi::end_stream(&mut out, RecordType::Stdout, 1);
                    out.extend_from_slice(&fcgi::header(RecordType::EndRequest, 1, 8, 0));
                    out.extend_from_slice(&[0; 8]);
                    if conn.write_all(&out).is_err() || !keep {
                        break;
                    }
                    if redirect {
                        // The body it did not read comes after the answer,
                        // up to its end (as PHP drains it): not stray.
                        loop {
                            match next(&mut conn) {
                                Some((RecordType::Stdin, c)) if !c.is_empty() => {}
                                Some((RecordType::Stdin, _)) => break,
                                Some(_) => {
                                    noted.fetch_add(1, Ordering::SeqCst);
                                    break;
                                }
                                None => break 'requests,
                            }
                        }
                    }
                }
            }
        });
        FakeFcgi { path, stray, go, waiting, _dir: dir }
    }
}

/// A local redirect (`Location` without `Status`) while the POST body is
/// still coming: the rest of the body, arriving while the redirected
/// request runs, is dropped, not sent after that request's end of input
/// (it was, as FCGI_STDIN records the server took for the next request's).
#[test]
fn a_body_after_a_local_redirect_goes_nowhere() {
    use std::sync::atomic::Ordering;
    let fake = FakeFcgi::start();
    let (_w, port, _log) = start_warren_logged(&["--fcgi", &format!("/app={}", fake.path.display())]);
    let mut c = connect(port);
    c.stream.write_all(b"POST /app/redir HTTP/1.1\r\nHost: localhost\r\nContent-Length: 200000\r\n\r\n").expect("head");
    c.stream.write_all(&[b'x'; 1000]).expect("first part");
    // The redirected request (/app/wait) is at the server, waiting; the
    // rest of the body goes in, and warren reads all of it.
    wait_for("the redirected request", || fake.waiting.load(Ordering::SeqCst));
    c.stream.write_all(&vec![b'x'; 199_000]).expect("the rest");
    let me = c.stream.local_addr().expect("addr").port();
    wait_for("warren to read the whole body", || unread(port, me) == Some(0));
    fake.go.store(true, Ordering::SeqCst);
    let r = c.response(false).expect("response");
    assert_eq!((r.status, r.text()), (200, "ok".to_string()));
    drop(c);
    for _ in 0..3 {
        assert_eq!(get(port, "/app/ok").text(), "ok");
    }
    assert_eq!(fake.stray.load(Ordering::SeqCst), 0, "records outside a request");
}

/// Bytes the kernel holds unread for warren (listening on `port`) from
/// the client at local port `peer`, and unacknowledged on the way there:
/// /proc/net/tcp's tx_queue + rx_queue of both ends.
fn unread(port: u16, peer: u16) -> Option<u64> {
    let table = std::fs::read_to_string("/proc/net/tcp").ok()?;
    let mut total = None;
    for line in table.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        let port_of = |a: &str| a.rsplit(':').next().and_then(|p| u16::from_str_radix(p, 16).ok());
        let (local, remote) = (port_of(f.get(1)?)?, port_of(f.get(2)?)?);
        if (local, remote) == (port, peer) || (local, remote) == (peer, port) {
            let (tx, rx) = f.get(4)?.split_once(':')?;
            let q = u64::from_str_radix(tx, 16).ok()? + u64::from_str_radix(rx, 16).ok()?;
            total = Some(total.unwrap_or(0) + q);
        }
    }
    total
}

/// A server sending many records that are not stdout (2 MiB of an
/// unknown type) before its answer: warren reads them a few at a time,
/// never holding the loop (a static file is served meanwhile), and comes
/// back for the rest without waiting for more to arrive: the answer
/// comes.
#[test]
fn records_that_are_not_stdout_do_not_hold_the_loop() {
    let fake = FakeFcgi::start();
    let (_w, port, _log) = start_warren_logged(&["--fcgi", &format!("/app={}", fake.path.display())]);
    for _ in 0..3 {
        let r = get(port, "/app/flood");
        assert_eq!((r.status, r.text()), (200, "flooded".to_string()));
    }
    assert_eq!(get(port, "/").status, 200);
}

/// `--x-sendfile DIR` applies to `--fcgi` mounts too: a file below DIR
/// that the server names is sent by warren, with its ranges; one outside
/// is refused.
#[test]
fn x_sendfile_from_a_fastcgi_mount() {
    let fake = FakeFcgi::start();
    let files = tempfile::tempdir().expect("tempdir");
    std::fs::write(files.path().join("big.bin"), vec![b'z'; 100_000]).expect("file");
    let outside = tempfile::tempdir().expect("tempdir");
    std::fs::write(outside.path().join("secret"), "secret").expect("file");
    let dir = files.path().to_str().expect("utf-8");
    let (_w, port, _log) =
        start_warren_logged(&["--fcgi", &format!("/app={}", fake.path.display()), "--x-sendfile", dir]);
    let r = get(port, &format!("/app/send?{dir}/big.bin"));
    assert_eq!((r.status, r.body.len()), (200, 100_000));
    let r = ask(
        &mut connect(port),
        &format!(
            "GET /app/send?{dir}/big.bin HTTP/1.1\r\nHost: localhost\r\nRange: bytes=0-9\r\nConnection: close\r\n\r\n"
        ),
    );
    assert_eq!((r.status, r.text()), (206, "zzzzzzzzzz".to_string()));
    let r = get(port, &format!("/app/send?{}/secret", outside.path().display()));
    assert_ne!(r.status, 200);
    assert!(!r.text().contains("secret"));
}
