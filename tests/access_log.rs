//! The access log (spec LOG-1) against requests that try to forge lines.

mod support;

use support::*;
use warren::ContextInfo;

/// Issue 10 item 4: a path with `%0a` once wrote a second, fake line (the
/// decoded path was written raw). Every field is now escaped as Apache
/// escapes it: control bytes as `\xhh`, `"` and `\` with a backslash.
#[test]
fn logged_fields_cannot_forge_lines() {
    let (t, root) = site();
    let log = t.path().join("access.log");
    let server = Server::start(ContextInfo::new().vhost(vhost().access_log(&log).mount(files_mount("/", &root))));
    let forged = "127.0.0.1 - - [01/Jan/2000:00:00:00 +0000] \"GET /admin HTTP/1.1\" 200 1 \"\" \"\"";
    let encoded: String =
        forged
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "/.-:+".contains(c) {
                    c.to_string()
                } else {
                    format!("%{:02x}", c as u8)
                }
            })
            .collect();
    let r = request(&server, &format!("GET /x%0a{encoded} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"));
    let status = r.status;
    let r = request(
        &server,
        "GET /index.html HTTP/1.1\r\nHost: x\r\nReferer: a\"b\\c\r\nUser-Agent: t\tu\" \"\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.status, 200);
    // Lines are written in order: once the last request's line is there,
    // so is everything before it.
    assert_eq!(get(&server, "/last").status, 404);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let text = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("/last") || std::time::Instant::now() > deadline {
            break text;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "one line per request:\n{text}");
    assert!(!text.contains("\n127.0.0.1 - - [01/Jan/2000"), "{text}");
    let want = format!("\"GET /x\\x0a{} HTTP/1.1\" {status} ", forged.replace('\\', "\\\\").replace('"', "\\\""));
    assert!(lines[0].contains(&want), "{}\nwanted {want}", lines[0]);
    assert!(lines[1].ends_with(r#" "a\"b\\c" "t\x09u\" \"""#), "{}", lines[1]);
    for line in &lines {
        // Every quote in a line is either a delimiter or escaped.
        let unescaped = line.match_indices('"').filter(|(i, _)| !line[..*i].ends_with('\\')).count();
        assert_eq!(unescaped, 6, "{line}");
    }
}
