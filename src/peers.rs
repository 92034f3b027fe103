//! What each peer address holds (CORE-9, seed "peer_limits"; lwsws's
//! `ip-limit-wsi`): its open connections, counted while a limit is set
//! ([`Limits::peer_connections`](crate::Limits::peer_connections)).
//!
//! One table per context, behind a lock taken once at accept and once
//! at close, so every loop of a context counts into it. A peer leaves
//! the table with its last connection, so the table holds at most one
//! entry per open connection.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

#[derive(Debug, Default)]
pub(crate) struct Peers {
    conns: Mutex<HashMap<IpAddr, usize>>,
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
