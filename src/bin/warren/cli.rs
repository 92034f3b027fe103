//! The command line, defined once: parsing, `--help`, the shell
//! completions (`warren completions SHELL`) and the man page
//! (`warren man`) all come from these types.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::time::Duration;

const EXAMPLES: &str = "\
Examples:
  warren                                  the built-in site on http://127.0.0.1:7681/
  warren --root ./site --port 8080        a directory (zip archives in it served from inside)
  warren --root site.zip --bind ::        one archive as the whole site, on every address
  warren --cgi /cgi-bin=./cgi-bin         CGI programs beside the built-in site
  warren --root /usr/share/dokuwiki --cgi-assign .php=/usr/bin/php-cgi --index doku.php \\
         --deny /inc --deny /data --deny /conf --deny /bin --symlinks follow
                                          a PHP application run in place
  warren --tls-cert cert.pem --tls-key key.pem --redirect-http
  warren --config /etc/warren             an lwsws-style configuration directory
  warren --access-log - -d warn           requests on standard output, only problems on stderr
  warren --log-file /var/log/warren/error.log --access-log /var/log/warren/access.log
  warren --syslog -d 15                   the log to syslog at info (an lwsws -d number)
  warren pack ./site site.zip             pack a directory for serving
  warren check --config /etc/warren       check a configuration, print what it serves
  sudo warren --port 80 --user www-data   bind port 80 as root, then serve as www-data
  warren --daemon --pid-file /run/warren.pid --log-file /var/log/warren.log --config /etc/warren
                                          in the background

Signals: SIGTERM or SIGINT finish what is in flight (within --grace) and
exit; a second one stops at once. SIGHUP reloads the configuration,
keeping the listening sockets. SIGUSR1 reopens the log files (after
logrotate moved them).

Log lines: \"2026-11-27T23:41:07.123Z INFO  target: message\" (UTC); under
systemd (stderr is the journal) \"<6>INFO  target: message\", the level for
journald.

Under systemd: Type=notify works (READY=1, RELOADING=1, STOPPING=1), and
sockets passed by socket activation (LISTEN_FDS) are served rather than
bound; see contrib/warren.service and contrib/warren.socket.";

/// Serve sites over HTTP(S) and WebSocket: directories, zip archives, CGI
///
/// With no options, serves the built-in default site on
/// http://127.0.0.1:7681/.
#[derive(Debug, Parser)]
#[command(name = "warren", version, after_help = EXAMPLES, args_conflicts_with_subcommands = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub serve: ServeArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Pack a directory into a zip archive made for serving.
    Pack(PackArgs),
    /// Check a configuration without serving it, and print what it serves.
    #[command(
        long_about = "Check a configuration without serving it, and print what it serves.

Takes --config DIR or the same flags as serving, and validates what a start
would (files, archives, certificates and keys, protocols, CGI programs,
credentials files, error pages, access-log directories, limits) without
binding any address or creating any file. Prints each listener, its vhosts
and their mounts on stdout and exits 0; or prints every problem found on
stderr, each naming its file and key or its vhost and mount, and exits 2.",
        after_help = "Examples:\n  warren check --config /etc/warren\n  \
                      warren check --root ./site --cgi /cgi-bin=./cgi-bin --port 8080"
    )]
    Check(Box<ServeArgs>),
    /// Print a shell completion script for SHELL to standard output.
    #[command(after_help = "Example:\n  warren completions bash > /etc/bash_completion.d/warren")]
    Completions {
        /// bash, elvish, fish, powershell or zsh.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) to standard output.
    #[command(after_help = "Example:\n  warren man > warren.1 && man ./warren.1")]
    Man,
}

