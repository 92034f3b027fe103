//! What a file mount does with a request path: which file it sends, or
//! which script it runs in place (a suffix assigned to an interpreter),
//! through the ordered default documents for a directory URL.
//!
//! SECURITY: a file whose name has an assigned suffix is never opened to
//! be sent: it runs, or the request is refused. The suffix is compared
//! ignoring ASCII case, and a name that carries it followed only by dots
//! or spaces (`doku.php.`, which some filesystems and tools take for
//! `doku.php`) is refused outright.

use super::rules::ends_with_ignore_case;
use super::{Mount, Runner};
use std::io;
#[cfg(feature = "cgi")]
use std::path::Path;
use std::path::PathBuf;
use warren_vfs::{FileHandle, Fops, OpenFlags, VPath};

/// A script of a file mount, found where it sits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Script {
    /// Where it really is (resolved as the mount resolves files: no
    /// symbolic link left in it).
    pub file: PathBuf,
    /// What runs it.
    pub runner: Runner,
    /// The URL path up to and including it.
    pub script_name: String,
    /// The rest of the URL path (empty or starting with `/`).
    pub path_info: String,
}

/// What a file mount does with a path.
#[derive(Debug)]
pub(crate) enum Located {
    /// Send this file (opened).
    File(Box<dyn FileHandle>, VPath),
    /// Run this script.
    Script(Script),
    /// A directory named without its trailing slash: 301 to add it.
    AddSlash,
    /// Opening failed (`WouldBlock`: not ready yet; the rest map to a
    /// status as an open error does).
    Failed(io::Error),
    /// Refused: the status and why, for the log.
    Refused(u16, &'static str),
}

/// What `assign` runs `name` with, if its suffix is assigned.
pub(crate) fn assigned<'a>(assign: &'a [(String, Runner)], name: &str) -> Option<&'a Runner> {
    assign.iter().find(|(suffix, _)| ends_with_ignore_case(name, suffix)).map(|(_, i)| i)
}

/// Whether `name` is an assigned suffix's near miss: the suffix followed
/// by nothing but dots and spaces.
fn near_miss(assign: &[(String, Runner)], name: &str) -> bool {
    let trimmed = name.trim_end_matches(['.', ' ']);
    trimmed.len() != name.len() && assigned(assign, trimmed).is_some()
}

/// What is at a path that may be a script.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ScriptAt {
    /// A regular file, here on the local disk.
    Found(PathBuf),
    /// Nothing (or not a directory on the way).
    Missing,
    /// A directory.
    Directory,
    /// There, but not to be run: the status and why.
    Refused(u16, &'static str),
}

/// What `fops` has at `path`, resolved as its opens are (so under its
/// symlink policy; an answer may be as old as its open cache keeps
/// files, 1 s by default, as lighttpd's stat cache): a script must be a
/// regular file of the local disk.
pub(crate) fn script_at(fops: &dyn Fops, path: &VPath) -> ScriptAt {
    match fops.resolve_local_cached(path) {
        Ok(local) if local.file_type.is_file() => ScriptAt::Found(local.path),
        Ok(local) if local.file_type.is_dir() => ScriptAt::Directory,
        Ok(_) => ScriptAt::Refused(403, "a script that is not a regular file"),
        Err(e) if e.kind() == io::ErrorKind::NotFound => ScriptAt::Missing,
        Err(e) if matches!(e.kind(), io::ErrorKind::Unsupported | io::ErrorKind::NotADirectory) => {
            // Not on the local disk (inside an archive), or a file on the
            // way: an archive's script cannot run, and must not be sent.
            match fops.open(path, OpenFlags::READ) {
                Ok(_) => ScriptAt::Refused(403, "a script inside an archive cannot run"),
                Err(e) if e.kind() == io::ErrorKind::IsADirectory => ScriptAt::Directory,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    ScriptAt::Refused(503, "an archive holding a script is not ready")
                }
                Err(_) => ScriptAt::Missing,
            }
        }
        Err(e) => match crate::http::open_error_status(&e) {
            403 => ScriptAt::Refused(403, "the script's path leaves the mount"),
            404 => ScriptAt::Missing,
            _ => ScriptAt::Refused(500, "the script's path cannot be resolved"),
        },
    }
}

/// The URL base of the mount: `""` for `/`.
fn base(m: &Mount) -> &str {
    if m.mountpoint == "/" {
        ""
    } else {
        &m.mountpoint
    }
}

