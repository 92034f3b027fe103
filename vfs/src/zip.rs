//! [`ZipFops`]: sites served from inside zip archives.
//!
//! A deflated entry, to a client that accepts gzip, is its raw deflate
//! stream wrapped in a 10-byte gzip header and an 8-byte trailer made from
//! the entry's CRC-32 and size: nothing is inflated or re-deflated, and
//! the deflate bytes can go out by `sendfile(2)` from the archive file. To
//! other clients it is inflated as it is read, holding one small input
//! buffer and the 32 KiB window at a time (see [`INFLATE_MEMORY`]).

use crate::{seek_target, ContentEncoding, FdSpan, FileFlags, FileHandle, FileInfo, Fops, OpenFlags, PathError, VPath};
use miniz_oxide::inflate::core::{decompress, inflate_flags, DecompressorOxide, TINFL_LZ_DICT_SIZE};
use miniz_oxide::inflate::TINFLStatus;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::{self, Read, Seek, SeekFrom};
use std::os::fd::{BorrowedFd, RawFd};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime};

/// The gzip member header sent before a deflate stream (RFC 1952): magic,
/// CM = 8 (deflate), no flags, MTIME 0, XFL 0, OS 3 (Unix), as lws sends.
pub const GZIP_HEADER: [u8; 10] = [0x1f, 0x8b, 0x08, 0, 0, 0, 0, 0, 0, 0x03];

/// Compressed bytes read from the archive per inflate step.
const INFLATE_INPUT: usize = 4096;

/// Heap memory of one inflating download: the decompressor's state, the
/// 32 KiB window it needs, and one input buffer. Constant, whatever the
/// entry's size (under 64 KiB).
pub const INFLATE_MEMORY: usize = std::mem::size_of::<DecompressorOxide>() + TINFL_LZ_DICT_SIZE + INFLATE_INPUT;

const _: () = assert!(INFLATE_MEMORY <= 64 * 1024, "inflate memory over budget");

/// Archives whose central directories are kept, per `ZipFops`.
const MAX_ARCHIVES: usize = 64;

/// A [`Fops`] that serves the entries of zip archives.
///
/// - [`ZipFops::over`] wraps another filesystem: a path that runs through
///   `name.zip/` opens the entry inside that archive (`docs/site.zip/a.html`
///   is `a.html` inside `docs/site.zip`); other paths go to the base.
/// - [`ZipFops::archive`] serves one archive of the base as the whole tree.
/// - [`ZipFops::from_bytes`] serves an archive held in memory.
///
/// Archives are opened through the base filesystem, so a user `Fops` can
/// supply them from anywhere. Each archive's central directory is read
/// once and cached. It is read again when the archive's
/// [`FileInfo::version`] changes (a new inode, size or mtime for a plain
/// file): `mv new.zip site.zip` switches new requests to the new archive,
/// while downloads already running finish from the old one, whose open
/// file they hold. (With [`PlainFops::with_open_cache`](crate::PlainFops::with_open_cache)
/// the switch happens within the cache's time to live.)
///
/// Archives with a trailing comment and ZIP64 archives are read; entries
/// whose names are absolute or contain `..` are refused, as are encrypted
/// entries and compression methods other than stored and deflate.
pub struct ZipFops {
    mode: Mode,
}

enum Mode {
    Chain { base: Arc<dyn Fops>, prefix: Option<VPath>, archives: Mutex<ArchiveCache> },
    Fixed(Arc<Archive>),
}

/// Loaded archives (and failed loads, so a broken archive is not parsed
/// again on every request), by path; the least recently used goes first.
#[derive(Default)]
struct ArchiveCache {
    clock: u64,
    entries: HashMap<String, CachedArchive>,
}

struct CachedArchive {
    version: Option<u64>,
    used: u64,
    archive: Result<Arc<Archive>, (io::ErrorKind, String)>,
}

/// The most entries an archive may have: its directory is parsed on the
/// event loop, so its size is bounded.
const MAX_ENTRIES: usize = 200_000;

