//! Vhosts as they serve: [`Vhost`], built once from a [`VhostInfo`] by
//! [`build`] (which checks it and resolves its mounts), selection among
//! a listener's vhosts (VH-1), and the checks on a `Host` value the
//! HTTP/1 role uses.

use crate::conn::{MountLive, VhostLive};
use crate::context::{check_duration, FopsFactory, VhostInfo};
use crate::metrics::Metrics;
use crate::mount::{Mount, Origin};
use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// A vhost while it serves: its configuration, resolved and checked, and
/// immutable (what changes while serving is in [`VhostLive`]). Loops may
/// share it.
#[derive(Debug, Clone)]
pub(crate) struct Vhost {
    pub(crate) name: String,
    pub(crate) listen: SocketAddr,
    /// Its mounts, with every `Origin::Path` opened into its fops.
    pub(crate) mounts: Vec<Mount>,
    pub(crate) error_document_404: Option<String>,
    pub(crate) keepalive_timeout: Duration,
    /// TCP keepalive for the connections its address accepts (when it
    /// is the address's first vhost).
    pub(crate) tcp_keepalive: Option<crate::context::TcpKeepalive>,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) server_string: Option<String>,
    /// The protocol for WebSocket upgrades that name none.
    #[cfg_attr(not(feature = "ws"), allow(dead_code))]
    pub(crate) default_protocol: Option<String>,
    /// WebSocket liveness: ping after, hang up after.
    #[cfg_attr(not(feature = "ws"), allow(dead_code))]
    pub(crate) ws_keepalive: Option<(Duration, Duration)>,
    /// Whether upgrades may negotiate permessage-deflate.
    #[cfg_attr(not(feature = "ws"), allow(dead_code))]
    pub(crate) ws_deflate: bool,
    /// The real path of what its `/` serves from (a CGI's
    /// `DOCUMENT_ROOT`), worked out once.
    #[cfg(feature = "cgi")]
    pub(crate) document_root: Option<String>,
    /// Its protocols' names, by index (the instances are in
    /// [`VhostLive::protocols`]).
    pub(crate) protocol_names: Vec<String>,
    /// What its port's connections become raw for (when it is the
    /// port's first vhost): RAW-1, RAW-2.
    pub(crate) raw_accept: Option<RawAccept>,
    /// The network device its port is bound to (when it is the port's
    /// first vhost): `SO_BINDTODEVICE`.
    pub(crate) bind_device: Option<String>,
    /// Its TLS, when it has a certificate.
    #[cfg(feature = "tls")]
    pub(crate) tls: Option<crate::tls::VhostTls>,
    /// What its port does with plaintext clients (when it is the port's
    /// first vhost).
    #[cfg(feature = "tls")]
    pub(crate) plain_on_tls: crate::tls::PlainOnTls,
    /// Whether responses over TLS carry Strict-Transport-Security.
    #[cfg(feature = "tls")]
    pub(crate) sts: bool,
}

/// A vhost's raw accepting ([`crate::VhostInfo::listen_accept_protocol`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct RawAccept {
    /// The protocol raw connections are bound to, by index.
    pub(crate) protocol: usize,
    /// Every connection is raw from its first byte (RAW-1).
    pub(crate) always: bool,
    /// A connection whose first bytes are not HTTP becomes raw (RAW-2).
    pub(crate) fallback: bool,
}

impl Vhost {
    /// What every response head of this vhost carries; `secure`: the
    /// connection is TLS.
    pub(crate) fn head_env<'a>(&'a self, date: &'a str, secure: bool) -> crate::http::respond::HeadEnv<'a> {
        #[cfg(feature = "tls")]
        let sts = self.sts && secure;
        #[cfg(not(feature = "tls"))]
        let sts = {
            let _ = secure;
            false
        };
        crate::http::respond::HeadEnv { date, headers: &self.headers, server: self.server_string.as_deref(), sts }
    }

    /// The index of the protocol called `name`.
    pub(crate) fn protocol(&self, name: &str) -> Option<usize> {
        self.protocol_names.iter().position(|p| p == name)
    }
}

