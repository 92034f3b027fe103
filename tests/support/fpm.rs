//! A real php-fpm (Debian's `php8.2-fpm`, which scripts/test installs)
//! owned by one test: the FastCGI backend of the `fcgi://` tests.
//!
//! [`Fpm::start`] makes a temp dir holding:
//!
//! - `php-fpm.conf`: the global section (`pid`, `error_log` = `fpm.log`,
//!   `daemonize = no`) and one pool, `[test]`: `pm = static` with
//!   [`FpmOptions::children`] workers, `listen` on `fpm.sock` (mode 0666)
//!   or on 127.0.0.1 at a free port ([`FpmOptions::tcp`]),
//!   `catch_workers_output = yes` and `decorate_workers_output = no` (so
//!   what a script writes to stderr lands in [`Fpm::log`] as it is), and
//!   the options' `php_admin_value[...]` lines.
//! - `docroot/`: where the test puts its PHP scripts ([`Fpm::script`]).
//!
//! and runs `/usr/sbin/php-fpm8.2 -F -y php-fpm.conf -p DIR` (the master
//! in the foreground, our child), with `-R` when the tests run as root
//! (CI does): php-fpm refuses to run as root without it, and a pool
//! without a `user` then runs its workers as root too; as another user
//! `user` would be ignored, so the pool sets none and the workers run as
//! the test's user either way, able to read the temp dir. The master runs
//! in a process group of its own (its id is the master's pid), which its
//! workers inherit.
//!
//! `start` returns once the master accepts a connection and has forked
//! all its workers (polled, for up to 10 s; no fixed sleep). [`Fpm::kill`]
//! (and drop) SIGKILLs that process group and each worker by pid, reaps
//! the master and waits until no worker is left; the temp dir goes on
//! drop.
//!
//! [`Fpm::get`] sends one FastCGI request itself (records written here
//! from the FastCGI 1.0 specification), to check the pool without warren.

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Debian's php-fpm for PHP 8.2.
pub const PHP_FPM: &str = "/usr/sbin/php-fpm8.2";

/// How long [`Fpm::start`] and [`Fpm::kill`] wait at most.
const PATIENCE: Duration = Duration::from_secs(10);

/// Whether php-fpm is installed (scripts/test installs it).
pub fn installed() -> bool {
    Path::new(PHP_FPM).is_file()
}

/// How the pool is configured.
#[derive(Debug, Clone)]
pub struct FpmOptions {
    /// `pm.max_children` with `pm = static`: the workers the master forks
    /// at start (and forks again when one dies). Default 4. A worker
    /// serves one connection at a time and stays with a connection kept
    /// open (FCGI_KEEP_CONN) until the client closes it: a client keeping
    /// as many idle connections as there are workers leaves none to
    /// accept a new one (requests on it wait).
    pub children: usize,
    /// Listen on 127.0.0.1 at a free port instead of `fpm.sock`.
    pub tcp: bool,
    /// `php_admin_value[NAME] = VALUE` lines (e.g. `("memory_limit",
    /// "16M")`): ini values scripts cannot change.
    pub php_admin_values: Vec<(String, String)>,
    /// `request_terminate_timeout` in seconds: a worker running one
    /// request longer is killed by the master (and replaced). None: never.
    pub request_terminate_timeout: Option<u32>,
    /// `pm.max_requests`: a worker exits after serving that many (and is
    /// replaced). None: never.
    pub max_requests: Option<u32>,
    /// `pm = ondemand` instead of `static`: no worker at start, one forked
    /// per connection waiting while fewer than `children` run.
    pub ondemand: bool,
}

impl Default for FpmOptions {
    fn default() -> FpmOptions {
        FpmOptions {
            children: 4,
            tcp: false,
            php_admin_values: Vec::new(),
            request_terminate_timeout: None,
            max_requests: None,
            ondemand: false,
        }
    }
}

/// A running php-fpm master and its pool; killed, reaped and removed on
/// drop.
pub struct Fpm {
    dir: tempfile::TempDir,
    root: PathBuf,
    master: Option<Child>,
    pid: u32,
    /// `/path/fpm.sock` or `127.0.0.1:PORT`.
    addr: String,
    children: usize,
}

