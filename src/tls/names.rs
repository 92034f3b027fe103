//! OpenSSL's names for what rustls has: cipher suites (with OpenSSL's
//! selection syntax), key-exchange groups, protocol names. lwsws
//! configurations are written in OpenSSL's terms; these map them.

use rustls::crypto::aws_lc_rs::{cipher_suite as cs, kx_group};
use rustls::crypto::SupportedKxGroup;
use rustls::SupportedCipherSuite;

/// One suite rustls has: its OpenSSL name, IANA name, and the OpenSSL
/// keywords it answers to.
struct Suite {
    openssl: &'static str,
    iana: &'static str,
    suite: SupportedCipherSuite,
    tags: &'static [&'static str],
}

fn tls12() -> [Suite; 6] {
    [
        Suite {
            openssl: "ECDHE-ECDSA-AES256-GCM-SHA384",
            iana: "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
            suite: cs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
            tags: &["ECDSA", "aECDSA", "AESGCM", "AES", "AES256", "SHA384"],
        },
        Suite {
            openssl: "ECDHE-ECDSA-AES128-GCM-SHA256",
            iana: "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
            suite: cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
            tags: &["ECDSA", "aECDSA", "AESGCM", "AES", "AES128", "SHA256"],
        },
        Suite {
            openssl: "ECDHE-ECDSA-CHACHA20-POLY1305",
            iana: "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
            suite: cs::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
            tags: &["ECDSA", "aECDSA", "CHACHA20", "SHA256"],
        },
        Suite {
            openssl: "ECDHE-RSA-AES256-GCM-SHA384",
            iana: "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
            suite: cs::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
            tags: &["RSA", "aRSA", "AESGCM", "AES", "AES256", "SHA384"],
        },
        Suite {
            openssl: "ECDHE-RSA-AES128-GCM-SHA256",
            iana: "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
            suite: cs::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
            tags: &["RSA", "aRSA", "AESGCM", "AES", "AES128", "SHA256"],
        },
        Suite {
            openssl: "ECDHE-RSA-CHACHA20-POLY1305",
            iana: "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
            suite: cs::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
            tags: &["RSA", "aRSA", "CHACHA20", "SHA256"],
        },
    ]
}

fn tls13() -> [Suite; 3] {
    [
        Suite {
            openssl: "TLS_AES_256_GCM_SHA384",
            iana: "TLS_AES_256_GCM_SHA384",
            suite: cs::TLS13_AES_256_GCM_SHA384,
            tags: &[],
        },
        Suite {
            openssl: "TLS_AES_128_GCM_SHA256",
            iana: "TLS_AES_128_GCM_SHA256",
            suite: cs::TLS13_AES_128_GCM_SHA256,
            tags: &[],
        },
        Suite {
            openssl: "TLS_CHACHA20_POLY1305_SHA256",
            iana: "TLS_CHACHA20_POLY1305_SHA256",
            suite: cs::TLS13_CHACHA20_POLY1305_SHA256,
            tags: &[],
        },
    ]
}

/// The TLS 1.3 suites in warren's order: AES-128-GCM first (as Mozilla's
/// server guidelines order them). Measured on the test machine, an AMD
/// CPU on which aws-lc hashes SHA-256 in hardware and SHA-384 in
/// software: AES-256-GCM-SHA384 first cost 17% more server CPU per
/// resumed handshake and 7% per full one (the key schedule hashes with
/// the suite's hash), for no bulk speed gained.
pub(crate) fn default_tls13() -> Vec<SupportedCipherSuite> {
    let order = ["TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"];
    let all = tls13();
    order.iter().filter_map(|n| all.iter().find(|s| s.openssl == *n)).map(|s| s.suite).collect()
}

/// The TLS 1.2 suites in warren's order: ECDSA before RSA (a vhost has
/// one kind of key; rustls skips the other), AES-128-GCM first in each.
pub(crate) fn default_tls12() -> Vec<SupportedCipherSuite> {
    let order = [
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        "ECDHE-RSA-AES128-GCM-SHA256",
        "ECDHE-RSA-AES256-GCM-SHA384",
        "ECDHE-RSA-CHACHA20-POLY1305",
    ];
    let all = tls12();
    order.iter().filter_map(|n| all.iter().find(|s| s.openssl == *n)).map(|s| s.suite).collect()
}

