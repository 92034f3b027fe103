//! `warren`: serve a directory (by default the built-in site) over HTTP.
//!
//! Run `warren --help` for the flags.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use warren::vfs::{Fops, ZipFops};
use warren::{Context, ContextInfo, Mount, VhostInfo};

const USAGE: &str = "\
warren - serve a site over HTTP

USAGE:
    warren [OPTIONS]
    warren pack DIR OUT.zip

With no options, serves the built-in default site on http://127.0.0.1:7681/.
`warren pack` writes the files below DIR into a zip archive made for
serving with --root OUT.zip.

OPTIONS:
    --config DIR               serve what the lwsws-style configuration in DIR
                               (DIR/conf and DIR/conf.d/*) describes
    --root PATH                serve PATH at /: a directory (zip archives in it
                               are served from inside: /a.zip/x.html), or a
                               .zip archive served as the whole site
    --cgi MOUNTPOINT=PATH      run CGI programs at MOUNTPOINT: PATH is a program
                               (it gets the rest of the URL as PATH_INFO, e.g.
                               /usr/bin/php-cgi) or a directory of programs;
                               may be given more than once
    --port N                   listen on port N (default 7681; 0 = any free port)
    --bind ADDR                listen on IP address ADDR (default 127.0.0.1)
    --keepalive-timeout SECS   idle keep-alive timeout (default 5)
    -d, --log-level LEVEL      error, warn, info, debug or trace (default info)
    -h, --help                 print this help
    --version                  print the version
";

/// The site `warren` serves when given no `--root`: the project's
/// `webroot/`, packed into a zip by build.rs and compiled in.
static DEFAULT_SITE: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/webroot.zip"));

struct Options {
    config: Option<PathBuf>,
    root: Option<PathBuf>,
    cgi: Vec<(String, PathBuf)>,
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
        config: None,
        root: None,
        cgi: Vec::new(),
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
            "--config" => o.config = Some(PathBuf::from(value("--config")?)),
            "--cgi" => {
                let v = value("--cgi")?;
                let Some((mountpoint, path)) = v.split_once('=').filter(|(_, p)| !p.is_empty()) else {
                    return Err(format!("--cgi: {v:?} is not MOUNTPOINT=PATH (e.g. /cgi-bin=./cgi-bin)"));
                };
                if !mountpoint.starts_with('/') {
                    return Err(format!("--cgi: the mountpoint {mountpoint:?} must start with '/' (e.g. /cgi-bin)"));
                }
                let meta = std::fs::metadata(path).map_err(|e| format!("--cgi: {path}: {e}"))?;
                use std::os::unix::fs::PermissionsExt;
                if meta.is_file() && meta.permissions().mode() & 0o111 == 0 {
                    return Err(format!("--cgi: {path} is a file but not executable"));
                }
                if !meta.is_file() && !meta.is_dir() {
                    return Err(format!("--cgi: {path} is neither a program nor a directory"));
                }
                o.cgi.push((mountpoint.to_string(), PathBuf::from(path)));
            }
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

/// The filesystem for `--root PATH`, or the built-in site.
fn site(root: Option<&Path>) -> Result<(Arc<dyn Fops>, String), String> {
    match root {
        None => {
            let fops = ZipFops::from_bytes("webroot.zip (built in)", DEFAULT_SITE).map_err(|e| e.to_string())?;
            Ok((Arc::new(fops), "the built-in site".into()))
        }
        Some(root) => {
            let fops = warren::default_fops(root).map_err(|e| format!("--root: {e}"))?;
            Ok((fops, root.display().to_string()))
        }
    }
}

/// Run `context` until SIGTERM, SIGINT or SIGHUP, which stop it cleanly:
/// CGI programs still running, and what programs left running in their
/// process groups, are then ended before warren exits. The signals are
/// blocked in every thread (the mask is set before any starts; CGI
/// programs get a clear mask) and taken by one thread that waits for them.
fn serve(context: Context, stop_set: libc::sigset_t) -> Result<(), String> {
    let handle = context.handle();
    let waiter = std::thread::Builder::new().name("signals".into()).spawn(move || {
        let mut sig = 0;
        // SAFETY: sigwait reads the set and writes the signal number.
        if unsafe { libc::sigwait(&stop_set, &mut sig) } == 0 {
            log::info!("signal {sig}: stopping");
            handle.stop();
        }
    });
    if let Err(e) = waiter {
        log::warn!("cannot start the signal thread ({e}); SIGTERM will not stop warren cleanly");
    }
    context.run().map_err(|e| format!("service loop failed: {e}"))
}

/// Blocks SIGTERM, SIGINT and SIGHUP in this thread (and so in every
/// thread started after), returning the set for `serve`.
fn block_stop_signals() -> libc::sigset_t {
    // SAFETY: sigset_t is plain data, filled by sigemptyset/sigaddset;
    // pthread_sigmask only reads it.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for sig in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
            libc::sigaddset(&mut set, sig);
        }
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    }
}

fn run(o: Options) -> Result<(), String> {
    let stop_set = block_stop_signals();
    if let Some(dir) = &o.config {
        if o.root.is_some() {
            return Err("--config and --root cannot be used together".into());
        }
        let info = warren::config::load_dir(dir).map_err(|e| e.to_string())?;
        let context = Context::new(info).map_err(|e| format!("{}: {e}", dir.display()))?;
        let addrs: Vec<String> = (0..).map_while(|i| context.local_addr(i)).map(|a| a.to_string()).collect();
        log::info!("warren {} serving {} on {}", env!("CARGO_PKG_VERSION"), dir.display(), addrs.join(", "));
        return serve(context, stop_set);
    }
    let (fops, what) = site(o.root.as_deref())?;
    let addr = SocketAddr::new(o.bind, o.port);
    let mut vhost = VhostInfo::new("default", addr)
        .keepalive_timeout(o.keepalive)
        .mount(Mount::files("/", fops))
        .mount(Mount::callback("/formtest", warren::plugins::post_demo::NAME))
        // Upgrades that name no subprotocol get the echo (what the
        // Autobahn suite and quick tests with a bare client expect).
        .default_protocol(warren::plugins::echo::NAME);
    for name in warren::plugins::NAMES {
        vhost.plugin(name);
    }
    for (mountpoint, path) in &o.cgi {
        vhost = vhost.mount(Mount::cgi(mountpoint, path));
    }
    let context = Context::new(ContextInfo::new().vhost(vhost)).map_err(|e| e.to_string())?;
    let local = context.local_addr(0).unwrap_or(addr);
    log::info!("warren {} serving {what} on http://{local}/", env!("CARGO_PKG_VERSION"));
    serve(context, stop_set)
}

/// `warren pack DIR OUT.zip`: prints each file and the totals.
fn pack(args: &[String]) -> Result<(), String> {
    let [dir, out] = args else {
        return Err("pack needs two arguments: DIR OUT.zip".into());
    };
    let dir = Path::new(dir);
    if !dir.is_dir() {
        return Err(format!("pack: {} is not a directory", dir.display()));
    }
    // Write beside the target, then rename: a half-written archive is
    // never served.
    let out = Path::new(out);
    let tmp = out.with_extension("zip.partial");
    let file = std::fs::File::create(&tmp).map_err(|e| format!("pack: {}: {e}", tmp.display()))?;
    let report = match warren::pack::pack_dir(dir, std::io::BufWriter::new(file)) {
        Ok(r) => r,
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(format!("pack: {e}"));
        }
    };
    std::fs::rename(&tmp, out).map_err(|e| format!("pack: {}: {e}", out.display()))?;
    let (mut size, mut packed) = (0u64, 0u64);
    for p in &report {
        let how = if p.deflated { "deflated" } else { "stored" };
        println!("{:>10} -> {:>10}  {:>4}  {how:<8}  {}", p.size, p.packed, percent(p.packed, p.size), p.name);
        size += p.size;
        packed += p.packed;
    }
    println!(
        "packed {} files: {size} -> {packed} bytes ({}) into {}",
        report.len(),
        percent(packed, size),
        out.display()
    );
    Ok(())
}

fn percent(part: u64, whole: u64) -> String {
    if whole == 0 {
        return "-".into();
    }
    format!("{}%", part * 100 / whole)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("pack") {
        return match pack(&args[1..]) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("warren: {e}");
                ExitCode::from(2)
            }
        };
    }
    let parsed = match parse(args) {
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
