//! Running warren as a service (issue 14 items 4 and 5): the privilege
//! drop (CFG-6 `uid`/`gid`/`username`/`groupname`, `--user`, `--group`,
//! `--keep-cap`) seen in /proc/PID/status, systemd's readiness protocol
//! and socket activation, and the classic daemon with its pid file.
//!
//! The privilege tests need root (CI runs as root): each makes a
//! throwaway system user and removes it when done, also on failure.

mod support;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;
use std::time::Duration;
use support::*;

fn is_root() -> bool {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// useradd and userdel lock /etc/passwd: one at a time here.
static ACCOUNTS: Mutex<()> = Mutex::new(());

/// A system user made for one test, removed (with its group) on drop.
struct ThrowawayUser {
    name: String,
    uid: u32,
    gid: u32,
}

impl ThrowawayUser {
    fn new() -> ThrowawayUser {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos());
        let name = format!("warren-t-{}-{}", std::process::id() % 100_000, nanos.unwrap_or(0) % 1_000_000);
        let _one = ACCOUNTS.lock().unwrap_or_else(|e| e.into_inner());
        let status = Command::new("useradd")
            .args(["--system", "--no-create-home", "--shell", "/usr/sbin/nologin", &name])
            .status()
            .expect("run useradd");
        assert!(status.success(), "useradd {name}: {status}");
        // From here on, the user goes away on drop, even if this fails.
        let mut user = ThrowawayUser { name, uid: 0, gid: 0 };
        let id = |flag: &str| -> u32 {
            let out = Command::new("id").args([flag, &user.name]).output().expect("run id");
            String::from_utf8_lossy(&out.stdout).trim().parse().expect("a number from id")
        };
        user.uid = id("-u");
        user.gid = id("-g");
        user
    }
}

impl Drop for ThrowawayUser {
    fn drop(&mut self) {
        let _one = ACCOUNTS.lock().unwrap_or_else(|e| e.into_inner());
        let _ = Command::new("userdel").arg(&self.name).status();
        // A group of the same name is removed with the user when it is
        // the user's own (USERGROUPS_ENAB); make sure.
        let _ = Command::new("groupdel").arg(&self.name).stderr(Stdio::null()).status();
    }
}

/// /proc/PID/status as key → value.
fn proc_status(pid: u32) -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc/PID/status");
    text.lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.to_string(), v.split_whitespace().collect::<Vec<_>>().join(" ")))
        .collect()
}

/// GET `path` on 127.0.0.1:`port`, connection closed after.
fn get_port(port: u16, path: &str) -> Response {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(20))).expect("timeout");
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes()).expect("send");
    Reader::new(s).response(false).expect("a response")
}

/// A directory only root can write, that any user can read and search,
/// holding `id.sh`: a CGI program printing its uid and gid.
fn world_readable_cgi(t: &tempfile::TempDir) -> PathBuf {
    std::fs::set_permissions(t.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let dir = t.path().join("cgi-bin");
    std::fs::create_dir(&dir).expect("mkdir");
    let script = dir.join("id.sh");
    std::fs::write(
        &script,
        "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\n'\necho \"uid=$(id -u) gid=$(id -g)\"\n",
    )
    .expect("write");
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    dir
}

fn signal(pid: u32, sig: libc::c_int) {
    // SAFETY: kill(2) on a child of this test.
    assert_eq!(unsafe { libc::kill(pid as libc::pid_t, sig) }, 0, "kill");
}

/// Writes a configuration directory: `global` as the global section,
/// one vhost serving `root` on 127.0.0.1:`port`.
fn config_dir(dir: &Path, global: &str, port: u16, root: &Path) {
    std::fs::create_dir_all(dir.join("conf.d")).expect("mkdir");
    std::fs::write(dir.join("conf"), format!("{{ \"global\": {{ {global} }} }}")).expect("write");
    std::fs::write(
        dir.join("conf.d/site"),
        format!(
            r#"{{ "vhosts": [ {{ "name": "localhost", "port": "{port}", "interface": "127.0.0.1",
                "mounts": [ {{ "mountpoint": "/", "origin": "file://{}" }} ] }} ] }}"#,
            root.display()
        ),
    )
    .expect("write");
}

