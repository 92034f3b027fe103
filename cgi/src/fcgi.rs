//! FastCGI records (the FastCGI 1.0 specification), as a pure codec: no
//! I/O, no buffering policy. Encoding appends whole records to a `Vec`;
//! decoding looks at the bytes a caller has gathered and says whether a
//! whole record is there ([`decode`]), so a connection needs at most one
//! record's worth of buffer ([`MAX_RECORD`]).

use std::fmt;

/// The protocol version every record carries.
pub const VERSION: u8 = 1;
/// The fixed header of every record.
pub const HEADER_LEN: usize = 8;
/// The most content one record carries.
pub const MAX_CONTENT: usize = 0xffff;
/// The most content a record this codec writes carries: a multiple of 8,
/// so that a full record needs no padding (PHP refuses a record whose
/// content and padding come to more than 65535 bytes).
pub const MAX_WRITE: usize = 0xfff8;
/// The longest record: header, content and padding.
pub const MAX_RECORD: usize = HEADER_LEN + MAX_CONTENT + 255;
/// `FCGI_KEEP_CONN`: the application keeps the connection open after the
/// request.
pub const KEEP_CONN: u8 = 1;

/// Record types (`FCGI_BEGIN_REQUEST` ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RecordType {
    /// `FCGI_BEGIN_REQUEST`.
    BeginRequest,
    /// `FCGI_ABORT_REQUEST`.
    AbortRequest,
    /// `FCGI_END_REQUEST`.
    EndRequest,
    /// `FCGI_PARAMS`.
    Params,
    /// `FCGI_STDIN`.
    Stdin,
    /// `FCGI_STDOUT`.
    Stdout,
    /// `FCGI_STDERR`.
    Stderr,
    /// `FCGI_DATA`.
    Data,
    /// `FCGI_GET_VALUES`.
    GetValues,
    /// `FCGI_GET_VALUES_RESULT`.
    GetValuesResult,
    /// `FCGI_UNKNOWN_TYPE`.
    UnknownType,
    /// A type this codec does not know (the specification lets peers
    /// answer it with `FCGI_UNKNOWN_TYPE`).
    Other(u8),
}

impl RecordType {
    /// The type's number on the wire.
    pub fn code(self) -> u8 {
        match self {
            RecordType::BeginRequest => 1,
            RecordType::AbortRequest => 2,
            RecordType::EndRequest => 3,
            RecordType::Params => 4,
            RecordType::Stdin => 5,
            RecordType::Stdout => 6,
            RecordType::Stderr => 7,
            RecordType::Data => 8,
            RecordType::GetValues => 9,
            RecordType::GetValuesResult => 10,
            RecordType::UnknownType => 11,
            RecordType::Other(n) => n,
        }
    }

    /// The type a number on the wire names.
    pub fn from_code(n: u8) -> RecordType {
        match n {
            1 => RecordType::BeginRequest,
            2 => RecordType::AbortRequest,
            3 => RecordType::EndRequest,
            4 => RecordType::Params,
            5 => RecordType::Stdin,
            6 => RecordType::Stdout,
            7 => RecordType::Stderr,
            8 => RecordType::Data,
            9 => RecordType::GetValues,
            10 => RecordType::GetValuesResult,
            11 => RecordType::UnknownType,
            n => RecordType::Other(n),
        }
    }
}

/// The role a request asks of the application (`FCGI_RESPONDER` ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// `FCGI_RESPONDER`: a CGI/1.1-style request and response.
    Responder = 1,
    /// `FCGI_AUTHORIZER`.
    Authorizer = 2,
    /// `FCGI_FILTER`.
    Filter = 3,
}

/// One record, its content borrowed from the decoded bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record<'a> {
    /// Its type.
    pub kind: RecordType,
    /// The request it belongs to (0: the connection as a whole).
    pub request_id: u16,
    /// Its content, padding left out.
    pub content: &'a [u8],
}

