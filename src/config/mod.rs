//! The lwsws-style JSON configuration (spec CFG-*): a directory holding
//! `conf` (global settings) and `conf.d/*` (vhosts), read with lwsws's key
//! names, so an lwsws configuration serves the same on warren.
//!
//! Unlike lwsws, which ignores what it does not know (CFG-5), every
//! unknown key and every wrong type is an error naming the file, line,
//! column and key, with the nearest known key as a suggestion. Keys lwsws
//! has but warren does not implement yet are refused with a message that
//! says so, rather than silently doing nothing.

mod raw;
mod text;
mod tls;

use crate::http::CachePolicy;
use crate::{ContextInfo, Limits, Mount, VhostInfo};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;
use text::{blank_comments, locate_key, parse_file};
use tls::{alpn_list, apply_tls, build_tls, GlobalTls};

/// A configuration that cannot be used, and where: what [`load_dir`]
/// returns. It converts into a [`crate::Error`] for which
/// [`is_config`](crate::Error::is_config) holds, so `?` takes it into a
/// [`crate::Result`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file at fault.
    pub file: PathBuf,
    /// Line and column (1-based), when the parser knows them.
    pub position: Option<(usize, usize)>,
    /// What is wrong, naming the key.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.position {
            Some((line, col)) => write!(f, "{}:{line}:{col}: {}", self.file.display(), self.message),
            None => write!(f, "{}: {}", self.file.display(), self.message),
        }
    }
}

impl std::error::Error for ConfigError {}

/// Reads `dir/conf` and every regular file of `dir/conf.d` (in name
/// order) into a [`ContextInfo`].
///
/// The process-wide keys (`uid`, `gid`, `username`, `groupname`,
/// `keep-capabilities`) are not part of it: a context does not change
/// the process's identity. [`load_process_settings`] reads them.
pub fn load_dir(dir: &Path) -> Result<ContextInfo, ConfigError> {
    with_files(dir, |files, texts| build(files, read_files(files, texts)?))
}

/// The identity the configuration in `dir` asks the process to drop to
/// once its ports are bound (CFG-6 `uid`, `gid`, `username`, `groupname`,
/// and warren's `keep-capabilities`: a comma-separated list such as
/// `"net_bind_service"`), read from the same files as [`load_dir`].
///
/// It is separate from [`load_dir`] because the identity belongs to the
/// process, not to a [`ContextInfo`]: the library never acts on it (an
/// embedder calls [`crate::process::drop_privileges`] when it chooses),
/// and a reload, which builds a new context in a process that dropped
/// its privileges already, has no use for it.
///
/// # Errors
///
/// The configuration cannot be read, a value is not a name or number,
/// or both `uid` and `username` (or `gid` and `groupname`) are given.
#[cfg(target_os = "linux")]
pub fn load_process_settings(dir: &Path) -> Result<crate::process::Privileges, ConfigError> {
    use crate::process::{parse_capabilities, Account, Privileges};
    with_files(dir, |files, texts| {
        let read = read_files(files, texts)?;
        let (g, file) = (&read.global, &read.global_file);
        let account = |id: &Option<Scalar>, id_key: &str, name: &Option<Scalar>, name_key: &str| match (id, name) {
            (Some(_), Some(_)) => {
                Err(bad(file, &format!("global.{id_key}"), format!("give \"{id_key}\" or \"{name_key}\", not both")))
            }
            (Some(id), None) => {
                let text = id.text();
                match text.trim().parse::<u32>() {
                    Ok(n) => Ok(Some(Account::Id(n))),
                    Err(_) => Err(bad(file, &format!("global.{id_key}"), format!("{text:?} is not a number"))),
                }
            }
            (None, Some(name)) => {
                let text = name.text();
                if text.is_empty() || text.contains(['\0', ':', '\n']) {
                    return Err(bad(file, &format!("global.{name_key}"), format!("{text:?} is not a name")));
                }
                Ok(Some(Account::Name(text)))
            }
            (None, None) => Ok(None),
        };
        let user = account(&g.uid, "uid", &g.username, "username")?;
        let group = account(&g.gid, "gid", &g.groupname, "groupname")?;
        let keep = match &g.keep_capabilities {
            Some(list) => parse_capabilities(&list.text()).map_err(|e| bad(file, "global.keep-capabilities", e))?,
            None => Vec::new(),
        };
        Ok(Privileges { user, group, keep })
    })
}

/// Lists `dir`'s files and runs `f` on them; an error found after
/// parsing, which names a key, gets the key's position in its file.
fn with_files<T>(
    dir: &Path,
    f: impl FnOnce(&[PathBuf], &mut Vec<(PathBuf, String)>) -> Result<T, ConfigError>,
) -> Result<T, ConfigError> {
    let mut files = vec![dir.join("conf")];
    let confd = dir.join("conf.d");
    if let Ok(rd) = std::fs::read_dir(&confd) {
        let mut more = Vec::new();
        for path in rd.filter_map(Result::ok).map(|e| e.path()) {
            // Directories are not configuration; anything else that is
            // not a regular file is a mistake to say, not to skip: a link
            // to a file since removed would drop its vhosts silently.
            match std::fs::metadata(&path) {
                Ok(m) if m.is_dir() => {}
                Ok(_) => more.push(path),
                Err(e) => {
                    let message = format!("cannot be read ({e}): a symbolic link to nothing, or a loop?");
                    return Err(ConfigError { file: path, position: None, message });
                }
            }
        }
        more.sort();
        files.extend(more);
    }
    let mut texts = Vec::new();
    let result = f(&files, &mut texts);
    // Errors found after parsing name a key; point at it in its file.
    result.map_err(|mut e| {
        if e.position.is_none() {
            if let Some((_, text)) = texts.iter().find(|(f, _)| *f == e.file) {
                let key = e.message.split(": ").next().unwrap_or("");
                e.position = locate_key(text, key);
            }
        }
        e
    })
}

