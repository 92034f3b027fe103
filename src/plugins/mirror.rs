//! `lws-mirror-protocol` (spec PLUG-2): every message a client sends is
//! sent to every client of the same mirror instance, the sender included,
//! in order. The instance is chosen by the URL's `?mirror=NAME` (default
//! ""), at most [`MAX_INSTANCES`] per vhost.
//!
//! Memory is bounded: messages wait in one ring of [`RING`] slots per
//! instance, each at most [`MAX_MESSAGE`] bytes. When fewer than
//! [`PAUSE_BELOW`] slots are free every member's rx is paused (TCP pushes
//! back on the senders); it resumes when [`RESUME_AT`] are free. A member
//! that holds the ring up, not reading for [`STALL`], is closed, so one
//! stuck client cannot stall the others for long or grow the server.

use crate::protocol::{Action, Cx, Event, Protocol, WsiId};
use crate::ws::WriteKind;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// The plugin's name.
pub const NAME: &str = "lws-mirror-protocol";
/// Messages kept per instance.
pub const RING: usize = 32;
/// Fewer free slots than this pause every member's rx.
pub const PAUSE_BELOW: usize = 4;
/// This many free slots resume it.
pub const RESUME_AT: usize = 21;
/// The longest message mirrored; longer closes with 1009.
pub const MAX_MESSAGE: u64 = 64 * 1024;
/// How long the slowest member may hold the ring full.
pub const STALL: Duration = Duration::from_secs(3);
/// Instances per vhost.
pub const MAX_INSTANCES: usize = 3;

/// The plugin: its instances.
#[derive(Debug, Default)]
pub struct Mirror {
    instances: Vec<Instance>,
    /// A Timer is on its way (one at a time).
    timer_pending: bool,
}

#[derive(Debug)]
struct Instance {
    name: String,
    /// Messages `base..base + ring.len()`.
    ring: VecDeque<(bool, Vec<u8>)>,
    base: u64,
    /// Each member and the sequence number of the next message it gets.
    members: Vec<(WsiId, u64)>,
    paused: bool,
    /// While paused: the slowest member, where it stood, and since when.
    stalled: Option<(WsiId, u64, Instant)>,
}

impl Instance {
    fn head(&self) -> u64 {
        self.base + self.ring.len() as u64
    }

    /// Drops messages every member has, and resumes rx if there is room.
    fn trim(&mut self, cx: &mut Cx<'_>) {
        let oldest = self.members.iter().map(|m| m.1).min().unwrap_or(self.head());
        while self.base < oldest && !self.ring.is_empty() {
            self.ring.pop_front();
            self.base += 1;
        }
        if self.paused && RING - self.ring.len() >= RESUME_AT {
            self.paused = false;
            self.stalled = None;
            for (id, _) in &self.members {
                cx.rx_flow_control(*id, true);
            }
        }
    }

    fn slowest(&self) -> Option<(WsiId, u64, Instant)> {
        self.members.iter().min_by_key(|m| m.1).map(|m| (m.0, m.1, Instant::now()))
    }
}

/// One client: its instance, and the message it is receiving.
#[derive(Debug, Default)]
pub struct MirrorSession {
    instance: String,
    binary: bool,
    incoming: Vec<u8>,
}

impl Mirror {
    fn instance(&mut self, name: &str) -> Option<&mut Instance> {
        self.instances.iter_mut().find(|i| i.name == name)
    }
}

impl Protocol for Mirror {
    type Session = MirrorSession;

    fn name(&self) -> &str {
        NAME
    }

    fn rx_buffer_size(&self) -> usize {
        4096
    }

    fn max_message_size(&self) -> u64 {
        MAX_MESSAGE
    }

