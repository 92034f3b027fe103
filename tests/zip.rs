//! Sites served from zip archives, over a real socket (spec ZIP-*, VFS-*,
//! CACHE-3/4): gzip passthrough, inflation, stored entries, HEAD, ETags,
//! directories, atomic replacement, and every kind of bad archive.

mod support;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::*;
use warren::vfs::{FileHandle, FileInfo, Fops, OpenFlags, PlainFops, VPath, ZipFops, GZIP_HEADER};
use warren::{ContextInfo, Mount};
use zip::write::SimpleFileOptions;
use zip::CompressionMethod;

/// Text that deflates well but not trivially.
fn page(n: usize) -> Vec<u8> {
    let words = ["warren", "serves", "zip", "archives", "with", "gzip", "passthrough", "and", "care", "<p>", "</p>\n"];
    let mut out = Vec::with_capacity(n + 16);
    let mut i = 0usize;
    while out.len() < n {
        out.extend_from_slice(words[(i * 7 + i / 13) % words.len()].as_bytes());
        out.extend_from_slice(format!(" {} ", i % 1000).as_bytes());
        i += 1;
    }
    out.truncate(n);
    out
}

fn write_zip(path: &Path, files: &[(&str, &[u8], CompressionMethod)]) {
    let mut w = zip::ZipWriter::new(std::fs::File::create(path).expect("create"));
    for (name, data, method) in files {
        w.start_file(*name, SimpleFileOptions::default().compression_method(*method)).expect("start");
        w.write_all(data).expect("write");
    }
    w.finish().expect("finish");
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut child = std::process::Command::new("gzip")
        .arg("-dc")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("gzip must be installed");
    let mut stdin = child.stdin.take().expect("stdin");
    let input = bytes.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output().expect("gzip output");
    writer.join().expect("join").expect("write to gzip");
    assert!(out.status.success(), "gzip -d failed");
    out.stdout
}

const GZ: &str = "Accept-Encoding: gzip, deflate\r\n";

fn fetch(server: &Server, method: &str, path: &str, extra: &str) -> Response {
    request(server, &format!("{method} {path} HTTP/1.1\r\nHost: x\r\n{extra}Connection: close\r\n\r\n"))
}

struct Site {
    _t: tempfile::TempDir,
    dir: PathBuf,
    zip: PathBuf,
    page: Vec<u8>,
    big: Vec<u8>,
}

/// site.zip with page.html (100 KiB, deflated), big.txt (5 MiB,
/// deflated), docs/index.html (deflated), logo.png (stored) and
/// tiny.txt (deflated, 5 bytes).
fn site_zip() -> Site {
    let t = tempfile::tempdir().expect("tempdir");
    let dir = t.path().to_path_buf();
    let zip = dir.join("site.zip");
    let page = page(100 * 1024);
    let big: Vec<u8> = page.iter().cycle().take(5 << 20).enumerate().map(|(i, b)| b ^ ((i >> 16) as u8 & 3)).collect();
    write_zip(
        &zip,
        &[
            ("page.html", &page, CompressionMethod::Deflated),
            ("big.txt", &big, CompressionMethod::Deflated),
            ("docs/index.html", b"<p>docs</p>\n", CompressionMethod::Deflated),
            ("logo.png", b"\x89PNG not really", CompressionMethod::Stored),
            ("tiny.txt", b"tiny\n", CompressionMethod::Deflated),
        ],
    );
    Site { _t: t, dir, zip, page, big }
}

fn serve_zip(s: &Site) -> Server {
    Server::start(ContextInfo::new().vhost(vhost().mount(Mount::dir("/", &s.zip))))
}

