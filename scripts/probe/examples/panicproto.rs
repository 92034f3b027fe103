//! Probe server (not part of the build): copy to examples/ and
//! `cargo build --release --example panicproto`, then
//! `target/release/examples/panicproto PORT SITE ERRS CGI`.
//!
//! A protocol `boom` that panics where the request asks it to: HTTP
//! (`/boom/http`, `/boom/body`, `/boom/write`, `/boom/close`) and
//! WebSocket (subprotocol `boom`: on establish when the path is
//! `/ws-est`, on a message "panic", on the writeable after "panic-w",
//! on close after "panic-close"). Also: error page 404 from ERRS/404.html
//! (to swap for a FIFO or a huge file), a CGI mount at /cgi-bin, and the
//! echo plugin as the default WebSocket protocol.
use std::sync::Arc;
use warren::vfs::PlainFops;
use warren::ws::WriteKind;
use warren::{Action, Context, ContextInfo, Cx, Event, Mount, Protocol, VhostInfo};

#[derive(Default)]
struct S {
    what: String,
}
struct Boom;
impl Protocol for Boom {
    type Session = S;
    fn name(&self) -> &str {
        "boom"
    }
    fn callback(&mut self, cx: &mut Cx<'_>, event: Event<'_, S>) -> Action {
        match event {
            Event::Http(wsi, req) => {
                let p = req.path().to_string();
                if p == "/boom/http" {
                    panic!("boom in Http");
                }
                wsi.session.what = p;
                if req.framing() == warren::http::request::Framing::None {
                    cx.callback_on_writable(wsi.id);
                }
            }
            Event::HttpBody(wsi, _) if wsi.session.what == "/boom/body" => panic!("boom in HttpBody"),
            Event::HttpBodyCompletion(wsi) => cx.callback_on_writable(wsi.id),
            Event::HttpWriteable(wsi, w) => {
                if wsi.session.what == "/boom/write" {
                    panic!("boom in HttpWriteable");
                }
                let _ = w.respond(200, "text/plain", b"ok\n");
            }
            Event::ClosedHttp(wsi) if wsi.session.what == "/boom/close" => panic!("boom in ClosedHttp"),
            Event::Established(_, req) if req.path() == "/ws-est" => panic!("boom in Established"),
            Event::Receive(wsi, rx) => {
                let d = String::from_utf8_lossy(rx.data()).to_string();
                if d == "panic" {
                    panic!("boom in Receive");
                }
                wsi.session.what = d;
                cx.callback_on_writable(wsi.id);
            }
            Event::ServerWriteable(wsi, w) => {
                if wsi.session.what == "panic-w" {
                    panic!("boom in ServerWriteable");
                }
                let _ = w.write(wsi.session.what.as_bytes(), WriteKind::Text, true);
            }
            Event::Closed(wsi) if wsi.session.what == "panic-close" => panic!("boom in Closed"),
            _ => {}
        }
        Action::Continue
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let a: Vec<String> = std::env::args().collect();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{}", a[1]).parse()?;
    let vhost = VhostInfo::new("localhost", addr)
        .protocol(Boom)
        .error_page(404, "/errs/404.html")
        .mount(Mount::files("/", Arc::new(PlainFops::new(&a[2])?)))
        .mount(Mount::files("/errs", Arc::new(PlainFops::new(&a[3])?)))
        .mount(Mount::cgi("/cgi-bin", &a[4]))
        .mount(Mount::callback("/boom", "boom"));
    let mut vhost = vhost;
    vhost.plugin("echo");
    let vhost = vhost.default_protocol("echo");
    Context::new(ContextInfo::new().vhost(vhost))?.run()?;
    Ok(())
}
