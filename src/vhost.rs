//! Vhosts as they serve: [`Vhost`], built once from a [`VhostInfo`] by
//! [`build`] (which checks it and resolves its mounts), selection among
//! a listener's vhosts (VH-1), and the checks on a `Host` value the
//! HTTP/1 role uses.

use crate::conn::{MountLive, VhostLive};
use crate::context::{check_duration, FopsFactory, VhostInfo};
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

/// Checks `v`, opens its mounts' file systems (through `factory` when
/// there is one), reads its credentials and error pages, and opens its
/// access log (or takes the one of `logs` open already for its path): the
/// vhost to serve, and its live part.
pub(crate) fn build(
    v: VhostInfo,
    factory: Option<&FopsFactory>,
    logs: &mut crate::access_log::AccessLogs,
    now: Instant,
) -> crate::Result<(Vhost, VhostLive)> {
    let fail = |why: String| crate::Error::invalid_input(format!("vhost {:?}: {why}", v.name));
    check_vhost(&v).map_err(fail)?;
    let VhostInfo {
        name,
        listen,
        mut mounts,
        protocols,
        error_document_404,
        keepalive_timeout,
        headers,
        server_string,
        access_log,
        mut error_pages,
        default_protocol,
        ws_keepalive,
        ws_deflate,
        #[cfg(feature = "tls")]
        tls,
        #[cfg(feature = "tls")]
        built_tls,
        #[cfg(feature = "tls")]
        plain_on_tls,
        #[cfg(feature = "tls")]
        sts,
    } = v;
    #[cfg(feature = "tls")]
    let tls = match (built_tls, &tls) {
        (Some(built), _) => Some(built),
        (None, Some(t)) => match crate::tls::server::build(&name, t) {
            Ok(built) => Some(built),
            Err(why) => return Err(crate::Error::invalid_input(format!("vhost {name:?}: TLS: {why}"))),
        },
        (None, None) => None,
    };
    let mut live_mounts = Vec::with_capacity(mounts.len());
    for m in mounts.iter_mut() {
        if let Origin::Path(path) = &m.origin {
            let fops = match factory {
                Some(f) => f(path),
                None => crate::mount::default_fops(path),
            };
            m.origin = Origin::File(
                fops.map_err(|e| io::Error::new(e.kind(), format!("vhost {name:?}: mount {}: {e}", m.mountpoint)))?,
            );
        }
        #[cfg(not(feature = "cgi"))]
        if matches!(m.origin, Origin::Cgi(_)) {
            return Err(crate::Error::invalid_input(format!(
                "vhost {name:?}: mount {}: a cgi:// mount, and this warren is built without the `cgi` feature",
                m.mountpoint
            )));
        }
        let callback = match &m.origin {
            Origin::Callback(name) => Some(name),
            _ => None,
        };
        for pname in callback.into_iter().chain(m.interpret.iter().map(|(_, p)| p)) {
            if !protocols.iter().any(|p| p.name() == pname) {
                return Err(crate::Error::invalid_input(format!(
                    "vhost {name:?}: mount {} names protocol {pname:?}, which the vhost does not have",
                    m.mountpoint
                )));
            }
        }
        // Credentials are read now, not per request.
        let auth = m.basic_auth.as_ref().map(|file| {
            let mut c = crate::auth::Credentials::new(file.clone());
            c.load(now);
            c
        });
        live_mounts.push(MountLive::new(auth));
    }
    // So are error pages.
    for page in error_pages.iter_mut() {
        page.body(&mounts, now);
    }
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
        headers,
        server_string,
        default_protocol,
        ws_keepalive,
        ws_deflate,
        protocol_names: protocols.iter().map(|p| p.name().to_string()).collect(),
        #[cfg(feature = "tls")]
        tls,
        #[cfg(feature = "tls")]
        plain_on_tls,
        #[cfg(feature = "tls")]
        sts,
    };
    let live = VhostLive { protocols, access_log, error_pages, mounts: live_mounts };
    Ok((vhost, live))
}

/// What a vhost sends on every response must not be able to split it:
/// header names are tokens, and values (and the server string) hold no
/// control characters but tab. Timeouts are in range.
fn check_vhost(v: &VhostInfo) -> Result<(), String> {
    check_duration("the keep-alive timeout", v.keepalive_timeout)?;
    if let Some((ping, hangup)) = v.ws_keepalive {
        check_duration("the WebSocket ping interval", ping)?;
        check_duration("the WebSocket hang-up time", hangup)?;
    }
    for m in &v.mounts {
        check_duration(&format!("mount {}: the CGI timeout", m.mountpoint), m.cgi.timeout)?;
    }
    use crate::http::{config_path_problem, field_problem, server_owned_field};
    if v.name.chars().any(char::is_control) {
        return Err("a vhost name cannot hold control characters".into());
    }
    for (name, value) in &v.headers {
        if let Some(why) = field_problem(name, value) {
            return Err(format!("header {name:?}: {why}"));
        }
        if server_owned_field(name) {
            return Err(format!("header {name:?}: the server sets this field itself"));
        }
    }
    if let Some(s) = &v.server_string {
        if let Some(why) = field_problem("Server", s) {
            return Err(format!("server string {s:?}: {why}"));
        }
    }
    if let Some(doc) = &v.error_document_404 {
        if let Some(why) = config_path_problem(doc) {
            return Err(format!("error document {doc:?}: {why}"));
        }
    }
    for m in &v.mounts {
        if let Some(why) = config_path_problem(&m.mountpoint) {
            return Err(format!("mountpoint {:?}: {why}", m.mountpoint));
        }
        for (suffix, t) in &m.extra_mimetypes {
            if let Some(why) = field_problem("Content-Type", t) {
                return Err(format!("mount {}: content type for {suffix:?}: {why}", m.mountpoint));
            }
        }
        if let Origin::Redirect { to, .. } = &m.origin {
            if let Some(why) = field_problem("Location", to) {
                return Err(format!("mount {}: redirect target {to:?}: {why}", m.mountpoint));
            }
        }
        for (name, value) in &m.cgi.env {
            let bad_name = name.is_empty() || name.contains('=') || name.chars().any(char::is_control);
            if bad_name || value.contains('\0') {
                return Err(format!(
                    "mount {}: CGI variable {name:?}: not a variable name, or a value with NUL",
                    m.mountpoint
                ));
            }
        }
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn vhosts(names: &[&str]) -> Vec<Vhost> {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
        let now = Instant::now();
        names
            .iter()
            .filter_map(|n| build(VhostInfo::new(*n, addr), None, &mut Default::default(), now).ok())
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
