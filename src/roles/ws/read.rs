//! The reading side of a WebSocket connection: bytes from the socket into
//! the codec, its events to the protocol.

use super::*;
use crate::ws::codec::Event;

impl Ws {
    /// Reading waits: the protocol paused it, or a pong is owed (one at a
    /// time: a peer that pings faster than it reads gets TCP pushback,
    /// and every ping still gets its pong).
    pub(super) fn rx_blocked(&self, c: &mut Core) -> bool {
        c.rx_paused || self.codec.pong_owed()
    }

    pub(super) fn read_step(&mut self, c: &mut Core, sh: &mut Env) -> Result<bool, Close> {
        if !self.codec.reading() {
            return Ok(false);
        }
        // First what a pause left: bytes read and not taken, inflated
        // output not yet delivered.
        if self.held.is_some() || self.codec.has_pending_output() {
            let mut held = self.held.take();
            let (used, progress) = match held.as_deref_mut() {
                Some(Held { input, off }) => self.process(c, sh, &mut input[*off..])?,
                None => self.process(c, sh, &mut [])?,
            };
            if let Some(mut h) = held {
                h.off += used;
                if h.off < h.input.len() && self.codec.reading() {
                    self.held = Some(h);
                }
            }
            if progress || self.rx_blocked(c) || self.held.is_some() {
                return Ok(progress);
            }
        }
        if !c.readable {
            return Ok(false);
        }
        let mut rx = std::mem::take(&mut sh.rx);
        let r = self.read_into(c, sh, &mut rx);
        sh.rx = rx;
        r
    }

    fn read_into(&mut self, c: &mut Core, sh: &mut Env, rx: &mut [u8]) -> Result<bool, Close> {
        let n = match c.read(rx)? {
            None => return Ok(false),
            Some(0) => return Err(Close("peer closed the TCP connection".into())),
            Some(n) => n,
        };
        let (used, _) = self.process(c, sh, &mut rx[..n])?;
        if used < n && self.codec.reading() {
            // Nothing is held here: read_step reads only then.
            self.held = Some(Box::new(Held { input: rx[used..n].to_vec(), off: 0 }));
        }
        Ok(true)
    }

    /// Feeds `data` (masked as it came) to the codec and its events to
    /// the protocol until the codec wants more input or reading pauses.
    /// Returns the bytes used (the rest is still masked) and whether
    /// anything happened.
    fn process(&mut self, c: &mut Core, sh: &mut Env, data: &mut [u8]) -> Result<(usize, bool), Close> {
        let (mut used, mut progress) = (0, false);
        let (id, peer) = (c.id(), c.peer);
        while !c.rx_paused {
            let Ws { codec, session, vhost, protocol, .. } = self;
            let (vhost, protocol) = (*vhost, *protocol);
            let r = codec.read(&mut data[used..]);
            let (n, alive) = (r.used, r.alive);
            used += n;
            let Some(event) = r.event else {
                if alive {
                    self.arm_keepalive(c, sh);
                }
                if n == 0 {
                    break;
                }
                progress = true;
                continue;
            };
            progress = true;
            // The event borrows the codec: what it means to the protocol
            // is settled before the connection looks at the codec again.
            let action = match event {
                Event::Data(rx) => Some(call(sh, vhost, protocol, session, RawEvent::Receive(id, peer, rx))),
                Event::Pong(payload) => Some(call(sh, vhost, protocol, session, RawEvent::Pong(id, peer, payload))),
                Event::Close { code, reason, open } => {
                    // A peer that closes and then stops reading cannot
                    // hold us; the echo is owed.
                    let action =
                        open.then(|| call(sh, vhost, protocol, session, RawEvent::PeerClose(id, peer, code, reason)));
                    self.arm_close_timer(c, sh);
                    sh.force(c);
                    action
                }
                // The pong is owed (reading waits for it).
                Event::Ping(payload) => {
                    log::trace!("{peer}: ws ping ({} bytes)", payload.len());
                    sh.force(c);
                    None
                }
                Event::Failed { code, reason } => {
                    log::debug!("{peer}: ws: {reason}; closing with {code}");
                    None
                }
            };
            if let Some(action) = action {
                self.after_callback(c, sh, action)?;
            }
            if alive {
                self.arm_keepalive(c, sh);
            }
        }
        Ok((used, progress))
    }
}