/// What to serve and how: the default command's options.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Serve what the lwsws-style configuration in DIR (DIR/conf and
    /// DIR/conf.d/*) describes.
    #[arg(long, value_name = "DIR", conflicts_with = "root")]
    pub config: Option<PathBuf>,
    /// Serve PATH at /: a directory (zip archives in it are served from
    /// inside: /a.zip/x.html), or a .zip archive served as the whole site.
    #[arg(long, value_name = "PATH")]
    pub root: Option<PathBuf>,
    /// Run CGI programs at MOUNTPOINT: PATH is a program (it gets the rest
    /// of the URL as PATH_INFO, e.g. /usr/bin/php-cgi) or a directory of
    /// programs; may be given more than once.
    #[arg(long, value_name = "MOUNTPOINT=PATH", value_parser = parse_cgi)]
    pub cgi: Vec<(String, PathBuf)>,
    /// Send every request below MOUNTPOINT to the FastCGI application
    /// server at ADDR: a Unix socket's absolute path or HOST:PORT
    /// (e.g. /app=127.0.0.1:9000); may be given more than once.
    #[arg(long, value_name = "MOUNTPOINT=ADDR", value_parser = parse_fcgi)]
    pub fcgi: Vec<(String, warren::FcgiAddr)>,
    /// Run the --root directory's files ending in SUFFIX in place through
    /// INTERPRETER (e.g. .php=/usr/bin/php-cgi), or through a FastCGI
    /// server (.php=fcgi:///run/php/php8.2-fpm.sock); an empty INTERPRETER
    /// runs the file itself (.cgi=). They are never sent as files. May be
    /// given more than once.
    #[arg(long, value_name = "SUFFIX=INTERPRETER", value_parser = parse_assign)]
    pub cgi_assign: Vec<(String, Runs)>,
    /// FastCGI requests in flight at one server at most (on a Unix socket
    /// fewer when the pool is seen to have fewer workers: the rest wait
    /// in line); more wait up to 2 s, then get 503 [default: 64].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub fcgi_max_requests: Option<u32>,
    /// Idle connections kept open to each FastCGI server (0: a connection
    /// per request) [default: 8].
    #[arg(long, value_name = "N")]
    pub fcgi_keepalive: Option<u32>,
    /// Seconds to make a connection to a FastCGI server (then 504)
    /// [default: 5].
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u32).range(1..))]
    pub fcgi_connect_timeout: Option<u32>,
    /// The documents tried, in order, for a directory URL
    /// [default: index.html].
    #[arg(long, value_name = "NAME,...", value_delimiter = ',', value_parser = parse_index)]
    pub index: Vec<String>,
    /// Refuse paths of the --root mount: /PATH (and below it), *SUFFIX, or
    /// a segment NAME anywhere; =404 after it answers 404 instead of 403
    /// (e.g. --deny /inc --deny '*.bak' --deny /data=404). May be given
    /// more than once.
    #[arg(long, value_name = "RULE", value_parser = parse_deny)]
    pub deny: Vec<warren::DenyRule>,
    /// Serve files and directories whose names start with "." (refused by
    /// default, except /.well-known/).
    #[arg(long)]
    pub allow_dotfiles: bool,
    /// Symbolic links leading out of a mount's directory: confined
    /// (refused), follow, or owner (followed when the link and its target
    /// have the same owner).
    #[arg(long, value_name = "POLICY", value_parser = clap::value_parser!(warren::Symlinks), default_value = "confined")]
    pub symlinks: warren::Symlinks,
    /// Let CGI responses name a file below DIR in X-Sendfile, for the
    /// server to send. May be given more than once.
    #[arg(long, value_name = "DIR")]
    pub x_sendfile: Vec<PathBuf>,
    /// Listen on port N (0: any free port).
    #[arg(long, value_name = "N", default_value_t = 7681)]
    pub port: u16,
    /// Listen on ADDR: an IP address (127.0.0.1, ::1 or [::1], :: for every
    /// address), or a host name, for all the addresses it resolves to; may
    /// be given more than once [default: 127.0.0.1].
    #[arg(long, value_name = "ADDR")]
    pub bind: Vec<String>,
    /// Idle keep-alive timeout, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 5)]
    pub keepalive_timeout: u64,
    /// TCP keepalive on accepted connections: a probe after SECS without
    /// traffic, then one every INTERVAL seconds (default 75); PROBES
    /// unanswered (default 9) and the connection is closed. Whole
    /// seconds 1-32767, probes 1-127 [default: off].
    #[arg(long, value_name = "SECS[,PROBES[,INTERVAL]]", value_parser = parse_tcp_keepalive)]
    pub tcp_keepalive: Option<(u64, u32, u64)>,
    /// Serve from N service loops, each on its own thread, all accepting
    /// on the same ports (lwsws's count-threads); 1 to 64 [default: 1;
    /// with --config, the global "count-threads", which this overrides].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=64))]
    pub threads: Option<u32>,
    /// With --threads: give each loop a listening socket of its own on
    /// each port (SO_REUSEPORT): the kernel spreads connections, none
    /// crosses threads (faster for a connection per request), but the
    /// spread is uneven and a reload resets connections waiting in the
    /// closing loops' queues [default: one queue per port, each
    /// connection handed to the least-loaded loop].
    #[arg(long, requires = "threads")]
    pub reuse_port: bool,
    /// At most N connections open at once from one peer address (lwsws's
    /// ip-limit-wsi); one more is closed at once, unanswered [default:
    /// no limit; with --config, the global "ip-limit-wsi"].
    #[arg(long, value_name = "N", conflicts_with = "config", value_parser = clap::value_parser!(u32).range(1..))]
    pub peer_connections: Option<u32>,
    /// At most N requests in progress at once from one peer address
    /// (lwsws's ip-limit-ah); a connection starting one more is not read
    /// until one ends [default: no limit; with --config, the global
    /// "ip-limit-ah"].
    #[arg(long, value_name = "N", conflicts_with = "config", value_parser = clap::value_parser!(u32).range(1..))]
    pub peer_requests: Option<u32>,
    /// Serve HTTPS (and wss://) with the PEM certificate chain in FILE
    /// (leaf first), with --tls-key.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert (RSA, ECDSA P-256/P-384 or
    /// Ed25519).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// With --tls-cert: answer plain HTTP sent to the TLS port with 301 to
    /// the https:// URL.
    #[arg(long, requires = "tls_cert")]
    pub redirect_http: bool,
    /// On SIGTERM, SIGINT or a reload: how long responses in flight may
    /// take to finish before their connections are closed, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 10, value_parser = parse_secs)]
    pub grace: u64,
    /// The server log's level: error, warn, info, debug, trace or off; or
    /// an lwsws -d number, a bitmask (1 error, 2 warn, 4 notice, 8 info,
    /// 16 debug, 32 and up details): its most verbose bit counts, so 7 is
    /// info [default: the configuration's global "log-level", else info].
    #[arg(short = 'd', long, value_name = "LEVEL", value_parser = parse_level)]
    pub log_level: Option<log::LevelFilter>,
    /// Append the server log to FILE rather than writing it to standard
    /// error; SIGUSR1 reopens it (for logrotate).
    #[arg(long, value_name = "FILE", conflicts_with = "syslog")]
    pub log_file: Option<PathBuf>,
    /// Send the server log to the local syslog (facility daemon, tag
    /// warren[PID]) through the socket /dev/log, or SOCKET given as
    /// --syslog=SOCKET; standard error, with a warning, if there is none.
    #[arg(long, value_name = "SOCKET", num_args = 0..=1, require_equals = true, default_missing_value = "/dev/log")]
    pub syslog: Option<PathBuf>,
    /// Log every request to FILE (appended; - is standard output) in the
    /// combined format. With --config, only the vhosts with no
    /// "access-log" of their own log there. SIGUSR1 reopens it.
    #[arg(long, value_name = "FILE|-")]
    pub access_log: Option<PathBuf>,
    /// Serve the server's counters in the Prometheus text format at PATH
    /// (e.g. /metrics): connections, requests by status class, bytes, CGI
    /// programs, WebSockets, TLS handshakes, reloads. With --config, mount
    /// callback://warren-metrics where wanted instead (docs/metrics.md).
    #[arg(long, value_name = "PATH", conflicts_with = "config", value_parser = parse_mountpoint)]
    pub metrics: Option<String>,
    /// Once every port is bound, become user NAME (or uid N), with its
    /// groups: bind as root, serve as nobody. Reloads then read files as
    /// that user. Overrides the configuration's "uid"/"username".
    #[arg(long, value_name = "NAME|UID")]
    pub user: Option<String>,
    /// With --user, or alone: become group NAME (or gid N) once bound
    /// [default: the user's group].
    #[arg(long, value_name = "NAME|GID")]
    pub group: Option<String>,
    /// With --user: keep these capabilities (comma-separated, e.g.
    /// net_bind_service to bind ports below 1024 on reloads); every other
    /// one is dropped.
    #[arg(long, value_name = "CAP,...", value_delimiter = ',', value_parser = parse_cap)]
    pub keep_cap: Vec<warren::process::Capability>,
    /// Run in the background: detach from the terminal, chdir to /, stdin,
    /// stdout and stderr on /dev/null (so log lines are lost unless
    /// logged to a file or syslog: --log-file, --syslog). Returns once
    /// serving (0), or prints why it cannot (2).
    #[arg(long)]
    pub daemon: bool,
    /// Write the pid to PATH once serving, and hold it locked: a second
    /// warren with the same PATH refuses to start. Removed at exit.
    #[arg(long, value_name = "PATH")]
    pub pid_file: Option<PathBuf>,
}

