//! Protocol plugins compiled into warren, registered by name, so that a
//! configuration's `callback://NAME` mount can name them.

pub mod post_demo;

use crate::protocol::AnyProtocol;

/// The names of the built-in plugins.
pub const NAMES: &[&str] = &[post_demo::NAME];

/// A new instance of the built-in plugin called `name`.
pub(crate) fn by_name(name: &str) -> Option<Box<dyn AnyProtocol>> {
    match name {
        post_demo::NAME => Some(Box::new(post_demo::PostDemo)),
        _ => None,
    }
}
