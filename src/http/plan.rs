//! Response planning for files, free of I/O: from the request, what is
//! known of the file and the mount's policy to a [`FilePlan`] (status,
//! header fields, which bytes form the body). The h1 role builds the
//! inputs, calls [`plan_file`] and executes the plan: it writes the head
//! and streams the body.
//!
//! The order is RFC 9110 §13.2.2: `If-Match` / `If-Unmodified-Since`
//! (412), then `If-None-Match` / `If-Modified-Since` (304), then `Range`
//! with `If-Range` (206, 416).

use super::range::{self, Ranges};
use super::request::{Method, Request};
use std::time::SystemTime;

/// What the planner needs to know of an opened file. Every string is
/// borrowed: the caller keeps the formatted validators and content types
/// (PERF: they are on every response).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct FileMeta<'a> {
    /// The length of the bytes served (after any decoding).
    pub len: u64,
    /// When the file was last modified, if known.
    pub mod_time: Option<SystemTime>,
    /// The version the multipart boundary is derived from.
    pub version: u64,
    /// The entity tag, quoted (`"…"` or `W/"…"`).
    pub etag: Option<&'a str>,
    /// `mod_time` as an HTTP date.
    pub last_modified: Option<&'a str>,
    /// The media type, if one is to be sent.
    pub content_type: Option<&'a str>,
    /// The bytes are gzip: `Content-Encoding: gzip`.
    pub gzip: bool,
    /// The bytes depend on `Accept-Encoding`: `Vary`, and no ranges
    /// (RANGE-5).
    pub negotiated: bool,
}

/// What the mount says about the response.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FilePolicy<'a> {
    /// 200, or 404 when the file is the vhost's 404 document (no
    /// conditionals or ranges apply then).
    pub status: u16,
    /// The `Cache-Control` value, if any.
    pub cache_control: Option<&'a str>,
}

/// Which bytes the response carries.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum FileBody {
    /// No content, no length (304).
    None,
    /// The status's error page (412, 416): the plan's fields carry only
    /// what the page adds (`Content-Range` for 416).
    Page,
    /// The whole file, of this length.
    Whole(u64),
    /// `len` bytes from `start`.
    Range {
        /// The first byte.
        start: u64,
        /// How many bytes.
        len: u64,
    },
    /// A multipart/byteranges body.
    Multipart(Multipart),
}

/// A response to a file request, decided.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct FilePlan<'a> {
    /// 200, 206, 304, 404, 412 or 416.
    pub status: u16,
    /// `Content-Type` (a multipart body sends its own instead).
    pub content_type: Option<&'a str>,
    /// `Content-Encoding: gzip`.
    pub gzip: bool,
    /// `Accept-Ranges: bytes`.
    pub accept_ranges: bool,
    /// `Content-Range` (206 of one range, 416).
    pub content_range: Option<String>,
    /// `Vary: Accept-Encoding`.
    pub vary: bool,
    /// `Last-Modified`.
    pub last_modified: Option<&'a str>,
    /// `ETag`.
    pub etag: Option<&'a str>,
    /// `Cache-Control`.
    pub cache_control: Option<&'a str>,
    /// The body.
    pub body: FileBody,
}

impl<'a> FilePlan<'a> {
    fn page(status: u16, content_range: Option<String>) -> FilePlan<'a> {
        FilePlan {
            status,
            content_type: None,
            gzip: false,
            accept_ranges: false,
            content_range,
            vary: false,
            last_modified: None,
            etag: None,
            cache_control: None,
            body: FileBody::Page,
        }
    }

    /// Calls `f` with each header field of the plan, in the order they
    /// are written.
    pub fn each_header(&self, mut f: impl FnMut(&str, &str)) {
        match &self.body {
            FileBody::Multipart(m) => f("Content-Type", &m.content_type()),
            _ => {
                if let Some(t) = self.content_type {
                    f("Content-Type", t);
                }
            }
        }
        if self.gzip {
            f("Content-Encoding", "gzip");
        }
        if self.accept_ranges {
            f("Accept-Ranges", "bytes");
        }
        if let Some(r) = &self.content_range {
            f("Content-Range", r);
        }
        if self.vary {
            f("Vary", "Accept-Encoding");
        }
        if let Some(t) = self.last_modified {
            f("Last-Modified", t);
        }
        if let Some(e) = self.etag {
            f("ETag", e);
        }
        if let Some(c) = self.cache_control {
            f("Cache-Control", c);
        }
    }
}

/// Decides the response to a GET or HEAD of the file described by `info`.
pub(crate) fn plan_file<'a>(req: &Request, info: &FileMeta<'a>, policy: &FilePolicy<'a>) -> FilePlan<'a> {
    let status = policy.status;
    if status == 200 && precondition_failed(req, info.etag, info.mod_time) {
        // RFC 9110 §13.2.2 steps 1-2, before anything else is decided.
        return FilePlan::page(412, None);
    }
    let fresh = status == 200 && not_modified(req, info.etag, info.mod_time);
    // Ranges apply to GETs of files whose bytes do not depend on the
    // client: not to gzip/inflated zip entries (RANGE-5 [REC]).
    let rangeable = status == 200 && !info.negotiated;
    let ranges = match req.header_str("range") {
        Some(v) if rangeable && !fresh && req.method() == Method::Get && if_range_holds(req, info) => {
            range::parse(v, info.len)
        }
        _ => Ranges::Ignore,
    };
    let (status, body) = match ranges {
        Ranges::Unsatisfiable => return FilePlan::page(416, Some(format!("bytes */{}", info.len))),
        Ranges::Satisfiable(parts) if parts.len() == 1 => {
            let (a, b) = parts[0];
            (206, FileBody::Range { start: a, len: b - a + 1 })
        }
        Ranges::Satisfiable(parts) => {
            let t = info.content_type.unwrap_or("application/octet-stream").to_string();
            (206, FileBody::Multipart(Multipart::new(parts, t, info.len, info.version)))
        }
        Ranges::Ignore if fresh => (304, FileBody::None),
        Ranges::Ignore => (status, FileBody::Whole(info.len)),
    };
    let content_range = match body {
        FileBody::Range { start, len } => Some(format!("bytes {}-{}/{}", start, start + len - 1, info.len)),
        _ => None,
    };
    FilePlan {
        status,
        // RFC 9110 §15.4.5: a 304 has validators and Vary, no content fields.
        content_type: if fresh { None } else { info.content_type },
        gzip: !fresh && info.gzip,
        accept_ranges: !fresh && rangeable,
        content_range,
        vary: info.negotiated,
        last_modified: info.last_modified,
        etag: info.etag,
        cache_control: policy.cache_control,
        body,
    }
}

