//! HTTP/1 codec pieces, free of I/O: request heads, body decoding, response
//! heads, the error page, URL paths. The h1 role feeds them bytes.

pub mod body;
pub(crate) mod cache;
pub(crate) mod encode;
pub mod error_page;
pub(crate) mod plan;
pub(crate) mod range;
pub mod request;
pub(crate) mod respond;
pub(crate) mod uri;

pub use body::{BodyDecoder, BodyError};
pub use cache::CachePolicy;
pub use encode::ResponseHead;
pub use request::{Method, Request, Version};
/// URL paths as the server reads them (what the request parser applies).
pub use uri::{decode_path, UriError};

/// The standard reason phrase of `status` (RFC 9110 §15), or `""`.
pub(crate) fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        203 => "Non-Authoritative Information",
        204 => "No Content",
        205 => "Reset Content",
        206 => "Partial Content",
        300 => "Multiple Choices",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        412 => "Precondition Failed",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Range Not Satisfiable",
        417 => "Expectation Failed",
        418 => "I'm a teapot",
        421 => "Misdirected Request",
        422 => "Unprocessable Content",
        426 => "Upgrade Required",
        428 => "Precondition Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => "",
    }
}

/// Why `name: value` cannot go into a response head as it is, if it
/// cannot: the name must be a token (RFC 9110 §5.1) and the value may hold
/// no control character but tab (§5.5), so no CR or LF can start another
/// field or end the head.
pub(crate) fn field_problem(name: &str, value: &str) -> Option<&'static str> {
    if !is_token(name) {
        return Some("a header name is letters, digits and !#$%&'*+-.^_`|~ only (no spaces, colons or line breaks)");
    }
    if value.chars().any(|c| c.is_control() && c != '\t') {
        return Some("a header value cannot hold line breaks or other control characters");
    }
    None
}

/// Whether `s` is a token (RFC 9110 §5.6.2): a field name, a method.
pub(crate) fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(is_tchar)
}

/// A byte of a token (RFC 9110 §5.6.2 `tchar`).
pub(crate) fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Header fields the server owns: set from configuration they would
/// frame every response twice or contradict the framing.
pub(crate) fn server_owned_field(name: &str) -> bool {
    ["content-length", "transfer-encoding", "connection", "keep-alive", "upgrade", "date", "trailer", "te"]
        .iter()
        .any(|r| name.eq_ignore_ascii_case(r))
}

/// Why `path` cannot be a mountpoint or a site path given in
/// configuration, if it cannot: it starts with `/`, and has no `..`
/// segment and no control characters.
pub(crate) fn config_path_problem(path: &str) -> Option<&'static str> {
    if !path.starts_with('/') {
        return Some("a path here starts with /");
    }
    if path.split('/').any(|seg| seg == "..") {
        return Some("a path here cannot have a .. segment");
    }
    if path.chars().any(char::is_control) {
        return Some("a path here cannot hold line breaks or other control characters");
    }
    None
}

/// The status for a file that could not be opened.
pub(crate) fn open_error_status(e: &std::io::Error) -> u16 {
    // A name too long for the filesystem, or a loop of links, is the
    // request's fault: nothing by that name can be served.
    if matches!(e.raw_os_error(), Some(libc::ENAMETOOLONG | libc::ELOOP)) {
        return 404;
    }
    match e.kind() {
        std::io::ErrorKind::NotFound | std::io::ErrorKind::IsADirectory | std::io::ErrorKind::NotADirectory => 404,
        std::io::ErrorKind::InvalidInput => 404,
        std::io::ErrorKind::PermissionDenied => 403,
        // An archive entry in a compression method we do not implement.
        std::io::ErrorKind::Unsupported => 501,
        // A corrupt or truncated archive: our data is broken, not the request.
        _ => 500,
    }
}

#[cfg(test)]
mod field_tests {
    use super::{config_path_problem, field_problem, server_owned_field};

    #[test]
    fn config_paths_and_owned_fields() {
        assert_eq!(config_path_problem("/a/b"), None);
        for p in ["a", "/a/../b", "/..", "/a\nb", ""] {
            assert!(config_path_problem(p).is_some(), "{p:?}");
        }
        assert!(server_owned_field("Content-Length") && server_owned_field("transfer-encoding"));
        assert!(!server_owned_field("X-Frame-Options"));
    }

    #[test]
    fn fields_that_could_split_a_response_are_refused() {
        assert_eq!(field_problem("X-Frame-Options", "DENY"), None);
        assert_eq!(field_problem("X-A", "tab\tok"), None);
        for (n, v) in [
            ("X A", "v"),
            ("X-A:", "v"),
            ("", "v"),
            ("X\r\nY", "v"),
            ("X", "a\r\nSet-Cookie: x"),
            ("X", "a\nb"),
            ("X", "nul\0"),
        ] {
            assert!(field_problem(n, v).is_some(), "{n:?}: {v:?}");
        }
    }
}