#[test]
fn gzip_passthrough_sends_the_stored_deflate_stream() {
    // ZIP-5
    let s = site_zip();
    let server = serve_zip(&s);
    let r = fetch(&server, "GET", "/page.html", GZ);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    assert_eq!(r.header("vary"), Some("Accept-Encoding"));
    assert_eq!(r.header("content-type"), Some("text/html"));
    let raw = raw_entry(&s.zip, "page.html");
    let mut want = GZIP_HEADER.to_vec();
    want.extend_from_slice(&raw);
    want.extend_from_slice(&crc32fast::hash(&s.page).to_le_bytes());
    want.extend_from_slice(&(s.page.len() as u32).to_le_bytes());
    assert_eq!(r.header("content-length"), Some(want.len().to_string().as_str()));
    assert!(r.body == want, "body is not header + raw deflate + trailer");
    assert_eq!(gunzip(&r.body), s.page);
    // curl decodes it too.
    let (ok, body) = curl(&["--compressed", &server.url("/page.html")]);
    assert!(ok);
    assert_eq!(body, s.page);
}

#[test]
fn other_clients_get_the_entry_inflated() {
    // ZIP-6
    let s = site_zip();
    let server = serve_zip(&s);
    for (path, want) in [("/page.html", &s.page), ("/big.txt", &s.big)] {
        let r = fetch(&server, "GET", path, "");
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(r.header("content-encoding"), None);
        assert_eq!(r.header("vary"), Some("Accept-Encoding"));
        assert_eq!(r.header("content-length"), Some(want.len().to_string().as_str()));
        assert!(r.body == *want, "{path}: inflated body differs");
    }
    // gzip;q=0 is a refusal.
    let r = fetch(&server, "GET", "/page.html", "Accept-Encoding: gzip;q=0, br\r\n");
    assert_eq!((r.header("content-encoding"), r.body.len()), (None, s.page.len()));
    let r = fetch(&server, "GET", "/tiny.txt", "");
    assert_eq!(r.text(), "tiny\n");
}

#[test]
fn stored_entries_head_and_directories() {
    // ZIP-4, FILE-8, ZIP-9 [REC]
    let s = site_zip();
    let server = serve_zip(&s);
    let r = fetch(&server, "GET", "/logo.png", GZ);
    assert_eq!((r.status, r.header("content-encoding")), (200, None));
    assert_eq!(r.body, b"\x89PNG not really");
    assert_eq!(r.header("content-type"), Some("image/png"));

    let get = fetch(&server, "GET", "/big.txt", GZ);
    let head = fetch(&server, "HEAD", "/big.txt", GZ);
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    for h in ["content-length", "content-encoding", "etag", "last-modified", "vary"] {
        assert_eq!(head.header(h), get.header(h), "{h}");
    }

    let r = fetch(&server, "GET", "/docs", "");
    assert_eq!((r.status, r.header("location")), (301, Some("http://x/docs/")));
    assert_eq!(fetch(&server, "GET", "/docs/", "").text(), "<p>docs</p>\n");
    assert_eq!(fetch(&server, "GET", "/nope.html", "").status, 404);
}

#[test]
fn etags_and_304() {
    // CACHE-3 [REC], CACHE-4 [REC]
    let s = site_zip();
    let server = serve_zip(&s);
    let gz = fetch(&server, "GET", "/page.html", GZ);
    let plain = fetch(&server, "GET", "/page.html", "");
    let (Some(gz_tag), Some(plain_tag)) = (gz.header("etag"), plain.header("etag")) else {
        panic!("no ETag");
    };
    assert_ne!(gz_tag, plain_tag, "the two forms need different ETags");
    let inm = |tag: &str, ae: &str| fetch(&server, "GET", "/page.html", &format!("{ae}If-None-Match: {tag}\r\n"));
    let r = inm(gz_tag, GZ);
    assert_eq!(r.status, 304);
    assert_eq!(r.header("etag"), Some(gz_tag));
    assert_eq!(r.header("vary"), Some("Accept-Encoding"));
    assert!(r.header("content-length").is_none() && r.body.is_empty());
    assert_eq!(inm(plain_tag, "").status, 304);
    assert_eq!(inm(&format!("\"nope\", W/{plain_tag}"), "").status, 304, "weak comparison, lists");
    assert_eq!(inm("*", "").status, 304);
    assert_eq!(inm(plain_tag, GZ).status, 200, "identity tag does not validate the gzip form");
    let lm = plain.header("last-modified").unwrap_or_default();
    let r = fetch(&server, "GET", "/page.html", &format!("If-Modified-Since: {lm}\r\n"));
    assert_eq!(r.status, 304);
    let r = fetch(&server, "GET", "/page.html", "If-Modified-Since: Wed, 01 Jan 1975 00:00:00 GMT\r\n");
    assert_eq!(r.status, 200);
}

