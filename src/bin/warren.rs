//! `warren`: serve a directory (by default the built-in site) over HTTP.
//!
//! Run `warren --help` for the flags.

use std::io::ErrorKind;
use std::net::{IpAddr, Ipv6Addr, SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use warren::tls::{PlainOnTls, TlsConfig};
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
    --bind ADDR                listen on ADDR: an IP address (127.0.0.1, ::1 or
                               [::1], :: for every address), or a host name,
                               for all the addresses it resolves to; may be
                               given more than once (default 127.0.0.1)
    --keepalive-timeout SECS   idle keep-alive timeout (default 5)
    --tls-cert FILE            serve HTTPS (and wss://) with the PEM certificate
                               chain in FILE (leaf first), with --tls-key
    --tls-key FILE             the PEM private key of --tls-cert (RSA, ECDSA
                               P-256/P-384 or Ed25519)
    --redirect-http            with --tls-cert: answer plain HTTP sent to the
                               TLS port with 301 to the https:// URL
    -d, --log-level LEVEL      error, warn, info, debug or trace (default info)
    -h, --help                 print this help (`warren pack --help`: pack's)
    -V, --version              print the version
";

const PACK_USAGE: &str = "\
warren pack - pack a directory into a zip archive made for serving

USAGE:
    warren pack DIR OUT.zip

Writes every file below DIR into OUT.zip, each deflated (level 9) unless
that does not make it smaller, and prints each file and the totals. Serve
the archive with `warren --root OUT.zip`: deflated entries go to clients
that accept gzip as they are stored.

Symbolic links are followed while they stay inside DIR; one that leads
outside it refuses the whole pack, as serving DIR would refuse the link.
The archive is written to OUT.zip.partial and renamed when complete, so a
failed pack leaves no archive and keeps an existing OUT.zip. When OUT.zip
is inside DIR, it and its .partial are left out of the archive.

OPTIONS:
    -h, --help    print this help
";

/// The site `warren` serves when given no `--root`: the project's
/// `webroot/`, packed into a zip by build.rs and compiled in.
static DEFAULT_SITE: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/webroot.zip"));

struct Options {
    config: Option<PathBuf>,
    root: Option<PathBuf>,
    cgi: Vec<(String, PathBuf)>,
    port: u16,
    bind: Vec<String>,
    keepalive: Duration,
    level: log::LevelFilter,
    tls: Option<(PathBuf, PathBuf)>,
    redirect_http: bool,
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
        bind: Vec::new(),
        keepalive: Duration::from_secs(5),
        level: log::LevelFilter::Info,
        tls: None,
        redirect_http: false,
    };
    let (mut tls_cert, mut tls_key) = (None, None);
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
            "-V" | "--version" => return Ok(Parsed::Exit(concat!("warren ", env!("CARGO_PKG_VERSION"), "\n"))),
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
            "--bind" => o.bind.push(value("--bind")?),
            "--tls-cert" => tls_cert = Some(PathBuf::from(value("--tls-cert")?)),
            "--tls-key" => tls_key = Some(PathBuf::from(value("--tls-key")?)),
            "--redirect-http" => o.redirect_http = true,
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
    o.tls = match (tls_cert, tls_key) {
        (Some(c), Some(k)) => Some((c, k)),
        (None, None) if o.redirect_http => return Err("--redirect-http needs --tls-cert and --tls-key".into()),
        (None, None) => None,
        (Some(_), None) => return Err("--tls-cert needs --tls-key".into()),
        (None, Some(_)) => return Err("--tls-key needs --tls-cert".into()),
    };
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
    stop_on_signals(context.handle(), stop_set);
    context.run().map_err(|e| format!("service loop failed: {e}"))
}

/// Starts the thread that waits for a stop signal and stops `handle`'s
/// loop when one comes.
fn stop_on_signals(handle: warren::ContextHandle, stop_set: libc::sigset_t) {
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

fn run(mut o: Options) -> Result<(), String> {
    let stop_set = block_stop_signals();
    if let Some(dir) = &o.config {
        if o.root.is_some() {
            return Err("--config and --root cannot be used together".into());
        }
        let info = warren::config::load_dir(dir).map_err(|e| e.to_string())?;
        let context = Context::new(info).map_err(|e| format!("{}: {e}", dir.display()))?;
        let mut addrs: Vec<String> = Vec::new();
        for a in (0..).map_while(|i| context.local_addr(i)).map(|a| a.to_string()) {
            // Vhosts sharing an address are one listener: say it once.
            if !addrs.contains(&a) {
                addrs.push(a);
            }
        }
        log::info!("warren {} serving {} on {}", env!("CARGO_PKG_VERSION"), dir.display(), addrs.join(", "));
        return serve(context, stop_set);
    }
    let (fops, what) = site(o.root.as_deref())?;
    if o.bind.is_empty() {
        o.bind.push("127.0.0.1".into());
    }
    let mut addrs: Vec<(SocketAddr, bool)> = Vec::new();
    for v in &o.bind {
        for a in bind_addrs(v, o.port)? {
            if !addrs.iter().any(|(b, _)| *b == a.0) {
                addrs.push(a);
            }
        }
    }
    let vhost_on = |addr: SocketAddr| {
        let mut vhost = VhostInfo::new("default", addr)
            .keepalive_timeout(o.keepalive)
            .mount(Mount::files("/", fops.clone()))
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
        if let Some((cert, key)) = &o.tls {
            let plain = if o.redirect_http { PlainOnTls::Redirect } else { PlainOnTls::Drop };
            vhost = vhost.tls(TlsConfig::from_pem_files(cert, key)).plain_on_tls(plain);
        }
        vhost
    };
    let scheme = if o.tls.is_some() { "https" } else { "http" };
    // An address a host name resolves to but the machine lacks (::1 with
    // IPv6 off) is skipped with a warning, if another one is bound.
    let skippable = |e: &warren::Error, named: bool, left: usize| {
        named && left > 0 && e.io_error().is_some_and(|e| e.kind() == ErrorKind::AddrNotAvailable)
    };
    let mut pending = addrs.into_iter();
    let (context, first) = loop {
        let Some((addr, named)) = pending.next() else { return Err("--bind: no address to listen on".into()) };
        match Context::new(ContextInfo::new().vhost(vhost_on(addr))) {
            Ok(c) => break (c, addr),
            Err(e) if skippable(&e, named, pending.len()) => log::warn!("--bind: skipping {addr}: {e}"),
            Err(e) => return Err(e.to_string()),
        }
    };
    let mut bound = vec![context.local_addr(0).unwrap_or(first)];
    let serving = |addrs: &[SocketAddr]| {
        for a in addrs {
            log::info!("warren {} serving {what} on {scheme}://{a}/", env!("CARGO_PKG_VERSION"));
        }
    };
    if pending.len() == 0 {
        serving(&bound);
        return serve(context, stop_set);
    }
    // The other addresses join the running loop, on the port the first
    // got (so that --port 0 means one port for all of them).
    let port = bound[0].port();
    let handle = context.handle();
    stop_on_signals(handle.clone(), stop_set);
    let service = std::thread::spawn(move || context.run());
    let mut failed = None;
    for (addr, named) in pending {
        let addr = SocketAddr::new(addr.ip(), port);
        let answer = handle.add_vhost(vhost_on(addr));
        let result = loop {
            match answer.recv_timeout(Duration::from_millis(100)) {
                Ok(r) => break Ok(r),
                Err(_) if service.is_finished() => break Err("the service loop ended".to_string()),
                Err(_) => {}
            }
        };
        match result {
            Ok(Ok(local)) => bound.push(local),
            // One address is bound already.
            Ok(Err(e)) if skippable(&e, named, 1) => {
                log::warn!("--bind: skipping {addr}: {e}");
            }
            Ok(Err(e)) => {
                failed = Some(e.to_string());
                break;
            }
            Err(e) => {
                failed = Some(e);
                break;
            }
        }
    }
    if failed.is_none() {
        serving(&bound);
    } else {
        handle.stop();
    }
    let ended = match service.join() {
        Ok(r) => r.map_err(|e| format!("service loop failed: {e}")),
        Err(_) => Err("service loop panicked".into()),
    };
    match failed {
        Some(e) => Err(e),
        None => ended,
    }
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
    let mut tmp = out.as_os_str().to_owned();
    tmp.push(".partial");
    let tmp = PathBuf::from(tmp);
    // Made anew, never opened through what is there: a link planted at
    // OUT.partial (in a directory others can write) must not turn the
    // pack into a write to its target. Removing a link removes the link.
    match std::fs::remove_file(&tmp) {
        Err(e) if e.kind() != ErrorKind::NotFound => return Err(format!("pack: {}: {e}", tmp.display())),
        _ => {}
    }
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp)
        .map_err(|e| format!("pack: {}: {e}", tmp.display()))?;
    // The archive may be inside DIR: it and the one it replaces are not
    // part of the site.
    let mut writer = std::io::BufWriter::new(file);
    let packed = warren::pack::pack_dir_except(dir, &mut writer, &[&tmp, out]);
    let flushed = std::io::Write::flush(&mut writer)
        .map_err(|e| warren::Error::from(std::io::Error::new(e.kind(), format!("{}: {e}", tmp.display()))));
    drop(writer);
    let report = match packed.and_then(|r| flushed.map(|()| r)) {
        Ok(r) => r,
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(format!("pack refused, no archive written: {e}"));
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
        if args[1..].iter().any(|a| a == "-h" || a == "--help") {
            print!("{PACK_USAGE}");
            return ExitCode::SUCCESS;
        }
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
        Err(e) if e.contains("(os error 24)") => {
            // EMFILE before the limit could even be judged.
            eprintln!("warren: {e}: the file descriptor limit is too low to start; raise it (ulimit -n)");
            ExitCode::from(2)
        }
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

/// The longest log line's message, in bytes.
const MAX_LOG_LINE: usize = 1024;

impl log::Log for StderrLog {
    fn enabled(&self, m: &log::Metadata<'_>) -> bool {
        m.level() <= log::max_level()
    }

    /// One line per record, cut at [`MAX_LOG_LINE`] bytes: what a client
    /// sends (a 60 KB SNI a dependency quotes in a warning) cannot write
    /// kilobytes per connection. rustls's warnings are about what clients
    /// did wrong (a bad SNI, a renegotiation attempt): debug, not warn,
    /// unless the level asks for them.
    fn log(&self, r: &log::Record<'_>) {
        if !self.enabled(r.metadata()) {
            return;
        }
        if r.target().starts_with("rustls")
            && r.level() > log::Level::Error
            && log::max_level() < log::LevelFilter::Debug
        {
            return;
        }
        let mut text = r.args().to_string();
        if text.len() > MAX_LOG_LINE {
            let mut cut = MAX_LOG_LINE;
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            let more = text.len() - cut;
            text.truncate(cut);
            text.push_str(&format!("... ({more} bytes more)"));
        }
        eprintln!("{:<5} {}: {}", r.level(), r.target(), text);
    }

    fn flush(&self) {}
}
