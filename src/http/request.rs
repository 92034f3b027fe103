//! Request heads: parsed with httparse, checked against limits, kept as one
//! owned buffer plus index ranges so a request costs two allocations.

use super::uri::{self, UriError};
use std::ops::Range;

/// The most headers a request may carry (more: 431).
pub const MAX_HEADERS: usize = 64;

/// Request methods. Unknown tokens are kept as [`Method::Other`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Method {
    /// GET
    Get,
    /// HEAD
    Head,
    /// POST
    Post,
    /// PUT
    Put,
    /// DELETE
    Delete,
    /// OPTIONS
    Options,
    /// PATCH
    Patch,
    /// CONNECT
    Connect,
    /// TRACE
    Trace,
    /// Any other token; see [`Request::method_str`].
    Other,
}

impl Method {
    fn from_token(t: &str) -> Method {
        match t {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            "POST" => Method::Post,
            "PUT" => Method::Put,
            "DELETE" => Method::Delete,
            "OPTIONS" => Method::Options,
            "PATCH" => Method::Patch,
            "CONNECT" => Method::Connect,
            "TRACE" => Method::Trace,
            _ => Method::Other,
        }
    }
}

/// The methods a port that falls back to raw (RAW-2) takes as HTTP: the
/// RFC 9110 ones, PATCH, and WebDAV's (RFC 4918), which CGI programs
/// such as PHP applications may serve. `PRI` is HTTP/2's preface.
const KNOWN_METHODS: &[&[u8]] = &[
    b"GET",
    b"HEAD",
    b"POST",
    b"PUT",
    b"DELETE",
    b"OPTIONS",
    b"PATCH",
    b"CONNECT",
    b"TRACE",
    b"PROPFIND",
    b"PROPPATCH",
    b"MKCOL",
    b"COPY",
    b"MOVE",
    b"LOCK",
    b"UNLOCK",
    b"PRI",
];

/// What a connection's first bytes say about it ([`sniff_method`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sniff {
    /// A known method and a space: HTTP.
    Http,
    /// Too few bytes to tell.
    Maybe,
    /// No known method begins like this: not HTTP.
    NotHttp,
}

/// Whether `bytes`, the first a client sent, begin an HTTP request: a
/// known method followed by a space, after any empty lines (RFC 9112
/// §2.2 lets a server ignore those). Decided at the first byte that
/// cannot continue any known method, so a protocol whose client speaks
/// first (SSH's `SSH-2.0-`, a typed line) is told apart at once.
pub fn sniff_method(bytes: &[u8]) -> Sniff {
    let start = bytes.iter().position(|&b| b != b'\r' && b != b'\n').unwrap_or(bytes.len());
    let b = &bytes[start..];
    if b.is_empty() {
        return Sniff::Maybe;
    }
    let mut maybe = false;
    for m in KNOWN_METHODS {
        if b.len() > m.len() {
            if b.starts_with(m) && b[m.len()] == b' ' {
                return Sniff::Http;
            }
        } else if m.starts_with(b) {
            maybe = true;
        }
    }
    if maybe {
        Sniff::Maybe
    } else {
        Sniff::NotHttp
    }
}

/// The protocol version of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Version {
    /// HTTP/1.0
    Http10,
    /// HTTP/1.1
    Http11,
}

impl Version {
    /// `"HTTP/1.0"` or `"HTTP/1.1"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Version::Http10 => "HTTP/1.0",
            Version::Http11 => "HTTP/1.1",
        }
    }
}

/// How the request's body is delimited (RFC 9112 §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body.
    None,
    /// `Content-Length: n`.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// Why a request head was refused. Each carries its status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum HeadError {
    /// Not HTTP/1.x syntax, conflicting or bad framing headers, a missing
    /// or repeated Host on HTTP/1.1: 400.
    Malformed,
    /// The request-target is longer than the limit: 414.
    UriTooLong,
    /// The head is bigger than the limit or has too many fields: 431.
    HeadersTooLarge,
    /// A transfer coding other than `chunked`: 501.
    UnknownTransferEncoding,
    /// Not HTTP/1.0 or HTTP/1.1: 505.
    Version,
    /// The target was refused (400 or 403, see [`UriError`]).
    Uri(UriError),
    /// An `Expect` other than `100-continue`: 417.
    Expectation,
}

