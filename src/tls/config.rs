//! [`TlsConfig`]: what a vhost's TLS is built from.

use rustls::server::ResolvesServerCert;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where a vhost's certificate comes from.
#[derive(Clone)]
pub(crate) enum CertSource {
    /// A PEM certificate chain (leaf first) and its private key, read at
    /// start and again by [`ContextHandle::set_certificate`](crate::ContextHandle::set_certificate).
    Files { cert: PathBuf, key: PathBuf },
    /// User code picks the certificate for each handshake.
    Resolver(Arc<dyn ResolvesServerCert>),
}

/// Something that happened to a TLS connection, for
/// [`TlsConfig::on_event`] (the Rust form of lws's `SSL_INFO`
/// callback).
#[derive(Debug)]
#[non_exhaustive]
pub enum TlsEvent<'a> {
    /// A handshake completed.
    Established {
        /// Who connected.
        peer: SocketAddr,
        /// What was negotiated.
        session: &'a TlsSession,
    },
    /// A handshake failed (an alert went to the peer, or came from it).
    Failed {
        /// Who connected.
        peer: SocketAddr,
        /// The SNI the client sent, if it got that far.
        sni: Option<&'a str>,
        /// What went wrong, as rustls says it.
        error: &'a str,
    },
    /// An established connection failed: a bad record, or an alert from
    /// the peer.
    Error {
        /// Who connected.
        peer: SocketAddr,
        /// What went wrong, as rustls says it.
        error: &'a str,
    },
}

use super::TlsSession;

/// What a TLS port does with a client whose first bytes are not TLS
/// (spec RAW-4; lwsws `allow-non-tls` with `redirect-http` or
/// `allow-http-on-https`). The listener's first vhost decides for the
/// port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PlainOnTls {
    /// Log it and close (the default).
    #[default]
    Drop,
    /// Answer its requests with `301` to the same URL over `https://`
    /// (REDIR-3).
    Redirect,
    /// Serve it plain HTTP, as on a plaintext port.
    Serve,
}

/// The callback type of [`TlsConfig::on_event`].
pub(crate) type OnEvent = Arc<dyn Fn(&TlsEvent<'_>) -> bool + Send + Sync>;
/// The callback type of [`TlsConfig::customize`].
pub(crate) type Customize = Arc<dyn Fn(&mut rustls::ServerConfig) + Send + Sync>;

/// How a vhost speaks TLS: its certificate and how it negotiates.
///
/// ```no_run
/// use warren::tls::TlsConfig;
/// use warren::VhostInfo;
///
/// let tls = TlsConfig::from_pem_files("/etc/warren/example.com.pem", "/etc/warren/example.com.key")
///     .tls13_ciphers("TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256");
/// let vhost = VhostInfo::new("example.com", "[::]:443".parse().unwrap()).tls(tls).sts(true);
/// ```
#[derive(Clone)]
pub struct TlsConfig {
    pub(crate) cert: CertSource,
    pub(crate) client_ca: Option<PathBuf>,
    pub(crate) client_cert_required: bool,
    pub(crate) ciphers: Option<String>,
    pub(crate) tls13_ciphers: Option<String>,
    pub(crate) groups: Option<String>,
    pub(crate) tls12: bool,
    pub(crate) tls13: bool,
    pub(crate) server_order: bool,
    pub(crate) tickets: bool,
    pub(crate) alpn: Vec<String>,
    pub(crate) on_event: Option<OnEvent>,
    pub(crate) customize: Option<Customize>,
}

impl fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cert = match &self.cert {
            CertSource::Files { cert, key } => format!("files {} {}", cert.display(), key.display()),
            CertSource::Resolver(r) => format!("resolver {r:?}"),
        };
        f.debug_struct("TlsConfig")
            .field("cert", &cert)
            .field("client_ca", &self.client_ca)
            .field("client_cert_required", &self.client_cert_required)
            .field("ciphers", &self.ciphers)
            .field("tls13_ciphers", &self.tls13_ciphers)
            .field("groups", &self.groups)
            .field("versions", &(self.tls12, self.tls13))
            .field("alpn", &self.alpn)
            .finish_non_exhaustive()
    }
}

impl TlsConfig {
    fn with(cert: CertSource) -> TlsConfig {
        TlsConfig {
            cert,
            client_ca: None,
            client_cert_required: false,
            ciphers: None,
            tls13_ciphers: None,
            groups: None,
            tls12: true,
            tls13: true,
            server_order: true,
            tickets: true,
            alpn: vec!["http/1.1".into()],
            on_event: None,
            customize: None,
        }
    }