/// A vhost's configuration checked and resolved as far as it can be
/// without side effects: what [`build`] serves from, and what
/// [`ContextInfo::check`](crate::ContextInfo::check) reports on. One path
/// for both, so a check cannot pass what a start refuses.
pub(crate) struct Resolved {
    /// The vhost's mounts, each `Origin::Path` opened into its fops
    /// (those that could not be opened stay paths, and are problems).
    pub(crate) mounts: Vec<Mount>,
    /// Its TLS, built (certificates and keys read and matched).
    #[cfg(feature = "tls")]
    pub(crate) tls: Option<crate::tls::VhostTls>,
    /// Each mount's credentials, read (in mount order).
    pub(crate) auth: Vec<Option<crate::auth::Credentials>>,
    /// Its error pages, read.
    pub(crate) error_pages: Vec<crate::reload::ErrorPage>,
    /// What refuses the vhost: [`build`] fails with the first,
    /// the check reports them all.
    pub(crate) problems: Vec<crate::Error>,
    /// What a start serves anyway (logged as a warning), which the check
    /// still reports as errors: a credentials file or error page that
    /// cannot be read, a CGI program that is not there or cannot run.
    pub(crate) doubts: Vec<String>,
}

/// Checks `v` and resolves it ([`Resolved`]): its headers and timeouts,
/// its TLS, its mounts' file systems (through `factory` when there is
/// one), the protocols its mounts name, its CGI programs, credentials
/// and error pages. Every problem is collected, not just the first; the
/// access log is left to the caller (opening it creates it).
pub(crate) fn resolve(v: &VhostInfo, factory: Option<&FopsFactory>, now: Instant) -> Resolved {
    let name = &v.name;
    let mut problems: Vec<crate::Error> =
        check_vhost(v).into_iter().map(|why| crate::Error::invalid_input(format!("vhost {name:?}: {why}"))).collect();
    let mut doubts = Vec::new();
    #[cfg(feature = "tls")]
    let tls = match (&v.built_tls, &v.tls) {
        (Some(built), _) => Some(built.clone()),
        (None, Some(t)) => match crate::tls::server::build(name, t) {
            Ok(built) => Some(built),
            Err(why) => {
                problems.push(crate::Error::invalid_input(format!("vhost {name:?}: TLS: {why}")));
                None
            }
        },
        (None, None) => None,
    };
    let mut mounts = v.mounts.clone();
    let mut auth = Vec::with_capacity(mounts.len());
    for m in mounts.iter_mut() {
        if let Origin::Path(path) = &m.origin {
            let fops = match factory {
                Some(f) => f(path),
                None => crate::mount::default_fops_with(path, m.symlinks),
            };
            match fops {
                Ok(fops) => m.origin = Origin::File(fops),
                Err(e) => problems
                    .push(io::Error::new(e.kind(), format!("vhost {name:?}: mount {}: {e}", m.mountpoint)).into()),
            }
        }
        #[cfg(not(feature = "cgi"))]
        if matches!(m.origin, Origin::Fcgi(_)) {
            problems.push(crate::Error::invalid_input(format!(
                "vhost {name:?}: mount {}: an fcgi:// mount, and this warren is built without the `cgi` feature",
                m.mountpoint
            )));
        }
        if let Origin::Cgi(program) = &m.origin {
            #[cfg(not(feature = "cgi"))]
            {
                let _ = program;
                problems.push(crate::Error::invalid_input(format!(
                    "vhost {name:?}: mount {}: a cgi:// mount, and this warren is built without the `cgi` feature",
                    m.mountpoint
                )));
            }
            #[cfg(feature = "cgi")]
            if let Err(why) = cgi_origin_problem(program) {
                let why = format!("vhost {name:?}: mount {}: {why}", m.mountpoint);
                log::warn!("{why}: its requests will fail");
                doubts.push(why);
            }
        }
        mount_scripts(name, m, &mut problems);
        let callback = match &m.origin {
            Origin::Callback(name) => Some(name),
            _ => None,
        };
        for pname in callback.into_iter().chain(m.interpret.iter().map(|(_, p)| p)) {
            if !v.protocols.iter().any(|p| p.name() == pname) {
                problems.push(crate::Error::invalid_input(format!(
                    "vhost {name:?}: mount {} names protocol {pname:?}, which the vhost does not have",
                    m.mountpoint
                )));
            }
        }
        // Credentials are read now, not per request.
        auth.push(m.basic_auth.as_ref().map(|file| {
            let mut c = crate::auth::Credentials::new(file.clone());
            c.load(now);
            if !c.readable() {
                doubts.push(format!(
                    "vhost {name:?}: mount {}: basic-auth file {}: cannot be read (everyone is refused)",
                    m.mountpoint,
                    file.display()
                ));
            }
            c
        }));
    }
    // An error page is read as a file: never a script, nor what the
    // mount's rules refuse.
    for path in v.error_pages.iter().map(|p| p.path.as_str()) {
        if let Some((_, m)) = crate::mount::find(&mounts, path) {
            let file = path.rsplit('/').next().unwrap_or("");
            let why = if m.assigned(file).is_some() {
                Some("a script of its mount (cgi-assign), which is run, never sent")
            } else {
                crate::mount::refusal(m, path).map(|(_, why)| why)
            };
            if let Some(why) = why {
                problems.push(crate::Error::invalid_input(format!("vhost {name:?}: error page {path}: {why}")));
            }
        }
    }
    // So are error pages.
    let mut error_pages: Vec<crate::reload::ErrorPage> =
        v.error_pages.iter().map(|p| crate::reload::ErrorPage::new(p.status, p.path.clone())).collect();
    for page in error_pages.iter_mut() {
        if page.body(&mounts, now).is_none() {
            doubts.push(format!(
                "vhost {name:?}: error page {} for {}: not a readable file of its file mounts",
                page.path, page.status
            ));
        }
    }
    Resolved {
        mounts,
        #[cfg(feature = "tls")]
        tls,
        auth,
        error_pages,
        problems,
        doubts,
    }
}

