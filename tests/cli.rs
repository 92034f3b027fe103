//! The `warren` binary as a user runs it.

use std::net::TcpListener;
use std::process::{Command, Stdio};

mod support;

use support::{start_warren as start, BIN};

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
    fails_with(&["pack", "onlyone"], "two arguments");
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
    fails_with(&["--port"], "--port needs a value");
    fails_with(&["--bind", "localhost:x"], "--bind");
    fails_with(&["--root", "/no/such/dir"], "/no/such/dir");
    fails_with(&["--log-level", "loud"], "--log-level");
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
    let out = Command::new(BIN).arg("--version").output().expect("run");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), concat!("warren ", env!("CARGO_PKG_VERSION")));
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
}
