//! [`Embedded`]: a context's first loop driven by another program's
//! event loop ([`Context::embed`]), and the threads of the other loops,
//! which [`Context::run`] starts the same way.

use crate::context::{Context, ContextHandle, HandleInner};
use crate::service::Service;
use std::io;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

impl Context {
    /// Hands the first loop to the caller's own event loop (tokio, calloop,
    /// glib, a `poll(2)` loop of its own) rather than a thread: lws's
    /// external polling. Every protocol hears `ProtocolInit` now. The
    /// caller then watches [`Embedded`]'s descriptor for readability and
    /// calls [`Embedded::service`] when it is readable, and again once
    /// [`Embedded::next_timeout`] has passed; see `docs/embedding.md`,
    /// `examples/embed_tokio.rs` and `examples/embed_calloop.rs`.
    ///
    /// The other loops of a context with [`ContextInfo::threads`](crate::ContextInfo::threads) above
    /// one run on threads of their own, as with [`run`](Self::run): only
    /// the first is the caller's. A context that is never embedded nor
    /// run serves nothing.
    ///
    /// # Errors
    ///
    /// Another loop cannot be given its thread
    /// ([`is_io`](crate::Error::is_io)); those already started are
    /// stopped, and nothing is served.
    pub fn embed(self) -> crate::Result<Embedded> {
        let mut services = self.services.into_iter();
        let Some(mut first) = services.next() else {
            return Err(crate::Error::invalid_input("no service loop".to_string()));
        };
        let inner = Arc::clone(&self.handle.inner);
        let (tell, ended) = std::sync::mpsc::channel();
        let (threads, failed) = spawn_loops(services, &inner, Some(tell));
        if let Some(e) = failed {
            for t in threads {
                let _ = t.join();
            }
            return Err(e.into());
        }
        first.start();
        let others = threads.len();
        Ok(Embedded {
            service: first,
            events: mio::Events::with_capacity(crate::service::EVENTS),
            more: false,
            state: Embedding::Serving,
            threads,
            ended,
            others,
            failed: None,
            handle: self.handle,
        })
    }
}

/// Starts `services` (loops 1 and up) on threads of their own
/// (`warren-loop-N`). One that fails stops the others. With `tell`, each
/// says it has ended on it and then wakes the first loop (an embedded
/// first loop learns of it through its descriptor). A thread that cannot
/// be made stops those started, and is the error returned beside them.
pub(crate) fn spawn_loops(
    services: impl Iterator<Item = Service>,
    inner: &Arc<HandleInner>,
    tell: Option<std::sync::mpsc::Sender<()>>,
) -> (Vec<LoopThread>, Option<io::Error>) {
    let mut threads = Vec::new();
    for (i, service) in services.enumerate() {
        let mine = Arc::clone(inner);
        let tell = tell.clone();
        let spawned = std::thread::Builder::new().name(format!("warren-loop-{}", i + 1)).spawn(move || {
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| service.run()))
                .unwrap_or_else(|_| Err(io::Error::other("a service loop panicked")));
            if result.is_err() {
                mine.stop.store(true, Ordering::Release);
                mine.wake_all();
            }
            if let Some(tell) = tell {
                let _ = tell.send(());
                if let Some(first) = mine.loops.first() {
                    first.wake();
                }
            }
            result
        });
        match spawned {
            Ok(t) => threads.push(t),
            Err(e) => {
                // The loops already running are stopped; this one's
                // service is gone with the closure.
                inner.stop.store(true, Ordering::Release);
                inner.wake_all();
                return (threads, Some(e));
            }
        }
    }
    (threads, None)
}

/// A service loop's thread, which returns how the loop ended.
pub(crate) type LoopThread = std::thread::JoinHandle<io::Result<()>>;

/// A context's first loop, driven by the caller's own event loop
/// ([`Context::embed`]) instead of [`Context::run`].
///
/// # The contract
///
/// - Watch the descriptor ([`AsRawFd`](std::os::fd::AsRawFd),
///   [`AsFd`](std::os::fd::AsFd): on Linux the loop's `epoll`
///   descriptor; the same one, open, for as long as the `Embedded`
///   lives) for readability, level- or edge-triggered. It is
///   readable while the loop has events to take: a connection's
///   readiness, a listener's, a CGI pipe's, or a wake-up from a
///   [`ContextHandle`] (`stop`, `drain`, `cancel_service`, `add_vhost`,
///   another loop's hand-over). Never read it, close it or register
///   anything in it.
/// - When it is readable, call [`service`](Self::service): one turn that
///   never blocks. An edge-triggered host clears its readiness *before*
///   the call, so an event that comes during the call brings a new edge.
/// - After every call, ask [`next_timeout`](Self::next_timeout) when to
///   call again if the descriptor stays quiet: a timer, a drain's next
///   step, or zero when work is pending that no event will announce
///   (forced service: a connection that has data already read, or more
///   to write than one turn allows, or more events than one turn takes).
///   Zero means "call again soon", after the host's own ready work.
/// - Stop when `service` returns [`Serviced::Stopped`], then drop it.
///
/// The host loop's own timers and sources run between calls; a call
/// takes as long as the turn's work, as a turn of [`Context::run`] does.
///
/// # Ending
///
/// [`ContextHandle::stop`] or the end of a [`ContextHandle::drain`] end
/// it as they end [`Context::run`]: connections closed, listening
/// sockets closed, `ProtocolDestroy` to every protocol, then
/// `Serviced::Stopped` once the other loops (if any) have ended too.
/// Dropping it before that is a stop: the same ending at once, and the
/// other loops' threads are stopped and joined.
#[derive(Debug)]
pub struct Embedded {
    /// The first loop.
    service: Service,
    events: mio::Events,
    /// The last turn took as many events as it could: more may wait.
    more: bool,
    state: Embedding,
    /// The other loops' threads; each says on `ended` when it ends.
    threads: Vec<LoopThread>,
    ended: std::sync::mpsc::Receiver<()>,
    /// Other loops not yet ended.
    others: usize,
    /// What ended the first loop, or another, when one failed.
    failed: Option<io::Error>,
    handle: ContextHandle,
}

