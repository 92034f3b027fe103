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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::request::{self, Limits};
    use std::time::{Duration, UNIX_EPOCH};

    const ETAG: &str = "\"00000000000000a1\"";
    const LM: &str = "Sun, 06 Nov 1994 08:49:37 GMT";
    const BEFORE: &str = "Sun, 06 Nov 1994 08:49:36 GMT";
    const AFTER: &str = "Sun, 06 Nov 1994 08:49:38 GMT";

    fn req(method: &str, headers: &[(&str, &str)]) -> Request {
        let mut raw = format!("{method} /f.txt HTTP/1.1\r\nHost: h\r\n");
        for (n, v) in headers {
            raw.push_str(&format!("{n}: {v}\r\n"));
        }
        raw.push_str("\r\n");
        match request::parse(raw.as_bytes(), Limits { max_head: 8192, max_uri: 4096 }) {
            Ok(Some((r, _))) => r,
            other => panic!("{other:?}"),
        }
    }

    fn file() -> FileMeta<'static> {
        FileMeta {
            len: 100,
            // 784111777 is LM.
            mod_time: Some(UNIX_EPOCH + Duration::from_millis(784_111_777_400)),
            version: 0xa1,
            etag: Some(ETAG),
            last_modified: Some(LM),
            content_type: Some("text/plain"),
            gzip: false,
            negotiated: false,
        }
    }

    const OK: FilePolicy<'static> = FilePolicy { status: 200, cache_control: Some("no-store") };

    fn plan(method: &str, headers: &[(&str, &str)]) -> FilePlan<'static> {
        plan_file(&req(method, headers), &file(), &OK)
    }

    fn headers(p: &FilePlan<'_>) -> Vec<(String, String)> {
        let mut out = Vec::new();
        p.each_header(|n, v| out.push((n.to_string(), v.to_string())));
        out
    }

    #[test]
    fn plain_get_is_the_whole_file_with_every_field() {
        let p = plan("GET", &[]);
        assert_eq!((p.status, &p.body), (200, &FileBody::Whole(100)));
        let h = headers(&p);
        let want = [
            ("Content-Type", "text/plain"),
            ("Accept-Ranges", "bytes"),
            ("Last-Modified", LM),
            ("ETag", ETAG),
            ("Cache-Control", "no-store"),
        ];
        assert_eq!(h, want.map(|(n, v)| (n.to_string(), v.to_string())));
    }

    #[test]
    fn preconditions_in_rfc_9110_order() {
        // Step 1: If-Match, strong comparison; `*` matches.
        assert_eq!(plan("GET", &[("If-Match", ETAG)]).status, 200);
        assert_eq!(plan("GET", &[("If-Match", "\"x\", *")]).status, 200);
        assert_eq!(plan("GET", &[("If-Match", "\"other\"")]).status, 412);
        assert_eq!(plan("GET", &[("If-Match", &format!("W/{ETAG}"))]).status, 412, "weak never matches");
        // Step 2: If-Unmodified-Since, only without If-Match.
        assert_eq!(plan("GET", &[("If-Unmodified-Since", BEFORE)]).status, 412);
        assert_eq!(plan("GET", &[("If-Unmodified-Since", LM)]).status, 200, "same second is unmodified");
        assert_eq!(plan("GET", &[("If-Unmodified-Since", "garbage")]).status, 200);
        assert_eq!(plan("GET", &[("If-Match", ETAG), ("If-Unmodified-Since", BEFORE)]).status, 200);
        // 412 before 304, and before ranges.
        let p = plan("GET", &[("If-Match", "\"other\""), ("If-None-Match", ETAG), ("Range", "bytes=0-1")]);
        assert_eq!((p.status, &p.body, headers(&p)), (412, &FileBody::Page, vec![]));
        // Step 3: If-None-Match, weak comparison; `*`.
        assert_eq!(plan("GET", &[("If-None-Match", ETAG)]).status, 304);
        assert_eq!(plan("HEAD", &[("If-None-Match", &format!("\"x\", W/{ETAG}"))]).status, 304);
        assert_eq!(plan("GET", &[("If-None-Match", "*")]).status, 304);
        assert_eq!(plan("GET", &[("If-None-Match", "\"other\"")]).status, 200);
        // Step 4: If-Modified-Since, only without If-None-Match.
        assert_eq!(plan("GET", &[("If-Modified-Since", LM)]).status, 304);
        assert_eq!(plan("GET", &[("If-Modified-Since", AFTER)]).status, 304);
        assert_eq!(plan("GET", &[("If-Modified-Since", BEFORE)]).status, 200);
        assert_eq!(plan("GET", &[("If-None-Match", "\"other\""), ("If-Modified-Since", LM)]).status, 200);
        // 304 wins over Range.
        let p = plan("GET", &[("If-None-Match", ETAG), ("Range", "bytes=0-1")]);
        assert_eq!((p.status, &p.body), (304, &FileBody::None));
    }

    #[test]
    fn no_validators_means_no_conditionals() {
        let f = FileMeta { etag: None, last_modified: None, mod_time: None, ..file() };
        let p = |h: &[(&str, &str)]| plan_file(&req("GET", h), &f, &OK).status;
        assert_eq!(p(&[("If-Match", "*")]), 200);
        assert_eq!(p(&[("If-Match", ETAG)]), 412);
        assert_eq!(p(&[("If-None-Match", "*")]), 200);
        assert_eq!(p(&[("If-Modified-Since", AFTER)]), 200);
        assert_eq!(p(&[("If-Unmodified-Since", BEFORE)]), 200);
    }

    #[test]
    fn not_modified_has_validators_and_vary_only() {
        let f = FileMeta { negotiated: true, gzip: true, ..file() };
        let p = plan_file(&req("GET", &[("If-None-Match", ETAG)]), &f, &OK);
        assert_eq!((p.status, &p.body), (304, &FileBody::None));
        let want = [("Vary", "Accept-Encoding"), ("Last-Modified", LM), ("ETag", ETAG), ("Cache-Control", "no-store")];
        assert_eq!(headers(&p), want.map(|(n, v)| (n.to_string(), v.to_string())));
    }

    #[test]
    fn error_document_ignores_conditionals_and_ranges() {
        let nf = FilePolicy { status: 404, cache_control: None };
        for h in [("If-Match", "\"other\""), ("If-None-Match", ETAG), ("Range", "bytes=0-1")] {
            let p = plan_file(&req("GET", &[h]), &file(), &nf);
            assert_eq!((p.status, &p.body, p.accept_ranges), (404, &FileBody::Whole(100), false), "{h:?}");
        }
    }

    #[test]
    fn single_range() {
        let p = plan("GET", &[("Range", "bytes=10-19")]);
        assert_eq!((p.status, &p.body), (206, &FileBody::Range { start: 10, len: 10 }));
        assert_eq!(p.content_range.as_deref(), Some("bytes 10-19/100"));
        assert!(headers(&p).contains(&("Content-Type".into(), "text/plain".into())));
        // Overlapping ranges coalesce into one; a suffix; an open end clamped.
        let p = plan("GET", &[("Range", "bytes=0-5,3-9")]);
        assert_eq!(p.body, FileBody::Range { start: 0, len: 10 });
        let p = plan("GET", &[("Range", "bytes=-10")]);
        assert_eq!(p.content_range.as_deref(), Some("bytes 90-99/100"));
        let p = plan("GET", &[("Range", "bytes=95-500")]);
        assert_eq!(p.body, FileBody::Range { start: 95, len: 5 });
    }

    #[test]
    fn multiple_ranges_are_multipart() {
        let p = plan("GET", &[("Range", "bytes=0-0,50-59")]);
        assert_eq!(p.status, 206);
        let FileBody::Multipart(m) = &p.body else { panic!("{:?}", p.body) };
        assert_eq!(m.parts, vec![(0, 0), (50, 59)]);
        assert_eq!(p.content_range, None);
        let h = headers(&p);
        assert_eq!(h[0].0, "Content-Type");
        assert!(h[0].1.starts_with("multipart/byteranges; boundary=warren-00000000000000a1-"), "{h:?}");
        let mut part = Vec::new();
        m.part_header(&mut part, 1);
        assert!(String::from_utf8_lossy(&part).contains("Content-Type: text/plain\r\nContent-Range: bytes 50-59/100"));
    }

    #[test]
    fn unsatisfiable_and_ignored_ranges() {
        let p = plan("GET", &[("Range", "bytes=100-200")]);
        assert_eq!((p.status, &p.body), (416, &FileBody::Page));
        assert_eq!(headers(&p), vec![("Content-Range".into(), "bytes */100".into())]);
        // Bad syntax or another unit: the whole file.
        for r in ["bytes=5-1", "lines=0-1", "bytes=x"] {
            assert_eq!(plan("GET", &[("Range", r)]).body, FileBody::Whole(100), "{r}");
        }
    }

    #[test]
    fn if_range_match_and_mismatch() {
        let p = |ir: &str| plan("GET", &[("Range", "bytes=0-9"), ("If-Range", ir)]).status;
        assert_eq!(p(ETAG), 206);
        assert_eq!(p(LM), 206);
        assert_eq!(p("\"other\""), 200);
        assert_eq!(p(&format!("W/{ETAG}")), 200, "a weak tag never matches");
        assert_eq!(p(BEFORE), 200);
        // Even an unsatisfiable range is ignored when If-Range fails.
        assert_eq!(plan("GET", &[("Range", "bytes=500-"), ("If-Range", "\"other\"")]).status, 200);
    }

    #[test]
    fn head_ignores_ranges() {
        let p = plan("HEAD", &[("Range", "bytes=0-9")]);
        assert_eq!((p.status, &p.body, p.accept_ranges), (200, &FileBody::Whole(100), true));
        assert_eq!(plan("HEAD", &[("Range", "bytes=500-")]).status, 200);
    }

    #[test]
    fn negotiated_gzip_is_not_rangeable_and_varies() {
        let f = FileMeta { len: 40, gzip: true, negotiated: true, ..file() };
        let p = plan_file(&req("GET", &[("Range", "bytes=0-9")]), &f, &OK);
        assert_eq!((p.status, &p.body), (200, &FileBody::Whole(40)));
        let h = headers(&p);
        assert!(h.contains(&("Content-Encoding".into(), "gzip".into())), "{h:?}");
        assert!(h.contains(&("Vary".into(), "Accept-Encoding".into())), "{h:?}");
        assert!(!h.iter().any(|(n, _)| n == "Accept-Ranges"), "{h:?}");
        // A stored .gz served as is (not negotiated): gzip, rangeable, no Vary.
        let f = FileMeta { gzip: true, negotiated: false, ..file() };
        let p = plan_file(&req("GET", &[("Range", "bytes=0-9")]), &f, &OK);
        assert_eq!(p.status, 206);
        assert!(p.gzip && !p.vary);
    }

    #[test]
    fn no_content_type_or_cache_control_when_none_is_given() {
        let f = FileMeta { content_type: None, ..file() };
        let p = plan_file(&req("GET", &[]), &f, &FilePolicy { status: 200, cache_control: None });
        let h = headers(&p);
        assert!(!h.iter().any(|(n, _)| n == "Content-Type" || n == "Cache-Control"), "{h:?}");
        // Multipart parts fall back to octet-stream.
        let p = plan_file(&req("GET", &[("Range", "bytes=0-0,5-5")]), &f, &OK);
        let FileBody::Multipart(m) = &p.body else { panic!() };
        let mut part = Vec::new();
        m.part_header(&mut part, 0);
        assert!(String::from_utf8_lossy(&part).contains("Content-Type: application/octet-stream\r\n"));
    }
}
