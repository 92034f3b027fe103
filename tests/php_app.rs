//! A real PHP application, DokuWiki from Debian's package, hosted by
//! warren in place at `/` as under lighttpd (issue 15): `.php` files run
//! by php-cgi where they sit, `doku.php` the default document, Debian's
//! links out of the document root followed, `bin`, `data`, `inc`, `conf`
//! and dotfiles refused. The configuration is the one docs/cgi.md shows
//! ("Hosting a PHP application"), read by `warren --config`. The same
//! requests run against lighttpd in tests/dokuwiki_lighttpd.rs, and
//! against the same DokuWiki with `.php` going to a real php-fpm over
//! FastCGI (issue 16; `dokuwiki_over_php_fpm`).

mod support;

use std::path::Path;
use support::dokuwiki::{self, Client, DokuWiki, Options};
use support::fpm::{Fpm, FpmOptions};
use support::{start_warren, Running};

/// What runs `.php` files: php-cgi by default, as docs/cgi.md shows.
const PHP_CGI: &str = "/usr/bin/php-cgi";

/// The lwsws configuration docs/cgi.md gives for DokuWiki, with the
/// fixture's paths for Debian's and `runner` for `.php`.
fn config(wiki: &DokuWiki, runner: &str) -> String {
    format!(
        r#"{{
  "vhosts": [ {{
    "name": "wiki",
    "port": "0",
    "interface": "127.0.0.1",
    "mounts": [ {{
      "mountpoint": "/",
      "origin": "file://{site}",
      "default": [ "doku.php" ],
      "cgi-assign": {{ ".php": "{runner}" }},
      "deny": [ "/bin", "/data", "/inc", "/conf", "/vendor" ],
      "symlinks": "follow",
      "x-sendfile": "{media}"
    }} ]
  }} ]
}}
"#,
        site = wiki.site.display(),
        media = wiki.media.display()
    )
}

/// warren serving `wiki` from its configuration, `.php` by php-cgi.
fn warren(wiki: &DokuWiki) -> (Running, u16) {
    assert!(Path::new(PHP_CGI).is_file(), "needs php-cgi (scripts/test installs it)");
    warren_with(wiki, PHP_CGI)
}

/// warren serving `wiki` from its configuration, `.php` run by `runner`
/// (a program, or `fcgi://ADDR`).
fn warren_with(wiki: &DokuWiki, runner: &str) -> (Running, u16) {
    assert!(dokuwiki::installed(), "needs dokuwiki (scripts/test installs it)");
    let dir = wiki.root().join("warren");
    std::fs::create_dir_all(dir.join("conf.d")).expect("mkdir");
    std::fs::write(dir.join("conf"), "{ \"global\": {} }\n").expect("conf");
    std::fs::write(dir.join("conf.d/wiki"), config(wiki, runner)).expect("conf.d");
    start_warren(&["--config", dir.to_str().expect("utf-8")])
}

/// The visit lighttpd gets in tests/dokuwiki_lighttpd.rs
/// (`dokuwiki::visit`): start page, edit and save (a form POST with the
/// session cookie, then the redirect after it), an upload through the
/// media manager, the uploaded image fetched back, static assets through
/// the links out of the root with their types, generated CSS and JS,
/// and the denied directories.
#[test]
fn dokuwiki_runs_in_place() {
    let wiki = dokuwiki::install(&Options::default());
    let (_w, port) = warren(&wiki);
    let c = Client::new(&wiki, port);
    dokuwiki::visit(&wiki, &c, "playground:warren", "warren.png");
    // The script's own fields go out as it wrote them.
    let js = c.get("/lib/exe/js.php");
    assert_eq!(js.header("content-type"), Some("application/javascript; charset=utf-8"));
}

