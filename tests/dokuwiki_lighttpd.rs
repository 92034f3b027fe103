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
use support::dokuwiki::{self, Client, DokuWiki, Options};

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
$HTTP["url"] =~ "^/(bin|data|inc|conf|vendor)(/|$)" {{ url.access-deny = ("") }}
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
    dokuwiki::visit(&wiki, &Client::new(&wiki, server.port), "playground:fixture", "fixture.png");
}

/// With the ACL on: a login sets the auth cookie, the sectok is then
/// required, and an anonymous save is refused.
#[test]
fn fixture_with_acl_under_lighttpd() {
    needs_tools();
    let wiki = dokuwiki::install(&Options { acl: true, ..Options::default() });
    let server = lighttpd(&wiki, false);
    dokuwiki::visit_with_acl(&wiki, server.port);
}

/// DokuWiki's `xsendfile` 2 (`X-Sendfile`) with lighttpd's
/// `cgi.x-sendfile`: lighttpd sends the file. (DokuWiki's 1,
/// `X-LIGHTTPD-send-file`, gets an empty 200 from lighttpd 1.4.69's
/// mod_cgi: it drops the header and sends the empty body.)
#[test]
fn fixture_x_sendfile_under_lighttpd() {
    needs_tools();
    let wiki = dokuwiki::install(&Options { xsendfile: 2, ..Options::default() });
    let server = lighttpd(&wiki, true);
    dokuwiki::fetch_sent(&wiki, server.port);
}
