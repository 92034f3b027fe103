//! The cgi role: one CGI program serving one HTTP request, its three
//! pipes registered in the connection's loop (spec CGI-*, RFC 3875).
//!
//! The h1 connection owns the [`CgiRun`] while the request lasts. The
//! service registers the pipes under slab tokens of their own
//! (`Wsi::CgiPipe`) and turns their readiness into flags here; the
//! connection does the I/O in its steps:
//!
//! - request body bytes go to stdin as they arrive; what stdin cannot take
//!   now is held (one read's worth at most) and the connection stops
//!   reading the client until it drains;
//! - stdout is read only when the client socket can take data and nothing
//!   is pending, one chunk per step: a slow client leaves the program
//!   blocked on a full pipe, costing no memory here;
//! - stderr lines go to the log, tagged with the script.
//!
//! Each program is also watched through a pidfd (`pidfd_open(2)`),
//! registered in the loop like the pipes (`Wsi::CgiExit`): it becomes
//! readable when the program exits, so its exit is an event, not polled.
//!
//! When the run ends, its program goes to the [`Reaper`]: reaped when it
//! exits (its pidfd says when), its process group sent SIGTERM and then
//! SIGKILL when it was cut short or overstays (deadlines on the loop's
//! timeout). Where the kernel has no pidfds, the exit is polled instead.
//!
//! Requests waiting for a slot of a mount at its process limit queue in
//! [`CgiWaiters`], in arrival order; the loop starts them as slots free.

mod fcgi;
mod resolve;

pub(crate) use fcgi::{ConnectError, FcgiLink, FcgiPool, TRY_AFTER};
pub(crate) use resolve::{cgi_lookup_cached, executable, translate, CgiCache, CgiTarget};

use crate::http::BodyDecoder;
use std::collections::{HashMap, VecDeque};
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::process::Child;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use warren_cgi::{CgiChild, HeadParser};

/// The most bytes of one stderr line logged (the rest is cut).
const MAX_LOG_LINE: usize = 1024;
/// stderr reads per step: a program flooding stderr cannot hold the loop.
const STDERR_READS_PER_STEP: usize = 4;
/// Lines logged per run; the rest are read and dropped (counted).
const MAX_LOG_LINES: u32 = 1000;
/// Grace between SIGTERM and SIGKILL for a program being ended.
pub(crate) const KILL_GRACE: Duration = Duration::from_millis(500);
/// After stdout ends, how long to wait for the program's exit status (to
/// tell a crash from a normal end) before taking the end as normal.
pub(crate) const EXIT_WAIT: Duration = Duration::from_millis(500);
/// How often the exit status is looked for meanwhile, when no pidfd
/// tells of the exit.
pub(crate) const EXIT_POLL: Duration = Duration::from_millis(5);
/// How often programs being reaped are looked at when no pidfd tells of
/// their exit (kernels before 5.3, or pidfds refused).
pub(crate) const REAP_POLL: Duration = Duration::from_millis(20);
/// Requests that may wait for a slot of one mount; past this many, a
/// request over the limit gets 503 at once.
pub(crate) const MAX_CGI_WAITERS: usize = 1024;
/// Set (to anything) in the environment, child exits are polled as on a
/// kernel without pidfds: the fallback, kept tested.
pub const NO_PIDFD_ENV: &str = "WARREN_NO_PIDFD";
/// Process groups left running by programs that ended on their own, kept
/// so they can be ended when the server stops; past this many, a new
/// one is ended at once.
const MAX_LEFTOVER_GROUPS: usize = 256;
/// How often those groups are checked for being empty.
const LEFTOVER_CHECK: Duration = Duration::from_secs(1);

/// How the response body leaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OutFraming {
    /// `Content-Length` from the script: this many bytes still to send.
    Length(u64),
    /// We frame the script's bytes in chunks (HTTP/1.1, no length).
    Chunk,
    /// The script frames its own body as chunked: passed on as it is, up
    /// to the end of its last chunk (see `CgiRun::own_chunks`).
    Passthrough,
    /// Delimited by closing the connection (HTTP/1.0, no length).
    Close,
    /// No body may be sent (HEAD, 204, 304): stdout is read and dropped.
    Discard,
}

/// Which pipe a registered token stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pipe {
    Stdin,
    Stdout,
    Stderr,
}

/// What answers a request: a program, or a FastCGI server.
#[derive(Debug)]
enum Backend {
    Process {
        child: CgiChild,
        /// Readable once the program has exited; `None` without pidfds.
        pidfd: Option<OwnedFd>,
    },
    Fcgi(Box<FcgiLink>),
}