/// Where an [`Embedded`] loop is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Embedding {
    Serving,
    /// The first loop has ended; the others are ending.
    Ending,
    Stopped,
}

/// What [`Embedded::service`] left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Serviced {
    /// Still serving: call again when the descriptor is readable or
    /// [`Embedded::next_timeout`] has passed.
    Running,
    /// Every loop has ended ([`ContextHandle::stop`], the end of a drain,
    /// or a failure the previous call returned): drop it.
    Stopped,
}

impl Embedded {
    /// One turn of the loop, never blocking: the events ready now (each
    /// served until it would block, within each connection's budget),
    /// the forced-service list, the timers that are due, and what a
    /// wake-up asked for. Calling it when nothing is ready is harmless.
    ///
    /// # Errors
    ///
    /// The loop could not poll (or another loop failed): the context has
    /// ended as after a stop, and later calls return
    /// [`Serviced::Stopped`].
    pub fn service(&mut self) -> io::Result<Serviced> {
        if self.state == Embedding::Serving {
            let turned = self.service.turn(&mut self.events, Some(Duration::ZERO));
            self.more = self.events.iter().count() >= self.events.capacity();
            match turned {
                Ok(true) => return Ok(Serviced::Running),
                Ok(false) => self.end_first(None),
                Err(e) => self.end_first(Some(e)),
            }
        }
        if self.state == Embedding::Ending {
            // Only the waker is left registered: take its wake-ups, so
            // the descriptor is quiet again until the next.
            if let Err(e) = self.service.clear_wakes(&mut self.events) {
                log::debug!("an ended loop's wake-ups: {e}");
            }
            self.others -= self.ended.try_iter().take(self.others).count();
            if self.others > 0 && self.failed.is_none() {
                return Ok(Serviced::Running);
            }
            self.join_others();
        }
        match self.failed.take() {
            Some(e) => Err(e),
            None => Ok(Serviced::Stopped),
        }
    }

    /// How long the host may wait for the descriptor before calling
    /// [`service`](Self::service) anyway (lws's
    /// `lws_service_adjust_timeout`): the nearest deadline of the loop's
    /// timers, `Some(Duration::ZERO)` while forced service is pending,
    /// `None` when only an event can bring work.
    pub fn next_timeout(&self) -> Option<Duration> {
        match self.state {
            Embedding::Serving if self.more => Some(Duration::ZERO),
            Embedding::Serving => self.service.next_timeout(),
            Embedding::Ending | Embedding::Stopped => None,
        }
    }

    /// A handle on the context, as [`Context::handle`] gives.
    pub fn handle(&self) -> ContextHandle {
        self.handle.clone()
    }

    /// The first loop has ended (`failed`: it could not poll): it ends
    /// as [`Context::run`]'s does, and a failure stops the other loops.
    fn end_first(&mut self, failed: Option<io::Error>) {
        if failed.is_some() {
            self.stop_others();
        }
        self.service.finish();
        self.failed = failed;
        self.state = Embedding::Ending;
    }

    fn stop_others(&self) {
        self.handle.inner.stop.store(true, Ordering::Release);
        self.handle.inner.wake_all();
    }

    /// Waits for the other loops' threads (which have ended or been
    /// told to), keeping the first failure.
    fn join_others(&mut self) {
        for t in std::mem::take(&mut self.threads) {
            let result = t.join().unwrap_or_else(|_| Err(io::Error::other("a service loop panicked")));
            if let Err(e) = result {
                if self.failed.is_none() {
                    self.failed = Some(e);
                    self.stop_others();
                }
            }
        }
        self.others = 0;
        self.state = Embedding::Stopped;
    }
}

impl std::os::fd::AsFd for Embedded {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.service.poll_fd()
    }
}

impl std::os::fd::AsRawFd for Embedded {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.service.poll_fd().as_raw_fd()
    }
}

/// Dropped before it stopped: a stop, at once.
impl Drop for Embedded {
    fn drop(&mut self) {
        if self.state == Embedding::Stopped {
            return;
        }
        self.stop_others();
        if self.state == Embedding::Serving {
            self.service.finish();
        }
        self.join_others();
        if let Some(e) = self.failed.take() {
            log::warn!("a service loop failed: {e}");
        }
    }
}
