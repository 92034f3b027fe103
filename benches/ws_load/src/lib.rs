//! Shared pieces of the WebSocket load tools: argument helpers, the client
//! connect path (TCP with a timeout, then the opening handshake with a
//! timeout), the file-descriptor limit and the process CPU clock.

use std::time::Duration;

use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::client::Request;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::WebSocketStream;

/// A connected client socket.
pub type Ws = WebSocketStream<TcpStream>;

/// Prints `PROG: MSG` to stderr and exits with status 2 (bad usage).
pub fn usage_error(prog: &str, msg: &str, usage: &str) -> ! {
    eprintln!("{prog}: {msg}\nusage: {usage}");
    std::process::exit(2);
}

/// Parses a flag's value, exiting with a usage error naming the flag.
pub fn parse_num<T: std::str::FromStr>(prog: &str, usage: &str, flag: &str, v: Option<String>) -> T {
    let Some(v) = v else { usage_error(prog, &format!("{flag} needs a value"), usage) };
    v.parse().unwrap_or_else(|_| usage_error(prog, &format!("{flag}: not a valid number: '{v}'"), usage))
}

/// What the tools' command lines share: `--protocol NAME`, `-h`/`--help`,
/// and one positional argument.
#[derive(Debug, Default)]
pub struct CommonArgs {
    /// The positional argument (a URL, or a listen address).
    pub positional: Option<String>,
    /// `--protocol NAME`.
    pub protocol: Option<String>,
}

impl CommonArgs {
    /// Takes `a` (and its value from `args`), which is none of the tool's
    /// own flags; `what` names the positional argument in errors.
    pub fn take(&mut self, prog: &str, usage: &str, what: &str, a: &str, args: &mut impl Iterator<Item = String>) {
        match a {
            "--protocol" => {
                self.protocol =
                    Some(args.next().unwrap_or_else(|| usage_error(prog, "--protocol needs a value", usage)))
            }
            "-h" | "--help" => {
                println!("usage: {usage}");
                std::process::exit(0);
            }
            s if s.starts_with('-') => usage_error(prog, &format!("unknown option '{s}'"), usage),
            s => {
                if self.positional.replace(s.to_string()).is_some() {
                    usage_error(prog, &format!("more than one {what}"), usage)
                }
            }
        }
    }

    /// The positional argument, or a usage error saying it is missing.
    pub fn positional(&mut self, prog: &str, usage: &str, what: &str) -> String {
        self.positional.take().unwrap_or_else(|| usage_error(prog, &format!("no {what} given"), usage))
    }
}

/// Where to connect and what to send for the opening handshake.
#[derive(Debug, Clone)]
pub struct Target {
    /// `host:port` for the TCP connect.
    pub addr: String,
    /// The handshake request (URL, Host, optional Sec-WebSocket-Protocol).
    pub request: Request,
}

impl Target {
    /// `url` must be `ws://HOST[:PORT]/PATH`; `protocol` is offered as the
    /// only subprotocol when given.
    pub fn new(url: &str, protocol: Option<&str>) -> Result<Self, String> {
        if !url.starts_with("ws://") {
            return Err(format!("'{url}': only ws:// URLs are supported"));
        }
        let mut request = url.into_client_request().map_err(|e| format!("'{url}': {e}"))?;
        let uri = request.uri();
        let host = uri.host().ok_or_else(|| format!("'{url}': no host"))?.to_string();
        let port = uri.port_u16().unwrap_or(80);
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let addr = if host.contains(':') { format!("[{host}]:{port}") } else { format!("{host}:{port}") };
        if let Some(p) = protocol {
            let v = HeaderValue::from_str(p).map_err(|_| format!("bad subprotocol name '{p}'"))?;
            request.headers_mut().insert("Sec-WebSocket-Protocol", v);
        }
        Ok(Target { addr, request })
    }

    /// TCP connect (TCP_NODELAY) and opening handshake, both within `limit`.
    pub async fn connect(&self, limit: Duration) -> Result<Ws, String> {
        let fut = async {
            let tcp = TcpStream::connect(&self.addr).await.map_err(|e| format!("connect {}: {e}", self.addr))?;
            tcp.set_nodelay(true).map_err(|e| format!("TCP_NODELAY: {e}"))?;
            let cfg = WebSocketConfig::default();
            let (ws, _resp) = tokio_tungstenite::client_async_with_config(self.request.clone(), tcp, Some(cfg))
                .await
                .map_err(|e| format!("handshake with {}: {e}", self.addr))?;
            Ok(ws)
        };
        match tokio::time::timeout(limit, fut).await {
            Ok(r) => r,
            Err(_) => Err(format!("connect and handshake with {} took over {} s", self.addr, limit.as_secs_f64())),
        }
    }
}

/// Raises RLIMIT_NOFILE so that `need` sockets fit (up to the hard limit,
/// or past it when running as root). Returns the soft limit in force.
pub fn raise_nofile(need: u64) -> u64 {
    let want = need + 64;
    let mut rl = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit only read or write the struct passed.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) != 0 {
            return 0;
        }
        if rl.rlim_cur >= want {
            return rl.rlim_cur;
        }
        let mut new = rl;
        new.rlim_cur = want;
        if new.rlim_max < want {
            new.rlim_max = want;
        }
        if libc::setrlimit(libc::RLIMIT_NOFILE, &new) == 0 {
            return want;
        }
        new.rlim_cur = rl.rlim_max;
        new.rlim_max = rl.rlim_max;
        if libc::setrlimit(libc::RLIMIT_NOFILE, &new) == 0 {
            return rl.rlim_max;
        }
        rl.rlim_cur
    }
}

/// User plus system CPU time of this process, in seconds.
pub fn cpu_seconds() -> f64 {
    // SAFETY: getrusage writes into the zeroed struct passed.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } != 0 {
        return 0.0;
    }
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}
