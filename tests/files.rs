//! File mounts over a real socket: bodies, HEAD, errors, redirects,
//! containment (spec FILE-*, ERR-*, REDIR-*, HTTP-*).

mod support;

use std::io::Write;
use std::time::Duration;
use support::*;
use warren::ContextInfo;

#[test]
fn bodies_are_byte_exact() {
    let (_t, root) = site();
    let server = Server::files(&root);
    let r = get(&server, "/data.bin");
    assert_eq!(r.status, 200);
    assert_eq!(r.body, pattern(100 * 1024 + 7));
    assert_eq!(r.header("content-length"), Some("102407"));
    assert_eq!(r.header("content-type"), Some("application/octet-stream"));
    assert!(r.header("last-modified").is_some_and(|d| httpdate::parse_http_date(d).is_ok()));
    assert!(r.header("date").is_some());
    assert!(r.header("etag").is_some_and(|e| e.starts_with('"') && e.ends_with('"')));

    let r = get(&server, "/index.html");
    assert_eq!((r.status, r.text().as_str()), (200, "<h1>root index</h1>\n"));
    assert_eq!(r.header("content-type"), Some("text/html"));

    let r = get(&server, "/empty.txt");
    assert_eq!((r.status, r.body.len()), (200, 0));
    assert_eq!(r.header("content-length"), Some("0"));

    let r = get(&server, "/a%20b.txt");
    assert_eq!((r.status, r.text().as_str()), (200, "spaced\n"));
}

#[test]
fn curl_downloads_match() {
    let (_t, root) = site();
    let server = Server::files(&root);
    let (ok, body) = curl(&[&server.url("/data.bin")]);
    assert!(ok);
    assert_eq!(body, pattern(100 * 1024 + 7));
    // Two URLs on one curl invocation reuse the connection (keep-alive).
    let (ok, body) = curl(&[&server.url("/index.html"), &server.url("/sub/")]);
    assert!(ok);
    assert_eq!(body, b"<h1>root index</h1>\n<p>sub index</p>\n");
}