#[test]
fn zips_inside_a_directory_root() {
    // ZIP-1
    let s = site_zip();
    std::fs::write(s.dir.join("plain.txt"), b"plain\n").expect("write");
    let server = Server::start(ContextInfo::new().vhost(vhost().mount(Mount::dir("/", &s.dir))));
    assert_eq!(fetch(&server, "GET", "/plain.txt", "").text(), "plain\n");
    let r = fetch(&server, "GET", "/site.zip/page.html", "");
    assert!(r.body == s.page);
    assert_eq!(fetch(&server, "GET", "/site.zip/docs/", "").text(), "<p>docs</p>\n");
    let r = fetch(&server, "GET", "/site.zip/", "");
    assert_eq!(r.status, 404, "no index.html in the archive");
    // The archive itself downloads as a file.
    let r = fetch(&server, "GET", "/site.zip", "");
    assert_eq!(r.body, std::fs::read(&s.zip).expect("read"));
}

#[test]
fn replacing_the_archive_is_atomic() {
    let s = site_zip();
    // No open-file cache: every request looks at the file on disk.
    let fops = ZipFops::archive(Arc::new(PlainFops::new(&s.dir).expect("fops")), VPath::new("site.zip").expect("path"));
    let server = Server::start(ContextInfo::new().vhost(vhost().mount(Mount::files("/", Arc::new(fops)))));
    // Start a large download and read only its beginning.
    let mut slow = server.connect();
    slow.write_all(b"GET /big.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").expect("write");
    let mut first = vec![0u8; 4096];
    slow.read_exact(&mut first).expect("start of download");
    // Deploy a new archive: write beside, rename over.
    let next = s.dir.join("next.zip");
    write_zip(&next, &[("page.html", b"version two\n", CompressionMethod::Deflated)]);
    std::fs::rename(&next, &s.zip).expect("rename");
    assert_eq!(fetch(&server, "GET", "/page.html", "").text(), "version two\n");
    assert_eq!(fetch(&server, "GET", "/big.txt", "").status, 404);
    // The download in flight finishes intact, from the old archive.
    let mut rest = Vec::new();
    slow.read_to_end(&mut rest).expect("rest");
    let mut all = first;
    all.extend(rest);
    let split = all.windows(4).position(|w| w == b"\r\n\r\n").expect("head") + 4;
    assert!(all[split..] == s.big[..], "old download corrupted by the swap");
}

// ---- bad archives -----------------------------------------------------------

/// Offsets of an entry's central and local headers.
fn headers_of(bytes: &[u8], name: &str) -> (usize, usize) {
    let mut i = 0;
    while i + 46 <= bytes.len() {
        if bytes[i..i + 4] == [0x50, 0x4b, 0x01, 0x02] {
            let n = u16::from_le_bytes([bytes[i + 28], bytes[i + 29]]) as usize;
            if &bytes[i + 46..i + 46 + n] == name.as_bytes() {
                let local = u32::from_le_bytes([bytes[i + 42], bytes[i + 43], bytes[i + 44], bytes[i + 45]]);
                return (i, local as usize);
            }
        }
        i += 1;
    }
    panic!("{name} not in archive");
}

fn patch(bytes: &mut [u8], at: usize, value: &[u8]) {
    bytes[at..at + value.len()].copy_from_slice(value);
}

