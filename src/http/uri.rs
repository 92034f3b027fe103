//! Request-target handling: splitting, percent-decoding and normalising
//! the path before any mount sees it.

/// Why a request-target was refused, and the status that says so.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum UriError {
    /// Not origin-form (`/...`), absolute-form (`http://h/...`) or `*`.
    /// The peer is at fault: 400.
    Form,
    /// `%` not followed by two hex digits: 400.
    BadEscape,
    /// The decoded path is not UTF-8: 400.
    NotUtf8,
    /// An encoded `/` (`%2F`) or `\` (`%5C`), which would let a segment
    /// carry a separator past our checks: 403.
    EncodedSeparator,
    /// A NUL byte, raw or `%00`: 403.
    Nul,
    /// A `..` segment, raw or encoded: an attempt to leave the mount: 403.
    Traversal,
}

impl UriError {
    /// The HTTP status this error is answered with.
    pub fn status(self) -> u16 {
        match self {
            UriError::Form | UriError::BadEscape | UriError::NotUtf8 => 400,
            UriError::EncodedSeparator | UriError::Nul | UriError::Traversal => 403,
        }
    }
}

/// The parts of a request-target (RFC 9112 §3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target<'a> {
    /// The raw (still encoded) path; `*` for asterisk-form.
    pub path: &'a str,
    /// The raw query, without the `?`.
    pub query: Option<&'a str>,
    /// The authority of an absolute-form target.
    pub authority: Option<&'a str>,
}

/// Splits a request-target into path, query and (absolute-form) authority.
pub fn split_target(target: &str) -> Result<Target<'_>, UriError> {
    let target = target.split('#').next().unwrap_or("");
    let (authority, rest) = if target.starts_with('/') || target == "*" {
        (None, target)
    } else {
        let lower = target.get(..8).unwrap_or(target).to_ascii_lowercase();
        let after = if lower.starts_with("http://") {
            &target[7..]
        } else if lower.starts_with("https://") {
            &target[8..]
        } else {
            return Err(UriError::Form);
        };
        match after.find(['/', '?']) {
            Some(i) if after.as_bytes()[i] == b'/' => (Some(&after[..i]), &after[i..]),
            Some(i) => (Some(&after[..i]), "/"),
            None => (Some(after), "/"),
        }
    };
    let (path, query) = match rest.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (rest, None),
    };
    let path = if path.is_empty() { "/" } else { path };
    Ok(Target { path, query, authority })
}

/// Percent-decodes and normalises a raw path: `%XX` decoded; runs of `/`
/// collapsed; `.` segments dropped; the trailing `/` kept. A `..` segment,
/// NUL, or an encoded separator is refused rather than resolved, so no
/// later stage ever sees an escape attempt. The result starts with `/`.
///
/// Written here rather than taken from a crate because the rules are
/// stricter than plain decoding: each refusal maps to its own status.
pub fn decode_path(raw: &str) -> Result<String, UriError> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len() + 1);
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let hex = |c: u8| (c as char).to_digit(16);
            let (Some(h), Some(l)) = (bytes.get(i + 1).and_then(|&c| hex(c)), bytes.get(i + 2).and_then(|&c| hex(c)))
            else {
                return Err(UriError::BadEscape);
            };
            let d = (h * 16 + l) as u8;
            match d {
                0 => return Err(UriError::Nul),
                b'/' | b'\\' => return Err(UriError::EncodedSeparator),
                _ => out.push(d),
            }
            i += 3;
        } else {
            if b == 0 {
                return Err(UriError::Nul);
            }
            out.push(b);
            i += 1;
        }
    }
    let decoded = String::from_utf8(out).map_err(|_| UriError::NotUtf8)?;
    let mut norm = String::with_capacity(decoded.len() + 1);
    for seg in decoded.split('/') {
        match seg {
            "" | "." => {}
            ".." => return Err(UriError::Traversal),
            s => {
                norm.push('/');
                norm.push_str(s);
            }
        }
    }
    let trailing = decoded.ends_with('/') || decoded.ends_with("/.");
    if norm.is_empty() || trailing {
        norm.push('/');
    }
    Ok(norm)
}

/// Percent-encodes a decoded path for use in a header (a `Location`):
/// everything but unreserved characters, sub-delims, `:`, `@` and `/`.
/// So CR, LF, spaces and non-ASCII can never reach a header raw.
pub fn encode_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for &b in path.as_bytes() {
        if b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_forms() {
        let t = split_target("/a/b?x=1#frag").unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!((t.path, t.query, t.authority), ("/a/b", Some("x=1"), None));
        let t = split_target("http://example.com:81/p?q").unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!((t.path, t.query, t.authority), ("/p", Some("q"), Some("example.com:81")));
        let t = split_target("HTTP://h").unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!((t.path, t.authority), ("/", Some("h")));
        assert_eq!(split_target("*").map(|t| t.path), Ok("*"));
        assert_eq!(split_target("index.html"), Err(UriError::Form));
        assert_eq!(split_target("ftp://x/"), Err(UriError::Form));
    }

    #[test]
    fn decodes_and_normalises() {
        let ok = |s: &str| decode_path(s).unwrap_or_else(|e| panic!("{s}: {e:?}"));
        assert_eq!(ok("/"), "/");
        assert_eq!(ok("/a%20b"), "/a b");
        assert_eq!(ok("//a///b/"), "/a/b/");
        assert_eq!(ok("/a/./b/."), "/a/b/");
        assert_eq!(ok("/.well-known/x"), "/.well-known/x");
        assert_eq!(ok("/..x/y.."), "/..x/y..");
        assert_eq!(ok("/caf%C3%A9"), "/café");
    }

    #[test]
    fn encodes_for_headers() {
        assert_eq!(encode_path("/a b/\r\nX: y/café"), "/a%20b/%0D%0AX:%20y/caf%C3%A9");
        assert_eq!(encode_path("/plain-path_1.html"), "/plain-path_1.html");
    }

    #[test]
    fn refuses_escapes() {
        let cases = [
            ("/../etc/passwd", UriError::Traversal),
            ("/a/..", UriError::Traversal),
            ("/%2e%2e/etc/passwd", UriError::Traversal),
            ("/%2E%2E%2Fetc", UriError::EncodedSeparator),
            ("/a%2fb", UriError::EncodedSeparator),
            ("/a%5cb", UriError::EncodedSeparator),
            ("/a%00b", UriError::Nul),
            ("/a\0b", UriError::Nul),
            ("/a%zz", UriError::BadEscape),
            ("/a%2", UriError::BadEscape),
            ("/%ff", UriError::NotUtf8),
        ];
        for (input, want) in cases {
            assert_eq!(decode_path(input), Err(want), "{input}");
        }
        assert_eq!(UriError::Traversal.status(), 403);
        assert_eq!(UriError::BadEscape.status(), 400);
    }
}
