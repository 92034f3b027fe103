//! Where a `cgi://` mount's request goes: the program, `SCRIPT_NAME` and
//! `PATH_INFO` for a path (RFC 3875), found without a `stat` per segment
//! per request ([`CgiCache`]), and `PATH_TRANSLATED`, confined as a file
//! open is.

use crate::mount::{find, Mount, Origin};
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use warren_vfs::{Symlinks, VPath};

/// Where a `cgi://` mount's request goes (RFC 3875 §4.1.5, §4.1.13): the
/// program to run, the `SCRIPT_NAME` (URL path of the program) and the
/// `PATH_INFO` (the rest). Ready for the CGI role; no request reaches it
/// yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CgiTarget {
    /// The executable to run.
    pub program: PathBuf,
    /// The URL path naming the program.
    pub script_name: String,
    /// What follows it (empty or starting with `/`).
    pub path_info: String,
}

/// Resolves `remainder` (the request path below `mountpoint`) against a
/// `cgi://` origin: a program, which gets the whole remainder as
/// PATH_INFO, or a directory, whose first path segment naming an
/// executable regular file is the script (lws issue 1602) and the rest
/// PATH_INFO. Segments are checked by [`VPath`], and a directory on the
/// path that is a symbolic link must resolve beneath the mount's
/// directory (under [`Symlinks::Confined`]; see [`cgi_lookup_cached`]
/// for the others), so nothing outside it can be named (the script itself
/// may be a link to a program anywhere). `None`: no such script.
#[cfg(test)]
pub(crate) fn cgi_resolve(origin: &Path, mountpoint: &str, remainder: &str) -> Option<CgiTarget> {
    cgi_lookup(origin, mountpoint, remainder).ok()
}

/// Why [`cgi_lookup`] found no program to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CgiRefusal {
    /// The mount's program or directory is not there (or not executable).
    NoOrigin,
    /// The path is not one a file could have (`\`, NUL, `..` above the top).
    BadPath,
    /// No segment of the path names a program.
    NoScript,
    /// The path names a regular file that is not executable.
    NotExecutable,
    /// A directory on the path is a symbolic link leading out of the
    /// mount's directory, which the mount's [`Symlinks`] policy refuses.
    Outside,
}

impl CgiRefusal {
    /// The status the client gets.
    pub(crate) fn status(self) -> u16 {
        match self {
            // As Apache's mod_cgi: the file is there, running it is not allowed.
            CgiRefusal::NotExecutable | CgiRefusal::Outside => 403,
            CgiRefusal::NoOrigin | CgiRefusal::BadPath | CgiRefusal::NoScript => 404,
        }
    }

    /// Words for the log.
    pub(crate) fn why(self) -> &'static str {
        match self {
            CgiRefusal::NoOrigin => "the mount's program or directory is missing or not executable",
            CgiRefusal::BadPath => "the path cannot name a file",
            CgiRefusal::NoScript => "no program at that path",
            CgiRefusal::NotExecutable => "the file is not executable",
            CgiRefusal::Outside => "a directory on the path is a link out of the mount's directory",
        }
    }
}

/// How long what [`CgiCache`] found is trusted.
pub(crate) const CGI_CACHE_TTL: Duration = Duration::from_secs(1);
/// Programs a [`CgiCache`] remembers at most.
pub(crate) const CGI_CACHE_PROGRAMS: usize = 256;

/// What resolving a `cgi://` mount's paths found lately, so that a
/// request costs no `stat` per path segment: whether the origin is a
/// program or a directory, and which paths below a directory name
/// programs. Each finding is trusted for [`CGI_CACHE_TTL`], then checked
/// again from scratch. Only programs found are kept (at most
/// [`CGI_CACHE_PROGRAMS`], the oldest make room), so random paths cannot
/// grow it; paths that found nothing are walked again each time.
#[derive(Debug, Clone, Default)]
pub(crate) struct CgiCache {
    origin: Option<(OriginKind, Instant)>,
    /// Script path below the mountpoint (`/sub/deep.py`, normalised) →
    /// when it was found to be an executable file.
    programs: std::collections::HashMap<String, Instant>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OriginKind {
    Program,
    Directory,
    Missing,
}

impl CgiCache {
    /// Whether `origin` is one program (not a directory of them, nor
    /// missing), as found within the last [`CGI_CACHE_TTL`].
    pub(crate) fn origin_is_program(&mut self, origin: &Path, now: Instant) -> bool {
        self.origin_kind(origin, now) == OriginKind::Program
    }

