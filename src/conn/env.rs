//! [`Env`]: the part of the loop a role may use.

use super::Core;
use crate::auth::Credentials;
use crate::context::{ContextHandle, Limits};
use crate::http::encode::DateCache;
use crate::protocol::{AnyProtocol, Command, WsiId};
use crate::reload::ErrorPage;
#[cfg(feature = "cgi")]
use crate::roles::cgi::CgiCache;
#[cfg(feature = "cgi")]
use crate::roles::cgi::{CgiWaiters, FcgiPool, Reaper};
use crate::timer::TimerWheel;
use crate::vhost::Vhost;
use std::sync::Arc;
use std::time::Instant;

/// The per-loop receive buffer every connection borrows while it works.
/// One per loop, so its size costs nothing per connection; 64 KiB lets a
/// WebSocket message of that size arrive in one read and leave as one
/// frame (with 16 KiB, a 64 KiB echo took about ten system calls).
pub(crate) const RX_BUF: usize = 64 * 1024;

/// A file's version, whether gzip-encoded, and its mtime in seconds.
pub(crate) type ValidatorKey = (u64, bool, u64);

/// What a role sees of its loop: the vhosts (read-only: configuration,
/// built once by `Context::new`), what changes while serving (protocol
/// instances, loaded credentials and error pages, CGI counts: the
/// `live` tables), the time, the timer wheel, the forced-service list,
/// the commands callbacks queue, and scratch buffers. Not the poll, not
/// the slab, not other connections.
#[derive(Debug)]
pub(crate) struct Env {
    /// The vhosts, immutable while serving.
    pub(crate) vhosts: Arc<Vec<Vhost>>,
    /// Per vhost, what changes while serving.
    pub(crate) live: Vec<VhostLive>,
    /// For each listening socket, its vhosts in creation order.
    pub(crate) listeners: Vec<Vec<usize>>,
    /// For each listening socket, its port (a CGI request's `SERVER_PORT`).
    pub(crate) listen_ports: Vec<u16>,
    pub(crate) limits: Limits,
    /// The receive buffer, lent to the connection being served.
    pub(crate) rx: Vec<u8>,
    /// Scratch for heads and frames on their way out.
    pub(crate) tx: Vec<u8>,
    pub(crate) date: DateCache,
    /// `ETag` and `Last-Modified` values already formatted, by file
    /// version and time (cleared when it grows too big).
    pub(crate) validators: std::collections::HashMap<ValidatorKey, (Box<str>, Box<str>)>,
    /// What callbacks asked for, applied by the loop after the callback.
    pub(crate) commands: Vec<Command>,
    pub(crate) handle: ContextHandle,
    /// Wakes this loop when a file open that would have blocked may
    /// succeed (`Pending::wake_on_done`).
    pub(crate) files_waker: std::task::Waker,
    /// One deadline per connection, by slab key.
    pub(crate) timers: TimerWheel,
    /// Connections to serve next turn without waiting for an event.
    pub(crate) forced: Vec<usize>,
    /// The time of this loop turn.
    pub(crate) now: Instant,
    /// CGI programs whose request is over, until they are reaped.
    #[cfg(feature = "cgi")]
    pub(crate) reaper: Reaper,
    /// Requests waiting for a CGI slot, started in order as slots free.
    #[cfg(feature = "cgi")]
    pub(crate) cgi_waiters: CgiWaiters,
    /// Connections waiting for their peer's request slot
    /// (`Limits::peer_requests`), in arrival order: (slab key,
    /// generation). One entry per waiting connection at most.
    pub(crate) peer_waiters: Vec<(usize, u32)>,
    /// Slab tokens of CGI pipes that were closed, for the loop to free.
    #[cfg(feature = "cgi")]
    pub(crate) dead_pipes: Vec<usize>,
    /// FastCGI servers' requests in flight and idle connections.
    #[cfg(feature = "cgi")]
    pub(crate) fcgi: FcgiPool,
    /// The loop is draining ([`crate::ContextHandle::drain`]): no
    /// connection is kept alive past its current response.
    pub(crate) draining: bool,
}

/// What changes of a vhost while it serves.
#[derive(Debug)]
pub(crate) struct VhostLive {
    /// Its protocols' instances (callbacks take them `&mut`).
    pub(crate) protocols: Vec<Box<dyn AnyProtocol>>,
    pub(crate) access_log: Option<Arc<crate::access_log::AccessLog>>,
    /// Custom error pages, loaded and reloaded when they change.
    pub(crate) error_pages: Vec<ErrorPage>,
    /// Per mount, in the vhost's order.
    pub(crate) mounts: Vec<MountLive>,
    /// Its counters, shared with every vhost of its name.
    pub(crate) metrics: Arc<crate::metrics::VhostMetrics>,
}

