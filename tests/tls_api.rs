//! The embedding side of TLS (issue 13 item 6): certificates chosen by
//! user code (`TlsConfig::from_resolver`), the handshake event callback
//! (`TlsConfig::on_event`, lws's SSL_INFO), and `TlsConfig::customize`,
//! driven by a rustls client over a real socket.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::{files_mount, vhost, Server};
use warren::tls::rustls;
use warren::tls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use warren::tls::rustls::server::{ClientHello, ResolvesServerCert};
use warren::tls::rustls::sign::CertifiedKey;
use warren::tls::{TlsConfig, TlsEvent};
use warren::ContextInfo;

/// A CA and a leaf for `names` signed by it: (CA certificate, leaf
/// chain, leaf key).
fn issue(names: &[&str]) -> (CertificateDer<'static>, Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
    issue_with(names, &rcgen::PKCS_ECDSA_P256_SHA256)
}

/// [`issue`] with a leaf key of algorithm `alg`.
fn issue_with(
    names: &[&str],
    alg: &'static rcgen::SignatureAlgorithm,
) -> (CertificateDer<'static>, Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
    let ca_key = rcgen::KeyPair::generate().expect("CA key");
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name.push(rcgen::DnType::CommonName, "warren test CA");
    let ca_cert = ca.self_signed(&ca_key).expect("CA certificate");
    let issuer = rcgen::Issuer::new(ca, ca_key);
    let key = rcgen::KeyPair::generate_for(alg).expect("leaf key");
    let params =
        rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).expect("leaf params");
    let leaf = params.signed_by(&key, &issuer).expect("leaf certificate");
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    (ca_cert.der().clone(), vec![leaf.der().clone()], key)
}

/// A client trusting `ca`, offering `alpn`.
fn client(ca: &CertificateDer<'static>, alpn: &[&str]) -> Arc<rustls::ClientConfig> {
    let mut config = client_config(ca, rustls::DEFAULT_VERSIONS);
    config.alpn_protocols = alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
    Arc::new(config)
}

/// A client trusting `ca`, speaking `versions`.
fn client_config(
    ca: &CertificateDer<'static>,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.clone()).expect("CA into the store");
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth()
}

/// Connects to `server` as `name` and completes the handshake: the
/// connection and its socket, or rustls's error.
fn connect(
    server: &Server,
    config: Arc<rustls::ClientConfig>,
    name: &str,
) -> Result<(rustls::ClientConnection, TcpStream), rustls::Error> {
    let mut sock = TcpStream::connect(server.addr).expect("connect");
    sock.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    let name = ServerName::try_from(name.to_string()).expect("server name");
    let mut conn = rustls::ClientConnection::new(config, name).expect("client connection");
    while conn.is_handshaking() {
        match conn.complete_io(&mut sock) {
            Ok(_) => {}
            Err(e) => {
                let inner = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()).cloned();
                return Err(inner.unwrap_or(rustls::Error::General(e.to_string())));
            }
        }
    }
    Ok((conn, sock))
}

/// GETs `path` over an established connection: the response text, or
/// what ended it.
fn get(conn: &mut rustls::ClientConnection, sock: &mut TcpStream, path: &str) -> std::io::Result<String> {
    let mut tls = rustls::Stream::new(conn, sock);
    write!(tls, "GET {path} HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n")?;
    let mut out = Vec::new();
    match tls.read_to_end(&mut out) {
        Ok(_) => {}
        // Connection: close without close_notify ends as an EOF error.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !out.is_empty() => {}
        Err(e) => return Err(e),
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// Hands out one certificate and records the SNI of each handshake.
#[derive(Debug)]
struct Recorder {
    key: Arc<CertifiedKey>,
    seen: Mutex<Vec<Option<String>>>,
}

impl ResolvesServerCert for Recorder {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.seen.lock().expect("lock").push(hello.server_name().map(str::to_string));
        Some(Arc::clone(&self.key))
    }
}

fn site() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("index.html"), "hello over tls\n").expect("index.html");
    dir
}

