//! The DokuWiki fixture (tests/support/dokuwiki.rs) under the reference
//! peer, lighttpd, configured as a user hosting it would: `.php` run by
//! php-cgi where they sit, `doku.php` the index, links followed out of
//! the document root, `bin`, `data`, `inc`, `conf` and `.ht*` denied.
//! This proves the fixture and the request sequence warren's own tests
//! drive (issue 15), independently of warren.

mod support;

use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::dokuwiki::{self, Client, DokuWiki, Options, PNG};

const LIGHTTPD: &str = "/usr/sbin/lighttpd";

/// lighttpd serving `wiki.site` at `/` of 127.0.0.1:port; killed on drop.
struct Lighttpd {
    child: Child,
    port: u16,
}

impl Drop for Lighttpd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The lighttpd.conf lines for DokuWiki at `/` (docs/cgi.md shows the same).
fn config(wiki: &DokuWiki, port: u16, xsendfile: bool) -> String {
    let mut conf = format!(
        r#"server.modules = ("mod_access", "mod_cgi", "mod_staticfile")
server.document-root = "{site}"
server.bind = "127.0.0.1"
server.port = {port}
server.errorlog = "{root}/lighttpd.log"
mimetype.assign = (".png" => "image/png", ".gif" => "image/gif", ".svg" => "image/svg+xml",
                   ".ico" => "image/vnd.microsoft.icon", ".css" => "text/css",
                   ".js" => "text/javascript", ".html" => "text/html", ".txt" => "text/plain")
# Debian's layout: lib/tpl and lib/plugins are links into /var/lib/dokuwiki.
server.follow-symlink = "enable"
index-file.names = ("doku.php")
cgi.assign = (".php" => "/usr/bin/php-cgi")
static-file.exclude-extensions = (".php")
$HTTP["url"] =~ "/(\.|_)ht" {{ url.access-deny = ("") }}
$HTTP["url"] =~ "^/(bin|data|inc|conf)(/|$)" {{ url.access-deny = ("") }}
"#,
        site = wiki.site.display(),
        root = wiki.root().display(),
    );
    if xsendfile {
        conf.push_str(&format!(
            "cgi.x-sendfile = \"enable\"\ncgi.x-sendfile-docroot = (\"{}\")\n",
            wiki.media.display()
        ));
    }
    conf
}

