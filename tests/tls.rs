//! TLS (issue 13) driven by real clients against warren on 127.0.0.1:
//! curl, `openssl s_client` and a rustls client, with a CA and
//! certificates made in the test by rcgen. Spec ids: CFG-6/CFG-7 (the
//! TLS keys), VH-1/VH-3 (SNI and Host), REDIR-3 and RAW-4 (plaintext on a
//! TLS port), CGI-2 (HTTPS and the SSL_* variables).

mod support;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::tls::*;
use support::*;
use warren::protocol::{Cx, Event};
use warren::tls::TlsConfig;
use warren::{Action, ContextInfo, Limits, Mount, Protocol, VhostInfo};

/// A temp dir with a CA, a second unrelated CA, and a site root.
struct Pki {
    t: tempfile::TempDir,
    ca: Ca,
    other: Ca,
    root: PathBuf,
}

fn pki() -> Pki {
    let t = tempfile::tempdir().expect("tempdir");
    let ca = Ca::new(t.path(), "warren test CA");
    let other = Ca::new(t.path(), "other CA");
    let root = t.path().join("root");
    std::fs::create_dir_all(&root).expect("mkdir");
    std::fs::write(root.join("index.html"), b"<h1>tls index</h1>\n").expect("write");
    std::fs::write(root.join("big.bin"), pattern(6 << 20)).expect("write");
    Pki { t, ca, other, root }
}

impl Pki {
    fn dir(&self) -> &Path {
        self.t.path()
    }
}

fn local() -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, 0))
}

/// A TLS vhost `name` serving `root`, saying its name in `X-Site`.
fn tls_vhost(name: &str, leaf: &Leaf, root: &Path) -> VhostInfo {
    tls_vhost_with(name, TlsConfig::from_pem_files(&leaf.cert, &leaf.key), root)
}

fn tls_vhost_with(name: &str, tls: TlsConfig, root: &Path) -> VhostInfo {
    VhostInfo::new(name, local()).tls(tls).header("X-Site", name).mount(files_mount("/", root))
}

fn get_req(host: &str, path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n")
}

fn cgi_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cgi-bin")
}

fn write(dir: &Path, name: &str, text: &str) {
    let path = dir.join(name);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).expect("mkdir");
    }
    std::fs::write(path, text).expect("write");
}

/// A config dir: global `init-ssl` (if `init_ssl`), one vhost on
/// 127.0.0.1:0 serving `root` with the extra keys `keys` (JSON members).
fn config_dir(dir: &Path, init_ssl: bool, root: &Path, keys: &str) -> PathBuf {
    let cfg = dir.join(format!("cfg{}", std::fs::read_dir(dir).map_or(0, |d| d.count())));
    let global = if init_ssl { r#"{ "global": { "init-ssl": "1" } }"# } else { r#"{ "global": {} }"# };
    write(&cfg, "conf", global);
    write(
        &cfg,
        "conf.d/site",
        &format!(
            r#"{{ "vhosts": [ {{
  "name": "localhost", "port": "0", "interface": "127.0.0.1",
  {keys},
  "mounts": [ {{ "mountpoint": "/", "origin": "file://{root}" }} ]
}} ] }}"#,
            root = root.display()
        ),
    );
    cfg
}

