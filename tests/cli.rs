//! The `warren` binary as a user runs it.

use std::io::BufRead;
use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::process::{Command, Stdio};
use std::time::Duration;

mod support;

use support::{start_warren as start, Running, BIN};

fn curl(url: &str) -> (String, String) {
    let out =
        Command::new("curl").args(["-s", "--max-time", "10", "-w", "\n%{http_code}", url]).output().expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", ""));
    (body.to_string(), code.to_string())
}

#[test]
fn default_site_is_served() {
    let (_w, port) = start(&[]);
    let (body, code) = curl(&format!("http://127.0.0.1:{port}/"));
    assert_eq!(code, "200");
    assert!(body.contains("warren"), "{body}");
    let (css, code) = curl(&format!("http://127.0.0.1:{port}/error.css"));
    assert_eq!(code, "200");
    assert!(!css.is_empty());
    let (page, code) = curl(&format!("http://127.0.0.1:{port}/no-such-page"));
    assert_eq!(code, "404");
    assert!(page.contains("/error.css"));
    // The built-in site is a zip in the binary: gzip passes through.
    let out = Command::new("curl")
        .args(["-s", "-D", "-", "-o", "/dev/null", "-H", "Accept-Encoding: gzip"])
        .arg(format!("http://127.0.0.1:{port}/index.html"))
        .output()
        .expect("curl");
    let head = String::from_utf8_lossy(&out.stdout).to_ascii_lowercase();
    assert!(head.contains("content-encoding: gzip"), "{head}");
    let (page, code) = curl(&format!("http://127.0.0.1:{port}/about.html"));
    assert_eq!(code, "200");
    assert!(page.contains("</html>"));
}

#[test]
fn pack_then_serve_the_archive() {
    let t = tempfile::tempdir().expect("tempdir");
    let site = t.path().join("site");
    std::fs::create_dir_all(site.join("img")).expect("mkdir");
    let html = "<p>packed</p>\n".repeat(200);
    std::fs::write(site.join("index.html"), &html).expect("write");
    std::fs::write(site.join("img/dot.bin"), [7u8, 1, 250, 3]).expect("write");
    let zip = t.path().join("site.zip");
    let out = Command::new(BIN).arg("pack").arg(&site).arg(&zip).output().expect("pack");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let listing = String::from_utf8_lossy(&out.stdout);
    assert!(listing.contains("deflated  index.html"), "{listing}");
    assert!(listing.contains("stored    img/dot.bin"), "{listing}");
    assert!(listing.contains("packed 2 files"), "{listing}");
    let (_w, port) = start(&["--root", &zip.to_string_lossy()]);
    let (body, code) = curl(&format!("http://127.0.0.1:{port}/"));
    assert_eq!((code.as_str(), body.len()), ("200", html.len()));
    let out = Command::new("curl")
        .args(["-s", "--compressed", "-w", "\n%{size_download}"])
        .arg(format!("http://127.0.0.1:{port}/index.html"))
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&out.stdout);
    let (body, wire) = text.rsplit_once('\n').unwrap_or(("", "0"));
    assert_eq!(body, html);
    assert!(wire.parse::<usize>().unwrap_or(usize::MAX) < html.len() / 4, "gzip on the wire: {wire}");
    fails_with(&["pack", "/no/such/dir", "x.zip"], "/no/such/dir");
    fails_with(&["pack", "onlyone"], "<OUT.zip>");
    let notzip = t.path().join("notzip.txt");
    std::fs::write(&notzip, "x").expect("write");
    fails_with(&["--root", &notzip.to_string_lossy()], "neither a directory nor a .zip");
    std::fs::write(t.path().join("broken.zip"), "PK\x03\x04 garbage").expect("write");
    fails_with(&["--root", &t.path().join("broken.zip").to_string_lossy()], "broken.zip");
}

#[test]
fn root_and_bind_flags() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("index.html"), "mine\n").expect("write");
    let root = dir.path().to_string_lossy().into_owned();
    let (_w, port) = start(&["--root", &root, "--bind", "127.0.0.1", "--keepalive-timeout", "3"]);
    let (body, code) = curl(&format!("http://127.0.0.1:{port}/"));
    assert_eq!((body.as_str(), code.as_str()), ("mine\n", "200"));
}

