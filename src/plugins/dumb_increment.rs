//! `dumb-increment-protocol` (spec PLUG-1): every 50 ms each client gets
//! the next number of its own counter as a text message. `reset\n` sets
//! the counter back to 0; `closeme\n` closes with 1001 "seeya".
//!
//! One timer for the whole protocol drives every client (one message per
//! client per tick, the spec's recommendation); a client that does not read gets
//! no more writeable callbacks until its socket drains, so it costs one
//! pending write and misses ticks instead of queueing them.

use crate::protocol::{Action, Cx, Event, Protocol};
use crate::ws::CloseCode;
use std::time::Duration;

/// The plugin's name.
pub const NAME: &str = "dumb-increment-protocol";
/// The tick.
pub const PERIOD: Duration = Duration::from_millis(50);

/// The plugin: counts its clients so the timer runs only while it has some.
#[derive(Debug, Default)]
pub struct DumbIncrement {
    clients: usize,
    ticking: bool,
    /// pvo `options` bit 0: no timer (numbers never come).
    timer_off: bool,
}

impl DumbIncrement {
    /// The plugin with its pvo: `options`, an integer whose bit 0 turns
    /// the timer off.
    pub fn with_options(options: &[(&str, &str)]) -> Result<DumbIncrement, String> {
        let mut d = DumbIncrement::default();
        for (k, v) in options {
            if *k == "options" {
                let bits: u64 = v.trim().parse().map_err(|_| format!("options: expected an integer, found {v:?}"))?;
                d.timer_off = bits & 1 != 0;
            }
        }
        Ok(d)
    }
}

/// One client's counter.
#[derive(Debug, Default)]
pub struct Counter {
    number: u64,
    close: bool,
}

impl Protocol for DumbIncrement {
    type Session = Counter;

    fn name(&self) -> &str {
        NAME
    }

    /// PLUG-1: 10 bytes, as lws has it ("closeme\n" fits). Under 128, so
    /// permessage-deflate is not agreed for it, as in lws
    /// (`ws::deflate::protocol_takes_deflate`).
    fn rx_buffer_size(&self) -> usize {
        10
    }

    fn max_message_size(&self) -> u64 {
        1024
    }

    fn callback(&mut self, cx: &mut Cx<'_>, event: Event<'_, Counter>) -> Action {
        match event {
            Event::Established(..) => {
                self.clients += 1;
                if !self.ticking && !self.timer_off {
                    self.ticking = true;
                    cx.schedule(PERIOD);
                }
            }
            Event::Closed(..) => self.clients = self.clients.saturating_sub(1),
            Event::Timer => {
                if self.clients == 0 {
                    self.ticking = false;
                } else {
                    cx.callback_on_writable_all_protocol();
                    cx.schedule(PERIOD);
                }
            }
            Event::Receive(wsi, rx) if rx.is_first_fragment() => {
                if rx.data().starts_with(b"reset\n") {
                    wsi.session.number = 0;
                } else if rx.data().starts_with(b"closeme\n") {
                    wsi.session.close = true;
                    cx.callback_on_writable(wsi.id);
                }
            }
            Event::ServerWriteable(wsi, writer) => {
                let c = wsi.session;
                if c.close {
                    let _ = writer.close(CloseCode::GOING_AWAY, "seeya");
                    return Action::Continue;
                }
                if writer.text(&c.number.to_string()).is_err() {
                    return Action::Close;
                }
                c.number += 1;
            }
            _ => {}
        }
        Action::Continue
    }
}