/// Why bytes are not FastCGI records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FcgiError {
    /// A record of another protocol version.
    Version(u8),
    /// An `FCGI_END_REQUEST` body of the wrong length.
    EndRequestLength(usize),
    /// A name-value pair whose lengths run past its record.
    Pair,
    /// A name-value pair of this many bytes, encoded: more than a record
    /// holds.
    PairTooLong(usize),
}

impl fmt::Display for FcgiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FcgiError::Version(v) => write!(f, "a FastCGI record of version {v}, not 1"),
            FcgiError::EndRequestLength(n) => write!(f, "an FCGI_END_REQUEST body of {n} bytes, not 8"),
            FcgiError::Pair => f.write_str("a name-value pair longer than its record"),
            FcgiError::PairTooLong(n) => write!(f, "a name-value pair of {n} bytes, more than a record holds"),
        }
    }
}

impl std::error::Error for FcgiError {}

/// The header of a record of `kind` for `request_id` with `len` bytes of
/// content and `padding` bytes after them: for a caller that writes the
/// content from where it lies (a vectored write) instead of copying it.
pub fn header(kind: RecordType, request_id: u16, len: u16, padding: u8) -> [u8; HEADER_LEN] {
    let [id1, id0] = request_id.to_be_bytes();
    let [len1, len0] = len.to_be_bytes();
    [VERSION, kind.code(), id1, id0, len1, len0, padding, 0]
}

/// Appends one record of `kind` for `request_id` holding `content` (at
/// most [`MAX_WRITE`] bytes), padded to a multiple of 8 bytes as the
/// specification recommends.
fn record(out: &mut Vec<u8>, kind: RecordType, request_id: u16, content: &[u8]) {
    debug_assert!(content.len() <= MAX_WRITE);
    let len = content.len().min(MAX_WRITE);
    let padding = (8 - len % 8) % 8;
    out.extend_from_slice(&header(kind, request_id, len as u16, padding as u8));
    out.extend_from_slice(&content[..len]);
    out.extend(std::iter::repeat_n(0, padding));
}

/// Appends `FCGI_BEGIN_REQUEST` for `request_id` in `role`; `keep_conn`
/// asks the application to keep the connection after the request.
pub fn begin_request(out: &mut Vec<u8>, request_id: u16, role: Role, keep_conn: bool) {
    let [r1, r0] = (role as u16).to_be_bytes();
    let flags = if keep_conn { KEEP_CONN } else { 0 };
    record(out, RecordType::BeginRequest, request_id, &[r1, r0, flags, 0, 0, 0, 0, 0]);
}

/// Appends `FCGI_ABORT_REQUEST` for `request_id` (the client went away).
pub fn abort_request(out: &mut Vec<u8>, request_id: u16) {
    record(out, RecordType::AbortRequest, request_id, &[]);
}

/// Appends `data` to a stream (`Params`, `Stdin`, `Data`, `Stdout`,
/// `Stderr`) of `request_id`, in as many records as it takes. Empty
/// `data` appends nothing: an empty record ends a stream
/// ([`end_stream`]).
pub fn stream(out: &mut Vec<u8>, kind: RecordType, request_id: u16, data: &[u8]) {
    for piece in data.chunks(MAX_WRITE) {
        record(out, kind, request_id, piece);
    }
}

/// Appends the empty record that ends stream `kind` of `request_id`.
pub fn end_stream(out: &mut Vec<u8>, kind: RecordType, request_id: u16) {
    record(out, kind, request_id, &[]);
}

/// Appends one name-value pair in the FastCGI encoding (lengths of one
/// byte below 128, else four with the high bit set) to `out`, the
/// content of a `Params` or `GetValues` stream. A name or value longer
/// than 2^31 - 1 bytes cannot be said and is cut there.
pub fn pair(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    const MAX: usize = 0x7fff_ffff;
    let (name, value) = (&name[..name.len().min(MAX)], &value[..value.len().min(MAX)]);
    for len in [name.len(), value.len()] {
        if len < 128 {
            out.push(len as u8);
        } else {
            out.extend_from_slice(&(len as u32 | 0x8000_0000).to_be_bytes());
        }
    }
    out.extend_from_slice(name);
    out.extend_from_slice(value);
}

