//! The WebSocket test page (`webroot/test.html`) in headless Chromium.
//!
//! Chromium is driven over the DevTools protocol on a pipe
//! (`--remote-debugging-pipe`): it reads commands on its fd 3 and writes
//! answers and events on its fd 4, each message one JSON text followed by a
//! NUL byte. Chromium runs in a process group of its own, with a temporary
//! profile (and config and cache directories) that names every one of its
//! processes, so the test can check that none is left behind. Every wait
//! is bounded, and a step that does not happen fails the test by name.
//!
//! Chromium must be installed (`scripts/test` installs it); the `CHROMIUM`
//! environment variable may name another binary.

use serde_json::{json, Value};
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_warren");

/// The longest any one step may take: only a hung browser or server
/// reaches it. Each step waits for what it needs (an answer, a page
/// state), so the bound only has to cover a slow start on a loaded
/// machine: chromium answering its first command took over 15 s on the
/// 2-core box while other test binaries ran.
const STEP: Duration = Duration::from_secs(90);

/// How often a condition is checked again.
const POLL: Duration = Duration::from_millis(50);

/// The three status lines of the page, in its order.
const STATES: &str = "['dumb', 'mirror', 'status'].map(p => document.getElementById(p + '-state').textContent).join()";

/// Whether the page's shade is showing.
const DARK: &str = "(() => { const d = document.getElementById('darkenScreenObject'); \
                    return d ? getComputedStyle(d).display !== 'none' : null; })()";

/// The sections shaded as lost, by their title's id.
const LOST: &str =
    "Array.from(document.querySelectorAll('section.ws.lost'), s => s.getAttribute('aria-labelledby')).join()";

/// Whether the page is no wider than its viewport (no horizontal scrollbar).
const NO_SIDEWAYS_SCROLL: &str = "document.documentElement.scrollWidth <= document.documentElement.clientWidth";

/// The viewport in device pixels, as a screenshot of it measures.
const VIEWPORT: &str =
    "[Math.round(window.innerWidth * devicePixelRatio), Math.round(window.innerHeight * devicePixelRatio)]";

/// The counter as the page shows it.
const COUNT: &str = "document.getElementById('dumb-count').textContent";

/// Two browsers at once would only make each slower on a small machine.
fn one_browser_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The `warren` binary on a port of its choosing; killed when dropped, and
/// its log printed if the test is failing.
struct Warren {
    child: Child,
    port: u16,
    /// `http` or `https`, as its log says it serves.
    scheme: &'static str,
    log: Arc<Mutex<Vec<String>>>,
}

impl Warren {
    fn start() -> Warren {
        Warren::start_with(&[])
    }

    /// With extra command-line arguments.
    fn start_with(args: &[&str]) -> Warren {
        let mut child = Command::new(BIN)
            .args(args)
            .args(["--port", "0", "--log-level", "info"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn warren");
        let stderr = child.stderr.take().expect("warren's stderr");
        let mut lines = BufReader::new(stderr).lines();
        let mut log = Vec::new();
        let mut port = None;
        let mut scheme = "http";
        for line in lines.by_ref().map_while(Result::ok) {
            port = line.split("://127.0.0.1:").nth(1).and_then(|r| r.trim_end_matches('/').parse().ok());
            if line.contains("https://127.0.0.1:") {
                scheme = "https";
            }
            log.push(line);
            if port.is_some() {
                break;
            }
        }
        let log = Arc::new(Mutex::new(log));
        let Some(port) = port else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("warren exited before serving: {:?}", log.lock().map(|l| l.join("\n")));
        };
        // Keep reading its log so that it never blocks on a full pipe.
        let sink = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                if let Ok(mut l) = sink.lock() {
                    l.push(line);
                }
            }
        });
        Warren { child, port, scheme, log }
    }

    fn url(&self, path: &str) -> String {
        format!("{}://127.0.0.1:{}{path}", self.scheme, self.port)
    }

    /// Sends SIGTERM and waits for the process to end.
    fn stop(&mut self) {
        let pid = libc::pid_t::try_from(self.child.id()).expect("pid fits pid_t");
        // SAFETY: a signal to our own child, which has not been reaped yet.
        let r = unsafe { libc::kill(pid, libc::SIGTERM) };
        assert_eq!(r, 0, "SIGTERM to warren: {}", io::Error::last_os_error());
        let status = wait_exit(&mut self.child, STEP);
        assert!(status.is_some(), "warren did not exit within {STEP:?} of SIGTERM");
    }
}

