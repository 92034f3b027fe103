//! The server's own log: records of the `log` crate, one line each.

/// Log records to stderr, one line each: `LEVEL target: message`.
pub struct StderrLog;

impl StderrLog {
    pub fn install(level: log::LevelFilter) {
        static LOGGER: StderrLog = StderrLog;
        if log::set_logger(&LOGGER).is_ok() {
            log::set_max_level(level);
        }
    }
}

/// The longest log line's message, in bytes.
const MAX_LOG_LINE: usize = 1024;

impl log::Log for StderrLog {
    fn enabled(&self, m: &log::Metadata<'_>) -> bool {
        m.level() <= log::max_level()
    }

    /// One line per record, cut at [`MAX_LOG_LINE`] bytes: what a client
    /// sends (a 60 KB SNI a dependency quotes in a warning) cannot write
    /// kilobytes per connection. rustls's warnings are about what clients
    /// did wrong (a bad SNI, a renegotiation attempt): debug, not warn,
    /// unless the level asks for them.
    fn log(&self, r: &log::Record<'_>) {
        if !self.enabled(r.metadata()) {
            return;
        }
        if r.target().starts_with("rustls")
            && r.level() > log::Level::Error
            && log::max_level() < log::LevelFilter::Debug
        {
            return;
        }
        let mut text = r.args().to_string();
        if text.len() > MAX_LOG_LINE {
            let mut cut = MAX_LOG_LINE;
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            let more = text.len() - cut;
            text.truncate(cut);
            text.push_str(&format!("... ({more} bytes more)"));
        }
        eprintln!("{:<5} {}: {}", r.level(), r.target(), text);
    }

    fn flush(&self) {}
}
