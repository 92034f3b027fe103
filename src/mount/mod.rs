//! Mounts: areas of a vhost's URL space and what serves them.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use warren_vfs::{Fops, PlainFops, Symlinks};
#[cfg(feature = "zip")]
use warren_vfs::{OpenFlags, VPath, ZipFops};

mod fcgi;
mod locate;
mod rules;

pub use fcgi::FcgiAddr;
pub(crate) use fcgi::FcgiConf;

#[cfg(feature = "cgi")]
pub(crate) use locate::script_dir;
#[cfg(feature = "cgi")]
pub(crate) use locate::Script;
pub(crate) use locate::{assigned, locate, Located};
#[cfg(feature = "cgi")]
pub(crate) use rules::file_refusal;
pub(crate) use rules::refusal;
pub use rules::DenyRule;

/// What serves a mount's area (lws's `origin_protocol`).
#[derive(Clone)]
#[non_exhaustive]
pub enum Origin {
    /// Files from a filesystem: a directory through
    /// [`PlainFops`](warren_vfs::PlainFops), an archive through
    /// [`ZipFops`], or any user [`Fops`].
    File(Arc<dyn Fops>),
    /// Files from a path (`file://`): turned into a filesystem when the
    /// context is built, by [`default_fops`] or the context's own
    /// [`ContextInfo::fops_factory`](crate::ContextInfo::fops_factory).
    Path(PathBuf),
    /// The named protocol of the vhost handles every request in the area
    /// (`callback://NAME`).
    Callback(String),
    /// Every request gets `301` to this absolute URL (`>http://…`,
    /// `>https://…`; spec REDIR-2), with the path below the mountpoint
    /// appended when `append_path` (lws v5's `append-path`).
    Redirect {
        /// `http://host/path` or `https://host/path`.
        to: String,
        /// Whether to append the request's path below the mountpoint.
        append_path: bool,
    },
    /// CGI (`cgi://PATH`): one program, which gets the path below the
    /// mountpoint as `PATH_INFO`, or a directory of programs (the first
    /// segment naming an executable file is the script; paths through
    /// linked directories never leave the directory). See docs/cgi.md.
    Cgi(PathBuf),
    /// A FastCGI application server (`fcgi://`): every request below the
    /// mountpoint goes to it, with the path below the mountpoint as
    /// `PATH_INFO`. See docs/cgi.md.
    Fcgi(FcgiAddr),
}

/// What runs a file whose suffix a mount assigns (`cgi-assign`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Runner {
    /// The file is its own program.
    Itself,
    /// This interpreter, given the file as its argument.
    Interpreter(PathBuf),
    /// This FastCGI server, told the file in `SCRIPT_FILENAME`.
    Fcgi(FcgiAddr),
}

impl fmt::Debug for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::File(fops) => write!(f, "File({fops:?})"),
            Origin::Path(p) => write!(f, "Path({})", p.display()),
            Origin::Callback(name) => write!(f, "Callback({name:?})"),
            Origin::Redirect { to, append_path } => write!(f, "Redirect({to:?}, append_path: {append_path})"),
            Origin::Cgi(p) => write!(f, "Cgi({})", p.display()),
            Origin::Fcgi(a) => write!(f, "Fcgi({a})"),
        }
    }
}

