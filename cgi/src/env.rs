//! The CGI environment (RFC 3875 §4.1), plus lws's names (spec CGI-2).

use std::borrow::Cow;
use std::ffi::OsString;
use std::net::SocketAddr;

/// `PATH` for scripts unless the mount says otherwise.
pub const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// What the server knows about a request that a CGI script is told.
#[derive(Debug, Clone, Default)]
pub struct CgiRequest {
    /// `REQUEST_METHOD`.
    pub method: String,
    /// `SCRIPT_NAME`: the URL path of the script.
    pub script_name: String,
    /// `PATH_INFO`: the URL path after the script, decoded.
    pub path_info: String,
    /// `PATH_TRANSLATED`: `PATH_INFO` mapped through the file mounts.
    pub path_translated: Option<String>,
    /// `QUERY_STRING`: the raw query, as sent (RFC 3875; lws rebuilds it).
    pub query: String,
    /// `REQUEST_URI`: the request-target as sent, path and query (as
    /// Apache and PHP have it).
    pub request_uri: String,
    /// The client's address (`REMOTE_ADDR`, `REMOTE_PORT`).
    pub remote: Option<SocketAddr>,
    /// `SERVER_NAME` (the Host, without port).
    pub server_name: String,
    /// `SERVER_PORT`.
    pub server_port: u16,
    /// `SERVER_PROTOCOL` (`HTTP/1.1`).
    pub protocol: String,
    /// Whether the connection is TLS (`HTTPS=on`).
    pub https: bool,
    /// `DOCUMENT_ROOT`.
    pub document_root: Option<String>,
    /// `SCRIPT_FILENAME` (and lws's `SCRIPT_PATH`): the program's file;
    /// empty: neither is set.
    pub script_filename: String,
    /// `CONTENT_TYPE`, if the request has a body.
    pub content_type: Option<String>,
    /// `CONTENT_LENGTH`, if known.
    pub content_length: Option<u64>,
    /// Request header fields; each becomes `HTTP_NAME` (see
    /// [`environment`](Self::environment) for the exceptions).
    pub headers: Vec<(String, String)>,
    /// `REDIRECT_STATUS`, set when an interpreter (php-cgi) runs a
    /// script, as Apache's `Action` and lighttpd's `cgi.assign` do;
    /// php-cgi refuses to run without it (`cgi.force_redirect`).
    pub redirect_status: Option<u16>,
    /// `REDIRECT_URL`: the URL path an `Action`-style interpreter mount
    /// was asked for.
    pub redirect_url: Option<String>,
    /// The mount's extra variables (lws `cgi-env`), set last.
    pub extra: Vec<(String, String)>,
    /// `PATH` for the script; [`DEFAULT_PATH`] when `None`.
    pub path: Option<String>,
}

impl CgiRequest {
    /// The whole environment of the script: nothing is inherited from the
    /// server's own.
    ///
    /// Request headers become `HTTP_*` (upper case, `-` as `_`), except:
    /// `Content-Type` and `Content-Length` (they are `CONTENT_*`),
    /// `Authorization` (RFC 3875 §4.1.18 lets servers keep credentials
    /// from scripts) and `Proxy`, whose `HTTP_PROXY` would steer the
    /// script's own HTTP clients ("httpoxy", CVE-2016-5385). Header names
    /// that are not plain tokens are skipped.
    pub fn environment(&self) -> Vec<(OsString, OsString)> {
        self.pairs().into_iter().map(|(k, v)| (k.into_owned().into(), v.into_owned().into())).collect()
    }

