//! `warren pack [--dotfiles] DIR OUT.zip`: a directory into a zip archive
//! made for serving.

use crate::cli::PackArgs;
use std::io::ErrorKind;
use std::path::PathBuf;

/// `warren pack DIR OUT.zip`: prints each file and the totals.
pub fn pack(args: &PackArgs) -> Result<(), String> {
    let dir = args.dir.as_path();
    if !dir.is_dir() {
        return Err(format!("pack: {} is not a directory", dir.display()));
    }
    // Write beside the target, then rename: a half-written archive is
    // never served.
    let out = args.out.as_path();
    let mut tmp = out.as_os_str().to_owned();
    tmp.push(".partial");
    let tmp = PathBuf::from(tmp);
    // Made anew, never opened through what is there: a link planted at
    // OUT.partial (in a directory others can write) must not turn the
    // pack into a write to its target. Removing a link removes the link.
    match std::fs::remove_file(&tmp) {
        Err(e) if e.kind() != ErrorKind::NotFound => return Err(format!("pack: {}: {e}", tmp.display())),
        _ => {}
    }
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp)
        .map_err(|e| format!("pack: {}: {e}", tmp.display()))?;
    // The archive may be inside DIR: it and the one it replaces are not
    // part of the site.
    let mut writer = std::io::BufWriter::new(file);
    let opts = warren::pack::Options { dotfiles: args.dotfiles, except: &[&tmp, out] };
    let packed = warren::pack::pack_dir_with(dir, &mut writer, &opts);
    let flushed = std::io::Write::flush(&mut writer)
        .map_err(|e| warren::Error::from(std::io::Error::new(e.kind(), format!("{}: {e}", tmp.display()))));
    drop(writer);
    let report = match packed.and_then(|r| flushed.map(|()| r)) {
        Ok(r) => r,
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(format!("pack refused, no archive written: {e}"));
        }
    };
    std::fs::rename(&tmp, out).map_err(|e| format!("pack: {}: {e}", out.display()))?;
    if let Some(line) = left_out_line(&report.left_out) {
        eprintln!("{line}");
    }
    let report = report.packed;
    let (mut size, mut packed) = (0u64, 0u64);
    for p in &report {
        let how = if p.deflated { "deflated" } else { "stored" };
        println!("{:>10} -> {:>10}  {:>4}  {how:<8}  {}", p.size, p.packed, percent(p.packed, p.size), p.name);
        size += p.size;
        packed += p.packed;
    }
    println!(
        "packed {} files: {size} -> {packed} bytes ({}) into {}",
        report.len(),
        percent(packed, size),
        out.display()
    );
    Ok(())
}

/// At most this many left-out names are listed; the rest are counted.
const LEFT_OUT_NAMES: usize = 20;

/// The one stderr line saying which dotfiles were left out, if any:
/// `pack: left out .env, .git/ (12 files): dotfiles are not packed;
/// --dotfiles packs them`.
fn left_out_line(left: &[warren::pack::LeftOut]) -> Option<String> {
    if left.is_empty() {
        return None;
    }
    let mut names: Vec<String> = left
        .iter()
        .take(LEFT_OUT_NAMES)
        .map(|l| match (l.dir, l.files) {
            (false, _) => l.name.clone(),
            (true, 1) => format!("{}/ (1 file)", l.name),
            (true, n) => format!("{}/ ({n} files)", l.name),
        })
        .collect();
    if left.len() > LEFT_OUT_NAMES {
        names.push(format!("and {} more", left.len() - LEFT_OUT_NAMES));
    }
    Some(format!("pack: left out {}: dotfiles are not packed; --dotfiles packs them", names.join(", ")))
}

fn percent(part: u64, whole: u64) -> String {
    if whole == 0 {
        return "-".into();
    }
    format!("{}%", part * 100 / whole)
}
