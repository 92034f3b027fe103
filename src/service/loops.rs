//! What ties a context's service loops together: the loops other than
//! the first made from it ([`Service::replica`]), vhosts added later
//! handed to them, connections handed to the least-loaded loop, and the
//! per-protocol lists a broadcast visits, on this loop and the others.

use super::{dispatch_guarded, Listen, Service, Wsi};
use crate::conn::Env;
use crate::protocol::{Cx, RawEvent};
use mio::net::{TcpListener, TcpStream};
use mio::{Interest, Poll, Token};
use slab::Slab;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

/// A vhost the first loop attached, for another loop to serve too.
pub(crate) struct Replica {
    /// The vhost table with it.
    vhosts: Arc<Vec<crate::vhost::Vhost>>,
    /// Its live state for that loop.
    live: crate::conn::VhostLive,
    /// The listener it is served on.
    listener: usize,
    /// That listener, when the vhost made it: a copy of its socket.
    new_listener: Option<NewListener>,
}

/// A listening socket another loop accepts on too.
struct NewListener {
    sock: std::net::TcpListener,
    tls: bool,
    own: bool,
    addr: SocketAddr,
    wanted: SocketAddr,
}

impl Service {
    /// Loop number `tsi`, polling `poll`: the same vhosts, its own
    /// protocol instances, a copy of each listening socket registered in
    /// its poll.
    pub(super) fn replica(&self, tsi: usize, poll: Poll) -> crate::Result<Service> {
        let mut sh = Env::new(poll.registry(), &self.sh.handle, self.sh.limits, tsi, Instant::now());
        sh.vhosts = Arc::clone(&self.sh.vhosts);
        sh.listeners = self.sh.listeners.clone();
        sh.listen_ports = self.sh.listen_ports.clone();
        for (v, live) in self.sh.vhosts.iter().zip(&self.sh.live) {
            let Some(live) = live.replica() else {
                return Err(crate::Error::invalid_input(format!(
                    "vhost {:?}: a protocol could not be made for service thread {tsi} (its maker failed)",
                    v.name
                )));
            };
            sh.live.push(live);
        }
        let mut wsis = Slab::new();
        for (_, w) in self.wsis.iter() {
            let Wsi::Listen(l) = w else { continue };
            // A socket of its own on the port, or a copy of the first
            // loop's (one queue, handed out by load).
            let copy = if l.own {
                self.own_socket(l.index)?
            } else {
                std::net::TcpListener::from(std::os::fd::AsFd::as_fd(&l.sock).try_clone_to_owned()?)
            };
            let mut sock = TcpListener::from_std(copy);
            let entry = wsis.vacant_entry();
            poll.registry().register(&mut sock, Token(entry.key()), Interest::READABLE)?;
            entry.insert(Wsi::Listen(Listen { sock, index: l.index, tls: l.tls, own: l.own, forced: false }));
        }
        let mut service = Service::blank(tsi, poll, sh, (self.max_conns, self.total_conns), self.reuse_port);
        service.wsis = wsis;
        service.addrs = self.addrs.clone();
        service.wanted = self.wanted.clone();
        service.listener_tls = self.listener_tls.clone();
        service.vhost_listener = self.vhost_listener.clone();
        service.asked = self.asked.clone();
        Ok(service)
    }

