//! Incremental UTF-8 validation across frame and read boundaries.
//!
//! The standard library's validator does the work; this keeps the (at
//! most three) bytes of a character cut by a boundary and puts them in
//! front of the next piece, so every piece handed on is whole characters
//! and an invalid byte is caught where it arrives ("fail fast").

/// The state between pieces: a partial character, if any.
#[derive(Debug, Default, Clone)]
pub(crate) struct Utf8Stream {
    carry: [u8; 4],
    have: usize,
}

/// The input held an invalid sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Invalid;

impl Utf8Stream {
    /// Checks `data`, the next bytes of a text message. Returns how many
    /// bytes of `data` end on a character boundary (the rest are kept),
    /// and the carried prefix that belongs in front of them, if any.
    pub(crate) fn feed<'a>(&mut self, data: &'a [u8]) -> Result<Piece<'a>, Invalid> {
        let mut data = data;
        let mut prefix = [0; 4];
        let mut prefix_len = 0;
        if self.have > 0 {
            // Complete the carried character first, a byte at a time.
            while self.have < 4 && !data.is_empty() {
                self.carry[self.have] = data[0];
                self.have += 1;
                data = &data[1..];
                match std::str::from_utf8(&self.carry[..self.have]) {
                    Ok(_) => break,
                    Err(e) if e.error_len().is_some() => return Err(Invalid),
                    Err(_) => {}
                }
            }
            match std::str::from_utf8(&self.carry[..self.have]) {
                Ok(_) => {
                    prefix = self.carry;
                    prefix_len = self.have;
                    self.have = 0;
                }
                Err(e) if e.error_len().is_some() => return Err(Invalid),
                // Still incomplete: `data` ran out.
                Err(_) => return Ok(Piece { prefix, prefix_len: 0, whole: &[] }),
            }
        }
        match std::str::from_utf8(data) {
            Ok(_) => Ok(Piece { prefix, prefix_len, whole: data }),
            Err(e) if e.error_len().is_some() => Err(Invalid),
            Err(e) => {
                let cut = e.valid_up_to();
                let tail = &data[cut..];
                self.carry[..tail.len()].copy_from_slice(tail);
                self.have = tail.len();
                Ok(Piece { prefix, prefix_len, whole: &data[..cut] })
            }
        }
    }

    /// Whether the message may end here (no partial character held).
    pub(crate) fn at_boundary(&self) -> bool {
        self.have == 0
    }

    pub(crate) fn reset(&mut self) {
        self.have = 0;
    }
}

/// What [`Utf8Stream::feed`] found whole: the character completed from
/// the carry (`prefix[..prefix_len]`), then `whole`.
#[derive(Debug)]
pub(crate) struct Piece<'a> {
    pub(crate) prefix: [u8; 4],
    pub(crate) prefix_len: usize,
    pub(crate) whole: &'a [u8],
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `bytes` split at every pair of cut points, checking that the
    /// pieces rebuild the input and that the verdict matches std's.
    #[test]
    fn split_anywhere_gives_the_same_verdict() {
        let samples: &[&[u8]] = &[
            "κόσμε".as_bytes(),
            "a€𝄞z".as_bytes(),
            b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80edited",
            b"\xf4\x90\x80\x80",
            b"abc\xc0\xaf",
            b"\xe2\x82",
        ];
        for &s in samples {
            let valid = std::str::from_utf8(s).is_ok();
            for i in 0..=s.len() {
                for j in i..=s.len() {
                    let mut u = Utf8Stream::default();
                    let mut rebuilt = Vec::new();
                    let mut ok = true;
                    for part in [&s[..i], &s[i..j], &s[j..]] {
                        match u.feed(part) {
                            Ok(p) => {
                                rebuilt.extend_from_slice(&p.prefix[..p.prefix_len]);
                                rebuilt.extend_from_slice(p.whole);
                            }
                            Err(Invalid) => {
                                ok = false;
                                break;
                            }
                        }
                    }
                    let verdict = ok && u.at_boundary();
                    assert_eq!(verdict, valid, "{s:x?} cut at {i},{j}");
                    if valid {
                        assert_eq!(rebuilt, s);
                    }
                }
            }
        }
    }
}