fn fails_with(args: &[&str], needle: &str) {
    let out = Command::new(BIN).args(args).stdin(Stdio::null()).output().expect("run");
    assert_eq!(out.status.code(), Some(2), "{args:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(err.contains(needle), "{args:?}: {err}");
}

#[test]
fn bad_input_exits_2_with_one_line() {
    fails_with(&["--frobnicate"], "--frobnicate");
    fails_with(&["--port", "70000"], "--port");
    fails_with(&["--port"], "--port");
    fails_with(&["--bind", "localhost:x"], "--bind");
    fails_with(&["--bind", "[zz]"], "--bind");
    fails_with(&["--bind", "no-such-host.invalid"], "no-such-host.invalid");
    fails_with(&["--root", "/no/such/dir"], "/no/such/dir");
    fails_with(&["--log-level", "loud"], "--log-level");
    // The hosting flags (issue 15): each garbage form named.
    let root = std::env::temp_dir();
    let root = root.to_str().expect("utf-8");
    for (args, says) in [
        (&["--root", root, "--cgi-assign", "*.php=/usr/bin/php-cgi"][..], "*.php"),
        (&["--root", root, "--cgi-assign", ".php=php-cgi"], "php-cgi"),
        (&["--root", root, "--cgi-assign", ".php"], ".php"),
        (&["--root", root, "--cgi-assign", ".php=/no/such/php-cgi"], "/no/such/php-cgi"),
        (&["--root", root, "--cgi-assign", ".php=/bin/sh", "--cgi-assign", ".PHP=/bin/sh"], ".PHP"),
        (&["--root", root, "--deny", "/inc=410"], "/inc=410"),
        (&["--root", root, "--deny", "/a/../b"], "/a/../b"),
        (&["--root", root, "--deny", "a/b"], "a/b"),
        (&["--root", root, "--symlinks", "always"], "always"),
        (&["--root", root, "--index", "../x"], "../x"),
        (&["--x-sendfile", root], "--x-sendfile"),
        (&["--cgi-assign", ".php=/bin/sh"], "--root"),
        // FastCGI (issue 16).
        (&["--root", root, "--cgi-assign", ".php=fcgi://relative.sock"], "relative.sock"),
        (&["--fcgi", "/app"], "/app"),
        (&["--fcgi", "/app=nowhere"], "nowhere"),
        (&["--root", root, "--fcgi-max-requests", "4"], "--fcgi-max-requests"),
        (&["--root", root, "--fcgi-connect-timeout", "2"], "--fcgi-connect-timeout"),
        (&["--fcgi", "/app=/run/x.sock", "--fcgi-max-requests", "0"], "--fcgi-max-requests"),
        (&["--fcgi", "/app=/run/x.sock", "--fcgi-connect-timeout", "0"], "--fcgi-connect-timeout"),
        (&["--fcgi", "/app=/run/x.sock", "--fcgi-keepalive", "many"], "--fcgi-keepalive"),
        // The site is at `/`: a program mounted there would never run.
        (&["--fcgi", "/=/run/x.sock"], "the site is served at /"),
        (&["--cgi", "/=/bin/sh"], "the site is served at /"),
    ] {
        fails_with(args, says);
    }
    // A port already taken.
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port().to_string();
    fails_with(&["--port", &port], &port);
}

#[test]
fn help_and_version() {
    let out = Command::new(BIN).arg("--help").output().expect("run");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for flag in ["--root", "--port", "--bind", "--version"] {
        assert!(text.contains(flag), "{flag}");
    }
    for flag in ["--version", "-V"] {
        let out = Command::new(BIN).arg(flag).output().expect("run");
        assert!(out.status.success(), "{flag}");
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), concat!("warren ", env!("CARGO_PKG_VERSION")));
    }
    // Issue 11 item 8: `pack --help` was an error ("pack needs two arguments").
    for args in [&["pack", "--help"][..], &["pack", "-h"], &["pack", "site", "--help"]] {
        let out = Command::new(BIN).args(args).output().expect("run");
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("warren pack [--dotfiles] DIR OUT.zip"), "{args:?}: {text}");
        assert!(out.stderr.is_empty(), "{args:?}");
    }
}

