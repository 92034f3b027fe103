//! systemd's readiness protocol and socket activation.

use super::*;

/// systemd's notification socket (`$NOTIFY_SOCKET`, sd_notify(3)): tells
/// the service manager when the service is ready, reloading, stopping.
#[derive(Debug)]
pub struct Notifier {
    socket: UnixDatagram,
}

impl Notifier {
    /// The socket `$NOTIFY_SOCKET` names (a path, or an abstract name
    /// written with a leading `@`), connected now so that it still works
    /// after a privilege drop; `None` when it is unset. The variable is
    /// removed from the environment, so that CGI programs do not see it:
    /// call this before threads start (as any change to the environment).
    ///
    /// # Errors
    ///
    /// The socket cannot be reached.
    pub fn from_env() -> io::Result<Option<Notifier>> {
        let Some(name) = std::env::var_os("NOTIFY_SOCKET") else { return Ok(None) };
        std::env::remove_var("NOTIFY_SOCKET");
        let socket = UnixDatagram::unbound()?;
        let bytes = name.as_encoded_bytes();
        let named = |e: io::Error| io::Error::new(e.kind(), format!("NOTIFY_SOCKET {}: {e}", name.to_string_lossy()));
        match bytes.strip_prefix(b"@") {
            Some(abstract_name) => {
                use std::os::linux::net::SocketAddrExt;
                let addr = std::os::unix::net::SocketAddr::from_abstract_name(abstract_name).map_err(named)?;
                socket.connect_addr(&addr).map_err(named)?;
            }
            None => socket.connect(Path::new(&name)).map_err(named)?,
        }
        socket.set_nonblocking(true)?;
        Ok(Some(Notifier { socket }))
    }

    /// Sends `state`: newline-separated `KEY=value` assignments
    /// (`READY=1`, `STATUS=...`). It does not wait: a manager too busy to
    /// take it loses it.
    ///
    /// # Errors
    ///
    /// The send failed.
    pub fn notify(&self, state: &str) -> io::Result<()> {
        self.socket.send(state.as_bytes()).map(|_| ())
    }
}

/// `CLOCK_MONOTONIC` now, in microseconds: what `MONOTONIC_USEC=` with
/// `RELOADING=1` carries.
pub fn monotonic_usec() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes the timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64) * 1_000_000 + (ts.tv_nsec as u64) / 1000
}

/// The first descriptor systemd passes (`SD_LISTEN_FDS_START`).
const LISTEN_FDS_START: RawFd = 3;

/// The listening sockets systemd passed (socket activation,
/// sd_listen_fds(3)): when `$LISTEN_PID` is this process, descriptors 3
/// to 3 + `$LISTEN_FDS` - 1, each checked to be a listening TCP socket
/// and made close-on-exec (CGI programs do not inherit them). Hand them
/// to the first context with [`ContextInfo::listener`](crate::ContextInfo::listener).
/// `LISTEN_PID`, `LISTEN_FDS` and `LISTEN_FDNAMES` are removed from the
/// environment: call this first thing, before threads start and before
/// anything opens a descriptor.
///
/// # Errors
///
/// A descriptor that is not a listening TCP socket (the message names
/// it), or a `LISTEN_FDS` that is not a number.
pub fn listen_fds() -> io::Result<Vec<TcpListener>> {
    let pid = std::env::var("LISTEN_PID").ok();
    let fds = std::env::var("LISTEN_FDS").ok();
    for var in ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"] {
        std::env::remove_var(var);
    }
    let (Some(pid), Some(fds)) = (pid, fds) else { return Ok(Vec::new()) };
    if pid.trim().parse::<u32>().ok() != Some(std::process::id()) {
        return Ok(Vec::new());
    }
    let n: RawFd = fds
        .trim()
        .parse()
        .ok()
        .filter(|n| (0..=1024).contains(n))
        .ok_or_else(|| other(format!("LISTEN_FDS={fds:?} is not a number of descriptors")))?;
    (LISTEN_FDS_START..LISTEN_FDS_START + n).map(listening_tcp).collect()
}

/// Descriptor `fd`, checked to be a listening TCP socket, close-on-exec.
fn listening_tcp(fd: RawFd) -> io::Result<TcpListener> {
    let named = |what: &str| {
        let e = io::Error::last_os_error();
        io::Error::new(e.kind(), format!("socket activation: descriptor {fd}: {what}: {e}"))
    };
    let refuse =
        |why: &str| other(format!("socket activation: descriptor {fd} {why}; warren serves TCP listening sockets"));
    let int_opt = |opt| {
        let mut v: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: getsockopt writes an int.
        let rc = unsafe { libc::getsockopt(fd, libc::SOL_SOCKET, opt, (&mut v as *mut libc::c_int).cast(), &mut len) };
        if rc == 0 {
            Ok(v)
        } else if io::Error::last_os_error().raw_os_error() == Some(libc::ENOTSOCK) {
            Err(refuse("is not a socket"))
        } else {
            Err(named("getsockopt"))
        }
    };
    let kind = int_opt(libc::SO_TYPE)?;
    if kind != libc::SOCK_STREAM {
        return Err(refuse("is not a stream socket"));
    }
    // SAFETY: sockaddr_storage is plain data; getsockname fills it.
    let family = unsafe {
        let mut addr: libc::sockaddr_storage = std::mem::zeroed();
        let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        if libc::getsockname(fd, (&mut addr as *mut libc::sockaddr_storage).cast(), &mut len) != 0 {
            return Err(named("getsockname"));
        }
        libc::c_int::from(addr.ss_family)
    };
    if family != libc::AF_INET && family != libc::AF_INET6 {
        return Err(refuse(if family == libc::AF_UNIX { "is a Unix socket" } else { "is not an IP socket" }));
    }
    if int_opt(libc::SO_ACCEPTCONN)? == 0 {
        return Err(refuse("is not listening"));
    }
    // SAFETY: fcntl on a descriptor checked to be open.
    if unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) } != 0 {
        return Err(named("FD_CLOEXEC"));
    }
    // SAFETY: systemd passed it to this process, for it alone; it is
    // taken once (the variables are gone from the environment).
    Ok(unsafe { TcpListener::from_raw_fd(fd) })
}
