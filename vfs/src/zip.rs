//! [`ZipFops`]: sites served from inside zip archives.
//!
//! A deflated entry, to a client that accepts gzip, is its raw deflate
//! stream wrapped in a 10-byte gzip header and an 8-byte trailer made from
//! the entry's CRC-32 and size: nothing is inflated or re-deflated, and
//! the deflate bytes can go out by `sendfile(2)` from the archive file. To
//! other clients it is inflated as it is read, holding one small input
//! buffer and the 32 KiB window at a time (see [`INFLATE_MEMORY`]).

use crate::{
    seek_target, ContentEncoding, FdSpan, FileFlags, FileHandle, FileInfo, Fops, OpenFlags, PathError, Pending, VPath,
};
use miniz_oxide::inflate::core::{decompress, inflate_flags, DecompressorOxide, TINFL_LZ_DICT_SIZE};
use miniz_oxide::inflate::TINFLStatus;
use std::collections::HashMap;
use std::fmt;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::{self, Read, Seek, SeekFrom};
use std::os::fd::{BorrowedFd, RawFd};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
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

/// Bytes of cached central directories a [`ZipFops`] keeps by default
/// ([`ZipFops::with_cache_limit`]).
pub const DEFAULT_CACHE_BYTES: usize = 64 << 20;

/// Archives (and failed loads) a cache holds at most, whatever their
/// bytes: keeps finding the least recently used one cheap.
const MAX_ARCHIVES: usize = 256;

/// What a cache entry costs besides its archive's directory: the key, the
/// map slot and the `Arc`'s header, rounded up.
const CACHE_ENTRY_OVERHEAD: usize = 128;

/// A central directory smaller than this is read by the caller, at once
/// (a few milliseconds at most); a bigger one on a loader thread, while
/// the caller's opens answer `WouldBlock`.
pub const SYNC_DIRECTORY_BYTES: u64 = 256 << 10;

/// Loader threads running at once, in the whole process. An archive that
/// finds them all busy is tried again later by its caller.
pub const MAX_LOADERS: usize = 2;

/// Loader threads running now.
static LOADERS: AtomicUsize = AtomicUsize::new(0);

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
/// A central directory of [`SYNC_DIRECTORY_BYTES`] or more is read on a
/// loader thread (at most [`MAX_LOADERS`] of them in the process, one
/// load per archive however many requests want it): until it is in the
/// cache, opens into that archive fail with [`io::ErrorKind::WouldBlock`]
/// carrying a [`Pending`] that is done when the load is. Smaller ones
/// are read by the caller, at once.
///
/// The cache is bounded by the bytes its directories take
/// ([`DEFAULT_CACHE_BYTES`] unless [`ZipFops::with_cache_limit`] says
/// otherwise); the archive used least recently goes first. An archive
/// whose directory alone would take more is refused.
///
/// Archives with a trailing comment and ZIP64 archives are read; entries
/// whose names are absolute or contain `..` are refused, as are encrypted
/// entries and compression methods other than stored and deflate.
pub struct ZipFops {
    mode: Mode,
}

enum Mode {
    Chain { base: Arc<dyn Fops>, prefix: Option<VPath>, archives: Arc<Mutex<ArchiveCache>> },
    Fixed(Arc<Archive>),
}

/// Loaded archives (and failed loads, so a broken archive is not parsed
/// again on every request), by path; the least recently used goes first.
struct ArchiveCache {
    clock: u64,
    /// What the entries cost, and the most they may.
    bytes: usize,
    limit: usize,
    entries: HashMap<String, CachedArchive>,
    /// Archives being loaded on a loader thread (at most `MAX_LOADERS`).
    loading: HashMap<String, Pending>,
}

impl Default for ArchiveCache {
    fn default() -> ArchiveCache {
        ArchiveCache {
            clock: 0,
            bytes: 0,
            limit: DEFAULT_CACHE_BYTES,
            entries: HashMap::new(),
            loading: HashMap::new(),
        }
    }
}

type Loaded = Result<Arc<Archive>, (io::ErrorKind, String)>;

struct CachedArchive {
    version: Option<u64>,
    used: u64,
    cost: usize,
    archive: Loaded,
}

