//! FastCGI application servers as mounts name them (`fcgi://`), and the
//! settings of a mount's requests to them.

use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

/// Where a FastCGI application server listens: a Unix socket
/// (`fcgi:///run/php/php8.2-fpm.sock`) or a TCP address
/// (`fcgi://127.0.0.1:9000`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FcgiAddr {
    /// A Unix stream socket, by its absolute path.
    Unix(PathBuf),
    /// A TCP address.
    Tcp(SocketAddr),
}

impl FromStr for FcgiAddr {
    type Err = String;

    /// What follows `fcgi://` (the prefix itself may be given): an
    /// absolute path names a Unix socket, `host:port` a TCP address (a
    /// host name is resolved now, once: its first address is used).
    fn from_str(s: &str) -> Result<FcgiAddr, String> {
        let s = s.strip_prefix("fcgi://").unwrap_or(s);
        if s.starts_with('/') {
            if s.len() > 107 {
                return Err(format!("{s:?}: a Unix socket path is at most 107 bytes"));
            }
            return Ok(FcgiAddr::Unix(PathBuf::from(s)));
        }
        if s.is_empty() {
            return Err("expected a socket's absolute path or host:port after fcgi://".into());
        }
        if let Ok(a) = s.parse::<SocketAddr>() {
            return Ok(FcgiAddr::Tcp(a));
        }
        let Some((host, port)) = s.rsplit_once(':') else {
            return Err(format!("{s:?}: expected a socket's absolute path or host:port"));
        };
        if host.is_empty() || port.parse::<u16>().is_err() {
            return Err(format!("{s:?}: expected a socket's absolute path or host:port"));
        }
        // A name is looked up once, here. Where it has addresses of both
        // families (`localhost`: ::1 and 127.0.0.1), the IPv4 one: what
        // php-fpm's usual `listen = 127.0.0.1:9000` answers on.
        match (host, port.parse::<u16>().unwrap_or(0)).to_socket_addrs() {
            Ok(addrs) => {
                let addrs: Vec<SocketAddr> = addrs.collect();
                addrs
                    .iter()
                    .find(|a| a.is_ipv4())
                    .or(addrs.first())
                    .map(|a| FcgiAddr::Tcp(*a))
                    .ok_or_else(|| format!("{host:?}: no address"))
            }
            Err(e) => Err(format!("{host:?}: {e}")),
        }
    }
}

impl fmt::Display for FcgiAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FcgiAddr::Unix(p) => write!(f, "fcgi://{}", p.display()),
            FcgiAddr::Tcp(a) => write!(f, "fcgi://{a}"),
        }
    }
}

/// How a mount's requests reach its FastCGI servers.
#[derive(Debug, Clone)]
pub(crate) struct FcgiConf {
    /// A connection not made within this is given up (504).
    pub(crate) connect_timeout: Duration,
    /// Requests in flight at one server, from all mounts naming it;
    /// more wait briefly in line, then get 503.
    pub(crate) max_requests: usize,
    /// Idle connections kept per server for the next request
    /// (`FCGI_KEEP_CONN`); 0: one connection per request.
    pub(crate) keepalive: usize,
}

impl Default for FcgiConf {
    fn default() -> FcgiConf {
        FcgiConf { connect_timeout: Duration::from_secs(5), max_requests: 64, keepalive: 8 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_parse_as_sockets_or_host_and_port() {
        assert_eq!("fcgi:///run/php/fpm.sock".parse(), Ok(FcgiAddr::Unix("/run/php/fpm.sock".into())));
        assert_eq!("/tmp/x.sock".parse(), Ok(FcgiAddr::Unix("/tmp/x.sock".into())));
        assert_eq!("127.0.0.1:9000".parse(), Ok(FcgiAddr::Tcp("127.0.0.1:9000".parse().expect("addr"))));
        assert_eq!("fcgi://[::1]:9000".parse(), Ok(FcgiAddr::Tcp("[::1]:9000".parse().expect("addr"))));
        assert!(
            matches!("localhost:9000".parse(), Ok(FcgiAddr::Tcp(a)) if a.port() == 9000 && a.is_ipv4()),
            "IPv4 first"
        );
        for bad in ["", "fcgi://", "relative.sock", "127.0.0.1", "host:", ":9000", "127.0.0.1:99999"] {
            assert!(bad.parse::<FcgiAddr>().is_err(), "{bad:?}");
        }
        let long = format!("/{}", "a".repeat(107));
        assert!(long.parse::<FcgiAddr>().is_err());
        assert_eq!(FcgiAddr::Unix("/s".into()).to_string(), "fcgi:///s");
    }
}
