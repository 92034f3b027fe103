//! Child streams: room for a role that carries several streams in one
//! connection (HTTP/2, seed "http2compat"). Only the shape today; no
//! role uses it yet.
//!
//! Each stream has what a connection has for writing: one write permit
//! per writeable moment, asked for with `want_writable` and granted in
//! turn, and a transmit credit (HTTP/2's flow-control window) that a
//! permit never exceeds. The connection's own credit caps the sum, as a
//! connection window does. A stream that wants to write but has no
//! credit waits for a grant; one with credit is served round-robin, so a
//! busy stream cannot starve the rest. Bounded: a role opens at most
//! `max` streams at once.
// The shape waits for its first user (HTTP/2); its unit test keeps it
// honest meanwhile.
#![allow(dead_code)]

use std::collections::VecDeque;

/// One child stream's write state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Stream {
    /// The stream's id on the wire.
    pub(crate) id: u32,
    /// Bytes it may still send (its window).
    pub(crate) credit: i64,
    /// It asked for a writeable moment.
    pub(crate) want_writable: bool,
}

/// A grant to write up to `allowed` bytes on stream `id`, once.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Permit {
    pub(crate) id: u32,
    pub(crate) allowed: usize,
}

/// The child streams of one connection.
#[derive(Debug)]
pub(crate) struct Streams {
    streams: Vec<Stream>,
    /// Streams waiting for a permit, in the order they asked.
    queue: VecDeque<u32>,
    /// The connection's own credit, shared by all its streams.
    credit: i64,
    max: usize,
}

impl Streams {
    pub(crate) fn new(max: usize, credit: i64) -> Streams {
        Streams { streams: Vec::new(), queue: VecDeque::new(), credit, max }
    }

    /// Opens stream `id` with `credit`; `false` when at the limit or the
    /// id is taken.
    pub(crate) fn open(&mut self, id: u32, credit: i64) -> bool {
        if self.streams.len() >= self.max || self.get(id).is_some() {
            return false;
        }
        self.streams.push(Stream { id, credit, want_writable: false });
        true
    }

    pub(crate) fn close(&mut self, id: u32) {
        self.streams.retain(|s| s.id != id);
        self.queue.retain(|&q| q != id);
    }

    pub(crate) fn get(&self, id: u32) -> Option<&Stream> {
        self.streams.iter().find(|s| s.id == id)
    }

    fn get_mut(&mut self, id: u32) -> Option<&mut Stream> {
        self.streams.iter_mut().find(|s| s.id == id)
    }

    pub(crate) fn len(&self) -> usize {
        self.streams.len()
    }

    /// Stream `id` asks for a writeable moment (once until it gets it).
    pub(crate) fn want_writable(&mut self, id: u32) {
        if let Some(s) = self.get_mut(id) {
            if !s.want_writable {
                s.want_writable = true;
                self.queue.push_back(id);
            }
        }
    }

    /// More credit for stream `id`, or for the connection (`None`); a
    /// window update.
    pub(crate) fn grant(&mut self, id: Option<u32>, n: i64) {
        match id {
            None => self.credit = self.credit.saturating_add(n),
            Some(id) => {
                if let Some(s) = self.get_mut(id) {
                    s.credit = s.credit.saturating_add(n);
                }
            }
        }
    }

    /// The next permit: the first waiting stream with credit, while the
    /// connection has some. Streams without credit keep their place.
    pub(crate) fn next_permit(&mut self, most: usize) -> Option<Permit> {
        if self.credit <= 0 {
            return None;
        }
        let at = self.queue.iter().position(|&id| self.get(id).is_some_and(|s| s.credit > 0))?;
        let id = self.queue.remove(at)?;
        let credit = self.credit;
        let s = self.get_mut(id)?;
        s.want_writable = false;
        let allowed = s.credit.min(credit).max(0) as usize;
        Some(Permit { id, allowed: allowed.min(most) })
    }

    /// `n` bytes were written on the permit's stream: both credits shrink.
    pub(crate) fn spent(&mut self, permit: Permit, n: usize) {
        let n = n.min(permit.allowed) as i64;
        self.credit -= n;
        if let Some(s) = self.get_mut(permit.id) {
            s.credit -= n;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permits_go_round_robin_within_credit() {
        let mut s = Streams::new(2, 100);
        assert!(s.open(1, 10));
        assert!(s.open(3, 1000));
        assert!(!s.open(5, 10), "at the stream limit");
        assert!(!s.open(1, 10) || s.len() == 2, "ids are unique");
        s.want_writable(1);
        s.want_writable(3);
        s.want_writable(1); // once until served
        let p = s.next_permit(4096).expect("a permit");
        assert_eq!(p, Permit { id: 1, allowed: 10 }, "the stream's window caps it");
        s.spent(p, 10);
        let p = s.next_permit(4096).expect("a permit");
        assert_eq!(p, Permit { id: 3, allowed: 90 }, "the connection's window caps it");
        s.spent(p, 90);
        assert_eq!(s.next_permit(4096), None, "nobody waiting, no credit");
        s.want_writable(1);
        s.grant(None, 50);
        assert_eq!(s.next_permit(4096), None, "stream 1 has no credit left: it waits");
        s.grant(Some(1), 5);
        assert_eq!(s.next_permit(4096), Some(Permit { id: 1, allowed: 5 }));
        s.close(3);
        assert_eq!(s.len(), 1);
    }
}