fn cert_keys(leaf: &Leaf) -> String {
    format!(r#""host-ssl-cert": "{}", "host-ssl-key": "{}""#, leaf.cert.display(), leaf.key.display())
}

/// An HTTP response over TLS to `host` with SNI `sni` (rustls, any cert).
fn over_tls(addr: SocketAddr, sni: &str, host: &str, path: &str) -> Response {
    tls_request(addr, sni, &ClientOpts::default(), &get_req(host, path)).expect("TLS request")
}

/// The status curl reports (`000` when it got no response).
fn curl_code(port: u16, name: &str, ca: &Path, extra: &[&str], path: &str) -> String {
    let mut args = vec!["-o", "/dev/null", "-w", "%{http_code}"];
    args.extend_from_slice(extra);
    let (_, out) = curl_https(port, name, ca, &args, path);
    String::from_utf8_lossy(&out).into_owned()
}

// ---------------------------------------------------------------- 1. SNI

#[test]
fn sni_picks_each_vhosts_certificate_vh1_vh3() {
    let p = pki();
    // a.example's certificate is from one CA, b.example's from another:
    // curl trusting one CA only succeeds with the certificate it signed.
    let a = p.ca.server("a", &["a.example"], |_| {});
    let b = p.other.server("b", &["b.example", "*.b.example"], |_| {});
    let server = Server::start(ContextInfo::new().vhost(tls_vhost("a.example", &a, &p.root)).vhost(tls_vhost(
        "b.example",
        &b,
        &p.root,
    )));
    let port = server.addr.port();
    assert_eq!(curl_code(port, "a.example", &p.ca.path, &[], "/"), "200");
    assert_eq!(curl_code(port, "b.example", &p.other.path, &[], "/"), "200");
    assert_eq!(curl_code(port, "a.example", &p.other.path, &[], "/"), "000", "a.example served b's certificate");
    assert_eq!(curl_code(port, "b.example", &p.ca.path, &[], "/"), "000", "b.example served a's certificate");
    let (ok, head) = curl_https(port, "b.example", &p.other.path, &["-D", "-", "-o", "/dev/null"], "/");
    assert!(ok);
    assert!(String::from_utf8_lossy(&head).to_ascii_lowercase().contains("x-site: b.example"));

    // The certificate itself, as a client that verifies nothing sees it.
    let cert_for = |sni: &str, no_sni: bool| {
        let s = connect(server.addr, sni, &ClientOpts { no_sni, ..Default::default() }).expect("handshake");
        peer_cert(&s)
    };
    assert!(cert_for("a.example", false) == a.der);
    assert!(cert_for("b.example", false) == b.der);
    assert!(cert_for("B.Example", false) == b.der, "SNI compares case-insensitively");
    assert!(cert_for("a.example", true) == a.der, "VH-3: no SNI gets the first vhost's certificate");
    assert!(cert_for("unknown.test", false) == a.der, "VH-1: an unknown SNI gets the port's first vhost");
    assert!(cert_for("sub.b.example", false) == b.der, "VH-1: wildcard parent");
    assert!(cert_for("x.y.b.example", false) == b.der, "VH-1: wildcard parent, deeper");
    // Each gets its vhost too.
    assert_eq!(over_tls(server.addr, "sub.b.example", "sub.b.example", "/").header("x-site"), Some("b.example"));
    assert_eq!(over_tls(server.addr, "nowhere.test", "nowhere.test", "/").header("x-site"), Some("a.example"));

    // openssl s_client sees b's subject and verifies it against b's CA.
    let other_ca = p.other.path.to_string_lossy().into_owned();
    let (ok, out) = s_client(port, &["-servername", "b.example", "-CAfile", &other_ca], HEAD_CLOSE);
    assert!(ok, "{out}");
    assert!(out.contains("CN = b.example") || out.contains("CN=b.example"), "{out}");
    assert!(out.contains("Verify return code: 0 (ok)"), "{out}");
}

// ------------------------------------------------------- 2. SNI vs Host

#[test]
fn host_reselects_the_vhost_but_not_into_one_demanding_a_client_cert_vh3() {
    let p = pki();
    let a = p.ca.server("a", &["a.example"], |_| {});
    let b = p.ca.server("b", &["b.example"], |_| {});
    let c = p.ca.server("c", &["c.example"], |_| {});
    let alice = p.ca.client("alice", "alice");
    let c_tls = TlsConfig::from_pem_files(&c.cert, &c.key).client_ca(&p.ca.path).require_client_cert(true);
    let server = Server::start(
        ContextInfo::new()
            .vhost(tls_vhost("a.example", &a, &p.root))
            .vhost(tls_vhost("b.example", &b, &p.root))
            .vhost(tls_vhost_with("c.example", c_tls, &p.root)),
    );
    let ca = ClientOpts { ca: Some(&p.ca.path), ..Default::default() };
    // VH-3: the handshake was for a; Host b moves the request to b.
    let r = tls_request(server.addr, "a.example", &ca, &get_req("b.example", "/")).expect("request");
    assert_eq!((r.status, r.header("x-site")), (200, Some("b.example")));
    // Host c demands a client certificate the handshake for a did not
    // verify: 421 Misdirected Request, not c's content.
    let r = tls_request(server.addr, "a.example", &ca, &get_req("c.example", "/")).expect("request");
    assert_eq!(r.status, 421);
    assert!(!r.text().contains("tls index"), "c's content was served: {}", r.text());
    // Answered by a, the vhost of the handshake: nothing of c's, not even
    // its headers.
    assert_eq!(r.header("x-site"), Some("a.example"));
    // With the handshake for c (and alice's certificate), c serves.
    let with_cert = ClientOpts { ca: Some(&p.ca.path), cert: Some(&alice), ..Default::default() };
    let r = tls_request(server.addr, "c.example", &with_cert, &get_req("c.example", "/")).expect("request");
    assert_eq!((r.status, r.header("x-site")), (200, Some("c.example")));
    // Leaving c for a vhost that demands nothing is allowed.
    let r = tls_request(server.addr, "c.example", &with_cert, &get_req("a.example", "/")).expect("request");
    assert_eq!((r.status, r.header("x-site")), (200, Some("a.example")));
    // Keep-alive: every request on the connection is checked, not the
    // first alone.
    let mut s = connect(server.addr, "a.example", &ca).expect("connect");
    s.write_all(
        b"GET / HTTP/1.1\r\nHost: c.example\r\n\r\nGET / HTTP/1.1\r\nHost: c.example\r\n\r\n\
          GET / HTTP/1.1\r\nHost: b.example\r\nConnection: close\r\n\r\n",
    )
    .expect("write");
    let mut rd = Reader::new(s);
    assert_eq!(rd.response(false).expect("first").status, 421);
    assert_eq!(rd.response(false).expect("second").status, 421);
    let r = rd.response(false).expect("third");
    assert_eq!((r.status, r.header("x-site")), (200, Some("b.example")));
}

// ----------------------------------------------------------- 3. mutual TLS

/// Answers with what `Request::tls` says.
struct Who;

impl Protocol for Who {
    type Session = String;

    fn name(&self) -> &str {
        "who"
    }

    fn callback(&mut self, cx: &mut Cx<'_>, event: Event<'_, String>) -> Action {
        match event {
            Event::Http(wsi, req) => {
                *wsi.session = match req.tls() {
                    Some(t) => format!(
                        "secure={} version={} sni={} alpn={} client={}",
                        req.is_secure(),
                        t.version,
                        t.sni.as_deref().unwrap_or("-"),
                        t.alpn.as_deref().unwrap_or("-"),
                        t.client_cert.as_ref().map_or("-", |c| c.subject.as_str())
                    ),
                    None => format!("secure={} plain", req.is_secure()),
                };
                cx.callback_on_writable(wsi.id);
            }
            Event::HttpWriteable(wsi, writer) => {
                let body = std::mem::take(wsi.session);
                let _ = writer.respond(200, "text/plain", body.as_bytes());
            }
            _ => {}
        }
        Action::Continue
    }
}

fn mtls_vhost(p: &Pki, leaf: &Leaf, required: bool) -> VhostInfo {
    let tls = TlsConfig::from_pem_files(&leaf.cert, &leaf.key).client_ca(&p.ca.path).require_client_cert(required);
    tls_vhost_with("m.example", tls, &p.root)
        .mount(Mount::cgi("/env", cgi_dir().join("env.sh")))
        .mount(Mount::callback("/who", "who"))
        .protocol(Who)
}

#[test]
fn mutual_tls_required_and_optional_reach_cgi_and_protocols() {
    let p = pki();
    let m = p.ca.server("m", &["m.example"], |_| {});
    let alice = p.ca.client("alice", "alice");
    let mallory = p.other.client("mallory", "mallory");
    let server = Server::start(ContextInfo::new().vhost(mtls_vhost(&p, &m, true)));
    let port = server.addr.port();
    let cert_args = |l: &Leaf| vec![l.cert.to_string_lossy().into_owned(), l.key.to_string_lossy().into_owned()];
    // No certificate: the handshake fails (curl gets no response).
    assert_eq!(curl_code(port, "m.example", &p.ca.path, &[], "/"), "000");
    let err = tls_request(server.addr, "m.example", &ClientOpts::default(), &get_req("m.example", "/"));
    assert!(err.is_err(), "a client without a certificate was served: {err:?}");
    // A certificate from the CA: served.
    let a = cert_args(&alice);
    assert_eq!(curl_code(port, "m.example", &p.ca.path, &["--cert", &a[0], "--key", &a[1]], "/"), "200");
    // One from another CA: refused.
    let x = cert_args(&mallory);
    assert_eq!(curl_code(port, "m.example", &p.ca.path, &["--cert", &x[0], "--key", &x[1]], "/"), "000");
    // s_client without a certificate sees the server's alert.
    let ca = p.ca.path.to_string_lossy().into_owned();
    let (_, out) = s_client(port, &["-servername", "m.example", "-CAfile", &ca], HEAD_CLOSE);
    assert!(!out.contains("HTTP/1.1 200"), "{out}");
    assert!(out.contains("alert") || out.contains("certificate required"), "{out}");

    // CGI-2 and mod_ssl's variables.
    let (ok, body) = curl_https(port, "m.example", &p.ca.path, &["--cert", &a[0], "--key", &a[1]], "/env/x?q=1");
    assert!(ok);
    let env = String::from_utf8_lossy(&body).into_owned();
    for want in [
        "HTTPS=on".to_string(),
        "REQUEST_SCHEME=https".to_string(),
        format!("SERVER_PORT={port}"),
        "SSL_CLIENT_VERIFY=SUCCESS".to_string(),
        "SSL_CLIENT_S_DN=CN=alice,O=warren tests".to_string(),
        "SSL_CLIENT_I_DN=CN=warren test CA,O=warren tests".to_string(),
        "SSL_TLS_SNI=m.example".to_string(),
    ] {
        assert!(env.lines().any(|l| l == want), "{want} missing from:\n{env}");
    }
    let proto = env.lines().find_map(|l| l.strip_prefix("SSL_PROTOCOL=")).expect("SSL_PROTOCOL");
    assert!(proto == "TLSv1.3" || proto == "TLSv1.2", "{proto}");
    assert!(env.lines().any(|l| l.starts_with("SSL_CIPHER=") && l.len() > 11), "{env}");
    // And to protocols, through Request::tls.
    let with_cert = ClientOpts { ca: Some(&p.ca.path), cert: Some(&alice), alpn: &["http/1.1"], ..Default::default() };
    let r = tls_request(server.addr, "m.example", &with_cert, &get_req("m.example", "/who")).expect("request");
    assert_eq!(r.text(), "secure=true version=TLSv1.3 sni=m.example alpn=http/1.1 client=CN=alice,O=warren tests");
    drop(server);

    // host-ssl-ca without client-cert-required: a certificate is optional,
    // but one that is given must verify.
    let server = Server::start(ContextInfo::new().vhost(mtls_vhost(&p, &m, false)));
    let port = server.addr.port();
    let (ok, body) = curl_https(port, "m.example", &p.ca.path, &[], "/env/");
    assert!(ok);
    let env = String::from_utf8_lossy(&body).into_owned();
    assert!(env.lines().any(|l| l == "SSL_CLIENT_VERIFY=NONE"), "{env}");
    assert!(!env.contains("SSL_CLIENT_S_DN"), "{env}");
    let (ok, body) = curl_https(port, "m.example", &p.ca.path, &["--cert", &a[0], "--key", &a[1]], "/env/");
    assert!(ok);
    assert!(String::from_utf8_lossy(&body).lines().any(|l| l == "SSL_CLIENT_S_DN=CN=alice,O=warren tests"));
    assert_eq!(curl_code(port, "m.example", &p.ca.path, &["--cert", &x[0], "--key", &x[1]], "/"), "000");
    let r = tls_request(server.addr, "m.example", &ClientOpts::default(), &get_req("m.example", "/who")).expect("req");
    assert!(r.text().ends_with("client=-"), "{}", r.text());
}

// ---------------------------------------------------- 4. ALPN, versions

#[test]
fn alpn_versions_options_and_ciphers_from_configuration() {
    let p = pki();
    let leaf = p.ca.server("l", &["localhost"], |_| {});
    let ca = p.ca.path.to_string_lossy().into_owned();
    let start = |keys: &str| {
        let cfg = config_dir(p.dir(), true, &p.root, &format!("{}, {keys}", cert_keys(&leaf)));
        Server::start(warren::config::load_dir(&cfg).unwrap_or_else(|e| panic!("{e}")))
    };
    let server = start(r#""alpn": "http/1.1""#);
    let port = server.addr.port();
    let sc = |args: &[&str]| {
        let mut all = vec!["-servername", "localhost", "-CAfile", &ca];
        all.extend_from_slice(args);
        s_client(port, &all, HEAD_CLOSE)
    };
    let (ok, out) = sc(&["-alpn", "http/1.1"]);
    assert!(ok, "{out}");
    assert_eq!(field(&out, "ALPN protocol:"), Some("http/1.1"), "{out}");
    assert!(out.contains("Verify return code: 0 (ok)"), "{out}");
    assert!(out.contains("HTTP/1.1 200 OK"), "{out}");
    // Only h2 offered: no protocol in common, no_application_protocol.
    let (ok, out) = sc(&["-alpn", "h2"]);
    assert!(!ok, "{out}");
    assert!(out.contains("no application protocol"), "{out}");
    for (flag, version) in [("-tls1_2", "TLSv1.2"), ("-tls1_3", "TLSv1.3")] {
        let (ok, out) = sc(&[flag]);
        assert!(ok, "{flag}: {out}");
        assert!(out.contains(&format!("New, {version}, Cipher is ")), "{out}");
    }
    // TLS 1.1 (allowed on the client's side at security level 0): refused.
    let (ok, out) = sc(&["-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0"]);
    assert!(!ok, "{out}");
    assert!(!out.contains("New, TLSv1.1"), "{out}");
    drop(server);

    // ssl-option-set SSL_OP_NO_TLSv1_2 (bit 27).
    let server = start(r#""ssl-option-set": "134217728""#);
    let port = server.addr.port();
    let (ok, out) = s_client(port, &["-tls1_2", "-CAfile", &ca], HEAD_CLOSE);
    assert!(!ok, "TLS 1.2 was not turned off: {out}");
    let (ok, out) = s_client(port, &["-tls1_3", "-CAfile", &ca], HEAD_CLOSE);
    assert!(ok, "{out}");
    drop(server);

    // ciphers: one TLS 1.2 suite, and the server keeps to it.
    let server = start(r#""ciphers": "ECDHE-ECDSA-AES256-GCM-SHA384""#);
    let port = server.addr.port();
    let (ok, out) = s_client(port, &["-tls1_2", "-CAfile", &ca], HEAD_CLOSE);
    assert!(ok, "{out}");
    assert!(out.contains("New, TLSv1.2, Cipher is ECDHE-ECDSA-AES256-GCM-SHA384"), "{out}");
    let (ok, out) =
        s_client(port, &["-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256", "-CAfile", &ca], HEAD_CLOSE);
    assert!(!ok, "a suite left out of `ciphers` was negotiated: {out}");
    // tls13-ciphers too.
    drop(server);
    let server = start(r#""tls13-ciphers": "TLS_CHACHA20_POLY1305_SHA256""#);
    let (ok, out) = s_client(server.addr.port(), &["-tls1_3", "-CAfile", &ca], HEAD_CLOSE);
    assert!(ok, "{out}");
    assert!(out.contains("New, TLSv1.3, Cipher is TLS_CHACHA20_POLY1305_SHA256"), "{out}");
}

// --------------------------------------------- 5. plaintext on a TLS port

/// Sends `req` in plain text; returns everything that comes back.
fn plain_exchange(addr: SocketAddr, req: &str) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(20))).expect("timeout");
    s.write_all(req.as_bytes()).expect("write");
    read_to_end(&mut s).0
}

#[test]
fn plaintext_on_the_tls_port_raw4_redir3_and_sts() {
    let p = pki();
    let leaf = p.ca.server("l", &["localhost"], |_| {});
    // Default: dropped without a byte.
    let server = Server::start(ContextInfo::new().vhost(tls_vhost("localhost", &leaf, &p.root)));
    let got = plain_exchange(server.addr, &get_req("localhost", "/"));
    assert!(got.is_empty(), "{:?}", String::from_utf8_lossy(&got));
    assert_eq!(over_tls(server.addr, "localhost", "localhost", "/").status, 200, "the server goes on");
    drop(server);

    let start = |keys: &str| {
        let cfg = config_dir(p.dir(), true, &p.root, &format!("{}, {keys}", cert_keys(&leaf)));
        Server::start(warren::config::load_dir(&cfg).unwrap_or_else(|e| panic!("{e}")))
    };
    // REDIR-3: 301 to the same URL over https, query kept.
    let server = start(r#""allow-non-tls": "1", "redirect-http": "1", "sts": "1""#);
    let port = server.addr.port();
    let host = format!("localhost:{port}");
    let got = plain_exchange(server.addr, &get_req(&host, "/a/b.html?x=1&y=%20z"));
    let text = String::from_utf8_lossy(&got).into_owned();
    assert!(text.starts_with("HTTP/1.1 301 "), "{text}");
    let want = format!("location: https://localhost:{port}/a/b.html?x=1&y=%20z\r\n");
    assert!(text.to_ascii_lowercase().contains(&want), "{text}");
    assert!(!text.to_ascii_lowercase().contains("strict-transport-security"), "STS over plaintext: {text}");
    let (ok, code) = curl(&["-o", "/dev/null", "-w", "%{http_code} %{redirect_url}", &format!("http://{host}/i?q")]);
    assert!(ok);
    assert_eq!(String::from_utf8_lossy(&code), format!("301 https://localhost:{port}/i?q"));
    // No Host: closed without an answer.
    assert!(plain_exchange(server.addr, "GET / HTTP/1.0\r\n\r\n").is_empty());
    // Following the redirect works over TLS, and has STS.
    let (ok, head) = curl(&[
        "-L",
        "--cacert",
        &p.ca.path.to_string_lossy(),
        "-D",
        "-",
        "-o",
        "/dev/null",
        &format!("http://{host}/index.html"),
    ]);
    assert!(ok);
    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
    assert!(head.contains("strict-transport-security: max-age=15768000 ; includesubdomains"), "{head}");
    drop(server);

    // allow-http-on-https: served plain, without STS; TLS with it.
    let server = start(r#""allow-non-tls": "1", "allow-http-on-https": "1", "sts": "1""#);
    let got = plain_exchange(server.addr, &get_req("localhost", "/index.html"));
    let r = Reader::new(&got[..]).response(false).expect("plain response");
    assert_eq!((r.status, r.text().as_str()), (200, "<h1>tls index</h1>\n"));
    assert_eq!(r.header("strict-transport-security"), None);
    let r = over_tls(server.addr, "localhost", "localhost", "/index.html");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("strict-transport-security"), Some("max-age=15768000 ; includeSubDomains"));
    // Keep-alive on the plain side too.
    let mut s = TcpStream::connect(server.addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(20))).expect("timeout");
    s.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\nGET /index.html HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .expect("write");
    let mut rd = Reader::new(s);
    assert_eq!(rd.response(false).expect("1").status, 200);
    assert_eq!(rd.response(false).expect("2").status, 200);
}

/// Probe finding (issue 13): the port's first vhost lets plaintext in
/// (`allow-http-on-https`), but a plaintext request naming another vhost
/// by Host reaches it only if that vhost allows plaintext itself: one
/// that demands a client certificate, or says nothing, answers 421 (or
/// a 301 to https where the port redirects), never its content.
#[test]
fn plaintext_reaches_only_vhosts_that_allow_it_raw4() {
    use warren::tls::PlainOnTls;
    let p = pki();
    let a = p.ca.server("a", &["a.example"], |_| {});
    let b = p.ca.server("b", &["b.example"], |_| {});
    let c = p.ca.server("c", &["c.example"], |_| {});
    let server = Server::start(
        ContextInfo::new()
            .vhost(tls_vhost("a.example", &a, &p.root).plain_on_tls(PlainOnTls::Serve))
            .vhost(mtls_vhost_named(&p, "b.example", &b))
            .vhost(tls_vhost("c.example", &c, &p.root)),
    );
    let r = |host: &str| Reader::new(&plain_exchange(server.addr, &get_req(host, "/index.html"))[..]).response(false);
    let served = r("a.example").expect("a");
    assert_eq!((served.status, served.header("x-site")), (200, Some("a.example")));
    for host in ["b.example", "c.example", "B.EXAMPLE:443", "x.c.example"] {
        let refused = r(host).expect("a response");
        assert_eq!(refused.status, 421, "{host}: {}", refused.text());
        assert!(!refused.text().contains("tls index"), "{host}: content in plaintext");
    }
    // Over TLS, b still demands its certificate, and c serves.
    assert_eq!(over_tls(server.addr, "c.example", "c.example", "/index.html").status, 200);
    drop(server);
    // A port that redirects sends every vhost's plaintext to https, the
    // mutual-TLS one included (the https request then demands the cert).
    let server = Server::start(
        ContextInfo::new()
            .vhost(tls_vhost("a.example", &a, &p.root).plain_on_tls(PlainOnTls::Redirect))
            .vhost(mtls_vhost_named(&p, "b.example", &b)),
    );
    let text = String::from_utf8_lossy(&plain_exchange(server.addr, &get_req("b.example", "/x"))).into_owned();
    assert!(text.starts_with("HTTP/1.1 301 "), "{text}");
    assert!(text.to_ascii_lowercase().contains("location: https://b.example/x\r\n"), "{text}");
    // `OPTIONS *` (no path to keep) redirects to the root, without a
    // panic (the probe's second finding: an underflow in raw_path).
    let text = String::from_utf8_lossy(&plain_exchange(
        server.addr,
        "OPTIONS * HTTP/1.1\r\nHost: a.example\r\nConnection: close\r\n\r\n",
    ))
    .into_owned();
    assert!(text.to_ascii_lowercase().contains("location: https://a.example/\r\n"), "{text}");
}

/// A vhost `name` demanding a client certificate from the test CA.
fn mtls_vhost_named(p: &Pki, name: &str, leaf: &Leaf) -> VhostInfo {
    let tls = TlsConfig::from_pem_files(&leaf.cert, &leaf.key).client_ca(&p.ca.path).require_client_cert(true);
    tls_vhost_with(name, tls, &p.root)
}

// -------------------------------------------------- 6. everything over TLS

fn zip_with_page(dir: &Path, page: &[u8]) -> PathBuf {
    let path = dir.join("site.zip");
    let mut w = zip::ZipWriter::new(std::fs::File::create(&path).expect("create"));
    let o = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    w.start_file("page.html", o).expect("start");
    w.write_all(page).expect("write");
    w.finish().expect("finish");
    path
}

/// One masked client frame.
fn ws_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mask = [0x37u8, 0xfa, 0x21, 0x3d];
    let mut v = vec![0x80 | opcode];
    match payload.len() {
        n if n < 126 => v.push(0x80 | n as u8),
        n => {
            v.push(0x80 | 126);
            v.extend_from_slice(&(n as u16).to_be_bytes());
        }
    }
    v.extend_from_slice(&mask);
    v.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    v
}

/// Reads one (unmasked, short) server frame: (opcode, payload).
fn ws_read(s: &mut impl Read, pending: &mut Vec<u8>) -> (u8, Vec<u8>) {
    let mut buf = [0u8; 4096];
    loop {
        if pending.len() >= 2 {
            let (len, at) = match pending[1] & 0x7f {
                126 if pending.len() >= 4 => (u16::from_be_bytes([pending[2], pending[3]]) as usize, 4),
                126 => (usize::MAX, 0),
                127 => panic!("unexpectedly long frame"),
                n => (n as usize, 2),
            };
            if len != usize::MAX && pending.len() >= at + len {
                let op = pending[0] & 0x0f;
                let payload = pending[at..at + len].to_vec();
                pending.drain(..at + len);
                return (op, payload);
            }
        }
        let n = s.read(&mut buf).expect("read frame");
        assert!(n > 0, "closed mid-frame");
        pending.extend_from_slice(&buf[..n]);
    }
}

#[test]
fn everything_over_tls_files_zip_ranges_pipelining_post_cgi_wss() {
    let p = pki();
    let leaf = p.ca.server("l", &["localhost"], |_| {});
    let page: Vec<u8> = b"<p>warren zip passthrough over tls</p>\n".iter().cycle().take(64 * 1024).copied().collect();
    let zip = zip_with_page(p.dir(), &page);
    let mut vh = tls_vhost("localhost", &leaf, &p.root)
        .mount(Mount::dir("/z", &zip))
        .mount(Mount::callback("/formtest", warren::plugins::post_demo::NAME))
        .mount(Mount::cgi("/env", cgi_dir().join("env.sh")))
        .default_protocol(warren::plugins::echo::NAME);
    for name in warren::plugins::NAMES {
        vh.plugin(name);
    }
    let server = Server::start(ContextInfo::new().vhost(vh));
    let port = server.addr.port();
    let ca = ClientOpts { ca: Some(&p.ca.path), ..Default::default() };
    let big = pattern(6 << 20);

    // A big file (no sendfile under TLS: read and encrypt), by rustls and curl.
    let r = tls_request(server.addr, "localhost", &ca, &get_req("localhost", "/big.bin")).expect("big");
    assert_eq!(r.status, 200);
    assert!(r.body == big, "big file differs over TLS ({} bytes)", r.body.len());
    let out = p.dir().join("curl-big.bin");
    let (ok, _) = curl_https(port, "localhost", &p.ca.path, &["-o", &out.to_string_lossy()], "/big.bin");
    assert!(ok);
    assert!(std::fs::read(&out).expect("read") == big, "curl's copy differs");

    // Zip passthrough: the stored deflate stream, wrapped in gzip.
    let req = "GET /z/page.html HTTP/1.1\r\nHost: localhost\r\nAccept-Encoding: gzip\r\nConnection: close\r\n\r\n";
    let r = tls_request(server.addr, "localhost", &ca, req).expect("zip");
    assert_eq!((r.status, r.header("content-encoding")), (200, Some("gzip")));
    let mut want = warren::vfs::GZIP_HEADER.to_vec();
    want.extend_from_slice(&raw_entry(&zip, "page.html"));
    want.extend_from_slice(&crc32fast::hash(&page).to_le_bytes());
    want.extend_from_slice(&(page.len() as u32).to_le_bytes());
    assert!(r.body == want, "not the stored deflate stream");
    let (ok, body) = curl_https(port, "localhost", &p.ca.path, &["--compressed"], "/z/page.html");
    assert!(ok && body == page);

    // A range.
    let req = "GET /big.bin HTTP/1.1\r\nHost: localhost\r\nRange: bytes=1000000-1000099\r\nConnection: close\r\n\r\n";
    let r = tls_request(server.addr, "localhost", &ca, req).expect("range");
    assert_eq!(r.status, 206);
    assert_eq!(r.header("content-range"), Some(format!("bytes 1000000-1000099/{}", big.len()).as_str()));
    assert!(r.body == big[1_000_000..1_000_100]);

    // Pipelining: three requests in one write, three responses in order.
    let mut s = connect(server.addr, "localhost", &ca).expect("connect");
    s.write_all(
        b"GET /index.html HTTP/1.1\r\nHost: localhost\r\n\r\n\
          GET /big.bin HTTP/1.1\r\nHost: localhost\r\nRange: bytes=0-9\r\n\r\n\
          HEAD /index.html HTTP/1.1\r\nHost: localhost\r\n\r\n",
    )
    .expect("write");
    let mut rd = Reader::new(s);
    let r1 = rd.response(false).expect("1");
    assert_eq!((r1.status, r1.text().as_str()), (200, "<h1>tls index</h1>\n"));
    let r2 = rd.response(false).expect("2");
    assert_eq!((r2.status, &r2.body[..]), (206, &big[..10]));
    let r3 = rd.response(true).expect("3");
    assert_eq!((r3.status, r3.header("content-length")), (200, Some("19")));
    // Keep-alive: curl fetches two URLs on one connection.
    let (ok, out) = curl(&[
        "--cacert",
        &p.ca.path.to_string_lossy(),
        "--resolve",
        &format!("localhost:{port}:127.0.0.1"),
        "-w",
        "%{num_connects}\n",
        "-o",
        "/dev/null",
        "-o",
        "/dev/null",
        &format!("https://localhost:{port}/index.html"),
        &format!("https://localhost:{port}/big.bin"),
    ]);
    assert!(ok);
    assert_eq!(String::from_utf8_lossy(&out), "1\n0\n", "the second request reused the connection");

    // The post-demo.
    let (ok, body) = curl_https(port, "localhost", &p.ca.path, &["-d", "text=hello+%3Ctls%3E&send=send"], "/formtest");
    assert!(ok);
    let html = String::from_utf8_lossy(&body);
    assert!(html.contains("<td>text</td><td>11</td><td>hello &lt;tls&gt;</td>"), "{html}");

    // CGI with a POST body.
    let (ok, body) = curl_https(port, "localhost", &p.ca.path, &["-d", "x=1"], "/env/?a=b");
    assert!(ok);
    let env = String::from_utf8_lossy(&body);
    for want in ["HTTPS=on", "REQUEST_SCHEME=https", "REQUEST_METHOD=POST", "QUERY_STRING=a=b", "CONTENT_LENGTH=3"] {
        assert!(env.lines().any(|l| l == want), "{want} missing:\n{env}");
    }

    // wss:// echo.
    let mut s = connect(server.addr, "localhost", &ca).expect("connect");
    s.write_all(
        b"GET / HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    )
    .expect("upgrade");
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let end = loop {
        if let Some(i) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = s.read(&mut buf).expect("read head");
        assert!(n > 0, "closed before 101");
        got.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&got[..end]).into_owned();
    assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
    assert!(head.contains("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="), "{head}");
    let mut pending = got[end..].to_vec();
    for msg in [&b"hello over wss"[..], &[b'x'; 3000][..]] {
        s.write_all(&ws_frame(0x1, msg)).expect("send");
        assert_eq!(ws_read(&mut s, &mut pending), (0x1, msg.to_vec()));
    }
    s.write_all(&ws_frame(0x8, &1000u16.to_be_bytes())).expect("close");
    let (op, payload) = ws_read(&mut s, &mut pending);
    assert_eq!((op, &payload[..2]), (0x8, &1000u16.to_be_bytes()[..]));
}

// ------------------------------------------------- 7. configuration errors

fn load_err(cfg: &Path) -> String {
    match warren::config::load_dir(cfg) {
        Ok(_) => panic!("configuration accepted"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn bad_certificates_and_keys_are_config_errors_naming_file_key_and_fault() {
    let p = pki();
    let good = p.ca.server("good", &["localhost"], |_| {});
    let other = p.ca.server("other", &["localhost"], |_| {});
    let expired = p.ca.server("expired", &["localhost"], |c| {
        c.not_before = rcgen::date_time_ymd(2019, 1, 1);
        c.not_after = rcgen::date_time_ymd(2020, 1, 1);
    });
    let der = p.dir().join("good.der");
    std::fs::write(&der, &good.der).expect("write der");
    let missing = p.dir().join("missing.pem");
    let dir_path = p.dir().join("root");
    let keys = |cert: &Path, key: &Path| {
        format!(r#""host-ssl-cert": "{}", "host-ssl-key": "{}""#, cert.display(), key.display())
    };
    // (keys, the file at fault, what is wrong, the key at fault)
    let (cert_key, key_key) = ("vhosts[0].host-ssl-cert", "vhosts[0].host-ssl-key");
    let cases: Vec<(String, String, &str, &str)> = vec![
        (keys(&expired.cert, &expired.key), expired.cert.display().to_string(), "expired", cert_key),
        (keys(&good.cert, &other.key), other.key.display().to_string(), "does not belong to the certificate", key_key),
        (keys(&missing, &good.key), missing.display().to_string(), "cannot read the certificate", cert_key),
        (keys(&dir_path, &good.key), dir_path.display().to_string(), "not a regular file", cert_key),
        (keys(&der, &good.key), der.display().to_string(), "not PEM", cert_key),
        (keys(&good.key, &good.key), good.key.display().to_string(), "no \"BEGIN CERTIFICATE\" block", cert_key),
        (keys(&good.cert, &good.cert), good.cert.display().to_string(), "no private key", key_key),
    ];
    for (k, file, what, at) in &cases {
        let cfg = config_dir(p.dir(), true, &p.root, k);
        let err = load_err(&cfg);
        let conf = cfg.join("conf.d/site").display().to_string();
        assert!(err.starts_with(&conf), "does not name the config file: {err}");
        assert!(err.contains(at), "does not name the key {at}: {err}");
        assert!(err.contains(file.as_str()), "does not name {file}: {err}");
        assert!(err.contains(what), "does not say {what:?}: {err}");
    }
    // An unreadable file (where permissions bind: not as root).
    let locked = p.dir().join("locked.pem");
    std::fs::copy(&good.cert, &locked).expect("copy");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o000)).expect("chmod");
    if std::fs::read(&locked).is_err() {
        let err = load_err(&config_dir(p.dir(), true, &p.root, &keys(&locked, &good.key)));
        assert!(err.contains("vhosts[0].host-ssl-cert") && err.contains("cannot read the certificate"), "{err}");
        assert!(err.contains("ermission denied"), "{err}");
    }
    // A bad client CA names its own key.
    let ca_keys = format!(r#"{}, "host-ssl-ca": "{}""#, keys(&good.cert, &good.key), good.key.display());
    let err = load_err(&config_dir(p.dir(), true, &p.root, &ca_keys));
    assert!(err.contains("vhosts[0].host-ssl-ca") && err.contains(&good.key.display().to_string()), "{err}");

    // The binary says it in one line and exits 2.
    let cfg = config_dir(p.dir(), true, &p.root, &keys(&expired.cert, &expired.key));
    let out = std::process::Command::new(BIN).arg("--config").arg(&cfg).output().expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("vhosts[0].host-ssl-cert") && stderr.contains("expired"), "{stderr}");
    assert!(stderr.contains(&expired.cert.display().to_string()), "{stderr}");
}

#[test]
fn a_certificate_without_init_ssl_serves_plaintext_and_warns_cfg6() {
    let p = pki();
    let good = p.ca.server("good", &["localhost"], |_| {});
    let cfg = config_dir(p.dir(), false, &p.root, &cert_keys(&good));
    let cfg_arg = cfg.to_string_lossy().into_owned();
    let (running, port, log) = start_warren_logged(&["--config", &cfg_arg]);
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let text = String::from_utf8_lossy(&plain_exchange(addr, &get_req("localhost", "/index.html"))).into_owned();
    assert!(text.starts_with("HTTP/1.1 200 ") && text.ends_with("<h1>tls index</h1>\n"), "{text}");
    drop(running);
    let lines: Vec<String> = log.iter().collect();
    assert!(
        lines.iter().any(|l| l.contains("WARN") && l.contains("init-ssl") && l.contains("PLAINTEXT")),
        "no warning: {lines:?}"
    );
}

// --------------------------------------------- 8. certificate swap at run time

#[test]
fn set_certificate_swaps_for_new_handshakes_and_keeps_old_connections() {
    let p = pki();
    let first = p.ca.server("first", &["localhost"], |_| {});
    let second = p.ca.server("second", &["localhost"], |_| {});
    let server = Server::start(ContextInfo::new().vhost(tls_vhost("localhost", &first, &p.root)));
    let ca = ClientOpts { ca: Some(&p.ca.path), ..Default::default() };
    let mut old = connect(server.addr, "localhost", &ca).expect("connect");
    assert!(peer_cert(&old) == first.der);
    let ask = |s: &mut TlsStream| {
        s.write_all(b"GET /index.html HTTP/1.1\r\nHost: localhost\r\n\r\n").expect("write");
        // One response, read off this connection without taking it.
        let mut rd = Reader::new(s);
        rd.response(false).expect("response").status
    };
    assert_eq!(ask(&mut old), 200);
    // A bad pair is refused and the old certificate stays.
    let err = server.handle.set_certificate("localhost", &second.cert, &first.key).expect_err("mismatch accepted");
    assert!(err.to_string().contains("does not belong"), "{err}");
    assert!(peer_cert(&connect(server.addr, "localhost", &ca).expect("connect")) == first.der);
    assert!(server.handle.set_certificate("nosuch", &second.cert, &second.key).is_err());
    server.handle.set_certificate("localhost", &second.cert, &second.key).expect("swap");
    let new = connect(server.addr, "localhost", &ca).expect("connect");
    assert!(peer_cert(&new) == second.der, "a new handshake still gets the old certificate");
    assert_eq!(ask(&mut old), 200, "the connection from before the swap goes on");
    assert!(peer_cert(&old) == first.der);
}

// ------------------------------------------------------------ 9. bad input

/// The bytes of a real ClientHello for `name`.
fn client_hello(name: &str) -> Vec<u8> {
    let config = client_config(&ClientOpts::default());
    let server_name = warren::tls::rustls::pki_types::ServerName::try_from(name.to_string()).expect("name");
    let mut conn = warren::tls::rustls::ClientConnection::new(config, server_name).expect("client");
    let mut hello = Vec::new();
    while conn.wants_write() {
        conn.write_tls(&mut hello).expect("write_tls");
    }
    hello
}

/// Whether the server closed `s` (EOF or reset) before `deadline`; a
/// generous wait, never a measured one.
fn closed_by(s: &mut TcpStream, deadline: Instant) -> bool {
    let mut b = [0u8; 4096];
    while Instant::now() < deadline {
        s.set_read_timeout(Some(Duration::from_millis(200))).expect("timeout");
        match s.read(&mut b) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(_) => return true,
        }
    }
    false
}

#[test]
fn a_stalled_or_trickling_handshake_is_timed_out_while_others_are_served() {
    let p = pki();
    let leaf = p.ca.server("l", &["localhost"], |_| {});
    let limits = Limits { tls_handshake_timeout: Duration::from_secs(1), ..Limits::default() };
    let server = Server::start(ContextInfo::new().limits(limits).vhost(tls_vhost("localhost", &leaf, &p.root)));
    let hello = client_hello("localhost");
    assert!(hello.len() > 100);
    // Stalled: half a ClientHello, then nothing.
    let mut stalled = TcpStream::connect(server.addr).expect("connect");
    stalled.write_all(&hello[..hello.len() / 2]).expect("write");
    // Trickling: one byte at a time, forever (a slowloris on the handshake).
    let mut trickle = TcpStream::connect(server.addr).expect("connect");
    trickle.set_nonblocking(false).expect("blocking");
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let trickler = {
        let mut t = trickle.try_clone().expect("clone");
        let hello = hello.clone();
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            // Returns whether a write failed (the server closed).
            for b in hello.iter().cycle().take(hello.len() - 1) {
                if stop.load(std::sync::atomic::Ordering::Relaxed) {
                    return false;
                }
                if t.write_all(std::slice::from_ref(b)).is_err() {
                    return true;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            false
        })
    };
    // Meanwhile others are served.
    assert_eq!(over_tls(server.addr, "localhost", "localhost", "/").status, 200);
    let deadline = Instant::now() + Duration::from_secs(60);
    assert!(closed_by(&mut stalled, deadline), "a stalled handshake was not closed");
    let trickle_closed = closed_by(&mut trickle, deadline);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = trickler.join();
    assert!(trickle_closed, "a trickling handshake was not closed");
    assert_eq!(over_tls(server.addr, "localhost", "localhost", "/").status, 200);
}

#[test]
fn bad_tls_input_costs_only_its_connection_and_no_fd() {
    let p = pki();
    let leaf = p.ca.server("l", &["localhost"], |_| {});
    let root = p.root.to_string_lossy().into_owned();
    let (cert, key) = (leaf.cert.to_string_lossy().into_owned(), leaf.key.to_string_lossy().into_owned());
    let (running, port, _log) = start_warren_logged(&["--root", &root, "--tls-cert", &cert, "--tls-key", &key]);
    let pid = running.0.id();
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let ca = ClientOpts { ca: Some(&p.ca.path), ..Default::default() };
    let ok = || {
        let r = tls_request(addr, "localhost", &ca, &get_req("localhost", "/index.html")).expect("request");
        assert_eq!(r.status, 200);
    };
    ok();
    // The binary keeps recently opened files open for a while (its open
    // file cache, bounded): both files the test fetches are in it before
    // the baseline is taken.
    let r = tls_request(addr, "localhost", &ca, &get_req("localhost", "/big.bin")).expect("big");
    assert_eq!(r.body.len(), 6 << 20);
    let baseline = fd_count(pid);

    // Garbage that starts like a handshake record.
    let mut garbage = vec![0x16, 0x03, 0x01, 0x00, 0x40];
    garbage.extend(pattern(64));
    let got = plain_exchange(addr, &String::from_utf8_lossy(&garbage));
    assert!(got.len() < 64, "answered garbage with {} bytes", got.len());
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(20))).expect("timeout");
    s.write_all(&garbage).expect("write");
    let (reply, _) = read_to_end(&mut s);
    // At most an alert record (21 = alert).
    assert!(reply.is_empty() || reply[0] == 0x15, "{reply:?}");
    // A record header claiming a huge length, then EOF.
    let got = plain_exchange(addr, "\u{16}\u{3}\u{1}\u{7f}\u{7f}");
    assert!(got.is_empty() || got[0] == 0x15);
    ok();

    // A plain request on the TLS port (no allow-non-tls): closed.
    assert!(plain_exchange(addr, &get_req("localhost", "/")).is_empty());

    // close_notify mid-response of a big file: the server closes.
    let mut s = connect(addr, "localhost", &ca).expect("connect");
    s.write_all(b"GET /big.bin HTTP/1.1\r\nHost: localhost\r\n\r\n").expect("write");
    let mut first = [0u8; 4096];
    let n = s.read(&mut first).expect("some of the response");
    assert!(n > 0);
    s.conn.send_close_notify();
    while s.conn.wants_write() {
        s.conn.write_tls(&mut s.sock).expect("send close_notify");
    }
    let mut tcp = s.sock;
    assert!(closed_by(&mut tcp, Instant::now() + Duration::from_secs(60)), "not closed after close_notify");
    ok();

    // TLS 1.2 renegotiation (s_client's "R", its stdin held open until it
    // ends): rustls sends a no_renegotiation alert, which ends s_client's
    // attempt; the server goes on.
    let (_, out) = s_client_held(port, &["-tls1_2", "-servername", "localhost"], b"R\n");
    assert!(out.contains("RENEGOTIATING"), "{out}");
    assert!(out.contains("no renegotiation"), "{out}");
    ok();

    // A bad record after the handshake (a tampered application record).
    let mut s = connect(addr, "localhost", &ca).expect("connect");
    s.sock.write_all(&[0x17, 0x03, 0x03, 0x00, 0x20]).expect("write");
    s.sock.write_all(&[0xaa; 32]).expect("write");
    let mut tcp = s.sock;
    assert!(closed_by(&mut tcp, Instant::now() + Duration::from_secs(60)), "not closed after a bad record");
    ok();

    // A client that closes TCP mid-handshake.
    let hello = client_hello("localhost");
    let mut s = TcpStream::connect(addr).expect("connect");
    s.write_all(&hello).expect("write");
    drop(s);
    ok();

    // Every bad connection's fd is gone (waiting generously for the loop
    // to see the last closes).
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut now = fd_count(pid);
    while now > baseline && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        now = fd_count(pid);
    }
    let ss = std::process::Command::new("ss").args(["-tn", "state", "all", &format!("( sport = :{port} )")]).output();
    let ss = ss.map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).unwrap_or_default();
    assert!(now <= baseline, "fds: {now} now, {baseline} before; sockets:\n{ss}");
}