/// Checks what a mount runs by suffix and opens the directories its
/// CGI responses may name in `X-Sendfile`.
fn mount_scripts(name: &str, m: &mut crate::Mount, problems: &mut Vec<crate::Error>) {
    let mut problem = |why: String| {
        problems.push(crate::Error::invalid_input(format!("vhost {name:?}: mount {}: {why}", m.mountpoint)))
    };
    if !m.assign.is_empty() {
        if !matches!(m.origin, Origin::File(_) | Origin::Path(_)) {
            problem("cgi-assign runs files of a file mount; this mount serves no files".into());
        }
        #[cfg(not(feature = "cgi"))]
        problem("cgi-assign, and this warren is built without the `cgi` feature".into());
        #[cfg(feature = "cgi")]
        for (suffix, runner) in &m.assign {
            let crate::mount::Runner::Interpreter(interpreter) = runner else { continue };
            if let Err(why) = cgi_origin_problem(interpreter) {
                problem(format!("cgi-assign {suffix}: {why}"));
            } else if interpreter.is_dir() {
                problem(format!("cgi-assign {suffix}: the interpreter is a directory"));
            }
        }
    }
    for x in m.x_sendfile.iter_mut() {
        match warren_vfs::PlainFops::new(&x.dir) {
            Ok(fops) => x.fops = Some(std::sync::Arc::new(fops.with_symlinks(m.symlinks))),
            Err(e) => problem(format!("x-sendfile directory {}: {e}", x.dir.display())),
        }
    }
}

/// Whether a `cgi://` origin can run: an executable regular file, or a
/// directory (of programs).
#[cfg(feature = "cgi")]
pub(crate) fn cgi_origin_problem(program: &std::path::Path) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(program).map_err(|e| format!("CGI program {}: {e}", program.display()))?;
    if meta.is_dir() {
        return Ok(());
    }
    if !meta.is_file() {
        return Err(format!("CGI program {}: neither a program nor a directory", program.display()));
    }
    if meta.permissions().mode() & 0o111 == 0 {
        return Err(format!("CGI program {}: a file, but not executable", program.display()));
    }
    Ok(())
}

