//! The event loop: one mio `Poll`, a slab of wsi keyed by token, a timer
//! wheel, a waker, and the forced-service list. The only module that
//! polls or registers.

mod accept;
#[cfg(feature = "cgi")]
mod cgi;
mod drain;
mod loops;
mod raw;

use drain::Drain;
pub(crate) use loops::Replica;

use crate::conn::{Env, Step};
use crate::context::{check_context, ContextHandle, ContextInfo, HandleInner, VhostInfo};
use crate::protocol::{Command, Cx, RawEvent};
use crate::roles::Conn;
use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token, Waker};
use slab::Slab;
use std::io;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

const WAKER: Token = Token(usize::MAX - 1);
/// Events taken from the poll per turn.
pub(crate) const EVENTS: usize = 1024;
/// Connections accepted per readiness event before others get a turn.
const ACCEPT_BUDGET: usize = 64;
/// Descriptors kept back from the connection limit: listeners, epoll,
/// the waker, stdio, logs, and an open-file cache of a few hundred.
const FD_RESERVE: usize = 512;
/// Fewer connections than this and the server refuses to start.
const MIN_CONNECTIONS: usize = 8;
/// How long accepting pauses when the process is out of descriptors.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// The least time between two warnings that accepting is out of
/// descriptors.
const OUT_OF_FDS_LOG_EVERY: Duration = Duration::from_secs(60);
/// While draining, how long an idle keep-alive connection is kept for a
/// request its client may have sent already (one sent meanwhile is still
/// answered, with `Connection: close`).
pub(crate) const DRAIN_IDLE: Duration = Duration::from_secs(1);

/// A wsi: a listening socket or a connection.
///
/// Connections are nearly every entry, so they sit in the slab itself
/// rather than in a box each: a box would cost every connection an
/// allocation's header and size-class rounding (measured: about 40 bytes
/// per idle connection) to save the few listeners and pipes some bytes.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
enum Wsi {
    Listen(Listen),
    /// A connection, whatever its role.
    Conn(Conn),
    /// A slot whose wsi is gone. Closed slots stay vacated until the end of
    /// the loop turn, so that events of the turn still queued for the old
    /// wsi cannot land on a new one that took its token.
    Vacated,
    /// A CGI program's pipe or pidfd.
    #[cfg(feature = "cgi")]
    Cgi(cgi::CgiWsi),
}

#[derive(Debug)]
struct Listen {
    sock: TcpListener,
    index: usize,
    /// Its vhosts speak TLS.
    tls: bool,
    /// A socket of this loop's own on a shared port (`SO_REUSEPORT`,
    /// [`ContextInfo::reuse_port`]): what it accepts, it serves.
    own: bool,
    /// Queued on the forced-service list (more connections are waiting).
    forced: bool,
}

/// One service loop.
pub(crate) struct Service {
    /// Its index among the context's loops (lws's tsi); 0 binds and
    /// attaches vhosts added later, then hands them to the others.
    tsi: usize,
    poll: Poll,
    wsis: Slab<Wsi>,
    /// What roles may use of the loop.
    sh: Env,
    /// Protocol timers ([`Cx::schedule`]): when, vhost, protocol.
    protocol_timers: Vec<(Instant, usize, usize)>,
    /// Each wsi's own timer ([`Cx::set_timer`]), by slab key.
    wsi_timers: crate::timer::TimerWheel,
    /// Bound address of each listener, and the address it was asked for.
    addrs: Vec<SocketAddr>,
    wanted: Vec<SocketAddr>,
    /// Whether each listener speaks TLS.
    listener_tls: Vec<bool>,
    vhost_listener: Vec<usize>,
    /// Ports bound here get a socket per loop (`SO_REUSEPORT`).
    reuse_port: bool,
    /// When accepting last warned it was out of descriptors, and how
    /// many times it was since.
    out_of_fds: Option<(Instant, u64)>,
    /// Connections this loop serves at most.
    max_conns: usize,
    /// The connections bound to each (vhost, protocol), by slab key, for
    /// `callback_on_writable_all_protocol` (each connection says which
    /// list it is on: `Conn::listed`).
    members: std::collections::HashMap<(usize, usize), std::collections::BTreeSet<usize>>,
    /// Counts the connections it takes (`warren_loop_connections_total`).
    taken: Arc<std::sync::atomic::AtomicU64>,
    /// Connections the whole process serves at most.
    total_conns: usize,
    open_conns: usize,
    /// Slots vacated this turn, freed at its end.
    vacated: Vec<usize>,
    /// A turn's scratch lists, kept to reuse their allocations: the
    /// forced-service list being served, and the timers that expired.
    turn_forced: Vec<usize>,
    turn_expired: Vec<usize>,
    generation: u32,
    factory: Option<crate::context::FopsFactory>,
    /// Listening sockets handed over, until a vhost takes each.
    inherited: Vec<std::net::TcpListener>,
    /// The addresses the context's vhosts ask for.
    asked: Vec<SocketAddr>,
    /// A drain under way.
    drain: Option<Drain>,
    /// The access logs of the vhosts, one per file.
    access_logs: crate::access_log::AccessLogs,
    /// The access log of vhosts that name none
    /// ([`ContextInfo::default_access_log`]).
    default_access_log: Option<std::path::PathBuf>,
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service").field("addrs", &self.addrs).field("open_conns", &self.open_conns).finish()
    }
}

