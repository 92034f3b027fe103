//! `Range` requests on file responses (RFC 9110 §14; spec RANGE-*, without
//! lws's bugs: lengths are clamped, unknown units ignored, and 416 says
//! `bytes */LEN`).
//!
//! Overlapping and adjacent ranges are coalesced into one (RFC 9110
//! §15.3.7.2 allows it whatever the order asked), so the parts never hold
//! a byte twice: whatever the header says, a 206 carries at most the
//! file's length plus one part header per range, and at most
//! [`MAX_RANGES`] of those.

/// The most ranges one request may ask for; more and the header is
/// ignored (the whole file is sent), so a request cannot make us send
/// thousands of tiny parts.
pub const MAX_RANGES: usize = 64;

/// What a `Range` header asks of a file of a given length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ranges {
    /// Send the whole file: no header, a unit other than `bytes`, bad
    /// syntax, or too many ranges.
    Ignore,
    /// Nothing asked for lies in the file: 416.
    Unsatisfiable,
    /// These inclusive byte ranges, coalesced: ascending, none
    /// overlapping or adjacent to another (1 to [`MAX_RANGES`]).
    Satisfiable(Vec<(u64, u64)>),
}

/// Parses `value` (the `Range` header) against a file of `len` bytes.
///
/// ```text
/// ranges-specifier = range-unit "=" range-set
/// range-set        = 1#range-spec
/// range-spec       = int-range / suffix-range
/// int-range        = first-pos "-" [ last-pos ]
/// suffix-range     = "-" suffix-length
/// ```
pub fn parse(value: &str, len: u64) -> Ranges {
    let Some((unit, set)) = value.split_once('=') else { return Ranges::Ignore };
    if !unit.trim().eq_ignore_ascii_case("bytes") {
        return Ranges::Ignore;
    }
    let mut out = Vec::new();
    let mut specs = 0;
    for spec in set.split(',') {
        let spec = spec.trim();
        if spec.is_empty() {
            continue;
        }
        specs += 1;
        if specs > MAX_RANGES {
            return Ranges::Ignore;
        }
        let Some((first, last)) = spec.split_once('-') else { return Ranges::Ignore };
        let num = |s: &str| -> Option<u64> {
            if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            // Digits that overflow mean "beyond any end": saturate.
            Some(s.parse().unwrap_or(u64::MAX))
        };
        let (first, last) = (first.trim(), last.trim());
        if first.is_empty() {
            let Some(n) = num(last) else { return Ranges::Ignore };
            if n > 0 && len > 0 {
                out.push((len - n.min(len), len - 1));
            }
            continue;
        }
        let Some(a) = num(first) else { return Ranges::Ignore };
        let b = if last.is_empty() {
            u64::MAX
        } else {
            match num(last) {
                Some(b) if b >= a => b,
                _ => return Ranges::Ignore,
            }
        };
        if a < len {
            out.push((a, b.min(len - 1)));
        }
    }
    if specs == 0 {
        Ranges::Ignore
    } else if out.is_empty() {
        Ranges::Unsatisfiable
    } else {
        Ranges::Satisfiable(coalesce(out))
    }
}

/// Sorts inclusive ranges and merges those that overlap or touch.
fn coalesce(mut ranges: Vec<(u64, u64)>) -> Vec<(u64, u64)> {
    ranges.sort_unstable();
    let mut out: Vec<(u64, u64)> = Vec::with_capacity(ranges.len());
    for (a, b) in ranges {
        match out.last_mut() {
            // `a <= end + 1`, written so that `end == u64::MAX` cannot overflow.
            Some((_, end)) if a.saturating_sub(1) <= *end => *end = (*end).max(b),
            _ => out.push((a, b)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sat(v: &str, len: u64) -> Vec<(u64, u64)> {
        match parse(v, len) {
            Ranges::Satisfiable(r) => r,
            other => panic!("{v}: {other:?}"),
        }
    }

    #[test]
    fn forms() {
        assert_eq!(sat("bytes=0-9", 100), [(0, 9)]);
        assert_eq!(sat("bytes=90-", 100), [(90, 99)]);
        assert_eq!(sat("bytes=-10", 100), [(90, 99)]);
        assert_eq!(sat("bytes=-1000", 100), [(0, 99)], "suffix clamped");
        assert_eq!(sat("bytes=50-1000", 100), [(50, 99)], "end clamped (RANGE-3)");
        assert_eq!(sat("Bytes = 0-0 , 5-6", 100), [(0, 0), (5, 6)], "whitespace allowed");
        assert_eq!(sat("bytes=0-0,200-300", 100), [(0, 0)], "unsatisfiable parts dropped");
        assert_eq!(sat("bytes=0-99999999999999999999999", 100), [(0, 99)]);
    }

    #[test]
    fn overlapping_and_adjacent_ranges_coalesce() {
        // 64 copies of the whole file are the file once, not 64 times.
        let same = format!("bytes={}", vec!["0-"; MAX_RANGES].join(","));
        assert_eq!(sat(&same, 50 << 20), [(0, (50 << 20) - 1)]);
        assert_eq!(sat("bytes=0-9,5-19,20-29", 100), [(0, 29)], "overlapping, then adjacent");
        assert_eq!(sat("bytes=50-59,0-9,-5,8-12", 100), [(0, 12), (50, 59), (95, 99)], "any order");
        assert_eq!(sat("bytes=0-9,11-19", 100), [(0, 9), (11, 19)], "a gap keeps them apart");
        assert_eq!(sat("bytes=10-20,12-14", 100), [(10, 20)], "contained");
        assert_eq!(sat("bytes=0-0,1-1,2-2,3-3", 100), [(0, 3)]);
        // However the header is written, the parts hold each byte at most once.
        let specs: Vec<String> = (0..MAX_RANGES).map(|i| format!("{}-{}", i * 3, i * 3 + 40)).collect();
        let parts = sat(&format!("bytes={}", specs.join(",")), 1000);
        assert!(parts.iter().map(|(a, b)| b - a + 1).sum::<u64>() <= 1000, "{parts:?}");
        assert!(parts.windows(2).all(|w| w[0].1 + 1 < w[1].0), "{parts:?}");
    }

    #[test]
    fn refusals() {
        assert_eq!(parse("bytes=100-", 100), Ranges::Unsatisfiable);
        assert_eq!(parse("bytes=-0", 100), Ranges::Unsatisfiable);
        assert_eq!(parse("bytes=0-", 0), Ranges::Unsatisfiable);
        for v in ["items=0-1", "bytes=5-1", "bytes=a-b", "bytes=", "bytes 0-1", "bytes=1"] {
            assert_eq!(parse(v, 100), Ranges::Ignore, "{v}");
        }
        let many = format!("bytes={}", vec!["0-0"; MAX_RANGES + 1].join(","));
        assert_eq!(parse(&many, 100), Ranges::Ignore);
    }
}