/// One program (or one FastCGI request) serving one request.
#[derive(Debug)]
pub(crate) struct CgiRun {
    backend: Backend,
    /// The script's URL path, for logs.
    pub(crate) script: String,
    /// Which vhost and mount it runs for (their running count).
    pub(crate) vhost: usize,
    pub(crate) mount: usize,
    /// Readiness as the loop reported it; cleared at `WouldBlock`.
    pub(crate) stdin_ready: bool,
    pub(crate) stdout_ready: bool,
    pub(crate) stderr_ready: bool,
    /// Slab tokens of the registered pipes; `None` until registered.
    pub(crate) tokens: Option<[Option<usize>; 3]>,
    /// A FastCGI read stopped at its limit of socket reads with more
    /// there (records that were not stdout): the step comes back for
    /// the rest, without counting it as progress. Taken by the step.
    pub(crate) fcgi_again: bool,
    /// Until the head is complete.
    pub(crate) parser: Option<HeadParser>,
    pub(crate) framing: OutFraming,
    /// A chunk's data went out without its closing CRLF, which rides in
    /// front of the next chunk's size line (so data is never copied).
    pub(crate) chunk_open: bool,
    /// Body bytes stdin has not taken yet.
    pending_in: Vec<u8>,
    /// The whole request body has arrived.
    pub(crate) body_done: bool,
    /// The program stopped reading its input (EPIPE): the rest is dropped.
    stdin_gone: bool,
    pub(crate) stdout_eof: bool,
    stderr_eof: bool,
    stderr: StderrLog,
    /// Local redirects followed for this request so far.
    pub(crate) redirects: u8,
    /// With `Passthrough`: the script's chunk framing as it passes, so the
    /// body ends exactly at its last chunk.
    pub(crate) own_chunks: BodyDecoder,
    /// stdout ended before the program's exit was seen: waiting (until
    /// this instant) to learn whether it crashed.
    pub(crate) exit_wait: Option<Instant>,
    /// Slab token of the registered pidfd; handed to the reaper with it.
    pub(crate) exit_token: Option<usize>,
    /// The request, kept when the mount lets a response name a file to
    /// send (`X-Sendfile`): its conditionals and ranges apply to it.
    pub(crate) request: Option<Box<crate::http::Request>>,
}

/// How a program ended, as far as the response cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Exit {
    /// Still running.
    Running,
    /// Exited (any status).
    Exited,
    /// Killed by a signal (crashed, or killed by someone).
    Killed,
}

impl CgiRun {
    pub(crate) fn new(child: CgiChild, script: String, vhost: usize, mount: usize, redirects: u8) -> CgiRun {
        // Opened before anything can reap the child, so the pid cannot
        // name another process yet.
        let pidfd = pidfd_open(child.child.id());
        CgiRun::with_backend(Backend::Process { child, pidfd }, script, vhost, mount, redirects)
    }

    /// A request to a FastCGI server over `link`.
    pub(crate) fn fcgi(link: FcgiLink, script: String, vhost: usize, mount: usize, redirects: u8) -> CgiRun {
        CgiRun::with_backend(Backend::Fcgi(Box::new(link)), script, vhost, mount, redirects)
    }

    fn with_backend(backend: Backend, script: String, vhost: usize, mount: usize, redirects: u8) -> CgiRun {
        // Named in log lines: the name came from a request.
        let script = crate::access_log::log_safe(&script, 256);
        let log_name = script.clone();
        CgiRun {
            exit_token: None,
            request: None,
            backend,
            script,
            vhost,
            mount,
            stdin_ready: true,
            stdout_ready: true,
            stderr_ready: true,
            tokens: None,
            fcgi_again: false,
            parser: Some(HeadParser::new()),
            framing: OutFraming::Chunk,
            chunk_open: false,
            pending_in: Vec::new(),
            body_done: false,
            stdin_gone: false,
            stdout_eof: false,
            stderr_eof: false,
            stderr: StderrLog { script: log_name, line: Vec::new(), lines: 0 },
            redirects,
            own_chunks: BodyDecoder::chunked(),
            exit_wait: None,
        }
    }

    /// Whether the program has exited, looked at without reaping it (the
    /// reaper does that, so its group id stays reserved meanwhile).
    pub(crate) fn exit(&self) -> Exit {
        let child = match &self.backend {
            Backend::Process { child, .. } => child,
            // Its end is the record that says so; without it, the
            // response was cut short.
            Backend::Fcgi(link) if link.ended() => return Exit::Exited,
            Backend::Fcgi(_) => return Exit::Killed,
        };
        let pid: libc::id_t = child.child.id();
        // SAFETY: siginfo_t is plain data; waitid(2) fills it for our own
        // child; WNOWAIT leaves the child waitable, WNOHANG never blocks.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        let r = unsafe { libc::waitid(libc::P_PID, pid, &mut info, libc::WEXITED | libc::WNOHANG | libc::WNOWAIT) };
        if r != 0 {
            // ECHILD: reaped already (cannot happen while we own it).
            return Exit::Exited;
        }
        // SAFETY: after a successful waitid the pid field is set (0: none).
        if unsafe { info.si_pid() } == 0 {
            return Exit::Running;
        }
        match info.si_code {
            libc::CLD_KILLED | libc::CLD_DUMPED => Exit::Killed,
            _ => Exit::Exited,
        }
    }

