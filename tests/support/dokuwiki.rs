//! A real PHP application for integration tests: DokuWiki as Debian
//! packages it (`dokuwiki`, 2022-07-31 "Igor"), copied into a temp dir so
//! that tests never write to the system's files.
//!
//! [`install`] lays out, below one temp dir:
//!
//! - `site/`: a copy of `/usr/share/dokuwiki`, the document root. As in
//!   Debian's layout, `site/lib/plugins` and `site/lib/tpl` are absolute
//!   symlinks leading out of the document root, into `var/lib/`: serving
//!   the templates' images and the plugins' scripts needs the server to
//!   follow links out of the root (lighttpd's `server.follow-symlink`).
//!   `site/inc/preload.php` points `DOKU_MAIN_CONF`/`DOKU_CONF` at `etc/`
//!   (Debian's hard-codes `/etc/dokuwiki/`), and PHP's sessions at
//!   `var/sessions/`.
//! - `etc/`: a copy of `/etc/dokuwiki` with `acl.auth.php` and
//!   `users.auth.php` as files (Debian links them into /var/lib), and a
//!   `local.php` that sets `savedir` to `var/data`, `userewrite` 0, and
//!   `useacl` and `xsendfile` from [`Options`].
//! - `var/`: a copy of `/var/lib/dokuwiki` (`data/`, `lib/plugins`,
//!   `lib/tpl`, `acl/`), whose `inc` link (plugins' scripts reach `inc/`
//!   through it, as PHP's `__DIR__` is the link's target) leads to
//!   `site/inc`.
//!
//! Every link is absolute and stays inside the temp dir, and everything
//! is owned by the user running the tests.
//!
//! The requests that drive it (as checked against lighttpd 1.4.69 with
//! `cgi.assign = (".php" => "/usr/bin/php-cgi")`, `index-file.names =
//! ("doku.php")`, `server.follow-symlink = "enable"`; see
//! scripts/dokuwiki-lighttpd.sh) are in [`Client`].

use std::path::{Path, PathBuf};
use std::process::Command;

/// Where Debian installs DokuWiki.
pub const SHARE: &str = "/usr/share/dokuwiki";
const ETC: &str = "/etc/dokuwiki";
const VAR: &str = "/var/lib/dokuwiki";

/// The user [`install`] adds to `users.auth.php` (group `user`, which
/// Debian's `acl.auth.php` lets edit and upload).
pub const USER: &str = "tester";
/// [`USER`]'s password.
pub const PASSWORD: &str = "tester-pass";
/// MD5 of [`PASSWORD`] in hex (`printf tester-pass | md5sum`), which
/// DokuWiki's `PassHash` takes as a plain MD5 hash (32 hex digits).
const PASSWORD_MD5: &str = "8be81d79e17b5795b20119ecd99fd750";

/// How the copy is configured.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// `$conf['useacl']`: off, anyone may edit and upload, and DokuWiki's
    /// security token (`sectok`) is empty; on, Debian's ACL (`@ALL` read,
    /// `@user` upload), so editing needs [`Client::login`] and a `sectok`.
    pub acl: bool,
    /// `$conf['xsendfile']` for `lib/exe/fetch.php`: 0 sends the bytes
    /// itself, 1 only an `X-LIGHTTPD-send-file: PATH` header, 2 only
    /// `X-Sendfile: PATH`, 3 only `X-Accel-Redirect` (a URL path). The path
    /// is below [`DokuWiki::media`].
    pub xsendfile: u8,
}

/// A private, writable DokuWiki; removed on drop.
pub struct DokuWiki {
    dir: tempfile::TempDir,
    /// The document root (`site/`), to serve at `/`.
    pub site: PathBuf,
    /// The configuration (`etc/`).
    pub etc: PathBuf,
    /// `var/`: what Debian keeps in /var/lib/dokuwiki.
    pub var: PathBuf,
    /// `var/data`: `$conf['savedir']` (pages, attic, cache, locks, ...).
    pub data: PathBuf,
    /// `var/data/media`: uploads, where X-Sendfile paths lead.
    pub media: PathBuf,
}