impl ServeArgs {
    pub fn keepalive(&self) -> Duration {
        Duration::from_secs(self.keepalive_timeout)
    }

    pub fn grace(&self) -> Duration {
        Duration::from_secs(self.grace)
    }
}

/// `warren pack`'s arguments.
#[derive(Debug, Args)]
#[command(
    override_usage = "warren pack [--dotfiles] DIR OUT.zip",
    long_about = "Pack a directory into a zip archive made for serving.

Writes every file below DIR into OUT.zip, each deflated (level 9) unless
that does not make it smaller, and prints each file and the totals. Serve
the archive with `warren --root OUT.zip`: deflated entries go to clients
that accept gzip as they are stored.

Symbolic links are followed while they stay inside DIR; one that leads
outside it refuses the whole pack, as serving DIR would refuse the link.
The archive is written to OUT.zip.partial and renamed when complete, so a
failed pack leaves no archive and keeps an existing OUT.zip. When OUT.zip
is inside DIR, it and its .partial are left out of the archive.

Dotfiles (a file or directory whose name starts with `.`: .git/, .env,
.htpasswd, sub/.cache/) are left out, except a top-level .well-known/
directory; stderr says which were left out. --dotfiles packs them too.",
    after_help = "Example:\n  warren pack ./site site.zip && warren --root site.zip"
)]
pub struct PackArgs {
    /// The directory to pack.
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
    /// The archive to write.
    #[arg(value_name = "OUT.zip")]
    pub out: PathBuf,
    /// Pack dotfiles (.git/, .env, ...) too; without it they are left out,
    /// except a top-level .well-known/.
    #[arg(long)]
    pub dotfiles: bool,
}

