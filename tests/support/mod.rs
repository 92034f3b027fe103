//! Shared test helpers: a real server on 127.0.0.1:0 in a thread, and a
//! small HTTP/1 client over `std::net::TcpStream` that reads exactly one
//! response at a time (Content-Length, chunked, or to EOF).
#![allow(dead_code)]

pub mod dokuwiki;
pub mod fpm;
pub mod logs;
pub mod sockets;
pub mod tls;
pub mod ws;

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;
use warren::vfs::PlainFops;
use warren::{Context, ContextHandle, ContextInfo, Mount, VhostInfo};

/// A running server; stopped and joined on drop.
pub struct Server {
    pub addr: SocketAddr,
    pub handle: ContextHandle,
    thread: Option<JoinHandle<warren::Result<()>>>,
}

impl Server {
    pub fn start(info: ContextInfo) -> Server {
        let context = Context::new(info).expect("context");
        let addr = context.local_addr(0).expect("addr");
        let handle = context.handle();
        let thread = Some(std::thread::spawn(move || context.run()));
        Server { addr, handle, thread }
    }

    /// Serves `dir` at `/` with default limits.
    pub fn files(dir: &Path) -> Server {
        Server::start(ContextInfo::new().vhost(vhost().mount(files_mount("/", dir))))
    }

    pub fn connect(&self) -> TcpStream {
        let s = TcpStream::connect(self.addr).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
        s
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.handle.stop();
        if let Some(t) = self.thread.take() {
            let r = t.join().expect("service thread panicked");
            if !std::thread::panicking() {
                r.expect("service loop failed");
            }
        }
    }
}

/// A vhost on 127.0.0.1:0.
pub fn vhost() -> VhostInfo {
    VhostInfo::new("localhost", SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
}

pub fn files_mount(mountpoint: &str, dir: &Path) -> Mount {
    Mount::files(mountpoint, Arc::new(PlainFops::new(dir).expect("fops")))
}

/// One parsed response.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub version: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Reads responses from one connection (a TCP stream, or a TLS stream
/// over one), keeping bytes past the current one.
pub struct Reader<S = TcpStream> {
    pub stream: S,
    buf: Vec<u8>,
}

impl<S: Read> Reader<S> {
    pub fn new(stream: S) -> Reader<S> {
        Reader { stream, buf: Vec::new() }
    }

    fn fill(&mut self) -> io::Result<usize> {
        let mut tmp = [0u8; 65536];
        let n = self.stream.read(&mut tmp)?;
        self.buf.extend_from_slice(&tmp[..n]);
        Ok(n)
    }

    fn line(&mut self) -> io::Result<String> {
        loop {
            if let Some(i) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line = String::from_utf8_lossy(&self.buf[..i]).into_owned();
                self.buf.drain(..i + 2);
                return Ok(line);
            }
            if self.fill()? == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
        }
    }

    fn exact(&mut self, n: usize) -> io::Result<Vec<u8>> {
        while self.buf.len() < n {
            if self.fill()? == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
        }
        Ok(self.buf.drain(..n).collect())
    }

    /// Reads one response; `head_request` means no body follows.
    pub fn response(&mut self, head_request: bool) -> io::Result<Response> {
        let status_line = self.line()?;
        let mut parts = status_line.splitn(3, ' ');
        let version = parts.next().unwrap_or("").to_string();
        let status = parts.next().and_then(|s| s.parse().ok()).ok_or(io::ErrorKind::InvalidData)?;
        let mut headers = Vec::new();
        loop {
            let l = self.line()?;
            if l.is_empty() {
                break;
            }
            let (k, v) = l.split_once(':').ok_or(io::ErrorKind::InvalidData)?;
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
        let mut r = Response { status, version, headers, body: Vec::new() };
        if status == 100 {
            return self.response(head_request);
        }
        if head_request || status == 304 || status == 204 {
            return Ok(r);
        }
        if let Some(n) = r.header("content-length") {
            let n: usize = n.parse().map_err(|_| io::ErrorKind::InvalidData)?;
            r.body = self.exact(n)?;
        } else if r.header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
            loop {
                let size = usize::from_str_radix(self.line()?.split(';').next().unwrap_or("").trim(), 16)
                    .map_err(|_| io::ErrorKind::InvalidData)?;
                if size == 0 {
                    while !self.line()?.is_empty() {}
                    break;
                }
                r.body.extend(self.exact(size)?);
                self.exact(2)?;
            }
        } else {
            while self.fill()? > 0 {}
            r.body = std::mem::take(&mut self.buf);
        }
        Ok(r)
    }
}

