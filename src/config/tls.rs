//! The lwsws TLS keys of a vhost (CFG-7: `host-ssl-*`, `ciphers`,
//! `tls13-ciphers`, `ecdh-curve`, `ssl-option-set`/`-clear`, `alpn`,
//! `client-cert-required`, `sts`, `allow-non-tls`, `redirect-http`,
//! `allow-http-on-https`) and the global ones (`init-ssl`, `default-alpn`),
//! read into a [`crate::tls::TlsConfig`] and checked where the key is
//! named.

#[cfg(feature = "tls")]
use super::number;
use super::{bad, ConfigError, Scalar, Vhost};
use crate::VhostInfo;
use std::path::Path;

/// A vhost's TLS keys (CFG-7), by name.
fn tls_keys(v: &Vhost) -> [(&'static str, &Option<Scalar>); 14] {
    [
        ("host-ssl-cert", &v.host_ssl_cert),
        ("host-ssl-key", &v.host_ssl_key),
        ("host-ssl-ca", &v.host_ssl_ca),
        ("client-cert-required", &v.client_cert_required),
        ("ciphers", &v.ciphers),
        ("tls13-ciphers", &v.tls13_ciphers),
        ("ecdh-curve", &v.ecdh_curve),
        ("ssl-option-set", &v.ssl_option_set),
        ("ssl-option-clear", &v.ssl_option_clear),
        ("alpn", &v.alpn),
        ("sts", &v.sts),
        ("allow-non-tls", &v.allow_non_tls),
        ("redirect-http", &v.redirect_http),
        ("allow-http-on-https", &v.allow_http_on_https),
    ]
}

/// The global settings vhosts' TLS depends on.
#[derive(Clone, Copy)]
#[cfg_attr(not(feature = "tls"), allow(dead_code))]
pub(super) struct GlobalTls<'a> {
    pub(super) init_ssl: bool,
    pub(super) default_alpn: Option<&'a [String]>,
}

/// An lwsws ALPN list (`"h2,http/1.1"`): the protocols warren speaks,
/// in order. `h2` is skipped (with a warning) until HTTP/2 comes.
pub(super) fn alpn_list(file: &Path, key: &str, v: &Scalar) -> Result<Vec<String>, ConfigError> {
    let mut out = Vec::new();
    for p in v.text().split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match p {
            "http/1.1" => out.push(p.to_string()),
            "h2" => log::warn!("{}: {key}: \"h2\" is not offered: warren does not speak HTTP/2 yet", file.display()),
            other => {
                return Err(bad(file, key, format!("{other:?}: expected ALPN protocols from \"http/1.1\" and \"h2\"")))
            }
        }
    }
    Ok(out)
}

