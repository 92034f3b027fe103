//! [`Context`]: what a server is made of, and the handle other threads use.

use crate::metrics::{ConnRole, Metrics};
use crate::mount::Mount;
use crate::protocol::{AnyProtocol, Protocol};
use crate::service::Service;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use warren_vfs::Fops;

/// The longest timeout or deadline warren accepts anywhere (a year):
/// configuration asking for more is refused, and longer timeouts a
/// protocol asks for are cut to it (a deadline past what the clock can
/// hold would otherwise panic).
pub const MAX_TIMEOUT: Duration = Duration::from_secs(365 * 24 * 60 * 60);

/// Timeouts and size limits that apply to every connection.
///
/// Every value has a default chosen for a public server; each says why.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// From the first byte of a request head to its end (absolute, not
    /// refreshed by trickling bytes, so slowloris cannot hold a slot).
    /// Also the time a new connection has to send its first byte.
    /// Default 10 s (lws's `timeout_secs_ah_idle`).
    pub header_timeout: Duration,
    /// Progress timeout while a body is read or a response written: each
    /// chunk that moves re-arms it. Default 15 s (lws's `timeout-secs`).
    pub io_timeout: Duration,
    /// How long a closing connection may still send us bytes, which we
    /// read and drop so its last response is not reset. Default 2 s.
    pub linger: Duration,
    /// A request body must be complete within this long after its head
    /// (default 20 s), plus one second per `body_min_rate` bytes that
    /// arrive, so a client that trickles a body cannot hold a slot for
    /// long while a slow but steady upload is never cut (Apache's
    /// `mod_reqtimeout` default, `body=20,MinRate=500`). Time the server
    /// itself pauses reading (a protocol's flow control, a busy CGI) does
    /// not count. Too slow: 408, or a close if the response has begun.
    pub body_timeout: Duration,
    /// The least rate, in bytes per second, a body must keep up to earn
    /// more time (default 500; 0: no body deadline at all).
    pub body_min_rate: u64,
    /// The largest request head. Default 8 KiB (lws: 4 KiB; nginx: 8 KiB).
    pub max_head: usize,
    /// The longest request-target. Default 4 KiB.
    pub max_uri: usize,
    /// Connections served at once; more are refused. `None` (the default):
    /// from RLIMIT_NOFILE at start, see [`Context::max_connections`].
    pub max_connections: Option<usize>,
    /// Connections one peer address may have open at once (lwsws's
    /// `ip-limit-wsi`, CORE-9): one more is closed as soon as it is
    /// accepted, with no answer, and counted in
    /// `warren_peer_refused_total`. IPv4 peers on an IPv6 socket count
    /// as their IPv4 address. Clients behind one NAT share an address,
    /// so set it generously. 0 (the default): no limit.
    pub peer_connections: usize,
    /// Requests one peer address may have in progress at once, from the
    /// first byte of a head to the end of its response (lwsws's
    /// `ip-limit-ah`, CORE-9; a WebSocket's request ends with its
    /// upgrade). Soft: a connection whose request would be one more is
    /// not read until one of its peer's requests ends (in arrival order
    /// among this loop's), counted in `warren_peer_waits_total`; waiting,
    /// it keeps its idle or header timeout, and one still waiting then is
    /// answered 503 with `Retry-After: 1`. 0 (the default): no limit.
    pub peer_requests: usize,
    /// The largest WebSocket message (after inflation) a protocol accepts
    /// unless it says otherwise ([`Protocol::max_message_size`]); bigger
    /// closes with 1009. Default 16 MiB. Messages are streamed to the
    /// protocol, so this bounds what a protocol that assembles them holds.
    pub ws_max_message: u64,
    /// How long a WebSocket close handshake we started may take before
    /// the connection is dropped (WS-7). Default 5 s.
    pub ws_close_timeout: Duration,
    /// From accepting a connection on a TLS port to the end of its
    /// handshake (absolute: a handshake that trickles in byte by byte is
    /// cut at it). Default 10 s; the header timeout starts after it.
    pub tls_handshake_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_timeout: Duration::from_secs(10),
            io_timeout: Duration::from_secs(15),
            linger: Duration::from_secs(2),
            body_timeout: Duration::from_secs(20),
            body_min_rate: 500,
            max_head: 8192,
            max_uri: 4096,
            max_connections: None,
            peer_connections: 0,
            peer_requests: 0,
            ws_max_message: 16 << 20,
            ws_close_timeout: Duration::from_secs(5),
            tls_handshake_timeout: Duration::from_secs(10),
        }
    }
}

/// WebSocket liveness default: a ping after this long without valid
/// traffic from the peer ([`VhostInfo::ws_keepalive`]).
pub const DEFAULT_WS_PING: Duration = Duration::from_secs(60);
/// WebSocket liveness default: the hang-up this long after an unanswered
/// ping.
pub const DEFAULT_WS_HANGUP: Duration = Duration::from_secs(10);

/// A vhost's TCP keepalive ([`VhostInfo::tcp_keepalive`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TcpKeepalive {
    pub(crate) time: Duration,
    pub(crate) probes: u32,
    pub(crate) interval: Duration,
}

impl TcpKeepalive {
    /// What is wrong with it, if anything.
    pub(crate) fn problem(&self) -> Option<String> {
        let secs = |d: Duration| d.subsec_nanos() == 0 && (1..=32767).contains(&d.as_secs());
        if !secs(self.time) {
            Some(format!("TCP keepalive time {:?}: expected whole seconds from 1 to 32767", self.time))
        } else if !secs(self.interval) {
            Some(format!("TCP keepalive interval {:?}: expected whole seconds from 1 to 32767", self.interval))
        } else if !(1..=127).contains(&self.probes) {
            Some(format!("TCP keepalive probes {}: expected 1 to 127", self.probes))
        } else {
            None
        }
    }

