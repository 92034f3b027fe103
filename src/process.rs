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

/// A user or a group, by name or by number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Account {
    /// A uid or gid.
    Id(u32),
    /// A user or group name.
    Name(String),
}

impl Account {
    /// All digits: a number; anything else: a name.
    pub fn parse(s: &str) -> Account {
        match s.parse::<u32>() {
            Ok(id) if s.bytes().all(|b| b.is_ascii_digit()) => Account::Id(id),
            _ => Account::Name(s.to_string()),
        }
    }
}

impl fmt::Display for Account {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Account::Id(id) => write!(f, "{id}"),
            Account::Name(n) => write!(f, "{n:?}"),
        }
    }
}

/// A Linux capability (capabilities(7)), by its number in
/// `linux/capability.h`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Capability(u8);

/// The capabilities' names, as `linux/capability.h` numbers them
/// (without the `CAP_` prefix).
const CAPABILITIES: &[&str] = &[
    "chown",
    "dac_override",
    "dac_read_search",
    "fowner",
    "fsetid",
    "kill",
    "setgid",
    "setuid",
    "setpcap",
    "linux_immutable",
    "net_bind_service",
    "net_broadcast",
    "net_admin",
    "net_raw",
    "ipc_lock",
    "ipc_owner",
    "sys_module",
    "sys_rawio",
    "sys_chroot",
    "sys_ptrace",
    "sys_pacct",
    "sys_admin",
    "sys_boot",
    "sys_nice",
    "sys_resource",
    "sys_time",
    "sys_tty_config",
    "mknod",
    "lease",
    "audit_write",
    "audit_control",
    "setfcap",
    "mac_override",
    "mac_admin",
    "syslog",
    "wake_alarm",
    "block_suspend",
    "audit_read",
    "perfmon",
    "bpf",
    "checkpoint_restore",
];

impl Capability {
    /// `CAP_NET_BIND_SERVICE`: binding ports below 1024.
    pub const NET_BIND_SERVICE: Capability = Capability(10);
    /// `CAP_NET_RAW`: raw sockets, `SO_BINDTODEVICE`.
    pub const NET_RAW: Capability = Capability(13);

    /// Its number (`CAP_NET_BIND_SERVICE` is 10).
    pub fn number(self) -> u8 {
        self.0
    }

    /// Its name, lower case, without `cap_`.
    pub fn name(self) -> &'static str {
        CAPABILITIES.get(usize::from(self.0)).copied().unwrap_or("?")
    }

    fn mask(list: &[Capability]) -> u64 {
        list.iter().fold(0, |m, c| m | 1 << c.0)
    }
}

impl std::str::FromStr for Capability {
    type Err = String;

    /// `net_bind_service`, `CAP_NET_BIND_SERVICE` and `cap_net_bind_service`
    /// are the same.
    fn from_str(s: &str) -> Result<Capability, String> {
        let lower = s.trim().to_ascii_lowercase();
        let name = lower.strip_prefix("cap_").unwrap_or(&lower);
        match CAPABILITIES.iter().position(|c| *c == name) {
            Some(n) => Ok(Capability(n as u8)),
            None => Err(format!("{s:?} is not a capability (e.g. net_bind_service, net_raw; see capabilities(7))")),
        }
    }
}

/// Parses a comma-separated list of capabilities (`net_bind_service,net_raw`).
pub fn parse_capabilities(list: &str) -> Result<Vec<Capability>, String> {
    list.split(',').filter(|s| !s.trim().is_empty()).map(str::parse).collect()
}

/// Whom to become once the listening sockets are bound: what the
/// configuration's `uid`/`gid`/`username`/`groupname` and
/// `keep-capabilities` keys, or `--user`, `--group` and `--keep-cap`, ask.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Privileges {
    /// The user to become: its uid, and its supplementary groups.
    pub user: Option<Account>,
    /// The group to become; without one, the user's own.
    pub group: Option<Account>,
    /// Capabilities to keep (needs a `user`); all the others go.
    pub keep: Vec<Capability>,
}

impl Privileges {
    /// Nothing asked.
    pub fn is_empty(&self) -> bool {
        self.user.is_none() && self.group.is_none() && self.keep.is_empty()
    }
}

