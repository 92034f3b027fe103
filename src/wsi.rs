//! The writer a protocol gets in an HTTP writeable callback: it checks
//! the protocol's calls against the response's state and writes through
//! the connection's one pending write. What the head says and how the
//! body is framed is decided by `http::respond`.

use crate::conn::Out;
use crate::http::respond::{begin_head, end_head, error_response, BodyFraming, HeadEnv, TxInfo};
use std::io;

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
        let framing = BodyFraming::plan(self.tx.version, status, length, false);
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

    pub(crate) fn status(self, status: u16, message: &str) -> io::Result<()> {
        self.status_with(status, message, &[])
    }

    /// [`ResponseWriter::status`] with `extra` header fields (a 405's
    /// `Allow`).
    pub(crate) fn status_with(mut self, status: u16, message: &str, extra: &[(&str, &str)]) -> io::Result<()> {
        self.begin()?;
        error_response(self.scratch, self.tx, status, message, extra, self.env);
        *self.state = CbResp::Done;
        self.out.write(self.scratch, false)
    }
}