impl Service {
    /// The context's loops (at least one; [`ContextInfo::threads`]), the
    /// first with the vhosts built and their listeners bound, the others
    /// sharing them.
    pub(crate) fn new(info: ContextInfo) -> crate::Result<(Vec<Service>, ContextHandle)> {
        check_context(&info)?;
        let mut info = info;
        let threads = info.threads.max(1);
        if threads > crate::context::MAX_THREADS {
            return Err(crate::Error::invalid_input(format!(
                "{threads} service threads: at most {} are supported",
                crate::context::MAX_THREADS
            )));
        }
        if threads > 1 {
            for v in &info.vhosts {
                if let Some(p) = v.protocols.iter().find(|p| !p.per_loop()) {
                    return Err(crate::Error::invalid_input(format!(
                        "vhost {:?}: protocol {:?} was given as one instance (VhostInfo::protocol), and {threads} \
                         service threads each need their own: give it with VhostInfo::protocol_per_loop",
                        v.name,
                        p.name()
                    )));
                }
            }
        }
        ignore_sigpipe();
        let mut polls = Vec::with_capacity(threads);
        let mut signals = Vec::with_capacity(threads);
        for _ in 0..threads {
            let poll = Poll::new()?;
            signals.push(crate::signals::LoopSignals::new(Waker::new(poll.registry(), WAKER)?));
            polls.push(poll);
        }
        let handle = ContextHandle {
            inner: Arc::new(HandleInner {
                loops: signals,
                stop: Default::default(),
                drain: std::sync::Mutex::new(crate::context::DrainState {
                    closed: vec![false; threads],
                    waiters: Vec::new(),
                }),
                listeners: Default::default(),
                metrics: info.metrics.take().unwrap_or_default(),
                peers: Default::default(),
                new_vhosts: Default::default(),
                vhosts_closed: Default::default(),
                reopen_logs: Default::default(),
                #[cfg(feature = "tls")]
                certs: Default::default(),
            }),
        };
        // What each loop holds whatever it serves: its poll (twice: the
        // CGI reaper has its own handle), its waker, and a copy of each
        // listener; these come off the process's descriptors first.
        let per_loop_fds = 3 + info.vhosts.len();
        let loops_fds = per_loop_fds * threads;
        let mut total_conns = match info.limits.max_connections {
            Some(n) => n,
            None => connections_for(fd_limit().saturating_sub(loops_fds))?,
        };
        // Each loop's share, rounded up so that loops all at their share
        // are the process at its limit (and a connection is refused
        // rather than left waiting); or what each may have on its own.
        let per_loop = match info.fd_limit_per_thread.filter(|_| threads > 1) {
            Some(fds) => {
                let n = connections_for(fds.saturating_sub(per_loop_fds))?;
                total_conns = total_conns.min(n.saturating_mul(threads));
                n
            }
            None => total_conns.div_ceil(threads),
        };
        let mut polls = polls.into_iter();
        let Some(first_poll) = polls.next() else {
            return Err(crate::Error::invalid_input("no service loop".to_string()));
        };
        let now = Instant::now();
        let sh = Env::new(first_poll.registry(), &handle, info.limits, 0, now);
        let mut service = Service::blank(0, first_poll, sh, (per_loop, total_conns), info.reuse_port && threads > 1);
        service.factory = info.fops_factory.take();
        service.inherited = std::mem::take(&mut info.inherited);
        service.asked = info.vhosts.iter().map(|v| v.listen).collect();
        service.default_access_log = info.default_access_log.take();
        for v in std::mem::take(&mut info.vhosts) {
            service.attach_vhost(v)?;
        }
        for l in service.inherited.drain(..) {
            match l.local_addr() {
                Ok(a) => log::info!("a listening socket handed over, on {a}, matches no vhost's address; closed"),
                Err(e) => log::warn!("a descriptor handed over as a listening socket is not one ({e}); closed"),
            }
        }
        let mut services = Vec::with_capacity(threads);
        for (i, poll) in polls.enumerate() {
            let replica = service.replica(i + 1, poll)?;
            services.push(replica);
        }
        services.insert(0, service);
        Ok((services, handle))
    }

    /// Loop number `tsi` with nothing to serve yet: `conns` is what it may
    /// serve and what the process may.
    fn blank(tsi: usize, poll: Poll, sh: Env, conns: (usize, usize), reuse_port: bool) -> Service {
        let taken = sh.handle.inner.metrics.loop_counter(tsi);
        Service {
            tsi,
            poll,
            wsis: Slab::new(),
            sh,
            protocol_timers: Vec::new(),
            wsi_timers: crate::timer::TimerWheel::new(Instant::now()),
            addrs: Vec::new(),
            wanted: Vec::new(),
            listener_tls: Vec::new(),
            vhost_listener: Vec::new(),
            reuse_port,
            out_of_fds: None,
            max_conns: conns.0,
            taken,
            members: Default::default(),
            total_conns: conns.1,
            open_conns: 0,
            vacated: Vec::new(),
            turn_forced: Vec::new(),
            turn_expired: Vec::new(),
            generation: 0,
            factory: None,
            inherited: Vec::new(),
            asked: Vec::new(),
            drain: None,
            access_logs: Default::default(),
            default_access_log: None,
        }
    }