    /// Sets it on an accepted connection.
    pub(crate) fn apply(&self, stream: &mio::net::TcpStream) -> io::Result<()> {
        let ka =
            socket2::TcpKeepalive::new().with_time(self.time).with_interval(self.interval).with_retries(self.probes);
        socket2::SockRef::from(stream).set_tcp_keepalive(&ka)
    }
}

/// One virtual host: a name, where it listens, its mounts and protocols.
#[derive(Debug)]
pub struct VhostInfo {
    pub(crate) name: String,
    pub(crate) listen: SocketAddr,
    pub(crate) mounts: Vec<Mount>,
    pub(crate) protocols: Vec<Box<dyn AnyProtocol>>,
    pub(crate) error_document_404: Option<String>,
    pub(crate) keepalive_timeout: Duration,
    pub(crate) tcp_keepalive: Option<TcpKeepalive>,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) server_string: Option<String>,
    pub(crate) access_log: Option<std::path::PathBuf>,
    pub(crate) error_pages: Vec<crate::reload::ErrorPage>,
    /// The protocol for WebSocket upgrades that name none.
    pub(crate) default_protocol: Option<String>,
    /// WebSocket liveness: ping after this long without valid traffic,
    /// hang up if nothing valid arrives in the second duration after.
    pub(crate) ws_keepalive: Option<(Duration, Duration)>,
    /// Whether upgrades may negotiate permessage-deflate.
    pub(crate) ws_deflate: bool,
    #[cfg(feature = "tls")]
    pub(crate) tls: Option<crate::tls::TlsConfig>,
    /// Its TLS built already (by `ContextHandle::add_vhost`, on the
    /// caller's thread: reading certificate files is no work for the loop).
    #[cfg(feature = "tls")]
    pub(crate) built_tls: Option<crate::tls::VhostTls>,
    #[cfg(feature = "tls")]
    pub(crate) plain_on_tls: crate::tls::PlainOnTls,
    #[cfg(feature = "tls")]
    pub(crate) sts: bool,
    pub(crate) listen_accept_protocol: Option<String>,
    pub(crate) apply_listen_accept: bool,
    pub(crate) fallback_listen_accept: bool,
    pub(crate) bind_device: Option<String>,
}

impl VhostInfo {
    /// A vhost called `name` listening on `listen` (port 0: any free port,
    /// see [`Context::local_addr`]). Vhosts on the same address share its
    /// socket and are told apart by the Host header.
    pub fn new(name: impl Into<String>, listen: SocketAddr) -> VhostInfo {
        VhostInfo {
            name: name.into(),
            listen,
            mounts: Vec::new(),
            protocols: Vec::new(),
            error_document_404: None,
            keepalive_timeout: Duration::from_secs(5),
            tcp_keepalive: None,
            headers: Vec::new(),
            server_string: None,
            access_log: None,
            error_pages: Vec::new(),
            default_protocol: None,
            ws_keepalive: Some((DEFAULT_WS_PING, DEFAULT_WS_HANGUP)),
            ws_deflate: true,
            #[cfg(feature = "tls")]
            tls: None,
            #[cfg(feature = "tls")]
            built_tls: None,
            #[cfg(feature = "tls")]
            plain_on_tls: crate::tls::PlainOnTls::Drop,
            #[cfg(feature = "tls")]
            sts: false,
            listen_accept_protocol: None,
            apply_listen_accept: false,
            fallback_listen_accept: false,
            bind_device: None,
        }
    }

    /// Binds this vhost's listening socket to one network device
    /// (`SO_BINDTODEVICE`, seed "BINDTODEV"; lwsws `bind-to-device`):
    /// only connections that come in through `device` reach the port,
    /// and what it sends leaves through it. The port's first vhost
    /// decides for every vhost on it. Needs `CAP_NET_RAW` (root has it;
    /// `keep-capabilities` keeps it after a drop of privileges). A device
    /// that does not exist fails the vhost with the kernel's `ENODEV`.
    pub fn bind_to_device(mut self, device: impl Into<String>) -> VhostInfo {
        self.bind_device = Some(device.into());
        self
    }

    /// The protocol raw connections on this vhost's port are bound to
    /// (lws's `listen_accept_protocol`), with
    /// [`apply_listen_accept`](Self::apply_listen_accept) or
    /// [`fallback_listen_accept`](Self::fallback_listen_accept). It gets
    /// [`Event::RawAdopt`](crate::protocol::Event::RawAdopt), then
    /// [`Event::RawRx`](crate::protocol::Event::RawRx) as bytes arrive.
    /// The port's first vhost decides for every vhost on it.
    pub fn listen_accept_protocol(mut self, name: impl Into<String>) -> VhostInfo {
        self.listen_accept_protocol = Some(name.into());
        self
    }

    /// Every connection this vhost's port accepts is raw from its first
    /// byte, bound to the [`listen_accept_protocol`](Self::listen_accept_protocol)
    /// (RAW-1; lwsws `apply-listen-accept`, `onlyraw`): no HTTP at all.
    /// On a TLS vhost the handshake comes first and the protocol reads
    /// and writes plaintext.
    pub fn apply_listen_accept(mut self, on: bool) -> VhostInfo {
        self.apply_listen_accept = on;
        self
    }

    /// A connection to this vhost's (plaintext) port whose first bytes
    /// are not a known HTTP method followed by a space becomes raw,
    /// bound to the [`listen_accept_protocol`](Self::listen_accept_protocol),
    /// which gets what was read so far as its first rx (RAW-2; lwsws
    /// `fallback-listen-accept`): an SSH server and a web site can share
    /// port 443 this way. Decided at the first byte no method can have;
    /// HTTP requests are served as ever.
    pub fn fallback_listen_accept(mut self, on: bool) -> VhostInfo {
        self.fallback_listen_accept = on;
        self
    }