/// `warren pack` follows links that stay inside the site and refuses one
/// that leads out (serving the directory would refuse it too), naming it;
/// no archive is left behind.
#[test]
fn pack_refuses_symlinks_leading_out_of_the_site() {
    let t = tempfile::tempdir().expect("tempdir");
    let site = t.path().join("site");
    std::fs::create_dir_all(&site).expect("mkdir");
    std::fs::write(site.join("index.html"), "<p>hi</p>").expect("write");
    std::os::unix::fs::symlink("index.html", site.join("home.html")).expect("symlink inside");
    let zip = t.path().join("ok.zip");
    let out = Command::new(BIN).arg("pack").arg(&site).arg(&zip).output().expect("pack");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("home.html"));
    let secret = t.path().join("secret.txt");
    std::fs::write(&secret, "not for the web").expect("write");
    std::os::unix::fs::symlink(&secret, site.join("leak.txt")).expect("symlink out");
    let zip = t.path().join("bad.zip");
    let out = Command::new(BIN).arg("pack").arg(&site).arg(&zip).output().expect("pack");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("leak.txt") && err.contains("leads outside"), "{err}");
    assert!(!zip.exists(), "a refused pack left {}", zip.display());
    // Issue 11 item 4: the words agree with what happened (it said "not
    // packing it", as if it had skipped the link and packed the rest).
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("pack refused, no archive written"), "{err}");
    assert!(!err.contains("not packing it"), "{err}");
    assert!(out.stdout.is_empty(), "nothing listed as packed");
    assert!(!t.path().join("bad.zip.partial").exists());
    // An archive already there is kept as it was.
    let before = std::fs::read(t.path().join("ok.zip")).expect("ok.zip");
    let out = Command::new(BIN).arg("pack").arg(&site).arg(t.path().join("ok.zip")).output().expect("pack");
    assert_eq!(out.status.code(), Some(2));
    assert!(std::fs::read(t.path().join("ok.zip")).expect("ok.zip") == before);
}

/// Issue 11 item 3: `warren pack DIR DIR/out.zip` packed its own
/// `out.zip.partial`, and on a second run the previous `out.zip` too.
#[test]
fn pack_leaves_its_own_output_out() {
    let t = tempfile::tempdir().expect("tempdir");
    let site = t.path().join("site");
    std::fs::create_dir_all(site.join("sub")).expect("mkdir");
    std::fs::write(site.join("index.html"), "<p>hi</p>\n".repeat(50)).expect("write");
    std::fs::write(site.join("sub/a.txt"), "a\n").expect("write");
    for out in [site.join("out.zip"), site.join("sub/deeper.zip")] {
        // Twice: the second run finds the first's archive in place.
        for run in 0..2 {
            let res = Command::new(BIN).arg("pack").arg(&site).arg(&out).output().expect("pack");
            assert!(res.status.success(), "{}", String::from_utf8_lossy(&res.stderr));
            let listing = String::from_utf8_lossy(&res.stdout);
            assert!(listing.contains("packed 2 files"), "run {run} of {}: {listing}", out.display());
            assert!(listing.lines().all(|l| l.starts_with("packed ") || !l.contains(".zip")), "run {run}: {listing}");
            let archive = zip::ZipArchive::new(std::fs::File::open(&out).expect("archive")).expect("zip");
            let mut names: Vec<String> = archive.file_names().map(|n| n.expect("name").into_owned()).collect();
            names.sort_unstable();
            assert_eq!(names, ["index.html", "sub/a.txt"], "run {run}");
            assert!(!std::path::Path::new(&format!("{}.partial", out.display())).exists());
        }
        std::fs::remove_file(&out).expect("rm");
    }
}

/// Starts warren with `args` and `--port 0`, and returns the addresses it
/// says it serves on, once `count` of them are listening.
fn start_on(args: &[&str], count: usize) -> (Running, Vec<SocketAddr>) {
    let mut child = Command::new(BIN)
        .args(args)
        .args(["--port", "0", "--log-level", "info"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn warren");
    let stderr = child.stderr.take().expect("stderr");
    let running = Running(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
            let addr = line.split(" serving ").nth(1).and_then(|r| r.rsplit_once(" on http://"));
            let addr = addr.and_then(|(_, a)| a.trim_end_matches('/').parse::<SocketAddr>().ok());
            let _ = tx.send((line, addr));
        }
    });
    let mut addrs = Vec::new();
    let mut log = String::new();
    while addrs.len() < count {
        let Ok((line, addr)) = rx.recv_timeout(Duration::from_secs(20)) else {
            panic!("warren did not say it serves on {count} addresses:\n{log}");
        };
        log.push_str(&line);
        log.push('\n');
        addrs.extend(addr);
    }
    (running, addrs)
}

