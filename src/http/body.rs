//! Request body decoding: `Content-Length` and `chunked` (RFC 9112 §7.1).

use super::is_tchar;

/// The longest chunk-size line extension we skip over, per chunk.
pub const CHUNK_EXTENSION_LIMIT: usize = 4096;
/// The most trailer bytes we skip over, per request.
pub const TRAILER_LIMIT: usize = 8192;

/// Why a body could not be decoded (the peer is at fault; the connection
/// is answered 400 if nothing was sent yet, then closed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BodyError {
    /// A chunk-size that is not hex, or does not fit in 64 bits.
    ChunkSize,
    /// A missing CRLF after chunk data or in a chunk-size line.
    Framing,
    /// A chunk extension longer than [`CHUNK_EXTENSION_LIMIT`].
    ExtensionTooLong,
    /// Trailers longer than [`TRAILER_LIMIT`].
    TrailersTooLong,
    /// A trailer line that the head parser would refuse as a field line:
    /// obs-fold (a line starting with SP or HTAB), no `:`, a name that is
    /// not a token, or a control character in the value.
    Trailer,
}

/// Incremental decoder of one request body.
///
/// ```text
/// chunked-body = *chunk last-chunk trailer-section CRLF
/// chunk        = chunk-size [ chunk-ext ] CRLF chunk-data CRLF
/// last-chunk   = 1*("0") [ chunk-ext ] CRLF
/// chunk-ext    = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] )
/// ```
///
/// Lines end as the head parser's do: CRLF or a bare LF, in the
/// chunk-size line and in the trailer section (and the empty line that
/// ends it); a CR must be followed by LF. Chunk data must be followed by
/// CRLF exactly. After the size, whitespace (BWS) is taken only before a
/// `;`. Trailer lines are checked as head field lines are (no obs-fold),
/// then dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyDecoder {
    /// `Content-Length`: this many bytes are still to come.
    Length(u64),
    /// `Transfer-Encoding: chunked`, in this state.
    Chunked(Chunked),
}

/// State of a chunked decoder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Chunked {
    /// Reading hex digits of a chunk size.
    Size {
        /// Value so far.
        size: u64,
        /// Digits so far.
        digits: u8,
    },
    /// Whitespace after the size: only more of it or `;` may follow.
    SizeWs {
        /// Size read.
        size: u64,
    },
    /// Skipping a chunk extension up to its LF.
    Extension {
        /// Size read before the extension.
        size: u64,
        /// Bytes skipped so far.
        len: usize,
    },
    /// Read CR of the size line; LF must follow.
    SizeLf {
        /// Size read.
        size: u64,
    },
    /// Inside chunk data.
    Data {
        /// Bytes left in this chunk.
        remaining: u64,
    },
    /// Chunk data ended; CR must follow.
    DataCr,
    /// CR after data read; LF must follow.
    DataLf,
    /// In the trailer section.
    Trailer {
        /// Bytes of the current trailer line.
        line: usize,
        /// Trailer bytes so far.
        total: usize,
        /// Whether a CR has just been seen.
        cr: bool,
        /// Whether the current line's `:` has been seen.
        colon: bool,
    },
    /// The body is complete.
    Done,
}

impl BodyDecoder {
    /// A decoder for a chunked body.
    pub fn chunked() -> BodyDecoder {
        BodyDecoder::Chunked(Chunked::Size { size: 0, digits: 0 })
    }

    /// Whether the whole body has been decoded.
    pub fn is_done(&self) -> bool {
        matches!(self, BodyDecoder::Length(0) | BodyDecoder::Chunked(Chunked::Done))
    }

    /// Decodes from the start of `input`. Returns how many bytes were
    /// consumed and the body data among them (a sub-slice of `input`), if
    /// any. Call again with the rest until it consumes nothing or
    /// [`is_done`](Self::is_done).
    pub fn decode<'a>(&mut self, input: &'a [u8]) -> Result<(usize, Option<&'a [u8]>), BodyError> {
        match self {
            BodyDecoder::Length(remaining) => {
                let n = input.len().min(usize::try_from(*remaining).unwrap_or(usize::MAX));
                *remaining -= n as u64;
                Ok((n, (n > 0).then(|| &input[..n])))
            }
            BodyDecoder::Chunked(state) => state.decode(input),
        }
    }
}

impl Chunked {
    /// The state after the line `size` was read in.
    fn after_size_line(size: u64) -> Chunked {
        if size == 0 {
            Chunked::Trailer { line: 0, total: 0, cr: false, colon: false }
        } else {
            Chunked::Data { remaining: size }
        }
    }

