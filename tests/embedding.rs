//! warren inside another event loop (issue 18 item 6; lws's external
//! polling): the embedding examples run as tests, each serving an HTTP
//! request and a WebSocket echo while its host loop also runs a timer of
//! its own, and `Embedded`'s contract checked with a bare `poll(2)` host:
//! the descriptor is readable while there is something to take, quiet
//! after a `service`, `next_timeout` brings timers due without any event,
//! a stop or a drain ends it, and dropping it closes its port.
#![cfg(feature = "appliance")]

mod support;

#[allow(dead_code)]
#[path = "../examples/embed_tokio.rs"]
mod embed_tokio;

#[allow(dead_code)]
#[path = "../examples/embed_calloop.rs"]
mod embed_calloop;

use std::io::{self, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::fd::{AsFd, AsRawFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use support::ws::{WsClient, BINARY, TEXT};
use support::Reader;
use warren::{Action, Context, ContextHandle, ContextInfo, Cx, Embedded, Event, Protocol, Serviced, VhostInfo};

/// How long a condition may take before a test gives up: generous, so
/// that no test depends on how fast the machine is.
const PATIENCE: Duration = Duration::from_secs(20);
/// The hosts' own timers tick this often.
const TICK: Duration = Duration::from_millis(10);

/// An example's serving function, as the tests call it.
type Serve = fn(Context, Arc<AtomicU64>) -> io::Result<()>;

/// An example serving on a thread of its own, on 127.0.0.1:0.
struct Hosted {
    addr: SocketAddr,
    handle: ContextHandle,
    /// How often the host's own timer has fired.
    ticks: Arc<AtomicU64>,
    thread: Option<JoinHandle<io::Result<()>>>,
}

impl Hosted {
    fn start(context: Context, serve: Serve) -> Hosted {
        let addr = context.local_addr(0).expect("addr");
        let handle = context.handle();
        let ticks = Arc::new(AtomicU64::new(0));
        let counted = Arc::clone(&ticks);
        let thread = Some(std::thread::spawn(move || serve(context, counted)));
        Hosted { addr, handle, ticks, thread }
    }

    /// Stops the context and waits for the host to return.
    fn stop(&mut self) -> io::Result<()> {
        self.handle.stop();
        match self.thread.take() {
            Some(t) => t.join().expect("host thread panicked"),
            None => Ok(()),
        }
    }
}

impl Drop for Hosted {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

fn tokio_host(context: Context, ticks: Arc<AtomicU64>) -> io::Result<()> {
    embed_tokio::serve(context, TICK, move || {
        ticks.fetch_add(1, Ordering::Relaxed);
    })
}

fn calloop_host(context: Context, ticks: Arc<AtomicU64>) -> io::Result<()> {
    embed_calloop::serve(context, TICK, move || {
        ticks.fetch_add(1, Ordering::Relaxed);
    })
}

fn any_port() -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, 0))
}

/// One GET on a new connection.
fn get(addr: SocketAddr, path: &str) -> support::Response {
    get_from(addr, "localhost", path)
}

/// One GET of `host`'s `path` on a new connection.
fn get_from(addr: SocketAddr, host: &str, path: &str) -> support::Response {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(PATIENCE)).expect("timeout");
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes()).expect("write");
    Reader::new(s).response(false).expect("response")
}

/// Waits (at most [`PATIENCE`]) until `done` holds.
fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < PATIENCE, "waited {PATIENCE:?} for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The page, a 404, a small text echo and a 1 MiB binary echo (more than
/// one turn's budget: the rest comes from forced service), while the
/// host's timer goes on ticking; then a stop ends the host and closes
/// the port.
fn serves_while_the_host_ticks(context: Context, serve: Serve, page: &str) {
    let mut hosted = Hosted::start(context, serve);
    let before = hosted.ticks.load(Ordering::Relaxed);

    let r = get(hosted.addr, "/");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), page);
    assert_eq!(get(hosted.addr, "/missing").status, 404);

    let mut c = WsClient::connect(hosted.addr, "/", &["Sec-WebSocket-Protocol: echo"]).expect("upgrade");
    assert!(c.head.contains("\r\nSec-WebSocket-Protocol: echo\r\n"), "{}", c.head);
    c.text("hello from the test").expect("send");
    assert_eq!(c.recv_message().expect("echo"), (TEXT, b"hello from the test".to_vec()));
    let big: Vec<u8> = (0..(1u32 << 20)).map(|i| (i * 31 % 251) as u8).collect();
    c.send(true, BINARY, &big).expect("send");
    let (op, got) = c.recv_message().expect("echo");
    assert_eq!(op, BINARY);
    assert!(got == big, "1 MiB binary message came back different ({} bytes)", got.len());

    // The host's own timer ran beside warren: it ticked during the
    // exchange, or ticks after it.
    wait_for("the host's timer", || hosted.ticks.load(Ordering::Relaxed) > before);
    // And warren still serves after it.
    assert_eq!(get(hosted.addr, "/").status, 200);
    assert_eq!(hosted.handle.stats().ws_upgrades, 1);

    drop(c);
    hosted.stop().expect("the host ended well");
    assert!(TcpStream::connect(hosted.addr).is_err(), "the port still takes connections after a stop");
}