/// The files' contents, parsed: the last `global` section, the file it
/// is in, and every vhost with its file and index there.
struct ReadFiles {
    global: Global,
    global_file: PathBuf,
    vhosts: Vec<(PathBuf, usize, Vhost)>,
}

/// Reads and parses `files`; each file's text (comments blanked) is kept
/// in `texts` for error positions.
fn read_files(files: &[PathBuf], texts: &mut Vec<(PathBuf, String)>) -> Result<ReadFiles, ConfigError> {
    let mut global = Global::default();
    let mut global_file = files[0].clone();
    let mut vhosts = Vec::new();
    for file in files {
        // Read only regular files: a FIFO would block the reader (a
        // reload, `warren check`) until someone writes to it.
        if let Ok(m) = std::fs::metadata(file) {
            if !m.is_file() {
                let message = "not a regular file (a FIFO, socket or device is not read)".to_string();
                return Err(ConfigError { file: file.clone(), position: None, message });
            }
        }
        let text = std::fs::read_to_string(file).map_err(|e| ConfigError {
            file: file.clone(),
            position: None,
            message: e.to_string(),
        })?;
        let clean = blank_comments(&text);
        let parsed = parse_file(file, &clean);
        texts.push((file.clone(), clean));
        let parsed = parsed?;
        if let Some(g) = parsed.global {
            global = g;
            global_file = file.clone();
            check_unsupported(file, "global", &global)?;
        }
        for (i, v) in parsed.vhosts.unwrap_or_default().into_iter().enumerate() {
            vhosts.push((file.clone(), i, v));
        }
    }
    Ok(ReadFiles { global, global_file, vhosts })
}

/// The [`ContextInfo`] the files read describe.
fn build(files: &[PathBuf], read: ReadFiles) -> Result<ContextInfo, ConfigError> {
    let dir = files[0].parent().unwrap_or(Path::new(".")).to_path_buf();
    let ReadFiles { global, global_file, vhosts } = read;
    if vhosts.is_empty() {
        let file = dir.to_path_buf();
        return Err(ConfigError {
            file,
            position: None,
            message: "no vhost configured: put a file with a \"vhosts\" list in conf.d/ (CFG-7)".into(),
        });
    }
    let mut limits = Limits::default();
    if let Some(t) = &global.timeout_secs {
        limits.io_timeout = seconds(&global_file, "global.timeout-secs", t)?;
    }
    if let Some(n) = &global.ip_limit_wsi {
        limits.peer_connections =
            usize::try_from(number(&global_file, "global.ip-limit-wsi", n)?).unwrap_or(usize::MAX);
    }
    if let Some(n) = &global.ip_limit_ah {
        limits.peer_requests = usize::try_from(number(&global_file, "global.ip-limit-ah", n)?).unwrap_or(usize::MAX);
    }
    let mut info = ContextInfo::new().limits(limits);
    if let Some(n) = &global.count_threads {
        let n = number(&global_file, "global.count-threads", n)?;
        let max = crate::context::MAX_THREADS as u64;
        if n == 0 || n > max {
            return Err(bad(&global_file, "global.count-threads", format!("{n}: expected 1 to {max} service threads")));
        }
        info = info.threads(n as usize);
    }
    if let Some(level) = &global.log_level {
        let level = parse_log_level(&level.text()).map_err(|why| bad(&global_file, "global.log-level", why))?;
        info.log_level = Some(level);
    }
    let init_ssl = global.init_ssl.as_ref().is_some_and(Scalar::truthy);
    let default_alpn = match &global.default_alpn {
        Some(a) => Some(alpn_list(&global_file, "global.default-alpn", a)?),
        None => None,
    };
    for (file, i, v) in vhosts {
        let server = global.server_string.as_ref().map(|s| (global_file.as_path(), s));
        let tls = GlobalTls { init_ssl, default_alpn: default_alpn.as_deref() };
        info = info.vhost(build_vhost(&file, i, v, server, tls)?);
    }
    Ok(info)
}

/// A log level as `warren -d` and the `global.log-level` key take it: a
/// name (`off`, `error`, `warn`, `info`, `debug`, `trace`), or lwsws's
/// `-d` number, a bitmask of lws's levels (ERR 1, WARN 2, NOTICE 4, INFO
/// 8, DEBUG 16, then the detail bits from 32 up), as the most verbose
/// level it sets: 1 is error, 2 or 3 warn, 4 to 15 info (lwsws's default
/// is 7), 16 to 31 debug, 32 and more trace, 0 off.
///
/// # Errors
///
/// The text is neither, explained.
pub fn parse_log_level(text: &str) -> Result<log::LevelFilter, String> {
    use log::LevelFilter;
    let text = text.trim();
    if let Ok(mask) = text.parse::<u64>() {
        return Ok(match mask {
            0 => LevelFilter::Off,
            1 => LevelFilter::Error,
            2..=3 => LevelFilter::Warn,
            4..=15 => LevelFilter::Info,
            16..=31 => LevelFilter::Debug,
            _ => LevelFilter::Trace,
        });
    }
    text.parse().map_err(|_| {
        format!("{text:?} is not a level: error, warn, info, debug, trace, off, or an lwsws -d number (7 is info)")
    })
}

/// One file: `global` and/or `vhosts`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConf {
    global: Option<Global>,
    vhosts: Option<Vec<Vhost>>,
}

/// A value written as a JSON string (lwsws writes numbers and booleans
/// as strings too, CFG-2); plain numbers and booleans are accepted.
#[derive(Clone, Debug)]
enum Scalar {
    Str(String),
    Num(u64),
    Bool(bool),
}

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Scalar, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Scalar;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string (lwsws writes every value as a string)")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Scalar, E> {
                Ok(Scalar::Str(v.to_string()))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Scalar, E> {
                Ok(Scalar::Num(v))
            }
            fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Scalar, E> {
                Ok(Scalar::Bool(v))
            }
        }
        d.deserialize_any(V)
    }
}