/// [`Privileges`] looked up: the numbers to switch to. Look them up
/// early (a name that does not exist is an error before anything is
/// bound); [`assume`](Identity::assume) them once bound.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    user: Option<(CString, u32)>,
    gid: u32,
    keep: Vec<Capability>,
}

impl Identity {
    /// Looks `p` up in the user and group databases. `None`: nothing is
    /// asked.
    ///
    /// # Errors
    ///
    /// A user or group that does not exist (the message names it), or
    /// capabilities to keep without a user to become.
    pub fn resolve(p: &Privileges) -> io::Result<Option<Identity>> {
        if p.user.is_none() && p.group.is_none() {
            if !p.keep.is_empty() {
                return Err(other("keeping capabilities means dropping the others: a user to become is needed".into()));
            }
            return Ok(None);
        }
        let user = match &p.user {
            Some(a) => Some(lookup_user(a)?.ok_or_else(|| other(format!("user {a}: no such user")))?),
            None if !p.keep.is_empty() => {
                return Err(other("keeping capabilities means dropping the others: a user to become is needed".into()))
            }
            None => None,
        };
        let gid = match (&p.group, &user) {
            (Some(a), _) => lookup_group(a)?.ok_or_else(|| other(format!("group {a}: no such group")))?,
            (None, Some((_, _, gid))) => *gid,
            // SAFETY: getegid cannot fail.
            (None, None) => unsafe { libc::getegid() },
        };
        Ok(Some(Identity { user: user.map(|(name, uid, _)| (name, uid)), gid, keep: p.keep.clone() }))
    }

    /// The uid it switches to, if it switches user.
    pub fn uid(&self) -> Option<u32> {
        self.user.as_ref().map(|(_, uid)| *uid)
    }

    /// The gid it switches to.
    pub fn gid(&self) -> u32 {
        self.gid
    }

    /// Becomes this identity: the user's supplementary groups (or none
    /// without a user), the gid, then the uid, keeping only the
    /// capabilities asked for; then checks that the way back is closed
    /// (`setuid(0)` fails, no capability left but those kept).
    ///
    /// Without root, becoming who the process is already does nothing;
    /// anyone else is an error.
    ///
    /// Call it before starting threads that should keep capabilities:
    /// the kept set is this thread's (threads started after inherit it);
    /// threads running already change uid and gid with it (glibc's
    /// wrappers see to all of them) and lose every capability.
    ///
    /// # Errors
    ///
    /// A switch that failed or did not hold: the process must not go on
    /// serving, since it was asked not to as root.
    pub fn assume(&self) -> io::Result<()> {
        // SAFETY: these getters cannot fail.
        let (uid, euid, gid, egid) = unsafe { (libc::getuid(), libc::geteuid(), libc::getgid(), libc::getegid()) };
        let to_uid = self.uid().unwrap_or(euid);
        if euid != 0 {
            if to_uid == uid && to_uid == euid && self.gid == gid && self.gid == egid {
                return Ok(());
            }
            return Err(other(format!("cannot become {}: warren runs as uid {euid}, not root", self.describe())));
        }
        // SAFETY: plain syscalls; the name is NUL-terminated; setgroups
        // reads no list when given 0.
        unsafe {
            match &self.user {
                Some((name, _)) => {
                    if libc::initgroups(name.as_ptr(), self.gid) != 0 {
                        return Err(last("initgroups"));
                    }
                }
                None => {
                    if libc::setgroups(0, std::ptr::null()) != 0 {
                        return Err(last("setgroups"));
                    }
                }
            }
            if libc::setgid(self.gid) != 0 {
                return Err(last(&format!("setgid({})", self.gid)));
            }
        }
        if let Some(to_uid) = self.uid() {
            let keep = Capability::mask(&self.keep);
            if keep != 0 && to_uid != 0 {
                // SAFETY: prctl with integer arguments.
                if unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0) } != 0 {
                    return Err(last("prctl(PR_SET_KEEPCAPS)"));
                }
            }
            // SAFETY: plain syscall.
            if unsafe { libc::setuid(to_uid) } != 0 {
                return Err(last(&format!("setuid({to_uid})")));
            }
            if to_uid != 0 {
                set_capabilities(keep)?;
                // SAFETY: prctl with integer arguments. The ambient set
                // would give capabilities to CGI programs; an old kernel
                // without one refuses with EINVAL, and has none to clear.
                unsafe {
                    libc::prctl(libc::PR_SET_KEEPCAPS, 0, 0, 0, 0);
                    libc::prctl(libc::PR_CAP_AMBIENT, libc::PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
                }
            }
        }
        self.verify()
    }

    /// The switch holds and cannot be undone.
    fn verify(&self) -> io::Result<()> {
        let (mut r, mut e, mut s) = (0, 0, 0);
        // SAFETY: getresuid/getresgid write three ids.
        unsafe { libc::getresgid(&mut r, &mut e, &mut s) };
        if [r, e, s] != [self.gid; 3] {
            return Err(other(format!("the group ids are {r}/{e}/{s} after switching to {}", self.gid)));
        }
        let Some(uid) = self.uid() else { return Ok(()) };
        // SAFETY: as above.
        unsafe { libc::getresuid(&mut r, &mut e, &mut s) };
        if [r, e, s] != [uid; 3] {
            return Err(other(format!("the user ids are {r}/{e}/{s} after switching to {uid}")));
        }
        if uid == 0 {
            return Ok(());
        }
        // SAFETY: plain syscalls; success here is the failure checked for.
        if unsafe { libc::setuid(0) } == 0 || (self.gid != 0 && unsafe { libc::setgid(0) } == 0) {
            return Err(other("root could be regained after the switch".into()));
        }
        let keep = Capability::mask(&self.keep);
        let (effective, permitted) = capabilities()?;
        if effective != keep || permitted != keep {
            return Err(other(format!(
                "capabilities left after the switch: effective {effective:#x}, permitted {permitted:#x} (asked {keep:#x})"
            )));
        }
        Ok(())
    }

    fn describe(&self) -> String {
        match &self.user {
            Some((name, uid)) => format!("user {} (uid {uid}, gid {})", name.to_string_lossy(), self.gid),
            None => format!("group {}", self.gid),
        }
    }
}