    /// What `origin` is, looked at again once [`CGI_CACHE_TTL`] has passed.
    fn origin_kind(&mut self, origin: &Path, now: Instant) -> OriginKind {
        if let Some((kind, _)) = self.origin.filter(|(_, at)| now.saturating_duration_since(*at) < CGI_CACHE_TTL) {
            return kind;
        }
        let kind = if executable(origin) {
            OriginKind::Program
        } else if origin.is_dir() {
            OriginKind::Directory
        } else {
            OriginKind::Missing
        };
        if kind != OriginKind::Directory {
            self.programs.clear();
        }
        self.origin = Some((kind, now));
        kind
    }

    fn remember(&mut self, script: String, now: Instant) {
        if self.programs.len() >= CGI_CACHE_PROGRAMS && !self.programs.contains_key(&script) {
            self.programs.retain(|_, at| now.saturating_duration_since(*at) < CGI_CACHE_TTL);
            if self.programs.len() >= CGI_CACHE_PROGRAMS {
                if let Some(oldest) = self.programs.iter().min_by_key(|(_, at)| **at).map(|(k, _)| k.clone()) {
                    self.programs.remove(&oldest);
                }
            }
        }
        self.programs.insert(script, now);
    }
}

fn file_mode(p: &Path) -> Option<u32> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).ok().filter(|m| m.is_file()).map(|m| m.permissions().mode())
}

pub(crate) fn executable(p: &Path) -> bool {
    file_mode(p).is_some_and(|m| m & 0o111 != 0)
}

/// [`cgi_resolve`], saying why when there is nothing to run.
#[cfg(test)]
pub(crate) fn cgi_lookup(origin: &Path, mountpoint: &str, remainder: &str) -> Result<CgiTarget, CgiRefusal> {
    cgi_lookup_cached(origin, mountpoint, remainder, Symlinks::Confined, &mut CgiCache::default(), Instant::now())
}