#[test]
fn head_has_headers_and_no_body() {
    // FILE-8
    let (_t, root) = site();
    let server = Server::files(&root);
    let mut s = server.connect();
    s.write_all(b"HEAD /data.bin HTTP/1.1\r\nHost: x\r\n\r\nGET /index.html HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("write");
    let mut rd = Reader::new(s);
    let head = rd.response(true).expect("head");
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-length"), Some("102407"));
    // The next response starts right after HEAD's empty line: no body was sent.
    let next = rd.response(false).expect("get");
    assert_eq!(next.text(), "<h1>root index</h1>\n");
}

#[test]
fn missing_file_gets_styled_404() {
    // ERR-1
    let (_t, root) = site();
    let server = Server::files(&root);
    let r = get(&server, "/no/such/file.html");
    assert_eq!(r.status, 404);
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    let body = r.text();
    assert!(body.contains(r#"<link rel="stylesheet" type="text/css" href="/error.css"/>"#), "{body}");
    assert!(body.contains("<h1>404</h1>"), "{body}");
    assert!(body.len() <= 510);
    // A directory without a default document: 404 too, no listing.
    assert_eq!(get(&server, "/nodefault/").status, 404);
}

#[test]
fn directories_redirect_to_slash() {
    // FILE-3 [REC], REDIR-1
    let (_t, root) = site();
    let server = Server::files(&root);
    let r = get(&server, "/sub?x=1");
    assert_eq!(r.status, 301);
    assert_eq!(r.header("location"), Some("http://localhost/sub/?x=1"));
    let r = get(&server, "/sub/");
    assert_eq!((r.status, r.text().as_str()), (200, "<p>sub index</p>\n"));
    let r = get(&server, "/");
    assert_eq!(r.text(), "<h1>root index</h1>\n");

    // A mountpoint requested without its slash.
    let app = Server::start(ContextInfo::new().vhost(vhost().mount(files_mount("/app", &root))));
    let r = get(&app, "/app");
    assert_eq!((r.status, r.header("location")), (301, Some("http://localhost/app/")));
    assert_eq!(get(&app, "/app/").text(), "<h1>root index</h1>\n");
    assert_eq!(get(&app, "/app/sub/").text(), "<p>sub index</p>\n");
    // Whole segments only (MNT-1): /apple is not under /app.
    assert_eq!(get(&app, "/apple").status, 404);
    assert_eq!(get(&app, "/index.html").status, 404);
}

#[test]
fn nothing_outside_the_origin_is_served() {
    // FILE-4 [REC]
    let (_t, root) = site();
    let server = Server::files(&root);
    let attempts = [
        "/../secret.txt",
        "/sub/../../secret.txt",
        "/%2e%2e/secret.txt",
        "/%2E%2E/secret.txt",
        "/sub/%2e%2e/%2e%2e/secret.txt",
        "/..%2fsecret.txt",
        "/%2fetc%2fpasswd",
        "/sub%2f..%2f..%2fsecret.txt",
        "/secret.txt%00.html",
        "/escape",
        "/..\\secret.txt",
    ];
    for path in attempts {
        let mut s = server.connect();
        write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").expect("write");
        let r = Reader::new(s).response(false).expect("response");
        assert!(matches!(r.status, 400 | 403 | 404), "{path}: {}", r.status);
        assert!(!r.text().contains("TOP-SECRET"), "{path} leaked");
    }
    // A raw NUL in the target.
    let mut s = server.connect();
    s.write_all(b"GET /index.html\0 HTTP/1.1\r\nHost: x\r\n\r\n").expect("write");
    let r = Reader::new(s).response(false).expect("response");
    assert!(matches!(r.status, 400 | 403), "{}", r.status);
    // curl's --path-as-is keeps the dots on the wire.
    let (_, body) = curl(&["--path-as-is", &server.url("/../secret.txt")]);
    assert!(!String::from_utf8_lossy(&body).contains("TOP-SECRET"));
}

#[test]
fn three_pipelined_requests_in_order() {
    // HTTP-10
    let (_t, root) = site();
    let server = Server::files(&root);
    let mut s = server.connect();
    s.write_all(
        b"GET /index.html HTTP/1.1\r\nHost: x\r\n\r\n\
          GET /data.bin HTTP/1.1\r\nHost: x\r\n\r\n\
          GET /sub/index.html HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .expect("write");
    let mut rd = Reader::new(s);
    assert_eq!(rd.response(false).expect("1").text(), "<h1>root index</h1>\n");
    assert_eq!(rd.response(false).expect("2").body, pattern(100 * 1024 + 7));
    assert_eq!(rd.response(false).expect("3").text(), "<p>sub index</p>\n");
    // Still open for more.
    rd.stream.write_all(b"GET /empty.txt HTTP/1.1\r\nHost: x\r\n\r\n").expect("write");
    assert_eq!(rd.response(false).expect("4").status, 200);
}

#[test]
fn error_statuses() {
    let (_t, root) = site();
    let server = Server::files(&root);
    let long_uri = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(5000));
    let big_head = format!("GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n", "b".repeat(9000));
    let cases: Vec<(String, u16)> = vec![
        ("POST /index.html HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc".into(), 405),
        ("DELETE /index.html HTTP/1.1\r\nHost: x\r\n\r\n".into(), 405),
        ("this is not http\r\n\r\n".into(), 400),
        ("GET / HTTP/1.1\r\n\r\n".into(), 400),
        ("GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n".into(), 400),
        (long_uri, 414),
        (big_head, 431),
        ("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n".into(), 501),
        ("GET / HTTP/2.0\r\nHost: x\r\n\r\n".into(), 505),
        ("GET / HTTP/1.7\r\nHost: x\r\n\r\n".into(), 505),
    ];
    for (req, want) in cases {
        let r = request(&server, &req);
        assert_eq!(r.status, want, "{:?}", &req[..req.len().min(60)]);
        assert!(r.text().contains(&format!("<h1>{want}</h1>")), "styled page for {want}");
        if want == 405 {
            assert_eq!(r.header("allow"), Some("GET, HEAD"));
        }
    }
    // The server still serves after all that.
    assert_eq!(get(&server, "/index.html").status, 200);
}

#[test]
fn http10_closes_unless_keep_alive() {
    // HTTP-9
    let (_t, root) = site();
    let server = Server::files(&root);
    let mut s = server.connect();
    s.write_all(b"GET /index.html HTTP/1.0\r\n\r\n").expect("write");
    let mut rd = Reader::new(s);
    let r = rd.response(false).expect("response");
    assert_eq!((r.version.as_str(), r.status), ("HTTP/1.0", 200));
    assert!(rd.closed_within(Duration::from_secs(5)));

    let mut s = server.connect();
    s.write_all(b"GET /index.html HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").expect("write");
    let mut rd = Reader::new(s);
    let r = rd.response(false).expect("response");
    assert_eq!(r.header("connection"), Some("keep-alive"));
    rd.stream.write_all(b"GET /sub/ HTTP/1.0\r\n\r\n").expect("write");
    assert_eq!(rd.response(false).expect("second").text(), "<p>sub index</p>\n");
}

#[test]
fn error_document_404_redirects_then_serves_404() {
    // ERR-4
    let (_t, root) = site();
    std::fs::write(root.join("oops.html"), b"custom not found\n").expect("write");
    let server = Server::start(
        ContextInfo::new().vhost(vhost().mount(files_mount("/", &root)).error_document_404("/oops.html")),
    );
    let r = get(&server, "/missing");
    assert_eq!((r.status, r.header("location")), (302, Some("http://localhost/oops.html")));
    let r = get(&server, "/oops.html");
    assert_eq!((r.status, r.text().as_str()), (404, "custom not found\n"));
}

#[test]
fn vhost_headers_on_every_response() {
    // HDR-3
    let (_t, root) = site();
    let server =
        Server::start(ContextInfo::new().vhost(
            vhost().mount(files_mount("/", &root)).header("X-Frame-Options", "deny").server_string("warren-test"),
        ));
    for path in ["/index.html", "/missing", "/sub"] {
        let r = get(&server, path);
        assert_eq!(r.header("x-frame-options"), Some("deny"), "{path}");
        assert_eq!(r.header("server"), Some("warren-test"), "{path}");
    }
}

#[test]
fn an_empty_body_keeps_the_connection() {
    // Some clients send Content-Length: 0 on GET.
    let (_t, root) = site();
    let server = Server::files(&root);
    let mut s = server.connect();
    s.write_all(
        b"GET /index.html HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\nGET /sub/ HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .expect("write");
    let mut rd = Reader::new(s);
    let first = rd.response(false).expect("first");
    assert_eq!((first.status, first.header("connection")), (200, None));
    assert_eq!(rd.response(false).expect("second").text(), "<p>sub index</p>\n");
}

#[test]
fn redirects_never_become_scheme_relative() {
    // Without a usable Host, Location is a path; leading slashes collapse.
    let (_t, root) = site();
    let server = Server::files(&root);
    let r = request(&server, "GET //sub HTTP/1.0\r\n\r\n");
    assert_eq!((r.status, r.header("location")), (301, Some("/sub/")));
    let r = request(&server, "GET ///sub HTTP/1.1\r\nHost: a/b\r\nConnection: close\r\n\r\n");
    assert_eq!((r.status, r.header("location")), (301, Some("/sub/")));
}

/// Wraps another filesystem: counts opens, adds one virtual file.
#[derive(Debug)]
struct Counting {
    inner: std::sync::Arc<dyn warren::vfs::Fops>,
    opens: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl warren::vfs::Fops for Counting {
    fn open(
        &self,
        path: &warren::vfs::VPath,
        flags: warren::vfs::OpenFlags,
    ) -> std::io::Result<Box<dyn warren::vfs::FileHandle>> {
        self.opens.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if path.as_str() == "virtual.txt" {
            return Ok(Box::new(warren::vfs::MemoryFile::new(b"made up\n".to_vec(), None)));
        }
        self.inner.open(path, flags)
    }
}

#[test]
fn a_context_fops_factory_wraps_the_default_chain() {
    // VFS-4: user fops on the context, wrapping the default chain.
    let (_t, root) = site();
    let opens = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = opens.clone();
    let info = ContextInfo::new().vhost(vhost().mount(warren::Mount::dir("/", &root))).fops_factory(move |path| {
        let inner = warren::default_fops(path)?;
        Ok(std::sync::Arc::new(Counting { inner, opens: counter.clone() }) as std::sync::Arc<dyn warren::vfs::Fops>)
    });
    let server = Server::start(info);
    assert_eq!(get(&server, "/virtual.txt").text(), "made up\n");
    assert_eq!(get(&server, "/index.html").text(), "<h1>root index</h1>\n");
    assert_eq!(get(&server, "/missing").status, 404);
    assert_eq!(opens.load(std::sync::atomic::Ordering::Relaxed), 3);
}

#[test]
fn vhosts_can_be_added_to_a_running_server() {
    // VH-4, VH-5: later vhosts share a port's socket or open their own.
    let (t, root) = site();
    let other = t.path().join("other");
    std::fs::create_dir_all(&other).expect("mkdir");
    std::fs::write(other.join("index.html"), b"added\n").expect("write");
    let server = Server::files(&root);
    let wait = |rx: std::sync::mpsc::Receiver<warren::Result<std::net::SocketAddr>>| {
        rx.recv_timeout(Duration::from_secs(5)).expect("the loop answers")
    };
    // Same address as the first vhost: shares its socket, chosen by Host.
    let shared = wait(server.handle.add_vhost(
        warren::VhostInfo::new("added.example", "127.0.0.1:0".parse().expect("addr")).mount(files_mount("/", &other)),
    ))
    .expect("added");
    assert_eq!(shared, server.addr);
    let r = request(&server, "GET / HTTP/1.1\r\nHost: added.example\r\nConnection: close\r\n\r\n");
    assert_eq!(r.text(), "added\n");
    assert_eq!(get(&server, "/").text(), "<h1>root index</h1>\n", "unknown host: the first vhost");
    // A new address: its own listener.
    let own = wait(server.handle.add_vhost(
        warren::VhostInfo::new("own", "127.0.0.2:0".parse().expect("addr")).mount(files_mount("/", &other)),
    ))
    .expect("added");
    // (Its port may be the same number: another address, another socket.)
    assert_ne!(own, server.addr);
    assert_eq!(own.ip(), "127.0.0.2".parse::<std::net::IpAddr>().expect("ip"));
    let mut s = std::net::TcpStream::connect(own).expect("connect");
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").expect("write");
    assert_eq!(Reader::new(s).response(false).expect("response").text(), "added\n");
    // A broken one is refused with a reason; the server goes on.
    let e = wait(server.handle.add_vhost(
        warren::VhostInfo::new("bad", "127.0.0.1:0".parse().expect("addr")).mount(warren::Mount::callback("/", "nope")),
    ))
    .expect_err("refused");
    assert!(e.to_string().contains("nope"), "{e}");
    assert_eq!(get(&server, "/index.html").status, 200);
}