#[test]
fn a_connection_the_server_times_out_ends_with_close_notify() {
    // The server ends idle TLS connections (no request within the header
    // timeout; keep-alive over) with close_notify, as lws's SSL_shutdown
    // does: a client then sees a clean end of the session, not a
    // truncation (OpenSSL 3 reports "unexpected eof while reading").
    let p = pki();
    let leaf = p.ca.server("l", &["localhost"], |_| {});
    let limits = Limits { header_timeout: Duration::from_secs(1), ..Limits::default() };
    let vhost = tls_vhost("localhost", &leaf, &p.root).keepalive_timeout(Duration::from_secs(1));
    let server = Server::start(ContextInfo::new().limits(limits).vhost(vhost));
    let ca = ClientOpts { ca: Some(&p.ca.path), ..Default::default() };
    // No request after the handshake.
    let mut s = connect(server.addr, "localhost", &ca).expect("connect");
    let (got, end) = read_to_end(&mut s);
    assert!(got.is_empty());
    assert!(end.is_ok(), "the session was cut without close_notify: {end:?}");
    // Keep-alive, then idle.
    let mut s = connect(server.addr, "localhost", &ca).expect("connect");
    s.write_all(b"GET /index.html HTTP/1.1\r\nHost: localhost\r\n\r\n").expect("write");
    let mut rd = Reader::new(&mut s);
    assert_eq!(rd.response(false).expect("response").status, 200);
    let (got, end) = read_to_end(&mut s);
    assert!(got.is_empty());
    assert!(end.is_ok(), "the session was cut without close_notify: {end:?}");
}

