//! ws-load: WebSocket echo load client.
//!
//! Opens C connections to a ws:// URL, then each connection runs round trips
//! one after another: it sends one binary message of S bytes, waits for the
//! echo, checks it (length, first, middle and last byte; the first and last
//! bytes carry a per-message counter so a stale or reordered echo is caught)
//! and records the latency. The first `--warmup` seconds (default 1) are not
//! counted; then it measures for D seconds and prints one line:
//!
//! ```text
//! ws-load: c=100 s=1024 secs=10.00 msgs=... msgs/s=... MiB/s=... p50_us=... p90_us=... p99_us=... max_us=... errors=0 client_cpu=0.93 conns=100
//! ```
//!
//! MiB/s is echoed payload per second in one direction (msgs/s × S / 2^20).
//! client_cpu is this process's CPU time over the measured window divided by
//! its length (1.00 = one core busy: the client may be the limit).
//! Every step has a timeout (`--timeout`, default 10 s, for the connect plus
//! handshake and for each round trip); a connection that fails stops and
//! counts one error. Exit status: 0 when every connection ran without error
//! and messages were counted, 1 otherwise, 2 for bad usage.
//!
//! One thread: a tokio current_thread runtime.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::sync::Semaphore;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::Message;
use ws_load::{cpu_seconds, parse_num, raise_nofile, usage_error, CommonArgs, Target, Ws};

const PROG: &str = "ws-load";
const USAGE: &str = "ws-load ws://HOST:PORT/PATH [-c CONNS] [-s BYTES] [-d SECS] [--warmup SECS] \
[--protocol NAME] [--timeout SECS]\n  defaults: -c 100 -s 1024 -d 10 --warmup 1 --timeout 10";

/// Handshakes in flight at once while opening connections.
const CONNECT_CONCURRENCY: usize = 256;

struct Opts {
    url: String,
    conns: usize,
    size: usize,
    secs: f64,
    warmup: f64,
    protocol: Option<String>,
    timeout: f64,
}

fn parse_args() -> Opts {
    let mut o =
        Opts { url: String::new(), conns: 100, size: 1024, secs: 10.0, warmup: 1.0, protocol: None, timeout: 10.0 };
    let mut common = CommonArgs::default();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "-c" | "--connections" => o.conns = parse_num(PROG, USAGE, &a, args.next()),
            "-s" | "--size" => o.size = parse_num(PROG, USAGE, &a, args.next()),
            "-d" | "--duration" => o.secs = parse_num(PROG, USAGE, &a, args.next()),
            "--warmup" => o.warmup = parse_num(PROG, USAGE, &a, args.next()),
            "--timeout" => o.timeout = parse_num(PROG, USAGE, &a, args.next()),
            _ => common.take(PROG, USAGE, "URL", &a, &mut args),
        }
    }
    o.url = common.positional(PROG, USAGE, "URL");
    o.protocol = common.protocol;
    if o.conns == 0 || o.size == 0 {
        usage_error(PROG, "-c and -s must be at least 1", USAGE);
    }
    let ok = |x: f64| (0.0..1e6).contains(&x);
    if !ok(o.secs) || o.secs == 0.0 || !ok(o.warmup) || !ok(o.timeout) || o.timeout == 0.0 {
        usage_error(PROG, "-d and --timeout must be positive, --warmup not negative", USAGE);
    }
    o
}

/// What one connection did.
struct ConnResult {
    /// Latencies (µs) of the round trips completed inside the measured window.
    lat: Vec<u32>,
    error: Option<String>,
}

/// The payload for message number `k`: the template with the counter in the
/// first byte and its complement in the last.
fn stamp(template: &[u8], k: u64) -> Vec<u8> {
    let mut v = template.to_vec();
    let n = v.len();
    v[0] = k as u8;
    if n > 1 {
        v[n - 1] = !(k as u8);
    }
    v
}

fn check_echo(template: &[u8], k: u64, got: &[u8]) -> Result<(), String> {
    let n = template.len();
    if got.len() != n {
        return Err(format!("echo of {n} bytes came back with {}", got.len()));
    }
    let mid = n / 2;
    let ok = got[0] == k as u8
        && (n == 1 || got[n - 1] == !(k as u8))
        && (mid == 0 || mid == n - 1 || got[mid] == template[mid]);
    if ok {
        Ok(())
    } else {
        Err(format!("echo of message {k} has the wrong content"))
    }
}

/// One round trip: send, then read until a data message arrives.
async fn round_trip(ws: &mut Ws, payload: Vec<u8>) -> Result<tokio_tungstenite::tungstenite::Bytes, String> {
    ws.send(Message::binary(payload)).await.map_err(|e| format!("send: {e}"))?;
    loop {
        match ws.next().await {
            Some(Ok(Message::Binary(b))) => return Ok(b),
            Some(Ok(Message::Text(t))) => return Err(format!("binary message echoed as text ({} bytes)", t.len())),
            Some(Ok(Message::Close(f))) => {
                return Err(match f {
                    Some(f) => format!("server closed the connection: {} {}", f.code, f.reason),
                    None => "server closed the connection (close frame, no code)".into(),
                })
            }
            Some(Ok(_)) => continue, // ping (answered by tungstenite), pong
            Some(Err(e)) => return Err(format!("receive: {e}")),
            None => return Err("connection closed without a close frame".into()),
        }
    }
}

