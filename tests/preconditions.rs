//! Conditional requests in the order of RFC 9110 §13.2.2: If-Match and
//! If-Unmodified-Since (412) before If-None-Match and If-Modified-Since
//! (304) before Range, for plain files and zip entries, on GET and HEAD.

mod support;

use support::*;

/// One request with extra header lines; returns the response.
fn ask(server: &Server, method: &str, path: &str, extra: &str) -> Response {
    request(server, &format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n{extra}\r\n"))
}

/// A day before `date` (an HTTP date).
fn day_before(date: &str) -> String {
    let t = httpdate::parse_http_date(date).expect("date");
    httpdate::fmt_http_date(t - std::time::Duration::from_secs(86_400))
}

/// Runs every precondition case against `path` on `server`, fetched with
/// `accept` as Accept-Encoding.
fn check(server: &Server, path: &str, accept: &str) {
    let ae = format!("Accept-Encoding: {accept}\r\n");
    let plain = ask(server, "GET", path, &ae);
    assert_eq!(plain.status, 200, "{path}");
    let etag = plain.header("etag").expect("ETag").to_string();
    let lm = plain.header("last-modified").expect("Last-Modified").to_string();
    let failing = [
        "If-Match: \"other\"\r\n".to_string(),
        format!("If-Match: W/{etag}\r\n"),
        "If-Match: \"a\", \"b\"\r\n".to_string(),
        format!("If-Unmodified-Since: {}\r\n", day_before(&lm)),
        // With a Range too: 412 comes first, no 206.
        "If-Match: \"other\"\r\nRange: bytes=0-3\r\n".to_string(),
        format!("If-Unmodified-Since: {}\r\nRange: bytes=0-3\r\n", day_before(&lm)),
        // 412 comes before 304, too.
        format!("If-Match: \"other\"\r\nIf-None-Match: {etag}\r\n"),
    ];
    for extra in &failing {
        for method in ["GET", "HEAD"] {
            let r = ask(server, method, path, &format!("{ae}{extra}"));
            assert_eq!(r.status, 412, "{method} {path} with {extra:?}");
            if method == "GET" {
                // The styled error page (ERR-1).
                assert!(r.text().contains("/error.css") && r.text().contains("412"), "{}", r.text());
            }
        }
    }
    let passing = [
        format!("If-Match: {etag}\r\n"),
        format!("If-Match: \"x\", {etag}\r\n"),
        "If-Match: *\r\n".to_string(),
        format!("If-Unmodified-Since: {lm}\r\n"),
        // If-Match decides when present: If-Unmodified-Since is not read.
        format!("If-Match: {etag}\r\nIf-Unmodified-Since: {}\r\n", day_before(&lm)),
        "If-Unmodified-Since: not a date\r\n".to_string(),
    ];
    for extra in &passing {
        let r = ask(server, "GET", path, &format!("{ae}{extra}"));
        assert_eq!(r.status, 200, "GET {path} with {extra:?}");
        assert_eq!(r.body, plain.body);
    }
    // A passing If-Match still lets If-None-Match answer 304.
    let r = ask(server, "GET", path, &format!("{ae}If-Match: {etag}\r\nIf-None-Match: {etag}\r\n"));
    assert_eq!(r.status, 304);
}

#[test]
fn preconditions_on_files() {
    let (_t, root) = site();
    let server = Server::files(&root);
    check(&server, "/index.html", "identity");
    check(&server, "/data.bin", "identity");
    // A passing If-Unmodified-Since with a Range gives the range.
    let lm = get(&server, "/data.bin").header("last-modified").expect("lm").to_string();
    let r = ask(&server, "GET", "/data.bin", &format!("If-Unmodified-Since: {lm}\r\nRange: bytes=0-3\r\n"));
    assert_eq!(r.status, 206);
    assert_eq!(r.body, pattern(4));
}

#[test]
fn preconditions_on_zip_entries() {
    let (t, root) = site();
    // The site's link out of it would refuse the pack.
    std::fs::remove_file(root.join("escape")).expect("rm");
    let zip = t.path().join("site.zip");
    let out = std::fs::File::create(&zip).expect("create");
    warren::pack::pack_dir(&root, out).expect("pack");
    let dir = t.path().join("served");
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::rename(&zip, dir.join("site.zip")).expect("move");
    let server = Server::start(
        warren::ContextInfo::new()
            .vhost(vhost().mount(warren::Mount::files("/", warren::default_fops(&dir).expect("fops")))),
    );
    // Stored as deflate: sent as gzip to one client, inflated to another.
    check(&server, "/site.zip/data.bin", "gzip");
    check(&server, "/site.zip/data.bin", "identity");
    check(&server, "/site.zip/index.html", "gzip");
}

#[test]
fn curl_sees_412_for_a_stale_if_match() {
    let (_t, root) = site();
    let server = Server::files(&root);
    let url = server.url("/index.html");
    let (ok, out) = curl(&["-o", "/dev/null", "-w", "%{http_code}", "-H", "If-Match: \"stale\"", &url]);
    assert!(ok);
    assert_eq!(String::from_utf8_lossy(&out), "412");
}