/// A ClientHello (TLS 1.2 record, one suite) whose SNI is `name`, however
/// illegal: what no well-behaved client library would send.
fn hello_with_raw_sni(name: &[u8]) -> Vec<u8> {
    let mut sni = Vec::new();
    sni.extend_from_slice(&((name.len() + 3) as u16).to_be_bytes()); // server_name_list
    sni.push(0); // host_name
    sni.extend_from_slice(&(name.len() as u16).to_be_bytes());
    sni.extend_from_slice(name);
    let mut ext = vec![0, 0]; // server_name
    ext.extend_from_slice(&(sni.len() as u16).to_be_bytes());
    ext.extend_from_slice(&sni);
    let mut body = vec![3, 3];
    body.extend_from_slice(&[7; 32]); // random
    body.push(0); // no session id
    body.extend_from_slice(&[0, 2, 0xc0, 0x2b]); // ECDHE-ECDSA-AES128-GCM-SHA256
    body.extend_from_slice(&[1, 0]); // null compression
    body.extend_from_slice(&(ext.len() as u16).to_be_bytes());
    body.extend_from_slice(&ext);
    let mut hs = vec![1];
    hs.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    hs.extend_from_slice(&body);
    let mut record = vec![0x16, 3, 1];
    record.extend_from_slice(&(hs.len() as u16).to_be_bytes());
    record.extend_from_slice(&hs);
    record
}