/// What the file mount `m` (its filesystem `fops`) does with `rem`, the
/// request path below its mountpoint. `gzip`: the client takes gzip.
pub(crate) fn locate(m: &Mount, fops: &dyn Fops, rem: &str, gzip: bool) -> Located {
    if rem.is_empty() {
        return Located::AddSlash;
    }
    let Ok(vpath) = VPath::new(rem) else { return Located::Refused(403, "not a path a file can have") };
    let dir_url = rem.ends_with('/');
    let flags = |name: &str| {
        // An interpreted file (FILE-9) is read as it is stored.
        if gzip && m.interpreter_for(name).is_none() {
            OpenFlags::ACCEPT_GZIP
        } else {
            OpenFlags::READ
        }
    };
    if !m.assign.is_empty() {
        // The first segment naming a script is the script; the rest is
        // PATH_INFO (`/doku.php/wiki/start`). Only segments with an
        // assigned suffix are looked at, so files cost nothing here.
        let segments: Vec<&str> = vpath.as_str().split('/').filter(|s| !s.is_empty()).collect();
        let mut at = 0;
        for (i, seg) in segments.iter().enumerate() {
            at += seg.len() + usize::from(i > 0);
            if near_miss(&m.assign, seg) {
                return Located::Refused(403, "a name that ends like a script's");
            }
            let Some(runner) = m.assigned(seg) else { continue };
            let prefix = &vpath.as_str()[..at];
            let Ok(p) = VPath::new(prefix) else { continue };
            match script_at(fops, &p) {
                ScriptAt::Found(file) => {
                    let mut path_info: String = segments[i + 1..].iter().map(|s| format!("/{s}")).collect();
                    if dir_url && i + 1 < segments.len() {
                        path_info.push('/');
                    } else if dir_url {
                        path_info = "/".into();
                    }
                    return Located::Script(Script {
                        file,
                        runner: runner.clone(),
                        script_name: format!("{}/{prefix}", base(m)),
                        path_info,
                    });
                }
                ScriptAt::Directory => {}
                // Never opened to be sent: a script that is not there is
                // not there, whatever appears meanwhile.
                ScriptAt::Missing => return Located::Refused(404, "no such script"),
                ScriptAt::Refused(status, why) => return Located::Refused(status, why),
            }
        }
    }
    if !dir_url {
        return match fops.open(&vpath, flags(vpath.file_name().unwrap_or(""))) {
            Ok(h) => Located::File(h, vpath),
            Err(e) if e.kind() == io::ErrorKind::IsADirectory => Located::AddSlash,
            Err(e) => Located::Failed(e),
        };
    }
    // A directory: its default documents, in order.
    let mut last = io::Error::from(io::ErrorKind::NotFound);
    for name in &m.index {
        let Ok(p) = vpath.join(name) else { continue };
        // The document is a path of its own: the mount's rules apply.
        if super::rules::refusal(m, &format!("{}/{}", base(m), p.as_str())).is_some() {
            continue;
        }
        if let Some(runner) = m.assigned(name) {
            match script_at(fops, &p) {
                ScriptAt::Found(file) => {
                    let dir = if vpath.is_root() { String::new() } else { format!("/{}", vpath.as_str()) };
                    return Located::Script(Script {
                        file,
                        runner: runner.clone(),
                        script_name: format!("{}{dir}/{name}", base(m)),
                        path_info: String::new(),
                    });
                }
                ScriptAt::Missing | ScriptAt::Directory => continue,
                ScriptAt::Refused(status, why) => return Located::Refused(status, why),
            }
        }
        if near_miss(&m.assign, name) {
            continue;
        }
        match fops.open(&p, flags(name)) {
            Ok(h) => return Located::File(h, p),
            Err(e) if matches!(e.kind(), io::ErrorKind::NotFound | io::ErrorKind::IsADirectory) => last = e,
            Err(e) => return Located::Failed(e),
        }
    }
    Located::Failed(last)
}

