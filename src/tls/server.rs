//! A vhost's rustls `ServerConfig`, built from its [`TlsConfig`].

use super::certs::{self, CertSlot};
use super::config::{CertSource, OnEvent, TlsConfig};
use super::names;
use rustls::crypto::aws_lc_rs;
use rustls::server::{ProducesTickets, ResolvesServerCert, ServerSessionMemoryCache, WebPkiClientVerifier};
use rustls::{ServerConfig, SupportedProtocolVersion};
use std::path::Path;
use std::sync::{Arc, OnceLock};

/// The application protocols warren speaks over TLS, for ALPN. HTTP/2
/// joins this list when it comes (`h2` before `http/1.1`).
pub(crate) const ALPN_SPOKEN: &[&str] = &["http/1.1"];

/// TLS 1.2 sessions remembered for resumption, shared by the vhosts that
/// verify no client certificates (some hundred bytes each).
const SESSION_CACHE: usize = 4096;

/// Sessions remembered by each vhost that verifies client certificates
/// (each holds the client's certificate chain, so fewer).
const CLIENT_AUTH_SESSION_CACHE: usize = 256;

/// A TLS vhost, ready to handshake.
#[derive(Clone)]
pub(crate) struct VhostTls {
    pub(crate) config: Arc<ServerConfig>,
    /// The certificate read from files, which a reload replaces (none
    /// when user code resolves certificates).
    pub(crate) slot: Option<Arc<CertSlot>>,
    /// Whether the vhost demands a verified client certificate.
    pub(crate) client_cert_required: bool,
    /// Whether it verifies client certificates at all (it has a client CA).
    pub(crate) client_auth: bool,
    pub(crate) on_event: Option<OnEvent>,
}

impl std::fmt::Debug for VhostTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VhostTls")
            .field("alpn", &self.config.alpn_protocols.len())
            .field("client_cert_required", &self.client_cert_required)
            .finish_non_exhaustive()
    }
}

/// The process's TLS 1.2 session cache, shared by every vhost: bounded.
fn session_cache() -> Arc<ServerSessionMemoryCache> {
    static CACHE: OnceLock<Arc<ServerSessionMemoryCache>> = OnceLock::new();
    Arc::clone(CACHE.get_or_init(|| ServerSessionMemoryCache::new(SESSION_CACHE)))
}

/// The ticket keys (rotated every six hours by rustls) of the vhosts that
/// verify no client certificates, shared: such a session carries nothing
/// a vhost must check, and rustls resumes it only for the same SNI.
fn ticketer() -> Result<Arc<dyn ProducesTickets>, String> {
    static TICKETER: OnceLock<Arc<dyn ProducesTickets>> = OnceLock::new();
    if let Some(t) = TICKETER.get() {
        return Ok(Arc::clone(t));
    }
    let t = aws_lc_rs::Ticketer::new().map_err(|e| format!("cannot make session ticket keys: {e}"))?;
    Ok(Arc::clone(TICKETER.get_or_init(|| t)))
}

