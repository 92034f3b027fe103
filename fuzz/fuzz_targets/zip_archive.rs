//! Opens the input as a zip archive and reads every entry both ways
//! (inflated, and as gzip), checking that nothing panics, hangs or reads
//! past what the entry declares.
#![no_main]

use libfuzzer_sys::fuzz_target;
use warren_vfs::{Fops, OpenFlags, VPath, ZipFops};

fuzz_target!(|data: &[u8]| {
    let Ok(zip) = ZipFops::from_bytes("fuzz.zip", data.to_vec()) else { return };
    let Ok(archive) = zip::ZipArchive::new(std::io::Cursor::new(data)) else { return };
    let names: Vec<String> = archive.file_names().filter_map(Result::ok).map(|n| n.into_owned()).collect();
    for name in names.iter().take(64) {
        let Ok(path) = VPath::new(name) else { continue };
        for flags in [OpenFlags::READ, OpenFlags::ACCEPT_GZIP] {
            let Ok(mut h) = zip.open(&path, flags) else { continue };
            let len = h.info().len;
            let mut buf = [0u8; 4096];
            let mut total = 0u64;
            // Bounded: at most 1 MiB per entry, whatever the declared size.
            while total < (1 << 20) {
                match h.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => total += n as u64,
                }
            }
            assert!(total <= len, "read {total} of an entry of {len}");
        }
    }
});
