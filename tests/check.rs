//! `ContextInfo::check` and `warren check` (issue 14 item 3): a
//! configuration validated as a start would, without binding, and a
//! report of what would be served that matches what is served.

mod support;

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::Path;
use support::*;
use warren::tls::TlsConfig;
use warren::{ContextInfo, Mount, MountKind, VhostInfo};

fn errors_of(info: &ContextInfo) -> Vec<String> {
    match info.check() {
        Ok(r) => panic!("check passed:\n{r}"),
        Err(errors) => errors.iter().map(|e| e.to_string()).collect(),
    }
}

fn has(errors: &[String], parts: &[&str]) -> bool {
    errors.iter().any(|e| parts.iter().all(|p| e.contains(p)))
}

#[test]
fn check_reports_every_problem_not_just_the_first() {
    let (t, root) = site();
    let missing = t.path().join("missing");
    let not_exec = t.path().join("prog.sh");
    std::fs::write(&not_exec, "#!/bin/sh\n").expect("write");
    let vhost = vhost()
        .mount(Mount::dir("/", &root))
        .mount(Mount::dir("/a", missing.join("a")))
        .mount(Mount::dir("/b", missing.join("b.zip")))
        .mount(Mount::callback("/cb", "no-such-protocol"))
        .mount(Mount::cgi("/cgi", &not_exec))
        .mount(Mount::dir("/private", &root).basic_auth(missing.join("passwords")))
        .header("X-Bad", "a\r\nb")
        .error_page(404, "/no-such-page.html")
        .access_log(missing.join("logs/access.log"));
    let errors = errors_of(&ContextInfo::new().vhost(vhost));
    let all = errors.join("\n");
    for parts in [
        &["mount /a", "missing/a"][..],
        &["mount /b", "missing/b.zip"],
        &["mount /cb", "no-such-protocol"],
        &["mount /cgi", "not executable"],
        &["mount /private", "passwords"],
        &["header \"X-Bad\""],
        &["error page /no-such-page.html", "404"],
        &["access log", "missing/logs/access.log"],
    ] {
        assert!(has(&errors, parts), "no error with {parts:?} in:\n{all}");
    }
    assert_eq!(errors.len(), 8, "{all}");
    assert!(errors.iter().all(|e| e.contains("vhost \"localhost\"")), "each names its vhost:\n{all}");
    // The fatal ones refuse a start too (the first of them).
    let again = vhost_on_missing(&missing);
    let e = warren::Context::new(ContextInfo::new().vhost(again)).expect_err("refused");
    assert!(e.to_string().contains("mount /a"), "{e}");
}

fn vhost_on_missing(missing: &Path) -> VhostInfo {
    vhost().mount(Mount::dir("/a", missing.join("a"))).mount(Mount::dir("/b", missing.join("b")))
}

#[test]
fn check_finds_tls_problems_and_mixed_ports() {
    let t = tempfile::tempdir().expect("tempdir");
    let ca = support::tls::Ca::new(t.path(), "check ca");
    let good = ca.server("good", &["a.example", "*.a.example"], |_| {});
    let other = ca.server("other", &["b.example"], |_| {});
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
    let root = t.path();
    let info = ContextInfo::new()
        .vhost(VhostInfo::new("a.example", addr).tls(TlsConfig::from_pem_files(&good.cert, &good.key)))
        .vhost(VhostInfo::new("plain", addr).mount(Mount::dir("/", root)))
        .vhost(
            VhostInfo::new("nocert", SocketAddr::from((Ipv4Addr::LOCALHOST, 1)))
                .tls(TlsConfig::from_pem_files(t.path().join("gone.pem"), &good.key)),
        )
        .vhost(
            VhostInfo::new("mismatch", SocketAddr::from((Ipv4Addr::LOCALHOST, 2)))
                .tls(TlsConfig::from_pem_files(&good.cert, &other.key)),
        );
    let errors = errors_of(&info);
    let all = errors.join("\n");
    assert!(has(&errors, &["vhost \"plain\" shares", "vhost \"a.example\"", "TLS"]), "{all}");
    assert!(has(&errors, &["vhost \"nocert\"", "gone.pem"]), "{all}");
    assert!(has(&errors, &["vhost \"mismatch\"", "TLS"]), "{all}");
    assert_eq!(errors.len(), 3, "{all}");

    // Alone, the good one passes, and the report says its certificate.
    let info = ContextInfo::new()
        .vhost(VhostInfo::new("a.example", addr).tls(TlsConfig::from_pem_files(&good.cert, &good.key)));
    let report = info.check().unwrap_or_else(|e| panic!("{e:?}"));
    let l = &report.listeners[0];
    assert!(l.tls);
    let tls = l.vhosts[0].tls.as_ref().expect("tls");
    assert_eq!(tls.certificate.as_deref(), Some(good.cert.as_path()));
    assert_eq!(tls.names, ["a.example", "*.a.example"]);
    let text = report.to_string();
    assert!(text.contains("listener 127.0.0.1:0 (https)"), "{text}");
    assert!(text.contains(&format!("certificate: {}", good.cert.display())), "{text}");
    assert!(text.contains("certificate names: a.example, *.a.example"), "{text}");
}