impl Drop for Warren {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            if let Ok(log) = self.log.lock() {
                eprintln!("--- warren's log ---\n{}", log.join("\n"));
            }
        }
    }
}

/// Waits up to `limit` for `child` to exit.
fn wait_exit(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(POLL),
            Ok(None) => return None,
            Err(e) => panic!("waiting for pid {}: {e}", child.id()),
        }
    }
}

/// A pipe with both ends close-on-exec and numbered 10 or above, so that
/// moving them onto fds 3 and 4 in the child can neither clobber the other
/// end nor be a no-op that leaves close-on-exec set.
fn pipe() -> (OwnedFd, OwnedFd) {
    let mut fds: [libc::c_int; 2] = [-1, -1];
    // SAFETY: pipe2 writes two descriptors into the array, which we own.
    let r = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    assert_eq!(r, 0, "pipe2: {}", io::Error::last_os_error());
    // SAFETY: both descriptors are new and owned by nothing else.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    (raise_fd(read), raise_fd(write))
}

fn raise_fd(fd: OwnedFd) -> OwnedFd {
    // SAFETY: F_DUPFD_CLOEXEC only creates a new descriptor (or fails).
    let n = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 10) };
    assert!(n >= 0, "fcntl(F_DUPFD_CLOEXEC): {}", io::Error::last_os_error());
    // SAFETY: `n` is a new descriptor owned by nothing else.
    unsafe { OwnedFd::from_raw_fd(n) }
}

/// One tab, attached in flat mode: its commands carry the session id.
struct Page {
    target: String,
    session: String,
}

/// Headless Chromium on the DevTools pipe.
struct Chromium {
    child: Child,
    /// Chromium's process group (its pid).
    pgid: libc::pid_t,
    profile: tempfile::TempDir,
    /// Our end of its fd 3.
    commands: File,
    /// Messages from its fd 4, parsed by a reader thread.
    incoming: Receiver<Value>,
    next_id: u64,
    /// Console messages, exceptions and log entries of the pages, for the
    /// messages of failures.
    console: Vec<String>,
    closed: bool,
}

impl Chromium {
    fn launch() -> Chromium {
        Chromium::launch_with(&[])
    }