    /// The pidfd to register, if there is one.
    pub(crate) fn pidfd(&self) -> Option<RawFd> {
        match &self.backend {
            Backend::Process { pidfd, .. } => pidfd.as_ref().map(AsRawFd::as_raw_fd),
            Backend::Fcgi(_) => None,
        }
    }

    /// The pidfd could not be registered: the exit is polled.
    pub(crate) fn drop_pidfd(&mut self) {
        if let Backend::Process { pidfd, .. } = &mut self.backend {
            *pidfd = None;
        }
    }

    /// The FastCGI connection, if this is a FastCGI request.
    pub(crate) fn fcgi_link(&self) -> Option<&FcgiLink> {
        match &self.backend {
            Backend::Fcgi(link) => Some(link),
            Backend::Process { .. } => None,
        }
    }

    /// The FastCGI connection, to be changed.
    pub(crate) fn fcgi_link_mut(&mut self) -> Option<&mut FcgiLink> {
        match &mut self.backend {
            Backend::Fcgi(link) => Some(link),
            Backend::Process { .. } => None,
        }
    }

    /// The loop reports readiness of the FastCGI connection.
    pub(crate) fn fcgi_ready(&mut self, token: usize, readable: bool, writable: bool) {
        // An event of an earlier request's connection, idle since, under
        // a token this connection's events once came by: not ours.
        if let Backend::Fcgi(link) = &mut self.backend {
            if link.token != Some(token) {
                return;
            }
            link.readable |= readable;
            link.writable |= writable;
        }
    }

    /// Whether stdout may have something to read now.
    pub(crate) fn can_read(&self) -> bool {
        match &self.backend {
            Backend::Process { .. } => self.stdout_ready,
            Backend::Fcgi(link) => link.can_read(),
        }
    }

    /// How long to wait before looking at the exit status again, while
    /// stdout has ended and the exit is not seen yet: with a registered
    /// pidfd the exit is an event (the connection is served when it
    /// comes), so only the `EXIT_WAIT` bound remains.
    pub(crate) fn exit_poll(&self) -> Duration {
        if self.exit_token.is_some() {
            EXIT_WAIT
        } else {
            EXIT_POLL
        }
    }

    /// The pipes to register: (descriptor, which), stdin only while open.
    pub(crate) fn fds(&self) -> Vec<(RawFd, Pipe)> {
        let Backend::Process { child, .. } = &self.backend else { return Vec::new() };
        let mut v = vec![(child.stdout.as_raw_fd(), Pipe::Stdout), (child.stderr.as_raw_fd(), Pipe::Stderr)];
        if let Some(stdin) = &child.stdin {
            v.insert(0, (stdin.as_raw_fd(), Pipe::Stdin));
        }
        v
    }

    /// Whether body bytes wait for stdin (the client's rx is paused).
    pub(crate) fn input_blocked(&self) -> bool {
        match &self.backend {
            Backend::Process { .. } => !self.pending_in.is_empty(),
            Backend::Fcgi(link) => link.input_blocked(),
        }
    }

    /// Takes request body bytes: writes what stdin takes now, holds the
    /// rest. Returns whether anything moved.
    pub(crate) fn feed(&mut self, data: &[u8]) -> bool {
        let child = match &mut self.backend {
            Backend::Process { child, .. } => child,
            Backend::Fcgi(link) => return link.feed(data),
        };
        if self.stdin_gone || child.stdin.is_none() {
            return false;
        }
        if !self.pending_in.is_empty() {
            self.pending_in.extend_from_slice(data);
            return false;
        }
        let n = self.write_stdin(data);
        if n < data.len() && !self.stdin_gone {
            self.pending_in.extend_from_slice(&data[n..]);
        }
        n > 0
    }

    /// Writes held body bytes, then closes stdin once the body is all
    /// in. Returns whether anything moved.
    pub(crate) fn flush_stdin(&mut self) -> bool {
        if let Backend::Fcgi(link) = &mut self.backend {
            let moved = link.flush(self.body_done);
            if link.failed() {
                // Gone before its answer: what came is all there is.
                self.stdout_eof = true;
            }
            return moved;
        }
        let mut moved = false;
        if !self.pending_in.is_empty() && self.stdin_ready {
            let pending = std::mem::take(&mut self.pending_in);
            let n = self.write_stdin(&pending);
            moved = n > 0;
            if n < pending.len() && !self.stdin_gone {
                self.pending_in = pending[n..].to_vec();
            }
        }
        if let Backend::Process { child, .. } = &mut self.backend {
            if self.pending_in.is_empty() && (self.body_done || self.stdin_gone) && child.stdin.is_some() {
                // EOF on stdin: the program knows the body has ended.
                child.stdin = None;
                moved = true;
            }
        }
        moved
    }

