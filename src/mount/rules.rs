//! Access rules of a mount: paths refused by rule ([`DenyRule`]) and
//! dotfile segments, decided from the request path alone (no file is
//! looked at, so a refusal says nothing of what exists).

use super::Mount;

/// A path a mount refuses (lighttpd's `url.access-deny`, nginx's `deny`
/// locations), with 403 unless [`not_found`](Self::not_found) chose 404.
/// Names are compared ignoring ASCII case, so a case variant of a denied
/// name is denied too, whatever the filesystem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DenyRule {
    what: What,
    status: u16,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum What {
    /// A path below the mountpoint and everything under it, by whole
    /// segments: `/inc` refuses `/inc` and `/inc/x`, not `/include`.
    Path(Vec<String>),
    /// Any segment with this name, at any depth (`.svn`, `CVS`).
    Segment(String),
    /// Any segment ending with this (`.bak`, `~`, `.inc`).
    Suffix(String),
}

impl DenyRule {
    /// Refuses `path` (below the mountpoint: `/inc`, `/data/pages`) and
    /// everything under it; `/` (or an empty path) refuses the whole
    /// mount. [`parse`](Self::parse) refuses those forms, as a
    /// configuration means something narrower.
    pub fn path(path: &str) -> DenyRule {
        let segments = path.split('/').filter(|s| !s.is_empty() && *s != ".").map(str::to_string).collect();
        DenyRule { what: What::Path(segments), status: 403 }
    }

    /// Refuses every path with a segment named `name`, at any depth.
    pub fn segment(name: &str) -> DenyRule {
        DenyRule { what: What::Segment(name.to_string()), status: 403 }
    }

    /// Refuses every path with a segment ending with `suffix`.
    pub fn suffix(suffix: &str) -> DenyRule {
        DenyRule { what: What::Suffix(suffix.to_string()), status: 403 }
    }

    /// A rule as configurations write it: `/path` (below the mountpoint),
    /// `*suffix`, or a segment name. A status is not part of it (`/inc=404`
    /// is refused: configurations say it apart).
    pub fn parse(s: &str) -> Result<DenyRule, String> {
        let status_like =
            s.rsplit_once('=').is_some_and(|(_, n)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
        if s.is_empty() || s == "/" || s == "*" || s.chars().any(char::is_control) {
            Err(format!("{s:?}: expected \"/path\", \"*suffix\" or a segment name"))
        } else if status_like {
            Err(format!("{s:?}: a status is not part of a rule's name (403 by default; 404 is chosen apart)"))
        } else if let Some(path) = s.strip_prefix('/') {
            if path.split('/').any(|seg| seg == "..") {
                return Err(format!("{s:?}: a path with \"..\" names nothing a request can reach"));
            }
            Ok(DenyRule::path(s))
        } else if let Some(suffix) = s.strip_prefix('*') {
            if suffix.contains(['/', '*']) {
                return Err(format!("{s:?}: a suffix holds no \"/\" or \"*\""));
            }
            Ok(DenyRule::suffix(suffix))
        } else if s.contains('/') {
            Err(format!("{s:?}: a segment name holds no \"/\"; a path starts with one"))
        } else {
            Ok(DenyRule::segment(s))
        }
    }

    /// Answers 404 instead of 403, as if the path were not there.
    pub fn not_found(mut self) -> DenyRule {
        self.status = 404;
        self
    }

    /// The status a refused request gets: 403 or 404.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// The rule as the configuration writes it (`/inc`, `.svn`, `*.bak`).
    pub fn describe(&self) -> String {
        let what = match &self.what {
            What::Path(s) => format!("/{}", s.join("/")),
            What::Segment(s) => s.clone(),
            What::Suffix(s) => format!("*{s}"),
        };
        if self.status == 404 {
            format!("{what} (404)")
        } else {
            what
        }
    }

    fn refuses(&self, segments: &[&str]) -> bool {
        match &self.what {
            What::Path(p) => {
                p.len() <= segments.len() && p.iter().zip(segments).all(|(a, b)| a.eq_ignore_ascii_case(b))
            }
            What::Segment(name) => segments.iter().any(|s| s.eq_ignore_ascii_case(name)),
            What::Suffix(suffix) => segments.iter().any(|s| ends_with_ignore_case(s, suffix)),
        }
    }
}

/// Why `suffix` cannot be assigned to an interpreter, if it cannot: a
/// suffix starts with `.` and holds no `*` or `/` (`*.php` would match
/// nothing and leave the scripts to be sent as files).
pub(crate) fn assign_suffix_problem(suffix: &str) -> Option<&'static str> {
    if !suffix.starts_with('.') || suffix.len() < 2 {
        Some("expected a file-name suffix starting with \".\", such as \".php\"")
    } else if suffix.contains(['*', '/', '\\']) || suffix.chars().any(char::is_control) {
        Some("a suffix holds no \"*\", \"/\" or backslash: \".php\" matches every name ending so")
    } else {
        None
    }
}

