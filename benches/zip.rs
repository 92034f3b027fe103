//! Code-path benchmarks for serving from zip archives: inflating an entry
//! (the path for clients without gzip) and reading its gzip view (the
//! passthrough path, when sendfile cannot be used), and loading the central
//! directory of a 200,000-entry archive (printing what it keeps cached).
//! Also what opening a plain file costs under each symlink policy, for a
//! path inside the origin and one through a link out of it.
//! `cargo bench --bench zip`.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::io::Write;
use warren::vfs::{Fops, OpenFlags, PlainFops, Symlinks, VPath, ZipFops};

/// 4 MiB of HTML-like text, deflated in a zip held in memory.
fn archive() -> (ZipFops, usize) {
    let mut text = Vec::new();
    let mut i = 0u32;
    while text.len() < 4 << 20 {
        writeln!(text, "<tr><td>row {i}</td><td>{}</td><td>warren</td></tr>", i.wrapping_mul(2_654_435_761) % 9973)
            .ok();
        i += 1;
    }
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    w.start_file("table.html", opts).ok();
    w.write_all(&text).ok();
    let bytes = w.finish().map(|c| c.into_inner()).unwrap_or_default();
    let fops = ZipFops::from_bytes("bench.zip", bytes).unwrap_or_else(|e| panic!("archive: {e}"));
    (fops, text.len())
}

fn read_entry(fops: &ZipFops, flags: OpenFlags) -> usize {
    let path = VPath::new("table.html").unwrap_or_else(|e| panic!("{e}"));
    let mut h = fops.open(&path, flags).unwrap_or_else(|e| panic!("open: {e}"));
    let mut buf = [0u8; 16 * 1024];
    let mut total = 0;
    loop {
        match h.read(&mut buf) {
            Ok(0) => return total,
            Ok(n) => total += n,
            Err(e) => panic!("read: {e}"),
        }
    }
}

fn zip_paths(c: &mut Criterion) {
    let (fops, len) = archive();
    let mut g = c.benchmark_group("zip_entry_4MiB");
    g.throughput(Throughput::Bytes(len as u64));
    g.sample_size(20);
    g.bench_function("inflate", |b| b.iter(|| read_entry(&fops, OpenFlags::READ)));
    // The gzip view is the compressed bytes plus 18: count those.
    g.throughput(Throughput::Bytes(read_entry(&fops, OpenFlags::ACCEPT_GZIP) as u64));
    g.bench_function("gzip_view_read", |b| b.iter(|| read_entry(&fops, OpenFlags::ACCEPT_GZIP)));
    g.finish();
}

/// Archive bytes shared between loads, so a load copies nothing.
struct Shared(std::sync::Arc<Vec<u8>>);

impl AsRef<[u8]> for Shared {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

/// A stored archive of 200,000 tiny entries named `d017/f000123.txt`, in
/// that (unsorted) order, so the directory has to be sorted.
fn many_entries() -> Vec<u8> {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for i in 0..200_000 {
        w.start_file(format!("d{:03}/f{i:06}.txt", i % 100), opts).ok();
        write!(w, "entry {i}").ok();
    }
    w.finish().map(|c| c.into_inner()).unwrap_or_default()
}

fn zip_directory(c: &mut Criterion) {
    let bytes = std::sync::Arc::new(many_entries());
    let load = || ZipFops::from_bytes("many.zip", Shared(bytes.clone())).unwrap_or_else(|e| panic!("load: {e}"));
    eprintln!("200,000-entry archive: {} bytes, directory cached in {} bytes", bytes.len(), load().cached_bytes());
    let mut g = c.benchmark_group("zip_directory_200k");
    g.sample_size(10);
    g.bench_function("load", |b| b.iter(load));
    g.finish();
}

/// `PlainFops::open` (no open-file cache) of `site/root/sub/a.txt` and of
/// `site/root/out/a.txt`, where `out -> ../elsewhere`, per policy.
fn plain_open(c: &mut Criterion) {
    let site = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let root = site.path().join("root");
    for d in [root.join("sub"), site.path().join("elsewhere")] {
        std::fs::create_dir_all(&d).unwrap_or_else(|e| panic!("mkdir: {e}"));
        std::fs::write(d.join("a.txt"), "hello").unwrap_or_else(|e| panic!("write: {e}"));
    }
    std::os::unix::fs::symlink("../elsewhere", root.join("out")).unwrap_or_else(|e| panic!("symlink: {e}"));
    let mut g = c.benchmark_group("plain_open");
    for (name, policy) in
        [("confined", Symlinks::Confined), ("follow", Symlinks::Follow), ("same_owner", Symlinks::SameOwner)]
    {
        let fops = PlainFops::new(&root).unwrap_or_else(|e| panic!("fops: {e}")).with_symlinks(policy);
        for (at, path) in [("inside", "sub/a.txt"), ("link_out", "out/a.txt")] {
            let path = VPath::new(path).unwrap_or_else(|e| panic!("{e}"));
            if fops.open(&path, OpenFlags::READ).is_err() {
                continue; // Confined refuses the link out.
            }
            g.bench_function(format!("{name}/{at}"), |b| {
                b.iter(|| fops.open(&path, OpenFlags::READ).map(|h| h.info().len))
            });
        }
    }
    g.finish();
}

criterion_group!(benches, zip_paths, zip_directory, plain_open);
criterion_main!(benches);
