//! Run: `cargo run --example embed_tokio`, then open
//! <http://127.0.0.1:7685/> (the page echoes a message over WebSocket),
//! or `curl http://127.0.0.1:7685/`. The host prints its own ticks.
//!
//! warren inside a tokio program, with no thread of its own: the loop's
//! descriptor is an `AsyncFd` of the host's current-thread runtime, and
//! the host calls `Embedded::service` when it is readable, or when
//! `Embedded::next_timeout` says warren's timers or forced service are
//! due. Meanwhile the host runs a task of its own, an interval timer.
//! tokio is only a dev-dependency: warren itself knows nothing of it.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use warren::vfs::{FileHandle, Fops, MemoryFile, OpenFlags, VPath};
use warren::{Context, ContextInfo, Embedded, Mount, Serviced, VhostInfo};

/// The site: one page from memory at `/`, and WebSocket echo (the `echo`
/// plugin, the default protocol) on any path.
pub fn context(addr: SocketAddr) -> warren::Result<Context> {
    let mut vhost = VhostInfo::new("localhost", addr).default_protocol("echo").mount(Mount::files("/", Arc::new(Page)));
    vhost.plugin("echo");
    Context::new(ContextInfo::new().vhost(vhost))
}

/// Serves `context` on a current-thread tokio runtime until it stops
/// (`ContextHandle::stop`, or the end of a drain), while the host's own
/// task calls `on_tick` every `every`.
pub fn serve(context: Context, every: Duration, mut on_tick: impl FnMut() + Send + 'static) -> io::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async move {
        // The host's own work, a task beside warren's.
        let host = tokio::spawn(async move {
            let mut ticks = tokio::time::interval(every);
            ticks.tick().await;
            loop {
                ticks.tick().await;
                on_tick();
            }
        });
        let served = drive(context.embed()?).await;
        host.abort();
        served
    })
}

/// Drives an embedded loop on the current tokio runtime until it stops.
pub async fn drive(embedded: Embedded) -> io::Result<()> {
    // The AsyncFd owns the loop, so its descriptor outlives the
    // registration; `get_mut` reaches the loop.
    // SAFETY: an `Embedded` gives the same descriptor for as long as it
    // lives, open all that time, and this AsyncFd owns it (warren
    // documents this on `Embedded`).
    let mut warren = unsafe { AsyncFd::register_with_interest(embedded, Interest::READABLE)? };
    loop {
        if warren.get_mut().service()? == Serviced::Stopped {
            return Ok(());
        }
        match warren.get_ref().next_timeout() {
            // Forced service: work no event will announce. The host's
            // other tasks get their turn, then warren serves again.
            Some(Duration::ZERO) => tokio::task::yield_now().await,
            // Readiness is cleared before the next `service`, never after
            // it: an event that comes during the call brings a new edge.
            Some(timeout) => {
                tokio::select! {
                    ready = warren.readable_mut() => ready?.clear_ready(),
                    () = tokio::time::sleep(timeout) => {}
                }
            }
            None => warren.readable_mut().await?.clear_ready(),
        }
    }
}

fn main() -> io::Result<()> {
    let addr = "127.0.0.1:7685".parse().map_err(|_| io::ErrorKind::InvalidInput)?;
    let context = context(addr)?;
    println!("serving http://{addr}/ (WebSocket echo on ws://{addr}/) inside tokio");
    let mut n = 0u64;
    serve(context, Duration::from_secs(5), move || {
        n += 1;
        println!("host tick {n}");
    })
}

/// A filesystem of one page, held in memory.
#[derive(Debug)]
struct Page;

impl Fops for Page {
    fn open(&self, path: &VPath, _flags: OpenFlags) -> io::Result<Box<dyn FileHandle>> {
        match path.as_str() {
            "index.html" => Ok(Box::new(MemoryFile::new(PAGE.as_bytes(), None))),
            "" => Err(io::ErrorKind::IsADirectory.into()),
            _ => Err(io::ErrorKind::NotFound.into()),
        }
    }
}

/// The page: it sends a message to the echo and shows what comes back.
pub const PAGE: &str = r#"<!doctype html>
<meta charset="utf-8">
<title>warren inside tokio</title>
<p>Served by warren inside a tokio runtime.</p>
<p id="echo">echo: waiting</p>
<script>
const ws = new WebSocket(`ws://${location.host}/`, "echo");
ws.onopen = () => ws.send("hello, echo");
ws.onmessage = (m) => { document.getElementById("echo").textContent = `echo: ${m.data}`; };
</script>
"#;
