//! The synthesised error page (spec ERR-1): the one body every error
//! response carries, styled by the site's `/error.css`.

use std::fmt::Write;

/// Appends the error page for `status` with `message` (an HTML fragment;
/// callers escape anything that came from a peer with [`escape_html`]).
///
/// The body is lws's, with a way home after the message:
/// `<html><head><meta charset=utf-8 http-equiv="Content-Language" content="en"/><link rel="stylesheet" type="text/css" href="/error.css"/></head><body><h1>CODE</h1>MSG<p><a href="/">Home</a></p></body></html>`
pub(crate) fn write_body(out: &mut Vec<u8>, status: u16, message: &str) {
    out.extend_from_slice(
        b"<html><head><meta charset=utf-8 http-equiv=\"Content-Language\" content=\"en\"/>\
<link rel=\"stylesheet\" type=\"text/css\" href=\"/error.css\"/></head><body><h1>",
    );
    let mut code = String::new();
    let _ = write!(code, "{status}");
    out.extend_from_slice(code.as_bytes());
    out.extend_from_slice(b"</h1>");
    out.extend_from_slice(message.as_bytes());
    out.extend_from_slice(b"<p><a href=\"/\">Home</a></p></body></html>");
}

/// The error style warren serves at `/error.css` for a site that has none
/// (the site's own file always wins): the page above without it is bare
/// Times text.
pub const ERROR_CSS: &str = include_str!("../../webroot/error.css");

/// Escapes `&`, `<`, `>`, `"` and `'` for use in HTML text or attributes.
/// (The post_demo plugin's; unused without the `appliance` feature.)
#[cfg_attr(not(feature = "appliance"), allow(dead_code))]
pub(crate) fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_is_lws_shaped() {
        let mut out = Vec::new();
        write_body(&mut out, 404, "Not Found");
        let s = String::from_utf8(out).unwrap_or_default();
        assert!(s.starts_with("<html><head><meta charset=utf-8"));
        assert!(s.contains("href=\"/error.css\""));
        assert!(s.ends_with("<body><h1>404</h1>Not Found<p><a href=\"/\">Home</a></p></body></html>"));
        assert!(s.len() <= 510);
    }

    #[test]
    fn escapes() {
        assert_eq!(escape_html("<a href=\"x\">&'"), "&lt;a href=&quot;x&quot;&gt;&amp;&#39;");
    }
}
