//! The connection's output side: the one remainder of a write the kernel
//! took in part, over the connection's [`Transport`].

use super::transport::{Link, Transport};
use std::io;
use std::os::fd::BorrowedFd;

/// Turns `WouldBlock` into `Ok(None)`, once, at the edge.
fn no_block<T>(r: io::Result<T>) -> io::Result<Option<T>> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
        Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(None),
        Err(e) => Err(e),
    }
}

/// Socket plus the one remainder of a write the kernel took in part.
///
/// `writable` is what we know of the socket: set by a WRITABLE event,
/// cleared when a write comes back short. With edge-triggered readiness
/// that is the whole truth: while it is set, another write may succeed.
#[derive(Debug)]
pub(crate) struct Out {
    pub(crate) sock: Link,
    pending: Vec<u8>,
    pending_off: usize,
    pub(crate) writable: bool,
    /// Bytes written on this connection (for logs and stats).
    pub(crate) sent: u64,
    /// Of those, how many the metrics were told of; and bytes read since
    /// they were last told ([`Out::take_traffic`]).
    reported: u64,
    received: u64,
    /// The first write error: once the socket has failed, every later
    /// write fails too, and the connection closes after the callback that
    /// met it (so a protocol that ignores the error cannot spin).
    pub(crate) failed: Option<io::ErrorKind>,
    /// The peer's acknowledged byte count when the socket last filled
    /// up: a reader that drains slowly is told from a stalled one by it.
    acked_mark: u64,
}

impl Out {
    pub(crate) fn new(sock: Link) -> Out {
        Out {
            sock,
            pending: Vec::new(),
            pending_off: 0,
            writable: false,
            sent: 0,
            reported: 0,
            received: 0,
            failed: None,
            acked_mark: 0,
        }
    }

    /// The socket took less than it was given: it is full until the next
    /// WRITABLE edge. When this call `moved` bytes (so the io timeout was
    /// just re-armed), remembers how much the peer had acknowledged: the
    /// mark must date from the arming, or a write that moved nothing just
    /// before the timer fires would hide what the peer drained.
    fn blocked(&mut self, moved: bool) {
        self.writable = false;
        if moved {
            self.acked_mark = self.sock.bytes_acked().unwrap_or(0);
        }
    }

    /// Whether the peer acknowledged more bytes since the socket filled up
    /// (or since the last call that said so). A slow but steady reader
    /// makes progress even while no write of ours can, because megabytes
    /// may sit in the kernel's send queue; a stalled reader acknowledges
    /// nothing. With no way to know (another transport), `false`.
    pub(crate) fn peer_progress(&mut self) -> bool {
        match self.sock.bytes_acked() {
            Some(acked) if acked > self.acked_mark => {
                self.acked_mark = acked;
                true
            }
            _ => false,
        }
    }

    /// Whether bytes already accepted wait for the socket: our one
    /// remainder, or records the transport holds.
    pub(crate) fn has_pending(&self) -> bool {
        self.pending_off < self.pending.len() || self.sock.wants_write()
    }

    /// Writes `data` now as far as the socket takes it; the rest becomes
    /// the pending remainder. Refused while a remainder is pending: there
    /// is one per connection.
    pub(crate) fn write(&mut self, data: &[u8], more: bool) -> io::Result<()> {
        if let Some(kind) = self.failed {
            return Err(kind.into());
        }
        if self.has_pending() {
            return Err(io::Error::other("a write is already pending"));
        }
        let mut done = 0;
        if self.writable {
            while done < data.len() {
                match self.no_block(|sock| sock.send(&data[done..], more))? {
                    Some(n) => done += n,
                    None => {
                        self.blocked(done > 0);
                        break;
                    }
                }
            }
        }
        self.sent += done as u64;
        if done < data.len() {
            self.pending.clear();
            self.pending.extend_from_slice(&data[done..]);
            self.pending_off = 0;
            self.writable = false;
        } else {
            self.blocked_if_held(done > 0);
        }
        Ok(())
    }

    /// The transport took everything but holds records of it (TLS): it
    /// does so only after the socket said `WouldBlock`, so the socket is
    /// full until the next WRITABLE edge, and a write now would only hear
    /// that again.
    fn blocked_if_held(&mut self, moved: bool) {
        if self.sock.wants_write() {
            self.blocked(moved);
        }
    }

