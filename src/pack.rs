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
#[non_exhaustive]
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

/// What to pack besides the plain files, and what to leave out.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options<'a> {
    /// Pack dotfiles too: files and directories whose name starts with
    /// `.` (`.git/`, `.env`, `sub/.cache/`). Without it they are left out,
    /// and reported in [`Report::left_out`], except a top-level
    /// `.well-known/` directory, which is packed (its own dotfiles are
    /// not).
    pub dotfiles: bool,
    /// Files left out wherever they are below the directory (whatever name
    /// or link reaches them): the archive being written and the one it
    /// replaces, when they are inside it. Paths that do not exist are
    /// ignored.
    pub except: &'a [&'a Path],
}

/// What [`pack_dir_with`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Report {
    /// Each file packed, in entry order.
    pub packed: Vec<Packed>,
    /// Each dotfile or dotfile directory left out, the topmost only (a
    /// directory is one entry, however many files it holds), in name
    /// order. Empty with [`Options::dotfiles`].
    pub left_out: Vec<LeftOut>,
}

/// A dotfile, or a directory of them, that was not packed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LeftOut {
    /// Its path below the directory, `/`-separated.
    pub name: String,
    /// Whether it is a directory.
    pub dir: bool,
    /// How many files it holds (1 for a file), counted without following
    /// links.
    pub files: u64,
}

/// Packs every regular file below `dir` (following symlinks that stay
/// inside it; entries in name order) into a new zip written to `out`,
/// leaving dotfiles out as [`Options`] says by default. Returns what was
/// packed.
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
    pack_dir_with(dir, out, &Options::default()).map(|r| r.packed)
}

/// [`pack_dir`], leaving out the files in `except` as
/// [`Options::except`] does.
///
/// # Errors
///
/// As [`pack_dir`].
pub fn pack_dir_except(dir: &Path, out: impl Write + Seek, except: &[&Path]) -> crate::Result<Vec<Packed>> {
    pack_dir_with(dir, out, &Options { except, ..Options::default() }).map(|r| r.packed)
}

/// [`pack_dir`] with [`Options`]; the [`Report`] also says which dotfiles
/// were left out.
///
/// # Errors
///
/// As [`pack_dir`]. What is left out is not read, so an unreadable
/// dotfile, or a dotfile link leading out of `dir`, does not stop the
/// packing.
pub fn pack_dir_with(dir: &Path, out: impl Write + Seek, opts: &Options<'_>) -> crate::Result<Report> {
    pack(dir, out, opts).map_err(crate::Error::from)
}

/// Whether `rel` (a path below the packed directory) is a dotfile that
/// is not packed: a segment starts with `.`, other than a top-level
/// `.well-known` directory.
fn is_dotfile(rel: &Path, is_dir: bool) -> bool {
    rel.components().enumerate().any(|(i, c)| {
        let seg = c.as_os_str().as_encoded_bytes();
        let well_known = i == 0 && seg == b".well-known" && (is_dir || rel.components().count() > 1);
        seg.first() == Some(&b'.') && !well_known
    })
}

/// How many files are below `path` (1 for a file), not following links
/// below it (a link is one file), nor `path` itself if it leads outside
/// `root`.
fn count_files(path: &Path, root: &Path) -> u64 {
    let inside = std::fs::canonicalize(path).is_ok_and(|real| real.starts_with(root));
    if !(inside && path.is_dir()) {
        return 1;
    }
    let below = walkdir::WalkDir::new(path).min_depth(1).into_iter().filter_map(Result::ok);
    below.filter(|e| !e.file_type().is_dir()).count() as u64
}

/// [`pack_dir_with`] in `io::Error`s (the build script's `crate::Error`
/// is `io::Error`).
fn pack(dir: &Path, out: impl Write + Seek, opts: &Options<'_>) -> io::Result<Report> {
    // A file is its device and inode, however it is named.
    let skip: Vec<(u64, u64)> =
        opts.except.iter().filter_map(|p| std::fs::metadata(p).ok()).map(|m| file_id(&m)).collect();
    let mut zip = ZipWriter::new(out);
    let mut report = Vec::new();
    let mut left_out = Vec::new();
    let root = std::fs::canonicalize(dir).map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", dir.display())))?;
    // A dotfile is left out by its name, and by where it really is: a
    // link `git` to `.git` does not publish `.git`.
    let dotted = |path: &Path, is_dir: bool| {
        let named = path.strip_prefix(dir).is_ok_and(|rel| is_dotfile(rel, is_dir));
        named
            || std::fs::canonicalize(path)
                .ok()
                .and_then(|real| real.strip_prefix(&root).ok().map(|rel| is_dotfile(rel, is_dir)))
                .unwrap_or(false)
    };
    let walk = walkdir::WalkDir::new(dir).follow_links(true).sort_by_file_name().into_iter().filter_entry(|e| {
        if opts.dotfiles || e.depth() == 0 || !dotted(e.path(), e.file_type().is_dir()) {
            return true;
        }
        let is_dir = e.file_type().is_dir();
        let name = e.path().strip_prefix(dir).unwrap_or(e.path()).to_string_lossy().into_owned();
        left_out.push(LeftOut { name, dir: is_dir, files: if is_dir { count_files(e.path(), &root) } else { 1 } });
        false
    });
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
    Ok(Report { packed: report, left_out })
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
