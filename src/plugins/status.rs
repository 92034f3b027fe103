//! `lws-status` (spec PLUG-4): whenever a client of this protocol
//! connects or leaves, every client gets one JSON text message listing
//! the protocol's connections:
//!
//! ```json
//! {"version":"warren 0.1.0","hostname":"box","wsi":"2",
//!  "conns":[{"peer":"127.0.0.1","time":"1764000000","ua":"curl/8"}]}
//! ```
//!
//! Incoming data is ignored. A client that does not read misses updates
//! rather than queueing them: each writeable callback sends the newest.
//! Changes are batched: at most one round of updates per [`BATCH`], with
//! the report built once per round, so a storm of connects costs the
//! listeners one message each per period, not one per connect.

use crate::protocol::{Action, Cx, Event, Protocol, WsiId};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The shortest time between two rounds of updates.
pub const BATCH: Duration = Duration::from_millis(200);

/// The plugin's name.
pub const NAME: &str = "lws-status";
/// Connections listed at most (the rest are counted in `wsi`).
const MAX_LISTED: usize = 100;

/// What the loops' instances share: the connections of all of them.
#[derive(Debug, Default)]
pub struct StatusList {
    /// Each with the number of the loop instance serving it.
    conns: Vec<(usize, Client)>,
    /// Bumped on every change; a session that has sent it is up to date.
    generation: u64,
    /// The report of a generation, built once for all listeners.
    cached: Option<(u64, Arc<str>)>,
    /// Numbers the loops' instances.
    loops: usize,
}

/// One service loop's instance of the plugin.
#[derive(Debug)]
pub struct Status {
    list: Arc<Mutex<StatusList>>,
    me: usize,
    /// A round of updates is scheduled.
    pending: bool,
    /// The machine's name, looked up once.
    hostname: Option<String>,
}

impl Default for Status {
    /// An instance with a list of its own (one loop).
    fn default() -> Status {
        Status::sharing(&Arc::default())
    }
}

#[derive(Debug)]
struct Client {
    id: WsiId,
    peer: String,
    time: u64,
    ua: String,
}

/// What a client has been sent.
#[derive(Debug, Default)]
pub struct StatusSession {
    sent: u64,
}

impl Status {
    /// An instance for one more service loop, sharing `list` with the
    /// instances of the vhost's other loops.
    pub fn sharing(list: &Arc<Mutex<StatusList>>) -> Status {
        let me = {
            let mut l = lock(list);
            l.loops += 1;
            l.loops - 1
        };
        Status { list: Arc::clone(list), me, pending: false, hostname: None }
    }

    fn report(list: &StatusList, hostname: &str) -> String {
        let conns: Vec<_> = list
            .conns
            .iter()
            .take(MAX_LISTED)
            .map(|(_, c)| serde_json::json!({"peer": c.peer, "time": c.time.to_string(), "ua": c.ua}))
            .collect();
        serde_json::json!({
            "version": concat!("warren ", env!("CARGO_PKG_VERSION")),
            "hostname": hostname,
            "wsi": list.conns.len().to_string(),
            "conns": conns,
        })
        .to_string()
    }

    fn changed(&mut self, cx: &mut Cx<'_>) {
        if !self.pending {
            self.pending = true;
            cx.schedule(BATCH);
        }
    }
}

fn lock(list: &Mutex<StatusList>) -> MutexGuard<'_, StatusList> {
    list.lock().unwrap_or_else(|e| e.into_inner())
}

impl Protocol for Status {
    type Session = StatusSession;

    fn name(&self) -> &str {
        NAME
    }

    fn rx_buffer_size(&self) -> usize {
        128
    }

    fn callback(&mut self, cx: &mut Cx<'_>, event: Event<'_, StatusSession>) -> Action {
        match event {
            Event::Established(wsi, req) => {
                let time = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
                let ua = req.header_str("user-agent").unwrap_or("").chars().take(256).collect();
                let mut list = lock(&self.list);
                list.conns.push((self.me, Client { id: wsi.id, peer: wsi.peer.ip().to_string(), time, ua }));
                list.generation += 1;
                drop(list);
                self.changed(cx);
            }
            Event::Closed(wsi) => {
                let me = self.me;
                let mut list = lock(&self.list);
                list.conns.retain(|(at, c)| !(*at == me && c.id == wsi.id));
                list.generation += 1;
                drop(list);
                self.changed(cx);
            }
            Event::Timer => {
                self.pending = false;
                cx.callback_on_writable_all_protocol_all_loops();
            }
            Event::ServerWriteable(wsi, writer) => {
                let hostname = self.hostname.get_or_insert_with(hostname).clone();
                // The report is taken under the lock, written without it.
                let (generation, report) = {
                    let mut list = lock(&self.list);
                    let generation = list.generation;
                    if wsi.session.sent == generation {
                        return Action::Continue;
                    }
                    let report = match &list.cached {
                        Some((g, r)) if *g == generation => Arc::clone(r),
                        _ => {
                            let r: Arc<str> = Status::report(&list, &hostname).into();
                            list.cached = Some((generation, Arc::clone(&r)));
                            r
                        }
                    };
                    (generation, report)
                };
                wsi.session.sent = generation;
                if writer.text(&report).is_err() {
                    return Action::Close;
                }
            }
            _ => {}
        }
        Action::Continue
    }
}

/// The machine's host name.
pub(crate) fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer and its length are valid; gethostname writes at
    // most that many bytes.
    let r = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if r != 0 {
        return "unknown".into();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}
