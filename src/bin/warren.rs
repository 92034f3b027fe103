//! `warren`: serve a directory (by default the built-in site) over HTTP.
//!
//! Run `warren --help` for the flags.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use warren::vfs::PlainFops;
use warren::{Context, ContextInfo, Mount, VhostInfo};

const USAGE: &str = "\
warren - serve a site over HTTP

USAGE:
    warren [OPTIONS]

With no options, serves the built-in default site on http://127.0.0.1:7681/.

OPTIONS:
    --root DIR                 serve the files below DIR at /
    --port N                   listen on port N (default 7681; 0 = any free port)
    --bind ADDR                listen on IP address ADDR (default 127.0.0.1)
    --keepalive-timeout SECS   idle keep-alive timeout (default 5)
    -d, --log-level LEVEL      error, warn, info, debug or trace (default info)
    -h, --help                 print this help
    --version                  print the version
";

/// The site `warren` serves when given no `--root`: the project's
/// `webroot/` as it was at build time.
const DEFAULT_ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/webroot");

/// How long an opened file is reused without looking at the disk again
/// (lighttpd's stat cache keeps 1 s too).
const OPEN_CACHE_TTL: Duration = Duration::from_secs(1);
/// How many files are kept open at most.
const OPEN_CACHE_FILES: usize = 256;

struct Options {
    root: Option<PathBuf>,
    port: u16,
    bind: IpAddr,
    keepalive: Duration,
    level: log::LevelFilter,
}

enum Parsed {
    Run(Options),
    Exit(&'static str),
}

fn parse(args: impl IntoIterator<Item = String>) -> Result<Parsed, String> {
    let mut o = Options {
        root: None,
        port: 7681,
        bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
        keepalive: Duration::from_secs(5),
        level: log::LevelFilter::Info,
    };
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (arg.clone(), None),
        };
        let mut value =
            |name: &str| inline.clone().or_else(|| args.next()).ok_or_else(|| format!("{name} needs a value"));
        match flag.as_str() {
            "-h" | "--help" => return Ok(Parsed::Exit(USAGE)),
            "--version" => return Ok(Parsed::Exit(concat!("warren ", env!("CARGO_PKG_VERSION"), "\n"))),
            "--root" => o.root = Some(PathBuf::from(value("--root")?)),
            "--port" => {
                let v = value("--port")?;
                o.port = v.parse().map_err(|_| format!("--port: {v:?} is not a port number (0-65535)"))?;
            }
            "--bind" => {
                let v = value("--bind")?;
                o.bind = v.parse().map_err(|_| format!("--bind: {v:?} is not an IP address"))?;
            }
            "--keepalive-timeout" => {
                let v = value("--keepalive-timeout")?;
                let secs: u64 =
                    v.parse().map_err(|_| format!("--keepalive-timeout: {v:?} is not a number of seconds"))?;
                o.keepalive = Duration::from_secs(secs);
            }
            "-d" | "--log-level" => {
                let v = value("--log-level")?;
                o.level = v
                    .parse()
                    .map_err(|_| format!("--log-level: {v:?} is not one of error, warn, info, debug, trace"))?;
            }
            other => return Err(format!("unknown option {other:?} (try --help)")),
        }
    }
    Ok(Parsed::Run(o))
}

fn run(o: Options) -> Result<(), String> {
    let root = o.root.clone().unwrap_or_else(|| PathBuf::from(DEFAULT_ROOT));
    if !root.is_dir() {
        return Err(format!("--root: {} is not a directory", root.display()));
    }
    let fops = PlainFops::new(&root)
        .map_err(|e| format!("--root: {}: {e}", root.display()))?
        .with_open_cache(OPEN_CACHE_TTL, OPEN_CACHE_FILES);
    let addr = SocketAddr::new(o.bind, o.port);
    let vhost = VhostInfo::new("default", addr).keepalive_timeout(o.keepalive).mount(Mount::files("/", Arc::new(fops)));
    let context = Context::new(ContextInfo::new().vhost(vhost)).map_err(|e| e.to_string())?;
    let local = context.local_addr(0).unwrap_or(addr);
    log::info!("warren {} serving {} on http://{local}/", env!("CARGO_PKG_VERSION"), root.display());
    context.run().map_err(|e| format!("service loop failed: {e}"))
}

fn main() -> ExitCode {
    let parsed = match parse(std::env::args().skip(1)) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("warren: {e}");
            return ExitCode::from(2);
        }
    };
    let o = match parsed {
        Parsed::Exit(text) => {
            print!("{text}");
            return ExitCode::SUCCESS;
        }
        Parsed::Run(o) => o,
    };
    StderrLog::install(o.level);
    match run(o) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("warren: {e}");
            ExitCode::from(2)
        }
    }
}

/// Log records to stderr, one line each: `LEVEL target: message`.
struct StderrLog;

impl StderrLog {
    fn install(level: log::LevelFilter) {
        static LOGGER: StderrLog = StderrLog;
        if log::set_logger(&LOGGER).is_ok() {
            log::set_max_level(level);
        }
    }
}

impl log::Log for StderrLog {
    fn enabled(&self, m: &log::Metadata<'_>) -> bool {
        m.level() <= log::max_level()
    }

    fn log(&self, r: &log::Record<'_>) {
        if self.enabled(r.metadata()) {
            eprintln!("{:<5} {}: {}", r.level(), r.target(), r.args());
        }
    }

    fn flush(&self) {}
}
