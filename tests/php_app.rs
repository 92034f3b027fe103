//! A real PHP application, DokuWiki from Debian's package, hosted by
//! warren in place at `/` as under lighttpd (issue 15): `.php` files run
//! by php-cgi where they sit, `doku.php` the default document, Debian's
//! links out of the document root followed, `bin`, `data`, `inc`, `conf`
//! and dotfiles refused. The configuration is the one docs/cgi.md shows
//! ("Hosting a PHP application"), read by `warren --config`. The same
//! requests run against lighttpd in tests/dokuwiki_lighttpd.rs.

mod support;

use std::path::Path;
use support::dokuwiki::{self, Client, DokuWiki, Options, PNG};
use support::{start_warren, Running};

/// The lwsws configuration docs/cgi.md gives for DokuWiki, with the
/// fixture's paths for Debian's.
fn config(wiki: &DokuWiki) -> String {
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
      "cgi-assign": {{ ".php": "/usr/bin/php-cgi" }},
      "deny": [ "/bin", "/data", "/inc", "/conf" ],
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

/// warren serving `wiki` from its configuration.
fn warren(wiki: &DokuWiki) -> (Running, u16) {
    assert!(dokuwiki::installed(), "needs dokuwiki (scripts/test installs it)");
    assert!(Path::new("/usr/bin/php-cgi").is_file(), "needs php-cgi (scripts/test installs it)");
    let dir = wiki.root().join("warren");
    std::fs::create_dir_all(dir.join("conf.d")).expect("mkdir");
    std::fs::write(dir.join("conf"), "{ \"global\": {} }\n").expect("conf");
    std::fs::write(dir.join("conf.d/wiki"), config(wiki)).expect("conf.d");
    start_warren(&["--config", dir.to_str().expect("utf-8")])
}

/// Start page, edit and save (a form POST with the session cookie, then
/// the redirect after it), an upload through the media manager, the
/// uploaded image fetched back, static assets through the links out of
/// the root with their types, generated CSS and JS, and the denied
/// directories.
#[test]
fn dokuwiki_runs_in_place() {
    let wiki = dokuwiki::install(&Options::default());
    let (_w, port) = warren(&wiki);
    let c = Client::new(&wiki, port);

    let start = c.get("/");
    assert_eq!(start.status, 200, "{}", start.text());
    assert_eq!(start.header("content-type"), Some("text/html; charset=utf-8"));
    assert!(start.header("set-cookie").is_some_and(|v| v.starts_with("DokuWiki=")), "{:?}", start.headers);
    assert!(start.text().contains("warren test wiki"), "the fixture's local.php is read");

    let saved = c.edit_and_save("playground:warren", "Hello from **warren**.");
    assert_eq!(saved.status, 302, "{}", saved.text());
    let to = c.url("/doku.php?id=playground:warren");
    assert_eq!(saved.header("location"), Some(to.as_str()));
    let page = c.get("/doku.php?id=playground:warren");
    assert!(page.text().contains("Hello from <strong>warren</strong>."), "{}", page.text());
    assert_eq!(wiki.page_text("playground:warren").as_deref(), Some("Hello from **warren**."));

    let up = c.upload("warren.png", PNG, "image/png");
    assert_eq!(up.status, 200);
    assert!(up.text().contains("<div class=\"success\">Upload successful"), "{}", up.text());
    assert_eq!(std::fs::read(wiki.media.join("warren.png")).expect("uploaded"), PNG);
    let img = c.get("/lib/exe/fetch.php?media=warren.png");
    assert_eq!((img.status, img.header("content-type")), (200, Some("image/png")));
    assert_eq!(img.body, PNG);
    // DokuWiki's own conditional handling, through the CGI.
    let etag = img.header("etag").expect("etag").to_string();
    let again = c.curl(&["-H", &format!("If-None-Match: {etag}")], "/lib/exe/fetch.php?media=warren.png");
    assert_eq!(again.status, 304);

    let logo = c.get("/lib/tpl/dokuwiki/images/logo.png");
    assert_eq!((logo.status, logo.header("content-type")), (200, Some("image/png")));
    assert_eq!(logo.body, std::fs::read(wiki.var.join("lib/tpl/dokuwiki/images/logo.png")).expect("logo"));
    assert!(logo.header("etag").is_some(), "a static file, with validators");
    let css = c.get("/lib/exe/css.php");
    assert_eq!((css.status, css.header("content-type")), (200, Some("text/css; charset=utf-8")));
    let js = c.get("/lib/exe/js.php");
    assert_eq!((js.status, js.header("content-type")), (200, Some("application/javascript; charset=utf-8")));
    let ajax = c.get("/lib/exe/ajax.php?call=linkwiz&q=play");
    assert_eq!(ajax.status, 200, "{}", ajax.text());

    for (denied, status) in [
        ("/inc/preload.php", 403),
        ("/data/pages/start.txt", 403),
        ("/conf/", 403),
        ("/bin/indexer.php", 403),
        ("/.htaccess", 403),
    ] {
        assert_eq!(c.get(denied).status, status, "{denied}");
    }
    assert!(!Path::new("/var/lib/dokuwiki/data/pages/playground/warren.txt").exists());
}

/// With the ACL on: a login (a POST that sets the auth cookie, then a
/// redirect), the security token then required, a forged one refused.
#[test]
fn dokuwiki_logins_and_tokens() {
    let wiki = dokuwiki::install(&Options { acl: true, ..Options::default() });
    let (_w, port) = warren(&wiki);
    let anon = Client::new(&wiki, port);
    assert_eq!(anon.save("playground:acl", "anonymous", "").status, 200);
    assert_eq!(wiki.page_text("playground:acl"), None, "an anonymous save is refused");
    let c = Client::new(&wiki, port);
    c.get("/");
    let login = c.login();
    assert_eq!(login.status, 302, "{}", login.text());
    assert!(login.header("set-cookie").is_some_and(|v| v.starts_with("DW")), "{:?}", login.headers);
    let tok = c.sectok("playground:acl");
    assert_eq!(tok.len(), 32, "{tok:?}");
    let bad = c.save("playground:acl", "forged", "0123456789abcdef0123456789abcdef");
    assert!(bad.text().contains("Security Token did not match"), "{}", bad.text());
    let saved = c.save("playground:acl", "Saved by tester.", &tok);
    assert_eq!(saved.status, 302, "{}", saved.text());
    assert_eq!(wiki.page_text("playground:acl").as_deref(), Some("Saved by tester."));
}

/// DokuWiki's `xsendfile` setting: 2 sends `X-Sendfile`, 1 lighttpd's
/// `X-LIGHTTPD-send-file`; warren sends the media file itself, with
/// ranges (lighttpd 1.4.69's mod_cgi answers the second with an empty
/// 200: tests/dokuwiki_lighttpd.rs).
#[test]
fn dokuwiki_downloads_go_by_x_sendfile() {
    for mode in [2, 1] {
        let wiki = dokuwiki::install(&Options { xsendfile: mode, ..Options::default() });
        std::fs::write(wiki.media.join("sent.png"), PNG).expect("media");
        let (_w, port) = warren(&wiki);
        let c = Client::new(&wiki, port);
        let img = c.get("/lib/exe/fetch.php?media=sent.png");
        assert_eq!((img.status, img.header("content-type")), (200, Some("image/png")), "mode {mode}");
        assert_eq!((img.header("x-sendfile"), img.header("x-lighttpd-send-file")), (None, None));
        assert_eq!(img.body, PNG, "mode {mode}");
        let part = c.curl(&["-r", "1-3"], "/lib/exe/fetch.php?media=sent.png");
        assert_eq!((part.status, &part.body[..]), (206, &PNG[1..4]), "mode {mode}");
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
