//! [`VPath`]: the only kind of path a [`Fops`](crate::Fops) is given.

use std::fmt;

/// A relative, normalised path inside a filesystem: segments separated by
/// single `/`, none of them empty, `.` or `..`, no NUL byte, no leading or
/// trailing `/`. The empty path names the root.
///
/// SECURITY: this is the one place that decides what a path may contain.
/// URL paths (after percent-decoding) and, later, zip entry names pass
/// through [`VPath::new`]; filesystems can then join it to their root
/// without further checks (they still confine symlinks themselves).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct VPath(String);

/// Why a string is not a valid [`VPath`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PathError {
    /// A `..` segment: an attempt to leave the root (the peer is at fault,
    /// often on purpose).
    ParentSegment,
    /// A NUL byte.
    Nul,
    /// A backslash, which some filesystems and tools treat as a separator.
    Backslash,
}

impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PathError::ParentSegment => "path has a '..' segment",
            PathError::Nul => "path has a NUL byte",
            PathError::Backslash => "path has a backslash",
        })
    }
}

impl std::error::Error for PathError {}

impl VPath {
    /// The root of a filesystem.
    pub fn root() -> VPath {
        VPath(String::new())
    }

    /// Checks and normalises `s`: leading, trailing and repeated `/` and
    /// `.` segments are dropped; `..`, NUL and `\` are refused.
    pub fn new(s: &str) -> Result<VPath, PathError> {
        if s.as_bytes().contains(&0) {
            return Err(PathError::Nul);
        }
        if s.contains('\\') {
            return Err(PathError::Backslash);
        }
        let mut out = String::with_capacity(s.len());
        for seg in s.split('/') {
            match seg {
                "" | "." => continue,
                ".." => return Err(PathError::ParentSegment),
                _ => {
                    if !out.is_empty() {
                        out.push('/');
                    }
                    out.push_str(seg);
                }
            }
        }
        Ok(VPath(out))
    }

    /// The path as a string (no leading `/`; empty for the root).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this is the root.
    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    /// This path with `name` (a single segment, checked) appended.
    pub fn join(&self, name: &str) -> Result<VPath, PathError> {
        if self.0.is_empty() {
            VPath::new(name)
        } else {
            VPath::new(&format!("{}/{}", self.0, name))
        }
    }

    /// The last segment, if any.
    pub fn file_name(&self) -> Option<&str> {
        self.0.rsplit('/').next().filter(|s| !s.is_empty())
    }
}

impl fmt::Debug for VPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VPath({:?})", self.0)
    }
}

impl fmt::Display for VPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "/{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises() {
        let cases = [("", ""), ("/", ""), ("a", "a"), ("/a/b/", "a/b"), ("//a//./b", "a/b"), ("./.x/..y", ".x/..y")];
        for (input, want) in cases {
            assert_eq!(VPath::new(input).map(|p| p.0), Ok(want.to_string()), "{input}");
        }
    }

    #[test]
    fn refuses_escapes() {
        assert_eq!(VPath::new("../etc/passwd"), Err(PathError::ParentSegment));
        assert_eq!(VPath::new("/a/../../b"), Err(PathError::ParentSegment));
        assert_eq!(VPath::new("/a/.."), Err(PathError::ParentSegment));
        assert_eq!(VPath::new("a\0b"), Err(PathError::Nul));
        assert_eq!(VPath::new("a\\..\\b"), Err(PathError::Backslash));
    }

    #[test]
    fn join_and_name() {
        let p = VPath::new("docs").unwrap_or_else(|_| VPath::root());
        assert_eq!(p.join("index.html").map(|p| p.0), Ok("docs/index.html".into()));
        assert_eq!(VPath::root().join("x").map(|p| p.0), Ok("x".into()));
        assert_eq!(p.join(".."), Err(PathError::ParentSegment));
        assert_eq!(p.file_name(), Some("docs"));
        assert_eq!(VPath::root().file_name(), None);
    }
}