/// The same application with `.php` going to a real php-fpm pool over
/// FastCGI (`"cgi-assign": { ".php": "fcgi://…" }`, the one line that
/// changes in docs/cgi.md's configuration): the visit, the login and its
/// tokens, and downloads by X-Sendfile, each on its own copy, all on one
/// pool.
#[test]
fn dokuwiki_over_php_fpm() {
    let fpm = Fpm::start(FpmOptions::default());
    let runner = fpm.origin();
    let wiki = dokuwiki::install(&Options::default());
    let (_w, port) = warren_with(&wiki, &runner);
    let c = Client::new(&wiki, port);
    dokuwiki::visit(&wiki, &c, "playground:fpm", "fpm.png");
    let js = c.get("/lib/exe/js.php");
    assert_eq!(js.header("content-type"), Some("application/javascript; charset=utf-8"));
    let wiki = dokuwiki::install(&Options { acl: true, ..Options::default() });
    let (_w, port) = warren_with(&wiki, &runner);
    dokuwiki::visit_with_acl(&wiki, port);
    let wiki = dokuwiki::install(&Options { xsendfile: 2, ..Options::default() });
    let (_w, port) = warren_with(&wiki, &runner);
    dokuwiki::fetch_sent(&wiki, port);
    // It was the pool that ran them: without it, the page is a 502.
    drop(fpm);
    assert_eq!(Client::new(&wiki, port).get("/doku.php").status, 502);
}

/// With the ACL on: a login (a POST that sets the auth cookie, then a
/// redirect), the security token then required, a forged one refused.
#[test]
fn dokuwiki_logins_and_tokens() {
    let wiki = dokuwiki::install(&Options { acl: true, ..Options::default() });
    let (_w, port) = warren(&wiki);
    dokuwiki::visit_with_acl(&wiki, port);
}

/// DokuWiki's `xsendfile` setting: 2 sends `X-Sendfile`, 1 lighttpd's
/// `X-LIGHTTPD-send-file`; warren sends the media file itself, with
/// ranges, for both (lighttpd 1.4.69's mod_cgi answers the second with
/// an empty 200: tests/dokuwiki_lighttpd.rs).
#[test]
fn dokuwiki_downloads_go_by_x_sendfile() {
    for mode in [2, 1] {
        let wiki = dokuwiki::install(&Options { xsendfile: mode, ..Options::default() });
        let (_w, port) = warren(&wiki);
        dokuwiki::fetch_sent(&wiki, port);
    }
}

/// No PHP file of the application comes back as source, by any
/// spelling: each row a path (sent as is, `--path-as-is`) and the
/// status it gets; none may hold `<?php`.
#[test]
fn no_dokuwiki_source_by_any_spelling() {
    let wiki = dokuwiki::install(&Options::default());
    let (_w, port) = warren(&wiki);
    let c = Client::new(&wiki, port);
    let rows: &[(&str, &[&str], u16)] = &[
        ("/doku.php", &[], 200),
        ("/doku%2ephp", &[], 200),
        ("/doku.php/", &[], 200),
        ("/doku.php/start", &[], 200),
        ("//doku.php", &[], 200),
        ("/./doku.php", &[], 200),
        ("/DOKU.PHP", &[], 404),
        ("/Doku.php", &[], 404),
        ("/doku.php.", &[], 403),
        ("/doku.php%20", &[], 403),
        ("/doku.php%00", &[], 403),
        ("/doku.php::$DATA", &[], 404),
        ("/doku.php~", &[], 404),
        ("/lib/exe/../../doku.php", &[], 403),
        ("/inc/preload.php", &[], 403),
        ("/inc/preload.php/x", &[], 403),
        ("/conf/local.php", &[], 403),
        ("/lib/plugins/acl/admin.php", &[], 500),
        ("/lib/tpl/dokuwiki/main.php", &[], 200),
        ("/install.php", &["-I"], 200),
        ("/doku.php", &["-I"], 200),
        ("/doku.php", &["-r", "0-40"], 200),
        ("/doku.php", &["-H", "Accept-Encoding: gzip"], 200),
        ("/doku.php", &["-H", "If-None-Match: *"], 200),
        ("/feed.php", &["-H", "Range: bytes=0-5"], 200),
    ];
    for (path, extra, want) in rows {
        let mut args = vec!["--path-as-is"];
        args.extend_from_slice(extra);
        let r = c.curl(&args, path);
        assert_eq!(r.status, *want, "{path} {extra:?}: {}", r.text());
        assert!(!r.text().contains("<?php"), "{path} {extra:?} sent PHP source");
    }
}