    /// Vhosts the first loop attached since this one last looked: served
    /// here too, their protocols initialised.
    pub(super) fn take_replicas(&mut self) {
        let Some(signals) = self.sh.handle.inner.loops.get(self.tsi) else { return };
        let replicas = std::mem::take(&mut *signals.replicas.lock().unwrap_or_else(|e| e.into_inner()));
        for r in replicas {
            if let Some(l) = r.new_listener {
                let index = self.sh.listeners.len();
                let mut sock = TcpListener::from_std(l.sock);
                let entry = self.wsis.vacant_entry();
                if self.drain.is_none() {
                    if let Err(e) = self.poll.registry().register(&mut sock, Token(entry.key()), Interest::READABLE) {
                        log::error!("loop {}: cannot watch the listener on {}: {e}", self.tsi, l.addr);
                    } else {
                        entry.insert(Wsi::Listen(Listen { sock, index, tls: l.tls, own: l.own, forced: false }));
                    }
                }
                self.addrs.push(l.addr);
                self.sh.listen_ports.push(l.addr.port());
                self.wanted.push(l.wanted);
                self.listener_tls.push(l.tls);
                self.sh.listeners.push(Vec::new());
            }
            let vi = self.sh.live.len();
            if let Some(vs) = self.sh.listeners.get_mut(r.listener) {
                vs.push(vi);
            }
            self.vhost_listener.push(r.listener);
            self.sh.vhosts = r.vhosts;
            self.sh.live.push(r.live);
            let Env { live, commands, handle, .. } = &mut self.sh;
            for (pi, p) in live[vi].protocols.iter_mut().enumerate() {
                let mut cx = Cx { commands, vhost: vi, protocol: pi, handle };
                dispatch_guarded(p.as_mut(), &mut cx, RawEvent::ProtocolInit);
            }
            self.apply_commands();
        }
    }

    /// Hands vhost `vi`, just attached, to the other loops (with a copy
    /// of its listener if it made one: `listeners_before` were there),
    /// each with its set of protocol instances from `sets`, in loop order.
    pub(super) fn hand_to_other_loops(
        &mut self,
        vi: usize,
        listeners_before: usize,
        sets: Vec<Vec<Box<dyn crate::protocol::AnyProtocol>>>,
    ) {
        let inner = Arc::clone(&self.sh.handle.inner);
        for ((tsi, signals), protocols) in inner.loops.iter().enumerate().skip(1).zip(sets) {
            let live = self.sh.live[vi].with_protocols(protocols);
            let li = self.vhost_listener[vi];
            let new_listener = if self.sh.listeners.len() > listeners_before {
                let sock = self.wsis.iter().find_map(|(_, w)| match w {
                    Wsi::Listen(l) if l.index == li && l.own => Some(self.own_socket(li).map(|s| (s, true))),
                    Wsi::Listen(l) if l.index == li => Some(
                        std::os::fd::AsFd::as_fd(&l.sock)
                            .try_clone_to_owned()
                            .map(|fd| (std::net::TcpListener::from(fd), false)),
                    ),
                    _ => None,
                });
                match sock {
                    Some(Ok((sock, own))) => Some(NewListener {
                        sock,
                        own,
                        tls: self.listener_tls[li],
                        addr: self.addrs[li],
                        wanted: self.wanted[li],
                    }),
                    Some(Err(e)) => {
                        log::error!("loop {tsi} cannot accept on {}: {e}", self.addrs[li]);
                        None
                    }
                    None => None,
                }
            } else {
                None
            };
            let replica = Replica { vhosts: Arc::clone(&self.sh.vhosts), live, listener: li, new_listener };
            signals.replicas.lock().unwrap_or_else(|e| e.into_inner()).push(replica);
            signals.wake();
        }
    }

    /// The loop that serves the next connection: the one with the fewest
    /// (this one when it ties), among those below their share; `None`
    /// when all are at it.
    pub(super) fn least_loaded(&self) -> Option<usize> {
        let loops = &self.sh.handle.inner.loops;
        if loops.len() == 1 {
            return (self.open_conns < self.max_conns).then_some(self.tsi);
        }
        let load = |i: usize| loops[i].load().filter(|&n| n < self.max_conns);
        let mut best = load(self.tsi).map(|n| (n, self.tsi));
        for i in (0..loops.len()).filter(|&i| i != self.tsi) {
            if let Some(n) = load(i) {
                if best.is_none_or(|(b, _)| n < b) {
                    best = Some((n, i));
                }
            }
        }
        best.map(|(_, i)| i)
    }

