//! [`Metrics`]: what a server counts, shared by the loops that count into
//! it and rendered in the Prometheus text exposition format (version
//! 0.0.4) for a scrape.
//!
//! A [`Context`](crate::Context) makes its own unless
//! [`ContextInfo::metrics`](crate::ContextInfo::metrics) hands it one, so
//! that several contexts (one per thread, or an old one draining beside
//! the one that replaced it on a reload) count into the same numbers.
//! [`ContextHandle::metrics`](crate::ContextHandle::metrics) gives it
//! back. Serving only does relaxed atomic adds; per-vhost counters are
//! found by vhost name once, when a vhost is attached, so they carry on
//! across a reload into a new context.
//!
//! The built-in plugin [`warren-metrics`](crate::plugins) serves
//! [`Metrics::render`] on a `callback://warren-metrics` mount; the
//! repository's `docs/metrics.md` lists every metric.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// The content type of [`Metrics::render`]'s text.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// What a connection is doing, for the open-connections gauge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ConnRole {
    /// Accepted on a TLS port, its handshake not done yet.
    TlsHandshake,
    /// Speaking HTTP/1.
    Http,
    /// A WebSocket.
    #[cfg_attr(not(feature = "ws"), allow(dead_code))]
    Ws,
    /// A raw wsi: a raw connection, an adopted descriptor or UDP socket.
    Raw,
}

/// A server's counters and gauges. `Send + Sync`; share it with [`Arc`].
#[derive(Debug, Default)]
pub struct Metrics {
    /// Open connections by [`ConnRole`] (gauges).
    open: [AtomicU64; 4],
    pub(crate) accepted: AtomicU64,
    pub(crate) refused: AtomicU64,
    /// Connections closed at accept: their peer had as many as
    /// `Limits::peer_connections`.
    pub(crate) peer_refused: AtomicU64,
    /// Requests that waited for their peer's request slot.
    pub(crate) peer_waits: AtomicU64,
    /// Request heads parsed (for [`Stats`](crate::Stats)).
    pub(crate) requests: AtomicU64,
    pub(crate) bytes_in: AtomicU64,
    pub(crate) bytes_out: AtomicU64,
    pub(crate) cgi_running: AtomicU64,
    /// Requests waiting for a CGI slot (kept by the loop's queues).
    pub(crate) cgi_waiting: Arc<AtomicU64>,
    pub(crate) cgi_started: AtomicU64,
    pub(crate) cgi_timeouts: AtomicU64,
    pub(crate) ws_upgrades: AtomicU64,
    pub(crate) tls_ok: AtomicU64,
    pub(crate) tls_failed: AtomicU64,
    /// Zip central directories read; handed to each mount's fops
    /// ([`warren_vfs::Fops::count_directory_loads`]).
    pub(crate) zip_loads: Arc<AtomicU64>,
    reloads_ok: AtomicU64,
    reloads_failed: AtomicU64,
    /// Per vhost name, consulted when a vhost is attached (never per
    /// request); bounded by the vhosts ever attached.
    vhosts: Mutex<Vec<Arc<VhostMetrics>>>,
    /// Connections each service loop took, by loop index (grown when a
    /// context makes its loops, never per connection).
    loops: Mutex<Vec<Arc<AtomicU64>>>,
}

/// The counters of one vhost name.
#[derive(Debug)]
pub(crate) struct VhostMetrics {
    name: String,
    /// Responses by status class, 1xx to 5xx.
    responses: [AtomicU64; 5],
}

