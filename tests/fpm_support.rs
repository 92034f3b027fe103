//! The php-fpm fixture (tests/support/fpm.rs) on its own, without
//! warren: the pool it starts is the one configured (its worker count,
//! its ini values, its listen address), answers FastCGI requests from its
//! workers, and leaves no process behind when killed or dropped. The
//! `fcgi://` tests rely on all three.

mod support;

use std::path::Path;
use support::fpm::{self, Fpm, FpmOptions};

const WHO: &str = "<?php\nheader('Content-Type: text/plain');\n\
                   file_put_contents('php://stderr', \"to-the-log \" . $_GET['tag'] . \"\\n\");\n\
                   echo getmypid(), ' ', ini_get('memory_limit'), ' ', $_SERVER['SCRIPT_NAME'];\n";

/// The pid and memory_limit a script reports, from its body.
fn who(fpm: &Fpm, tag: &str) -> (u32, String, String) {
    let r = fpm.get("who.php", &format!("tag={tag}")).expect("FastCGI request");
    assert_eq!((r.protocol_status, r.app_status), (0, 0), "{r:?}");
    let body = String::from_utf8(r.body().to_vec()).expect("UTF-8 body");
    let mut it = body.split(' ');
    let pid = it.next().and_then(|p| p.parse().ok()).unwrap_or_else(|| panic!("{body:?}"));
    (pid, it.next().unwrap_or("").to_owned(), it.next().unwrap_or("").to_owned())
}

/// No process left with this pid and start time, but a zombie waiting
/// for init.
fn gone(pid: u32, started: Option<u64>) -> bool {
    fpm::start_time(pid) != started || fpm::state(pid) == Some('Z')
}

#[test]
fn the_pool_forks_its_workers_answers_from_them_and_dies_whole() {
    let mut fpm = Fpm::start(FpmOptions {
        children: 3,
        php_admin_values: vec![("memory_limit".into(), "24M".into())],
        ..FpmOptions::default()
    });
    let sock = fpm.socket().expect("a Unix socket by default");
    assert_eq!(fpm.addr(), sock.to_str().expect("UTF-8"));
    assert!(sock.starts_with(fpm.dir()) && fpm.docroot().starts_with(fpm.dir()));
    assert_eq!(fpm.origin(), format!("fcgi://{}", sock.display()));

    let workers = fpm.worker_pids();
    assert_eq!(workers.len(), 3, "pm = static forks all its children at start");
    assert!(!workers.contains(&fpm.pid()));

    fpm.script("who.php", WHO);
    let (pid, limit, name) = who(&fpm, "first");
    assert!(workers.contains(&pid), "answered by {pid}, not one of the workers {workers:?}");
    assert_eq!((limit.as_str(), name.as_str()), ("24M", "/who.php"), "php_admin_value and the params reach PHP");
    // The master relays a worker's stderr on its own time: waited for.
    let until = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !fpm.log().contains("to-the-log first") {
        assert!(std::time::Instant::now() < until, "a script's stderr goes to the log: {}", fpm.log());
        std::thread::sleep(std::time::Duration::from_millis(20));
    }

    let master = (fpm.pid(), fpm::start_time(fpm.pid()));
    let started: Vec<_> = workers.iter().map(|&w| (w, fpm::start_time(w))).collect();
    assert!(fpm.running());
    fpm.kill();
    assert!(!fpm.running());
    assert!(gone(master.0, master.1), "the master is reaped");
    for (w, t) in started {
        assert!(gone(w, t), "worker {w} is still alive");
    }
    assert!(fpm.connect().is_err(), "nothing listens any more");
    fpm.kill(); // a second time does nothing
}

#[test]
fn a_tcp_pool_listens_on_loopback() {
    let fpm = Fpm::start(FpmOptions { children: 1, tcp: true, ..FpmOptions::default() });
    assert_eq!(fpm.socket(), None);
    assert!(fpm.addr().starts_with("127.0.0.1:"), "{}", fpm.addr());
    assert_eq!(fpm.worker_pids().len(), 1);
    fpm.script("who.php", WHO);
    let (pid, limit, _) = who(&fpm, "tcp");
    assert_eq!(vec![pid], fpm.worker_pids());
    assert_ne!(limit, "24M", "no admin value set here");
}

#[test]
fn drop_kills_the_pool_and_removes_its_dir() {
    let fpm = Fpm::start(FpmOptions::default());
    assert_eq!(fpm.worker_pids().len(), 4, "four children by default");
    let procs: Vec<_> = std::iter::once(fpm.pid()).chain(fpm.worker_pids()).map(|p| (p, fpm::start_time(p))).collect();
    let dir = fpm.dir().to_path_buf();
    drop(fpm);
    for (p, t) in procs {
        assert!(gone(p, t), "{p} is still alive");
    }
    assert!(!Path::new(&dir).exists(), "{} is left", dir.display());
}
