//! `server-vars`: an interpreter for `interpret` mounts (spec FILE-9)
//! that replaces `${version}`, `${hostname}` and `${date}` in the files it
//! is given, as lws's `PROCESS_HTML` substitution does for its test
//! pages. Unknown names are left as they are. A `${...}` cut by a chunk
//! boundary is carried to the next piece (up to [`MAX_NAME`] bytes).

use crate::protocol::{Action, Cx, Event, Protocol};

/// The plugin's name.
pub const NAME: &str = "server-vars";
/// The longest `${name}` recognised.
pub const MAX_NAME: usize = 32;

/// The plugin (stateless; each response has a [`VarsSession`]).
#[derive(Debug, Default)]
pub struct Vars;

/// The start of a `${...}` held back from the previous piece.
#[derive(Debug, Default)]
pub struct VarsSession {
    carry: Vec<u8>,
}

fn value(name: &[u8]) -> Option<String> {
    Some(match name {
        b"version" => concat!("warren ", env!("CARGO_PKG_VERSION")).to_string(),
        b"hostname" => super::status::hostname(),
        b"date" => httpdate::fmt_http_date(std::time::SystemTime::now()),
        _ => return None,
    })
}

/// Substitutes in `input`; returns the output and an unfinished `${...`
/// at the end, if any.
fn substitute(input: &[u8], last: bool) -> (Vec<u8>, Vec<u8>) {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        if input[i] == b'$' && input.get(i + 1).is_none_or(|&b| b == b'{') {
            let rest = &input[i..];
            match rest.iter().position(|&b| b == b'}') {
                Some(end) if end <= MAX_NAME + 2 => {
                    match value(&rest[2..end]) {
                        Some(v) => out.extend_from_slice(v.as_bytes()),
                        None => out.extend_from_slice(&rest[..=end]),
                    }
                    i += end + 1;
                    continue;
                }
                None if !last && rest.len() <= MAX_NAME + 2 => return (out, rest.to_vec()),
                _ => {}
            }
        }
        out.push(input[i]);
        i += 1;
    }
    (out, Vec::new())
}

impl Protocol for Vars {
    type Session = VarsSession;

    fn name(&self) -> &str {
        NAME
    }

    fn callback(&mut self, _cx: &mut Cx<'_>, event: Event<'_, VarsSession>) -> Action {
        if let Event::ProcessHtml(wsi, chunk) = event {
            let mut input = std::mem::take(&mut wsi.session.carry);
            input.extend_from_slice(chunk.data);
            let (out, carry) = substitute(&input, chunk.last);
            *chunk.data = out;
            wsi.session.carry = carry;
        }
        Action::Continue
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn substitutes_across_piece_boundaries() {
        let text = b"v=${version}; x=${nope}; $5 and ${hostname}.";
        for cut in 0..=text.len() {
            let (mut out, carry) = substitute(&text[..cut], false);
            let mut rest = carry;
            rest.extend_from_slice(&text[cut..]);
            let (tail, carry) = substitute(&rest, true);
            assert!(carry.is_empty());
            out.extend_from_slice(&tail);
            let out = String::from_utf8(out).expect("utf8");
            assert!(out.starts_with(concat!("v=warren ", env!("CARGO_PKG_VERSION"), "; x=${nope}; $5 and ")), "{out}");
            assert!(!out.contains("${hostname}"), "{out}");
        }
    }
}