impl DokuWiki {
    /// The temp dir holding `site/`, `etc/` and `var/`.
    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// The wiki text of a saved page (`ns:page` → `data/pages/ns/page.txt`).
    pub fn page_text(&self, id: &str) -> Option<String> {
        std::fs::read_to_string(self.data.join("pages").join(format!("{}.txt", id.replace(':', "/")))).ok()
    }
}

/// Whether Debian's dokuwiki package is installed (scripts/test installs
/// it).
pub fn installed() -> bool {
    Path::new(SHARE).join("doku.php").is_file() && Path::new(ETC).is_dir() && Path::new(VAR).is_dir()
}

/// Copies the installed DokuWiki into a new temp dir, as the module says.
///
/// Panics (it is a test fixture) when dokuwiki is not installed, when a
/// copy fails, or when Debian's files are not shaped as expected (a
/// preload.php that no longer names /etc/dokuwiki, a link missing): a
/// fixture that silently served the system's files would prove nothing.
pub fn install(opts: &Options) -> DokuWiki {
    assert!(installed(), "dokuwiki is not installed ({SHARE}): scripts/test installs it");
    let dir = tempfile::tempdir().expect("tempdir");
    let root = std::fs::canonicalize(dir.path()).expect("canonical tempdir");
    let (site, etc, var) = (root.join("site"), root.join("etc"), root.join("var"));
    // Same shape, our ownership (as root, -a would keep www-data's).
    for (from, to) in [(SHARE, &site), (ETC, &etc), (VAR, &var)] {
        let st =
            Command::new("cp").args(["-a", "--no-preserve=ownership", "--"]).arg(from).arg(to).status().expect("cp");
        assert!(st.success(), "cp -a {from} {}", to.display());
    }
    let abs = |p: &Path| p.to_str().expect("UTF-8 temp path").to_owned();
    let quoted = ['\'', '"', '\\', '$'];
    assert!(!abs(&root).contains(quoted), "{}: a path PHP strings would need escaping for", root.display());

    // Debian's links, pointed at the copy: absolute, as Debian's are.
    let relink = |link: PathBuf, target: PathBuf| {
        let was = std::fs::read_link(&link).unwrap_or_else(|e| panic!("{}: {e}", link.display()));
        assert!(was.is_absolute(), "{}: {} (Debian's links are absolute)", link.display(), was.display());
        std::fs::remove_file(&link).expect("rm link");
        std::os::unix::fs::symlink(&target, &link).expect("symlink");
    };
    relink(site.join("lib/plugins"), var.join("lib/plugins"));
    relink(site.join("lib/tpl"), var.join("lib/tpl"));
    relink(var.join("inc"), site.join("inc"));
    relink(site.join(".htaccess"), etc.join("htaccess"));
    // The ACL and users as files of their own (Debian links them to
    // /var/lib/dokuwiki/acl).
    for f in ["acl.auth.php", "users.auth.php"] {
        std::fs::remove_file(etc.join(f)).expect("rm link");
        std::fs::copy(var.join("acl").join(f), etc.join(f)).expect("copy acl");
    }
    let mut users = std::fs::read_to_string(etc.join("users.auth.php")).expect("users");
    users.push_str(&format!("{USER}:{PASSWORD_MD5}:Test User:tester@localhost:user\n"));
    std::fs::write(etc.join("users.auth.php"), users).expect("users");

    let data = var.join("data");
    let sessions = var.join("sessions");
    std::fs::create_dir_all(&sessions).expect("sessions");
    let local = format!(
        "<?php\n/* warren's test copy (tests/support/dokuwiki.rs) */\n\
         $conf['title'] = 'warren test wiki';\n\
         $conf['license'] = 'cc-by-sa';\n\
         $conf['savedir'] = '{}';\n\
         $conf['useacl'] = {};\n\
         $conf['superuser'] = '@admin';\n\
         $conf['userewrite'] = 0;\n\
         $conf['xsendfile'] = {};\n",
        abs(&data),
        u8::from(opts.acl),
        opts.xsendfile
    );
    std::fs::write(etc.join("local.php"), local).expect("local.php");

    // preload.php: the same config cascade, rooted at the copy.
    let preload = site.join("inc/preload.php");
    let mut text = std::fs::read_to_string(&preload).expect("preload.php");
    for (from, to) in [
        ("'/etc/dokuwiki/'", format!("'{}/'", abs(&etc))),
        ("\"/etc/dokuwiki/preload.php\"", format!("\"{}/preload.php\"", abs(&etc))),
        ("'/etc/dokuwiki/farm'", format!("'{}/farm'", abs(&etc))),
        ("'/var/lib/dokuwiki/farm/data'", format!("'{}/farm/data'", abs(&var))),
    ] {
        assert!(text.contains(from), "{}: no {from} (Debian's preload.php changed?)", preload.display());
        text = text.replace(from, &to);
    }
    // Only comments may still name them.
    for quoted in ["'/etc/dokuwiki", "\"/etc/dokuwiki", "'/var/lib/dokuwiki", "\"/var/lib/dokuwiki"] {
        assert!(!text.contains(quoted), "{}: {quoted} left: {text}", preload.display());
    }
    // PHP's sessions in the copy, not /var/lib/php/sessions.
    text = text.replacen(
        "<?php\n",
        &format!("<?php\nini_set('session.save_path', '{}'); /* warren's test copy */\n", abs(&sessions)),
        1,
    );
    std::fs::write(&preload, text).expect("preload.php");

    // No link may lead back to the system's files.
    for top in [&site, &etc, &var] {
        for (link, target) in links(top) {
            let t = if target.is_absolute() { target } else { link.parent().expect("parent").join(target) };
            assert!(t.starts_with(&root), "{} -> {}: leads out of the copy", link.display(), t.display());
        }
    }
    let media = data.join("media");
    DokuWiki { dir, site, etc, var, data, media }
}