    /// Serves this vhost over TLS (see [`crate::tls`]). Every vhost on
    /// the same address must then have TLS too; the ClientHello's SNI
    /// picks among them as the `Host` header does.
    #[cfg(feature = "tls")]
    pub fn tls(mut self, tls: crate::tls::TlsConfig) -> VhostInfo {
        self.tls = Some(tls);
        self
    }

    /// What the TLS port does with clients that speak plain HTTP to it
    /// (spec RAW-4); decided by the port's first vhost. Default: log and
    /// close.
    #[cfg(feature = "tls")]
    pub fn plain_on_tls(mut self, mode: crate::tls::PlainOnTls) -> VhostInfo {
        self.plain_on_tls = mode;
        self
    }

    /// Adds `Strict-Transport-Security: max-age=15768000 ;
    /// includeSubDomains` to every response sent over TLS (lwsws `sts`;
    /// never over plaintext, where RFC 6797 says browsers ignore it).
    #[cfg(feature = "tls")]
    pub fn sts(mut self, on: bool) -> VhostInfo {
        self.sts = on;
        self
    }

    /// The protocol WebSocket upgrades that name no subprotocol are bound
    /// to (lwsws `"default": "1"` in `ws-protocols`, seed "anonprot").
    /// Without one such upgrades are refused with 400.
    pub fn default_protocol(mut self, name: impl Into<String>) -> VhostInfo {
        self.default_protocol = Some(name.into());
        self
    }

    /// WebSocket liveness (spec WS-6): after `ping_after` without valid
    /// traffic from the peer a ping is sent; if nothing valid arrives
    /// within `hangup_after` more, the connection is closed. On by
    /// default, with [`DEFAULT_WS_PING`] and [`DEFAULT_WS_HANGUP`], so
    /// silent peers cannot hold connection slots for ever.
    pub fn ws_keepalive(mut self, ping_after: Duration, hangup_after: Duration) -> VhostInfo {
        self.ws_keepalive = Some((ping_after, hangup_after));
        self
    }

    /// Turns WebSocket liveness off: an established WebSocket then has no
    /// idle timeout unless its protocol sets one.
    pub fn no_ws_keepalive(mut self) -> VhostInfo {
        self.ws_keepalive = None;
        self
    }

    /// The liveness settings, (ping after, hang up after), if on.
    pub fn ws_keepalive_settings(&self) -> Option<(Duration, Duration)> {
        self.ws_keepalive
    }

    /// Whether WebSocket upgrades may negotiate permessage-deflate
    /// (RFC 7692). On by default, as in lwsws.
    pub fn ws_deflate(mut self, on: bool) -> VhostInfo {
        self.ws_deflate = on;
        self
    }

    /// Answers errors of `status` with the file at URL `path` of this
    /// vhost's file mounts, served in place with that status (no
    /// redirect). It is read (at most 64 KiB) when the vhost is attached
    /// and kept in memory; edits take effect within about a second (the
    /// file is opened again at most once a second, when an error needs
    /// it, and read again when its length, time or version changed). If
    /// it cannot be read, the copy last read is sent, or with none the
    /// built-in page.
    pub fn error_page(mut self, status: u16, path: impl Into<String>) -> VhostInfo {
        self.error_pages.push(crate::reload::ErrorPage::new(status, path.into()));
        self
    }

    /// Logs every transaction of this vhost to `path`, in Apache's
    /// combined format (spec LOG-1), from a writer thread: a slow disk
    /// costs dropped lines (counted in the log), never a stalled loop.
    /// `-` is standard output. Vhosts of a context logging to the same
    /// path share one writer; [`ContextHandle::reopen_logs`] reopens it.
    pub fn access_log(mut self, path: impl Into<std::path::PathBuf>) -> VhostInfo {
        self.access_log = Some(path.into());
        self
    }

    /// Adds a mount.
    pub fn mount(mut self, mount: Mount) -> VhostInfo {
        self.mounts.push(mount);
        self
    }

    /// Adds a built-in plugin by name (see [`crate::plugins`]), unless the
    /// vhost already has a protocol of that name. `false`: no such plugin.
    #[cfg(feature = "appliance")]
    pub fn plugin(&mut self, name: &str) -> bool {
        self.add_plugin(name, &[]).is_ok()
    }

    /// Adds a built-in plugin with its per-vhost options (lws "pvo"), or
    /// replaces the instance the vhost has.
    ///
    /// # Errors
    ///
    /// [`Error::is_invalid_input`](crate::Error::is_invalid_input), saying
    /// what is wrong: an unknown plugin, or an option it does not take.
    #[cfg(feature = "appliance")]
    pub fn plugin_with_options(&mut self, name: &str, options: &[(&str, &str)]) -> crate::Result<()> {
        self.add_plugin(name, options).map_err(crate::Error::invalid_input)
    }

    /// [`VhostInfo::plugin_with_options`], for the configuration too
    /// (which, built without the `appliance` feature, knows no plugin).
    pub(crate) fn add_plugin(&mut self, name: &str, options: &[(&str, &str)]) -> Result<(), String> {
        // Each service loop makes its own instance.
        let make = crate::plugins::maker(name, options)?;
        let Some(p) = crate::protocol::PerLoop::new(make) else {
            return Err(format!("plugin {name:?} could not be made"));
        };
        let p: Box<dyn AnyProtocol> = Box::new(p);
        match self.protocols.iter().position(|q| q.name() == name) {
            Some(i) if !options.is_empty() => self.protocols[i] = p,
            Some(_) => {}
            None => self.protocols.push(p),
        }
        Ok(())
    }

    /// Forgets the default WebSocket protocol: upgrades must name one
    /// (lwsws `disable-no-protocol-ws-upgrades`).
    pub fn no_default_protocol(mut self) -> VhostInfo {
        self.default_protocol = None;
        self
    }

