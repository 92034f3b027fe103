//! `warren check`: the configuration the flags describe, built as a
//! start builds it ([`site::check_info`]) and validated by
//! [`warren::ContextInfo::check`], without binding.

use crate::cli::ServeArgs;
use crate::site;
use std::process::ExitCode;

/// Prints what would be served (exit 0), or every problem (exit 2).
pub fn check(args: &ServeArgs) -> ExitCode {
    let info = match site::check_info(args) {
        Ok(info) => info,
        Err(e) => {
            eprintln!("warren: check: {e}");
            return ExitCode::from(2);
        }
    };
    // What a start refuses before it builds anything: the identity to
    // drop to, the pid file's and log file's directories.
    let process: Vec<String> = crate::process::check(args);
    match (info.check(), process.is_empty()) {
        (Ok(report), true) => {
            print!("{report}");
            ExitCode::SUCCESS
        }
        (result, _) => {
            let mut errors: Vec<String> = result.err().unwrap_or_default().iter().map(|e| e.to_string()).collect();
            errors.extend(process);
            for e in &errors {
                eprintln!("warren: check: {e}");
            }
            eprintln!(
                "{} problem{} found; nothing would be served",
                errors.len(),
                if errors.len() == 1 { "" } else { "s" }
            );
            ExitCode::from(2)
        }
    }
}