#[test]
fn bad_archives_get_clear_errors_and_the_server_goes_on() {
    logs::capture();
    let s = site_zip();
    let good = std::fs::read(&s.zip).expect("read");
    let dir = &s.dir;
    let make = |name: &str, f: &dyn Fn(&mut Vec<u8>)| {
        let mut b = good.clone();
        f(&mut b);
        std::fs::write(dir.join(name), b).expect("write");
    };
    make("truncated.zip", &|b| b.truncate(b.len() * 6 / 10));
    make("cd.zip", &|b| {
        let (cd, _) = headers_of(b, "page.html");
        let end = b.len() - 22;
        for x in &mut b[cd..end] {
            *x ^= 0x5a;
        }
    });
    make("crc.zip", &|b| {
        let (cd, _) = headers_of(b, "tiny.txt");
        patch(b, cd + 16, &0xdead_beef_u32.to_le_bytes());
        let (cd, _) = headers_of(b, "big.txt");
        patch(b, cd + 16, &0xdead_beef_u32.to_le_bytes());
    });
    make("encrypted.zip", &|b| {
        let (cd, local) = headers_of(b, "page.html");
        b[cd + 8] |= 1;
        b[local + 6] |= 1;
    });
    make("method.zip", &|b| {
        let (cd, local) = headers_of(b, "page.html");
        patch(b, cd + 10, &12u16.to_le_bytes());
        patch(b, local + 8, &12u16.to_le_bytes());
    });
    make("huge.zip", &|b| {
        let (cd, _) = headers_of(b, "tiny.txt");
        patch(b, cd + 20, &0xffff_fff0_u32.to_le_bytes()); // compressed size
        let (cd, _) = headers_of(b, "page.html");
        patch(b, cd + 24, &0xffff_fff0_u32.to_le_bytes()); // uncompressed size
    });
    {
        let mut w = zip::ZipWriter::new(std::fs::File::create(dir.join("names.zip")).expect("create"));
        for name in ["../evil.txt", "/abs.txt", "ok.txt"] {
            w.start_file(name, SimpleFileOptions::default()).expect("start");
            w.write_all(b"payload\n").expect("write");
        }
        w.finish().expect("finish");
    }
    let server = Server::start(ContextInfo::new().vhost(vhost().mount(Mount::dir("/", dir))));

    let cases: &[(&str, &str, u16, &[&str])] = &[
        ("/truncated.zip/page.html", "", 500, &["truncated.zip"]),
        ("/cd.zip/page.html", "", 500, &["cd.zip"]),
        ("/crc.zip/tiny.txt", "", 500, &["crc.zip", "tiny.txt", "CRC"]),
        ("/encrypted.zip/page.html", "", 403, &["encrypted.zip", "page.html", "encrypted"]),
        ("/method.zip/page.html", GZ, 501, &["method.zip", "page.html", "compression method"]),
        ("/huge.zip/tiny.txt", "", 500, &["huge.zip", "tiny.txt"]),
        ("/names.zip/abs.txt", "", 403, &["names.zip", "/abs.txt"]),
        ("/names.zip/evil.txt", "", 404, &["names.zip", "../evil.txt"]),
    ];
    for (path, extra, status, log_words) in cases {
        let r = fetch(&server, "GET", path, extra);
        assert_eq!(r.status, *status, "{path}");
        assert!(r.text().contains(&format!("<h1>{status}</h1>")), "{path}: styled page");
        assert!(logs::count(log_words) > 0, "{path}: no log line with {log_words:?}");
        // Everyone else is still served.
        assert_eq!(fetch(&server, "GET", "/site.zip/tiny.txt", "").text(), "tiny\n");
    }
    assert_eq!(fetch(&server, "GET", "/names.zip/ok.txt", "").text(), "payload\n");

    // Failures after the head: the connection is cut short, not padded.
    for (path, entry) in [("/crc.zip/big.txt", "big.txt"), ("/huge.zip/page.html", "page.html")] {
        let mut c = server.connect();
        write!(c, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").expect("write");
        let mut all = Vec::new();
        let _ = c.read_to_end(&mut all);
        let text = String::from_utf8_lossy(&all[..all.len().min(400)]).into_owned();
        assert!(text.starts_with("HTTP/1.1 200"), "{path}: {text}");
        let split = all.windows(4).position(|w| w == b"\r\n\r\n").map_or(0, |i| i + 4);
        let declared: usize = text
            .lines()
            .find_map(|l| l.strip_prefix("Content-Length: "))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        assert!(all.len() - split < declared, "{path}: a bad body must not complete");
        std::thread::sleep(Duration::from_millis(50));
        assert!(logs::count(&[entry]) > 0, "{path}: not logged");
    }
    assert_eq!(fetch(&server, "GET", "/site.zip/page.html", GZ).status, 200);
}

#[test]
fn a_broken_archive_root_fails_at_start() {
    let t = tempfile::tempdir().expect("tempdir");
    let bad = t.path().join("bad.zip");
    std::fs::write(&bad, b"PK\x03\x04 this is not a zip").expect("write");
    let e = warren::Context::new(ContextInfo::new().vhost(vhost().mount(Mount::dir("/", &bad))))
        .expect_err("broken archive accepted");
    assert!(e.to_string().contains("bad.zip"), "{e}");
}

#[test]
fn the_crc_is_checked_even_when_the_stream_ends_after_the_last_byte() {
    // A non-final stored block of 4091 bytes filling exactly the first
    // 4 KiB of input, then an empty final block in the next read: every
    // declared byte is out before the stream's end is seen.
    logs::capture();
    let t = tempfile::tempdir().expect("tempdir");
    let data = page(4091);
    let mut raw = vec![0x00, 0xfb, 0x0f, 0x04, 0xf0];
    raw.extend_from_slice(&data);
    raw.extend_from_slice(&[0x03, 0x00]);
    assert_eq!(raw.len(), 4098);
    let zip_path = t.path().join("edge.zip");
    write_zip(
        &zip_path,
        &[("good.txt", &raw, CompressionMethod::Stored), ("bad.txt", &raw, CompressionMethod::Stored)],
    );
    let mut b = std::fs::read(&zip_path).expect("read");
    for (name, crc) in [("good.txt", crc32fast::hash(&data)), ("bad.txt", 0x1234_5678)] {
        let (cd, local) = headers_of(&b, name);
        for (at, m) in [(cd + 10, 8u16), (local + 8, 8u16)] {
            patch(&mut b, at, &m.to_le_bytes());
        }
        patch(&mut b, cd + 16, &crc.to_le_bytes());
        patch(&mut b, local + 14, &crc.to_le_bytes());
        patch(&mut b, cd + 24, &4091u32.to_le_bytes());
        patch(&mut b, local + 22, &4091u32.to_le_bytes());
    }
    std::fs::write(&zip_path, &b).expect("write");
    let server = Server::start(ContextInfo::new().vhost(vhost().mount(Mount::dir("/", t.path()))));
    let r = fetch(&server, "GET", "/edge.zip/good.txt", "");
    assert_eq!(r.status, 200);
    assert!(r.body == data);
    let r = fetch(&server, "GET", "/edge.zip/bad.txt", "");
    assert_eq!(r.status, 500, "a CRC mismatch must not pass as 200");
    assert!((logs::count(&["edge.zip", "bad.txt", "CRC"]) > 0));
}

#[test]
fn odd_names_never_break_the_server() {
    let t = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(t.path().join("real.zip")).expect("mkdir");
    std::fs::write(t.path().join("real.zip/page.html"), b"in a directory\n").expect("write");
    std::fs::write(t.path().join("日本.txt"), b"nihon\n").expect("write");
    let server = Server::start(ContextInfo::new().vhost(vhost().mount(Mount::dir("/", t.path()))));
    // A directory called *.zip is a directory.
    assert_eq!(fetch(&server, "GET", "/real.zip/page.html", "").text(), "in a directory\n");
    // Multi-byte names, including ones whose last bytes split a character
    // where ".zip" would be.
    assert_eq!(fetch(&server, "GET", "/%E6%97%A5%E6%9C%AC.txt", "").text(), "nihon\n");
    for path in ["/%E6%97%A5%E6%9C%AC", "/%E2%82%AC%E2%82%AC/x", "/a%C3%A9zip/x", "/x.%E2%82%ACzip/y"] {
        assert_eq!(fetch(&server, "GET", path, "").status, 404, "{path}");
    }
    assert_eq!(fetch(&server, "GET", "/real.zip/page.html", "").status, 200);
}

/// A stored archive of `n` entries `d017/f000123.txt` holding `entry 123\n`.
fn many_entries(path: &Path, n: usize) {
    let mut w = zip::ZipWriter::new(std::io::BufWriter::new(std::fs::File::create(path).expect("create")));
    let opts = SimpleFileOptions::default().compression_method(CompressionMethod::Stored);
    for i in 0..n {
        w.start_file(format!("d{:03}/f{i:06}.txt", i % 100), opts).expect("start");
        w.write_all(format!("entry {i}\n").as_bytes()).expect("write");
    }
    w.finish().expect("finish");
}

fn entry_path(i: usize) -> String {
    format!("d{:03}/f{i:06}.txt", i % 100)
}

#[test]
fn an_archive_of_200000_entries_is_served_from_a_compact_directory() {
    // ZIP-1 at the entry limit: every entry reachable, directories found,
    // and the cached directory about 48 bytes an entry plus its name (a
    // map of owned names took about 175).
    let t = tempfile::tempdir().expect("tempdir");
    many_entries(&t.path().join("big.zip"), 200_000);
    let fops = Arc::new(ZipFops::over(Arc::new(PlainFops::new(t.path()).expect("plain"))));
    let server = Server::start(ContextInfo::new().vhost(vhost().mount(Mount::files("/", fops.clone()))));
    for i in [0, 123, 99_999, 199_999] {
        let r = fetch(&server, "GET", &format!("/big.zip/{}", entry_path(i)), "");
        assert_eq!((r.status, r.text()), (200, format!("entry {i}\n")), "{i}");
    }
    assert_eq!(fetch(&server, "GET", "/big.zip/d042", "").status, 301);
    assert_eq!(fetch(&server, "GET", "/big.zip/d042/f000041.txt", "").status, 404);
    let bytes = fops.cached_bytes();
    // 16-byte names: 64 bytes an entry.
    assert!(bytes <= 200_000 * 64 + 4096, "{bytes} bytes cached");
}

#[test]
fn the_archive_cache_stays_under_its_byte_bound() {
    // Twelve archives of 2,000 entries (about 128 KiB of directory each)
    // through a 512 KiB cache, twice round: each served, the cache never
    // over its bound. One whose directory alone is over it gets a 500 and
    // the others go on.
    logs::capture();
    let t = tempfile::tempdir().expect("tempdir");
    for a in 0..12 {
        many_entries(&t.path().join(format!("a{a}.zip")), 2_000);
    }
    many_entries(&t.path().join("huge.zip"), 20_000);
    const LIMIT: usize = 512 << 10;
    let plain = Arc::new(PlainFops::new(t.path()).expect("plain"));
    let fops = Arc::new(ZipFops::over(plain).with_cache_limit(LIMIT));
    let server = Server::start(ContextInfo::new().vhost(vhost().mount(Mount::files("/", fops.clone()))));
    let mut most = 0;
    for round in 0..2 {
        for a in 0..12 {
            let i = a * 100 + round;
            let r = fetch(&server, "GET", &format!("/a{a}.zip/{}", entry_path(i)), "");
            assert_eq!((r.status, r.text()), (200, format!("entry {i}\n")), "a{a}");
            most = most.max(fops.cached_bytes());
            assert!(fops.cached_bytes() <= LIMIT, "{} bytes cached", fops.cached_bytes());
        }
    }
    assert!(most > LIMIT / 2, "the cache is used: {most}");
    assert_eq!(fetch(&server, "GET", &format!("/huge.zip/{}", entry_path(7)), "").status, 500);
    assert!((logs::count(&["huge.zip", "over the cache's limit"]) > 0));
    assert_eq!(fetch(&server, "GET", &format!("/a3.zip/{}", entry_path(5)), "").text(), "entry 5\n");
    assert!(fops.cached_bytes() <= LIMIT);
}

/// A gate a test holds shut: reads of a gated archive's bytes before its
/// last 128 KiB (its directory, its entries; not the end record) wait on
/// it, so a directory load stays in progress until the test opens it.
#[derive(Debug, Default)]
struct Gate {
    /// (open, readers waiting now)
    state: Mutex<(bool, usize)>,
    changed: std::sync::Condvar,
}

impl Gate {
    fn pass(&self) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        s.1 += 1;
        self.changed.notify_all();
        while !s.0 {
            s = self.changed.wait(s).unwrap_or_else(|e| e.into_inner());
        }
        s.1 -= 1;
    }

    /// Waits until a reader is held at the gate (a minute at most).
    fn wait_for_reader(&self) {
        let s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let (s, _) = self
            .changed
            .wait_timeout_while(s, Duration::from_secs(60), |s| s.1 == 0)
            .unwrap_or_else(|e| e.into_inner());
        assert!(s.1 > 0, "nobody read the archive's directory");
    }

    fn open(&self) {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).0 = true;
        self.changed.notify_all();
    }
}

