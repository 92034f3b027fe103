//! TLS: HTTPS and `wss://` vhosts over [rustls], with the aws-lc-rs
//! crypto provider.
//!
//! A vhost speaks TLS when it is given a [`TlsConfig`]
//! ([`VhostInfo::tls`](crate::VhostInfo::tls)); every vhost sharing its
//! address must then have one too. The vhost is picked from the
//! ClientHello's SNI with the same rules as the `Host` header (spec VH-1),
//! before its certificate is chosen, so each vhost answers with its own
//! certificate, cipher suites, groups, ALPN list and client-certificate
//! policy. The connection's `Host` header then re-selects among the
//! listener's vhosts, as lws does (VH-3), except that a request may not
//! move to a vhost that demands a client certificate its handshake did not
//! verify (it gets `421 Misdirected Request`).
//!
//! What a handshake settled is on every request ([`Request::tls`]) as a
//! [`TlsSession`], and in a CGI program's environment (`HTTPS`,
//! `SSL_PROTOCOL`, `SSL_CIPHER`, `SSL_CLIENT_S_DN` and friends).
//!
//! The crypto provider is aws-lc-rs, rustls's default: it builds from the
//! registry with a C compiler alone (no cmake, no Go), it is the faster of
//! rustls's two providers for the RSA and P-256 signatures a handshake
//! costs, and it brings the post-quantum hybrid key exchange
//! X25519MLKEM768, offered first to clients that support it.
//!
//! [`Request::tls`]: crate::Request::tls

mod certs;
pub(crate) mod config;
pub(crate) mod names;
pub(crate) mod policy;
pub(crate) mod server;
mod session;

pub use config::{PlainOnTls, TlsConfig, TlsEvent};
pub use rustls;
pub use session::{ClientCert, TlsSession};

pub(crate) use certs::CertSlot;
pub(crate) use server::VhostTls;