    /// Adds a protocol, which `callback://` mounts can name: this one
    /// instance serves the vhost. A context of more than one service loop
    /// ([`ContextInfo::threads`]) needs one per loop instead:
    /// [`protocol_per_loop`](Self::protocol_per_loop).
    pub fn protocol<P: Protocol>(mut self, protocol: P) -> VhostInfo {
        self.protocols.push(Box::new(protocol));
        self
    }

    /// Adds a protocol of which each service loop has its own instance,
    /// made by `make` when the loop is (lws's per-thread protocol
    /// instances, the tsi model): callbacks for a connection come to the
    /// instance of the loop that serves it, so its state needs no lock.
    /// State the instances share is for `make` to hand them (an
    /// `Arc<Mutex<_>>` it captures), hence `Send + Sync`.
    pub fn protocol_per_loop<P: Protocol>(mut self, make: impl Fn() -> P + Send + Sync + 'static) -> VhostInfo {
        let make = move || Some(Box::new(make()) as Box<dyn AnyProtocol>);
        if let Some(p) = crate::protocol::PerLoop::new(Arc::new(make)) {
            self.protocols.push(Box::new(p));
        }
        self
    }

    /// 404s become a `302` to this path, which is then served with status
    /// 404 (lws `error-document-404`, spec ERR-4).
    pub fn error_document_404(mut self, path: impl Into<String>) -> VhostInfo {
        self.error_document_404 = Some(path.into());
        self
    }

    /// How long an idle keep-alive connection waits for its next request.
    /// Default 5 s (lws's `keepalive_timeout`).
    pub fn keepalive_timeout(mut self, t: Duration) -> VhostInfo {
        self.keepalive_timeout = t;
        self
    }

    /// Turns on TCP keepalive for the connections this vhost accepts
    /// (lws's `ka_time`, `ka_probes`, `ka_interval`; seed "ka"): after
    /// `time` without traffic the kernel sends a probe, then one every
    /// `interval`, and after `probes` unanswered the connection fails
    /// and is closed, so a peer that vanished (a cable pulled, a NAT
    /// that forgot the flow) does not hold a connection until its
    /// timeout, or forever for an idle WebSocket. Set at accept from the
    /// first vhost on the address, as the others on it are told apart
    /// only by the request. `time` and `interval` are whole seconds from
    /// 1 to 32767, `probes` from 1 to 127 (Linux's bounds); off by
    /// default (the system's `net.ipv4.tcp_keepalive_*` do not apply to
    /// a socket without `SO_KEEPALIVE`).
    pub fn tcp_keepalive(mut self, time: Duration, probes: u32, interval: Duration) -> VhostInfo {
        self.tcp_keepalive = Some(TcpKeepalive { time, probes, interval });
        self
    }

    /// Adds a header to every response of this vhost (spec HDR-3).
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> VhostInfo {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// The `Server` header value; none is sent unless set.
    pub fn server_string(mut self, s: impl Into<String>) -> VhostInfo {
        // An empty one means none, rather than an empty `Server:` field.
        self.server_string = Some(s.into()).filter(|s| !s.is_empty());
        self
    }
}

/// Turns a mount's path into its filesystem (see [`ContextInfo::fops_factory`]).
pub type FopsFactory = Box<dyn Fn(&Path) -> io::Result<Arc<dyn Fops>> + Send>;

/// Everything a [`Context`] is built from.
#[derive(Default)]
pub struct ContextInfo {
    pub(crate) vhosts: Vec<VhostInfo>,
    pub(crate) limits: Limits,
    pub(crate) fops_factory: Option<FopsFactory>,
    /// Listening sockets bound already (by [`bind_listener`](crate::bind_listener), systemd
    /// socket activation, or a context this one replaces).
    pub(crate) inherited: Vec<std::net::TcpListener>,
    pub(crate) metrics: Option<Arc<Metrics>>,
    pub(crate) default_access_log: Option<std::path::PathBuf>,
    /// The server log's level a configuration asks for.
    pub(crate) log_level: Option<log::LevelFilter>,
    /// Service loops (threads); 0 and 1 both mean one.
    pub(crate) threads: usize,
    /// Descriptors each loop may use for its connections; `None`: the
    /// process's limit shared between them.
    pub(crate) fd_limit_per_thread: Option<usize>,
    /// Each loop has a socket of its own on each port bound here.
    pub(crate) reuse_port: bool,
}

impl fmt::Debug for ContextInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ContextInfo")
            .field("vhosts", &self.vhosts)
            .field("limits", &self.limits)
            .field("fops_factory", &self.fops_factory.is_some())
            .field("inherited", &self.inherited)
            .field("metrics", &self.metrics.is_some())
            .field("default_access_log", &self.default_access_log)
            .field("log_level", &self.log_level)
            .field("threads", &self.threads)
            .field("fd_limit_per_thread", &self.fd_limit_per_thread)
            .field("reuse_port", &self.reuse_port)
            .finish()
    }
}

impl ContextInfo {
    /// An empty description; add at least one vhost.
    pub fn new() -> ContextInfo {
        ContextInfo::default()
    }

    /// Adds a vhost.
    pub fn vhost(mut self, vhost: VhostInfo) -> ContextInfo {
        self.vhosts.push(vhost);
        self
    }

    /// Replaces the limits.
    pub fn limits(mut self, limits: Limits) -> ContextInfo {
        self.limits = limits;
        self
    }

    /// Hands over a listening socket bound already: a vhost whose address
    /// is its address serves on it rather than binding one. This is how a
    /// configuration reload keeps its ports (the new context gets the old
    /// one's [`ContextHandle::listeners`]), how systemd socket activation
    /// passes ports that need privileges (`LISTEN_FDS`), and how several
    /// addresses share one port chosen by the system ([`bind_listener`](crate::bind_listener)
    /// with port 0, then the others on the port it got). Failing an exact
    /// match, a socket on `[::]:P` also serves a vhost asking for
    /// `0.0.0.0:P` (a systemd `ListenStream=80` is `[::]:80`, dual-stack,
    /// serving IPv4 too; a `0.0.0.0` socket never stands in for `::`,
    /// which would lose IPv6), and a vhost asking for port 0 takes one on
    /// its IP address (so a reloaded configuration keeps the port the
    /// system chose); neither fallback takes a socket whose own address
    /// another vhost asks for. One no vhost takes is closed when the
    /// context starts (logged at info).
    pub fn listener(mut self, listener: std::net::TcpListener) -> ContextInfo {
        self.inherited.push(listener);
        self
    }

