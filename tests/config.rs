//! The lwsws-style configuration (spec CFG-*, VH-*, MNT-*, CACHE-1),
//! loaded from files and served over a real socket.

mod support;

use std::path::Path;
use support::*;

fn write(dir: &Path, name: &str, text: &str) {
    let path = dir.join(name);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).expect("mkdir");
    }
    std::fs::write(path, text).expect("write");
}

fn load_err(dir: &Path) -> String {
    match warren::config::load_dir(dir) {
        Ok(_) => panic!("config accepted"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn an_lwsws_configuration_serves() {
    let (t, root) = site();
    let other = t.path().join("other");
    std::fs::create_dir_all(&other).expect("mkdir");
    std::fs::write(other.join("index.html"), b"other site\n").expect("write");
    let cfg = t.path().join("cfg");
    write(
        &cfg,
        "conf",
        r#"# global settings, lwsws style
{ "global": { "server-string": "warren-conf", "timeout-secs": "20" } }"#,
    );
    write(
        &cfg,
        "conf.d/sites",
        &format!(
            r#"{{
  "vhosts": [ {{
      "name": "a.example", "port": "0", "interface": "127.0.0.1",
      "keepalive_timeout": "30",
      "headers": [{{ "X-Site": "a" }}],
      "mounts": [
        {{ "mountpoint": "/", "origin": "file://{root}", "default": "index.html",
           "cache-max-age": "60", "cache-reuse": "1", "cache-intermediaries": "on" }},
        {{ "mountpoint": "/go", "origin": ">https://example.org/there", "append-path": "1" }}
      ]
    }}, {{
      "name": "b.example", "port": "0", "interface": "127.0.0.1",
      "mounts": [ {{ "mountpoint": "/", "origin": "file://{other}" }} ]
  }} ]
}}"#,
            root = root.display(),
            other = other.display()
        ),
    );
    let info = warren::config::load_dir(&cfg).unwrap_or_else(|e| panic!("{e}"));
    let server = Server::start(info);
    let get_host = |host: &str, path: &str| {
        request(&server, &format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"))
    };
    // VH-1: both vhosts share the port; Host picks.
    let r = get_host("a.example", "/");
    assert_eq!(r.text(), "<h1>root index</h1>\n");
    assert_eq!(r.header("x-site"), Some("a"));
    assert_eq!(r.header("server"), Some("warren-conf"));
    assert_eq!(r.header("cache-control"), Some("public, max-age=60"));
    let r = get_host("b.example:1234", "/");
    assert_eq!(r.text(), "other site\n");
    assert_eq!(r.header("cache-control"), Some("no-store"), "no cache keys: lwsws's no-store");
    assert_eq!(get_host("sub.a.example", "/").header("x-site"), Some("a"), "wildcard parent");
    assert_eq!(get_host("unknown.test", "/").header("x-site"), Some("a"), "first vhost of the port");
    let r = get_host("a.example", "/go/x/y");
    assert_eq!((r.status, r.header("location")), (301, Some("https://example.org/there/x/y")));
}

#[test]
fn mistakes_name_the_file_line_column_and_key() {
    let t = tempfile::tempdir().expect("tempdir");
    let cfg = t.path();
    write(cfg, "conf", r#"{ "global": {} }"#);
    write(
        cfg,
        "conf.d/bad",
        "{ \"vhosts\": [ {\n  \"name\": \"x\", \"port\": \"0\",\n  \"mounts\": [ { \"mountpont\": \"/\", \"origin\": \"file:///tmp\" } ]\n} ] }",
    );
    let e = load_err(cfg);
    assert!(e.contains("conf.d/bad:3:"), "{e}");
    assert!(e.contains("unknown key `mountpont`"), "{e}");
    assert!(e.contains("did you mean `mountpoint`?"), "{e}");

    write(cfg, "conf.d/bad", r#"{ "vhosts": [ { "name": "x", "port": { "no": 1 } } ] }"#);
    let e = load_err(cfg);
    assert!(e.contains("conf.d/bad:1:") && e.contains("expected a string"), "{e}");

    write(cfg, "conf.d/bad", r#"{ "vhosts": [ { "name": "x", "port": "0", "unix-socket": "1" } ] }"#);
    let e = load_err(cfg);
    assert!(e.contains("vhosts[0].unix-socket") && e.contains("not supported by warren yet"), "{e}");

    // CFG-9: ws-protocols names built-in plugins and their options.
    write(
        cfg,
        "conf.d/bad",
        r#"{ "vhosts": [ { "name": "x", "port": "0", "ws-protocols": [ { "lws-nope": {} } ] } ] }"#,
    );
    let e = load_err(cfg);
    assert!(e.contains("vhosts[0].ws-protocols[0].lws-nope") && e.contains("built in: "), "{e}");
    write(
        cfg,
        "conf.d/bad",
        r#"{ "vhosts": [ { "name": "x", "port": "0", "ws-protocols": [ { "dumb-increment-protocol": { "options": "x" } } ] } ] }"#,
    );
    let e = load_err(cfg);
    assert!(e.contains("dumb-increment-protocol") && e.contains("expected an integer"), "{e}");
    write(
        cfg,
        "conf.d/bad",
        r#"{ "vhosts": [ { "name": "x", "port": "0", "ws-protocols": [ { "lws-mirror-protocol": { "speed": "9" } } ] } ] }"#,
    );
    let e = load_err(cfg);
    assert!(e.contains("lws-mirror-protocol takes no option \"speed\""), "{e}");

    write(
        cfg,
        "conf.d/bad",
        r#"{ "vhosts": [ { "name": "x", "port": "0", "mounts": [ { "mountpoint": "/", "origin": "ftp://x" } ] } ] }"#,
    );
    let e = load_err(cfg);
    assert!(e.contains("vhosts[0].mounts[0].origin") && e.contains("expected file://"), "{e}");

    write(
        cfg,
        "conf.d/bad",
        r#"{ "vhosts": [ { "name": "x", "port": "0", "mounts": [ { "mountpoint": "/", "origin": "cgi:///no/such/x" } ] } ] }"#,
    );
    let e = load_err(cfg);
    assert!(e.contains("vhosts[0].mounts[0].origin") && e.contains("no such program or directory"), "{e}");

    // FastCGI keys (issue 16): what each expects, and only where it means
    // something.
    for (mount, key, says) in [
        (r#""origin": "fcgi://nowhere""#, "origin", "host:port"),
        (r#""origin": "fcgi:///run/x.sock", "fcgi-connect-timeout": "0""#, "fcgi-connect-timeout", "at least 1 second"),
        (r#""origin": "fcgi:///run/x.sock", "fcgi-max-requests": "0""#, "fcgi-max-requests", "at least 1"),
        (r#""origin": "fcgi:///run/x.sock", "fcgi-keepalive": "many""#, "fcgi-keepalive", "expected"),
        (r#""origin": "file:///tmp", "fcgi-keepalive": "2""#, "fcgi-keepalive", "fcgi://"),
        (r#""origin": "file:///tmp", "cgi-assign": { ".php": "fcgi://" }"#, "cgi-assign", "fcgi://"),
    ] {
        let text = format!(
            r#"{{ "vhosts": [ {{ "name": "x", "port": "0", "mounts": [ {{ "mountpoint": "/", {mount} }} ] }} ] }}"#
        );
        write(cfg, "conf.d/bad", &text);
        let e = load_err(cfg);
        assert!(
            e.contains("conf.d/bad") && e.contains(&format!("vhosts[0].mounts[0].{key}")) && e.contains(says),
            "{mount}: {e}"
        );
    }

    write(cfg, "conf.d/bad", r#"{ "vhosts": [ { "name": "x" } ] }"#);
    assert!(load_err(cfg).contains("\"port\" is required"));

    // A password file that is not there is said at start, not as 401s.
    write(
        cfg,
        "conf.d/bad",
        r#"{ "vhosts": [ { "name": "x", "port": "0", "mounts": [ { "mountpoint": "/", "origin": "file:///tmp",
              "basic-auth": "/no/such/passwords" } ] } ] }"#,
    );
    let e = load_err(cfg);
    assert!(e.contains("vhosts[0].mounts[0].basic-auth") && e.contains("/no/such/passwords"), "{e}");

    write(cfg, "conf.d/bad", r#"{ "vhosts": [ { "name": "x", "port": "0" } ] "#);
    assert!(load_err(cfg).contains("conf.d/bad:1:"), "syntax errors have positions too");

    write(cfg, "conf.d/bad", r#"{ "global": { "count-threads": "1" } }"#);
    assert!(load_err(cfg).contains("no vhost configured"));
}

#[test]
fn the_binary_takes_config() {
    let t = tempfile::tempdir().expect("tempdir");
    write(t.path(), "conf", r#"{ "vhosts": [ { "name": "x", "port": "0", "mountz": [] } ] }"#);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_warren"))
        .args(["--config"])
        .arg(t.path())
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("did you mean `mounts`?"), "{err}");
}

#[test]
fn access_log_in_combined_format() {
    // LOG-1
    let (t, root) = site();
    let log = t.path().join("access.log");
    let cfg = t.path().join("cfg");
    write(
        &cfg,
        "conf",
        &format!(
            r#"{{ "vhosts": [ {{ "name": "x", "port": "0", "interface": "127.0.0.1", "access-log": "{}",
               "mounts": [ {{ "mountpoint": "/", "origin": "file://{}" }} ] }} ] }}"#,
            log.display(),
            root.display()
        ),
    );
    let server = Server::start(warren::config::load_dir(&cfg).unwrap_or_else(|e| panic!("{e}")));
    let ok = request(
        &server,
        "GET /index.html?q=1 HTTP/1.1\r\nHost: x\r\nReferer: http://r/\r\nUser-Agent: t\"ua\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(ok.status, 200);
    assert_eq!(get(&server, "/missing").status, 404);
    let _ = request(&server, "garbage\r\n\r\n");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let text = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.lines().count() >= 3 || std::time::Instant::now() > deadline {
            break text;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    let first = lines.iter().find(|l| l.contains("/index.html")).expect("index line");
    assert!(first.starts_with("127.0.0.1 - - ["), "{first}");
    assert!(first.contains(" +0000] \"GET /index.html HTTP/1.1\" 200 "), "{first}");
    assert!(first.ends_with(r#" "http://r/" "t\"ua""#), "quotes are escaped: {first}");
    let bytes: u64 =
        first.split("\" 200 ").nth(1).and_then(|r| r.split(' ').next()).and_then(|n| n.parse().ok()).unwrap_or(0);
    assert!(bytes > 20, "bytes include the head: {first}");
    assert!(lines.iter().any(|l| l.contains("\"GET /missing HTTP/1.1\" 404 ")), "{text}");
    assert!(lines.iter().any(|l| l.contains("\"- - HTTP/1.1\" 400 ")), "{text}");
}

#[test]
fn mount_precedence_from_configuration() {
    // MNT-1, MNT-2: whole segments, longest match, whatever the order.
    let t = tempfile::tempdir().expect("tempdir");
    let mut origins = Vec::new();
    for name in ["root", "a", "ab", "a_b"] {
        let d = t.path().join(name);
        std::fs::create_dir_all(&d).expect("mkdir");
        std::fs::write(d.join("which.txt"), format!("{name}\n")).expect("write");
        origins.push(d);
    }
    let cfg = t.path().join("cfg");
    write(
        &cfg,
        "conf",
        &format!(
            r#"{{ "vhosts": [ {{ "name": "x", "port": "0", "interface": "127.0.0.1", "mounts": [
              {{ "mountpoint": "/a/b", "origin": "file://{}" }},
              {{ "mountpoint": "/", "origin": "file://{}" }},
              {{ "mountpoint": "/a", "origin": "file://{}" }},
              {{ "mountpoint": "/ab", "origin": "file://{}" }} ] }} ] }}"#,
            origins[3].display(),
            origins[0].display(),
            origins[1].display(),
            origins[2].display()
        ),
    );
    let server = Server::start(warren::config::load_dir(&cfg).unwrap_or_else(|e| panic!("{e}")));
    for (path, want) in
        [("/which.txt", "root"), ("/a/which.txt", "a"), ("/ab/which.txt", "ab"), ("/a/b/which.txt", "a_b")]
    {
        assert_eq!(get(&server, path).text(), format!("{want}\n"), "{path}");
    }
    assert_eq!(get(&server, "/abc/which.txt").status, 404, "/abc is under / only");
}

/// CFG-9 and seed "anonprot": `ws-protocols` enables plugins per vhost;
/// `"default": "1"` binds upgrades that name no subprotocol;
/// `disable-no-protocol-ws-upgrades` refuses those.
#[test]
fn ws_protocols_from_configuration() {
    use support::ws::{raw_upgrade, upgrade_request, WsClient, TEXT};
    let t = tempfile::tempdir().expect("tempdir");
    write(
        t.path(),
        "conf",
        r#"{ "vhosts": [ { "name": "localhost", "port": "0", "interface": "127.0.0.1",
              "ws-ping-secs": "1", "ws-hangup-secs": "1",
              "ws-protocols": [ { "dumb-increment-protocol": { "status": "ok", "default": "1" } },
                                { "lws-mirror-protocol": { "status": "ok" } } ] } ] }"#,
    );
    let server = Server::start(warren::config::load_dir(t.path()).expect("config"));
    let mut c = WsClient::connect(server.addr, "/", &[]).expect("default protocol");
    assert_eq!(c.recv_message().expect("number"), (TEXT, b"0".to_vec()));
    let mut m = WsClient::connect(server.addr, "/", &["Sec-WebSocket-Protocol: lws-mirror-protocol"]).expect("mirror");
    m.text("hi").expect("send");
    assert_eq!(m.recv_message().expect("mirrored"), (TEXT, b"hi".to_vec()));
    // ws-ping-secs: the silent mirror client gets a ping within a second or so.
    let f = m.recv().expect("ping");
    assert_eq!(f.opcode, support::ws::PING, "{f:?}");
    drop(server);

    write(
        t.path(),
        "conf",
        r#"{ "vhosts": [ { "name": "localhost", "port": "0", "interface": "127.0.0.1",
              "disable-no-protocol-ws-upgrades": "1",
              "ws-protocols": [ { "dumb-increment-protocol": { "default": "1" } } ] } ] }"#,
    );
    let server = Server::start(warren::config::load_dir(t.path()).expect("config"));
    let (_s, head, _) = raw_upgrade(server.addr, &upgrade_request("/", &[])).expect("answer");
    assert!(head.starts_with("HTTP/1.1 400 "), "{head}");
    assert!(WsClient::connect(server.addr, "/", &["Sec-WebSocket-Protocol: dumb-increment-protocol"]).is_ok());
}

