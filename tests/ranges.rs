//! Range requests and Cache-Control on file responses (spec RANGE-*,
//! CACHE-1/2), over a real socket.

mod support;

use std::io::Write;
use support::*;
use warren::http::CachePolicy;
use warren::{ContextInfo, Mount};

fn fetch(server: &Server, path: &str, extra: &str) -> Response {
    request(server, &format!("GET {path} HTTP/1.1\r\nHost: x\r\n{extra}Connection: close\r\n\r\n"))
}

fn data() -> Vec<u8> {
    pattern(100 * 1024 + 7)
}

#[test]
fn single_ranges() {
    // RANGE-1..3, without lws's bugs
    let (_t, root) = site();
    let server = Server::files(&root);
    let all = data();
    let len = all.len();
    let cases: Vec<(String, usize, usize)> = vec![
        ("bytes=0-9".into(), 0, 9),
        ("bytes=100-".into(), 100, len - 1),
        ("bytes=-10".into(), len - 10, len - 1),
        ("bytes=-999999".into(), 0, len - 1),
        (format!("bytes=50000-{}", len * 2), 50000, len - 1),
        ("bytes = 70000-70000".into(), 70000, 70000),
    ];
    for (spec, a, b) in cases {
        let r = fetch(&server, "/data.bin", &format!("Range: {spec}\r\n"));
        assert_eq!(r.status, 206, "{spec}");
        assert_eq!(r.header("content-range"), Some(format!("bytes {a}-{b}/{len}").as_str()), "{spec}");
        assert_eq!(r.header("content-length"), Some((b - a + 1).to_string().as_str()));
        assert!(r.body == all[a..=b], "{spec}: wrong bytes");
    }
    let r = fetch(&server, "/data.bin", "");
    assert_eq!((r.status, r.header("accept-ranges")), (200, Some("bytes")));
    // curl's -r, and a resumed download with -C.
    let (ok, body) = curl(&["-r", "10-19", &server.url("/data.bin")]);
    assert!(ok);
    assert_eq!(body, &all[10..20]);
}

#[test]
fn unsatisfiable_and_ignored_ranges() {
    let (_t, root) = site();
    let server = Server::files(&root);
    let len = data().len();
    for spec in [format!("bytes={len}-"), "bytes=-0".to_string(), format!("bytes={}-{}", len + 5, len + 9)] {
        let r = fetch(&server, "/data.bin", &format!("Range: {spec}\r\n"));
        assert_eq!(r.status, 416, "{spec}");
        assert_eq!(r.header("content-range"), Some(format!("bytes */{len}").as_str()));
        assert!(r.text().contains("<h1>416</h1>"));
    }
    // Another unit, bad syntax, too many ranges: the whole file (RANGE-1 [REC]).
    let many = format!("bytes={}", vec!["1-1"; 65].join(","));
    for spec in ["items=0-9", "bytes=9-1", "bytes=x-y", many.as_str()] {
        let r = fetch(&server, "/data.bin", &format!("Range: {spec}\r\n"));
        assert_eq!((r.status, r.body.len()), (200, len), "{}", &spec[..spec.len().min(20)]);
    }
    // HEAD ignores Range.
    let r = request(&server, "HEAD /data.bin HTTP/1.1\r\nHost: x\r\nRange: bytes=0-0\r\nConnection: close\r\n\r\n");
    assert_eq!(r.status, 200);
}

#[test]
fn multiple_ranges_are_multipart() {
    // RANGE-4 [REC]: RFC 9110 §14.6 framing.
    let (_t, root) = site();
    let server = Server::files(&root);
    let all = data();
    let len = all.len();
    let r = fetch(&server, "/data.bin", "Range: bytes=0-4, 100-199, -3\r\n");
    assert_eq!(r.status, 206);
    assert!(r.header("content-range").is_none());
    let parts = multipart(&r);
    let want = [(0, 4), (100, 199), (len - 3, len - 1)];
    assert_eq!(parts.len(), 3);
    for ((head, bytes), (a, b)) in parts.iter().zip(want) {
        assert!(head.contains("Content-Type: application/octet-stream"), "{head}");
        assert!(head.contains(&format!("Content-Range: bytes {a}-{b}/{len}")), "{head}");
        assert!(*bytes == all[a..=b]);
    }
}