/// What runs the files of an assigned suffix.
#[derive(Debug, Clone)]
pub enum Runs {
    /// An interpreter (empty: the file itself).
    Program(PathBuf),
    /// A FastCGI server.
    Fcgi(warren::FcgiAddr),
}

fn parse_fcgi(v: &str) -> Result<(String, warren::FcgiAddr), String> {
    let Some((mountpoint, addr)) = v.split_once('=').filter(|(_, a)| !a.is_empty()) else {
        return Err(format!("{v:?} is not MOUNTPOINT=ADDR (e.g. /app=127.0.0.1:9000 or /app=/run/app.sock)"));
    };
    if !mountpoint.starts_with('/') {
        return Err(format!("the mountpoint {mountpoint:?} must start with '/' (e.g. /app)"));
    }
    Ok((mountpoint.to_string(), addr.parse()?))
}

fn parse_assign(v: &str) -> Result<(String, Runs), String> {
    let Some((suffix, interpreter)) = v.split_once('=') else {
        return Err(format!("{v:?} is not SUFFIX=INTERPRETER (e.g. .php=/usr/bin/php-cgi, or .cgi= for programs)"));
    };
    if let Some(why) = warren::Mount::assign_suffix_problem(suffix) {
        return Err(format!("{suffix:?}: {why}"));
    }
    if let Some(addr) = interpreter.strip_prefix("fcgi://") {
        return Ok((suffix.to_string(), Runs::Fcgi(addr.parse()?)));
    }
    if !interpreter.is_empty() && !std::path::Path::new(interpreter).is_absolute() {
        return Err(format!("{interpreter:?}: the interpreter's absolute path, please"));
    }
    if !interpreter.is_empty() {
        let meta = std::fs::metadata(interpreter).map_err(|e| format!("{interpreter}: {e}"))?;
        use std::os::unix::fs::PermissionsExt;
        if !meta.is_file() || meta.permissions().mode() & 0o111 == 0 {
            return Err(format!("{interpreter} is not an executable file"));
        }
    }
    Ok((suffix.to_string(), Runs::Program(PathBuf::from(interpreter))))
}