impl HeadError {
    /// The HTTP status this error is answered with.
    pub fn status(self) -> u16 {
        match self {
            HeadError::Malformed => 400,
            HeadError::UriTooLong => 414,
            HeadError::HeadersTooLarge => 431,
            HeadError::UnknownTransferEncoding => 501,
            HeadError::Version => 505,
            HeadError::Uri(e) => e.status(),
            HeadError::Expectation => 417,
        }
    }
}

/// Size limits for request heads.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// The whole head, request line to the empty line.
    pub max_head: usize,
    /// The request-target.
    pub max_uri: usize,
}

/// A parsed request head.
#[derive(Debug, Clone)]
pub struct Request {
    buf: Box<[u8]>,
    method: Method,
    method_range: Range<u32>,
    target: Range<u32>,
    version: Version,
    headers: Vec<(Range<u32>, Range<u32>)>,
    path: String,
    query: Option<Range<u32>>,
    authority: Option<Range<u32>>,
    framing: Framing,
    keep_alive: bool,
    expect_continue: bool,
    /// The connection's TLS session, set by the server.
    #[cfg(feature = "tls")]
    tls: Option<std::sync::Arc<crate::tls::TlsSession>>,
}

impl Request {
    /// What the TLS handshake of the connection settled (protocol,
    /// cipher, SNI, the client's certificate); `None` over plaintext.
    #[cfg(feature = "tls")]
    pub fn tls(&self) -> Option<&crate::tls::TlsSession> {
        self.tls.as_deref()
    }

    /// Whether the request came over TLS (`https`, `wss`).
    pub fn is_secure(&self) -> bool {
        #[cfg(feature = "tls")]
        return self.tls.is_some();
        #[cfg(not(feature = "tls"))]
        false
    }

    #[cfg(feature = "tls")]
    pub(crate) fn set_tls(&mut self, tls: Option<std::sync::Arc<crate::tls::TlsSession>>) {
        self.tls = tls;
    }

    /// The method.
    pub fn method(&self) -> Method {
        self.method
    }
    /// The method token as sent.
    pub fn method_str(&self) -> &str {
        self.str_at(&self.method_range)
    }
    /// The request-target as sent.
    pub fn target(&self) -> &str {
        self.str_at(&self.target)
    }
    /// The protocol version.
    pub fn version(&self) -> Version {
        self.version
    }
    /// The decoded, normalised path (always starts with `/`).
    pub fn path(&self) -> &str {
        &self.path
    }
    /// The raw query string, without `?`.
    pub fn query(&self) -> Option<&str> {
        self.query.as_ref().map(|r| self.str_at(r))
    }
    /// The value of the first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| self.buf[range(n)].eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| &self.buf[range(v)])
    }
    /// The value of header `name` if present and UTF-8, trimmed.
    pub fn header_str(&self, name: &str) -> Option<&str> {
        self.header(name).and_then(|v| std::str::from_utf8(v).ok()).map(str::trim)
    }
    /// All header fields in order.
    pub fn headers(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.headers.iter().map(|(n, v)| (self.str_at(n), &self.buf[range(v)]))
    }
    /// The Host: the `Host` header, else the authority of an absolute-form
    /// target.
    pub fn host(&self) -> Option<&str> {
        match &self.authority {
            Some(r) => Some(self.str_at(r)),
            None => self.header_str("host"),
        }
    }
    /// How the body is delimited.
    pub fn framing(&self) -> Framing {
        self.framing
    }
    /// Whether the client wants the connection kept open after this
    /// request (version default, then `Connection`).
    pub fn keep_alive(&self) -> bool {
        self.keep_alive
    }
    /// Whether the client sent `Expect: 100-continue`.
    pub fn expects_continue(&self) -> bool {
        self.expect_continue
    }

    fn str_at(&self, r: &Range<u32>) -> &str {
        // Ranges are only made over bytes httparse returned as &str.
        std::str::from_utf8(&self.buf[range(r)]).unwrap_or("")
    }
}