/// Opens the gate when dropped: declared after the server, it lets a
/// server whose loop is held at the gate stop when a test fails.
struct OpenOnDrop(Arc<Gate>);

impl Drop for OpenOnDrop {
    fn drop(&mut self) {
        self.0.open();
    }
}

/// A plain directory whose `.zip` files read through a [`Gate`].
#[derive(Debug)]
struct Gated {
    plain: PlainFops,
    gate: Arc<Gate>,
}

#[derive(Debug)]
struct GatedHandle {
    inner: Box<dyn FileHandle>,
    gate: Arc<Gate>,
}

impl Fops for Gated {
    fn open(&self, path: &VPath, flags: OpenFlags) -> std::io::Result<Box<dyn FileHandle>> {
        let inner = self.plain.open(path, flags)?;
        if !path.as_str().ends_with(".zip") {
            return Ok(inner);
        }
        Ok(Box::new(GatedHandle { inner, gate: self.gate.clone() }))
    }
}

impl FileHandle for GatedHandle {
    fn info(&self) -> &FileInfo {
        self.inner.info()
    }
    fn pos(&self) -> u64 {
        self.inner.pos()
    }
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.inner.pos() + (128 << 10) < self.inner.info().len {
            self.gate.pass();
        }
        self.inner.read(buf)
    }
    fn seek(&mut self, pos: std::io::SeekFrom) -> std::io::Result<u64> {
        self.inner.seek(pos)
    }
}

