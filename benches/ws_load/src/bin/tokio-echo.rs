//! tokio-echo: the peer server for warren's WebSocket benchmark.
//!
//! One thread (tokio current_thread runtime, like warren's one service
//! thread), tokio-tungstenite with its default configuration unless
//! `--read-buffer` / `--write-buffer` say otherwise, no compression
//! extension. Every text or binary message is sent back as it came; pings
//! are answered by tungstenite; a close is answered and the connection ends.
//! Connections are never closed for being idle. The opening handshake must
//! finish within 10 s of the accept.
//!
//! With `--protocol NAME`, a client that offers NAME among its subprotocols
//! gets it selected; without it, no subprotocol is ever selected.
//!
//! Prints `tokio-echo: listening on ADDR` on stdout once the socket is bound.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use ws_load::{parse_num, raise_nofile, CommonArgs};

const PROG: &str = "tokio-echo";
const USAGE: &str = "tokio-echo ADDR:PORT [--protocol NAME] [--read-buffer BYTES] [--write-buffer BYTES]\n  \
buffers default to tungstenite's (128 KiB each)";
const HANDSHAKE_LIMIT: Duration = Duration::from_secs(10);

struct Opts {
    addr: String,
    protocol: Option<String>,
    config: WebSocketConfig,
}

fn parse_args() -> Opts {
    let mut common = CommonArgs::default();
    let mut config = WebSocketConfig::default();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--read-buffer" => config = config.read_buffer_size(parse_num(PROG, USAGE, &a, args.next())),
            "--write-buffer" => config = config.write_buffer_size(parse_num(PROG, USAGE, &a, args.next())),
            _ => common.take(PROG, USAGE, "address", &a, &mut args),
        }
    }
    let addr = common.positional(PROG, USAGE, "listen address");
    Opts { addr, protocol: common.protocol, config }
}

/// Selects `want` when the client offered it. (The error type is
/// tungstenite's, fixed by its `Callback` trait.)
#[allow(clippy::result_large_err)]
fn select_protocol(want: Option<&str>, req: &Request, mut resp: Response) -> Result<Response, ErrorResponse> {
    let Some(want) = want else { return Ok(resp) };
    let offered = req
        .headers()
        .get_all("Sec-WebSocket-Protocol")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|p| p.trim() == want);
    if offered {
        if let Ok(v) = HeaderValue::from_str(want) {
            resp.headers_mut().insert("Sec-WebSocket-Protocol", v);
        }
    }
    Ok(resp)
}

#[allow(clippy::result_large_err)] // the handshake callback's type
async fn serve(tcp: TcpStream, protocol: Option<String>, config: WebSocketConfig) {
    let _ = tcp.set_nodelay(true);
    let cb = |req: &Request, resp: Response| select_protocol(protocol.as_deref(), req, resp);
    let ws =
        tokio::time::timeout(HANDSHAKE_LIMIT, tokio_tungstenite::accept_hdr_async_with_config(tcp, cb, Some(config)))
            .await;
    let mut ws = match ws {
        Ok(Ok(ws)) => ws,
        _ => return,
    };
    while let Some(m) = ws.next().await {
        match m {
            Ok(m @ (Message::Binary(_) | Message::Text(_))) => {
                if ws.send(m).await.is_err() {
                    break;
                }
            }
            // Ping: tungstenite queues the pong and flushes it on the next
            // read. Close: the reply goes out the same way, then the stream ends.
            Ok(_) => {}
            Err(_) => break,
        }
    }
}

async fn run(o: Opts) -> i32 {
    raise_nofile(65_536);
    let listener = match TcpListener::bind(&o.addr).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("{PROG}: cannot listen on {}: {e}", o.addr);
            return 2;
        }
    };
    match listener.local_addr() {
        Ok(a) => println!("{PROG}: listening on {a}"),
        Err(_) => println!("{PROG}: listening on {}", o.addr),
    }
    loop {
        match listener.accept().await {
            Ok((tcp, _)) => {
                tokio::spawn(serve(tcp, o.protocol.clone(), o.config));
            }
            Err(e) => {
                // Out of descriptors and the like: report, back off, go on.
                eprintln!("{PROG}: accept: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
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
    std::process::exit(rt.block_on(run(o)));
}