#[test]
fn check_binds_nothing_and_creates_no_log() {
    let (t, root) = site();
    // The port is held: a start would fail, the check does not bind.
    let held = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
    let addr = held.local_addr().expect("addr");
    let log = t.path().join("access.log");
    let info = ContextInfo::new().vhost(VhostInfo::new("held", addr).mount(Mount::dir("/", &root)).access_log(&log));
    let report = info.check().unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(report.listeners[0].address, addr);
    assert!(!log.exists(), "the check created the access log");
    let e = warren::Context::new(info).expect_err("the port is held");
    assert!(e.is_bind(), "{e}");
}

#[test]
fn check_reports_each_mount_kind() {
    let (t, root) = site();
    let zip = t.path().join("site.zip");
    let mut out = std::fs::File::create(&zip).expect("create");
    warren::pack::pack_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("webroot"), &mut out).expect("pack");
    drop(out);
    let cgi = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/cgi-bin");
    let vhost = vhost()
        .mount(Mount::dir("/", &root).default_document("about.html"))
        .mount(Mount::dir("/z", &zip))
        .mount(
            Mount::cgi("/cgi-bin", &cgi)
                .cgi_timeout(std::time::Duration::from_secs(7))
                .cgi_env("GREETING", "hi")
                .cgi_max_processes(3),
        )
        .mount(Mount::redirect("/go", "https://example.org/x", true))
        .mount(Mount::callback("/formtest", "protocol-post-demo"))
        .protocol(warren::plugins::post_demo::PostDemo);
    let report = ContextInfo::new().vhost(vhost).check().unwrap_or_else(|e| panic!("{e:?}"));
    let mounts = &report.listeners[0].vhosts[0].mounts;
    let kinds: Vec<(&str, MountKind)> = mounts.iter().map(|m| (m.mountpoint.as_str(), m.kind)).collect();
    assert_eq!(
        kinds,
        [
            ("/", MountKind::Files),
            ("/z", MountKind::Zip),
            ("/cgi-bin", MountKind::Cgi),
            ("/go", MountKind::Redirect),
            ("/formtest", MountKind::Callback)
        ]
    );
    assert_eq!(mounts[0].index, ["about.html"]);
    let c = mounts[2].cgi.as_ref().expect("cgi settings");
    assert_eq!((c.timeout.as_secs(), c.max_processes), (7, 3));
    assert_eq!(c.env, [("GREETING".to_string(), "hi".to_string())]);
    let text = report.to_string();
    for line in
        ["kind: zip", "cgi timeout: 7 s", "cgi env: GREETING=hi", "origin: https://example.org/x (path appended)"]
    {
        assert!(text.contains(line), "{line:?} not in:\n{text}");
    }
}

