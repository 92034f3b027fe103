//! Roles: what a connection speaks. Each role owns its protocol state and
//! is driven through [`crate::conn::Role`]; the connection it serves (the
//! [`Core`]) is the same whatever the role, so a role can change in place
//! (HTTP/1 to WebSocket after a 101). Later roles (raw sockets, HTTP/2
//! with child streams) sit beside these.

#[cfg(feature = "cgi")]
pub(crate) mod cgi;
pub(crate) mod h1;
pub(crate) mod raw;
#[cfg(feature = "ws")]
pub(crate) mod ws;

use crate::conn::{Core, Env, Step};
#[cfg(feature = "ws")]
use crate::http::request::Request;
use crate::protocol::Command;

/// A connection: what every connection has, and what it speaks.
#[derive(Debug)]
pub(crate) struct Conn {
    pub(crate) core: Core,
    pub(crate) role: Role,
    /// What the open-connections gauge counts it as: moved only with
    /// the gauge ([`Conn::became`]), so its close takes back exactly what
    /// was counted, whatever state a panic left it in.
    counted: crate::metrics::ConnRole,
    /// The (vhost, protocol) whose list the loop has it on.
    pub(crate) listed: Option<(usize, usize)>,
}

/// The roles a connection may have.
#[derive(Debug)]
pub(crate) enum Role {
    Http(h1::H1),
    #[cfg(feature = "ws")]
    Ws(ws::Ws),
    Raw(raw::Raw),
}

impl Conn {
    /// A new connection: HTTP/1 to begin with (after its handshake on a
    /// TLS port), counted in the gauge as `counted`.
    pub(crate) fn new(core: Core, counted: crate::metrics::ConnRole) -> Conn {
        Conn { core, role: Role::Http(h1::H1::new()), counted, listed: None }
    }

    /// A raw wsi from the start (a raw port's connection, RAW-1, or an
    /// adopted descriptor), bound to protocol `protocol` of `vhost`;
    /// `counted` as [`Conn::new`]'s (a raw TLS connection is counted as
    /// handshaking until its handshake is done).
    pub(crate) fn new_raw(
        core: Core,
        env: &Env,
        (vhost, protocol): (usize, usize),
        kind: crate::protocol::RawKind,
        counted: crate::metrics::ConnRole,
    ) -> Conn {
        let raw = raw::Raw::new(env, vhost, protocol, kind, Vec::new());
        // A raw port's connection (not a descriptor a protocol adopted)
        // closes when idle for the io timeout, unless its protocol says.
        let raw = if core.adopted { raw } else { raw.idle_timeout(env.limits.io_timeout) };
        Conn { core, role: Role::Raw(raw), counted, listed: None }
    }

    /// The wsi's own timer ([`crate::protocol::Cx::set_timer`]) came due:
    /// its protocol, if it has one, is told.
    pub(crate) fn user_timer(&mut self, env: &mut Env) -> Step {
        match &mut self.role {
            Role::Http(h) => h.user_timer(&mut self.core, env),
            #[cfg(feature = "ws")]
            Role::Ws(w) => w.user_timer(&mut self.core, env),
            Role::Raw(r) => r.user_timer(&mut self.core, env),
        }
    }

    /// After [`Step::Raw`]: the HTTP role gives way to a raw one bound to
    /// the port's `listen-accept-protocol`, in place, with what was read
    /// so far as its first rx (RAW-2).
    pub(crate) fn fall_back_to_raw(&mut self, env: &Env) -> bool {
        let Role::Http(h1) = &mut self.role else { return false };
        let Some(&first) = env.listeners.get(self.core.listener).and_then(|l| l.first()) else { return false };
        let Some(accept) = env.vhosts[first].raw_accept else { return false };
        let held = h1.take_input();
        let raw = raw::Raw::new(env, first, accept.protocol, crate::protocol::RawKind::Socket, held);
        self.role = Role::Raw(raw.idle_timeout(env.limits.io_timeout));
        self.core.vhost = first;
        true
    }

    /// Moves it in the open-connections gauge to `to`.
    #[cfg_attr(not(any(feature = "tls", feature = "ws")), allow(dead_code))]
    pub(crate) fn became(&mut self, env: &Env, to: crate::metrics::ConnRole) {
        if self.counted != to {
            env.handle.inner.metrics.conn_became(self.counted, to);
            self.counted = to;
        }
    }

    /// What the open-connections gauge counts it as.
    pub(crate) fn counted(&self) -> crate::metrics::ConnRole {
        self.counted
    }

    fn parts(&mut self) -> (&mut Core, &mut dyn crate::conn::Role) {
        match &mut self.role {
            Role::Http(r) => (&mut self.core, r),
            #[cfg(feature = "ws")]
            Role::Ws(r) => (&mut self.core, r),
            Role::Raw(r) => (&mut self.core, r),
        }
    }

