//! Response heads.

use super::{reason, Version};
use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

/// Writes a response head into a buffer: status line, fields, empty line.
///
/// ```
/// use warren::http::{ResponseHead, Version};
/// let mut buf = Vec::new();
/// let mut head = ResponseHead::new(&mut buf, Version::Http11, 404);
/// head.header("Content-Length", "0");
/// head.finish();
/// assert_eq!(buf, b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
/// ```
#[derive(Debug)]
pub struct ResponseHead<'a> {
    buf: &'a mut Vec<u8>,
}

impl<'a> ResponseHead<'a> {
    /// Starts a head with the status line.
    pub fn new(buf: &'a mut Vec<u8>, version: Version, status: u16) -> ResponseHead<'a> {
        buf.extend_from_slice(version.as_str().as_bytes());
        // Writing to a Vec cannot fail.
        let _ = write!(buf, " {status} {}\r\n", reason(status));
        ResponseHead { buf }
    }

    /// Adds a field.
    pub fn header(&mut self, name: &str, value: &str) -> &mut Self {
        self.header_bytes(name, value.as_bytes())
    }

    /// Adds a field with a raw value.
    pub fn header_bytes(&mut self, name: &str, value: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(name.as_bytes());
        self.buf.extend_from_slice(b": ");
        self.buf.extend_from_slice(value);
        self.buf.extend_from_slice(b"\r\n");
        self
    }

    /// Adds a field whose value is a number.
    pub fn header_u64(&mut self, name: &str, value: u64) -> &mut Self {
        self.buf.extend_from_slice(name.as_bytes());
        let _ = write!(self.buf, ": {value}\r\n");
        self
    }

    /// Ends the head.
    pub fn finish(self) {
        self.buf.extend_from_slice(b"\r\n");
    }
}

/// The current time as an HTTP date, formatted at most once a second.
#[derive(Debug)]
pub(crate) struct DateCache {
    secs: u64,
    text: String,
}

impl Default for DateCache {
    fn default() -> Self {
        DateCache { secs: u64::MAX, text: String::new() }
    }
}

impl DateCache {
    /// Reads the clock; the loop calls this once per turn, not per
    /// response.
    pub fn refresh(&mut self) {
        let now = SystemTime::now();
        let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        if secs != self.secs {
            self.secs = secs;
            self.text = httpdate::fmt_http_date(now);
        }
    }

    /// The date as of the last [`refresh`](Self::refresh).
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Refreshes, then returns the date.
    #[cfg(test)]
    pub fn now(&mut self) -> &str {
        self.refresh();
        &self.text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_bytes() {
        let mut buf = Vec::new();
        let mut h = ResponseHead::new(&mut buf, Version::Http10, 206);
        h.header_u64("Content-Length", 12).header("X", "y");
        h.finish();
        assert_eq!(buf, b"HTTP/1.0 206 Partial Content\r\nContent-Length: 12\r\nX: y\r\n\r\n");
    }

    #[test]
    fn date_is_http_date() {
        let mut d = DateCache::default();
        let s = d.now().to_string();
        assert!(httpdate::parse_http_date(&s).is_ok(), "{s}");
        assert!(s.ends_with(" GMT"));
    }
}