/// Keywords that select every suite here: all are strong, and all use
/// ECDHE key exchange (`ECDH`/`kECDH` are OpenSSL's aliases for it since
/// 1.1).
const ALL_WORDS: &[&str] =
    &["ALL", "DEFAULT", "HIGH", "SECURE", "TLSv1.2", "ECDHE", "EECDH", "kECDHE", "kEECDH", "ECDH", "kECDH"];

/// OpenSSL words that name only what rustls never has (or nothing at
/// all): fine after `!`, and skipped with a warning otherwise.
const ABSENT_WORDS: &[&str] = &[
    "aNULL",
    "eNULL",
    "NULL",
    "MD5",
    "RC4",
    "DES",
    "3DES",
    "EXP",
    "EXPORT",
    "LOW",
    "MEDIUM",
    "DSS",
    "aDSS",
    "PSK",
    "aPSK",
    "kPSK",
    "SRP",
    "kSRP",
    "CAMELLIA",
    "SEED",
    "IDEA",
    "DHE",
    "EDH",
    "kDHE",
    "kEDH",
    "DH",
    "ADH",
    "AECDH",
    "kRSA",
    "SHA1",
    "SHA",
    "CBC",
    "SSLv3",
    "TLSv1",
    "TLSv1.0",
    "ARIA",
    "CCM",
    "CCM8",
    "AESCCM",
    "AESCCM8",
    "GOST",
    "SUITEB128",
    "SUITEB192",
    "aGOST",
    "kGOST",
    "RSAPSK",
    "ECDHEPSK",
    "DHEPSK",
    "eNULL",
    "COMPLEMENTOFALL",
];

/// The OpenSSL name rustls's suite goes by (what mod_ssl's `SSL_CIPHER`
/// and nginx's `$ssl_cipher` say).
pub(crate) fn openssl_name(suite: SupportedCipherSuite) -> &'static str {
    let id = suite.suite();
    tls12().iter().chain(tls13().iter()).find(|s| s.suite.suite() == id).map_or("unknown", |s| s.openssl)
}

/// What a cipher list parsed to: the suites, and the names in it that
/// rustls has no suite for (a warning, not an error).
#[derive(Debug)]
pub(crate) struct CipherList {
    pub(crate) suites: Vec<SupportedCipherSuite>,
    pub(crate) absent: Vec<String>,
}

/// What a cipher-list item does (OpenSSL's `ciphers(1)`).
#[derive(Clone, Copy, PartialEq)]
enum Op {
    /// `X`: add what X selects, at the end, unless there already.
    Add,
    /// `-X`: take it out (a later item may add it again).
    Remove,
    /// `!X`: take it out for good.
    Kill,
    /// `+X`: move what X selects that is in the list to its end.
    MoveToEnd,
}

