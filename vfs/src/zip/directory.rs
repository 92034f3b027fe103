//! The central directory of a zip archive, read by warren itself into a
//! compact form: one sorted table of 48-byte records and one string of
//! names (APPNOTE 4.3; ZIP64, comments and data before the archive).

use super::*;

/// Signatures of the zip records read here (APPNOTE 4.3).
pub(super) const EOCD_SIG: [u8; 4] = [0x50, 0x4b, 0x05, 0x06];
pub(super) const ZIP64_LOCATOR_SIG: [u8; 4] = [0x50, 0x4b, 0x06, 0x07];
pub(super) const ZIP64_EOCD_SIG: [u8; 4] = [0x50, 0x4b, 0x06, 0x06];
pub(super) const CENTRAL_SIG: [u8; 4] = [0x50, 0x4b, 0x01, 0x02];
pub(super) const LOCAL_SIG: [u8; 4] = [0x50, 0x4b, 0x03, 0x04];
/// Fixed part of a central directory entry.
pub(super) const CENTRAL_LEN: usize = 46;
pub(super) const EOCD_LEN: usize = 22;
pub(super) const ZIP64_EOCD_LEN: usize = 56;

/// Refusals logged one by one when an archive loads; the rest are counted.
pub(super) const LOGGED_REFUSALS: usize = 8;

/// `Record::flags`.
pub(super) const DIR: u8 = 1;
pub(super) const ENCRYPTED: u8 = 2;
/// `Record::method` for anything but stored (0) and deflated (8).
pub(super) const METHOD_OTHER: u8 = 255;

/// One name of an archive's directory, file or directory: 48 bytes, and
/// the name itself in the archive's name arena.
pub(super) struct Record {
    /// The name is `names[name..name + name_len]`.
    pub(super) name: u32,
    pub(super) name_len: u16,
    pub(super) flags: u8,
    pub(super) method: u8,
    pub(super) crc: u32,
    /// DOS date (high 16 bits) and time.
    pub(super) dos: u32,
    pub(super) csize: u64,
    pub(super) size: u64,
    pub(super) header: u64,
    /// Where the data begins once the local header has been read; 0
    /// before (a local header takes at least 30 bytes, so 0 is never it).
    pub(super) data_start: AtomicU64,
}

impl Record {
    pub(super) fn is_dir(&self) -> bool {
        self.flags & DIR != 0
    }
}

/// One archive's central directory, and its bytes. Names sit in one
/// arena; `records` is sorted by name (one per name) and searched by
/// binary search; directories with no entry of their own are found as
/// the prefix of a name.
pub(super) struct Archive {
    pub(super) name: String,
    pub(super) source: Source,
    pub(super) names: String,
    pub(super) records: Vec<Record>,
    /// Entries refused at load (absolute names), by normalised name, in
    /// `names`; sorted.
    pub(super) refused: Vec<(u32, u16)>,
    /// The stored bytes of small entries read so far, by where they start
    /// (see [`Archive::small_entry`]).
    pub(super) small: std::sync::Mutex<SmallEntries>,
}

/// Small entries' bytes kept in memory, up to [`SMALL_ENTRIES_BYTES`].
#[derive(Default)]
pub(super) struct SmallEntries {
    bytes: usize,
    by_start: std::collections::HashMap<u64, std::sync::Arc<[u8]>>,
}

/// An entry whose stored bytes (a stored entry's content, or the deflate
/// stream served as gzip) are at most this many is kept in memory once
/// read, so a small response from an archive costs no read of it.
pub(super) const SMALL_ENTRY: u64 = 16 * 1024;
/// The most bytes of small entries kept per archive.
pub(super) const SMALL_ENTRIES_BYTES: usize = 1 << 20;

/// Where the central directory is: its offset, size, entry count, and
/// how far every offset in it is shifted (by data before the archive).
pub(super) struct Directory {
    pub(super) offset: u64,
    pub(super) size: u64,
    pub(super) entries: u64,
    pub(super) shift: u64,
}

pub(super) fn le16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

pub(super) fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

pub(super) fn le64(b: &[u8], at: usize) -> u64 {
    u64::from(le32(b, at)) | (u64::from(le32(b, at + 4)) << 32)
}

