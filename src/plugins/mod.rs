//! Protocol plugins compiled into warren, registered by name, so that a
//! configuration's `callback://NAME` mount or `ws-protocols` entry can
//! name them.

pub mod dumb_increment;
pub mod echo;
pub mod mirror;
pub mod post_demo;
pub mod status;
pub mod vars;

use crate::protocol::AnyProtocol;

/// The names of the built-in plugins.
pub const NAMES: &[&str] = &[post_demo::NAME, echo::NAME, dumb_increment::NAME, mirror::NAME, status::NAME, vars::NAME];

/// A new instance of the built-in plugin called `name`, configured by
/// its per-vhost options (lws "pvo"; CFG-9). Unknown plugins and options
/// a plugin does not take are errors that say what is known.
pub(crate) fn with_options(name: &str, options: &[(&str, &str)]) -> Result<Box<dyn AnyProtocol>, String> {
    let takes: &[&str] = match name {
        dumb_increment::NAME => &["options"],
        _ => &[],
    };
    if let Some((k, _)) = options.iter().find(|(k, _)| !takes.contains(k)) {
        let known = if takes.is_empty() { "none besides status and default".into() } else { takes.join(", ") };
        return Err(format!("{name} takes no option {k:?}; it takes {known}"));
    }
    Ok(match name {
        post_demo::NAME => Box::new(post_demo::PostDemo),
        echo::NAME => Box::new(echo::Echo),
        dumb_increment::NAME => Box::new(dumb_increment::DumbIncrement::with_options(options)?),
        mirror::NAME => Box::new(mirror::Mirror::default()),
        status::NAME => Box::new(status::Status::default()),
        vars::NAME => Box::new(vars::Vars),
        _ => return Err(format!("no protocol plugin called {name:?}; built in: {}", NAMES.join(", "))),
    })
}