/// [`resolve`]s `v`, then opens its access log (or takes the one of
/// `logs` open already for its path): the vhost to serve, and its live
/// part. Fails with the first problem [`resolve`] found.
/// Its counters are `metrics`' for its name, and its file systems count
/// their directory loads there.
pub(crate) fn build(
    v: VhostInfo,
    factory: Option<&FopsFactory>,
    logs: &mut crate::access_log::AccessLogs,
    now: Instant,
    metrics: &Metrics,
) -> crate::Result<(Vhost, VhostLive)> {
    let resolved = resolve(&v, factory, now);
    if let Some(e) = resolved.problems.into_iter().next() {
        return Err(e);
    }
    let Resolved {
        mounts,
        #[cfg(feature = "tls")]
        tls,
        auth,
        error_pages,
        ..
    } = resolved;
    let VhostInfo {
        name,
        listen,
        protocols,
        error_document_404,
        keepalive_timeout,
        tcp_keepalive,
        headers,
        server_string,
        access_log,
        default_protocol,
        ws_keepalive,
        ws_deflate,
        #[cfg(feature = "tls")]
        plain_on_tls,
        #[cfg(feature = "tls")]
        sts,
        listen_accept_protocol,
        apply_listen_accept,
        fallback_listen_accept,
        bind_device,
        ..
    } = v;
    let raw_accept = match (listen_accept_protocol, apply_listen_accept || fallback_listen_accept) {
        (Some(p), true) => match protocols.iter().position(|x| x.name() == p) {
            Some(protocol) => {
                Some(RawAccept { protocol, always: apply_listen_accept, fallback: fallback_listen_accept })
            }
            None => {
                return Err(crate::Error::invalid_input(format!(
                    "vhost {name:?}: listen-accept-protocol {p:?} is not one of its protocols ({})",
                    protocols.iter().map(|x| format!("{:?}", x.name())).collect::<Vec<_>>().join(", ")
                )))
            }
        },
        (None, true) => {
            return Err(crate::Error::invalid_input(format!(
                "vhost {name:?}: apply-listen-accept and fallback-listen-accept need listen-accept-protocol, the \
                 protocol raw connections are bound to"
            )))
        }
        (_, false) => None,
    };
    for m in &mounts {
        if let Origin::File(fops) = &m.origin {
            fops.count_directory_loads(std::sync::Arc::clone(&metrics.zip_loads));
        }
    }
    let live_mounts = auth.into_iter().map(MountLive::new).collect();
    let access_log = access_log.as_deref().map(|p| logs.open(p)).transpose()?;
    #[cfg(feature = "cgi")]
    let document_root =
        crate::roles::cgi::translate(&mounts, "/").ok().flatten().map(|p| p.to_string_lossy().into_owned());
    let vhost = Vhost {
        #[cfg(feature = "cgi")]
        document_root,
        name,
        listen,
        mounts,
        error_document_404,
        keepalive_timeout,
        tcp_keepalive,
        headers,
        server_string,
        default_protocol,
        ws_keepalive,
        ws_deflate,
        protocol_names: protocols.iter().map(|p| p.name().to_string()).collect(),
        raw_accept,
        bind_device,
        #[cfg(feature = "tls")]
        tls,
        #[cfg(feature = "tls")]
        plain_on_tls,
        #[cfg(feature = "tls")]
        sts,
    };
    let live =
        VhostLive { protocols, access_log, error_pages, mounts: live_mounts, metrics: metrics.vhost(&vhost.name) };
    Ok((vhost, live))
}

/// Vhosts on one address share its listener: they must all speak TLS
/// or none. `first`: the name and TLS-ness of the address's first vhost.
pub(crate) fn check_shared_port(name: &str, listen: SocketAddr, tls: bool, first: (&str, bool)) -> crate::Result<()> {
    if first.1 != tls {
        return Err(crate::Error::invalid_input(format!(
            "vhost {name:?} shares {listen} with vhost {:?}, and only one of them has TLS: the vhosts \
             of a port all speak TLS or none does",
            first.0
        )));
    }
    Ok(())
}

/// What a vhost sends on every response must not be able to split it:
/// header names are tokens, and values (and the server string) hold no
/// control characters but tab. Timeouts are in range. Every problem
/// found, not just the first.
fn check_vhost(v: &VhostInfo) -> Vec<String> {
    let mut problems = Vec::new();
    let mut check = |r: Result<(), String>| {
        if let Err(why) = r {
            problems.push(why);
        }
    };
    check(check_duration("the keep-alive timeout", v.keepalive_timeout));
    if let Some(why) = v.tcp_keepalive.as_ref().and_then(crate::context::TcpKeepalive::problem) {
        check(Err(why));
    }
    if let Some((ping, hangup)) = v.ws_keepalive {
        check(check_duration("the WebSocket ping interval", ping));
        check(check_duration("the WebSocket hang-up time", hangup));
    }
    for m in &v.mounts {
        check(check_duration(&format!("mount {}: the CGI timeout", m.mountpoint), m.cgi.timeout));
    }
    use crate::http::{config_path_problem, field_problem, server_owned_field};
    if v.name.chars().any(char::is_control) {
        check(Err("a vhost name cannot hold control characters".into()));
    }
    for (name, value) in &v.headers {
        if let Some(why) = field_problem(name, value) {
            check(Err(format!("header {name:?}: {why}")));
        } else if server_owned_field(name) {
            check(Err(format!("header {name:?}: the server sets this field itself")));
        }
    }
    if let Some(s) = &v.server_string {
        if let Some(why) = field_problem("Server", s) {
            check(Err(format!("server string {s:?}: {why}")));
        }
    }
    if let Some(doc) = &v.error_document_404 {
        if let Some(why) = config_path_problem(doc) {
            check(Err(format!("error document {doc:?}: {why}")));
        }
    }
    for m in &v.mounts {
        if let Some(why) = config_path_problem(&m.mountpoint) {
            check(Err(format!("mountpoint {:?}: {why}", m.mountpoint)));
        }
        for (suffix, t) in &m.extra_mimetypes {
            if let Some(why) = field_problem("Content-Type", t) {
                check(Err(format!("mount {}: content type for {suffix:?}: {why}", m.mountpoint)));
            }
        }
        if let Origin::Redirect { to, .. } = &m.origin {
            if let Some(why) = field_problem("Location", to) {
                check(Err(format!("mount {}: redirect target {to:?}: {why}", m.mountpoint)));
            }
        }
        for (name, value) in &m.cgi.env {
            let bad_name = name.is_empty() || name.contains('=') || name.chars().any(char::is_control);
            if bad_name || value.contains('\0') {
                check(Err(format!(
                    "mount {}: CGI variable {name:?}: not a variable name, or a value with NUL",
                    m.mountpoint
                )));
            }
        }
    }
    problems
}