fn parse_deny(v: &str) -> Result<warren::DenyRule, String> {
    let (rule, hidden) = match v.strip_suffix("=404") {
        Some(r) => (r, true),
        None => (v.strip_suffix("=403").unwrap_or(v), false),
    };
    let r = warren::DenyRule::parse(rule).map_err(|why| format!("{why} (a RULE may end in =403 or =404)"))?;
    Ok(if hidden { r.not_found() } else { r })
}

fn parse_index(v: &str) -> Result<String, String> {
    if v.is_empty() || v.contains('/') || v.chars().any(char::is_control) {
        return Err(format!("{v:?} is not a file name"));
    }
    Ok(v.to_string())
}

fn parse_cgi(v: &str) -> Result<(String, PathBuf), String> {
    let Some((mountpoint, path)) = v.split_once('=').filter(|(_, p)| !p.is_empty()) else {
        return Err(format!("{v:?} is not MOUNTPOINT=PATH (e.g. /cgi-bin=./cgi-bin)"));
    };
    if !mountpoint.starts_with('/') {
        return Err(format!("the mountpoint {mountpoint:?} must start with '/' (e.g. /cgi-bin)"));
    }
    let meta = std::fs::metadata(path).map_err(|e| format!("{path}: {e}"))?;
    use std::os::unix::fs::PermissionsExt;
    if meta.is_file() && meta.permissions().mode() & 0o111 == 0 {
        return Err(format!("{path} is a file but not executable"));
    }
    if !meta.is_file() && !meta.is_dir() {
        return Err(format!("{path} is neither a program nor a directory"));
    }
    Ok((mountpoint.to_string(), PathBuf::from(path)))
}

fn parse_mountpoint(v: &str) -> Result<String, String> {
    if !v.starts_with('/') {
        return Err(format!("{v:?} must start with '/' (e.g. /metrics)"));
    }
    Ok(v.to_string())
}

fn parse_cap(v: &str) -> Result<warren::process::Capability, String> {
    v.parse()
}

fn parse_level(v: &str) -> Result<log::LevelFilter, String> {
    warren::config::parse_log_level(v)
}

fn parse_tcp_keepalive(v: &str) -> Result<(u64, u32, u64), String> {
    let mut parts = v.split(',');
    let mut next = |what: &str, max: u64, default: u64| -> Result<u64, String> {
        match parts.next() {
            None => Ok(default),
            Some(p) => match p.trim().parse::<u64>() {
                Ok(n) if (1..=max).contains(&n) => Ok(n),
                _ => Err(format!("{what} {p:?}: expected a whole number from 1 to {max}")),
            },
        }
    };
    let time = next("SECS", 32767, 0)?;
    let probes = next("PROBES", 127, 9)?;
    let interval = next("INTERVAL", 32767, 75)?;
    if parts.next().is_some() {
        return Err(format!("{v:?}: expected SECS[,PROBES[,INTERVAL]]"));
    }
    Ok((time, u32::try_from(probes).unwrap_or(9), interval))
}

fn parse_secs(v: &str) -> Result<u64, String> {
    let secs: u64 = v.parse().map_err(|_| format!("{v:?} is not a number of seconds"))?;
    if secs > warren::MAX_TIMEOUT.as_secs() {
        return Err(format!("{secs} s is longer than the most allowed, {} s", warren::MAX_TIMEOUT.as_secs()));
    }
    Ok(secs)
}

/// The command line's whole definition, for completions and the man page.
pub fn command() -> clap::Command {
    <Cli as clap::CommandFactory>::command()
}