    /// With extra command-line arguments.
    fn launch_with(extra: &[String]) -> Chromium {
        let profile = tempfile::Builder::new().prefix("warren-chromium-").tempdir().expect("tempdir");
        let program = std::env::var_os("CHROMIUM").unwrap_or_else(|| "chromium".into());
        let (their_commands, our_commands) = pipe();
        let (our_events, their_events) = pipe();
        let stderr = File::create(profile.path().join("chromium.log")).expect("chromium.log");
        let mut command = Command::new(&program);
        command
            .arg("--headless=new")
            .arg("--no-sandbox")
            .arg("--remote-debugging-pipe")
            .arg(format!("--user-data-dir={}", profile.path().join("profile").display()))
            .args([
                "--disable-dev-shm-usage",
                "--disable-gpu",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-extensions",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-background-timer-throttling",
                "--disable-backgrounding-occluded-windows",
                "--disable-renderer-backgrounding",
                "--mute-audio",
                "--password-store=basic",
            ])
            .args(extra)
            .arg("about:blank")
            // Keeps its crash database and caches out of the user's home
            // and puts the profile's path in every process it starts.
            .env("XDG_CONFIG_HOME", profile.path())
            .env("XDG_CACHE_HOME", profile.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .process_group(0);
        let (fd3, fd4) = (their_commands.as_raw_fd(), their_events.as_raw_fd());
        // SAFETY: the closure runs between fork and exec and only calls
        // dup2, which is async-signal-safe, on descriptors that stay open
        // until `spawn` returns. dup2 clears close-on-exec on fds 3 and 4.
        unsafe {
            command.pre_exec(move || {
                if libc::dup2(fd3, 3) == -1 || libc::dup2(fd4, 4) == -1 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = match command.spawn() {
            Ok(child) => child,
            Err(e) => panic!("starting {program:?} failed: {e}; chromium must be installed (scripts/test installs it)"),
        };
        // Only Chromium holds these ends now, so its exit is our EOF.
        drop(their_commands);
        drop(their_events);
        let pgid = libc::pid_t::try_from(child.id()).expect("pid fits pid_t");
        let (tx, incoming) = mpsc::channel();
        let events = File::from(our_events);
        std::thread::spawn(move || {
            let mut reader = BufReader::new(events);
            let mut message = Vec::new();
            loop {
                message.clear();
                match reader.read_until(0, &mut message) {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
                if message.last() == Some(&0) {
                    message.pop();
                }
                if let Ok(value) = serde_json::from_slice::<Value>(&message) {
                    if tx.send(value).is_err() {
                        return;
                    }
                }
            }
        });
        let mut chromium = Chromium {
            child,
            pgid,
            profile,
            commands: File::from(our_commands),
            incoming,
            next_id: 0,
            console: Vec::new(),
            closed: false,
        };
        let version = chromium.call(None, "Browser.getVersion", json!({}));
        assert!(version.is_ok(), "Browser.getVersion: {version:?}");
        chromium
    }

    fn send(&mut self, session: Option<&str>, method: &str, params: Value) -> io::Result<u64> {
        self.next_id += 1;
        let mut message = json!({ "id": self.next_id, "method": method, "params": params });
        if let Some(session) = session {
            message["sessionId"] = json!(session);
        }
        let mut bytes = message.to_string().into_bytes();
        bytes.push(0);
        self.commands.write_all(&bytes)?;
        Ok(self.next_id)
    }

    /// Sends one command and waits for its answer: Err holds the protocol's
    /// error. A browser that is gone or silent fails the test.
    fn call(&mut self, session: Option<&str>, method: &str, params: Value) -> Result<Value, String> {
        let id = match self.send(session, method, params) {
            Ok(id) => id,
            Err(e) => panic!("sending {method} to chromium: {e}{}", self.chromium_log()),
        };
        let deadline = Instant::now() + STEP;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.incoming.recv_timeout(left) {
                Ok(message) if message["id"] == id => {
                    return match message.get("error") {
                        Some(error) => Err(format!("{method}: {error}")),
                        None => Ok(message["result"].clone()),
                    };
                }
                Ok(event) => self.note(&event),
                Err(RecvTimeoutError::Timeout) => panic!("chromium did not answer {method} within {STEP:?}"),
                Err(RecvTimeoutError::Disconnected) => {
                    panic!("chromium closed its DevTools pipe before answering {method}{}", self.chromium_log())
                }
            }
        }
    }

    /// Keeps what the pages say, which explains most failures.
    fn note(&mut self, event: &Value) {
        let params = &event["params"];
        let line = match event["method"].as_str() {
            Some("Runtime.consoleAPICalled") => {
                let args: Vec<String> = params["args"]
                    .as_array()
                    .map(|a| a.iter().map(|v| v.get("value").unwrap_or(&v["description"]).to_string()).collect())
                    .unwrap_or_default();
                format!("console.{}: {}", params["type"].as_str().unwrap_or("log"), args.join(" "))
            }
            Some("Runtime.exceptionThrown") => {
                let d = &params["exceptionDetails"];
                format!("exception: {} {}", d["text"], d["exception"]["description"])
            }
            Some("Log.entryAdded") => {
                let e = &params["entry"];
                format!("{} {}: {} {}", e["source"], e["level"], e["text"], e["url"])
            }
            _ => return,
        };
        if self.console.len() < 200 {
            self.console.push(line);
        }
    }

    fn chromium_log(&self) -> String {
        let log = std::fs::read_to_string(self.profile.path().join("chromium.log")).unwrap_or_default();
        // Without a system bus, Chromium logs a line per D-Bus call it tries.
        let tail: Vec<&str> = log.lines().filter(|l| !l.contains("dbus")).rev().take(20).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        format!("\n--- chromium's stderr (end) ---\n{}", tail.join("\n"))
    }

    /// Opens a new tab on `url`.
    fn open(&mut self, url: &str) -> Page {
        let created = self.call(None, "Target.createTarget", json!({ "url": "about:blank" })).expect("createTarget");
        let target = created["targetId"].as_str().expect("a targetId").to_string();
        let attached = self
            .call(None, "Target.attachToTarget", json!({ "targetId": target, "flatten": true }))
            .expect("attachToTarget");
        let session = attached["sessionId"].as_str().expect("a sessionId").to_string();
        for domain in ["Runtime.enable", "Log.enable", "Page.enable"] {
            let r = self.call(Some(&session), domain, json!({}));
            assert!(r.is_ok(), "{domain}: {r:?}");
        }
        let nav = self.call(Some(&session), "Page.navigate", json!({ "url": url })).expect("Page.navigate");
        assert!(nav.get("errorText").is_none(), "navigating to {url}: {nav}");
        Page { target, session }
    }

    fn close_tab(&mut self, page: Page) {
        let r = self.call(None, "Target.closeTarget", json!({ "targetId": page.target }));
        assert!(r.is_ok(), "closeTarget: {r:?}");
    }

    /// A PNG of what the tab shows (DevTools Page.captureScreenshot), also
    /// written to target/browser-screenshots/NAME.png for a person to see.
    fn screenshot(&mut self, page: &Page, name: &str) -> Vec<u8> {
        use base64::Engine;
        let r = self.call(Some(&page.session), "Page.captureScreenshot", json!({ "format": "png" }));
        let data =
            r.as_ref().ok().and_then(|v| v["data"].as_str()).unwrap_or_else(|| panic!("captureScreenshot: {r:?}"));
        let png = base64::engine::general_purpose::STANDARD.decode(data).expect("screenshot base64");
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target").join("browser-screenshots");
        if std::fs::create_dir_all(&dir).is_ok() {
            let _ = std::fs::write(dir.join(format!("{name}.png")), &png);
        }
        png
    }

    /// The value of `expression` in the page (null when undefined).
    fn eval(&mut self, page: &Page, expression: &str) -> Result<Value, String> {
        let r = self.call(
            Some(&page.session),
            "Runtime.evaluate",
            json!({ "expression": expression, "returnByValue": true }),
        )?;
        if let Some(e) = r.get("exceptionDetails") {
            return Err(format!("{expression}: {}", e["exception"]["description"].as_str().unwrap_or("exception")));
        }
        Ok(r["result"].get("value").cloned().unwrap_or(Value::Null))
    }

    /// Evaluates `expression` every POLL until `accept` takes its value,
    /// for at most STEP; then fails naming `what`.
    fn wait_for<T>(
        &mut self,
        page: &Page,
        what: &str,
        expression: &str,
        mut accept: impl FnMut(&Value) -> Option<T>,
    ) -> T {
        let deadline = Instant::now() + STEP;
        loop {
            let last = match self.eval(page, expression) {
                Ok(value) => match accept(&value) {
                    Some(t) => return t,
                    None => value.to_string(),
                },
                Err(e) => e,
            };
            if Instant::now() >= deadline {
                panic!("{what}: did not happen within {STEP:?}; last value of `{expression}`: {last}");
            }
            std::thread::sleep(POLL);
        }
    }

    /// Runs `expression` for its effect; it must not throw.
    fn run(&mut self, page: &Page, expression: &str) {
        if let Err(e) = self.eval(page, expression) {
            panic!("running `{expression}` in the page: {e}");
        }
    }

    /// Processes still alive (not zombies) that belong to this browser: in
    /// its process group, or naming its profile (the crash handlers start
    /// sessions of their own).
    fn leftovers(&self) -> Vec<(libc::pid_t, String)> {
        let marker = self.profile.path().to_string_lossy().into_owned();
        let mut found = Vec::new();
        let Ok(dir) = std::fs::read_dir("/proc") else { return found };
        for entry in dir.flatten() {
            let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<libc::pid_t>().ok()) else { continue };
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
            // "pid (comm) state ppid pgrp ...": comm may hold spaces and ')'.
            let Some((_, rest)) = stat.rsplit_once(')') else { continue };
            let fields: Vec<&str> = rest.split_whitespace().collect();
            if fields.first() == Some(&"Z") {
                continue;
            }
            let pgrp = fields.get(2).and_then(|s| s.parse::<libc::pid_t>().ok());
            let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if pgrp == Some(self.pgid) || cmdline.contains(&marker) {
                found.push((pid, cmdline));
            }
        }
        found
    }

    /// Asks the browser to close, waits for it and for every process it
    /// started to end; kills by pid whatever is left. Err names leftovers.
    fn shut_down(&mut self) -> Result<(), String> {
        if self.closed {
            return Ok(());
        }
        self.closed = true;
        let _ = self.send(None, "Browser.close", json!({}));
        let mut problem = None;
        if wait_exit(&mut self.child, STEP).is_none() {
            problem = Some(format!("chromium did not exit within {STEP:?} of Browser.close"));
            // SAFETY: signals to the group of our own, not yet reaped, child.
            unsafe { libc::kill(-self.pgid, libc::SIGKILL) };
            let _ = self.child.wait();
        }
        let deadline = Instant::now() + STEP;
        let mut left = self.leftovers();
        while !left.is_empty() && Instant::now() < deadline {
            std::thread::sleep(POLL);
            left = self.leftovers();
        }
        if !left.is_empty() {
            for (pid, _) in &left {
                // SAFETY: each pid was just seen as one of this browser's processes.
                unsafe { libc::kill(*pid, libc::SIGKILL) };
            }
            let list: Vec<String> = left.iter().map(|(pid, cmd)| format!("{pid}: {cmd}")).collect();
            problem = Some(format!("chromium left processes behind (now killed):\n{}", list.join("\n")));
        }
        problem.map_or(Ok(()), Err)
    }

    fn close(mut self) {
        if let Err(e) = self.shut_down() {
            panic!("{e}");
        }
    }
}

impl Drop for Chromium {
    fn drop(&mut self) {
        if self.closed {
            return;
        }
        if std::thread::panicking() {
            eprintln!("--- the pages said ---\n{}{}", self.console.join("\n"), self.chromium_log());
        }
        self.closed = true;
        // SAFETY: signals to the group of our own, not yet reaped, child.
        unsafe { libc::kill(-self.pgid, libc::SIGKILL) };
        let _ = self.child.wait();
        for (pid, _) in self.leftovers() {
            // SAFETY: each pid was just seen as one of this browser's processes.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
}

fn as_count(v: &Value) -> Option<u64> {
    v.as_str().and_then(|s| s.trim().parse().ok())
}

/// A PNG's width and height, from its IHDR chunk.
fn png_size(png: &[u8]) -> Option<(u32, u32)> {
    if png.len() < 24 || &png[..8] != b"\x89PNG\r\n\x1a\n" || &png[12..16] != b"IHDR" {
        return None;
    }
    let be = |at: usize| u32::from_be_bytes([png[at], png[at + 1], png[at + 2], png[at + 3]]);
    Some((be(16), be(20)))
}

fn is_true(v: &Value) -> Option<()> {
    (v == &Value::Bool(true)).then_some(())
}

/// A JavaScript string literal holding `s`.
fn js_str(s: &str) -> String {
    Value::from(s).to_string()
}

/// The whole page against the real server: the counter counts and resets,
/// the mirror echoes to its sender, the status lists this browser, Close
/// ends the counter's socket with 1001 "seeya", and when warren stops the
/// page goes dark.
#[test]
fn websocket_test_page_in_headless_chromium() {
    let _one = one_browser_at_a_time();
    let warren = Warren::start();
    let chromium = Chromium::launch();
    test_page(warren, chromium);
}

/// The same page over `https://`, its sockets over `wss://` (issue 13):
/// warren serves a certificate made for 127.0.0.1, which Chromium trusts
/// by its public key (`--ignore-certificate-errors-spki-list`, the
/// headless way to trust one certificate without a system store; every
/// other certificate is still checked).
#[test]
fn websocket_test_page_over_https_and_wss_in_headless_chromium() {
    let _one = one_browser_at_a_time();
    let dir = tempfile::tempdir().expect("tempdir");
    let names = vec!["127.0.0.1".to_string(), "localhost".to_string()];
    let made = rcgen::generate_simple_self_signed(names).expect("certificate");
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert, made.cert.pem()).expect("cert.pem");
    std::fs::write(&key, made.signing_key.serialize_pem()).expect("key.pem");
    let spki = spki_sha256_base64(&cert);
    let warren = Warren::start_with(&[
        "--tls-cert",
        cert.to_str().expect("utf-8 path"),
        "--tls-key",
        key.to_str().expect("utf-8 path"),
    ]);
    assert_eq!(warren.scheme, "https", "warren says it serves https");
    let chromium = Chromium::launch_with(&[format!("--ignore-certificate-errors-spki-list={spki}")]);
    test_page(warren, chromium);
}

/// base64(SHA-256(SubjectPublicKeyInfo)) of the certificate in `pem`, by
/// the openssl command (`scripts/test` installs it).
fn spki_sha256_base64(pem: &Path) -> String {
    let script = format!(
        "openssl x509 -in '{}' -pubkey -noout | openssl pkey -pubin -outform der | openssl dgst -sha256 -binary | base64",
        pem.display()
    );
    let out = Command::new("sh").args(["-c", &script]).output().expect("run openssl");
    assert!(out.status.success(), "openssl: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("base64").trim().to_string()
}

/// Drives the test page of `warren` in `chromium`, through the server's
/// stop.
fn test_page(mut warren: Warren, mut chromium: Chromium) {
    let page = chromium.open(&warren.url("/test.html"));

    chromium.wait_for(
        &page,
        "the test page loads",
        "document.readyState === 'complete' && typeof warren_gray_out === 'function' && \
         document.title.includes('WebSocket')",
        is_true,
    );
    chromium.wait_for(&page, "all three sockets open", STATES, |v| {
        let states = v.as_str()?;
        // A socket that closed before it opened will not open: fail now.
        assert!(!states.contains("closed"), "a socket closed instead of opening ({states}): see the page's log below");
        (states == "open,open,open").then_some(())
    });
    chromium.wait_for(&page, "the shade is lifted once the sockets are open", DARK, |v| (v == false).then_some(()));

    // dumb-increment-protocol: a number that rises.
    let first = chromium.wait_for(&page, "dumb-count shows a number", COUNT, as_count);
    let second = chromium
        .wait_for(&page, &format!("dumb-count rises above {first}"), COUNT, |v| as_count(v).filter(|n| *n > first));
    assert!(second > first);
    // Reset: the count starts again from 0.
    let high = chromium.wait_for(&page, "dumb-count reaches 20", COUNT, |v| as_count(v).filter(|n| *n >= 20));
    chromium.run(&page, "document.getElementById('dumb-reset').click()");
    chromium.wait_for(&page, &format!("dumb-count drops below {high} after Reset"), COUNT, |v| {
        as_count(v).filter(|n| *n < high)
    });

    // lws-mirror-protocol: what we send comes back to us, shown as text.
    let message = format!("hello from chromium {} <b>not bold</b>", std::process::id());
    chromium.run(
        &page,
        &format!(
            "document.getElementById('mirror-input').value = {}; document.getElementById('mirror-send').click()",
            js_str(&message)
        ),
    );
    chromium.wait_for(
        &page,
        "the mirrored message appears in mirror-log",
        &format!("document.getElementById('mirror-log').textContent.includes({})", js_str(&message)),
        is_true,
    );
    let markup = chromium.eval(&page, "document.querySelector('#mirror-log b') === null");
    assert_eq!(markup, Ok(json!(true)), "mirror-log must show messages as text, not markup");

    // lws-status: this browser is in the table.
    let rows = "Array.from(document.querySelectorAll('#status-table tbody tr'), \
                r => Array.from(r.cells, c => c.textContent))";
    chromium.wait_for(&page, "status-table lists this browser's connections", rows, |v| {
        let rows = v.as_array()?;
        let ours = rows.iter().any(|r| {
            let cell = |i: usize| r.get(i).and_then(Value::as_str).unwrap_or("");
            cell(0).contains("127.0.0.1") && cell(2).contains("Chrome")
        });
        ours.then_some(())
    });

    // Close on the counter of a second tab: code 1001, reason "seeya".
    let other = chromium.open(&warren.url("/test.html"));
    // All three must be open first: a socket that opens after Close would
    // lift the shade again, as the page means it to.
    chromium.wait_for(
        &other,
        "the second tab's sockets open",
        &format!("document.readyState === 'complete' && {STATES}"),
        |v| (v == "open,open,open").then_some(()),
    );
    chromium.run(&other, "document.getElementById('dumb-close').click()");
    chromium.wait_for(
        &other,
        "Close ends the counter's socket with 1001 \"seeya\"",
        "document.getElementById('dumb-state').textContent + ' ' + document.getElementById('dumb-why').textContent",
        |v| {
            let s = v.as_str()?;
            (s.starts_with("closed ") && s.contains("1001") && s.contains("seeya")).then_some(())
        },
    );
    // Issue 11 item 12: only the counter's section is shaded; the page is
    // not, the other two sections stay usable, and nothing scrolls sideways.
    chromium
        .wait_for(&other, "the counter's section is shaded after Close", LOST, |v| (v == "dumb-title").then_some(()));
    assert_eq!(chromium.eval(&other, DARK), Ok(json!(false)), "one lost socket must not shade the whole page");
    let shades = chromium.eval(
        &other,
        "Array.from(document.querySelectorAll('section.ws'), s => getComputedStyle(s, '::after').backgroundColor)",
    );
    assert_eq!(
        shades,
        Ok(json!(["rgba(0, 0, 0, 0.55)", "rgba(0, 0, 0, 0)", "rgba(0, 0, 0, 0)"])),
        "the lost section's shade, and none on the others"
    );
    assert_eq!(chromium.eval(&other, NO_SIDEWAYS_SCROLL), Ok(json!(true)), "the page scrolls sideways");
    let png = chromium.screenshot(&other, "one-socket-lost");
    assert_eq!(
        png_size(&png),
        chromium.eval(&other, VIEWPORT).ok().and_then(|v| v
            .as_array()
            .map(|a| { (a[0].as_u64().unwrap_or(0) as u32, a[1].as_u64().unwrap_or(0) as u32) })),
        "the screenshot is the viewport"
    );
    chromium.close_tab(other);
    // The first tab was not touched.
    let states = chromium.eval(&page, STATES);
    assert_eq!(states, Ok(json!("open,open,open")), "the first tab's sockets");
    assert_eq!(chromium.eval(&page, DARK), Ok(json!(false)), "the first tab stays lit");

    // The server stops: every socket closes and the page goes dark.
    warren.stop();
    chromium.wait_for(&page, "the page goes dark once warren has stopped", DARK, |v| (v == true).then_some(()));
    chromium.wait_for(&page, "every socket shows closed", STATES, |v| (v == "closed,closed,closed").then_some(()));
    assert_eq!(chromium.eval(&page, NO_SIDEWAYS_SCROLL), Ok(json!(true)), "the dark page scrolls sideways");
    chromium.screenshot(&page, "all-sockets-lost");

    chromium.close();
}

/// A server that serves the files of `webroot/` and refuses everything
/// else, WebSocket handshakes included, with 404: how the page behaves
/// without the WebSocket side, whatever the state of warren's.
fn serve_webroot_without_websockets() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("webroot");
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let root = root.clone();
            std::thread::spawn(move || {
                let _ = answer_one(stream, &root);
            });
        }
    });
    port
}

fn answer_one(mut stream: TcpStream, root: &Path) -> io::Result<()> {
    stream.set_read_timeout(Some(STEP))?;
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && head.len() < 16384 {
        if stream.read(&mut byte)? == 0 {
            return Ok(());
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head);
    let path = head.split(' ').nth(1).unwrap_or("/");
    let name = path.trim_start_matches('/').split('?').next().unwrap_or("");
    let plain_name = !name.is_empty()
        && !name.starts_with('.')
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    let file: Option<PathBuf> = plain_name.then(|| root.join(name));
    let (status, kind, body) = match file.and_then(|f| std::fs::read(&f).ok().map(|b| (f, b))) {
        Some((f, body)) => {
            let kind = match f.extension().and_then(|e| e.to_str()) {
                Some("html") => "text/html; charset=utf-8",
                Some("css") => "text/css",
                Some("js") => "text/javascript",
                Some("svg") => "image/svg+xml",
                _ => "application/octet-stream",
            };
            ("200 OK", kind, body)
        }
        None => ("404 Not Found", "text/plain", b"not found\n".to_vec()),
    };
    let reply = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(reply.as_bytes())?;
    stream.write_all(&body)
}

/// Sockets that cannot open leave the page dark with every status line
/// "closed"; the shared helpers behave as documented.
#[test]
fn page_stays_dark_when_sockets_cannot_open() {
    let _one = one_browser_at_a_time();
    let port = serve_webroot_without_websockets();
    let mut chromium = Chromium::launch();
    let page = chromium.open(&format!("http://127.0.0.1:{port}/test.html"));
    chromium.wait_for(&page, "the test page loads", "document.readyState === 'complete'", is_true);
    chromium.wait_for(&page, "every socket shows closed", STATES, |v| (v == "closed,closed,closed").then_some(()));
    chromium.wait_for(&page, "the page is dark", DARK, |v| (v == true).then_some(()));

    assert_eq!(chromium.eval(&page, NO_SIDEWAYS_SCROLL), Ok(json!(true)), "the shade adds a horizontal scrollbar");
    // The shade: one element, covering the page, with the default look.
    let shade = chromium.eval(
        &page,
        "(() => { const d = document.getElementById('darkenScreenObject'); const s = getComputedStyle(d); \
         return [document.querySelectorAll('#darkenScreenObject').length, s.position, s.zIndex, s.opacity, \
         s.backgroundColor, d.offsetWidth >= document.documentElement.clientWidth, \
         d.offsetHeight >= document.documentElement.clientHeight]; })()",
    );
    assert_eq!(shade, Ok(json!([1, "fixed", "50", "0.7", "rgb(0, 0, 0)", true, true])), "the default shade");
    // Options, hiding, and showing again reuse the same element.
    let options = chromium.eval(
        &page,
        "(() => { warren_gray_out(false); const hidden = getComputedStyle(document.getElementById('darkenScreenObject')).display; \
         warren_gray_out(true, { zindex: 7, opacity: 40, bgcolor: '#123456' }); \
         const d = document.getElementById('darkenScreenObject'); const s = getComputedStyle(d); \
         return [hidden, s.display, s.zIndex, s.opacity, s.backgroundColor, \
         document.querySelectorAll('#darkenScreenObject').length]; })()",
    );
    assert_eq!(options, Ok(json!(["none", "block", "7", "0.4", "rgb(18, 52, 86)", 1])), "warren_gray_out options");
    let san = chromium.eval(
        &page,
        "[warren_san('plain text'), warren_san('a <b> tag'), new_ws('ws://127.0.0.1:1/', 'echo') instanceof WebSocket]",
    );
    assert_eq!(san, Ok(json!(["plain text", "invalid string", true])), "warren_san and new_ws");

    chromium.close();
}

/// A user's own site without `/error.css`: its error pages are styled by
/// warren's built-in style and offer a way home (issue 11 item 9).
#[test]
fn error_pages_on_a_users_site_are_styled() {
    let _one = one_browser_at_a_time();
    let site = tempfile::tempdir().expect("tempdir");
    std::fs::write(site.path().join("index.html"), "<p>my own site</p>").expect("write");
    let warren = Warren::start_with(&["--root", site.path().to_str().expect("utf-8")]);
    let mut chromium = Chromium::launch();
    let page = chromium.open(&warren.url("/no/such/page"));
    chromium.wait_for(&page, "the error page loads", "document.readyState === 'complete'", is_true);
    // The style applied: the status is big and centred, not Times text.
    let look = chromium.eval(
        &page,
        "(() => { const h = document.querySelector('h1'); const s = getComputedStyle(h); \
         return [h.textContent, parseFloat(s.fontSize) >= 64, s.fontWeight, \
         getComputedStyle(document.body).display, getComputedStyle(document.body).fontFamily.includes('Times')]; })()",
    );
    assert_eq!(look, Ok(json!(["404", true, "800", "flex", false])), "the built-in error style");
    // A link home that works.
    let home = chromium.eval(&page, "document.querySelector('a').getAttribute('href')");
    assert_eq!(home, Ok(json!("/")));
    assert_eq!(chromium.eval(&page, NO_SIDEWAYS_SCROLL), Ok(json!(true)), "a horizontal scrollbar");
    let png = chromium.screenshot(&page, "error-page-on-a-users-site");
    let viewport = chromium.eval(&page, "[window.innerWidth, window.innerHeight]");
    let want = viewport.ok().and_then(|v| Some((v[0].as_u64()? as u32, v[1].as_u64()? as u32)));
    assert_eq!(png_size(&png), want, "the screenshot is the viewport");
    chromium.run(&page, "document.querySelector('a').click()");
    chromium.wait_for(&page, "the link leads home", "document.body.textContent", |v| {
        (v.as_str() == Some("my own site")).then_some(())
    });
    chromium.close();
    drop(warren);
}