impl fmt::Debug for ZipFops {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.mode {
            Mode::Chain { base, prefix, .. } => {
                f.debug_struct("ZipFops").field("base", base).field("archive", prefix).finish()
            }
            Mode::Fixed(a) => f.debug_struct("ZipFops").field("memory", &a.name).finish(),
        }
    }
}

impl ZipFops {
    /// Serves `base`, looking inside any `*.zip` a path runs through.
    pub fn over(base: Arc<dyn Fops>) -> ZipFops {
        ZipFops { mode: Mode::Chain { base, prefix: None, archives: Mutex::default() } }
    }

    /// Serves the archive at `archive` (a path of `base`) as the whole tree.
    pub fn archive(base: Arc<dyn Fops>, archive: VPath) -> ZipFops {
        ZipFops { mode: Mode::Chain { base, prefix: Some(archive), archives: Mutex::default() } }
    }

    /// Serves an archive held in memory, e.g. `include_bytes!("site.zip")`.
    /// `name` is used in log lines and errors.
    pub fn from_bytes(name: &str, bytes: impl AsRef<[u8]> + Send + Sync + 'static) -> io::Result<ZipFops> {
        let source = Source::Memory(Box::new(bytes));
        let archive = Archive::load(name.to_string(), source)?;
        Ok(ZipFops { mode: Mode::Fixed(Arc::new(archive)) })
    }

    /// The archive at `path` of `base`, parsed once per version. (A base
    /// whose handles have no version gets its archives parsed once.)
    fn cached_archive(base: &dyn Fops, archives: &Mutex<ArchiveCache>, path: &VPath) -> io::Result<Arc<Archive>> {
        let handle = base.open(path, OpenFlags::READ)?;
        let version = handle.info().version;
        let mut cache = archives.lock().unwrap_or_else(|e| e.into_inner());
        cache.clock += 1;
        let now = cache.clock;
        let found = match cache.entries.get_mut(path.as_str()) {
            Some(c) if c.version == version => {
                c.used = now;
                Some(c.archive.clone())
            }
            _ => None,
        };
        let result = match found {
            Some(r) => r,
            None => {
                let loaded = Archive::load(path.to_string(), Source::handle(handle))
                    .map(Arc::new)
                    .map_err(|e| (e.kind(), e.to_string()));
                if cache.entries.len() >= MAX_ARCHIVES && !cache.entries.contains_key(path.as_str()) {
                    let oldest = cache.entries.iter().min_by_key(|(_, c)| c.used).map(|(k, _)| k.clone());
                    if let Some(k) = oldest {
                        cache.entries.remove(&k);
                    }
                }
                let entry = CachedArchive { version, used: now, archive: loaded.clone() };
                cache.entries.insert(path.as_str().to_string(), entry);
                loaded
            }
        };
        result.map_err(|(kind, msg)| io::Error::new(kind, msg))
    }
}

impl Fops for ZipFops {
    /// Over a directory (not one archive), files outside archives are the
    /// directory's own: their local path is the base's.
    fn local_path(&self, path: &VPath) -> Option<std::path::PathBuf> {
        match &self.mode {
            Mode::Chain { base, prefix: None, .. } => base.local_path(path),
            _ => None,
        }
    }

    fn resolve_local(&self, path: &VPath) -> io::Result<std::path::PathBuf> {
        match &self.mode {
            Mode::Chain { base, prefix: None, .. } => base.resolve_local(path),
            _ => Err(io::ErrorKind::Unsupported.into()),
        }
    }