impl Fpm {
    /// Writes the configuration and starts php-fpm, as the module says.
    ///
    /// Panics (a test fixture) when php-fpm is missing, exits, or does
    /// not listen with all its workers within 10 s; the message carries
    /// its log. With [`FpmOptions::tcp`], a port taken by someone else
    /// between our probe and php-fpm's bind costs a retry (three tries).
    pub fn start(opts: FpmOptions) -> Fpm {
        assert!(installed(), "{PHP_FPM} is not installed: scripts/test installs php8.2-fpm");
        assert!(opts.children > 0, "pm = static needs at least one child");
        let mut tries = if opts.tcp { 3 } else { 1 };
        loop {
            tries -= 1;
            match Fpm::try_start(&opts) {
                Ok(fpm) => return fpm,
                Err(why) if tries > 0 && why.contains("Address already in use") => continue,
                Err(why) => panic!("php-fpm did not start: {why}"),
            }
        }
    }

    fn try_start(opts: &FpmOptions) -> Result<Fpm, String> {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = std::fs::canonicalize(dir.path()).expect("canonical tempdir");
        std::fs::create_dir(root.join("docroot")).expect("docroot");
        let addr = if opts.tcp {
            let probe = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind probe");
            format!("127.0.0.1:{}", probe.local_addr().expect("probe addr").port())
        } else {
            root.join("fpm.sock").to_str().expect("UTF-8 temp path").to_owned()
        };
        let mut conf = format!(
            "[global]\n\
             pid = {root}/fpm.pid\n\
             error_log = {root}/fpm.log\n\
             log_level = notice\n\
             daemonize = no\n\
             \n\
             [test]\n\
             listen = {addr}\n\
             listen.mode = 0666\n\
             pm = {pm}\n\
             pm.max_children = {children}\n\
             catch_workers_output = yes\n\
             decorate_workers_output = no\n",
            root = root.display(),
            children = opts.children,
            pm = if opts.ondemand { "ondemand" } else { "static" },
        );
        if let Some(t) = opts.request_terminate_timeout {
            conf.push_str(&format!("request_terminate_timeout = {t}\n"));
        }
        if let Some(n) = opts.max_requests {
            conf.push_str(&format!("pm.max_requests = {n}\n"));
        }
        for (name, value) in &opts.php_admin_values {
            conf.push_str(&format!("php_admin_value[{name}] = {value}\n"));
        }
        let conf_path = root.join("php-fpm.conf");
        std::fs::write(&conf_path, conf).expect("php-fpm.conf");

        let mut cmd = Command::new(PHP_FPM);
        cmd.arg("-F").arg("-y").arg(&conf_path).arg("-p").arg(&root);
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            cmd.arg("-R");
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::from(std::fs::File::create(root.join("fpm.out")).expect("fpm.out")))
            .stderr(Stdio::from(std::fs::File::create(root.join("fpm.err")).expect("fpm.err")))
            .process_group(0);
        let master = cmd.spawn().unwrap_or_else(|e| panic!("{PHP_FPM}: {e}"));
        let pid = master.id();
        let mut fpm = Fpm { dir, root, master: Some(master), pid, addr, children: opts.children };

        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(st) = fpm.master.as_mut().and_then(|m| m.try_wait().ok().flatten()) {
                fpm.master = None;
                return Err(format!("exited ({st}): {}", fpm.everything_logged()));
            }
            // (An ondemand pool forks a worker for this very connection.)
            if fpm.connect().is_ok() && (opts.ondemand || fpm.worker_pids().len() == fpm.children) {
                return Ok(fpm);
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "not listening on {} with {} workers after {PATIENCE:?} (workers: {:?}): {}",
                    fpm.addr,
                    fpm.children,
                    fpm.worker_pids(),
                    fpm.everything_logged()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The Unix socket the pool listens on (None with [`FpmOptions::tcp`]).
    pub fn socket(&self) -> Option<PathBuf> {
        (!self.addr.contains(':')).then(|| PathBuf::from(&self.addr))
    }

    /// What follows `fcgi://` in an origin: `/path/fpm.sock` or
    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// The whole origin: `fcgi:///path/fpm.sock` or `fcgi://127.0.0.1:PORT`.
    pub fn origin(&self) -> String {
        format!("fcgi://{}", self.addr)
    }

    /// The master's pid.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The master's live children (its workers), from /proc, sorted.
    pub fn worker_pids(&self) -> Vec<u32> {
        children_of(self.pid)
    }

    /// How many workers the pool runs (`pm.max_children`).
    pub fn children(&self) -> usize {
        self.children
    }

    /// The temp dir (configuration, log, pid file, socket, docroot).
    pub fn dir(&self) -> &Path {
        &self.root
    }

    /// Where the test puts its PHP scripts.
    pub fn docroot(&self) -> PathBuf {
        self.root.join("docroot")
    }

    /// Writes `docroot/NAME` with `code`; returns its path.
    pub fn script(&self, name: &str, code: &str) -> PathBuf {
        let path = self.docroot().join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("script dir");
        }
        std::fs::write(&path, code).expect("write script");
        path
    }