/// Probe finding (issue 13): a ClientHello with a 15 KB illegal SNI made
/// rustls log it whole at warn, so each connection could write kilobytes
/// to the log. The binary logs rustls's complaints about clients at debug
/// only, and cuts every line at 1 KiB.
#[test]
fn a_client_cannot_write_kilobytes_to_the_log() {
    let p = pki();
    let leaf = p.ca.server("l", &["localhost"], |_| {});
    let root = p.root.to_string_lossy().into_owned();
    let (cert, key) = (leaf.cert.to_string_lossy().into_owned(), leaf.key.to_string_lossy().into_owned());
    let mut name = vec![b'x'; 15_000];
    name[10] = b'\n';
    let hello = hello_with_raw_sni(&name);
    for level in ["info", "debug"] {
        let args = ["--root", &root, "--tls-cert", &cert, "--tls-key", &key, "-d", level];
        let (running, port, log) = start_warren_logged(&args);
        let mut s = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(20))).expect("timeout");
        s.write_all(&hello).expect("hello");
        let mut sink = Vec::new();
        let _ = s.read_to_end(&mut sink);
        // A request after it: its log line (at debug) comes after the
        // hello's, so every line about the hello has been read by then.
        let ca = ClientOpts { ca: Some(&p.ca.path), ..Default::default() };
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        assert_eq!(tls_request(addr, "localhost", &ca, &get_req("localhost", "/")).expect("request").status, 200);
        // The server logs from a thread of its own: at debug, wait for
        // the cut line (a kill could come before it is written).
        let mut lines = Vec::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while level == "debug" && !lines.iter().any(|l: &String| l.contains("bytes more)")) {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match log.recv_timeout(left) {
                Ok(line) => lines.push(line),
                Err(_) => break,
            }
        }
        drop(running);
        lines.extend(log.iter());
        let longest = lines.iter().map(String::len).max().unwrap_or(0);
        assert!(longest < 1200, "{level}: a log line of {longest} bytes");
        let sni_lines = lines.iter().filter(|l| l.contains("xxxxxxxxxx")).count();
        match level {
            "info" => assert_eq!(sni_lines, 0, "rustls's warning at the info level: {lines:?}"),
            _ => assert!(lines.iter().any(|l| l.contains("bytes more)")), "debug: the cut line: {lines:?}"),
        }
    }
}