/// VH-1: among the vhosts of a listener, the one named by `host` (port
/// stripped, case-insensitive), else the nearest wildcard parent
/// (`a.b.example.com` → `example.com`), else the first.
pub(crate) fn select_vhost(vhosts: &[Vhost], candidates: &[usize], host: Option<&str>) -> usize {
    let first = candidates.first().copied().unwrap_or(0);
    let Some(host) = host.map(strip_port) else { return first };
    if candidates.len() == 1 {
        return first;
    }
    if let Some(&v) = candidates.iter().find(|&&v| vhosts[v].name.eq_ignore_ascii_case(host)) {
        return v;
    }
    let parent = candidates
        .iter()
        .filter(|&&v| {
            let name = vhosts[v].name.as_bytes();
            let h = host.as_bytes();
            h.len() > name.len() + 1
                && h[h.len() - name.len() - 1] == b'.'
                && h[h.len() - name.len()..].eq_ignore_ascii_case(name)
        })
        .max_by_key(|&&v| vhosts[v].name.len());
    parent.copied().unwrap_or(first)
}

/// A Host value without its port (`[::1]:80` → `[::1]`); a suffix that
/// is not all digits is not a port and stays.
pub(crate) fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host.find(']').map_or(host, |i| &host[..=i]);
    }
    match host.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    }
}

/// A Host value we are willing to echo into a Location header.
pub(crate) fn plain_host(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= 255
        && h.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']' | b'_'))
}

/// Binds `sock` to the network device `device` (`SO_BINDTODEVICE`), for
/// vhost `name`'s port.
pub(crate) fn bind_device(sock: &std::net::TcpListener, name: &str, device: &str) -> crate::Result<()> {
    socket2::SockRef::from(sock).bind_device(Some(device.as_bytes())).map_err(|e| {
        let why = match e.raw_os_error() {
            Some(libc::ENODEV) => "no such network device".to_string(),
            Some(libc::EPERM) => "not permitted (binding to a device needs CAP_NET_RAW)".to_string(),
            _ => e.to_string(),
        };
        crate::Error::invalid_input(format!("vhost {name:?}: bind-to-device {device:?}: {why}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn vhosts(names: &[&str]) -> Vec<Vhost> {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
        let now = Instant::now();
        names
            .iter()
            .filter_map(|n| build(VhostInfo::new(*n, addr), None, &mut Default::default(), now, &Metrics::new()).ok())
            .map(|(v, _)| v)
            .collect()
    }

    #[test]
    fn vhost_selection() {
        let v = vhosts(&["first", "abc.com", "x.abc.com", "abc"]);
        let all = [0, 1, 2, 3];
        assert_eq!(select_vhost(&v, &all, Some("ABC.com:8080")), 1);
        assert_eq!(select_vhost(&v, &all, Some("cats.abc.com")), 1);
        assert_eq!(select_vhost(&v, &all, Some("y.x.abc.com")), 2);
        assert_eq!(select_vhost(&v, &all, Some("abc")), 3, "no prefix-match bug");
        assert_eq!(select_vhost(&v, &all, Some("ab")), 0);
        assert_eq!(select_vhost(&v, &all, None), 0);
        assert_eq!(strip_port("[::1]:80"), "[::1]");
        assert_eq!(strip_port("h:x"), "h:x");
    }
}