    /// Builds a vhost (checked, its mounts resolved, its credentials,
    /// error pages and access log opened) and binds its address unless a
    /// vhost already listens there. Returns the address it listens on.
    fn attach_vhost(&mut self, mut v: VhostInfo) -> crate::Result<SocketAddr> {
        if v.access_log.is_none() {
            v.access_log = self.default_access_log.clone();
        }
        let metrics = &self.sh.handle.inner.metrics;
        let (v, live) = crate::vhost::build(v, self.factory.as_ref(), &mut self.access_logs, Instant::now(), metrics)?;
        #[cfg(feature = "tls")]
        let tls = v.tls.is_some();
        #[cfg(not(feature = "tls"))]
        let tls = false;
        let vi = self.sh.vhosts.len();
        let li = match self.wanted.iter().position(|a| *a == v.listen) {
            Some(li) => {
                let first = &self.sh.vhosts[self.sh.listeners[li][0]];
                crate::vhost::check_shared_port(&v.name, v.listen, tls, (&first.name, self.listener_tls[li]))?;
                if v.bind_device.is_some() && v.bind_device != first.bind_device {
                    log::warn!(
                        "vhost {:?}: its bind-to-device has no effect: the first vhost of {}, {:?}, decides the \
                         port's device",
                        v.name,
                        v.listen,
                        first.name
                    );
                }
                #[cfg(feature = "tls")]
                if v.plain_on_tls != crate::tls::PlainOnTls::Drop && first.plain_on_tls == crate::tls::PlainOnTls::Drop
                {
                    log::warn!(
                        "vhost {:?}: its plaintext setting (allow-non-tls) has no effect: the first vhost of {}, \
                         {:?}, drops plaintext clients before any request names a vhost",
                        v.name,
                        v.listen,
                        first.name
                    );
                }
                li
            }
            None => {
                // With `reuse_port`, a port bound here, or handed over
                // with SO_REUSEPORT set, gets a socket per loop; another
                // handed over is shared (handed out by load).
                let (std_sock, own) = match self.take_inherited(v.listen) {
                    Some(l) => {
                        let own = self.reuse_port && socket2::SockRef::from(&l).reuse_port().unwrap_or(false);
                        (l, own)
                    }
                    None if self.reuse_port => (crate::listen::bind_reuse_port_listener(v.listen)?, true),
                    None => (crate::listen::bind_listener(v.listen)?, false),
                };
                // Set on a socket handed over too: the configuration may
                // name another device now.
                if let Some(device) = &v.bind_device {
                    crate::vhost::bind_device(&std_sock, &v.name, device)?;
                }
                std_sock.set_nonblocking(true)?;
                let copy = std_sock.try_clone()?;
                let mut sock = TcpListener::from_std(std_sock);
                let index = self.sh.listeners.len();
                let entry = self.wsis.vacant_entry();
                self.poll.registry().register(&mut sock, Token(entry.key()), Interest::READABLE)?;
                let addr = sock.local_addr()?;
                self.addrs.push(addr);
                self.sh.listen_ports.push(addr.port());
                entry.insert(Wsi::Listen(Listen { sock, index, tls, own, forced: false }));
                self.wanted.push(v.listen);
                self.listener_tls.push(tls);
                self.sh.listeners.push(Vec::new());
                self.sh.handle.inner.listeners.lock().unwrap_or_else(|e| e.into_inner()).push(copy);
                index
            }
        };
        self.sh.listeners[li].push(vi);
        self.vhost_listener.push(li);
        #[cfg(feature = "tls")]
        if let Some(slot) = v.tls.as_ref().and_then(|t| t.slot.as_ref()) {
            let mut certs = self.sh.handle.inner.certs.lock().unwrap_or_else(|e| e.into_inner());
            certs.push((v.name.clone(), Arc::clone(slot)));
        }
        // Vhosts are immutable while they serve: roles only read them.
        // Adding one (at start, and on `ContextHandle::add_vhost`) pushes
        // in place while the loop holds the only reference, and copies the
        // table only if another holder shares it.
        Arc::make_mut(&mut self.sh.vhosts).push(v);
        self.sh.live.push(live);
        Ok(self.addrs[li])
    }

