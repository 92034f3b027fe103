//! Response heads as HTTP/1 sends them, planned without I/O: the fields
//! every response has (date, server, the vhost's headers), how its body
//! is framed (length, chunks, the close, none), what `Connection` says,
//! and complete error responses. The h1 role executes what these decide.

use crate::http::{error_page, ResponseHead, Version};

/// What the response head of the current transaction depends on.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TxInfo {
    pub(crate) version: Version,
    pub(crate) keep_alive: bool,
    pub(crate) head_only: bool,
    /// The status of the response head sent (for the access log).
    pub(crate) status: u16,
}

impl Default for TxInfo {
    fn default() -> Self {
        TxInfo { version: Version::Http11, keep_alive: false, head_only: false, status: 0 }
    }
}

/// Per-vhost values every response head carries.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HeadEnv<'a> {
    pub(crate) date: &'a str,
    pub(crate) headers: &'a [(String, String)],
    pub(crate) server: Option<&'a str>,
    /// Add Strict-Transport-Security (a vhost with `sts`, over TLS).
    pub(crate) sts: bool,
}

/// The Strict-Transport-Security value lws sends (half a year).
pub(crate) const STS_VALUE: &str = "max-age=15768000 ; includeSubDomains";

/// How the body of the response being written is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyFraming {
    /// No content at all (1xx, 204, 304): no length field either.
    None,
    Length(u64),
    Chunked,
    /// HTTP/1.0 without a length: the end of the body is the close.
    Close,
}

impl BodyFraming {
    /// How a response with `status` and, if known, `length` bytes of
    /// body goes to a `version` client; `chunked`: the origin (a CGI)
    /// frames its body in chunks itself.
    pub(crate) fn plan(version: Version, status: u16, length: Option<u64>, chunked: bool) -> BodyFraming {
        match (length, version) {
            // RFC 9110 §6.4.1: these never have content.
            _ if status < 200 || status == 204 || status == 304 => BodyFraming::None,
            _ if chunked => BodyFraming::Chunked,
            (Some(n), _) => BodyFraming::Length(n),
            (None, Version::Http11) => BodyFraming::Chunked,
            (None, Version::Http10) => BodyFraming::Close,
        }
    }
}

/// Fields of an origin's head (a CGI's) that the server owns and drops:
/// the framing, the connection's persistence, the date and the server.
#[cfg_attr(not(feature = "cgi"), allow(dead_code))]
pub(crate) fn server_sets(name: &str) -> bool {
    ["content-length", "transfer-encoding", "connection", "keep-alive", "date", "server"]
        .iter()
        .any(|o| name.eq_ignore_ascii_case(o))
}

/// Starts a head with the fields every response has.
pub(crate) fn begin_head<'b>(buf: &'b mut Vec<u8>, tx: &mut TxInfo, status: u16, env: HeadEnv<'_>) -> ResponseHead<'b> {
    tx.status = status;
    let mut head = ResponseHead::new(buf, tx.version, status);
    head.header("Date", env.date);
    if let Some(s) = env.server {
        head.header("Server", s);
    }
    for (k, v) in env.headers {
        head.header(k, v);
    }
    if env.sts {
        head.header("Strict-Transport-Security", STS_VALUE);
    }
    head
}

/// Adds the framing and `Connection` fields and ends the head.
pub(crate) fn end_head(mut head: ResponseHead<'_>, tx: &mut TxInfo, framing: BodyFraming) {
    match framing {
        BodyFraming::None => {}
        BodyFraming::Length(n) => {
            head.header_u64("Content-Length", n);
        }
        BodyFraming::Chunked => {
            head.header("Transfer-Encoding", "chunked");
        }
        BodyFraming::Close => tx.keep_alive = false,
    }
    match (tx.keep_alive, tx.version) {
        (false, _) => {
            head.header("Connection", "close");
        }
        (true, Version::Http10) => {
            head.header("Connection", "keep-alive");
        }
        (true, Version::Http11) => {}
    }
    head.finish();
}

