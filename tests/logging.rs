//! The binary's logs (issue 14 item 6): timestamps and levels on its own
//! lines, the journal's level prefixes, `--log-file`, `--syslog`, the
//! levels of `-d` and of the configuration, `--access-log`, and SIGUSR1
//! reopening the log files after logrotate moved them. The real binary,
//! real signals, real files and sockets.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};
use support::*;

/// How long a test waits for something that should happen at once: a
/// deadline for a hung server, not a timing.
const PATIENCE: Duration = Duration::from_secs(20);

/// Waits until `f` holds (checking every 20 ms), or fails after
/// [`PATIENCE`].
fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !f() {
        assert!(Instant::now() < deadline, "waited {PATIENCE:?} for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The lines of the file at `path` (none if it is missing).
fn lines_of(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path).unwrap_or_default().lines().map(str::to_string).collect()
}

/// The next line from `log` containing `needle`, and those before it.
fn line_with(log: &Receiver<String>, needle: &str) -> (String, Vec<String>) {
    let deadline = Instant::now() + PATIENCE;
    let mut before = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match log.recv_timeout(left) {
            Ok(line) if line.contains(needle) => return (line, before),
            Ok(line) => before.push(line),
            Err(_) => panic!("no line with {needle:?}; lines: {before:?}"),
        }
    }
}

/// Every line left in `log`, up to its end (the process exited).
fn rest_of(log: &Receiver<String>) -> Vec<String> {
    let deadline = Instant::now() + PATIENCE;
    let mut lines = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match log.recv_timeout(left) {
            Ok(line) => lines.push(line),
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return lines,
            Err(_) => panic!("the log did not end; lines: {lines:?}"),
        }
    }
}

/// The lines read from `r`, by a thread, as they come.
fn line_channel(r: impl Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(r).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

/// Starts the binary with `args` on port 0, its stderr read into a
/// channel; its stdout goes to `stdout`.
fn spawn(args: &[&str], env: &[(&str, &str)], stdout: Stdio) -> (Running, Receiver<String>) {
    let mut child = Command::new(BIN)
        .args(args)
        .args(["--port", "0"])
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn warren");
    let err = line_channel(child.stderr.take().expect("stderr"));
    (Running(child), err)
}

/// `GET path` with `Host: host` to 127.0.0.1:`port`: the status.
fn get_status(ip: &str, port: u16, host: &str, path: &str) -> u16 {
    let mut s = TcpStream::connect((ip, port)).expect("connect");
    s.set_read_timeout(Some(PATIENCE)).expect("timeout");
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes()).expect("write");
    Reader::new(s).response(false).expect("response").status
}

/// SIGTERM, and the exit status once it has exited.
fn stop(mut w: Running) -> std::process::ExitStatus {
    w.signal(libc::SIGTERM);
    w.0.wait().expect("wait")
}

#[test]
fn every_line_has_a_time_and_a_level_and_the_last_says_stopped() {
    let (_t, root) = site();
    let (w, port, log) = start_warren_logged(&["--root", &root.to_string_lossy()]);
    assert_eq!(get_status("127.0.0.1", port, "x", "/index.html"), 200);
    assert!(stop(w).success());
    let lines = rest_of(&log);
    for l in &lines {
        let body = log_body(l).unwrap_or_else(|| panic!("no timestamp: {l:?}"));
        let level = body.split(' ').next().unwrap_or_default();
        assert!(["ERROR", "WARN", "INFO", "DEBUG", "TRACE"].contains(&level), "no level: {l:?}");
    }
    let last = lines.last().map(String::as_str).unwrap_or_default();
    assert!(log_body(last).is_some_and(|b| b.starts_with("INFO  warren::serve: warren ") && b.ends_with(" stopped")));
    // The date is today's in UTC (or yesterday's, past midnight).
    let day = |when: &str| {
        let out = Command::new("date").args(["-u", "-d", when, "+%Y-%m-%d"]).output().expect("date");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    assert!([day("now"), day("yesterday")].contains(&last[..10].to_string()), "{last}");
}

/// A pipe whose write end is the child's stderr: the read end, and the
/// write end with its `dev:ino` (what systemd puts in JOURNAL_STREAM).
fn journal_pipe() -> (std::fs::File, std::os::fd::OwnedFd, String) {
    use std::os::fd::FromRawFd;
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills the two descriptors, owned from here on.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    let (r, w) = unsafe { (std::fs::File::from_raw_fd(fds[0]), std::os::fd::OwnedFd::from_raw_fd(fds[1])) };
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: fstat writes the stat of a descriptor we own.
    assert_eq!(unsafe { libc::fstat(fds[1], &mut st) }, 0);
    (r, w, format!("{}:{}", st.st_dev, st.st_ino))
}

/// Under systemd, stderr is the journal: sd-daemon level prefixes, no
/// time. JOURNAL_STREAM naming another stream changes nothing.
#[test]
fn the_journal_gets_level_prefixes_and_no_time() {
    for journal in [true, false] {
        let (r, w, id) = journal_pipe();
        let id = if journal { id } else { "1:2".to_string() };
        let child = Command::new(BIN)
            .args(["--port", "0", "--log-level", "info"])
            .env("JOURNAL_STREAM", &id)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(w))
            .spawn()
            .expect("spawn");
        let w = Running(child);
        let log = line_channel(r);
        let (first, before) = line_with(&log, " serving ");
        assert!(before.is_empty(), "{before:?}");
        assert!(serving_port(&first).is_some(), "{first}");
        assert!(stop(w).success());
        let mut lines = vec![first];
        lines.extend(rest_of(&log));
        assert!(lines.len() >= 3, "{lines:?}");
        for l in &lines {
            if journal {
                assert!(l.starts_with("<6>INFO  warren::"), "{l:?} of {lines:?}");
            } else {
                assert!(log_body(l).is_some_and(|b| b.starts_with("INFO  warren::")), "{l:?} of {lines:?}");
            }
        }
    }
}