fn has_ipv6() -> bool {
    TcpListener::bind("[::1]:0").is_ok()
}

/// Issue 11 item 6: `--bind localhost` was refused ("not an IP address");
/// `[::1]` too. A host name means every address it resolves to, one
/// listener each, on one port.
#[test]
fn bind_takes_host_names_and_ipv6_forms() {
    let mut want: Vec<SocketAddr> = Vec::new();
    for a in ("localhost", 0).to_socket_addrs().expect("resolve localhost") {
        if !want.iter().any(|w| w.ip() == a.ip()) && (a.is_ipv4() || has_ipv6()) {
            want.push(a);
        }
    }
    let (_w, addrs) = start_on(&["--bind", "localhost"], want.len());
    let port = addrs[0].port();
    assert!(addrs.iter().all(|a| a.port() == port), "{addrs:?}");
    let mut got: Vec<_> = addrs.iter().map(SocketAddr::ip).collect();
    let mut want: Vec<_> = want.iter().map(SocketAddr::ip).collect();
    got.sort_unstable();
    want.sort_unstable();
    assert_eq!(got, want);
    for a in &addrs {
        let url = format!("http://{a}/");
        assert_eq!(curl(&url).1, "200", "{url}");
    }
    if !has_ipv6() {
        eprintln!("no IPv6 on this machine: [::1] and :: not tried");
        return;
    }
    for form in ["[::1]", "::1"] {
        let (_w, addrs) = start_on(&["--bind", form], 1);
        assert_eq!(addrs[0].ip().to_string(), "::1", "{form}");
        assert_eq!(curl(&format!("http://[::1]:{}/", addrs[0].port())).1, "200", "{form}");
    }
    // `::` is every address (IPv4 too, where the kernel maps it).
    let (_w, addrs) = start_on(&["--bind", "::"], 1);
    assert_eq!(curl(&format!("http://[::1]:{}/", addrs[0].port())).1, "200");
    // Several --bind, one port: the multi-address path a name with both
    // families takes.
    let (_w, addrs) = start_on(&["--bind", "127.0.0.1", "--bind", "[::1]"], 2);
    assert_eq!(addrs[0].port(), addrs[1].port(), "{addrs:?}");
    assert_eq!(curl(&format!("http://127.0.0.1:{}/", addrs[0].port())).1, "200");
    assert_eq!(curl(&format!("http://[::1]:{}/", addrs[0].port())).1, "200");
}

