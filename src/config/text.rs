//! A configuration file's text: `#` comments blanked (positions stay
//! true), parsed with serde_json, and, for the errors, the line and column
//! of a key given by its path, and the known key nearest to an unknown one.

use super::{ConfigError, FileConf};
use std::path::Path;

/// Turns `#` comments (CFG-2) into spaces, so that positions stay true.
pub(super) fn blank_comments(text: &str) -> String {
    let mut clean = String::with_capacity(text.len());
    let (mut in_string, mut escaped, mut in_comment) = (false, false, false);
    for c in text.chars() {
        if in_comment {
            if c == '\n' {
                in_comment = false;
                clean.push('\n');
            } else {
                clean.push(' ');
            }
            continue;
        }
        if in_string {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
        } else if c == '"' {
            in_string = true;
        } else if c == '#' {
            in_comment = true;
            clean.push(' ');
            continue;
        }
        clean.push(c);
    }
    clean
}

/// Parses one file (comments blanked), turning serde's errors into ones
/// with a suggestion, and an unexpected end into the place of what was
/// left open.
pub(super) fn parse_file(file: &Path, clean: &str) -> Result<FileConf, ConfigError> {
    serde_json::from_str(clean).map_err(|e| {
        if e.is_eof() {
            if let Some((at, open)) = unclosed(clean) {
                let what = if open == b'{' { "object" } else { "list" };
                return ConfigError {
                    file: file.to_path_buf(),
                    position: Some(line_col(clean, at)),
                    message: format!("this {what} is never closed (the file ends first)"),
                };
            }
        }
        let mut message = e.to_string();
        // "... at line L column C" is in the position instead.
        if let Some(i) = message.rfind(" at line ") {
            message.truncate(i);
        }
        if let Some(s) = suggestion(&message) {
            // The whole list of known keys is noise when one is near.
            let unknown = message.split('`').nth(1).unwrap_or("").to_string();
            message = format!("unknown key `{unknown}` (did you mean `{s}`?)");
        }
        // serde says column 0 for an error at a line's start; columns
        // count from 1.
        ConfigError { file: file.to_path_buf(), position: Some((e.line(), e.column().max(1))), message }
    })
}

/// The offset and bracket of the innermost `{` or `[` left open in `text`
/// (outside strings), if any.
fn unclosed(text: &str) -> Option<(usize, u8)> {
    let mut stack = Vec::new();
    let (mut in_string, mut escaped) = (false, false);
    for (i, &b) in text.as_bytes().iter().enumerate() {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' | b'[' => stack.push((i, b)),
            b'}' | b']' => {
                stack.pop();
            }
            _ => {}
        }
    }
    stack.pop()
}

/// 1-based line and column of byte `offset` in `text`.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// One step of a key as error messages name it: `vhosts[0].mounts[1].origin`.
#[derive(Debug, PartialEq)]
enum Seg {
    Key(String),
    Index(usize),
}

fn parse_key(key: &str) -> Vec<Seg> {
    let mut segs = Vec::new();
    for part in key.split('.') {
        let (name, mut rest) = part.split_once('[').map_or((part, ""), |(n, r)| (n, r));
        segs.push(Seg::Key(name.to_string()));
        while let Some((index, after)) = rest.split_once(']') {
            if let Ok(i) = index.parse() {
                segs.push(Seg::Index(i));
            }
            rest = after.strip_prefix('[').unwrap_or(after);
        }
    }
    segs
}

/// Where the key named `key` is in `text` (a JSON document that parsed),
/// or else the nearest enclosing one that is there.
pub(super) fn locate_key(text: &str, key: &str) -> Option<(usize, usize)> {
    let mut target = parse_key(key);
    while !target.is_empty() {
        let mut scan = Scan { b: text.as_bytes(), i: 0 };
        let mut path = Vec::new();
        if let Some(at) = scan.value(&mut path, &target) {
            return Some(line_col(text, at));
        }
        target.pop();
    }
    None
}

/// A walk over a JSON document that finds where a path of keys and
/// indices starts. It gives up (None) on anything malformed; it only
/// runs on text serde has parsed.
struct Scan<'a> {
    b: &'a [u8],
    i: usize,
}