    /// The same variables as [`environment`](Self::environment), in the
    /// same order, borrowed from the request where they can be: what a
    /// FastCGI request encodes straight into its records, without an
    /// allocation per variable.
    pub fn pairs(&self) -> Vec<(Cow<'_, str>, Cow<'_, str>)> {
        let b = |s: &'static str| Cow::Borrowed(s);
        let mut env: Vec<(Cow<'_, str>, Cow<'_, str>)> = Vec::with_capacity(24 + self.headers.len() + self.extra.len());
        env.extend([
            (b("GATEWAY_INTERFACE"), b("CGI/1.1")),
            (b("SERVER_SOFTWARE"), b(concat!("warren/", env!("CARGO_PKG_VERSION")))),
            (b("SERVER_NAME"), Cow::Borrowed(self.server_name.as_str())),
            (b("SERVER_PORT"), Cow::Owned(self.server_port.to_string())),
            (b("SERVER_PROTOCOL"), Cow::Borrowed(self.protocol.as_str())),
            (b("REQUEST_METHOD"), Cow::Borrowed(self.method.as_str())),
            (b("SCRIPT_NAME"), Cow::Borrowed(self.script_name.as_str())),
            (b("PATH_INFO"), Cow::Borrowed(self.path_info.as_str())),
            (b("QUERY_STRING"), Cow::Borrowed(self.query.as_str())),
            (b("REQUEST_URI"), Cow::Borrowed(self.request_uri.as_str())),
            (b("PATH"), Cow::Borrowed(self.path.as_deref().unwrap_or(DEFAULT_PATH))),
        ]);
        if !self.script_filename.is_empty() {
            env.push((b("SCRIPT_FILENAME"), Cow::Borrowed(self.script_filename.as_str())));
            // lws's name for the program (CGI-2), for scripts written for lwsws.
            env.push((b("SCRIPT_PATH"), Cow::Borrowed(self.script_filename.as_str())));
        }
        if let Some(t) = &self.path_translated {
            env.push((b("PATH_TRANSLATED"), Cow::Borrowed(t.as_str())));
        }
        if let Some(addr) = self.remote {
            env.push((b("REMOTE_ADDR"), Cow::Owned(addr.ip().to_string())));
            env.push((b("REMOTE_PORT"), Cow::Owned(addr.port().to_string())));
        }
        if self.https {
            env.push((b("HTTPS"), b("on")));
        }
        env.push((b("REQUEST_SCHEME"), b(if self.https { "https" } else { "http" })));
        if let Some(root) = &self.document_root {
            env.push((b("DOCUMENT_ROOT"), Cow::Borrowed(root.as_str())));
        }
        if let Some(t) = &self.content_type {
            env.push((b("CONTENT_TYPE"), Cow::Borrowed(t.as_str())));
        }
        if let Some(n) = self.content_length {
            env.push((b("CONTENT_LENGTH"), Cow::Owned(n.to_string())));
        }
        if let Some(status) = self.redirect_status {
            env.push((b("REDIRECT_STATUS"), Cow::Owned(status.to_string())));
        }
        if let Some(url) = &self.redirect_url {
            env.push((b("REDIRECT_URL"), Cow::Borrowed(url.as_str())));
        }
        for (name, value) in &self.headers {
            // Names with `_` are dropped, as nginx and Apache do: both
            // `X_Real_IP` and `X-Real-IP` would become `HTTP_X_REAL_IP`, and
            // a client could forge what a script takes from a proxy.
            let token = !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
            let skip = ["content-type", "content-length", "authorization", "proxy"];
            if !token || skip.iter().any(|s| name.eq_ignore_ascii_case(s)) {
                continue;
            }
            let mut key = String::with_capacity(5 + name.len());
            key.push_str("HTTP_");
            key.extend(name.bytes().map(|c| if c == b'-' { '_' } else { char::from(c.to_ascii_uppercase()) }));
            // Repeated fields are joined, as RFC 9110 §5.3 allows.
            match env.iter_mut().find(|(k, _)| *k == key) {
                Some((_, v)) => {
                    let v = v.to_mut();
                    v.push_str(", ");
                    v.push_str(value);
                }
                None => env.push((Cow::Owned(key), Cow::Borrowed(value.as_str()))),
            }
        }
        for (k, v) in &self.extra {
            match env.iter_mut().find(|(ek, _)| ek == k) {
                Some((_, ev)) => *ev = Cow::Borrowed(v.as_str()),
                None => env.push((Cow::Borrowed(k.as_str()), Cow::Borrowed(v.as_str()))),
            }
        }
        env
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get<'a>(env: &'a [(OsString, OsString)], key: &str) -> Option<&'a str> {
        env.iter().find(|(k, _)| k == key).and_then(|(_, v)| v.to_str())
    }

    #[test]
    fn builds_rfc_3875_and_lws_names() {
        let req = CgiRequest {
            method: "POST".into(),
            script_name: "/cgi/env.sh".into(),
            path_info: "/extra".into(),
            query: "a=1&b=%20".into(),
            remote: Some("127.0.0.1:5555".parse().unwrap_or_else(|e| panic!("{e}"))),
            server_name: "example.com".into(),
            server_port: 8080,
            protocol: "HTTP/1.1".into(),
            script_filename: "/srv/cgi/env.sh".into(),
            content_type: Some("text/plain".into()),
            content_length: Some(5),
            headers: vec![
                ("User-Agent".into(), "curl".into()),
                ("X-Multi".into(), "1".into()),
                ("x-multi".into(), "2".into()),
                ("Proxy".into(), "http://evil".into()),
                ("Authorization".into(), "Basic x".into()),
                ("Content-Type".into(), "text/plain".into()),
                ("Bad Name".into(), "x".into()),
            ],
            extra: vec![("FOO".into(), "bar".into()), ("PATH".into(), "/opt/bin".into())],
            ..CgiRequest::default()
        };
        let env = req.environment();
        let want = [
            ("GATEWAY_INTERFACE", "CGI/1.1"),
            ("REQUEST_METHOD", "POST"),
            ("SCRIPT_NAME", "/cgi/env.sh"),
            ("PATH_INFO", "/extra"),
            ("QUERY_STRING", "a=1&b=%20"),
            ("REMOTE_ADDR", "127.0.0.1"),
            ("REMOTE_PORT", "5555"),
            ("SERVER_PORT", "8080"),
            ("CONTENT_LENGTH", "5"),
            ("HTTP_USER_AGENT", "curl"),
            ("HTTP_X_MULTI", "1, 2"),
            ("SCRIPT_PATH", "/srv/cgi/env.sh"),
            ("FOO", "bar"),
            ("PATH", "/opt/bin"),
        ];
        for (k, v) in want {
            assert_eq!(get(&env, k), Some(v), "{k}");
        }
        for k in ["HTTP_PROXY", "HTTP_AUTHORIZATION", "HTTP_CONTENT_TYPE", "HTTPS", "REDIRECT_STATUS"] {
            assert_eq!(get(&env, k), None, "{k}");
        }
        assert!(env.iter().all(|(k, _)| k != "HOME"), "nothing inherited");
    }
}
