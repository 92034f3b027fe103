//! ws-idle: opens N WebSocket connections and holds them idle, for measuring
//! a server's memory per idle WebSocket connection.
//!
//! Each connection does the opening handshake and then (unless `--no-echo`)
//! one round trip of a 16-byte binary message, so the server has seen the
//! connection in use; then it stays open without sending anything. When all N
//! are in that state it prints `ready` on stdout, then waits until its stdin
//! reaches end of file or HOLD seconds have passed, whichever comes first,
//! answering pings meanwhile. Then it reports how many connections the server
//! closed while they were idle, `closed N dropped_while_idle D`, closes them
//! all (close frame, 1 s at most) and exits 0.
//!
//! On any failure while opening, it prints `error after K connections: ...`
//! and exits 1. Every connect, handshake and echo is bounded by `--timeout`
//! (default 10 s). Same protocol on stdin and stdout as `idle_conns.py`.
//!
//! One thread: a tokio current_thread runtime (a plain thread waits on stdin).

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::sync::{watch, Semaphore};
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::Message;
use ws_load::{parse_num, raise_nofile, usage_error, CommonArgs, Target, Ws};

const PROG: &str = "ws-idle";
const USAGE: &str = "ws-idle ws://HOST:PORT/PATH [-n CONNS] [-t HOLD_SECS] [--protocol NAME] \
[--no-echo] [--timeout SECS]\n  defaults: -n 1000 -t 60 --timeout 10";

/// Connections being opened at once (keeps the server's accept backlog short).
const OPEN_CONCURRENCY: usize = 64;

struct Opts {
    url: String,
    count: usize,
    hold: f64,
    protocol: Option<String>,
    echo: bool,
    timeout: f64,
}

fn parse_args() -> Opts {
    let mut o = Opts { url: String::new(), count: 1000, hold: 60.0, protocol: None, echo: true, timeout: 10.0 };
    let mut common = CommonArgs::default();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "-n" => o.count = parse_num(PROG, USAGE, &a, args.next()),
            "-t" | "--hold" => o.hold = parse_num(PROG, USAGE, &a, args.next()),
            "--timeout" => o.timeout = parse_num(PROG, USAGE, &a, args.next()),
            "--no-echo" => o.echo = false,
            _ => common.take(PROG, USAGE, "URL", &a, &mut args),
        }
    }
    o.url = common.positional(PROG, USAGE, "URL");
    o.protocol = common.protocol;
    let ok = |x: f64| (0.0..1e6).contains(&x);
    if o.count == 0 || !ok(o.hold) || !ok(o.timeout) || o.timeout == 0.0 {
        usage_error(PROG, "-n and --timeout must be positive, -t not negative", USAGE);
    }
    o
}

/// Handshake, then one 16-byte echo, all within `limit`.
async fn open_one(target: &Target, echo: bool, limit: Duration) -> Result<Ws, String> {
    let mut ws = target.connect(limit).await?;
    if echo {
        let payload: Vec<u8> = (0u8..16).collect();
        let rt = async {
            ws.send(Message::binary(payload.clone())).await.map_err(|e| format!("send: {e}"))?;
            loop {
                match ws.next().await {
                    Some(Ok(Message::Binary(b))) if b[..] == payload[..] => return Ok(()),
                    Some(Ok(Message::Binary(b))) => return Err(format!("wrong echo ({} bytes)", b.len())),
                    Some(Ok(Message::Text(_))) => return Err("binary echoed as text".into()),
                    Some(Ok(Message::Close(f))) => return Err(format!("server closed: {f:?}")),
                    Some(Ok(_)) => continue,
                    Some(Err(e)) => return Err(format!("receive: {e}")),
                    None => return Err("connection closed".into()),
                }
            }
        };
        match timeout(limit, rt).await {
            Ok(r) => r?,
            Err(_) => return Err(format!("no echo within {} s", limit.as_secs_f64())),
        }
    }
    Ok(ws)
}

/// Holds one connection until `stop`; true if the server closed it first.
async fn hold(mut ws: Ws, mut stop: watch::Receiver<bool>) -> bool {
    let dropped = loop {
        tokio::select! {
            _ = stop.changed() => break false,
            m = ws.next() => match m {
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                _ => break true,
            },
        }
    };
    if !dropped {
        let _ = timeout(Duration::from_secs(1), ws.close(None)).await;
    }
    dropped
}

async fn run(o: Opts) -> i32 {
    let target = match Target::new(&o.url, o.protocol.as_deref()) {
        Ok(t) => Arc::new(t),
        Err(e) => usage_error(PROG, &e, USAGE),
    };
    let limit = raise_nofile(o.count as u64);
    if limit != 0 && limit < o.count as u64 + 16 {
        eprintln!("{PROG}: warning: open-file limit {limit} is below {} connections", o.count);
    }
    let per = Duration::from_secs_f64(o.timeout);
    let sem = Arc::new(Semaphore::new(OPEN_CONCURRENCY));
    let mut opening = Vec::with_capacity(o.count);
    for _ in 0..o.count {
        let (target, sem) = (target.clone(), sem.clone());
        let echo = o.echo;
        opening.push(tokio::spawn(async move {
            let _permit = sem.acquire().await;
            open_one(&target, echo, per).await
        }));
    }
    let mut conns = Vec::with_capacity(o.count);
    let mut first_err = None;
    for h in opening {
        match h.await {
            Ok(Ok(ws)) => conns.push(ws),
            Ok(Err(e)) => {
                first_err.get_or_insert(e);
            }
            Err(e) => {
                first_err.get_or_insert(format!("task: {e}"));
            }
        }
    }
    if let Some(e) = first_err {
        println!("error after {} connections: {e}", conns.len());
        return 1;
    }
    let n = conns.len();

    let (stop_tx, stop_rx) = watch::channel(false);
    let holders: Vec<_> = conns.into_iter().map(|ws| tokio::spawn(hold(ws, stop_rx.clone()))).collect();
    println!("ready");

    // End of stdin, read on a plain thread, ends the hold early.
    let (eof_tx, eof_rx) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        let mut sink = [0u8; 4096];
        let mut stdin = std::io::stdin().lock();
        while let Ok(k) = std::io::Read::read(&mut stdin, &mut sink) {
            if k == 0 {
                break;
            }
        }
        let _ = eof_tx.send(());
    });
    let _ = timeout(Duration::from_secs_f64(o.hold), eof_rx).await;

    let _ = stop_tx.send(true);
    let mut dropped = 0;
    for h in holders {
        if !matches!(h.await, Ok(false)) {
            dropped += 1;
        }
    }
    println!("closed {n} dropped_while_idle {dropped}");
    0
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
    // Exit without waiting for the stdin thread.
    std::process::exit(rt.block_on(run(o)));
}
