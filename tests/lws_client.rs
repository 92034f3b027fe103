//! Debian's `libwebsockets-test-client` (lws 4.1.6, package
//! `libwebsockets-test-server`) against the `warren` binary's built-in
//! site: the lws clients deployed out there are the peers warren speaks to
//! (issue 11 item 2, PLUG-1, PLUG-2, RFC 7692).

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const CLIENT: &str = "/usr/bin/libwebsockets-test-client";

/// The client opens a dumb-increment and a mirror connection, both
/// offering permessage-deflate. Its mirror side (4096-byte buffer) takes
/// deflate and must keep receiving (it used to spin at 100% CPU after
/// warren's first small plain message); its dumb-increment side (20-byte
/// buffer) drops the extension, as lws does under 128 bytes, so warren
/// must not agree it there (PLUG-1's 10-byte buffer). Each flows for 5 s.
#[test]
fn lws_test_client_counts_and_mirrors_with_deflate() {
    assert!(
        std::path::Path::new(CLIENT).exists(),
        "{CLIENT} is missing: install the package libwebsockets-test-server (scripts/test does)"
    );
    let (_warren, port) = support::start_warren(&[]);
    // -d 1167: errors to info, user and extension logs. The extension's
    // lines show each received compressed message end (was_fin).
    let mut child = Command::new(CLIENT)
        .args(["127.0.0.1", &format!("--port={port}"), "-d", "1167"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn libwebsockets-test-client");
    let pipes: Vec<Box<dyn std::io::Read + Send>> =
        vec![Box::new(child.stdout.take().expect("stdout")), Box::new(child.stderr.take().expect("stderr"))];
    // Killed and reaped when dropped.
    let client = support::Running(child);
    let (tx, rx) = mpsc::channel::<String>();
    for pipe in pipes {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
    }
    drop(tx);

    const FLOW: Duration = Duration::from_secs(5);
    let deadline = Instant::now() + Duration::from_secs(60);
    let (mut counts, mut first_count, mut last_count) = (Vec::<u64>::new(), None, None);
    let (mut inflated, mut first_inflate, mut last_inflate) = (0u64, None::<Instant>, None::<Instant>);
    let mut agreed = 0;
    let mut trouble = Vec::new();
    let spans = |first: Option<Instant>, last: Option<Instant>| first.zip(last).is_some_and(|(f, l)| l - f >= FLOW);
    while !(spans(first_count, last_count) && spans(first_inflate, last_inflate)) {
        // A client that spins may log without end: the deadline holds anyway.
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        let line = match rx.recv_timeout(left) {
            Ok(l) => l,
            Err(_) => break,
        };
        let now = Instant::now();
        if line.contains("instantiating client ext permessage-deflate") {
            agreed += 1;
        } else if line.contains("failed construction") || line.contains("illegal rsv") {
            trouble.push(line);
            break;
        } else if line.contains("lws_extension_callback_pm_deflate: was_fin") {
            // The end of a received compressed message (a client that
            // spins on a plain one logs "post inflate" lines without end,
            // but never this).
            inflated += 1;
            first_inflate.get_or_insert(now);
            last_inflate = Some(now);
        } else if let Some(n) = dumb_count(&line) {
            counts.push(n);
            first_count.get_or_insert(now);
            last_count = Some(now);
        }
    }
    drop(client);
    assert!(trouble.is_empty(), "the client had trouble: {trouble:?}");
    // At least once: the client closes its mirror connection after a
    // random number of writes ("opened mirror connection with N lifetime"
    // in its log) and opens a new one, which
    // may happen inside the 5 s. The dumb-increment side taking it shows
    // as "failed construction" above.
    assert!(agreed >= 1, "permessage-deflate was not agreed on the mirror connection");
    assert!(
        spans(first_inflate, last_inflate),
        "compressed mirror messages stopped reaching the client ({inflated} inflated)"
    );
    assert!(spans(first_count, last_count), "dumb-increment counts stopped after {counts:?}");
    // One connection's counter, counting up by one.
    assert!(counts.windows(2).all(|w| w[1] == w[0] + 1), "counts out of order: {counts:?}");
    eprintln!("lws client: {} counts, {inflated} compressed mirror messages inflated", counts.len());
}

/// The number in the client's dumb-increment log line `rx 2 '17'`.
fn dumb_count(line: &str) -> Option<u64> {
    let rest = &line[line.find("] I: rx ")? + 8..];
    let quoted = rest.split('\'').nth(1)?;
    quoted.parse().ok()
}
