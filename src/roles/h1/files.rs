//! Files on an HTTP/1 connection: streaming a file's body (by `sendfile`
//! or bounded reads), multipart/byteranges, a file sent through a
//! protocol's ProcessHtml (FILE-9), waiting for a file that is not ready,
//! and the media type and gzip negotiation helpers `serve_file` uses.

use super::{
    log_path, raw_path, Close, MultipartSend, Writing, FILE_WAIT, FILE_WAIT_POLL, H1, READ_CHUNK, SENDFILE_CHUNK,
    SMALL_BODY, VALIDATOR_CACHE,
};
use crate::conn::Out;
use crate::conn::{Core, Env};
use crate::http::plan::{plan_file, FileBody, FileMeta, FilePolicy};
use crate::http::request::Method;
use crate::http::request::Request;
use crate::http::respond::{begin_head, end_head, BodyFraming};
use crate::http::{open_error_status, Version};
use crate::mount::{Located, Origin};
use crate::protocol::RawEvent;
use std::io;
use std::io::SeekFrom;
use warren_vfs::{ContentEncoding, FileFlags};
use warren_vfs::{FileHandle, VPath};

impl H1 {
    pub(super) fn serve_file(&mut self, c: &mut Core, sh: &mut Env, req: &Request, mount_index: usize) {
        let vh = &sh.vhosts[c.vhost];
        let m = &vh.mounts[mount_index];
        let Origin::File(fops) = &m.origin else { return };
        let rem = m.remainder(req.path());
        let (file, path) = match crate::mount::locate(m, &**fops, rem, accepts_gzip(req)) {
            Located::File(file, path) => (file, path),
            Located::Script(script) => {
                #[cfg(feature = "cgi")]
                self.serve_cgi(c, sh, req.clone(), mount_index, 0, None, Some(script));
                #[cfg(not(feature = "cgi"))]
                {
                    let _ = script;
                    self.send_error(c, sh, 403, Some(req));
                }
                return;
            }
            Located::AddSlash => {
                let to = format!("{}/", raw_path(req));
                self.skip_body(req);
                self.redirect(c, sh, 301, &to, req);
                return;
            }
            Located::Refused(status, why) => {
                log::info!("{}: \"{}\": refused ({status}): {why}", c.peer, log_path(req.path()));
                self.skip_body(req);
                self.send_error(c, sh, status, Some(req));
                return;
            }
            Located::Failed(e) if e.kind() == io::ErrorKind::WouldBlock => {
                self.skip_body(req);
                self.wait_for_file(c, sh, req, mount_index, &e);
                return;
            }
            Located::Failed(e) => {
                let status = open_error_status(&e);
                if status >= 500 {
                    log::error!("{}: open \"{}\": {e}", c.peer, log_path(req.path()));
                } else {
                    log::debug!("{}: open \"{}\": {e}", c.peer, log_path(req.path()));
                }
                self.skip_body(req);
                self.send_error(c, sh, status, Some(req));
                return;
            }
        };
        self.skip_body(req);
        if !matches!(req.method(), Method::Get | Method::Head) {
            self.send_simple(c, sh, 405, &[("Allow", "GET, HEAD")], true);
            return;
        }
        let status = if vh.error_document_404.as_deref() == Some(req.path()) { 404 } else { 200 };
        if let Some(protocol) = m.interpreter_for(path.file_name().unwrap_or("")).map(str::to_string) {
            return self.serve_interpreted(c, sh, req, file, &path, status, mount_index, &protocol);
        }
        let from = Sending { status, mount: mount_index, cgi: None };
        self.send_file(c, sh, req, file, path.file_name().unwrap_or(""), from);
    }

