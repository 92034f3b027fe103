//! HTTP basic authentication for mounts (spec AUTH-1..3).

use base64::Engine;
use std::path::Path;

/// The longest credentials file read (bigger: nobody gets in).
const MAX_FILE: u64 = 64 * 1024;
/// The longest base64 credentials accepted (AUTH-2: ~160).
const MAX_ENCODED: usize = 160;
/// Lines longer than this can never match (AUTH-1).
const MAX_LINE: usize = 255;

/// The outcome of checking a request's credentials.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Credentials match a line of the file.
    Allowed,
    /// None given, or none that match: 401 with a challenge.
    Challenge,
    /// An Authorization header that is not well-formed Basic: 403.
    Malformed,
}

/// Checks `authorization` (the header's value) against `file`.
pub(crate) fn check(authorization: Option<&[u8]>, file: &Path) -> Verdict {
    let Some(value) = authorization else { return Verdict::Challenge };
    let value = String::from_utf8_lossy(value);
    let value = value.trim();
    let Some((scheme, encoded)) = value.split_once(' ') else { return Verdict::Malformed };
    let encoded = encoded.trim();
    if !scheme.eq_ignore_ascii_case("basic") || encoded.len() > MAX_ENCODED {
        return Verdict::Malformed;
    }
    let Ok(creds) = base64::engine::general_purpose::STANDARD.decode(encoded) else { return Verdict::Malformed };
    if !creds.contains(&b':') {
        return Verdict::Malformed;
    }
    let Ok(list) = read_small(file) else {
        log::error!("basic-auth file {}: unreadable; refusing everyone", file.display());
        return Verdict::Challenge;
    };
    // SECURITY: every line is compared, each in constant time, so the
    // time taken says nothing about which line or byte differed.
    let mut allowed = false;
    for line in list.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if !line.is_empty() && line.len() <= MAX_LINE {
            allowed |= constant_time_eq(line, &creds);
        }
    }
    if allowed {
        Verdict::Allowed
    } else {
        Verdict::Challenge
    }
}

fn read_small(file: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut f = std::fs::File::open(file)?;
    let mut out = Vec::new();
    f.by_ref().take(MAX_FILE + 1).read_to_end(&mut out)?;
    if out.len() as u64 > MAX_FILE {
        return Err(std::io::ErrorKind::InvalidData.into());
    }
    Ok(out)
}

/// Equal, in time that depends only on the lengths.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let n = a.len().max(b.len());
    let mut diff = (a.len() ^ b.len()) as u8 | u8::from(a.len() != b.len());
    for i in 0..n {
        diff |= a.get(i).copied().unwrap_or(0) ^ b.get(i).copied().unwrap_or(0);
    }
    diff == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts() {
        let t = tempfile::tempdir().expect("tempdir");
        let file = t.path().join("pw");
        std::fs::write(&file, "alice:secret\r\nbob:hunter2\n").expect("write");
        let b64 = |s: &str| format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(s));
        let c = |h: Option<&str>| check(h.map(str::as_bytes), &file);
        assert_eq!(c(Some(&b64("alice:secret"))), Verdict::Allowed);
        assert_eq!(c(Some(&b64("bob:hunter2"))), Verdict::Allowed);
        assert_eq!(c(Some(&b64("bob:hunter"))), Verdict::Challenge);
        assert_eq!(c(Some(&b64("alice:secret\r\nbob:hunter2"))), Verdict::Challenge);
        assert_eq!(c(None), Verdict::Challenge);
        assert_eq!(c(Some("Bearer abc")), Verdict::Malformed);
        assert_eq!(c(Some("Basic !!!")), Verdict::Malformed);
        assert_eq!(c(Some(&b64("nocolon"))), Verdict::Malformed);
        assert_eq!(c(Some(&format!("Basic {}", "A".repeat(200)))), Verdict::Malformed);
        assert_eq!(check(Some(b64("alice:secret").as_bytes()), &t.path().join("none")), Verdict::Challenge);
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }
}
