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
    assert_eq!(mounts[0].default_document, "about.html");
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