    /// Vhosts handed over by [`ContextHandle::add_vhost`]: attach each,
    /// say how it went, and initialise its protocols.
    fn attach_new_vhosts(&mut self) {
        let pending = std::mem::take(&mut *self.sh.handle.inner.new_vhosts.lock().unwrap_or_else(|e| e.into_inner()));
        for (v, reply) in pending {
            let name = v.name.clone();
            if self.drain.is_some() {
                let why = format!("vhost {name:?}: the context is draining; it takes no new vhost");
                let _ = reply.send(Err(crate::Error::invalid_input(why)));
                continue;
            }
            let loops = self.sh.handle.inner.loops.len();
            if loops > 1 {
                if let Some(p) = v.protocols.iter().find(|p| !p.per_loop()) {
                    let why = format!(
                        "vhost {name:?}: protocol {:?} was given as one instance (VhostInfo::protocol), and the \
                         context's {loops} service threads each need their own: give it with \
                         VhostInfo::protocol_per_loop",
                        p.name()
                    );
                    let _ = reply.send(Err(crate::Error::invalid_input(why)));
                    continue;
                }
            }
            // The other loops' instances of its protocols, made before it
            // is attached: a maker that fails refuses the vhost on every
            // loop, rather than leave one loop without it.
            let sets: Option<Vec<Vec<Box<dyn crate::protocol::AnyProtocol>>>> =
                (1..loops).map(|_| v.protocols.iter().map(|p| p.replica()).collect()).collect();
            let Some(sets) = sets else {
                let why = format!("vhost {name:?}: a protocol's maker failed for one of the service threads");
                let _ = reply.send(Err(crate::Error::invalid_input(why)));
                continue;
            };
            let listeners_before = self.sh.listeners.len();
            let result = self.attach_vhost(v);
            if result.is_ok() {
                let vi = self.sh.vhosts.len() - 1;
                self.hand_to_other_loops(vi, listeners_before, sets);
                let Env { live, commands, handle, .. } = &mut self.sh;
                for (pi, p) in live[vi].protocols.iter_mut().enumerate() {
                    let mut cx = Cx { commands, vhost: vi, protocol: pi, handle };
                    dispatch_guarded(p.as_mut(), &mut cx, RawEvent::ProtocolInit);
                }
                self.apply_commands();
                log::info!("vhost {name:?} added on {:?}", result.as_ref().ok());
            }
            let _ = reply.send(result);
        }
    }

    /// The inherited listener for `addr`, if one was handed over: one
    /// bound to that address; else, for `0.0.0.0:P`, one on `[::]:P`
    /// (dual-stack: it serves IPv4 too; not the other way round, which
    /// would lose IPv6); else, when `addr` asks for any port (0), one on
    /// its IP (a reload keeps the port the system chose before). A
    /// fallback never takes a socket whose own address a vhost of the
    /// context asks for.
    fn take_inherited(&mut self, addr: SocketAddr) -> Option<std::net::TcpListener> {
        let asked = &self.asked;
        let fallback = |a: SocketAddr| {
            let dual_stack = addr.ip() == std::net::Ipv4Addr::UNSPECIFIED
                && a.ip() == std::net::Ipv6Addr::UNSPECIFIED
                && a.port() == addr.port();
            let any_port = addr.port() == 0 && a.ip() == addr.ip();
            (dual_stack || any_port) && !asked.contains(&a)
        };
        let exact = self.inherited.iter().position(|l| l.local_addr().is_ok_and(|a| a == addr));
        let i = exact.or_else(|| self.inherited.iter().position(|l| l.local_addr().is_ok_and(fallback)))?;
        Some(self.inherited.swap_remove(i))
    }

    pub(crate) fn listening(&self) -> Vec<crate::context::Listening> {
        let tls = |_v: &crate::vhost::Vhost| {
            #[cfg(feature = "tls")]
            return _v.tls.is_some();
            #[cfg(not(feature = "tls"))]
            false
        };
        self.sh
            .vhosts
            .iter()
            .zip(&self.vhost_listener)
            .map(|(v, &li)| crate::context::Listening { vhost: v.name.clone(), addr: self.addrs[li], tls: tls(v) })
            .collect()
    }

    pub(crate) fn access_log_paths(&self) -> Vec<std::path::PathBuf> {
        self.access_logs.paths()
    }

    pub(crate) fn local_addr(&self, vhost: usize) -> Option<SocketAddr> {
        self.vhost_listener.get(vhost).and_then(|&l| self.addrs.get(l)).copied()
    }

    pub(crate) fn max_connections(&self) -> usize {
        self.total_conns
    }

    pub(crate) fn run(mut self) -> io::Result<()> {
        self.start();
        let mut events = Events::with_capacity(EVENTS);
        let result = loop {
            let timeout = self.next_timeout();
            match self.turn(&mut events, timeout) {
                Ok(true) => {}
                Ok(false) => break Ok(()),
                // The same ending as a stop: connections closed, CGI
                // groups ended, whoever waits told.
                Err(e) => break Err(e),
            }
        };
        self.finish();
        result
    }

    /// What a loop does before its first turn: every protocol hears
    /// `ProtocolInit`.
    pub(crate) fn start(&mut self) {
        self.broadcast(|| RawEvent::ProtocolInit);
        if self.tsi == 0 {
            log::info!("serving on {:?}, up to {} connections", self.addrs, self.total_conns);
        }
        if self.tsi == 0 && self.total_conns < 100 {
            log::warn!(
                "only {} connections at once: the file descriptor limit is low (raise it with ulimit -n)",
                self.total_conns
            );
        }
    }