    /// The access log (combined format, LOG-1) of every vhost that has
    /// none of its own ([`VhostInfo::access_log`]), those added later by
    /// [`ContextHandle::add_vhost`] too. `-` is standard output. Vhosts
    /// logging to the same path share one writer.
    pub fn default_access_log(mut self, path: impl Into<std::path::PathBuf>) -> ContextInfo {
        self.default_access_log = Some(path.into());
        self
    }

    /// The level of the server log that the configuration this was read
    /// from asks for (the `global.log-level` key of
    /// [`config::load_dir`](crate::config::load_dir)), if it does. The
    /// library only reports it: the process's logger is the
    /// application's to set.
    pub fn log_level(&self) -> Option<log::LevelFilter> {
        self.log_level
    }

    /// Replaces how mounts made with [`Mount::dir`](crate::Mount::dir)
    /// get their filesystem: the context-wide fops chain. The factory can
    /// wrap [`default_fops`](crate::default_fops) (to log, rewrite or add
    /// virtual files) or replace it. A single mount can instead be given
    /// its own filesystem with [`Mount::files`](crate::Mount::files).
    pub fn fops_factory(mut self, f: impl Fn(&Path) -> io::Result<Arc<dyn Fops>> + Send + 'static) -> ContextInfo {
        self.fops_factory = Some(Box::new(f));
        self
    }

    /// Serves from `count` service loops, each on its own thread with its
    /// own poll, connection table, timers and receive buffer (lws
    /// `count_threads`; the `count-threads` key, `--threads`). At most
    /// [`MAX_THREADS`]; 0 and 1 both mean one loop, on the thread that
    /// calls [`Context::run`] (the others get threads of their own).
    ///
    /// Every loop accepts on the same listening sockets: a connection
    /// goes to the loop that takes it first, which is the least busy
    /// one. Vhosts are shared; each loop has its own instance of each
    /// protocol, so a vhost's protocols must be per-loop plugins or given
    /// with [`VhostInfo::protocol_per_loop`] ([`Context::new`] refuses a
    /// protocol given as one instance with [`VhostInfo::protocol`]).
    /// What a loop counts for CGI (`cgi-max`) and FastCGI
    /// (`fcgi-max-requests`, the learned pool size) it counts for its own
    /// connections.
    pub fn threads(mut self, count: usize) -> ContextInfo {
        self.threads = count;
        self
    }

    /// With several loops, gives each loop a listening socket of its own
    /// on every port the context binds (`SO_REUSEPORT`): the kernel
    /// spreads new connections over them by a hash of their addresses,
    /// and the loop that accepts one serves it (handing it on only when
    /// at its share). No connection crosses threads, which made
    /// connection-per-request loads 8% faster here; but the spread is
    /// uneven (25/27 to 34/18 for 52 connections over 2 loops, where the
    /// default hand-over gives 26/26), and when a loop's socket closes (a
    /// drain, a reload) the connections waiting in its queue are reset,
    /// where the default's single queue per port loses none. Sockets
    /// handed over ([`listener`](Self::listener), a reload, systemd) are
    /// shared too unless they have `SO_REUSEPORT` set
    /// ([`bind_reuse_port_listener`](crate::bind_reuse_port_listener)). Off by default; `--reuse-port`.
    pub fn reuse_port(mut self, on: bool) -> ContextInfo {
        self.reuse_port = on;
        self
    }

    /// The descriptors each service loop may use for its connections
    /// (lws `fd_limit_per_thread`); the loop then serves at most what
    /// [`Context::max_connections`] would make of that many. Unset (the
    /// default), the process's limit is shared: each of N loops gets a
    /// 1/N share. Either way the process as a whole never serves more
    /// than its own limit allows.
    pub fn fd_limit_per_thread(mut self, fds: usize) -> ContextInfo {
        self.fd_limit_per_thread = Some(fds);
        self
    }

    /// Counts into `metrics` rather than into metrics of the context's
    /// own: contexts given the same one (one per thread, or a reloaded
    /// configuration's beside the one it replaces) add up in it, and a
    /// vhost's counters carry on under its name. They also share the
    /// connection limit: each refuses connections once the open ones of
    /// all of them reach it (they share the process's descriptors). See
    /// [`crate::metrics`].
    pub fn metrics(mut self, metrics: Arc<Metrics>) -> ContextInfo {
        self.metrics = Some(metrics);
        self
    }
}

/// A snapshot of a context's counters (of its [`Metrics`], which other
/// contexts may share: see [`ContextInfo::metrics`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Stats {
    /// Connections accepted and served.
    pub accepted: u64,
    /// Connections refused because the connection limit was reached.
    pub refused: u64,
    /// Connections open now.
    pub open: u64,
    /// Request heads parsed.
    pub requests: u64,
    /// WebSocket upgrades accepted.
    pub ws_upgrades: u64,
    /// WebSocket connections open now (also counted in `open`).
    pub ws_open: u64,
}

/// A vhost handed to a running loop, and where to say how it went.
pub(crate) type NewVhost = (VhostInfo, VhostReply);

/// Where the loop says how adding a vhost went.
pub(crate) type VhostReply = std::sync::mpsc::Sender<crate::Result<SocketAddr>>;

/// A drain asked of the loop: how long responses in flight may take, and
/// whether WebSockets keep going until then (a reload) or are told to go
/// away at once (a stop).
#[derive(Debug, Clone, Copy)]
pub(crate) struct DrainRequest {
    pub(crate) grace: Duration,
    pub(crate) keep_websockets: bool,
}