/// `--log-file`: the log is appended there, not to stderr; SIGUSR1
/// reopens it by its path (logrotate moved it): the lines after the
/// signal go to the new file, the old one keeps those before.
#[test]
fn log_file_is_appended_to_and_reopened_on_sigusr1() {
    let t = tempfile::tempdir().expect("tempdir");
    let path = t.path().join("warren.log");
    std::fs::write(&path, "an earlier line\n").expect("write");
    let (w, err) = spawn(&["--log-file", &path.to_string_lossy(), "-d", "info"], &[], Stdio::null());
    wait_for("the serving line", || lines_of(&path).iter().any(|l| serving_port(l).is_some()));
    let port = lines_of(&path).iter().find_map(|l| serving_port(l)).expect("port");
    assert_eq!(get_status("127.0.0.1", port, "x", "/"), 200);
    let moved = t.path().join("warren.log.1");
    std::fs::rename(&path, &moved).expect("rename");
    w.signal(libc::SIGUSR1);
    wait_for("the reopened file", || lines_of(&path).iter().any(|l| l.contains("SIGUSR1: log files reopened")));
    assert!(stop(w).success());
    let old = lines_of(&moved);
    assert_eq!(old[0], "an earlier line", "appended: {old:?}");
    assert!(old[1..].iter().all(|l| log_body(l).is_some()), "{old:?}");
    assert!(old.iter().any(|l| l.contains(" serving ")), "{old:?}");
    assert!(!old.iter().any(|l| l.contains("reopened") || l.contains("stopped")), "{old:?}");
    let new = lines_of(&path);
    assert!(new[0].contains("SIGUSR1: log files reopened"), "{new:?}");
    assert!(new.last().is_some_and(|l| l.ends_with(" stopped")), "{new:?}");
    assert!(err.try_iter().next().is_none(), "nothing on stderr");
}