/// The parts of a `multipart/byteranges` response: each part's head and
/// bytes, after checking the framing (RFC 9110 §14.6).
fn multipart(r: &Response) -> Vec<(String, Vec<u8>)> {
    let ct = r.header("content-type").unwrap_or_default().to_string();
    let boundary = ct.strip_prefix("multipart/byteranges; boundary=").expect("boundary").to_string();
    assert_eq!(r.header("content-length"), Some(r.body.len().to_string().as_str()));
    // Split on the delimiter and check each part.
    let delim = format!("\r\n--{boundary}");
    let mut parts = Vec::new();
    let mut rest = &r.body[..];
    while let Some(i) = find(rest, delim.as_bytes()) {
        rest = &rest[i + delim.len()..];
        if rest.starts_with(b"--\r\n") {
            break;
        }
        let head_end = find(rest, b"\r\n\r\n").expect("part head");
        let head = String::from_utf8_lossy(&rest[..head_end]).into_owned();
        let next = find(&rest[head_end + 4..], delim.as_bytes()).expect("next delimiter");
        parts.push((head, rest[head_end + 4..head_end + 4 + next].to_vec()));
        rest = &rest[head_end + 4..];
    }
    assert!(rest.starts_with(b"--\r\n"), "closing delimiter");
    parts
}