/// A mountpoint and its origin.
#[derive(Debug, Clone)]
pub struct Mount {
    /// `/` or a path without a trailing `/`, e.g. `/app`.
    pub(crate) mountpoint: String,
    pub(crate) origin: Origin,
    /// The documents tried, in order, for a directory URL.
    pub(crate) index: Vec<String>,
    pub(crate) cache: Option<crate::http::CachePolicy>,
    /// The htpasswd-style file of a basic-auth protected mount.
    pub(crate) basic_auth: Option<PathBuf>,
    pub(crate) extra_mimetypes: Vec<(String, String)>,
    /// FILE-9: file-name suffixes whose files pass through a protocol.
    pub(crate) interpret: Vec<(String, String)>,
    /// Settings of a `cgi://` mount, and of the scripts a file mount
    /// runs by suffix.
    pub(crate) cgi: CgiConf,
    /// File-name suffixes run in place by an interpreter (`None`: the
    /// file is the program), lighttpd's `cgi.assign`. Never empty
    /// suffixes; matched ignoring ASCII case.
    pub(crate) assign: Vec<(String, Runner)>,
    /// Paths refused, in order.
    pub(crate) deny: Vec<DenyRule>,
    /// Whether path segments starting with `.` are served.
    pub(crate) dotfiles: bool,
    /// How its filesystem treats symbolic links out of the origin.
    pub(crate) symlinks: Symlinks,
    /// Directories a CGI response may name in `X-Sendfile`.
    pub(crate) x_sendfile: Vec<XSendfile>,
    /// Whether a one-program `cgi://` mount interprets the site's files
    /// (`None`: when the program is php-cgi).
    pub(crate) cgi_action: Option<bool>,
}

/// A directory whose files a CGI response may have the server send
/// (`X-Sendfile`), and the filesystem that opens them there.
#[derive(Debug, Clone)]
pub(crate) struct XSendfile {
    /// The directory as configured (absolute).
    pub(crate) dir: PathBuf,
    /// Opened when the vhost is built, with the mount's symlink policy.
    #[cfg_attr(not(feature = "cgi"), allow(dead_code))]
    pub(crate) fops: Option<Arc<PlainFops>>,
}

/// How a `cgi://` mount runs its programs.
#[derive(Debug, Clone)]
pub(crate) struct CgiConf {
    /// No byte moved either way for this long: the program is ended.
    pub(crate) timeout: std::time::Duration,
    pub(crate) env: Vec<(String, String)>,
    pub(crate) max_processes: usize,
    #[cfg(feature = "cgi")]
    pub(crate) limits: warren_cgi::Limits,
    pub(crate) path: Option<String>,
    pub(crate) fcgi: FcgiConf,
}

impl Default for CgiConf {
    fn default() -> CgiConf {
        CgiConf {
            timeout: std::time::Duration::from_secs(30),
            env: Vec::new(),
            max_processes: 64,
            #[cfg(feature = "cgi")]
            limits: warren_cgi::Limits::default(),
            path: None,
            fcgi: FcgiConf::default(),
        }
    }
}

impl Mount {
    /// Mounts `origin` at `mountpoint` (a trailing `/` is ignored, a
    /// missing leading one added).
    pub fn new(mountpoint: &str, origin: Origin) -> Mount {
        let trimmed = mountpoint.trim_end_matches('/');
        let mountpoint = if trimmed.is_empty() {
            "/".to_string()
        } else if trimmed.starts_with('/') {
            trimmed.to_string()
        } else {
            format!("/{trimmed}")
        };
        Mount {
            mountpoint,
            origin,
            index: vec!["index.html".to_string()],
            cache: None,
            basic_auth: None,
            extra_mimetypes: Vec::new(),
            interpret: Vec::new(),
            cgi: CgiConf::default(),
            assign: Vec::new(),
            deny: Vec::new(),
            dotfiles: false,
            symlinks: Symlinks::default(),
            x_sendfile: Vec::new(),
            cgi_action: None,
        }
    }

    /// Serves files from `fops` at `mountpoint`.
    pub fn files(mountpoint: &str, fops: Arc<dyn Fops>) -> Mount {
        Mount::new(mountpoint, Origin::File(fops))
    }

    /// Serves the directory or `.zip` archive at `path`, through the
    /// context's fops factory ([`default_fops`] unless replaced).
    pub fn dir(mountpoint: &str, path: impl Into<PathBuf>) -> Mount {
        Mount::new(mountpoint, Origin::Path(path.into()))
    }