    /// Like [`Out::write`] for `head` followed by `body`, sent with one
    /// system call where the transport allows.
    pub(crate) fn write_parts(&mut self, head: &[u8], body: &[u8]) -> io::Result<()> {
        if let Some(kind) = self.failed {
            return Err(kind.into());
        }
        if self.has_pending() {
            return Err(io::Error::other("a write is already pending"));
        }
        let total = head.len() + body.len();
        let mut done = 0;
        if self.writable {
            while done < total {
                let r = if done < head.len() {
                    self.no_block(|sock| sock.send2(&head[done..], body))
                } else {
                    self.no_block(|sock| sock.send(&body[done - head.len()..], false))
                };
                match r? {
                    Some(n) => done += n,
                    None => {
                        self.blocked(done > 0);
                        break;
                    }
                }
            }
        }
        self.sent += done as u64;
        if done < total {
            self.pending.clear();
            if done < head.len() {
                self.pending.extend_from_slice(&head[done..]);
                self.pending.extend_from_slice(body);
            } else {
                self.pending.extend_from_slice(&body[done - head.len()..]);
            }
            self.pending_off = 0;
            self.writable = false;
        } else {
            self.blocked_if_held(done > 0);
        }
        Ok(())
    }

    /// Runs one socket operation: `WouldBlock` becomes `Ok(None)`, a
    /// zero-length write an error, and any error is latched in `failed`.
    fn no_block(&mut self, op: impl FnOnce(&mut dyn Transport) -> io::Result<usize>) -> io::Result<Option<usize>> {
        let r = match no_block(op(&mut *self.sock)) {
            Ok(Some(0)) => Err(io::ErrorKind::WriteZero.into()),
            other => other,
        };
        if let Err(e) = &r {
            self.failed = Some(e.kind());
        }
        r
    }

    /// Sends what it can of the remainder. Returns whether anything moved.
    pub(crate) fn flush(&mut self) -> io::Result<bool> {
        let mut moved = false;
        while self.sock.wants_write() {
            // The transport's own bytes go first: they were made from
            // what it took before our remainder.
            match no_block(self.sock.write_pending()) {
                Ok(Some(n)) => moved |= n > 0,
                Ok(None) => {
                    self.blocked(moved);
                    return Ok(moved);
                }
                Err(e) => {
                    self.failed = Some(e.kind());
                    return Err(e);
                }
            }
        }
        while self.pending_off < self.pending.len() {
            let (pending, off) = (std::mem::take(&mut self.pending), self.pending_off);
            let r = self.no_block(|sock| sock.send(&pending[off..], false));
            self.pending = pending;
            match r? {
                Some(n) => {
                    self.pending_off += n;
                    self.sent += n as u64;
                    moved = true;
                }
                None => {
                    self.blocked(moved);
                    return Ok(moved);
                }
            }
        }
        // Free the buffer: an idle connection owns none.
        self.pending = Vec::new();
        self.pending_off = 0;
        self.blocked_if_held(moved);
        Ok(moved)
    }

    /// `sendfile` of up to `len` bytes; `Ok(None)` when the socket is full,
    /// `Ok(Some(0))` at the end of the file.
    pub(crate) fn sendfile(
        &mut self,
        fd: BorrowedFd<'_>,
        offset: u64,
        len: usize,
    ) -> Option<io::Result<Option<usize>>> {
        if let Some(kind) = self.failed {
            return Some(Err(kind.into()));
        }
        if self.has_pending() {
            return Some(Err(io::Error::other("a write is already pending")));
        }
        let r = no_block(self.sock.sendfile(fd, offset, len)?);
        if let Err(e) = &r {
            self.failed = Some(e.kind());
        }
        Some(r.inspect(|n| match n {
            Some(n) => {
                self.sent += *n as u64;
                // PERF: a short count almost always means the socket buffer
                // is full; treating it so saves a sendfile that would only
                // say EAGAIN. (A file that shrank since it was opened then
                // waits for the io timeout instead of failing at once.)
                if *n < len && *n > 0 {
                    self.blocked(true);
                }
            }
            None => self.blocked(false),
        }))
    }

    /// Reads; `Ok(None)` when nothing is there now.
    pub(crate) fn read(&mut self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        let r = no_block(self.sock.read(buf));
        if let Ok(Some(n)) = r {
            self.received += n as u64;
        }
        r
    }

    /// The bytes (received, sent) that crossed the socket since the last
    /// call, for the metrics: what the transport counted on the wire
    /// where it counts (TLS: records), else what passed through here.
    pub(crate) fn take_traffic(&mut self) -> (u64, u64) {
        let here = (std::mem::take(&mut self.received), self.sent - self.reported);
        self.reported = self.sent;
        self.sock.take_traffic().unwrap_or(here)
    }
}