impl DrainRequest {
    /// The stricter of two requests: the shorter grace, and WebSockets
    /// kept only if both keep them.
    pub(crate) fn stricter(self, other: DrainRequest) -> DrainRequest {
        DrainRequest {
            grace: self.grace.min(other.grace),
            keep_websockets: self.keep_websockets && other.keep_websockets,
        }
    }
}

/// What [`ContextHandle::drain`] and the loops share.
#[derive(Debug, Default)]
pub(crate) struct DrainState {
    /// Per loop: it has closed its listeners (or ended).
    pub(crate) closed: Vec<bool>,
    /// Told when every loop has.
    pub(crate) waiters: Vec<std::sync::mpsc::Sender<()>>,
}

impl DrainState {
    /// Every loop has closed its listeners.
    pub(crate) fn all_closed(&self) -> bool {
        self.closed.iter().all(|&c| c)
    }
}

/// The most service loops a context runs ([`ContextInfo::threads`]).
pub const MAX_THREADS: usize = 64;

pub(crate) struct HandleInner {
    /// One per service loop, the first loop's first.
    pub(crate) loops: Vec<crate::signals::LoopSignals>,
    pub(crate) stop: AtomicBool,
    /// Who waits for the listeners to close.
    pub(crate) drain: std::sync::Mutex<DrainState>,
    /// Copies of the listening sockets while they accept, for
    /// [`ContextHandle::listeners`]; emptied when a drain begins.
    pub(crate) listeners: std::sync::Mutex<Vec<std::net::TcpListener>>,
    pub(crate) metrics: Arc<Metrics>,
    /// What each peer address holds, while a peer limit is set.
    pub(crate) peers: crate::peers::Peers,
    pub(crate) new_vhosts: std::sync::Mutex<Vec<NewVhost>>,
    /// The first loop has ended: a vhost added now is refused at once.
    /// Set and read with `new_vhosts` locked, so none is queued after
    /// the loop took the last.
    pub(crate) vhosts_closed: AtomicBool,
    /// [`ContextHandle::reopen_logs`] was called (the first loop reopens
    /// the files every loop writes to).
    pub(crate) reopen_logs: AtomicBool,
    /// The certificates of TLS vhosts read from files, by vhost name,
    /// for [`ContextHandle::set_certificate`].
    #[cfg(feature = "tls")]
    pub(crate) certs: std::sync::Mutex<Vec<(String, Arc<crate::tls::CertSlot>)>>,
}

impl HandleInner {
    pub(crate) fn wake_all(&self) {
        for l in &self.loops {
            l.wake();
        }
    }
}

/// The one way to reach a running loop from another thread. Cheap to
/// clone; `Send + Sync`.
#[derive(Clone)]
pub struct ContextHandle {
    pub(crate) inner: Arc<HandleInner>,
}

impl fmt::Debug for ContextHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ContextHandle").field("stats", &self.stats()).finish()
    }
}

impl ContextHandle {
    /// Wakes the loop, which then delivers
    /// [`Event::EventWaitCancelled`](crate::protocol::Event::EventWaitCancelled)
    /// once to every protocol of every vhost. Safe from any thread, any
    /// number of times (wakes may coalesce).
    pub fn cancel_service(&self) {
        for l in &self.inner.loops {
            l.cancels.fetch_add(1, Ordering::Release);
            l.wake();
        }
    }

    /// Adds a vhost to the running loop (lws `lws_create_vhost` after
    /// start). It shares an existing listener when its address matches
    /// one, else binds its own (VH-4, VH-5). The answer, the address it
    /// listens on, arrives on the returned receiver once the loop has
    /// done it; do not wait on it from a callback of the same loop. A
    /// refusal is an [`Error`](crate::Error) as from [`Context::new`].
    pub fn add_vhost(&self, vhost: VhostInfo) -> std::sync::mpsc::Receiver<crate::Result<SocketAddr>> {
        let (tx, rx) = std::sync::mpsc::channel();
        // Certificates are read and checked here, on the caller's thread,
        // not on the loop's.
        #[cfg(feature = "tls")]
        let vhost = match vhost.tls.as_ref().map(|t| crate::tls::server::build(&vhost.name, t)) {
            Some(Err(why)) => {
                let _ = tx.send(Err(crate::Error::invalid_input(format!("vhost {:?}: TLS: {why}", vhost.name))));
                return rx;
            }
            Some(Ok(built)) => VhostInfo { built_tls: Some(built), ..vhost },
            None => vhost,
        };
        let mut queue = self.inner.new_vhosts.lock().unwrap_or_else(|e| e.into_inner());
        if self.inner.vhosts_closed.load(Ordering::Acquire) {
            let why = format!("vhost {:?}: the context has stopped; it takes no new vhost", vhost.name);
            let _ = tx.send(Err(crate::Error::invalid_input(why)));
            return rx;
        }
        queue.push((vhost, tx));
        drop(queue);
        // The first loop attaches it, then hands it to the others.
        if let Some(first) = self.inner.loops.first() {
            first.wake();
        }
        rx
    }

