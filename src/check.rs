//! [`ContextInfo::check`]: a configuration validated as
//! [`Context::new`](crate::Context::new) would, short of binding and of
//! side effects, and a [`Report`] of what it would serve (as `nginx -t`).

use crate::context::{check_context, ContextInfo, VhostInfo};
use crate::mount::{Mount, Origin};
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// What a [`ContextInfo`] would serve: its listeners, in the order their
/// first vhost was given. [`Display`](fmt::Display) writes it for people.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Report {
    /// One per address listened on.
    pub listeners: Vec<ListenerReport>,
}

/// A listening address and the vhosts that share it.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ListenerReport {
    /// The address asked for (port 0: any free port at start).
    pub address: SocketAddr,
    /// Whether it speaks TLS (its vhosts all do, or none does).
    pub tls: bool,
    /// Its vhosts; the first answers requests that name none of them.
    pub vhosts: Vec<VhostReport>,
}

/// One vhost as it would serve.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct VhostReport {
    /// Its name (matched against `Host` and the TLS SNI).
    pub name: String,
    /// Its TLS, if it has any.
    pub tls: Option<TlsReport>,
    /// Its protocols, by name.
    pub protocols: Vec<String>,
    /// The protocol upgrades naming none get.
    pub default_protocol: Option<String>,
    /// Headers added to every response.
    pub headers: Vec<(String, String)>,
    /// The `Server` header, if one is sent.
    pub server_string: Option<String>,
    /// The keep-alive idle timeout.
    pub keepalive_timeout: Duration,
    /// Error pages: status and URL path.
    pub error_pages: Vec<(u16, String)>,
    /// The page for a file not found (lwsws `error-document-404`), if any.
    pub error_document_404: Option<String>,
    /// The access log file, if any.
    pub access_log: Option<PathBuf>,
    /// Its mounts, in the order given.
    pub mounts: Vec<MountReport>,
}

/// A TLS vhost's certificate.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct TlsReport {
    /// The certificate chain file (none: user code resolves certificates).
    pub certificate: Option<PathBuf>,
    /// The private key file.
    pub key: Option<PathBuf>,
    /// The DNS names the certificate covers.
    pub names: Vec<String>,
    /// The CA client certificates are verified against, if any.
    pub client_ca: Option<PathBuf>,
    /// Whether a client certificate is required.
    pub client_cert_required: bool,
}

/// What serves a mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum MountKind {
    /// Files from a directory (zip archives inside it served from inside).
    Files,
    /// Files from inside one zip archive.
    Zip,
    /// CGI programs.
    Cgi,
    /// A FastCGI application server.
    Fcgi,
    /// A protocol of the vhost.
    Callback,
    /// A redirect (301).
    Redirect,
}

impl fmt::Display for MountKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MountKind::Files => "files",
            MountKind::Zip => "zip",
            MountKind::Cgi => "cgi",
            MountKind::Fcgi => "fcgi",
            MountKind::Callback => "callback",
            MountKind::Redirect => "redirect",
        })
    }
}

/// One mount as it would serve.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct MountReport {
    /// The normalised mountpoint.
    pub mountpoint: String,
    /// What serves it.
    pub kind: MountKind,
    /// Where from: the directory, archive or program path, the protocol
    /// name, or the redirect target.
    pub origin: String,
    /// Redirects: whether the path below the mountpoint is appended.
    pub append_path: bool,
    /// The documents tried, in order, for a directory URL.
    pub index: Vec<String>,
    /// Suffixes run in place, and what runs them: an interpreter's
    /// path, a FastCGI server (`fcgi://…`), or empty (the file is its
    /// own program).
    pub assign: Vec<(String, String)>,
    /// Deny rules, as the configuration writes them.
    pub deny: Vec<String>,
    /// Whether dotfiles are served.
    pub dotfiles: bool,
    /// How symbolic links out of the origin are treated.
    pub symlinks: crate::Symlinks,
    /// Directories CGI responses may name in `X-Sendfile`.
    pub x_sendfile: Vec<PathBuf>,
    /// The `Cache-Control` its file responses carry (`None`: none).
    pub cache: Option<String>,
    /// Basic authentication: the realm and the credentials file.
    pub auth: Option<(String, PathBuf)>,
    /// Content types by suffix, before the built-in table.
    pub extra_mimetypes: Vec<(String, String)>,
    /// File suffixes sent through a protocol, and the protocol.
    pub interpret: Vec<(String, String)>,
    /// CGI mounts: how programs run.
    pub cgi: Option<CgiReport>,
}