    fn open(&self, path: &VPath, flags: OpenFlags) -> io::Result<Box<dyn FileHandle>> {
        let (base, prefix, archives) = match &self.mode {
            Mode::Fixed(a) => return a.open_entry(path.as_str(), flags),
            Mode::Chain { base, prefix, archives } => (base, prefix, archives),
        };
        if let Some(p) = prefix {
            // One archive is the whole tree, whatever its name.
            return ZipFops::cached_archive(base.as_ref(), archives, p)?.open_entry(path.as_str(), flags);
        }
        let segments: Vec<&str> = path.as_str().split('/').collect();
        // Bytes, not a str slice: the segment may end inside a multi-byte
        // character.
        let is_zip = |s: &&str| s.len() > 4 && s.as_bytes()[s.len() - 4..].eq_ignore_ascii_case(b".zip");
        let Some(i) = segments.iter().position(is_zip).filter(|&i| i + 1 < segments.len()) else {
            // No archive on the way (or the archive file itself): the base's.
            return base.open(path, flags);
        };
        let archive_path = VPath::new(&segments[..=i].join("/")).map_err(invalid_path)?;
        match ZipFops::cached_archive(base.as_ref(), archives, &archive_path) {
            Ok(archive) => archive.open_entry(&segments[i + 1..].join("/"), flags),
            // A real directory that happens to be called `something.zip`.
            Err(e) if matches!(e.kind(), io::ErrorKind::IsADirectory | io::ErrorKind::NotADirectory) => {
                base.open(path, flags)
            }
            Err(e) => Err(e),
        }
    }
}

fn invalid_path(e: PathError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, e)
}

/// Where an archive's bytes are.
enum Source {
    /// An open file of some filesystem; `fd` is its descriptor when the
    /// filesystem has one (for `sendfile`), valid while `handle` lives.
    Handle {
        handle: Mutex<Box<dyn FileHandle>>,
        fd: Option<RawFd>,
        len: u64,
    },
    Memory(Box<dyn AsRef<[u8]> + Send + Sync>),
}

impl Source {
    fn handle(mut handle: Box<dyn FileHandle>) -> Source {
        let len = handle.info().len;
        let fd = match handle.seek(SeekFrom::Start(0)) {
            Ok(_) => handle.sendfile_span().filter(|s| s.offset == 0 && s.len == len).map(|s| {
                use std::os::fd::AsRawFd;
                s.fd.as_raw_fd()
            }),
            Err(_) => None,
        };
        Source::Handle { handle: Mutex::new(handle), fd, len }
    }

    fn len(&self) -> u64 {
        match self {
            Source::Handle { len, .. } => *len,
            Source::Memory(b) => (**b).as_ref().len() as u64,
        }
    }

    /// Reads at `offset`; short only at the end.
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        match self {
            Source::Memory(b) => {
                let bytes = (**b).as_ref();
                let start = usize::try_from(offset).unwrap_or(usize::MAX).min(bytes.len());
                let n = buf.len().min(bytes.len() - start);
                buf[..n].copy_from_slice(&bytes[start..start + n]);
                Ok(n)
            }
            Source::Handle { handle, .. } => {
                let mut h = handle.lock().unwrap_or_else(|e| e.into_inner());
                h.seek(SeekFrom::Start(offset))?;
                let mut got = 0;
                while got < buf.len() {
                    let n = h.read(&mut buf[got..])?;
                    if n == 0 {
                        break;
                    }
                    got += n;
                }
                Ok(got)
            }
        }
    }

    fn fd(&self) -> Option<BorrowedFd<'_>> {
        match self {
            // SAFETY: the descriptor belongs to `handle`, which lives as
            // long as `self`; the `sendfile_span` contract says it stays
            // open and maps the handle's bytes for the handle's life. The
            // borrow is tied to `&self`.
            Source::Handle { fd: Some(fd), .. } => Some(unsafe { BorrowedFd::borrow_raw(*fd) }),
            _ => None,
        }
    }
}

/// `Read + Seek` over a [`Source`], for the zip crate's directory reader.
struct SourceReader<'a> {
    source: &'a Source,
    pos: u64,
}

impl Read for SourceReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.source.read_at(buf, self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for SourceReader<'_> {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        self.pos = seek_target(self.pos, self.source.len(), pos)?;
        Ok(self.pos)
    }
}

#[derive(Debug, Clone, Copy)]
enum Method {
    Stored,
    Deflated,
    Other,
}

#[derive(Debug, Clone)]
struct Entry {
    method: Method,
    encrypted: bool,
    crc: u32,
    csize: u64,
    size: u64,
    header: u64,
    mod_time: Option<SystemTime>,
    /// Where the data begins, once the local header has been read.
    data_start: OnceLock<u64>,
}

