//! `protocol-post-demo` (spec PLUG-3): answers an HTML form posted as
//! `application/x-www-form-urlencoded` or `multipart/form-data` (plain or
//! chunked) with a table of the fields it received. A `GET` gets the form
//! itself (lws leaves it hanging).
//!
//! Unlike lws, uploaded files are not written to `/tmp`: the reply gives
//! each file's name and length, and the bytes are dropped. Bodies over
//! [`MAX_BODY`] get 413.

use crate::http::error_page::escape_html;
use crate::http::request::{Method, Request};
use crate::protocol::{Action, Cx, Event, Protocol};

/// The plugin's name, for `callback://protocol-post-demo`.
pub const NAME: &str = "protocol-post-demo";
/// The largest body accepted.
pub const MAX_BODY: usize = 1 << 20;

/// The plugin (stateless; each connection has a [`Form`]).
#[derive(Debug, Default)]
pub struct PostDemo;

/// One connection's request in progress.
#[derive(Debug, Default)]
pub struct Form {
    get: bool,
    content_type: String,
    body: Vec<u8>,
    too_big: bool,
    reply: Option<(u16, String)>,
}

impl Protocol for PostDemo {
    type Session = Form;

    fn name(&self) -> &str {
        NAME
    }

    fn callback(&mut self, cx: &mut Cx<'_>, event: Event<'_, Form>) -> Action {
        match event {
            Event::Http(wsi, req) => {
                *wsi.session = Form {
                    get: matches!(req.method(), Method::Get | Method::Head),
                    content_type: req.header_str("content-type").unwrap_or("").to_string(),
                    ..Form::default()
                };
                if wsi.session.get || req.framing() == crate::http::request::Framing::None {
                    wsi.session.reply = Some(answer(wsi.session, req));
                    cx.callback_on_writable(wsi.id);
                }
            }
            Event::HttpBody(wsi, data) => {
                let f = wsi.session;
                if f.body.len() + data.len() > MAX_BODY {
                    f.too_big = true;
                } else if !f.too_big {
                    f.body.extend_from_slice(data);
                }
            }
            Event::HttpBodyCompletion(wsi) => {
                let f = &mut *wsi.session;
                f.reply = Some(if f.too_big {
                    (413, String::new())
                } else {
                    (200, table(&fields(&f.content_type, &f.body)))
                });
                cx.callback_on_writable(wsi.id);
            }
            Event::HttpWriteable(wsi, writer) => {
                if let Some((status, html)) = wsi.session.reply.take() {
                    let r = if status == 200 {
                        writer.respond(200, "text/html; charset=utf-8", html.as_bytes())
                    } else {
                        writer.status(status, "request body too large for the demo")
                    };
                    if r.is_err() {
                        return Action::Close;
                    }
                }
            }
            _ => {}
        }
        Action::Continue
    }
}

/// The reply to a request without a body: the form, or an empty table.
fn answer(f: &Form, req: &Request) -> (u16, String) {
    if f.get {
        (200, FORM.replace("ACTION", &escape_html(req.path())))
    } else {
        (200, table(&[]))
    }
}

const FORM: &str = "<!doctype html><html><head><meta charset=utf-8><title>post demo</title>\
<link rel=stylesheet href=/warren.css></head><body><header class=bar><a class=brand href=/>warren</a>\
<nav><a href=/>Home</a><a href=/about.html>About</a></nav></header><main><h1>Form demo</h1>\
<p>These forms post to <code>protocol-post-demo</code>, a protocol plugin on a \
<code>callback://</code> mount, which answers with the fields it received. \
The first sends <code>multipart/form-data</code> (a file is counted, not kept); \
the second <code>application/x-www-form-urlencoded</code>.</p>\
<form method=post action=\"ACTION\" enctype=multipart/form-data>\
<p><label>text <input name=text></label></p><p><label>file <input type=file name=file></label></p>\
<p><input type=submit name=send value=send></p></form>\
<form method=post action=\"ACTION\"><p><label>text <input name=text></label> \
<input type=submit name=send value=\"send urlencoded\"></p></form></main></body></html>";

/// A received field: name, value (or file name), length.
#[derive(Debug, PartialEq, Eq)]
struct Field {
    name: String,
    value: String,
    filename: Option<String>,
    len: usize,
}

