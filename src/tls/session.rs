//! [`TlsSession`]: what a connection's handshake settled, as protocols
//! and CGI programs see it.

use rustls::pki_types::CertificateDer;
use rustls::server::ServerConnection;

/// What a TLS connection's handshake settled: on every request of the
/// connection ([`Request::tls`](crate::Request::tls)).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TlsSession {
    /// `TLSv1.2` or `TLSv1.3` (mod_ssl's `SSL_PROTOCOL` spelling).
    pub version: &'static str,
    /// The cipher suite, by its OpenSSL name (`TLS_AES_128_GCM_SHA256`,
    /// `ECDHE-ECDSA-AES128-GCM-SHA256`).
    pub cipher: &'static str,
    /// The name the client asked for (SNI), if it sent one.
    pub sni: Option<String>,
    /// The application protocol agreed by ALPN, if any.
    pub alpn: Option<String>,
    /// Whether the session was resumed (no full handshake).
    pub resumed: bool,
    /// The client's certificate, verified against the vhost's client CA.
    pub client_cert: Option<ClientCert>,
    /// The vhost the handshake was for (picked by SNI).
    pub(crate) vhost: usize,
}

/// A verified client certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClientCert {
    /// Subject distinguished name, RFC 4514 (`CN=alice,O=Example`), as
    /// mod_ssl's `SSL_CLIENT_S_DN`.
    pub subject: String,
    /// Issuer distinguished name (`SSL_CLIENT_I_DN`).
    pub issuer: String,
    /// Serial number in hexadecimal (`SSL_CLIENT_M_SERIAL`).
    pub serial: String,
    /// Validity start and end, as `Mon DD HH:MM:SS YYYY GMT`
    /// (`SSL_CLIENT_V_START`, `SSL_CLIENT_V_END`).
    pub not_before: String,
    /// See `not_before`.
    pub not_after: String,
    /// The certificate itself (DER).
    pub der: Vec<u8>,
}

impl TlsSession {
    /// What `conn`'s completed handshake settled.
    pub(crate) fn of(conn: &ServerConnection, vhost: usize) -> TlsSession {
        let version = match conn.protocol_version() {
            Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3",
            Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2",
            _ => "unknown",
        };
        TlsSession {
            version,
            cipher: conn.negotiated_cipher_suite().map_or("unknown", super::names::openssl_name),
            sni: conn.server_name().map(str::to_string),
            alpn: conn.alpn_protocol().map(|p| String::from_utf8_lossy(p).into_owned()),
            resumed: matches!(conn.handshake_kind(), Some(rustls::HandshakeKind::Resumed)),
            client_cert: conn.peer_certificates().and_then(|c| c.first()).and_then(ClientCert::of),
            vhost,
        }
    }

    /// mod_ssl's variables for a CGI program's environment.
    #[cfg(feature = "cgi")]
    pub(crate) fn cgi_vars(&self) -> Vec<(String, String)> {
        let mut v = vec![
            ("SSL_PROTOCOL".to_string(), self.version.to_string()),
            ("SSL_CIPHER".to_string(), self.cipher.to_string()),
        ];
        if let Some(sni) = &self.sni {
            v.push(("SSL_TLS_SNI".into(), sni.clone()));
        }
        match &self.client_cert {
            Some(c) => {
                v.push(("SSL_CLIENT_VERIFY".into(), "SUCCESS".into()));
                v.push(("SSL_CLIENT_S_DN".into(), c.subject.clone()));
                v.push(("SSL_CLIENT_I_DN".into(), c.issuer.clone()));
                v.push(("SSL_CLIENT_M_SERIAL".into(), c.serial.clone()));
                v.push(("SSL_CLIENT_V_START".into(), c.not_before.clone()));
                v.push(("SSL_CLIENT_V_END".into(), c.not_after.clone()));
            }
            None => v.push(("SSL_CLIENT_VERIFY".into(), "NONE".into())),
        }
        v
    }
}

impl ClientCert {
    fn of(der: &CertificateDer<'_>) -> Option<ClientCert> {
        let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).ok()?;
        let validity = cert.validity();
        Some(ClientCert {
            subject: rfc4514(cert.subject()),
            issuer: rfc4514(cert.issuer()),
            serial: cert.raw_serial_as_string().replace(':', "").to_ascii_uppercase(),
            not_before: gmt(&validity.not_before),
            not_after: gmt(&validity.not_after),
            der: der.as_ref().to_vec(),
        })
    }
}

/// OpenSSL's way of writing a time: `Jan  2 03:04:05 2030 GMT`.
fn gmt(t: &x509_parser::time::ASN1Time) -> String {
    let d = t.to_datetime();
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let month = MONTHS[(u8::from(d.month()) as usize).saturating_sub(1) % 12];
    format!("{month} {:>2} {:02}:{:02}:{:02} {} GMT", d.day(), d.hour(), d.minute(), d.second(), d.year())
}

/// A distinguished name in RFC 4514's form: last RDN first, `,`
/// between RDNs, `+` inside one, special characters escaped.
fn rfc4514(name: &x509_parser::x509::X509Name<'_>) -> String {
    let registry = x509_parser::objects::oid_registry();
    let mut rdns = Vec::new();
    for rdn in name.iter() {
        let parts: Vec<String> = rdn
            .iter()
            .map(|atv| {
                let key = x509_parser::objects::oid2abbrev(atv.attr_type(), registry)
                    .map_or_else(|_| atv.attr_type().to_id_string(), str::to_string);
                let value = atv.as_str().map_or_else(|_| format!("#{}", hex(atv.attr_value().data)), escape);
                format!("{key}={value}")
            })
            .collect();
        rdns.push(parts.join("+"));
    }
    rdns.reverse();
    rdns.join(",")
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// RFC 4514 §2.4 escaping of an attribute value (control characters
/// too, so a value can never break a CGI variable or a log line).
fn escape(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    let last = v.chars().count().saturating_sub(1);
    for (i, c) in v.chars().enumerate() {
        let special = matches!(c, '"' | '+' | ',' | ';' | '<' | '>' | '\\')
            || (i == 0 && matches!(c, ' ' | '#'))
            || (i == last && c == ' ');
        if special {
            out.push('\\');
            out.push(c);
        } else if c.is_control() {
            let mut buf = [0; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("\\{b:02X}"));
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn distinguished_name_values_are_escaped() {
        assert_eq!(super::escape("a,b+c"), "a\\,b\\+c");
        assert_eq!(super::escape(" x "), "\\ x\\ ");
        assert_eq!(super::escape("l\nx"), "l\\0Ax");
    }
}
