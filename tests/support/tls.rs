//! TLS helpers for tests: a CA and certificates made by rcgen and written
//! as PEM files, a rustls client (verifying against a test CA, or not
//! verifying at all, to look at whichever certificate the server sends),
//! and `openssl s_client` / curl runs.

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;
use warren::tls::rustls;
use warren::tls::rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use warren::tls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use warren::tls::rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, SignatureScheme, StreamOwned};

/// A test certificate authority, its certificate at `path`.
pub struct Ca {
    pub path: PathBuf,
    pub pem: String,
    issuer: Issuer<'static, KeyPair>,
    dir: PathBuf,
}

/// A certificate and its key, as PEM files and the certificate's DER.
#[derive(Clone)]
pub struct Leaf {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub der: Vec<u8>,
}

fn dn(cn: &str) -> DistinguishedName {
    let mut d = DistinguishedName::new();
    d.push(DnType::OrganizationName, "warren tests");
    d.push(DnType::CommonName, cn);
    d
}

impl Ca {
    /// A new CA named `cn`, its files in `dir`.
    pub fn new(dir: &Path, cn: &str) -> Ca {
        let mut p = CertificateParams::new(Vec::<String>::new()).expect("params");
        p.distinguished_name = dn(cn);
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        let key = KeyPair::generate().expect("key");
        let pem = p.self_signed(&key).expect("self-signed").pem();
        let path = dir.join(format!("{}.ca.pem", cn.replace(' ', "_")));
        std::fs::write(&path, &pem).expect("write ca");
        Ca { path, pem, issuer: Issuer::new(p, key), dir: dir.to_path_buf() }
    }

    /// A server certificate for `names` (subject CN = the first name),
    /// written as `<stem>.pem` and `<stem>.key`; `tweak` may change its
    /// parameters (validity, say).
    pub fn server(&self, stem: &str, names: &[&str], tweak: impl FnOnce(&mut CertificateParams)) -> Leaf {
        let mut p = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).expect("params");
        p.distinguished_name = dn(names.first().copied().unwrap_or(stem));
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        tweak(&mut p);
        self.sign(stem, p)
    }

    /// A client certificate with subject `CN=cn,O=warren tests`.
    pub fn client(&self, stem: &str, cn: &str) -> Leaf {
        let mut p = CertificateParams::new(Vec::<String>::new()).expect("params");
        p.distinguished_name = dn(cn);
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.sign(stem, p)
    }

    fn sign(&self, stem: &str, p: CertificateParams) -> Leaf {
        let key = KeyPair::generate().expect("key");
        let cert = p.signed_by(&key, &self.issuer).expect("sign");
        let (cert_path, key_path) = (self.dir.join(format!("{stem}.pem")), self.dir.join(format!("{stem}.key")));
        std::fs::write(&cert_path, cert.pem()).expect("write cert");
        std::fs::write(&key_path, key.serialize_pem()).expect("write key");
        Leaf { cert: cert_path, key: key_path, der: cert.der().to_vec() }
    }
}

/// Accepts any server certificate (the tests look at which one came).
#[derive(Debug)]
struct AnyCert(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AnyCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// How a rustls test client connects.
#[derive(Default, Clone)]
pub struct ClientOpts<'a> {
    /// Verify the server against this CA; `None`: accept any certificate.
    pub ca: Option<&'a Path>,
    /// Present this client certificate.
    pub cert: Option<&'a Leaf>,
    /// Send no SNI.
    pub no_sni: bool,
    /// ALPN protocols to offer.
    pub alpn: &'a [&'a str],
}

pub fn client_config(o: &ClientOpts<'_>) -> Arc<ClientConfig> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .expect("versions");
    let builder = match o.ca {
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            let pem = std::fs::read(ca).expect("read ca");
            for c in rustls_pemfile_certs(&pem) {
                roots.add(c).expect("root");
            }
            builder.with_root_certificates(roots)
        }
        None => builder.dangerous().with_custom_certificate_verifier(Arc::new(AnyCert(Arc::clone(&provider)))),
    };
    let mut config = match o.cert {
        Some(leaf) => {
            let certs = rustls_pemfile_certs(&std::fs::read(&leaf.cert).expect("read cert"));
            let key = {
                use rustls::pki_types::pem::PemObject;
                PrivateKeyDer::from_pem_file(&leaf.key).expect("key")
            };
            builder.with_client_auth_cert(certs, key).expect("client cert")
        }
        None => builder.with_no_client_auth(),
    };
    config.enable_sni = !o.no_sni;
    config.alpn_protocols = o.alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
    Arc::new(config)
}

fn rustls_pemfile_certs(pem: &[u8]) -> Vec<CertificateDer<'static>> {
    use rustls::pki_types::pem::PemObject;
    CertificateDer::pem_slice_iter(pem).collect::<Result<_, _>>().expect("pem certs")
}

