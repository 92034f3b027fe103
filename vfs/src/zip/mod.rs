//! [`ZipFops`]: sites served from inside zip archives.
//!
//! A deflated entry, to a client that accepts gzip, is its raw deflate
//! stream wrapped in a 10-byte gzip header and an 8-byte trailer made from
//! the entry's CRC-32 and size: nothing is inflated or re-deflated, and
//! the deflate bytes can go out by `sendfile(2)` from the archive file. To
//! other clients it is inflated as it is read, holding one small input
//! buffer and the 32 KiB window at a time (see [`INFLATE_MEMORY`]).

mod directory;

use crate::{
    seek_target, ContentEncoding, FdSpan, FileFlags, FileHandle, FileInfo, Fops, OpenFlags, PathError, Pending, VPath,
};
use directory::*;
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
    /// Directories read so far, and where else to count them
    /// ([`Fops::count_directory_loads`]).
    loads: u64,
    load_counter: Option<Arc<AtomicU64>>,
}

impl Default for ArchiveCache {
    fn default() -> ArchiveCache {
        ArchiveCache {
            clock: 0,
            bytes: 0,
            limit: DEFAULT_CACHE_BYTES,
            entries: HashMap::new(),
            loading: HashMap::new(),
            loads: 0,
            load_counter: None,
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
        if archive.is_ok() {
            self.loads += 1;
            if let Some(c) = &self.load_counter {
                c.fetch_add(1, Ordering::Relaxed);
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

    fn resolve_local_cached(&self, path: &VPath) -> io::Result<crate::LocalFile> {
        match &self.mode {
            Mode::Chain { base, prefix: None, .. } => base.resolve_local_cached(path),
            _ => Err(io::ErrorKind::Unsupported.into()),
        }
    }

    /// Counts each central directory read into a cache entry (a failed
    /// read is not a load); an archive in memory counts none.
    fn count_directory_loads(&self, counter: Arc<AtomicU64>) {
        let Mode::Chain { base, archives, .. } = &self.mode else { return };
        base.count_directory_loads(Arc::clone(&counter));
        let mut cache = archives.lock().unwrap_or_else(|e| e.into_inner());
        if !cache.load_counter.as_ref().is_some_and(|c| Arc::ptr_eq(c, &counter)) {
            counter.fetch_add(cache.loads, Ordering::Relaxed);
            cache.load_counter = Some(counter);
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
    /// A small entry's stored bytes, from the archive's memory
    /// ([`Archive::small_entry`]), taken at the first read.
    small: Option<Arc<[u8]>>,
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

    /// Reads the entry's stored bytes at `offset` (from its start): from
    /// memory when it is small, else from the archive.
    fn stored_at(&mut self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        if self.small.is_none() {
            self.small = self.archive.small_entry(self.start, self.csize);
        }
        match &self.small {
            Some(bytes) => {
                let from = usize::try_from(offset).unwrap_or(usize::MAX).min(bytes.len());
                let n = buf.len().min(bytes.len() - from);
                buf[..n].copy_from_slice(&bytes[from..from + n]);
                Ok(n)
            }
            None => self.archive.source.read_at(buf, self.start + offset),
        }
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
            Kind::Stored => self.stored_at(buf, self.pos)?,
            Kind::Gzip { trailer } => {
                let trailer = *trailer;
                let head = GZIP_HEADER.len() as u64;
                let body_end = head + self.csize;
                if self.pos < head {
                    let from = self.pos as usize;
                    let n = buf.len().min(GZIP_HEADER.len() - from);
                    buf[..n].copy_from_slice(&GZIP_HEADER[from..from + n]);
                    n
                } else if self.pos < body_end {
                    let n = buf.len().min((body_end - self.pos) as usize);
                    self.stored_at(&mut buf[..n], self.pos - head)?
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
