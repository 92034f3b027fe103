//! Protocol plugins compiled into warren, registered by name, so that a
//! configuration's `callback://NAME` mount or `ws-protocols` entry can
//! name them.

pub mod dumb_increment;
pub mod echo;
pub mod mirror;
pub mod post_demo;
pub mod status;

use crate::protocol::AnyProtocol;

/// The names of the built-in plugins.
pub const NAMES: &[&str] = &[post_demo::NAME, echo::NAME, dumb_increment::NAME, mirror::NAME, status::NAME];

/// A new instance of the built-in plugin called `name`.
pub(crate) fn by_name(name: &str) -> Option<Box<dyn AnyProtocol>> {
    Some(match name {
        post_demo::NAME => Box::new(post_demo::PostDemo),
        echo::NAME => Box::new(echo::Echo),
        dumb_increment::NAME => Box::new(dumb_increment::DumbIncrement::default()),
        mirror::NAME => Box::new(mirror::Mirror::default()),
        status::NAME => Box::new(status::Status::default()),
        _ => return None,
    })
}