/// Every symbolic link below `dir` (not followed) and what it says.
fn links(dir: &Path) -> Vec<(PathBuf, PathBuf)> {
    let mut found = Vec::new();
    for e in std::fs::read_dir(dir).expect("read_dir").map(|e| e.expect("dir entry")) {
        let t = e.file_type().expect("file type");
        if t.is_symlink() {
            found.push((e.path(), std::fs::read_link(e.path()).expect("readlink")));
        } else if t.is_dir() {
            found.extend(links(&e.path()));
        }
    }
    found
}

/// A 2×2 RGB PNG (74 bytes), to upload.
pub const PNG: &[u8] = &[
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52, 0x00, 0x00, 0x00,
    0x02, 0x00, 0x00, 0x00, 0x02, 0x08, 0x02, 0x00, 0x00, 0x00, 0xfd, 0xd4, 0x9a, 0x73, 0x00, 0x00, 0x00, 0x11, 0x49,
    0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0xf8, 0xcf, 0xc0, 0xc0, 0xf0, 0x1f, 0x8c, 0x80, 0x18, 0x00, 0x1d, 0xf0, 0x03,
    0xfd, 0xd3, 0xd0, 0x7d, 0x26, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82,
];

/// One response as curl received it (the last one, if curl saw a
/// `100 Continue` first).
pub use super::Response;

impl Response {
    /// The `value` of the first `<input ... name="NAME" value="...">`.
    pub fn input_value(&self, name: &str) -> Option<String> {
        let text = self.text();
        let needle = format!("name=\"{name}\"");
        text.split("<input").skip(1).map(|tag| tag.split('>').next().unwrap_or("")).find_map(|tag| {
            if !tag.contains(&needle) {
                return None;
            }
            let v = tag.split("value=\"").nth(1)?;
            Some(v.split('"').next()?.to_owned())
        })
    }
}

