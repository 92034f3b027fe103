//! Packs `webroot/` into `$OUT_DIR/webroot.zip`, which the `warren` binary
//! embeds and serves (through `ZipFops`, gzip passthrough included) when it
//! is given no `--root`. Only with the `appliance` feature: the library
//! alone embeds no site.

/// What `src/pack.rs` calls `crate::Error` and `crate::Result`: in the
/// library, warren's own.
#[cfg(feature = "appliance")]
type Error = std::io::Error;
#[cfg(feature = "appliance")]
type Result<T> = std::io::Result<T>;

#[cfg(feature = "appliance")]
#[path = "src/pack.rs"]
// Its `crate::Error::from` is the identity here.
#[allow(dead_code, clippy::useless_conversion)]
mod pack;

#[cfg(feature = "appliance")]
fn main() {
    use std::path::PathBuf;
    println!("cargo:rerun-if-changed=webroot");
    println!("cargo:rerun-if-changed=src/pack.rs");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR")).join("webroot.zip");
    let file = std::fs::File::create(&out).unwrap_or_else(|e| panic!("{}: {e}", out.display()));
    if let Err(e) = pack::pack_dir(std::path::Path::new("webroot"), file) {
        panic!("packing webroot/: {e}");
    }
}

#[cfg(not(feature = "appliance"))]
fn main() {
    println!("cargo:rerun-if-changed=build.rs");
}