    /// How long the next poll may wait: until the nearest deadline (the
    /// connections' timers, the wsis' own, protocol timers, the reaper's
    /// and kept FastCGI connections', a drain's next step); zero while the
    /// forced-service list has work; `None` when nothing is due.
    pub(crate) fn next_timeout(&self) -> Option<Duration> {
        if !self.sh.forced.is_empty() {
            return Some(Duration::ZERO);
        }
        let now = Instant::now();
        let wheel = self.sh.timers.next_timeout(now);
        let wheel = match (wheel, self.wsi_timers.next_timeout(now)) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let protocol = self.protocol_timers.iter().map(|t| t.0.saturating_duration_since(now)).min();
        // The reaper's deadlines (signals due; exits come as pidfd
        // events, polled only where pidfds are missing: no SIGCHLD
        // handler, the process may not be ours to take it over),
        // and kept FastCGI connections' idle ends.
        #[cfg(feature = "cgi")]
        let protocol = match self.sh.reaper.next_wake(now).into_iter().chain(self.sh.fcgi.next_expiry()).min() {
            Some(at) => {
                let wake = at.saturating_duration_since(now);
                Some(protocol.map_or(wake, |p| p.min(wake)))
            }
            None => protocol,
        };
        let drain = self.drain.as_ref().map(|d| d.next_step().saturating_duration_since(now));
        [wheel, protocol, drain].into_iter().flatten().min()
    }

    /// One turn of the loop: poll (waiting at most `timeout`), serve each
    /// wsi with an event, then the forced-service list, then whatever
    /// timers are due, then what the wake-up asked for. False when the
    /// loop is to end (a stop, or the end of a drain); an error when it
    /// cannot poll.
    pub(crate) fn turn(&mut self, events: &mut Events, timeout: Option<Duration>) -> io::Result<bool> {
        if let Err(e) = self.poll.poll(events, timeout) {
            if e.kind() == io::ErrorKind::Interrupted {
                return Ok(true);
            }
            return Err(e);
        }
        self.sh.now = Instant::now();
        self.sh.date.refresh();
        // Before any event is served: a line logged after the reopen
        // was asked for goes to the new file.
        if self.tsi == 0 && self.sh.handle.inner.reopen_logs.swap(false, Ordering::AcqRel) {
            self.access_logs.reopen();
        }
        let mut woken = false;
        for ev in events.iter() {
            let key = ev.token().0;
            if ev.token() == WAKER {
                woken = true;
                continue;
            }
            match self.wsis.get_mut(key) {
                Some(Wsi::Conn(c)) => {
                    c.core.note_readiness(ev);
                    self.service_conn(key);
                }
                Some(Wsi::Listen(_)) => self.accept(key),
                #[cfg(feature = "cgi")]
                Some(&mut Wsi::Cgi(w)) => {
                    let readable = ev.is_readable() || ev.is_read_closed() || ev.is_error();
                    let writable = ev.is_writable() || ev.is_write_closed() || ev.is_error();
                    self.cgi_event(key, w, readable, writable)
                }
                // Sporadic events for a closed wsi happen; ignore them.
                Some(Wsi::Vacated) | None => {}
            }
        }
        let mut forced = std::mem::take(&mut self.turn_forced);
        std::mem::swap(&mut forced, &mut self.sh.forced);
        for key in forced.drain(..) {
            match self.wsis.get_mut(key) {
                Some(Wsi::Conn(c)) => {
                    c.core.forced = false;
                    self.service_conn(key);
                }
                Some(Wsi::Listen(l)) => {
                    l.forced = false;
                    self.accept(key);
                }
                _ => {}
            }
        }
        self.turn_forced = forced;
        self.fire_protocol_timers();
        let mut expired = std::mem::take(&mut self.turn_expired);
        self.sh.timers.expire(self.sh.now, &mut expired);
        for key in expired.drain(..) {
            match self.wsis.get(key) {
                Some(Wsi::Conn(_)) => self.conn_timer(key),
                Some(Wsi::Listen(_)) => self.accept(key),
                _ => {}
            }
        }
        self.wsi_timers.expire(self.sh.now, &mut expired);
        for key in expired.drain(..) {
            self.wsi_timer(key);
        }
        self.turn_expired = expired;
        #[cfg(feature = "cgi")]
        self.cgi_turn();
        if self.sh.limits.peer_requests > 0 {
            let peers = &self.sh.handle.inner.peers;
            peers.set_waiting(self.tsi, !self.sh.peer_waiters.is_empty());
            if peers.take_freed(self.tsi) && !self.sh.peer_waiters.is_empty() {
                self.wake_peer_waiters();
                self.sh.handle.inner.peers.set_waiting(self.tsi, !self.sh.peer_waiters.is_empty());
            }
        }
        for key in self.vacated.drain(..) {
            if matches!(self.wsis.get(key), Some(Wsi::Vacated)) {
                self.wsis.remove(key);
            }
        }
        if woken {
            let inner = Arc::clone(&self.sh.handle.inner);
            let Some(signals) = inner.loops.get(self.tsi) else { return Ok(false) };
            if signals.cancels.swap(0, Ordering::AcqRel) > 0 {
                self.broadcast(|| RawEvent::EventWaitCancelled);
            }
            if signals.files_ready.swap(false, Ordering::AcqRel) {
                // Requests waiting for a file open again, as their
                // timer would have them do.
                let waiting: Vec<usize> = self
                    .wsis
                    .iter()
                    .filter(|(_, w)| matches!(w, Wsi::Conn(c) if c.waits_for_file()))
                    .map(|(k, _)| k)
                    .collect();
                for key in waiting {
                    self.conn_timer(key);
                }
            }
            if inner.stop.load(Ordering::Acquire) {
                return Ok(false);
            }
            let asked = signals.drain.lock().unwrap_or_else(|e| e.into_inner()).take();
            match (asked, self.drain.as_mut()) {
                (Some(request), None) => self.start_drain(request),
                (Some(request), Some(d)) => d.tighten(request, self.sh.now),
                (None, _) => {}
            }
            if self.tsi == 0 {
                self.attach_new_vhosts();
            } else {
                self.take_replicas();
            }
            self.take_handed();
            self.take_writable_all();
        }
        Ok(!(self.drain.is_some() && self.drain_turn()))
    }