impl Scan<'_> {
    fn ws(&mut self) {
        while self.b.get(self.i).is_some_and(u8::is_ascii_whitespace) {
            self.i += 1;
        }
    }

    fn string(&mut self) -> Option<String> {
        let start = self.i + 1;
        self.i += 1;
        let mut escaped = false;
        while let Some(&b) = self.b.get(self.i) {
            self.i += 1;
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => {
                    let raw = std::str::from_utf8(&self.b[start..self.i - 1]).ok()?;
                    return Some(serde_json::from_str(&format!("\"{raw}\"")).unwrap_or_else(|_| raw.to_string()));
                }
                _ => {}
            }
        }
        None
    }

    fn value(&mut self, path: &mut Vec<Seg>, target: &[Seg]) -> Option<usize> {
        self.ws();
        match *self.b.get(self.i)? {
            b'{' => {
                self.i += 1;
                loop {
                    self.ws();
                    match *self.b.get(self.i)? {
                        b'}' => {
                            self.i += 1;
                            return None;
                        }
                        b',' => self.i += 1,
                        b'"' => {
                            let at = self.i;
                            let key = self.string()?;
                            path.push(Seg::Key(key));
                            if path.as_slice() == target {
                                return Some(at);
                            }
                            self.ws();
                            if self.b.get(self.i) != Some(&b':') {
                                return None;
                            }
                            self.i += 1;
                            let before = self.i;
                            let found = self.value(path, target);
                            path.pop();
                            if found.is_some() || self.i == before {
                                return found;
                            }
                        }
                        _ => return None,
                    }
                }
            }
            b'[' => {
                self.i += 1;
                let mut n = 0;
                loop {
                    self.ws();
                    match *self.b.get(self.i)? {
                        b']' => {
                            self.i += 1;
                            return None;
                        }
                        b',' => self.i += 1,
                        _ => {
                            path.push(Seg::Index(n));
                            if path.as_slice() == target {
                                return Some(self.i);
                            }
                            let before = self.i;
                            let found = self.value(path, target);
                            path.pop();
                            if found.is_some() || self.i == before {
                                return found;
                            }
                            n += 1;
                        }
                    }
                }
            }
            b'"' => {
                self.string()?;
                None
            }
            _ => {
                while self.b.get(self.i).is_some_and(|b| !b",]} \t\r\n".contains(b)) {
                    self.i += 1;
                }
                None
            }
        }
    }
}

/// For serde's "unknown field `x`, expected one of `a`, `b`", the known
/// key nearest to `x`, if it is near enough to be a typo.
fn suggestion(message: &str) -> Option<String> {
    let rest = message.strip_prefix("unknown field `")?;
    let (unknown, expected) = rest.split_once('`')?;
    expected
        .split('`')
        .skip(1)
        .step_by(2)
        .map(|k| (edit_distance(unknown, k), k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 3))
        .min()
        .map(|(_, k)| k.to_string())
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != *cb)).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions() {
        let m = "unknown field `mountpont`, expected one of `mountpoint`, `origin`, `default`";
        assert_eq!(suggestion(m).as_deref(), Some("mountpoint"));
        let m = "unknown field `zzzzzz`, expected one of `mountpoint`, `origin`";
        assert_eq!(suggestion(m), None);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }

    #[test]
    fn comments_keep_positions() {
        let text = "{ # comment with \"quote\n  \"vhosts\": [ { \"name\": \"a#b\", \"bogus\": \"1\" } ] }";
        let e = parse_file(Path::new("f"), &blank_comments(text)).err().expect("error");
        assert_eq!(e.position.map(|p| p.0), Some(2));
        assert!(e.message.contains("bogus"), "{}", e.message);
    }

    #[test]
    fn keys_are_located() {
        let text = "{\"a\": [1, {\"b\": \"x\"}],\n \"c\": {\"d\": [true, {\"e\": 2}]}}";
        assert_eq!(locate_key(text, "a[1].b"), Some((1, 12)));
        assert_eq!(locate_key(text, "c.d[1].e"), Some((2, 21)));
        assert_eq!(locate_key(text, "c.d[1]"), Some((2, 20)));
        // Not there: the nearest enclosing key that is.
        assert_eq!(locate_key(text, "c.zz"), Some((2, 2)));
        assert_eq!(locate_key(text, "q"), None);
        assert_eq!(unclosed("{\"a\": [1, {\"b\": \"[\"}"), Some((6, b'[')));
    }
}