impl ArchiveCache {
    /// Caches `archive` as `path`'s, dropping the least recently used
    /// entries until it fits.
    fn insert(&mut self, path: &str, version: Option<u64>, archive: Loaded) {
        if let Some(old) = self.entries.remove(path) {
            self.bytes -= old.cost;
        }
        let cost = CACHE_ENTRY_OVERHEAD
            + path.len()
            + match &archive {
                Ok(a) => a.memory(),
                Err((_, msg)) => msg.len(),
            };
        while !self.entries.is_empty() && (self.bytes + cost > self.limit || self.entries.len() >= MAX_ARCHIVES) {
            let oldest = self.entries.iter().min_by_key(|(_, c)| c.used).map(|(k, _)| k.clone());
            if let Some(c) = oldest.and_then(|k| self.entries.remove(&k)) {
                self.bytes -= c.cost;
            }
        }
        self.clock += 1;
        self.bytes += cost;
        let entry = CachedArchive { version, used: self.clock, cost, archive };
        self.entries.insert(path.to_string(), entry);
    }
}

/// The most entries an archive may have.
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
        ZipFops { mode: Mode::Chain { base, prefix: None, archives: Arc::default() } }
    }

    /// Serves the archive at `archive` (a path of `base`) as the whole tree.
    pub fn archive(base: Arc<dyn Fops>, archive: VPath) -> ZipFops {
        ZipFops { mode: Mode::Chain { base, prefix: Some(archive), archives: Arc::default() } }
    }

    /// Serves an archive held in memory, e.g. `include_bytes!("site.zip")`.
    /// `name` is used in log lines and errors.
    pub fn from_bytes(name: &str, bytes: impl AsRef<[u8]> + Send + Sync + 'static) -> io::Result<ZipFops> {
        let source = Source::Memory(Box::new(bytes));
        let archive = Archive::load(name.to_string(), source, usize::MAX)?;
        Ok(ZipFops { mode: Mode::Fixed(Arc::new(archive)) })
    }

    /// Keeps at most `bytes` of cached central directories (default
    /// [`DEFAULT_CACHE_BYTES`]), dropping the archives used least recently
    /// first. An archive whose directory alone would take more is not
    /// served (its requests fail with [`io::ErrorKind::InvalidData`]).
    /// Handles still open keep their archive's directory alive after it
    /// leaves the cache. (No effect on [`ZipFops::from_bytes`].)
    pub fn with_cache_limit(self, bytes: usize) -> ZipFops {
        if let Mode::Chain { archives, .. } = &self.mode {
            archives.lock().unwrap_or_else(|e| e.into_inner()).limit = bytes;
        }
        self
    }

    /// The bytes the cached central directories take now, as counted
    /// against [`ZipFops::with_cache_limit`]; for an archive in memory,
    /// its directory's.
    pub fn cached_bytes(&self) -> usize {
        match &self.mode {
            Mode::Chain { archives, .. } => archives.lock().unwrap_or_else(|e| e.into_inner()).bytes,
            Mode::Fixed(a) => a.memory(),
        }
    }

    /// The archive at `path` of `base`, parsed once per version. (A base
    /// whose handles have no version gets its archives parsed once.) A big
    /// directory is read on a loader thread: `WouldBlock` until it is in.
    fn cached_archive(base: &dyn Fops, archives: &Arc<Mutex<ArchiveCache>>, path: &VPath) -> io::Result<Arc<Archive>> {
        let handle = base.open(path, OpenFlags::READ)?;
        let version = handle.info().version;
        let limit = {
            let mut cache = archives.lock().unwrap_or_else(|e| e.into_inner());
            cache.clock += 1;
            let now = cache.clock;
            match cache.entries.get_mut(path.as_str()) {
                Some(c) if c.version == version => {
                    c.used = now;
                    return c.archive.clone().map_err(|(kind, msg)| io::Error::new(kind, msg));
                }
                _ => {}
            }
            if let Some(p) = cache.loading.get(path.as_str()) {
                return Err(p.to_error());
            }
            cache.limit
        };
        // Not under the lock: another thread's archives stay available.
        // Finding the directory reads the archive's last 64 KiB at most.
        let name = path.to_string();
        let source = Source::handle(handle);
        let limit = limit.saturating_sub(CACHE_ENTRY_OVERHEAD + name.len());
        let loaded = match Archive::locate(&name, &source, limit) {
            Ok(dir) if dir.size >= SYNC_DIRECTORY_BYTES => {
                return Err(ZipFops::start_load(archives, path.as_str(), name, version, source, dir));
            }
            Ok(dir) => Archive::read(name, source, dir),
            Err(e) => Err(e),
        };
        let loaded = loaded.map(Arc::new).map_err(|e| (e.kind(), e.to_string()));
        archives.lock().unwrap_or_else(|e| e.into_inner()).insert(path.as_str(), version, loaded.clone());
        loaded.map_err(|(kind, msg)| io::Error::new(kind, msg))
    }

    /// Reads the directory `dir` of `source` (called `name`) on a loader
    /// thread, and caches it as `key`'s; returns the error that says to
    /// wait.
    fn start_load(
        archives: &Arc<Mutex<ArchiveCache>>,
        key: &str,
        name: String,
        version: Option<u64>,
        source: Source,
        dir: Directory,
    ) -> io::Error {
        let busy = || io::Error::new(io::ErrorKind::WouldBlock, "every zip directory loader is busy");
        let pending = {
            let mut cache = archives.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(p) = cache.loading.get(key) {
                // Another thread started it meanwhile.
                return p.to_error();
            }
            if LOADERS.fetch_add(1, Ordering::AcqRel) >= MAX_LOADERS {
                LOADERS.fetch_sub(1, Ordering::AcqRel);
                return busy();
            }
            let pending = Pending::new(format!("{name}: loading its directory"));
            cache.loading.insert(key.to_string(), pending.clone());
            pending
        };
        let done = LoadDone { archives: Arc::clone(archives), key: key.to_string(), pending: pending.clone() };
        let spawned = std::thread::Builder::new().name("warren-zip-load".into()).spawn(move || {
            let done = done;
            let loaded = Archive::read(name, source, dir).map(Arc::new).map_err(|e| (e.kind(), e.to_string()));
            let mut cache = done.archives.lock().unwrap_or_else(|e| e.into_inner());
            cache.insert(&done.key, version, loaded);
            drop(cache);
            // The load is over: `done` ends it as the closure drops.
        });
        match spawned {
            Ok(_) => pending.to_error(),
            Err(e) => {
                // The closure, and `done` in it, were dropped: nothing waits.
                log::error!("cannot start a zip directory loader: {e}");
                busy()
            }
        }
    }
}

