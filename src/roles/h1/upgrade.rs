//! The WebSocket upgrade of an HTTP/1 connection: checking the handshake,
//! binding the protocol it names, writing the 101, and handing the
//! connection over to the ws role.

use super::H1;
use crate::conn::{Core, Env};
use crate::http::request::Request;
use crate::roles::ws::Upgrade;
use crate::ws::handshake::{self, Refusal};

impl H1 {
    /// Answers a WebSocket upgrade (WS-1..4): refused with 400/426 and the
    /// styled page, or accepted with a 101, after which the service hands
    /// the connection to the ws role.
    pub(super) fn upgrade_to_ws(&mut self, c: &mut Core, sh: &mut Env, req: Request) {
        self.unbind(c, sh);
        self.skip_body(&req);
        let vhost = &sh.vhosts[c.vhost];
        // Bytes after the head would be taken as frames: refuse a body.
        let body =
            if self.body_unread { Err(Refusal::BadRequest("a WebSocket upgrade cannot carry a body")) } else { Ok(()) };
        let chosen = body.and_then(|()| handshake::check(&req)).and_then(|o| {
            let found = if o.named_protocol {
                // WS-2: the first the client names that the vhost has.
                o.protocols.iter().find_map(|name| vhost.protocol(name))
            } else {
                vhost.default_protocol.as_deref().and_then(|d| vhost.protocol(d))
            };
            match found {
                Some(p) => Ok((o, p)),
                None if o.named_protocol => Err(Refusal::BadRequest("none of the subprotocols offered is served here")),
                None => Err(Refusal::BadRequest(
                    "this server has no default WebSocket protocol; name one in Sec-WebSocket-Protocol",
                )),
            }
        });
        let (offer, protocol) = match chosen {
            Ok(found) => found,
            Err(Refusal::Version) => {
                self.tx.keep_alive = false;
                return self.send_page(
                    c,
                    sh,
                    426,
                    "WebSocket version 13 is required",
                    &[("Sec-WebSocket-Version", "13")],
                );
            }
            Err(Refusal::BadRequest(why)) => {
                self.tx.keep_alive = false;
                return self.send_page(c, sh, 400, why, &[]);
            }
        };
        let name = vhost.protocol_names[protocol].clone();
        let takes = crate::ws::deflate::protocol_takes_deflate(sh.live[c.vhost].protocols[protocol].rx_buffer_size());
        let deflate = offer.deflate.filter(|_| vhost.ws_deflate && takes);
        crate::metrics::inc(&sh.handle.inner.metrics.ws_upgrades);
        let buf = &mut sh.tx;
        buf.clear();
        buf.extend_from_slice(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n");
        buf.extend_from_slice(b"Sec-WebSocket-Accept: ");
        buf.extend_from_slice(offer.accept.as_bytes());
        if offer.named_protocol {
            buf.extend_from_slice(b"\r\nSec-WebSocket-Protocol: ");
            buf.extend_from_slice(name.as_bytes());
        }
        if let Some(d) = &deflate {
            buf.extend_from_slice(b"\r\nSec-WebSocket-Extensions: ");
            buf.extend_from_slice(d.response().as_bytes());
        }
        buf.extend_from_slice(b"\r\n\r\n");
        let bytes = std::mem::take(buf);
        self.send_buffered_from(c, &bytes);
        sh.tx = bytes;
        // LOG-1: the upgrade is logged as a 101 on "/path (protocol)".
        self.tx.status = 101;
        if let Some(entry) = self.logging.as_mut() {
            entry.0.path = format!("{} ({name})", entry.0.path);
        }
        self.log_transaction(c, sh);
        self.upgrade = Some(Box::new(Upgrade { protocol, deflate, request: req }));
    }

    /// After an accepted upgrade: what the ws role needs (the upgrade,
    /// and bytes that came after the request).
    pub(crate) fn take_upgrade(&mut self) -> Option<(Box<Upgrade>, Vec<u8>)> {
        let up = self.upgrade.take()?;
        Some((up, std::mem::take(&mut self.input)))
    }
}