    fn decode<'a>(&mut self, input: &'a [u8]) -> Result<(usize, Option<&'a [u8]>), BodyError> {
        let mut i = 0;
        while i < input.len() {
            let b = input[i];
            match self {
                Chunked::Size { size, digits } => match (b as char).to_digit(16) {
                    Some(d) => {
                        if *digits >= 16 {
                            return Err(BodyError::ChunkSize);
                        }
                        *size = *size * 16 + u64::from(d);
                        *digits += 1;
                    }
                    None if *digits == 0 => return Err(BodyError::ChunkSize),
                    None if b == b'\r' => *self = Chunked::SizeLf { size: *size },
                    None if b == b'\n' => *self = Chunked::after_size_line(*size),
                    None if b == b';' => *self = Chunked::Extension { size: *size, len: 0 },
                    None if b == b' ' || b == b'\t' => *self = Chunked::SizeWs { size: *size },
                    None => return Err(BodyError::ChunkSize),
                },
                Chunked::SizeWs { size } => match b {
                    b' ' | b'\t' => {}
                    b';' => *self = Chunked::Extension { size: *size, len: 0 },
                    _ => return Err(BodyError::ChunkSize),
                },
                Chunked::Extension { size, len } => {
                    if b == b'\r' {
                        *self = Chunked::SizeLf { size: *size };
                    } else if b == b'\n' {
                        *self = Chunked::after_size_line(*size);
                    } else {
                        *len += 1;
                        if *len > CHUNK_EXTENSION_LIMIT {
                            return Err(BodyError::ExtensionTooLong);
                        }
                    }
                }
                Chunked::SizeLf { size } => {
                    if b != b'\n' {
                        return Err(BodyError::Framing);
                    }
                    *self = Chunked::after_size_line(*size);
                }
                Chunked::Data { remaining } => {
                    let n = (input.len() - i).min(usize::try_from(*remaining).unwrap_or(usize::MAX));
                    *remaining -= n as u64;
                    if *remaining == 0 {
                        *self = Chunked::DataCr;
                    }
                    return Ok((i + n, Some(&input[i..i + n])));
                }
                Chunked::DataCr => {
                    if b != b'\r' {
                        return Err(BodyError::Framing);
                    }
                    *self = Chunked::DataLf;
                }
                Chunked::DataLf => {
                    if b != b'\n' {
                        return Err(BodyError::Framing);
                    }
                    *self = Chunked::Size { size: 0, digits: 0 };
                }
                Chunked::Trailer { line, total, cr, colon } => {
                    *total += 1;
                    if *total > TRAILER_LIMIT {
                        return Err(BodyError::TrailersTooLong);
                    }
                    if *cr && b != b'\n' {
                        return Err(BodyError::Framing);
                    }
                    match b {
                        b'\r' => *cr = true,
                        // The line ends (CRLF or a bare LF): an empty one
                        // ends the section.
                        b'\n' if *line == 0 => {
                            *self = Chunked::Done;
                            return Ok((i + 1, None));
                        }
                        b'\n' if !*colon => return Err(BodyError::Trailer),
                        b'\n' => (*line, *cr, *colon) = (0, false, false),
                        // obs-fold, refused as in a head (RFC 9112 §5.2).
                        b' ' | b'\t' if *line == 0 => return Err(BodyError::Trailer),
                        b':' if !*colon && *line > 0 => {
                            *colon = true;
                            *line += 1;
                        }
                        _ if !*colon && !is_tchar(b) => return Err(BodyError::Trailer),
                        _ if *colon && ((b < 0x20 && b != b'\t') || b == 0x7f) => return Err(BodyError::Trailer),
                        _ => *line += 1,
                    }
                }
                Chunked::Done => return Ok((i, None)),
            }
            i += 1;
        }
        Ok((i, None))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `input` in pieces of `step` bytes; returns the body.
    fn run(mut d: BodyDecoder, input: &[u8], step: usize) -> Result<(Vec<u8>, usize), BodyError> {
        let mut body = Vec::new();
        let mut used = 0;
        let mut buf: Vec<u8> = Vec::new();
        for piece in input.chunks(step) {
            buf.extend_from_slice(piece);
            loop {
                let (n, data) = d.decode(&buf)?;
                if let Some(data) = data {
                    body.extend_from_slice(data);
                }
                buf.drain(..n);
                used += n;
                if n == 0 || d.is_done() {
                    break;
                }
            }
            if d.is_done() {
                break;
            }
        }
        assert!(d.is_done(), "not done");
        Ok((body, used))
    }

    #[test]
    fn chunked_any_split() {
        let wire = b"5;name=val\r\nhello\r\n6\r\n world\r\n0\r\nX-T: 1\r\n\r\nNEXT";
        for step in 1..wire.len() {
            let (body, used) = run(BodyDecoder::chunked(), wire, step).expect("decode");
            assert_eq!(body, b"hello world", "step {step}");
            assert_eq!(used, wire.len() - 4, "step {step}");
        }
    }

    /// Lines end as in a head (httparse): CRLF or a bare LF, in size lines
    /// and trailers, so the trailer section ends where a front end that
    /// parses heads alike sees it end, and what follows is the next request.
    #[test]
    fn bare_lf_ends_size_lines_and_trailers() {
        let wires: [&[u8]; 6] = [
            b"0\r\nX-T: 1\n\nNEXT",
            b"0\r\n\nNEXT",
            b"0\n\r\nNEXT",
            b"5\nhello\r\n0\nX-T: 1\nX-U:\t2\r\n\nNEXT",
            b"5;a=b\nhello\r\n0;c\n\nNEXT",
            // BWS before `;` is the RFC's grammar.
            b"5 ;a=b\r\nhello\r\n0\t \t;c\r\n\r\nNEXT",
        ];
        for wire in wires {
            for step in 1..wire.len() {
                let (body, used) = run(BodyDecoder::chunked(), wire, step).expect("decode");
                let want: &[u8] = if wire.starts_with(b"5") { b"hello" } else { b"" };
                assert_eq!(body, want, "{:?} step {step}", String::from_utf8_lossy(wire));
                assert_eq!(used, wire.len() - 4, "{:?} step {step}", String::from_utf8_lossy(wire));
            }
        }
    }

    #[test]
    fn length_body() {
        let (body, used) = run(BodyDecoder::Length(3), b"abcdef", 2).expect("decode");
        assert_eq!((body.as_slice(), used), (&b"abc"[..], 3));
    }

    #[test]
    fn chunked_errors() {
        let cases: [(&[u8], BodyError); 17] = [
            (b"zz\r\n", BodyError::ChunkSize),
            (b"11111111111111111\r\n", BodyError::ChunkSize),
            (b"3\r\nabcX", BodyError::Framing),
            // After data, CRLF exactly.
            (b"3\r\nabc\n0\r\n\r\n", BodyError::Framing),
            (b"3\rabc", BodyError::Framing),
            (b"0\r\nX: 1\rY", BodyError::Framing),
            // Whitespace after the size only before `;` (BWS, RFC 9112 §7.1.1).
            (b"5 \r\nhello\r\n", BodyError::ChunkSize),
            (b"5\t\r\nhello\r\n", BodyError::ChunkSize),
            (b"5 \nhello\r\n", BodyError::ChunkSize),
            (b"5 3\r\nhello\r\n", BodyError::ChunkSize),
            (b" 5\r\nhello\r\n", BodyError::ChunkSize),
            // Trailer lines as head field lines: no obs-fold, a token name, a colon.
            (b"0\r\nX-T: 1\r\n  more\r\n\r\n", BodyError::Trailer),
            (b"0\r\n\tX-T: 1\r\n\r\n", BodyError::Trailer),
            (b"0\r\nX-T: 1\n more\n\n", BodyError::Trailer),
            (b"0\r\nno colon\r\n\r\n", BodyError::Trailer),
            (b"0\r\nX-T : 1\r\n\r\n", BodyError::Trailer),
            (b"0\r\nX-T: a\x01b\r\n\r\n", BodyError::Trailer),
        ];
        for (wire, want) in cases {
            assert_eq!(run(BodyDecoder::chunked(), wire, 64).err(), Some(want));
        }
        let long_ext = format!("1;{}\r\n", "e".repeat(CHUNK_EXTENSION_LIMIT + 1));
        assert_eq!(run(BodyDecoder::chunked(), long_ext.as_bytes(), 64).err(), Some(BodyError::ExtensionTooLong));
        let long_trailer = format!("0\r\nX: {}\r\n\r\n", "t".repeat(TRAILER_LIMIT));
        assert_eq!(run(BodyDecoder::chunked(), long_trailer.as_bytes(), 64).err(), Some(BodyError::TrailersTooLong));
    }
}