/// One archive's central directory, and its bytes.
struct Archive {
    name: String,
    source: Source,
    entries: HashMap<String, Entry>,
    dirs: HashSet<String>,
    /// Entries refused at load (absolute names, `..`), by normalised name.
    refused: HashSet<String>,
}

impl Archive {
    fn load(name: String, source: Source) -> io::Result<Archive> {
        // Returned, not logged: the caller reports it (the server logs
        // every 5xx with the request).
        let corrupt = |e: zip::result::ZipError| {
            io::Error::new(io::ErrorKind::InvalidData, format!("{name}: not a readable zip archive: {e}"))
        };
        let reader = SourceReader { source: &source, pos: 0 };
        let zip = zip::ZipArchive::new(reader).map_err(corrupt)?;
        if zip.len() > MAX_ENTRIES {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{name}: {} entries, over the limit of {MAX_ENTRIES}", zip.len()),
            ));
        }
        let mut entries = HashMap::new();
        let mut dirs = HashSet::new();
        let mut refused = HashSet::new();
        for i in 0..zip.len() {
            let e = zip.by_index_data(i).map_err(corrupt)?;
            let Ok(raw) = std::str::from_utf8(e.name_raw()) else {
                log::warn!("{name}: skipping an entry whose name is not UTF-8");
                continue;
            };
            let unsafe_name = raw.starts_with('/') || raw.contains('\\') || raw.split('/').any(|s| s == "..");
            let normal = match VPath::new(raw) {
                Ok(p) if !unsafe_name => p,
                other => {
                    log::warn!("{name}: refusing entry {raw:?}: absolute or escaping name");
                    if let Ok(p) = other {
                        refused.insert(p.as_str().to_string());
                    }
                    continue;
                }
            };
            let mut parent = normal.as_str();
            while let Some((dir, _)) = parent.rsplit_once('/') {
                if !dirs.insert(dir.to_string()) {
                    break;
                }
                parent = dir;
            }
            if e.is_dir() || raw.ends_with('/') {
                dirs.insert(normal.as_str().to_string());
                continue;
            }
            let method = match e.compression() {
                zip::CompressionMethod::Stored => Method::Stored,
                zip::CompressionMethod::Deflated => Method::Deflated,
                _ => Method::Other,
            };
            let entry = Entry {
                method,
                encrypted: e.encrypted(),
                crc: e.crc32(),
                csize: e.compressed_size(),
                size: e.size(),
                header: e.header_start(),
                mod_time: e.last_modified().and_then(dos_time),
                data_start: OnceLock::new(),
            };
            entries.insert(normal.as_str().to_string(), entry);
        }
        drop(zip);
        Ok(Archive { name, source, entries, dirs, refused })
    }

    fn open_entry(self: &Arc<Self>, name: &str, flags: OpenFlags) -> io::Result<Box<dyn FileHandle>> {
        let Some(e) = self.entries.get(name) else {
            if name.is_empty() || self.dirs.contains(name) {
                return Err(io::Error::new(io::ErrorKind::IsADirectory, "is a directory"));
            }
            if self.refused.contains(name) {
                return Err(self.fail(io::ErrorKind::PermissionDenied, name, "entry has an absolute or escaping name"));
            }
            return Err(io::ErrorKind::NotFound.into());
        };
        if e.encrypted {
            return Err(self.fail(io::ErrorKind::PermissionDenied, name, "entry is encrypted"));
        }
        if matches!(e.method, Method::Other) {
            return Err(self.fail(io::ErrorKind::Unsupported, name, "unsupported compression method"));
        }
        let start = self.data_start(e).map_err(|why| self.fail(io::ErrorKind::InvalidData, name, &why))?;
        if matches!(e.method, Method::Stored) && e.csize != e.size {
            return Err(self.fail(io::ErrorKind::InvalidData, name, "stored entry with two sizes"));
        }
        let mut h = DefaultHasher::new();
        (e.crc, e.size).hash(&mut h);
        let identity = h.finish();
        let mut info = FileInfo {
            len: e.size,
            mod_time: e.mod_time,
            flags: FileFlags::VIRTUAL,
            encoding: ContentEncoding::Identity,
            version: Some(identity),
        };
        let kind = match e.method {
            Method::Deflated if flags.contains(OpenFlags::ACCEPT_GZIP) => {
                info.len = GZIP_HEADER.len() as u64 + e.csize + 8;
                info.encoding = ContentEncoding::Gzip;
                info.flags = FileFlags::VIRTUAL | FileFlags::NEGOTIATED;
                // The gzip bytes also depend on how the entry was deflated.
                let mut h = DefaultHasher::new();
                (identity, e.csize).hash(&mut h);
                info.version = Some(h.finish());
                let mut trailer = [0u8; 8];
                trailer[..4].copy_from_slice(&e.crc.to_le_bytes());
                trailer[4..].copy_from_slice(&(e.size as u32).to_le_bytes());
                Kind::Gzip { trailer }
            }
            Method::Deflated => {
                info.flags = FileFlags::VIRTUAL | FileFlags::NEGOTIATED;
                Kind::Inflate(None)
            }
            _ => Kind::Stored,
        };
        Ok(Box::new(ZipHandle {
            archive: self.clone(),
            name: name.to_string(),
            start,
            csize: e.csize,
            crc: e.crc,
            info,
            pos: 0,
            kind,
        }))
    }

    /// Where an entry's data begins: after its local header, which is
    /// read on the first open of the entry only.
    fn data_start(&self, e: &Entry) -> Result<u64, String> {
        if let Some(&start) = e.data_start.get() {
            return Ok(start);
        }
        let mut local = [0u8; 30];
        let n = self.source.read_at(&mut local, e.header).map_err(|err| err.to_string())?;
        if n < local.len() || local[..4] != [0x50, 0x4b, 0x03, 0x04] {
            return Err("bad local header".into());
        }
        let name_len = u64::from(u16::from_le_bytes([local[26], local[27]]));
        let extra_len = u64::from(u16::from_le_bytes([local[28], local[29]]));
        let start = e.header + 30 + name_len + extra_len;
        match start.checked_add(e.csize) {
            Some(end) if end <= self.source.len() => Ok(*e.data_start.get_or_init(|| start)),
            _ => Err("entry data runs past the end of the archive (truncated?)".into()),
        }
    }

    /// Logs and makes the error for a refused entry.
    fn fail(&self, kind: io::ErrorKind, entry: &str, why: &str) -> io::Error {
        log::error!("{}: entry {entry}: {why}", self.name);
        io::Error::new(kind, format!("{}: entry {entry}: {why}", self.name))
    }
}

