//! Requests answered by a protocol (a `callback://` mount or an interpreted
//! file): binding the connection to the vhost's protocol, dispatching its
//! events, and applying the commands and actions it returns.

use super::{body_reading, Binding, Close, Conn, Reading, Writing};
use crate::http::request::{Framing, Request};
use crate::mount::Origin;
use crate::protocol::{Action, Command, Cx, RawEvent};
use crate::service::Shared;
use crate::wsi::CbResp;

impl Conn {
    pub(super) fn serve_callback(&mut self, sh: &mut Shared, req: Request, mount_index: usize) -> Result<(), Close> {
        let vi = self.vhost;
        let vh = &sh.vhosts[vi];
        let name = match &vh.mounts[mount_index].origin {
            Origin::Callback(name) => name.as_str(),
            _ => "",
        };
        let Some(pi) = vh.protocols.iter().position(|p| p.name() == name) else {
            // Context::new checked every callback mount's protocol exists.
            self.send_error(sh, 500, Some(&req));
            return Ok(());
        };
        self.bind(sh, vi, pi)?;
        self.writing = Writing::Callback(CbResp::AwaitHead);
        let framing = req.framing();
        self.reading = body_reading(framing);
        self.tx.keep_alive = req.keep_alive();
        self.continue_if_expected(&req)?;
        let (id, peer) = (self.id(), self.peer);
        self.dispatch(sh, RawEvent::Http(id, peer, &req))?;
        if framing == Framing::Length(0) {
            self.reading = Reading::Done;
            self.dispatch(sh, RawEvent::BodyCompletion(id, peer))?;
        }
        Ok(())
    }

    pub(super) fn dispatch(&mut self, sh: &mut Shared, event: RawEvent<'_>) -> Result<(), Close> {
        let Some(b) = self.binding.as_mut() else { return Ok(()) };
        let Shared { vhosts, commands, handle, .. } = sh;
        let mut cx = Cx { commands, vhost: b.vhost, protocol: b.protocol, handle };
        let action = vhosts[b.vhost].protocols[b.protocol].dispatch(&mut cx, event, Some(&mut b.session));
        self.after_callback(sh, action)
    }

    /// Applies the callback's requests about this connection now (so a
    /// pause of rx takes effect before the next byte is delivered); the
    /// service applies the rest when we return.
    pub(super) fn after_callback(&mut self, sh: &mut Shared, action: Action) -> Result<(), Close> {
        for cmd in sh.take_commands_for(self.id()) {
            self.apply(cmd, sh);
        }
        match action {
            Action::Continue => Ok(()),
            Action::Close => Err(Close("protocol asked to close".into())),
        }
    }

    /// Applies one callback request to this connection.
    pub(crate) fn apply(&mut self, cmd: Command, sh: &mut Shared) {
        match cmd {
            Command::Writable(_) => {
                self.want_writable = true;
                sh.force(self);
            }
            Command::RxFlow(_, enable) => {
                self.rx_paused = !enable;
                if enable {
                    sh.force(self);
                }
            }
            Command::Timeout(_, Some(after)) => sh.timers.set(self.key, sh.now + after),
            Command::Timeout(_, None) => sh.timers.clear(self.key),
            Command::WritableAllProtocol { .. } | Command::InflateChunk(..) | Command::Schedule { .. } => {}
        }
    }

    /// Binds the connection to protocol `pi` of vhost `vi` (unless it is
    /// already): the old binding is dropped, a session made, and the
    /// protocol told.
    pub(super) fn bind(&mut self, sh: &mut Shared, vi: usize, pi: usize) -> Result<(), Close> {
        if self.bound_to() == Some((vi, pi)) {
            return Ok(());
        }
        self.unbind(sh);
        let session = sh.vhosts[vi].protocols[pi].new_session();
        self.binding = Some(Binding { vhost: vi, protocol: pi, session });
        let (id, peer) = (self.id(), self.peer);
        self.dispatch(sh, RawEvent::Bind(id, peer))
    }

    pub(super) fn unbind(&mut self, sh: &mut Shared) {
        if self.binding.is_some() {
            let (id, peer) = (self.id(), self.peer);
            let _ = self.dispatch(sh, RawEvent::Drop(id, peer));
            self.binding = None;
        }
    }
}