    /// Sends an opened file as `from` says: validators, conditionals,
    /// ranges, by `sendfile` where the handle allows.
    pub(super) fn send_file(
        &mut self,
        c: &mut Core,
        sh: &mut Env,
        req: &Request,
        file: Box<dyn FileHandle>,
        name: &str,
        from: Sending<'_>,
    ) {
        let (status, mount_index) = (from.status, from.mount);
        let info = file.info().clone();
        let gz = info.encoding == ContentEncoding::Gzip;
        let stamp = info.mod_time.and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok()).map_or(0, |d| d.as_secs());
        let key = (info.version.unwrap_or(0), gz, stamp);
        if sh.validators.len() >= VALIDATOR_CACHE {
            sh.validators.clear();
        }
        // PERF: formatting dates and hex per request shows in profiles.
        let (etag, last_modified) = &*sh.validators.entry(key).or_insert_with(|| {
            let etag = info.version.map_or(String::new(), |v| format!("\"{v:016x}{}\"", if gz { "-gz" } else { "" }));
            let lm = info.mod_time.map_or(String::new(), httpdate::fmt_http_date);
            (etag.into(), lm.into())
        });
        let etag = (!etag.is_empty()).then_some(&**etag);
        let last_modified = (!last_modified.is_empty()).then_some(&**last_modified);
        let m = &sh.vhosts[c.vhost].mounts[mount_index];
        // A CGI's X-Sendfile: its own Cache-Control and Content-Type, if
        // it said them, and nothing of the mount's file policy.
        let cgi_field = |n: &str| {
            from.cgi
                .and_then(|h| h.iter().find(|(k, _)| k.eq_ignore_ascii_case(n)))
                .and_then(|(_, v)| std::str::from_utf8(v).ok())
        };
        let cache = match from.cgi {
            Some(_) => cgi_field("cache-control").map(std::borrow::Cow::Borrowed),
            None => m.cache.map(|c| c.header_value()),
        };
        // PERF: borrowed, not copied: the content type is on every response.
        let content_type: Option<&str> = match cgi_field("content-type") {
            Some(t) => Some(t),
            None if m.extra_mimetypes.is_empty() => Some(content_type(name)),
            None => m.content_type_for(name, known_type),
        };
        let meta = FileMeta {
            len: info.len,
            mod_time: info.mod_time,
            version: info.version.unwrap_or(0),
            etag,
            last_modified,
            content_type,
            gzip: gz,
            negotiated: info.flags.contains(FileFlags::NEGOTIATED),
        };
        let plan = plan_file(req, &meta, &FilePolicy { status, cache_control: cache.as_deref() });
        if plan.body == FileBody::Page {
            let status = plan.status;
            match plan.content_range {
                Some(r) => self.send_simple(c, sh, status, &[("Content-Range", &r)], true),
                None => self.send_simple(c, sh, status, &[], true),
            }
            return;
        }
        let mut file = file;
        let buf = &mut sh.tx;
        let vh = &sh.vhosts[c.vhost];
        buf.clear();
        let env = vh.head_env(sh.date.text(), c.is_tls());
        let mut head = begin_head(buf, &mut self.tx, plan.status, env);
        plan.each_header(|n, v| {
            head.header(n, v);
        });
        for (k, v) in from.cgi.into_iter().flatten() {
            if !cgi_fields_owned(k) {
                head.header_bytes(k, v);
            }
        }
        let (body_start, body_len) = match plan.body {
            FileBody::None | FileBody::Page => {
                // RFC 9110 §15.4.5: validators and Vary, no content.
                end_head(head, &mut self.tx, BodyFraming::None);
                self.send_buffered_from(c, buf);
                return;
            }
            FileBody::Multipart(m) => {
                end_head(head, &mut self.tx, BodyFraming::Length(m.body_len()));
                let r = c.out.write(buf, true);
                self.writing = Writing::Multipart(Box::new(MultipartSend { file, plan: m, next: 0, in_part: 0 }));
                if let Err(e) = r {
                    log::debug!("{}: write: {e}", c.peer);
                    self.writing = Writing::Shutdown;
                }
                return;
            }
            FileBody::Whole(len) => (0, len),
            FileBody::Range { start, len } => (start, len),
        };
        end_head(head, &mut self.tx, BodyFraming::Length(body_len));
        if self.tx.head_only || body_len == 0 {
            self.send_buffered_from(c, buf);
            return;
        }
        if body_start > 0 && file.seek(SeekFrom::Start(body_start)).is_err() {
            self.tx.keep_alive = false;
            self.send_simple(c, sh, 500, &[], true);
            return;
        }
        if body_len <= SMALL_BODY as u64 {
            // PERF: a small body costs one read into the head's buffer and
            // one send, instead of a send plus a sendfile.
            let start = buf.len();
            buf.resize(start + body_len as usize, 0);
            let mut got = 0;
            let mut failure = None;
            while start + got < buf.len() {
                match file.read(&mut buf[start + got..]) {
                    Ok(0) => break,
                    Ok(n) => got += n,
                    Err(e) => {
                        failure = Some(e);
                        break;
                    }
                }
            }
            if failure.is_some() || got as u64 != body_len {
                // Nothing has been sent yet: say so with a status.
                log::error!(
                    "{}: reading \"{}\" failed: {}",
                    c.peer,
                    log_path(req.path()),
                    failure.map_or("it shrank".into(), |e| e.to_string())
                );
                self.tx.keep_alive = false;
                self.send_simple(c, sh, 500, &[], true);
                return;
            }
            self.send_buffered_from(c, buf);
            return;
        }
        // Bytes that cannot go by sendfile before the first ones that can
        // (a gzip header before the deflate stream, or a handle with no
        // descriptor) ride in the head's write.
        let mut remaining = body_len;
        let head_len = buf.len();
        while remaining > 0 && buf.len() - head_len < READ_CHUNK && file.sendfile_span().is_none_or(|s| s.len == 0) {
            let at = buf.len();
            buf.resize(at + (READ_CHUNK - (at - head_len)).min(remaining as usize), 0);
            match file.read(&mut buf[at..]) {
                Ok(n) if n > 0 => {
                    buf.truncate(at + n);
                    remaining -= n as u64;
                }
                Ok(_) | Err(_) => {
                    // Reported when the body step reads again.
                    buf.truncate(at);
                    break;
                }
            }
        }
        let r = c.out.write(buf, remaining > 0);
        self.writing = if remaining > 0 { Writing::File { file, remaining } } else { Writing::Complete };
        if let Err(e) = r {
            log::debug!("{}: write: {e}", c.peer);
            self.writing = Writing::Shutdown;
        }
    }

    pub(super) fn send_file_chunk(&mut self, c: &mut Core, sh: &mut Env) -> Result<bool, Close> {
        let Writing::File { file, remaining } = &mut self.writing else { return Ok(false) };
        if *remaining == 0 {
            self.writing = Writing::Complete;
            return Ok(true);
        }
        send_chunk(&mut c.out, file.as_mut(), remaining, sh, c.key)
    }

    /// One piece of an interpreted file: read, hand to the protocol,
    /// send what it leaves as a chunk (or raw on HTTP/1.0).
    pub(super) fn interpret_step(&mut self, c: &mut Core, sh: &mut Env) -> Result<bool, Close> {
        let Writing::Interpret { file, remaining } = &mut self.writing else { return Ok(false) };
        let mut chunk = std::mem::take(&mut sh.tx);
        chunk.clear();
        chunk.resize(READ_CHUNK.min(*remaining as usize), 0);
        let n = match file.read(&mut chunk) {
            Ok(n) => n,
            Err(e) => {
                sh.tx = chunk;
                return Err(e.into());
            }
        };
        if n == 0 && *remaining > 0 {
            sh.tx = chunk;
            return Err(Close("file shrank while being sent".into()));
        }
        chunk.truncate(n);
        *remaining -= n as u64;
        let last = *remaining == 0;
        let (id, peer) = (c.id(), c.peer);
        let r = self.dispatch(c, sh, RawEvent::ProcessHtml(id, peer, &mut chunk, last));
        if let Err(e) = r {
            sh.tx = chunk;
            return Err(e);
        }
        if chunk.len() > crate::protocol::HtmlChunk::MAX {
            sh.tx = chunk;
            return Err(Close("an interpreting protocol grew a piece past HtmlChunk::MAX".into()));
        }
        let chunked = self.tx.version == Version::Http11;
        let size = format!("{:x}\r\n", chunk.len());
        let empty = chunk.is_empty();
        if chunked && !empty {
            chunk.extend_from_slice(b"\r\n");
        }
        if chunked && last {
            chunk.extend_from_slice(b"0\r\n\r\n");
        }
        let r = if chunked && !empty { c.out.write_parts(size.as_bytes(), &chunk) } else { c.out.write(&chunk, false) };
        sh.tx = chunk;
        r?;
        sh.timers.set(c.key, sh.now + sh.limits.io_timeout);
        if last {
            self.writing = Writing::Complete;
        }
        Ok(true)
    }

    /// One step of a multipart/byteranges body: a part's header, a chunk
    /// of its bytes, or the closing boundary.
    pub(super) fn send_multipart_step(&mut self, c: &mut Core, sh: &mut Env) -> Result<bool, Close> {
        let Writing::Multipart(m) = &mut self.writing else { return Ok(false) };
        let out = &mut c.out;
        if m.in_part > 0 {
            return send_chunk(out, m.file.as_mut(), &mut m.in_part, sh, c.key);
        }
        let buf = &mut sh.tx;
        buf.clear();
        match m.plan.parts.get(m.next) {
            Some(&(a, b)) => {
                m.plan.part_header(buf, m.next);
                m.file.seek(SeekFrom::Start(a))?;
                m.in_part = b - a + 1;
                m.next += 1;
                out.write(buf, true)?;
            }
            None => {
                m.plan.closing(buf);
                out.write(buf, false)?;
                self.writing = Writing::Complete;
            }
        }
        Ok(true)
    }

    /// The file for `req` is not ready (`WouldBlock`): wait, reading
    /// nothing, until the fops says it is done (or poll when it gives
    /// nothing to wait on). The open is tried again from `on_timer`.
    pub(super) fn wait_for_file(&mut self, c: &mut Core, sh: &mut Env, req: &Request, mount: usize, e: &io::Error) {
        log::debug!("{}: open \"{}\": {e}; waiting", c.peer, log_path(req.path()));
        let woken = warren_vfs::Pending::of(e).is_some_and(|p| p.wake_on_done(&sh.files_waker));
        let until = sh.now + FILE_WAIT;
        self.writing = Writing::FileWait { req: Box::new(req.clone()), mount, until, poll: !woken };
        sh.timers.set(c.key, if woken { until } else { sh.now + FILE_WAIT_POLL });
    }

    /// Waiting for a file that was not ready (`wait_for_file`).
    pub(crate) fn waits_for_file(&self) -> bool {
        matches!(self.writing, Writing::FileWait { .. })
    }

    /// Starts an interpreted file (FILE-9): bound to the protocol, sent
    /// chunked through its ProcessHtml, with no validators or ranges (the
    /// bytes depend on the protocol).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn serve_interpreted(
        &mut self,
        c: &mut Core,
        sh: &mut Env,
        req: &Request,
        file: Box<dyn FileHandle>,
        path: &VPath,
        status: u16,
        mount_index: usize,
        protocol: &str,
    ) {
        let vi = c.vhost;
        let Some(pi) = sh.vhosts[vi].protocol(protocol) else {
            // Context::new checked every interpret protocol exists.
            self.send_error(c, sh, 500, Some(req));
            return;
        };
        if self.bind(c, sh, vi, pi).is_err() {
            self.tx.keep_alive = false;
            self.send_simple(c, sh, 500, &[], true);
            return;
        }
        let remaining = file.info().len;
        let framing = if self.tx.version == Version::Http11 { BodyFraming::Chunked } else { BodyFraming::Close };
        let Env { vhosts, date, tx: buf, .. } = sh;
        let vh = &vhosts[vi];
        let m = &vh.mounts[mount_index];
        let name = path.file_name().unwrap_or("");
        let ctype =
            if m.extra_mimetypes.is_empty() { Some(content_type(name)) } else { m.content_type_for(name, known_type) };
        buf.clear();
        let env = vh.head_env(date.text(), c.is_tls());
        let mut head = begin_head(buf, &mut self.tx, status, env);
        if let Some(t) = ctype {
            head.header("Content-Type", t);
        }
        if let Some(c) = m.cache.map(|c| c.header_value()) {
            head.header("Cache-Control", &c);
        }
        end_head(head, &mut self.tx, framing);
        if self.tx.head_only {
            self.send_buffered_from(c, buf);
            return;
        }
        let r = c.out.write(buf, true);
        self.writing = Writing::Interpret { file, remaining };
        if let Err(e) = r {
            log::debug!("{}: write: {e}", c.peer);
            self.writing = Writing::Shutdown;
        }
    }
}