/// Issue 13 item 6: a resolver of the user's picks the certificate for
/// each handshake, and sees the ClientHello's SNI.
#[test]
fn a_resolver_of_the_users_picks_the_certificate() {
    let dir = site();
    let (ca, chain, key) = issue(&["a.test"]);
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    let certified = CertifiedKey::from_der(chain, key, &provider).expect("certified key");
    let recorder = Arc::new(Recorder { key: Arc::new(certified), seen: Mutex::new(Vec::new()) });
    let tls = TlsConfig::from_resolver(Arc::clone(&recorder) as Arc<dyn ResolvesServerCert>);
    let server = Server::start(ContextInfo::new().vhost(vhost().mount(files_mount("/", dir.path())).tls(tls)));
    let (mut conn, mut sock) = connect(&server, client(&ca, &["http/1.1"]), "a.test").expect("handshake");
    let text = get(&mut conn, &mut sock, "/index.html").expect("response");
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.ends_with("hello over tls\n"), "{text}");
    assert_eq!(*recorder.seen.lock().expect("lock"), [Some("a.test".to_string())]);
}

/// lws SSL_INFO: the callback hears of each completed handshake with
/// what was negotiated, and of failed ones with the reason; returning
/// false closes an established connection.
#[test]
fn the_event_callback_hears_of_handshakes_and_can_refuse_them() {
    let dir = site();
    let (ca, chain, key) = issue(&["a.test"]);
    let (_files, cert_path, key_path) = pem_files(&chain, &key);
    let established = Arc::new(AtomicUsize::new(0));
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let (e, f) = (Arc::clone(&established), Arc::clone(&failures));
    let tls = TlsConfig::from_pem_files(&cert_path, &key_path).on_event(move |event| match event {
        TlsEvent::Established { session, .. } => {
            // The first is let through; later ones are refused.
            assert_eq!(session.sni.as_deref(), Some("a.test"));
            e.fetch_add(1, Ordering::SeqCst) == 0
        }
        TlsEvent::Failed { error, .. } => {
            f.lock().expect("lock").push(error.to_string());
            true
        }
        _ => true,
    });
    let server = Server::start(ContextInfo::new().vhost(vhost().mount(files_mount("/", dir.path())).tls(tls)));
    let (mut conn, mut sock) = connect(&server, client(&ca, &["http/1.1"]), "a.test").expect("first handshake");
    let text = get(&mut conn, &mut sock, "/index.html").expect("first response");
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    // The second: the handshake completes on the client's side, then
    // the server closes instead of answering.
    let refused = connect(&server, client(&ca, &["http/1.1"]), "a.test")
        .map_err(|e| std::io::Error::other(e.to_string()))
        .and_then(|(mut conn, mut sock)| get(&mut conn, &mut sock, "/index.html"));
    assert!(!matches!(&refused, Ok(t) if t.starts_with("HTTP/1.1 200")), "the callback's refusal: {refused:?}");
    assert_eq!(established.load(Ordering::SeqCst), 2);
    // A client offering only a protocol the vhost does not speak fails
    // the handshake (RFC 7301), and the callback hears why.
    let failed = connect(&server, client(&ca, &["h2"]), "a.test");
    assert!(failed.is_err(), "ALPN h2 only must fail");
    let failures = failures.lock().expect("lock").clone();
    assert!(failures.iter().any(|f| f.contains("a.test") && f.contains("protocol")), "{failures:?}");
}

/// `customize` gets the vhost's rustls configuration last: here it puts
/// its own ALPN protocol in place of warren's list.
#[test]
fn customize_has_the_last_word_on_the_rustls_configuration() {
    let dir = site();
    let (ca, chain, key) = issue(&["a.test"]);
    let (_files, cert_path, key_path) = pem_files(&chain, &key);
    let tls = TlsConfig::from_pem_files(&cert_path, &key_path)
        .customize(|config| config.alpn_protocols = vec![b"x-custom".to_vec(), b"http/1.1".to_vec()]);
    let server = Server::start(ContextInfo::new().vhost(vhost().mount(files_mount("/", dir.path())).tls(tls)));
    let (conn, _sock) = connect(&server, client(&ca, &["x-custom"]), "a.test").expect("handshake");
    assert_eq!(conn.alpn_protocol(), Some(&b"x-custom"[..]));
}

/// Writes `der` as one PEM block labelled `label`.
fn write_pem(path: &std::path::Path, label: &str, der: &[u8]) {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut pem = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(line).expect("base64 is ascii"));
        pem.push('\n');
    }
    pem.push_str(&format!("-----END {label}-----\n"));
    std::fs::write(path, pem).expect("write pem");
}