/// Ends a load, however its thread ends (a panic included): the archive
/// is no longer loading, the loader's slot is free, and its waiters are
/// woken to open again.
struct LoadDone {
    archives: Arc<Mutex<ArchiveCache>>,
    key: String,
    pending: Pending,
}

impl Drop for LoadDone {
    fn drop(&mut self) {
        self.archives.lock().unwrap_or_else(|e| e.into_inner()).loading.remove(&self.key);
        LOADERS.fetch_sub(1, Ordering::AcqRel);
        self.pending.finish();
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

/// Signatures of the zip records read here (APPNOTE 4.3).
const EOCD_SIG: [u8; 4] = [0x50, 0x4b, 0x05, 0x06];
const ZIP64_LOCATOR_SIG: [u8; 4] = [0x50, 0x4b, 0x06, 0x07];
const ZIP64_EOCD_SIG: [u8; 4] = [0x50, 0x4b, 0x06, 0x06];
const CENTRAL_SIG: [u8; 4] = [0x50, 0x4b, 0x01, 0x02];
const LOCAL_SIG: [u8; 4] = [0x50, 0x4b, 0x03, 0x04];
/// Fixed part of a central directory entry.
const CENTRAL_LEN: usize = 46;
const EOCD_LEN: usize = 22;
const ZIP64_EOCD_LEN: usize = 56;

/// Refusals logged one by one when an archive loads; the rest are counted.
const LOGGED_REFUSALS: usize = 8;

/// `Record::flags`.
const DIR: u8 = 1;
const ENCRYPTED: u8 = 2;
/// `Record::method` for anything but stored (0) and deflated (8).
const METHOD_OTHER: u8 = 255;

/// One name of an archive's directory, file or directory: 48 bytes, and
/// the name itself in the archive's name arena.
struct Record {
    /// The name is `names[name..name + name_len]`.
    name: u32,
    name_len: u16,
    flags: u8,
    method: u8,
    crc: u32,
    /// DOS date (high 16 bits) and time.
    dos: u32,
    csize: u64,
    size: u64,
    header: u64,
    /// Where the data begins once the local header has been read; 0
    /// before (a local header takes at least 30 bytes, so 0 is never it).
    data_start: AtomicU64,
}

impl Record {
    fn is_dir(&self) -> bool {
        self.flags & DIR != 0
    }
}

/// One archive's central directory, and its bytes. Names sit in one
/// arena; `records` is sorted by name (one per name) and searched by
/// binary search; directories with no entry of their own are found as
/// the prefix of a name.
struct Archive {
    name: String,
    source: Source,
    names: String,
    records: Vec<Record>,
    /// Entries refused at load (absolute names), by normalised name, in
    /// `names`; sorted.
    refused: Vec<(u32, u16)>,
}

/// Where the central directory is: its offset, size, entry count, and
/// how far every offset in it is shifted (by data before the archive).
struct Directory {
    offset: u64,
    size: u64,
    entries: u64,
    shift: u64,
}

fn le16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn le64(b: &[u8], at: usize) -> u64 {
    u64::from(le32(b, at)) | (u64::from(le32(b, at + 4)) << 32)
}

fn read_exact_at(source: &Source, buf: &mut [u8], offset: u64) -> Result<(), String> {
    match source.read_at(buf, offset) {
        Ok(n) if n == buf.len() => Ok(()),
        Ok(_) => Err("archive truncated".into()),
        Err(e) => Err(e.to_string()),
    }
}

/// Finds the end-of-central-directory record (after any comment), and the
/// ZIP64 one when there is one.
fn find_directory(source: &Source) -> Result<Directory, String> {
    let len = source.len();
    let no_end = || "no end-of-central-directory record".to_string();
    if len < EOCD_LEN as u64 {
        return Err(no_end());
    }
    let tail_len = len.min((EOCD_LEN + 0xffff) as u64) as usize;
    let tail_start = len - tail_len as u64;
    let mut tail = vec![0u8; tail_len];
    read_exact_at(source, &mut tail, tail_start)?;
    let candidates = || (0..=tail_len - EOCD_LEN).rev().filter(|&i| tail[i..i + 4] == EOCD_SIG);
    let end_of = |i: usize| i + EOCD_LEN + usize::from(le16(&tail, i + 20));
    // The record whose comment ends the file; failing that, the last one
    // whose comment fits.
    let at = candidates()
        .find(|&i| end_of(i) == tail_len)
        .or_else(|| candidates().find(|&i| end_of(i) <= tail_len))
        .ok_or_else(no_end)?;
    let e = &tail[at..at + EOCD_LEN];
    let eocd = tail_start + at as u64;
    let (mut disk, mut cd_disk) = (u32::from(le16(e, 4)), u32::from(le16(e, 6)));
    let mut entries = u64::from(le16(e, 10));
    let mut size = u64::from(le32(e, 12));
    let mut offset = u64::from(le32(e, 16));
    // Where the central directory ends: the first end record.
    let mut end = eocd;
    if eocd >= 20 {
        let mut locator = [0u8; 20];
        read_exact_at(source, &mut locator, eocd - 20)?;
        if locator[..4] == ZIP64_LOCATOR_SIG {
            let mut r = [0u8; ZIP64_EOCD_LEN];
            // Where the locator says, or (data before the archive) just
            // before the locator.
            let stated = le64(&locator, 8);
            let found = [Some(stated), (eocd - 20).checked_sub(ZIP64_EOCD_LEN as u64)]
                .into_iter()
                .flatten()
                .find(|&pos| read_exact_at(source, &mut r, pos).is_ok() && r[..4] == ZIP64_EOCD_SIG);
            let Some(pos) = found else { return Err("ZIP64 end record missing".into()) };
            disk = le32(&r, 16);
            cd_disk = le32(&r, 20);
            entries = le64(&r, 32);
            size = le64(&r, 40);
            offset = le64(&r, 48);
            end = pos;
        }
    }
    if disk != cd_disk {
        return Err("multi-disk archives are not supported".into());
    }
    let cd_end = offset.checked_add(size).filter(|&e| e <= end).ok_or("central directory past its end record")?;
    let mut shift = 0;
    if cd_end < end && entries > 0 {
        // Data before the archive (a self-extractor, say) shifts every
        // offset: take that if the directory is not where it says.
        let mut sig = [0u8; 4];
        if read_exact_at(source, &mut sig, offset).is_err() || sig != CENTRAL_SIG {
            shift = end - cd_end;
        }
    }
    Ok(Directory { offset: offset + shift, size, entries, shift })
}

/// Reads the ZIP64 extended information extra field (id 1): the 64-bit
/// values of the fields that are all ones, in that order.
fn zip64_extra(mut extra: &[u8], fields: [&mut u64; 3]) -> Result<(), String> {
    while extra.len() >= 4 {
        let (id, len) = (le16(extra, 0), usize::from(le16(extra, 2)));
        let Some(body) = extra.get(4..4 + len) else { break };
        if id == 1 {
            let mut body = body;
            for f in fields {
                if *f == u64::from(u32::MAX) {
                    if body.len() < 8 {
                        return Err("short ZIP64 extra field".into());
                    }
                    *f = le64(body, 0);
                    body = &body[8..];
                }
            }
            return Ok(());
        }
        extra = &extra[4 + len..];
    }
    Ok(())
}

impl Archive {
    /// Reads the central directory, refusing it if it would take more
    /// than `limit` bytes.
    fn load(name: String, source: Source, limit: usize) -> io::Result<Archive> {
        let dir = Archive::locate(&name, &source, limit)?;
        Archive::read(name, source, dir)
    }

    /// Finds the central directory (reading the archive's end, 64 KiB at
    /// most), refusing it if it would take more than `limit` bytes.
    fn locate(name: &str, source: &Source, limit: usize) -> io::Result<Directory> {
        // Returned, not logged: the caller reports it (the server logs
        // every 5xx with the request).
        let corrupt = |why: &str| {
            io::Error::new(io::ErrorKind::InvalidData, format!("{name}: not a readable zip archive: {why}"))
        };
        let dir = find_directory(source).map_err(|w| corrupt(&w))?;
        if dir.entries > MAX_ENTRIES as u64 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{name}: {} entries, over the limit of {MAX_ENTRIES}", dir.entries),
            ));
        }
        let n = dir.entries as usize;
        // Names take at most what the directory holds besides its fixed parts.
        let name_bytes = dir
            .size
            .checked_sub((n * CENTRAL_LEN) as u64)
            .ok_or_else(|| corrupt("central directory too small for its entries"))?;
        let need = (std::mem::size_of::<Archive>() + n * std::mem::size_of::<Record>()) as u64 + name_bytes;
        if need > limit as u64 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{name}: its directory may take {need} bytes, over the cache's limit of {limit}"),
            ));
        }
        Ok(dir)
    }

    /// Reads the central directory `dir` of `source` (what takes time).
    fn read(name: String, source: Source, dir: Directory) -> io::Result<Archive> {
        let corrupt = |why: &str| {
            io::Error::new(io::ErrorKind::InvalidData, format!("{name}: not a readable zip archive: {why}"))
        };
        let n = dir.entries as usize;
        let name_bytes = dir.size.saturating_sub((n * CENTRAL_LEN) as u64);
        let mut names = String::with_capacity(usize::try_from(name_bytes).map_err(|_| corrupt("too big"))?);
        let mut records = Vec::with_capacity(n);
        let mut refused = Vec::new();
        let (mut refusals, mut not_utf8) = (0usize, 0usize);
        let mut reader = io::BufReader::with_capacity(64 << 10, SourceReader { source: &source, pos: dir.offset });
        let mut fixed = [0u8; CENTRAL_LEN];
        let mut raw_name = Vec::new();
        let mut extra = Vec::new();
        let truncated = |_| corrupt("central directory truncated");
        for _ in 0..n {
            reader.read_exact(&mut fixed).map_err(truncated)?;
            let f = &fixed;
            if f[..4] != CENTRAL_SIG {
                return Err(corrupt("bad central directory entry"));
            }
            let (name_len, extra_len, comment_len) = (le16(f, 28), le16(f, 30), le16(f, 32));
            let mut csize = u64::from(le32(f, 20));
            let mut size = u64::from(le32(f, 24));
            let mut header = u64::from(le32(f, 42));
            raw_name.resize(usize::from(name_len), 0);
            reader.read_exact(&mut raw_name).map_err(truncated)?;
            let max = u64::from(u32::MAX);
            if csize == max || size == max || header == max {
                extra.resize(usize::from(extra_len), 0);
                reader.read_exact(&mut extra).map_err(truncated)?;
                zip64_extra(&extra, [&mut size, &mut csize, &mut header]).map_err(|w| corrupt(&w))?;
                reader.seek_relative(i64::from(comment_len))?;
            } else {
                reader.seek_relative(i64::from(extra_len) + i64::from(comment_len))?;
            }
            let Ok(raw) = std::str::from_utf8(&raw_name) else {
                not_utf8 += 1;
                continue;
            };
            let escaping = raw.contains(['\\', '\0']) || raw.split('/').any(|s| s == "..");
            let absolute = raw.starts_with('/');
            if escaping || absolute {
                refusals += 1;
                if refusals <= LOGGED_REFUSALS {
                    log::warn!("{name}: refusing entry {raw:?}: absolute or escaping name");
                }
                if escaping {
                    continue;
                }
            }
            // The normalised name (as `VPath::new` makes it), into the arena.
            let start = names.len();
            let at = u32::try_from(start).map_err(|_| corrupt("names too long"))?;
            for seg in raw.split('/').filter(|s| !s.is_empty() && *s != ".") {
                if names.len() > start {
                    names.push('/');
                }
                names.push_str(seg);
            }
            let len = (names.len() - start) as u16;
            if len == 0 {
                // The root itself: always a directory.
                continue;
            }
            if absolute {
                refused.push((at, len));
                continue;
            }
            let flags = if raw.ends_with('/') { DIR } else { 0 } | if le16(f, 8) & 1 != 0 { ENCRYPTED } else { 0 };
            let method = match le16(f, 10) {
                0 => 0,
                8 => 8,
                _ => METHOD_OTHER,
            };
            records.push(Record {
                name: at,
                name_len: len,
                flags,
                method,
                crc: le32(f, 16),
                dos: (u32::from(le16(f, 14)) << 16) | u32::from(le16(f, 12)),
                csize,
                size,
                header: header.checked_add(dir.shift).ok_or_else(|| corrupt("bad entry offset"))?,
                data_start: AtomicU64::new(0),
            });
        }
        if refusals > LOGGED_REFUSALS {
            log::warn!("{name}: {} more entries refused (absolute or escaping names)", refusals - LOGGED_REFUSALS);
        }
        if not_utf8 > 0 {
            log::warn!("{name}: skipping {not_utf8} entries whose names are not UTF-8");
        }
        drop(reader);
        let text = |at: u32, len: u16| names.get(at as usize..at as usize + usize::from(len)).unwrap_or("");
        // One record per name: a file before a directory, and of equal
        // files the last (as a map would). The stable sort keeps entry
        // order among equals; an archive already in name order (as `warren
        // pack` writes them) is not sorted again.
        let order = |a: &Record, b: &Record| {
            text(a.name, a.name_len).cmp(text(b.name, b.name_len)).then(a.is_dir().cmp(&b.is_dir()))
        };
        if !records.is_sorted_by(|a, b| order(a, b).is_le()) {
            records.sort_by(order);
        }
        records.dedup_by(|later, kept| {
            let same = text(kept.name, kept.name_len) == text(later.name, later.name_len);
            if same && !later.is_dir() {
                std::mem::swap(kept, later);
            }
            same
        });
        refused.sort_by(|a, b| text(a.0, a.1).cmp(text(b.0, b.1)));
        refused.dedup_by(|b, a| text(a.0, a.1) == text(b.0, b.1));
        names.shrink_to_fit();
        records.shrink_to_fit();
        refused.shrink_to_fit();
        Ok(Archive { name, source, names, records, refused })
    }

    /// Heap and struct bytes the directory takes.
    fn memory(&self) -> usize {
        std::mem::size_of::<Archive>()
            + self.name.capacity()
            + self.names.capacity()
            + self.records.capacity() * std::mem::size_of::<Record>()
            + self.refused.capacity() * std::mem::size_of::<(u32, u16)>()
    }

    fn text(&self, at: u32, len: u16) -> &str {
        self.names.get(at as usize..at as usize + usize::from(len)).unwrap_or("")
    }

    fn find(&self, name: &str) -> Option<&Record> {
        let i = self.records.binary_search_by(|r| self.text(r.name, r.name_len).cmp(name)).ok()?;
        self.records.get(i)
    }

    /// The root, a directory entry, or the parent of some entry.
    fn is_dir(&self, name: &str) -> bool {
        if name.is_empty() || self.find(name).is_some_and(Record::is_dir) {
            return true;
        }
        let prefix = format!("{name}/");
        let i = self.records.partition_point(|r| self.text(r.name, r.name_len) < prefix.as_str());
        self.records.get(i).is_some_and(|r| self.text(r.name, r.name_len).starts_with(&prefix))
    }

    fn open_entry(self: &Arc<Self>, name: &str, flags: OpenFlags) -> io::Result<Box<dyn FileHandle>> {
        let Some(e) = self.find(name).filter(|r| !r.is_dir()) else {
            if self.is_dir(name) {
                return Err(io::Error::new(io::ErrorKind::IsADirectory, "is a directory"));
            }
            if self.refused.binary_search_by(|&(at, len)| self.text(at, len).cmp(name)).is_ok() {
                return Err(self.fail(io::ErrorKind::PermissionDenied, name, "entry has an absolute or escaping name"));
            }
            return Err(io::ErrorKind::NotFound.into());
        };
        if e.flags & ENCRYPTED != 0 {
            return Err(self.fail(io::ErrorKind::PermissionDenied, name, "entry is encrypted"));
        }
        if e.method == METHOD_OTHER {
            return Err(self.fail(io::ErrorKind::Unsupported, name, "unsupported compression method"));
        }
        let start = self.data_start(e).map_err(|why| self.fail(io::ErrorKind::InvalidData, name, &why))?;
        if e.method == 0 && e.csize != e.size {
            return Err(self.fail(io::ErrorKind::InvalidData, name, "stored entry with two sizes"));
        }
        let mut h = DefaultHasher::new();
        (e.crc, e.size).hash(&mut h);
        let identity = h.finish();
        let mut info = FileInfo {
            len: e.size,
            mod_time: dos_time((e.dos >> 16) as u16, e.dos as u16),
            flags: FileFlags::VIRTUAL,
            encoding: ContentEncoding::Identity,
            version: Some(identity),
        };
        let kind = match e.method {
            8 if flags.contains(OpenFlags::ACCEPT_GZIP) => {
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
            8 => {
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
    fn data_start(&self, e: &Record) -> Result<u64, String> {
        let known = e.data_start.load(Ordering::Relaxed);
        if known != 0 {
            return Ok(known);
        }
        let mut local = [0u8; 30];
        let n = self.source.read_at(&mut local, e.header).map_err(|err| err.to_string())?;
        if n < local.len() || local[..4] != LOCAL_SIG {
            return Err("bad local header".into());
        }
        let name_len = u64::from(le16(&local, 26));
        let extra_len = u64::from(le16(&local, 28));
        let start = e.header.checked_add(30 + name_len + extra_len).ok_or("bad local header")?;
        match start.checked_add(e.csize) {
            Some(end) if end <= self.source.len() => {
                e.data_start.store(start, Ordering::Relaxed);
                Ok(start)
            }
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
fn dos_time(date: u16, time: u16) -> Option<SystemTime> {
    let (y, m, d) = (1980 + i64::from(date >> 9), i64::from((date >> 5) & 15), i64::from(date & 31));
    let (hour, minute, second) = (i64::from(time >> 11), i64::from((time >> 5) & 63), i64::from(time & 31) * 2);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second;
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
    fn the_directory_finds_files_dirs_and_refusals() {
        let mut w = zip::ZipWriter::new(io::Cursor::new(Vec::new()));
        let stored = SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
        // ZIP64 records and extra fields, a comment, odd names, duplicates.
        w.start_file("z/big64", stored.large_file(true)).expect("start");
        w.write_all(b"sixty-four").expect("write");
        for (name, data) in
            [("b/dup", "one"), ("a/./x//y", "xy"), ("/abs.txt", "abs"), ("../up", "up"), ("b//dup", "two")]
        {
            w.start_file(name, stored).expect("start");
            w.write_all(data.as_bytes()).expect("write");
        }
        w.add_directory("empty/", stored).expect("dir");
        w.set_comment("PK\x05\x06 a comment that looks like a record").expect("comment");
        let z = ZipFops::from_bytes("t.zip", w.finish().expect("finish").into_inner()).expect("load");
        let read = |p: &str| open(&z, p, OpenFlags::READ).and_then(|mut h| read_all(&mut h));
        assert_eq!(read("z/big64").expect("zip64"), b"sixty-four");
        assert_eq!(read("a/x/y").expect("normalised"), b"xy");
        assert_eq!(read("b/dup").expect("dup"), b"two", "the last of equal names wins");
        for dir in ["", "a", "a/x", "b", "z", "empty"] {
            assert_eq!(read(dir).expect_err(dir).kind(), io::ErrorKind::IsADirectory, "{dir}");
        }
        assert_eq!(read("abs.txt").expect_err("abs").kind(), io::ErrorKind::PermissionDenied);
        for missing in ["up", "a/x/y/z", "b/du", "c", "em"] {
            assert_eq!(read(missing).expect_err(missing).kind(), io::ErrorKind::NotFound, "{missing}");
        }
    }

    #[test]
    fn the_directory_is_compact() {
        // 10,000 entries of 22-byte names: 48 bytes a record, the names
        // once, nothing per entry besides.
        let files: Vec<(String, Vec<u8>)> =
            (0..10_000).map(|i| (format!("dir{:03}/file{i:07}.txt", i % 100), vec![])).collect();
        let list: Vec<(&str, &[u8], zip::CompressionMethod)> =
            files.iter().map(|(n, d)| (n.as_str(), d.as_slice(), zip::CompressionMethod::Stored)).collect();
        let z = ZipFops::from_bytes("t.zip", make_zip(&list)).expect("load");
        let bytes = z.cached_bytes();
        assert!(bytes <= 10_000 * (std::mem::size_of::<Record>() + 22) + 1024, "{bytes}");
        assert_eq!(std::mem::size_of::<Record>(), 48);
        let mut h = open(&z, "dir042/file0004242.txt", OpenFlags::READ).expect("open");
        assert_eq!(read_all(&mut h).expect("read"), b"");
    }

    fn many_entries(dir: &std::path::Path, name: &str, n: usize) -> std::path::PathBuf {
        let path = dir.join(name);
        let files: Vec<(String, Vec<u8>)> = (0..n).map(|i| (format!("d{:03}/f{i:06}.txt", i % 100), vec![])).collect();
        let list: Vec<(&str, &[u8], zip::CompressionMethod)> =
            files.iter().map(|(n, d)| (n.as_str(), d.as_slice(), zip::CompressionMethod::Stored)).collect();
        std::fs::write(&path, make_zip(&list)).expect("write");
        path
    }

    #[test]
    fn big_directories_load_off_the_callers_thread() {
        let t = tempfile::tempdir().expect("tempdir");
        // 6,000 entries: about 370 KiB of directory, over the sync bound;
        // 1,000: about 60 KiB, under it.
        many_entries(t.path(), "big.zip", 6_000);
        many_entries(t.path(), "small.zip", 1_000);
        let mut bytes = std::fs::read(many_entries(t.path(), "broken.zip", 6_000)).expect("read");
        // A central directory entry halfway through loses its signature.
        let at = bytes.windows(4).enumerate().filter(|(_, w)| *w == CENTRAL_SIG).nth(3_000).map(|(i, _)| i);
        bytes[at.expect("3000th entry")] = b'X';
        std::fs::write(t.path().join("broken.zip"), bytes).expect("write");
        let z = ZipFops::over(Arc::new(crate::PlainFops::new(t.path()).expect("plain")));

        let small = open(&z, "small.zip/d007/f000007.txt", OpenFlags::READ);
        assert!(small.is_ok(), "a small directory is read at once: {small:?}");
        for (path, outcome) in [("big.zip/d042/f004242.txt", None), ("broken.zip/d001/f000001.txt", Some(()))] {
            let e = open(&z, path, OpenFlags::READ).expect_err("not loaded yet");
            assert_eq!(e.kind(), io::ErrorKind::WouldBlock, "{e}");
            let pending = Pending::of(&e).expect("a pending load").clone();
            // Asked again while it loads: the same load, not a second one.
            let again = open(&z, path, OpenFlags::READ).map(drop);
            if let Err(e) = &again {
                assert!(Pending::of(e).is_some(), "{e}");
            }
            pending.wait();
            match (open(&z, path, OpenFlags::READ), outcome) {
                (Ok(mut h), None) => assert_eq!(read_all(&mut h).expect("read"), b""),
                (Err(e), Some(())) => assert_eq!(e.kind(), io::ErrorKind::InvalidData, "{e}"),
                (r, _) => panic!("{path}: {:?}", r.map(|h| h.info().len)),
            }
        }
        let e = crate::open_blocking(&z, &VPath::new("big.zip/nope").expect("path"), OpenFlags::READ);
        assert_eq!(e.expect_err("missing").kind(), io::ErrorKind::NotFound);
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