#[test]
fn user_and_group_flags_drop_every_privilege_and_cgi_runs_as_the_user() {
    // CFG-6 (the flags' form): bound as root, serving as the user.
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let user = ThrowawayUser::new();
    let t = tempfile::tempdir().expect("tempdir");
    let cgi = world_readable_cgi(&t);
    let cgi_arg = format!("/cgi-bin={}", cgi.display());
    let (warren, port, _log) = start_warren_logged(&["--user", &user.name, "--group", &user.name, "--cgi", &cgi_arg]);
    let s = proc_status(warren.0.id());
    let (u, g) = (user.uid.to_string(), user.gid.to_string());
    assert_eq!(s["Uid"], format!("{u} {u} {u} {u}"), "real, effective, saved, fs uid");
    assert_eq!(s["Gid"], format!("{g} {g} {g} {g}"));
    assert!(s["Groups"].is_empty() || s["Groups"] == g, "supplementary groups: {:?}", s["Groups"]);
    assert_eq!(s["CapEff"], "0000000000000000");
    assert_eq!(s["CapPrm"], "0000000000000000");
    assert_eq!(s["CapAmb"], "0000000000000000");

    assert_eq!(get_port(port, "/").status, 200, "it serves");
    let r = get_port(port, "/cgi-bin/id.sh");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.text().trim(), format!("uid={u} gid={g}"), "the CGI program runs as the user too");
}

#[test]
fn keep_cap_keeps_exactly_net_bind_service() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let user = ThrowawayUser::new();
    let (warren, port, _log) = start_warren_logged(&["--user", &user.name, "--keep-cap", "net_bind_service"]);
    let s = proc_status(warren.0.id());
    assert_eq!(s["Uid"].split(' ').collect::<Vec<_>>(), [user.uid.to_string().as_str(); 4]);
    // CAP_NET_BIND_SERVICE is bit 10.
    assert_eq!(s["CapEff"], "0000000000000400");
    assert_eq!(s["CapPrm"], "0000000000000400");
    assert_eq!(s["CapInh"], "0000000000000000");
    assert_eq!(s["CapAmb"], "0000000000000000");
    assert_eq!(get_port(port, "/").status, 200);
}