impl Scalar {
    fn text(&self) -> String {
        match self {
            Scalar::Str(s) => s.clone(),
            Scalar::Num(n) => n.to_string(),
            Scalar::Bool(b) => b.to_string(),
        }
    }

    /// CFG-4: a non-zero integer or on/yes/true is true.
    fn truthy(&self) -> bool {
        match self {
            Scalar::Bool(b) => *b,
            Scalar::Num(n) => *n != 0,
            Scalar::Str(s) => {
                let s = s.trim();
                s.parse::<i64>().map(|n| n != 0).unwrap_or(false)
                    || ["on", "yes", "true"].iter().any(|w| s.eq_ignore_ascii_case(w))
            }
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct Global {
    server_string: Option<Scalar>,
    /// CORE-9: connections per peer address (0: no limit).
    ip_limit_wsi: Option<Scalar>,
    /// CORE-9: requests in progress per peer address (0: no limit).
    ip_limit_ah: Option<Scalar>,
    timeout_secs: Option<Scalar>,
    count_threads: Option<Scalar>,
    /// Deprecated in lws and ignored there too.
    #[allow(dead_code)]
    ws_pingpong_secs: Option<Scalar>,
    /// CFG-6: TLS vhosts serve TLS only when this is on (lwsws's rule).
    init_ssl: Option<Scalar>,
    /// CFG-6: the ALPN list of TLS vhosts that do not give their own.
    default_alpn: Option<Scalar>,
    /// warren's own: the server log's level ([`parse_log_level`]).
    log_level: Option<Scalar>,
    /// CFG-6: the identity to drop to once bound (read by
    /// `load_process_settings`, not by `load_dir`).
    uid: Option<Scalar>,
    gid: Option<Scalar>,
    username: Option<Scalar>,
    groupname: Option<Scalar>,
    /// warren's own: capabilities kept after the drop (`net_bind_service,net_raw`).
    keep_capabilities: Option<Scalar>,
    // Known lwsws keys warren does not implement yet:
    plugin_dir: Option<serde_json::Value>,
    count_async_threads: Option<serde_json::Value>,
    reject_service_keywords: Option<serde_json::Value>,
    rlimit_nofile: Option<serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct Vhost {
    name: Option<Scalar>,
    port: Option<Scalar>,
    interface: Option<Scalar>,
    #[serde(rename = "keepalive_timeout")]
    keepalive_timeout: Option<Scalar>,
    /// warren's own, after lws's `ka_time`, `ka_probes`, `ka_interval`
    /// (seed "ka"): TCP keepalive for the connections accepted.
    ka_time: Option<Scalar>,
    ka_probes: Option<Scalar>,
    ka_interval: Option<Scalar>,
    headers: Option<Vec<BTreeMap<String, Scalar>>>,
    error_document_404: Option<Scalar>,
    mounts: Option<Vec<MountConf>>,
    /// CFG-9: `[{"protocol-name": {"option": "value", ...}}, ...]`.
    ws_protocols: Option<Vec<BTreeMap<String, BTreeMap<String, Scalar>>>>,
    disable_no_protocol_ws_upgrades: Option<Scalar>,
    /// warren's own (WS-6): ping a silent WebSocket after this many
    /// seconds (default 60, 0 turns liveness off), hang up
    /// `ws-hangup-secs` after that (default 10).
    ws_ping_secs: Option<Scalar>,
    ws_hangup_secs: Option<Scalar>,
    access_log: Option<serde_json::Value>,
    // CFG-7 TLS keys (read by `tls::build_tls`).
    host_ssl_cert: Option<Scalar>,
    host_ssl_key: Option<Scalar>,
    host_ssl_ca: Option<Scalar>,
    client_cert_required: Option<Scalar>,
    ciphers: Option<Scalar>,
    tls13_ciphers: Option<Scalar>,
    ecdh_curve: Option<Scalar>,
    ssl_option_set: Option<Scalar>,
    ssl_option_clear: Option<Scalar>,
    alpn: Option<Scalar>,
    sts: Option<Scalar>,
    allow_non_tls: Option<Scalar>,
    redirect_http: Option<Scalar>,
    allow_http_on_https: Option<Scalar>,
    // Known lwsws keys warren does not implement yet:
    unix_socket: Option<serde_json::Value>,
    unix_socket_perms: Option<serde_json::Value>,
    client_ssl_key: Option<serde_json::Value>,
    client_ssl_cert: Option<serde_json::Value>,
    client_ssl_ca: Option<serde_json::Value>,
    client_ssl_ciphers: Option<serde_json::Value>,
    enable_client_ssl: Option<serde_json::Value>,
    ignore_missing_cert: Option<serde_json::Value>,
    noipv6: Option<serde_json::Value>,
    ipv6only: Option<serde_json::Value>,
    strict_host_check: Option<serde_json::Value>,
    /// warren's own (seed "BINDTODEV"): the network device the vhost's
    /// port is bound to.
    bind_to_device: Option<Scalar>,
    // RAW-1, RAW-2 (config/raw.rs):
    listen_accept_role: Option<Scalar>,
    listen_accept_protocol: Option<Scalar>,
    apply_listen_accept: Option<Scalar>,
    onlyraw: Option<Scalar>,
    fallback_listen_accept: Option<Scalar>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct MountConf {
    mountpoint: Option<Scalar>,
    origin: Option<Scalar>,
    /// A name, or a list of names tried in order.
    default: Option<serde_json::Value>,
    cache_max_age: Option<Scalar>,
    cache_reuse: Option<Scalar>,
    cache_revalidate: Option<Scalar>,
    cache_intermediaries: Option<Scalar>,
    cache_no: Option<Scalar>,
    basic_auth: Option<Scalar>,
    append_path: Option<Scalar>,
    cgi_timeout: Option<Scalar>,
    /// `[{"VAR": "value"}, ...]`.
    cgi_env: Option<Vec<BTreeMap<String, Scalar>>>,
    /// warren's own: CGI programs of the mount running at once.
    cgi_max_processes: Option<Scalar>,
    /// FILE-9: `{".suffix": "protocol-name"}`.
    interpret: Option<BTreeMap<String, Scalar>>,
    /// warren's own: `{".php": "/usr/bin/php-cgi", ".cgi": ""}`, scripts
    /// of a file mount run in place (lighttpd's `cgi.assign`).
    cgi_assign: Option<serde_json::Value>,
    /// warren's own: `["/inc", "*.bak", ".svn", {"path": "/data", "status": "404"}]`.
    deny: Option<serde_json::Value>,
    /// warren's own: serve `.name` segments.
    allow_dotfiles: Option<Scalar>,
    /// warren's own: `"confined"`, `"follow"` or `"owner"`.
    symlinks: Option<Scalar>,
    /// warren's own: directories a CGI response may name in `X-Sendfile`.
    x_sendfile: Option<serde_json::Value>,
    /// warren's own: a one-program `cgi://` mount interprets the site's files.
    cgi_action: Option<Scalar>,
    /// warren's own: seconds to connect to a FastCGI server.
    fcgi_connect_timeout: Option<Scalar>,
    /// warren's own: requests in flight at one FastCGI server.
    fcgi_max_requests: Option<Scalar>,
    /// warren's own: idle connections kept per FastCGI server.
    fcgi_keepalive: Option<Scalar>,
    // Known lwsws keys warren does not implement yet:
    extra_mimetypes: Option<serde_json::Value>,
    protocol: Option<serde_json::Value>,
    auth_mask: Option<serde_json::Value>,
    pmo: Option<serde_json::Value>,
    cgi_chroot: Option<serde_json::Value>,
    cgi_chdir: Option<serde_json::Value>,
    headers: Option<serde_json::Value>,
    keepalive_timeout: Option<serde_json::Value>,
    exact_match: Option<serde_json::Value>,
    no_ws_upgrades: Option<serde_json::Value>,
    interceptor_path: Option<serde_json::Value>,
}

trait Present {
    fn present(&self) -> Vec<&'static str>;
}

macro_rules! present {
    ($t:ty { $($field:ident => $key:literal),* $(,)? }) => {
        impl Present for $t {
            fn present(&self) -> Vec<&'static str> {
                let mut v = Vec::new();
                $(if self.$field.is_some() { v.push($key); })*
                v
            }
        }
    };
}

present!(Global { plugin_dir => "plugin-dir", count_async_threads => "count-async-threads",
    reject_service_keywords => "reject-service-keywords",
    rlimit_nofile => "rlimit-nofile" });
present!(Vhost { unix_socket => "unix-socket",
    unix_socket_perms => "unix-socket-perms", client_ssl_key => "client-ssl-key",
    client_ssl_cert => "client-ssl-cert", client_ssl_ca => "client-ssl-ca",
    client_ssl_ciphers => "client-ssl-ciphers", enable_client_ssl => "enable-client-ssl",
    ignore_missing_cert => "ignore-missing-cert", noipv6 => "noipv6",
    ipv6only => "ipv6only", strict_host_check => "strict-host-check" });
present!(MountConf { protocol => "protocol",
    auth_mask => "auth-mask", pmo => "pmo",
    cgi_chroot => "cgi-chroot", cgi_chdir => "cgi-chdir", headers => "headers",
    keepalive_timeout => "keepalive-timeout", exact_match => "exact-match",
    no_ws_upgrades => "no-ws-upgrades", interceptor_path => "interceptor-path" });

fn check_unsupported<T: Present>(file: &Path, at: &str, u: &T) -> Result<(), ConfigError> {
    match u.present().first() {
        Some(key) => Err(unsupported(file, &format!("{at}.{key}"), "this lwsws key")),
        None => Ok(()),
    }
}

fn unsupported(file: &Path, key: &str, what: &str) -> ConfigError {
    ConfigError {
        file: file.to_path_buf(),
        position: None,
        message: format!("{key}: {what} is not supported by warren yet"),
    }
}

fn bad(file: &Path, key: &str, message: String) -> ConfigError {
    ConfigError { file: file.to_path_buf(), position: None, message: format!("{key}: {message}") }
}

/// The keys of mounts that serve files or run programs: default
/// documents, scripts by suffix, CGI settings, deny rules, dotfiles,
/// symlinks, X-Sendfile.
fn file_mount_keys(file: &Path, at: &str, m: &MountConf, mut mount: Mount) -> Result<Mount, ConfigError> {
    let files = matches!(mount.origin, crate::Origin::Path(_));
    let cgi = matches!(mount.origin, crate::Origin::Cgi(_));
    let fcgi_mount = matches!(mount.origin, crate::Origin::Fcgi(_));
    let only = |key: &str, ok: bool, what: &str| {
        if ok {
            Ok(())
        } else {
            Err(bad(file, &format!("{at}.{key}"), format!("applies to {what}; this mount is neither")))
        }
    };
    if let Some(d) = &m.default {
        let names = strings(file, &format!("{at}.default"), d)?;
        for (i, n) in names.iter().enumerate() {
            if n.is_empty() || n.contains('/') || n.chars().any(char::is_control) {
                return Err(bad(file, &format!("{at}.default[{i}]"), format!("{n:?}: expected a file name")));
            }
        }
        mount = mount.index(names);
    }
    let assign = match &m.cgi_assign {
        None => None,
        Some(serde_json::Value::Object(map)) => Some(map),
        Some(_) => {
            let want = "expected an object {\".php\": \"/usr/bin/php-cgi\", \".cgi\": \"\"}";
            return Err(bad(file, &format!("{at}.cgi-assign"), want.into()));
        }
    };
    for (suffix, interpreter) in assign.into_iter().flatten() {
        let key = format!("{at}.cgi-assign.{suffix}");
        only("cgi-assign", files, "file:// mounts")?;
        let serde_json::Value::String(interpreter) = interpreter else {
            return Err(bad(
                file,
                &key,
                "expected the interpreter's path as a string (\"\": the file runs itself)".into(),
            ));
        };
        if let Some(why) = Mount::assign_suffix_problem(suffix) {
            return Err(bad(file, &key, format!("{suffix:?}: {why}")));
        }
        if assign.iter().flat_map(|m| m.keys()).filter(|k| k.eq_ignore_ascii_case(suffix)).count() > 1 {
            return Err(bad(file, &key, format!("{suffix:?} is given twice (suffixes match ignoring case)")));
        }
        if let Some(addr) = interpreter.strip_prefix("fcgi://") {
            let addr = addr.parse().map_err(|why| bad(file, &key, why))?;
            mount = mount.fcgi_assign(suffix.clone(), addr);
            continue;
        }
        if !interpreter.is_empty() && !Path::new(&interpreter).is_absolute() {
            return Err(bad(
                file,
                &key,
                format!("{interpreter:?}: expected an absolute path, fcgi://ADDRESS, or \"\" (the file runs itself)"),
            ));
        }
        mount = mount.cgi_assign(suffix.clone(), interpreter);
    }
    let fcgi = fcgi_mount
        || assign.iter().flat_map(|a| a.values()).any(|v| v.as_str().is_some_and(|v| v.starts_with("fcgi://")));
    let runs = cgi || fcgi || assign.is_some_and(|a| !a.is_empty());
    let what = "cgi:// and fcgi:// mounts and file mounts with cgi-assign";
    let fcgi_what = "fcgi:// mounts and file mounts assigning a suffix to fcgi://";
    if let Some(t) = &m.fcgi_connect_timeout {
        only("fcgi-connect-timeout", fcgi, fcgi_what)?;
        let key = format!("{at}.fcgi-connect-timeout");
        let t = seconds(file, &key, t)?;
        if t.is_zero() {
            // Every connection not made at once would be a 504.
            return Err(bad(file, &key, "expected at least 1 second".into()));
        }
        mount = mount.fcgi_connect_timeout(t);
    }
    if let Some(n) = &m.fcgi_max_requests {
        only("fcgi-max-requests", fcgi, fcgi_what)?;
        let key = format!("{at}.fcgi-max-requests");
        let n = number(file, &key, n)?;
        if n == 0 {
            return Err(bad(file, &key, "expected at least 1".into()));
        }
        mount = mount.fcgi_max_requests(usize::try_from(n).unwrap_or(usize::MAX));
    }
    if let Some(n) = &m.fcgi_keepalive {
        only("fcgi-keepalive", fcgi, fcgi_what)?;
        let n = number(file, &format!("{at}.fcgi-keepalive"), n)?;
        mount = mount.fcgi_keepalive(usize::try_from(n).unwrap_or(usize::MAX));
    }
    if let Some(t) = &m.cgi_timeout {
        only("cgi-timeout", runs, what)?;
        mount = mount.cgi_timeout(seconds(file, &format!("{at}.cgi-timeout"), t)?);
    }
    for (i, map) in m.cgi_env.iter().flatten().enumerate() {
        only("cgi-env", runs, what)?;
        for (k, v) in map {
            if k.is_empty() || k.contains('=') || k.chars().any(char::is_control) {
                return Err(bad(file, &format!("{at}.cgi-env[{i}]"), format!("{k:?} is not a variable name")));
            }
            if v.text().contains('\0') {
                return Err(bad(file, &format!("{at}.cgi-env[{i}]"), format!("{k:?}: a value cannot hold NUL")));
            }
            mount = mount.cgi_env(k.clone(), v.text());
        }
    }
    if let Some(n) = &m.cgi_max_processes {
        only("cgi-max-processes", runs, what)?;
        let n = number(file, &format!("{at}.cgi-max-processes"), n)?;
        mount = mount.cgi_max_processes(usize::try_from(n).unwrap_or(usize::MAX));
    }
    if let Some(rules) = &m.deny {
        only("deny", files || cgi, "file:// and cgi:// mounts")?;
        for rule in deny_rules(file, &format!("{at}.deny"), rules)? {
            mount = mount.deny(rule);
        }
    }
    if let Some(v) = &m.allow_dotfiles {
        only("allow-dotfiles", files || cgi, "file:// and cgi:// mounts")?;
        mount = mount.allow_dotfiles(v.truthy());
    }
    if let Some(v) = &m.symlinks {
        only("symlinks", files || cgi, "file:// and cgi:// mounts")?;
        let policy = v.text().parse().map_err(|why| bad(file, &format!("{at}.symlinks"), why))?;
        mount = mount.symlinks(policy);
    }
    if let Some(v) = &m.cgi_action {
        only("cgi-action", cgi, "cgi:// mounts")?;
        mount = mount.cgi_action(v.truthy());
    }
    if let Some(v) = &m.x_sendfile {
        only("x-sendfile", runs, what)?;
        for (i, dir) in strings(file, &format!("{at}.x-sendfile"), v)?.into_iter().enumerate() {
            if !Path::new(&dir).is_absolute() {
                return Err(bad(
                    file,
                    &format!("{at}.x-sendfile[{i}]"),
                    format!("{dir:?}: expected an absolute directory"),
                ));
            }
            mount = mount.x_sendfile(dir);
        }
    }
    Ok(mount)
}

/// A string, or an array of strings.
fn strings(file: &Path, key: &str, v: &serde_json::Value) -> Result<Vec<String>, ConfigError> {
    let expected = || bad(file, key, "expected a string or an array of strings".into());
    match v {
        serde_json::Value::String(s) => Ok(vec![s.clone()]),
        serde_json::Value::Array(items) => {
            items.iter().map(|i| i.as_str().map(str::to_string).ok_or_else(expected)).collect()
        }
        _ => Err(expected()),
    }
}

/// `deny`: each item a string (`"/inc"` a path below the mountpoint,
/// `"*.bak"` a suffix, any other a segment name such as `".svn"`), or an
/// object `{"path" | "segment" | "suffix": "...", "status": "403" | "404"}`.
fn deny_rules(file: &Path, key: &str, v: &serde_json::Value) -> Result<Vec<crate::DenyRule>, ConfigError> {
    let serde_json::Value::Array(items) = v else {
        return Err(bad(
            file,
            key,
            "expected an array of rules: [\"/inc\", \"*.bak\", {\"path\": \"/data\", \"status\": \"404\"}]".into(),
        ));
    };
    let from_string = |k: &str, s: &str| crate::DenyRule::parse(s).map_err(|why| bad(file, k, why));
    let mut rules = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let k = format!("{key}[{i}]");
        let rule = match item {
            serde_json::Value::String(s) => from_string(&k, s)?,
            serde_json::Value::Object(o) => {
                let mut rule = None;
                let mut status = 403;
                for (name, val) in o {
                    let text = match val {
                        serde_json::Value::String(s) => s.clone(),
                        serde_json::Value::Number(n) => n.to_string(),
                        _ => return Err(bad(file, &format!("{k}.{name}"), "expected a string".into())),
                    };
                    match name.as_str() {
                        "path" if text.starts_with('/') => rule = Some(from_string(&k, &text)?),
                        "path" => {
                            return Err(bad(
                                file,
                                &format!("{k}.path"),
                                format!("{text:?}: expected a path starting with \"/\""),
                            ))
                        }
                        "segment" if !text.is_empty() && !text.contains('/') => {
                            rule = Some(crate::DenyRule::segment(&text))
                        }
                        "suffix" if !text.is_empty() && !text.contains('/') => {
                            rule = Some(crate::DenyRule::suffix(&text))
                        }
                        "segment" | "suffix" => {
                            return Err(bad(
                                file,
                                &format!("{k}.{name}"),
                                format!("{text:?}: expected a name without \"/\""),
                            ))
                        }
                        "status" => {
                            status = match text.as_str() {
                                "403" => 403,
                                "404" => 404,
                                _ => {
                                    return Err(bad(
                                        file,
                                        &format!("{k}.status"),
                                        format!("{text:?}: expected \"403\" or \"404\""),
                                    ))
                                }
                            }
                        }
                        _ => {
                            return Err(bad(
                                file,
                                &format!("{k}.{name}"),
                                "unknown; a rule has one of \"path\", \"segment\", \"suffix\", and \"status\"".into(),
                            ))
                        }
                    }
                }
                let Some(rule) = rule else {
                    return Err(bad(file, &k, "a rule needs one of \"path\", \"segment\" or \"suffix\"".into()));
                };
                if status == 404 {
                    rule.not_found()
                } else {
                    rule
                }
            }
            _ => return Err(bad(file, &k, "expected a string or an object".into())),
        };
        rules.push(rule);
    }
    Ok(rules)
}

/// A duration in whole seconds, at most [`crate::MAX_TIMEOUT`].
fn seconds(file: &Path, key: &str, v: &Scalar) -> Result<Duration, ConfigError> {
    let n = number(file, key, v)?;
    let max = crate::MAX_TIMEOUT.as_secs();
    if n > max {
        return Err(bad(file, key, format!("expected seconds from 0 to {max} (a year), found {n}")));
    }
    Ok(Duration::from_secs(n))
}

fn number(file: &Path, key: &str, v: &Scalar) -> Result<u64, ConfigError> {
    v.text().trim().parse().map_err(|_| bad(file, key, format!("expected a number, found {:?}", v.text())))
}

/// `ka-time` (seconds; 0 or absent: off), `ka-probes` (default 9) and
/// `ka-interval` (seconds, default 75): Linux's defaults for the two
/// that may be left out.
fn tcp_keepalive(file: &Path, at: &str, v: &Vhost) -> Result<Option<(Duration, u32, Duration)>, ConfigError> {
    let within = |key: &str, s: &Scalar, max: u64| {
        let key = format!("{at}.{key}");
        let n = number(file, &key, s)?;
        if n > max {
            return Err(bad(file, &key, format!("expected a number from 0 to {max}, found {n}")));
        }
        Ok(n)
    };
    let time = v.ka_time.as_ref().map(|s| within("ka-time", s, 32767)).transpose()?.unwrap_or(0);
    if time == 0 {
        if let Some(key) = [("ka-probes", &v.ka_probes), ("ka-interval", &v.ka_interval)]
            .into_iter()
            .find_map(|(k, s)| s.is_some().then_some(k))
        {
            return Err(bad(
                file,
                &format!("{at}.{key}"),
                "expected \"ka-time\" too: keepalive is off without it".into(),
            ));
        }
        return Ok(None);
    }
    let probes = v.ka_probes.as_ref().map(|s| within("ka-probes", s, 127)).transpose()?.unwrap_or(9);
    let interval = v.ka_interval.as_ref().map(|s| within("ka-interval", s, 32767)).transpose()?.unwrap_or(75);
    for (key, n) in [("ka-probes", probes), ("ka-interval", interval)] {
        if n == 0 {
            return Err(bad(file, &format!("{at}.{key}"), "expected at least 1".into()));
        }
    }
    Ok(Some((Duration::from_secs(time), u32::try_from(probes).unwrap_or(9), Duration::from_secs(interval))))
}

fn build_vhost(
    file: &Path,
    index: usize,
    v: Vhost,
    server: Option<(&Path, &Scalar)>,
    tls: GlobalTls<'_>,
) -> Result<VhostInfo, ConfigError> {
    let at = format!("vhosts[{index}]");
    check_unsupported(file, &at, &v)?;
    let tls_settings = build_tls(file, &at, &v, tls)?;
    let port = v.port.as_ref().ok_or_else(|| bad(file, &at, "\"port\" is required (CFG-7)".into()))?;
    let port = u16::try_from(number(file, &format!("{at}.port"), port)?)
        .map_err(|_| bad(file, &format!("{at}.port"), "expected a port number (0-65535)".into()))?;
    let ip = match &v.interface {
        None => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        Some(s) => s.text().trim().parse().map_err(|_| {
            bad(
                file,
                &format!("{at}.interface"),
                format!("expected an IP address, found {:?} (interface names are not supported yet)", s.text()),
            )
        })?,
    };
    let ka = tcp_keepalive(file, &at, &v)?;
    let name = v.name.clone().map_or_else(|| "default".to_string(), |n| n.text());
    if name.chars().any(char::is_control) {
        return Err(bad(file, &format!("{at}.name"), format!("{name:?}: a vhost name cannot hold control characters")));
    }
    let mut vhost = raw::apply(file, &at, &v, VhostInfo::new(name, SocketAddr::new(ip, port)))?;
    if let Some((server_file, s)) = server {
        if let Some(why) = crate::http::field_problem("Server", &s.text()) {
            return Err(bad(server_file, "global.server-string", format!("{:?}: {why}", s.text())));
        }
        vhost = vhost.server_string(s.text());
    }
    if let Some(k) = &v.keepalive_timeout {
        vhost = vhost.keepalive_timeout(seconds(file, &format!("{at}.keepalive_timeout"), k)?);
    }
    if let Some((time, probes, interval)) = ka {
        vhost = vhost.tcp_keepalive(time, probes, interval);
    }
    if let Some(d) = &v.bind_to_device {
        let d = d.text();
        // IFNAMSIZ: 15 bytes and a NUL.
        if d.is_empty() || d.len() > 15 || d.contains(['/', ' ', '\0']) {
            return Err(bad(file, &format!("{at}.bind-to-device"), format!("{d:?}: expected a network device name")));
        }
        vhost = vhost.bind_to_device(d);
    }
    for (i, map) in v.headers.unwrap_or_default().into_iter().enumerate() {
        for (k, val) in map {
            if let Some(why) = crate::http::field_problem(&k, &val.text()) {
                return Err(bad(file, &format!("{at}.headers[{i}]"), format!("{k:?}: {:?}: {why}", val.text())));
            }
            if crate::http::server_owned_field(&k) {
                return Err(bad(
                    file,
                    &format!("{at}.headers[{i}]"),
                    format!("{k:?}: the server sets this field itself"),
                ));
            }
            vhost = vhost.header(k, val.text());
        }
    }
    if let Some(doc) = v.error_document_404 {
        if let Some(why) = crate::http::config_path_problem(&doc.text()) {
            return Err(bad(file, &format!("{at}.error-document-404"), format!("{:?}: {why}", doc.text())));
        }
        vhost = vhost.error_document_404(doc.text());
    }
    if let Some(log) = &v.access_log {
        let path = match log {
            serde_json::Value::String(s) => s.clone(),
            other => {
                return Err(bad(file, &format!("{at}.access-log"), format!("expected a file path, found {other}")))
            }
        };
        vhost = vhost.access_log(path);
    }
    for (i, entry) in v.ws_protocols.unwrap_or_default().into_iter().enumerate() {
        for (name, pvo) in entry {
            let key = format!("{at}.ws-protocols[{i}].{name}");
            let mut options = Vec::new();
            for (k, val) in &pvo {
                match k.as_str() {
                    // "status" is informational in lwsws configurations.
                    "status" => {}
                    "default" if val.truthy() => vhost = vhost.default_protocol(name.clone()),
                    "default" => {}
                    _ => options.push((k.as_str(), val.text())),
                }
            }
            let options: Vec<(&str, &str)> = options.iter().map(|(k, v)| (*k, v.as_str())).collect();
            vhost.add_plugin(&name, &options).map_err(|e| bad(file, &key, e))?;
        }
    }
    // WS-6 liveness: on by default (VhostInfo's); "ws-ping-secs": "0"
    // turns it off.
    let ping = match &v.ws_ping_secs {
        Some(p) => Some(seconds(file, &format!("{at}.ws-ping-secs"), p)?.as_secs()),
        None => None,
    };
    let hangup = match &v.ws_hangup_secs {
        Some(h) => Some(seconds(file, &format!("{at}.ws-hangup-secs"), h)?.as_secs()),
        None => None,
    };
    if hangup == Some(0) {
        return Err(bad(file, &format!("{at}.ws-hangup-secs"), "expected seconds greater than 0".into()));
    }
    match (ping, hangup) {
        (Some(0), Some(_)) => {
            return Err(bad(file, &format!("{at}.ws-hangup-secs"), "liveness is off (ws-ping-secs 0)".into()))
        }
        (Some(0), None) => vhost = vhost.no_ws_keepalive(),
        (None, None) => {}
        (p, h) => {
            let ping = p.map_or(crate::DEFAULT_WS_PING, Duration::from_secs);
            let hangup = h.map_or(crate::DEFAULT_WS_HANGUP, Duration::from_secs);
            vhost = vhost.ws_keepalive(ping, hangup);
        }
    }
    if v.disable_no_protocol_ws_upgrades.as_ref().is_some_and(Scalar::truthy) {
        vhost = vhost.no_default_protocol();
    }
    let mut mountpoints: Vec<String> = Vec::new();
    for (i, m) in v.mounts.unwrap_or_default().into_iter().enumerate() {
        let mount = build_mount(file, &format!("{at}.mounts[{i}]"), m)?;
        // "/a" and "/a/" are one mountpoint: the second would never be used.
        let norm = match mount.mountpoint.trim_end_matches('/') {
            "" => "/".to_string(),
            p => p.to_string(),
        };
        if let Some(j) = mountpoints.iter().position(|p| *p == norm) {
            return Err(bad(
                file,
                &format!("{at}.mounts[{i}].mountpoint"),
                format!(
                    "{:?} is already the mountpoint of {at}.mounts[{j}]; each mountpoint of a vhost must differ",
                    mount.mountpoint
                ),
            ));
        }
        mountpoints.push(norm);
        // Checked against plugins::NAMES when the mount was read.
        let callback = match &mount.origin {
            crate::Origin::Callback(name) => Some(name.clone()),
            _ => None,
        };
        for name in callback.into_iter().chain(mount.interpret.iter().map(|(_, p)| p.clone())) {
            // Known (checked above), or already the vhost's.
            let _ = vhost.add_plugin(&name, &[]);
        }
        vhost = vhost.mount(mount);
    }
    Ok(apply_tls(vhost, tls_settings))
}

fn build_mount(file: &Path, at: &str, m: MountConf) -> Result<Mount, ConfigError> {
    check_unsupported(file, at, &m)?;
    let (Some(mountpoint), Some(origin)) = (&m.mountpoint, &m.origin) else {
        return Err(bad(file, at, "\"mountpoint\" and \"origin\" are required (CFG-8)".into()));
    };
    let (mountpoint, origin) = (mountpoint.text(), origin.text());
    if let Some(why) = crate::http::config_path_problem(&mountpoint) {
        return Err(bad(file, &format!("{at}.mountpoint"), format!("{mountpoint:?}: {why}")));
    }
    if origin.chars().any(char::is_control) {
        return Err(bad(
            file,
            &format!("{at}.origin"),
            "an origin cannot hold line breaks or other control characters".into(),
        ));
    }
    let key = format!("{at}.origin");
    let flag = |v: &Option<Scalar>| v.as_ref().is_some_and(Scalar::truthy);
    let mut mount = if let Some(path) = origin.strip_prefix("file://") {
        Mount::dir(&mountpoint, path)
    } else if let Some(rest) = origin.strip_prefix(">http://") {
        Mount::redirect(&mountpoint, &format!("http://{rest}"), flag(&m.append_path))
    } else if let Some(rest) = origin.strip_prefix(">https://") {
        Mount::redirect(&mountpoint, &format!("https://{rest}"), flag(&m.append_path))
    } else if origin.starts_with("http://") || origin.starts_with("https://") {
        return Err(unsupported(file, &key, "a reverse-proxy origin"));
    } else if let Some(path) = origin.strip_prefix("cgi://") {
        let p = Path::new(path);
        if !p.exists() {
            return Err(bad(file, &key, format!("{path:?}: no such program or directory")));
        }
        Mount::cgi(&mountpoint, p)
    } else if let Some(addr) = origin.strip_prefix("fcgi://") {
        Mount::fcgi(&mountpoint, addr.parse().map_err(|why| bad(file, &key, why))?)
    } else if let Some(name) = origin.strip_prefix("callback://") {
        if !crate::plugins::NAMES.contains(&name) {
            return Err(bad(file, &key, crate::plugins::unknown(name)));
        }
        Mount::callback(&mountpoint, name)
    } else if origin.starts_with("gzip://") {
        return Err(unsupported(file, &key, "a gzip:// origin"));
    } else {
        return Err(bad(
            file,
            &key,
            format!(
                "{origin:?}: expected file://, >http://, >https://, http://, https://, cgi://, fcgi:// or callback:// (ORG-1)"
            ),
        ));
    };
    mount = file_mount_keys(file, at, &m, mount)?;
    if let Some(b) = &m.basic_auth {
        // Read at start and again when it changes, but a file that is
        // not there at start is a mistake to say now, not a 401 later.
        if let Err(e) = std::fs::metadata(b.text()) {
            return Err(bad(file, &format!("{at}.basic-auth"), format!("{:?}: {e}", b.text())));
        }
        mount = mount.basic_auth(b.text());
    }
    for (suffix, protocol) in m.interpret.iter().flatten() {
        let name = protocol.text();
        if !crate::plugins::NAMES.contains(&name.as_str()) {
            return Err(bad(file, &format!("{at}.interpret.{suffix}"), crate::plugins::unknown(&name)));
        }
        mount = mount.interpret(suffix.clone(), name);
    }
    if let Some(types) = &m.extra_mimetypes {
        let serde_json::Value::Object(map) = types else {
            return Err(bad(file, &format!("{at}.extra-mimetypes"), "expected an object {\".ext\": \"type\"}".into()));
        };
        let mut list = Vec::new();
        for (suffix, ty) in map {
            let serde_json::Value::String(ty) = ty else {
                return Err(bad(file, &format!("{at}.extra-mimetypes.{suffix}"), "expected a string".into()));
            };
            if let Some(why) = crate::http::field_problem("Content-Type", ty) {
                return Err(bad(file, &format!("{at}.extra-mimetypes.{suffix}"), format!("{ty:?}: {why}")));
            }
            list.push((suffix.clone(), ty.clone()));
        }
        mount = mount.extra_mimetypes(list);
    }
    let cache_keys = [&m.cache_max_age, &m.cache_reuse, &m.cache_revalidate, &m.cache_intermediaries, &m.cache_no];
    if cache_keys.iter().any(|k| k.is_some()) {
        let max_age = match &m.cache_max_age {
            Some(v) => u32::try_from(number(file, &format!("{at}.cache-max-age"), v)?).unwrap_or(u32::MAX),
            None => 0,
        };
        mount = mount.cache(CachePolicy {
            max_age,
            reuse: flag(&m.cache_reuse),
            revalidate: flag(&m.cache_revalidate),
            intermediaries: flag(&m.cache_intermediaries),
            no_cache: flag(&m.cache_no),
        });
    } else {
        // CACHE-1: a mount without cache keys sends no-store, as lwsws does.
        mount = mount.cache(CachePolicy::default());
    }
    Ok(mount)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truthiness() {
        for (v, want) in
            [("1", true), ("0", false), ("on", true), ("YES", true), ("true", true), ("off", false), ("2", true)]
        {
            assert_eq!(Scalar::Str(v.into()).truthy(), want, "{v}");
        }
    }
}