/// The parts and framing of a multipart/byteranges body (RFC 9110 §14.6).
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Multipart {
    /// The inclusive byte ranges, ascending.
    pub parts: Vec<(u64, u64)>,
    boundary: String,
    ctype: String,
    len: u64,
}

impl Multipart {
    fn new(parts: Vec<(u64, u64)>, ctype: String, len: u64, version: u64) -> Multipart {
        // A boundary that cannot occur in the file's bytes by accident.
        let boundary = format!("warren-{version:016x}-{:08x}", parts.len() as u64 ^ len);
        Multipart { parts, boundary, ctype, len }
    }

    /// The response's `Content-Type`.
    pub fn content_type(&self) -> String {
        format!("multipart/byteranges; boundary={}", self.boundary)
    }

    /// Appends the header of part `i` (with its leading CRLF) to `buf`.
    pub fn part_header(&self, buf: &mut Vec<u8>, i: usize) {
        use std::io::Write;
        let (a, b) = self.parts[i];
        let _ = write!(
            buf,
            "\r\n--{}\r\nContent-Type: {}\r\nContent-Range: bytes {a}-{b}/{}\r\n\r\n",
            self.boundary, self.ctype, self.len
        );
    }

    /// Appends the closing boundary to `buf`.
    pub fn closing(&self, buf: &mut Vec<u8>) {
        buf.extend_from_slice(b"\r\n--");
        buf.extend_from_slice(self.boundary.as_bytes());
        buf.extend_from_slice(b"--\r\n");
    }

    /// The exact length of the body: every part header and its bytes,
    /// and the closing boundary.
    pub fn body_len(&self) -> u64 {
        let mut scratch = Vec::with_capacity(160);
        let mut total = 0;
        for (i, &(a, b)) in self.parts.iter().enumerate() {
            scratch.clear();
            self.part_header(&mut scratch, i);
            total += scratch.len() as u64 + (b - a + 1);
        }
        scratch.clear();
        self.closing(&mut scratch);
        total + scratch.len() as u64
    }
}

/// If-Range (RFC 9110 §13.1.5): the range applies only if the validator
/// matches: an ETag strongly, or a date exactly. No If-Range: it applies.
fn if_range_holds(req: &Request, info: &FileMeta<'_>) -> bool {
    match req.header_str("if-range") {
        None => true,
        Some(v) if v.starts_with('"') => info.etag.is_some_and(|e| e == v),
        Some(v) if v.starts_with("W/") => false,
        Some(v) => info.last_modified.is_some_and(|lm| lm == v),
    }
}

/// Whether the client's copy is current (RFC 9110 §13.1.2, §13.1.3):
/// If-None-Match, compared weakly against our tag (or `*`), decides when
/// present; otherwise If-Modified-Since against the modification time.
fn not_modified(req: &Request, etag: Option<&str>, mod_time: Option<SystemTime>) -> bool {
    if let Some(inm) = req.header_str("if-none-match") {
        let Some(ours) = etag else { return false };
        let ours = ours.trim_start_matches("W/");
        return inm.split(',').map(str::trim).any(|t| t == "*" || t.trim_start_matches("W/") == ours);
    }
    match (req.header_str("if-modified-since").and_then(|v| httpdate::parse_http_date(v).ok()), mod_time) {
        (Some(since), Some(modified)) => whole_seconds(modified) <= whole_seconds(since),
        _ => false,
    }
}

/// Whether `If-Match` or `If-Unmodified-Since` fails (RFC 9110 §13.1.1,
/// §13.1.4, evaluated in the order of §13.2.2): `If-Match` needs a strong
/// match (a weak tag never matches; `*` matches any file we have), and
/// when present, `If-Unmodified-Since` is not looked at. A date the
/// file was modified after fails; an unparsable date is ignored.
fn precondition_failed(req: &Request, etag: Option<&str>, mod_time: Option<SystemTime>) -> bool {
    if let Some(im) = req.header_str("if-match") {
        let strong = etag.filter(|t| !t.starts_with("W/"));
        return !im.split(',').map(str::trim).any(|t| t == "*" || (strong.is_some() && Some(t) == strong));
    }
    match (req.header_str("if-unmodified-since").and_then(|v| httpdate::parse_http_date(v).ok()), mod_time) {
        (Some(since), Some(modified)) => whole_seconds(modified) > whole_seconds(since),
        _ => false,
    }
}

/// A time as HTTP dates carry it: whole seconds since the epoch.
fn whole_seconds(t: SystemTime) -> u64 {
    t.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}