/// Probe finding (issue 13): at the connection limit, a TLS port closed
/// the extra connection after a plaintext `503` a TLS client reads as a
/// broken record; it now closes it without a byte.
#[test]
fn a_tls_port_at_its_connection_limit_closes_without_plaintext() {
    let p = pki();
    let leaf = p.ca.server("l", &["localhost"], |_| {});
    let limits = warren::Limits { max_connections: Some(1), ..Default::default() };
    let server = Server::start(ContextInfo::new().limits(limits).vhost(tls_vhost("localhost", &leaf, &p.root)));
    let ca = ClientOpts { ca: Some(&p.ca.path), ..Default::default() };
    // The one connection the limit allows, held open.
    let held = connect(server.addr, "localhost", &ca).expect("first connection");
    let mut extra = TcpStream::connect(server.addr).expect("connect");
    extra.set_read_timeout(Some(Duration::from_secs(20))).expect("timeout");
    let _ = extra.write_all(&client_hello("localhost"));
    let mut got = Vec::new();
    let _ = extra.read_to_end(&mut got);
    assert!(!got.starts_with(b"HTTP/"), "plaintext on a TLS port: {:?}", String::from_utf8_lossy(&got));
    assert!(got.is_empty(), "{got:?}");
    drop(held);
}

/// Review finding (issue 13): rustls resumes a session for any vhost
/// whose SNI matches, with the client certificate (or none) of its first
/// handshake. A session from a public vhost must not resume on a vhost of
/// the same name, on another port, that requires a client certificate.
#[test]
fn a_session_from_another_port_does_not_resume_past_mutual_tls() {
    let p = pki();
    let leaf = p.ca.server("a", &["a.test"], |_| {});
    let public = tls_vhost("a.test", &leaf, &p.root);
    let tls = TlsConfig::from_pem_files(&leaf.cert, &leaf.key).client_ca(&p.ca.path).require_client_cert(true);
    let guarded = VhostInfo::new("a.test", SocketAddr::from(([127, 0, 0, 2], 0)))
        .tls(tls)
        .header("X-Site", "guarded")
        .mount(files_mount("/", &p.root));
    let context = warren::Context::new(ContextInfo::new().vhost(public).vhost(guarded)).expect("context");
    let (open, closed) = (context.local_addr(0).expect("addr 0"), context.local_addr(1).expect("addr 1"));
    assert_ne!(open, closed);
    let handle = context.handle();
    let thread = std::thread::spawn(move || context.run());
    // One client, its session store shared by its connections.
    let config = client_config(&ClientOpts { ca: Some(&p.ca.path), ..Default::default() });
    for round in 0..2 {
        let mut s = connect_with(open, "a.test", std::sync::Arc::clone(&config)).expect("public handshake");
        s.write_all(get_req("a.test", "/index.html").as_bytes()).expect("write");
        // Reading the response takes in the session tickets.
        let r = Reader::new(s).response(false).expect("public response");
        assert_eq!(r.status, 200, "round {round}");
        let got = connect_with(closed, "a.test", std::sync::Arc::clone(&config)).and_then(|mut s| {
            s.write_all(get_req("a.test", "/index.html").as_bytes())?;
            Reader::new(s).response(false)
        });
        assert!(got.is_err(), "round {round}: the guarded vhost served a client without a certificate: {got:?}");
    }
    handle.stop();
    thread.join().expect("service thread").expect("service loop");
}