    /// Replaces the certificate of every TLS vhost called `vhost` whose
    /// certificate came from files, with the chain in `cert` and the key
    /// in `key` (PEM), atomically: handshakes under way finish with the
    /// old one, later ones get the new one, no connection is dropped.
    /// The files are read and checked on the calling thread, as at start.
    ///
    /// # Errors
    ///
    /// [`is_invalid_input`](crate::Error::is_invalid_input): no such
    /// vhost, or what is wrong with the files (naming them); the old
    /// certificate stays.
    #[cfg(feature = "tls")]
    pub fn set_certificate(&self, vhost: &str, cert: &Path, key: &Path) -> crate::Result<()> {
        let slots: Vec<Arc<crate::tls::CertSlot>> = self
            .inner
            .certs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|(name, _)| name.eq_ignore_ascii_case(vhost))
            .map(|(_, slot)| Arc::clone(slot))
            .collect();
        if slots.is_empty() {
            return Err(crate::Error::invalid_input(format!(
                "no TLS vhost called {vhost:?} serves a certificate from files"
            )));
        }
        // Read once, then swapped into every slot: all or none.
        let certified = crate::tls::server::load(cert, key).map_err(crate::Error::invalid_input)?;
        for slot in slots {
            slot.replace(Arc::clone(&certified));
        }
        Ok(())
    }

    /// Stops the loop gracefully (SIGTERM in the `warren` binary): it
    /// closes its listening sockets at once, so new connections are refused
    /// (or, after a reload, taken by the new context); responses in flight
    /// finish and their connections then close (`Connection: close`); idle
    /// keep-alive connections close within a second (a request that
    /// arrives meanwhile is still answered); WebSockets get a close frame
    /// with 1001 (going away) and finish their close handshake. CGI
    /// programs may finish their responses too. [`Context::run`] returns
    /// (an [`Embedded`](crate::Embedded) loop's `service` returns [`Serviced::Stopped`](crate::Serviced::Stopped))
    /// when no connection is left, or when `grace` has passed: then what
    /// remains is closed as by [`stop`](Self::stop) (CGI programs are
    /// ended with their whole process group). Calling it again, or
    /// [`retire`](Self::retire), while a drain runs can only make it
    /// stricter: the earlier end of the two graces, and WebSockets told to
    /// go at once if either says so (a stop during a reload's retirement);
    /// `stop` still ends it at once.
    ///
    /// The receiver gets `()` once the listening sockets are closed (no
    /// connection accepted after that is this context's), at once if they
    /// are already (a drain began, or the loop ended); ignoring it is fine.
    pub fn drain(&self, grace: Duration) -> std::sync::mpsc::Receiver<()> {
        self.ask_drain(DrainRequest { grace, keep_websockets: false })
    }

    /// [`drain`](Self::drain) for a context being replaced (a reload):
    /// the same, except that WebSockets keep going until `grace` has
    /// passed, and only then get their 1001 and the close timeout
    /// ([`Limits::ws_close_timeout`]) to finish the handshake.
    pub fn retire(&self, grace: Duration) -> std::sync::mpsc::Receiver<()> {
        self.ask_drain(DrainRequest { grace, keep_websockets: true })
    }

    fn ask_drain(&self, request: DrainRequest) -> std::sync::mpsc::Receiver<()> {
        let (tx, rx) = std::sync::mpsc::channel();
        let mut drain = self.inner.drain.lock().unwrap_or_else(|e| e.into_inner());
        if drain.all_closed() {
            let _ = tx.send(());
        } else {
            drain.waiters.push(tx);
        }
        drop(drain);
        for l in &self.inner.loops {
            // A drain under way takes the stricter of the two (see `drain`).
            let mut asked = l.drain.lock().unwrap_or_else(|e| e.into_inner());
            *asked = Some(match *asked {
                Some(before) => before.stricter(request),
                None => request,
            });
            drop(asked);
            l.wake();
        }
        rx
    }

    /// Copies (new descriptors, close-on-exec) of the listening sockets
    /// the loop accepts on, for a context that will take over from this
    /// one ([`ContextInfo::listener`]). Empty once a drain began or the
    /// loop ended.
    ///
    /// # Errors
    ///
    /// A descriptor could not be duplicated (the process is out of them).
    pub fn listeners(&self) -> io::Result<Vec<std::net::TcpListener>> {
        let held = self.inner.listeners.lock().unwrap_or_else(|e| e.into_inner());
        held.iter().map(std::net::TcpListener::try_clone).collect()
    }

    /// Reopens every access log file of the context by its path (as
    /// SIGUSR1 does in the `warren` binary), for logrotate's
    /// move-then-signal: lines logged before the loop takes the request
    /// stay in the file moved away, later ones go to a new file at the
    /// path; none is lost or written twice. Never blocks; safe from any
    /// thread. A log to standard output stays as it is.
    pub fn reopen_logs(&self) {
        self.inner.reopen_logs.store(true, Ordering::Release);
        if let Some(first) = self.inner.loops.first() {
            first.wake();
        }
    }

    /// Asks the loop to stop at once; [`Context::run`] then returns (an
    /// [`Embedded`](crate::Embedded) loop's descriptor becomes readable, and its next
    /// `service` returns [`Serviced::Stopped`](crate::Serviced::Stopped)).
    /// Connections are closed where they are; CGI programs are ended with
    /// their process groups.
    pub fn stop(&self) {
        self.inner.stop.store(true, Ordering::Release);
        self.inner.wake_all();
    }

    /// The counters now.
    pub fn stats(&self) -> Stats {
        let m = &self.inner.metrics;
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let ws_open = m.open(ConnRole::Ws);
        Stats {
            accepted: get(&m.accepted),
            refused: get(&m.refused),
            open: m.open(ConnRole::TlsHandshake) + m.open(ConnRole::Http) + ws_open,
            requests: get(&m.requests),
            ws_upgrades: get(&m.ws_upgrades),
            ws_open,
        }
    }

    /// The metrics this context counts into (its own, or those
    /// [`ContextInfo::metrics`] gave it), for a scrape from any thread:
    /// [`Metrics::render`].
    pub fn metrics(&self) -> Arc<Metrics> {
        Arc::clone(&self.inner.metrics)
    }
}

/// A server: listening sockets bound, ready to [`run`](Context::run), or
/// to be [`embed`](Context::embed)ded in another event loop.
#[derive(Debug)]
pub struct Context {
    /// The service loops, the first one first (it binds, and attaches
    /// vhosts added later before handing them to the others).
    pub(crate) services: Vec<Service>,
    pub(crate) handle: ContextHandle,
}

