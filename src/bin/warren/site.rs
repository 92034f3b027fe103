//! What the command line asks to serve, as a [`ContextInfo`]: from an
//! lwsws-style configuration directory, or from the flags. Built the same
//! way at start, on every reload and by `warren check`, so they cannot
//! drift apart.

use crate::cli::{Runs, ServeArgs};
use std::io::ErrorKind;
use std::net::{IpAddr, Ipv6Addr, SocketAddr, TcpListener, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;
use warren::tls::{PlainOnTls, TlsConfig};
use warren::vfs::ZipFops;
use warren::{ContextInfo, Mount, VhostInfo};

/// The site `warren` serves when given no `--root`: the project's
/// `webroot/`, packed into a zip by build.rs and compiled in.
static DEFAULT_SITE: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/webroot.zip"));

/// What is served, described for the startup line: the configuration
/// directory or the root.
pub fn what(args: &ServeArgs) -> String {
    match (&args.config, &args.root) {
        (Some(dir), _) => dir.display().to_string(),
        (None, Some(root)) => root.display().to_string(),
        (None, None) => "the built-in site".into(),
    }
}

/// The context `args` describe. `listeners` are listening sockets bound
/// already (by a context this one replaces, or by systemd): vhosts on
/// their addresses take them over. With none, the flags' addresses are
/// bound here (the configuration's are bound by the context).
pub fn context_info(args: &ServeArgs, listeners: Vec<TcpListener>) -> Result<ContextInfo, String> {
    build(args, Some(listeners))
}

/// The context `args` describe, as [`context_info`] builds it but with
/// nothing bound (the flags' addresses are named, not listened on), for
/// `warren check`.
pub fn check_info(args: &ServeArgs) -> Result<ContextInfo, String> {
    build(args, None)
}

/// [`context_info`] (`listeners` given) or [`check_info`] (none).
fn build(args: &ServeArgs, listeners: Option<Vec<TcpListener>>) -> Result<ContextInfo, String> {
    let info = build_site(args, listeners)?;
    Ok(match args.threads {
        Some(n) => info.threads(n as usize).reuse_port(args.reuse_port),
        None => info,
    })
}

/// [`build`] but for the service threads.
fn build_site(args: &ServeArgs, listeners: Option<Vec<TcpListener>>) -> Result<ContextInfo, String> {
    if let Some(dir) = &args.config {
        let mut info = warren::config::load_dir(dir).map_err(|e| e.to_string())?;
        for l in listeners.into_iter().flatten() {
            info = info.listener(l);
        }
        if let Some(log) = &args.access_log {
            info = info.default_access_log(log);
        }
        return Ok(info);
    }
    let root = root_mount(args)?;
    let limits = warren::Limits {
        peer_connections: args.peer_connections.map_or(0, |n| n as usize),
        peer_requests: args.peer_requests.map_or(0, |n| n as usize),
        ..warren::Limits::default()
    };
    let mut info = ContextInfo::new().limits(limits);
    let Some(listeners) = listeners else {
        for (addr, _) in flag_addrs(args)? {
            info = info.vhost(vhost_on(args, &root, addr));
        }
        return Ok(info);
    };
    let listeners = if listeners.is_empty() { bind_flags(args)? } else { listeners };
    for l in listeners {
        let addr = l.local_addr().map_err(|e| format!("a listening socket: {e}"))?;
        info = info.vhost(vhost_on(args, &root, addr)).listener(l);
    }
    Ok(info)
}

/// The vhost the flags describe, on `addr`.
fn vhost_on(args: &ServeArgs, root: &Mount, addr: SocketAddr) -> VhostInfo {
    let mut vhost = VhostInfo::new("default", addr)
        .keepalive_timeout(args.keepalive())
        .mount(root.clone())
        .mount(Mount::callback("/formtest", warren::plugins::post_demo::NAME))
        // Upgrades that name no subprotocol get the echo (what the
        // Autobahn suite and quick tests with a bare client expect).
        .default_protocol(warren::plugins::echo::NAME);
    if let Some((time, probes, interval)) = args.tcp_keepalive {
        vhost = vhost.tcp_keepalive(Duration::from_secs(time), probes, Duration::from_secs(interval));
    }
    for name in warren::plugins::NAMES {
        vhost.plugin(name);
    }
    for (mountpoint, path) in &args.cgi {
        let mut m = Mount::cgi(mountpoint, path).symlinks(args.symlinks).allow_dotfiles(args.allow_dotfiles);
        if !args.index.is_empty() {
            m = m.index(args.index.iter().cloned());
        }
        for dir in &args.x_sendfile {
            m = m.x_sendfile(dir);
        }
        vhost = vhost.mount(m);
    }
    for (mountpoint, addr) in &args.fcgi {
        let mut m = fcgi_flags(args, Mount::fcgi(mountpoint, addr.clone()));
        for dir in &args.x_sendfile {
            m = m.x_sendfile(dir);
        }
        vhost = vhost.mount(m);
    }
    if let Some(log) = &args.access_log {
        vhost = vhost.access_log(log);
    }
    if let Some(path) = &args.metrics {
        vhost = vhost.mount(Mount::callback(path, warren::plugins::metrics::NAME));
    }
    if let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) {
        let plain = if args.redirect_http { PlainOnTls::Redirect } else { PlainOnTls::Drop };
        vhost = vhost.tls(TlsConfig::from_pem_files(cert, key)).plain_on_tls(plain);
    }
    vhost
}

