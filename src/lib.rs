//! warren: an event-driven web server library and serving appliance in
//! the spirit of libwebsockets and its generic server lwsws.
//!
//! # From the top
//!
//! - [`Context`]: built from a [`ContextInfo`] (vhosts, mounts, protocols,
//!   limits); binds its sockets in [`Context::new`] and serves in
//!   [`Context::run`], one event loop on the calling thread; or
//!   [`Context::embed`] hands that loop to a host's own event loop
//!   (tokio, calloop, glib) as an [`Embedded`]: a descriptor to watch and
//!   a non-blocking [`Embedded::service`].
//! - [`Mount`]: an area of a vhost's URL space and what serves it: files
//!   through a [`warren_vfs::Fops`], or a [`Protocol`] of your own.
//! - [`Protocol`]: your code, called with [`protocol::Event`]s. It writes
//!   only when the connection can take data, once per writeable event,
//!   which the types enforce (see [`protocol`]).
//!
//! ```no_run
//! use std::sync::Arc;
//! use warren::{Context, ContextInfo, Mount, VhostInfo};
//! use warren_vfs::PlainFops;
//!
//! # fn main() -> std::io::Result<()> {
//! let site = Arc::new(PlainFops::new("webroot")?);
//! let vhost = VhostInfo::new("localhost", "127.0.0.1:7681".parse().unwrap())
//!     .mount(Mount::files("/", site));
//! let context = Context::new(ContextInfo::new().vhost(vhost))?;
//! Ok(context.run()?)
//! # }
//! ```
//!
//! # The loop
//!
//! One `mio::Poll` per loop, connections in a slab, timeouts on a timer
//! wheel. Readiness is edge-triggered and tracked per connection; a
//! connection that still has work after its turn goes on a forced-service
//! list so a busy one cannot starve the rest. Idle connections own no
//! buffers: reads go through one receive buffer per loop, and the only
//! per-connection output buffer is the remainder of a write the kernel
//! took in part.
#![deny(missing_docs)]
#![cfg_attr(test, deny(warnings))]

mod access_log;
mod auth;
mod check;
pub mod config;
mod conn;
mod context;
mod embed;
mod error;
pub mod http;
mod listen;
pub mod metrics;
mod mount;
#[cfg(feature = "appliance")]
pub mod pack;
mod peers;
#[cfg(feature = "appliance")]
pub mod plugins;
#[cfg(not(feature = "appliance"))]
mod plugins;
#[cfg(target_os = "linux")]
pub mod process;
pub mod protocol;
mod reload;
mod roles;
mod service;
mod signals;
mod timer;
#[cfg(feature = "tls")]
pub mod tls;
mod vhost;
#[cfg(feature = "ws")]
pub mod ws;
mod wsi;

pub use check::{CgiReport, ListenerReport, MountKind, MountReport, Report, TlsReport, VhostReport};
pub use error::{Error, Result};

pub use context::{
    Context, ContextHandle, ContextInfo, FopsFactory, Limits, Listening, Stats, VhostInfo, DEFAULT_WS_HANGUP,
    DEFAULT_WS_PING, MAX_THREADS, MAX_TIMEOUT,
};
pub use embed::{Embedded, Serviced};
pub use http::Request;
pub use listen::{bind_listener, bind_reuse_port_listener};
pub use metrics::Metrics;
pub use mount::{default_fops, default_fops_with, DenyRule, FcgiAddr, Mount, Origin, OPEN_CACHE_FILES, OPEN_CACHE_TTL};
pub use protocol::{Action, Cx, Event, HtmlChunk, Protocol, Writer, Wsi, WsiId};
#[cfg(feature = "cgi")]
pub use warren_cgi::Limits as CgiLimits;
pub use warren_vfs as vfs;
pub use warren_vfs::Symlinks;
#[cfg(feature = "ws")]
pub use ws::{CloseCode, WriteKind, WsWriter};

/// The README's code blocks, compiled as doc tests so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

/// docs/embedding.md's code blocks (the embedding examples in short),
/// compiled as doc tests so they stay true.
#[cfg(all(doctest, feature = "appliance"))]
#[doc = include_str!("../docs/embedding.md")]
pub struct EmbeddingDoctests;