    /// Runs CGI programs (RFC 3875): `origin` is one program, which gets
    /// the path below `mountpoint` as `PATH_INFO` (an interpreter such as
    /// `php-cgi` then runs the script `PATH_TRANSLATED` names, as with
    /// Apache's `Action`), or a directory of programs. `docs/cgi.md` in
    /// the repository tells the environment, limits and timeouts.
    pub fn cgi(mountpoint: &str, origin: impl Into<PathBuf>) -> Mount {
        // Programs run in their own directory: a relative origin is made
        // absolute now, against the server's working directory.
        let origin = origin.into();
        let origin = std::path::absolute(&origin).unwrap_or(origin);
        Mount::new(mountpoint, Origin::Cgi(origin))
    }

    /// A CGI program that moves no byte (no output read, no input taken)
    /// for `t` is ended: its process group gets SIGTERM, then SIGKILL, and
    /// the client a `504` if nothing was sent yet. Default 30 s.
    pub fn cgi_timeout(mut self, t: std::time::Duration) -> Mount {
        self.cgi.timeout = t;
        self
    }

    /// Adds a variable to the environment of this mount's programs (lws
    /// `cgi-env`); it is set last, so it can override the standard ones.
    pub fn cgi_env(mut self, name: impl Into<String>, value: impl Into<String>) -> Mount {
        self.cgi.env.push((name.into(), value.into()));
        self
    }

    /// At most `n` programs of this mount run at once; a request over the
    /// limit waits up to 2 s for a slot, then gets `503`. Default 64.
    pub fn cgi_max_processes(mut self, n: usize) -> Mount {
        self.cgi.max_processes = n.max(1);
        self
    }

    /// Resource limits set in each program before it starts (setrlimit).
    #[cfg(feature = "cgi")]
    pub fn cgi_limits(mut self, limits: warren_cgi::Limits) -> Mount {
        self.cgi.limits = limits;
        self
    }

    /// `PATH` for this mount's programs instead of
    /// [`warren_cgi::DEFAULT_PATH`].
    pub fn cgi_path(mut self, path: impl Into<String>) -> Mount {
        self.cgi.path = Some(path.into());
        self
    }

    /// Redirects every request under `mountpoint` to `to` (an absolute
    /// `http://` or `https://` URL) with `301` (spec REDIR-2, REDIR-4).
    pub fn redirect(mountpoint: &str, to: &str, append_path: bool) -> Mount {
        Mount::new(mountpoint, Origin::Redirect { to: to.to_string(), append_path })
    }

    /// Requires HTTP basic authentication for the mount: `file` holds one
    /// `user:password` per line (spec AUTH-1..3). It is read when the
    /// context starts and kept in memory; edits take effect within about
    /// a second (the file is looked at, one `stat`, at most once a second
    /// and read again when it changed). A file that cannot be read at
    /// start refuses everyone until it can; one that becomes unreadable
    /// later (deleted, say) keeps the credentials last read, with a
    /// warning: to lock everyone out, empty it.
    pub fn basic_auth(mut self, file: impl Into<std::path::PathBuf>) -> Mount {
        self.basic_auth = Some(file.into());
        self
    }

    /// Content types by file suffix for this mount, looked at before the
    /// built-in table (spec FILE-6, lwsws `extra-mimetypes`): `(".ext",
    /// "type/subtype")`, matched case-insensitively. The suffix `"*"`
    /// sets the type for everything the table does not know; an empty
    /// type there means no `Content-Type` at all.
    pub fn extra_mimetypes(mut self, types: impl IntoIterator<Item = (String, String)>) -> Mount {
        self.extra_mimetypes.extend(types);
        self
    }

    /// Files whose names end with `suffix` (`".html"`, say) are sent
    /// through `protocol`'s [`Event::ProcessHtml`](crate::protocol::Event::ProcessHtml)
    /// chunk by chunk, chunked, without validators or ranges (lwsws
    /// `interpret`, spec FILE-9). The vhost must have the protocol.
    pub fn interpret(mut self, suffix: impl Into<String>, protocol: impl Into<String>) -> Mount {
        self.interpret.push((suffix.into(), protocol.into()));
        self
    }

    /// The protocol that interprets the file `name`, if one does.
    pub(crate) fn interpreter_for(&self, name: &str) -> Option<&str> {
        self.interpret.iter().find(|(suffix, _)| name.ends_with(suffix.as_str())).map(|(_, p)| p.as_str())
    }

