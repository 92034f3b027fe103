//! Starting a CGI program: its own process group, resource limits, a
//! working directory, and non-blocking pipes for the server's loop.

use std::ffi::OsString;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, ChildStderr, ChildStdin, ChildStdout, Command, ExitStatus, Stdio};

/// close_range(2)'s flag that marks the range close-on-exec (Linux 5.11).
const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;
/// How far the fallback for older kernels marks descriptors.
const FALLBACK_FDS: libc::c_int = 4096;

/// Resource limits set in the child before `exec` (setrlimit). `None`
/// leaves the server's own limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    /// RLIMIT_CPU: CPU seconds before the kernel sends SIGXCPU/SIGKILL.
    pub cpu_secs: Option<u64>,
    /// RLIMIT_AS: bytes of address space.
    pub address_space: Option<u64>,
    /// RLIMIT_NOFILE: open files.
    pub open_files: Option<u64>,
}

/// A running CGI program and its three pipes, all non-blocking.
#[derive(Debug)]
pub struct CgiChild {
    /// The process; its id is also its process group's.
    pub child: Child,
    /// Its standard input; drop it to signal the end of the body.
    pub stdin: Option<ChildStdin>,
    /// Its standard output: the response.
    pub stdout: ChildStdout,
    /// Its standard error: lines for the server's log.
    pub stderr: ChildStderr,
}