/// Builds vhost `name`'s TLS from `t`: reads and checks its certificate
/// and key, its client CA, and maps its suites, groups and versions.
/// Errors name the file or setting at fault.
pub(crate) fn build(name: &str, t: &TlsConfig) -> Result<VhostTls, String> {
    let mut provider = aws_lc_rs::default_provider();
    let mut suites = Vec::new();
    if t.tls13 {
        match &t.tls13_ciphers {
            Some(list) => suites.extend(names::tls13_ciphers(list).map_err(|e| format!("TLS 1.3 ciphers: {e}"))?),
            None => suites.extend(names::default_tls13()),
        }
    }
    if t.tls12 {
        match &t.ciphers {
            Some(list) => {
                let parsed = names::tls12_ciphers(list).map_err(|e| format!("ciphers: {e}"))?;
                if !parsed.absent.is_empty() {
                    log::warn!(
                        "vhost {name:?}: ciphers {:?} have no rustls suite (it has only AEAD suites with \
                         forward secrecy) and are left out",
                        parsed.absent
                    );
                }
                suites.extend(parsed.suites);
            }
            None => suites.extend(names::default_tls12()),
        }
    }
    if suites.is_empty() {
        return Err("no TLS version is left to speak".into());
    }
    provider.cipher_suites = suites;
    if let Some(list) = &t.groups {
        provider.kx_groups = names::groups(list).map_err(|e| format!("groups (ecdh-curve): {e}"))?;
    }
    let provider = Arc::new(provider);
    let mut versions: Vec<&'static SupportedProtocolVersion> = Vec::new();
    if t.tls13 {
        versions.push(&rustls::version::TLS13);
    }
    if t.tls12 {
        versions.push(&rustls::version::TLS12);
    }
    let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&versions)
        .map_err(|e| format!("the versions and suites do not fit together: {e}"))?;
    let builder = match &t.client_ca {
        Some(ca) => {
            let roots = Arc::new(certs::load_roots(ca)?);
            let mut verifier = WebPkiClientVerifier::builder_with_provider(roots, Arc::clone(&provider));
            if !t.client_cert_required {
                verifier = verifier.allow_unauthenticated();
            }
            let verifier = verifier.build().map_err(|e| format!("{}: {e}", ca.display()))?;
            builder.with_client_cert_verifier(verifier)
        }
        None if t.client_cert_required => {
            return Err("client certificates are required, and there is no CA (host-ssl-ca) to verify them".into())
        }
        None => builder.with_no_client_auth(),
    };
    let (resolver, slot): (Arc<dyn ResolvesServerCert>, _) = match &t.cert {
        CertSource::Files { cert, key } => {
            let certified = certs::load_certified_key(cert, key, &provider)?;
            let covered = certs::dns_names(&certified.cert[0]);
            if name.contains('.') && !covered.is_empty() && !certs::covers(&covered, name) {
                log::warn!(
                    "vhost {name:?}: the certificate in {} is for {covered:?}, not {name:?}: clients will refuse it",
                    cert.display()
                );
            }
            let slot = Arc::new(CertSlot::new(Arc::new(certified)));
            (Arc::clone(&slot) as Arc<dyn ResolvesServerCert>, Some(slot))
        }
        CertSource::Resolver(r) => (Arc::clone(r), None),
    };
    let mut config = builder.with_cert_resolver(resolver);
    for p in &t.alpn {
        if !ALPN_SPOKEN.contains(&p.as_str()) {
            return Err(format!("ALPN protocol {p:?}: warren speaks {ALPN_SPOKEN:?} over TLS"));
        }
    }
    config.alpn_protocols = t.alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
    config.ignore_client_order = t.server_order;
    // A resumed session carries the client certificate of its first
    // handshake (or none), and rustls checks only the SNI and suite when
    // resuming: a vhost that verifies client certificates must not resume
    // sessions another vhost made (the same name on another port, or no
    // SNI at all), so it gets a cache and ticket keys of its own.
    if t.client_ca.is_some() {
        config.session_storage = ServerSessionMemoryCache::new(CLIENT_AUTH_SESSION_CACHE);
        if t.tickets {
            config.ticketer =
                aws_lc_rs::Ticketer::new().map_err(|e| format!("cannot make session ticket keys: {e}"))?;
        }
    } else {
        config.session_storage = session_cache();
        if t.tickets {
            config.ticketer = ticketer()?;
        }
    }
    if let Some(f) = &t.customize {
        f(&mut config);
    }
    Ok(VhostTls {
        config: Arc::new(config),
        slot,
        client_cert_required: t.client_cert_required,
        client_auth: t.client_ca.is_some(),
        on_event: t.on_event.clone(),
    })
}

/// Reads and checks `cert` and `key` as [`build`] does, for
/// [`CertSlot::replace`].
pub(crate) fn load(cert: &Path, key: &Path) -> Result<Arc<rustls::sign::CertifiedKey>, String> {
    certs::load_certified_key(cert, key, &aws_lc_rs::default_provider()).map(Arc::new)
}

/// Checks a certificate and key pair as [`build`] would, for the
/// configuration, which names the key at fault: `Err((false, why))` is
/// about the certificate file, `Err((true, why))` about the key (its
/// file, or its not matching the certificate).
pub(crate) fn check_files(cert: &Path, key: &Path) -> Result<(), (bool, String)> {
    certs::check_chain(cert).map_err(|e| (false, e))?;
    certs::load_certified_key(cert, key, &aws_lc_rs::default_provider()).map(drop).map_err(|e| (true, e))
}

/// Checks a client CA file.
pub(crate) fn check_roots(ca: &Path) -> Result<(), String> {
    certs::load_roots(ca).map(drop)
}