/// How a CGI mount runs its programs.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct CgiReport {
    /// No byte moved either way for this long ends a program.
    pub timeout: Duration,
    /// Programs running at once, at most.
    pub max_processes: usize,
    /// Variables added to the environment.
    pub env: Vec<(String, String)>,
    /// `PATH` given to programs, when not the default.
    pub path: Option<String>,
    /// FastCGI: a connection not made within this is given up.
    pub fcgi_connect_timeout: Duration,
    /// FastCGI: requests in flight at one server, at most.
    pub fcgi_max_requests: usize,
    /// FastCGI: idle connections kept per server.
    pub fcgi_keepalive: usize,
}

impl ContextInfo {
    /// Validates this description as [`Context::new`](crate::Context::new)
    /// does, through the same code, short of binding its addresses and of
    /// side effects (an access log is looked at, not created): headers
    /// and limits, TLS certificates and keys (read and matched), each
    /// mount's directory or archive (opened, archives parsed), the
    /// protocols mounts name, CGI programs (there and executable),
    /// credentials files and error pages (read), access-log directories
    /// (writable), and vhosts sharing an address with different TLS.
    ///
    /// # Errors
    ///
    /// Every problem found (not just the first), each naming its vhost
    /// and mount or file. Some of them a start serves anyway, with a
    /// warning (a credentials file, error page or CGI program that cannot
    /// be used); the check reports them, as they are mistakes.
    pub fn check(&self) -> Result<Report, Vec<crate::Error>> {
        let mut errors = Vec::new();
        if let Err(e) = check_context(self) {
            errors.push(e);
        }
        let now = Instant::now();
        let mut listeners: Vec<ListenerReport> = Vec::new();
        for v in &self.vhosts {
            let resolved = crate::vhost::resolve(v, self.fops_factory.as_ref(), now);
            errors.extend(resolved.problems);
            errors.extend(resolved.doubts.into_iter().map(|d| std::io::Error::other(d).into()));
            // Its own, or the context's default one (as a start opens it).
            let access_log = v.access_log.as_ref().or(self.default_access_log.as_ref());
            if let Some(path) = access_log {
                if let Err(e) = crate::access_log::AccessLog::check_writable(path) {
                    errors.push(std::io::Error::new(e.kind(), format!("vhost {:?}: {e}", v.name)).into());
                }
            }
            #[cfg(feature = "tls")]
            let names = resolved.tls.as_ref().and_then(|t| t.slot.as_ref()).map(|s| s.names()).unwrap_or_default();
            #[cfg(not(feature = "tls"))]
            let names = Vec::new();
            let report = vhost_report(v, names, access_log.cloned());
            let tls = report.tls.is_some();
            match listeners.iter_mut().find(|l| l.address == v.listen) {
                Some(l) => {
                    let first = (l.vhosts[0].name.as_str(), l.tls);
                    if let Err(e) = crate::vhost::check_shared_port(&v.name, v.listen, tls, first) {
                        errors.push(e);
                    }
                    l.vhosts.push(report);
                }
                None => listeners.push(ListenerReport { address: v.listen, tls, vhosts: vec![report] }),
            }
        }
        if errors.is_empty() {
            Ok(Report { listeners })
        } else {
            Err(errors)
        }
    }
}

fn vhost_report(v: &VhostInfo, cert_names: Vec<String>, access_log: Option<std::path::PathBuf>) -> VhostReport {
    #[cfg(feature = "tls")]
    let tls = v.tls.as_ref().map(|t| {
        let (certificate, key) = match &t.cert {
            crate::tls::config::CertSource::Files { cert, key } => (Some(cert.clone()), Some(key.clone())),
            crate::tls::config::CertSource::Resolver(_) => (None, None),
        };
        TlsReport {
            certificate,
            key,
            names: cert_names,
            client_ca: t.client_ca.clone(),
            client_cert_required: t.client_cert_required,
        }
    });
    #[cfg(not(feature = "tls"))]
    let tls = {
        let _ = cert_names;
        None
    };
    VhostReport {
        name: v.name.clone(),
        tls,
        protocols: v.protocols.iter().map(|p| p.name().to_string()).collect(),
        default_protocol: v.default_protocol.clone(),
        headers: v.headers.clone(),
        server_string: v.server_string.clone(),
        keepalive_timeout: v.keepalive_timeout,
        error_pages: v.error_pages.iter().map(|p| (p.status, p.path.clone())).collect(),
        error_document_404: v.error_document_404.clone(),
        access_log,
        mounts: v.mounts.iter().map(mount_report).collect(),
    }
}

