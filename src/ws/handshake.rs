//! The opening handshake (RFC 6455 §4.2): which requests ask to upgrade,
//! what makes one acceptable, the accept key, and the subprotocol and
//! extension offers.

use super::deflate::DeflateConfig;
use crate::http::request::{Method, Request};
use crate::http::Version;
use base64::Engine;
use sha1::{Digest, Sha1};

const GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// Whether a comma-separated header (any of its instances) holds `token`,
/// compared case-insensitively.
fn has_token(req: &Request, name: &str, token: &str) -> bool {
    req.headers()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .flat_map(|(_, v)| v.split(|&b| b == b','))
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
}

/// Whether the request asks for a WebSocket (WS-1: `Upgrade: websocket`).
pub(crate) fn is_upgrade(req: &Request) -> bool {
    has_token(req, "upgrade", "websocket")
}

/// Why an upgrade is refused, as the HTTP answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// 400 with this explanation.
    BadRequest(&'static str),
    /// 426 with `Sec-WebSocket-Version: 13` (WS-3 [REC]).
    Version,
}

/// An acceptable upgrade request, before the subprotocol is chosen.
#[derive(Debug)]
pub(crate) struct Offer {
    pub(crate) accept: String,
    /// The client's subprotocols, in its order of preference.
    pub(crate) protocols: Vec<String>,
    /// Whether the client sent `Sec-WebSocket-Protocol` at all.
    pub(crate) named_protocol: bool,
    /// The permessage-deflate parameters agreed, if an offer was usable.
    pub(crate) deflate: Option<DeflateConfig>,
}

/// Checks an upgrade request (WS-1, WS-3).
pub(crate) fn check(req: &Request) -> Result<Offer, Refusal> {
    if req.method() != Method::Get {
        return Err(Refusal::BadRequest("a WebSocket upgrade must be a GET"));
    }
    if req.version() != Version::Http11 {
        return Err(Refusal::BadRequest("a WebSocket upgrade needs HTTP/1.1"));
    }
    if !has_token(req, "connection", "upgrade") {
        return Err(Refusal::BadRequest("Connection must contain \"Upgrade\""));
    }
    if req.host().is_none() {
        return Err(Refusal::BadRequest("a WebSocket upgrade needs a Host header"));
    }
    if req.header("sec-websocket-version").map(<[u8]>::trim_ascii) != Some(b"13") {
        return Err(Refusal::Version);
    }
    let key = req.header("sec-websocket-key").map(<[u8]>::trim_ascii).unwrap_or_default();
    let decoded = base64::engine::general_purpose::STANDARD.decode(key);
    if !matches!(decoded, Ok(ref k) if k.len() == 16) {
        return Err(Refusal::BadRequest("Sec-WebSocket-Key must be 16 bytes in base64"));
    }
    let protocol_headers: Vec<&[u8]> =
        req.headers().filter(|(n, _)| n.eq_ignore_ascii_case("sec-websocket-protocol")).map(|(_, v)| v).collect();
    let protocols = protocol_headers
        .iter()
        .flat_map(|v| v.split(|&b| b == b','))
        .map(|t| String::from_utf8_lossy(t.trim_ascii()).into_owned())
        .filter(|t| !t.is_empty())
        .collect();
    let extensions = req.headers().filter(|(n, _)| n.eq_ignore_ascii_case("sec-websocket-extensions")).map(|(_, v)| v);
    let mut deflate = None;
    for header in extensions {
        let Ok(text) = std::str::from_utf8(header) else { continue };
        if let Some(d) = DeflateConfig::from_offers(text) {
            deflate = Some(d);
            break;
        }
    }
    Ok(Offer { accept: accept_key(key), protocols, named_protocol: !protocol_headers.is_empty(), deflate })
}

/// `Sec-WebSocket-Accept` for a key (WS-4).
pub(crate) fn accept_key(key: &[u8]) -> String {
    let mut sha = Sha1::new();
    sha.update(key);
    sha.update(GUID);
    base64::engine::general_purpose::STANDARD.encode(sha.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_key_matches_rfc_6455_example() {
        // RFC 6455 §1.3.
        assert_eq!(accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    }
}