/// [`cgi_lookup`] through `cache` (see [`CgiCache`]): a path naming a
/// program found less than [`CGI_CACHE_TTL`] ago costs no system call.
///
/// `symlinks` says where a directory on the path that is a symbolic link
/// may lead: beneath the mount's directory ([`Symlinks::Confined`]),
/// anywhere ([`Symlinks::Follow`]), or out of it only when the link's
/// owner (`lstat`) is its target's (`stat`) ([`Symlinks::SameOwner`]);
/// else [`CgiRefusal::Outside`].
pub(crate) fn cgi_lookup_cached(
    origin: &Path,
    mountpoint: &str,
    remainder: &str,
    symlinks: Symlinks,
    cache: &mut CgiCache,
    now: Instant,
) -> Result<CgiTarget, CgiRefusal> {
    let fresh = |at: Instant| now.saturating_duration_since(at) < CGI_CACHE_TTL;
    let base = if mountpoint == "/" { "" } else { mountpoint };
    let kind = cache.origin_kind(origin, now);
    match kind {
        OriginKind::Program => {
            return Ok(CgiTarget {
                program: origin.to_path_buf(),
                script_name: base.to_string(),
                path_info: remainder.to_string(),
            })
        }
        OriginKind::Missing => return Err(CgiRefusal::NoOrigin),
        OriginKind::Directory => {}
    }
    let rel = VPath::new(remainder).map_err(|_| CgiRefusal::BadPath)?;
    let segments: Vec<&str> = rel.as_str().split('/').filter(|s| !s.is_empty()).collect();
    // The script and the rest, from the normalised segments (so `//x.sh/a`
    // and `/./x.sh/a` give `/a` too), keeping a trailing slash.
    let found = |i: usize, consumed: &str| {
        let mut path_info: String = segments[i + 1..].iter().map(|s| format!("/{s}")).collect();
        if remainder.ends_with('/') {
            path_info.push('/');
        }
        let mut program = origin.to_path_buf();
        program.push(consumed.trim_start_matches('/'));
        CgiTarget { program, script_name: format!("{base}{consumed}"), path_info }
    };
    // Programs found lately: no system call. Every shorter path was a
    // directory when they were found.
    let mut consumed = String::new();
    for (i, seg) in segments.iter().enumerate() {
        consumed.push('/');
        consumed.push_str(seg);
        if cache.programs.get(&consumed).is_some_and(|&at| fresh(at)) {
            return Ok(found(i, &consumed));
        }
    }
    // Else walk the directories: the first segment naming an executable
    // regular file is the script. Each segment is looked at without
    // following it (`lstat`); a symbolic link is followed to see what it
    // names: a file (the script, wherever it is: the administrator's
    // choice) or a directory, which must lie beneath the mount's own
    // directory (resolved, so the origin may itself be a link), else the
    // request is refused and nothing is cached; unless the policy follows
    // links out (Follow), or this one's owner is its target's (SameOwner).
    let mut script = origin.to_path_buf();
    let mut top: Option<PathBuf> = None;
    consumed.clear();
    for (i, seg) in segments.iter().enumerate() {
        script.push(seg);
        consumed.push('/');
        consumed.push_str(seg);
        // ENOENT, ENOTDIR, ENAMETOOLONG, ELOOP...: nothing by that name.
        let Ok(mut meta) = std::fs::symlink_metadata(&script) else { return Err(CgiRefusal::NoScript) };
        if meta.file_type().is_symlink() {
            use std::os::unix::fs::MetadataExt;
            let link_owner = meta.uid();
            meta = std::fs::metadata(&script).map_err(|_| CgiRefusal::NoScript)?;
            let allowed_out = match symlinks {
                Symlinks::Follow => true,
                Symlinks::SameOwner => link_owner == meta.uid(),
                // Confined, and any policy this code does not know.
                _ => false,
            };
            if meta.is_dir() && !allowed_out {
                if top.is_none() {
                    top = Some(origin.canonicalize().map_err(|_| CgiRefusal::NoOrigin)?);
                }
                let real = script.canonicalize().map_err(|_| CgiRefusal::NoScript)?;
                if !top.as_ref().is_some_and(|top| real.starts_with(top)) {
                    return Err(CgiRefusal::Outside);
                }
            }
        }
        if meta.is_file() {
            use std::os::unix::fs::PermissionsExt;
            if meta.permissions().mode() & 0o111 == 0 {
                return Err(CgiRefusal::NotExecutable);
            }
            let target = found(i, &consumed);
            cache.remember(consumed, now);
            return Ok(target);
        }
        if !meta.is_dir() {
            return Err(CgiRefusal::NoScript);
        }
    }
    Err(CgiRefusal::NoScript)
}

