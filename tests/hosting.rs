//! Hosting applications in place (issue: CGI hosting of real
//! applications): scripts run by suffix where they sit, ordered default
//! documents, deny rules and dotfiles, interpreter mounts' directories,
//! and X-Sendfile. Real sockets, real programs (`/bin/sh`, php-cgi).

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use support::*;
use warren::{ContextInfo, DenyRule, Mount};

const PHP_CGI: &str = "/usr/bin/php-cgi";

/// The source every PHP file of [`app`] holds: it must never reach a
/// client.
const SOURCE_MARK: &str = "SOURCE-NEVER-SENT";

/// A small application: PHP scripts (each with [`SOURCE_MARK`] in a
/// comment), shell scripts for `/bin/sh`, a program that runs itself,
/// static files, dotfiles, a zip holding a script, and directories with
/// and without default documents.
fn app() -> (tempfile::TempDir, PathBuf) {
    let t = tempfile::tempdir().expect("tempdir");
    let root = t.path().join("app");
    for d in ["inc", "data/pages", "static", "nodefault", "odd.php", ".git", ".well-known/acme-challenge", "sub"] {
        std::fs::create_dir_all(root.join(d)).expect("mkdir");
    }
    let php = |name: &str, body: &str| {
        let text = format!("<?php /* {SOURCE_MARK} */ {body} ?>");
        std::fs::write(root.join(name), text).expect("write");
    };
    php("index.php", "echo 'ran index.php';");
    php("doku.php", "echo 'ran doku.php PATH_INFO=', $_SERVER['PATH_INFO'] ?? '(none)';");
    php("inc/secret.php", "echo 'ran inc/secret.php';");
    php("Upper.PHP", "echo 'ran Upper.PHP';");
    php("sub/index.php", "echo 'ran sub/index.php';");
    php("doku.php~", "echo 'backup';");
    std::fs::write(root.join("odd.php/in.txt"), "a directory named like a script\n").expect("write");
    std::fs::write(root.join("static/index.html"), "<p>static index</p>\n").expect("write");
    std::fs::write(root.join("static/logo.png"), b"\x89PNG\r\n\x1a\nnot really").expect("write");
    std::fs::write(root.join("nodefault/x.txt"), "x\n").expect("write");
    std::fs::write(root.join("data/pages/start.txt"), "wiki text\n").expect("write");
    std::fs::write(root.join(".env"), "DB_PASSWORD=hunter2\n").expect("write");
    std::fs::write(root.join(".git/HEAD"), "ref: refs/heads/main\n").expect("write");
    std::fs::write(root.join(".well-known/acme-challenge/token"), "acme-token\n").expect("write");
    let sh = |name: &str, text: &str, mode: u32| {
        std::fs::write(root.join(name), text).expect("write");
        std::fs::set_permissions(root.join(name), std::fs::Permissions::from_mode(mode)).expect("chmod");
    };
    // For `.sh` → /bin/sh: the environment and where it runs.
    sh(
        "env.sh",
        "printf 'Content-Type: text/plain\\n\\n'\n\
         for v in SCRIPT_FILENAME SCRIPT_NAME PATH_INFO PATH_TRANSLATED REDIRECT_STATUS REDIRECT_URL \
         DOCUMENT_ROOT REQUEST_URI; do eval \"printf '%s=%s\\n' $v \\\"\\${$v-(unset)}\\\"\"; done\n\
         printf 'ARG0=%s\\nPWD=%s\\n' \"$0\" \"$(pwd)\"\n",
        0o644,
    );
    // For `.cgi` → itself.
    sh("self.cgi", "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\nran self.cgi\\n'\n", 0o755);
    sh("noexec.cgi", "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\nSHOULD NOT RUN\\n'\n", 0o644);
    // A zip holding a script: it cannot run from there, and is never sent.
    let zip_path = root.join("bundle.zip");
    let file = std::fs::File::create(&zip_path).expect("zip");
    let mut z = zip::ZipWriter::new(file);
    let opts = zip::write::SimpleFileOptions::default();
    z.start_file("inner.php", opts).expect("entry");
    std::io::Write::write_all(&mut z, format!("<?php /* {SOURCE_MARK} */ ?>").as_bytes()).expect("write");
    z.start_file("page.html", opts).expect("entry");
    std::io::Write::write_all(&mut z, b"<p>zipped</p>").expect("write");
    z.finish().expect("finish");
    (t, root)
}

