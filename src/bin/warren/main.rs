//! `warren`: serve a site (by default the built-in one) over HTTP(S) and
//! WebSocket; `warren pack` a directory for serving.
//!
//! Run `warren --help` for the flags; `warren man` prints the man page.

mod check;
mod cli;
mod logging;
mod pack;
mod process;
mod serve;
mod site;

use clap::Parser;
use cli::{Cli, Command};
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(e),
    };
    let result = match cli.command {
        Some(Command::Pack(args)) => pack::pack(&args),
        Some(Command::Check(args)) => {
            // The report is the output. The log goes to stderr (a check
            // creates no file and talks to no syslog), errors only unless
            // -d says otherwise: what a start would warn about is in the
            // report already, as an error.
            let mut quiet = (*args).clone();
            quiet.log_file = None;
            quiet.syslog = None;
            quiet.log_level = args.log_level.or(Some(log::LevelFilter::Error));
            match logging::install(&quiet) {
                Ok(()) => return check::check(&args),
                Err(e) => Err(e),
            }
        }
        Some(Command::Completions { shell }) => {
            clap_complete::generate(shell, &mut cli::command(), "warren", &mut std::io::stdout());
            Ok(())
        }
        Some(Command::Man) => {
            clap_mangen::Man::new(cli::command()).render(&mut std::io::stdout()).map_err(|e| format!("man: {e}"))
        }
        None => {
            let mut args = cli.serve;
            // Before any thread starts: it may fork (--daemon).
            match process::Service::prepare(&mut args) {
                Err(e) => Err(e),
                Ok(process::Started::Parent(outcome)) => outcome,
                Ok(process::Started::Serve(mut service)) => {
                    // Before any thread starts, so that every thread has them
                    // blocked and only the signal thread takes them.
                    let signals = serve::Signals::block();
                    let result = logging::install(&args).and_then(|()| serve::run(args, signals, &mut service));
                    if let Err(e) = &result {
                        service.failed(e);
                    }
                    result
                }
            }
        }
    };
    // What the server logged is written before the process ends.
    logging::flush();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.contains("(os error 24)") => {
            // EMFILE before the limit could even be judged.
            eprintln!("warren: {e}: the file descriptor limit is too low to start; raise it (ulimit -n)");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("warren: {e}");
            ExitCode::from(2)
        }
    }
}

/// `--help` and `--version` print and exit 0; a mistake is one line on
/// stderr, naming the flag, and exit 2.
fn usage_error(e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
        let _ = e.print();
        return ExitCode::SUCCESS;
    }
    // clap's message, up to its usage: one line.
    let text = e.render().to_string();
    let what: Vec<&str> =
        text.lines().map(str::trim).take_while(|l| !l.is_empty() && !l.starts_with("Usage:")).collect();
    let what = what.join(" ");
    let what = what.strip_prefix("error: ").unwrap_or(&what);
    eprintln!("warren: {what} (try --help)");
    ExitCode::from(2)
}
