//! The CGI response head (RFC 3875 §6): read incrementally from the
//! script's stdout, lines ended by CRLF or LF alone.

/// The largest head a script may send (bigger: 502).
pub const MAX_HEAD: usize = 8192;

/// Why a script's head is refused (the server answers 502).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum HeadError {
    /// No end of head within [`MAX_HEAD`] bytes.
    TooLarge,
    /// A line that is not `Name: value`, a bad `Status`, a NUL or other
    /// control byte.
    Malformed(&'static str),
}

/// Where a `Location` sends the client (RFC 3875 §6.2.2, §6.2.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Redirect {
    /// A path on this server, without a `Status`: the server serves it in
    /// place of the script's response (local redirect).
    Local(String),
    /// An absolute URL (or a path with a `Status`): sent to the client.
    Client(String),
}

/// A parsed response head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgiHead {
    /// From `Status:`, or 302 for a client redirect, else 200.
    pub status: u16,
    /// The fields to send on, in order; `Status` is never among them.
    /// Values are bytes: besides visible ASCII, a value may carry
    /// obs-text (0x80-0xFF, RFC 9110 §5.5: a Latin-1 file name, say),
    /// passed on as it came.
    pub headers: Vec<(String, Vec<u8>)>,
    /// A `Location`, classified.
    pub redirect: Option<Redirect>,
    /// The script's `Content-Length`, if it gave one.
    pub content_length: Option<u64>,
    /// Whether the script frames its own body as chunked (as
    /// git-http-backend does; spec CGI-4).
    pub chunked: bool,
}

/// Accumulates stdout until the head is complete.
#[derive(Debug, Default)]
pub struct HeadParser {
    buf: Vec<u8>,
}

impl HeadParser {
    /// A parser with nothing read yet.
    pub fn new() -> HeadParser {
        HeadParser::default()
    }

    /// Feeds the next bytes of stdout. Returns the head and how many of
    /// `data`'s bytes it used once the empty line is seen (the rest of
    /// `data` is body), or `Ok(None)` while more is needed.
    pub fn feed(&mut self, data: &[u8]) -> Result<Option<(CgiHead, usize)>, HeadError> {
        let before = self.buf.len();
        let room = (MAX_HEAD + 2).saturating_sub(before);
        self.buf.extend_from_slice(&data[..data.len().min(room)]);
        let Some(end) = head_end(&self.buf) else {
            return if self.buf.len() > MAX_HEAD { Err(HeadError::TooLarge) } else { Ok(None) };
        };
        let head = parse(&self.buf[..end])?;
        Ok(Some((head, end - before)))
    }
}

/// The index just past the empty line that ends the head, if present.
fn head_end(buf: &[u8]) -> Option<usize> {
    let mut line_start = 0;
    for (i, &b) in buf.iter().enumerate() {
        if b == b'\n' {
            let line = &buf[line_start..i];
            if line.is_empty() || line == b"\r" {
                return Some(i + 1);
            }
            line_start = i + 1;
        }
    }
    None
}

fn parse(head: &[u8]) -> Result<CgiHead, HeadError> {
    let mut status = None;
    let mut location = None;
    let mut headers = Vec::new();
    let mut content_length = None;
    let mut chunked = false;
    for line in head.split(|&b| b == b'\n').map(|l| l.strip_suffix(b"\r").unwrap_or(l)).filter(|l| !l.is_empty()) {
        if line.iter().any(|&b| b < 0x20 && b != b'\t' || b == 0x7f) {
            return Err(HeadError::Malformed("control byte in head"));
        }
        let colon = line.iter().position(|&b| b == b':').ok_or(HeadError::Malformed("line without ':'"))?;
        let (name, value) = (&line[..colon], line[colon + 1..].trim_ascii());
        if name.is_empty() || !name.iter().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(b)) {
            return Err(HeadError::Malformed("bad field name"));
        }
        // ASCII, checked just above.
        let name = text(name, "bad field name")?;
        if name.eq_ignore_ascii_case("status") {
            let code = text(value, "bad Status")?.split(' ').next().unwrap_or("");
            let code: u16 = code.parse().map_err(|_| HeadError::Malformed("bad Status"))?;
            if !(200..=599).contains(&code) {
                // 1xx too: a CGI answers once, and an interim status
                // (101 above all) would let it take the connection over.
                return Err(HeadError::Malformed("Status out of range"));
            }
            status = Some(code);
            continue;
        }
        if name.eq_ignore_ascii_case("location") {
            location = Some(text(value, "Location is not UTF-8")?.to_string());
        } else if name.eq_ignore_ascii_case("content-length") {
            let n: u64 =
                text(value, "bad Content-Length")?.parse().map_err(|_| HeadError::Malformed("bad Content-Length"))?;
            if content_length.is_some_and(|m| m != n) {
                // Which one frames the body? Neither is to be trusted.
                return Err(HeadError::Malformed("two different Content-Length values"));
            }
            content_length = Some(n);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value.eq_ignore_ascii_case(b"chunked");
            if !chunked {
                return Err(HeadError::Malformed("Transfer-Encoding other than chunked"));
            }
        }
        headers.push((name.to_string(), value.to_vec()));
    }
    let redirect =
        location.map(|l| if l.starts_with('/') && status.is_none() { Redirect::Local(l) } else { Redirect::Client(l) });
    let status = match (&redirect, status) {
        (_, Some(s)) => s,
        (Some(Redirect::Client(_)), None) => 302,
        _ => 200,
    };
    Ok(CgiHead { status, headers, redirect, content_length, chunked })
}

