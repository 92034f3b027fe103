//! Protocol plugins compiled into warren, registered by name, so that a
//! configuration's `callback://NAME` mount or `ws-protocols` entry can
//! name them. Part of the appliance: built without the `appliance`
//! feature, warren has none, and a configuration naming one is refused.

#[cfg(feature = "appliance")]
pub mod dumb_increment;
#[cfg(feature = "appliance")]
pub mod echo;
#[cfg(feature = "appliance")]
pub mod metrics;
#[cfg(feature = "appliance")]
pub mod mirror;
#[cfg(feature = "appliance")]
pub mod post_demo;
#[cfg(feature = "appliance")]
pub mod raw_test;
#[cfg(feature = "appliance")]
pub mod status;
#[cfg(feature = "appliance")]
pub mod vars;

#[cfg(feature = "appliance")]
use crate::protocol::AnyProtocol;

/// The names of the built-in plugins.
#[cfg(feature = "appliance")]
pub const NAMES: &[&str] = &[
    post_demo::NAME,
    echo::NAME,
    dumb_increment::NAME,
    mirror::NAME,
    status::NAME,
    vars::NAME,
    metrics::NAME,
    raw_test::NAME,
];
/// None without the `appliance` feature.
#[cfg(not(feature = "appliance"))]
pub const NAMES: &[&str] = &[];

/// A new instance of the built-in plugin called `name`, configured by
/// its per-vhost options (lws "pvo"; CFG-9). Unknown plugins and options
/// a plugin does not take are errors that say what is known.
#[cfg(feature = "appliance")]
pub(crate) fn with_options(name: &str, options: &[(&str, &str)]) -> Result<Box<dyn AnyProtocol>, String> {
    let takes: &[&str] = match name {
        dumb_increment::NAME => &["options"],
        raw_test::NAME => &["fifo-path", "udp", "raw"],
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
        metrics::NAME => Box::new(metrics::MetricsPlugin),
        raw_test::NAME => Box::new(raw_test::RawTest::with_options(options, Default::default())?),
        _ => return Err(unknown(name)),
    })
}

/// How each service loop makes its instance of the plugin `name` with
/// `options` (checked now): a fresh one each time, except where the
/// loops' instances share state (the mirror's hub, the status list), made
/// here once for the vhost.
#[cfg(feature = "appliance")]
pub(crate) fn maker(name: &str, options: &[(&str, &str)]) -> Result<crate::protocol::MakeProtocol, String> {
    with_options(name, options)?;
    if name == mirror::NAME {
        let hub = std::sync::Arc::default();
        return Ok(std::sync::Arc::new(move || Some(Box::new(mirror::Mirror::sharing(&hub)) as Box<dyn AnyProtocol>)));
    }
    if name == status::NAME {
        let list = std::sync::Arc::default();
        return Ok(std::sync::Arc::new(move || Some(Box::new(status::Status::sharing(&list)) as Box<dyn AnyProtocol>)));
    }
    if name == raw_test::NAME {
        let claimed = std::sync::Arc::default();
        let owned: Vec<(String, String)> = options.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        return Ok(std::sync::Arc::new(move || {
            let options: Vec<(&str, &str)> = owned.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let t = raw_test::RawTest::with_options(&options, std::sync::Arc::clone(&claimed)).ok()?;
            Some(Box::new(t) as Box<dyn AnyProtocol>)
        }));
    }
    let owned: Vec<(String, String)> = options.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let name = name.to_string();
    Ok(std::sync::Arc::new(move || {
        let options: Vec<(&str, &str)> = owned.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        with_options(&name, &options).ok()
    }))
}

/// Without the `appliance` feature there is no plugin to make.
#[cfg(not(feature = "appliance"))]
pub(crate) fn maker(name: &str, _options: &[(&str, &str)]) -> Result<crate::protocol::MakeProtocol, String> {
    Err(unknown(name))
}

/// The error for a plugin name warren does not have.
pub(crate) fn unknown(name: &str) -> String {
    if NAMES.is_empty() {
        return format!("no protocol plugin called {name:?}; none is built in (built without the `appliance` feature)");
    }
    format!("no protocol plugin called {name:?}; built in: {}", NAMES.join(", "))
}
