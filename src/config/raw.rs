//! A vhost's raw keys (RAW-1, RAW-2): `listen-accept-role`,
//! `listen-accept-protocol`, `apply-listen-accept` (and lws's older
//! `onlyraw`), `fallback-listen-accept`.

use super::{bad, ConfigError, Scalar, Vhost};
use crate::VhostInfo;
use std::path::Path;

/// The roles a port's raw connections may have. lws also has
/// `raw-proxy`; warren does not pipe connections onward yet.
const ROLES: &[&str] = &["raw-skt"];

/// `vhost` with the raw keys of `v` (at `at` in `file`) applied.
pub(super) fn apply(file: &Path, at: &str, v: &Vhost, mut vhost: VhostInfo) -> Result<VhostInfo, ConfigError> {
    if let Some(role) = &v.listen_accept_role {
        let role = role.text();
        if !ROLES.contains(&role.trim()) {
            return Err(bad(
                file,
                &format!("{at}.listen-accept-role"),
                format!("{role:?}: expected one of {}", ROLES.join(", ")),
            ));
        }
    }
    let always = [&v.apply_listen_accept, &v.onlyraw].into_iter().flatten().any(Scalar::truthy);
    let fallback = v.fallback_listen_accept.as_ref().is_some_and(Scalar::truthy);
    match &v.listen_accept_protocol {
        Some(p) => {
            let p = p.text();
            let p = p.trim();
            let names: Vec<&String> = v.ws_protocols.iter().flatten().flat_map(|m| m.keys()).collect();
            if !names.iter().any(|n| n.as_str() == p) {
                let listed = names.iter().map(|n| format!("{n:?}")).collect::<Vec<_>>().join(", ");
                let listed = if listed.is_empty() { "none".to_string() } else { listed };
                return Err(bad(
                    file,
                    &format!("{at}.listen-accept-protocol"),
                    format!("{p:?} is not one of the vhost's \"ws-protocols\" ({listed})"),
                ));
            }
            vhost = vhost.listen_accept_protocol(p);
        }
        None if always || fallback => {
            let key = if fallback && !always { "fallback-listen-accept" } else { "apply-listen-accept" };
            return Err(bad(
                file,
                &format!("{at}.{key}"),
                "needs \"listen-accept-protocol\": the protocol (from \"ws-protocols\") raw connections are bound to"
                    .into(),
            ));
        }
        None => {}
    }
    Ok(vhost.apply_listen_accept(always).fallback_listen_accept(fallback))
}
