//! CGI for warren (RFC 3875), free of any event loop: the core registers
//! the pipes this crate hands it in its own loop.
//!
//! # From the top
//!
//! - [`CgiRequest`] and [`CgiRequest::environment`]: the meta-variables a
//!   script sees, and nothing of the server's own environment.
//! - [`spawn`]: starts the program in a process group of its own, with
//!   resource limits, its working directory set, and non-blocking pipes.
//! - [`HeadParser`]: reads the script's response head incrementally,
//!   accepting CRLF or bare LF, and says what status and headers follow.
//! - [`fcgi`]: FastCGI records as a pure codec, for application servers
//!   (php-fpm) that keep running between requests.
#![deny(missing_docs)]

mod env;
pub mod fcgi;
mod head;
mod spawn;

pub use env::{CgiRequest, DEFAULT_PATH};
pub use head::{CgiHead, HeadError, HeadParser, Redirect, MAX_HEAD};
pub use spawn::{spawn, CgiChild, Limits};