    pub(crate) fn service(&mut self, env: &mut Env) -> Step {
        #[cfg(feature = "tls")]
        if self.core.out.sock.handshaking() {
            use crate::conn::tls::{handshake, Handshake};
            use crate::metrics::{inc, ConnRole};
            match handshake(&mut self.core, env) {
                Handshake::Pending => return Step::Keep,
                Handshake::Failed(crate::conn::Close(why)) => {
                    log::debug!("{}: closing: {why}", self.core.peer);
                    let metrics = &env.handle.inner.metrics;
                    inc(&metrics.tls_failed);
                    // Refused after rustls finished (a client certificate
                    // missing, the event callback): no longer handshaking
                    // for the gauge the close takes it from.
                    if !self.core.out.sock.handshaking() {
                        self.became(env, ConnRole::Http);
                    }
                    return Step::Close;
                }
                Handshake::Done(first) => {
                    let metrics = &env.handle.inner.metrics;
                    // A plaintext client on the TLS port made no handshake.
                    if self.core.tls.is_some() {
                        inc(&metrics.tls_ok);
                    }
                    let raw = matches!(self.role, Role::Raw(_));
                    self.became(env, if raw { ConnRole::Raw } else { ConnRole::Http });
                    match (first, &mut self.role) {
                        (Some(bytes), Role::Http(h1)) => h1.preload(bytes),
                        (Some(bytes), Role::Raw(r)) => r.preload(bytes),
                        _ => {}
                    }
                }
            }
        }
        let (c, r) = self.parts();
        r.service(c, env)
    }

    pub(crate) fn on_timer(&mut self, env: &mut Env) -> Step {
        if self.core.out.sock.handshaking() {
            log::debug!("{}: TLS handshake timed out", self.core.peer);
            crate::metrics::inc(&env.handle.inner.metrics.tls_failed);
            return Step::Close;
        }
        let (c, r) = self.parts();
        r.on_timer(c, env)
    }

    pub(crate) fn apply(&mut self, cmd: Command, env: &mut Env) {
        let (c, r) = self.parts();
        r.apply(c, cmd, env)
    }

    pub(crate) fn on_close(&mut self, env: &mut Env) {
        let (c, r) = self.parts();
        r.on_close(c, env)
    }

    /// The loop began draining, or (`websockets`) WebSockets are to go
    /// away now. A connection still in its TLS handshake goes on: its
    /// request, if it sends one, is answered and the connection closed.
    pub(crate) fn drain(&mut self, env: &mut Env, websockets: bool) -> Step {
        if self.core.out.sock.handshaking() {
            return Step::Keep;
        }
        let (c, r) = self.parts();
        r.drain(c, env, websockets)
    }

    /// A WebSocket in its close handshake.
    pub(crate) fn ws_closing(&self) -> bool {
        match &self.role {
            Role::Http(_) => false,
            #[cfg(feature = "ws")]
            Role::Ws(w) => w.closing(),
            Role::Raw(_) => false,
        }
    }

    pub(crate) fn bound_to(&self) -> Option<(usize, usize)> {
        match &self.role {
            Role::Http(r) => crate::conn::Role::bound_to(r),
            #[cfg(feature = "ws")]
            Role::Ws(r) => crate::conn::Role::bound_to(r),
            Role::Raw(r) => crate::conn::Role::bound_to(r),
        }
    }

    pub(crate) fn phase(&self) -> &'static str {
        if self.core.out.sock.handshaking() {
            return "TLS handshake";
        }
        match &self.role {
            Role::Http(r) => crate::conn::Role::phase(r),
            #[cfg(feature = "ws")]
            Role::Ws(r) => crate::conn::Role::phase(r),
            Role::Raw(r) => crate::conn::Role::phase(r),
        }
    }

    /// An HTTP connection waiting for a file open that may now succeed.
    pub(crate) fn waits_for_file(&self) -> bool {
        matches!(&self.role, Role::Http(h) if h.waits_for_file())
    }

    /// An HTTP connection waiting for a CGI slot.
    #[cfg(feature = "cgi")]
    pub(crate) fn waits_for_cgi(&self) -> bool {
        matches!(&self.role, Role::Http(h) if h.waits_for_cgi())
    }

    /// After an accepted upgrade: the role becomes WebSocket, in place
    /// (same core, token and registration). Returns the request that
    /// asked, for the protocol's established event.
    #[cfg(feature = "ws")]
    pub(crate) fn upgrade(&mut self, env: &Env) -> Option<Request> {
        let Role::Http(h1) = &mut self.role else { return None };
        let (up, input) = h1.take_upgrade()?;
        let ws = ws::Ws::new(&mut self.core, &up, input, env);
        self.role = Role::Ws(ws);
        Some(up.request)
    }

    /// Tells a new WebSocket role's protocol it is established.
    #[cfg(feature = "ws")]
    pub(crate) fn established(&mut self, env: &mut Env, req: &Request) -> Step {
        match &mut self.role {
            Role::Ws(ws) => ws.established(&mut self.core, env, req),
            _ => Step::Close,
        }
    }
}

impl Conn {
    /// Its HTTP/1 role, if that is what it speaks now.
    pub(crate) fn http(&mut self) -> Option<&mut h1::H1> {
        match &mut self.role {
            Role::Http(h) => Some(h),
            _ => None,
        }
    }
}