/// [`Identity::resolve`] then [`Identity::assume`]: for an embedder that
/// binds its contexts first. Does nothing when nothing is asked.
///
/// # Errors
///
/// As those two: the process should then exit rather than serve.
pub fn drop_privileges(p: &Privileges) -> io::Result<()> {
    match Identity::resolve(p)? {
        Some(identity) => identity.assume(),
        None => Ok(()),
    }
}

/// `capset(2)`/`capget(2)`'s header and data, as `linux/capability.h`
/// lays them out for `_LINUX_CAPABILITY_VERSION_3`: the header is the
/// version and a pid (0: this thread); the data is two structs of three
/// 32-bit masks (effective, permitted, inheritable), capabilities 0 to
/// 31 in the first, 32 to 63 in the second.
#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

/// Sets this thread's effective and permitted sets to `mask`, the
/// inheritable set to none.
fn set_capabilities(mask: u64) -> io::Result<()> {
    let mut header = CapHeader { version: LINUX_CAPABILITY_VERSION_3, pid: 0 };
    let (low, high) = (mask as u32, (mask >> 32) as u32);
    let data = [
        CapData { effective: low, permitted: low, inheritable: 0 },
        CapData { effective: high, permitted: high, inheritable: 0 },
    ];
    // SAFETY: the header and the two data structs are laid out as the
    // kernel reads them for version 3.
    if unsafe { libc::syscall(libc::SYS_capset, &mut header, data.as_ptr()) } != 0 {
        return Err(last("capset"));
    }
    Ok(())
}

/// This thread's effective and permitted sets.
fn capabilities() -> io::Result<(u64, u64)> {
    let mut header = CapHeader { version: LINUX_CAPABILITY_VERSION_3, pid: 0 };
    let mut data = [CapData::default(); 2];
    // SAFETY: as in set_capabilities; the kernel writes the two structs.
    if unsafe { libc::syscall(libc::SYS_capget, &mut header, data.as_mut_ptr()) } != 0 {
        return Err(last("capget"));
    }
    let join = |f: fn(&CapData) -> u32| u64::from(f(&data[0])) | u64::from(f(&data[1])) << 32;
    Ok((join(|d| d.effective), join(|d| d.permitted)))
}