/// The mount at `/`: `--root PATH` (opened with the context, by
/// [`warren::default_fops`], so a check opens it as a start does), or
/// the built-in site.
fn root_mount(args: &ServeArgs) -> Result<Mount, String> {
    if args.root.is_none() && !(args.cgi_assign.is_empty() && args.deny.is_empty()) {
        return Err("--cgi-assign and --deny apply to the --root directory; give one".into());
    }
    if !args.x_sendfile.is_empty() && args.cgi_assign.is_empty() && args.cgi.is_empty() && args.fcgi.is_empty() {
        return Err("--x-sendfile lets CGI responses name files: it needs --cgi-assign, --cgi or --fcgi".into());
    }
    // The site (--root, or the built-in one) is at `/`: a program there
    // would never be reached.
    if let Some((mp, flag)) = args
        .cgi
        .iter()
        .map(|(mp, _)| (mp, "--cgi"))
        .chain(args.fcgi.iter().map(|(mp, _)| (mp, "--fcgi")))
        .find(|(mp, _)| mp.trim_end_matches('/').is_empty())
    {
        return Err(format!(
            "{flag} {mp}=...: the site is served at /; give another mountpoint, or --cgi-assign SUFFIX=... to run the site's own scripts"
        ));
    }
    let fcgi = args.fcgi.is_empty() && !args.cgi_assign.iter().any(|(_, r)| matches!(r, Runs::Fcgi(_)));
    if fcgi
        && (args.fcgi_max_requests.is_some() || args.fcgi_keepalive.is_some() || args.fcgi_connect_timeout.is_some())
    {
        return Err(
            "--fcgi-max-requests, --fcgi-keepalive and --fcgi-connect-timeout need --fcgi or --cgi-assign SUFFIX=fcgi://ADDR"
                .into(),
        );
    }
    for (i, (a, _)) in args.cgi_assign.iter().enumerate() {
        if args.cgi_assign[..i].iter().any(|(b, _)| a.eq_ignore_ascii_case(b)) {
            return Err(format!("--cgi-assign {a}: given twice (suffixes match ignoring case)"));
        }
    }
    match &args.root {
        None => {
            let fops = ZipFops::from_bytes("webroot.zip (built in)", DEFAULT_SITE).map_err(|e| e.to_string())?;
            Ok(Mount::files("/", Arc::new(fops)))
        }
        Some(root) => {
            let mut m = Mount::dir("/", root).symlinks(args.symlinks).allow_dotfiles(args.allow_dotfiles);
            if !args.index.is_empty() {
                m = m.index(args.index.iter().cloned());
            }
            for (suffix, runs) in &args.cgi_assign {
                m = match runs {
                    Runs::Program(interpreter) => m.cgi_assign(suffix.clone(), interpreter.clone()),
                    Runs::Fcgi(addr) => m.fcgi_assign(suffix.clone(), addr.clone()),
                };
            }
            m = fcgi_flags(args, m);
            for rule in &args.deny {
                m = m.deny(rule.clone());
            }
            for dir in &args.x_sendfile {
                m = m.x_sendfile(dir);
            }
            Ok(m)
        }
    }
}