async fn run_conn(
    mut ws: Ws,
    template: Arc<Vec<u8>>,
    warm_end: Instant,
    end: Instant,
    rt_limit: Duration,
) -> ConnResult {
    let mut lat = Vec::new();
    let mut k: u64 = 0;
    let mut error = None;
    while Instant::now() < end {
        let payload = stamp(&template, k);
        let t0 = Instant::now();
        let r = match timeout(rt_limit, round_trip(&mut ws, payload)).await {
            Ok(r) => r,
            Err(_) => Err(format!("no echo within {} s (message {k})", rt_limit.as_secs_f64())),
        };
        let done = Instant::now();
        if let Err(e) = r.and_then(|b| check_echo(&template, k, &b)) {
            error = Some(e);
            break;
        }
        if done >= warm_end && done < end {
            let us = done.duration_since(t0).as_micros();
            lat.push(u32::try_from(us).unwrap_or(u32::MAX));
        }
        k += 1;
    }
    if error.is_none() {
        // Polite close; do not wait long for the server's answer.
        let _ = timeout(Duration::from_secs(1), ws.close(None)).await;
    }
    ConnResult { lat, error }
}

fn percentile(sorted: &[u32], p: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

async fn run(o: Opts) -> i32 {
    let target = match Target::new(&o.url, o.protocol.as_deref()) {
        Ok(t) => Arc::new(t),
        Err(e) => usage_error(PROG, &e, USAGE),
    };
    let limit = raise_nofile(o.conns as u64);
    if limit != 0 && limit < o.conns as u64 + 16 {
        eprintln!("{PROG}: warning: open-file limit {limit} is below {} connections", o.conns);
    }
    let rt_limit = Duration::from_secs_f64(o.timeout);

    // Open every connection first; traffic starts when all attempts are done.
    let sem = Arc::new(Semaphore::new(CONNECT_CONCURRENCY));
    let mut opening = Vec::with_capacity(o.conns);
    for _ in 0..o.conns {
        let (target, sem) = (target.clone(), sem.clone());
        opening.push(tokio::spawn(async move {
            let _permit = sem.acquire().await;
            target.connect(rt_limit).await
        }));
    }
    let mut conns = Vec::with_capacity(o.conns);
    let mut errors: Vec<String> = Vec::new();
    for h in opening {
        match h.await {
            Ok(Ok(ws)) => conns.push(ws),
            Ok(Err(e)) => errors.push(e),
            Err(e) => errors.push(format!("connect task: {e}")),
        }
    }
    let opened = conns.len();

    let template: Arc<Vec<u8>> =
        Arc::new((0..o.size).map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[3]).collect());
    let start = Instant::now();
    let warm_end = start + Duration::from_secs_f64(o.warmup);
    let end = warm_end + Duration::from_secs_f64(o.secs);
    let mut running = Vec::with_capacity(opened);
    for ws in conns {
        running.push(tokio::spawn(run_conn(ws, template.clone(), warm_end, end, rt_limit)));
    }
    let (mut cpu0, mut cpu1) = (0.0, 0.0);
    if !running.is_empty() {
        tokio::time::sleep_until(warm_end.into()).await;
        cpu0 = cpu_seconds();
        tokio::time::sleep_until(end.into()).await;
        cpu1 = cpu_seconds();
    }

    // Each connection stops by itself within one round-trip timeout (plus
    // its 1 s close) after the end; this bound only guards against a bug.
    let collect = async {
        let mut out = Vec::with_capacity(running.len());
        for h in running {
            out.push(h.await);
        }
        out
    };
    let results = match timeout(rt_limit + Duration::from_secs(5), collect).await {
        Ok(r) => r,
        Err(_) => {
            eprintln!("{PROG}: connections did not stop within the timeout; giving up");
            return 1;
        }
    };
    let mut lat: Vec<u32> = Vec::new();
    for r in results {
        match r {
            Ok(c) => {
                lat.extend_from_slice(&c.lat);
                if let Some(e) = c.error {
                    errors.push(e);
                }
            }
            Err(e) => errors.push(format!("connection task: {e}")),
        }
    }
    lat.sort_unstable();
    let msgs = lat.len() as u64;
    let rate = msgs as f64 / o.secs;
    let mib = rate * o.size as f64 / 1_048_576.0;
    println!(
        "{PROG}: c={} s={} secs={:.2} msgs={} msgs/s={:.1} MiB/s={:.2} p50_us={} p90_us={} p99_us={} max_us={} errors={} client_cpu={:.2} conns={}",
        o.conns,
        o.size,
        o.secs,
        msgs,
        rate,
        mib,
        percentile(&lat, 0.50),
        percentile(&lat, 0.90),
        percentile(&lat, 0.99),
        lat.last().copied().unwrap_or(0),
        errors.len(),
        (cpu1 - cpu0) / o.secs,
        opened,
    );
    for e in errors.iter().take(5) {
        eprintln!("{PROG}: error: {e}");
    }
    if errors.len() > 5 {
        eprintln!("{PROG}: ... and {} more errors", errors.len() - 5);
    }
    if msgs == 0 {
        eprintln!("{PROG}: no round trip completed in the measured window");
    }
    i32::from(!errors.is_empty() || msgs == 0)
}

fn main() {
    let o = parse_args();
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("{PROG}: cannot start the runtime: {e}");
            std::process::exit(1);
        }
    };
    let code = rt.block_on(run(o));
    std::process::exit(code);
}
