//! permessage-deflate state between messages, per loop thread.
//!
//! Neither side keeps a context across messages (see [`super::deflate`]),
//! so a compressor or an inflater is taken from here when a compressed
//! message starts and given back when it ends: a thousand connections
//! that each sent a message hold none, where each used to keep about
//! 300 KiB.

use super::deflate::{DeflateConfig, Deflater, Inflater};
use std::cell::RefCell;

/// Inflation state, lent to a connection for one compressed message.
#[derive(Debug)]
pub(crate) struct InflateRx {
    pub(crate) inflater: Inflater,
    /// The bounded buffer inflated bytes go to before they are delivered.
    pub(crate) buf: Box<[u8]>,
    pub(crate) filled: usize,
}

// Boxed because they move between the pool and connections as they are.
#[allow(clippy::vec_box)]
struct Pool {
    deflaters: Vec<Box<Deflater>>,
    inflaters: Vec<Box<InflateRx>>,
}

/// Pooled compressors and inflaters kept, each; messages in flight at
/// once beyond that make their own, dropped when they end.
const POOL_KEEP: usize = 2;

thread_local! {
    static POOL: RefCell<Pool> = const { RefCell::new(Pool { deflaters: Vec::new(), inflaters: Vec::new() }) };
}

/// A compressor for a connection that agreed `cfg`.
pub(crate) fn take_deflater(cfg: &DeflateConfig) -> Box<Deflater> {
    let pooled = POOL.with_borrow_mut(|p| {
        let at = p.deflaters.iter().position(|d| d.fits(cfg))?;
        Some(p.deflaters.swap_remove(at))
    });
    pooled.unwrap_or_else(|| Box::new(Deflater::new(cfg)))
}

/// Takes back a compressor whose message ended (it was reset then).
pub(crate) fn give_deflater(d: Box<Deflater>) {
    POOL.with_borrow_mut(|p| {
        if p.deflaters.len() < POOL_KEEP {
            p.deflaters.push(d);
        }
    });
}

/// An inflater with a `chunk`-byte buffer.
pub(crate) fn take_inflater(cfg: &DeflateConfig, chunk: usize) -> Box<InflateRx> {
    match POOL.with_borrow_mut(|p| p.inflaters.pop()) {
        Some(mut inf) => {
            if inf.buf.len() != chunk {
                inf.buf = vec![0; chunk].into_boxed_slice();
            }
            inf
        }
        None => Box::new(InflateRx { inflater: Inflater::new(cfg), buf: vec![0; chunk].into_boxed_slice(), filled: 0 }),
    }
}

/// Takes back an inflater whose message ended (reset, buffer empty).
pub(crate) fn give_inflater(inf: Box<InflateRx>) {
    POOL.with_borrow_mut(|p| {
        if p.inflaters.len() < POOL_KEEP {
            p.inflaters.push(inf);
        }
    });
}