/// Runs `warren ARGS`: exit code, stdout, stderr.
fn warren(args: &[&str]) -> (Option<i32>, String, String) {
    let out = std::process::Command::new(BIN).args(args).output().expect("run warren");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A copy of examples/conf in a temporary directory, its paths absolute,
/// its port `port` and its access log inside the copy.
fn example_conf(port: u16) -> tempfile::TempDir {
    let t = tempfile::tempdir().expect("tempdir");
    let repo = env!("CARGO_MANIFEST_DIR");
    let src = Path::new(repo).join("examples/conf");
    std::fs::create_dir_all(t.path().join("conf.d")).expect("mkdir");
    std::fs::copy(src.join("conf"), t.path().join("conf")).expect("copy");
    let site = std::fs::read_to_string(src.join("conf.d/localhost")).expect("read");
    let site = site
        .replace("\"port\": \"7681\"", &format!("\"port\": \"{port}\""))
        .replace("/tmp/warren-example-access.log", &t.path().join("access.log").to_string_lossy())
        .replace("file://webroot", &format!("file://{repo}/webroot"))
        .replace("file://examples/", &format!("file://{repo}/examples/"))
        .replace("cgi://examples/", &format!("cgi://{repo}/examples/"))
        .replace("\"examples/conf/passwords\"", &format!("\"{repo}/examples/conf/passwords\""));
    std::fs::write(t.path().join("conf.d/localhost"), site).expect("write");
    t
}

/// A mount as `warren check` lists it: its lines as (key, value).
struct Listed {
    mountpoint: String,
    fields: Vec<(String, String)>,
}

impl Listed {
    fn get(&self, key: &str) -> Option<&str> {
        self.fields.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
}

fn listed_mounts(report: &str) -> Vec<Listed> {
    let mut mounts: Vec<Listed> = Vec::new();
    for line in report.lines() {
        if let Some(mp) = line.trim().strip_prefix("mount ") {
            mounts.push(Listed { mountpoint: mp.to_string(), fields: Vec::new() });
        } else if let (Some(m), Some((k, v))) = (mounts.last_mut(), line.trim().split_once(": ")) {
            if line.starts_with("      ") {
                m.fields.push((k.to_string(), v.to_string()));
            }
        }
    }
    mounts
}

#[test]
fn warren_check_lists_what_the_example_configuration_serves() {
    let t = example_conf(0);
    let dir = t.path().to_str().expect("utf-8");
    let (code, report, err) = warren(&["check", "--config", dir]);
    assert_eq!(code, Some(0), "stdout:\n{report}\nstderr:\n{err}");
    assert!(report.contains("listener 127.0.0.1:0 (http)"), "{report}");
    assert!(report.contains("vhost localhost (no TLS)"), "{report}");
    assert!(!t.path().join("access.log").exists(), "check created the access log");
    let mounts = listed_mounts(&report);
    let kinds: Vec<&str> = mounts.iter().filter_map(|m| m.get("kind")).collect();
    assert_eq!(kinds, ["files", "files", "callback", "files", "redirect", "cgi"], "{report}");

    // Now serve the same configuration and ask each mount.
    let (_server, port) = start_warren(&["--config", dir]);
    let base = format!("http://127.0.0.1:{port}");
    for m in &mounts {
        let kind = m.get("kind").expect("kind");
        let origin = Path::new(m.get("origin").expect("origin"));
        let dir_url =
            format!("{base}{}", if m.mountpoint == "/" { "/".to_string() } else { format!("{}/", m.mountpoint) });
        let mut args: Vec<String> =
            vec!["-s".into(), "-o".into(), "-".into(), "-w".into(), "\n%{http_code} %{redirect_url}".into()];
        if let Some(auth) = m.get("auth") {
            // "basic, realm \"lwsws\", credentials FILE": log in with the file's first line.
            let file = auth.rsplit("credentials ").next().expect("file");
            let creds = std::fs::read_to_string(file).expect("credentials");
            args.extend(["-u".into(), creds.lines().next().expect("a line").to_string()]);
        }
        let fetch = |url: &str| {
            let mut a: Vec<&str> = args.iter().map(String::as_str).collect();
            a.push(url);
            let (ok, body) = curl(&a);
            assert!(ok, "curl {url}");
            let text = String::from_utf8_lossy(&body).into_owned();
            let (body, tail) = text.rsplit_once('\n').expect("status line");
            let (status, location) = tail.split_once(' ').expect("status and location");
            (status.parse::<u16>().expect("status"), location.to_string(), body.to_string())
        };
        match kind {
            "files" | "zip" => {
                let doc = m.get("index").expect("index").split(", ").next().expect("a default document");
                let (status, _, body) = fetch(&dir_url);
                assert_eq!(status, 200, "{}", m.mountpoint);
                let want = std::fs::read_to_string(origin.join(doc)).expect("default document");
                if m.get("interpret").is_some() {
                    assert!(body.contains("<h1>"), "{}: {body}", m.mountpoint);
                } else {
                    assert_eq!(body, want, "{}: the listed default document is served", m.mountpoint);
                }
                if let Some(cache) = m.get("cache") {
                    let (ok, head) = curl(&["-s", "-I", "-u", "demo:demo", &dir_url]);
                    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
                    assert!(ok && head.contains(&format!("cache-control: {cache}")), "{}: {head}", m.mountpoint);
                }
            }
            "redirect" => {
                let (status, location, _) = fetch(&format!("{base}{}/x", m.mountpoint));
                assert_eq!(status, 301, "{}", m.mountpoint);
                let target = m.get("origin").expect("origin").trim_end_matches(" (path appended)");
                assert_eq!(location, format!("{target}/x"), "{}", m.mountpoint);
            }
            "callback" => {
                let (status, _, body) = fetch(&format!("{base}{}", m.mountpoint));
                assert_eq!(status, 200, "{}", m.mountpoint);
                assert!(body.contains("<form"), "{}: the post-demo protocol answers: {body}", m.mountpoint);
            }
            "cgi" => {
                // A program of the listed directory runs (its output, not its text).
                let (status, _, body) = fetch(&format!("{base}{}/env.sh", m.mountpoint));
                assert_eq!(status, 200, "{}", m.mountpoint);
                assert!(origin.join("env.sh").is_file());
                assert!(body.contains("GATEWAY_INTERFACE") && !body.contains("#!/bin/sh"), "{}: {body}", m.mountpoint);
            }
            other => panic!("unexpected kind {other}"),
        }
    }
}

#[test]
fn warren_check_binds_nothing() {
    // The configured port is held by this test: a start would fail.
    let held = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
    let port = held.local_addr().expect("addr").port();
    let t = example_conf(port);
    let dir = t.path().to_str().expect("utf-8");
    let (code, report, err) = warren(&["check", "--config", dir]);
    assert_eq!(code, Some(0), "{err}");
    assert!(report.contains(&format!("listener 127.0.0.1:{port} (http)")), "{report}");
    let (code, _, err) = warren(&["--config", dir]);
    assert_eq!(code, Some(2), "a start on the held port fails: {err}");
    // The flags name the held port too: still not bound.
    let (_s, root) = site();
    let port = port.to_string();
    let (code, report, err) = warren(&["check", "--root", root.to_str().expect("utf-8"), "--port", &port]);
    assert_eq!(code, Some(0), "{err}");
    assert!(report.contains(&format!("listener 127.0.0.1:{port} (http)")), "{report}");
}

#[test]
fn warren_check_names_each_error() {
    // Broken JSON: the file, line and column.
    let t = example_conf(0);
    let dir = t.path().to_str().expect("utf-8");
    std::fs::write(t.path().join("conf"), "{ \"global\": { \"server-string\": \"x\" }").expect("write");
    let (code, out, err) = warren(&["check", "--config", dir]);
    assert_eq!(code, Some(2), "{out}");
    assert!(out.is_empty(), "no report on error: {out}");
    assert!(err.contains(&format!("{dir}/conf:1:")) && err.contains("never closed"), "{err}");

    // Two mounts whose origins are missing: both named.
    let t = example_conf(0);
    let dir = t.path().to_str().expect("utf-8");
    let site = t.path().join("conf.d/localhost");
    let text = std::fs::read_to_string(&site).expect("read");
    let vars = format!("file://{}/examples/conf/vars", env!("CARGO_MANIFEST_DIR"));
    let text = text.replace(&vars, "file:///nonexistent/vars").replacen(
        &format!("file://{}/webroot\", \"default\"", env!("CARGO_MANIFEST_DIR")),
        "file:///nonexistent/root\", \"default\"",
        1,
    );
    std::fs::write(&site, text).expect("write");
    let (code, out, err) = warren(&["check", "--config", dir]);
    assert_eq!(code, Some(2), "{out}");
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("warren: ")).collect();
    assert!(lines.iter().any(|l| l.contains("mount /vars") && l.contains("/nonexistent/vars")), "{err}");
    assert!(lines.iter().any(|l| l.contains("mount /:") && l.contains("/nonexistent/root")), "{err}");
    assert!(lines.iter().all(|l| l.contains("vhost \"localhost\"")), "{err}");

    // A missing certificate: the file and key named.
    let t = example_conf(0);
    let dir = t.path().to_str().expect("utf-8");
    let text = std::fs::read_to_string(t.path().join("conf.d/localhost")).expect("read");
    let text = text.replacen(
        "\"name\": \"localhost\",",
        "\"name\": \"localhost\", \"host-ssl-cert\": \"/nonexistent/cert.pem\", \"host-ssl-key\": \"/nonexistent/key.pem\",",
        1,
    );
    std::fs::write(t.path().join("conf.d/localhost"), text).expect("write");
    std::fs::write(t.path().join("conf"), "{ \"global\": { \"init-ssl\": \"1\" } }").expect("write");
    let (code, out, err) = warren(&["check", "--config", dir]);
    assert_eq!(code, Some(2), "{out}");
    assert!(err.contains("/nonexistent/cert.pem") && err.contains("host-ssl-cert"), "{err}");
}

#[test]
fn warren_check_takes_the_serving_flags() {
    let (_t, root) = site();
    let cgi = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/cgi-bin");
    let root = root.to_str().expect("utf-8");
    let cgi_flag = format!("/c={}", cgi.display());
    let (code, report, err) = warren(&["check", "--root", root, "--cgi", &cgi_flag, "--port", "0"]);
    assert_eq!(code, Some(0), "{err}");
    let mounts = listed_mounts(&report);
    let find = |mp: &str| mounts.iter().find(|m| m.mountpoint == mp).unwrap_or_else(|| panic!("{mp} not in {report}"));
    assert_eq!(find("/").get("kind"), Some("files"));
    assert_eq!(find("/").get("origin"), Some(root));
    assert_eq!(find("/c").get("kind"), Some("cgi"));
    assert_eq!(find("/c").get("origin"), Some(cgi.to_str().expect("utf-8")));
    assert_eq!(find("/formtest").get("kind"), Some("callback"));
    // And a --root that is not there is an error, naming it.
    let (code, _, err) = warren(&["check", "--root", "/nonexistent/site"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("/nonexistent/site"), "{err}");
}