/// A DOS date and time (local time of whoever zipped; taken as UTC).
fn dos_time(t: zip::DateTime) -> Option<SystemTime> {
    let (y, m, d) = (i64::from(t.year()), i64::from(t.month()), i64::from(t.day()));
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + i64::from(t.hour()) * 3600 + i64::from(t.minute()) * 60 + i64::from(t.second());
    u64::try_from(secs).ok().map(|s| SystemTime::UNIX_EPOCH + Duration::from_secs(s))
}

enum Kind {
    Stored,
    Gzip {
        trailer: [u8; 8],
    },
    /// Created on the first read, so HEAD and 304 cost no inflate state.
    Inflate(Option<Box<Inflater>>),
}

/// An inflate in progress: state, window, one input buffer.
struct Inflater {
    state: DecompressorOxide,
    window: [u8; TINFL_LZ_DICT_SIZE],
    input: [u8; INFLATE_INPUT],
    in_start: usize,
    in_end: usize,
    /// Compressed bytes read from the archive so far.
    consumed: u64,
    /// Window position where the next output goes.
    out_pos: usize,
    /// Inflated bytes not yet returned: `window[ready.0..ready.1]`.
    ready: (usize, usize),
    produced: u64,
    crc: crc32fast::Hasher,
    done: bool,
}

impl Inflater {
    fn new() -> Box<Inflater> {
        Box::new(Inflater {
            state: DecompressorOxide::new(),
            window: [0; TINFL_LZ_DICT_SIZE],
            input: [0; INFLATE_INPUT],
            in_start: 0,
            in_end: 0,
            consumed: 0,
            out_pos: 0,
            ready: (0, 0),
            produced: 0,
            crc: crc32fast::Hasher::new(),
            done: false,
        })
    }
}