/// Review finding (issue 13): a client certificate one vhost's CA
/// verified is told only to that vhost. A request Host moves elsewhere
/// is served without it (CGI: SSL_CLIENT_VERIFY=NONE); one Host moves
/// into a vhost that verifies client certificates itself gets 421.
#[test]
fn a_client_certificate_is_told_only_to_the_vhost_that_verified_it() {
    let p = pki();
    let m = p.ca.server("m", &["m.example"], |_| {});
    let plain = p.ca.server("p", &["p.example"], |_| {});
    let alice = p.ca.client("alice", "alice");
    let server = Server::start(
        ContextInfo::new()
            .vhost(mtls_vhost(&p, &m, false))
            .vhost(tls_vhost("p.example", &plain, &p.root).mount(Mount::cgi("/env", cgi_dir().join("env.sh")))),
    );
    let with_cert = ClientOpts { ca: Some(&p.ca.path), cert: Some(&alice), ..Default::default() };
    let env = |sni: &str, host: &str| {
        let r = tls_request(server.addr, sni, &with_cert, &get_req(host, "/env/")).expect("request");
        (r.status, r.text())
    };
    let (status, text) = env("m.example", "m.example");
    assert_eq!(status, 200);
    assert!(text.lines().any(|l| l == "SSL_CLIENT_VERIFY=SUCCESS"), "{text}");
    // Verified by m's CA, asked of p: p is not told.
    let (status, text) = env("m.example", "p.example");
    assert_eq!(status, 200);
    assert!(text.lines().any(|l| l == "SSL_CLIENT_VERIFY=NONE"), "{text}");
    assert!(!text.contains("SSL_CLIENT_S_DN"), "{text}");
    // A handshake for p (which asks no certificate) cannot reach m,
    // which verifies certificates, even optional ones.
    let (status, _) = env("p.example", "m.example");
    assert_eq!(status, 421);
}
