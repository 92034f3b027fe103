//! A server's own end of a TCP connection, looked at from outside: found
//! through `/proc/net/tcp{,6}` and the server's `/proc/PID/fd`, and
//! duplicated into the test (`pidfd_getfd`) to read its options.

use std::os::fd::{FromRawFd, OwnedFd};
use std::time::Duration;

/// The socket inode of the connection from `local_port` (the server's)
/// to `remote_port` (the test client's), on 127.0.0.1 or ::1.
fn inode(local_port: u16, remote_port: u16) -> Option<u64> {
    ["/proc/net/tcp", "/proc/net/tcp6"].iter().find_map(|table| {
        let text = std::fs::read_to_string(table).ok()?;
        text.lines().skip(1).find_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let port = |addr: &str| addr.rsplit(':').next().and_then(|p| u16::from_str_radix(p, 16).ok());
            (f.len() > 9 && port(f[1]) == Some(local_port) && port(f[2]) == Some(remote_port))
                .then(|| f[9].parse().ok())
                .flatten()
        })
    })
}

/// A duplicate of process `pid`'s end of the connection between its port
/// `local_port` and the test's `remote_port`.
pub fn server_end(pid: u32, local_port: u16, remote_port: u16) -> OwnedFd {
    let inode = inode(local_port, remote_port).expect("the connection in /proc/net/tcp");
    let link = format!("socket:[{inode}]");
    let fd: i32 = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("fd dir")
        .filter_map(Result::ok)
        .find(|e| std::fs::read_link(e.path()).is_ok_and(|l| l.to_string_lossy() == link))
        .and_then(|e| e.file_name().to_str()?.parse().ok())
        .expect("the socket among the server's descriptors");
    let pid = libc::pid_t::try_from(pid).expect("pid");
    // SAFETY: plain system calls; each result is checked, and the
    // descriptor pidfd_getfd returns is new and ours alone.
    unsafe {
        let pidfd = libc::syscall(libc::SYS_pidfd_open, pid, 0);
        assert!(pidfd >= 0, "pidfd_open: {}", std::io::Error::last_os_error());
        let pidfd = OwnedFd::from_raw_fd(i32::try_from(pidfd).expect("fd"));
        let got = libc::syscall(libc::SYS_pidfd_getfd, std::os::fd::AsRawFd::as_raw_fd(&pidfd), fd, 0);
        assert!(got >= 0, "pidfd_getfd: {}", std::io::Error::last_os_error());
        OwnedFd::from_raw_fd(i32::try_from(got).expect("fd"))
    }
}

/// The TCP keepalive of a socket: None when off, else (idle time,
/// probes, interval).
pub fn keepalive(fd: &OwnedFd) -> Option<(Duration, u32, Duration)> {
    let s = socket2::SockRef::from(fd);
    s.keepalive().expect("SO_KEEPALIVE").then(|| {
        (
            s.tcp_keepalive_time().expect("TCP_KEEPIDLE"),
            s.tcp_keepalive_retries().expect("TCP_KEEPCNT"),
            s.tcp_keepalive_interval().expect("TCP_KEEPINTVL"),
        )
    })
}