    /// How a loop ends, whatever ended it: connections closed, the
    /// listening sockets closed and whoever waits for that told, CGI
    /// groups ended, and every protocol hears `ProtocolDestroy`.
    pub(crate) fn finish(&mut self) {
        if self.tsi == 0 {
            // Vhosts asked for and not attached, or asked for from now
            // on: refused, so no caller waits for ever.
            let inner = &self.sh.handle.inner;
            let mut queue = inner.new_vhosts.lock().unwrap_or_else(|e| e.into_inner());
            inner.vhosts_closed.store(true, Ordering::Release);
            for (v, reply) in queue.drain(..) {
                let why = format!("vhost {:?}: the context has stopped; it takes no new vhost", v.name);
                let _ = reply.send(Err(crate::Error::invalid_input(why)));
            }
        }
        self.end_handing();
        for key in self.conn_keys() {
            self.close(key);
        }
        self.drop_listeners();
        self.listeners_closed();
        #[cfg(feature = "cgi")]
        self.sh.reaper.finish();
        self.broadcast(|| RawEvent::ProtocolDestroy);
    }

    /// Takes what the poll holds without serving it: for a loop that has
    /// ended, whose only source left is its waker.
    pub(crate) fn clear_wakes(&mut self, events: &mut Events) -> io::Result<()> {
        match self.poll.poll(events, Some(Duration::ZERO)) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(()),
            other => other,
        }
    }

    /// The loop's descriptor for `epoll` (its `Poll`'s): readable when
    /// some wsi of the loop has an event, or the loop was woken.
    pub(crate) fn poll_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        use std::os::fd::AsFd;
        self.poll.registry().as_fd()
    }

    /// The slab keys of the connections.
    fn conn_keys(&self) -> Vec<usize> {
        self.wsis.iter().filter(|(_, w)| matches!(w, Wsi::Conn(_))).map(|(k, _)| k).collect()
    }

    /// Delivers the protocol timers that are due.
    fn fire_protocol_timers(&mut self) {
        let now = self.sh.now;
        if !self.protocol_timers.iter().any(|t| t.0 <= now) {
            return;
        }
        let (due, later): (Vec<_>, Vec<_>) = self.protocol_timers.drain(..).partition(|t| t.0 <= now);
        self.protocol_timers = later;
        for (_, vi, pi) in due {
            let Env { live, commands, handle, .. } = &mut self.sh;
            let mut cx = Cx { commands, vhost: vi, protocol: pi, handle };
            dispatch_guarded(live[vi].protocols[pi].as_mut(), &mut cx, RawEvent::Timer);
            self.apply_commands();
        }
    }

    /// Delivers a wsi-less event to every protocol of every vhost.
    fn broadcast(&mut self, event: impl Fn() -> RawEvent<'static>) {
        let Env { live, commands, handle, .. } = &mut self.sh;
        for (vi, v) in live.iter_mut().enumerate() {
            for (pi, p) in v.protocols.iter_mut().enumerate() {
                let mut cx = Cx { commands, vhost: vi, protocol: pi, handle };
                dispatch_guarded(p.as_mut(), &mut cx, event());
            }
        }
        self.apply_commands();
    }

    fn service_conn(&mut self, key: usize) {
        let Some(Wsi::Conn(conn)) = self.wsis.get_mut(key) else { return };
        // A bug (ours, a dependency's, a protocol's) that panics on some
        // input costs that connection, not the server: the connection is
        // dropped, whatever state it was in.
        let sh = &mut self.sh;
        let step = std::panic::catch_unwind(AssertUnwindSafe(|| conn.service(sh))).unwrap_or_else(|_| {
            log::error!("{}: panic while serving ({}); connection dropped", conn.core.peer, conn.phase());
            sh.heal();
            Step::Close
        });
        let (received, sent) = conn.core.out.take_traffic();
        sh.handle.inner.metrics.traffic(received, sent);
        match step {
            Step::Close => self.close(key),
            #[cfg(feature = "ws")]
            Step::Upgrade => self.upgrade(key),
            Step::Raw => self.fall_back(key),
            Step::Keep => self.after_service(key),
        }
        self.reindex(key);
        self.apply_commands();
    }

    /// A connection's timer fired: its role decides what that means.
    fn conn_timer(&mut self, key: usize) {
        self.conn_event(key, "a connection's timer", Conn::on_timer);
    }

    /// Gives the connection at `key` something other than readiness to
    /// handle (`what`, for the log: its deadline, its protocol's timer),
    /// a panic in it costing that connection only; then what every turn
    /// of a connection ends with.
    pub(super) fn conn_event(&mut self, key: usize, what: &str, event: fn(&mut Conn, &mut Env) -> Step) {
        let sh = &mut self.sh;
        let step = match self.wsis.get_mut(key) {
            Some(Wsi::Conn(c)) => std::panic::catch_unwind(AssertUnwindSafe(|| event(c, sh))),
            _ => return,
        };
        let step = step.unwrap_or_else(|_| {
            log::error!("panic in {what}; connection dropped");
            self.sh.heal();
            Step::Close
        });
        if let Some(Wsi::Conn(c)) = self.wsis.get_mut(key) {
            let (received, sent) = c.core.out.take_traffic();
            self.sh.handle.inner.metrics.traffic(received, sent);
        }
        match step {
            Step::Close => self.close(key),
            _ => self.after_service(key),
        }
        self.reindex(key);
        self.apply_commands();
    }

    /// After a connection's turn: what it started that the loop must
    /// watch (a CGI's pipes).
    fn after_service(&mut self, key: usize) {
        #[cfg(feature = "cgi")]
        self.register_cgi(key);
        #[cfg(not(feature = "cgi"))]
        let _ = key;
    }

    /// The connection at `key` switched to WebSocket: its role changes in
    /// place (same core, token and registration), and its protocol is told.
    #[cfg(feature = "ws")]
    fn upgrade(&mut self, key: usize) {
        let Some(Wsi::Conn(c)) = self.wsis.get_mut(key) else { return };
        let Some(request) = c.upgrade(&self.sh) else {
            self.close(key);
            return;
        };
        self.sh.timers.clear(key);
        c.became(&self.sh, crate::metrics::ConnRole::Ws);
        let sh = &mut self.sh;
        let step = std::panic::catch_unwind(AssertUnwindSafe(|| c.established(sh, &request))).unwrap_or_else(|_| {
            log::error!("panic in a WebSocket's established callback; connection dropped");
            sh.heal();
            Step::Close
        });
        // A stop's drain told WebSockets to go already: one upgraded since
        // (on a connection that was idle when it began) goes too.
        let go_away = self.drain.is_some_and(|d| d.ws_told);
        let step = match step {
            Step::Keep if go_away => c.drain(&mut self.sh, true),
            step => step,
        };
        if step == Step::Close {
            self.close(key);
        } else {
            self.service_conn(key);
        }
    }

    fn close(&mut self, key: usize) {
        let taken = match self.wsis.get_mut(key) {
            Some(slot @ Wsi::Conn(_)) => std::mem::replace(slot, Wsi::Vacated),
            _ => return,
        };
        self.vacated.push(key);
        let Wsi::Conn(mut conn) = taken else { return };
        self.relist(key, conn.listed.take(), None);
        let sh = &mut self.sh;
        if std::panic::catch_unwind(AssertUnwindSafe(|| conn.on_close(sh))).is_err() {
            log::error!("{}: panic in close callbacks", conn.core.peer);
            sh.heal();
        }
        let metrics = &self.sh.handle.inner.metrics;
        metrics.conn_closed(conn.counted());
        let (received, sent) = conn.core.out.take_traffic();
        metrics.traffic(received, sent);
        if let Err(e) = self.poll.registry().deregister(conn.core.out.sock.source()) {
            log::debug!("deregister: {e}");
        }
        self.sh.timers.clear(key);
        self.wsi_timers.clear(key);
        #[cfg(feature = "cgi")]
        self.free_dead_pipes();
        self.open_conns -= 1;
        self.sh.handle.inner.loops[self.tsi].unloaded(1);
        if self.sh.limits.peer_connections > 0 && !conn.core.adopted {
            self.sh.handle.inner.peers.left(conn.core.peer.ip());
        }
        self.apply_commands();
    }

    /// Gives request slots their peers gave back to the connections
    /// waiting for them, in arrival order (CORE-9, `ip-limit-ah`).
    fn wake_peer_waiters(&mut self) {
        let max = self.sh.limits.peer_requests;
        let mut waiters = std::mem::take(&mut self.sh.peer_waiters);
        waiters.retain(|&(key, generation)| {
            let Some(Wsi::Conn(c)) = self.wsis.get_mut(key) else { return false };
            if c.core.generation != generation {
                return false;
            }
            let ip = c.core.peer.ip();
            let Some(h) = c.http() else { return false };
            match crate::peers::Peers::begin(&self.sh.handle.inner, ip, max) {
                Some(slot) => {
                    h.grant_peer_slot(slot);
                    c.core.rx_paused = false;
                    self.sh.force(&mut c.core);
                    false
                }
                None => true,
            }
        });
        // Waiters added meanwhile (none: this runs between turns) go after.
        waiters.append(&mut self.sh.peer_waiters);
        self.sh.peer_waiters = waiters;
    }

    /// Applies what callbacks asked for about other connections.
    fn apply_commands(&mut self) {
        if self.sh.commands.is_empty() {
            return;
        }
        // In the order the callbacks made them.
        let mut commands = std::mem::take(&mut self.sh.commands);
        for cmd in commands.drain(..) {
            match cmd {
                Command::WritableAllProtocol { vhost, protocol, all_loops } => {
                    self.writable_all(vhost, protocol);
                    if all_loops {
                        let inner = Arc::clone(&self.sh.handle.inner);
                        for (i, l) in inner.loops.iter().enumerate().filter(|(i, _)| *i != self.tsi) {
                            let mut asked = l.writable_all.lock().unwrap_or_else(|e| e.into_inner());
                            if !asked.contains(&(vhost, protocol)) {
                                asked.push((vhost, protocol));
                            }
                            drop(asked);
                            log::trace!("loop {}: writeable callbacks asked of loop {i}", self.tsi);
                            l.wake();
                        }
                    }
                }
                Command::WsiTimer(id, after) => self.set_wsi_timer(id, after),
                Command::Adopt { vhost, protocol, what } => self.adopt_raw(vhost, protocol, what),
                Command::Schedule { vhost, protocol, after } => {
                    // Bounded: one pending timer per protocol and delay is
                    // plenty; a protocol asking in a loop gets no more.
                    if self.protocol_timers.len() < 4096 {
                        self.protocol_timers.push((self.sh.now + after, vhost, protocol));
                    }
                }
                _ => {
                    let Some(id) = cmd.target() else { continue };
                    if let Some(Wsi::Conn(c)) = self.wsis.get_mut(id.key as usize) {
                        if c.core.generation == id.generation {
                            c.apply(cmd, &mut self.sh);
                        }
                    }
                }
            }
        }
        // Keep the allocation; applying never queues new commands.
        if self.sh.commands.is_empty() {
            self.sh.commands = commands;
        }
    }
}