/// Issue 13 item 6: sessions resume (TLS 1.3 by ticket, TLS 1.2 by
/// ticket or the session cache): a client's second connection skips the
/// full handshake, and the request sees it in `TlsSession::resumed`.
#[test]
fn sessions_resume_over_tls_1_3_and_1_2() {
    let dir = site();
    let (ca, chain, key) = issue(&["a.test"]);
    let (_files, cert_path, key_path) = pem_files(&chain, &key);
    let resumed = Arc::new(Mutex::new(Vec::new()));
    let r = Arc::clone(&resumed);
    let tls = TlsConfig::from_pem_files(&cert_path, &key_path).on_event(move |event| {
        if let TlsEvent::Established { session, .. } = event {
            r.lock().expect("lock").push((session.version, session.resumed));
        }
        true
    });
    let server = Server::start(ContextInfo::new().vhost(vhost().mount(files_mount("/", dir.path())).tls(tls)));
    for version in [&rustls::version::TLS13, &rustls::version::TLS12] {
        let config = Arc::new(client_config(&ca, &[version]));
        for _ in 0..2 {
            let (mut conn, mut sock) = connect(&server, Arc::clone(&config), "a.test").expect("handshake");
            // Reading the response takes in the tickets sent after it.
            let text = get(&mut conn, &mut sock, "/index.html").expect("response");
            assert!(text.starts_with("HTTP/1.1 200"), "{text}");
        }
    }
    let seen = resumed.lock().expect("lock").clone();
    assert_eq!(seen, [("TLSv1.3", false), ("TLSv1.3", true), ("TLSv1.2", false), ("TLSv1.2", true)]);
}