    /// The content type this mount gives `name`: its own list first,
    /// then the built-in table, then its `"*"` entry. `None`: send none.
    pub(crate) fn content_type_for<'a>(
        &'a self,
        name: &str,
        builtin: impl Fn(&str) -> Option<&'static str>,
    ) -> Option<&'a str> {
        let lower = name.to_ascii_lowercase();
        for (suffix, ty) in &self.extra_mimetypes {
            if suffix != "*" && lower.ends_with(&suffix.to_ascii_lowercase()) {
                return Some(ty);
            }
        }
        if let Some(t) = builtin(name) {
            return Some(t);
        }
        match self.extra_mimetypes.iter().find(|(s, _)| s == "*") {
            Some((_, t)) if t.is_empty() => None,
            Some((_, t)) => Some(t),
            None => Some("application/octet-stream"),
        }
    }

    /// Hands `mountpoint` to the vhost's protocol `name`.
    pub fn callback(mountpoint: &str, name: &str) -> Mount {
        Mount::new(mountpoint, Origin::Callback(name.to_string()))
    }

    /// The document served for a directory URL. Default `index.html`.
    /// The same as [`index`](Self::index) with one name.
    pub fn default_document(mut self, name: impl Into<String>) -> Mount {
        self.index = vec![name.into()];
        self
    }

    /// The documents tried, in this order, for a directory URL (lighttpd's
    /// `index-file.names`, nginx's `index`): the first that exists is
    /// served, or run when its suffix is assigned to an interpreter
    /// ([`cgi_assign`](Self::cgi_assign)). `["index.php", "index.html"]`
    /// runs `index.php` where there is one. Default `["index.html"]`.
    /// Names holding `/` are ignored (they name no file in the directory).
    pub fn index<S: Into<String>>(mut self, names: impl IntoIterator<Item = S>) -> Mount {
        self.index = names.into_iter().map(Into::into).filter(|n: &String| !n.is_empty() && !n.contains('/')).collect();
        self
    }

    /// Runs the files of this mount whose names end with `suffix`
    /// (`".php"`, matched ignoring ASCII case) in place, as CGI scripts
    /// (lighttpd's `cgi.assign`, Apache's `AddHandler` with `Action`):
    /// `interpreter` gets the script as its argument, and
    /// `SCRIPT_FILENAME` names it; an empty `interpreter` runs the file
    /// itself, which must then be executable. Such a file is never sent
    /// as it is stored, whatever the request: it runs, or the request is
    /// refused. The mount's `cgi_*` settings (timeout, environment,
    /// process limit) apply to its scripts. Where suffixes overlap, the
    /// longest that matches decides. See docs/cgi.md.
    pub fn cgi_assign(self, suffix: impl Into<String>, interpreter: impl Into<PathBuf>) -> Mount {
        let suffix = suffix.into();
        if suffix.is_empty() {
            return self;
        }
        let interpreter = interpreter.into();
        // Scripts run in their own directory: a relative interpreter is
        // made absolute now, against the server's working directory.
        let runner = if interpreter.as_os_str().is_empty() {
            Runner::Itself
        } else {
            Runner::Interpreter(std::path::absolute(&interpreter).unwrap_or(interpreter))
        };
        self.assign_runner(suffix, runner)
    }

    /// Runs the files of this mount whose names end with `suffix` in
    /// place through the FastCGI server at `addr` (php-fpm, say), as
    /// [`cgi_assign`](Self::cgi_assign) does through a program:
    /// `SCRIPT_FILENAME` names the file, and the server runs it. The
    /// mount's `fcgi_*` settings apply. See docs/cgi.md.
    pub fn fcgi_assign(self, suffix: impl Into<String>, addr: FcgiAddr) -> Mount {
        self.assign_runner(suffix.into(), Runner::Fcgi(addr))
    }

    fn assign_runner(mut self, suffix: String, runner: Runner) -> Mount {
        if suffix.is_empty() {
            return self;
        }
        self.assign.retain(|(s, _)| !s.eq_ignore_ascii_case(&suffix));
        self.assign.push((suffix, runner));
        // The longest suffix that matches decides (`.inc.php` before `.php`).
        self.assign.sort_by_key(|(s, _)| std::cmp::Reverse(s.len()));
        self
    }

    /// Sends every request below `mountpoint` to the FastCGI application
    /// server at `addr`, the path below the mountpoint as `PATH_INFO`
    /// (`SCRIPT_NAME` is the mountpoint). See docs/cgi.md.
    pub fn fcgi(mountpoint: &str, addr: FcgiAddr) -> Mount {
        Mount::new(mountpoint, Origin::Fcgi(addr))
    }

    /// A connection to a FastCGI server not made within `t` is given up:
    /// the client gets `504`. Default 5 s.
    pub fn fcgi_connect_timeout(mut self, t: Duration) -> Mount {
        self.cgi.fcgi.connect_timeout = t;
        self
    }

    /// At most `n` requests in flight at one FastCGI server this mount
    /// names (all mounts naming it count): more wait in line for up to
    /// 2 s, then get `503` with `Retry-After`. Keep it at or below the
    /// server's workers (php-fpm's `pm.max_children`) to keep waiting
    /// here, not in its listen queue. Default 64.
    pub fn fcgi_max_requests(mut self, n: usize) -> Mount {
        self.cgi.fcgi.max_requests = n.max(1);
        self
    }

    /// Idle connections to each FastCGI server kept open for the next
    /// request (`FCGI_KEEP_CONN`); 0 opens one per request. Default 8.
    pub fn fcgi_keepalive(mut self, n: usize) -> Mount {
        self.cgi.fcgi.keepalive = n;
        self
    }

    /// Why `suffix` cannot be given to [`cgi_assign`](Self::cgi_assign)
    /// by a configuration, if it cannot: it starts with `.` and holds no
    /// `*` or `/` (`*.php` would match nothing, and the scripts would be
    /// sent as files).
    pub fn assign_suffix_problem(suffix: &str) -> Option<&'static str> {
        rules::assign_suffix_problem(suffix)
    }

    /// Refuses requests for the paths `rule` names (lighttpd's
    /// `url.access-deny`, nginx's `deny` locations), with 403 or the 404
    /// the rule chose. Rules apply to file mounts and to `cgi://` mounts.
    pub fn deny(mut self, rule: DenyRule) -> Mount {
        self.deny.push(rule);
        self
    }

    /// Serves path segments that start with `.` (`.git`, `.env`,
    /// `.htpasswd`), which are refused (403) by default; `/.well-known/`
    /// at the top of the URL space is always served.
    pub fn allow_dotfiles(mut self, allow: bool) -> Mount {
        self.dotfiles = allow;
        self
    }

    /// How symbolic links that lead out of the mount's directory are
    /// treated (for files and scripts alike): refused by default
    /// ([`Symlinks::Confined`]), followed ([`Symlinks::Follow`], lighttpd's
    /// `server.follow-symlink`), or followed only when the link and its
    /// target have the same owner ([`Symlinks::SameOwner`], nginx's
    /// `disable_symlinks if_not_owner`). It takes effect for mounts made
    /// with [`dir`](Self::dir) (whose filesystem warren opens) and for
    /// `cgi://` directories; a filesystem passed to
    /// [`files`](Self::files) has its own rules.
    pub fn symlinks(mut self, policy: Symlinks) -> Mount {
        self.symlinks = policy;
        self
    }

    /// Lets this mount's CGI responses name a file below `dir` in an
    /// `X-Sendfile` (or `X-LIGHTTPD-send-file`) header: the server then
    /// sends that file itself, with ranges and validators, and the
    /// program's own body is dropped. Off by default (the header is then
    /// removed from the response). `dir` is opened when the vhost is
    /// built; the file is confined to it as a file mount's are, under
    /// the mount's symlink policy.
    pub fn x_sendfile(mut self, dir: impl Into<PathBuf>) -> Mount {
        let dir = dir.into();
        let dir = std::path::absolute(&dir).unwrap_or(dir);
        self.x_sendfile.push(XSendfile { dir, fops: None });
        self
    }

    /// Whether a `cgi://` mount of one program runs the site's files, as
    /// Apache's `Action` does with php-cgi (`true`): `GET /php` is then
    /// redirected to `/php/`, a `PATH_INFO` naming a directory goes
    /// through this mount's default documents, and what it names must
    /// be a regular file the file mounts would serve (their deny rules,
    /// dotfile refusal and assigned suffixes apply). `false`: the
    /// program gets whatever follows the mountpoint as `PATH_INFO`, a
    /// route of its own (cgit, git-http-backend). Unless set, a program
    /// whose file name starts with `php-cgi` is such an interpreter.
    pub fn cgi_action(mut self, action: bool) -> Mount {
        self.cgi_action = Some(action);
        self
    }

    /// [`cgi_action`](Self::cgi_action), as set or guessed.
    #[cfg(feature = "cgi")]
    pub(crate) fn is_cgi_action(&self) -> bool {
        match (&self.origin, self.cgi_action) {
            (_, Some(a)) => a,
            (Origin::Cgi(p), None) => p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("php-cgi")),
            _ => false,
        }
    }

    /// What runs `name`, if its suffix is assigned.
    pub(crate) fn assigned(&self, name: &str) -> Option<&Runner> {
        assigned(&self.assign, name)
    }

    /// Sends `Cache-Control` on this mount's file responses (200, 206 and
    /// 304) as `policy` says (spec CACHE-1). Without one, none is sent.
    pub fn cache(mut self, policy: crate::http::CachePolicy) -> Mount {
        self.cache = Some(policy);
        self
    }

    /// The normalised mountpoint.
    pub fn mountpoint(&self) -> &str {
        &self.mountpoint
    }

    /// Whether this mount covers `path` (decoded, normalised): equal, or a
    /// prefix ending at a `/` boundary (spec MNT-1).
    pub fn matches(&self, path: &str) -> bool {
        let m = &self.mountpoint;
        m == "/" || path == m || (path.starts_with(m.as_str()) && path.as_bytes().get(m.len()) == Some(&b'/'))
    }

    /// The part of `path` below the mountpoint, starting with `/` (or
    /// empty when `path` is the mountpoint itself).
    pub fn remainder<'p>(&self, path: &'p str) -> &'p str {
        if self.mountpoint == "/" {
            path
        } else {
            &path[self.mountpoint.len().min(path.len())..]
        }
    }
}