impl Inflater {
    /// Refills the input from the archive if it is used up, then inflates
    /// once into the window. Returns the status and how many bytes came
    /// out (at `out_pos`, which the caller advances).
    fn step(&mut self, archive: &Archive, name: &str, start: u64, csize: u64) -> io::Result<(TINFLStatus, usize)> {
        if self.in_start == self.in_end && self.consumed < csize {
            let want = (csize - self.consumed).min(INFLATE_INPUT as u64) as usize;
            let n = archive.source.read_at(&mut self.input[..want], start + self.consumed)?;
            if n == 0 {
                return Err(archive.fail(io::ErrorKind::InvalidData, name, "archive ended inside the entry"));
            }
            self.consumed += n as u64;
            self.in_start = 0;
            self.in_end = n;
        }
        let more = if self.consumed < csize { inflate_flags::TINFL_FLAG_HAS_MORE_INPUT } else { 0 };
        let (status, used, made) =
            decompress(&mut self.state, &self.input[self.in_start..self.in_end], &mut self.window, self.out_pos, more);
        self.in_start += used;
        Ok((status, made))
    }
}

struct ZipHandle {
    archive: Arc<Archive>,
    name: String,
    start: u64,
    csize: u64,
    crc: u32,
    info: FileInfo,
    pos: u64,
    kind: Kind,
}

impl fmt::Debug for ZipHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ZipHandle").field("archive", &self.archive.name).field("entry", &self.name).finish()
    }
}

impl ZipHandle {
    fn broken(&self, why: &str) -> io::Error {
        self.archive.fail(io::ErrorKind::InvalidData, &self.name, why)
    }

    fn read_inflated(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let Kind::Inflate(slot) = &mut self.kind else { return Ok(0) };
        let z = slot.get_or_insert_with(Inflater::new);
        loop {
            if z.produced == self.info.len && !z.done {
                // Every declared byte is out: the stream must end here, and
                // its CRC must match, before the last bytes are handed on.
                self.finish_inflate()?;
                return self.read_inflated(buf);
            }
            if z.ready.0 < z.ready.1 {
                let n = buf.len().min(z.ready.1 - z.ready.0);
                buf[..n].copy_from_slice(&z.window[z.ready.0..z.ready.0 + n]);
                z.ready.0 += n;
                self.pos += n as u64;
                return Ok(n);
            }
            if z.done {
                return Ok(0);
            }
            let (status, made) = z.step(&self.archive, &self.name, self.start, self.csize)?;
            z.crc.update(&z.window[z.out_pos..z.out_pos + made]);
            z.ready = (z.out_pos, z.out_pos + made);
            z.out_pos = (z.out_pos + made) & (TINFL_LZ_DICT_SIZE - 1);
            z.produced += made as u64;
            if z.produced > self.info.len {
                return Err(self.broken("entry inflates past its declared size"));
            }
            match status {
                TINFLStatus::Done => {
                    z.done = true;
                    let crc = std::mem::take(&mut z.crc).finalize();
                    if z.produced != self.info.len {
                        return Err(self.broken("entry inflates short of its declared size"));
                    }
                    if crc != self.crc {
                        return Err(self.broken("CRC-32 mismatch"));
                    }
                }
                TINFLStatus::NeedsMoreInput if z.consumed >= self.csize && z.in_start == z.in_end => {
                    return Err(self.broken("deflate stream ends early"));
                }
                TINFLStatus::HasMoreOutput | TINFLStatus::NeedsMoreInput => {}
                _ => return Err(self.broken("corrupt deflate stream")),
            }
        }
    }
}

impl ZipHandle {
    /// Drives the inflate to its end once all declared bytes have been
    /// produced, checking that nothing more comes out and the CRC holds.
    fn finish_inflate(&mut self) -> io::Result<()> {
        let Kind::Inflate(Some(z)) = &mut self.kind else { return Ok(()) };
        while !z.done {
            let (status, made) = z.step(&self.archive, &self.name, self.start, self.csize)?;
            if made > 0 {
                return Err(self.broken("entry inflates past its declared size"));
            }
            match status {
                TINFLStatus::Done => z.done = true,
                TINFLStatus::NeedsMoreInput if z.consumed < self.csize => {}
                _ => return Err(self.broken("deflate stream does not end where the entry does")),
            }
        }
        if std::mem::take(&mut z.crc).finalize() != self.crc {
            return Err(self.broken("CRC-32 mismatch"));
        }
        Ok(())
    }
}

