//! The loop's part in raw wsis and wsi timers: a connection falling back
//! from HTTP to raw (RAW-2), descriptors adopted by protocols
//! ([`Cx::adopt_file`], [`Cx::adopt_udp`], [`Cx::adopt_socket`]), and each
//! wsi's own timer ([`Cx::set_timer`]).
//!
//! [`Cx::adopt_file`]: crate::protocol::Cx::adopt_file
//! [`Cx::adopt_udp`]: crate::protocol::Cx::adopt_udp
//! [`Cx::adopt_socket`]: crate::protocol::Cx::adopt_socket
//! [`Cx::set_timer`]: crate::protocol::Cx::set_timer

use super::{Service, Wsi};
use crate::conn::rawio::{FileLink, UdpLink};
use crate::conn::{Core, Link, PlainTcp};
use crate::metrics::ConnRole;
use crate::protocol::{Adoptee, RawKind, WsiId};
use crate::roles::Conn;
use mio::{Interest, Token};
use std::time::Duration;

impl Service {
    /// The connection at `key` sent bytes that are not HTTP on a port
    /// that falls back to raw: its role becomes raw in place, its HTTP
    /// timeouts are cleared, and its protocol gets the adopt event and
    /// what was read (RAW-2).
    pub(super) fn fall_back(&mut self, key: usize) {
        let Some(Wsi::Conn(c)) = self.wsis.get_mut(key) else { return };
        if !c.fall_back_to_raw(&self.sh) {
            self.close(key);
            return;
        }
        log::debug!("{}: not HTTP; raw from here", c.core.peer);
        self.sh.timers.clear(key);
        c.became(&self.sh, ConnRole::Raw);
        self.service_conn(key);
    }

    /// Arms, re-arms or cancels the timer of wsi `id`, if it is still
    /// there.
    pub(super) fn set_wsi_timer(&mut self, id: WsiId, after: Option<Duration>) {
        let key = id.key as usize;
        let Some(Wsi::Conn(c)) = self.wsis.get(key) else { return };
        if c.core.generation != id.generation {
            return;
        }
        match after {
            Some(after) => self.wsi_timers.set(key, self.sh.now + after),
            None => self.wsi_timers.clear(key),
        }
    }

    /// The timer of the wsi at `key` came due.
    pub(super) fn wsi_timer(&mut self, key: usize) {
        self.conn_event(key, "a wsi's timer callback", Conn::user_timer);
    }

    /// Makes a raw wsi of a descriptor a protocol adopted, bound to that
    /// protocol; its adopt event comes at its first service, this turn.
    pub(super) fn adopt_raw(&mut self, vhost: usize, protocol: usize, what: Adoptee) {
        if self.open_conns >= self.max_conns {
            log::warn!(
                "vhost {:?}: a descriptor adopted by protocol {:?} was closed: this loop serves {} connections, its \
                 most",
                self.sh.vhosts[vhost].name,
                self.sh.vhosts[vhost].protocol_names[protocol],
                self.open_conns
            );
            return;
        }
        let (link, peer, kind) = match what {
            Adoptee::File(fd) => {
                (Link::Boxed(Box::new(Box::new(FileLink(fd)))), crate::roles::raw::NO_PEER, RawKind::File)
            }
            Adoptee::Udp(sock) => {
                let peer = sock.peer_addr().unwrap_or(crate::roles::raw::NO_PEER);
                (Link::Boxed(Box::new(Box::new(UdpLink(sock)))), peer, RawKind::Udp)
            }
            Adoptee::Socket(stream, peer) => {
                if let Err(e) = stream.set_nodelay(true) {
                    log::debug!("{peer}: adopted socket: TCP_NODELAY: {e}");
                }
                (Link::Plain(PlainTcp(stream)), peer, RawKind::Socket)
            }
        };
        let entry = self.wsis.vacant_entry();
        let key = entry.key();
        let mut link = link;
        if let Err(e) =
            self.poll.registry().register(link.source(), Token(key), Interest::READABLE | Interest::WRITABLE)
        {
            log::warn!("adopting a descriptor ({kind:?}) for protocol {protocol}: {e}; closed");
            return;
        }
        self.generation = self.generation.wrapping_add(1);
        let mut core = Core::new(key, self.generation, link, peer, usize::MAX, vhost);
        core.adopted = true;
        core.udp = kind == RawKind::Udp;
        let mut conn = Conn::new_raw(core, &self.sh, (vhost, protocol), kind, ConnRole::Raw);
        self.sh.force(&mut conn.core);
        entry.insert(Wsi::Conn(conn));
        self.open_conns += 1;
        self.sh.handle.inner.loops[self.tsi].loaded(1);
        self.sh.handle.inner.metrics.conn_opened(ConnRole::Raw);
        self.reindex(key);
    }
}
