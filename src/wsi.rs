//! The connection's output side: the transport, the one pending remainder,
//! and the writer a protocol gets in a writeable callback.

use crate::conn::Out;
use crate::http::{error_page, ResponseHead, Version};
use std::io;

/// What the response head of the current transaction depends on.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TxInfo {
    pub(crate) version: Version,
    pub(crate) keep_alive: bool,
    pub(crate) head_only: bool,
    /// The status of the response head sent (for the access log).
    pub(crate) status: u16,
}

impl Default for TxInfo {
    fn default() -> Self {
        TxInfo { version: Version::Http11, keep_alive: false, head_only: false, status: 0 }
    }
}

/// Per-vhost values every response head carries.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HeadEnv<'a> {
    pub(crate) date: &'a str,
    pub(crate) headers: &'a [(String, String)],
    pub(crate) server: Option<&'a str>,
}

/// How the body of the response being written is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyFraming {
    /// No content at all (1xx, 204, 304): no length field either.
    None,
    Length(u64),
    Chunked,
    /// HTTP/1.0 without a length: the end of the body is the close.
    Close,
}

/// Starts a head with the fields every response has.
pub(crate) fn begin_head<'b>(buf: &'b mut Vec<u8>, tx: &mut TxInfo, status: u16, env: HeadEnv<'_>) -> ResponseHead<'b> {
    tx.status = status;
    let mut head = ResponseHead::new(buf, tx.version, status);
    head.header("Date", env.date);
    if let Some(s) = env.server {
        head.header("Server", s);
    }
    for (k, v) in env.headers {
        head.header(k, v);
    }
    head
}

/// Adds the framing and `Connection` fields and ends the head.
pub(crate) fn end_head(mut head: ResponseHead<'_>, tx: &mut TxInfo, framing: BodyFraming) {
    match framing {
        BodyFraming::None => {}
        BodyFraming::Length(n) => {
            head.header_u64("Content-Length", n);
        }
        BodyFraming::Chunked => {
            head.header("Transfer-Encoding", "chunked");
        }
        BodyFraming::Close => tx.keep_alive = false,
    }
    match (tx.keep_alive, tx.version) {
        (false, _) => {
            head.header("Connection", "close");
        }
        (true, Version::Http10) => {
            head.header("Connection", "keep-alive");
        }
        (true, Version::Http11) => {}
    }
    head.finish();
}

/// Appends a complete error response (head and, unless HEAD, the page).
pub(crate) fn error_response(
    buf: &mut Vec<u8>,
    tx: &mut TxInfo,
    status: u16,
    message: &str,
    extra: &[(&str, &str)],
    env: HeadEnv<'_>,
) {
    let mut body = Vec::with_capacity(320);
    error_page::write_body(&mut body, status, message);
    let mut head = begin_head(buf, tx, status, env);
    head.header("Content-Type", "text/html; charset=utf-8");
    for (k, v) in extra {
        head.header(k, v);
    }
    end_head(head, tx, BodyFraming::Length(body.len() as u64));
    if !tx.head_only {
        buf.extend_from_slice(&body);
    }
}

/// Where a protocol-written response stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CbResp {
    /// Nothing sent yet.
    AwaitHead,
    /// Head sent; body going out with this framing; `left` for Length.
    Body { framing: BodyFraming, left: u64 },
    /// Complete.
    Done,
}

/// The state a [`Writer`](crate::protocol::Writer) writes through.
#[derive(Debug)]
pub(crate) struct ResponseWriter<'a> {
    pub(crate) out: &'a mut Out,
    pub(crate) state: &'a mut CbResp,
    pub(crate) tx: &'a mut TxInfo,
    pub(crate) scratch: &'a mut Vec<u8>,
    pub(crate) env: HeadEnv<'a>,
    /// The request body has not been read to its end: answering now means
    /// closing afterwards, so the head must say `Connection: close`.
    pub(crate) body_unread: bool,
}

pub(crate) fn misuse(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, what.to_string())
}

/// Fields a protocol may not set: the server owns the framing.
const RESERVED: [&str; 5] = ["content-length", "transfer-encoding", "connection", "date", "upgrade"];

/// Checks a protocol-supplied field: a token name, not one the server
/// owns, and a value without CR, LF or NUL (no response splitting).
fn check_header(name: &str, value: &str) -> io::Result<()> {
    if !crate::http::is_token(name) || RESERVED.iter().any(|r| r.eq_ignore_ascii_case(name)) {
        return Err(misuse("header name not allowed"));
    }
    if value.bytes().any(|b| matches!(b, b'\r' | b'\n' | 0)) {
        return Err(misuse("header value has CR, LF or NUL"));
    }
    Ok(())
}