/// What changes of a mount while it serves.
#[derive(Debug)]
pub(crate) struct MountLive {
    /// Its basic-auth credentials, loaded and reloaded when they change.
    pub(crate) auth: Option<Credentials>,
    /// Programs of this (CGI) mount running now.
    #[cfg(feature = "cgi")]
    pub(crate) cgi_running: usize,
    /// What resolving its CGI paths found lately.
    #[cfg(feature = "cgi")]
    pub(crate) cgi_cache: CgiCache,
}

impl VhostLive {
    /// The same vhost's live state for another service loop: its own
    /// protocol instances (`None` when one has no other), the shared
    /// access log and counters, copies of the error pages and
    /// credentials, and nothing running.
    pub(crate) fn replica(&self) -> Option<VhostLive> {
        Some(self.with_protocols(self.protocols.iter().map(|p| p.replica()).collect::<Option<Vec<_>>>()?))
    }

    /// [`replica`](Self::replica) with its protocol instances made already.
    pub(crate) fn with_protocols(&self, protocols: Vec<Box<dyn AnyProtocol>>) -> VhostLive {
        VhostLive {
            protocols,
            access_log: self.access_log.clone(),
            error_pages: self.error_pages.clone(),
            mounts: self.mounts.iter().map(|m| MountLive::new(m.auth.clone())).collect(),
            metrics: Arc::clone(&self.metrics),
        }
    }
}

impl MountLive {
    pub(crate) fn new(auth: Option<Credentials>) -> MountLive {
        MountLive {
            auth,
            #[cfg(feature = "cgi")]
            cgi_running: 0,
            #[cfg(feature = "cgi")]
            cgi_cache: CgiCache::default(),
        }
    }
}

impl Env {
    /// Loop number `tsi`'s, with no vhost yet; `registry` is its poll's
    /// (for CGI programs' pidfds).
    pub(crate) fn new(
        registry: &mio::Registry,
        handle: &ContextHandle,
        limits: Limits,
        tsi: usize,
        now: Instant,
    ) -> Env {
        #[cfg(not(feature = "cgi"))]
        let _ = registry;
        Env {
            vhosts: Arc::new(Vec::new()),
            live: Vec::new(),
            listeners: Vec::new(),
            listen_ports: Vec::new(),
            limits,
            rx: vec![0; RX_BUF],
            tx: Vec::with_capacity(16 * 1024),
            date: DateCache::default(),
            validators: Default::default(),
            commands: Vec::new(),
            handle: handle.clone(),
            files_waker: std::task::Waker::from(Arc::new(crate::signals::FilesReady(Arc::clone(&handle.inner), tsi))),
            timers: TimerWheel::new(now),
            forced: Vec::new(),
            now,
            #[cfg(feature = "cgi")]
            reaper: Reaper::new(registry.try_clone().ok()),
            #[cfg(feature = "cgi")]
            cgi_waiters: CgiWaiters::counted(Arc::clone(&handle.inner.metrics.cgi_waiting)),
            peer_waiters: Vec::new(),
            #[cfg(feature = "cgi")]
            dead_pipes: Vec::new(),
            #[cfg(feature = "cgi")]
            fcgi: FcgiPool::default(),
            draining: false,
        }
    }

    /// Puts back what a panic may have left taken: a role borrows the
    /// receive and transmit buffers with `mem::take` while it works, and a
    /// panic below it (a protocol's callback, a bug) would otherwise leave
    /// a zero-length receive buffer that makes every later read look like
    /// a closed peer.
    pub(crate) fn heal(&mut self) {
        if self.rx.len() != RX_BUF {
            self.rx = vec![0; RX_BUF];
        }
        self.tx.clear();
    }

    /// Queues `c` for service without waiting for an event.
    pub(crate) fn force(&mut self, c: &mut Core) {
        if !c.forced {
            c.forced = true;
            self.forced.push(c.key);
        }
    }

    /// Applies a callback's requests about connection `id` now (so that a
    /// pause of rx takes effect before the next byte is delivered),
    /// returning them in the order they were made; the others stay queued,
    /// in order, for the loop to apply when the connection returns.
    pub(crate) fn take_commands_for(&mut self, id: WsiId) -> Vec<Command> {
        if !self.commands.iter().any(|c| c.target() == Some(id)) {
            return Vec::new();
        }
        let (mine, others) = std::mem::take(&mut self.commands).into_iter().partition(|c| c.target() == Some(id));
        self.commands = others;
        mine
    }
}
