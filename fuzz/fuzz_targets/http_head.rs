//! Request heads: parse never panics, and what it accepts is consistent.
#![no_main]

use libfuzzer_sys::fuzz_target;
use warren::http::request::{parse, Limits};

fuzz_target!(|data: &[u8]| {
    let limits = Limits { max_head: 8192, max_uri: 4096 };
    if let Ok(Some((req, n))) = parse(data, limits) {
        assert!(n <= data.len());
        assert!(req.path().starts_with('/') || req.path() == "*");
        assert!(!req.path().split('/').any(|s| s == ".."));
    }
});