/// The mount the tests serve [`app`] with.
fn hosted(root: &Path) -> Mount {
    Mount::dir("/", root)
        .cgi_assign(".php", PHP_CGI)
        .cgi_assign(".sh", "/bin/sh")
        .cgi_assign(".cgi", "")
        .index(["index.php", "index.html"])
        .deny(DenyRule::path("/inc"))
        .deny(DenyRule::path("/data").not_found())
        .deny(DenyRule::suffix("~"))
}

fn serve(m: Mount) -> Server {
    Server::start(ContextInfo::new().vhost(vhost().mount(m)))
}

/// `key=value` lines of a response body.
fn vars(r: &Response) -> std::collections::HashMap<String, String> {
    r.text().lines().filter_map(|l| l.split_once('=')).map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// Scripts run where they sit: the interpreter gets the script as its
/// argument and runs in its directory; SCRIPT_FILENAME is the file,
/// SCRIPT_NAME the URL up to it, PATH_INFO the rest, PATH_TRANSLATED that
/// rest mapped to the disk (RFC 3875 §4.1.6), REDIRECT_STATUS for
/// php-cgi, DOCUMENT_ROOT the mount's directory (CGI-2).
#[test]
fn scripts_run_in_place_with_their_environment() {
    let (_t, root) = app();
    let real = root.canonicalize().expect("canonical");
    let s = serve(hosted(&root));
    let r = get(&s, "/env.sh/wiki/start?x=1");
    assert_eq!(r.status, 200, "{}", r.text());
    let v = vars(&r);
    let file = real.join("env.sh").display().to_string();
    assert_eq!(v["SCRIPT_FILENAME"], file);
    assert_eq!(v["ARG0"], file, "the interpreter is given the script");
    assert_eq!(v["PWD"], real.display().to_string(), "it runs in its own directory");
    assert_eq!(v["SCRIPT_NAME"], "/env.sh");
    assert_eq!(v["PATH_INFO"], "/wiki/start");
    assert_eq!(v["PATH_TRANSLATED"], real.join("wiki/start").display().to_string());
    assert_eq!(v["REDIRECT_STATUS"], "200");
    assert_eq!(v["REDIRECT_URL"], "(unset)", "an in-place script was not redirected to");
    assert_eq!(v["DOCUMENT_ROOT"], real.display().to_string());
    assert_eq!(v["REQUEST_URI"], "/env.sh/wiki/start?x=1");
    // No PATH_INFO: none translated.
    let v = vars(&get(&s, "/env.sh"));
    assert_eq!((v["PATH_INFO"].as_str(), v["PATH_TRANSLATED"].as_str()), ("", "(unset)"));
    // Below a mountpoint, SCRIPT_NAME carries it and DOCUMENT_ROOT is
    // still the mount's directory.
    let s = serve(Mount::dir("/app", &root).cgi_assign(".sh", "/bin/sh"));
    let v = vars(&get(&s, "/app/env.sh/x"));
    assert_eq!((v["SCRIPT_NAME"].as_str(), v["PATH_INFO"].as_str()), ("/app/env.sh", "/x"));
    assert_eq!(v["DOCUMENT_ROOT"], real.display().to_string());
    // An empty interpreter: the file is the program, and must be executable.
    let s = serve(hosted(&root));
    let r = get(&s, "/self.cgi");
    assert_eq!((r.status, r.text().as_str()), (200, "ran self.cgi\n"));
    let r = get(&s, "/noexec.cgi");
    assert_eq!(r.status, 403);
    assert!(!r.text().contains("SHOULD NOT RUN"));
    // A script accepts a body; a static file does not.
    let r = request(&s, "POST /index.php HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc");
    assert_eq!((r.status, r.text().as_str()), (200, "ran index.php"));
    let r =
        request(&s, "POST /static/logo.png HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc");
    assert_eq!(r.status, 405);
}

/// php-cgi, run in place: PATH_INFO after the script, case variants of
/// the suffix run too, and static files beside them are sent as files,
/// never through the interpreter.
#[test]
fn php_runs_in_place_and_static_files_stay_static() {
    let (_t, root) = app();
    let s = serve(hosted(&root));
    let r = get(&s, "/doku.php/wiki/start");
    assert_eq!((r.status, r.text().as_str()), (200, "ran doku.php PATH_INFO=/wiki/start"));
    let r = get(&s, "/Upper.PHP");
    assert_eq!((r.status, r.text().as_str()), (200, "ran Upper.PHP"));
    let r = get(&s, "/static/logo.png");
    assert_eq!((r.status, r.header("content-type")), (200, Some("image/png")));
    assert!(r.body.starts_with(b"\x89PNG"), "the bytes as stored, not run");
    // A directory named like a script is a directory.
    let r = get(&s, "/odd.php/in.txt");
    assert_eq!(r.status, 200);
    assert_eq!(get(&s, "/odd.php").status, 301);
}

/// Default documents are tried in order: a directory runs its
/// `index.php` when there is one, else serves `index.html`; with
/// neither, 404.
#[test]
fn index_lists_run_or_serve_the_first_document_there() {
    let (_t, root) = app();
    let s = serve(hosted(&root));
    assert_eq!(get(&s, "/").text(), "ran index.php");
    assert_eq!(get(&s, "/sub/").text(), "ran sub/index.php");
    let r = get(&s, "/static/");
    assert_eq!((r.status, r.text().as_str()), (200, "<p>static index</p>\n"));
    assert_eq!(get(&s, "/nodefault/").status, 404);
    let r = get(&s, "/sub");
    assert_eq!(r.status, 301);
    assert!(r.header("location").is_some_and(|l| l.ends_with("/sub/")), "{:?}", r.header("location"));
    // The other order: index.html first where both are.
    std::fs::write(root.join("sub/index.html"), "<p>sub html</p>").expect("write");
    let s = serve(hosted(&root).index(["index.html", "index.php"]));
    assert_eq!(get(&s, "/sub/").text(), "<p>sub html</p>");
    assert_eq!(get(&s, "/").text(), "ran index.php");
}

/// No spelling of a script's URL gets its source: every one runs the
/// script or is refused. Each row: the request, and what it must get.
#[test]
fn no_spelling_reaches_the_source() {
    let (_t, root) = app();
    let s = serve(hosted(&root));
    let get_req = |p: &str| format!("GET {p} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let with = |p: &str, field: &str| format!("GET {p} HTTP/1.1\r\nHost: x\r\n{field}\r\nConnection: close\r\n\r\n");
    let rows: Vec<(String, &str, u16)> = vec![
        (get_req("/index.php"), "runs", 200),
        (get_req("/"), "runs (index.php)", 200),
        (get_req("/index.php/"), "runs with PATH_INFO /", 200),
        (get_req("/index.php/x.txt"), "runs with PATH_INFO", 200),
        (get_req("/index%2ephp"), "runs (%2e decoded)", 200),
        (get_req("/index%2Ephp"), "runs (%2E decoded)", 200),
        (get_req("/%69ndex.php"), "runs", 200),
        (get_req("//index.php"), "runs", 200),
        (get_req("/./index.php"), "runs", 200),
        (get_req("/sub/../index.php"), "a .. segment", 403),
        (get_req("/index.php?source"), "runs", 200),
        (get_req("/INDEX.PHP"), "no such file", 404),
        (get_req("/index.Php"), "no such file", 404),
        (get_req("/index.php."), "a near miss", 403),
        (get_req("/index.php%20"), "a near miss", 403),
        (get_req("/index.php.."), "a near miss", 403),
        (get_req("/index.php%00"), "NUL", 403),
        (get_req("/index.php::$DATA"), "no such file", 404),
        (get_req("/index.php%2f"), "an encoded slash", 403),
        (get_req("/doku.php~"), "deny rule *~", 403),
        (get_req("/inc/secret.php"), "deny rule /inc", 403),
        (get_req("/INC/secret.php"), "deny rule /inc, any case", 403),
        (get_req("/bundle.zip/inner.php"), "a script in an archive", 403),
        (get_req("/missing.php"), "no such script", 404),
        ("HEAD /index.php HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_string(), "runs, no body", 200),
        (with("/index.php", "Range: bytes=0-20"), "runs, range ignored", 200),
        (with("/index.php", "Accept-Encoding: gzip"), "runs", 200),
        (with("/index.php", "If-None-Match: *"), "runs", 200),
    ];
    for (req, what, want) in &rows {
        let r = request(&s, req);
        let line = req.lines().next().unwrap_or("");
        assert_eq!(r.status, *want, "{line} ({what}): {}", r.text());
        assert!(!r.text().contains(SOURCE_MARK), "{line} ({what}) sent the source");
        if *want == 200 && !req.starts_with("HEAD") {
            assert!(r.text().starts_with("ran "), "{line} ({what}): {}", r.text());
        }
        if *want == 200 {
            // php-cgi's own type: a HEAD of the file sent would say
            // application/x-httpd-php.
            assert_eq!(r.header("content-type"), Some("text/html; charset=UTF-8"), "{line} ({what})");
        }
    }
    // And over curl, as a client that normalises nothing.
    for p in ["/index.php", "/index.php.", "/Index.php", "/bundle.zip/inner.php", "/index.php/"] {
        let (_, body) = curl(&["--path-as-is", &s.url(p)]);
        assert!(!String::from_utf8_lossy(&body).contains(SOURCE_MARK), "curl {p}");
    }
    // The zip's other entries are files as ever.
    assert_eq!(get(&s, "/bundle.zip/page.html").text(), "<p>zipped</p>");
}

/// Deny rules (403, or 404 where the rule says) and dotfiles, refused by
/// default except `/.well-known/`, allowed by a mount option.
#[test]
fn deny_rules_and_dotfiles() {
    let (_t, root) = app();
    let s = serve(hosted(&root));
    for (path, want) in [
        ("/inc/secret.php", 403),
        ("/inc/", 403),
        ("/data/pages/start.txt", 404),
        ("/Data/pages/start.txt", 404),
        ("/.env", 403),
        ("/.git/HEAD", 403),
        ("/%2egit/HEAD", 403),
        ("/.well-known/acme-challenge/token", 200),
        ("/static/logo.png", 200),
    ] {
        let r = get(&s, path);
        assert_eq!(r.status, want, "{path}");
        assert!(!r.text().contains("hunter2") && !r.text().contains("wiki text"), "{path}");
    }
    // The styled error page, not an empty body.
    assert!(get(&s, "/.env").text().contains("403"));
    let s = serve(hosted(&root).allow_dotfiles(true));
    assert_eq!(get(&s, "/.env").text(), "DB_PASSWORD=hunter2\n");
    assert_eq!(get(&s, "/inc/secret.php").status, 403, "rules stay");
}

/// An interpreter mount (Apache's Action): `GET /php` redirects to
/// `/php/`, a directory goes through the mount's default documents, and
/// php-cgi is never handed itself or a directory; the file mounts' deny
/// rules and dotfiles apply to the file it is handed.
#[test]
fn interpreter_mounts_take_directories_through_default_documents() {
    let (_t, root) = app();
    let s = serve_both(&root, Mount::cgi("/php", PHP_CGI).index(["index.php"]));
    let r = get(&s, "/php");
    assert_eq!(r.status, 301);
    assert!(r.header("location").is_some_and(|l| l.ends_with("/php/")), "{:?}", r.header("location"));
    assert_eq!(get(&s, "/php/").text(), "ran index.php");
    assert_eq!(get(&s, "/php/sub/").text(), "ran sub/index.php");
    let r = get(&s, "/php/sub");
    assert_eq!(r.status, 301);
    assert!(r.header("location").is_some_and(|l| l.ends_with("/php/sub/")), "{:?}", r.header("location"));
    assert_eq!(get(&s, "/php/nodefault/").status, 404);
    assert_eq!(get(&s, "/php/doku.php/x").text(), "ran doku.php PATH_INFO=/x");
    // A FIFO would hold php-cgi (and a slot) on a read that never ends.
    mkfifo(&root.join("pipe"));
    for (path, want) in
        [("/php/.env", 403), ("/php/inc/secret.php", 403), ("/php/data/pages/start.txt", 404), ("/php/pipe", 403)]
    {
        let r = get(&s, path);
        assert_eq!(r.status, want, "{path}");
        assert!(!r.text().contains("hunter2") && !r.text().contains("wiki text"), "{path}");
    }
}

/// [`app`] at `/` (as [`hosted`], with no scripts run there) and `extra`.
fn serve_both(root: &Path, extra: Mount) -> Server {
    let files = Mount::dir("/", root)
        .deny(DenyRule::path("/inc"))
        .deny(DenyRule::path("/data").not_found())
        .deny(DenyRule::suffix("~"));
    Server::start(ContextInfo::new().vhost(vhost().mount(files).mount(extra)))
}

/// A script that names a file for the server to send: `X-Sendfile`
/// with the path in `SEND`, and a body of its own that must not go out.
fn sender(root: &Path, header: &str, path: &Path) {
    let text = format!(
        "#!/bin/sh\nprintf 'Content-Type: application/pdf\\r\\nContent-Disposition: attachment\\r\\n{header}: {}\\r\\n\\r\\n'\n\
         printf 'THE SCRIPT BODY'\n",
        path.display()
    );
    std::fs::write(root.join("get.cgi"), text).expect("write");
    std::fs::set_permissions(root.join("get.cgi"), std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

/// X-Sendfile: a script names a file below an allowed directory and the
/// server sends it, with validators and ranges (downloads gated by a
/// script cost it nothing); a file outside the directory (`/etc/passwd`,
/// `..`, a link out) is refused; a mount that does not allow it drops
/// the header and sends the script's own answer.
#[test]
fn x_sendfile_sends_files_confined_to_their_directory() {
    let (t, root) = app();
    let files = t.path().join("downloads");
    std::fs::create_dir_all(&files).expect("mkdir");
    let data = pattern(200_000);
    std::fs::write(files.join("report.pdf"), &data).expect("write");
    std::os::unix::fs::symlink("/etc/passwd", files.join("link")).expect("symlink");
    let mount = || Mount::dir("/", &root).cgi_assign(".cgi", "").x_sendfile(&files);
    sender(&root, "X-Sendfile", &files.join("report.pdf"));
    let s = serve(mount());
    let r = get(&s, "/get.cgi");
    assert_eq!(r.status, 200);
    assert_eq!(r.body, data);
    assert_eq!(r.header("content-type"), Some("application/pdf"));
    assert_eq!(r.header("content-disposition"), Some("attachment"));
    assert_eq!(r.header("x-sendfile"), None);
    let etag = r.header("etag").expect("an ETag").to_string();
    assert!(r.header("last-modified").is_some());
    let r = request(&s, "GET /get.cgi HTTP/1.1\r\nHost: x\r\nRange: bytes=10-19\r\nConnection: close\r\n\r\n");
    assert_eq!((r.status, &r.body[..]), (206, &data[10..20]));
    let r =
        request(&s, &format!("GET /get.cgi HTTP/1.1\r\nHost: x\r\nIf-None-Match: {etag}\r\nConnection: close\r\n\r\n"));
    assert_eq!((r.status, r.body.len()), (304, 0));
    // lighttpd's name for it works too.
    sender(&root, "X-LIGHTTPD-send-file", &files.join("report.pdf"));
    assert_eq!(get(&s, "/get.cgi").body, data);
    // Outside the directory, by any road: refused, and the client never
    // sees the script's body or the file.
    for (named, want) in [
        (PathBuf::from("/etc/passwd"), 403),
        (files.join("../app/index.php"), 403),
        (files.join("link"), 403),
        (files.join("missing.pdf"), 404),
        (files.clone(), 403),
        (PathBuf::from("relative/report.pdf"), 403),
    ] {
        sender(&root, "X-Sendfile", &named);
        let r = get(&s, "/get.cgi");
        assert_eq!(r.status, want, "{}", named.display());
        assert!(!r.text().contains("root:") && !r.text().contains("THE SCRIPT BODY"), "{}", named.display());
    }
    // Not allowed on this mount: the header is dropped, the script's own
    // answer goes out.
    sender(&root, "X-Sendfile", &files.join("report.pdf"));
    let s = serve(Mount::dir("/", &root).cgi_assign(".cgi", ""));
    let r = get(&s, "/get.cgi");
    assert_eq!((r.status, r.text().as_str(), r.header("x-sendfile")), (200, "THE SCRIPT BODY", None));
}

/// The same through the `warren` binary's flags, and `warren check`
/// shows what the mount does.
#[test]
fn the_binary_flags_host_an_application() {
    let (_t, root) = app();
    let root_s = root.to_str().expect("utf-8");
    let flags = [
        "--root",
        root_s,
        "--cgi-assign",
        ".php=/usr/bin/php-cgi",
        "--cgi-assign",
        ".cgi=",
        "--index",
        "index.php,index.html",
        "--deny",
        "/inc",
        "--deny",
        "/data=404",
        "--deny",
        "*~",
    ];
    let (_w, port) = start_warren(&flags);
    let url = |p: &str| format!("http://127.0.0.1:{port}{p}");
    let status = |p: &str| {
        let (_, out) = curl(&["--path-as-is", "-o", "/dev/null", "-w", "%{http_code}", &url(p)]);
        String::from_utf8_lossy(&out).into_owned()
    };
    let (_, body) = curl(&[&url("/")]);
    assert_eq!(String::from_utf8_lossy(&body), "ran index.php");
    let (_, body) = curl(&[&url("/doku.php/a/b")]);
    assert_eq!(String::from_utf8_lossy(&body), "ran doku.php PATH_INFO=/a/b");
    for (p, want) in
        [("/inc/secret.php", "403"), ("/data/pages/start.txt", "404"), ("/.env", "403"), ("/doku.php~", "403")]
    {
        assert_eq!(status(p), want, "{p}");
    }
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_warren"))
        .arg("check")
        .args(flags)
        .args(["--symlinks", "owner"])
        .output()
        .expect("warren check");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    for line in [
        "index: index.php, index.html",
        "runs in place: .php /usr/bin/php-cgi, .cgi (runs itself)",
        "deny: /inc, /data (404), *~",
        "dotfiles: refused (except /.well-known/)",
        "symlinks: out of the origin only when link and target have one owner",
    ] {
        assert!(text.contains(line), "{line:?} not in:\n{text}");
    }
    // A flag that needs --root says so.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_warren"))
        .args(["check", "--cgi-assign", ".php=/usr/bin/php-cgi"])
        .output()
        .expect("warren check");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--root"), "{}", String::from_utf8_lossy(&out.stderr));
}

/// The symlink policy of a mount, for static files and scripts alike:
/// Debian's layout (a directory of the site linked out to /var/lib) is
/// refused by default, served under `follow`, and under `owner` only
/// where the link and its target have the same owner. Links made here;
/// the tests run as root (`scripts/test` and CI do).
#[test]
fn symlink_policies_per_mount() {
    // SAFETY: geteuid reads the process's credentials; it cannot fail.
    assert_eq!(unsafe { libc::geteuid() }, 0, "this test changes a link's owner: run it as root, as scripts/test does");
    let (t, root) = app();
    let var = t.path().join("var/tpl");
    std::fs::create_dir_all(&var).expect("mkdir");
    std::fs::write(var.join("logo.png"), b"\x89PNG linked").expect("write");
    std::fs::write(var.join("run.php"), format!("<?php /* {SOURCE_MARK} */ echo 'ran linked run.php'; ?>"))
        .expect("write");
    std::os::unix::fs::symlink(&var, root.join("tpl")).expect("symlink");
    std::os::unix::fs::symlink(&var, root.join("other")).expect("symlink");
    // `other` is someone else's link to root's files.
    std::os::unix::fs::lchown(root.join("other"), Some(65534), Some(65534)).expect("lchown");
    let check = |policy: warren::Symlinks, want: [(&str, u16); 4]| {
        let s = serve(hosted(&root).symlinks(policy));
        for (path, status) in want {
            let r = get(&s, path);
            assert_eq!(r.status, status, "{policy:?} {path}: {}", r.text());
            assert!(!r.text().contains(SOURCE_MARK), "{policy:?} {path}");
            if status == 200 {
                let want = if path.ends_with(".php") { "ran linked run.php" } else { "\u{fffd}PNG linked" };
                assert_eq!(r.text(), want, "{policy:?} {path}");
            }
        }
    };
    use warren::Symlinks::*;
    check(Confined, [("/tpl/logo.png", 403), ("/tpl/run.php", 403), ("/other/logo.png", 403), ("/other/run.php", 403)]);
    check(Follow, [("/tpl/logo.png", 200), ("/tpl/run.php", 200), ("/other/logo.png", 200), ("/other/run.php", 200)]);
    check(
        SameOwner,
        [("/tpl/logo.png", 200), ("/tpl/run.php", 200), ("/other/logo.png", 403), ("/other/run.php", 403)],
    );
}

/// A one-program mount that is not an interpreter of the site (cgit,
/// git-http-backend) gets everything below its mountpoint as its own
/// route: no redirect, no default document, no file rules on it.
#[test]
fn one_program_mounts_keep_their_routes() {
    let (_t, root) = app();
    let env = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cgi-bin/env.sh");
    let s = serve_both(&root, Mount::cgi("/env", &env));
    for (path, info) in
        [("/env", ""), ("/env/", "/"), ("/env/repo/tree/.gitignore", "/repo/tree/.gitignore"), ("/env/inc/x", "/inc/x")]
    {
        let r = get(&s, path);
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        assert!(r.text().contains(&format!("PATH_INFO={info}\n")), "{path}: {}", r.text());
    }
    // Told it interprets the site's files, it is php-cgi's kind.
    let s = serve_both(&root, Mount::cgi("/env", &env).cgi_action(true));
    assert_eq!(get(&s, "/env").status, 301);
    assert_eq!(get(&s, "/env/inc/x").status, 403);
}

/// Things that must not become a way to the source or a secret: an
/// error page that is a script, X-Sendfile naming a script or a dotfile,
/// a default document the rules deny.
#[test]
fn no_side_door_to_scripts_or_dotfiles() {
    let (t, root) = app();
    // An error page is read as a file: a script there is refused at start.
    let vh = vhost().mount(hosted(&root)).error_page(404, "/index.php");
    let Err(e) = warren::Context::new(ContextInfo::new().vhost(vh)) else {
        panic!("a script as an error page was taken")
    };
    assert!(e.to_string().contains("error page /index.php"), "{e}");
    // X-Sendfile of a script or a dotfile in the allowed directory.
    let files = t.path().join("downloads");
    std::fs::create_dir_all(files.join(".hidden")).expect("mkdir");
    std::fs::write(files.join("conf.php"), format!("<?php /* {SOURCE_MARK} */ ?>")).expect("write");
    std::fs::write(files.join(".env"), "hunter2").expect("write");
    std::fs::write(files.join(".hidden/x"), "hunter2").expect("write");
    let s = serve(hosted(&root).x_sendfile(&files));
    for name in ["conf.php", ".env", ".hidden/x"] {
        sender(&root, "X-Sendfile", &files.join(name));
        let r = get(&s, "/get.cgi");
        assert_eq!(r.status, 403, "{name}");
        assert!(!r.text().contains(SOURCE_MARK) && !r.text().contains("hunter2"), "{name}");
    }
    // A default document the rules deny is skipped, not served.
    let s = serve(hosted(&root).index(["doku.php~", ".env", "index.html"]));
    let r = get(&s, "/static/");
    assert_eq!(r.text(), "<p>static index</p>\n");
    assert_eq!(get(&s, "/").status, 404, "doku.php~ and .env are denied, and / has no index.html");
}