fn range(r: &Range<u32>) -> Range<usize> {
    r.start as usize..r.end as usize
}

/// Parses a request head at the start of `bytes`.
///
/// Returns `Ok(None)` when more bytes are needed (and the limits allow
/// them), `Ok(Some((request, consumed)))` when the head is complete.
pub fn parse(bytes: &[u8], limits: Limits) -> Result<Option<(Request, usize)>, HeadError> {
    let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut fields);
    let n = match req.parse(bytes) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            let line = bytes.iter().position(|&b| b == b'\n').map(|i| &bytes[..i]);
            let line_done = line.is_some();
            if !line_done && bytes.len() > limits.max_uri {
                return Err(HeadError::UriTooLong);
            }
            if line.and_then(|l| l.split(|&b| b == b' ').nth(1)).is_some_and(|t| t.len() > limits.max_uri) {
                return Err(HeadError::UriTooLong);
            }
            if bytes.len() > limits.max_head {
                return Err(if line_done { HeadError::HeadersTooLarge } else { HeadError::UriTooLong });
            }
            return Ok(None);
        }
        Err(httparse::Error::Version) => return Err(version_error(bytes)),
        Err(httparse::Error::TooManyHeaders) => return Err(HeadError::HeadersTooLarge),
        Err(_) => return Err(HeadError::Malformed),
    };
    if n > limits.max_head {
        return Err(HeadError::HeadersTooLarge);
    }
    let (Some(method), Some(target), Some(minor)) = (req.method, req.path, req.version) else {
        return Err(HeadError::Malformed);
    };
    if target.len() > limits.max_uri {
        return Err(HeadError::UriTooLong);
    }
    let version = if minor == 0 { Version::Http10 } else { Version::Http11 };
    let base = bytes.as_ptr() as usize;
    let at = |s: &[u8]| {
        let start = (s.as_ptr() as usize - base) as u32;
        start..start + s.len() as u32
    };

    let mut framing = Framing::None;
    let mut chunked = false;
    let mut te_seen = false;
    let mut length: Option<u64> = None;
    let mut hosts = 0;
    let mut conn_close = false;
    let mut conn_keep = false;
    let mut expect_continue = false;
    let mut headers = Vec::with_capacity(req.headers.len());
    for h in req.headers.iter() {
        headers.push((at(h.name.as_bytes()), at(h.value)));
        let name = h.name;
        if name.eq_ignore_ascii_case("content-length") {
            for v in h.value.split(|&b| b == b',') {
                let v = trim(v);
                if v.is_empty() || !v.iter().all(u8::is_ascii_digit) {
                    return Err(HeadError::Malformed);
                }
                let n: u64 = std::str::from_utf8(v).ok().and_then(|s| s.parse().ok()).ok_or(HeadError::Malformed)?;
                if length.is_some_and(|l| l != n) {
                    return Err(HeadError::Malformed);
                }
                length = Some(n);
            }
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            te_seen = true;
            for coding in h.value.split(|&b| b == b',').map(trim) {
                if coding.eq_ignore_ascii_case(b"chunked") && !chunked {
                    chunked = true;
                } else if coding.eq_ignore_ascii_case(b"chunked") {
                    return Err(HeadError::Malformed);
                } else {
                    return Err(HeadError::UnknownTransferEncoding);
                }
            }
        } else if name.eq_ignore_ascii_case("host") {
            hosts += 1;
        } else if name.eq_ignore_ascii_case("connection") {
            for token in h.value.split(|&b| b == b',').map(trim) {
                conn_close |= token.eq_ignore_ascii_case(b"close");
                conn_keep |= token.eq_ignore_ascii_case(b"keep-alive");
            }
        } else if name.eq_ignore_ascii_case("expect") {
            if trim(h.value).eq_ignore_ascii_case(b"100-continue") {
                expect_continue = true;
            } else {
                return Err(HeadError::Expectation);
            }
        }
    }
    if te_seen {
        if length.is_some() || version == Version::Http10 || !chunked {
            return Err(HeadError::Malformed);
        }
        framing = Framing::Chunked;
    } else if let Some(n) = length {
        framing = Framing::Length(n);
    }
    if hosts > 1 || (hosts == 0 && version == Version::Http11) {
        return Err(HeadError::Malformed);
    }

    let t = uri::split_target(target).map_err(HeadError::Uri)?;
    let path = if t.path == "*" {
        if method != "OPTIONS" {
            return Err(HeadError::Uri(UriError::Form));
        }
        "*".to_string()
    } else {
        uri::decode_path(t.path).map_err(HeadError::Uri)?
    };
    let keep_alive = match version {
        Version::Http11 => !conn_close,
        Version::Http10 => conn_keep && !conn_close,
    };
    let request = Request {
        buf: bytes[..n].into(),
        method: Method::from_token(method),
        method_range: at(method.as_bytes()),
        target: at(target.as_bytes()),
        version,
        headers,
        path,
        query: t.query.map(|q| at(q.as_bytes())),
        authority: t.authority.map(|a| at(a.as_bytes())),
        framing,
        keep_alive,
        expect_continue: expect_continue && version == Version::Http11,
        #[cfg(feature = "tls")]
        tls: None,
    };
    Ok(Some((request, n)))
}

