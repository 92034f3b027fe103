//! Certificates and keys from PEM files, checked so that what is wrong
//! with them is said at start (naming the file) rather than found by the
//! first client; and the slot a vhost's certificate sits in, which a
//! reload swaps.

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

/// The most bytes a certificate or key file may have (a chain of a few
/// certificates is some kilobytes; a bigger file is a mistake).
const MAX_PEM: u64 = 1 << 20;

/// Reads a file that should hold PEM, refusing what is not a regular
/// file (a FIFO would block the loop) or is absurdly big.
fn read_pem(path: &Path, what: &str) -> Result<Vec<u8>, String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("{}: cannot read the {what}: {e}", path.display()))?;
    if !meta.is_file() {
        return Err(format!("{}: the {what} is not a regular file", path.display()));
    }
    if meta.len() > MAX_PEM {
        return Err(format!("{}: the {what} is {} bytes; a PEM file is at most {MAX_PEM}", path.display(), meta.len()));
    }
    let bytes = std::fs::read(path).map_err(|e| format!("{}: cannot read the {what}: {e}", path.display()))?;
    if !bytes.windows(11).any(|w| w == b"-----BEGIN ") {
        return Err(format!(
            "{}: the {what} is not PEM (no \"-----BEGIN\" line; a DER file converts with `openssl {} -inform der`)",
            path.display(),
            if what == "certificate" { "x509" } else { "pkey" }
        ));
    }
    Ok(bytes)
}

/// The certificates of a PEM file, leaf first.
pub(crate) fn load_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let bytes = read_pem(path, "certificate")?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<_, pem::Error>>()
        .map_err(|e| format!("{}: malformed PEM: {e}", path.display()))?;
    if chain.is_empty() {
        return Err(format!("{}: no \"BEGIN CERTIFICATE\" block (is this the key file?)", path.display()));
    }
    Ok(chain)
}

/// The private key of a PEM file.
fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    let bytes = read_pem(path, "private key")?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| match e {
        pem::Error::NoItemsFound => format!(
            "{}: no private key (expected a \"BEGIN PRIVATE KEY\", \"BEGIN RSA PRIVATE KEY\" or \
             \"BEGIN EC PRIVATE KEY\" block; an encrypted key must be decrypted first)",
            path.display()
        ),
        e => format!("{}: malformed PEM: {e}", path.display()),
    })
}

/// Refuses a certificate outside its validity period, or one that is not
/// X.509 at all.
fn check_validity(path: &Path, der: &CertificateDer<'_>) -> Result<(), String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref())
        .map_err(|e| format!("{}: not an X.509 certificate: {e}", path.display()))?;
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
    let validity = cert.validity();
    if validity.not_after.timestamp() < now {
        return Err(format!("{}: the certificate expired on {}", path.display(), validity.not_after));
    }
    if validity.not_before.timestamp() > now {
        return Err(format!("{}: the certificate is not valid before {}", path.display(), validity.not_before));
    }
    Ok(())
}

/// The DNS names a certificate covers (its subjectAltName entries).
pub(crate) fn dns_names(der: &CertificateDer<'_>) -> Vec<String> {
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(der.as_ref()) else { return Vec::new() };
    let Ok(Some(san)) = cert.subject_alternative_name() else { return Vec::new() };
    san.value
        .general_names
        .iter()
        .filter_map(|n| match n {
            x509_parser::extensions::GeneralName::DNSName(d) => Some(d.to_ascii_lowercase()),
            _ => None,
        })
        .collect()
}

/// Whether `names` covers the host `name` (exactly, or by a `*.` label).
pub(crate) fn covers(names: &[String], name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    names.iter().any(|n| match n.strip_prefix("*.") {
        Some(parent) => name.split_once('.').is_some_and(|(label, rest)| !label.is_empty() && rest == parent),
        None => *n == name,
    })
}

/// Reads and checks a certificate chain alone: readable, PEM, its first
/// certificate X.509 and valid now.
pub(crate) fn check_chain(cert: &Path) -> Result<(), String> {
    let chain = load_chain(cert)?;
    check_validity(cert, &chain[0])
}

/// Reads and checks a certificate chain and its key: readable, PEM, the
/// certificate valid now, the key of a kind the provider signs with, and
/// the key matching the certificate. Every error names the file.
pub(crate) fn load_certified_key(cert: &Path, key: &Path, provider: &CryptoProvider) -> Result<CertifiedKey, String> {
    let chain = load_chain(cert)?;
    check_validity(cert, &chain[0])?;
    let key_der = load_key(key)?;
    let signer = provider
        .key_provider
        .load_private_key(key_der)
        .map_err(|e| format!("{}: a private key of a kind rustls cannot sign with: {e}", key.display()))?;
    let certified = CertifiedKey::new(chain, signer);
    match certified.keys_match() {
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => Ok(certified),
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
            Err(format!("{}: this key does not belong to the certificate in {}", key.display(), cert.display()))
        }
        Err(e) => Err(format!("{}: {e}", cert.display())),
    }
}

/// CA certificates for verifying clients, from a PEM file.
pub(crate) fn load_roots(path: &Path) -> Result<rustls::RootCertStore, String> {
    let mut roots = rustls::RootCertStore::empty();
    for der in load_chain(path)? {
        roots.add(der).map_err(|e| format!("{}: a CA certificate rustls cannot use: {e}", path.display()))?;
    }
    Ok(roots)
}

/// A vhost's certificate, swapped whole by a reload while handshakes
/// read it: each handshake takes the `Arc` it finds.
#[derive(Debug)]
pub(crate) struct CertSlot {
    key: RwLock<Arc<CertifiedKey>>,
}

impl CertSlot {
    pub(crate) fn new(key: Arc<CertifiedKey>) -> CertSlot {
        CertSlot { key: RwLock::new(key) }
    }

    /// Puts `key` in place of the certificate served until now.
    pub(crate) fn replace(&self, key: Arc<CertifiedKey>) {
        *self.key.write().unwrap_or_else(|e| e.into_inner()) = key;
    }

    /// The DNS names the certificate served now covers.
    pub(crate) fn names(&self) -> Vec<String> {
        let key = Arc::clone(&self.key.read().unwrap_or_else(|e| e.into_inner()));
        key.cert.first().map(dns_names).unwrap_or_default()
    }
}

impl ResolvesServerCert for CertSlot {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(&self.key.read().unwrap_or_else(|e| e.into_inner())))
    }
}

#[cfg(test)]
mod tests {
    use super::covers;

    #[test]
    fn wildcards_cover_one_label() {
        let names = vec!["example.com".to_string(), "*.example.org".to_string()];
        assert!(covers(&names, "Example.COM"));
        assert!(covers(&names, "a.example.org"));
        assert!(!covers(&names, "example.org"));
        assert!(!covers(&names, "a.b.example.org"));
        assert!(!covers(&names, "www.example.com"));
    }
}
