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
//! When the run ends, its program goes to the [`Reaper`]: reaped when it
//! exits, its process group sent SIGTERM and then SIGKILL when it was cut
//! short or overstays.

use crate::http::BodyDecoder;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::process::Child;
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
/// How often the exit status is looked for meanwhile.
pub(crate) const EXIT_POLL: Duration = Duration::from_millis(5);
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

/// One program serving one request.
#[derive(Debug)]
pub(crate) struct CgiRun {
    child: CgiChild,
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
    stderr_line: Vec<u8>,
    stderr_lines: u32,
    /// Local redirects followed for this request so far.
    pub(crate) redirects: u8,
    /// With `Passthrough`: the script's chunk framing as it passes, so the
    /// body ends exactly at its last chunk.
    pub(crate) own_chunks: BodyDecoder,
    /// stdout ended before the program's exit was seen: waiting (until
    /// this instant) to learn whether it crashed.
    pub(crate) exit_wait: Option<Instant>,
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
        CgiRun {
            child,
            script,
            vhost,
            mount,
            stdin_ready: true,
            stdout_ready: true,
            stderr_ready: true,
            tokens: None,
            parser: Some(HeadParser::new()),
            framing: OutFraming::Chunk,
            chunk_open: false,
            pending_in: Vec::new(),
            body_done: false,
            stdin_gone: false,
            stdout_eof: false,
            stderr_eof: false,
            stderr_line: Vec::new(),
            stderr_lines: 0,
            redirects,
            own_chunks: BodyDecoder::chunked(),
            exit_wait: None,
        }
    }

    /// Whether the program has exited, looked at without reaping it (the
    /// reaper does that, so its group id stays reserved meanwhile).
    pub(crate) fn exit(&self) -> Exit {
        let pid: libc::id_t = self.child.child.id();
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

    /// The pipes to register: (descriptor, which), stdin only while open.
    pub(crate) fn fds(&self) -> Vec<(RawFd, Pipe)> {
        let mut v = vec![(self.child.stdout.as_raw_fd(), Pipe::Stdout), (self.child.stderr.as_raw_fd(), Pipe::Stderr)];
        if let Some(stdin) = &self.child.stdin {
            v.insert(0, (stdin.as_raw_fd(), Pipe::Stdin));
        }
        v
    }

    /// Whether body bytes wait for stdin (the client's rx is paused).
    pub(crate) fn input_blocked(&self) -> bool {
        !self.pending_in.is_empty()
    }

    /// Takes request body bytes: writes what stdin takes now, holds the
    /// rest. Returns whether anything moved.
    pub(crate) fn feed(&mut self, data: &[u8]) -> bool {
        if self.stdin_gone || self.child.stdin.is_none() {
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
        let mut moved = false;
        if !self.pending_in.is_empty() && self.stdin_ready {
            let pending = std::mem::take(&mut self.pending_in);
            let n = self.write_stdin(&pending);
            moved = n > 0;
            if n < pending.len() && !self.stdin_gone {
                self.pending_in = pending[n..].to_vec();
            }
        }
        if self.pending_in.is_empty() && (self.body_done || self.stdin_gone) && self.child.stdin.is_some() {
            // EOF on stdin: the program knows the body has ended.
            self.child.stdin = None;
            moved = true;
        }
        moved
    }

    fn write_stdin(&mut self, data: &[u8]) -> usize {
        let Some(stdin) = self.child.stdin.as_mut() else { return 0 };
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
                    self.child.stdin = None;
                    break;
                }
            }
        }
        done
    }

    /// Reads stdout into `buf`. `Ok(None)`: nothing now.
    pub(crate) fn read_stdout(&mut self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        loop {
            match self.child.stdout.read(buf) {
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
        let mut moved = false;
        let mut buf = [0u8; 4096];
        let mut reads = 0;
        while self.stderr_ready && !self.stderr_eof && reads < STDERR_READS_PER_STEP {
            reads += 1;
            match self.child.stderr.read(&mut buf) {
                Ok(0) => {
                    self.stderr_eof = true;
                    self.log_line(true);
                }
                Ok(n) => {
                    moved = true;
                    for &b in &buf[..n] {
                        if b == b'\n' {
                            self.log_line(false);
                        } else if self.stderr_line.len() < MAX_LOG_LINE {
                            self.stderr_line.push(b);
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.stderr_ready = false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => self.stderr_eof = true,
            }
        }
        moved
    }

    fn log_line(&mut self, at_eof: bool) {
        if at_eof && self.stderr_line.is_empty() {
            return;
        }
        self.stderr_lines = self.stderr_lines.saturating_add(1);
        if self.stderr_lines <= MAX_LOG_LINES {
            let line = String::from_utf8_lossy(&self.stderr_line);
            log::warn!("cgi {}: {}", self.script, line.trim_end_matches('\r'));
        } else if self.stderr_lines == MAX_LOG_LINES + 1 {
            log::warn!("cgi {}: more than {MAX_LOG_LINES} lines on stderr; the rest are not logged", self.script);
        }
        self.stderr_line.clear();
    }

    /// Whether stderr may have more to read now.
    pub(crate) fn stderr_pending(&self) -> bool {
        self.stderr_ready && !self.stderr_eof
    }

    /// Ends the run: the program goes to `reaper`, cut short (`kill`: its
    /// group gets SIGTERM now, SIGKILL after a grace) or left to finish
    /// within `linger`.
    pub(crate) fn retire(mut self, reaper: &mut Reaper, kill: bool, linger: Duration, now: Instant) {
        self.drain_stderr();
        let CgiRun { child, .. } = self;
        let CgiChild { child, stdin, stdout, stderr } = child;
        // Closing our ends: a program still writing gets EPIPE.
        drop((stdin, stdout, stderr));
        reaper.adopt(child, kill, linger, now);
    }
}

/// Programs that have served their request and are being waited for,
/// and the process groups programs left running behind them.
#[derive(Debug, Default)]
pub(crate) struct Reaper {
    waiting: Vec<Reaping>,
    /// Groups whose leader ended on its own, leaving members behind
    /// (daemonised children): let run, ended when the server stops.
    leftovers: Vec<i32>,
    /// When `leftovers` was last checked for empty groups.
    checked: Option<Instant>,
}

#[derive(Debug)]
struct Reaping {
    child: Child,
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
    fn adopt(&mut self, child: Child, kill: bool, linger: Duration, now: Instant) {
        let pgid = i32::try_from(child.id()).unwrap_or(0);
        let term_at = if kill { now } else { now + linger };
        let mut r = Reaping {
            child,
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
        if !r.finished {
            self.waiting.push(r);
        }
    }

    /// Whether anything is waited for or watched.
    pub(crate) fn is_empty(&self) -> bool {
        self.waiting.is_empty() && self.leftovers.is_empty()
    }

    /// How soon the loop should call [`poll`](Self::poll): often while a
    /// program is being reaped, now and then while only left-over groups
    /// are watched.
    pub(crate) fn next_poll(&self, reap_poll: Duration) -> Option<Duration> {
        if !self.waiting.is_empty() {
            Some(reap_poll)
        } else if !self.leftovers.is_empty() {
            Some(LEFTOVER_CHECK)
        } else {
            None
        }
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

    /// Reaps what has exited, signals what is due, forgets groups that
    /// have emptied.
    pub(crate) fn poll(&mut self, now: Instant) {
        let mut left = Vec::new();
        for r in self.waiting.iter_mut() {
            if let Left::Group(g) = r.step(now) {
                left.push(g);
            }
        }
        self.waiting.retain(|r| !r.finished);
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