/// `dir/big.zip` (20,000 entries: about 1.2 MiB of directory, loaded on
/// a thread), `dir/broken.zip` (the same with its 10,000th directory
/// entry spoiled), and `other/x.txt`; a server with the archives at `/z`
/// behind a gate and `other` at `/other`.
fn gated_site() -> (tempfile::TempDir, Arc<Gate>, Server) {
    let t = tempfile::tempdir().expect("tempdir");
    let (dir, other) = (t.path().join("dir"), t.path().join("other"));
    std::fs::create_dir(&dir).expect("mkdir");
    std::fs::create_dir(&other).expect("mkdir");
    std::fs::write(other.join("x.txt"), "other\n").expect("write");
    many_entries(&dir.join("big.zip"), 20_000);
    let mut bytes = std::fs::read(dir.join("big.zip")).expect("read");
    let at = bytes.windows(4).enumerate().filter(|(_, w)| *w == b"PK\x01\x02").nth(10_000).map(|(i, _)| i);
    bytes[at.expect("10,000th directory entry")] = b'X';
    std::fs::write(dir.join("broken.zip"), bytes).expect("write");
    let gate = Arc::new(Gate::default());
    let gated = Gated { plain: PlainFops::new(&dir).expect("plain"), gate: gate.clone() };
    let zips = Arc::new(ZipFops::over(Arc::new(gated)));
    let server = Server::start(
        ContextInfo::new().vhost(vhost().mount(Mount::files("/z", zips)).mount(files_mount("/other", &other))),
    );
    (t, gate, server)
}

