//! Draining (`ContextHandle::drain`, `retire`, a stop): listeners closed,
//! connections told, WebSockets sent away when their time comes, what is
//! left closed at the end of the grace.

use super::{Service, Wsi};
use crate::conn::Step;
use std::panic::AssertUnwindSafe;
use std::time::Instant;

impl Service {
    /// Begins a drain: the listeners close (their copies for
    /// [`ContextHandle::listeners`] too: a socket left open would queue
    /// connections nobody serves), and each connection is told.
    pub(super) fn start_drain(&mut self, request: crate::context::DrainRequest) {
        // No connection is handed to this loop from now on; those handed
        // before are served (`drain_turn` takes them).
        self.sh.handle.inner.loops[self.tsi].close_hands();
        self.take_handed();
        let now = self.sh.now;
        let until = now + request.grace.min(crate::context::MAX_TIMEOUT);
        let ws_close_at = if request.keep_websockets { until } else { now };
        self.drain = Some(Drain { until, ws_close_at, ws_told: false, hard_end: None });
        self.sh.draining = true;
        self.drop_listeners();
        self.listeners_closed();
        log::info!(
            "draining {} connections: no new ones; what is in flight has {:?} to finish",
            self.open_conns,
            request.grace
        );
        self.tell_conns(false);
    }

    /// Deregisters and closes this loop's listening sockets.
    pub(super) fn drop_listeners(&mut self) {
        let listeners: Vec<usize> =
            self.wsis.iter().filter(|(_, w)| matches!(w, Wsi::Listen(_))).map(|(k, _)| k).collect();
        for key in listeners {
            if let Some(slot) = self.wsis.get_mut(key) {
                if let Wsi::Listen(mut l) = std::mem::replace(slot, Wsi::Vacated) {
                    if let Err(e) = self.poll.registry().deregister(&mut l.sock) {
                        log::debug!("deregister a listener: {e}");
                    }
                }
                self.sh.timers.clear(key);
                self.vacated.push(key);
            }
        }
    }

    /// The listeners are closed (a drain began, or the loop ends): their
    /// copies go, and whoever waits for it is told.
    pub(super) fn listeners_closed(&mut self) {
        self.sh.handle.inner.listeners.lock().unwrap_or_else(|e| e.into_inner()).clear();
        let mut drain = self.sh.handle.inner.drain.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(closed) = drain.closed.get_mut(self.tsi) {
            *closed = true;
        }
        // Told once every loop has closed its copies.
        if drain.all_closed() {
            for waiter in drain.waiters.drain(..) {
                let _ = waiter.send(());
            }
        }
    }

    /// Tells every connection a drain is on (`websockets`: WebSockets are
    /// to go away now), and acts on what each answers.
    pub(super) fn tell_conns(&mut self, websockets: bool) {
        for key in self.conn_keys() {
            let sh = &mut self.sh;
            let step = match self.wsis.get_mut(key) {
                Some(Wsi::Conn(c)) => std::panic::catch_unwind(AssertUnwindSafe(|| c.drain(sh, websockets))),
                _ => continue,
            };
            let step = step.unwrap_or_else(|_| {
                log::error!("panic while telling a connection of the drain; connection dropped");
                self.sh.heal();
                Step::Close
            });
            match step {
                Step::Close => self.close(key),
                _ => self.after_service(key),
            }
            self.reindex(key);
            self.apply_commands();
        }
    }

    /// A drain's turn: WebSockets told when their time comes, what is
    /// left closed at the end of the grace. True when the loop is done.
    pub(super) fn drain_turn(&mut self) -> bool {
        let Some(mut d) = self.drain else { return false };
        let now = self.sh.now;
        // Handed before the drain began, and not yet taken: served too.
        self.take_handed();
        if self.open_conns == 0 {
            return true;
        }
        if !d.ws_told && now >= d.ws_close_at {
            d.ws_told = true;
            self.drain = Some(d);
            self.tell_conns(true);
        }
        if d.hard_end.is_none() && now >= d.until {
            // Only WebSockets in their close handshake may go on, within
            // their close timeout.
            let keys: Vec<usize> = self
                .wsis
                .iter()
                .filter(|(_, w)| matches!(w, Wsi::Conn(c) if !c.ws_closing()))
                .map(|(k, _)| k)
                .collect();
            if !keys.is_empty() {
                log::info!("drain: the grace has passed; closing {} connections still open", keys.len());
            }
            for key in keys {
                self.close(key);
            }
            d.hard_end = Some(now + self.sh.limits.ws_close_timeout);
            self.drain = Some(d);
        }
        if d.hard_end.is_some_and(|end| now >= end) {
            return true;
        }
        self.open_conns == 0
    }
}

/// A drain under way ([`ContextHandle::drain`]).
#[derive(Debug, Clone, Copy)]
pub(super) struct Drain {
    /// When what is left is closed.
    until: Instant,
    /// When WebSockets are told to go away (at once for a stop; at the
    /// end of the grace for a reload), and whether they have been.
    ws_close_at: Instant,
    pub(super) ws_told: bool,
    /// Past the grace: only WebSocket close handshakes are left, until
    /// this (their close timeout).
    hard_end: Option<Instant>,
}

impl Drain {
    /// A later drain request makes this one stricter, never looser.
    pub(super) fn tighten(&mut self, request: crate::context::DrainRequest, now: Instant) {
        let until = now + request.grace.min(crate::context::MAX_TIMEOUT);
        if until < self.until && self.hard_end.is_none() {
            self.until = until;
        }
        if !request.keep_websockets {
            self.ws_close_at = self.ws_close_at.min(now);
        }
        self.ws_close_at = self.ws_close_at.min(self.until);
    }

    /// The next time the drain must act.
    pub(super) fn next_step(&self) -> Instant {
        match self.hard_end {
            Some(end) => end,
            None if !self.ws_told => self.ws_close_at.min(self.until),
            None => self.until,
        }
    }
}
