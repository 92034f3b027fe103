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
//!
//! With several service loops the loops' instances share one hub (made
//! once per vhost and handed to each by its maker): a message received on
//! any loop reaches the members on every loop, each loop writing to its
//! own members with the hub's lock released; a pause, a resume or a
//! member closed for stalling is acted on by the loop that serves it.

use crate::protocol::{Action, Cx, Event, Protocol, WsiId};
use crate::ws::WriteKind;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
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

/// What the loops' instances of the plugin share: the mirror instances
/// (named by `?mirror=`), their rings and members.
#[derive(Debug, Default)]
pub struct Hub {
    instances: Vec<Instance>,
    /// Numbers the loops' plugin instances (a member is its loop's
    /// number and its connection's id there).
    loops: usize,
}

/// One service loop's instance of the plugin.
#[derive(Debug)]
pub struct Mirror {
    hub: Arc<Mutex<Hub>>,
    /// This instance's number among those sharing the hub.
    me: usize,
    /// Per mirror instance name: whether this loop's members are paused.
    paused_here: Vec<(String, bool)>,
    /// A Timer is on its way (one at a time).
    timer_pending: bool,
}

impl Default for Mirror {
    /// An instance with a hub of its own (one loop).
    fn default() -> Mirror {
        Mirror::sharing(&Arc::default())
    }
}

/// A member: the loop instance serving it, its connection there, and
/// the sequence number of the next message it gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Member {
    at: usize,
    id: WsiId,
    next: u64,
}

#[derive(Debug)]
struct Instance {
    name: String,
    /// Messages `base..base + ring.len()`.
    ring: VecDeque<(bool, Arc<[u8]>)>,
    base: u64,
    members: Vec<Member>,
    paused: bool,
    /// While paused: the slowest member, where it stood, and since when.
    stalled: Option<(usize, WsiId, u64, Instant)>,
}

impl Instance {
    fn head(&self) -> u64 {
        self.base + self.ring.len() as u64
    }

    /// Drops messages every member has; true when that lifted a pause.
    fn trim(&mut self) -> bool {
        let oldest = self.members.iter().map(|m| m.next).min().unwrap_or(self.head());
        while self.base < oldest && !self.ring.is_empty() {
            self.ring.pop_front();
            self.base += 1;
        }
        if self.paused && RING - self.ring.len() >= RESUME_AT {
            self.paused = false;
            self.stalled = None;
            return true;
        }
        false
    }

    fn slowest(&self) -> Option<(usize, WsiId, u64, Instant)> {
        self.members.iter().min_by_key(|m| m.next).map(|m| (m.at, m.id, m.next, Instant::now()))
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
    /// An instance for one more service loop, sharing `hub` with the
    /// instances of the vhost's other loops.
    pub fn sharing(hub: &Arc<Mutex<Hub>>) -> Mirror {
        let me = {
            let mut h = lock(hub);
            h.loops += 1;
            h.loops - 1
        };
        Mirror { hub: Arc::clone(hub), me, paused_here: Vec::new(), timer_pending: false }
    }

    /// Brings this loop's members of each instance in line with the
    /// hub's pause (set or lifted by whichever loop filled or drained
    /// the ring), and keeps a stall timer while one is paused.
    fn sync(&mut self, cx: &mut Cx<'_>) {
        let hub = lock(&self.hub);
        let mut any_paused = false;
        for inst in &hub.instances {
            let mine = inst.members.iter().filter(|m| m.at == self.me);
            let here = match self.paused_here.iter_mut().find(|(n, _)| *n == inst.name) {
                Some((_, p)) => p,
                None => {
                    self.paused_here.push((inst.name.clone(), false));
                    let last = self.paused_here.len() - 1;
                    &mut self.paused_here[last].1
                }
            };
            if *here != inst.paused {
                *here = inst.paused;
                for m in mine {
                    cx.rx_flow_control(m.id, !inst.paused);
                }
            }
            any_paused |= inst.paused && inst.members.iter().any(|m| m.at == self.me);
        }
        self.paused_here.retain(|(n, _)| hub.instances.iter().any(|i| i.name == *n));
        // Due when the slowest member will have stalled for STALL.
        let due = hub
            .instances
            .iter()
            .filter(|i| i.paused)
            .filter_map(|i| i.stalled.map(|(_, _, _, since)| STALL.saturating_sub(since.elapsed())))
            .min()
            .unwrap_or(STALL);
        drop(hub);
        if any_paused && !self.timer_pending {
            self.timer_pending = true;
            cx.schedule(due.max(Duration::from_millis(50)));
        }
    }
}

fn lock(hub: &Mutex<Hub>) -> MutexGuard<'_, Hub> {
    hub.lock().unwrap_or_else(|e| e.into_inner())
}