    fn write_stdin(&mut self, data: &[u8]) -> usize {
        let Backend::Process { child, .. } = &mut self.backend else { return 0 };
        let Some(stdin) = child.stdin.as_mut() else { return 0 };
        let mut done = 0;
        while done < data.len() {
            match stdin.write(&data[done..]) {
                Ok(0) => break,
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.stdin_ready = false;
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    // EPIPE: the program does not want (the rest of) the body.
                    log::debug!("cgi {}: stdin: {e}", self.script);
                    self.stdin_gone = true;
                    self.pending_in = Vec::new();
                    child.stdin = None;
                    break;
                }
            }
        }
        done
    }

    /// Reads stdout into `buf`. `Ok(None)`: nothing now.
    pub(crate) fn read_stdout(&mut self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        let child = match &mut self.backend {
            Backend::Process { child, .. } => child,
            Backend::Fcgi(link) => {
                let log = &mut self.stderr;
                let r = link.read_stdout(buf, &mut |bytes| log.bytes(bytes));
                self.fcgi_again = link.take_capped();
                if matches!(r, Ok(Some(0)) | Err(_)) {
                    self.stdout_eof = true;
                    self.stderr.end();
                }
                return r;
            }
        };
        loop {
            match child.stdout.read(buf) {
                Ok(0) => {
                    self.stdout_eof = true;
                    return Ok(Some(0));
                }
                Ok(n) => return Ok(Some(n)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.stdout_ready = false;
                    return Ok(None);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Logs what stderr has, line by line. Returns whether anything moved.
    pub(crate) fn drain_stderr(&mut self) -> bool {
        let Backend::Process { child, .. } = &mut self.backend else { return false };
        let mut moved = false;
        let mut buf = [0u8; 4096];
        let mut reads = 0;
        while self.stderr_ready && !self.stderr_eof && reads < STDERR_READS_PER_STEP {
            reads += 1;
            match child.stderr.read(&mut buf) {
                Ok(0) => {
                    self.stderr_eof = true;
                    self.stderr.end();
                }
                Ok(n) => {
                    moved = true;
                    self.stderr.bytes(&buf[..n]);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.stderr_ready = false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => self.stderr_eof = true,
            }
        }
        moved
    }

    /// Whether stderr may have more to read now.
    pub(crate) fn stderr_pending(&self) -> bool {
        matches!(self.backend, Backend::Process { .. }) && self.stderr_ready && !self.stderr_eof
    }

    /// Ends the run: the program goes to `reaper`, cut short (`kill`: its
    /// group gets SIGTERM now, SIGKILL after a grace) or left to finish
    /// within `linger`.
    ///
    /// A FastCGI request's connection leaves the poll and goes back to
    /// `pool` (kept for the next request, up to `keepalive` idle, or
    /// closed; `kill`: the server is told of the abort first).
    pub(crate) fn retire(mut self, reaper: &mut Reaper, pool: &mut FcgiPool, end: Retire, now: Instant) {
        self.drain_stderr();
        let CgiRun { backend, exit_token, .. } = self;
        let (child, pidfd) = match backend {
            Backend::Process { child, pidfd } => (child, pidfd),
            Backend::Fcgi(link) => {
                // The connection's token is the pool's to keep or let go.
                pool.release(*link, end.keepalive, end.kill, reaper);
                return;
            }
        };
        let Retire { kill, linger, .. } = end;
        let CgiChild { child, stdin, stdout, stderr } = child;
        // Out of the poll first (see `Reaper::forget`), then closing our
        // ends: a program still writing gets EPIPE.
        if let Some(stdin) = &stdin {
            reaper.forget(stdin.as_raw_fd());
        }
        reaper.forget(stdout.as_raw_fd());
        reaper.forget(stderr.as_raw_fd());
        drop((stdin, stdout, stderr));
        let watch = Watch { pidfd, token: exit_token, distrusted: false };
        reaper.adopt(child, watch, kill, linger, now);
    }
}

/// How a run ends: cut short (`kill`), or left to finish within `linger`;
/// `keepalive`: idle FastCGI connections its server may keep.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Retire {
    pub(crate) kill: bool,
    pub(crate) linger: Duration,
    pub(crate) keepalive: usize,
}

/// A program's stderr (or a FastCGI server's `FCGI_STDERR`), logged line
/// by line under the script's name, a bounded number of lines.
#[derive(Debug)]
struct StderrLog {
    script: String,
    line: Vec<u8>,
    lines: u32,
}

impl StderrLog {
    fn bytes(&mut self, bytes: &[u8]) {
        for &b in bytes {
            if b == b'\n' {
                self.log_line();
            } else if self.line.len() < MAX_LOG_LINE {
                self.line.push(b);
            }
        }
    }

    /// The stream ended: a last line without its newline is logged.
    fn end(&mut self) {
        if !self.line.is_empty() {
            self.log_line();
        }
    }

    fn log_line(&mut self) {
        self.lines = self.lines.saturating_add(1);
        if self.lines <= MAX_LOG_LINES {
            let line = String::from_utf8_lossy(&self.line);
            log::warn!("cgi {}: {}", self.script, printable(line.trim_end_matches('\r')));
        } else if self.lines == MAX_LOG_LINES + 1 {
            log::warn!("cgi {}: more than {MAX_LOG_LINES} lines on stderr; the rest are not logged", self.script);
        }
        self.line.clear();
    }
}

/// Opens a pidfd for our child `pid`, close-on-exec. `None` where the
/// kernel has none (ENOSYS before Linux 5.3), refuses it (EPERM under
/// some seccomp policies), or [`NO_PIDFD_ENV`] is set: the caller then
/// polls the exit.
fn pidfd_open(pid: u32) -> Option<OwnedFd> {
    static UNAVAILABLE: AtomicBool = AtomicBool::new(false);
    static CHECKED_ENV: std::sync::Once = std::sync::Once::new();
    CHECKED_ENV.call_once(|| {
        if std::env::var_os(NO_PIDFD_ENV).is_some() {
            log::info!("cgi: {NO_PIDFD_ENV} is set; program exits are polled");
            UNAVAILABLE.store(true, Ordering::Relaxed);
        }
    });
    if UNAVAILABLE.load(Ordering::Relaxed) {
        return None;
    }
    let pid = libc::pid_t::try_from(pid).ok()?;
    // SAFETY: pidfd_open(2) takes a pid and flags (0) and returns a new
    // descriptor (always close-on-exec) or -1; no memory is involved.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        let e = io::Error::last_os_error();
        if matches!(e.raw_os_error(), Some(libc::ENOSYS | libc::EPERM)) && !UNAVAILABLE.swap(true, Ordering::Relaxed) {
            log::info!("cgi: no pidfd ({e}); program exits are polled every {REAP_POLL:?}");
        } else {
            log::debug!("cgi: pidfd_open({pid}): {e}");
        }
        return None;
    }
    // SAFETY: the syscall returned a new descriptor that nothing else owns.
    RawFd::try_from(fd).ok().map(|fd| unsafe { OwnedFd::from_raw_fd(fd) })
}

/// How a program's exit is learnt: its pidfd, registered under `token`
/// (an event), or, without them, by polling.
#[derive(Debug, Default)]
pub(crate) struct Watch {
    pidfd: Option<OwnedFd>,
    token: Option<usize>,
    /// The pidfd said "exited" and the child was not reapable: not
    /// trusted again for this child, which is polled instead.
    distrusted: bool,
}

impl Watch {
    fn evented(&self) -> bool {
        self.pidfd.is_some() && self.token.is_some() && !self.distrusted
    }
}

/// Programs that have served their request and are being waited for,
/// and the process groups programs left running behind them.
#[derive(Debug)]
pub(crate) struct Reaper {
    /// The loop's registry, to take descriptors out of the poll before
    /// they are closed.
    registry: Option<mio::Registry>,
    waiting: Vec<Reaping>,
    /// Groups whose leader ended on its own, leaving members behind
    /// (daemonised children): let run, ended when the server stops.
    leftovers: Vec<i32>,
    /// When `leftovers` was last checked for empty groups.
    checked: Option<Instant>,
    /// Slab tokens of pidfds let go, for the loop to free.
    freed: Vec<usize>,
}

#[derive(Debug)]
struct Reaping {
    child: Child,
    /// Dropped (closed, so out of the poll) with the entry.
    watch: Watch,
    pgid: i32,
    /// When the group gets SIGTERM (if not yet sent) ...
    term_at: Instant,
    term_sent: bool,
    /// ... and when SIGKILL.
    kill_at: Instant,
    kill_sent: bool,
    /// The leader has been reaped.
    exited: bool,
    /// Done with it: reaped, and its group ended or handed on.
    finished: bool,
}

/// What became of a finished program's group.
enum Left {
    Nothing,
    Group(i32),
}

impl Reaper {
    pub(crate) fn new(registry: Option<mio::Registry>) -> Reaper {
        Reaper { registry, waiting: Vec::new(), leftovers: Vec::new(), checked: None, freed: Vec::new() }
    }

    /// Takes `fd` out of the poll, before it is closed. Closing alone is
    /// not enough: while another thread of the process forks (before its
    /// child's exec), the child holds a copy of every descriptor, and the
    /// registration lives as long as a copy does; an event on it (a
    /// pidfd signals again when its process is reaped) would then come
    /// under a token that a new connection may have taken by then.
    fn forget(&self, fd: RawFd) {
        if let Some(r) = &self.registry {
            // ENOENT (never registered) is fine.
            let _ = r.deregister(&mut mio::unix::SourceFd(&fd));
        }
    }

    /// Takes `fd` out of the poll before it is closed, and lets its
    /// `token` go (a FastCGI connection's).
    pub(crate) fn forget_token(&mut self, fd: RawFd, token: usize) {
        self.forget(fd);
        self.freed.push(token);
    }

    /// A finished entry: its pidfd leaves the poll and is closed, its
    /// token is to be freed.
    fn release(&mut self, r: Reaping) {
        if let Some(fd) = &r.watch.pidfd {
            self.forget(fd.as_raw_fd());
        }
        self.freed.extend(r.watch.token);
    }

    fn adopt(&mut self, child: Child, watch: Watch, kill: bool, linger: Duration, now: Instant) {
        let pgid = i32::try_from(child.id()).unwrap_or(0);
        let term_at = if kill { now } else { now + linger };
        let mut r = Reaping {
            child,
            watch,
            pgid,
            term_at,
            term_sent: false,
            kill_at: term_at + KILL_GRACE,
            kill_sent: false,
            exited: false,
            finished: false,
        };
        if let Left::Group(g) = r.step(now) {
            self.keep_leftover(g);
        }
        if r.finished {
            self.release(r);
        } else {
            self.waiting.push(r);
        }
    }

    /// The pidfd registered under `token` is readable: if it is one of
    /// ours, that program has exited; it is reaped (and what it left in
    /// its group dealt with). Returns whether the token was ours.
    pub(crate) fn on_exit(&mut self, token: usize, now: Instant) -> bool {
        let Some(i) = self.waiting.iter().position(|r| r.watch.token == Some(token)) else { return false };
        let left = self.waiting[i].step(now);
        if !self.waiting[i].exited {
            // Cannot happen (a readable pidfd is a zombie we may reap);
            // should it, this one is polled rather than lost.
            log::debug!("cgi: pidfd of {} readable before its exit", self.waiting[i].pgid);
            self.waiting[i].watch.distrusted = true;
        }
        if self.waiting[i].finished {
            let r = self.waiting.swap_remove(i);
            self.release(r);
        }
        if let Left::Group(g) = left {
            self.keep_leftover(g);
        }
        true
    }

    /// Slab tokens of pidfds that were closed, for the loop to free.
    pub(crate) fn take_freed(&mut self) -> Vec<usize> {
        std::mem::take(&mut self.freed)
    }

    /// Whether anything is waited for or watched.
    pub(crate) fn is_empty(&self) -> bool {
        self.waiting.is_empty() && self.leftovers.is_empty()
    }

    /// When the loop must call [`poll`](Self::poll) next: the nearest
    /// deadline (a SIGTERM or SIGKILL due), every `REAP_POLL` while a
    /// program's exit can only be polled (no pidfd), and every
    /// `LEFTOVER_CHECK` while left-over groups are watched. Exits that a
    /// pidfd reports need no wake-up of their own.
    pub(crate) fn next_wake(&self, now: Instant) -> Option<Instant> {
        let mut next: Option<Instant> = None;
        let mut at = |t: Instant| next = Some(next.map_or(t, |n| n.min(t)));
        for r in &self.waiting {
            if !r.exited && !r.watch.evented() {
                at(now + REAP_POLL);
            }
            if let Some(t) = r.deadline() {
                at(t);
            }
        }
        if !self.leftovers.is_empty() {
            at(self.checked.map_or(now, |t| t + LEFTOVER_CHECK));
        }
        next
    }

    /// The loop is stopping: ends every program still waited for and every
    /// group left running (SIGKILL to the group) and reaps the programs,
    /// so an embedding program is left with no zombie and no stray
    /// process. Blocks only as long as the kernel takes to kill them.
    pub(crate) fn finish(&mut self) {
        for mut r in self.waiting.drain(..) {
            if !r.exited || group_alive(r.pgid) {
                // The reaped leader's id names its group for as long as a
                // member lives, so this reaches exactly that group.
                signal_group(r.pgid, libc::SIGKILL);
            }
            if !r.exited {
                let _ = r.child.wait();
            }
        }
        for pgid in self.leftovers.drain(..) {
            if group_alive(pgid) {
                signal_group(pgid, libc::SIGKILL);
            }
        }
    }

    /// Signals what is due, reaps what has exited among the programs
    /// whose exit is polled, forgets groups that have emptied.
    pub(crate) fn poll(&mut self, now: Instant) {
        let mut left = Vec::new();
        for r in self.waiting.iter_mut() {
            let polled = !r.exited && !r.watch.evented();
            if polled || r.deadline().is_some_and(|t| t <= now) {
                if let Left::Group(g) = r.step(now) {
                    left.push(g);
                }
            }
        }
        let mut i = 0;
        while i < self.waiting.len() {
            if self.waiting[i].finished {
                let r = self.waiting.swap_remove(i);
                self.release(r);
            } else {
                i += 1;
            }
        }
        for g in left {
            self.keep_leftover(g);
        }
        if !self.leftovers.is_empty() && self.checked.is_none_or(|t| now.duration_since(t) >= LEFTOVER_CHECK) {
            // Promptly, so an id is forgotten long before the kernel could
            // hand it out again (ids are reused only after a full cycle).
            self.checked = Some(now);
            self.leftovers.retain(|&g| group_alive(g));
        }
    }

    fn keep_leftover(&mut self, pgid: i32) {
        if self.leftovers.len() >= MAX_LEFTOVER_GROUPS {
            self.leftovers.retain(|&g| group_alive(g));
        }
        if self.leftovers.len() >= MAX_LEFTOVER_GROUPS {
            log::warn!("cgi: more than {MAX_LEFTOVER_GROUPS} process groups left running; ending group {pgid}");
            signal_group(pgid, libc::SIGKILL);
            return;
        }
        log::debug!("cgi: process group {pgid} lives on after its program ended");
        self.leftovers.push(pgid);
    }
}

impl Reaping {
    /// The next signal due: SIGTERM, then SIGKILL.
    fn deadline(&self) -> Option<Instant> {
        if self.finished {
            None
        } else if !self.term_sent {
            Some(self.term_at)
        } else if !self.kill_sent {
            Some(self.kill_at)
        } else {
            None
        }
    }

    fn step(&mut self, now: Instant) -> Left {
        if self.finished {
            return Left::Nothing;
        }
        self.reap();
        if self.exited && !self.term_sent && now < self.term_at {
            // It finished on its own: what it left in its group (a
            // daemonised child) may run on, watched until the server
            // stops.
            self.finished = true;
            return if group_alive(self.pgid) { Left::Group(self.pgid) } else { Left::Nothing };
        }
        // Cut short or overstaying: the whole group ends, whether or not
        // the leader is still there (its id names the group while any
        // member lives).
        if now >= self.term_at && !self.term_sent {
            self.term_sent = true;
            signal_group(self.pgid, libc::SIGTERM);
        }
        if now >= self.kill_at && !self.kill_sent {
            self.kill_sent = true;
            if !self.exited || group_alive(self.pgid) {
                signal_group(self.pgid, libc::SIGKILL);
            }
        }
        self.reap();
        // A group we signalled is watched until it is empty (or killed).
        self.finished = self.exited && (self.kill_sent || !group_alive(self.pgid));
        Left::Nothing
    }

    fn reap(&mut self) {
        if !self.exited {
            self.exited = matches!(self.child.try_wait(), Ok(Some(_)) | Err(_));
        }
    }
}

fn signal_group(pgid: i32, signal: i32) {
    if pgid > 0 {
        // SAFETY: kill(2) on a process group we created; no memory involved.
        unsafe {
            libc::kill(-pgid, signal);
        }
    }
}

fn group_alive(pgid: i32) -> bool {
    // SAFETY: signal 0 only checks that the group exists.
    pgid > 0 && unsafe { libc::kill(-pgid, 0) } == 0
}

/// What a request waiting for a slot waits for: a mount's programs
/// (vhost, mount), or a FastCGI server's requests.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Slots {
    Mount(usize, usize),
    Fcgi(crate::mount::FcgiAddr),
}

/// Requests waiting for a slot of a CGI mount at its process limit (or
/// of a FastCGI server at its request limit), per [`Slots`], in arrival
/// order: (slab key, generation). Each connection waits in one queue at
/// most, and each queue holds at most [`MAX_CGI_WAITERS`], so this is
/// bounded by the connection limit.
#[derive(Debug, Default)]
pub(crate) struct CgiWaiters {
    queues: HashMap<Slots, VecDeque<(usize, u32)>>,
    /// How many wait, in all queues (the `warren_cgi_waiting` gauge).
    waiting: Arc<AtomicU64>,
}

impl CgiWaiters {
    /// Queues that count their waiters in `gauge`.
    pub(crate) fn counted(gauge: Arc<AtomicU64>) -> CgiWaiters {
        CgiWaiters { queues: HashMap::new(), waiting: gauge }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.queues.is_empty()
    }

    /// Whether requests wait for these slots (a new one queues behind
    /// them, even when a slot has just freed).
    pub(crate) fn has_waiters(&self, slots: &Slots) -> bool {
        self.queues.contains_key(slots)
    }

    /// Queues connection `key`; false when the queue is full.
    pub(crate) fn push(&mut self, slots: &Slots, key: usize, generation: u32) -> bool {
        let q = self.queues.entry(slots.clone()).or_default();
        if q.len() >= MAX_CGI_WAITERS {
            return false;
        }
        let before = q.len();
        q.retain(|&(k, _)| k != key);
        if q.len() == before {
            self.waiting.fetch_add(1, Ordering::Relaxed);
        }
        q.push_back((key, generation));
        true
    }

    /// Puts connection `key` back at the head of the queue, unless it is
    /// in it still (where it stays): a request that had its turn, or its
    /// slot, and must wait again keeps its place. False when the queue
    /// is full.
    pub(crate) fn push_front(&mut self, slots: &Slots, key: usize, generation: u32) -> bool {
        let q = self.queues.entry(slots.clone()).or_default();
        if q.iter().any(|&(k, _)| k == key) {
            return true;
        }
        if q.len() >= MAX_CGI_WAITERS {
            return false;
        }
        q.push_front((key, generation));
        self.waiting.fetch_add(1, Ordering::Relaxed);
        true
    }

    /// The first waiter for these slots: only it may take a slot (or try
    /// one more FastCGI connection), so they start in arrival order.
    pub(crate) fn first(&self, slots: &Slots) -> Option<(usize, u32)> {
        self.queues.get(slots).and_then(|q| q.front().copied())
    }

    /// Takes connection `key` out of the queue (it got its slot, gave up,
    /// or went away).
    pub(crate) fn remove(&mut self, slots: &Slots, key: usize) {
        if let Some(q) = self.queues.get_mut(slots) {
            let before = q.len();
            q.retain(|&(k, _)| k != key);
            if q.len() < before {
                self.waiting.fetch_sub(1, Ordering::Relaxed);
            }
            if q.is_empty() {
                self.queues.remove(slots);
            }
        }
    }

    /// The slots that have waiters.
    pub(crate) fn waited_for(&self) -> Vec<Slots> {
        self.queues.keys().cloned().collect()
    }

    /// The first waiter for these slots, taken out of its queue.
    #[cfg(test)]
    pub(crate) fn pop(&mut self, slots: &Slots) -> Option<(usize, u32)> {
        let q = self.queues.get_mut(slots)?;
        let first = q.pop_front();
        if first.is_some() {
            self.waiting.fetch_sub(1, Ordering::Relaxed);
        }
        if q.is_empty() {
            self.queues.remove(slots);
        }
        first
    }
}

/// A program's stderr line as the log shows it: control characters (a
/// newline that would forge a log line, a terminal escape) written as
/// `\xhh`, everything else, UTF-8 included, as it is.
fn printable(line: &str) -> std::borrow::Cow<'_, str> {
    if !line.chars().any(|c| c.is_control() && c != '\t') {
        return std::borrow::Cow::Borrowed(line);
    }
    let mut out = String::with_capacity(line.len() + 8);
    for c in line.chars() {
        if c.is_control() && c != '\t' {
            out.push_str(&format!("\\x{:02x}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waiters_leave_in_arrival_order_and_once() {
        let mut w = CgiWaiters::default();
        let (m01, m02) = (Slots::Mount(0, 1), Slots::Mount(0, 2));
        assert!(w.push(&m01, 7, 1));
        assert!(w.push(&m01, 3, 1));
        assert!(w.push(&m01, 9, 2));
        // Queued again: moves to the back, never twice.
        assert!(w.push(&m01, 7, 1));
        w.remove(&m01, 3);
        assert!(w.has_waiters(&m01) && !w.has_waiters(&m02));
        assert_eq!(w.pop(&m01), Some((9, 2)));
        assert_eq!(w.pop(&m01), Some((7, 1)));
        assert_eq!(w.pop(&m01), None);
        assert!(w.is_empty());
    }

    #[test]
    fn a_waiter_put_back_keeps_its_place() {
        let mut w = CgiWaiters::default();
        let m = Slots::Mount(0, 1);
        assert!(w.push(&m, 1, 0) && w.push(&m, 2, 0) && w.push(&m, 3, 0));
        // Still queued: it stays where it is.
        assert!(w.push_front(&m, 2, 0));
        assert_eq!(w.first(&m), Some((1, 0)));
        // Taken out for its turn, then back: first again.
        w.remove(&m, 1);
        assert!(w.push_front(&m, 1, 0));
        assert_eq!([w.pop(&m), w.pop(&m), w.pop(&m), w.pop(&m)], [Some((1, 0)), Some((2, 0)), Some((3, 0)), None]);
    }

    #[test]
    fn a_full_queue_refuses() {
        let mut w = CgiWaiters::default();
        let fpm = Slots::Fcgi(crate::mount::FcgiAddr::Unix("/run/fpm.sock".into()));
        for k in 0..MAX_CGI_WAITERS {
            assert!(w.push(&fpm, k, 0));
        }
        assert!(!w.push(&fpm, MAX_CGI_WAITERS, 0));
        assert!(w.push(&Slots::Mount(0, 1), MAX_CGI_WAITERS, 0), "other slots have their own queue");
        assert_eq!(w.waited_for().len(), 2);
    }
}