/// How long [`default_fops`] keeps files open (lighttpd's stat cache
/// keeps 1 s too).
pub const OPEN_CACHE_TTL: Duration = Duration::from_secs(1);
/// How many files [`default_fops`] keeps open at most.
pub const OPEN_CACHE_FILES: usize = 256;

/// [`OPEN_CACHE_FILES`], or fewer where the process may open few files (a
/// sixteenth of the hard RLIMIT_NOFILE, which the context raises the soft
/// limit to), so the cache never takes the descriptors connections need.
fn open_cache_files() -> usize {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes the local struct only.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return OPEN_CACHE_FILES;
    }
    let fds = usize::try_from(lim.rlim_max).unwrap_or(usize::MAX);
    (fds / 16).min(OPEN_CACHE_FILES)
}

/// The filesystem warren uses for a path, unless told otherwise:
///
/// - a directory: [`PlainFops`] with its open-file cache, wrapped in
///   [`ZipFops::over`], so `/docs.zip/index.html` serves from inside
///   `docs.zip`;
/// - a `.zip` file: that archive as the whole tree ([`ZipFops::archive`]);
///   its central directory is read here, so a broken archive is an error
///   now rather than a 500 later.
///
/// Built without the `zip` feature, a directory is served as it is and a
/// `.zip` file is refused, saying so.
pub fn default_fops(path: &Path) -> io::Result<Arc<dyn Fops>> {
    default_fops_with(path, Symlinks::Confined)
}