/// `--syslog=SOCKET`: one RFC 3164 datagram per line, facility daemon,
/// tagged warren[PID]; without the socket, stderr and a warning.
#[test]
fn syslog_gets_datagrams_and_a_missing_socket_falls_back_to_stderr() {
    let t = tempfile::tempdir().expect("tempdir");
    let sock_path = t.path().join("log");
    let sock = std::os::unix::net::UnixDatagram::bind(&sock_path).expect("bind");
    sock.set_read_timeout(Some(PATIENCE)).expect("timeout");
    let arg = format!("--syslog={}", sock_path.display());
    let (w, err) = spawn(&[&arg, "-d", "info"], &[], Stdio::null());
    let pid = w.0.id();
    let mut buf = vec![0; 4096];
    let mut recv = || {
        let n = sock.recv(&mut buf).expect("a datagram");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    let first = recv();
    // <30> = daemon (3) * 8 + info (6).
    let (head, body) = first.split_once(&format!(" warren[{pid}]: ")).unwrap_or_else(|| panic!("{first:?}"));
    assert!(head.starts_with("<30>"), "{first:?}");
    let stamp = &head[4..];
    assert_eq!(stamp.len(), "Nov 27 23:41:07".len(), "{first:?}");
    let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    assert!(months.contains(&&stamp[..3]), "{first:?}");
    assert!(body.starts_with("INFO  warren::serve: warren ") && body.contains(" serving "), "{first:?}");
    let port = serving_port(body).expect("port");
    assert_eq!(get_status("127.0.0.1", port, "x", "/"), 200);
    assert!(stop(w).success());
    let mut last = String::new();
    while !last.ends_with(" stopped") {
        last = recv();
        assert!(last.starts_with("<30>") || last.starts_with("<28>") || last.starts_with("<27>"), "{last:?}");
    }
    assert!(!last.contains('\n'), "one line a datagram: {last:?}");
    assert!(err.try_iter().next().is_none(), "nothing on stderr");

    // No socket there: stderr, and a warning first.
    let missing = format!("--syslog={}", t.path().join("none").display());
    let (w, _port, log) = start_warren_logged(&[&missing]);
    drop(w);
    let lines: Vec<String> = log.try_iter().collect();
    let warn = lines.iter().find(|l| l.contains("--syslog: cannot reach")).unwrap_or_else(|| panic!("{lines:?}"));
    assert!(log_body(warn).is_some_and(|b| b.starts_with("WARN ")), "{lines:?}");
}

/// The configuration's global log-level sets the level when -d is not
/// given, as a name or an lwsws -d number; `-d` wins over it. (A 404 is
/// logged at debug.)
#[test]
fn the_configured_level_applies_unless_d_is_given() {
    let (t, root) = site();
    let cfg = t.path().join("cfg");
    std::fs::create_dir_all(&cfg).expect("mkdir");
    let conf = |level: &str| {
        let conf = format!(
            r#"{{ "global": {{ "log-level": "{level}" }},
                 "vhosts": [ {{ "name": "x", "port": "0", "interface": "127.0.0.1",
                 "mounts": [ {{ "mountpoint": "/", "origin": "file://{}" }} ] }} ] }}"#,
            root.display()
        );
        std::fs::write(cfg.join("conf"), conf).expect("write");
    };
    let cfg_arg = cfg.to_string_lossy().into_owned();
    // Whether a 404 is logged, with `args` more.
    let debug_logged = |args: &[&str]| {
        let mut all = vec!["--config", &cfg_arg];
        all.extend(args);
        let (w, err) = spawn(&all, &[], Stdio::null());
        let (serving, _) = line_with(&err, " serving ");
        let port = serving_port(&serving).expect("port");
        assert_eq!(get_status("127.0.0.1", port, "x", "/missing"), 404);
        // Logged (or not) before the response was sent, so before this.
        w.signal(libc::SIGUSR1);
        let (_, before) = line_with(&err, "SIGUSR1: log files reopened");
        assert!(stop(w).success());
        let debug = before.iter().find(|l| l.contains("open \"/missing\""));
        if let Some(l) = debug {
            assert!(log_body(l).is_some_and(|b| b.starts_with("DEBUG ")), "{l}");
        }
        debug.is_some()
    };
    // lws's DEBUG bit, 16, is debug; its default -d, 7, is info.
    conf("16");
    assert!(debug_logged(&[]));
    conf("7");
    assert!(!debug_logged(&[]));
    conf("debug");
    assert!(debug_logged(&[]));
    assert!(!debug_logged(&["-d", "info"]));
    conf("info");
    assert!(debug_logged(&["-d", "31"]));
    // A level that is none is refused with its key.
    conf("loud");
    let out = Command::new(BIN).args(["--config", &cfg_arg]).output().expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("global.log-level") && stderr.contains("\"loud\""), "{stderr}");
}

/// `--access-log FILE`: every vhost of the flags (one per --bind
/// address) logs there, through one writer, in the combined format.
#[test]
fn access_log_flag_logs_every_vhost() {
    let (t, root) = site();
    let path = t.path().join("access.log");
    let (_w, port, _log) = start_warren_logged(&[
        "--root",
        &root.to_string_lossy(),
        "--bind",
        "127.0.0.1",
        "--bind",
        "127.0.0.2",
        "--access-log",
        &path.to_string_lossy(),
    ]);
    assert_eq!(get_status("127.0.0.1", port, "x", "/index.html?q=1"), 200);
    assert_eq!(get_status("127.0.0.2", port, "x", "/missing"), 404);
    wait_for("two lines", || lines_of(&path).len() >= 2);
    let lines = lines_of(&path);
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines.iter().any(|l| l.contains("\"GET /index.html HTTP/1.1\" 200 ")), "{lines:?}");
    assert!(lines.iter().any(|l| l.contains("\"GET /missing HTTP/1.1\" 404 ")), "{lines:?}");
    assert!(lines.iter().all(|l| l.contains(" - - [") && l.ends_with('"')), "{lines:?}");
}