/// Appends the whole `Params` stream of `request_id` for `pairs`: as
/// many pairs to a record as fit, never one split across two (the
/// specification allows it, but PHP reads each record's pairs on their
/// own), and the empty record that ends it.
///
/// # Errors
///
/// [`FcgiError::PairTooLong`] for a pair that does not fit one record;
/// `out` is then as it was.
pub fn params<'p>(
    out: &mut Vec<u8>,
    request_id: u16,
    pairs: impl IntoIterator<Item = (&'p [u8], &'p [u8])>,
) -> Result<(), FcgiError> {
    let start = out.len();
    // The pairs go straight into `out` behind a header written when the
    // record is full (or the pairs end): no copy, no buffer per pair.
    let mut open = start;
    out.extend_from_slice(&[0; HEADER_LEN]);
    for (name, value) in pairs {
        let size = pair_len(name.len()) + pair_len(value.len()) + name.len() + value.len();
        if size > MAX_WRITE {
            out.truncate(start);
            return Err(FcgiError::PairTooLong(size));
        }
        if out.len() - open - HEADER_LEN + size > MAX_WRITE {
            close_record(out, open, request_id);
            open = out.len();
            out.extend_from_slice(&[0; HEADER_LEN]);
        }
        pair(out, name, value);
    }
    if out.len() - open > HEADER_LEN {
        close_record(out, open, request_id);
    } else {
        out.truncate(open);
    }
    end_stream(out, RecordType::Params, request_id);
    Ok(())
}

/// The bytes a pair's length takes: one below 128, else four.
fn pair_len(len: usize) -> usize {
    if len < 128 {
        1
    } else {
        4
    }
}

/// Writes the header of the `Params` record whose content runs from
/// `at + HEADER_LEN` to the end of `out`, and pads it to 8 bytes.
fn close_record(out: &mut Vec<u8>, at: usize, request_id: u16) {
    let len = out.len() - at - HEADER_LEN;
    let padding = (8 - len % 8) % 8;
    out[at..at + HEADER_LEN].copy_from_slice(&header(RecordType::Params, request_id, len as u16, padding as u8));
    out.extend(std::iter::repeat_n(0, padding));
}

/// The first record in `input`, if all of it is there: the record and
/// how many bytes it took (padding included). `Ok(None)`: more bytes are
/// needed (never more than [`MAX_RECORD`] in all).
pub fn decode(input: &[u8]) -> Result<Option<(Record<'_>, usize)>, FcgiError> {
    let Some(head) = input.get(..HEADER_LEN) else {
        if let Some(&v) = input.first().filter(|&&v| v != VERSION) {
            return Err(FcgiError::Version(v));
        }
        return Ok(None);
    };
    if head[0] != VERSION {
        return Err(FcgiError::Version(head[0]));
    }
    let len = usize::from(u16::from_be_bytes([head[4], head[5]]));
    let total = HEADER_LEN + len + usize::from(head[6]);
    if input.len() < total {
        return Ok(None);
    }
    let record = Record {
        kind: RecordType::from_code(head[1]),
        request_id: u16::from_be_bytes([head[2], head[3]]),
        content: &input[HEADER_LEN..HEADER_LEN + len],
    };
    Ok(Some((record, total)))
}

/// The body of an `FCGI_END_REQUEST`: the application's exit status and
/// the protocol status (0 `FCGI_REQUEST_COMPLETE`, 1 `FCGI_CANT_MPX_CONN`,
/// 2 `FCGI_OVERLOADED`, 3 `FCGI_UNKNOWN_ROLE`).
pub fn end_request(content: &[u8]) -> Result<(u32, u8), FcgiError> {
    match content {
        [a, b, c, d, status, _, _, _] => Ok((u32::from_be_bytes([*a, *b, *c, *d]), *status)),
        _ => Err(FcgiError::EndRequestLength(content.len())),
    }
}

