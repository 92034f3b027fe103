//! `protocol-lws-raw-test` (PLUG-6), in the spirit of lws's plugin of
//! that name: raw wsis through the event loop.
//!
//! - Option `fifo-path`: at start the plugin makes a FIFO there (unless
//!   one is there already; anything else there, a symbolic link
//!   included, is left alone and reported), opens it and adopts it; each
//!   line written to it is logged at info level (`raw-test: fifo: ...`).
//!   Try `echo hello > /tmp/warren-raw-test`. The FIFO stays when the
//!   server stops: a reload's new configuration reads the same one.
//! - As a vhost's `listen-accept-protocol` (with `apply-listen-accept` or
//!   `fallback-listen-accept`): echoes what a raw connection sends, e.g.
//!   typed into `telnet` or `nc`.
//! - Option `udp`: an address (`127.0.0.1:7682`) where it binds a UDP
//!   socket and sends each datagram back to whoever sent it. The socket
//!   has `SO_REUSEPORT`, so a reload's new configuration binds beside the
//!   old one while that drains. A datagram that cannot be answered (a
//!   forged sender, port 0) is dropped; the socket stays.
//! - Option `raw`: taken for lwsws configurations, which mark the raw
//!   protocol with `"raw": "1"`; name it in `listen-accept-protocol`.
//!
//! Memory stays bounded: what one read gave is held until it is written
//! back, and reading is paused meanwhile, so a peer that sends without
//! reading meets TCP pushback (or, on UDP, the kernel's drops).

use crate::protocol::{Action, Cx, Event, Protocol, RawKind};
use std::ffi::CString;
use std::net::SocketAddr;
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileTypeExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// The plugin's name (lws's).
pub const NAME: &str = "protocol-lws-raw-test";

/// The most of a FIFO line the log shows.
const LOG_MAX: usize = 200;

/// The plugin: one instance per service loop; the FIFO and the UDP socket
/// are adopted by whichever instance starts first.
#[derive(Debug, Default)]
pub struct RawTest {
    fifo: Option<PathBuf>,
    udp: Option<SocketAddr>,
    /// Shared by the loops' instances: the descriptors are adopted once.
    claimed: Arc<AtomicBool>,
    /// This instance adopted them.
    owner: bool,
}

/// A raw wsi's state: what it is and what waits to go back.
#[derive(Debug, Default)]
pub struct RawTestSession {
    kind: Option<RawKind>,
    pending: Vec<u8>,
    /// The sender of the datagram in `pending` (UDP).
    to: Option<SocketAddr>,
}

impl RawTest {
    /// With its per-vhost options (`fifo-path`, `udp`, `raw`), sharing
    /// `claimed` with the other loops' instances.
    pub(crate) fn with_options(options: &[(&str, &str)], claimed: Arc<AtomicBool>) -> Result<RawTest, String> {
        let mut t = RawTest { claimed, ..RawTest::default() };
        for (k, v) in options {
            match *k {
                "fifo-path" if v.trim().is_empty() => return Err("fifo-path: expected a path".into()),
                "fifo-path" => t.fifo = Some(PathBuf::from(v.trim())),
                "udp" => {
                    t.udp = Some(
                        v.trim()
                            .parse()
                            .map_err(|_| format!("udp: expected an address such as 127.0.0.1:7682, found {v:?}"))?,
                    )
                }
                _ => {}
            }
        }
        Ok(t)
    }

    /// Whether this instance is to adopt the FIFO and UDP socket: there
    /// are some, and no other loop's instance took them.
    fn wants_descriptors(&self) -> bool {
        (self.fifo.is_some() || self.udp.is_some()) && !self.claimed.swap(true, Ordering::AcqRel)
    }

    fn adopt_descriptors(&mut self, cx: &mut Cx<'_>) {
        self.owner = true;
        if let Some(path) = self.fifo.clone() {
            self.open_fifo(cx, &path);
        }
        if let Some(addr) = self.udp {
            match udp_socket(addr).and_then(|(sock, at)| cx.adopt_udp_socket(sock).map(|()| at)) {
                Ok(at) => log::info!("raw-test: UDP echo on {at}"),
                Err(e) => log::error!("raw-test: UDP {addr}: {e}"),
            }
        }
    }