impl VhostMetrics {
    /// Counts a transaction that ended with `status` (one outside 100 to
    /// 599, such as 0 for a connection that went away before any answer,
    /// is not counted).
    pub(crate) fn response(&self, status: u16) {
        if let Some(c) = (status / 100).checked_sub(1).and_then(|i| self.responses.get(usize::from(i))) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Adds one, relaxed: nothing is ordered by a counter.
pub(crate) fn inc(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

impl Metrics {
    /// New metrics, all zero.
    pub fn new() -> Metrics {
        Metrics::default()
    }

    /// Counts a configuration reload, `ok` or failed (`warren_reloads_total`).
    /// Called by whoever reloads (the `warren` binary on SIGHUP).
    pub fn reloaded(&self, ok: bool) {
        inc(if ok { &self.reloads_ok } else { &self.reloads_failed });
    }

    /// The counters of the vhost called `name`, made on first use. Names
    /// are compared as the Host header is matched, without case.
    pub(crate) fn vhost(&self, name: &str) -> Arc<VhostMetrics> {
        let mut vhosts = self.vhosts.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(v) = vhosts.iter().find(|v| v.name.eq_ignore_ascii_case(name)) {
            return Arc::clone(v);
        }
        let v = Arc::new(VhostMetrics { name: name.to_string(), responses: Default::default() });
        vhosts.push(Arc::clone(&v));
        v
    }

    fn gauge(&self, role: ConnRole) -> &AtomicU64 {
        &self.open[role as usize]
    }

    /// A connection began in `role`.
    /// The counter of connections service loop `tsi` takes.
    pub(crate) fn loop_counter(&self, tsi: usize) -> Arc<AtomicU64> {
        let mut loops = self.loops.lock().unwrap_or_else(|e| e.into_inner());
        while loops.len() <= tsi {
            loops.push(Arc::default());
        }
        Arc::clone(&loops[tsi])
    }

    pub(crate) fn conn_opened(&self, role: ConnRole) {
        inc(self.gauge(role));
    }

    /// A connection in `role` ended.
    pub(crate) fn conn_closed(&self, role: ConnRole) {
        self.gauge(role).fetch_sub(1, Ordering::Relaxed);
    }

    /// A connection went from `from` to `to` (a handshake done, an upgrade).
    #[cfg_attr(not(any(feature = "ws", feature = "tls")), allow(dead_code))]
    pub(crate) fn conn_became(&self, from: ConnRole, to: ConnRole) {
        self.conn_opened(to);
        self.conn_closed(from);
    }

    /// Connections open now, whatever their role, in every context
    /// counting here.
    pub(crate) fn open_total(&self) -> u64 {
        self.open.iter().map(|g| g.load(Ordering::Relaxed)).sum()
    }

    /// Connections open now in `role`.
    pub(crate) fn open(&self, role: ConnRole) -> u64 {
        self.gauge(role).load(Ordering::Relaxed)
    }

    /// Bytes that crossed a connection's socket.
    pub(crate) fn traffic(&self, received: u64, sent: u64) {
        if received > 0 {
            self.bytes_in.fetch_add(received, Ordering::Relaxed);
        }
        if sent > 0 {
            self.bytes_out.fetch_add(sent, Ordering::Relaxed);
        }
    }

    /// Everything, in the Prometheus text exposition format 0.0.4: a
    /// `# HELP` and a `# TYPE` line before each family, then its samples;
    /// label values escaped. Serve it with [`CONTENT_TYPE`].
    pub fn render(&self) -> String {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let mut out = String::with_capacity(4096);
        family(
            &mut out,
            "warren_connections_open",
            "gauge",
            "Connections open now, by what they are doing.",
            &[
                (&[("role", "tls_handshake")], self.open(ConnRole::TlsHandshake)),
                (&[("role", "http")], self.open(ConnRole::Http)),
                (&[("role", "websocket")], self.open(ConnRole::Ws)),
                (&[("role", "raw")], self.open(ConnRole::Raw)),
            ],
        );
        family(
            &mut out,
            "warren_connections_accepted_total",
            "counter",
            "Connections accepted.",
            &[(&[], get(&self.accepted))],
        );
        family(
            &mut out,
            "warren_connections_refused_total",
            "counter",
            "Connections refused because the connection limit was reached.",
            &[(&[], get(&self.refused))],
        );
        family(
            &mut out,
            "warren_peer_refused_total",
            "counter",
            "Connections closed at accept because their peer address had as many open as allowed (ip-limit-wsi).",
            &[(&[], get(&self.peer_refused))],
        );
        family(
            &mut out,
            "warren_peer_waits_total",
            "counter",
            "Requests that waited because their peer address had as many in progress as allowed (ip-limit-ah).",
            &[(&[], get(&self.peer_waits))],
        );
        let loops: Vec<u64> = self.loops.lock().unwrap_or_else(|e| e.into_inner()).iter().map(|c| get(c)).collect();
        let names: Vec<String> = (0..loops.len()).map(|i| i.to_string()).collect();
        let samples: Vec<([(&str, &str); 1], u64)> =
            names.iter().zip(&loops).map(|(name, &n)| ([("loop", name.as_str())], n)).collect();
        let samples: Vec<(&[(&str, &str)], u64)> = samples.iter().map(|(l, n)| (&l[..], *n)).collect();
        family(
            &mut out,
            "warren_loop_connections_total",
            "counter",
            "Connections each service loop took (count-threads).",
            &samples,
        );
        let vhosts: Vec<Arc<VhostMetrics>> = self.vhosts.lock().unwrap_or_else(|e| e.into_inner()).clone();
        const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];
        let samples: Vec<([(&str, &str); 2], u64)> = vhosts
            .iter()
            .flat_map(|v| {
                CLASSES
                    .iter()
                    .zip(&v.responses)
                    .map(|(class, n)| ([("vhost", v.name.as_str()), ("class", *class)], get(n)))
            })
            .collect();
        let samples: Vec<(&[(&str, &str)], u64)> = samples.iter().map(|(l, n)| (&l[..], *n)).collect();
        family(
            &mut out,
            "warren_http_requests_total",
            "counter",
            "HTTP transactions ended, by vhost and the status class of the response.",
            &samples,
        );
        family(
            &mut out,
            "warren_received_bytes_total",
            "counter",
            "Bytes read from client sockets (TLS records included).",
            &[(&[], get(&self.bytes_in))],
        );
        family(
            &mut out,
            "warren_sent_bytes_total",
            "counter",
            "Bytes written to client sockets (TLS records included).",
            &[(&[], get(&self.bytes_out))],
        );
        family(
            &mut out,
            "warren_cgi_running",
            "gauge",
            "CGI programs serving a request now.",
            &[(&[], get(&self.cgi_running))],
        );
        family(
            &mut out,
            "warren_cgi_waiting",
            "gauge",
            "Requests waiting for a CGI slot: a mount's process limit, or a FastCGI server's request limit.",
            &[(&[], get(&self.cgi_waiting))],
        );
        family(
            &mut out,
            "warren_cgi_started_total",
            "counter",
            "CGI programs started.",
            &[(&[], get(&self.cgi_started))],
        );
        family(
            &mut out,
            "warren_cgi_timeouts_total",
            "counter",
            "CGI programs ended because they made no progress within their timeout.",
            &[(&[], get(&self.cgi_timeouts))],
        );
        family(
            &mut out,
            "warren_websocket_upgrades_total",
            "counter",
            "WebSocket upgrades accepted (open ones: warren_connections_open{role=\"websocket\"}).",
            &[(&[], get(&self.ws_upgrades))],
        );
        family(
            &mut out,
            "warren_tls_handshakes_total",
            "counter",
            "TLS handshakes, by result.",
            &[(&[("result", "ok")], get(&self.tls_ok)), (&[("result", "failed")], get(&self.tls_failed))],
        );
        family(
            &mut out,
            "warren_zip_directory_loads_total",
            "counter",
            "Zip central directories read (at first use, and again when an archive changes).",
            &[(&[], get(&self.zip_loads))],
        );
        family(
            &mut out,
            "warren_reloads_total",
            "counter",
            "Configuration reloads, by result.",
            &[(&[("result", "ok")], get(&self.reloads_ok)), (&[("result", "failed")], get(&self.reloads_failed))],
        );
        out
    }
}

/// One family: its `# HELP` and `# TYPE` lines, then its samples.
fn family(out: &mut String, name: &str, kind: &str, help: &str, samples: &[(&[(&str, &str)], u64)]) {
    let _ = writeln!(out, "# HELP {name} {}", escape_help(help));
    let _ = writeln!(out, "# TYPE {name} {kind}");
    for (labels, value) in samples {
        out.push_str(name);
        if !labels.is_empty() {
            out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                let _ = write!(out, "{k}=\"{}\"", escape_label(v));
            }
            out.push('}');
        }
        let _ = writeln!(out, " {value}");
    }
}

/// A label value as the text format wants it: `\`, `"` and newline
/// escaped.
fn escape_label(v: &str) -> String {
    let mut s = String::with_capacity(v.len());
    for ch in v.chars() {
        match ch {
            '\\' => s.push_str("\\\\"),
            '"' => s.push_str("\\\""),
            '\n' => s.push_str("\\n"),
            c => s.push(c),
        }
    }
    s
}

/// A help text as the text format wants it: `\` and newline escaped.
fn escape_help(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape_label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
        let m = Metrics::new();
        m.vhost("we\"ird").response(404);
        let text = m.render();
        assert!(text.contains("warren_http_requests_total{vhost=\"we\\\"ird\",class=\"4xx\"} 1\n"), "{text}");
    }

    #[test]
    fn statuses_count_by_class_and_vhosts_by_name() {
        let m = Metrics::new();
        let a = m.vhost("a.example");
        for s in [101, 200, 204, 304, 404, 503, 0, 600, 99] {
            a.response(s);
        }
        assert!(Arc::ptr_eq(&a, &m.vhost("A.example")));
        let got: Vec<u64> = a.responses.iter().map(|c| c.load(Ordering::Relaxed)).collect();
        assert_eq!(got, [1, 2, 1, 1, 1]);
    }
}