    /// Adopts a connection admitted already (its peer counted); a
    /// failure gives the peer's count back. `count`: the loop's load
    /// has not counted it yet (it was not handed over).
    pub(super) fn adopt_counted(
        &mut self,
        stream: TcpStream,
        peer: SocketAddr,
        listener: usize,
        tls: bool,
        count: bool,
    ) {
        let signals = &self.sh.handle.inner.loops[self.tsi];
        if count {
            signals.loaded(1);
        }
        if let Err(e) = self.adopt(stream, peer, listener, tls) {
            log::warn!("{peer}: cannot adopt connection: {e}");
            self.sh.handle.inner.loops[self.tsi].unloaded(1);
            if self.sh.limits.peer_connections > 0 {
                self.sh.handle.inner.peers.left(peer.ip());
            }
        }
    }

    /// A socket of another loop's own on listener `index`'s port
    /// (`SO_REUSEPORT`), bound to the port's device if it has one.
    fn own_socket(&self, index: usize) -> io::Result<std::net::TcpListener> {
        let sock = crate::listen::reuse_port_listener(self.addrs[index])?;
        let first = self.sh.listeners[index].first().map(|&v| &self.sh.vhosts[v]);
        if let Some((v, device)) = first.and_then(|v| Some((v, v.bind_device.as_ref()?))) {
            crate::vhost::bind_device(&sock, &v.name, device).map_err(|e| io::Error::other(e.to_string()))?;
        }
        Ok(sock)
    }

    /// Connections another loop accepted for this one.
    pub(super) fn take_handed(&mut self) {
        let handed = self.sh.handle.inner.loops[self.tsi].take_handed();
        for h in handed {
            self.adopt_counted(h.stream, h.peer, h.listener, h.tls, false);
        }
    }

    /// The loop ends: no more connections are handed to it, and those
    /// handed and not adopted are closed (their peers' counts given back).
    pub(super) fn end_handing(&mut self) {
        let inner = &self.sh.handle.inner;
        for h in inner.loops[self.tsi].ended() {
            if self.sh.limits.peer_connections > 0 {
                inner.peers.left(h.peer.ip());
            }
        }
    }

    /// Keeps the per-protocol lists up to date with what the connection at
    /// `key` is bound to now (after each of its turns; none once closed).
    pub(super) fn reindex(&mut self, key: usize) {
        let Some(Wsi::Conn(c)) = self.wsis.get_mut(key) else { return };
        let now = c.bound_to();
        if now == c.listed {
            return;
        }
        let was = std::mem::replace(&mut c.listed, now);
        self.relist(key, was, now);
    }

    /// Moves `key` from the list of `was` to that of `now`.
    pub(super) fn relist(&mut self, key: usize, was: Option<(usize, usize)>, now: Option<(usize, usize)>) {
        if let Some(p) = was {
            if let Some(set) = self.members.get_mut(&p) {
                set.remove(&key);
                if set.is_empty() {
                    self.members.remove(&p);
                }
            }
        }
        if let Some(p) = now {
            self.members.entry(p).or_default().insert(key);
        }
    }

    /// A writeable callback for each connection of this loop bound to
    /// `protocol` of `vhost`: its list, not a scan of every connection.
    pub(super) fn writable_all(&mut self, vhost: usize, protocol: usize) {
        let Some(keys) = self.members.get(&(vhost, protocol)) else { return };
        for &key in keys {
            if let Some(Wsi::Conn(c)) = self.wsis.get_mut(key) {
                if c.bound_to() == Some((vhost, protocol)) {
                    c.core.want_writable = true;
                    self.sh.force(&mut c.core);
                }
            }
        }
    }

    /// What other loops asked of this one's connections.
    pub(super) fn take_writable_all(&mut self) {
        let Some(l) = self.sh.handle.inner.loops.get(self.tsi) else { return };
        let asked = std::mem::take(&mut *l.writable_all.lock().unwrap_or_else(|e| e.into_inner()));
        for (vhost, protocol) in asked {
            self.writable_all(vhost, protocol);
        }
    }
}