#[test]
fn other_clients_are_served_while_a_big_directory_loads() {
    // Issue 10 item 13: a 20,000-entry directory loads off the loop. The
    // load is held at the gate; meanwhile another client is answered and
    // the waiting one is not; opened, the waiting request gets its entry
    // (or, for a broken archive, a 500).
    for (archive, expect) in [("big.zip", (200, "entry 4242\n".to_string())), ("broken.zip", (500, String::new()))] {
        let (_t, gate, server) = gated_site();
        let _open = OpenOnDrop(gate.clone());
        let mut waiting = server.connect();
        let req = format!("GET /z/{archive}/{} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", entry_path(4242));
        waiting.write_all(req.as_bytes()).expect("write");
        gate.wait_for_reader();
        let r = get(&server, "/other/x.txt");
        assert_eq!((r.status, r.text().as_str()), (200, "other\n"), "{archive}: the other client");
        waiting.set_nonblocking(true).expect("nonblocking");
        let early = waiting.read(&mut [0u8; 1]).map_err(|e| e.kind());
        assert_eq!(early, Err(std::io::ErrorKind::WouldBlock), "{archive}: no answer before the load ends");
        waiting.set_nonblocking(false).expect("blocking");
        gate.open();
        let r = Reader::new(waiting).response(false).expect("response");
        let got = (r.status, if r.status == 200 { r.text() } else { String::new() });
        assert_eq!(got, expect, "{archive}");
        // Loaded (or failed) once: served at once now.
        let r = get(&server, &format!("/z/{archive}/{}", entry_path(7)));
        assert_eq!(r.status, expect.0, "{archive} again");
    }
}