/// Starts lighttpd on a free port (tried again on another if lighttpd
/// could not bind it) and waits until it accepts connections.
fn lighttpd(wiki: &DokuWiki, xsendfile: bool) -> Lighttpd {
    for _ in 0..10 {
        let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
        let conf = wiki.root().join("lighttpd.conf");
        std::fs::write(&conf, config(wiki, port, xsendfile)).expect("conf");
        let child =
            Command::new(LIGHTTPD).arg("-D").arg("-f").arg(&conf).stdin(Stdio::null()).spawn().expect("lighttpd");
        let mut server = Lighttpd { child, port };
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(30) {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return server;
            }
            if server.child.try_wait().expect("wait").is_some() {
                break; // the port was taken meanwhile: another one
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let log = std::fs::read_to_string(wiki.root().join("lighttpd.log")).unwrap_or_default();
        eprintln!("lighttpd on {port} did not start: {log}");
        let _ = server.child.kill();
    }
    panic!("lighttpd did not start");
}

/// Fails (not skips) without lighttpd or dokuwiki.
fn needs_tools() {
    assert!(Path::new(LIGHTTPD).is_file(), "needs {LIGHTTPD} (scripts/test installs lighttpd)");
    assert!(dokuwiki::installed(), "needs dokuwiki (scripts/test installs it)");
}

#[test]
fn fixture_works_under_lighttpd() {
    needs_tools();
    let wiki = dokuwiki::install(&Options::default());
    let server = lighttpd(&wiki, false);
    let c = Client::new(&wiki, server.port);

    let start = c.get("/");
    assert_eq!(start.status, 200, "{}", start.text());
    assert_eq!(start.header("content-type"), Some("text/html; charset=utf-8"));
    assert!(start.header("set-cookie").is_some_and(|v| v.starts_with("DokuWiki=")), "{:?}", start.headers);
    assert!(start.text().contains("warren test wiki"), "our local.php is read");

    // Anonymous with the ACL off: the sectok is empty, the save redirects.
    assert_eq!(c.sectok("playground:fixture"), "");
    let saved = c.edit_and_save("playground:fixture", "Hello from **warren's** fixture.");
    assert_eq!(saved.status, 302, "{}", saved.text());
    let to = c.url("/doku.php?id=playground:fixture");
    assert_eq!(saved.header("location"), Some(to.as_str()));
    assert!(saved.body.is_empty());
    let page = c.get("/doku.php?id=playground:fixture");
    assert!(page.text().contains("Hello from <strong>warren&#039;s</strong> fixture."), "{}", page.text());
    assert_eq!(wiki.page_text("playground:fixture").as_deref(), Some("Hello from **warren's** fixture."));

    let up = c.upload("fixture.png", PNG, "image/png");
    assert_eq!(up.status, 200);
    assert!(up.text().contains("<div class=\"success\">Upload successful"), "{}", up.text());
    assert_eq!(std::fs::read(wiki.media.join("fixture.png")).expect("uploaded"), PNG);
    let img = c.get("/lib/exe/fetch.php?media=fixture.png");
    assert_eq!((img.status, img.header("content-type")), (200, Some("image/png")));
    assert_eq!(img.body, PNG);

    // Through the lib/tpl link that leads out of the document root.
    let logo = c.get("/lib/tpl/dokuwiki/images/logo.png");
    assert_eq!((logo.status, logo.header("content-type")), (200, Some("image/png")));
    assert_eq!(logo.body, std::fs::read(wiki.var.join("lib/tpl/dokuwiki/images/logo.png")).expect("logo"));
    let css = c.get("/lib/exe/css.php");
    assert_eq!((css.status, css.header("content-type")), (200, Some("text/css; charset=utf-8")));
    // (The few scripts behind the links that are run directly,
    // /lib/tpl/index.php and /lib/plugins/styling/popup.php, fail with a
    // 500 on Debian's layout whatever the server: they find inc/ through
    // var/inc, as PHP's __FILE__ is the link's target, but not vendor/.)
    let ajax = c.get("/lib/exe/ajax.php?call=linkwiz&q=play");
    assert_eq!(ajax.status, 200, "{}", ajax.text());

    for denied in ["/inc/preload.php", "/data/pages/start.txt", "/conf/", "/bin/indexer.php", "/.htaccess"] {
        assert_eq!(c.get(denied).status, 403, "{denied}");
    }
    // Nothing written to the system's copy.
    assert!(!Path::new("/var/lib/dokuwiki/data/pages/playground/fixture.txt").exists());
    assert!(!Path::new("/var/lib/dokuwiki/data/media/fixture.png").exists());
}

/// With the ACL on: a login sets the auth cookie, the sectok is then
/// required, and an anonymous save is refused.
#[test]
fn fixture_with_acl_under_lighttpd() {
    needs_tools();
    let wiki = dokuwiki::install(&Options { acl: true, ..Options::default() });
    let server = lighttpd(&wiki, false);
    let anon = Client::new(&wiki, server.port);
    let refused = anon.save("playground:acl", "anonymous", "");
    assert_eq!(refused.status, 200);
    assert_eq!(wiki.page_text("playground:acl"), None);

    let c = Client::new(&wiki, server.port);
    c.get("/");
    let login = c.login();
    assert_eq!(login.status, 302, "{}", login.text());
    assert!(login.header("set-cookie").is_some_and(|v| v.starts_with("DW")), "{:?}", login.headers);
    let tok = c.sectok("playground:acl");
    assert_eq!(tok.len(), 32, "{tok:?}");
    let bad = c.save("playground:acl", "forged", "0123456789abcdef0123456789abcdef");
    assert_eq!(bad.status, 200);
    assert!(bad.text().contains("Security Token did not match"), "{}", bad.text());
    assert_eq!(wiki.page_text("playground:acl"), None);
    let saved = c.save("playground:acl", "Saved by tester.", &tok);
    assert_eq!(saved.status, 302, "{}", saved.text());
    assert_eq!(wiki.page_text("playground:acl").as_deref(), Some("Saved by tester."));
    let up = c.upload("acl.png", PNG, "image/png");
    assert!(up.text().contains("Upload successful"), "{}", up.text());
}

/// DokuWiki's `xsendfile` 2 (`X-Sendfile`) with lighttpd's
/// `cgi.x-sendfile`: lighttpd sends the file. (DokuWiki's 1,
/// `X-LIGHTTPD-send-file`, gets an empty 200 from lighttpd 1.4.69's
/// mod_cgi: it drops the header and sends the empty body.)
#[test]
fn fixture_x_sendfile_under_lighttpd() {
    needs_tools();
    let wiki = dokuwiki::install(&Options { xsendfile: 2, ..Options::default() });
    std::fs::write(wiki.media.join("sent.png"), PNG).expect("media");
    let server = lighttpd(&wiki, true);
    let c = Client::new(&wiki, server.port);
    let img = c.get("/lib/exe/fetch.php?media=sent.png");
    assert_eq!((img.status, img.header("content-type")), (200, Some("image/png")));
    assert_eq!(img.header("x-sendfile"), None);
    assert_eq!(img.body, PNG);
    let part = c.curl(&["-r", "1-3"], "/lib/exe/fetch.php?media=sent.png");
    assert_eq!(part.status, 206);
    assert_eq!(part.body, &PNG[1..4]);
}
