//! The metrics endpoint (`warren-metrics` on a `callback://` mount, the
//! Prometheus text format 0.0.4): its counters move with real traffic
//! over real sockets (files, WebSocket, CGI, TLS, zip archives), and what
//! it serves parses strictly as that format.

mod support;

use std::collections::BTreeMap;
use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::tls::{tls_request, Ca, ClientOpts};
use support::ws::WsClient;
use support::*;
use warren::plugins::metrics::NAME;
use warren::tls::TlsConfig;
use warren::vfs::{PlainFops, VPath, ZipFops};
use warren::{ContextInfo, Metrics, Mount, VhostInfo};

/// One scrape, parsed: each series (`name{labels}` as written) and its
/// value.
type Scrape = BTreeMap<String, f64>;

/// A strict reader of the text format 0.0.4 as warren writes it: every
/// family has `# HELP` then `# TYPE` (counter or gauge) before its
/// samples, every sample belongs to the family announced last, names
/// are valid metric names (counters end in `_total`), label values are
/// quoted with only `\\`, `\"` and `\n` escapes, values are numbers, no
/// series or family appears twice, and the text ends with a newline.
fn parse(text: &str) -> Result<Scrape, String> {
    fn name_ok(n: &str) -> bool {
        let mut cs = n.chars();
        matches!(cs.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':')
            && cs.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    }
    if !text.ends_with('\n') {
        return Err("no newline at the end".into());
    }
    let mut out = Scrape::new();
    let mut families = Vec::<String>::new();
    let mut help: Option<String> = None;
    let mut current: Option<(String, String)> = None;
    for (i, line) in text.lines().enumerate() {
        let at = |why: &str| format!("line {}: {why}: {line:?}", i + 1);
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, doc) = rest.split_once(' ').ok_or_else(|| at("HELP without text"))?;
            if !name_ok(name) || doc.is_empty() {
                return Err(at("bad HELP"));
            }
            if families.iter().any(|f| f == name) {
                return Err(at("family repeated"));
            }
            help = Some(name.to_string());
            current = None;
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').ok_or_else(|| at("TYPE without a type"))?;
            if help.as_deref() != Some(name) {
                return Err(at("TYPE not after its HELP"));
            }
            match kind {
                "counter" if name.ends_with("_total") => {}
                "gauge" if !name.ends_with("_total") => {}
                _ => return Err(at("bad type (or counter name)")),
            }
            families.push(name.to_string());
            current = Some((name.to_string(), kind.to_string()));
            help = None;
            continue;
        }
        if line.starts_with('#') || line.is_empty() {
            return Err(at("a comment or blank line warren does not write"));
        }
        let (family, _) = current.as_ref().ok_or_else(|| at("a sample before its TYPE"))?;
        let name_end = line.find(['{', ' ']).ok_or_else(|| at("no value"))?;
        let name = &line[..name_end];
        if name != family {
            return Err(at("a sample of another family"));
        }
        let mut rest = &line[name_end..];
        let mut series = name.to_string();
        if let Some(labels) = rest.strip_prefix('{') {
            series.push('{');
            let mut s = labels;
            let mut first = true;
            loop {
                if let Some(after) = s.strip_prefix('}') {
                    s = after;
                    break;
                }
                if !first {
                    s = s.strip_prefix(',').ok_or_else(|| at("labels not separated by a comma"))?;
                    series.push(',');
                }
                first = false;
                let eq = s.find('=').ok_or_else(|| at("label without ="))?;
                let key = &s[..eq];
                if !name_ok(key) || key.contains(':') {
                    return Err(at("bad label name"));
                }
                s = s[eq + 1..].strip_prefix('"').ok_or_else(|| at("label value not quoted"))?;
                let mut value = String::new();
                let mut chars = s.char_indices();
                let end = loop {
                    match chars.next() {
                        None => return Err(at("label value not closed")),
                        Some((j, '"')) => break j,
                        Some((_, '\\')) => match chars.next() {
                            Some((_, '\\')) => value.push('\\'),
                            Some((_, '"')) => value.push('"'),
                            Some((_, 'n')) => value.push('\n'),
                            _ => return Err(at("bad escape in a label value")),
                        },
                        Some((_, '\n')) => return Err(at("raw newline in a label value")),
                        Some((_, c)) => value.push(c),
                    }
                };
                series.push_str(&format!("{key}={value:?}"));
                s = &s[end + 1..];
            }
            series.push('}');
            rest = s;
        }
        let value = rest.strip_prefix(' ').ok_or_else(|| at("no space before the value"))?;
        let value: f64 = value.parse().map_err(|_| at("value not a number"))?;
        if out.insert(series, value).is_some() {
            return Err(at("series repeated"));
        }
    }
    if help.is_some() {
        return Err("a HELP without its TYPE at the end".into());
    }
    Ok(out)
}