/// The FastCGI flags, on a mount that talks to FastCGI servers.
fn fcgi_flags(args: &ServeArgs, mut m: Mount) -> Mount {
    if let Some(n) = args.fcgi_max_requests {
        m = m.fcgi_max_requests(n as usize);
    }
    if let Some(n) = args.fcgi_keepalive {
        m = m.fcgi_keepalive(n as usize);
    }
    if let Some(s) = args.fcgi_connect_timeout {
        m = m.fcgi_connect_timeout(std::time::Duration::from_secs(s.into()));
    }
    m
}

/// The flags' addresses, each with whether it came from a host name, in
/// order and without repeats.
fn flag_addrs(args: &ServeArgs) -> Result<Vec<(SocketAddr, bool)>, String> {
    let binds: Vec<&str> =
        if args.bind.is_empty() { vec!["127.0.0.1"] } else { args.bind.iter().map(|s| s.as_str()).collect() };
    let mut addrs: Vec<(SocketAddr, bool)> = Vec::new();
    for v in binds {
        for a in bind_addrs(v, args.port)? {
            if !addrs.iter().any(|(b, _)| *b == a.0) {
                addrs.push(a);
            }
        }
    }
    Ok(addrs)
}

/// Binds the flags' addresses: the first on `--port` (0: one the system
/// picks), the others on the port it got, so `--port 0` means one port
/// for all of them. An address a host name resolves to but the machine
/// lacks (::1 with IPv6 off) is skipped with a warning, if another one is
/// bound.
fn bind_flags(args: &ServeArgs) -> Result<Vec<TcpListener>, String> {
    let addrs = flag_addrs(args)?;
    let skippable = |e: &warren::Error, named: bool, left: usize| {
        named && left > 0 && e.io_error().is_some_and(|e| e.kind() == ErrorKind::AddrNotAvailable)
    };
    let mut bound: Vec<TcpListener> = Vec::new();
    let mut port = args.port;
    let total = addrs.len();
    for (i, (addr, named)) in addrs.into_iter().enumerate() {
        let addr = SocketAddr::new(addr.ip(), port);
        // Left to try if this one is skipped: the rest, or one bound.
        let left = total - i - 1 + bound.len();
        let bound_here = if args.reuse_port && args.threads.is_some_and(|n| n > 1) {
            warren::bind_reuse_port_listener(addr)
        } else {
            warren::bind_listener(addr)
        };
        match bound_here {
            Ok(l) => {
                if port == 0 {
                    port = l.local_addr().map_err(|e| format!("{addr}: {e}"))?.port();
                }
                bound.push(l);
            }
            Err(e) if skippable(&e, named, left) => log::warn!("--bind: skipping {addr}: {e}"),
            Err(e) => return Err(e.to_string()),
        }
    }
    if bound.is_empty() {
        return Err("--bind: no address to listen on".into());
    }
    Ok(bound)
}

/// The addresses `--bind ADDR` means on `port`, each with whether it came
/// from a host name: an IP address (`[v6]` too) is itself; a name is
/// every address it resolves to, in the resolver's order.
fn bind_addrs(v: &str, port: u16) -> Result<Vec<(SocketAddr, bool)>, String> {
    if let Some(inner) = v.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
        let ip: Ipv6Addr = inner.parse().map_err(|_| format!("--bind: {v:?} is not an IPv6 address"))?;
        return Ok(vec![(SocketAddr::new(ip.into(), port), false)]);
    }
    if let Ok(ip) = v.parse::<IpAddr>() {
        return Ok(vec![(SocketAddr::new(ip, port), false)]);
    }
    let name_like = !v.is_empty() && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    if !name_like {
        return Err(format!("--bind: {v:?} is neither an IP address nor a host name"));
    }
    let resolved = (v, port).to_socket_addrs().map_err(|e| format!("--bind: cannot resolve {v:?}: {e}"))?;
    let addrs: Vec<(SocketAddr, bool)> = resolved.map(|a| (a, true)).collect();
    if addrs.is_empty() {
        return Err(format!("--bind: {v:?} resolves to no address"));
    }
    Ok(addrs)
}