impl FileHandle for ZipHandle {
    fn info(&self) -> &FileInfo {
        &self.info
    }

    fn pos(&self) -> u64 {
        self.pos
    }

    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.info.len.saturating_sub(self.pos);
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        if want == 0 {
            if matches!(self.kind, Kind::Inflate(_)) && self.pos >= self.info.len {
                // Even an empty entry's stream must end and check out.
                let _ = self.read_inflated(&mut [])?;
            }
            return Ok(0);
        }
        let buf = &mut buf[..want];
        let n = match &self.kind {
            Kind::Stored => self.archive.source.read_at(buf, self.start + self.pos)?,
            Kind::Gzip { trailer } => {
                let head = GZIP_HEADER.len() as u64;
                let body_end = head + self.csize;
                if self.pos < head {
                    let from = self.pos as usize;
                    let n = buf.len().min(GZIP_HEADER.len() - from);
                    buf[..n].copy_from_slice(&GZIP_HEADER[from..from + n]);
                    n
                } else if self.pos < body_end {
                    let n = buf.len().min((body_end - self.pos) as usize);
                    self.archive.source.read_at(&mut buf[..n], self.start + self.pos - head)?
                } else {
                    let from = (self.pos - body_end) as usize;
                    let n = buf.len().min(trailer.len() - from);
                    buf[..n].copy_from_slice(&trailer[from..from + n]);
                    n
                }
            }
            Kind::Inflate(_) => return self.read_inflated(buf),
        };
        if n == 0 {
            return Err(self.broken("archive ended inside the entry"));
        }
        self.pos += n as u64;
        Ok(n)
    }

    /// Seeking an inflated entry backwards starts the inflate again, and
    /// forwards inflates and drops the bytes in between (as lws does).
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let target = seek_target(self.pos, self.info.len, to)?;
        if let Kind::Inflate(z) = &mut self.kind {
            if target < self.pos {
                *z = None;
                self.pos = 0;
            }
            let mut scratch = [0u8; 4096];
            while self.pos < target.min(self.info.len) {
                let want = (target - self.pos).min(scratch.len() as u64) as usize;
                if self.read_inflated(&mut scratch[..want])? == 0 {
                    break;
                }
            }
        }
        self.pos = target;
        Ok(target)
    }

    fn sendfile_span(&self) -> Option<FdSpan<'_>> {
        let fd = self.archive.source.fd()?;
        let (offset, len) = match &self.kind {
            Kind::Stored if self.pos < self.info.len => (self.start + self.pos, self.info.len - self.pos),
            Kind::Stored => return None,
            Kind::Gzip { .. } => {
                let head = GZIP_HEADER.len() as u64;
                if self.pos < head || self.pos >= head + self.csize {
                    return None;
                }
                (self.start + self.pos - head, head + self.csize - self.pos)
            }
            Kind::Inflate(_) => return None,
        };
        Some(FdSpan { fd, offset, len })
    }

    fn advance(&mut self, n: u64) -> io::Result<()> {
        self.pos = self.pos.saturating_add(n);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use zip::write::SimpleFileOptions;

    fn make_zip(files: &[(&str, &[u8], zip::CompressionMethod)]) -> Vec<u8> {
        let mut w = zip::ZipWriter::new(io::Cursor::new(Vec::new()));
        for (name, data, method) in files {
            let opts = SimpleFileOptions::default().compression_method(*method);
            w.start_file(*name, opts).expect("start");
            w.write_all(data).expect("write");
        }
        w.finish().expect("finish").into_inner()
    }

    fn text(n: usize) -> Vec<u8> {
        (0..n).map(|i| b"warren serves zip files "[i % 24] ^ ((i / 977) as u8 & 1)).collect()
    }

    fn read_all(h: &mut Box<dyn FileHandle>) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        let mut buf = [0u8; 1000];
        loop {
            let n = h.read(&mut buf)?;
            if n == 0 {
                return Ok(out);
            }
            out.extend_from_slice(&buf[..n]);
        }
    }

    fn open(z: &ZipFops, p: &str, f: OpenFlags) -> io::Result<Box<dyn FileHandle>> {
        z.open(&VPath::new(p).map_err(invalid_path)?, f)
    }

    #[test]
    fn inflates_and_passes_gzip_through() {
        let body = text(300_000);
        let bytes = make_zip(&[
            ("a/page.html", &body, zip::CompressionMethod::Deflated),
            ("raw.bin", b"stored bytes", zip::CompressionMethod::Stored),
        ]);
        let z = ZipFops::from_bytes("test.zip", bytes).expect("load");
        let mut h = open(&z, "a/page.html", OpenFlags::READ).expect("open");
        assert_eq!(h.info().len, body.len() as u64);
        assert!(h.info().flags.contains(FileFlags::NEGOTIATED));
        assert_eq!(read_all(&mut h).expect("inflate"), body);

        let mut g = open(&z, "a/page.html", OpenFlags::ACCEPT_GZIP).expect("open gz");
        assert_eq!(g.info().encoding, ContentEncoding::Gzip);
        let gz = read_all(&mut g).expect("gzip");
        assert_eq!(gz.len() as u64, g.info().len);
        assert_eq!(gz[..10], GZIP_HEADER);
        let mut inflated = Vec::new();
        flate2_free_gunzip(&gz, &mut inflated);
        assert_eq!(inflated, body);
        assert_ne!(h.info().version, g.info().version, "ETags differ by form");

        let mut s = open(&z, "raw.bin", OpenFlags::ACCEPT_GZIP).expect("stored");
        assert_eq!(s.info().encoding, ContentEncoding::Identity);
        assert_eq!(read_all(&mut s).expect("read"), b"stored bytes");
        assert!(s.sendfile_span().is_none(), "memory has no fd");
    }

    /// gunzip with miniz_oxide: header check, raw inflate, trailer check.
    fn flate2_free_gunzip(gz: &[u8], out: &mut Vec<u8>) {
        assert_eq!(gz[..10], GZIP_HEADER);
        let data = &gz[10..gz.len() - 8];
        *out = miniz_oxide::inflate::decompress_to_vec(data).expect("inflate");
        let crc = u32::from_le_bytes(gz[gz.len() - 8..gz.len() - 4].try_into().expect("4"));
        assert_eq!(crc, crc32fast::hash(out));
    }

    #[test]
    fn directories_and_refusals() {
        let bytes = make_zip(&[("dir/index.html", b"hi", zip::CompressionMethod::Deflated)]);
        let z = ZipFops::from_bytes("t.zip", bytes).expect("load");
        for p in ["", "dir"] {
            let e = open(&z, p, OpenFlags::READ).expect_err(p);
            assert_eq!(e.kind(), io::ErrorKind::IsADirectory, "{p}");
        }
        assert_eq!(open(&z, "nope", OpenFlags::READ).expect_err("missing").kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn seeks_restart_inflation() {
        let body = text(100_000);
        let z =
            ZipFops::from_bytes("t.zip", make_zip(&[("f", &body, zip::CompressionMethod::Deflated)])).expect("load");
        let mut h = open(&z, "f", OpenFlags::READ).expect("open");
        h.seek(SeekFrom::Start(70_000)).expect("seek");
        let mut b = [0u8; 10];
        h.read(&mut b).expect("read");
        assert_eq!(&b, &body[70_000..70_010]);
        h.seek(SeekFrom::Start(5)).expect("back");
        h.read(&mut b).expect("read");
        assert_eq!(&b, &body[5..15]);
    }

    #[test]
    fn inflate_memory_is_bounded() {
        // The one allocation an inflating download makes.
        let size = std::mem::size_of::<Inflater>();
        assert!(size <= INFLATE_MEMORY + 256, "{size} vs {INFLATE_MEMORY}");
        assert!(size <= 64 * 1024, "{size}");
    }
}