/// `PATH_TRANSLATED` for the URL path `path` (RFC 3875 §4.1.6): where the
/// vhost's file mounts put it on the local disk, resolved and confined
/// exactly as a file open there is (a symbolic link out of the mount's
/// root is refused), and named without symbolic links, so a program
/// given it reads what the file mount would serve. A path that does not
/// exist (yet) is its nearest existing ancestor, so resolved, followed by
/// the rest.
///
/// `Ok(None)`: no file mount of a local directory covers it.
/// `Err(PermissionDenied)`: resolving it leaves the mount's root; the
/// request must be refused.
pub(crate) fn translate(mounts: &[Mount], path: &str) -> io::Result<Option<PathBuf>> {
    let Some((_, m)) = find(mounts, path) else { return Ok(None) };
    let Origin::File(fops) = &m.origin else { return Ok(None) };
    let denied = || io::Error::new(io::ErrorKind::PermissionDenied, "not a path below the mount");
    let whole = VPath::new(m.remainder(path)).map_err(|_| denied())?;
    let mut at = whole.as_str();
    loop {
        let here = VPath::new(at).map_err(|_| denied())?;
        match fops.resolve_local(&here) {
            Ok(mut real) => {
                let rest = whole.as_str()[at.len()..].trim_start_matches('/');
                if !rest.is_empty() {
                    real.push(rest);
                }
                return Ok(Some(real));
            }
            Err(e) if e.kind() == io::ErrorKind::Unsupported => return Ok(None),
            Err(e)
                if (e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(libc::ENOTDIR))
                    && !at.is_empty() =>
            {
                at = at.rsplit_once('/').map_or("", |(parent, _)| parent);
            }
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// A CGI directory: `run.sh` and `sub/deep.py` executable, `data.txt` not.
    fn cgi_bin() -> (tempfile::TempDir, PathBuf) {
        let t = tempfile::tempdir().expect("tempdir");
        let bin = t.path().join("cgi-bin");
        std::fs::create_dir_all(bin.join("sub")).expect("mkdir");
        for (name, mode) in [("run.sh", 0o755), ("data.txt", 0o644), ("sub/deep.py", 0o755)] {
            let p = bin.join(name);
            std::fs::write(&p, "#!/bin/sh\n").expect("write");
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).expect("chmod");
        }
        (t, bin)
    }

    #[test]
    fn resolves_programs_and_directories() {
        let (_t, bin) = cgi_bin();
        let r = cgi_resolve(&bin, "/cgi", "/run.sh/extra/path").expect("run.sh");
        assert_eq!((r.script_name.as_str(), r.path_info.as_str()), ("/cgi/run.sh", "/extra/path"));
        // Doubled slashes and dot segments do not eat PATH_INFO.
        for odd in ["//run.sh/extra/path", "/./run.sh//extra/path"] {
            let r = cgi_resolve(&bin, "/cgi", odd).expect("resolves");
            assert_eq!(r.path_info, "/extra/path", "{odd}");
        }
        let r = cgi_resolve(&bin, "/cgi", "/run.sh/a/").expect("resolves");
        assert_eq!(r.path_info, "/a/");
        assert_eq!(r.program, bin.join("run.sh"));
        let r = cgi_resolve(&bin, "/cgi", "/sub/deep.py").expect("deep");
        assert_eq!((r.script_name.as_str(), r.path_info.as_str()), ("/cgi/sub/deep.py", ""));
        assert_eq!(cgi_resolve(&bin, "/cgi", "/data.txt"), None, "not executable");
        assert_eq!(cgi_resolve(&bin, "/cgi", "/missing/x"), None);
        assert_eq!(cgi_resolve(&bin, "/cgi", "/../cgi-bin/run.sh"), None, "no escape");
        let r = cgi_resolve(&bin.join("run.sh"), "/git", "/repo/info").expect("program");
        assert_eq!((r.script_name.as_str(), r.path_info.as_str()), ("/git", "/repo/info"));
    }

    #[test]
    fn programs_found_are_trusted_for_a_second_and_bounded() {
        let (_t, bin) = cgi_bin();
        let mut cache = CgiCache::default();
        let t0 = Instant::now();
        let mut look =
            |rest: &str, at: Instant| cgi_lookup_cached(&bin, "/cgi", rest, Symlinks::Confined, &mut cache, at);
        // Cached or not, the same answers as the walk gives.
        for at in [t0, t0 + Duration::from_millis(10)] {
            for rest in
                ["/run.sh/extra/path", "//run.sh/extra/path", "/./run.sh//extra/path", "/run.sh/a/", "/sub/deep.py/x"]
            {
                assert_eq!(look(rest, at), cgi_lookup(&bin, "/cgi", rest), "{rest}");
            }
            assert_eq!(look("/data.txt", at), Err(CgiRefusal::NotExecutable));
            assert_eq!(look("/missing/x", at), Err(CgiRefusal::NoScript));
            assert_eq!(look("/../cgi-bin/run.sh", at), Err(CgiRefusal::BadPath), "no escape");
            assert_eq!(look("/sub", at), Err(CgiRefusal::NoScript));
        }
        // A program removed is still found from the cache within the
        // second (no system call), and not after it.
        std::fs::remove_file(bin.join("run.sh")).expect("rm");
        let r = look("/run.sh/a", t0 + Duration::from_millis(500)).expect("cached");
        assert_eq!((r.program, r.path_info.as_str()), (bin.join("run.sh"), "/a"));
        assert_eq!(look("/run.sh/a", t0 + CGI_CACHE_TTL), Err(CgiRefusal::NoScript));
        // Only programs are kept, and at most CGI_CACHE_PROGRAMS of them.
        let mut kept: Vec<&str> = cache.programs.keys().map(String::as_str).collect();
        kept.sort_unstable();
        assert_eq!(kept, ["/run.sh", "/sub/deep.py"]);
        for i in 0..CGI_CACHE_PROGRAMS + 20 {
            let p = bin.join(format!("p{i}"));
            std::fs::write(&p, "#!/bin/sh\n").expect("write");
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
            let r = cgi_lookup_cached(
                &bin,
                "/cgi",
                &format!("/p{i}/x"),
                Symlinks::Confined,
                &mut cache,
                t0 + CGI_CACHE_TTL,
            );
            assert_eq!(r.map(|r| r.path_info), Ok("/x".to_string()));
            assert!(cache.programs.len() <= CGI_CACHE_PROGRAMS);
        }
        // The origin's kind is looked at again after the second too.
        let one = bin.join("sub/deep.py");
        let mut cache = CgiCache::default();
        assert!(cgi_lookup_cached(&one, "/", "/x", Symlinks::Confined, &mut cache, t0).is_ok());
        std::fs::remove_file(&one).expect("rm");
        assert!(
            cgi_lookup_cached(&one, "/", "/x", Symlinks::Confined, &mut cache, t0).is_ok(),
            "trusted within the second"
        );
        assert_eq!(
            cgi_lookup_cached(&one, "/", "/x", Symlinks::Confined, &mut cache, t0 + CGI_CACHE_TTL),
            Err(CgiRefusal::NoOrigin)
        );
    }

    #[test]
    fn linked_directories_out_of_the_mount_are_refused() {
        let t = tempfile::tempdir().expect("tempdir");
        let bin = t.path().join("cgi-bin");
        let outside = t.path().join("outside");
        std::fs::create_dir_all(bin.join("real")).expect("mkdir");
        std::fs::create_dir_all(&outside).expect("mkdir");
        for p in [bin.join("real/in.sh"), outside.join("x.sh")] {
            std::fs::write(&p, "#!/bin/sh\n").expect("write");
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        }
        let link = |to: &Path, name: &str| std::os::unix::fs::symlink(to, bin.join(name)).expect("symlink");
        link(Path::new("/"), "root");
        link(&outside, "data");
        link(Path::new("real"), "inner");
        link(&outside.join("x.sh"), "prog.sh");
        link(Path::new("../outside"), "rel");
        std::os::unix::fs::symlink(&outside, bin.join("real/deep")).expect("symlink");
        let mut cache = CgiCache::default();
        let t0 = Instant::now();
        for rest in
            ["/root/usr/bin/id", "/root/bin/sh", "/data/x.sh", "/data/x.sh/more", "/rel/x.sh", "/real/deep/x.sh"]
        {
            assert_eq!(cgi_lookup(&bin, "/cgi", rest), Err(CgiRefusal::Outside), "{rest}");
            assert_eq!(
                cgi_lookup_cached(&bin, "/cgi", rest, Symlinks::Confined, &mut cache, t0),
                Err(CgiRefusal::Outside),
                "{rest}"
            );
        }
        assert!(cache.programs.is_empty(), "nothing refused is cached");
        // A linked directory inside the mount, and a linked program, run.
        let r = cgi_lookup_cached(&bin, "/cgi", "/inner/in.sh/a", Symlinks::Confined, &mut cache, t0).expect("inner");
        assert_eq!((r.program, r.path_info.as_str()), (bin.join("inner/in.sh"), "/a"));
        let r =
            cgi_lookup_cached(&bin, "/cgi", "/prog.sh/b", Symlinks::Confined, &mut cache, t0).expect("linked program");
        assert_eq!((r.program, r.path_info.as_str()), (bin.join("prog.sh"), "/b"));
        // Through a link to the mount's own directory, the same holds.
        let via = t.path().join("via");
        std::os::unix::fs::symlink(&bin, &via).expect("symlink");
        assert_eq!(cgi_lookup(&via, "/cgi", "/data/x.sh"), Err(CgiRefusal::Outside));
        assert!(cgi_lookup(&via, "/cgi", "/inner/in.sh").is_ok());
        // A name too long, or a loop of links: nothing there.
        std::os::unix::fs::symlink("loop", bin.join("loop")).expect("symlink");
        assert_eq!(cgi_lookup(&bin, "/cgi", "/loop/x"), Err(CgiRefusal::NoScript));
        assert_eq!(cgi_lookup(&bin, "/cgi", &format!("/{}", "a".repeat(4000))), Err(CgiRefusal::NoScript));
    }

    /// The mount's symlink policy: a directory linked out of the mount is
    /// refused (Confined), followed (Follow), or followed when the link
    /// and its target have one owner (SameOwner).
    #[test]
    fn linked_directories_out_follow_the_mount_policy() {
        const NOBODY: u32 = 65534;
        // SAFETY: geteuid(2) has no preconditions and cannot fail.
        let euid = unsafe { libc::geteuid() };
        assert_eq!(euid, 0, "this test gives links and directories to uid {NOBODY}: run it as root (CI does)");
        let t = tempfile::tempdir().expect("tempdir");
        let bin = t.path().join("cgi-bin");
        let (mine, theirs) = (t.path().join("mine"), t.path().join("theirs"));
        for d in [bin.join("real"), mine.clone(), theirs.clone()] {
            std::fs::create_dir_all(&d).expect("mkdir");
            let p = d.join("x.sh");
            std::fs::write(&p, "#!/bin/sh\n").expect("write");
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        }
        std::os::unix::fs::lchown(&theirs, Some(NOBODY), None).expect("chown");
        let link = |to: &Path, name: &str, uid: u32| {
            std::os::unix::fs::symlink(to, bin.join(name)).expect("symlink");
            std::os::unix::fs::lchown(bin.join(name), Some(uid), None).expect("lchown");
        };
        link(&mine, "same", 0);
        link(Path::new("../mine"), "rel", 0);
        link(&mine, "link-other", NOBODY);
        link(&theirs, "target-other", 0);
        link(&theirs, "both-other", NOBODY);
        link(Path::new("real"), "inner-other", NOBODY);
        link(Path::new("loop"), "loop", 0);
        let out = || Err(CgiRefusal::Outside);
        let ok = |dir: &str| Ok(bin.join(dir).join("x.sh"));
        let rows = [
            ("/same/x.sh/a", [out(), ok("same"), ok("same")]),
            ("/rel/x.sh/a", [out(), ok("rel"), ok("rel")]),
            ("/link-other/x.sh/a", [out(), ok("link-other"), out()]),
            ("/target-other/x.sh/a", [out(), ok("target-other"), out()]),
            ("/both-other/x.sh/a", [out(), ok("both-other"), ok("both-other")]),
            // Inside the mount a link's owner does not matter.
            ("/inner-other/x.sh/a", [ok("inner-other"), ok("inner-other"), ok("inner-other")]),
            ("/loop/x.sh", [(); 3].map(|_| Err(CgiRefusal::NoScript))),
        ];
        let t0 = Instant::now();
        for (i, policy) in [Symlinks::Confined, Symlinks::Follow, Symlinks::SameOwner].into_iter().enumerate() {
            let mut cache = CgiCache::default();
            for (rest, want) in &rows {
                // Twice: walked, then (if found) from the cache.
                for _ in 0..2 {
                    let got = cgi_lookup_cached(&bin, "/cgi", rest, policy, &mut cache, t0).map(|r| r.program);
                    assert_eq!(&got, &want[i], "{policy:?} {rest}");
                }
            }
        }
    }
}
