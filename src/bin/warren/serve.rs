//! Serving until told to stop: the signals, the reloads, the drains.
//!
//! Each configuration runs as a [`Context`] on a thread of its own. The
//! main thread waits on one channel for what happens: a signal (taken by
//! a thread that waits for them; they are blocked everywhere else), or a
//! context that ended.
//!
//! - SIGTERM, SIGINT: every context drains ([`ContextHandle::drain`]):
//!   listeners close, what is in flight gets `--grace` to finish,
//!   WebSockets get 1001, then warren exits 0. A second one stops at once.
//! - SIGHUP: the configuration is built again (files, certificates,
//!   archives, credentials, error pages all read anew) into a new context
//!   that takes the listening sockets over from the running one, which
//!   then retires ([`ContextHandle::retire`]): connections in flight
//!   finish on the configuration they began on. A configuration that
//!   fails to load or bind is logged, and the running one keeps serving.
//!   Signals that queued while a reload ran make one reload more, not
//!   one each.
//! - SIGUSR1: the log files are reopened by their paths (logrotate moved
//!   them): `--log-file`, and the access logs of every context
//!   ([`ContextHandle::reopen_logs`]).

use crate::cli::ServeArgs;
use crate::process::Service;
use crate::site;
use std::collections::VecDeque;
use std::sync::mpsc::{channel, Sender};
use std::sync::Arc;
use warren::{Context, ContextHandle, Metrics};

/// How long a reload waits for the configuration it replaces to stop
/// accepting (a loop answers at its next turn: well under a millisecond
/// unless it is stuck).
const RETIRE_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// The most configurations kept finishing their connections after
/// reloads; past it, the oldest is stopped.
const MAX_RETIRING: usize = 8;

/// What the main thread waits for.
enum Event {
    Signal(libc::c_int),
    /// The context with this id ended, and how.
    Ended(u64, warren::Result<()>),
}

/// A context serving on its thread.
struct Running {
    id: u64,
    handle: ContextHandle,
}

/// The signals warren takes, blocked in every thread.
pub struct Signals(libc::sigset_t);

impl Signals {
    /// Blocks SIGTERM, SIGINT, SIGHUP and SIGUSR1 in this thread, and so
    /// in every thread started after: call it before any starts. (CGI
    /// programs get a clear mask.)
    pub fn block() -> Signals {
        // SAFETY: sigset_t is plain data, filled by sigemptyset/sigaddset;
        // pthread_sigmask only reads it.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            for sig in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP, libc::SIGUSR1] {
                libc::sigaddset(&mut set, sig);
            }
            libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
            Signals(set)
        }
    }

    /// Starts the thread that takes the signals and sends them on.
    fn forward(self, to: Sender<Event>) -> std::io::Result<()> {
        std::thread::Builder::new().name("signals".into()).spawn(move || loop {
            let mut sig = 0;
            // SAFETY: sigwait reads the set and writes the signal number.
            if unsafe { libc::sigwait(&self.0, &mut sig) } != 0 {
                continue;
            }
            if to.send(Event::Signal(sig)).is_err() {
                return;
            }
        })?;
        Ok(())
    }
}

fn signal_name(sig: libc::c_int) -> &'static str {
    match sig {
        libc::SIGTERM => "SIGTERM",
        libc::SIGINT => "SIGINT",
        libc::SIGHUP => "SIGHUP",
        libc::SIGUSR1 => "SIGUSR1",
        _ => "a signal",
    }
}

