//! A small blocking WebSocket client for tests: it writes frames exactly
//! as told (so tests can also send broken ones) and reads frames one at a
//! time.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

pub const TEXT: u8 = 0x1;
pub const BINARY: u8 = 0x2;
pub const CONTINUATION: u8 = 0x0;
pub const CLOSE: u8 = 0x8;
pub const PING: u8 = 0x9;
pub const PONG: u8 = 0xA;

/// One frame as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub fin: bool,
    pub rsv1: bool,
    pub opcode: u8,
    pub payload: Vec<u8>,
}

impl Frame {
    /// The close code of a close frame.
    pub fn close_code(&self) -> Option<u16> {
        (self.opcode == CLOSE && self.payload.len() >= 2)
            .then(|| u16::from_be_bytes([self.payload[0], self.payload[1]]))
    }
}

pub struct WsClient {
    pub stream: TcpStream,
    buf: Vec<u8>,
    mask_seed: u32,
    /// The 101 response head.
    pub head: String,
}

/// The upgrade request for `path` with extra header lines.
pub fn upgrade_request(path: &str, extra: &[&str]) -> String {
    let mut r = format!(
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
    );
    for h in extra {
        r.push_str(h);
        r.push_str("\r\n");
    }
    r.push_str("\r\n");
    r
}

/// Sends `request` and reads the response head; returns the stream,
/// the head, and any bytes read past it.
pub fn raw_upgrade(addr: SocketAddr, request: &str) -> io::Result<(TcpStream, String, Vec<u8>)> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.write_all(request.as_bytes())?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end + 4]).into_owned();
            let rest = buf[end + 4..].to_vec();
            return Ok((s, head, rest));
        }
        let n = s.read(&mut chunk)?;
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, String::from_utf8_lossy(&buf).into_owned()));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

impl WsClient {
    /// Upgrades on `path` with extra headers; fails unless the answer is 101.
    pub fn connect(addr: SocketAddr, path: &str, extra: &[&str]) -> io::Result<WsClient> {
        let (stream, head, buf) = raw_upgrade(addr, &upgrade_request(path, extra))?;
        if !head.starts_with("HTTP/1.1 101 ") {
            return Err(io::Error::other(format!("not upgraded: {head}")));
        }
        Ok(WsClient { stream, buf, mask_seed: 0x1234_5678, head })
    }

    /// A second handle on the same connection, for a thread that reads
    /// while this one writes.
    pub fn try_clone_reader(&self) -> WsClient {
        WsClient {
            stream: self.stream.try_clone().expect("clone stream"),
            buf: Vec::new(),
            mask_seed: self.mask_seed ^ 0x5555,
            head: self.head.clone(),
        }
    }

    fn next_mask(&mut self) -> [u8; 4] {
        // xorshift: masks that differ frame to frame.
        let mut x = self.mask_seed;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.mask_seed = x;
        x.to_le_bytes()
    }

    /// The bytes of one client frame (masked).
    pub fn frame_bytes(&mut self, fin: bool, rsv1: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
        let mut v = vec![(u8::from(fin) << 7) | (u8::from(rsv1) << 6) | opcode];
        match payload.len() {
            n if n < 126 => v.push(0x80 | n as u8),
            n if n <= 0xffff => {
                v.push(0x80 | 126);
                v.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                v.push(0x80 | 127);
                v.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        let mask = self.next_mask();
        v.extend_from_slice(&mask);
        v.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        v
    }

    pub fn send(&mut self, fin: bool, opcode: u8, payload: &[u8]) -> io::Result<()> {
        let bytes = self.frame_bytes(fin, false, opcode, payload);
        self.stream.write_all(&bytes)
    }

    pub fn send_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes)
    }

    pub fn text(&mut self, text: &str) -> io::Result<()> {
        self.send(true, TEXT, text.as_bytes())
    }

    fn fill(&mut self, want: usize) -> io::Result<()> {
        let mut chunk = [0u8; 65536];
        while self.buf.len() < want {
            let n = self.stream.read(&mut chunk)?;
            if n == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
        Ok(())
    }

    /// Reads one frame (server frames are never masked).
    pub fn recv(&mut self) -> io::Result<Frame> {
        self.fill(2)?;
        let (b0, b1) = (self.buf[0], self.buf[1]);
        if b1 & 0x80 != 0 {
            return Err(io::Error::other("server frame is masked"));
        }
        let (len, at) = match b1 & 0x7f {
            126 => {
                self.fill(4)?;
                (u16::from_be_bytes([self.buf[2], self.buf[3]]) as usize, 4)
            }
            127 => {
                self.fill(10)?;
                let mut be = [0; 8];
                be.copy_from_slice(&self.buf[2..10]);
                (u64::from_be_bytes(be) as usize, 10)
            }
            n => (n as usize, 2),
        };
        self.fill(at + len)?;
        let payload = self.buf[at..at + len].to_vec();
        self.buf.drain(..at + len);
        Ok(Frame { fin: b0 & 0x80 != 0, rsv1: b0 & 0x40 != 0, opcode: b0 & 0x0f, payload })
    }

    /// Reads a whole data message (control frames in between are
    /// returned as they come if `controls`, else skipped).
    pub fn recv_message(&mut self) -> io::Result<(u8, Vec<u8>)> {
        let first = loop {
            let f = self.recv()?;
            if f.opcode & 0x8 == 0 {
                break f;
            }
            if f.opcode == CLOSE {
                return Ok((CLOSE, f.payload));
            }
        };
        let opcode = first.opcode;
        let mut data = first.payload;
        let mut fin = first.fin;
        while !fin {
            let f = self.recv()?;
            if f.opcode & 0x8 != 0 {
                continue;
            }
            data.extend_from_slice(&f.payload);
            fin = f.fin;
        }
        Ok((opcode, data))
    }

    /// Whether the server closes the TCP connection within `t` (bytes
    /// still arriving are read and dropped).
    pub fn closed_within(&mut self, t: Duration) -> bool {
        let deadline = std::time::Instant::now() + t;
        let mut chunk = [0u8; 4096];
        while std::time::Instant::now() < deadline {
            let _ = self.stream.set_read_timeout(Some(Duration::from_millis(100)));
            match self.stream.read(&mut chunk) {
                Ok(0) => return true,
                Ok(_) => {}
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {}
                Err(_) => return true,
            }
        }
        false
    }
}
