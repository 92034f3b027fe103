//! The classic background daemon and its locked pid file.

use super::*;

/// What [`daemonize`] returns in each of the two processes.
#[derive(Debug)]
pub enum Daemonized {
    /// The process that started: the daemon serves (`Ok`), or said why
    /// it cannot, or ended without saying (`Err`, the reason). It should
    /// exit now, 0 or not.
    Parent(Result<(), String>),
    /// The daemon: detached, in `/`, stdio on `/dev/null`. Tell the
    /// parent how it went with [`Daemon::ready`] or [`Daemon::failed`].
    Daemon(Daemon),
}

/// The daemon's line back to the process that started it.
#[derive(Debug)]
pub struct Daemon {
    pipe: Option<File>,
}

impl Daemon {
    /// Serving: the starting process exits 0. Only the first report counts.
    pub fn ready(&mut self) {
        if let Some(mut pipe) = self.pipe.take() {
            let _ = pipe.write_all(b"+");
        }
    }

    /// Cannot serve, because of `why`: the starting process says it and
    /// exits with failure.
    pub fn failed(&mut self, why: &str) {
        if let Some(mut pipe) = self.pipe.take() {
            let _ = pipe.write_all(format!("-{why}").as_bytes());
        }
    }
}

/// Becomes a classic background daemon: forks twice (the daemon is in a
/// session of its own and cannot take a terminal back), then in the
/// daemon `chdir("/")` (make relative paths absolute before), `umask
/// 022`, and stdin, stdout and stderr on `/dev/null` (so logs need a
/// file or syslog). The starting process waits until the daemon reports
/// through its [`Daemon`] (or exits), and gets
/// [`Daemonized::Parent`].
///
/// Call it before any thread starts: a fork copies only the calling
/// thread, and a lock another one held would stay held forever.
///
/// # Errors
///
/// Threads run already; a fork or pipe failed.
pub fn daemonize() -> io::Result<Daemonized> {
    let threads = std::fs::read_dir("/proc/self/task").map(|d| d.count()).unwrap_or(1);
    if threads > 1 {
        return Err(other(format!("cannot become a daemon: {threads} threads run already")));
    }
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two descriptors.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(last("pipe"));
    }
    // SAFETY: both descriptors are new and owned here only.
    let (mut read, write) = unsafe { (File::from_raw_fd(fds[0]), File::from_raw_fd(fds[1])) };
    // SAFETY: one thread (checked above), so the child is a whole copy.
    match unsafe { libc::fork() } {
        -1 => Err(last("fork")),
        0 => {
            drop(read);
            // SAFETY: plain syscalls in the single-threaded child; the
            // middle process leaves with _exit, running nothing of the
            // parent's (no destructors, no flushing of its buffers).
            unsafe {
                libc::setsid();
                match libc::fork() {
                    -1 => {
                        let mut d = Daemon { pipe: Some(write) };
                        d.failed(&format!("fork: {}", io::Error::last_os_error()));
                        libc::_exit(1)
                    }
                    0 => {}
                    _ => libc::_exit(0),
                }
                if libc::chdir(c"/".as_ptr()) != 0 {
                    let mut d = Daemon { pipe: Some(write) };
                    d.failed(&format!("chdir /: {}", io::Error::last_os_error()));
                    libc::_exit(1);
                }
                libc::umask(0o022);
            }
            let null = std::fs::OpenOptions::new().read(true).write(true).open("/dev/null");
            let mut daemon = Daemon { pipe: Some(write) };
            let null = match null {
                Ok(f) => f,
                Err(e) => {
                    daemon.failed(&format!("/dev/null: {e}"));
                    // SAFETY: as above.
                    unsafe { libc::_exit(1) }
                }
            };
            for fd in 0..3 {
                // SAFETY: dup2 onto the standard descriptors.
                unsafe { libc::dup2(null.as_raw_fd(), fd) };
            }
            Ok(Daemonized::Daemon(daemon))
        }
        child => {
            drop(write);
            let mut status = 0;
            // SAFETY: reaps the middle process, which exits at once.
            unsafe { libc::waitpid(child, &mut status, 0) };
            let mut said = Vec::new();
            // Read to the end: the daemon's report, or nothing if it
            // ended (all its copies of the pipe closed) without one.
            let _ = read.read_to_end(&mut said);
            Ok(Daemonized::Parent(match said.split_first() {
                Some((b'+', _)) => Ok(()),
                Some((b'-', why)) => Err(String::from_utf8_lossy(why).into_owned()),
                _ => Err("the daemon ended before it served".into()),
            }))
        }
    }
}

