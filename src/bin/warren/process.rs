//! Running as a service: what happens around serving (issue 14 items 4
//! and 5), with [`warren::process`] doing the work.
//!
//! [`Service::prepare`] runs before any thread starts: it takes the
//! sockets systemd passed and its notification socket out of the
//! environment, looks up the identity to drop to (so a user that does
//! not exist is an error before anything is bound), locks the pid file
//! and, with `--daemon`, goes to the background. Then `serve::run` calls
//! the hooks: [`bound`](Service::bound) once the first context is built
//! (the pid is written, privileges dropped), [`ready`](Service::ready)
//! once it serves, and those of reloads and stops, which systemd hears
//! about when it asked (`NOTIFY_SOCKET`).

use crate::cli::ServeArgs;
use std::net::TcpListener;
use std::path::PathBuf;
use warren::process::{self, Account, Daemon, Daemonized, Identity, Notifier, PidFile, Privileges};

/// What [`Service::prepare`] leads to.
pub enum Started {
    /// The process that started a daemon: the daemon serves (`Ok`) or
    /// cannot (why); exit now.
    Parent(Result<(), String>),
    /// Serve, in this process.
    Serve(Service),
}

/// The process's side of serving: see the module.
pub struct Service {
    activated: Vec<TcpListener>,
    notifier: Option<Notifier>,
    daemon: Option<Daemon>,
    pid_file: Option<PidFile>,
    identity: Option<Identity>,
}

impl Service {
    /// Everything done before threads start, as the module says. With
    /// `--daemon`, the paths in `args` are made absolute first (the
    /// daemon runs in `/`).
    pub fn prepare(args: &mut ServeArgs) -> Result<Started, String> {
        // First: nothing may take descriptors 3.. before they are claimed.
        let activated = process::listen_fds().map_err(|e| e.to_string())?;
        let notifier = Notifier::from_env().map_err(|e| e.to_string())?;
        let identity = Identity::resolve(&privileges(args)?).map_err(|e| e.to_string())?;
        if let Some(path) = &mut args.pid_file {
            *path = absolute(path)?;
        }
        if args.daemon {
            absolute_paths(args)?;
        }
        let pid_file = match &args.pid_file {
            Some(path) => Some(PidFile::lock(path).map_err(|e| e.to_string())?),
            None => None,
        };
        let daemon = if args.daemon {
            match process::daemonize().map_err(|e| e.to_string())? {
                Daemonized::Parent(outcome) => return Ok(Started::Parent(outcome)),
                Daemonized::Daemon(d) => Some(d),
            }
        } else {
            None
        };
        Ok(Started::Serve(Service { activated, notifier, daemon, pid_file, identity }))
    }

    /// The listening sockets systemd passed, for the first context.
    pub fn take_activated(&mut self) -> Vec<TcpListener> {
        std::mem::take(&mut self.activated)
    }

    /// The first context is built (every port bound, every file open):
    /// the pid file gets the pid, the log files (`logs`: made as root,
    /// reopened by path on SIGUSR1 and reloads) go to the identity to be,
    /// then the privileges go.
    pub fn bound(&mut self, logs: &[PathBuf]) -> Result<(), String> {
        if let Some(p) = &mut self.pid_file {
            p.write().map_err(|e| e.to_string())?;
        }
        if let Some(identity) = &self.identity {
            for path in logs {
                process::hand_over(path, identity).map_err(|e| format!("refusing to serve: {e}"))?;
            }
            identity.assume().map_err(|e| format!("refusing to serve: cannot drop privileges: {e}"))?;
            // SAFETY: these getters cannot fail.
            let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
            log::info!("serving as uid {uid}, gid {gid}");
        }
        Ok(())
    }

    /// The first context serves.
    pub fn ready(&mut self) {
        if let Some(d) = &mut self.daemon {
            d.ready();
        }
        self.notify("READY=1\nSTATUS=serving");
    }

    /// warren cannot serve: the process that started the daemon says why.
    pub fn failed(&mut self, why: &str) {
        if let Some(d) = &mut self.daemon {
            d.failed(why);
        }
    }

    /// A SIGHUP reload begins.
    pub fn reloading(&self) {
        self.notify(&format!("RELOADING=1\nMONOTONIC_USEC={}\nSTATUS=reloading", process::monotonic_usec()));
    }

    /// The reload ended: serving again, on the new configuration or, when
    /// it failed (`error`), the one before.
    pub fn reloaded(&self, error: Option<&str>) {
        match error {
            None => self.notify("READY=1\nSTATUS=serving (reloaded)"),
            Some(e) => {
                let e: String = e.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
                self.notify(&format!("READY=1\nSTATUS=reload failed, serving the configuration before: {e}"))
            }
        }
    }

    /// The first SIGTERM or SIGINT: draining.
    pub fn stopping(&self) {
        self.notify("STOPPING=1\nSTATUS=finishing what is in flight");
    }

    fn notify(&self, state: &str) {
        if let Some(n) = &self.notifier {
            if let Err(e) = n.notify(state) {
                log::warn!("cannot notify systemd ({state:?}): {e}");
            }
        }
    }
}

/// The identity asked for: the configuration's, each part replaced by
/// the flag that gives it.
/// What `warren check` reports of the process's settings: the identity
/// to drop to (names that do not exist, conflicting keys), and the
/// directories the pid file and the log file would be made in.
pub fn check(args: &ServeArgs) -> Vec<String> {
    let mut problems = Vec::new();
    if let Err(e) = privileges(args).and_then(|p| Identity::resolve(&p).map_err(|e| e.to_string())) {
        problems.push(e);
    }
    for (what, path) in [("--pid-file", &args.pid_file), ("--log-file", &args.log_file)] {
        let Some(path) = path else { continue };
        let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
        if !dir.is_dir() {
            problems.push(format!("{what} {}: its directory {} does not exist", path.display(), dir.display()));
        }
    }
    problems
}

fn privileges(args: &ServeArgs) -> Result<Privileges, String> {
    let mut p = match &args.config {
        Some(dir) => warren::config::load_process_settings(dir).map_err(|e| e.to_string())?,
        None => Privileges::default(),
    };
    if let Some(user) = &args.user {
        p.user = Some(Account::parse(user));
    }
    if let Some(group) = &args.group {
        p.group = Some(Account::parse(group));
    }
    if !args.keep_cap.is_empty() {
        p.keep = args.keep_cap.clone();
    }
    Ok(p)
}

fn absolute(path: &std::path::Path) -> Result<PathBuf, String> {
    std::path::absolute(path).map_err(|e| format!("{}: {e}", path.display()))
}

/// The paths of `args`, absolute: a daemon runs in `/`.
fn absolute_paths(args: &mut ServeArgs) -> Result<(), String> {
    let paths =
        [&mut args.config, &mut args.root, &mut args.tls_cert, &mut args.tls_key, &mut args.log_file, &mut args.syslog];
    for path in paths.into_iter().flatten() {
        *path = absolute(path)?;
    }
    // `-` is standard output, not a file called `-`.
    if let Some(log) = args.access_log.as_mut().filter(|p| p.as_os_str() != "-") {
        *log = absolute(log)?;
    }
    for (_, path) in &mut args.cgi {
        *path = absolute(path)?;
    }
    Ok(())
}
