//! Credentials files and custom error pages are held in memory and read
//! again when they change (issue 12 item 7): edits take effect within
//! about a second, and a file that goes away keeps what was last read,
//! with a warning logged once.

mod support;

use base64::Engine;
use std::time::{Duration, Instant};
use support::*;
use warren::ContextInfo;

/// Polls `f` until it holds, for at most 20 s (the change is due within
/// about a second; the margin is for a loaded machine).
fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let until = Instant::now() + Duration::from_secs(20);
    while !f() {
        assert!(Instant::now() < until, "{what}: not within 20 s");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn basic(creds: &str) -> String {
    format!("Authorization: Basic {}\r\n", base64::engine::general_purpose::STANDARD.encode(creds))
}

fn fetch(server: &Server, path: &str, extra: &str) -> Response {
    request(server, &format!("GET {path} HTTP/1.1\r\nHost: x\r\n{extra}Connection: close\r\n\r\n"))
}

#[test]
fn edited_credentials_take_effect_and_a_deleted_file_keeps_them() {
    // AUTH-1
    logs::capture();
    let (t, root) = site();
    let pw = t.path().join("passwords-edited");
    std::fs::write(&pw, "alice:wonderland\n").expect("write");
    let server = Server::start(ContextInfo::new().vhost(vhost().mount(files_mount("/", &root).basic_auth(&pw))));
    let alice = basic("alice:wonderland");
    let bob = basic("bob:builder");
    assert_eq!(fetch(&server, "/index.html", &alice).status, 200);
    assert_eq!(fetch(&server, "/index.html", &bob).status, 401);

    std::fs::write(&pw, "bob:builder\n").expect("write");
    eventually("bob let in after the edit", || fetch(&server, "/index.html", &bob).status == 200);
    assert_eq!(fetch(&server, "/index.html", &alice).status, 401, "alice's line is gone");

    // Deleted: the credentials last read stay, and it is said once.
    std::fs::remove_file(&pw).expect("rm");
    eventually("a warning about the missing file", || {
        fetch(&server, "/index.html", &bob);
        logs::count(&["passwords-edited"]) > 0
    });
    assert_eq!(fetch(&server, "/index.html", &bob).status, 200, "the last table read stays");
    assert_eq!(fetch(&server, "/index.html", &alice).status, 401);
    assert_eq!(fetch(&server, "/index.html", "").status, 401);
    assert_eq!(logs::count(&["passwords-edited"]), 1, "warned once");

    // Back, empty: nobody gets in.
    std::fs::write(&pw, "").expect("write");
    eventually("the emptied file refuses bob", || fetch(&server, "/index.html", &bob).status == 401);
}

#[test]
fn a_fifo_in_place_of_the_credentials_file_is_refused_without_blocking() {
    // AUTH-1: the file is read by the loop; a FIFO put in its place must
    // neither stop the loop in open(2) waiting for a writer nor become
    // the table when one comes.
    logs::capture();
    let (t, root) = site();
    let pw = t.path().join("passwords-fifo");
    std::fs::write(&pw, "bob:builder\n").expect("write");
    let server = Server::start(ContextInfo::new().vhost(vhost().mount(files_mount("/", &root).basic_auth(&pw))));
    let bob = basic("bob:builder");
    let mallory = basic("mallory:evil");
    assert_eq!(fetch(&server, "/index.html", &bob).status, 200);

    std::fs::remove_file(&pw).expect("rm");
    let c = std::ffi::CString::new(pw.as_os_str().as_encoded_bytes()).expect("path");
    // SAFETY: mkfifo reads the NUL-terminated path only.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0, "mkfifo");
    // A writer that feeds the FIFO whenever someone has it open for
    // reading: a server blocked in open(2) would be let go, and read
    // mallory's line as the table.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (stop, pw) = (stop.clone(), pw.clone());
        std::thread::spawn(move || {
            use std::io::Write;
            use std::os::unix::fs::OpenOptionsExt;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let open = std::fs::OpenOptions::new().write(true).custom_flags(libc::O_NONBLOCK).open(&pw);
                if let Ok(mut f) = open {
                    let _ = f.write_all(b"mallory:evil\n");
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };
    eventually("a warning about the FIFO", || {
        fetch(&server, "/index.html", &bob);
        logs::count(&["passwords-fifo"]) > 0
    });
    assert_eq!(fetch(&server, "/index.html", &bob).status, 200, "the last table read stays");
    assert_eq!(fetch(&server, "/index.html", &mallory).status, 401, "nothing read from the FIFO");
    assert_eq!(fetch(&server, "/index.html", "").status, 401);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    writer.join().expect("writer");
}

#[test]
fn edited_error_pages_take_effect_and_a_deleted_one_keeps_its_copy() {
    logs::capture();
    let (_t, root) = site();
    std::fs::write(root.join("oops-edited.html"), b"<p>first</p>\n").expect("write");
    let server = Server::start(
        ContextInfo::new().vhost(vhost().mount(files_mount("/", &root)).error_page(404, "/oops-edited.html")),
    );
    let r = fetch(&server, "/missing", "");
    assert_eq!((r.status, r.text().as_str()), (404, "<p>first</p>\n"));

    // Same length, so a time or the racy rule must tell.
    std::fs::write(root.join("oops-edited.html"), b"<p>again</p>\n").expect("write");
    eventually("the edited page", || fetch(&server, "/missing", "").text() == "<p>again</p>\n");
    let r = fetch(&server, "/missing", "");
    assert_eq!((r.status, r.header("content-type")), (404, Some("text/html")));

    std::fs::remove_file(root.join("oops-edited.html")).expect("rm");
    eventually("a warning about the missing page", || {
        fetch(&server, "/missing", "");
        logs::count(&["oops-edited.html"]) > 0
    });
    assert_eq!(fetch(&server, "/missing", "").text(), "<p>again</p>\n", "the last copy stays");
    assert_eq!(logs::count(&["oops-edited.html"]), 1, "warned once");

    std::fs::write(root.join("oops-edited.html"), b"<p>third, longer</p>\n").expect("write");
    eventually("the page back", || fetch(&server, "/missing", "").text() == "<p>third, longer</p>\n");
}

#[test]
fn a_missing_error_page_appears_later() {
    let (_t, root) = site();
    let server =
        Server::start(ContextInfo::new().vhost(vhost().mount(files_mount("/", &root)).error_page(404, "/late.html")));
    let r = fetch(&server, "/missing", "");
    assert_eq!(r.status, 404);
    assert!(r.text().contains("<h1>404</h1>"), "the built-in page meanwhile");
    std::fs::write(root.join("late.html"), b"<p>late</p>\n").expect("write");
    eventually("the page once it exists", || fetch(&server, "/missing", "").text() == "<p>late</p>\n");
}