fn mount_report(m: &Mount) -> MountReport {
    let (kind, origin, append_path) = match &m.origin {
        Origin::File(fops) => (MountKind::Files, format!("{fops:?}"), false),
        Origin::Path(p) if p.is_file() => (MountKind::Zip, p.display().to_string(), false),
        Origin::Path(p) => (MountKind::Files, p.display().to_string(), false),
        Origin::Cgi(p) => (MountKind::Cgi, p.display().to_string(), false),
        Origin::Fcgi(a) => (MountKind::Fcgi, a.to_string(), false),
        Origin::Callback(name) => (MountKind::Callback, name.clone(), false),
        Origin::Redirect { to, append_path } => (MountKind::Redirect, to.clone(), *append_path),
    };
    let runs = matches!(kind, MountKind::Cgi | MountKind::Fcgi) || !m.assign.is_empty();
    let cgi = runs.then(|| CgiReport {
        timeout: m.cgi.timeout,
        max_processes: m.cgi.max_processes,
        env: m.cgi.env.clone(),
        path: m.cgi.path.clone(),
        fcgi_connect_timeout: m.cgi.fcgi.connect_timeout,
        fcgi_max_requests: m.cgi.fcgi.max_requests,
        fcgi_keepalive: m.cgi.fcgi.keepalive,
    });
    let runner = |r: &crate::mount::Runner| match r {
        crate::mount::Runner::Itself => String::new(),
        crate::mount::Runner::Interpreter(p) => p.display().to_string(),
        crate::mount::Runner::Fcgi(a) => a.to_string(),
    };
    MountReport {
        mountpoint: m.mountpoint.clone(),
        kind,
        origin,
        append_path,
        index: m.index.clone(),
        assign: m.assign.iter().map(|(s, r)| (s.clone(), runner(r))).collect(),
        deny: m.deny.iter().map(crate::DenyRule::describe).collect(),
        dotfiles: m.dotfiles,
        symlinks: m.symlinks,
        x_sendfile: m.x_sendfile.iter().map(|x| x.dir.clone()).collect(),
        cache: m.cache.as_ref().map(|c| c.header_value().into_owned()),
        auth: m.basic_auth.as_ref().map(|f| (crate::auth::REALM.to_string(), f.clone())),
        extra_mimetypes: m.extra_mimetypes.clone(),
        interpret: m.interpret.clone(),
        cgi,
    }
}

fn list<T>(items: &[T], each: impl Fn(&T) -> String) -> String {
    items.iter().map(each).collect::<Vec<_>>().join(", ")
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for l in &self.listeners {
            writeln!(f, "listener {} ({})", l.address, if l.tls { "https" } else { "http" })?;
            for v in &l.vhosts {
                write!(f, "  vhost {}", v.name)?;
                match &v.tls {
                    None => writeln!(f, " (no TLS)")?,
                    Some(t) => {
                        writeln!(f, " (TLS)")?;
                        match &t.certificate {
                            Some(cert) => writeln!(f, "    certificate: {}", cert.display())?,
                            None => writeln!(f, "    certificate: chosen by the program")?,
                        }
                        if let Some(key) = &t.key {
                            writeln!(f, "    key: {}", key.display())?;
                        }
                        if !t.names.is_empty() {
                            writeln!(f, "    certificate names: {}", t.names.join(", "))?;
                        }
                        if let Some(ca) = &t.client_ca {
                            let need = if t.client_cert_required { "required" } else { "optional" };
                            writeln!(f, "    client certificates ({need}) verified with: {}", ca.display())?;
                        }
                    }
                }
                writeln!(f, "    keep-alive timeout: {} s", v.keepalive_timeout.as_secs())?;
                if let Some(s) = &v.server_string {
                    writeln!(f, "    server string: {s}")?;
                }
                if !v.headers.is_empty() {
                    writeln!(f, "    headers: {}", list(&v.headers, |(k, v)| format!("{k}: {v}")))?;
                }
                if !v.protocols.is_empty() {
                    writeln!(f, "    protocols: {}", v.protocols.join(", "))?;
                }
                if let Some(p) = &v.default_protocol {
                    writeln!(f, "    default protocol: {p}")?;
                }
                if !v.error_pages.is_empty() {
                    writeln!(f, "    error pages: {}", list(&v.error_pages, |(s, p)| format!("{s} {p}")))?;
                }
                if let Some(doc) = &v.error_document_404 {
                    writeln!(f, "    error document 404: {doc}")?;
                }
                match &v.access_log {
                    Some(log) => writeln!(f, "    access log: {}", log.display())?,
                    None => writeln!(f, "    access log: none")?,
                }
                for m in &v.mounts {
                    write_mount(f, m)?;
                }
            }
        }
        Ok(())
    }
}