    /// A certificate chain and private key from PEM files (lwsws
    /// `host-ssl-cert` and `host-ssl-key`). The certificate file holds the
    /// vhost's certificate first, then any intermediates (a
    /// `fullchain.pem`); the key is PKCS#8, PKCS#1 (RSA) or SEC1 (EC):
    /// RSA, ECDSA P-256/P-384 and Ed25519 keys work. They are read and
    /// checked (readable, PEM, key matching certificate, certificate in
    /// its validity period) when the vhost is attached.
    pub fn from_pem_files(cert: impl AsRef<Path>, key: impl AsRef<Path>) -> TlsConfig {
        TlsConfig::with(CertSource::Files { cert: cert.as_ref().to_path_buf(), key: key.as_ref().to_path_buf() })
    }

    /// Certificates chosen by your code for each handshake, from the
    /// ClientHello (its SNI, signature schemes, ALPN): the Rust form of
    /// lws's per-vhost `SSL_CTX` certificate callbacks. The resolver
    /// answers for this vhost only (SNI has already picked the vhost);
    /// returning `None` fails the handshake.
    pub fn from_resolver(resolver: Arc<dyn ResolvesServerCert>) -> TlsConfig {
        TlsConfig::with(CertSource::Resolver(resolver))
    }

    /// CA certificates (PEM) that client certificates are verified
    /// against (lwsws `host-ssl-ca`). Without
    /// [`require_client_cert`](TlsConfig::require_client_cert), a
    /// client may present one or not; one it presents must verify.
    pub fn client_ca(mut self, pem: impl AsRef<Path>) -> TlsConfig {
        self.client_ca = Some(pem.as_ref().to_path_buf());
        self
    }

    /// Demands a client certificate that verifies against
    /// [`client_ca`](TlsConfig::client_ca) (lwsws
    /// `client-cert-required`: mutual TLS).
    pub fn require_client_cert(mut self, on: bool) -> TlsConfig {
        self.client_cert_required = on;
        self
    }

    /// The TLS 1.2 cipher suites, in OpenSSL's syntax (lwsws `ciphers`):
    /// names separated by `:`, OpenSSL or IANA spelling, with `!` to
    /// remove and keywords such as `HIGH`, `ECDHE+AESGCM` or `aECDSA`.
    /// rustls has only AEAD suites with forward secrecy; names of others
    /// (CBC, RC4, DHE, static RSA) are skipped with a warning, and a list
    /// that leaves none is an error.
    pub fn ciphers(mut self, list: impl Into<String>) -> TlsConfig {
        self.ciphers = Some(list.into());
        self
    }

    /// The TLS 1.3 cipher suites (lwsws `tls13-ciphers`), e.g.
    /// `TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256`.
    pub fn tls13_ciphers(mut self, list: impl Into<String>) -> TlsConfig {
        self.tls13_ciphers = Some(list.into());
        self
    }

    /// The key-exchange groups, most preferred first (lwsws
    /// `ecdh-curve`): `X25519MLKEM768`, `X25519`, `P-256`
    /// (`prime256v1`), `P-384` (`secp384r1`), separated by `:`.
    pub fn groups(mut self, list: impl Into<String>) -> TlsConfig {
        self.groups = Some(list.into());
        self
    }

    /// Which protocol versions to accept; both by default. Nothing older
    /// than TLS 1.2 exists in rustls.
    pub fn versions(mut self, tls12: bool, tls13: bool) -> TlsConfig {
        self.tls12 = tls12;
        self.tls13 = tls13;
        self
    }

    /// Whether the server's order of cipher suites wins over the
    /// client's (OpenSSL's `SSL_OP_CIPHER_SERVER_PREFERENCE`); on by
    /// default.
    pub fn prefer_server_order(mut self, on: bool) -> TlsConfig {
        self.server_order = on;
        self
    }

    /// Whether to resume sessions by TLS 1.3 tickets (on by default; the
    /// keys rotate every six hours). TLS 1.2 sessions resume from a
    /// bounded cache either way.
    pub fn session_tickets(mut self, on: bool) -> TlsConfig {
        self.tickets = on;
        self
    }

    /// The ALPN protocols offered, most preferred first (lwsws `alpn`).
    /// warren speaks `http/1.1`, the default; the list is checked when
    /// the vhost is attached.
    pub fn alpn(mut self, protocols: &[&str]) -> TlsConfig {
        self.alpn = protocols.iter().map(|p| p.to_string()).collect();
        self
    }

    /// Calls `f` on handshake events and alerts (lws `SSL_INFO`). For an
    /// [`TlsEvent::Established`] connection, returning `false` closes it.
    /// It runs on the loop: keep it quick.
    pub fn on_event(mut self, f: impl Fn(&TlsEvent<'_>) -> bool + Send + Sync + 'static) -> TlsConfig {
        self.on_event = Some(Arc::new(f));
        self
    }

    /// Calls `f` on the vhost's `rustls::ServerConfig` once warren has
    /// built it, to set what this type does not (the Rust form of lws's
    /// per-vhost `SSL_CTX` callbacks). warren's own settings are what it
    /// finds there; what it changes is on the user.
    pub fn customize(mut self, f: impl Fn(&mut rustls::ServerConfig) + Send + Sync + 'static) -> TlsConfig {
        self.customize = Some(Arc::new(f));
        self
    }
}