#[test]
fn the_configuration_username_drops_privileges() {
    // CFG-6: "username" in the global section.
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let user = ThrowawayUser::new();
    let (t, root) = site();
    std::fs::set_permissions(t.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let cfg = t.path().join("cfg");
    config_dir(&cfg, &format!("\"username\": \"{}\"", user.name), 0, &root);
    let (warren, port, _log) = start_warren_logged(&["--config", cfg.to_str().expect("utf-8")]);
    let s = proc_status(warren.0.id());
    let (u, g) = (user.uid.to_string(), user.gid.to_string());
    assert_eq!(s["Uid"], format!("{u} {u} {u} {u}"));
    assert_eq!(s["Gid"], format!("{g} {g} {g} {g}"), "the user's own group");
    assert_eq!(s["CapEff"], "0000000000000000");
    assert_eq!(s["CapPrm"], "0000000000000000");
    assert_eq!(get_port(port, "/index.html").status, 200);
}

/// A uid that names no user here.
fn unused_uid() -> u32 {
    (61_000..65_000)
        .find(|uid| {
            // SAFETY: getpwuid reads the database; only the pointer's
            // nullness is used.
            unsafe { libc::getpwuid(*uid).is_null() }
        })
        .expect("a free uid")
}

fn run(args: &[&str]) -> Output {
    Command::new(BIN).args(args).stdin(Stdio::null()).output().expect("run warren")
}

#[test]
fn a_uid_naming_no_user_exits_2_naming_it() {
    // Issue 14, bad input: `uid` naming no user. (Looked up before
    // anything is bound, so no root is needed to see it.)
    let (t, root) = site();
    let cfg = t.path().join("cfg");
    let uid = unused_uid();
    config_dir(&cfg, &format!("\"uid\": \"{uid}\""), 0, &root);
    let out = run(&["--config", cfg.to_str().expect("utf-8")]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains(&format!("user {uid}: no such user")), "{err}");

    let out = run(&["--port", "0", "--user", "warren-no-such-user-here"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("\"warren-no-such-user-here\": no such user"), "{err}");

    // Both forms of one identity are refused rather than one ignored.
    config_dir(&cfg, "\"uid\": \"0\", \"username\": \"root\"", 0, &root);
    let out = run(&["--config", cfg.to_str().expect("utf-8")]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("global.uid") && err.contains("not both"), "{err}");
}

#[test]
fn without_root_another_identity_is_refused_and_ones_own_is_kept() {
    if !is_root() {
        eprintln!("skipped: needs root to start warren as the throwaway user");
        return;
    }
    let user = ThrowawayUser::new();
    let as_user = |args: &[&str]| {
        let mut cmd = Command::new(BIN);
        cmd.args(args).uid(user.uid).gid(user.gid).stdin(Stdio::null());
        cmd
    };
    // Read to the end of its log or to a line saying it serves (so that
    // a warren that wrongly serves fails the test rather than hang it).
    let mut child = as_user(&["--port", "0", "--user", "root", "--log-level", "info"])
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let stderr = child.stderr.take().expect("stderr");
    let mut refused = Running(child);
    let mut err = String::new();
    for line in BufReader::new(stderr).lines().map_while(Result::ok) {
        assert!(!line.contains(" serving "), "serves as the user though asked to be root: {line}");
        err.push_str(&line);
    }
    assert_eq!(refused.0.wait().expect("wait").code(), Some(2), "{err}");
    assert!(err.contains("cannot become user root") && err.contains("not root"), "{err}");

    // Its own identity: nothing to do, and it serves.
    let mut child = as_user(&["--port", "0", "--user", &user.name, "--log-level", "info"])
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let stderr = child.stderr.take().expect("stderr");
    let warren = Running(child);
    let mut lines = BufReader::new(stderr).lines().map_while(Result::ok);
    let port: u16 = lines
        .find_map(|l| l.split(" serving ").nth(1)?.split("127.0.0.1:").nth(1)?.split('/').next()?.parse().ok())
        .expect("a serving line");
    assert_eq!(get_port(port, "/").status, 200);
    drop(warren);
}

/// A datagram socket at a path in `t`, to play systemd's notify socket.
fn notify_socket(t: &tempfile::TempDir) -> (UnixDatagram, PathBuf) {
    let path = t.path().join("notify");
    let sock = UnixDatagram::bind(&path).expect("bind the notify socket");
    sock.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
    (sock, path)
}

/// The next notification, as its lines.
fn next_notification(sock: &UnixDatagram) -> Vec<String> {
    let mut buf = [0u8; 4096];
    let n = sock.recv(&mut buf).expect("a notification");
    String::from_utf8_lossy(&buf[..n]).lines().map(str::to_string).collect()
}

fn monotonic_usec() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes the timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000 + ts.tv_nsec as u64 / 1000
}

#[test]
fn systemd_hears_ready_reloading_and_stopping() {
    let t = tempfile::tempdir().expect("tempdir");
    let (sock, path) = notify_socket(&t);
    let (_site, root) = site();
    let cfg = t.path().join("cfg");
    config_dir(&cfg, "\"server-string\": \"notify-test\"", 0, &root);
    let notify = path.to_str().expect("utf-8");
    let (warren, _port, log) =
        start_warren_with_env(&["--config", cfg.to_str().expect("utf-8")], &[("NOTIFY_SOCKET", notify)]);
    let pid = warren.0.id();
    let first = next_notification(&sock);
    assert!(first.contains(&"READY=1".to_string()), "{first:?}");

    // A reload: RELOADING=1 with the monotonic clock, then READY=1.
    let before = monotonic_usec();
    signal(pid, libc::SIGHUP);
    let reloading = next_notification(&sock);
    let after = monotonic_usec();
    assert!(reloading.contains(&"RELOADING=1".to_string()), "{reloading:?}");
    let usec: u64 = reloading
        .iter()
        .find_map(|l| l.strip_prefix("MONOTONIC_USEC="))
        .and_then(|v| v.parse().ok())
        .expect("MONOTONIC_USEC");
    assert!(before <= usec && usec <= after, "{before} <= {usec} <= {after}");
    let ready = next_notification(&sock);
    assert!(ready.contains(&"READY=1".to_string()), "{ready:?}");
    // The new configuration's port 0 is a new port: the one it logs.
    let port: u16 = log
        .iter()
        .find_map(|l| l.split("reloaded: serving").nth(1)?.split("127.0.0.1:").nth(1)?.split(')').next()?.parse().ok())
        .expect("a reloaded line");
    assert_eq!(get_port(port, "/index.html").status, 200);

    // A reload that fails: READY=1 all the same, and a STATUS saying so.
    std::fs::write(cfg.join("conf"), "{ \"global\": { broken").expect("write");
    signal(pid, libc::SIGHUP);
    assert!(next_notification(&sock).contains(&"RELOADING=1".to_string()));
    let ready = next_notification(&sock);
    assert!(ready.contains(&"READY=1".to_string()), "{ready:?}");
    assert!(ready.iter().any(|l| l.starts_with("STATUS=reload failed")), "{ready:?}");
    assert_eq!(get_port(port, "/index.html").status, 200, "the configuration before still serves");

    signal(pid, libc::SIGTERM);
    let stopping = next_notification(&sock);
    assert!(stopping.contains(&"STOPPING=1".to_string()), "{stopping:?}");
}

#[test]
fn an_abstract_notify_socket_is_reached() {
    // sd_notify(3): a NOTIFY_SOCKET starting with '@' is in the abstract
    // namespace.
    use std::os::linux::net::SocketAddrExt;
    let name = format!("warren-test-notify-{}", std::process::id());
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).expect("name");
    let sock = UnixDatagram::bind_addr(&addr).expect("bind");
    sock.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
    let (_warren, _port, _log) = start_warren_with_env(&[], &[("NOTIFY_SOCKET", &format!("@{name}"))]);
    assert!(next_notification(&sock).contains(&"READY=1".to_string()));
}