/// [`default_fops`] with a symlink policy for the directory (see
/// [`Mount::symlinks`]); a mount made by [`Mount::dir`] is opened so.
pub fn default_fops_with(path: &Path, symlinks: Symlinks) -> io::Result<Arc<dyn Fops>> {
    let named = |e: io::Error| io::Error::new(e.kind(), format!("{}: {e}", path.display()));
    let plain = |dir: &Path| -> io::Result<Arc<dyn Fops>> {
        Ok(Arc::new(PlainFops::new(dir)?.with_symlinks(symlinks).with_open_cache(OPEN_CACHE_TTL, open_cache_files())))
    };
    let meta = std::fs::metadata(path).map_err(named)?;
    if meta.is_dir() {
        #[cfg(feature = "zip")]
        return Ok(Arc::new(ZipFops::over(plain(path).map_err(named)?)));
        #[cfg(not(feature = "zip"))]
        return plain(path).map_err(named);
    }
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    if !meta.is_file() || !name.to_ascii_lowercase().ends_with(".zip") {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{}: neither a directory nor a .zip archive", path.display()),
        ));
    }
    #[cfg(not(feature = "zip"))]
    return Err(io::Error::new(
        io::ErrorKind::Unsupported,
        format!("{}: a .zip archive, and this warren is built without the `zip` feature", path.display()),
    ));
    #[cfg(feature = "zip")]
    zip_fops(path, name, plain, named)
}

