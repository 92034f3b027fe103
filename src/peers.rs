//! What each peer address holds (CORE-9, seed "peer_limits"; lwsws's
//! `ip-limit-wsi` and `ip-limit-ah`): its open connections and its
//! requests in progress, each counted while its limit is set
//! ([`Limits::peer_connections`](crate::Limits::peer_connections),
//! [`Limits::peer_requests`](crate::Limits::peer_requests)).
//!
//! One table per context, each behind a lock taken at accept and close,
//! and at a request's start and end, so every loop of a context counts
//! into it. A peer leaves a table with its last connection or request,
//! so each holds at most one entry per open connection.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

#[derive(Debug, Default)]
pub(crate) struct Peers {
    conns: Mutex<HashMap<IpAddr, usize>>,
    requests: Mutex<HashMap<IpAddr, usize>>,
    /// A request slot was given back since the loops last looked (the
    /// connections waiting for one may go on).
    /// Per loop (a bit each): a request slot was given back since the
    /// loop last looked.
    freed: AtomicU64,
    /// Per loop (a bit each): connections of the loop wait for a slot.
    waiting: AtomicU64,
}

/// A request in progress from a peer (lws's "ah", a header table): given
/// back when dropped, at the end of its transaction, an upgrade, or a
/// close.
pub(crate) struct RequestSlot {
    peers: Arc<crate::context::HandleInner>,
    ip: IpAddr,
}

impl std::fmt::Debug for RequestSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestSlot").field("ip", &self.ip).finish()
    }
}

impl Drop for RequestSlot {
    fn drop(&mut self) {
        let peers = &self.peers.peers;
        let mut requests = peers.requests.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = requests.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                requests.remove(&self.ip);
            }
        }
        drop(requests);
        peers.freed.store(u64::MAX, Ordering::Release);
        // A loop with waiters may be asleep in its poll: wake it (this
        // one included, harmlessly, as the bit cannot say which is ours).
        let waiting = peers.waiting.load(Ordering::Acquire);
        if waiting != 0 {
            for (i, l) in self.peers.loops.iter().enumerate().take(64) {
                if waiting & (1 << i) != 0 {
                    l.wake();
                }
            }
        }
    }
}

/// IPv4 peers on an IPv6 socket (`::ffff:a.b.c.d`) count as the IPv4
/// address they are.
fn key(ip: IpAddr) -> IpAddr {
    ip.to_canonical()
}

impl Peers {
    /// One more connection from `ip`, unless it has `max` already.
    pub(crate) fn admit(&self, ip: IpAddr, max: usize) -> bool {
        let mut conns = self.conns.lock().unwrap_or_else(|e| e.into_inner());
        let n = conns.entry(key(ip)).or_insert(0);
        if *n >= max {
            return false;
        }
        *n += 1;
        true
    }

    /// A connection [`admit`](Self::admit) let in has closed.
    pub(crate) fn left(&self, ip: IpAddr) {
        let mut conns = self.conns.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = conns.get_mut(&key(ip)) {
            *n -= 1;
            if *n == 0 {
                conns.remove(&key(ip));
            }
        }
    }

    /// A request slot for `ip`, unless it has `max` requests in progress.
    pub(crate) fn begin(handle: &Arc<crate::context::HandleInner>, ip: IpAddr, max: usize) -> Option<RequestSlot> {
        let ip = key(ip);
        let mut requests = handle.peers.requests.lock().unwrap_or_else(|e| e.into_inner());
        let n = requests.entry(ip).or_insert(0);
        if *n >= max {
            if *n == 0 {
                requests.remove(&ip);
            }
            return None;
        }
        *n += 1;
        Some(RequestSlot { peers: Arc::clone(handle), ip })
    }

    /// Whether a slot was given back since the last call.
    /// Whether a slot was given back since loop `tsi` last asked.
    pub(crate) fn take_freed(&self, tsi: usize) -> bool {
        let bit = 1u64 << (tsi % 64);
        self.freed.fetch_and(!bit, Ordering::AcqRel) & bit != 0
    }

    /// Says whether loop `tsi` has connections waiting for a slot (so a
    /// slot given back on another loop wakes it). Said before the loop
    /// looks at [`take_freed`](Self::take_freed), so that no slot given
    /// back in between goes unseen.
    pub(crate) fn set_waiting(&self, tsi: usize, waiting: bool) {
        let bit = 1u64 << (tsi % 64);
        if waiting {
            self.waiting.fetch_or(bit, Ordering::AcqRel);
        } else {
            self.waiting.fetch_and(!bit, Ordering::AcqRel);
        }
    }

    /// How many connections `ip` has open (for tests and status).
    #[cfg(test)]
    fn open(&self, ip: IpAddr) -> usize {
        self.conns.lock().unwrap_or_else(|e| e.into_inner()).get(&key(ip)).copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_is_held_to_its_limit_and_forgotten_when_gone() {
        let p = Peers::default();
        let a: IpAddr = "192.0.2.1".parse().expect("ip");
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().expect("ip");
        let b: IpAddr = "2001:db8::1".parse().expect("ip");
        assert!(p.admit(a, 2) && p.admit(mapped, 2), "the same peer, either way it is written");
        assert!(!p.admit(a, 2) && !p.admit(mapped, 2));
        assert!(p.admit(b, 2), "another peer has its own count");
        p.left(mapped);
        assert!(p.admit(a, 2));
        p.left(a);
        p.left(a);
        p.left(b);
        assert_eq!((p.open(a), p.open(b)), (0, 0));
        assert!(p.conns.lock().expect("lock").is_empty(), "no entry is kept for a peer with nothing open");
    }
}