impl Reader<TcpStream> {
    /// Whether the server has closed the connection (reads EOF or reset).
    pub fn closed_within(&mut self, t: Duration) -> bool {
        self.stream.set_read_timeout(Some(t)).expect("timeout");
        let mut b = [0u8; 1024];
        loop {
            match self.stream.read(&mut b) {
                Ok(0) => return true,
                Ok(_) => continue,
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return true,
                Err(_) => return false,
            }
        }
    }
}

/// Sends `req` on a new connection and reads one response.
pub fn request(server: &Server, req: &str) -> Response {
    let mut s = server.connect();
    s.write_all(req.as_bytes()).expect("write");
    let head = req.starts_with("HEAD ");
    Reader::new(s).response(head).expect("response")
}

/// `GET path` with Host and Connection: close.
pub fn get(server: &Server, path: &str) -> Response {
    request(server, &format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"))
}

/// Runs curl with `args`; returns (exit ok, stdout bytes).
pub fn curl(args: &[&str]) -> (bool, Vec<u8>) {
    let out = std::process::Command::new("curl")
        .args(["-s", "--max-time", "20"])
        .args(args)
        .output()
        .expect("curl must be installed (scripts/test installs it)");
    (out.status.success(), out.stdout)
}

/// A temp dir with a small site:
/// index.html, data.bin (100 KiB + 7 random-ish bytes), empty.txt,
/// sub/index.html, nodefault/x.txt, and a file outside the root
/// (`../secret.txt`) with a symlink to it (`escape`).
pub fn site() -> (tempfile::TempDir, std::path::PathBuf) {
    let t = tempfile::tempdir().expect("tempdir");
    let root = t.path().join("root");
    std::fs::create_dir_all(root.join("sub")).expect("mkdir");
    std::fs::create_dir_all(root.join("nodefault")).expect("mkdir");
    std::fs::write(root.join("index.html"), b"<h1>root index</h1>\n").expect("write");
    std::fs::write(root.join("data.bin"), pattern(100 * 1024 + 7)).expect("write");
    std::fs::write(root.join("empty.txt"), b"").expect("write");
    std::fs::write(root.join("sub/index.html"), b"<p>sub index</p>\n").expect("write");
    std::fs::write(root.join("nodefault/x.txt"), b"x\n").expect("write");
    std::fs::write(root.join("a b.txt"), b"spaced\n").expect("write");
    std::fs::write(t.path().join("secret.txt"), b"TOP-SECRET\n").expect("write");
    std::os::unix::fs::symlink("../secret.txt", root.join("escape")).expect("symlink");
    (t, root)
}

/// Deterministic bytes that are not all the same.
pub fn pattern(n: usize) -> Vec<u8> {
    let mut x: u32 = 0x1234_5678;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 24) as u8
        })
        .collect()
}

/// Raises this process's RLIMIT_NOFILE soft limit to its hard limit.
pub fn raise_fd_limit() {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: plain syscalls on a local struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

pub const BIN: &str = env!("CARGO_BIN_EXE_warren");

/// Kills and reaps the child when dropped.
pub struct Running(pub Child);

impl Running {
    /// The child's VmHWM (peak resident set), in KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.0.id())).expect("status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmHWM")
    }
}

impl Running {
    /// Sends `sig` to the child.
    pub fn signal(&self, sig: libc::c_int) {
        // SAFETY: kill only sends a signal to the child's pid.
        let r = unsafe { libc::kill(self.0.id() as libc::pid_t, sig) };
        assert_eq!(r, 0, "kill {sig}: {}", io::Error::last_os_error());
    }
}