/// A browser session against a served copy: curl with a cookie jar (in
/// the copy's temp dir). Every request goes through curl as a user's
/// browser would send it, so what the server sees is what a browser
/// sends; `Expect: 100-continue` is turned off for uploads.
///
/// The sequence that works (against lighttpd 1.4.69, and as the methods
/// below send it):
///
/// 1. `GET /` → 200 `text/html; charset=utf-8`, the start page (`doku.php`
///    as the index), `Set-Cookie: DokuWiki=SESSION; path=/; HttpOnly`.
/// 2. With [`Options::acl`] only: `POST /doku.php?id=start` form
///    `sectok=&id=start&do=login&u=tester&p=tester-pass` → 302, `Location:
///    http://HOST:PORT/doku.php?id=start`, `Set-Cookie: DW<md5>=...` (the
///    login).
/// 3. `GET /doku.php?id=PAGE&do=edit` → 200, a form `dw__editform` with
///    hidden `sectok` (empty when not logged in: DokuWiki checks it only
///    for logged-in users), `id`, `rev`, `date`, `prefix`, `suffix`,
///    `changecheck`, and a `wikitext` textarea.
/// 4. `POST /doku.php?id=PAGE&do=edit` form `id=PAGE&sectok=T&do[save]=1&
///    rev=0&date=&prefix=.&suffix=&summary=...&wikitext=TEXT` with the
///    cookies → **302** (not 303: DokuWiki's `send_redirect` only sets
///    `Location`), `Location: http://HOST:PORT/doku.php?id=PAGE`, empty
///    body. A wrong `sectok` (logged in) → 200 with "Security Token did
///    not match"; an anonymous save with the ACL on → 200, nothing saved.
/// 5. `GET /doku.php?id=PAGE` → 200 with the rendered text.
/// 6. Upload: `POST /doku.php?do=media&tab_files=files&tab_details=view&ns=`
///    multipart `sectok=T`, `ns=`, `upload=@FILE;type=image/png`,
///    `mediaid=NAME.png` → 200 with `<div class="success">Upload
///    successful`; the file is `data/media/NAME.png`. (Also accepted: the
///    AJAX uploader, `POST /lib/exe/ajax.php?call=mediaupload&ns=&qqfile=
///    NAME.png&sectok=T` with the raw bytes as body and
///    `Content-Type: application/octet-stream` → 200 JSON
///    `{"success":true,...}`.)
/// 7. `GET /lib/exe/fetch.php?media=NAME.png` → 200 `image/png`, the
///    bytes, `ETag`, `Last-Modified`, `Accept-Ranges: bytes`,
///    `Content-Disposition: inline; filename="NAME.png";`.
/// 8. Static assets: `GET /lib/tpl/dokuwiki/images/logo.png` → 200
///    `image/png` (through the `lib/tpl` link out of the root);
///    `GET /lib/exe/css.php` → 200 `text/css; charset=utf-8`;
///    `GET /lib/exe/js.php` → 200 `application/javascript; charset=utf-8`.
pub struct Client {
    base: String,
    jar: PathBuf,
    scratch: PathBuf,
}

impl Client {
    /// A new session (an empty cookie jar) against `http://127.0.0.1:PORT`.
    pub fn new(wiki: &DokuWiki, port: u16) -> Client {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let i = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Client {
            base: format!("http://127.0.0.1:{port}"),
            jar: wiki.root().join(format!("cookies-{i}.txt")),
            scratch: wiki.root().join(format!("upload-{i}")),
        }
    }

    /// The full URL of `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Runs curl with the cookie jar and `args`, the URL of `path` last.
    pub fn curl(&self, args: &[&str], path: &str) -> Response {
        let out = Command::new("curl")
            .args(["-s", "--max-time", "30", "-D", "-", "-H", "Expect:"])
            .arg("-b")
            .arg(&self.jar)
            .arg("-c")
            .arg(&self.jar)
            .args(args)
            .arg(self.url(path))
            .output()
            .expect("curl must be installed (scripts/test installs it)");
        assert!(out.status.success(), "curl {args:?} {path}: {}", String::from_utf8_lossy(&out.stderr));
        parse(&out.stdout)
            .unwrap_or_else(|| panic!("curl {path}: no response in {:?}", String::from_utf8_lossy(&out.stdout)))
    }

    /// `GET path`.
    pub fn get(&self, path: &str) -> Response {
        self.curl(&[], path)
    }

    /// Logs in as [`USER`] (step 2); returns the response (302).
    pub fn login(&self) -> Response {
        let u = format!("u={USER}");
        let p = format!("p={PASSWORD}");
        self.curl(&["-d", "sectok=", "-d", "id=start", "-d", "do=login", "-d", &u, "-d", &p], "/doku.php?id=start")
    }

    /// The edit form's `sectok` for `page` (step 3): empty unless logged in.
    pub fn sectok(&self, page: &str) -> String {
        let form = self.get(&format!("/doku.php?id={page}&do=edit"));
        assert_eq!(form.status, 200, "{}", form.text());
        assert!(form.text().contains("dw__editform"), "no edit form: {}", form.text());
        form.input_value("sectok").expect("a sectok input")
    }