impl ResponseWriter<'_> {
    fn framing_for(&self, status: u16, length: Option<u64>) -> BodyFraming {
        match (length, self.tx.version) {
            // RFC 9110 §6.4.1: these never have content.
            _ if status < 200 || status == 204 || status == 304 => BodyFraming::None,
            (Some(n), _) => BodyFraming::Length(n),
            (None, Version::Http11) => BodyFraming::Chunked,
            (None, Version::Http10) => BodyFraming::Close,
        }
    }

    /// Refuses a second head; a response that leaves the body unread ends
    /// the connection.
    fn begin(&mut self) -> io::Result<()> {
        if *self.state != CbResp::AwaitHead {
            return Err(misuse("response head already sent"));
        }
        if self.body_unread {
            self.tx.keep_alive = false;
        }
        self.scratch.clear();
        Ok(())
    }

    pub(crate) fn head(mut self, status: u16, headers: &[(&str, &str)], length: Option<u64>) -> io::Result<()> {
        for (k, v) in headers {
            check_header(k, v)?;
        }
        self.begin()?;
        let framing = self.framing_for(status, length);
        let mut head = begin_head(self.scratch, self.tx, status, self.env);
        for (k, v) in headers {
            head.header(k, v);
        }
        end_head(head, self.tx, framing);
        *self.state = match framing {
            BodyFraming::None | BodyFraming::Length(0) => CbResp::Done,
            BodyFraming::Length(left) => CbResp::Body { framing, left },
            _ => CbResp::Body { framing, left: 0 },
        };
        self.out.write(self.scratch, false)
    }

    pub(crate) fn body(self, data: &[u8], last: bool) -> io::Result<()> {
        let CbResp::Body { framing, left } = *self.state else {
            return Err(misuse(if *self.state == CbResp::Done {
                "response already complete"
            } else {
                "body before head"
            }));
        };
        self.scratch.clear();
        if self.tx.head_only {
            // HEAD: the protocol may produce the body as for GET; none of
            // it is sent.
            let left = left.saturating_sub(data.len() as u64);
            let done = last || matches!(framing, BodyFraming::Length(_)) && left == 0;
            *self.state = if done { CbResp::Done } else { CbResp::Body { framing, left } };
            return Ok(());
        }
        match framing {
            BodyFraming::None => return Err(misuse("this status has no body")),
            BodyFraming::Length(_) => {
                if data.len() as u64 > left {
                    return Err(misuse("body longer than its Content-Length"));
                }
                let left = left - data.len() as u64;
                if last && left > 0 {
                    // The promised length cannot be met: end the connection
                    // after what we have, the only honest signal left.
                    self.tx.keep_alive = false;
                }
                *self.state = if last || left == 0 { CbResp::Done } else { CbResp::Body { framing, left } };
                return self.out.write(data, false);
            }
            BodyFraming::Chunked => {
                if !data.is_empty() {
                    use std::io::Write;
                    let _ = write!(self.scratch, "{:x}\r\n", data.len());
                    self.scratch.extend_from_slice(data);
                    self.scratch.extend_from_slice(b"\r\n");
                }
                if last {
                    self.scratch.extend_from_slice(b"0\r\n\r\n");
                }
            }
            BodyFraming::Close => self.scratch.extend_from_slice(data),
        }
        if last {
            *self.state = CbResp::Done;
        }
        self.out.write(self.scratch, false)
    }

    pub(crate) fn respond(mut self, status: u16, content_type: &str, body: &[u8]) -> io::Result<()> {
        check_header("Content-Type", content_type)?;
        self.begin()?;
        let mut head = begin_head(self.scratch, self.tx, status, self.env);
        head.header("Content-Type", content_type);
        end_head(head, self.tx, BodyFraming::Length(body.len() as u64));
        if !self.tx.head_only {
            self.scratch.extend_from_slice(body);
        }
        *self.state = CbResp::Done;
        self.out.write(self.scratch, false)
    }

    pub(crate) fn status(mut self, status: u16, message: &str) -> io::Result<()> {
        self.begin()?;
        error_response(self.scratch, self.tx, status, message, &[], self.env);
        *self.state = CbResp::Done;
        self.out.write(self.scratch, false)
    }
}