/// Issue 14 item 8: the completions and the man page come from the same
/// definition as the parser, so they know every flag; every subcommand's
/// help has an example.
#[test]
fn completions_man_page_and_examples_come_from_the_flags() {
    let out = |args: &[&str]| {
        let o = Command::new(BIN).args(args).stdin(Stdio::null()).output().expect("run");
        assert!(o.status.success(), "{args:?}: {}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let script = out(&["completions", shell]);
        // Each shell spells a long flag its own way (fish: `-l root`).
        for flag in ["root", "grace", "metrics", "pid-file", "access-log"] {
            assert!(script.contains(flag), "{shell}: {flag}");
        }
        assert!(script.contains("pack") && script.contains("check"), "{shell}: the subcommands");
    }
    let man = out(&["man"]);
    assert!(man.starts_with(".ie") || man.contains(".TH warren"), "roff: {}", &man[..man.len().min(200)]);
    for flag in ["\\-\\-root", "\\-\\-grace", "\\-\\-user"] {
        assert!(man.contains(flag), "the man page documents {flag}");
    }
    for args in
        [&["--help"][..], &["pack", "--help"], &["check", "--help"], &["completions", "--help"], &["man", "--help"]]
    {
        let help = out(args);
        assert!(help.contains("Example"), "{args:?}: {help}");
    }
    let bad = Command::new(BIN).args(["completions", "tcsh"]).output().expect("run");
    assert_eq!(bad.status.code(), Some(2));
}

/// The names in an archive, sorted.
fn zip_names(path: &std::path::Path) -> Vec<String> {
    let archive = zip::ZipArchive::new(std::fs::File::open(path).expect("archive")).expect("zip");
    let mut names: Vec<String> = archive.file_names().map(|n| n.expect("name").into_owned()).collect();
    names.sort_unstable();
    names
}

/// Issue 15 item 4: `warren pack` packed `.env` and `.git/`. Dotfiles
/// (any segment starting with `.`) are left out unless `--dotfiles`,
/// except a top-level `.well-known/`; stderr says what was left out, a
/// directory once with its file count. A link whose name is plain but
/// which leads to a dotfile directory is left out too.
#[test]
fn pack_leaves_dotfiles_out_unless_asked() {
    let t = tempfile::tempdir().expect("tempdir");
    let site = t.path().join("site");
    for d in [".git/refs/heads", ".well-known/acme-challenge", "sub/.cache"] {
        std::fs::create_dir_all(site.join(d)).expect("mkdir");
    }
    for (f, body) in [
        ("index.html", "<p>hi</p>\n"),
        (".git/HEAD", "ref: refs/heads/main\n"),
        (".git/config", "[core]\n"),
        (".git/refs/heads/main", "0123456789abcdef\n"),
        (".env", "SECRET=1\n"),
        (".htpasswd", "admin:x\n"),
        (".well-known/acme-challenge/x", "token\n"),
        (".well-known/.hidden", "no\n"),
        ("sub/.hidden", "no\n"),
        ("sub/page.html", "<p>sub</p>\n"),
        ("sub/.cache/x", "cached\n"),
    ] {
        std::fs::write(site.join(f), body).expect("write");
    }
    std::os::unix::fs::symlink(".git", site.join("git")).expect("symlink");

    let zip = t.path().join("site.zip");
    let out = Command::new(BIN).arg("pack").arg(&site).arg(&zip).output().expect("pack");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert_eq!(zip_names(&zip), [".well-known/acme-challenge/x", "index.html", "sub/page.html"]);
    assert_eq!(
        err.trim_end(),
        "pack: left out .env, .git/ (3 files), .htpasswd, .well-known/.hidden, git/ (3 files), sub/.cache/ (1 file), \
         sub/.hidden: dotfiles are not packed; --dotfiles packs them"
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("packed 3 files"));

    let zip = t.path().join("all.zip");
    let out = Command::new(BIN).args(["pack", "--dotfiles"]).arg(&site).arg(&zip).output().expect("pack");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.stderr.is_empty(), "{}", String::from_utf8_lossy(&out.stderr));
    let names = zip_names(&zip);
    for f in [".env", ".git/HEAD", ".htpasswd", "git/HEAD", "sub/.cache/x", "sub/.hidden", ".well-known/.hidden"] {
        assert!(names.iter().any(|n| n == f), "{f} in {names:?}");
    }
    assert_eq!(names.len(), 14, "{names:?}");
    let mut a = zip::ZipArchive::new(std::fs::File::open(&zip).expect("open")).expect("zip");
    let mut env = String::new();
    std::io::Read::read_to_string(&mut a.by_name(".env").expect(".env"), &mut env).expect("read");
    assert_eq!(env, "SECRET=1\n");
}

/// The left-out line is bounded: at most 20 names, then how many more.
#[test]
fn pack_left_out_line_is_bounded() {
    let t = tempfile::tempdir().expect("tempdir");
    let site = t.path().join("site");
    std::fs::create_dir_all(&site).expect("mkdir");
    std::fs::write(site.join("index.html"), "x").expect("write");
    for i in 0..25 {
        std::fs::write(site.join(format!(".f{i:02}")), "x").expect("write");
    }
    let zip = t.path().join("site.zip");
    let out = Command::new(BIN).arg("pack").arg(&site).arg(&zip).output().expect("pack");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains(".f19, and 5 more: dotfiles are not packed"), "{err}");
    assert!(!err.contains(".f20"), "{err}");
    assert_eq!(zip_names(&zip), ["index.html"]);
}
