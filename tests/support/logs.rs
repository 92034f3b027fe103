//! Warnings the server logs in this test binary, captured so that tests
//! can check what it said.

use std::sync::Mutex;

static LINES: Mutex<Vec<String>> = Mutex::new(Vec::new());

struct Capture;

impl log::Log for Capture {
    fn enabled(&self, m: &log::Metadata<'_>) -> bool {
        m.level() <= log::Level::Warn
    }
    fn log(&self, r: &log::Record<'_>) {
        if self.enabled(r.metadata()) {
            LINES.lock().unwrap_or_else(|e| e.into_inner()).push(r.args().to_string());
        }
    }
    fn flush(&self) {}
}

/// Starts capturing warnings (and errors); later calls do nothing.
pub fn capture() {
    static CAPTURE: Capture = Capture;
    if log::set_logger(&CAPTURE).is_ok() {
        log::set_max_level(log::LevelFilter::Warn);
    }
}

/// How many captured lines contain every one of `needles`.
pub fn count(needles: &[&str]) -> usize {
    LINES.lock().unwrap_or_else(|e| e.into_inner()).iter().filter(|l| needles.iter().all(|n| l.contains(n))).count()
}
