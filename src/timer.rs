//! A hashed timer wheel for per-connection timeouts.
//!
//! Each connection has at most one deadline. Entries are intrusive doubly
//! linked lists through a `Vec` indexed by the connection's slab key, so
//! setting, moving and clearing a deadline are O(1) and allocate nothing
//! once the vector has grown to the number of connections.

use std::time::{Duration, Instant};

const SLOTS: usize = 512;
const NIL: u32 = u32::MAX;

/// The wheel's resolution.
pub const TICK: Duration = Duration::from_millis(50);

#[derive(Debug, Clone, Copy)]
struct Node {
    tick: u64,
    prev: u32,
    next: u32,
    armed: bool,
}

const IDLE: Node = Node { tick: 0, prev: NIL, next: NIL, armed: false };

/// Deadlines keyed by small integers (slab keys).
#[derive(Debug)]
pub struct TimerWheel {
    start: Instant,
    nodes: Vec<Node>,
    heads: Vec<u32>,
    /// The next tick not yet expired.
    current: u64,
    armed: usize,
}

impl TimerWheel {
    /// An empty wheel whose tick 0 is `start`.
    pub fn new(start: Instant) -> TimerWheel {
        TimerWheel { start, nodes: Vec::new(), heads: vec![NIL; SLOTS], current: 0, armed: 0 }
    }

    fn tick_of(&self, t: Instant) -> u64 {
        (t.saturating_duration_since(self.start).as_millis() / TICK.as_millis()) as u64
    }

    /// Sets (or moves) `key`'s deadline. It fires at the first tick at or
    /// after `deadline`.
    pub fn set(&mut self, key: usize, deadline: Instant) {
        self.clear(key);
        if self.nodes.len() <= key {
            self.nodes.resize(key + 1, IDLE);
        }
        let d = deadline.saturating_duration_since(self.start);
        let tick = (d.as_millis().div_ceil(TICK.as_millis()) as u64).max(self.current);
        let slot = (tick % SLOTS as u64) as usize;
        let head = self.heads[slot];
        self.nodes[key] = Node { tick, prev: NIL, next: head, armed: true };
        if head != NIL {
            self.nodes[head as usize].prev = key as u32;
        }
        self.heads[slot] = key as u32;
        self.armed += 1;
    }

    /// Removes `key`'s deadline, if any.
    pub fn clear(&mut self, key: usize) {
        let Some(node) = self.nodes.get(key).copied().filter(|n| n.armed) else {
            return;
        };
        if node.prev == NIL {
            self.heads[(node.tick % SLOTS as u64) as usize] = node.next;
        } else {
            self.nodes[node.prev as usize].next = node.next;
        }
        if node.next != NIL {
            self.nodes[node.next as usize].prev = node.prev;
        }
        self.nodes[key] = IDLE;
        self.armed -= 1;
    }

    /// How long until the earliest deadline may fire (`None`: no deadline).
    pub fn next_timeout(&self, now: Instant) -> Option<Duration> {
        if self.armed == 0 {
            return None;
        }
        // Scan at most one revolution for the nearest occupied slot; an
        // entry there may be a later revolution's, which only wakes us early.
        let now_tick = self.tick_of(now);
        for i in 0..SLOTS as u64 {
            let tick = self.current + i;
            if self.heads[(tick % SLOTS as u64) as usize] != NIL {
                if tick <= now_tick {
                    return Some(Duration::ZERO);
                }
                let at = self.start + TICK * tick as u32;
                return Some(at.saturating_duration_since(now));
            }
        }
        Some(TICK * SLOTS as u32)
    }

    /// Removes every key whose deadline is at or before `now` and pushes it
    /// to `out`.
    pub fn expire(&mut self, now: Instant, out: &mut Vec<usize>) {
        let now_tick = self.tick_of(now);
        if self.armed == 0 {
            self.current = now_tick + 1;
            return;
        }
        // After a long sleep there is no need to visit a slot twice.
        let last = now_tick.min(self.current + SLOTS as u64 - 1);
        while self.current <= last {
            let slot = (self.current % SLOTS as u64) as usize;
            let mut key = self.heads[slot];
            while key != NIL {
                let node = self.nodes[key as usize];
                if node.tick <= now_tick {
                    self.clear(key as usize);
                    out.push(key as usize);
                }
                key = node.next;
            }
            self.current += 1;
        }
        self.current = now_tick + 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fires_in_order_and_clears() {
        let t0 = Instant::now();
        let mut w = TimerWheel::new(t0);
        w.set(1, t0 + Duration::from_millis(100));
        w.set(2, t0 + Duration::from_millis(300));
        w.set(3, t0 + Duration::from_secs(60)); // beyond one revolution
        w.set(4, t0 + Duration::from_millis(100));
        w.clear(4);
        let mut out = Vec::new();
        w.expire(t0 + Duration::from_millis(99), &mut out);
        assert!(out.is_empty());
        w.expire(t0 + Duration::from_millis(150), &mut out);
        assert_eq!(out, vec![1]);
        out.clear();
        w.expire(t0 + Duration::from_secs(30), &mut out);
        assert_eq!(out, vec![2]);
        out.clear();
        w.expire(t0 + Duration::from_secs(61), &mut out);
        assert_eq!(out, vec![3]);
        assert_eq!(w.next_timeout(t0), None);
    }

    #[test]
    fn moving_a_deadline() {
        let t0 = Instant::now();
        let mut w = TimerWheel::new(t0);
        w.set(7, t0 + Duration::from_millis(100));
        w.set(7, t0 + Duration::from_secs(2));
        let mut out = Vec::new();
        w.expire(t0 + Duration::from_secs(1), &mut out);
        assert!(out.is_empty());
        let wait = w.next_timeout(t0 + Duration::from_secs(1)).unwrap_or_default();
        assert!(wait <= Duration::from_secs(1) && wait > Duration::ZERO, "{wait:?}");
        w.expire(t0 + Duration::from_secs(2), &mut out);
        assert_eq!(out, vec![7]);
    }

    #[test]
    fn many_keys_same_slot() {
        let t0 = Instant::now();
        let mut w = TimerWheel::new(t0);
        for k in 0..100 {
            w.set(k, t0 + Duration::from_millis(500));
        }
        for k in (0..100).step_by(2) {
            w.clear(k);
        }
        let mut out = Vec::new();
        w.expire(t0 + Duration::from_millis(500), &mut out);
        out.sort_unstable();
        assert_eq!(out, (1..100).step_by(2).collect::<Vec<_>>());
    }
}
