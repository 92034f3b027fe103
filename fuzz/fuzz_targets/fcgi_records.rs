//! FastCGI records from an application server: decoding never panics,
//! never claims more bytes than it was given, and what it decodes
//! encodes back to the same content.
#![no_main]

use libfuzzer_sys::fuzz_target;
use warren_cgi::fcgi::{decode, end_request, pairs, stream, RecordType, MAX_RECORD};

fuzz_target!(|data: &[u8]| {
    let mut rest = data;
    while let Ok(Some((record, used))) = decode(rest) {
        assert!(used <= rest.len() && used <= MAX_RECORD);
        let _ = end_request(record.content);
        for pair in pairs(record.content) {
            if let Ok((name, value)) = pair {
                assert!(name.len() + value.len() <= record.content.len());
            }
        }
        if let RecordType::Stdout = record.kind {
            let mut again = Vec::new();
            stream(&mut again, RecordType::Stdout, record.request_id, record.content);
            // Re-encoded in records of at most MAX_WRITE bytes each.
            let mut back = Vec::new();
            let mut left = &again[..];
            while let Ok(Some((r, used))) = decode(left) {
                back.extend_from_slice(r.content);
                left = &left[used..];
            }
            assert!(left.is_empty());
            assert_eq!(back, record.content);
        }
        rest = &rest[used..];
    }
});
