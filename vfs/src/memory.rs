//! [`MemoryFile`]: a file whose bytes are in memory, for user filesystems.

use crate::{seek_target, ContentEncoding, FileFlags, FileHandle, FileInfo};
use std::fmt;
use std::io::{self, SeekFrom};
use std::sync::Arc;
use std::time::SystemTime;

/// A read-only [`FileHandle`] over bytes in memory: what a user [`Fops`](crate::Fops)
/// returns for a file it makes up (generated pages, embedded assets).
///
/// ```
/// use warren_vfs::{FileHandle, MemoryFile};
/// let mut f = MemoryFile::new(b"hello".to_vec(), None);
/// let mut buf = [0u8; 8];
/// assert_eq!(f.read(&mut buf).unwrap(), 5);
/// assert!(f.info().flags.contains(warren_vfs::FileFlags::VIRTUAL));
/// ```
pub struct MemoryFile {
    bytes: Arc<[u8]>,
    info: FileInfo,
    pos: u64,
}

impl MemoryFile {
    /// A file of `bytes`, modified at `mod_time` if known. Its version
    /// (for ETags) is a hash of the bytes.
    pub fn new(bytes: impl Into<Arc<[u8]>>, mod_time: Option<SystemTime>) -> MemoryFile {
        let bytes = bytes.into();
        let info = FileInfo {
            len: bytes.len() as u64,
            mod_time,
            flags: FileFlags::VIRTUAL,
            encoding: ContentEncoding::Identity,
            version: Some(u64::from(crc32fast::hash(&bytes)) << 32 | bytes.len() as u64 & 0xffff_ffff),
        };
        MemoryFile { bytes, info, pos: 0 }
    }
}

impl fmt::Debug for MemoryFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryFile").field("len", &self.info.len).field("pos", &self.pos).finish()
    }
}

impl FileHandle for MemoryFile {
    fn info(&self) -> &FileInfo {
        &self.info
    }

    fn pos(&self) -> u64 {
        self.pos
    }

    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let start = usize::try_from(self.pos).unwrap_or(usize::MAX).min(self.bytes.len());
        let n = buf.len().min(self.bytes.len() - start);
        buf[..n].copy_from_slice(&self.bytes[start..start + n]);
        self.pos += n as u64;
        Ok(n)
    }

    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        self.pos = seek_target(self.pos, self.info.len, pos)?;
        Ok(self.pos)
    }
}