/// httparse says "Version" for anything but HTTP/1.0 and HTTP/1.1. A
/// request line that names another HTTP version gets 505; one that has no
/// version at all is just malformed.
fn version_error(bytes: &[u8]) -> HeadError {
    let line = bytes.split(|&b| b == b'\n').next().unwrap_or(bytes);
    let last = trim(line).rsplit(|&b| b == b' ').next().unwrap_or(b"");
    if last.starts_with(b"HTTP/") {
        HeadError::Version
    } else {
        HeadError::Malformed
    }
}

fn trim(v: &[u8]) -> &[u8] {
    let start = v.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(v.len());
    let end = v.iter().rposition(|b| !b.is_ascii_whitespace()).map_or(start, |i| i + 1);
    &v[start..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffing_tells_http_from_other_bytes() {
        // RAW-2: decided at the first byte no known method can have.
        assert_eq!(sniff_method(b"GET / HTTP/1.1\r\n"), Sniff::Http);
        assert_eq!(sniff_method(b"\r\nPROPFIND /x"), Sniff::Http);
        assert_eq!(sniff_method(b"SSH-2.0-OpenSSH_9.2\r\n"), Sniff::NotHttp);
        assert_eq!(sniff_method(b"hello\n"), Sniff::NotHttp);
        assert_eq!(sniff_method(b"get / HTTP/1.1"), Sniff::NotHttp);
        assert_eq!(sniff_method(b"GETX / HTTP/1.1"), Sniff::NotHttp);
        assert_eq!(sniff_method(b"\x16\x03\x01"), Sniff::NotHttp);
        assert_eq!(sniff_method(b"PO"), Sniff::Maybe);
        assert_eq!(sniff_method(b"POST"), Sniff::Maybe);
        assert_eq!(sniff_method(b"\r\n"), Sniff::Maybe);
        assert_eq!(sniff_method(b""), Sniff::Maybe);
    }

    const LIMITS: Limits = Limits { max_head: 8192, max_uri: 4096 };

    fn ok(bytes: &[u8]) -> (Request, usize) {
        match parse(bytes, LIMITS) {
            Ok(Some(r)) => r,
            other => panic!("{:?}: {other:?}", String::from_utf8_lossy(bytes)),
        }
    }

    fn err(bytes: &[u8]) -> u16 {
        match parse(bytes, LIMITS) {
            Err(e) => e.status(),
            other => panic!("{:?}: {other:?}", String::from_utf8_lossy(bytes)),
        }
    }

    #[test]
    fn simple_get() {
        let (r, n) = ok(b"GET /a%20b?x=1 HTTP/1.1\r\nHost: h\r\nX-A: 1\r\n\r\nrest");
        assert_eq!(n, 44);
        assert_eq!(r.method(), Method::Get);
        assert_eq!(r.path(), "/a b");
        assert_eq!(r.query(), Some("x=1"));
        assert_eq!(r.host(), Some("h"));
        assert_eq!(r.header("x-a"), Some(&b"1"[..]));
        assert!(r.keep_alive());
        assert_eq!(r.framing(), Framing::None);
    }

    #[test]
    fn partial_then_limits() {
        assert!(matches!(parse(b"GET / HTTP/1.1\r\nHost:", LIMITS), Ok(None)));
        let long_uri = format!("GET /{} HTTP/1.1\r\n", "a".repeat(5000));
        assert_eq!(err(long_uri.as_bytes()), 414);
        assert_eq!(err(&long_uri.as_bytes()[..4500]), 414);
        let big = format!("GET / HTTP/1.1\r\nHost: h\r\nX: {}\r\n\r\n", "b".repeat(9000));
        assert_eq!(err(big.as_bytes()), 431);
        assert_eq!(err(&big.as_bytes()[..8500]), 431);
        let mut many = String::from("GET / HTTP/1.1\r\nHost: h\r\n");
        for i in 0..70 {
            many.push_str(&format!("X-{i}: v\r\n"));
        }
        many.push_str("\r\n");
        assert_eq!(err(many.as_bytes()), 431);
    }

    #[test]
    fn versions_and_syntax() {
        assert_eq!(err(b"GET / HTTP/2.0\r\n\r\n"), 505);
        assert_eq!(err(b"GET / HTTP/1.2\r\nHost: h\r\n\r\n"), 505);
        assert_eq!(err(b"GET / FOO\r\n\r\n"), 400);
        assert_eq!(err(b"G@T / HTTP/1.1\r\n\r\n"), 400);
        assert_eq!(err(b"\x16\x03\x01\x00\r\n\r\n"), 400);
        assert_eq!(err(b"GET / HTTP/1.1\r\n\r\n"), 400, "1.1 needs Host");
        assert_eq!(err(b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"), 400);
        let (r, _) = ok(b"GET / HTTP/1.0\r\n\r\n");
        assert!(!r.keep_alive());
        let (r, _) = ok(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n");
        assert!(r.keep_alive());
        let (r, _) = ok(b"GET / HTTP/1.1\r\nHost: h\r\nConnection: foo, close\r\n\r\n");
        assert!(!r.keep_alive());
    }

    #[test]
    fn framing_rules() {
        let (r, _) = ok(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\n");
        assert_eq!(r.framing(), Framing::Length(5));
        let (r, _) = ok(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5, 5\r\n\r\n");
        assert_eq!(r.framing(), Framing::Length(5));
        let (r, _) = ok(b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: Chunked\r\n\r\n");
        assert_eq!(r.framing(), Framing::Chunked);
        let bad = [
            &b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n"[..],
            b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: -1\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 99999999999999999999999\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
            b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
        ];
        for b in bad {
            assert_eq!(err(b), 400, "{:?}", String::from_utf8_lossy(b));
        }
        assert_eq!(err(b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"), 501);
        assert_eq!(err(b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: foo\r\n\r\n"), 501);
        assert_eq!(err(b"POST / HTTP/1.1\r\nHost: h\r\nExpect: tea\r\n\r\n"), 417);
        let (r, _) = ok(b"POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\n\r\n");
        assert!(r.expects_continue());
    }

    #[test]
    fn targets() {
        assert_eq!(err(b"GET /../x HTTP/1.1\r\nHost: h\r\n\r\n"), 403);
        assert_eq!(err(b"GET x HTTP/1.1\r\nHost: h\r\n\r\n"), 400);
        assert_eq!(err(b"GET * HTTP/1.1\r\nHost: h\r\n\r\n"), 400);
        let (r, _) = ok(b"OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n");
        assert_eq!(r.path(), "*");
        let (r, _) = ok(b"GET http://other/x?y HTTP/1.1\r\nHost: h\r\n\r\n");
        assert_eq!((r.path(), r.host(), r.query()), ("/x", Some("other"), Some("y")));
    }
}