pub(super) fn read_exact_at(source: &Source, buf: &mut [u8], offset: u64) -> Result<(), String> {
    match source.read_at(buf, offset) {
        Ok(n) if n == buf.len() => Ok(()),
        Ok(_) => Err("archive truncated".into()),
        Err(e) => Err(e.to_string()),
    }
}

/// Finds the end-of-central-directory record (after any comment), and the
/// ZIP64 one when there is one.
pub(super) fn find_directory(source: &Source) -> Result<Directory, String> {
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
pub(super) fn zip64_extra(mut extra: &[u8], fields: [&mut u64; 3]) -> Result<(), String> {
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
    pub(super) fn load(name: String, source: Source, limit: usize) -> io::Result<Archive> {
        let dir = Archive::locate(&name, &source, limit)?;
        Archive::read(name, source, dir)
    }

    /// Finds the central directory (reading the archive's end, 64 KiB at
    /// most), refusing it if it would take more than `limit` bytes.
    pub(super) fn locate(name: &str, source: &Source, limit: usize) -> io::Result<Directory> {
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
    pub(super) fn read(name: String, source: Source, dir: Directory) -> io::Result<Archive> {
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
        Ok(Archive { name, source, names, records, refused, small: Default::default() })
    }

    /// Heap and struct bytes the directory takes.
    pub(super) fn memory(&self) -> usize {
        std::mem::size_of::<Archive>()
            + self.name.capacity()
            + self.names.capacity()
            + self.records.capacity() * std::mem::size_of::<Record>()
            + self.refused.capacity() * std::mem::size_of::<(u32, u16)>()
    }

    pub(super) fn text(&self, at: u32, len: u16) -> &str {
        self.names.get(at as usize..at as usize + usize::from(len)).unwrap_or("")
    }

    pub(super) fn find(&self, name: &str) -> Option<&Record> {
        let i = self.records.binary_search_by(|r| self.text(r.name, r.name_len).cmp(name)).ok()?;
        self.records.get(i)
    }

    /// The root, a directory entry, or the parent of some entry.
    pub(super) fn is_dir(&self, name: &str) -> bool {
        if name.is_empty() || self.find(name).is_some_and(Record::is_dir) {
            return true;
        }
        let prefix = format!("{name}/");
        let i = self.records.partition_point(|r| self.text(r.name, r.name_len) < prefix.as_str());
        self.records.get(i).is_some_and(|r| self.text(r.name, r.name_len).starts_with(&prefix))
    }

    pub(super) fn open_entry(self: &Arc<Self>, name: &str, flags: OpenFlags) -> io::Result<Box<dyn FileHandle>> {
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
            small: None,
        }))
    }

    /// The `len` stored bytes at `start` of a small entry, from memory, or
    /// read now and kept while the archive keeps fewer than
    /// [`SMALL_ENTRIES_BYTES`]. None for an archive in memory already, an
    /// entry too big, or one the archive ends inside.
    pub(super) fn small_entry(&self, start: u64, len: u64) -> Option<std::sync::Arc<[u8]>> {
        if len > SMALL_ENTRY || matches!(self.source, Source::Memory(_)) {
            return None;
        }
        if let Some(b) = self.small.lock().unwrap_or_else(|e| e.into_inner()).by_start.get(&start) {
            return Some(b.clone());
        }
        let mut buf = vec![0u8; usize::try_from(len).ok()?];
        if self.source.read_at(&mut buf, start).ok()? != buf.len() {
            return None;
        }
        let bytes: std::sync::Arc<[u8]> = buf.into();
        let mut small = self.small.lock().unwrap_or_else(|e| e.into_inner());
        if small.bytes + bytes.len() <= SMALL_ENTRIES_BYTES && !small.by_start.contains_key(&start) {
            small.bytes += bytes.len();
            small.by_start.insert(start, bytes.clone());
        }
        Some(bytes)
    }

    /// Where an entry's data begins: after its local header, which is
    /// read on the first open of the entry only.
    pub(super) fn data_start(&self, e: &Record) -> Result<u64, String> {
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
    pub(super) fn fail(&self, kind: io::ErrorKind, entry: &str, why: &str) -> io::Error {
        log::error!("{}: entry {entry}: {why}", self.name);
        io::Error::new(kind, format!("{}: entry {entry}: {why}", self.name))
    }
}

/// A DOS date and time (local time of whoever zipped; taken as UTC).
pub(super) fn dos_time(date: u16, time: u16) -> Option<SystemTime> {
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
