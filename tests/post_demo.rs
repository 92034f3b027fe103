//! `protocol-post-demo` (spec PLUG-3) behind `callback://`, and the
//! example configuration in `examples/conf/`, over real sockets and curl.

mod support;

use support::*;

/// Starts warren on a copy of examples/conf whose port is 0.
fn example_server() -> (tempfile::TempDir, Server) {
    let t = tempfile::tempdir().expect("tempdir");
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/conf");
    std::fs::create_dir_all(t.path().join("conf.d")).expect("mkdir");
    std::fs::copy(src.join("conf"), t.path().join("conf")).expect("copy");
    let site = std::fs::read_to_string(src.join("conf.d/localhost")).expect("read");
    let log = t.path().join("access.log");
    let site = site
        .replace("\"port\": \"7681\"", "\"port\": \"0\"")
        .replace("/tmp/warren-example-access.log", &log.to_string_lossy())
        .replace("file://examples/", &format!("file://{}/examples/", env!("CARGO_MANIFEST_DIR")))
        .replace("cgi://examples/", &format!("cgi://{}/examples/", env!("CARGO_MANIFEST_DIR")));
    std::fs::write(t.path().join("conf.d/localhost"), site).expect("write");
    let info = warren::config::load_dir(t.path()).unwrap_or_else(|e| panic!("{e}"));
    (t, Server::start(info))
}

#[test]
fn the_example_configuration_serves_every_mount_kind() {
    let (_t, server) = example_server();
    let r = get(&server, "/");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("server"), Some("warren-example"));
    assert_eq!(r.header("cache-control"), Some("must-revalidate, private, max-age=60"));
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(get(&server, "/private/").status, 401);
    let (ok, body) = curl(&["-u", "demo:demo", &server.url("/private/about.html")]);
    assert!(ok && String::from_utf8_lossy(&body).contains("</html>"));
    let r = get(&server, "/lws/git/libwebsockets");
    assert_eq!(r.header("location"), Some("https://libwebsockets.org/git/libwebsockets"));
    let r = get(&server, "/formtest");
    assert!(r.text().contains("<form"), "GET gets the form");
    // The CGI demos.
    let r = get(&server, "/cgi-bin/env.sh");
    assert_eq!(r.status, 200);
    assert!(r.text().contains("GATEWAY_INTERFACE"), "{}", r.text());
    let r = get(&server, "/cgi.html");
    assert!(r.text().contains("action=\"/cgi-bin/form.py\""), "{}", r.text());
    let (ok, body) = curl(&["-d", "name=%3Cb%3E", &server.url("/cgi-bin/form.py")]);
    assert!(
        ok && String::from_utf8_lossy(&body).contains("<code>&lt;b&gt;</code>"),
        "{}",
        String::from_utf8_lossy(&body)
    );
    let r = get(&server, "/vars/");
    assert!(r.text().contains(concat!("version: warren ", env!("CARGO_PKG_VERSION"))), "{}", r.text());
    // ws-protocols: the echo for upgrades naming none, the mirror by name.
    let mut c = support::ws::WsClient::connect(server.addr, "/", &[]).expect("upgrade");
    c.text("echo?").expect("send");
    assert_eq!(c.recv_message().expect("echo"), (support::ws::TEXT, b"echo?".to_vec()));
    let proto = "Sec-WebSocket-Protocol: lws-mirror-protocol";
    let mut m = support::ws::WsClient::connect(server.addr, "/", &[proto]).expect("upgrade");
    m.text("mirrored").expect("send");
    assert_eq!(m.recv_message().expect("mirror"), (support::ws::TEXT, b"mirrored".to_vec()));
}

#[test]
fn post_demo_takes_urlencoded_multipart_and_chunked() {
    let (t, server) = example_server();
    let url = server.url("/formtest");
    let (ok, body) = curl(&["-d", "text=hello+%3Cworld%3E&send=send", &url]);
    let html = String::from_utf8_lossy(&body);
    assert!(ok);
    assert!(html.contains("<td>text</td><td>13</td><td>hello &lt;world&gt;</td>"), "{html}");
    let upload = t.path().join("up.bin");
    std::fs::write(&upload, pattern(50_000)).expect("write");
    let (ok, body) = curl(&["-F", "text=multi part", "-F", &format!("file=@{}", upload.display()), &url]);
    let html = String::from_utf8_lossy(&body);
    assert!(ok);
    assert!(html.contains("<td>text</td><td>10</td><td>multi part</td>"), "{html}");
    assert!(html.contains("file up.bin (50000 bytes, not kept)"), "{html}");
    let (ok, body) = curl(&["-H", "Transfer-Encoding: chunked", "-d", "text=chunked+body", &url]);
    assert!(ok);
    assert!(String::from_utf8_lossy(&body).contains("<td>chunked body</td>"));
    // Over the limit: 413, and the server goes on.
    let big = t.path().join("big.bin");
    std::fs::write(&big, pattern(2 << 20)).expect("write");
    let (_, code) =
        curl(&["-o", "/dev/null", "-w", "%{http_code}", "--data-binary", &format!("@{}", big.display()), &url]);
    assert_eq!(code, b"413");
    assert_eq!(get(&server, "/index.html").status, 200);
}