/// Where a file response comes from.
#[derive(Debug, Clone, Copy)]
pub(super) struct Sending<'a> {
    /// 200, or another status without conditionals or ranges.
    pub status: u16,
    /// The mount whose content types apply.
    pub mount: usize,
    /// The header fields of a CGI response that named the file
    /// (`X-Sendfile`), sent with it.
    pub cgi: Option<&'a [(String, Vec<u8>)]>,
}

/// Fields of a CGI response that an X-Sendfile'd file response does not
/// take from it: the server's own, what the file's plan sets, and the
/// X-Sendfile fields themselves.
fn cgi_fields_owned(name: &str) -> bool {
    crate::http::respond::server_sets(name)
        || [
            "content-type",
            "cache-control",
            "content-range",
            "accept-ranges",
            "etag",
            "last-modified",
            "x-sendfile",
            "x-lighttpd-send-file",
        ]
        .iter()
        .any(|o| name.eq_ignore_ascii_case(o))
}

/// Sends the next chunk of `file` (up to `remaining` bytes): by
/// `sendfile` when the handle offers a descriptor, else one bounded read.
pub(super) fn send_chunk(
    out: &mut Out,
    file: &mut dyn FileHandle,
    remaining: &mut u64,
    sh: &mut Env,
    key: usize,
) -> Result<bool, Close> {
    let want = (*remaining).min(SENDFILE_CHUNK);
    if let Some(span) = file.sendfile_span().filter(|s| s.len > 0) {
        let len = want.min(span.len) as usize;
        if let Some(r) = out.sendfile(span.fd, span.offset, len) {
            return match r? {
                None => Ok(false),
                Some(0) => Err(Close("file shrank while being sent".into())),
                Some(n) => {
                    file.advance(n as u64)?;
                    *remaining -= n as u64;
                    sh.timers.set(key, sh.now + sh.limits.io_timeout);
                    Ok(true)
                }
            };
        }
    }
    let buf = &mut sh.tx;
    buf.resize(READ_CHUNK.min(want as usize), 0);
    // A failure here (a CRC mismatch, say) comes after the head: all
    // that is left is to abort the connection. The fops logged it.
    let n = file.read(buf)?;
    if n == 0 {
        return Err(Close("file shrank while being sent".into()));
    }
    *remaining -= n as u64;
    out.write(&buf[..n], *remaining > 0)?;
    sh.timers.set(key, sh.now + sh.limits.io_timeout);
    Ok(true)
}

