//! Run: `cargo run --example hello_protocol`, then
//! `curl http://127.0.0.1:7682/hello/you` or
//! `curl --data-binary @Cargo.toml http://127.0.0.1:7682/hello/count`.
//!
//! A `callback://`-style mount: the protocol answers every request under
//! `/hello`, counting the bytes of any request body, and writes its answer
//! only from the writeable callback. Everything else is served from
//! `webroot/`.

use std::sync::Arc;
use warren::vfs::PlainFops;
use warren::{Action, Context, ContextInfo, Cx, Event, Mount, Protocol, VhostInfo};

/// Per-connection state: what we will answer.
#[derive(Default)]
struct Reply {
    name: String,
    body_bytes: usize,
    ready: bool,
}

struct Hello;

impl Protocol for Hello {
    type Session = Reply;

    fn name(&self) -> &str {
        "hello"
    }

    fn callback(&mut self, cx: &mut Cx<'_>, event: Event<'_, Reply>) -> Action {
        match event {
            Event::Http(wsi, request) => {
                let name = request.path().trim_start_matches("/hello").trim_start_matches('/');
                *wsi.session = Reply { name: name.to_string(), ..Reply::default() };
                if request.framing() == warren::http::request::Framing::None {
                    wsi.session.ready = true;
                    cx.callback_on_writable(wsi.id);
                }
            }
            Event::HttpBody(wsi, data) => wsi.session.body_bytes += data.len(),
            Event::HttpBodyCompletion(wsi) => {
                wsi.session.ready = true;
                cx.callback_on_writable(wsi.id);
            }
            // Extra writeable events may come; answer only when ready.
            Event::HttpWriteable(wsi, writer) if wsi.session.ready => {
                let who = if wsi.session.name.is_empty() { "world" } else { &wsi.session.name };
                let text = format!("hello, {who} ({} body bytes)\n", wsi.session.body_bytes);
                if writer.respond(200, "text/plain; charset=utf-8", text.as_bytes()).is_err() {
                    return Action::Close;
                }
            }
            _ => {}
        }
        Action::Continue
    }
}

fn main() -> std::io::Result<()> {
    let webroot = Arc::new(PlainFops::new(concat!(env!("CARGO_MANIFEST_DIR"), "/webroot"))?);
    let addr = "127.0.0.1:7682".parse().map_err(|_| std::io::ErrorKind::InvalidInput)?;
    let vhost = VhostInfo::new("localhost", addr)
        .protocol(Hello)
        .mount(Mount::files("/", webroot))
        .mount(Mount::callback("/hello", "hello"));
    let context = Context::new(ContextInfo::new().vhost(vhost))?;
    println!("listening on http://{addr}/hello");
    Ok(context.run()?)
}