/// [`default_fops`] for a `.zip` file `name` at `path`.
#[cfg(feature = "zip")]
fn zip_fops(
    path: &Path,
    name: &str,
    plain: impl Fn(&Path) -> io::Result<Arc<dyn Fops>>,
    named: impl Fn(io::Error) -> io::Error,
) -> io::Result<Arc<dyn Fops>> {
    let parent = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let archive = VPath::new(name).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let zip = ZipFops::archive(plain(parent).map_err(named)?, archive);
    // A big archive loads on a thread: wait for it here, at start.
    match warren_vfs::open_blocking(&zip, &VPath::root(), OpenFlags::READ) {
        Err(e) if e.kind() != io::ErrorKind::IsADirectory => {
            // The archive's own error starts with its name inside `parent`.
            let msg = e.to_string();
            let inner = msg.strip_prefix(&format!("/{name}: ")).unwrap_or(&msg);
            Err(io::Error::new(e.kind(), format!("{}: {inner}", path.display())))
        }
        _ => Ok(Arc::new(zip)),
    }
}

/// The longest mount covering `path`; on equal length the earlier (MNT-2).
pub(crate) fn find<'m>(mounts: &'m [Mount], path: &str) -> Option<(usize, &'m Mount)> {
    let mut best: Option<(usize, &Mount)> = None;
    for (i, m) in mounts.iter().enumerate() {
        if m.matches(path) && best.is_none_or(|(_, b)| m.mountpoint.len() > b.mountpoint.len()) {
            best = Some((i, m));
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cb(mp: &str) -> Mount {
        Mount::callback(mp, "x")
    }

    #[test]
    fn whole_segments() {
        let m = cb("/a/");
        assert_eq!(m.mountpoint(), "/a");
        assert!(m.matches("/a"));
        assert!(m.matches("/a/"));
        assert!(m.matches("/a/b"));
        assert!(!m.matches("/ab"));
        assert!(!m.matches("/"));
        assert_eq!(m.remainder("/a/b"), "/b");
        assert_eq!(m.remainder("/a"), "");
        assert!(cb("/").matches("/anything"));
        assert_eq!(cb("/").remainder("/x"), "/x");
        assert_eq!(cb("x").mountpoint(), "/x");
    }

    #[test]
    fn longest_wins_then_first() {
        let mounts = [cb("/"), cb("/a"), cb("/a/b"), cb("/a")];
        assert_eq!(find(&mounts, "/a/b/c").map(|(i, _)| i), Some(2));
        assert_eq!(find(&mounts, "/a/bc").map(|(i, _)| i), Some(1));
        assert_eq!(find(&mounts, "/z").map(|(i, _)| i), Some(0));
        assert_eq!(find(&mounts[1..], "/z").map(|(i, _)| i), None);
    }
}
