//! Run: `cargo run --example embed_calloop`, then open
//! <http://127.0.0.1:7686/> (the page echoes a message over WebSocket),
//! or `curl http://127.0.0.1:7686/`. The host prints its own ticks.
//!
//! warren inside a calloop event loop, with no thread of its own: the
//! loop's descriptor is a `Generic` source of the host's loop, whose
//! callback calls `Embedded::service`; the host's dispatch waits at most
//! `Embedded::next_timeout`, and serves once more after each dispatch
//! for warren's timers and forced service. Meanwhile a calloop `Timer`
//! of the host's own ticks. calloop is only a dev-dependency: warren
//! itself knows nothing of it.

use calloop::generic::Generic;
use calloop::timer::{TimeoutAction, Timer};
use calloop::{EventLoop, Interest, Mode, PostAction};
use std::io;
use std::net::SocketAddr;
use std::os::fd::AsFd;
use std::sync::Arc;
use std::time::Duration;
use warren::vfs::{FileHandle, Fops, MemoryFile, OpenFlags, VPath};
use warren::{Context, ContextInfo, Embedded, Mount, Serviced, VhostInfo};

/// The site: one page from memory at `/`, and WebSocket echo (the `echo`
/// plugin, the default protocol) on any path.
pub fn context(addr: SocketAddr) -> warren::Result<Context> {
    let mut vhost = VhostInfo::new("localhost", addr).default_protocol("echo").mount(Mount::files("/", Arc::new(Page)));
    vhost.plugin("echo");
    Context::new(ContextInfo::new().vhost(vhost))
}

/// What the host's callbacks share: the embedded loop and how it ended.
#[derive(Debug)]
pub struct Host {
    warren: Embedded,
    ended: Option<io::Result<()>>,
}

impl Host {
    /// One turn of warren, unless it has ended.
    fn service(&mut self) {
        if self.ended.is_some() {
            return;
        }
        match self.warren.service() {
            Ok(Serviced::Running) => {}
            Ok(Serviced::Stopped) => self.ended = Some(Ok(())),
            Err(e) => self.ended = Some(Err(e)),
        }
    }
}

/// Serves `context` in a calloop event loop until it stops
/// (`ContextHandle::stop`, or the end of a drain), while the host's own
/// timer calls `on_tick` every `every`.
pub fn serve(context: Context, every: Duration, mut on_tick: impl FnMut() + 'static) -> io::Result<()> {
    let mut event_loop: EventLoop<Host> = EventLoop::try_new()?;
    let handle = event_loop.handle();
    let warren = context.embed()?;
    // A duplicate of warren's descriptor, so the source owns what it
    // watches. Level-triggered: calloop asks again after each dispatch,
    // and it is readable as long as warren has events to take.
    let fd = warren.as_fd().try_clone_to_owned()?;
    handle
        .insert_source(Generic::new(fd, Interest::READ, Mode::Level), |_readiness, _fd, host: &mut Host| {
            host.service();
            Ok(PostAction::Continue)
        })
        .map_err(|e| io::Error::from(e.error))?;
    // The host's own timer.
    handle
        .insert_source(Timer::from_duration(every), move |_deadline, _, _host| {
            on_tick();
            TimeoutAction::ToDuration(every)
        })
        .map_err(|e| io::Error::from(e.error))?;
    let mut host = Host { warren, ended: None };
    loop {
        let timeout = host.warren.next_timeout();
        event_loop.dispatch(timeout, &mut host)?;
        // Timers due and forced service (work no event announces), even
        // when the descriptor stayed quiet.
        host.service();
        if let Some(ended) = host.ended.take() {
            return ended;
        }
    }
}

fn main() -> io::Result<()> {
    let addr = "127.0.0.1:7686".parse().map_err(|_| io::ErrorKind::InvalidInput)?;
    let context = context(addr)?;
    println!("serving http://{addr}/ (WebSocket echo on ws://{addr}/) inside calloop");
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
<title>warren inside calloop</title>
<p>Served by warren inside a calloop event loop.</p>
<p id="echo">echo: waiting</p>
<script>
const ws = new WebSocket(`ws://${location.host}/`, "echo");
ws.onopen = () => ws.send("hello, echo");
ws.onmessage = (m) => { document.getElementById("echo").textContent = `echo: ${m.data}`; };
</script>
"#;