/// Serves what `args` describe until a stop signal, as the module says.
pub fn run(args: ServeArgs, signals: Signals, service: &mut Service) -> Result<(), String> {
    // One set of counters for every configuration, reloads included.
    let metrics = Arc::new(Metrics::new());
    let info = site::context_info(&args, service.take_activated())?.metrics(Arc::clone(&metrics));
    crate::logging::set_level(&args, info.log_level());
    let context = Context::new(info).map_err(|e| match &args.config {
        Some(dir) => format!("{}: {e}", dir.display()),
        None => e.to_string(),
    })?;
    let mut logs = context.access_log_paths();
    logs.extend(args.log_file.iter().cloned());
    service.bound(&logs)?;
    announce(&context.listening(), &args, "serving");
    let (tx, rx) = channel();
    signals.forward(tx.clone()).map_err(|e| format!("cannot start the signal thread: {e}"))?;
    let mut ids = 0..;
    let mut current = Some(start(context, ids.next().unwrap_or_default(), &tx)?);
    service.ready();
    let mut retiring: Vec<Running> = Vec::new();
    let mut stopping = false;
    let mut queue: VecDeque<Event> = VecDeque::new();
    loop {
        let event = match queue.pop_front() {
            Some(e) => e,
            None => rx.recv().map_err(|_| "the signal thread ended".to_string())?,
        };
        match event {
            Event::Signal(sig @ (libc::SIGTERM | libc::SIGINT)) if stopping => {
                log::info!("{}: stopping now", signal_name(sig));
                for r in retiring.iter().chain(&current) {
                    r.handle.stop();
                }
            }
            Event::Signal(sig @ (libc::SIGTERM | libc::SIGINT)) => {
                log::info!(
                    "{}: finishing what is in flight (up to {} s; another signal stops at once)",
                    signal_name(sig),
                    args.grace
                );
                stopping = true;
                service.stopping();
                for r in retiring.iter().chain(&current) {
                    r.handle.drain(args.grace());
                }
            }
            Event::Signal(libc::SIGHUP) => {
                // Those queued meanwhile are this reload too.
                let mut others = Vec::new();
                while let Ok(e) = rx.try_recv() {
                    match e {
                        Event::Signal(libc::SIGHUP) => {}
                        e => others.push(e),
                    }
                }
                match current.as_mut() {
                    Some(running) if !stopping => {
                        let reloaded = reload(&args, &running.handle, &metrics, service);
                        metrics.reloaded(reloaded.is_ok());
                        match reloaded {
                            Ok(context) => {
                                let listening = context.listening();
                                let next = start(context, ids.next().unwrap_or_default(), &tx)?;
                                let old = std::mem::replace(running, next);
                                // Both accept until the old one has closed its
                                // listeners; after that line, every new
                                // connection is the new configuration's.
                                let closed = old.handle.retire(args.grace());
                                if closed.recv_timeout(RETIRE_WAIT).is_err() {
                                    log::warn!("the configuration before the reload did not stop accepting within {RETIRE_WAIT:?}");
                                }
                                retiring.push(old);
                                if retiring.len() > MAX_RETIRING {
                                    // Each holds a thread, a poll and its
                                    // logs' writers: a storm of reloads
                                    // with long connections must not pile
                                    // them up without bound.
                                    let oldest = &retiring[0];
                                    log::warn!(
                                        "{} configurations are still finishing their connections; the oldest \
                                         stops now, closing what it still serves",
                                        retiring.len()
                                    );
                                    oldest.handle.stop();
                                }
                                announce(&listening, &args, "reloaded: serving");
                                service.reloaded(None);
                            }
                            Err(e) => {
                                log::error!(
                                    "SIGHUP: reload failed; still serving the configuration loaded before: {e}"
                                );
                                service.reloaded(Some(&e));
                            }
                        }
                    }
                    _ => log::info!("SIGHUP: not reloading, warren is stopping"),
                }
                queue.extend(others);
            }
            Event::Signal(libc::SIGUSR1) => {
                crate::logging::reopen();
                for r in retiring.iter().chain(&current) {
                    r.handle.reopen_logs();
                }
                log::info!("SIGUSR1: log files reopened");
            }
            Event::Signal(sig) => log::debug!("{}: ignored", signal_name(sig)),
            Event::Ended(id, result) => {
                if let Err(e) = &result {
                    log::error!("service loop failed: {e}");
                }
                if current.as_ref().is_some_and(|r| r.id == id) {
                    current = None;
                    if !stopping {
                        // It ended by itself: nothing serves new connections.
                        for r in &retiring {
                            r.handle.stop();
                        }
                        return result.map_err(|e| format!("service loop failed: {e}"));
                    }
                }
                retiring.retain(|r| r.id != id);
                if current.is_none() && retiring.is_empty() {
                    log::info!("warren {} stopped", env!("CARGO_PKG_VERSION"));
                    return Ok(());
                }
            }
        }
    }
}

/// Runs `context` on a thread of its own, which says on `tx` when it ends.
fn start(context: Context, id: u64, tx: &Sender<Event>) -> Result<Running, String> {
    let handle = context.handle();
    let tx = tx.clone();
    std::thread::Builder::new()
        .name(format!("warren-loop-{id}"))
        .spawn(move || {
            let result = context.run();
            let _ = tx.send(Event::Ended(id, result));
        })
        .map_err(|e| format!("cannot start the service thread: {e}"))?;
    Ok(Running { id, handle })
}

/// The configuration built again, on the listening sockets `running` has.
fn reload(
    args: &ServeArgs,
    running: &ContextHandle,
    metrics: &Arc<Metrics>,
    service: &Service,
) -> Result<Context, String> {
    service.reloading();
    let listeners = running.listeners().map_err(|e| format!("cannot take the listening sockets over: {e}"))?;
    let info = site::context_info(args, listeners)?.metrics(Arc::clone(metrics));
    let level = info.log_level();
    let context = Context::new(info).map_err(|e| e.to_string())?;
    crate::logging::set_level(args, level);
    Ok(context)
}

/// Logs what a context serves: a line per vhost with its URL.
fn announce(listening: &[warren::Listening], args: &ServeArgs, verb: &str) {
    let what = site::what(args);
    let version = env!("CARGO_PKG_VERSION");
    for l in listening {
        if args.config.is_some() {
            log::info!(
                "warren {version} {verb} vhost {:?} of {what} on {} (listening on {})",
                l.vhost,
                l.url(),
                l.addr
            );
        } else {
            log::info!("warren {version} {verb} {what} on {}", l.url());
        }
    }
}