/// Parses a TLS 1.2 cipher list in OpenSSL's syntax.
pub(crate) fn tls12_ciphers(list: &str) -> Result<CipherList, String> {
    let all = tls12();
    let mut chosen: Vec<usize> = Vec::new();
    let mut killed: Vec<usize> = Vec::new();
    let mut absent = Vec::new();
    for token in split_list(list) {
        let (op, body) = match token.as_bytes()[0] {
            b'!' => (Op::Kill, &token[1..]),
            b'-' => (Op::Remove, &token[1..]),
            b'+' => (Op::MoveToEnd, &token[1..]),
            _ => (Op::Add, token),
        };
        if body.starts_with('@') {
            // @STRENGTH, @SECLEVEL=n: orderings and levels; nothing here.
            continue;
        }
        let mut set: Option<Vec<usize>> = None;
        let mut names_absent = false;
        for part in body.split('+') {
            let hits: Vec<usize> = if ALL_WORDS.contains(&part) {
                (0..all.len()).collect()
            } else if let Some(i) = all.iter().position(|s| s.openssl == part || s.iana.eq_ignore_ascii_case(part)) {
                vec![i]
            } else if all.iter().any(|s| s.tags.contains(&part)) {
                (0..all.len()).filter(|&i| all[i].tags.contains(&part)).collect()
            } else if ABSENT_WORDS.contains(&part) || looks_like_openssl_suite(part) {
                names_absent = true;
                Vec::new()
            } else if tls13().iter().any(|s| s.openssl == part) {
                return Err(format!("{part:?} is a TLS 1.3 suite: name it in the TLS 1.3 list (tls13-ciphers)"));
            } else {
                return Err(format!("{part:?} is not a cipher name or keyword OpenSSL knows"));
            };
            set = Some(match set {
                None => hits,
                Some(prev) => prev.into_iter().filter(|i| hits.contains(i)).collect(),
            });
        }
        let set = set.unwrap_or_default();
        match op {
            Op::Kill => {
                killed.extend(&set);
                chosen.retain(|i| !set.contains(i));
            }
            Op::Remove => chosen.retain(|i| !set.contains(i)),
            Op::MoveToEnd => {
                let (moved, kept): (Vec<usize>, Vec<usize>) = chosen.iter().partition(|i| set.contains(i));
                chosen = kept.into_iter().chain(moved).collect();
            }
            Op::Add => {
                if set.is_empty() && names_absent {
                    absent.push(body.to_string());
                }
                for i in set {
                    if !chosen.contains(&i) && !killed.contains(&i) {
                        chosen.push(i);
                    }
                }
            }
        }
    }
    let suites: Vec<SupportedCipherSuite> = chosen.into_iter().map(|i| all[i].suite).collect();
    if suites.is_empty() {
        return Err(format!(
            "{list:?} leaves no TLS 1.2 suite rustls has (it has only ECDHE with AES-GCM or ChaCha20-Poly1305: {})",
            all.iter().map(|s| s.openssl).collect::<Vec<_>>().join(", ")
        ));
    }
    Ok(CipherList { suites, absent })
}

/// Parses a TLS 1.3 suite list (names separated by `:`).
pub(crate) fn tls13_ciphers(list: &str) -> Result<Vec<SupportedCipherSuite>, String> {
    let all = tls13();
    let mut suites = Vec::new();
    for name in split_list(list) {
        let Some(s) = all.iter().find(|s| s.openssl.eq_ignore_ascii_case(name)) else {
            return Err(format!(
                "{name:?} is not a TLS 1.3 suite rustls has ({})",
                all.iter().map(|s| s.openssl).collect::<Vec<_>>().join(", ")
            ));
        };
        if !suites.iter().any(|x: &SupportedCipherSuite| x.suite() == s.suite.suite()) {
            suites.push(s.suite);
        }
    }
    if suites.is_empty() {
        return Err("the TLS 1.3 suite list is empty".into());
    }
    Ok(suites)
}

/// Parses a list of key-exchange groups (OpenSSL or IANA names).
pub(crate) fn groups(list: &str) -> Result<Vec<&'static dyn SupportedKxGroup>, String> {
    let mut out: Vec<&'static dyn SupportedKxGroup> = Vec::new();
    for name in split_list(list) {
        let g: &'static dyn SupportedKxGroup = match name.to_ascii_lowercase().as_str() {
            "x25519" => kx_group::X25519,
            "prime256v1" | "p-256" | "secp256r1" => kx_group::SECP256R1,
            "secp384r1" | "p-384" => kx_group::SECP384R1,
            "x25519mlkem768" => kx_group::X25519MLKEM768,
            "secp256r1mlkem768" => kx_group::SECP256R1MLKEM768,
            "mlkem768" => kx_group::MLKEM768,
            "mlkem1024" => kx_group::MLKEM1024,
            _ => {
                return Err(format!(
                    "{name:?} is not a group rustls has (X25519MLKEM768, X25519, P-256 \
                     alias prime256v1, P-384 alias secp384r1, SecP256r1MLKEM768, MLKEM768, MLKEM1024)"
                ))
            }
        };
        if !out.iter().any(|x| x.name() == g.name()) {
            out.push(g);
        }
    }
    if out.is_empty() {
        return Err("the group list is empty".into());
    }
    Ok(out)
}