/// The name-value pairs of a (reassembled) `Params`, `GetValues` or
/// `GetValuesResult` stream.
pub fn pairs(mut content: &[u8]) -> impl Iterator<Item = Result<(&[u8], &[u8]), FcgiError>> {
    fn length(input: &mut &[u8]) -> Option<usize> {
        let first = *input.first()?;
        if first < 128 {
            *input = &input[1..];
            return Some(usize::from(first));
        }
        let bytes: [u8; 4] = input.get(..4)?.try_into().ok()?;
        *input = &input[4..];
        usize::try_from(u32::from_be_bytes(bytes) & 0x7fff_ffff).ok()
    }
    std::iter::from_fn(move || {
        if content.is_empty() {
            return None;
        }
        let pair = (|| {
            let name_len = length(&mut content)?;
            let value_len = length(&mut content)?;
            let name = content.get(..name_len)?;
            let value = content.get(name_len..name_len.checked_add(value_len)?)?;
            content = &content[name_len + value_len..];
            Some((name, value))
        })();
        match pair {
            Some(p) => Some(Ok(p)),
            None => {
                content = &[];
                Some(Err(FcgiError::Pair))
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every record of `bytes`, decoded one after another.
    fn all(mut bytes: &[u8]) -> Vec<(RecordType, u16, Vec<u8>)> {
        let mut out = Vec::new();
        while !bytes.is_empty() {
            let (r, used) = decode(bytes).expect("valid").expect("whole");
            assert_eq!(used % 8, 0, "records are padded to 8 bytes");
            out.push((r.kind, r.request_id, r.content.to_vec()));
            bytes = &bytes[used..];
        }
        out
    }

    #[test]
    fn a_request_encodes_and_decodes_back() {
        let mut out = Vec::new();
        begin_request(&mut out, 7, Role::Responder, true);
        params(&mut out, 7, [(&b"SCRIPT_FILENAME"[..], &b"/srv/x.php"[..]), (b"QUERY_STRING", b"")]).expect("params");
        stream(&mut out, RecordType::Stdin, 7, b"body");
        end_stream(&mut out, RecordType::Stdin, 7);
        abort_request(&mut out, 7);
        let records = all(&out);
        let kinds: Vec<RecordType> = records.iter().map(|r| r.0).collect();
        use RecordType::*;
        assert_eq!(kinds, [BeginRequest, Params, Params, Stdin, Stdin, AbortRequest]);
        assert!(records.iter().all(|r| r.1 == 7));
        assert_eq!(records[0].2, [0, 1, KEEP_CONN, 0, 0, 0, 0, 0]);
        let got: Vec<(Vec<u8>, Vec<u8>)> =
            pairs(&records[1].2).map(|p| p.expect("pair")).map(|(n, v)| (n.to_vec(), v.to_vec())).collect();
        assert_eq!(got, [(b"SCRIPT_FILENAME".to_vec(), b"/srv/x.php".to_vec()), (b"QUERY_STRING".to_vec(), vec![])]);
        assert!(records[2].2.is_empty() && records[4].2.is_empty(), "empty records end the streams");
        assert_eq!(records[3].2, b"body");
    }

    #[test]
    fn long_values_and_long_streams_are_split_and_rejoined() {
        // Pairs fill records whole: two of 40,000 bytes take two.
        let long = vec![b'v'; 40_000];
        let mut out = Vec::new();
        params(&mut out, 1, [(&b"N"[..], &long[..]), (&[b'n'; 200][..], &long[..]), (b"S", b"x")]).expect("params");
        let records = all(&out);
        assert_eq!(records.len(), 3, "two records of pairs, then the end");
        assert!(records.iter().all(|r| r.2.len() <= MAX_WRITE));
        for r in &records[..2] {
            assert!(pairs(&r.2).all(|p| p.is_ok()), "each record holds whole pairs");
        }
        let joined: Vec<u8> = records.iter().flat_map(|r| r.2.clone()).collect();
        let got: Vec<_> = pairs(&joined).map(|p| p.expect("pair")).collect();
        assert_eq!(got.len(), 3);
        assert_eq!((got[0].0, got[0].1.len()), (&b"N"[..], 40_000));
        assert_eq!((got[1].0.len(), got[1].1.len()), (200, 40_000));
        assert_eq!(got[2], (&b"S"[..], &b"x"[..]));
        // Pairs that fill a record exactly share it; one byte more opens
        // a second (each pair here takes 1 + 4 + 1 + len bytes).
        for (extra, want) in [(0, 2), (1, 3)] {
            let a = vec![b'a'; MAX_WRITE / 2 - 6];
            let b = vec![b'b'; MAX_WRITE / 2 - 6 + extra];
            let mut out = Vec::new();
            params(&mut out, 1, [(&b"A"[..], &a[..]), (&b"B"[..], &b[..])]).expect("params");
            assert_eq!(all(&out).len(), want, "{extra} byte(s) over");
        }
        // One pair longer than a record: an error, and nothing appended.
        let mut out = vec![1, 2, 3];
        let e = params(&mut out, 1, [(&b"A"[..], &b"a"[..]), (&b"N"[..], &vec![b'v'; 70_000][..])]);
        assert_eq!(e, Err(FcgiError::PairTooLong(70_006)));
        assert_eq!(out, [1, 2, 3]);
        // A long stream fills records to MAX_WRITE: no padding needed.
        let mut out = Vec::new();
        stream(&mut out, RecordType::Stdin, 1, &vec![0; 70_000]);
        let records = all(&out);
        assert_eq!(records.iter().map(|r| r.2.len()).collect::<Vec<_>>(), [MAX_WRITE, 70_000 - MAX_WRITE]);
        assert_eq!(out[6], 0, "a full record has no padding");
        // A four-byte length has its high bit set.
        let mut one = Vec::new();
        pair(&mut one, &[b'a'; 130], b"");
        assert_eq!(&one[..5], &[0x80, 0, 0, 130, 0]);
    }

    #[test]
    fn partial_input_asks_for_more_and_bad_input_is_an_error() {
        let mut out = Vec::new();
        stream(&mut out, RecordType::Stdout, 3, b"Status: 200 OK\r\n\r\nhello");
        for cut in 0..out.len() {
            assert_eq!(decode(&out[..cut]), Ok(None), "{cut} bytes");
        }
        let (r, used) = decode(&out).expect("valid").expect("whole");
        assert_eq!(
            (r.kind, r.request_id, r.content, used),
            (RecordType::Stdout, 3, &b"Status: 200 OK\r\n\r\nhello"[..], 32)
        );
        assert_eq!(decode(&[2, 6, 0, 1, 0, 0, 0, 0]), Err(FcgiError::Version(2)));
        assert_eq!(decode(&[0]), Err(FcgiError::Version(0)));
        assert_eq!(decode(&[1, 42, 0, 1, 0, 0, 0, 0]).map(|r| r.map(|(r, _)| r.kind)), Ok(Some(RecordType::Other(42))));
        assert_eq!(end_request(&[0, 0, 1, 2, 0, 0, 0, 0]), Ok((258, 0)));
        assert_eq!(end_request(&[0; 7]), Err(FcgiError::EndRequestLength(7)));
        let broken: Vec<_> = pairs(&[5, 1, b'a']).collect();
        assert_eq!(broken, [Err(FcgiError::Pair)]);
        let huge: Vec<_> = pairs(&[0xff, 0xff, 0xff, 0xff, 0]).collect();
        assert_eq!(huge, [Err(FcgiError::Pair)]);
    }
}