impl Context {
    /// Binds every vhost's address and prepares the loops.
    ///
    /// # Errors
    ///
    /// No vhost, a `callback://` mount naming a protocol its vhost lacks,
    /// a header or limit out of bounds, more than one thread with a
    /// protocol given as one instance
    /// ([`is_invalid_input`](crate::Error::is_invalid_input)); an address
    /// that cannot be bound ([`is_bind`](crate::Error::is_bind), the
    /// message names it); a mount's directory or archive, or an access
    /// log, that cannot be opened ([`is_io`](crate::Error::is_io)).
    pub fn new(info: ContextInfo) -> crate::Result<Context> {
        let (services, handle) = Service::new(info)?;
        Ok(Context { services, handle })
    }

    fn first(&self) -> &Service {
        // `Service::new` makes at least one.
        &self.services[0]
    }

    /// The address vhost number `index` (in creation order) listens on.
    pub fn local_addr(&self, index: usize) -> Option<SocketAddr> {
        self.first().local_addr(index)
    }

    /// The most connections served at once: RLIMIT_NOFILE at start (raised
    /// to its hard limit), less a reserve for listeners, files being
    /// served and the process's own descriptors, unless
    /// [`Limits::max_connections`] says otherwise. With several loops,
    /// for all of them together.
    pub fn max_connections(&self) -> usize {
        self.first().max_connections()
    }

    /// The service loops the context runs ([`ContextInfo::threads`]).
    pub fn threads(&self) -> usize {
        self.services.len()
    }

    /// What the context serves: each vhost with its address and scheme,
    /// in creation order.
    pub fn listening(&self) -> Vec<Listening> {
        self.first().listening()
    }

    /// The access logs' files the context opened (standard output, `-`,
    /// is not one), for instance to hand them to the user a process
    /// drops to ([`crate::process::hand_over`]).
    pub fn access_log_paths(&self) -> Vec<std::path::PathBuf> {
        self.first().access_log_paths()
    }

    /// A handle for other threads.
    pub fn handle(&self) -> ContextHandle {
        self.handle.clone()
    }

    /// Runs the loops until [`ContextHandle::stop`] (or the end of a
    /// drain): the first on this thread, each other one on a thread of
    /// its own (`warren-loop-N`), and returns when all have ended. A loop
    /// that fails stops the others.
    ///
    /// # Errors
    ///
    /// A loop cannot wait for events ([`is_io`](crate::Error::is_io)),
    /// or cannot be given its thread.
    pub fn run(self) -> crate::Result<()> {
        let mut services = self.services.into_iter();
        let Some(first) = services.next() else { return Ok(()) };
        let inner = Arc::clone(&self.handle.inner);
        let (threads, mut failed) = crate::embed::spawn_loops(services, &inner, None);
        let mine = first.run();
        if mine.is_err() {
            inner.stop.store(true, Ordering::Release);
            inner.wake_all();
        }
        for t in threads {
            let result = t.join().unwrap_or_else(|_| Err(io::Error::other("a service loop panicked")));
            if let Err(e) = result {
                failed.get_or_insert(e);
            }
        }
        mine?;
        match failed {
            Some(e) => Err(e.into()),
            None => Ok(()),
        }
    }
}

/// One vhost a [`Context`] serves ([`Context::listening`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Listening {
    /// The vhost's name.
    pub vhost: String,
    /// The address it is served on.
    pub addr: SocketAddr,
    /// Whether it speaks TLS (https, wss).
    pub tls: bool,
}

impl Listening {
    /// The URL of the vhost's root: `http://` or `https://`, then its
    /// name when that is a host name (with the port, unless it is the
    /// scheme's), else the address it listens on (a `127.0.0.1` when it
    /// listens on every IPv4 address, `[::1]` on every IPv6 one).
    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        let port = self.addr.port();
        let default_port = if self.tls { 443 } else { 80 };
        let named = self.vhost.contains('.') || self.vhost == "localhost";
        let host = if named && self.vhost.parse::<std::net::IpAddr>().is_err() {
            self.vhost.clone()
        } else {
            match self.addr.ip() {
                std::net::IpAddr::V4(ip) if ip.is_unspecified() => "127.0.0.1".to_string(),
                std::net::IpAddr::V6(ip) if ip.is_unspecified() => "[::1]".to_string(),
                std::net::IpAddr::V4(ip) => ip.to_string(),
                std::net::IpAddr::V6(ip) => format!("[{ip}]"),
            }
        };
        if port == default_port {
            format!("{scheme}://{host}/")
        } else {
            format!("{scheme}://{host}:{port}/")
        }
    }
}

/// Refuses timeouts past [`MAX_TIMEOUT`] (a deadline the clock cannot
/// hold would panic later, in the middle of serving).
pub(crate) fn check_duration(what: &str, d: Duration) -> Result<(), String> {
    if d > MAX_TIMEOUT {
        return Err(format!(
            "{what} of {} s is longer than the most allowed, {} s",
            d.as_secs(),
            MAX_TIMEOUT.as_secs()
        ));
    }
    Ok(())
}

/// What a context needs before any vhost: one vhost at least, and its
/// limits in range.
pub(crate) fn check_context(info: &ContextInfo) -> crate::Result<()> {
    if info.vhosts.is_empty() {
        return Err(crate::Error::invalid_input("no vhost to serve"));
    }
    check_limits(&info.limits).map_err(crate::Error::invalid_input)
}

pub(crate) fn check_limits(l: &Limits) -> Result<(), String> {
    check_duration("the header timeout", l.header_timeout)?;
    check_duration("the io timeout", l.io_timeout)?;
    check_duration("the linger time", l.linger)?;
    check_duration("the request body timeout", l.body_timeout)?;
    check_duration("the WebSocket close timeout", l.ws_close_timeout)?;
    check_duration("the TLS handshake timeout", l.tls_handshake_timeout)
}