fn table(fields: &[Field]) -> String {
    let mut html = String::from(
        "<!doctype html><html><head><meta charset=utf-8><title>post demo</title>\
<link rel=stylesheet href=/warren.css></head><body><header class=bar><a class=brand href=/>warren</a>\
<nav><a href=/>Home</a><a href=/formtest>Form demo</a></nav></header><main><h1>Form fields</h1>\
<table><tr><th>name</th><th>length</th><th>value</th></tr>",
    );
    for f in fields {
        let value = match &f.filename {
            Some(name) => format!("file {} ({} bytes, not kept)", escape_html(name), f.len),
            None => escape_html(&f.value),
        };
        html.push_str(&format!("<tr><td>{}</td><td>{}</td><td>{value}</td></tr>", escape_html(&f.name), f.len));
    }
    html.push_str("</table></main></body></html>");
    html
}

fn fields(content_type: &str, body: &[u8]) -> Vec<Field> {
    let lower = content_type.to_ascii_lowercase();
    if lower.starts_with("multipart/form-data") {
        let boundary = content_type
            .split(';')
            .filter_map(|p| p.trim().strip_prefix("boundary="))
            .next()
            .map(|b| b.trim_matches('"').to_string());
        return boundary.map_or_else(Vec::new, |b| multipart(&b, body));
    }
    urlencoded(body)
}

/// `a=1&b=x+y%21`
fn urlencoded(body: &[u8]) -> Vec<Field> {
    String::from_utf8_lossy(body)
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let value = form_decode(v);
            Field { name: form_decode(k), len: value.len(), value, filename: None }
        })
        .collect()
}

fn form_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 3 <= bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// RFC 7578 `multipart/form-data`, from a whole body.
fn multipart(boundary: &str, body: &[u8]) -> Vec<Field> {
    let delim = format!("--{boundary}");
    let mut out = Vec::new();
    let mut rest = body;
    let Some(start) = find(rest, delim.as_bytes()) else { return out };
    rest = &rest[start + delim.len()..];
    loop {
        if rest.starts_with(b"--") {
            break;
        }
        let rest_after = rest.strip_prefix(b"\r\n").unwrap_or(rest);
        let Some(head_end) = find(rest_after, b"\r\n\r\n") else { break };
        let head = String::from_utf8_lossy(&rest_after[..head_end]).into_owned();
        let data_start = &rest_after[head_end + 4..];
        let end_delim = format!("\r\n{delim}");
        let Some(data_end) = find(data_start, end_delim.as_bytes()) else { break };
        let data = &data_start[..data_end];
        let disposition =
            head.lines().find(|l| l.to_ascii_lowercase().starts_with("content-disposition:")).unwrap_or("");
        let param = |key: &str| {
            disposition.split(';').map(str::trim).find_map(|p| {
                p.strip_prefix(key).and_then(|v| v.strip_prefix('=')).map(|v| v.trim_matches('"').to_string())
            })
        };
        let filename = param("filename");
        let value = if filename.is_some() { String::new() } else { String::from_utf8_lossy(data).into_owned() };
        out.push(Field { name: param("name").unwrap_or_default(), value, filename, len: data.len() });
        rest = &data_start[data_end + end_delim.len()..];
    }
    out
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || hay.len() < needle.len() {
        return None;
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_encodings() {
        let f = urlencoded(b"text=hello+world%21&send=send&bad=%zz&tail=%4");
        assert_eq!(f[0], Field { name: "text".into(), value: "hello world!".into(), filename: None, len: 12 });
        assert_eq!(f[2].value, "%zz");
        assert_eq!(f[3].value, "%4");
        let body = b"--XyZ\r\nContent-Disposition: form-data; name=\"text\"\r\n\r\nhi there\r\n\
--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.bin\"\r\nContent-Type: application/octet-stream\r\n\r\n\x00\x01\x02\r\n--XyZ--\r\n";
        let f = fields("multipart/form-data; boundary=XyZ", body);
        assert_eq!(f.len(), 2);
        assert_eq!((f[0].name.as_str(), f[0].value.as_str()), ("text", "hi there"));
        assert_eq!((f[1].filename.as_deref(), f[1].len), (Some("a.bin"), 3));
        assert!(table(&f).contains("a.bin (3 bytes, not kept)"));
        assert!(fields("multipart/form-data; boundary=Q", b"garbage").is_empty());
        assert!(table(&urlencoded(b"x=<script>")).contains("&lt;script&gt;"));
    }
}