/// `BIN args` run as systemd would with socket activation: `fd` becomes
/// descriptor 3, LISTEN_FDS=1, and LISTEN_PID the pid of the process
/// that runs warren (the shell's, which execs it).
fn activated(fd: RawFd, args: &[&str]) -> Command {
    let mut cmd = Command::new("sh");
    cmd.arg("-c").arg(r#"LISTEN_PID=$$ LISTEN_FDS=1 exec "$0" "$@""#).arg(BIN).args(args).stdin(Stdio::null());
    // SAFETY: dup2 and fcntl only, in the child before exec.
    unsafe {
        cmd.pre_exec(move || {
            let ok = if fd == 3 {
                // dup2 onto itself would leave close-on-exec set.
                libc::fcntl(3, libc::F_SETFD, 0) == 0
            } else {
                libc::dup2(fd, 3) == 3
            };
            if ok {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        });
    }
    cmd
}

/// Whether descriptor `fd` of `pid` is close-on-exec.
fn cloexec(pid: u32, fd: RawFd) -> bool {
    let info = std::fs::read_to_string(format!("/proc/{pid}/fdinfo/{fd}")).expect("fdinfo");
    let flags = info.lines().find_map(|l| l.strip_prefix("flags:")).expect("flags").trim();
    u32::from_str_radix(flags, 8).expect("octal") & libc::O_CLOEXEC as u32 != 0
}

#[test]
fn socket_activation_serves_on_the_passed_socket() {
    // Flags mode: the socket passed replaces --port's (a port the test
    // holds, which warren could not bind).
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let child = activated(listener.as_raw_fd(), &["--port", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let warren = Running(child);
    // The test's copy stays open: warren can only serve on the one passed.
    let r = get_port(port, "/");
    assert_eq!(r.status, 200);
    assert!(cloexec(warren.0.id(), 3), "CGI programs must not inherit the passed socket");

    // Configuration mode: the vhost on that address takes it.
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let (t, root) = site();
    let cfg = t.path().join("cfg");
    config_dir(&cfg, "\"server-string\": \"activated\"", port, &root);
    let child = activated(listener.as_raw_fd(), &["--config", cfg.to_str().expect("utf-8")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let _warren = Running(child);
    let r = get_port(port, "/index.html");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("server"), Some("activated"));
}

#[test]
fn socket_activation_refuses_a_socket_that_is_not_tcp() {
    let t = tempfile::tempdir().expect("tempdir");
    let unix = std::os::unix::net::UnixListener::bind(t.path().join("s")).expect("bind");
    let out = activated(unix.as_raw_fd(), &["--port", "0"]).output().expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("descriptor 3 is a Unix socket"), "{err}");
}

/// Kills the daemon named by a pid file when dropped, if still there.
struct DaemonGuard(u32);

impl Drop for DaemonGuard {
    fn drop(&mut self) {
        let cmdline = std::fs::read(format!("/proc/{}/cmdline", self.0)).unwrap_or_default();
        if String::from_utf8_lossy(&cmdline).contains("warren") {
            // SAFETY: kill(2) on the daemon this test started.
            unsafe { libc::kill(self.0 as libc::pid_t, libc::SIGKILL) };
        }
    }
}

fn read_pid(path: &Path) -> u32 {
    let text = std::fs::read_to_string(path).expect("read the pid file");
    assert!(text.ends_with('\n'), "{text:?}");
    text.trim().parse().expect("a pid")
}

#[test]
fn daemon_detaches_serves_holds_its_pid_file_and_removes_it_at_exit() {
    // Seed "dae": stdio on /dev/null, a pid file locked against a second
    // instance. The daemon serves on a socket passed as systemd would, so
    // that the test knows its port.
    let t = tempfile::tempdir().expect("tempdir");
    let pid_file = t.path().join("warren.pid");
    let pid_arg = pid_file.to_str().expect("utf-8");
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let out = activated(listener.as_raw_fd(), &["--daemon", "--pid-file", pid_arg]).output().expect("run");
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.stdout.is_empty() && out.stderr.is_empty(), "the daemon's output goes to /dev/null");
    let pid = read_pid(&pid_file);
    let _guard = DaemonGuard(pid);
    for fd in 0..3 {
        let target = std::fs::read_link(format!("/proc/{pid}/fd/{fd}")).expect("readlink");
        assert_eq!(target, Path::new("/dev/null"), "fd {fd}");
    }
    let cwd = std::fs::read_link(format!("/proc/{pid}/cwd")).expect("readlink cwd");
    assert_eq!(cwd, Path::new("/"));
    let s = proc_status(pid);
    // SAFETY: getsid reads.
    let (own_sid, its_sid) = unsafe { (libc::getsid(0), libc::getsid(pid as libc::pid_t)) };
    assert_ne!(own_sid, its_sid, "a session of its own");
    assert_ne!(s["PPid"], std::process::id().to_string());
    drop(listener);
    assert_eq!(get_port(port, "/").status, 200, "it serves");

    // A second one on the same pid file is refused, naming the first.
    let out = run(&["--daemon", "--port", "0", "--pid-file", pid_arg]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains(&format!("another warren (pid {pid}) holds {pid_arg}")), "{err}");
    assert_eq!(read_pid(&pid_file), pid, "the refused one left the file alone");

    signal(pid, libc::SIGTERM);
    let until = std::time::Instant::now() + Duration::from_secs(30);
    while pid_file.exists() {
        assert!(std::time::Instant::now() < until, "the pid file is still there 30 s after SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_pid_file_in_a_missing_directory_exits_2() {
    let t = tempfile::tempdir().expect("tempdir");
    let pid_file = t.path().join("no-such-dir/warren.pid");
    let pid_arg = pid_file.to_str().expect("utf-8");
    for daemon in [false, true] {
        let mut args = vec!["--port", "0", "--pid-file", pid_arg];
        if daemon {
            args.push("--daemon");
        }
        let out = run(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(err.contains(pid_arg) && err.contains("No such file or directory"), "{err}");
    }
}

#[test]
fn a_daemon_that_cannot_serve_says_why_and_exits_2() {
    // The port is taken: the daemon's bind error reaches the terminal
    // through the process that started it (as `warren --daemon --port
    // 80` run by a user would).
    let t = tempfile::tempdir().expect("tempdir");
    let pid_file = t.path().join("warren.pid");
    let held = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = held.local_addr().expect("addr").port().to_string();
    let out = run(&["--daemon", "--port", &port, "--pid-file", pid_file.to_str().expect("utf-8")]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains(&format!("cannot listen on 127.0.0.1:{port}")), "{err}");
    assert!(!pid_file.exists() || std::fs::read_to_string(&pid_file).map(|s| s.is_empty()).unwrap_or(true));

    // A root that does not exist, found after the fork: said as well.
    let mut buf = String::new();
    let mut child = Command::new(BIN)
        .args(["--daemon", "--port", "0", "--root", "/nonexistent/warren-site"])
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    child.stderr.take().expect("stderr").read_to_string(&mut buf).expect("read");
    assert_eq!(child.wait().expect("wait").code(), Some(2), "{buf}");
    assert!(buf.contains("/nonexistent/warren-site"), "{buf}");
}

/// Log files made as root before the drop are handed to the user: a
/// reload (which opens the access logs again) and a SIGUSR1 after a
/// logrotate-style move (a new file made for the user, as logrotate's
/// `create` does) both work as the user. Before, both failed with EACCES.
#[test]
fn log_files_are_handed_to_the_user_so_reload_and_reopen_work() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let user = ThrowawayUser::new();
    let t = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(t.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let root = t.path().join("root");
    std::fs::create_dir(&root).expect("mkdir");
    std::fs::write(root.join("index.html"), "hi\n").expect("write");
    let (access, errors) = (t.path().join("access.log"), t.path().join("error.log"));
    let args = [
        "--root",
        &root.to_string_lossy(),
        "--user",
        &user.name,
        "--access-log",
        &access.to_string_lossy(),
        "--log-file",
        &errors.to_string_lossy(),
    ];
    let mut cmd = Command::new(BIN);
    cmd.args(args).args(["--port", "0"]);
    // The log goes to a file: read the port from it.
    let mut warren =
        Running(cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("spawn"));
    let port = {
        let until = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let text = std::fs::read_to_string(&errors).unwrap_or_default();
            if let Some(p) = text
                .split("http://127.0.0.1:")
                .nth(1)
                .and_then(|r| r.split('/').next())
                .and_then(|p| p.parse::<u16>().ok())
            {
                break p;
            }
            assert!(std::time::Instant::now() < until, "no serving line: {text}");
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    use std::os::unix::fs::MetadataExt;
    for f in [&access, &errors] {
        assert_eq!(std::fs::metadata(f).expect("log").uid(), user.uid, "{} belongs to the user", f.display());
    }
    assert_eq!(get_port(port, "/index.html").status, 200);
    signal(warren.0.id(), libc::SIGHUP);
    let until = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let text = std::fs::read_to_string(&errors).unwrap_or_default();
        assert!(!text.contains("reload failed"), "{text}");
        if text.contains("reloaded") {
            break;
        }
        assert!(std::time::Instant::now() < until, "no reload: {text}");
        std::thread::sleep(Duration::from_millis(20));
    }
    // logrotate: move, create for the user, signal.
    std::fs::rename(&access, t.path().join("access.log.1")).expect("mv");
    std::fs::write(&access, "").expect("create");
    std::os::unix::fs::chown(&access, Some(user.uid), Some(user.gid)).expect("chown");
    signal(warren.0.id(), libc::SIGUSR1);
    let until = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        assert_eq!(get_port(port, "/index.html").status, 200);
        if std::fs::read_to_string(&access).unwrap_or_default().contains("GET /index.html") {
            break;
        }
        assert!(std::time::Instant::now() < until, "no line in the reopened access log");
        std::thread::sleep(Duration::from_millis(50));
    }
    signal(warren.0.id(), libc::SIGTERM);
    let status = warren.0.wait().expect("wait");
    assert_eq!(status.code(), Some(0));
    let text = std::fs::read_to_string(&errors).unwrap_or_default();
    assert!(!text.contains("cannot reopen"), "{text}");
}

/// A pid file that is a symbolic link is refused: root would otherwise
/// truncate and write whatever file a link planted in a shared directory
/// names.
#[test]
fn a_pid_file_that_is_a_link_is_refused() {
    let t = tempfile::tempdir().expect("tempdir");
    let victim = t.path().join("victim");
    std::fs::write(&victim, "precious\n").expect("write");
    let link = t.path().join("warren.pid");
    std::os::unix::fs::symlink(&victim, &link).expect("symlink");
    // Bounded: a warren that took the link would serve on, not exit.
    let mut child = Running(
        Command::new(BIN)
            .args(["--port", "0", "--pid-file", &link.to_string_lossy()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn"),
    );
    let until = std::time::Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.0.try_wait().expect("try_wait") {
            break status;
        }
        assert!(std::time::Instant::now() < until, "warren served on a pid file that is a link");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(2));
    let mut err = String::new();
    child.0.stderr.take().expect("stderr").read_to_string(&mut err).expect("stderr");
    assert!(err.contains("symbolic link"), "{err}");
    assert_eq!(std::fs::read_to_string(&victim).expect("read"), "precious\n");
}

/// `warren check` refuses what a start refuses before it binds: a user
/// that does not exist, a pid file or log file in a missing directory.
#[test]
fn check_reports_the_process_settings() {
    for (args, needle) in [
        (&["check", "--user", "warren-no-such-user"][..], "warren-no-such-user"),
        (&["check", "--pid-file", "/no/such/dir/warren.pid"], "/no/such/dir"),
        (&["check", "--log-file", "/no/such/dir/warren.log"], "/no/such/dir"),
    ] {
        let out = run(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
    }
}

/// A descriptor warren inherited without close-on-exec (here fd 7, as a
/// careless parent leaves one) does not reach CGI programs.
#[test]
fn cgi_programs_do_not_inherit_stray_descriptors() {
    let t = tempfile::tempdir().expect("tempdir");
    let dir = t.path().join("cgi-bin");
    std::fs::create_dir(&dir).expect("mkdir");
    let script = dir.join("fds.sh");
    std::fs::write(
        &script,
        "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\n'\nif [ -e /proc/self/fd/7 ]; then echo leaked; else echo clean; fi\n",
    )
    .expect("write");
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let secret = std::fs::File::create(t.path().join("secret")).expect("create");
    let raw = secret.as_raw_fd();
    let mut cmd = Command::new(BIN);
    cmd.args(["--cgi", &format!("/cgi-bin={}", dir.display())]);
    // SAFETY: dup2 in the child before exec; the new descriptor has no
    // close-on-exec flag, as a careless parent would leave it.
    unsafe {
        cmd.pre_exec(move || {
            if libc::dup2(raw, 7) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let (_w, port, _log) = start_warren_command(cmd);
    let r = get_port(port, "/cgi-bin/fds.sh");
    assert_eq!(r.status, 200);
    assert_eq!(r.text().trim(), "clean");
    drop(secret);
}