    /// Opens the editor for `page`, and saves `text` with the form's
    /// `sectok` and the session's cookies (steps 3 and 4); returns the
    /// save's response (302 to the page when saved).
    pub fn edit_and_save(&self, page: &str, text: &str) -> Response {
        let tok = self.sectok(page);
        self.save(page, text, &tok)
    }

    /// Step 4 alone, with `sectok` as given.
    pub fn save(&self, page: &str, text: &str, sectok: &str) -> Response {
        let id = format!("id={page}");
        let tok = format!("sectok={sectok}");
        let text = format!("wikitext={text}");
        let args = [
            "-d",
            &id,
            "-d",
            &tok,
            "-d",
            "do[save]=1",
            "-d",
            "rev=0",
            "-d",
            "date=",
            "-d",
            "prefix=.",
            "-d",
            "suffix=",
            "-d",
            "summary=warren test",
            "--data-urlencode",
            &text,
        ];
        self.curl(&args, &format!("/doku.php?id={page}&do=edit"))
    }

    /// Uploads `bytes` as media `name` (in the root namespace) through
    /// the media manager's form, with the `sectok` of the start page's
    /// editor (step 6); returns the response (200, "Upload successful").
    pub fn upload(&self, name: &str, bytes: &[u8], content_type: &str) -> Response {
        let tok = format!("sectok={}", self.sectok("start"));
        std::fs::write(&self.scratch, bytes).expect("write upload");
        let file = format!("upload=@{};type={content_type};filename={name}", self.scratch.display());
        let id = format!("mediaid={name}");
        let args = ["-F", &tok, "-F", "ns=", "-F", &file, "-F", &id];
        self.curl(&args, "/doku.php?do=media&tab_files=files&tab_details=view&ns=")
    }
}

/// The last response in curl's `-D -` output followed by the body.
fn parse(out: &[u8]) -> Option<Response> {
    let mut rest = out;
    loop {
        let end = rest.windows(4).position(|w| w == b"\r\n\r\n")?;
        let head = std::str::from_utf8(&rest[..end]).ok()?;
        let body = &rest[end + 4..];
        let mut lines = head.split("\r\n");
        let status_line = lines.next()?;
        let version = status_line.split(' ').next()?.to_string();
        let status: u16 = status_line.split(' ').nth(1)?.parse().ok()?;
        if (100..200).contains(&status) {
            rest = body;
            continue;
        }
        let headers =
            lines.filter_map(|l| l.split_once(':')).map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned())).collect();
        return Some(Response { status, version, headers, body: body.to_vec() });
    }
}

