//! Responses the HTTP/1 role makes itself: error pages (a vhost's own, or
//! the built-in page and its stylesheet), bodiless answers, redirects and
//! short text pages.

use super::{content_type, Writing, H1};
use crate::conn::{Core, Env};
use crate::http::request::{Method, Request};
use crate::http::respond::{begin_head, end_head, error_response, BodyFraming, HeadEnv};
use crate::vhost::plain_host;

impl H1 {
    /// An error page with an explanation and extra headers.
    #[cfg(feature = "ws")]
    pub(super) fn send_page(&mut self, c: &mut Core, sh: &mut Env, status: u16, message: &str, extra: &[(&str, &str)]) {
        let (env, buf) = Self::env(sh, c);
        error_response(buf, &mut self.tx, status, message, extra, env);
        let bytes = std::mem::take(buf);
        self.send_buffered_from(c, &bytes);
        sh.tx = bytes;
    }

    /// Sends `sh.tx`'s bytes as the whole response.
    pub(super) fn send_buffered_from(&mut self, c: &mut Core, buf: &[u8]) {
        self.writing = Writing::Complete;
        if let Err(e) = c.out.write(buf, false) {
            log::debug!("{}: write: {e}", c.peer);
            self.writing = Writing::Shutdown;
        }
    }

    fn env<'a>(sh: &'a mut Env, c: &Core) -> (HeadEnv<'a>, &'a mut Vec<u8>) {
        let Env { vhosts, date, tx, .. } = sh;
        tx.clear();
        (vhosts[c.vhost].head_env(date.text(), c.is_tls()), tx)
    }

    /// `/error.css` from [`crate::http::error_page::ERROR_CSS`].
    fn send_builtin_error_css(&mut self, c: &mut Core, sh: &mut Env) {
        let css = crate::http::error_page::ERROR_CSS.as_bytes();
        let (env, buf) = Self::env(sh, c);
        let mut head = begin_head(buf, &mut self.tx, 200, env);
        head.header("Content-Type", "text/css; charset=utf-8");
        head.header("Cache-Control", "public, max-age=3600");
        end_head(head, &mut self.tx, BodyFraming::Length(css.len() as u64));
        if !self.tx.head_only {
            buf.extend_from_slice(css);
        }
        let bytes = std::mem::take(buf);
        self.send_buffered_from(c, &bytes);
        sh.tx = bytes;
    }

    /// The error page for `status` (ERR-1), or for a 404 on a vhost with
    /// `error_document_404`, a 302 there (ERR-4).
    pub(super) fn send_error(&mut self, c: &mut Core, sh: &mut Env, status: u16, req: Option<&Request>) {
        if let (404, Some(req)) = (status, req) {
            if req.path() == "/error.css" && matches!(req.method(), Method::Get | Method::Head) {
                // The site has no error style of its own: lend it ours,
                // so its error pages are not bare Times text.
                return self.send_builtin_error_css(c, sh);
            }
        }
        if status == 404 {
            let doc = sh.vhosts[c.vhost].error_document_404.clone();
            if let (Some(doc), Some(req)) = (doc, req) {
                if req.path() != doc {
                    self.redirect(c, sh, 302, &doc, req);
                    return;
                }
            }
        }
        if let Some(body) = self.custom_error_page(c, sh, status) {
            let (env, buf) = Self::env(sh, c);
            let mut head = begin_head(buf, &mut self.tx, status, env);
            head.header("Content-Type", body.1);
            end_head(head, &mut self.tx, BodyFraming::Length(body.0.len() as u64));
            if !self.tx.head_only {
                buf.extend_from_slice(&body.0);
            }
            let bytes = std::mem::take(buf);
            self.send_buffered_from(c, &bytes);
            sh.tx = bytes;
            return;
        }
        self.send_simple(c, sh, status, &[], true);
    }

    /// The vhost's own page for `status` (held in memory, see
    /// [`crate::reload::ErrorPage`]), with its content type.
    fn custom_error_page(
        &self,
        c: &mut Core,
        sh: &mut Env,
        status: u16,
    ) -> Option<(std::sync::Arc<[u8]>, &'static str)> {
        let now = sh.now;
        let mounts = &sh.vhosts[c.vhost].mounts;
        let page = sh.live[c.vhost].error_pages.iter_mut().find(|p| p.status == status)?;
        let name = page.path.rsplit('/').next().unwrap_or("");
        let ty = content_type(name);
        Some((page.body(mounts, now)?, ty))
    }

    /// A response made here: the error page for `status` when `page`,
    /// else an empty body; `extra` fields added.
    pub(super) fn send_simple(&mut self, c: &mut Core, sh: &mut Env, status: u16, extra: &[(&str, &str)], page: bool) {
        let (env, buf) = Self::env(sh, c);
        if page {
            error_response(buf, &mut self.tx, status, crate::http::reason(status), extra, env);
        } else {
            let mut head = begin_head(buf, &mut self.tx, status, env);
            for (k, v) in extra {
                head.header(k, v);
            }
            end_head(head, &mut self.tx, BodyFraming::Length(0));
        }
        let bytes = std::mem::take(buf);
        self.send_buffered_from(c, &bytes);
        sh.tx = bytes;
    }

    /// A redirect (REDIR-4 shape) to `to`: a path, made absolute with the
    /// request's Host when it is a plain host name, with the query kept.
    pub(super) fn redirect(&mut self, c: &mut Core, sh: &mut Env, status: u16, to: &str, req: &Request) {
        let mut location = String::with_capacity(to.len() + 64);
        if to.starts_with('/') {
            if let Some(host) = req.host().filter(|h| plain_host(h)) {
                location.push_str(if c.is_tls() { "https://" } else { "http://" });
                location.push_str(host);
            }
        }
        location.push_str(to);
        if let (Some(q), true) = (req.query(), status == 301) {
            location.push('?');
            location.push_str(q);
        }
        self.send_simple(c, sh, status, &[("Location", &location), ("Content-Type", "text/html")], false);
    }
}
