//! HTTP/1 codec pieces, free of I/O: request heads, body decoding, response
//! heads, the error page, URL paths. The h1 role feeds them bytes.

pub mod body;
pub mod cache;
pub mod encode;
pub mod error_page;
pub mod range;
pub mod request;
pub mod uri;

pub use body::{BodyDecoder, BodyError};
pub use cache::CachePolicy;
pub use encode::ResponseHead;
pub use request::{Method, Request, Version};

/// The standard reason phrase of `status` (RFC 9110 §15), or `""`.
pub fn reason(status: u16) -> &'static str {
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
pub fn field_problem(name: &str, value: &str) -> Option<&'static str> {
    let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    if name.is_empty() || !name.bytes().all(token) {
        return Some("a header name is letters, digits and !#$%&'*+-.^_`|~ only (no spaces, colons or line breaks)");
    }
    if value.bytes().any(|b| (b < 0x20 && b != b'\t') || b == 0x7f) {
        return Some("a header value cannot hold line breaks or other control characters");
    }
    None
}

#[cfg(test)]
mod field_tests {
    use super::field_problem;

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
