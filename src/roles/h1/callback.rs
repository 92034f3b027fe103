//! Requests answered by a protocol (a `callback://` mount or an interpreted
//! file): binding the connection to the vhost's protocol, dispatching its
//! events, and applying the commands and actions it returns.

use super::{body_reading, Binding, Close, Reading, Writing, H1};
use crate::conn::{Core, Env, Step};
use crate::http::request::{Framing, Request};
use crate::mount::Origin;
use crate::protocol::{Action, Command, Cx, RawEvent};
use crate::wsi::CbResp;

impl H1 {
    pub(super) fn serve_callback(
        &mut self,
        c: &mut Core,
        sh: &mut Env,
        req: Request,
        mount_index: usize,
    ) -> Result<(), Close> {
        let vi = c.vhost;
        let vh = &sh.vhosts[vi];
        let name = match &vh.mounts[mount_index].origin {
            Origin::Callback(name) => name.as_str(),
            _ => "",
        };
        let Some(pi) = vh.protocol(name) else {
            // Context::new checked every callback mount's protocol exists.
            self.send_error(c, sh, 500, Some(&req));
            return Ok(());
        };
        self.bind(c, sh, vi, pi)?;
        self.writing = Writing::Callback(CbResp::AwaitHead);
        let framing = req.framing();
        self.reading = body_reading(framing);
        // Draining: this response is the connection's last.
        self.tx.keep_alive = req.keep_alive() && !sh.draining;
        self.continue_if_expected(c, &req)?;
        let (id, peer) = (c.id(), c.peer);
        self.dispatch(c, sh, RawEvent::Http(id, peer, &req))?;
        if framing == Framing::Length(0) {
            self.reading = Reading::Done;
            self.dispatch(c, sh, RawEvent::BodyCompletion(id, peer))?;
        }
        Ok(())
    }

    pub(super) fn dispatch(&mut self, c: &mut Core, sh: &mut Env, event: RawEvent<'_>) -> Result<(), Close> {
        let Some(b) = self.binding.as_mut() else { return Ok(()) };
        let Env { live, commands, handle, .. } = sh;
        let mut cx = Cx { commands, vhost: b.vhost, protocol: b.protocol, handle };
        let action = live[b.vhost].protocols[b.protocol].dispatch(&mut cx, event, Some(&mut b.session));
        self.after_callback(c, sh, action)
    }

    /// Applies the callback's requests about this connection now (so a
    /// pause of rx takes effect before the next byte is delivered); the
    /// service applies the rest when we return.
    pub(super) fn after_callback(&mut self, c: &mut Core, sh: &mut Env, action: Action) -> Result<(), Close> {
        for cmd in sh.take_commands_for(c.id()) {
            self.apply_command(c, cmd, sh);
        }
        match action {
            Action::Continue => Ok(()),
            Action::Close => Err(Close("protocol asked to close".into())),
        }
    }

    /// The wsi's own timer ([`Cx::set_timer`](crate::protocol::Cx::set_timer))
    /// came due: its protocol, if it is bound to one, is told.
    pub(crate) fn user_timer(&mut self, c: &mut Core, sh: &mut Env) -> Step {
        let (id, peer) = (c.id(), c.peer);
        match self.dispatch(c, sh, RawEvent::WsiTimer(id, peer)) {
            Ok(()) => Step::Keep,
            Err(_) => Step::Close,
        }
    }

    /// Applies one callback request to this connection.
    pub(super) fn apply_command(&mut self, c: &mut Core, cmd: Command, sh: &mut Env) {
        let Some(cmd) = c.apply(cmd, sh) else { return };
        match cmd {
            Command::Timeout(_, Some(after)) => sh.timers.set(c.key, sh.now + after),
            Command::Timeout(_, None) => sh.timers.clear(c.key),
            // Not about this connection, or not about HTTP.
            _ => {}
        }
    }

    /// Binds the connection to protocol `pi` of vhost `vi` (unless it is
    /// already): the old binding is dropped, a session made, and the
    /// protocol told.
    pub(super) fn bind(&mut self, c: &mut Core, sh: &mut Env, vi: usize, pi: usize) -> Result<(), Close> {
        if self.bound_to() == Some((vi, pi)) {
            return Ok(());
        }
        self.unbind(c, sh);
        let session = sh.live[vi].protocols[pi].new_session();
        self.binding = Some(Binding { vhost: vi, protocol: pi, session });
        let (id, peer) = (c.id(), c.peer);
        self.dispatch(c, sh, RawEvent::Bind(id, peer))
    }

    pub(super) fn unbind(&mut self, c: &mut Core, sh: &mut Env) {
        if self.binding.is_some() {
            let (id, peer) = (c.id(), c.peer);
            let _ = self.dispatch(c, sh, RawEvent::Drop(id, peer));
            self.binding = None;
        }
    }
}
