//! Packs `webroot/` into `$OUT_DIR/webroot.zip`, which the `warren` binary
//! embeds and serves (through `ZipFops`, gzip passthrough included) when it
//! is given no `--root`.

#[path = "src/pack.rs"]
#[allow(dead_code)]
mod pack;

use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=webroot");
    println!("cargo:rerun-if-changed=src/pack.rs");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR")).join("webroot.zip");
    let file = std::fs::File::create(&out).unwrap_or_else(|e| panic!("{}: {e}", out.display()));
    if let Err(e) = pack::pack_dir(std::path::Path::new("webroot"), file) {
        panic!("packing webroot/: {e}");
    }
}