/// `v` as text, or the head is refused saying `what`.
fn text<'a>(v: &'a [u8], what: &'static str) -> Result<&'a str, HeadError> {
    std::str::from_utf8(v).map_err(|_| HeadError::Malformed(what))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn whole(input: &[u8]) -> Result<(CgiHead, usize), HeadError> {
        // Fed in every split, the answer is the same.
        let mut first = None;
        for split in 0..=input.len() {
            let mut p = HeadParser::new();
            let r = match p.feed(&input[..split]) {
                Ok(Some((h, n))) => Ok((h, n)),
                Ok(None) => p
                    .feed(&input[split..])
                    .map(|r| r.map(|(h, n)| (h, n + split)).unwrap_or_else(|| panic!("incomplete at split {split}"))),
                Err(e) => Err(e),
            };
            if let Some(f) = &first {
                assert_eq!(&r, f, "split {split}");
            } else {
                first = Some(r);
            }
        }
        first.unwrap_or(Err(HeadError::TooLarge))
    }

    #[test]
    fn status_location_and_line_ends() {
        let (h, n) = whole(b"Content-Type: text/plain\nStatus: 404 Not here\r\nX-A: 1\n\nbody").expect("head");
        assert_eq!(n, 55);
        assert_eq!(h.status, 404);
        assert_eq!(h.headers, vec![("Content-Type".into(), b"text/plain".to_vec()), ("X-A".into(), b"1".to_vec())]);
        // obs-text in a value is passed on as it came.
        let (h, _) = whole(b"Content-Disposition: attachment; filename=\"caf\xe9.txt\"\n\n").expect("obs-text");
        assert_eq!(h.headers[0].1, b"attachment; filename=\"caf\xe9.txt\"");
        let (h, _) = whole(b"Location: /other?x\r\n\r\n").expect("local");
        assert_eq!((h.status, h.redirect), (200, Some(Redirect::Local("/other?x".into()))));
        let (h, _) = whole(b"Location: https://example.com/\n\n").expect("client");
        assert_eq!((h.status, h.redirect), (302, Some(Redirect::Client("https://example.com/".into()))));
        let (h, _) = whole(b"Status: 301 Moved\nLocation: /new\n\n").expect("status wins");
        assert_eq!((h.status, h.redirect), (301, Some(Redirect::Client("/new".into()))));
        let (h, _) = whole(b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n").expect("framing");
        assert_eq!((h.content_length, h.chunked), (Some(5), true));
    }

    #[test]
    fn malformed_heads() {
        for bad in [
            &b"no colon here\n\n"[..],
            b"Status: abc\n\n",
            b"Status: 99\n\n",
            // Interim statuses: a CGI answers once (101 would hijack the connection).
            b"Status: 101 Switching Protocols\nUpgrade: x\n\n",
            b"Status: 100\n\n",
            b"Status: 199\n\n",
            b"Bad Name: x\n\n",
            b"X: a\0b\n\n",
            b"Content-Length: -1\n\n",
            b"Transfer-Encoding: gzip\n\n",
            b"Content-Length: 5\nContent-Length: 100\n\n",
        ] {
            assert!(matches!(whole(bad), Err(HeadError::Malformed(_))), "{:?}", String::from_utf8_lossy(bad));
        }
        // The same length twice is one length.
        assert_eq!(whole(b"Content-Length: 5\nContent-Length: 5\n\n").map(|h| h.0.content_length), Ok(Some(5)));
        let mut p = HeadParser::new();
        let big = vec![b'a'; MAX_HEAD + 10];
        assert_eq!(p.feed(&big), Err(HeadError::TooLarge));
    }
}