/// The media type for a file name if known (quick match, then mime_guess).
pub(super) fn known_type(name: &str) -> Option<&'static str> {
    match content_type(name) {
        "application/octet-stream" if !name.to_ascii_lowercase().ends_with(".bin") => None,
        t => Some(t),
    }
}

/// The media type for a file name: the common web types by a quick
/// match, the rest from mime_guess; unknown is `application/octet-stream`.
pub(super) fn content_type(name: &str) -> &'static str {
    let ext = name.rsplit_once('.').map_or("", |(_, e)| e);
    let quick = match ext {
        "html" | "htm" => "text/html",
        "css" => "text/css",
        "js" | "mjs" => "text/javascript",
        "json" => "application/json",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "svg" => "image/svg+xml",
        "txt" => "text/plain",
        "woff2" => "font/woff2",
        "wasm" => "application/wasm",
        "ico" => "image/x-icon",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "xml" => "text/xml",
        "pdf" => "application/pdf",
        "bin" => "application/octet-stream",
        _ => "",
    };
    if !quick.is_empty() {
        return quick;
    }
    mime_guess::from_path(name).first_raw().unwrap_or("application/octet-stream")
}

/// Whether `Accept-Encoding` allows gzip (RFC 9110 §12.5.3, q-values).
pub(super) fn accepts_gzip(req: &Request) -> bool {
    let Some(v) = req.header_str("accept-encoding") else { return false };
    let mut star = None;
    for item in v.split(',') {
        let mut parts = item.split(';');
        let coding = parts.next().unwrap_or("").trim();
        let q = parts
            .filter_map(|p| p.trim().strip_prefix("q=").or_else(|| p.trim().strip_prefix("Q=")))
            .find_map(|q| q.trim().parse::<f32>().ok())
            .unwrap_or(1.0);
        if coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip") {
            return q > 0.0;
        }
        if coding == "*" {
            star = Some(q > 0.0);
        }
    }
    star.unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::request::{self, Limits as HeadLimits};

    #[test]
    fn gzip_acceptance() {
        let req = |ae: &str| {
            let raw = format!("GET / HTTP/1.1\r\nHost: h\r\nAccept-Encoding: {ae}\r\n\r\n");
            let limits = HeadLimits { max_head: 8192, max_uri: 4096 };
            match request::parse(raw.as_bytes(), limits) {
                Ok(Some((r, _))) => r,
                other => panic!("{other:?}"),
            }
        };
        assert!(accepts_gzip(&req("gzip, deflate")));
        assert!(accepts_gzip(&req("br;q=1.0, gzip;q=0.5")));
        assert!(!accepts_gzip(&req("gzip;q=0")));
        assert!(!accepts_gzip(&req("identity")));
        assert!(accepts_gzip(&req("*")));
        assert!(!accepts_gzip(&req("*;q=0")));
    }
}