/// Appends a complete error response (head and, unless HEAD, the page).
pub(crate) fn error_response(
    buf: &mut Vec<u8>,
    tx: &mut TxInfo,
    status: u16,
    message: &str,
    extra: &[(&str, &str)],
    env: HeadEnv<'_>,
) {
    let mut body = Vec::with_capacity(320);
    error_page::write_body(&mut body, status, message);
    let mut head = begin_head(buf, tx, status, env);
    head.header("Content-Type", "text/html; charset=utf-8");
    for (k, v) in extra {
        head.header(k, v);
    }
    end_head(head, tx, BodyFraming::Length(body.len() as u64));
    if !tx.head_only {
        buf.extend_from_slice(&body);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> HeadEnv<'static> {
        HeadEnv { date: "Thu, 01 Jan 2026 00:00:00 GMT", headers: &[], server: Some("warren"), sts: false }
    }

    fn head_of(tx: &mut TxInfo, status: u16, framing: BodyFraming) -> String {
        let mut buf = Vec::new();
        let head = begin_head(&mut buf, tx, status, env());
        end_head(head, tx, framing);
        String::from_utf8(buf).unwrap_or_default()
    }

    #[test]
    fn framing_follows_status_length_and_version() {
        use BodyFraming as F;
        use Version::{Http10 as V10, Http11 as V11};
        for status in [100, 101, 204, 304] {
            assert_eq!(F::plan(V11, status, Some(5), false), F::None, "{status} has no content");
            assert_eq!(F::plan(V11, status, None, true), F::None, "{status} has no content");
        }
        assert_eq!(F::plan(V11, 200, Some(7), false), F::Length(7));
        assert_eq!(F::plan(V10, 200, Some(7), false), F::Length(7));
        assert_eq!(F::plan(V11, 200, None, false), F::Chunked);
        assert_eq!(F::plan(V10, 200, None, false), F::Close, "1.0 without a length ends at the close");
        assert_eq!(F::plan(V11, 200, Some(7), true), F::Chunked, "an origin's own chunks win");
    }

    #[test]
    fn connection_field_says_what_happens_next() {
        let mut tx = TxInfo { version: Version::Http11, keep_alive: true, head_only: false, status: 0 };
        let h = head_of(&mut tx, 200, BodyFraming::Length(3));
        assert!(h.starts_with("HTTP/1.1 200 OK\r\n") && h.contains("Content-Length: 3\r\n"), "{h}");
        assert!(!h.contains("Connection:"), "1.1 keep-alive is the default: {h}");
        assert_eq!(tx.status, 200);
        let h = head_of(&mut tx, 200, BodyFraming::Close);
        assert!(h.contains("Connection: close\r\n") && !tx.keep_alive, "a close-framed body ends it: {h}");
        let mut tx = TxInfo { version: Version::Http10, keep_alive: true, head_only: false, status: 0 };
        let h = head_of(&mut tx, 200, BodyFraming::Length(0));
        assert!(h.contains("Connection: keep-alive\r\n"), "1.0 must be told: {h}");
        let h = head_of(&mut tx, 204, BodyFraming::None);
        assert!(!h.contains("Content-Length") && !h.contains("Transfer-Encoding"), "{h}");
    }

    #[test]
    fn error_responses_carry_the_page_except_for_head() {
        let mut tx = TxInfo { version: Version::Http11, keep_alive: false, head_only: false, status: 0 };
        let mut buf = Vec::new();
        error_response(&mut buf, &mut tx, 404, "no such page", &[("Retry-After", "1")], env());
        let text = String::from_utf8_lossy(&buf).into_owned();
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or_default();
        assert!(head.contains("Retry-After: 1") && head.contains("Connection: close"), "{head}");
        let length = format!("Content-Length: {}", body.len());
        assert!(head.contains(&length) && body.contains("no such page"), "{text}");
        let mut tx = TxInfo { head_only: true, ..tx };
        let mut only = Vec::new();
        error_response(&mut only, &mut tx, 404, "no such page", &[("Retry-After", "1")], env());
        assert_eq!(
            only,
            head.as_bytes().iter().chain(b"\r\n\r\n").copied().collect::<Vec<u8>>(),
            "HEAD: the same head, no page"
        );
    }

    #[test]
    fn origin_framing_fields_are_the_servers() {
        for name in ["Content-Length", "transfer-encoding", "Connection", "Keep-Alive", "Date", "Server"] {
            assert!(server_sets(name), "{name}");
        }
        assert!(!server_sets("Content-Type") && !server_sets("Location"));
    }
}
