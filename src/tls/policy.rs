//! Who may be served what on a TLS port: the decision every HTTP role
//! (HTTP/1 now, HTTP/2 later) takes for each request once its Host has
//! picked a vhost, kept here as a pure function so that each role only
//! renders the answer.

use super::{PlainOnTls, TlsSession};
use crate::vhost::Vhost;

/// What a request on a TLS listener gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admit {
    /// Served by the vhost its Host named.
    Serve,
    /// A plaintext request: `301` to the same URL over https (REDIR-3).
    Redirect,
    /// `421 Misdirected Request`, answered by `vhost` (the handshake's,
    /// or the one named): the connection is not one that vhost serves.
    Misdirected { vhost: usize },
}

/// Decides for a request on a connection of a TLS listener whose first
/// vhost is `port_first`, whose Host picked `target`:
///
/// - over plaintext (RAW-4, `tls` none): served only by a vhost that has
///   `allow-http-on-https` itself and verifies no client certificates;
///   else redirected where that vhost or the port has `redirect-http`;
///   else misdirected. No vhost is reached in plaintext unless it says so.
/// - over TLS: a vhost that verifies client certificates (required or
///   optional) serves only connections whose handshake was for it: its
///   CA, not another vhost's, must have verified what the request carries
///   (or carries not). Others serve any connection of the port (VH-3).
pub(crate) fn admit(vhosts: &[Vhost], port_first: usize, target: usize, tls: Option<&TlsSession>) -> Admit {
    let v = &vhosts[target];
    let client_auth = v.tls.as_ref().is_some_and(|t| t.client_auth);
    match tls {
        None => {
            let port_redirects = vhosts.get(port_first).is_some_and(|f| f.plain_on_tls == PlainOnTls::Redirect);
            match v.plain_on_tls {
                PlainOnTls::Serve if !client_auth => Admit::Serve,
                PlainOnTls::Redirect => Admit::Redirect,
                _ if port_redirects => Admit::Redirect,
                _ => Admit::Misdirected { vhost: target },
            }
        }
        Some(session) if session.vhost != target && client_auth => Admit::Misdirected { vhost: session.vhost },
        Some(_) => Admit::Serve,
    }
}

/// What the request on vhost `target` is told of the connection's TLS: the
/// session, without the client certificate when the handshake was for
/// another vhost (whose CA, not `target`'s, verified it).
pub(crate) fn session_for(session: &std::sync::Arc<TlsSession>, target: usize) -> std::sync::Arc<TlsSession> {
    if session.vhost == target || session.client_cert.is_none() {
        return std::sync::Arc::clone(session);
    }
    std::sync::Arc::new(TlsSession { client_cert: None, ..(**session).clone() })
}
