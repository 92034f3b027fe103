//! Run: `cargo run --example memory_site`, then
//! `curl --compressed -v http://127.0.0.1:7683/`.
//!
//! A whole site compiled into the program: `webroot/` packed into a zip at
//! build time (see build.rs), embedded with `include_bytes!`, and served
//! from memory through `ZipFops`. Deflated entries go to gzip-accepting
//! clients as they are stored in the archive, with no compression work at
//! run time.

use std::sync::Arc;
use warren::vfs::ZipFops;
use warren::{Context, ContextInfo, Mount, VhostInfo};

static SITE: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/webroot.zip"));

fn main() -> std::io::Result<()> {
    let site = ZipFops::from_bytes("webroot.zip (in memory)", SITE)?;
    let addr = "127.0.0.1:7683".parse().map_err(|_| std::io::ErrorKind::InvalidInput)?;
    let vhost = VhostInfo::new("localhost", addr).mount(Mount::files("/", Arc::new(site)));
    let context = Context::new(ContextInfo::new().vhost(vhost))?;
    println!("serving the embedded site on http://{addr}/");
    Ok(context.run()?)
}