#[test]
fn tokio_example_serves_http_and_websocket_while_its_timer_ticks() {
    let context = embed_tokio::context(any_port()).expect("context");
    serves_while_the_host_ticks(context, tokio_host, embed_tokio::PAGE);
}

#[test]
fn calloop_example_serves_http_and_websocket_while_its_timer_ticks() {
    let context = embed_calloop::context(any_port()).expect("context");
    serves_while_the_host_ticks(context, calloop_host, embed_calloop::PAGE);
}

/// Whether `fd` is readable within `timeout` (`None`: at once).
fn readable(fd: &impl AsFd, timeout: Option<Duration>) -> bool {
    let ms = timeout.map_or(0, |t| i32::try_from(t.as_millis()).unwrap_or(i32::MAX));
    let mut p = libc::pollfd { fd: fd.as_fd().as_raw_fd(), events: libc::POLLIN, revents: 0 };
    // SAFETY: one valid pollfd, for the length given.
    let n = unsafe { libc::poll(&mut p, 1, ms) };
    assert!(n >= 0, "poll: {}", io::Error::last_os_error());
    n == 1 && p.revents & libc::POLLIN != 0
}

/// A `poll(2)` host: serves `e` as the contract says (when readable, and
/// when `next_timeout` has passed) until `done` holds or it stops. What
/// the last `service` returned.
fn drive(e: &mut Embedded, what: &str, mut done: impl FnMut() -> bool) -> Serviced {
    let start = Instant::now();
    loop {
        let s = e.service().expect("service");
        if s == Serviced::Stopped || done() {
            return s;
        }
        let left = PATIENCE.checked_sub(start.elapsed()).unwrap_or_else(|| panic!("waited {PATIENCE:?} for {what}"));
        let wait = e.next_timeout().map_or(left, |t| t.min(left));
        readable(e, Some(wait));
    }
}

/// Runs `client` on a thread of its own. Its answer is sent, then the
/// loops are woken (`cancel_service`): the last event of its exchange
/// may come before the answer is ready, or be another loop's, and the
/// wake makes a host waiting on the descriptor look again.
fn client<T: Send + 'static>(handle: &ContextHandle, client: impl FnOnce() -> T + Send + 'static) -> mpsc::Receiver<T> {
    let (tx, rx) = mpsc::channel();
    let handle = handle.clone();
    std::thread::spawn(move || {
        let _ = tx.send(client());
        handle.cancel_service();
    });
    rx
}

