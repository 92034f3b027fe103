//! Packing a directory into a zip archive made for serving: what
//! `warren pack` does, and what the build does with `webroot/`.
//!
//! Each file is deflated (level 9) unless that does not make it smaller,
//! as for images and fonts, which are stored. Served from the archive,
//! a deflated entry goes to gzip-accepting clients as it is. The same file
//! is compiled into the build script (`build.rs`), so it uses only `zip`,
//! `walkdir`, `std`, and `crate::Error` and `crate::Result`, which the
//! build script defines as `io::Error` and `io::Result`.

use std::io::{self, Read, Seek, Write};
use std::path::Path;
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, DateTime, ZipWriter};

/// What happened to one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packed {
    /// The entry name (`/`-separated, relative to the directory).
    pub name: String,
    /// Bytes of the file.
    pub size: u64,
    /// Bytes in the archive (the deflate stream, or `size` if stored).
    pub packed: u64,
    /// Whether the entry is deflated (else stored).
    pub deflated: bool,
}

/// Packs every regular file below `dir` (following symlinks that stay
/// inside it; entries in name order) into a new zip written to `out`.
/// Returns what was packed.
///
/// # Errors
///
/// Any file or directory that cannot be read stops the packing, with an
/// error naming it: nothing is skipped silently. So does a symbolic link
/// that leads outside `dir`: serving the directory would refuse it, and
/// packing must not publish what it points to. These are
/// [`is_io`](crate::Error::is_io) errors; the [`io_error`](crate::Error::io_error)
/// says which (`PermissionDenied` for a link leading out).
pub fn pack_dir(dir: &Path, out: impl Write + Seek) -> crate::Result<Vec<Packed>> {
    pack_dir_except(dir, out, &[])
}

/// [`pack_dir`], leaving out the files in `except` wherever they are
/// below `dir` (whatever name or link reaches them): the archive being
/// written and the one it replaces, when they are inside `dir`. Paths in
/// `except` that do not exist are ignored.
///
/// # Errors
///
/// As [`pack_dir`].
pub fn pack_dir_except(dir: &Path, out: impl Write + Seek, except: &[&Path]) -> crate::Result<Vec<Packed>> {
    pack(dir, out, except).map_err(crate::Error::from)
}

/// [`pack_dir_except`] in `io::Error`s (the build script's `crate::Error`
/// is `io::Error`).
fn pack(dir: &Path, out: impl Write + Seek, except: &[&Path]) -> io::Result<Vec<Packed>> {
    // A file is its device and inode, however it is named.
    let skip: Vec<(u64, u64)> = except.iter().filter_map(|p| std::fs::metadata(p).ok()).map(|m| file_id(&m)).collect();
    let mut zip = ZipWriter::new(out);
    let mut report = Vec::new();
    let root = std::fs::canonicalize(dir).map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", dir.display())))?;
    let walk = walkdir::WalkDir::new(dir).follow_links(true).sort_by_file_name();
    for entry in walk {
        let entry = entry.map_err(|e| {
            let path = e.path().map(|p| p.display().to_string()).unwrap_or_default();
            io::Error::other(format!("{path}: {e}"))
        })?;
        if !entry.file_type().is_file() {
            continue;
        }
        let real = std::fs::canonicalize(entry.path())
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", entry.path().display())))?;
        if !real.starts_with(&root) {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!(
                    "{}: a symbolic link leads outside {} (to {}), which serving the directory would refuse",
                    entry.path().display(),
                    dir.display(),
                    real.display()
                ),
            ));
        }
        if !skip.is_empty() && entry.metadata().is_ok_and(|m| skip.contains(&file_id(&m))) {
            continue;
        }
        let rel = entry.path().strip_prefix(dir).map_err(io::Error::other)?;
        let name = rel
            .components()
            .map(|c| c.as_os_str().to_str())
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| io::Error::other(format!("{}: name is not UTF-8", rel.display())))?
            .join("/");
        let named = |e: io::Error| io::Error::new(e.kind(), format!("{}: {e}", entry.path().display()));
        let mut data = Vec::new();
        std::fs::File::open(entry.path()).and_then(|mut f| f.read_to_end(&mut data)).map_err(named)?;
        let deflated_len = deflated_size(&data);
        let deflated = deflated_len < data.len();
        let mut opts = SimpleFileOptions::default()
            .compression_method(if deflated { CompressionMethod::Deflated } else { CompressionMethod::Stored })
            .unix_permissions(0o644)
            .large_file(data.len() as u64 >= u64::from(u32::MAX));
        if deflated {
            opts = opts.compression_level(Some(9));
        }
        if let Some(t) = entry.metadata().ok().and_then(|m| m.modified().ok()).and_then(to_dos_time) {
            opts = opts.last_modified_time(t);
        }
        zip.start_file(name.as_str(), opts).map_err(io::Error::other)?;
        zip.write_all(&data)?;
        let packed = if deflated { deflated_len as u64 } else { data.len() as u64 };
        report.push(Packed { name, size: data.len() as u64, packed, deflated });
    }
    zip.finish().map_err(io::Error::other)?;
    Ok(report)
}

fn file_id(m: &std::fs::Metadata) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    (m.dev(), m.ino())
}

/// The size of `data` deflated at level 9, as the archive will hold it.
fn deflated_size(data: &[u8]) -> usize {
    let mut enc = flate2::write::DeflateEncoder::new(io::sink(), flate2::Compression::best());
    match enc.write_all(data).and_then(|()| enc.try_finish()) {
        Ok(()) => enc.total_out() as usize,
        Err(_) => usize::MAX,
    }
}

/// A modification time as a zip (DOS) timestamp, in UTC; `None` outside
/// 1980-2107.
fn to_dos_time(t: std::time::SystemTime) -> Option<DateTime> {
    let secs = t.duration_since(std::time::UNIX_EPOCH).ok()?.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    DateTime::from_date_and_time(
        u16::try_from(year).ok()?,
        month as u8,
        day as u8,
        (rem / 3600) as u8,
        (rem % 3600 / 60) as u8,
        (rem % 60) as u8,
    )
    .ok()
}
