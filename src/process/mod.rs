//! Running as a system service: what a server process does around its
//! [`Context`](crate::Context)s, for the `warren` binary and for an
//! embedder alike. Nothing here is done by the library on its own.
//!
//! - [`Privileges`] / [`Identity`]: bind as root, then become an
//!   unprivileged user ([`drop_privileges`]), keeping only the
//!   [`Capability`]s asked for.
//! - [`daemonize`]: the classic background daemon (fork, `setsid`,
//!   `chdir("/")`, stdio on `/dev/null`), whose starting process waits
//!   until the daemon serves or says why it cannot.
//! - [`PidFile`]: the daemon's pid, in a file locked for the process's
//!   life, so a second instance is refused.
//! - [`Notifier`]: systemd's readiness protocol (`sd_notify`).
//! - [`listen_fds`]: systemd socket activation (`LISTEN_FDS`).
//!
//! Linux only (capabilities and the systemd protocols are Linux's).

use std::ffi::{CStr, CString};
use std::fmt;
use std::fs::File;
use std::io::{self, Read, Write};
use std::net::TcpListener;
use std::os::fd::{AsRawFd, FromRawFd, RawFd};
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};

fn other(message: String) -> io::Error {
    io::Error::other(message)
}

/// The system's last error, after `what`.
fn last(what: &str) -> io::Error {
    let e = io::Error::last_os_error();
    io::Error::new(e.kind(), format!("{what}: {e}"))
}

mod daemon;
mod privileges;
mod systemd;

pub use daemon::{daemonize, Daemon, Daemonized, PidFile};
pub use privileges::{drop_privileges, hand_over, parse_capabilities, Account, Capability, Identity, Privileges};
pub use systemd::{listen_fds, monotonic_usec, Notifier};

/// Opens a log file to append (creating it), without waiting for a FIFO's
/// reader: a FIFO nobody reads is an error (`ENXIO`, said in words) rather
/// than an open that hangs the thread (at start, the whole process) until
/// one comes. The file is then blocking as usual: its writes belong on a
/// thread of their own. What the access logs and `--log-file` use. The
/// error's message begins with the path.
///
/// # Errors
///
/// What the open says, or that the FIFO has no reader.
pub fn open_log(path: &std::path::Path) -> io::Result<std::fs::File> {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::OpenOptionsExt;
    let named = |e: io::Error| {
        let why =
            if e.raw_os_error() == Some(libc::ENXIO) { "a FIFO with no reader".to_string() } else { e.to_string() };
        io::Error::new(e.kind(), format!("{}: {why}", path.display()))
    };
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(named)?;
    let fd = file.as_raw_fd();
    // SAFETY: fcntl on the file's own descriptor, reading then setting its
    // status flags.
    let cleared = unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        flags >= 0 && libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK) >= 0
    };
    if !cleared {
        return Err(named(io::Error::last_os_error()));
    }
    Ok(file)
}