    /// The pool's log (`error_log`): the master's notices and warnings
    /// and what scripts wrote to stderr.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.root.join("fpm.log")).unwrap_or_default()
    }

    fn everything_logged(&self) -> String {
        let read = |f: &str| std::fs::read_to_string(self.root.join(f)).unwrap_or_default();
        format!("log: {} stdout: {} stderr: {}", self.log(), read("fpm.out"), read("fpm.err"))
    }

    /// Kills the master, its process group and its workers with SIGKILL
    /// (by pid and group id: only what this fixture started), reaps the
    /// master, and waits (up to 10 s) until every worker is gone (its pid
    /// missing from /proc or a zombie, as it is not our child to reap).
    /// Panics if one stays. Does nothing the second time.
    pub fn kill(&mut self) {
        let Some(mut master) = self.master.take() else { return };
        // Stop the master first, so that it forks no replacement for a
        // worker killed below; then the list of workers is complete.
        let pid = self.pid as libc::pid_t;
        // SAFETY: plain syscalls on the pid and group of our own child,
        // which is not reaped yet, so neither id can be reused.
        unsafe { libc::kill(pid, libc::SIGSTOP) };
        let deadline = Instant::now() + PATIENCE;
        while !matches!(state(self.pid), Some('T' | 't' | 'Z') | None) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        let workers: Vec<(u32, u64)> =
            self.worker_pids().into_iter().filter_map(|w| start_time(w).map(|t| (w, t))).collect();
        // SAFETY: as above; the workers are alive children of our child.
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
            for &(w, _) in &workers {
                libc::kill(w as libc::pid_t, libc::SIGKILL);
            }
            libc::kill(pid, libc::SIGKILL);
        }
        let _ = master.wait();
        let deadline = Instant::now() + PATIENCE;
        let alive = |&(w, t): &(u32, u64)| start_time(w) == Some(t) && state(w) != Some('Z');
        while workers.iter().any(alive) {
            assert!(Instant::now() < deadline, "php-fpm workers still alive after SIGKILL: {workers:?}");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Whether the master is still running (not yet killed and not exited).
    pub fn running(&mut self) -> bool {
        self.master.as_mut().is_some_and(|m| matches!(m.try_wait(), Ok(None)))
    }

    /// A new connection to the pool.
    pub fn connect(&self) -> io::Result<Box<dyn Conn>> {
        if let Some(path) = self.socket() {
            let s = UnixStream::connect(path)?;
            s.set_read_timeout(Some(PATIENCE))?;
            Ok(Box::new(s))
        } else {
            let a: SocketAddr = self.addr.parse().map_err(|_| io::ErrorKind::InvalidInput)?;
            let s = TcpStream::connect(a)?;
            s.set_read_timeout(Some(PATIENCE))?;
            Ok(Box::new(s))
        }
    }

    /// One FastCGI `GET` of `docroot/SCRIPT` with `QUERY_STRING` = `query`
    /// on a new connection (FCGI_RESPONDER, no keep-conn): what the worker
    /// wrote to FCGI_STDOUT (CGI head and body) and FCGI_STDERR, and its
    /// app status.
    pub fn get(&self, script: &str, query: &str) -> io::Result<Reply> {
        let docroot = self.docroot();
        let docroot = docroot.to_str().ok_or(io::ErrorKind::InvalidInput)?;
        let file = format!("{docroot}/{script}");
        let name = format!("/{script}");
        let uri = if query.is_empty() { name.clone() } else { format!("{name}?{query}") };
        let params = [
            ("GATEWAY_INTERFACE", "CGI/1.1"),
            ("SERVER_PROTOCOL", "HTTP/1.1"),
            ("SERVER_SOFTWARE", "warren-tests"),
            ("REQUEST_METHOD", "GET"),
            ("SCRIPT_FILENAME", &file),
            ("SCRIPT_NAME", &name),
            ("REQUEST_URI", &uri),
            ("QUERY_STRING", query),
            ("DOCUMENT_ROOT", docroot),
            ("REMOTE_ADDR", "127.0.0.1"),
            ("SERVER_NAME", "localhost"),
            ("SERVER_PORT", "80"),
        ];
        let mut out = Vec::new();
        // FCGI_BEGIN_REQUEST: role FCGI_RESPONDER (1), flags 0.
        record(&mut out, 1, &[0, 1, 0, 0, 0, 0, 0, 0]);
        let mut body = Vec::new();
        for (k, v) in params {
            pair_len(&mut body, k.len());
            pair_len(&mut body, v.len());
            body.extend_from_slice(k.as_bytes());
            body.extend_from_slice(v.as_bytes());
        }
        for chunk in body.chunks(65535) {
            record(&mut out, 4, chunk); // FCGI_PARAMS
        }
        record(&mut out, 4, &[]);
        record(&mut out, 5, &[]); // FCGI_STDIN, empty: end of input
        let mut conn = self.connect()?;
        conn.write_all(&out)?;
        let mut reply = Reply::default();
        loop {
            let mut head = [0u8; 8];
            conn.read_exact(&mut head)?;
            let len = usize::from(u16::from_be_bytes([head[4], head[5]]));
            let mut content = vec![0u8; len + usize::from(head[6])];
            conn.read_exact(&mut content)?;
            content.truncate(len);
            match head[1] {
                6 => reply.stdout.extend_from_slice(&content),
                7 => reply.stderr.extend_from_slice(&content),
                3 if len >= 8 => {
                    reply.app_status = u32::from_be_bytes([content[0], content[1], content[2], content[3]]);
                    reply.protocol_status = content[4];
                    return Ok(reply);
                }
                _ => return Err(io::ErrorKind::InvalidData.into()),
            }
        }
    }
}