/// Runs `call` with a buffer for a `get*_r` function, growing it on
/// ERANGE; the errors that mean "no such entry" are `Ok(false)`.
fn with_buffer(mut call: impl FnMut(&mut [u8]) -> (libc::c_int, bool)) -> io::Result<bool> {
    let mut buf = vec![0u8; 4096];
    loop {
        let (rc, found) = call(&mut buf);
        match rc {
            0 => return Ok(found),
            libc::ERANGE if buf.len() < 1 << 20 => buf.resize(buf.len() * 2, 0),
            libc::ENOENT | libc::ESRCH | libc::EBADF | libc::EPERM => return Ok(false),
            e => return Err(io::Error::from_raw_os_error(e)),
        }
    }
}

fn c_name(what: &str, name: &str) -> io::Result<CString> {
    CString::new(name).map_err(|_| other(format!("{what} {name:?}: a name cannot hold a NUL byte")))
}

/// The user's name, uid and primary gid.
fn lookup_user(a: &Account) -> io::Result<Option<(CString, u32, u32)>> {
    let mut found = None;
    let name = match a {
        Account::Name(n) => Some(c_name("user", n)?),
        Account::Id(_) => None,
    };
    with_buffer(|buf| {
        // SAFETY: passwd is plain data the call fills, its strings
        // pointing into `buf`, which outlives their use below.
        unsafe {
            let mut pw: libc::passwd = std::mem::zeroed();
            let mut out: *mut libc::passwd = std::ptr::null_mut();
            let rc = match (&name, a) {
                (Some(n), _) => libc::getpwnam_r(n.as_ptr(), &mut pw, buf.as_mut_ptr().cast(), buf.len(), &mut out),
                (None, Account::Id(id)) => libc::getpwuid_r(*id, &mut pw, buf.as_mut_ptr().cast(), buf.len(), &mut out),
                (None, Account::Name(_)) => return (libc::ENOENT, false),
            };
            if rc == 0 && !out.is_null() {
                found = Some((CStr::from_ptr(pw.pw_name).to_owned(), pw.pw_uid, pw.pw_gid));
            }
            (rc, !out.is_null())
        }
    })
    .map_err(|e| other(format!("user {a}: {e}")))?;
    Ok(found)
}

/// The group's gid.
fn lookup_group(a: &Account) -> io::Result<Option<u32>> {
    let mut found = None;
    let name = match a {
        Account::Name(n) => Some(c_name("group", n)?),
        Account::Id(_) => None,
    };
    with_buffer(|buf| {
        // SAFETY: as in lookup_user.
        unsafe {
            let mut gr: libc::group = std::mem::zeroed();
            let mut out: *mut libc::group = std::ptr::null_mut();
            let rc = match (&name, a) {
                (Some(n), _) => libc::getgrnam_r(n.as_ptr(), &mut gr, buf.as_mut_ptr().cast(), buf.len(), &mut out),
                (None, Account::Id(id)) => libc::getgrgid_r(*id, &mut gr, buf.as_mut_ptr().cast(), buf.len(), &mut out),
                (None, Account::Name(_)) => return (libc::ENOENT, false),
            };
            if rc == 0 && !out.is_null() {
                found = Some(gr.gr_gid);
            }
            (rc, !out.is_null())
        }
    })
    .map_err(|e| other(format!("group {a}: {e}")))?;
    Ok(found)
}

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

/// Gives the log file at `path` to the user and group of `identity`, so
/// that once the process has become them it can still reopen it by path
/// (SIGUSR1 after logrotate moved it, a reload). Only a regular file
/// that is not a symbolic link is changed, and only by root: nothing to
/// do otherwise.
///
/// # Errors
///
/// The change of owner failed (the message names the path).
pub fn hand_over(path: &std::path::Path, identity: &Identity) -> io::Result<()> {
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Ok(());
    }
    let Ok(meta) = std::fs::symlink_metadata(path) else { return Ok(()) };
    if !meta.file_type().is_file() {
        return Ok(());
    }
    let uid = identity.user.as_ref().map(|(_, uid)| *uid);
    std::os::unix::fs::lchown(path, uid, Some(identity.gid)).map_err(|e| {
        io::Error::new(e.kind(), format!("log file {}: cannot give it to the user to be: {e}", path.display()))
    })
}