/// A line of warren's log without its timestamp
/// (`2026-11-27T23:41:07.123Z `): `LEVEL target: message`; `None` if the
/// line does not start with one.
pub fn log_body(line: &str) -> Option<&str> {
    let (stamp, body) = line.split_once(' ')?;
    let shape = "0000-00-00T00:00:00.000Z";
    let fits = stamp.len() == shape.len()
        && stamp.bytes().zip(shape.bytes()).all(|(b, s)| if s == b'0' { b.is_ascii_digit() } else { b == s });
    fits.then_some(body)
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts warren with `args` on a port of its choosing (`--port 0`) and
/// returns it with that port, read from its "serving" log line. (Picking a
/// free port here and passing it would race with other tests binding
/// ephemeral ports.)
pub fn start_warren(args: &[&str]) -> (Running, u16) {
    let (running, port, _log) = start_warren_logged(args);
    (running, port)
}

/// [`start_warren`], keeping its log lines (stderr is read to its end by
/// a thread, so the child never blocks on a full pipe).
pub fn start_warren_logged(args: &[&str]) -> (Running, u16, std::sync::mpsc::Receiver<String>) {
    let mut cmd = Command::new(BIN);
    cmd.args(args);
    start_warren_command(cmd)
}

/// [`start_warren_logged`] with RLIMIT_NOFILE (soft and hard) set to
/// `fds` in the child before it runs, as `ulimit -n` would.
pub fn start_warren_with_fd_limit(args: &[&str], fds: u64) -> (Running, u16, std::sync::mpsc::Receiver<String>) {
    let mut cmd = Command::new(BIN);
    cmd.args(args);
    limit_fds(&mut cmd, fds);
    start_warren_command(cmd)
}

/// [`start_warren_logged`] with `env` added to its environment.
pub fn start_warren_with_env(args: &[&str], env: &[(&str, &str)]) -> (Running, u16, std::sync::mpsc::Receiver<String>) {
    let mut cmd = Command::new(BIN);
    cmd.args(args).envs(env.iter().copied());
    start_warren_command(cmd)
}

/// Sets RLIMIT_NOFILE to `fds` in the child `cmd` will start.
pub fn limit_fds(cmd: &mut Command, fds: u64) {
    use std::os::unix::process::CommandExt;
    // SAFETY: setrlimit is async-signal-safe and only touches the child.
    unsafe {
        cmd.pre_exec(move || {
            let lim = libc::rlimit { rlim_cur: fds as libc::rlim_t, rlim_max: fds as libc::rlim_t };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// The service loops `WARREN_TEST_THREADS` asks the binary's tests to
/// run on, if set.
pub fn test_threads() -> Option<u32> {
    std::env::var("WARREN_TEST_THREADS").ok().and_then(|v| v.parse().ok())
}

pub fn start_warren_command(mut cmd: Command) -> (Running, u16, std::sync::mpsc::Receiver<String>) {
    // The log level is info unless the caller chose one.
    if !cmd.get_args().any(|a| a == "-d" || a == "--log-level") {
        cmd.args(["--log-level", "info"]);
    }
    // WARREN_TEST_THREADS=N runs the server-level tests on N service
    // loops (scripts/test runs a set of them so).
    if let Some(n) = test_threads() {
        if !cmd.get_args().any(|a| a == "--threads") {
            cmd.args(["--threads", &n.to_string()]);
        }
    }
    let mut child = cmd
        .args(["--port", "0"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn warren");
    let stderr = child.stderr.take().expect("stderr");
    let running = Running(child);
    let (tx, rx) = std::sync::mpsc::channel();
    let (port_tx, port_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut port_tx = Some(port_tx);
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(port) = serving_port(&line) {
                if let Some(p) = port_tx.take() {
                    let _ = p.send(port);
                }
            }
            let _ = tx.send(line);
        }
    });
    let port = port_rx.recv_timeout(Duration::from_secs(20)).expect("warren exited before serving");
    (running, port, rx)
}

/// The port of warren's startup line: "serving ... on
/// http://127.0.0.1:P/", "https://...", or "serving DIR on 127.0.0.1:P"
/// (--config).
pub fn serving_port(line: &str) -> Option<u16> {
    line.split(" serving ")
        .nth(1)
        .and_then(|r| r.split("127.0.0.1:").nth(1))
        .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|p| p.parse::<u16>().ok())
}

/// The raw (still compressed) bytes of an archive's entry, as it holds them.
pub fn raw_entry(zip_path: &Path, name: &str) -> Vec<u8> {
    let mut a = zip::ZipArchive::new(std::fs::File::open(zip_path).expect("open")).expect("zip");
    let mut f = a.by_name_raw(name.as_bytes()).expect("entry");
    let mut raw = Vec::new();
    f.read_to_end(&mut raw).expect("read");
    raw
}

/// Makes a FIFO at `path`.
pub fn mkfifo(path: &Path) {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).expect("path");
    // SAFETY: mkfifo(3) with a NUL-terminated path and a mode.
    assert_eq!(
        unsafe { libc::mkfifo(c.as_ptr(), 0o600) },
        0,
        "mkfifo {}: {}",
        path.display(),
        io::Error::last_os_error()
    );
}
