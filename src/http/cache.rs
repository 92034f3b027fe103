//! `Cache-Control` for file responses, from a mount's cache settings
//! (spec CACHE-1), the same function for 200, 206 and 304 (CACHE-2, as the spec recommends).

use std::borrow::Cow;

/// A mount's cache settings, as lwsws's `cache-max-age`, `cache-reuse`,
/// `cache-revalidate`, `cache-intermediaries` and `cache-no` keys.
///
/// `CachePolicy::default()` is what an lwsws mount without cache keys
/// sends: `no-store`. A [`Mount`](crate::Mount) without a policy sends no
/// `Cache-Control` at all, leaving caches to their heuristics and the
/// validators (`ETag`, `Last-Modified`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CachePolicy {
    /// Seconds a cache may reuse the response (`cache-max-age`).
    pub max_age: u32,
    /// Whether reuse is allowed at all (`cache-reuse`).
    pub reuse: bool,
    /// Whether a stale copy must be revalidated (`cache-revalidate`).
    pub revalidate: bool,
    /// Whether shared caches may store it: `public`, else `private`
    /// (`cache-intermediaries`).
    pub intermediaries: bool,
    /// Store, but revalidate every time (`cache-no`): `no-cache`.
    pub no_cache: bool,
}

impl CachePolicy {
    /// The `Cache-Control` value, exactly as CACHE-1's table gives it.
    ///
    /// | cache-no | max-age > 0 and reuse | revalidate | value |
    /// |---|---|---|---|
    /// | 1 | any | any | `no-cache` |
    /// | 0 | yes | 0 | `private, max-age=N` (or `public`) |
    /// | 0 | yes | 1 | `must-revalidate, private, max-age=N` |
    /// | 0 | no | any | `no-store` |
    pub fn header_value(&self) -> Cow<'static, str> {
        if self.no_cache {
            return Cow::Borrowed("no-cache");
        }
        if self.max_age == 0 || !self.reuse {
            return Cow::Borrowed("no-store");
        }
        let scope = if self.intermediaries { "public" } else { "private" };
        let revalidate = if self.revalidate { "must-revalidate, " } else { "" };
        Cow::Owned(format!("{revalidate}{scope}, max-age={}", self.max_age))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_1_table() {
        let p = |max_age, reuse, revalidate, intermediaries, no_cache| {
            CachePolicy { max_age, reuse, revalidate, intermediaries, no_cache }.header_value().into_owned()
        };
        assert_eq!(p(60, true, false, false, true), "no-cache");
        assert_eq!(p(0, false, true, true, true), "no-cache");
        assert_eq!(p(60, true, false, false, false), "private, max-age=60");
        assert_eq!(p(60, true, false, true, false), "public, max-age=60");
        assert_eq!(p(60, true, true, false, false), "must-revalidate, private, max-age=60");
        assert_eq!(p(60, false, true, true, false), "no-store");
        assert_eq!(p(0, true, false, false, false), "no-store");
        assert_eq!(CachePolicy::default().header_value(), "no-store");
    }
}