pub type TlsStream = StreamOwned<ClientConnection, TcpStream>;

/// A TLS connection to `addr` for `name` (SNI, unless `o.no_sni`), its
/// handshake completed.
pub fn connect(addr: SocketAddr, name: &str, o: &ClientOpts<'_>) -> io::Result<TlsStream> {
    connect_with(addr, name, client_config(o))
}

pub fn connect_with(addr: SocketAddr, name: &str, config: Arc<ClientConfig>) -> io::Result<TlsStream> {
    let server_name = ServerName::try_from(name.to_string()).map_err(io::Error::other)?;
    let conn = ClientConnection::new(config, server_name).map_err(io::Error::other)?;
    let tcp = TcpStream::connect(addr)?;
    tcp.set_read_timeout(Some(Duration::from_secs(20)))?;
    tcp.set_write_timeout(Some(Duration::from_secs(20)))?;
    let mut s = StreamOwned::new(conn, tcp);
    while s.conn.is_handshaking() {
        s.conn.complete_io(&mut s.sock)?;
    }
    Ok(s)
}

/// The server's certificate (DER) on a completed connection.
pub fn peer_cert(s: &TlsStream) -> Vec<u8> {
    s.conn.peer_certificates().and_then(|c| c.first()).map(|c| c.as_ref().to_vec()).expect("server certificate")
}

/// Sends `req` over a new TLS connection and reads one response.
pub fn tls_request(addr: SocketAddr, name: &str, o: &ClientOpts<'_>, req: &str) -> io::Result<super::Response> {
    let mut s = connect(addr, name, o)?;
    s.write_all(req.as_bytes())?;
    s.flush()?;
    super::Reader::new(s).response(req.starts_with("HEAD "))
}

/// Reads until EOF (or an error: a reset, a TLS alert), returning what
/// came and whether it ended cleanly.
pub fn read_to_end(s: &mut impl Read) -> (Vec<u8>, io::Result<()>) {
    let mut out = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return (out, Ok(())),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return (out, Err(e)),
        }
    }
}

/// A request for s_client's stdin: the server answers and closes, which
/// ends s_client (with `-ign_eof`) cleanly whatever the timing.
pub const HEAD_CLOSE: &[u8] = b"HEAD / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";

/// Runs `openssl s_client -connect 127.0.0.1:port -ign_eof ARGS` with
/// `stdin`: it reads on after stdin's end until the server closes (an
/// s_client that closes at the end of stdin may do so before or after
/// the handshake ends, depending on timing); returns (exit ok, stdout +
/// stderr). `timeout` guards against a hang.
pub fn s_client(port: u16, args: &[&str], stdin: &[u8]) -> (bool, String) {
    let mut all = vec!["-ign_eof"];
    all.extend_from_slice(args);
    s_client_run(port, &all, stdin, false)
}

/// [`s_client`], keeping its stdin open after `stdin` until it exits on
/// its own (an error, or the server closing), so that a command such as
/// `R` (renegotiate) plays out whole.
pub fn s_client_held(port: u16, args: &[&str], stdin: &[u8]) -> (bool, String) {
    s_client_run(port, args, stdin, true)
}

fn s_client_run(port: u16, args: &[&str], stdin: &[u8], hold: bool) -> (bool, String) {
    let mut child = Command::new("timeout")
        .args(["60", "openssl", "s_client", "-connect", &format!("127.0.0.1:{port}")])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("openssl must be installed (scripts/test installs it)");
    let mut input = child.stdin.take().expect("stdin");
    let data = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&data);
        let _ = input.flush();
        input
    });
    let held = if hold { writer.join().ok() } else { None };
    let out = child.wait_with_output().expect("s_client output");
    drop(held);
    let text = format!("{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

/// The value after `key` on the first line of `text` that has it.
pub fn field<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.lines().find_map(|l| l.trim().strip_prefix(key)).map(str::trim)
}

/// Runs curl over https to `name` on `port` (resolved to 127.0.0.1),
/// trusting `ca`; `args` come first, the URL `path` last. Returns (exit
/// ok, stdout).
pub fn curl_https(port: u16, name: &str, ca: &Path, args: &[&str], path: &str) -> (bool, Vec<u8>) {
    let resolve = format!("{name}:{port}:127.0.0.1");
    let url = format!("https://{name}:{port}{path}");
    let ca = ca.to_string_lossy();
    let mut all: Vec<&str> = vec!["--cacert", &ca, "--resolve", &resolve];
    all.extend_from_slice(args);
    all.push(&url);
    super::curl(&all)
}

/// Open file descriptors of process `pid`.
pub fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}
