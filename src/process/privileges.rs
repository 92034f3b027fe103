//! Bind as root, then become an unprivileged user, keeping only the
//! capabilities asked for.

use super::*;

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
