//! `warren-metrics`: the server's [`Metrics`](crate::Metrics) in the
//! Prometheus text format, for a scraper, on a `callback://` mount.
//!
//! In an lwsws configuration:
//!
//! ```json
//! "ws-protocols": [{"warren-metrics": {}}],
//! "mounts": [{"mountpoint": "/metrics", "origin": "callback://warren-metrics",
//!             "basic-auth": "/etc/warren/metrics.passwd"}]
//! ```
//!
//! From code: [`VhostInfo::plugin`](crate::VhostInfo::plugin)`(`[`NAME`]`)`
//! and [`Mount::callback`](crate::Mount::callback)`("/metrics", `[`NAME`]`)`.
//! The mount is like any other: basic auth, and the vhost's headers,
//! apply. `GET` and `HEAD` get the text (rendered per scrape, from the
//! metrics of the context serving it); other methods get 405. The
//! repository's `docs/metrics.md` lists what is counted.

use crate::http::request::Method;
use crate::protocol::{Action, Cx, Event, Protocol};

/// The plugin's name, for `callback://warren-metrics`.
pub const NAME: &str = "warren-metrics";

/// The plugin (stateless).
#[derive(Debug, Default)]
pub struct MetricsPlugin;

/// What a request asked: the metrics, or a method they do not take.
#[derive(Debug, Default)]
pub struct Scrape {
    allowed: bool,
    pending: bool,
}

impl Protocol for MetricsPlugin {
    type Session = Scrape;

    fn name(&self) -> &str {
        NAME
    }

    fn rx_buffer_size(&self) -> usize {
        128
    }

    fn callback(&mut self, cx: &mut Cx<'_>, event: Event<'_, Scrape>) -> Action {
        match event {
            Event::Http(wsi, req) => {
                *wsi.session = Scrape { allowed: matches!(req.method(), Method::Get | Method::Head), pending: true };
                cx.callback_on_writable(wsi.id);
            }
            Event::HttpWriteable(wsi, writer) if wsi.session.pending => {
                wsi.session.pending = false;
                let r = if wsi.session.allowed {
                    let text = cx.handle().metrics().render();
                    writer.respond(200, crate::metrics::CONTENT_TYPE, text.as_bytes())
                } else {
                    writer.inner.status_with(405, "the metrics take GET or HEAD", &[("Allow", "GET, HEAD")])
                };
                if r.is_err() {
                    return Action::Close;
                }
            }
            _ => {}
        }
        Action::Continue
    }
}