/// Whether `name` ends with `suffix`, ignoring ASCII case.
pub(crate) fn ends_with_ignore_case(name: &str, suffix: &str) -> bool {
    name.len() >= suffix.len()
        && name.is_char_boundary(name.len() - suffix.len())
        && name[name.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
}

/// Why the mount refuses `path` (the decoded request path), if it does:
/// the status and words for the log. `/.well-known/` at the top of the
/// URL space is never a dotfile.
pub(crate) fn refusal(m: &Mount, path: &str) -> Option<(u16, &'static str)> {
    let rem = m.remainder(path);
    if m.deny.is_empty() && (m.dotfiles || !rem.contains("/.")) {
        // PERF: the common request: no rules, no dot segment.
        return None;
    }
    let segments: Vec<&str> = rem.split('/').filter(|s| !s.is_empty() && *s != ".").collect();
    if let Some(rule) = m.deny.iter().find(|r| r.refuses(&segments)) {
        return Some((rule.status, "a deny rule of the mount names it"));
    }
    if !m.dotfiles {
        // Segments of the whole path, so `/.well-known` is told by where
        // it is in the URL, not in the mount.
        let skip = path.split('/').filter(|s| !s.is_empty() && *s != ".").count().saturating_sub(segments.len());
        let well_known = |i: usize| i + skip == 0 && segments[i] == ".well-known";
        if segments.iter().enumerate().any(|(i, s)| s.starts_with('.') && !well_known(i)) {
            return Some((403, "a dotfile (a path segment starting with \".\"); allow-dotfiles serves them"));
        }
    }
    None
}

/// [`refusal`] by the file mount that covers `path` among `mounts`, if
/// one does: whether a path handed to a program (a `PATH_INFO`) is one
/// the site would refuse to serve.
#[cfg(feature = "cgi")]
pub(crate) fn file_refusal(mounts: &[Mount], path: &str) -> Option<(u16, &'static str)> {
    match super::find(mounts, path) {
        Some((_, m)) if matches!(m.origin, super::Origin::File(_)) => refusal(m, path),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Mount;

    fn at(mp: &str) -> Mount {
        Mount::callback(mp, "x")
    }

    #[test]
    fn deny_rules_by_path_segment_and_suffix() {
        let m = at("/")
            .deny(DenyRule::path("/inc"))
            .deny(DenyRule::path("data/pages/").not_found())
            .deny(DenyRule::segment("CVS"))
            .deny(DenyRule::suffix(".bak"))
            .deny(DenyRule::suffix("~"));
        for (path, want) in [
            ("/inc", Some(403)),
            ("/inc/", Some(403)),
            ("/INC/preload.php", Some(403)),
            ("/include/x", None),
            ("/x/inc/y", None),
            ("/data/pages/start.txt", Some(404)),
            ("/data/media/x.png", None),
            ("/data", None),
            ("/a/cvs/Entries", Some(403)),
            ("/conf.php.bak", Some(403)),
            ("/CONF.PHP.BAK", Some(403)),
            ("/notes.bak/x", Some(403)),
            ("/doku.php~", Some(403)),
            ("/doku.php", None),
            ("/", None),
        ] {
            assert_eq!(refusal(&m, path).map(|r| r.0), want, "{path}");
        }
        // Below a mountpoint, paths are the mount's own.
        let m = at("/wiki").deny(DenyRule::path("/inc"));
        assert_eq!(refusal(&m, "/wiki/inc/x").map(|r| r.0), Some(403));
        assert_eq!(refusal(&m, "/wiki/x/inc").map(|r| r.0), None);
        assert_eq!(DenyRule::path("data/pages/").not_found().describe(), "/data/pages (404)");
        assert_eq!(DenyRule::suffix(".bak").describe(), "*.bak");
    }

    #[test]
    fn dotfiles_refused_unless_allowed_or_well_known() {
        let m = at("/");
        for (path, want) in [
            ("/.env", Some(403)),
            ("/.git/HEAD", Some(403)),
            ("/sub/.htpasswd", Some(403)),
            ("/a/.b/c", Some(403)),
            ("/.well-known/acme-challenge/token", None),
            ("/.well-known/.hidden", Some(403)),
            ("/sub/.well-known/x", Some(403)),
            ("/x.y/z", None),
            ("/..x", Some(403)),
            ("/index.html", None),
        ] {
            assert_eq!(refusal(&m, path).map(|r| r.0), want, "{path}");
        }
        assert_eq!(refusal(&at("/").allow_dotfiles(true), "/.env"), None);
        // A mount at /.well-known serves its tree; one below does not make
        // a dotfile well known.
        assert_eq!(refusal(&at("/.well-known"), "/.well-known/acme-challenge/t"), None);
        assert_eq!(refusal(&at("/app"), "/app/.well-known/x").map(|r| r.0), Some(403));
    }
}
