//! Roles: what a connection speaks. Each role owns its connection state
//! and is driven by the service loop through the same few calls
//! (`service`, `on_close`); later roles (ws, raw, cgi, h2) sit beside h1.

pub(crate) mod cgi;
pub(crate) mod h1;
pub(crate) mod ws;
