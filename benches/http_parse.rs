//! Code-path benchmarks for the HTTP/1 codec: request heads, URL paths and
//! chunked bodies. `cargo bench --bench http_parse`.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use warren::http::request::{self, Limits};
use warren::http::{decode_path, BodyDecoder};

const HEAD: &[u8] = b"GET /assets/app.js?v=42 HTTP/1.1\r\n\
Host: example.com\r\n\
User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36\r\n\
Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n\
Accept-Encoding: gzip, deflate, br\r\n\
Accept-Language: en-GB,en;q=0.9\r\n\
Connection: keep-alive\r\n\
If-None-Match: \"0123456789abcdef\"\r\n\r\n";

fn heads(c: &mut Criterion) {
    let limits = Limits { max_head: 8192, max_uri: 4096 };
    let mut g = c.benchmark_group("request_head");
    g.throughput(Throughput::Bytes(HEAD.len() as u64));
    g.bench_function("parse_browser_get", |b| {
        b.iter(|| request::parse(black_box(HEAD), limits).map(|r| r.map(|(req, n)| (req.path().len(), n))))
    });
    g.finish();
}

fn paths(c: &mut Criterion) {
    c.bench_function("decode_path", |b| b.iter(|| decode_path(black_box("/static//css/./site%20main.css"))));
}

fn chunked(c: &mut Criterion) {
    let mut wire = Vec::new();
    for _ in 0..64 {
        wire.extend_from_slice(b"400\r\n");
        wire.extend_from_slice(&[b'x'; 0x400]);
        wire.extend_from_slice(b"\r\n");
    }
    wire.extend_from_slice(b"0\r\n\r\n");
    let mut g = c.benchmark_group("chunked_body");
    g.throughput(Throughput::Bytes(wire.len() as u64));
    g.bench_function("64x1KiB", |b| {
        b.iter(|| {
            let mut d = BodyDecoder::chunked();
            let mut rest = black_box(&wire[..]);
            let mut total = 0;
            while !d.is_done() {
                let Ok((n, data)) = d.decode(rest) else { break };
                total += data.map_or(0, <[u8]>::len);
                rest = &rest[n..];
            }
            total
        })
    });
    g.finish();
}

criterion_group!(benches, heads, paths, chunked);
criterion_main!(benches);