impl Drop for Fpm {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // Clean up without a second panic.
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.kill()));
        } else {
            self.kill();
        }
    }
}

/// A connection to the pool: a Unix or TCP stream.
pub trait Conn: Read + Write {}
impl<T: Read + Write> Conn for T {}

/// What [`Fpm::get`] received.
#[derive(Debug, Default, Clone)]
pub struct Reply {
    /// FCGI_STDOUT: the CGI response (head, blank line, body).
    pub stdout: Vec<u8>,
    /// FCGI_STDERR.
    pub stderr: Vec<u8>,
    /// FCGI_END_REQUEST's appStatus.
    pub app_status: u32,
    /// FCGI_END_REQUEST's protocolStatus (0: request complete).
    pub protocol_status: u8,
}

impl Reply {
    /// The body: FCGI_STDOUT after the CGI head's blank line.
    pub fn body(&self) -> &[u8] {
        let s = &self.stdout;
        let crlf = s.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4);
        let lf = s.windows(2).position(|w| w == b"\n\n").map(|i| i + 2);
        match (crlf, lf) {
            (Some(a), Some(b)) => &s[a.min(b)..],
            (Some(a), None) | (None, Some(a)) => &s[a..],
            (None, None) => &[],
        }
    }
}

/// Appends one FastCGI record of `kind` for request 1, padded to 8 bytes.
fn record(out: &mut Vec<u8>, kind: u8, content: &[u8]) {
    let len = u16::try_from(content.len()).expect("record content fits in 16 bits");
    let pad = (8 - content.len() % 8) % 8;
    out.extend_from_slice(&[1, kind, 0, 1]);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&[pad as u8, 0]);
    out.extend_from_slice(content);
    out.extend(std::iter::repeat_n(0, pad));
}

/// A name-value pair length: one byte below 128, else four with the top
/// bit set.
fn pair_len(out: &mut Vec<u8>, n: usize) {
    if n < 128 {
        out.push(n as u8);
    } else {
        out.extend_from_slice(&(n as u32 | 0x8000_0000).to_be_bytes());
    }
}

/// The fields of /proc/PID/stat after the command name: `[0]` is the
/// state, `[1]` the parent pid, `[19]` the start time.
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(") ")?;
    Some(rest.split(' ').map(str::to_owned).collect())
}

/// The process state letter of `pid` (None: no such process).
pub fn state(pid: u32) -> Option<char> {
    stat_fields(pid)?.first()?.chars().next()
}

/// When `pid` started (clock ticks after boot), to tell it from a later
/// process given the same pid.
pub fn start_time(pid: u32) -> Option<u64> {
    stat_fields(pid)?.get(19)?.parse().ok()
}

/// The live (not zombie) processes whose parent is `ppid`, sorted.
pub fn children_of(ppid: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else { return Vec::new() };
    let mut found: Vec<u32> = dir
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&p| {
            stat_fields(p).is_some_and(|f| f.get(1).and_then(|pp| pp.parse().ok()) == Some(ppid) && f[0] != "Z")
        })
        .collect();
    found.sort_unstable();
    found
}