/// FILE-9: `interpret` sends matching files through a protocol's
/// ProcessHtml, chunked, without validators; other files are untouched.
#[test]
fn interpret_runs_files_through_a_protocol() {
    let t = tempfile::tempdir().expect("tempdir");
    let root = t.path().join("site");
    std::fs::create_dir_all(&root).expect("mkdir");
    // Big enough for several pieces, with a variable across the first
    // piece boundary (16 KiB).
    let mut page = "x".repeat(16384 - 4);
    page.push_str("${version} and ${hostname}; keep ${other}\n");
    page.push_str(&"y".repeat(30000));
    std::fs::write(root.join("page.html"), &page).expect("write");
    std::fs::write(root.join("plain.txt"), "${version}\n").expect("write");
    write(
        t.path(),
        "conf",
        &format!(
            r#"{{ "vhosts": [ {{ "name": "localhost", "port": "0", "interface": "127.0.0.1",
                  "mounts": [ {{ "mountpoint": "/", "origin": "file://{}",
                                 "interpret": {{ ".html": "server-vars" }} }} ] }} ] }}"#,
            root.display()
        ),
    );
    let server = Server::start(warren::config::load_dir(t.path()).expect("config"));
    let r = get(&server, "/page.html");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("transfer-encoding"), Some("chunked"));
    assert!(r.header("content-length").is_none() && r.header("etag").is_none());
    let body = r.text();
    let version = concat!("warren ", env!("CARGO_PKG_VERSION"));
    assert!(body.contains(&format!("xxxx{version} and ")), "substituted across the boundary");
    assert!(!body.contains("${version}") && !body.contains("${hostname}") && body.contains("keep ${other}"));
    assert_eq!(
        body.len(),
        page.len() - "${version}".len() + version.len() - "${hostname}".len() + body_hostname_len(&body)
    );
    // HTTP/1.0: no chunking, the close ends the body.
    let r = request(&server, "GET /page.html HTTP/1.0\r\n\r\n");
    assert!(r.header("transfer-encoding").is_none());
    assert!(r.text().contains(version));
    // Files the mount does not interpret are served as they are.
    let r = get(&server, "/plain.txt");
    assert_eq!((r.text().as_str(), r.header("etag").is_some()), ("${version}\n", true));

    write(
        t.path(),
        "conf",
        r#"{ "vhosts": [ { "name": "x", "port": "0", "mounts": [ { "mountpoint": "/", "origin": "file:///tmp",
              "interpret": { ".html": "no-such" } } ] } ] }"#,
    );
    let e = load_err(t.path());
    assert!(e.contains("vhosts[0].mounts[0].interpret..html") && e.contains("no protocol plugin"), "{e}");
}