fn metric(s: &Scrape, series: &str) -> f64 {
    *s.get(series).unwrap_or_else(|| panic!("no series {series} in {s:#?}"))
}

/// `name{vhost="…",class="…"}` as [`parse`] keys it.
fn requests(vhost: &str, class: &str) -> String {
    format!("warren_http_requests_total{{vhost={vhost:?},class={class:?}}}")
}

const WS_OPEN: &str = "warren_connections_open{role=\"websocket\"}";

/// A vhost named `name` with the metrics plugin at /metrics.
fn with_metrics(mut v: VhostInfo) -> VhostInfo {
    assert!(v.plugin(NAME));
    v.mount(Mount::callback("/metrics", NAME))
}

/// Scrapes over HTTP (checking the answer's type), and parses.
fn scrape(server: &Server) -> Scrape {
    let r = get(server, "/metrics");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("text/plain; version=0.0.4; charset=utf-8"));
    parse(&r.text()).unwrap_or_else(|e| panic!("{e}\n{}", r.text()))
}

/// Scrapes until `done` holds of the scrape (something the server does
/// after the client has seen the end of it, such as a close), up to a
/// generous deadline that only a hang reaches.
fn scrape_until(server: &Server, what: &str, done: impl Fn(&Scrape) -> bool) -> Scrape {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let s = scrape(server);
        if done(&s) {
            return s;
        }
        assert!(Instant::now() < deadline, "{what}: never seen in {s:#?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn the_text_format_reader_is_strict() {
    let good = "# HELP a_total x\n# TYPE a_total counter\na_total{l=\"q\\\"\\\\\\n\"} 1\n";
    assert_eq!(parse(good).expect("good").keys().next().map(String::as_str), Some("a_total{l=\"q\\\"\\\\\\n\"}"));
    for bad in [
        "# TYPE a_total counter\na_total 1\n",
        "# HELP a_total x\n# TYPE a_total counter\nb_total 1\n",
        "# HELP a x\n# TYPE a counter\na 1\n",
        "# HELP a_total x\n# TYPE a_total counter\na_total{l=q} 1\n",
        "# HELP a_total x\n# TYPE a_total counter\na_total{l=\"\\x\"} 1\n",
        "# HELP a_total x\n# TYPE a_total counter\na_total one\n",
        "# HELP a_total x\n# TYPE a_total counter\na_total 1\na_total 2\n",
        "# HELP a_total x\n# TYPE a_total counter\na_total 1",
    ] {
        assert!(parse(bad).is_err(), "accepted {bad:?}");
    }
}

/// Statuses by vhost and class, bytes both ways, connections, the
/// WebSocket gauge and upgrades, and the endpoint's own rules (HEAD, 405).
#[test]
fn counters_move_with_http_and_websocket_traffic() {
    let (_t, root) = site();
    let body = std::fs::read(root.join("data.bin")).expect("read");
    let mut a = with_metrics(vhost().mount(files_mount("/", &root)));
    assert!(a.plugin("lws-mirror-protocol"));
    let a = a.default_protocol("lws-mirror-protocol");
    let b = VhostInfo::new("b.example", SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).mount(files_mount("/", &root));
    let server = Server::start(ContextInfo::new().vhost(a).vhost(b));
    let port = server.addr.port();
    assert_eq!(server.handle.stats().accepted, 0);

    let before = scrape(&server);
    for f in [
        "warren_connections_accepted_total",
        "warren_connections_refused_total",
        "warren_received_bytes_total",
        "warren_sent_bytes_total",
        "warren_cgi_running",
        "warren_cgi_started_total",
        "warren_cgi_timeouts_total",
        "warren_websocket_upgrades_total",
        "warren_zip_directory_loads_total",
    ] {
        assert!(before.contains_key(f), "{f} missing");
    }
    for (role, n) in [("tls_handshake", 0.0), ("http", 1.0), ("websocket", 0.0)] {
        // The scrape's own connection is open while it renders.
        assert_eq!(metric(&before, &format!("warren_connections_open{{role={role:?}}}")), n, "{role}");
    }
    assert_eq!(metric(&before, "warren_tls_handshakes_total{result=\"ok\"}"), 0.0);
    assert_eq!(metric(&before, "warren_reloads_total{result=\"failed\"}"), 0.0);

    let (n_ok, n_missing) = (3, 2);
    for _ in 0..n_ok {
        let r = get(&server, "/data.bin");
        assert_eq!((r.status, r.body.len()), (200, body.len()));
    }
    for _ in 0..n_missing {
        assert_eq!(get(&server, "/nothing-here").status, 404);
    }
    // Another vhost of the port, by Host, keeps its own counts.
    let r = request(&server, "GET /index.html HTTP/1.1\r\nHost: b.example\r\nConnection: close\r\n\r\n");
    assert_eq!(r.status, 200);
    let upload = vec![b'u'; 50_000];
    let mut c = server.connect();
    c.write_all(
        format!("POST /index.html HTTP/1.1\r\nHost: b.example\r\nContent-Length: {}\r\n\r\n", upload.len()).as_bytes(),
    )
    .expect("write");
    c.write_all(&upload).expect("write body");
    let r = Reader::new(c).response(false).expect("response");
    assert_eq!(r.status, 405);

    let after = scrape(&server);
    let moved = |series: &str| metric(&after, series) - metric(&before, series);
    // The first scrape was itself a 200 of localhost.
    assert_eq!(moved(&requests("localhost", "2xx")), f64::from(n_ok + 1));
    assert_eq!(moved(&requests("localhost", "4xx")), f64::from(n_missing));
    assert_eq!(moved(&requests("b.example", "2xx")), 1.0);
    assert_eq!(moved(&requests("b.example", "4xx")), 1.0);
    assert_eq!(moved(&requests("localhost", "5xx")), 0.0);
    assert_eq!(moved("warren_connections_accepted_total"), f64::from(n_ok + n_missing + 3));
    let sent = moved("warren_sent_bytes_total");
    assert!(sent >= (n_ok as usize * body.len()) as f64, "sent {sent}");
    let received = moved("warren_received_bytes_total");
    assert!(received >= upload.len() as f64, "received {received}");

    // A WebSocket shows in the gauge while open, and leaves it on close.
    let mut ws = WsClient::connect(server.addr, "/", &[]).expect("upgrade");
    let open = scrape(&server);
    assert_eq!(metric(&open, WS_OPEN), 1.0);
    assert_eq!(metric(&open, "warren_websocket_upgrades_total"), 1.0);
    assert_eq!(metric(&open, &requests("localhost", "1xx")), 1.0, "the 101");
    ws.send(true, 0x8, &1000u16.to_be_bytes()).expect("close");
    assert!(ws.closed_within(Duration::from_secs(20)), "server never closed");
    scrape_until(&server, "the WebSocket leaving the gauge", |s| metric(s, WS_OPEN) == 0.0);

    // HEAD gets the head alone; other methods 405 with Allow.
    let r = request(&server, &format!("HEAD /metrics HTTP/1.1\r\nHost: localhost:{port}\r\nConnection: close\r\n\r\n"));
    assert_eq!(r.status, 200);
    assert!(r.body.is_empty());
    let r = request(&server, "DELETE /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("GET, HEAD"));
    assert!(r.text().contains("<html"), "the styled error page");
}

/// CGI-10 with metrics: a program that times out moves the timeout
/// counter, and the running gauge returns to zero.
#[test]
fn a_cgi_timeout_is_counted() {
    let cgi = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cgi-bin");
    let v = with_metrics(vhost().mount(Mount::cgi("/cgi-bin", &cgi).cgi_timeout(Duration::from_secs(1))));
    let server = Server::start(ContextInfo::new().vhost(v));
    assert_eq!(get(&server, "/cgi-bin/env.sh").status, 200);
    // sleep.sh never answers: 504 once its timeout passes.
    assert_eq!(get(&server, "/cgi-bin/sleep.sh").status, 504);
    let s = scrape(&server);
    assert_eq!(metric(&s, "warren_cgi_started_total"), 2.0);
    assert_eq!(metric(&s, "warren_cgi_timeouts_total"), 1.0);
    assert_eq!(metric(&s, "warren_cgi_running"), 0.0);
    assert_eq!(metric(&s, &requests("localhost", "5xx")), 1.0);
}

/// The running gauge while a program runs (its timeout far away), and its
/// return to zero when the client goes away and the program is ended
/// (CGI-9).
#[test]
fn a_running_cgi_program_shows_in_the_gauge() {
    let cgi = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cgi-bin");
    let mount = Mount::cgi("/cgi-bin", &cgi).cgi_timeout(Duration::from_secs(3600));
    let server = Server::start(ContextInfo::new().vhost(with_metrics(vhost().mount(mount))));
    let mut c = server.connect();
    c.write_all(b"GET /cgi-bin/sleep.sh HTTP/1.1\r\nHost: localhost\r\n\r\n").expect("write");
    let s = scrape_until(&server, "the program in the running gauge", |s| metric(s, "warren_cgi_running") == 1.0);
    assert_eq!(metric(&s, "warren_cgi_started_total"), 1.0);
    drop(c);
    let s = scrape_until(&server, "the program leaving the gauge", |s| metric(s, "warren_cgi_running") == 0.0);
    assert_eq!(metric(&s, "warren_cgi_timeouts_total"), 0.0, "ended by the close, not the timeout");
}

/// The open-connections gauge follows connections in and out, and a
/// connection past the limit is counted as refused, not as accepted.
#[test]
fn connection_gauges_and_refusals_are_counted() {
    let (_t, root) = site();
    let limits = warren::Limits { max_connections: Some(3), ..warren::Limits::default() };
    // Held connections stay open however slow the box is.
    let v = with_metrics(vhost().keepalive_timeout(Duration::from_secs(3600)).mount(files_mount("/", &root)));
    let server = Server::start(ContextInfo::new().limits(limits).vhost(v));
    let hold = || {
        let mut s = server.connect();
        s.write_all(b"GET /index.html HTTP/1.1\r\nHost: localhost\r\n\r\n").expect("write");
        let mut rd = Reader::new(s);
        assert_eq!(rd.response(false).expect("response").status, 200);
        rd
    };
    let mut held = vec![hold(), hold()];
    let s = scrape(&server);
    assert_eq!(metric(&s, "warren_connections_open{role=\"http\"}"), 3.0, "two held and the scrape's own");
    assert_eq!(metric(&s, "warren_connections_accepted_total"), 3.0);
    assert_eq!(metric(&s, "warren_connections_refused_total"), 0.0);
    // The scrape's connection leaves the gauge once the server has closed
    // it; then a third held one fills the limit and a fourth is refused.
    let metrics = server.handle.metrics();
    let now = || parse(&metrics.render()).unwrap_or_else(|e| panic!("{e}"));
    let deadline = Instant::now() + Duration::from_secs(30);
    while metric(&now(), "warren_connections_open{role=\"http\"}") != 2.0 {
        assert!(Instant::now() < deadline, "the scrape's connection never left the gauge");
        std::thread::sleep(Duration::from_millis(10));
    }
    held.push(hold());
    let mut extra = Reader::new(server.connect());
    assert_eq!(extra.response(false).expect("503").status, 503);
    let s = now();
    assert_eq!(metric(&s, "warren_connections_refused_total"), 1.0);
    assert_eq!(metric(&s, "warren_connections_accepted_total"), 4.0, "the refused one is not");
    assert_eq!(metric(&s, "warren_connections_open{role=\"http\"}"), 3.0);
    assert_eq!(server.handle.stats().refused, 1);
    // Their closes free the slots (a scrape before that would be refused).
    drop(held);
    let deadline = Instant::now() + Duration::from_secs(30);
    while metric(&now(), "warren_connections_open{role=\"http\"}") != 0.0 {
        assert!(Instant::now() < deadline, "the held connections never left the gauge");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(metric(&scrape(&server), "warren_connections_open{role=\"http\"}"), 1.0, "the scrape's own");
}

/// TLS handshakes, completed and failed, a connection still in its
/// handshake in the gauge, and bytes counted as records on the wire (more
/// than the plaintext).
#[test]
fn tls_handshakes_are_counted() {
    let t = tempfile::tempdir().expect("tempdir");
    let ca = Ca::new(t.path(), "metrics test CA");
    let leaf = ca.server("site", &["localhost"], |_| {});
    let root = t.path().join("root");
    std::fs::create_dir_all(&root).expect("mkdir");
    std::fs::write(root.join("page.txt"), pattern(10_000)).expect("write");
    let tls =
        with_metrics(vhost().tls(TlsConfig::from_pem_files(&leaf.cert, &leaf.key)).mount(files_mount("/", &root)));
    let metrics = Arc::new(Metrics::new());
    // The connection left in its handshake stays there however slow the box is.
    let limits = warren::Limits { tls_handshake_timeout: Duration::from_secs(3600), ..warren::Limits::default() };
    let server = Server::start(ContextInfo::new().vhost(tls).limits(limits).metrics(Arc::clone(&metrics)));
    let req = "GET /page.txt HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    let r = tls_request(server.addr, "localhost", &ClientOpts { ca: Some(&ca.path), ..Default::default() }, req)
        .expect("TLS request");
    assert_eq!(r.body, pattern(10_000));
    // Not TLS at all: a failed handshake (the port drops plaintext).
    let mut plain = server.connect();
    plain.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n").expect("write");
    let mut plain = Reader::new(plain);
    assert!(plain.closed_within(Duration::from_secs(20)));
    // Connected before the scrape's connection on the same listener (so
    // accepted first), and silent: still in its handshake at the scrape.
    let silent = server.connect();
    let metrics_req = "GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    let r =
        tls_request(server.addr, "localhost", &ClientOpts { ca: Some(&ca.path), ..Default::default() }, metrics_req)
            .expect("scrape");
    let s = parse(&r.text()).unwrap_or_else(|e| panic!("{e}"));
    // The scrape's own handshake is the second.
    assert_eq!(metric(&s, "warren_tls_handshakes_total{result=\"ok\"}"), 2.0);
    assert_eq!(metric(&s, "warren_tls_handshakes_total{result=\"failed\"}"), 1.0);
    assert_eq!(metric(&s, "warren_connections_open{role=\"tls_handshake\"}"), 1.0, "the silent one");
    assert_eq!(metric(&s, "warren_connections_open{role=\"http\"}"), 1.0, "the scrape's own, past its handshake");
    drop(silent);
    let sent = metric(&s, "warren_sent_bytes_total");
    // Two certificates, the records' overhead, and the page.
    assert!(sent > 10_000.0 + 2.0 * leaf.der.len() as f64, "sent {sent}");
    // The metrics handed in are the context's.
    assert!(metrics.render().contains("warren_tls_handshakes_total{result=\"ok\"} 2\n"));
    assert!(Arc::ptr_eq(&metrics, &server.handle.metrics()));
}

fn write_zip(path: &Path, files: &[(&str, &[u8])]) {
    let mut w = zip::ZipWriter::new(std::fs::File::create(path).expect("create"));
    for (name, data) in files {
        w.start_file(*name, zip::write::SimpleFileOptions::default()).expect("start");
        w.write_all(data).expect("write");
    }
    w.finish().expect("finish");
}

/// Replaces `zip` the way a deploy does: written beside, renamed over.
fn deploy(zip: &Path, files: &[(&str, &[u8])]) {
    let next = zip.with_extension("next");
    write_zip(&next, files);
    std::fs::rename(&next, zip).expect("rename");
}

/// A zip replaced under a mount is read again, and counted; so is the
/// read `default_fops` makes of a `.zip` root at start, before the
/// context could hand it a counter.
#[test]
fn zip_directory_reloads_are_counted() {
    let t = tempfile::tempdir().expect("tempdir");
    let zip: PathBuf = t.path().join("site.zip");
    write_zip(&zip, &[("page.html", b"one\n")]);
    let other = t.path().join("root.zip");
    write_zip(&other, &[("index.html", b"root\n")]);
    // No open-file cache: each request looks at the file on disk.
    let fops =
        ZipFops::archive(Arc::new(PlainFops::new(t.path()).expect("fops")), VPath::new("site.zip").expect("path"));
    let v = with_metrics(vhost().mount(Mount::files("/site", Arc::new(fops))).mount(Mount::dir("/root", &other)));
    let server = Server::start(ContextInfo::new().vhost(v));
    let loads = |s: &Scrape| metric(s, "warren_zip_directory_loads_total");
    assert_eq!(loads(&scrape(&server)), 1.0, "root.zip, read at start");
    assert_eq!(get(&server, "/site/page.html").text(), "one\n");
    assert_eq!(get(&server, "/site/page.html").text(), "one\n");
    assert_eq!(loads(&scrape(&server)), 2.0, "site.zip read once for two requests");
    deploy(&zip, &[("page.html", b"two\n")]);
    assert_eq!(get(&server, "/site/page.html").text(), "two\n");
    assert_eq!(loads(&scrape(&server)), 3.0, "the new site.zip read again");
}

/// Two contexts given the same metrics (a reload's new one beside the
/// old) add up in them, per vhost name; reloads are counted as told.
#[test]
fn contexts_sharing_metrics_add_up() {
    let (_t, root) = site();
    let metrics = Arc::new(Metrics::new());
    let one = Server::start(
        ContextInfo::new().vhost(with_metrics(vhost().mount(files_mount("/", &root)))).metrics(Arc::clone(&metrics)),
    );
    let two = Server::start(
        ContextInfo::new().vhost(with_metrics(vhost().mount(files_mount("/", &root)))).metrics(Arc::clone(&metrics)),
    );
    assert_eq!(get(&one, "/index.html").status, 200);
    assert_eq!(get(&two, "/index.html").status, 200);
    metrics.reloaded(true);
    metrics.reloaded(false);
    metrics.reloaded(false);
    // `two` counts its transaction on its own thread once the response
    // has left, which its client may see first: wait for that, without
    // more connections.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !parse(&metrics.render()).is_ok_and(|s| metric(&s, &requests("localhost", "2xx")) == 2.0) {
        assert!(Instant::now() < deadline, "two's request never counted: {}", metrics.render());
        std::thread::sleep(Duration::from_millis(10));
    }
    let s = scrape(&one);
    assert_eq!(metric(&s, &requests("localhost", "2xx")), 2.0, "the scrape is counted after it renders");
    assert_eq!(metric(&s, "warren_connections_accepted_total"), 3.0);
    assert_eq!(metric(&s, "warren_reloads_total{result=\"ok\"}"), 1.0);
    assert_eq!(metric(&s, "warren_reloads_total{result=\"failed\"}"), 2.0);
    assert_eq!(one.handle.stats().accepted, 3, "stats read the shared metrics");
}

/// An lwsws configuration enables the endpoint with a `ws-protocols`
/// entry and a `callback://` mount; basic auth guards it as any mount.
#[test]
fn a_configuration_enables_it_behind_basic_auth() {
    let (t, root) = site();
    let cfg = t.path().join("cfg");
    std::fs::create_dir_all(cfg.join("conf.d")).expect("mkdir");
    std::fs::write(cfg.join("conf"), r#"{ "global": { "server-string": "warren-metrics-test" } }"#).expect("write");
    let passwords = t.path().join("passwords");
    std::fs::write(&passwords, "scraper:s3cret\n").expect("write");
    std::fs::write(
        cfg.join("conf.d/site"),
        format!(
            r#"{{ "vhosts": [ {{
  "name": "localhost", "port": "0", "interface": "127.0.0.1",
  "ws-protocols": [ {{ "warren-metrics": {{}} }} ],
  "mounts": [
    {{ "mountpoint": "/", "origin": "file://{root}", "default": "index.html" }},
    {{ "mountpoint": "/metrics", "origin": "callback://warren-metrics", "basic-auth": "{passwords}" }}
  ] }} ] }}"#,
            root = root.display(),
            passwords = passwords.display()
        ),
    )
    .expect("write");
    let info = warren::config::load_dir(&cfg).unwrap_or_else(|e| panic!("{e}"));
    let server = Server::start(info);
    assert_eq!(get(&server, "/").status, 200);
    let r = get(&server, "/metrics");
    assert_eq!(r.status, 401, "{}", r.text());
    let r = request(
        &server,
        "GET /metrics HTTP/1.1\r\nHost: localhost\r\nAuthorization: Basic c2NyYXBlcjpzM2NyZXQ=\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.status, 200);
    let s = parse(&r.text()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(metric(&s, &requests("localhost", "2xx")), 1.0);
    assert_eq!(metric(&s, &requests("localhost", "4xx")), 1.0, "the 401");
}

/// A TLS event callback that panics at `Established` costs that
/// connection only, and the gauges come back to zero: the close takes
/// back the role the connection was counted as, not the one a half-done
/// state suggests (the `tls_handshake` gauge stayed at 1 and `http`
/// wrapped to 2^64 - 1 before).
#[test]
fn a_panic_in_the_tls_callback_leaves_the_gauges_whole() {
    let t = tempfile::tempdir().expect("tempdir");
    let ca = Ca::new(t.path(), "metrics test CA");
    let leaf = ca.server("site", &["localhost"], |_| {});
    let root = t.path().join("root");
    std::fs::create_dir_all(&root).expect("mkdir");
    std::fs::write(root.join("page.txt"), b"page").expect("write");
    let tls = TlsConfig::from_pem_files(&leaf.cert, &leaf.key).on_event(|e| match e {
        warren::tls::TlsEvent::Established { .. } => panic!("a callback bug"),
        _ => true,
    });
    let metrics = Arc::new(Metrics::new());
    let server = Server::start(
        ContextInfo::new().vhost(vhost().tls(tls).mount(files_mount("/", &root))).metrics(Arc::clone(&metrics)),
    );
    let req = "GET /page.txt HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    let opts = ClientOpts { ca: Some(&ca.path), ..Default::default() };
    assert!(tls_request(server.addr, "localhost", &opts, req).is_err(), "the connection was dropped");
    // The loop closes it in the turn it panicked; wait for that turn.
    let until = std::time::Instant::now() + Duration::from_secs(60);
    while server.handle.stats().open != 0 {
        assert!(std::time::Instant::now() < until, "still open: {:?}", server.handle.stats());
        std::thread::sleep(Duration::from_millis(10));
    }
    let text = metrics.render();
    let s = parse(&text).unwrap_or_else(|e| panic!("{e}"));
    for role in ["tls_handshake", "http", "websocket"] {
        assert_eq!(metric(&s, &format!("warren_connections_open{{role=\"{role}\"}}")), 0.0, "{text}");
    }
}
