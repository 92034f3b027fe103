//! Virtual host selection (VH-1): which of a listener's vhosts a request's
//! `Host` names, and the checks on a `Host` value the HTTP/1 role uses.

use crate::context::VhostInfo;

/// VH-1: among the vhosts of a listener, the one named by `host` (port
/// stripped, case-insensitive), else the nearest wildcard parent
/// (`a.b.example.com` → `example.com`), else the first.
pub(crate) fn select_vhost(vhosts: &[VhostInfo], candidates: &[usize], host: Option<&str>) -> usize {
    let first = candidates.first().copied().unwrap_or(0);
    let Some(host) = host.map(strip_port) else { return first };
    if candidates.len() == 1 {
        return first;
    }
    if let Some(&v) = candidates.iter().find(|&&v| vhosts[v].name.eq_ignore_ascii_case(host)) {
        return v;
    }
    let parent = candidates
        .iter()
        .filter(|&&v| {
            let name = vhosts[v].name.as_bytes();
            let h = host.as_bytes();
            h.len() > name.len() + 1
                && h[h.len() - name.len() - 1] == b'.'
                && h[h.len() - name.len()..].eq_ignore_ascii_case(name)
        })
        .max_by_key(|&&v| vhosts[v].name.len());
    parent.copied().unwrap_or(first)
}

/// A Host value without its port (`[::1]:80` → `[::1]`); a suffix that
/// is not all digits is not a port and stays.
pub(crate) fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host.find(']').map_or(host, |i| &host[..=i]);
    }
    match host.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    }
}

/// A Host value we are willing to echo into a Location header.
pub(crate) fn plain_host(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= 255
        && h.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']' | b'_'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, SocketAddr};

    fn vhosts(names: &[&str]) -> Vec<VhostInfo> {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
        names.iter().map(|n| VhostInfo::new(*n, addr)).collect()
    }

    #[test]
    fn vhost_selection() {
        let v = vhosts(&["first", "abc.com", "x.abc.com", "abc"]);
        let all = [0, 1, 2, 3];
        assert_eq!(select_vhost(&v, &all, Some("ABC.com:8080")), 1);
        assert_eq!(select_vhost(&v, &all, Some("cats.abc.com")), 1);
        assert_eq!(select_vhost(&v, &all, Some("y.x.abc.com")), 2);
        assert_eq!(select_vhost(&v, &all, Some("abc")), 3, "no prefix-match bug");
        assert_eq!(select_vhost(&v, &all, Some("ab")), 0);
        assert_eq!(select_vhost(&v, &all, None), 0);
        assert_eq!(strip_port("[::1]:80"), "[::1]");
        assert_eq!(strip_port("h:x"), "h:x");
    }
}