/// The visit both servers get (tests/php_app.rs for warren,
/// tests/dokuwiki_lighttpd.rs for lighttpd), anonymous with the ACL
/// off: the start page (and its session cookie), an edit and save (a
/// form POST with the cookie, answered by a redirect), the page shown,
/// an upload through the media manager and its download (with DokuWiki's
/// own 304), an image through the `lib/tpl` link out of the document
/// root, the generated CSS and JS, an AJAX call, and the directories
/// denied with 403. `page` and `media` name what it writes.
pub fn visit(wiki: &DokuWiki, c: &Client, page: &str, media: &str) {
    let start = c.get("/");
    assert_eq!(start.status, 200, "{}", start.text());
    assert_eq!(start.header("content-type"), Some("text/html; charset=utf-8"));
    assert!(start.header("set-cookie").is_some_and(|v| v.starts_with("DokuWiki=")), "{:?}", start.headers);
    assert!(start.text().contains("warren test wiki"), "the fixture's local.php is read");

    // Anonymous with the ACL off: the sectok is empty, the save redirects.
    assert_eq!(c.sectok(page), "");
    let saved = c.edit_and_save(page, "Hello from **warren's** fixture.");
    assert_eq!(saved.status, 302, "{}", saved.text());
    let to = c.url(&format!("/doku.php?id={page}"));
    assert_eq!(saved.header("location"), Some(to.as_str()));
    assert!(saved.body.is_empty());
    let shown = c.get(&format!("/doku.php?id={page}"));
    assert!(shown.text().contains("Hello from <strong>warren&#039;s</strong> fixture."), "{}", shown.text());
    assert_eq!(wiki.page_text(page).as_deref(), Some("Hello from **warren's** fixture."));

    let up = c.upload(media, PNG, "image/png");
    assert_eq!(up.status, 200);
    assert!(up.text().contains("<div class=\"success\">Upload successful"), "{}", up.text());
    assert_eq!(std::fs::read(wiki.media.join(media)).expect("uploaded"), PNG);
    let fetch = format!("/lib/exe/fetch.php?media={media}");
    let img = c.get(&fetch);
    assert_eq!((img.status, img.header("content-type")), (200, Some("image/png")));
    assert_eq!(img.body, PNG);
    let etag = img.header("etag").expect("etag").to_string();
    assert_eq!(c.curl(&["-H", &format!("If-None-Match: {etag}")], &fetch).status, 304);

    // Through the lib/tpl link that leads out of the document root.
    let logo = c.get("/lib/tpl/dokuwiki/images/logo.png");
    assert_eq!((logo.status, logo.header("content-type")), (200, Some("image/png")));
    assert_eq!(logo.body, std::fs::read(wiki.var.join("lib/tpl/dokuwiki/images/logo.png")).expect("logo"));
    assert!(logo.header("etag").is_some(), "a static file, with validators");
    let css = c.get("/lib/exe/css.php");
    assert_eq!((css.status, css.header("content-type")), (200, Some("text/css; charset=utf-8")));
    // DokuWiki says application/javascript; lighttpd 1.4.69 passes on
    // text/javascript (RFC 9239's name) instead, warren the script's own.
    let js = c.get("/lib/exe/js.php");
    assert_eq!(js.status, 200);
    let js_types = ["application/javascript; charset=utf-8", "text/javascript; charset=utf-8"];
    assert!(js.header("content-type").is_some_and(|t| js_types.contains(&t)), "{:?}", js.headers);
    // (The few scripts behind the links that are run directly,
    // /lib/tpl/index.php and /lib/plugins/styling/popup.php, fail with a
    // 500 on Debian's layout whatever the server: they find inc/ through
    // var/inc, as PHP's __FILE__ is the link's target, but not vendor/.)
    let ajax = c.get("/lib/exe/ajax.php?call=linkwiz&q=play");
    assert_eq!(ajax.status, 200, "{}", ajax.text());

    for denied in [
        "/inc/preload.php",
        "/data/pages/start.txt",
        "/conf/",
        "/bin/indexer.php",
        "/vendor/autoload.php",
        "/.htaccess",
    ] {
        assert_eq!(c.get(denied).status, 403, "{denied}");
    }
    // Nothing written to the system's copy.
    let page_file = format!("{}.txt", page.replace(':', "/"));
    assert!(!Path::new(VAR).join("data/pages").join(page_file).exists());
    assert!(!Path::new(VAR).join("data/media").join(media).exists());
}

/// With the ACL on (`Options::acl`), against the server on `port`: an
/// anonymous save is refused; a login (a POST setting the auth cookie,
/// answered by a redirect) gives a real security token; a forged token
/// is refused; the real one saves; an upload works.
pub fn visit_with_acl(wiki: &DokuWiki, port: u16) {
    let anon = Client::new(wiki, port);
    assert_eq!(anon.save("playground:acl", "anonymous", "").status, 200);
    assert_eq!(wiki.page_text("playground:acl"), None, "an anonymous save is refused");
    let c = Client::new(wiki, port);
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

/// A media file sent by the server on DokuWiki's `xsendfile` (the wiki
/// installed with it): `sent.png` whole, then a range of it.
pub fn fetch_sent(wiki: &DokuWiki, port: u16) {
    std::fs::write(wiki.media.join("sent.png"), PNG).expect("media");
    let c = Client::new(wiki, port);
    let img = c.get("/lib/exe/fetch.php?media=sent.png");
    assert_eq!((img.status, img.header("content-type")), (200, Some("image/png")));
    assert_eq!((img.header("x-sendfile"), img.header("x-lighttpd-send-file")), (None, None));
    assert_eq!(img.body, PNG);
    let part = c.curl(&["-r", "1-3"], "/lib/exe/fetch.php?media=sent.png");
    assert_eq!((part.status, &part.body[..]), (206, &PNG[1..4]));
}
