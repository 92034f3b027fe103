//! warren's one error type (issue 12 item 9): what each public call fails
//! with says its kind through predicates, keeps the message it always
//! had, and goes into an `io::Error` with `?`.

mod support;

use std::io;
use std::time::Duration;
use support::{files_mount, site, vhost, Server};
use warren::{Context, ContextInfo, Mount, VhostInfo};

#[test]
fn refused_input_is_invalid_input() {
    let e = Context::new(ContextInfo::new()).expect_err("no vhost accepted");
    assert!(e.is_invalid_input() && !e.is_io() && !e.is_bind() && !e.is_config(), "{e:?}");
    assert_eq!(e.to_string(), "no vhost to serve");
    let (_t, root) = site();
    let v = vhost().mount(files_mount("/", &root)).header("X-A", "1\r\nSet-Cookie: evil=1");
    let e = Context::new(ContextInfo::new().vhost(v)).expect_err("header accepted");
    assert!(e.is_invalid_input(), "{e:?}");
    let v = vhost().mount(Mount::callback("/", "nope"));
    let e = Context::new(ContextInfo::new().vhost(v)).expect_err("missing protocol accepted");
    assert!(e.is_invalid_input() && e.to_string().contains("\"nope\""), "{e:?}");
}

#[test]
fn an_address_in_use_is_a_bind_error_naming_it() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr");
    let (_t, root) = site();
    let v = VhostInfo::new("a", addr).mount(files_mount("/", &root));
    let e = Context::new(ContextInfo::new().vhost(v)).expect_err("bound twice");
    assert!(e.is_bind() && !e.is_io(), "{e:?}");
    assert!(e.to_string().starts_with(&format!("cannot listen on {addr}: ")), "{e}");
    assert_eq!(e.io_error().map(io::Error::kind), Some(io::ErrorKind::AddrInUse));
    assert!(std::error::Error::source(&e).is_some());
}

#[test]
fn an_address_not_on_this_machine_is_a_bind_error() {
    // TEST-NET-1 (RFC 5737): never an address of this machine.
    let (_t, root) = site();
    let v = VhostInfo::new("a", "192.0.2.1:0".parse().expect("addr")).mount(files_mount("/", &root));
    let e = Context::new(ContextInfo::new().vhost(v)).expect_err("bound a foreign address");
    assert!(e.is_bind(), "{e:?}");
    assert_eq!(e.io_error().map(io::Error::kind), Some(io::ErrorKind::AddrNotAvailable));
}

#[test]
fn a_mount_root_that_cannot_be_opened_is_io() {
    let t = tempfile::tempdir().expect("tempdir");
    let missing = t.path().join("missing");
    let e = Context::new(ContextInfo::new().vhost(vhost().mount(Mount::dir("/", &missing))))
        .expect_err("missing root accepted");
    assert!(e.is_io() && !e.is_invalid_input(), "{e:?}");
    assert_eq!(e.io_error().map(io::Error::kind), Some(io::ErrorKind::NotFound));
    assert!(e.to_string().contains("missing"), "{e}");
}

#[test]
fn a_configuration_error_converts_keeping_file_line_and_message() {
    let t = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(t.path().join("conf.d")).expect("mkdir");
    std::fs::write(t.path().join("conf"), "{}").expect("write");
    std::fs::write(t.path().join("conf.d/site"), "{\"vhosts\": [{\"name\": \"a\", \"port\": \"x\"}]}").expect("write");
    let detailed = warren::config::load_dir(t.path()).map(|_| ()).expect_err("accepted");
    let text = detailed.to_string();
    let load = || -> warren::Result<ContextInfo> { Ok(warren::config::load_dir(t.path())?) };
    let e = load().map(|_| ()).expect_err("accepted");
    assert!(e.is_config() && !e.is_invalid_input(), "{e:?}");
    assert_eq!(e.to_string(), text);
    assert_eq!(e.config_error(), Some(&detailed));
    assert!(detailed.position.is_some(), "{detailed}");
    assert_eq!(e.config_error().and_then(|c| c.position), detailed.position, "{e}");
}

#[test]
fn question_mark_takes_it_into_an_io_result() {
    fn start() -> io::Result<Context> {
        Ok(Context::new(ContextInfo::new())?)
    }
    let e = start().map(|_| ()).expect_err("no vhost accepted");
    assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    assert_eq!(e.to_string(), "no vhost to serve");
    // The system's own error comes back as it was.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let v = VhostInfo::new("a", taken.local_addr().expect("addr"));
    let e: io::Error = Context::new(ContextInfo::new().vhost(v)).map(|_| ()).expect_err("bound twice").into();
    assert_eq!(e.kind(), io::ErrorKind::AddrInUse);
}

#[test]
fn add_vhost_answers_with_the_same_kinds() {
    let (_t, root) = site();
    let server = Server::files(&root);
    let wait = |rx: std::sync::mpsc::Receiver<warren::Result<std::net::SocketAddr>>| {
        rx.recv_timeout(Duration::from_secs(30)).expect("the loop answers")
    };
    let e = wait(server.handle.add_vhost(VhostInfo::new("bad", server.addr).mount(Mount::callback("/", "nope"))))
        .expect_err("refused");
    assert!(e.is_invalid_input(), "{e:?}");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr");
    let e = wait(server.handle.add_vhost(VhostInfo::new("taken", addr).mount(files_mount("/", &root))))
        .expect_err("bound twice");
    assert!(e.is_bind(), "{e:?}");
}

#[test]
fn plugin_errors_are_invalid_input_with_their_words() {
    let mut v = vhost();
    let e = v.plugin_with_options("no-such", &[]).expect_err("unknown plugin");
    assert!(e.is_invalid_input(), "{e:?}");
    assert!(e.to_string().starts_with("no protocol plugin called \"no-such\"; built in: "), "{e}");
    let e = v.plugin_with_options("lws-mirror-protocol", &[("speed", "1")]).expect_err("unknown option");
    assert!(e.is_invalid_input() && e.to_string().contains("takes no option \"speed\""), "{e}");
}

#[test]
fn pack_errors_are_io_with_the_system_kind() {
    let t = tempfile::tempdir().expect("tempdir");
    let out = std::io::Cursor::new(Vec::new());
    let e = warren::pack::pack_dir(&t.path().join("missing"), out).expect_err("packed nothing");
    assert!(e.is_io(), "{e:?}");
    assert_eq!(e.io_error().map(io::Error::kind), Some(io::ErrorKind::NotFound));
    assert!(e.to_string().contains("missing"), "{e}");
}
