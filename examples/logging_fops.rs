//! Run: `cargo run --example logging_fops`, then
//! `curl http://127.0.0.1:7684/` and `curl http://127.0.0.1:7684/now.txt`.
//!
//! A user filesystem that wraps the default chain: it logs every open and
//! adds files that exist only in memory (`/now.txt`, `/opens.txt`). It is
//! installed for the whole context with `ContextInfo::fops_factory`, so
//! every `Mount::dir` gets it; a single mount could take it through
//! `Mount::files` instead.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::SystemTime;
use warren::vfs::{FileHandle, Fops, MemoryFile, OpenFlags, VPath};
use warren::{Context, ContextInfo, Mount, VhostInfo};

/// Logs opens, counts them, and serves two virtual files.
#[derive(Debug)]
struct Logging {
    inner: Arc<dyn Fops>,
    opens: AtomicU64,
}

impl Fops for Logging {
    fn open(&self, path: &VPath, flags: OpenFlags) -> io::Result<Box<dyn FileHandle>> {
        let n = self.opens.fetch_add(1, Ordering::Relaxed) + 1;
        let result: io::Result<Box<dyn FileHandle>> = match path.as_str() {
            "now.txt" => {
                let now = httpdate::fmt_http_date(SystemTime::now());
                Ok(Box::new(MemoryFile::new(format!("{now}\n").into_bytes(), Some(SystemTime::now()))))
            }
            "opens.txt" => Ok(Box::new(MemoryFile::new(format!("{n} opens so far\n").into_bytes(), None))),
            _ => self.inner.open(path, flags),
        };
        match &result {
            Ok(h) => eprintln!("open #{n} {path}: {} bytes", h.info().len),
            Err(e) => eprintln!("open #{n} {path}: {e}"),
        }
        result
    }
}

fn main() -> io::Result<()> {
    let addr = "127.0.0.1:7684".parse().map_err(|_| io::ErrorKind::InvalidInput)?;
    let vhost =
        VhostInfo::new("localhost", addr).mount(Mount::dir("/", concat!(env!("CARGO_MANIFEST_DIR"), "/webroot")));
    let info = ContextInfo::new().vhost(vhost).fops_factory(|path| {
        let inner = warren::default_fops(path)?;
        Ok(Arc::new(Logging { inner, opens: AtomicU64::new(0) }) as Arc<dyn Fops>)
    });
    let context = Context::new(info)?;
    println!("serving webroot/ plus /now.txt and /opens.txt on http://{addr}/");
    Ok(context.run()?)
}