/// A pid file, locked (`flock`) for the process's life: a second
/// instance given the same path is refused while this one runs, even if
/// the file outlives it. Removed when dropped, if written.
#[derive(Debug)]
pub struct PidFile {
    file: File,
    path: PathBuf,
    written: bool,
}

impl PidFile {
    /// Opens (creates) and locks `path`. Write the pid with
    /// [`write`](PidFile::write) once serving.
    ///
    /// # Errors
    ///
    /// Another process holds the lock ("another warren (pid N) holds
    /// PATH"), or the file cannot be created (a directory that does not
    /// exist): the message names the path.
    pub fn lock(path: &Path) -> io::Result<PidFile> {
        use std::os::unix::fs::OpenOptionsExt;
        // The holder may remove the file between our open and our lock:
        // a lock on a removed file keeps nothing out, so check that the
        // path still names what is locked, and try again if not.
        for _ in 0..10 {
            let file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o644)
                // Not through a link: a pid file in a directory another
                // user can write must not make root truncate the file a
                // link planted there names.
                .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW)
                .open(path)
                .map_err(|e| {
                    let why = if e.raw_os_error() == Some(libc::ELOOP) {
                        "a symbolic link (refused: it could name any file)".to_string()
                    } else {
                        e.to_string()
                    };
                    io::Error::new(e.kind(), format!("pid file {}: {why}", path.display()))
                })?;
            if !file.metadata().is_ok_and(|m| m.is_file()) {
                return Err(other(format!("pid file {}: not a regular file", path.display())));
            }
            // SAFETY: flock on a descriptor we own.
            if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
                let e = io::Error::last_os_error();
                if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
                    let mut text = String::new();
                    let _ = (&file).read_to_string(&mut text);
                    let pid = match text.trim().parse::<u32>() {
                        Ok(pid) => format!("pid {pid}"),
                        Err(_) => "pid not written yet".into(),
                    };
                    return Err(io::Error::new(
                        io::ErrorKind::AddrInUse,
                        format!("another warren ({pid}) holds {}", path.display()),
                    ));
                }
                return Err(io::Error::new(e.kind(), format!("pid file {}: lock: {e}", path.display())));
            }
            let same = match (file.metadata(), std::fs::metadata(path)) {
                (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
                _ => false,
            };
            if same {
                return Ok(PidFile { file, path: path.to_path_buf(), written: false });
            }
        }
        Err(other(format!("pid file {}: replaced while being locked, again and again", path.display())))
    }

    /// Writes this process's pid and a newline, in place of what the
    /// file held.
    ///
    /// # Errors
    ///
    /// The write failed (a full disk).
    pub fn write(&mut self) -> io::Result<()> {
        use std::os::unix::fs::FileExt;
        let text = format!("{}\n", std::process::id());
        let named = |e: io::Error| io::Error::new(e.kind(), format!("pid file {}: {e}", self.path.display()));
        self.file.set_len(0).map_err(named)?;
        self.file.write_all_at(text.as_bytes(), 0).map_err(named)?;
        self.written = true;
        Ok(())
    }

    /// Where it is.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for PidFile {
    /// Removes the file if this process wrote it and the path still
    /// names it; when it cannot (its directory is not writable after a
    /// privilege drop), empties it. The lock goes with the descriptor.
    fn drop(&mut self) {
        if !self.written {
            return;
        }
        let ours = match (self.file.metadata(), std::fs::metadata(&self.path)) {
            (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
            _ => false,
        };
        if ours && std::fs::remove_file(&self.path).is_err() {
            let _ = self.file.set_len(0);
        }
    }
}