/// What a protocol heard of the loop, by name.
#[derive(Default)]
struct Heard(Arc<Mutex<Vec<&'static str>>>);

impl Protocol for Heard {
    type Session = ();

    fn name(&self) -> &str {
        "heard"
    }

    fn callback(&mut self, cx: &mut Cx<'_>, event: Event<'_, ()>) -> Action {
        let name = match event {
            Event::ProtocolInit => {
                // A timer, due with no event on any descriptor.
                cx.schedule(Duration::from_millis(20));
                "init"
            }
            Event::Timer => "timer",
            Event::EventWaitCancelled => "cancelled",
            Event::ProtocolDestroy => "destroy",
            _ => return Action::Continue,
        };
        self.0.lock().expect("lock").push(name);
        Action::Continue
    }
}

fn heard_context(threads: usize) -> (Context, Arc<Mutex<Vec<&'static str>>>) {
    let heard = Arc::new(Mutex::new(Vec::new()));
    let shared = Arc::clone(&heard);
    let vhost = VhostInfo::new("localhost", any_port())
        .protocol_per_loop(move || Heard(Arc::clone(&shared)))
        .mount(support::files_mount("/", &std::env::temp_dir()));
    let context = Context::new(ContextInfo::new().vhost(vhost).threads(threads)).expect("context");
    (context, heard)
}

fn count(heard: &Mutex<Vec<&'static str>>, name: &str) -> usize {
    heard.lock().expect("lock").iter().filter(|n| **n == name).count()
}

/// The descriptor's contract, one step at a time: quiet when nothing is
/// to be taken; readable after a wake-up (`cancel_service`) and quiet
/// again once `service` took it; a protocol timer served through
/// `next_timeout` alone; `Stopped` after `stop`, with the port closed and
/// `ProtocolDestroy` heard.
#[test]
fn service_follows_the_descriptor_and_ends_after_stop() {
    let (context, heard) = heard_context(1);
    let addr = context.local_addr(0).expect("addr");
    let handle = context.handle();
    let mut e = context.embed().expect("embed");
    assert_eq!(count(&heard, "init"), 1, "ProtocolInit comes with embed");

    // The timer: no descriptor wakes for it, next_timeout does.
    assert_eq!(drive(&mut e, "the protocol timer", || count(&heard, "timer") == 1), Serviced::Running);
    assert_eq!(e.service().expect("service"), Serviced::Running);
    assert!(!readable(&e, None), "readable with nothing to take");

    handle.cancel_service();
    assert!(readable(&e, Some(PATIENCE)), "cancel_service did not wake the descriptor");
    assert_eq!(e.service().expect("service"), Serviced::Running);
    assert!(!readable(&e, None), "still readable after service took the wake-up");
    assert_eq!(count(&heard, "cancelled"), 1);

    // A connection is served by the same means.
    let served = client(&handle, move || get(addr, "/missing").status);
    let mut status = None;
    let s = drive(&mut e, "a request", || {
        status = served.try_recv().ok();
        status.is_some()
    });
    assert_eq!((s, status), (Serviced::Running, Some(404)));

    handle.stop();
    assert!(readable(&e, Some(PATIENCE)), "stop did not wake the descriptor");
    assert_eq!(e.service().expect("service"), Serviced::Stopped);
    assert_eq!(count(&heard, "destroy"), 1);
    assert!(TcpStream::connect(addr).is_err(), "the port still takes connections after Stopped");
    assert_eq!(e.service().expect("service"), Serviced::Stopped, "Stopped stays Stopped");
    // A vhost asked for now is refused at once, not left unanswered.
    let late = handle.add_vhost(warren::VhostInfo::new("late", any_port()));
    let answer = late.recv_timeout(PATIENCE).expect("add_vhost after the stop was never answered");
    let why = answer.expect_err("a stopped context took a vhost").to_string();
    assert!(why.contains("late") && why.contains("stopped"), "{why}");
    drop(e);
    assert_eq!(count(&heard, "destroy"), 1, "ended twice");
    let answer = handle.add_vhost(warren::VhostInfo::new("later", any_port())).recv_timeout(PATIENCE);
    assert!(answer.expect("answered after the drop").is_err());
}

/// `ContextHandle::add_vhost` reaches an embedded loop through its
/// descriptor: the answer comes once the host serves, and the new vhost
/// serves on its own port.
#[test]
fn a_vhost_added_while_embedded_is_served() {
    let (context, _heard) = heard_context(1);
    let handle = context.handle();
    let mut e = context.embed().expect("embed");
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("index.html"), "added\n").expect("write");
    let answer = handle.add_vhost(VhostInfo::new("added", any_port()).mount(support::files_mount("/", dir.path())));
    let mut added = None;
    drive(&mut e, "the vhost's answer", || {
        added = answer.try_recv().ok();
        added.is_some()
    });
    let addr = added.expect("answer").expect("the vhost was added");
    let served = client(&handle, move || get_from(addr, "added", "/"));
    let mut r = None;
    drive(&mut e, "a request to the new vhost", || {
        r = served.try_recv().ok();
        r.is_some()
    });
    let r = r.expect("response");
    assert_eq!((r.status, r.text()), (200, "added\n".to_string()));
}

/// Dropping an `Embedded` that still serves ends it as a stop would: its
/// connections closed, its port closed, `ProtocolDestroy` heard.
#[test]
fn dropping_an_embedded_loop_closes_its_port() {
    let (context, heard) = heard_context(1);
    let addr = context.local_addr(0).expect("addr");
    let handle = context.handle();
    let mut e = context.embed().expect("embed");
    let client = TcpStream::connect(addr).expect("connect");
    drive(&mut e, "the connection", || handle.stats().open == 1);
    drop(e);
    assert_eq!(count(&heard, "destroy"), 1);
    assert!(TcpStream::connect(addr).is_err(), "the port still takes connections after the drop");
    assert!(Reader::new(client).closed_within(PATIENCE), "the connection was left open");
}

/// With two loops, the second on a thread of its own: requests are
/// served whichever loop takes them, and a drain ends both, the
/// embedded one reporting `Stopped` only once the other has ended too.
#[test]
fn a_second_loop_runs_on_its_thread_and_a_drain_ends_both() {
    let (context, heard) = heard_context(2);
    let addr = context.local_addr(0).expect("addr");
    let handle = context.handle();
    let mut e = context.embed().expect("embed");
    let clients = client(&handle, move || (0..8).map(|_| get(addr, "/missing").status).collect::<Vec<_>>());
    let mut statuses = None;
    drive(&mut e, "the requests", || {
        statuses = clients.try_recv().ok();
        statuses.is_some()
    });
    assert_eq!(statuses, Some(vec![404; 8]));
    assert_eq!(handle.stats().requests, 8);

    let closed = handle.drain(Duration::from_secs(1));
    assert_eq!(drive(&mut e, "the drain's end", || false), Serviced::Stopped);
    closed.recv_timeout(PATIENCE).expect("the listeners closed");
    assert_eq!(count(&heard, "init"), 2);
    assert_eq!(count(&heard, "destroy"), 2, "both loops end before Stopped");
    assert!(TcpStream::connect(addr).is_err(), "the port still takes connections after the drain");
}

/// An `Embedded` may be made on one thread and driven on another.
#[test]
fn embedded_is_send() {
    fn send<T: Send>() {}
    send::<Embedded>();
}