/// Issue 13 item 2: RSA, ECDSA P-256/P-384 and Ed25519 keys, in PKCS#8
/// and in the traditional PKCS#1 (RSA) and SEC1 (EC) forms, over TLS 1.3
/// and 1.2 (Ed25519 where TLS 1.2 clients offer it too); and `groups`
/// (lwsws `ecdh-curve`) decides the key exchange.
#[test]
fn rsa_ecdsa_and_ed25519_keys_in_every_pem_form_and_the_group_list() {
    let dir = site();
    let cases: [(&str, &'static rcgen::SignatureAlgorithm, bool); 4] = [
        ("rsa", &rcgen::PKCS_RSA_SHA256, true),
        ("p256", &rcgen::PKCS_ECDSA_P256_SHA256, true),
        ("p384", &rcgen::PKCS_ECDSA_P384_SHA384, true),
        ("ed25519", &rcgen::PKCS_ED25519, false),
    ];
    for (name, alg, traditional) in cases {
        let (ca, chain, key) = issue_with(&["a.test"], alg);
        let (files, cert_path, key_path) = pem_files(&chain, &key);
        let mut forms = vec![key_path.clone()];
        if traditional {
            // `openssl pkey -traditional`: "RSA PRIVATE KEY" or "EC PRIVATE KEY".
            let old = files.path().join("key-traditional.pem");
            let out = std::process::Command::new("openssl")
                .args(["pkey", "-traditional", "-in"])
                .arg(&key_path)
                .arg("-out")
                .arg(&old)
                .output()
                .expect("run openssl (scripts/test installs it)");
            assert!(out.status.success(), "openssl pkey: {}", String::from_utf8_lossy(&out.stderr));
            let text = std::fs::read_to_string(&old).expect("traditional key");
            assert!(text.contains("BEGIN RSA PRIVATE KEY") || text.contains("BEGIN EC PRIVATE KEY"), "{text}");
            forms.push(old);
        }
        for key_file in forms {
            let tls = TlsConfig::from_pem_files(&cert_path, &key_file);
            let server = Server::start(ContextInfo::new().vhost(vhost().mount(files_mount("/", dir.path())).tls(tls)));
            for version in [&rustls::version::TLS13, &rustls::version::TLS12] {
                let config = client_config(&ca, &[version]);
                let (mut conn, mut sock) = connect(&server, Arc::new(config), "a.test")
                    .unwrap_or_else(|e| panic!("{name} {key_file:?} {version:?}: {e}"));
                let text = get(&mut conn, &mut sock, "/index.html").expect("response");
                assert!(text.starts_with("HTTP/1.1 200"), "{name} {version:?}: {text}");
            }
        }
    }
    // The group list: P-384 alone is what the exchange uses, whatever the
    // client would have preferred.
    let (ca, chain, key) = issue(&["a.test"]);
    let (_files, cert_path, key_path) = pem_files(&chain, &key);
    let tls = TlsConfig::from_pem_files(&cert_path, &key_path).groups("secp384r1");
    let server = Server::start(ContextInfo::new().vhost(vhost().mount(files_mount("/", dir.path())).tls(tls)));
    let (conn, _sock) = connect(&server, client(&ca, &["http/1.1"]), "a.test").expect("handshake");
    let group = conn.negotiated_key_exchange_group().map(|g| g.name());
    assert_eq!(group, Some(rustls::NamedGroup::secp384r1));
}

/// A TLS vhost added while serving (`ContextHandle::add_vhost`): its
/// certificate is read on the caller's thread, so a bad one is refused
/// there, and a good one serves on its new port.
#[test]
fn a_tls_vhost_added_while_serving() {
    let dir = site();
    let (ca, chain, key) = issue(&["a.test"]);
    let (_files, cert_path, key_path) = pem_files(&chain, &key);
    let server = Server::start(ContextInfo::new().vhost(vhost().mount(files_mount("/", dir.path()))));
    let wait = Duration::from_secs(20);
    let bad = vhost().tls(TlsConfig::from_pem_files(&key_path, &key_path)).mount(files_mount("/", dir.path()));
    let refused = server.handle.add_vhost(bad).recv_timeout(wait).expect("an answer");
    let e = refused.expect_err("a key given as the certificate");
    assert!(e.to_string().contains("BEGIN CERTIFICATE"), "{e}");
    let good = warren::VhostInfo::new("a.test", "127.0.0.2:0".parse().expect("addr"))
        .tls(TlsConfig::from_pem_files(&cert_path, &key_path))
        .mount(files_mount("/", dir.path()));
    let addr = server.handle.add_vhost(good).recv_timeout(wait).expect("an answer").expect("added");
    let mut sock = TcpStream::connect(addr).expect("connect");
    sock.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    let name = ServerName::try_from("a.test").expect("name");
    let mut conn = rustls::ClientConnection::new(client(&ca, &["http/1.1"]), name).expect("client");
    let text = get(&mut conn, &mut sock, "/index.html").expect("response");
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
}

/// `chain`'s first certificate and `key` as PEM files in a new temporary
/// directory: (the directory, the certificate's path, the key's).
fn pem_files(
    chain: &[CertificateDer<'static>],
    key: &PrivateKeyDer<'static>,
) -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf) {
    let files = tempfile::tempdir().expect("tempdir");
    let (cert_path, key_path) = (files.path().join("cert.pem"), files.path().join("key.pem"));
    write_pem(&cert_path, "CERTIFICATE", chain[0].as_ref());
    write_pem(&key_path, "PRIVATE KEY", key.secret_der());
    (files, cert_path, key_path)
}

/// Panics in user code on the TLS path (a certificate resolver, the event
/// callback) cost that connection only: the server goes on serving.
#[test]
fn a_panic_in_a_resolver_or_event_callback_costs_one_connection() {
    #[derive(Debug)]
    struct Panicky(Arc<CertifiedKey>);
    impl ResolvesServerCert for Panicky {
        fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
            if hello.server_name() == Some("panic.test") {
                panic!("resolver panics on purpose");
            }
            Some(Arc::clone(&self.0))
        }
    }
    let dir = site();
    let (ca, chain, key) = issue(&["a.test", "panic.test", "event.test"]);
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    let certified = Arc::new(CertifiedKey::from_der(chain, key, &provider).expect("certified key"));
    let tls = TlsConfig::from_resolver(Arc::new(Panicky(certified))).on_event(|event| {
        if let TlsEvent::Established { session, .. } = event {
            assert_ne!(session.sni.as_deref(), Some("event.test"), "event callback panics on purpose");
        }
        true
    });
    let server = Server::start(ContextInfo::new().vhost(vhost().mount(files_mount("/", dir.path())).tls(tls)));
    for _ in 0..3 {
        for name in ["panic.test", "event.test"] {
            let got = connect(&server, client(&ca, &["http/1.1"]), name)
                .map_err(|e| std::io::Error::other(e.to_string()))
                .and_then(|(mut conn, mut sock)| get(&mut conn, &mut sock, "/index.html"));
            assert!(!matches!(&got, Ok(t) if t.starts_with("HTTP/1.1 200")), "{name}: {got:?}");
        }
        let (mut conn, mut sock) = connect(&server, client(&ca, &["http/1.1"]), "a.test").expect("handshake");
        let text = get(&mut conn, &mut sock, "/index.html").expect("response");
        assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    }
}
