//! [`Pending`]: work a filesystem does off its caller's thread, and how a
//! caller hears that it is done.

use std::fmt;
use std::io;
use std::sync::{Arc, Condvar, Mutex};
use std::task::Waker;
use std::time::Duration;

/// Wakers one piece of work keeps at most. One per event loop is what a
/// server needs (equal wakers are kept once); a caller turned away polls.
const MAX_WAKERS: usize = 16;

/// Work a [`Fops`](crate::Fops) does off the caller's thread, such as
/// loading a big archive's directory.
///
/// An [`open`](crate::Fops::open) that would have to wait for it fails at
/// once with an error of kind [`io::ErrorKind::WouldBlock`] that carries
/// the `Pending` ([`Pending::of`]). An event loop asks to be woken when
/// the work is done ([`Pending::wake_on_done`]) and opens again then; a
/// thread that may block calls [`Pending::wait`] (or [`open_blocking`]).
/// Clones share the work.
#[derive(Clone)]
pub struct Pending(Arc<State>);

struct State {
    what: String,
    inner: Mutex<Inner>,
    done: Condvar,
}

struct Inner {
    done: bool,
    wakers: Vec<Waker>,
}

impl Pending {
    /// Work in progress; `what` says what it is, for error messages.
    pub fn new(what: impl Into<String>) -> Pending {
        Pending(Arc::new(State {
            what: what.into(),
            inner: Mutex::new(Inner { done: false, wakers: Vec::new() }),
            done: Condvar::new(),
        }))
    }

    /// The `Pending` an error of kind [`io::ErrorKind::WouldBlock`]
    /// carries, if it carries one.
    pub fn of(e: &io::Error) -> Option<&Pending> {
        if e.kind() != io::ErrorKind::WouldBlock {
            return None;
        }
        e.get_ref()?.downcast_ref::<Pending>()
    }

    /// The error an open that has to wait for this work returns.
    pub fn to_error(&self) -> io::Error {
        io::Error::new(io::ErrorKind::WouldBlock, self.clone())
    }

    /// Marks the work done: wakes every waker and every waiting thread.
    pub fn finish(&self) {
        let wakers = {
            let mut inner = self.0.inner.lock().unwrap_or_else(|e| e.into_inner());
            inner.done = true;
            std::mem::take(&mut inner.wakers)
        };
        self.0.done.notify_all();
        for w in wakers {
            w.wake();
        }
    }

    /// Whether the work is done.
    pub fn is_done(&self) -> bool {
        self.0.inner.lock().unwrap_or_else(|e| e.into_inner()).done
    }

    /// Has `waker` woken once the work is done (at once if it is already).
    /// Returns `false` when it will not be: too many others are waiting,
    /// and the caller should poll instead.
    pub fn wake_on_done(&self, waker: &Waker) -> bool {
        let mut inner = self.0.inner.lock().unwrap_or_else(|e| e.into_inner());
        if inner.done {
            drop(inner);
            waker.wake_by_ref();
            return true;
        }
        if inner.wakers.iter().any(|w| w.will_wake(waker)) {
            return true;
        }
        if inner.wakers.len() >= MAX_WAKERS {
            return false;
        }
        inner.wakers.push(waker.clone());
        true
    }

    /// Blocks this thread until the work is done. Not for an event loop.
    pub fn wait(&self) {
        let mut inner = self.0.inner.lock().unwrap_or_else(|e| e.into_inner());
        while !inner.done {
            inner = self.0.done.wait(inner).unwrap_or_else(|e| e.into_inner());
        }
    }
}

impl fmt::Debug for Pending {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pending").field("what", &self.0.what).field("done", &self.is_done()).finish()
    }
}

impl fmt::Display for Pending {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "not ready yet: {}", self.0.what)
    }
}

impl std::error::Error for Pending {}

/// How long [`open_blocking`] keeps retrying an open that would block
/// but says on nothing to wait for.
const BLOCKING_RETRY: Duration = Duration::from_secs(30);

/// Opens `path` on a thread that may block (at start, in a tool; never in
/// an event loop): waits for any [`Pending`] work the open depends on.
/// An open that would block with nothing to wait on is retried every
/// 10 ms for up to 30 s.
pub fn open_blocking(
    fops: &dyn crate::Fops,
    path: &crate::VPath,
    flags: crate::OpenFlags,
) -> io::Result<Box<dyn crate::FileHandle>> {
    let started = std::time::Instant::now();
    loop {
        match fops.open(path, flags) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => match Pending::of(&e) {
                Some(p) => p.wait(),
                None if started.elapsed() < BLOCKING_RETRY => std::thread::sleep(Duration::from_millis(10)),
                None => return Err(e),
            },
            r => return r,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;

    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn wakers_are_kept_once_and_woken_when_done() {
        let p = Pending::new("test");
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(count.clone());
        assert!(p.wake_on_done(&waker));
        assert!(p.wake_on_done(&waker.clone()), "the same waker again");
        let e = p.to_error();
        assert!(Pending::of(&e).is_some_and(|q| !q.is_done()));
        assert!(Pending::of(&io::Error::from(io::ErrorKind::WouldBlock)).is_none());
        assert_eq!(count.0.load(Ordering::SeqCst), 0);
        let t = {
            let p = p.clone();
            std::thread::spawn(move || p.finish())
        };
        p.wait();
        t.join().expect("join");
        assert_eq!(count.0.load(Ordering::SeqCst), 1, "woken once");
        assert!(p.wake_on_done(&waker), "done: woken at once");
        assert_eq!(count.0.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn too_many_wakers_are_turned_away() {
        let p = Pending::new("test");
        let wakers: Vec<Waker> = (0..=MAX_WAKERS).map(|_| Waker::from(Arc::new(Count(AtomicUsize::new(0))))).collect();
        let kept = wakers.iter().filter(|w| p.wake_on_done(w)).count();
        assert_eq!(kept, MAX_WAKERS);
    }
}