/// What each OpenSSL option bit (`ssl-option-set`/`-clear`) does here.
#[cfg(feature = "tls")]
#[derive(Clone, Copy, PartialEq)]
enum OptionBit {
    /// Asks for what rustls does anyway (or concerns what it lacks).
    Inert,
    NoTls12,
    NoTls13,
    ServerOrder,
    NoTickets,
    /// Cannot be honoured: the reason.
    Refused(&'static str),
}

/// OpenSSL 3's option bits, by number.
#[cfg(feature = "tls")]
fn option_bit(bit: u32) -> (&'static str, OptionBit, OptionBit) {
    use OptionBit::*;
    // (name, effect when set, effect when cleared)
    match bit {
        0 => ("SSL_OP_NO_EXTENDED_MASTER_SECRET", Refused("rustls always offers extended master secret"), Inert),
        1 => ("SSL_OP_CLEANSE_PLAINTEXT", Inert, Inert),
        2 => ("SSL_OP_LEGACY_SERVER_CONNECT", Inert, Inert),
        3 => ("SSL_OP_ENABLE_KTLS", Refused("rustls does not hand records to kernel TLS"), Inert),
        4 => ("SSL_OP_TLSEXT_PADDING", Inert, Inert),
        6 => ("SSL_OP_SAFARI_ECDHE_ECDSA_BUG", Inert, Inert),
        7 => ("SSL_OP_IGNORE_UNEXPECTED_EOF", Inert, Inert),
        10 => ("SSL_OP_ALLOW_NO_DHE_KEX", Refused("rustls resumes only with a fresh key exchange"), Inert),
        11 => ("SSL_OP_DONT_INSERT_EMPTY_FRAGMENTS", Inert, Inert),
        12 => ("SSL_OP_NO_QUERY_MTU", Inert, Inert),
        13 => ("SSL_OP_COOKIE_EXCHANGE", Inert, Inert),
        14 => ("SSL_OP_NO_TICKET", NoTickets, Inert),
        16 => ("SSL_OP_NO_SESSION_RESUMPTION_ON_RENEGOTIATION", Inert, Inert),
        17 => ("SSL_OP_NO_COMPRESSION", Inert, Refused("rustls never compresses records (CRIME)")),
        18 => ("SSL_OP_ALLOW_UNSAFE_LEGACY_RENEGOTIATION", Refused("rustls never renegotiates"), Inert),
        19 => ("SSL_OP_NO_ENCRYPT_THEN_MAC", Inert, Inert),
        20 => ("SSL_OP_ENABLE_MIDDLEBOX_COMPAT", Inert, Inert),
        21 => ("SSL_OP_PRIORITIZE_CHACHA", Refused("rustls has no such preference; order the suites instead"), Inert),
        22 => ("SSL_OP_CIPHER_SERVER_PREFERENCE", ServerOrder, ServerOrder),
        23 => ("SSL_OP_TLS_ROLLBACK_BUG", Inert, Inert),
        24 => ("SSL_OP_NO_SSLv2 or SSL_OP_NO_ANTI_REPLAY", Inert, Inert),
        25 => ("SSL_OP_NO_SSLv3", Inert, Refused("rustls has no SSLv3")),
        26 => ("SSL_OP_NO_TLSv1", Inert, Refused("rustls has no TLS 1.0")),
        27 => ("SSL_OP_NO_TLSv1_2", NoTls12, Inert),
        28 => ("SSL_OP_NO_TLSv1_1", Inert, Refused("rustls has no TLS 1.1")),
        29 => ("SSL_OP_NO_TLSv1_3", NoTls13, Inert),
        30 => ("SSL_OP_NO_RENEGOTIATION", Inert, Refused("rustls never renegotiates")),
        31 => ("SSL_OP_CRYPTOPRO_TLSEXT_BUG", Inert, Inert),
        8 => ("SSL_OP_ALLOW_CLIENT_RENEGOTIATION", Refused("rustls never renegotiates"), Inert),
        9 => ("SSL_OP_DISABLE_TLSEXT_CA_NAMES", Inert, Inert),
        15 => ("SSL_OP_CISCO_ANYCONNECT", Inert, Inert),
        // OpenSSL 3.2 and later.
        32 => ("SSL_OP_NO_TX_CERTIFICATE_COMPRESSION", Inert, Inert),
        33 => ("SSL_OP_NO_RX_CERTIFICATE_COMPRESSION", Inert, Inert),
        34 => ("SSL_OP_ENABLE_KTLS_TX_ZEROCOPY_SENDFILE", Refused("rustls does not hand records to kernel TLS"), Inert),
        35 => ("SSL_OP_PREFER_NO_DHE_KEX", Inert, Inert),
        // A bit OpenSSL 1.1 and 3 no longer use.
        5 => ("an unused OpenSSL option bit", Inert, Inert),
        _ => {
            let why = "no OpenSSL option (up to 3.5) has this bit";
            ("an unknown bit", Refused(why), Refused(why))
        }
    }
}

/// Applies `ssl-option-set` / `-clear` to `tls`.
#[cfg(feature = "tls")]
fn apply_options(
    file: &Path,
    key: &str,
    v: &Scalar,
    set: bool,
    mut tls: crate::tls::TlsConfig,
) -> Result<crate::tls::TlsConfig, ConfigError> {
    let bits = number(file, key, v)?;
    for bit in 0..64u32 {
        if bits & (1u64 << bit) == 0 {
            continue;
        }
        let (name, on_set, on_clear) = option_bit(bit);
        match (if set { on_set } else { on_clear }, set) {
            (OptionBit::Inert, _) => {}
            (OptionBit::NoTls12, _) => {
                let tls13 = tls.tls13;
                tls = tls.versions(false, tls13);
            }
            (OptionBit::NoTls13, _) => {
                let tls12 = tls.tls12;
                tls = tls.versions(tls12, false);
            }
            (OptionBit::ServerOrder, on) => tls = tls.prefer_server_order(on),
            (OptionBit::NoTickets, _) => tls = tls.session_tickets(false),
            (OptionBit::Refused(why), _) => {
                let verb = if set { "setting" } else { "clearing" };
                return Err(bad(file, key, format!("{verb} bit {bit} ({}, {name}): {why}", 1u64 << bit)));
            }
        }
    }
    Ok(tls)
}

/// What a vhost's TLS keys make: its TLS, what its port does with
/// plaintext clients, and `sts`; `None` without a certificate.
#[cfg(feature = "tls")]
pub(super) type TlsSettings = Option<(crate::tls::TlsConfig, crate::tls::PlainOnTls, bool)>;
#[cfg(not(feature = "tls"))]
pub(super) type TlsSettings = Option<std::convert::Infallible>;

#[cfg(feature = "tls")]
pub(super) fn apply_tls(vhost: VhostInfo, settings: TlsSettings) -> VhostInfo {
    match settings {
        Some((tls, plain, sts)) => vhost.tls(tls).plain_on_tls(plain).sts(sts),
        None => vhost,
    }
}

#[cfg(not(feature = "tls"))]
pub(super) fn apply_tls(vhost: VhostInfo, _: TlsSettings) -> VhostInfo {
    vhost
}

/// Reads the TLS keys of vhost `t` (CFG-7).
#[cfg(feature = "tls")]
pub(super) fn build_tls(file: &Path, at: &str, t: &Vhost, global: GlobalTls<'_>) -> Result<TlsSettings, ConfigError> {
    use crate::tls::{PlainOnTls, TlsConfig};
    let key = |k: &str| format!("{at}.{k}");
    let flag = |v: &Option<Scalar>| v.as_ref().is_some_and(Scalar::truthy);
    let (cert, pkey) = match (&t.host_ssl_cert, &t.host_ssl_key) {
        (Some(c), Some(k)) => (std::path::PathBuf::from(c.text()), std::path::PathBuf::from(k.text())),
        (Some(_), None) => return Err(bad(file, &key("host-ssl-cert"), "host-ssl-key is needed with it".into())),
        (None, Some(_)) => return Err(bad(file, &key("host-ssl-key"), "host-ssl-cert is needed with it".into())),
        (None, None) => {
            if tls_keys(t).iter().any(|(_, v)| v.is_some()) {
                log::warn!("{}: {at}: TLS keys without host-ssl-cert have no effect", file.display());
            }
            return Ok(None);
        }
    };
    if !global.init_ssl {
        log::warn!(
            "{}: {at} has a certificate but global \"init-ssl\" is off: as in lwsws, it serves PLAINTEXT \
             HTTP. Set \"init-ssl\": \"1\" in the global section to serve HTTPS",
            file.display()
        );
        return Ok(None);
    }
    crate::tls::server::check_files(&cert, &pkey)
        .map_err(|(about_key, e)| bad(file, &key(if about_key { "host-ssl-key" } else { "host-ssl-cert" }), e))?;
    let mut tls = TlsConfig::from_pem_files(&cert, &pkey);
    if let Some(ca) = &t.host_ssl_ca {
        let ca = std::path::PathBuf::from(ca.text());
        crate::tls::server::check_roots(&ca).map_err(|e| bad(file, &key("host-ssl-ca"), e))?;
        tls = tls.client_ca(ca);
    }
    if flag(&t.client_cert_required) {
        if t.host_ssl_ca.is_none() {
            return Err(bad(
                file,
                &key("client-cert-required"),
                "needs host-ssl-ca, the CA that client certificates are verified against".into(),
            ));
        }
        tls = tls.require_client_cert(true);
    }
    if let Some(c) = &t.ciphers {
        // Checked here to name the key; the names left out are warned
        // about once, when the vhost is built.
        crate::tls::names::tls12_ciphers(&c.text()).map_err(|e| bad(file, &key("ciphers"), e))?;
        tls = tls.ciphers(c.text());
    }
    if let Some(c) = &t.tls13_ciphers {
        crate::tls::names::tls13_ciphers(&c.text()).map_err(|e| bad(file, &key("tls13-ciphers"), e))?;
        tls = tls.tls13_ciphers(c.text());
    }
    if let Some(g) = &t.ecdh_curve {
        crate::tls::names::groups(&g.text()).map_err(|e| bad(file, &key("ecdh-curve"), e))?;
        tls = tls.groups(g.text());
    }
    if let Some(v) = &t.ssl_option_set {
        tls = apply_options(file, &key("ssl-option-set"), v, true, tls)?;
    }
    if let Some(v) = &t.ssl_option_clear {
        tls = apply_options(file, &key("ssl-option-clear"), v, false, tls)?;
    }
    if !tls.tls12 && !tls.tls13 {
        return Err(bad(file, &key("ssl-option-set"), "turns off both TLS 1.2 and TLS 1.3".into()));
    }
    let alpn = match (&t.alpn, global.default_alpn) {
        (Some(a), _) => alpn_list(file, &key("alpn"), a)?,
        (None, Some(list)) => list.to_vec(),
        (None, None) => vec!["http/1.1".to_string()],
    };
    let alpn: Vec<&str> = alpn.iter().map(String::as_str).collect();
    tls = tls.alpn(&alpn);
    let plain = match (flag(&t.allow_non_tls), flag(&t.redirect_http), flag(&t.allow_http_on_https)) {
        (true, true, _) => PlainOnTls::Redirect,
        (true, false, true) => PlainOnTls::Serve,
        (false, true, _) | (false, _, true) => {
            log::warn!(
                "{}: {at}: redirect-http and allow-http-on-https need allow-non-tls, as in lwsws; \
                 plaintext clients are dropped",
                file.display()
            );
            PlainOnTls::Drop
        }
        _ => PlainOnTls::Drop,
    };
    Ok(Some((tls, plain, flag(&t.sts))))
}

#[cfg(not(feature = "tls"))]
pub(super) fn build_tls(file: &Path, at: &str, t: &Vhost, _: GlobalTls<'_>) -> Result<TlsSettings, ConfigError> {
    match tls_keys(t).iter().find(|(_, v)| v.is_some()) {
        Some((key, _)) => {
            Err(bad(file, &format!("{at}.{key}"), "this warren is built without the `tls` feature".into()))
        }
        None => Ok(None),
    }
}
