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
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The shortest time between two rounds of updates.
pub const BATCH: Duration = Duration::from_millis(200);

/// The plugin's name.
pub const NAME: &str = "lws-status";
/// Connections listed at most (the rest are counted in `wsi`).
const MAX_LISTED: usize = 100;

/// The plugin: the connections it serves.
#[derive(Debug, Default)]
pub struct Status {
    conns: Vec<Client>,
    /// Bumped on every change; a session that has sent it is up to date.
    generation: u64,
    /// A round of updates is scheduled.
    pending: bool,
    /// The report of a generation, built once for all listeners.
    cached: Option<(u64, String)>,
    /// The machine's name, looked up once.
    hostname: Option<String>,
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
    fn report(&mut self) -> String {
        let hostname = self.hostname.get_or_insert_with(hostname).clone();
        let conns: Vec<_> = self
            .conns
            .iter()
            .take(MAX_LISTED)
            .map(|c| serde_json::json!({"peer": c.peer, "time": c.time.to_string(), "ua": c.ua}))
            .collect();
        serde_json::json!({
            "version": concat!("warren ", env!("CARGO_PKG_VERSION")),
            "hostname": hostname,
            "wsi": self.conns.len().to_string(),
            "conns": conns,
        })
        .to_string()
    }

    fn changed(&mut self, cx: &mut Cx<'_>) {
        self.generation += 1;
        if !self.pending {
            self.pending = true;
            cx.schedule(BATCH);
        }
    }
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
                self.conns.push(Client { id: wsi.id, peer: wsi.peer.ip().to_string(), time, ua });
                self.changed(cx);
            }
            Event::Closed(wsi) => {
                self.conns.retain(|c| c.id != wsi.id);
                self.changed(cx);
            }
            Event::Timer => {
                self.pending = false;
                cx.callback_on_writable_all_protocol();
            }
            Event::ServerWriteable(wsi, writer) if wsi.session.sent != self.generation => {
                wsi.session.sent = self.generation;
                if self.cached.as_ref().is_none_or(|(g, _)| *g != self.generation) {
                    self.cached = Some((self.generation, self.report()));
                }
                let report = self.cached.as_ref().map_or("", |(_, r)| r.as_str());
                if writer.text(report).is_err() {
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
