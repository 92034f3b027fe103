//! What other threads ask of one service loop ([`LoopSignals`], one per
//! loop in `HandleInner::loops`): its waker and the requests it takes
//! when woken, and connections other loops hand it.

use crate::context::{DrainRequest, HandleInner};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

/// What other threads ask of one service loop.
pub(crate) struct LoopSignals {
    pub(crate) waker: mio::Waker,
    pub(crate) cancels: AtomicU64,
    /// Work a file system did off the loop is done
    /// ([`warren_vfs::Pending`]): requests waiting for a file open again.
    pub(crate) files_ready: AtomicBool,
    /// A drain asked for, until the loop takes it.
    pub(crate) drain: std::sync::Mutex<Option<DrainRequest>>,
    /// Vhosts the first loop attached since, for this one to serve too.
    pub(crate) replicas: std::sync::Mutex<Vec<crate::service::Replica>>,
    /// Connections another loop accepted for this one; `None` once the
    /// loop has ended.
    handed: std::sync::Mutex<Hands>,
    /// (vhost, protocol) pairs whose connections on this loop another
    /// loop asked to be made writeable.
    pub(crate) writable_all: std::sync::Mutex<Vec<(usize, usize)>>,
    /// Connections the loop serves, and those handed to it not yet
    /// adopted: what "least loaded" compares.
    load: std::sync::atomic::AtomicUsize,
}

/// What other loops handed a loop, and whether it takes more.
#[derive(Debug)]
pub(crate) struct Hands {
    queue: Vec<Handed>,
    /// Cleared when the loop drains or ends: nothing more is handed to
    /// it (what is queued it still takes, or closes when it ends).
    open: bool,
}

/// A connection one loop accepted for another.
#[derive(Debug)]
pub(crate) struct Handed {
    pub(crate) stream: mio::net::TcpStream,
    pub(crate) peer: SocketAddr,
    pub(crate) listener: usize,
    pub(crate) tls: bool,
}

impl LoopSignals {
    pub(crate) fn new(waker: mio::Waker) -> LoopSignals {
        LoopSignals {
            waker,
            cancels: AtomicU64::new(0),
            files_ready: AtomicBool::new(false),
            drain: Default::default(),
            replicas: Default::default(),
            handed: std::sync::Mutex::new(Hands { queue: Vec::new(), open: true }),
            writable_all: Default::default(),
            load: Default::default(),
        }
    }

    /// The loop's load, `None` once it has ended.
    pub(crate) fn load(&self) -> Option<usize> {
        let handed = self.handed.lock().unwrap_or_else(|e| e.into_inner());
        handed.open.then(|| self.load.load(Ordering::Acquire))
    }

    pub(crate) fn loaded(&self, n: usize) {
        self.load.fetch_add(n, Ordering::AcqRel);
    }

    pub(crate) fn unloaded(&self, n: usize) {
        let _ = self.load.fetch_update(Ordering::AcqRel, Ordering::Acquire, |l| Some(l.saturating_sub(n)));
    }

    /// Hands the loop a connection (counted in its load) and wakes it;
    /// the connection back if the loop takes no more.
    pub(crate) fn hand(&self, h: Handed) -> Result<(), Handed> {
        let mut handed = self.handed.lock().unwrap_or_else(|e| e.into_inner());
        if !handed.open {
            return Err(h);
        }
        handed.queue.push(h);
        self.load.fetch_add(1, Ordering::AcqRel);
        drop(handed);
        self.wake();
        Ok(())
    }

    /// The connections handed over since the last call.
    pub(crate) fn take_handed(&self) -> Vec<Handed> {
        std::mem::take(&mut self.handed.lock().unwrap_or_else(|e| e.into_inner()).queue)
    }

    /// The loop drains: nothing more is handed to it (a connection
    /// another loop accepts meanwhile is that loop's), and what was
    /// handed before is still taken.
    pub(crate) fn close_hands(&self) {
        self.handed.lock().unwrap_or_else(|e| e.into_inner()).open = false;
    }

    /// The loop has ended: nothing more is handed to it; what was, and
    /// not taken, is returned (to be closed).
    pub(crate) fn ended(&self) -> Vec<Handed> {
        let mut handed = self.handed.lock().unwrap_or_else(|e| e.into_inner());
        handed.open = false;
        std::mem::take(&mut handed.queue)
    }

    pub(crate) fn wake(&self) {
        if let Err(e) = self.waker.wake() {
            log::error!("cannot wake a service loop: {e}");
        }
    }
}

/// The waker a loop hands to [`warren_vfs::Pending::wake_on_done`]: it
/// sets that loop's `files_ready` and wakes it. One per loop, so a piece
/// of work keeps it once however many requests wait for it.
pub(crate) struct FilesReady(pub(crate) Arc<HandleInner>, pub(crate) usize);

impl std::task::Wake for FilesReady {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if let Some(l) = self.0.loops.get(self.1) {
            l.files_ready.store(true, Ordering::Release);
            l.wake();
        }
    }
}