fn write_mount(f: &mut fmt::Formatter<'_>, m: &MountReport) -> fmt::Result {
    writeln!(f, "    mount {}", m.mountpoint)?;
    writeln!(f, "      kind: {}", m.kind)?;
    let appended = if m.append_path { " (path appended)" } else { "" };
    writeln!(f, "      origin: {}{appended}", m.origin)?;
    if matches!(m.kind, MountKind::Files | MountKind::Zip) {
        writeln!(f, "      index: {}", m.index.join(", "))?;
        if !m.assign.is_empty() {
            let each = |(s, r): &(String, String)| match r.as_str() {
                "" => format!("{s} (runs itself)"),
                r => format!("{s} {r}"),
            };
            writeln!(f, "      runs in place: {}", list(&m.assign, each))?;
        }
        writeln!(f, "      cache: {}", m.cache.as_deref().unwrap_or("(no Cache-Control)"))?;
    }
    if matches!(m.kind, MountKind::Files | MountKind::Zip | MountKind::Cgi) {
        let dot = if m.dotfiles { "served" } else { "refused (except /.well-known/)" };
        writeln!(f, "      dotfiles: {dot}")?;
        if !m.deny.is_empty() {
            writeln!(f, "      deny: {}", m.deny.join(", "))?;
        }
        let links = match m.symlinks {
            crate::Symlinks::Follow => "followed wherever they lead",
            crate::Symlinks::SameOwner => "out of the origin only when link and target have one owner",
            _ => "confined to the origin",
        };
        writeln!(f, "      symlinks: {links}")?;
    }
    if !m.x_sendfile.is_empty() {
        writeln!(f, "      x-sendfile: {}", list(&m.x_sendfile, |d| d.display().to_string()))?;
    }
    if let Some((realm, file)) = &m.auth {
        writeln!(f, "      auth: basic, realm {realm:?}, credentials {}", file.display())?;
    }
    if !m.extra_mimetypes.is_empty() {
        writeln!(f, "      extra mimetypes: {}", list(&m.extra_mimetypes, |(s, t)| format!("{s} {t}")))?;
    }
    if !m.interpret.is_empty() {
        writeln!(f, "      interpret: {}", list(&m.interpret, |(s, p)| format!("{s} by {p}")))?;
    }
    if let Some(c) = &m.cgi {
        writeln!(f, "      cgi timeout: {} s", c.timeout.as_secs())?;
        writeln!(f, "      cgi max processes: {}", c.max_processes)?;
        if !c.env.is_empty() {
            writeln!(f, "      cgi env: {}", list(&c.env, |(k, v)| format!("{k}={v}")))?;
        }
        if let Some(p) = &c.path {
            writeln!(f, "      cgi PATH: {p}")?;
        }
        let fcgi = m.kind == MountKind::Fcgi || m.assign.iter().any(|(_, r)| r.starts_with("fcgi://"));
        if fcgi {
            let (t, n, k) = (c.fcgi_connect_timeout.as_secs(), c.fcgi_max_requests, c.fcgi_keepalive);
            writeln!(
                f,
                "      fcgi: connect timeout {t} s, at most {n} requests per server, {k} idle connections kept"
            )?;
        }
    }
    Ok(())
}