#[test]
fn a_client_that_leaves_while_its_directory_loads_leaves_nothing() {
    let (_t, gate, server) = gated_site();
    let _open = OpenOnDrop(gate.clone());
    let mut gone = server.connect();
    gone.write_all(format!("GET /z/big.zip/{} HTTP/1.1\r\nHost: x\r\n\r\n", entry_path(1)).as_bytes()).expect("write");
    gate.wait_for_reader();
    drop(gone);
    // The connection is closed while the load is still held.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while server.handle.stats().open > 0 {
        assert!(std::time::Instant::now() < deadline, "the waiting connection was not closed");
        std::thread::sleep(Duration::from_millis(10));
    }
    gate.open();
    let r = get(&server, &format!("/z/big.zip/{}", entry_path(2)));
    assert_eq!((r.status, r.text()), (200, "entry 2\n".to_string()));
}

/// A filesystem whose files are never ready: every open would block,
/// with `pending` to wait on or with nothing.
#[derive(Debug)]
struct NeverReady(Option<warren::vfs::Pending>);

impl Fops for NeverReady {
    fn open(&self, _: &VPath, _: OpenFlags) -> std::io::Result<Box<dyn FileHandle>> {
        Err(self.0.as_ref().map_or_else(|| std::io::ErrorKind::WouldBlock.into(), |p| p.to_error()))
    }
}

#[test]
fn a_file_that_never_gets_ready_gets_503() {
    // The wait is bounded (10 s), whether the fops says what to wait for
    // (and the server waits to be woken) or not (and the server polls).
    let pending = warren::vfs::Pending::new("a load that never ends");
    let server = Server::start(
        ContextInfo::new().vhost(
            vhost()
                .mount(Mount::files("/wait", Arc::new(NeverReady(Some(pending.clone())))))
                .mount(Mount::files("/poll", Arc::new(NeverReady(None)))),
        ),
    );
    let clients: Vec<_> = ["/wait/x", "/poll/x"]
        .iter()
        .map(|path| {
            let mut s = server.connect();
            s.set_read_timeout(Some(Duration::from_secs(60))).expect("timeout");
            s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes()).expect("write");
            s
        })
        .collect();
    for (c, path) in clients.into_iter().zip(["/wait/x", "/poll/x"]) {
        let r = Reader::new(c).response(false).expect("response");
        assert_eq!((r.status, r.header("Retry-After")), (503, Some("1")), "{path}");
    }
    assert!(!pending.is_done());
}
