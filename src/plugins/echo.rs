//! `echo`: sends every WebSocket message back as it came, text as text
//! and binary as binary, in the spirit of lws's `lws-minimal` examples.
//!
//! It streams: each piece received is written back as a frame of the
//! same message before the next piece is read. While a piece waits for
//! the socket, reading is paused (`rx_flow_control`), so a client that
//! sends without reading gets TCP pushback and costs the server one piece
//! of memory, never a queue. Messages of any size up to the loop's limit
//! pass through without being assembled.

use crate::protocol::{Action, Cx, Event, Protocol};
use crate::ws::WriteKind;

/// The plugin's name (the subprotocol clients ask for).
pub const NAME: &str = "echo";

/// A piece held larger than this is freed after it is sent, so an idle
/// connection keeps no buffer.
const KEEP_CAPACITY: usize = 4096;

/// The plugin (stateless; each connection has an [`EchoSession`]).
#[derive(Debug, Default)]
pub struct Echo;

/// The piece of a message waiting to go back.
#[derive(Debug, Default)]
pub struct EchoSession {
    piece: Vec<u8>,
    kind: Option<WriteKind>,
    fin: bool,
}

impl Protocol for Echo {
    type Session = EchoSession;

    fn name(&self) -> &str {
        NAME
    }

    fn callback(&mut self, cx: &mut Cx<'_>, event: Event<'_, EchoSession>) -> Action {
        match event {
            Event::Receive(wsi, rx) => {
                let s = wsi.session;
                s.piece.clear();
                s.piece.extend_from_slice(rx.data());
                s.kind = Some(match (rx.is_first_fragment(), rx.is_binary()) {
                    (true, true) => WriteKind::Binary,
                    (true, false) => WriteKind::Text,
                    (false, _) => WriteKind::Continuation,
                });
                s.fin = rx.is_final_fragment();
                cx.rx_flow_control(wsi.id, false);
                cx.callback_on_writable(wsi.id);
            }
            Event::ServerWriteable(wsi, writer) => {
                let s = wsi.session;
                let Some(kind) = s.kind.take() else { return Action::Continue };
                if writer.write(&s.piece, kind, s.fin).is_err() {
                    return Action::Close;
                }
                if s.piece.capacity() > KEEP_CAPACITY {
                    s.piece = Vec::new();
                }
                cx.rx_flow_control(wsi.id, true);
            }
            _ => {}
        }
        Action::Continue
    }
}