impl CgiChild {
    /// Sends `signal` to the program's whole process group (what it
    /// started too). Errors if the group is gone.
    pub fn signal_group(&self, signal: i32) -> io::Result<()> {
        let pgid = i32::try_from(self.child.id()).map_err(|_| io::ErrorKind::InvalidInput)?;
        // SAFETY: kill(2) with a negative pid signals that process group;
        // no memory is involved.
        if unsafe { libc::kill(-pgid, signal) } == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    /// Reaps the program if it has exited; never blocks.
    pub fn try_reap(&mut self) -> io::Result<Option<ExitStatus>> {
        self.child.try_wait()
    }
}

/// Starts `program` with exactly `env` (nothing inherited), in `cwd`, in
/// a new process group, with `limits`, and returns non-blocking pipes.
pub fn spawn(
    program: &Path,
    args: &[OsString],
    env: &[(OsString, OsString)],
    cwd: &Path,
    limits: Limits,
) -> io::Result<CgiChild> {
    let mut cmd = Command::new(program);
    cmd.args(args)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .current_dir(cwd)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    // SAFETY: the closure runs in the child between fork and exec and
    // only calls setrlimit(2), sigprocmask(2), close_range(2) and
    // fcntl(2), which are async-signal-safe; it allocates nothing and
    // touches no locks.
    unsafe {
        cmd.pre_exec(move || {
            for (resource, value) in [
                (libc::RLIMIT_CPU, limits.cpu_secs),
                (libc::RLIMIT_AS, limits.address_space),
                (libc::RLIMIT_NOFILE, limits.open_files),
            ] {
                if let Some(v) = value {
                    let lim = libc::rlimit { rlim_cur: v as libc::rlim_t, rlim_max: v as libc::rlim_t };
                    if libc::setrlimit(resource, &lim) != 0 {
                        return Err(io::Error::last_os_error());
                    }
                }
            }
            // A server that blocks SIGTERM to take it in a thread of its
            // own must not hand that mask on: the program could not be
            // ended with SIGTERM then.
            let mut none: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut none);
            if libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut()) != 0 {
                return Err(io::Error::last_os_error());
            }
            // Descriptors the server inherited without close-on-exec (from
            // whoever started it, or a socket activation meant for another
            // process) are not the program's: every one past stdio closes
            // at the exec. (Marked rather than closed: the pipe through
            // which a failed exec is reported must live until then.)
            if libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, CLOSE_RANGE_CLOEXEC) != 0 {
                // Kernels before 5.11: one by one, as far as is usual.
                for fd in 3..FALLBACK_FDS {
                    let flags = libc::fcntl(fd, libc::F_GETFD);
                    if flags >= 0 {
                        libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC);
                    }
                }
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn()?;
    let (Some(stdin), Some(stdout), Some(stderr)) = (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        let _ = child.kill();
        let _ = child.wait();
        return Err(io::Error::other("child pipes missing"));
    };
    for fd in [stdin.as_raw_fd(), stdout.as_raw_fd(), stderr.as_raw_fd()] {
        if let Err(e) = set_nonblocking(fd) {
            let _ = child.kill();
            let _ = child.wait();
            return Err(e);
        }
    }
    Ok(CgiChild { child, stdin: Some(stdin), stdout, stderr })
}

fn set_nonblocking(fd: i32) -> io::Result<()> {
    // SAFETY: fcntl on a descriptor we own, with integer arguments.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        if flags < 0 || libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::unix::fs::PermissionsExt;
    use std::time::{Duration, Instant};

    fn script(dir: &Path, name: &str, body: &str) -> std::path::PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).expect("write");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        p
    }

    /// Reads a non-blocking pipe to EOF, waiting up to 10 s.
    fn drain(r: &mut impl Read) -> Vec<u8> {
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match r.read(&mut buf) {
                Ok(0) => return out,
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    assert!(Instant::now() < deadline, "pipe never closed");
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(e) => panic!("{e}"),
            }
        }
    }

    #[test]
    fn runs_with_exactly_the_given_environment() {
        let t = tempfile::tempdir().expect("tempdir");
        let s = script(t.path(), "env.sh", "echo \"v=$MY_VAR home=$HOME pwd=$(pwd)\"; cat; echo oops >&2");
        let env = vec![("MY_VAR".into(), "42".into()), ("PATH".into(), "/usr/bin:/bin".into())];
        let mut c = spawn(&s, &[], &env, t.path(), Limits::default()).expect("spawn");
        let mut stdin = c.stdin.take().expect("stdin");
        stdin.write_all(b"body bytes").expect("write");
        drop(stdin);
        let out = String::from_utf8_lossy(&drain(&mut c.stdout)).into_owned();
        let canon = t.path().canonicalize().expect("canon");
        assert_eq!(out, format!("v=42 home= pwd={}\nbody bytes", canon.display()));
        assert_eq!(drain(&mut c.stderr), b"oops\n");
        assert!(c.child.wait().expect("wait").success());
    }

    #[test]
    fn the_whole_group_is_signalled() {
        let t = tempfile::tempdir().expect("tempdir");
        let s = script(t.path(), "tree.sh", "sleep 60 & echo $!; sleep 60");
        let mut c =
            spawn(&s, &[], &[("PATH".into(), "/usr/bin:/bin".into())], t.path(), Limits::default()).expect("spawn");
        // The background sleep's pid, from the first line of stdout.
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut line = Vec::new();
        let mut b = [0u8; 1];
        while !line.ends_with(b"\n") {
            match c.stdout.read(&mut b) {
                Ok(1) => line.push(b[0]),
                _ => {
                    assert!(Instant::now() < deadline, "no pid");
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
        }
        let grandchild: i32 = String::from_utf8_lossy(&line).trim().parse().expect("pid");
        c.signal_group(libc::SIGKILL).expect("kill group");
        let status = c.child.wait().expect("reap");
        assert!(!status.success());
        // SAFETY: kill with signal 0 only checks for existence.
        let deadline = Instant::now() + Duration::from_secs(5);
        while unsafe { libc::kill(grandchild, 0) } == 0 {
            assert!(Instant::now() < deadline, "grandchild {grandchild} survived");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn limits_apply() {
        let t = tempfile::tempdir().expect("tempdir");
        let s = script(t.path(), "lim.sh", "ulimit -n; ulimit -t");
        let limits = Limits { cpu_secs: Some(7), open_files: Some(33), address_space: None };
        let mut c = spawn(&s, &[], &[("PATH".into(), "/usr/bin:/bin".into())], t.path(), limits).expect("spawn");
        assert_eq!(String::from_utf8_lossy(&drain(&mut c.stdout)), "33\n7\n");
        assert!(c.child.wait().expect("wait").success());
        assert!(spawn(&t.path().join("missing"), &[], &[], t.path(), Limits::default()).is_err());
    }
}