/// OpenSSL names suites like `AES128-SHA` or `DHE-RSA-AES256-SHA256`:
/// capitals, digits and dashes.
fn looks_like_openssl_suite(part: &str) -> bool {
    part.contains('-') && part.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// The items of an OpenSSL list: separated by `:`, `,` or spaces.
fn split_list(list: &str) -> impl Iterator<Item = &str> {
    list.split([':', ',', ' ']).map(str::trim).filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(l: &CipherList) -> Vec<&'static str> {
        l.suites.iter().map(|s| openssl_name(*s)).collect()
    }

    #[test]
    fn openssl_cipher_strings_map_to_what_rustls_has() {
        // lws's own example (README.coding.md "sslopt"): the RC4 and CBC
        // names have nothing in rustls; HIGH selects what it has.
        let l =
            tls12_ciphers("RC4-MD5:RC4-SHA:AES128-SHA:AES256-SHA:HIGH:!DSS:!aNULL").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(l.suites.len(), 6);
        assert_eq!(l.absent, ["RC4-MD5", "RC4-SHA", "AES128-SHA", "AES256-SHA"]);
        let l = tls12_ciphers("ECDHE+AESGCM:!aRSA").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(names(&l), ["ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-ECDSA-AES128-GCM-SHA256"]);
        let l = tls12_ciphers("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(names(&l), ["ECDHE-RSA-AES128-GCM-SHA256"]);
        assert!(tls12_ciphers("AES128-SHA:!HIGH").is_err(), "nothing left");
        assert!(tls12_ciphers("ECDHE-RSA-AES128-GCM-SHA25").is_err(), "a misspelt suite selects nothing");
        let e = tls12_ciphers("HIGH:bogus").expect_err("unknown word");
        assert!(e.contains("bogus"), "{e}");
        assert!(tls12_ciphers("TLS_AES_128_GCM_SHA256").is_err(), "a 1.3 suite in the 1.2 list");
        assert_eq!(tls13_ciphers("TLS_CHACHA20_POLY1305_SHA256").map(|v| v.len()), Ok(1));
        assert!(tls13_ciphers("TLS_AES_128_CCM_SHA256").is_err());
        // A list often copied from guides: AES256 and EDH are keywords
        // (the DHE ones select nothing rustls has).
        let l = tls12_ciphers("EECDH+AESGCM:EDH+AESGCM:AES256+EECDH:AES256+EDH").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(l.suites.len(), 4, "{:?}", names(&l));
        // `-` takes out until a later item adds back; `!` for good; `+`
        // moves to the end.
        let l = tls12_ciphers("HIGH:-aRSA:ECDHE-RSA-AES128-GCM-SHA256").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(names(&l).last(), Some(&"ECDHE-RSA-AES128-GCM-SHA256"));
        assert_eq!(l.suites.len(), 4);
        let l = tls12_ciphers("HIGH:!aRSA:ECDHE-RSA-AES128-GCM-SHA256").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(l.suites.len(), 3);
        let l = tls12_ciphers("HIGH:+CHACHA20").unwrap_or_else(|e| panic!("{e}"));
        assert!(names(&l)[4..].iter().all(|n| n.contains("CHACHA20")), "{:?}", names(&l));
        assert!(tls12_ciphers("HIGH:SHA256:ECDH:AES128").is_ok());
        assert_eq!(groups("X25519:prime256v1").map(|g| g.len()), Ok(2));
        let first = |v: Vec<SupportedCipherSuite>| v.first().map(|s| openssl_name(*s));
        assert_eq!(first(default_tls13()), Some("TLS_AES_128_GCM_SHA256"));
        assert_eq!(first(default_tls12()), Some("ECDHE-ECDSA-AES128-GCM-SHA256"));
        assert_eq!((default_tls13().len(), default_tls12().len()), (3, 6));
        assert!(groups("secp521r1").is_err());
    }
}