/// A context dropped without running (or after): its listeners' copies
/// close with it, whatever handles live on, so its ports stop taking
/// connections nobody would serve; whoever waits for that is told.
impl Drop for Service {
    fn drop(&mut self) {
        self.end_handing();
        self.listeners_closed();
    }
}

/// Delivers an event that concerns no connection. A protocol that panics
/// on it costs that one event, not the loop.
fn dispatch_guarded(p: &mut dyn crate::protocol::AnyProtocol, cx: &mut Cx<'_>, event: RawEvent<'_>) {
    if std::panic::catch_unwind(AssertUnwindSafe(|| p.dispatch(cx, event, None))).is_err() {
        log::error!("protocol {:?}: panic in a callback with no connection", p.name());
    }
}

/// A peer that resets while `sendfile(2)` writes to it (which, unlike
/// `send`, has no MSG_NOSIGNAL) must not kill the process: ignore SIGPIPE
/// unless the host program installed a handler of its own. Rust programs
/// ignore it already; this covers embedding in others.
fn ignore_sigpipe() {
    // SAFETY: querying and setting a signal disposition; SIG_IGN is a
    // valid disposition and no handler code runs.
    unsafe {
        let old = libc::signal(libc::SIGPIPE, libc::SIG_IGN);
        if old != libc::SIG_DFL && old != libc::SIG_ERR {
            libc::signal(libc::SIGPIPE, old);
        }
    }
}

/// The connection limit `fds` descriptors allow: each connection may
/// hold a socket and one open file; a reserve (a quarter of them, at most
/// [`FD_RESERVE`]) stays for listeners, the poll, pipes, logs and the
/// open-file cache. Too few to serve at all is an error saying so.
fn connections_for(fds: usize) -> io::Result<usize> {
    let reserve = (fds / 4).min(FD_RESERVE);
    let conns = fds.saturating_sub(reserve) / 2;
    if conns < MIN_CONNECTIONS {
        return Err(io::Error::other(format!(
            "only {fds} file descriptors may be open (RLIMIT_NOFILE), too few to serve {MIN_CONNECTIONS} \
             connections: raise the limit (ulimit -n; 1024 is usual)"
        )));
    }
    Ok(conns)
}

/// RLIMIT_NOFILE, after raising the soft limit to the hard one.
fn fd_limit() -> usize {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit read and write the local struct only.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 1024;
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit { rlim_cur: lim.rlim_max, rlim_max: lim.rlim_max };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim.rlim_cur = lim.rlim_max;
            }
        }
    }
    usize::try_from(lim.rlim_cur).unwrap_or(usize::MAX).min(1 << 24)
}