/// Issue 10 item 14: overlapping and adjacent ranges are coalesced, so no
/// `Range` header makes a 206 larger than the file and its part headers
/// (64 copies of `bytes=0-` once gave 64 copies of the file).
#[test]
fn overlapping_ranges_are_coalesced() {
    let (_t, root) = site();
    let server = Server::files(&root);
    let all = data();
    let len = all.len();
    let same = format!("bytes={}", vec!["0-"; 64].join(","));
    let r = fetch(&server, "/data.bin", &format!("Range: {same}\r\n"));
    assert_eq!(r.status, 206);
    assert_eq!(r.header("content-range"), Some(format!("bytes 0-{}/{len}", len - 1).as_str()));
    assert_eq!(r.body.len(), len, "the file once");
    assert!(r.body == all);
    // Overlapping, adjacent and out of order: two parts, ascending.
    let r = fetch(&server, "/data.bin", "Range: bytes=5000-5999, 0-99, 50-149, 150-199, 5500-5600\r\n");
    assert_eq!(r.status, 206);
    let parts = multipart(&r);
    assert_eq!(parts.len(), 2);
    for ((head, bytes), (a, b)) in parts.iter().zip([(0, 199), (5000, 5999)]) {
        assert!(head.contains(&format!("Content-Range: bytes {a}-{b}/{len}")), "{head}");
        assert!(*bytes == all[a..=b]);
    }
    // 64 ranges that each overlap the next cover the file once, whatever the order.
    let step = len / 64;
    let specs: Vec<String> = (0..64).rev().map(|i| format!("{}-{}", i * step, i * step + 2 * step)).collect();
    let r = fetch(&server, "/data.bin", &format!("Range: bytes={}\r\n", specs.join(",")));
    assert_eq!(r.status, 206);
    assert!(r.body.len() <= len, "{} bytes for a {len}-byte file", r.body.len());
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[test]
fn if_range() {
    // CACHE-5 [REC]: a matching strong ETag or exact date keeps the range.
    let (_t, root) = site();
    let server = Server::files(&root);
    let full = fetch(&server, "/data.bin", "");
    let etag = full.header("etag").unwrap_or_default().to_string();
    let lm = full.header("last-modified").unwrap_or_default().to_string();
    let ask = |ir: &str| fetch(&server, "/data.bin", &format!("Range: bytes=0-0\r\nIf-Range: {ir}\r\n")).status;
    assert_eq!(ask(&etag), 206);
    assert_eq!(ask(&lm), 206);
    assert_eq!(ask("\"other\""), 200);
    assert_eq!(ask(&format!("W/{etag}")), 200, "weak tags never match If-Range");
    assert_eq!(ask("Sat, 01 Jan 2000 00:00:00 GMT"), 200);
}

#[test]
fn ranges_meet_zip_entries() {
    // RANGE-5 [REC]: gzip passthrough and inflated entries ignore Range;
    // stored entries honour it.
    let t = tempfile::tempdir().expect("tempdir");
    let zip_path = t.path().join("s.zip");
    let mut w = zip::ZipWriter::new(std::fs::File::create(&zip_path).expect("create"));
    let text = "range me ".repeat(5000);
    let opts = zip::write::SimpleFileOptions::default();
    w.start_file("t.txt", opts.compression_method(zip::CompressionMethod::Deflated)).expect("start");
    w.write_all(text.as_bytes()).expect("write");
    w.start_file("s.bin", opts.compression_method(zip::CompressionMethod::Stored)).expect("start");
    w.write_all(&data()).expect("write");
    w.finish().expect("finish");
    let server = Server::start(ContextInfo::new().vhost(vhost().mount(Mount::dir("/", &zip_path))));
    let r = fetch(&server, "/t.txt", "Accept-Encoding: gzip\r\nRange: bytes=0-9\r\n");
    assert_eq!((r.status, r.header("content-encoding"), r.header("accept-ranges")), (200, Some("gzip"), None));
    let r = fetch(&server, "/t.txt", "Range: bytes=0-9\r\n");
    assert_eq!((r.status, r.body.len()), (200, text.len()));
    let r = fetch(&server, "/s.bin", "Range: bytes=5-14, 1000-1001\r\n");
    assert_eq!(r.status, 206);
    let r = fetch(&server, "/s.bin", "Range: bytes=70000-70009\r\n");
    assert_eq!((r.status, r.body.as_slice()), (206, &data()[70000..70010]));
}

#[test]
fn cache_control_per_mount() {
    // CACHE-1, CACHE-2 [REC]
    let (_t, root) = site();
    let policies = [
        (CachePolicy { max_age: 60, reuse: true, ..CachePolicy::default() }, "private, max-age=60"),
        (
            CachePolicy { max_age: 3600, reuse: true, revalidate: true, intermediaries: true, no_cache: false },
            "must-revalidate, public, max-age=3600",
        ),
        (CachePolicy { no_cache: true, ..CachePolicy::default() }, "no-cache"),
        (CachePolicy::default(), "no-store"),
    ];
    for (policy, want) in policies {
        let server = Server::start(ContextInfo::new().vhost(vhost().mount(files_mount("/", &root).cache(policy))));
        let r = fetch(&server, "/data.bin", "");
        assert_eq!(r.header("cache-control"), Some(want));
        let etag = r.header("etag").unwrap_or_default().to_string();
        let r = fetch(&server, "/data.bin", &format!("If-None-Match: {etag}\r\n"));
        assert_eq!((r.status, r.header("cache-control")), (304, Some(want)));
        let r = fetch(&server, "/data.bin", "Range: bytes=0-0\r\n");
        assert_eq!((r.status, r.header("cache-control")), (206, Some(want)));
        assert_eq!(fetch(&server, "/missing", "").header("cache-control"), None, "not on errors");
    }
    let server = Server::files(&root);
    assert_eq!(fetch(&server, "/data.bin", "").header("cache-control"), None, "no policy, no header");
}

#[test]
fn redirect_mounts() {
    // REDIR-2, REDIR-4; append-path [v5]
    let (_t, root) = site();
    let server = Server::start(
        ContextInfo::new().vhost(
            vhost()
                .mount(files_mount("/", &root))
                .mount(Mount::redirect("/old", "https://example.com/new", false))
                .mount(Mount::redirect("/moved", "https://example.com/here", true)),
        ),
    );
    let r = fetch(&server, "/old/a/b?q=1", "");
    assert_eq!((r.status, r.header("location")), (301, Some("https://example.com/new")));
    assert_eq!(r.header("content-length"), Some("0"));
    let r = fetch(&server, "/moved/a%20b/c", "");
    assert_eq!((r.status, r.header("location")), (301, Some("https://example.com/here/a%20b/c")));
    // Decoded CR/LF never reaches the header raw.
    let r = fetch(&server, "/moved/x%0D%0ASet-Cookie:%20evil", "");
    assert_eq!(r.header("location"), Some("https://example.com/here/x%0D%0ASet-Cookie:%20evil"));
    assert!(r.header("set-cookie").is_none());
    assert_eq!(fetch(&server, "/index.html", "").status, 200);
}

#[test]
fn basic_auth_mounts() {
    // AUTH-1, AUTH-2
    let (t, root) = site();
    let pw = t.path().join("passwords");
    std::fs::write(&pw, "alice:wonderland\nbob:builder\n").expect("write");
    let server = Server::start(
        ContextInfo::new()
            .vhost(vhost().mount(files_mount("/", &root)).mount(files_mount("/private", &root).basic_auth(&pw))),
    );
    let r = fetch(&server, "/private/index.html", "");
    assert_eq!((r.status, r.header("www-authenticate")), (401, Some("Basic realm=\"lwsws\"")));
    assert_eq!((r.header("content-length"), r.body.len()), (Some("0"), 0));
    // curl -u sends Basic credentials.
    let (ok, body) = curl(&["-u", "alice:wonderland", &server.url("/private/index.html")]);
    assert!(ok);
    assert_eq!(body, b"<h1>root index</h1>\n");
    let (_, code) = curl(&["-u", "alice:wrong", "-o", "/dev/null", "-w", "%{http_code}", &server.url("/private/")]);
    assert_eq!(code, b"401");
    let r = fetch(&server, "/private/index.html", "Authorization: Bearer xyz\r\n");
    assert_eq!(r.status, 403);
    assert_eq!(fetch(&server, "/index.html", "").status, 200, "other mounts are open");
}

#[test]
fn extra_mimetypes_and_error_pages() {
    // FILE-6 (extra-mimetypes with "*"), per-status error pages in place.
    let (_t, root) = site();
    std::fs::write(root.join("app.properties"), b"k=v\n").expect("write");
    std::fs::write(root.join("x.unknownext"), b"?\n").expect("write");
    std::fs::write(root.join("oops.html"), b"<p>our own 404</p>\n").expect("write");
    let types =
        vec![(".properties".to_string(), "text/x-java-properties".to_string()), ("*".to_string(), String::new())];
    let server = Server::start(
        ContextInfo::new()
            .vhost(vhost().mount(files_mount("/", &root).extra_mimetypes(types)).error_page(404, "/oops.html")),
    );
    assert_eq!(fetch(&server, "/app.properties", "").header("content-type"), Some("text/x-java-properties"));
    assert_eq!(fetch(&server, "/APP.PROPERTIES", "").status, 404, "paths stay case-sensitive");
    assert_eq!(fetch(&server, "/x.unknownext", "").header("content-type"), None, "\"*\": \"\" sends none");
    assert_eq!(fetch(&server, "/index.html", "").header("content-type"), Some("text/html"));
    let r = fetch(&server, "/missing", "");
    assert_eq!((r.status, r.text().as_str()), (404, "<p>our own 404</p>\n"));
    assert_eq!(r.header("content-type"), Some("text/html"));
    // Without extra types, unknown suffixes are octet-stream.
    let plain = Server::files(&root);
    assert_eq!(fetch(&plain, "/x.unknownext", "").header("content-type"), Some("application/octet-stream"));
}