/// The length the host name took in a substituted body.
fn body_hostname_len(body: &str) -> usize {
    let start = body.find(" and ").expect("marker") + " and ".len();
    body[start..].find("; keep").expect("marker")
}

/// A link in conf.d to a file that is gone, or a loop, is an error naming
/// it (it used to be skipped, dropping its vhosts without a word); a
/// `conf` that is a FIFO is refused, not read (which would block until
/// someone writes to it).
#[test]
fn links_to_nothing_and_fifos_are_named_not_skipped_or_waited_for() {
    let t = tempfile::tempdir().expect("tempdir");
    let cfg = t.path();
    write(cfg, "conf", "{}");
    write(cfg, "conf.d/site", r#"{ "vhosts": [ { "name": "x", "port": "0" } ] }"#);
    assert!(warren::config::load_dir(cfg).is_ok());
    std::os::unix::fs::symlink(cfg.join("gone"), cfg.join("conf.d/linked")).expect("symlink");
    let e = load_err(cfg);
    assert!(e.contains("conf.d/linked") && e.contains("symbolic link to nothing"), "{e}");
    std::fs::remove_file(cfg.join("conf.d/linked")).expect("rm");
    std::os::unix::fs::symlink("loop", cfg.join("conf.d/loop")).expect("symlink");
    assert!(load_err(cfg).contains("conf.d/loop"));
    std::fs::remove_file(cfg.join("conf.d/loop")).expect("rm");
    std::fs::remove_file(cfg.join("conf")).expect("rm");
    mkfifo(&cfg.join("conf"));
    let e = load_err(cfg);
    assert!(e.contains("conf") && e.contains("not a regular file"), "{e}");
}