    /// Makes (or finds) the FIFO and adopts it.
    fn open_fifo(&mut self, cx: &mut Cx<'_>, path: &PathBuf) {
        match std::fs::symlink_metadata(path) {
            Ok(m) if m.file_type().is_fifo() => {}
            Ok(_) => {
                log::error!("raw-test: {} exists and is not a FIFO; not touching it", path.display());
                return;
            }
            Err(_) => {
                let Ok(c) = CString::new(path.as_os_str().as_bytes()) else { return };
                // SAFETY: a NUL-terminated path; mkfifo reads it only.
                if unsafe { libc::mkfifo(c.as_ptr(), 0o600) } != 0 {
                    log::error!("raw-test: mkfifo {}: {}", path.display(), std::io::Error::last_os_error());
                    return;
                }
            }
        }
        let Ok(c) = CString::new(path.as_os_str().as_bytes()) else { return };
        // Read and write: the FIFO then never reads as ended when a
        // writer goes, and needs no reopening. No following a link put
        // there since the look; and adopt_file refuses anything but a
        // FIFO, a pipe or a device.
        // SAFETY: a NUL-terminated path; the descriptor returned is owned
        // by the OwnedFd made of it.
        let flags = libc::O_RDWR | libc::O_NONBLOCK | libc::O_CLOEXEC | libc::O_NOFOLLOW;
        let fd = unsafe { libc::open(c.as_ptr(), flags) };
        if fd < 0 {
            log::error!("raw-test: open {}: {}", path.display(), std::io::Error::last_os_error());
            return;
        }
        // SAFETY: `fd` was just opened and is owned by nothing else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        match cx.adopt_file(fd) {
            Ok(()) => log::info!("raw-test: reading the FIFO {}", path.display()),
            Err(e) => log::error!("raw-test: adopting {}: {e}", path.display()),
        }
    }
}

impl Protocol for RawTest {
    type Session = RawTestSession;

    fn name(&self) -> &str {
        NAME
    }

    fn callback(&mut self, cx: &mut Cx<'_>, event: Event<'_, RawTestSession>) -> Action {
        match event {
            Event::ProtocolInit if self.wants_descriptors() => self.adopt_descriptors(cx),
            Event::ProtocolDestroy if self.owner => log::info!("raw-test: done; its FIFO and UDP socket close"),
            Event::RawAdopt(wsi, kind) => {
                wsi.session.kind = Some(kind);
                if kind == RawKind::Socket {
                    log::info!("raw-test: {}: raw connection", wsi.peer);
                }
            }
            Event::RawRx(wsi, data) => {
                let s = wsi.session;
                match s.kind {
                    Some(RawKind::File) => {
                        // A line per log record, what a read gave being
                        // any number of lines (or part of one).
                        let text = String::from_utf8_lossy(data);
                        for line in text.lines().filter(|l| !l.is_empty()) {
                            let cut = line.char_indices().nth(LOG_MAX).map_or(line.len(), |(i, _)| i);
                            log::info!("raw-test: fifo: {}", line[..cut].escape_debug());
                        }
                    }
                    _ => {
                        // Echo: held until written back, reading paused
                        // meanwhile.
                        s.pending.clear();
                        s.pending.extend_from_slice(data);
                        s.to = Some(wsi.peer);
                        cx.rx_flow_control(wsi.id, false);
                        cx.callback_on_writable(wsi.id);
                    }
                }
            }
            Event::RawWriteable(wsi, writer) => {
                let s = wsi.session;
                if s.pending.is_empty() && s.to.is_none() {
                    return Action::Continue;
                }
                let r = match (s.kind, s.to) {
                    (Some(RawKind::Udp), Some(to)) => writer.send_to(&s.pending, to),
                    _ => writer.write(&s.pending),
                };
                match r {
                    // Refused for now: the writeable event comes again.
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Action::Continue,
                    // A datagram that cannot go (a forged sender, port 0):
                    // dropped; the socket serves the others.
                    Err(e) if s.kind == Some(RawKind::Udp) => {
                        log::debug!("raw-test: UDP: no answer to {:?}: {e}", s.to);
                    }
                    Err(_) => return Action::Close,
                    Ok(()) => {}
                }
                s.pending.clear();
                s.to = None;
                cx.rx_flow_control(wsi.id, true);
            }
            Event::RawClose(wsi) if wsi.session.kind == Some(RawKind::Socket) => {
                log::info!("raw-test: {}: closed", wsi.peer);
            }
            _ => {}
        }
        Action::Continue
    }
}

/// A UDP socket bound to `addr` with `SO_REUSEPORT` (a reload's new
/// configuration binds beside the old one), and the address it got.
fn udp_socket(addr: SocketAddr) -> std::io::Result<(std::net::UdpSocket, SocketAddr)> {
    let sock = socket2::Socket::new(socket2::Domain::for_address(addr), socket2::Type::DGRAM, None)?;
    sock.set_reuse_port(true)?;
    sock.bind(&addr.into())?;
    let sock = std::net::UdpSocket::from(sock);
    let at = sock.local_addr()?;
    Ok((sock, at))
}
