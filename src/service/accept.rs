//! Accepting: each connection to the loop with the fewest (or refused
//! at the limits), and made a wsi of the loop that serves it.

use super::{Service, Wsi, ACCEPT_BACKOFF, ACCEPT_BUDGET, OUT_OF_FDS_LOG_EVERY};
use crate::conn::{Core, Link, PlainTcp};
use crate::metrics::{inc, ConnRole};
use crate::roles::Conn;
use mio::net::TcpStream;
use mio::{Interest, Token};
use std::io;
use std::net::SocketAddr;

impl Service {
    pub(super) fn accept(&mut self, key: usize) {
        for _ in 0..ACCEPT_BUDGET {
            let Some(Wsi::Listen(l)) = self.wsis.get(key) else { return };
            let (index, tls, own) = (l.index, l.tls, l.own);
            let (stream, peer) = match l.sock.accept() {
                Ok(s) => s,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e)
                    if matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)) =>
                {
                    // Out of descriptors: the listener stays readable, so
                    // retry from a timer rather than spin.
                    // Said once a minute at most per loop (a client
                    // holding the process at its limit must not fill
                    // the log), with how many more there were.
                    let now = self.sh.now;
                    if self.out_of_fds.is_none_or(|(at, _)| now.duration_since(at) >= OUT_OF_FDS_LOG_EVERY) {
                        let more = self.out_of_fds.map_or(0, |(_, n)| n);
                        log::warn!(
                            "accept: {e}; pausing accepts for {ACCEPT_BACKOFF:?} ({more} more times since the last \
                             such warning)"
                        );
                        self.out_of_fds = Some((now, 0));
                    } else if let Some((_, n)) = self.out_of_fds.as_mut() {
                        *n += 1;
                    }
                    self.sh.timers.set(key, self.sh.now + ACCEPT_BACKOFF);
                    return;
                }
                Err(e) => {
                    log::debug!("accept: {e}");
                    continue;
                }
            };
            // Contexts sharing their metrics (a reload's old and new
            // configurations) share the process's descriptors: the limit
            // counts the connections of all of them.
            let shared = usize::try_from(self.sh.handle.inner.metrics.open_total()).unwrap_or(usize::MAX);
            // The loop with the fewest connections serves it (lws's
            // least-loaded thread): this one, or another it is handed to.
            let target = match shared < self.total_conns {
                // Its own socket on a shared port: served here while this
                // loop is below its share.
                true if own && self.open_conns < self.max_conns => Some(self.tsi),
                true => self.least_loaded(),
                false => None,
            };
            let Some(target) = target else {
                inc(&self.sh.handle.inner.metrics.refused);
                // A TLS client would read an HTTP answer as a broken
                // record, and a raw port's client (RAW-1) speaks no HTTP:
                // they get the close alone.
                let first = self.sh.listeners[index].first().map(|&v| &self.sh.vhosts[v]);
                let raw_port = first.is_some_and(|v| v.raw_accept.is_some_and(|a| a.always));
                if !tls && !raw_port {
                    refuse(stream);
                }
                continue;
            };
            let per_peer = self.sh.limits.peer_connections;
            if per_peer > 0 && !self.sh.handle.inner.peers.admit(peer.ip(), per_peer) {
                // CORE-9: closed at once, with no answer.
                inc(&self.sh.handle.inner.metrics.peer_refused);
                log::debug!("{peer}: already has {per_peer} connections; closed");
                continue;
            }
            if target != self.tsi {
                let handed = crate::signals::Handed { stream, peer, listener: index, tls };
                match self.sh.handle.inner.loops[target].hand(handed) {
                    Ok(()) => continue,
                    // That loop has ended: served here after all.
                    Err(back) => {
                        let crate::signals::Handed { stream, peer, .. } = back;
                        self.adopt_counted(stream, peer, index, tls, true);
                        continue;
                    }
                }
            }
            self.adopt_counted(stream, peer, index, tls, true);
        }
        // More may be waiting; come back after others had a turn.
        if let Some(Wsi::Listen(l)) = self.wsis.get_mut(key) {
            if !l.forced {
                l.forced = true;
                self.sh.forced.push(key);
            }
        }
    }

    pub(super) fn adopt(
        &mut self,
        mut stream: TcpStream,
        peer: SocketAddr,
        listener: usize,
        tls: bool,
    ) -> io::Result<()> {
        stream.set_nodelay(true)?;
        if let Some(ka) = self.sh.listeners[listener].first().and_then(|&v| self.sh.vhosts[v].tcp_keepalive) {
            ka.apply(&stream)?;
        }
        let entry = self.wsis.vacant_entry();
        let key = entry.key();
        self.poll.registry().register(&mut stream, Token(key), Interest::READABLE | Interest::WRITABLE)?;
        self.generation = self.generation.wrapping_add(1);
        let vhost = self.sh.listeners[listener][0];
        let (link, first_timeout) = match tls {
            #[cfg(feature = "tls")]
            true => (Link::Tls(Box::new(crate::conn::tls::TlsLink::new(stream))), self.sh.limits.tls_handshake_timeout),
            _ => (Link::Plain(PlainTcp(stream)), self.sh.limits.header_timeout),
        };
        let core = Core::new(key, self.generation, link, peer, listener, vhost);
        // RAW-1: the port's first vhost may make every connection raw.
        let raw = self.sh.vhosts[vhost].raw_accept.filter(|a| a.always).map(|a| (vhost, a.protocol));
        let counted = match (tls, raw) {
            (true, _) => ConnRole::TlsHandshake,
            (false, Some(_)) => ConnRole::Raw,
            (false, None) => ConnRole::Http,
        };
        let conn = match raw {
            Some(bound) => {
                let mut conn = Conn::new_raw(core, &self.sh, bound, crate::protocol::RawKind::Socket, counted);
                // Its protocol hears of it now, not at its first byte.
                self.sh.force(&mut conn.core);
                conn
            }
            None => Conn::new(core, counted),
        };
        entry.insert(Wsi::Conn(conn));
        // A raw connection has no timeout but the handshake's and those
        // its protocol sets.
        if tls || raw.is_none() {
            self.sh.timers.set(key, self.sh.now + first_timeout);
        }
        self.open_conns += 1;
        let metrics = &self.sh.handle.inner.metrics;
        inc(&metrics.accepted);
        inc(&self.taken);
        metrics.conn_opened(counted);
        Ok(())
    }
}

/// Tells a connection over the limit why it is being dropped, if its
/// socket takes the few bytes at once; never waits.
fn refuse(stream: TcpStream) {
    use std::io::Write;
    let mut stream = stream;
    let _ = stream
        .write(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\nRetry-After: 1\r\n\r\n");
}