/// `--access-log -`: standard output.
#[test]
fn access_log_dash_is_stdout() {
    let (_t, root) = site();
    let (mut w, err) =
        spawn(&["--root", &root.to_string_lossy(), "--access-log", "-", "-d", "info"], &[], Stdio::piped());
    let out = line_channel(w.0.stdout.take().expect("stdout"));
    let (serving, _) = line_with(&err, " serving ");
    let port = serving_port(&serving).expect("port");
    assert_eq!(get_status("127.0.0.1", port, "x", "/index.html"), 200);
    let (line, before) = line_with(&out, "\"GET /index.html HTTP/1.1\" 200 ");
    assert!(before.is_empty() && line.starts_with("127.0.0.1 - - ["), "{before:?} {line}");
}

/// With --config, `--access-log` is for the vhosts with no access-log
/// of their own.
#[test]
fn access_log_flag_in_config_mode_is_the_default() {
    let (t, root) = site();
    let own = t.path().join("own.log");
    let default = t.path().join("default.log");
    let cfg = t.path().join("cfg");
    std::fs::create_dir_all(&cfg).expect("mkdir");
    let vhost = |name: &str, log: Option<&Path>| {
        let log = log.map(|p| format!(r#""access-log": "{}","#, p.display())).unwrap_or_default();
        format!(
            r#"{{ "name": "{name}", "port": "0", "interface": "127.0.0.1", {log}
                 "mounts": [ {{ "mountpoint": "/", "origin": "file://{}" }} ] }}"#,
            root.display()
        )
    };
    let conf = format!(r#"{{ "vhosts": [ {}, {} ] }}"#, vhost("a", Some(&own)), vhost("b", None));
    std::fs::write(cfg.join("conf"), conf).expect("write");
    let (_w, port, _log) =
        start_warren_logged(&["--config", &cfg.to_string_lossy(), "--access-log", &default.to_string_lossy()]);
    assert_eq!(get_status("127.0.0.1", port, "a", "/index.html"), 200);
    assert_eq!(get_status("127.0.0.1", port, "b", "/sub/"), 200);
    wait_for("a line in each", || !lines_of(&own).is_empty() && !lines_of(&default).is_empty());
    let (own, default) = (lines_of(&own), lines_of(&default));
    assert!(own.len() == 1 && own[0].contains("GET /index.html "), "{own:?}");
    assert!(default.len() == 1 && default[0].contains("GET /sub/ "), "{default:?}");
}

/// SIGUSR1 after logrotate moved the access log: the lines of requests
/// before the signal are in the moved file, those after in a new file
/// at the path, none lost or written twice.
#[test]
fn access_logs_are_reopened_on_sigusr1() {
    let (t, root) = site();
    let path = t.path().join("access.log");
    let moved = t.path().join("access.log.1");
    let (w, port, log) =
        start_warren_logged(&["--root", &root.to_string_lossy(), "--access-log", &path.to_string_lossy()]);
    for i in 0..3 {
        assert_eq!(get_status("127.0.0.1", port, "x", &format!("/before-{i}")), 404);
    }
    wait_for("three lines", || lines_of(&path).len() == 3);
    std::fs::rename(&path, &moved).expect("rename");
    w.signal(libc::SIGUSR1);
    line_with(&log, "SIGUSR1: log files reopened");
    for i in 0..3 {
        assert_eq!(get_status("127.0.0.1", port, "x", &format!("/after-{i}")), 404);
    }
    wait_for("three lines in the new file", || lines_of(&path).len() == 3);
    assert!(stop(w).success());
    let (old, new) = (lines_of(&moved), lines_of(&path));
    assert_eq!(old.len(), 3, "{old:?}");
    assert!(old.iter().all(|l| l.contains("/before-")), "{old:?}");
    assert_eq!(new.len(), 3, "{new:?}");
    assert!(new.iter().all(|l| l.contains("/after-")), "{new:?}");
}

/// lwsws's -d numbers, as the most verbose level they set.
#[test]
fn lwsws_level_numbers() {
    use log::LevelFilter::*;
    let p = |s: &str| warren::config::parse_log_level(s);
    for (n, level) in [("0", Off), ("1", Error), ("2", Warn), ("3", Warn), ("4", Info), ("7", Info), ("8", Info)] {
        assert_eq!(p(n), Ok(level), "{n}");
    }
    for (n, level) in [("15", Info), ("16", Debug), ("31", Debug), ("32", Trace), ("1023", Trace)] {
        assert_eq!(p(n), Ok(level), "{n}");
    }
    assert_eq!(p("WARN"), Ok(Warn));
    assert_eq!(p(" debug "), Ok(Debug));
    assert!(p("-1").is_err() && p("loud").is_err() && p("").is_err());
}
