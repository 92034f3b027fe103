//! A vhost bound to one network device (issue 18 item 4; seed
//! "BINDTODEV", SO_BINDTODEVICE): tested between two network namespaces
//! this test makes, joined by a veth pair. The server runs in one; a
//! client in the other reaches it through the device, while a client
//! beside the server, over loopback, does not.
//!
//! Needs root (CAP_NET_ADMIN) to make namespaces: where the kernel
//! refuses them, the test says so and passes without checking.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// Runs `ip` with `args`; the error text if it fails.
fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip").args(args).output().map_err(|e| format!("ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()))
    }
}

/// Two namespaces joined by a veth pair, removed on drop.
struct Netns {
    server: String,
    client: String,
    device: String,
}

impl Netns {
    /// `None` (and why) where the kernel or our privileges refuse.
    fn make() -> Result<Netns, String> {
        let id = std::process::id() % 100_000;
        let n = Netns { server: format!("wsrv{id}"), client: format!("wcli{id}"), device: format!("wva{id}") };
        let peer = format!("wvb{id}");
        ip(&["netns", "add", &n.server])?;
        ip(&["netns", "add", &n.client])?;
        ip(&["link", "add", &n.device, "netns", &n.server, "type", "veth", "peer", "name", &peer, "netns", &n.client])?;
        ip(&["-n", &n.server, "addr", "add", "10.231.0.1/24", "dev", &n.device])?;
        ip(&["-n", &n.client, "addr", "add", "10.231.0.2/24", "dev", &peer])?;
        for (ns, dev) in [(&n.server, &n.device), (&n.client, &peer)] {
            ip(&["-n", ns, "link", "set", dev, "up"])?;
            ip(&["-n", ns, "link", "set", "lo", "up"])?;
        }
        Ok(n)
    }

    /// curl in namespace `ns`: the status code, or 0 when it could not
    /// connect.
    fn curl(&self, ns: &str, url: &str) -> u16 {
        let out = Command::new("ip")
            .args(["netns", "exec", ns, "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "20", url])
            .output()
            .expect("curl");
        String::from_utf8_lossy(&out.stdout).trim().parse().unwrap_or(0)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // The veth pair goes with its namespaces.
        let _ = ip(&["netns", "del", &self.server]);
        let _ = ip(&["netns", "del", &self.client]);
    }
}

#[test]
fn a_vhost_bound_to_a_device_is_reached_through_it_only() {
    let net = match Netns::make() {
        Ok(n) => n,
        Err(why) => {
            eprintln!("SKIPPED: this kernel or user may not make network namespaces: {why}");
            return;
        }
    };
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("index.html"), "<p>through the device</p>").expect("write");
    std::fs::create_dir_all(dir.path().join("conf.d")).expect("mkdir");
    std::fs::write(dir.path().join("conf"), "{}").expect("write");
    // Two ports on every address: 8080 bound to the veth device, 8081 not.
    let site = format!(
        r#"{{ "vhosts": [
  {{ "name": "dev", "port": "8080", "bind-to-device": "{dev}",
     "mounts": [ {{ "mountpoint": "/", "origin": "file://{root}" }} ] }},
  {{ "name": "any", "port": "8081",
     "mounts": [ {{ "mountpoint": "/", "origin": "file://{root}" }} ] }} ] }}"#,
        dev = net.device,
        root = dir.path().display()
    );
    std::fs::write(dir.path().join("conf.d/site"), site).expect("write");
    let mut child = Command::new("ip")
        .args(["netns", "exec", &net.server, support::BIN, "--config"])
        .arg(dir.path())
        .args(["--log-level", "info"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn warren");
    let stderr = child.stderr.take().expect("stderr");
    let _running = support::Running(child);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    loop {
        let line = rx.recv_timeout(Duration::from_secs(20)).expect("warren exited before serving");
        if line.contains("serving on") {
            break;
        }
    }
    // Through the device: served.
    assert_eq!(net.curl(&net.client, "http://10.231.0.1:8080/index.html"), 200);
    // Beside the server, over loopback, the bound port is not there; the
    // other port is.
    assert_eq!(net.curl(&net.server, "http://127.0.0.1:8080/index.html"), 0);
    assert_eq!(net.curl(&net.server, "http://127.0.0.1:8081/index.html"), 200);
    assert_eq!(net.curl(&net.client, "http://10.231.0.1:8081/index.html"), 200);
}

#[test]
fn an_unknown_device_is_a_config_error_naming_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join("conf.d")).expect("mkdir");
    std::fs::write(dir.path().join("conf"), "{}").expect("write");
    let site = format!(
        r#"{{ "vhosts": [ {{ "name": "dev", "port": "0", "interface": "127.0.0.1", "bind-to-device": "nosuchdev0",
     "mounts": [ {{ "mountpoint": "/", "origin": "file://{}" }} ] }} ] }}"#,
        dir.path().display()
    );
    std::fs::write(dir.path().join("conf.d/site"), site).expect("write");
    let info = warren::config::load_dir(dir.path()).expect("the key is read");
    let e = match warren::Context::new(info) {
        Ok(_) => panic!("a vhost bound to a device that does not exist was accepted"),
        Err(e) => e.to_string(),
    };
    assert!(e.contains("nosuchdev0") && e.contains("dev"), "{e}");
}