fn instance<'a>(hub: &'a mut Hub, name: &str) -> Option<&'a mut Instance> {
    hub.instances.iter_mut().find(|i| i.name == name)
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
                let mut hub = lock(&self.hub);
                if instance(&mut hub, &name).is_none() {
                    if hub.instances.len() >= MAX_INSTANCES {
                        return Action::Close;
                    }
                    hub.instances.push(Instance {
                        name: name.clone(),
                        ring: VecDeque::new(),
                        base: 0,
                        members: Vec::new(),
                        paused: false,
                        stalled: None,
                    });
                }
                let Some(inst) = instance(&mut hub, &name) else { return Action::Close };
                let head = inst.head();
                inst.members.push(Member { at: self.me, id: wsi.id, next: head });
                let paused = inst.paused;
                drop(hub);
                if paused {
                    // As this loop's other members are (see `sync`).
                    cx.rx_flow_control(wsi.id, false);
                }
                match self.paused_here.iter_mut().find(|(n, _)| *n == name) {
                    Some((_, p)) if *p != paused => {
                        // This loop had not caught up with the pause:
                        // `sync` does the others.
                        self.sync(cx);
                    }
                    Some(_) => {}
                    None => self.paused_here.push((name.clone(), paused)),
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
                let message: Arc<[u8]> = std::mem::take(&mut s.incoming).into();
                let binary = s.binary;
                let mut hub = lock(&self.hub);
                let Some(inst) = instance(&mut hub, &s.instance) else { return Action::Continue };
                if inst.ring.len() == RING {
                    // Full despite the pause (pieces already in flight):
                    // the slowest loses its oldest message, memory does not grow.
                    inst.ring.pop_front();
                    inst.base += 1;
                    let base = inst.base;
                    for m in inst.members.iter_mut() {
                        m.next = m.next.max(base);
                    }
                }
                inst.ring.push_back((binary, message));
                if !inst.paused && RING - inst.ring.len() < PAUSE_BELOW {
                    inst.paused = true;
                    inst.stalled = inst.slowest();
                }
                drop(hub);
                self.sync(cx);
                cx.callback_on_writable_all_protocol_all_loops();
            }
            Event::ServerWriteable(wsi, writer) => {
                self.sync(cx);
                let id = wsi.id;
                let name = &wsi.session.instance;
                // The message is taken out under the lock, written without it.
                let (kind, msg, seq) = {
                    let mut hub = lock(&self.hub);
                    let Some(inst) = instance(&mut hub, name) else { return Action::Continue };
                    let me = self.me;
                    let Some(member) = inst.members.iter().find(|m| m.at == me && m.id == id) else {
                        return Action::Continue;
                    };
                    let Some((binary, msg)) = inst.ring.get((member.next - inst.base) as usize) else {
                        return Action::Continue;
                    };
                    (if *binary { WriteKind::Binary } else { WriteKind::Text }, Arc::clone(msg), member.next)
                };
                if writer.write(&msg, kind, true).is_err() {
                    return Action::Close;
                }
                let mut hub = lock(&self.hub);
                let Some(inst) = instance(&mut hub, name) else { return Action::Continue };
                let me = self.me;
                let head = inst.head();
                let Some(member) = inst.members.iter_mut().find(|m| m.at == me && m.id == id) else {
                    return Action::Continue;
                };
                member.next = member.next.max(seq + 1);
                if member.next < head {
                    cx.callback_on_writable(id);
                }
                let resumed = inst.trim();
                drop(hub);
                if resumed {
                    self.sync(cx);
                    cx.callback_on_writable_all_protocol_all_loops();
                }
            }
            Event::Timer => {
                self.timer_pending = false;
                let mut resumed = false;
                {
                    let mut hub = lock(&self.hub);
                    for inst in hub.instances.iter_mut().filter(|i| i.paused) {
                        let Some((at, id, tail, since)) = inst.stalled else { continue };
                        let stuck = inst.members.iter().any(|m| m.at == at && m.id == id && m.next == tail);
                        if !stuck {
                            // That one moved: watch whoever is slowest now.
                            inst.stalled = inst.slowest();
                        } else if at == self.me && since.elapsed() >= STALL {
                            // No progress in STALL: let it go, the rest
                            // move on. (A member of another loop is that
                            // loop's to close, at its own timer.)
                            log::info!(
                                "{NAME}: a client read nothing for {STALL:?} while the ring was full; closing it"
                            );
                            inst.members.retain(|m| !(m.at == at && m.id == id));
                            cx.set_timeout(id, Some(Duration::ZERO));
                            resumed |= inst.trim();
                        }
                    }
                }
                self.sync(cx);
                if resumed {
                    cx.callback_on_writable_all_protocol_all_loops();
                }
                // `sync` keeps the timer going while a pause lasts.
            }
            Event::EventWaitCancelled => self.sync(cx),
            Event::Closed(wsi) => {
                let id = wsi.id;
                let me = self.me;
                let mut resumed = false;
                {
                    let mut hub = lock(&self.hub);
                    if let Some(inst) = instance(&mut hub, &wsi.session.instance) {
                        inst.members.retain(|m| !(m.at == me && m.id == id));
                        resumed = inst.trim();
                    }
                    // Instances live while they have members.
                    hub.instances.retain(|i| !i.members.is_empty());
                }
                if resumed {
                    self.sync(cx);
                    cx.callback_on_writable_all_protocol_all_loops();
                }
            }
            _ => {}
        }
        Action::Continue
    }
}