/// The directory a script runs in: its own.
#[cfg(feature = "cgi")]
pub(crate) fn script_dir(file: &Path) -> PathBuf {
    file.parent().map_or_else(|| PathBuf::from("/"), Path::to_path_buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use warren_vfs::PlainFops;

    fn site() -> (tempfile::TempDir, Arc<dyn Fops>) {
        let t = tempfile::tempdir().expect("tempdir");
        let root = t.path();
        std::fs::create_dir_all(root.join("lib/exe")).expect("mkdir");
        std::fs::create_dir_all(root.join("odd.php")).expect("mkdir");
        std::fs::create_dir_all(root.join("static")).expect("mkdir");
        for f in ["doku.php", "index.php", "lib/exe/css.php", "lib/logo.png", "odd.php/in.txt", "static/index.html"] {
            std::fs::write(root.join(f), "x").expect("write");
        }
        let fops: Arc<dyn Fops> = Arc::new(PlainFops::new(root).expect("fops"));
        (t, fops)
    }

    fn mount() -> Mount {
        Mount::dir("/", "unused").cgi_assign(".php", "/usr/bin/php-cgi").index(["index.php", "index.html"])
    }

    fn script(l: Located) -> (String, String, PathBuf) {
        match l {
            Located::Script(s) => (s.script_name, s.path_info, s.file),
            other => panic!("not a script: {other:?}"),
        }
    }

    #[test]
    fn scripts_run_where_they_sit_with_path_info() {
        let (t, fops) = site();
        let root = t.path().canonicalize().expect("canonical");
        let m = mount();
        let (name, info, file) = script(locate(&m, &*fops, "/doku.php/wiki/start", false));
        assert_eq!((name.as_str(), info.as_str(), file), ("/doku.php", "/wiki/start", root.join("doku.php")));
        let (name, info, _) = script(locate(&m, &*fops, "/doku.php", false));
        assert_eq!((name.as_str(), info.as_str()), ("/doku.php", ""));
        let (_, info, _) = script(locate(&m, &*fops, "/doku.php/", false));
        assert_eq!(info, "/");
        let (_, info, _) = script(locate(&m, &*fops, "/doku.php/a/", false));
        assert_eq!(info, "/a/");
        let (name, _, file) = script(locate(&m, &*fops, "/lib/exe/css.php", false));
        assert_eq!((name.as_str(), file), ("/lib/exe/css.php", root.join("lib/exe/css.php")));
        // Case variants of the suffix are scripts too.
        let m2 = Mount::dir("/", "unused").cgi_assign(".PHP", "");
        assert!(matches!(locate(&m2, &*fops, "/doku.php", false), Located::Script(s) if s.runner == Runner::Itself));
        // Under a mountpoint, SCRIPT_NAME has it.
        let m3 = Mount::dir("/wiki", "unused").cgi_assign(".php", "/usr/bin/php-cgi");
        let (name, info, _) = script(locate(&m3, &*fops, "/doku.php/x", false));
        assert_eq!((name.as_str(), info.as_str()), ("/wiki/doku.php", "/x"));
    }

    #[test]
    fn assigned_names_are_never_opened_to_be_sent() {
        let (_t, fops) = site();
        let m = mount();
        for (rem, status) in
            [("/DOKU.PHP", 404), ("/missing.php", 404), ("/doku.php.", 403), ("/doku.php ", 403), ("/x.php/y", 404)]
        {
            match locate(&m, &*fops, rem, false) {
                Located::Refused(s, _) => assert_eq!(s, status, "{rem}"),
                other => panic!("{rem}: {other:?}"),
            }
        }
        // A directory with an assigned suffix is a directory.
        assert!(matches!(locate(&m, &*fops, "/odd.php/in.txt", false), Located::File(..)));
        assert!(matches!(locate(&m, &*fops, "/odd.php", false), Located::AddSlash));
        // Static files are files.
        assert!(matches!(locate(&m, &*fops, "/lib/logo.png", false), Located::File(..)));
    }

    #[test]
    fn index_lists_are_tried_in_order() {
        let (_t, fops) = site();
        let m = mount();
        let (name, info, _) = script(locate(&m, &*fops, "/", false));
        assert_eq!((name.as_str(), info.as_str()), ("/index.php", ""));
        match locate(&m, &*fops, "/static/", false) {
            Located::File(_, p) => assert_eq!(p.as_str(), "static/index.html"),
            other => panic!("{other:?}"),
        }
        // No default document: 404 as an open of nothing.
        match locate(&m, &*fops, "/lib/", false) {
            Located::Failed(e) => assert_eq!(e.kind(), io::ErrorKind::NotFound),
            other => panic!("{other:?}"),
        }
        // Without the assignment, index.php is not a script but a file,
        // and still never the first choice of a mount that lists it... it
        // is served as any file: the mount did not ask for scripts.
        let plain = Mount::dir("/", "unused").index(["index.html", "index.php"]);
        assert!(matches!(locate(&plain, &*fops, "/", false), Located::File(_, p) if p.as_str() == "index.php"));
        assert!(matches!(locate(&plain, &*fops, "/static", false), Located::AddSlash));
    }
}