    fn callback(&mut self, cx: &mut Cx<'_>, event: Event<'_, MirrorSession>) -> Action {
        match event {
            Event::Established(wsi, req) => {
                let name = req
                    .query()
                    .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("mirror=")))
                    .unwrap_or("")
                    .to_string();
                if self.instance(&name).is_none() {
                    if self.instances.len() >= MAX_INSTANCES {
                        return Action::Close;
                    }
                    self.instances.push(Instance {
                        name: name.clone(),
                        ring: VecDeque::new(),
                        base: 0,
                        members: Vec::new(),
                        paused: false,
                        stalled: None,
                    });
                }
                let Some(inst) = self.instance(&name) else { return Action::Close };
                let head = inst.head();
                inst.members.push((wsi.id, head));
                if inst.paused {
                    cx.rx_flow_control(wsi.id, false);
                }
                wsi.session.instance = name;
            }
            Event::Receive(wsi, rx) => {
                let s = wsi.session;
                if rx.is_first_fragment() {
                    s.incoming.clear();
                    s.binary = rx.is_binary();
                }
                s.incoming.extend_from_slice(rx.data());
                if !rx.is_final_fragment() {
                    return Action::Continue;
                }
                let message = std::mem::take(&mut s.incoming);
                let binary = s.binary;
                let Some(inst) = self.instance(&s.instance) else { return Action::Continue };
                if inst.ring.len() == RING {
                    // Full despite the pause (pieces already in flight):
                    // the slowest loses its oldest message, memory does not grow.
                    inst.ring.pop_front();
                    inst.base += 1;
                    let base = inst.base;
                    for m in inst.members.iter_mut() {
                        m.1 = m.1.max(base);
                    }
                }
                inst.ring.push_back((binary, message));
                if !inst.paused && RING - inst.ring.len() < PAUSE_BELOW {
                    inst.paused = true;
                    inst.stalled = inst.slowest();
                    for (id, _) in &inst.members {
                        cx.rx_flow_control(*id, false);
                    }
                    if !self.timer_pending {
                        self.timer_pending = true;
                        cx.schedule(STALL);
                    }
                }
                cx.callback_on_writable_all_protocol();
            }
            Event::ServerWriteable(wsi, writer) => {
                let id = wsi.id;
                let Some(inst) = self.instance(&wsi.session.instance) else { return Action::Continue };
                let Some(member) = inst.members.iter_mut().find(|m| m.0 == id) else { return Action::Continue };
                let Some((binary, msg)) = inst.ring.get((member.1 - inst.base) as usize) else {
                    return Action::Continue;
                };
                let kind = if *binary { WriteKind::Binary } else { WriteKind::Text };
                if writer.write(msg, kind, true).is_err() {
                    return Action::Close;
                }
                member.1 += 1;
                if member.1 < inst.head() {
                    cx.callback_on_writable(id);
                }
                inst.trim(cx);
            }
            Event::Timer => {
                self.timer_pending = false;
                let mut next: Option<Duration> = None;
                for inst in self.instances.iter_mut().filter(|i| i.paused) {
                    let Some((id, tail, since)) = inst.stalled else { continue };
                    let stuck = inst.members.iter().any(|m| m.0 == id && m.1 == tail);
                    if stuck && since.elapsed() >= STALL {
                        // No progress in STALL: let it go, the rest move on.
                        log::info!("{NAME}: a client read nothing for {STALL:?} while the ring was full; closing it");
                        inst.members.retain(|m| m.0 != id);
                        cx.set_timeout(id, Some(Duration::ZERO));
                        inst.trim(cx);
                    } else if !stuck {
                        // That one moved: watch whoever is slowest now.
                        inst.stalled = inst.slowest();
                    }
                    if inst.paused {
                        let left = inst.stalled.map_or(STALL, |(_, _, since)| STALL.saturating_sub(since.elapsed()));
                        next = Some(next.map_or(left, |n| n.min(left)));
                    }
                }
                if let Some(after) = next {
                    self.timer_pending = true;
                    cx.schedule(after.max(Duration::from_millis(50)));
                }
            }
            Event::Closed(wsi) => {
                let id = wsi.id;
                if let Some(inst) = self.instance(&wsi.session.instance) {
                    inst.members.retain(|m| m.0 != id);
                    inst.trim(cx);
                }
                // Instances live while they have members.
                self.instances.retain(|i| !i.members.is_empty());
            }
            _ => {}
        }
        Action::Continue
    }
}
