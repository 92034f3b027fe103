//! The loop's side of CGI: each program's pipes and pidfd registered as
//! wsi of their own, their events routed to the connection the program
//! serves, the reaper's turn, and requests waiting for a slot started as
//! slots free.

use super::{Service, Wsi};
use crate::roles::cgi::Pipe;
use mio::{Interest, Token};

/// A CGI program's descriptor in the loop.
#[derive(Debug, Clone, Copy)]
pub(super) enum CgiWsi {
    /// A pipe of the program serving connection `conn`.
    Pipe { conn: usize, generation: u32, pipe: Pipe },
    /// The pidfd of a program, readable when it exits: first of the
    /// program serving connection `conn`, then (after its request) of the
    /// reaper, which keeps the token until it has reaped it.
    Exit { conn: usize, generation: u32 },
    /// The connection to a FastCGI server serving connection `conn`.
    Fcgi { conn: usize, generation: u32 },
}

impl Service {
    /// An event on a CGI program's descriptor at `key`.
    pub(super) fn cgi_event(&mut self, key: usize, w: CgiWsi, readable: bool, writable: bool) {
        match w {
            CgiWsi::Fcgi { conn, generation } => {
                if let Some(Wsi::Conn(c)) = self.wsis.get_mut(conn) {
                    if c.core.generation == generation {
                        if let Some(h) = c.http() {
                            h.fcgi_ready(key, readable, writable);
                        }
                        self.service_conn(conn);
                    }
                }
            }
            CgiWsi::Pipe { conn, generation, pipe } => {
                if let Some(Wsi::Conn(c)) = self.wsis.get_mut(conn) {
                    if c.core.generation == generation {
                        if let Some(h) = c.http() {
                            h.cgi_ready(pipe);
                        }
                        self.service_conn(conn);
                    }
                }
            }
            CgiWsi::Exit { conn, generation } => {
                // A program exited: reaped if its request is over, else its
                // connection learns it (the exit status decides how a
                // chunked body ends).
                if !self.sh.reaper.on_exit(key, self.sh.now) {
                    if let Some(Wsi::Conn(c)) = self.wsis.get_mut(conn) {
                        if c.core.generation == generation {
                            self.service_conn(conn);
                        }
                    }
                }
            }
        }
    }

    /// The end of a loop turn: the reaper's due work, waiters whose slot
    /// freed, and the tokens of closed pipes.
    pub(super) fn cgi_turn(&mut self) {
        if !self.sh.reaper.is_empty() {
            self.sh.reaper.poll(self.sh.now);
        }
        self.wake_cgi_waiters();
        if self.sh.fcgi.next_expiry().is_some_and(|at| at <= self.sh.now) {
            self.sh.fcgi.expire(self.sh.now, &mut self.sh.reaper);
        }
        self.free_dead_pipes();
    }

    /// Registers the pipes of a CGI the connection just started, and
    /// frees the tokens of pipes that were closed.
    pub(super) fn register_cgi(&mut self, key: usize) {
        self.free_dead_pipes();
        let Some(Wsi::Conn(conn)) = self.wsis.get_mut(key) else { return };
        let generation = conn.core.generation;
        let Some(run) = conn.http().and_then(|h| h.cgi_to_register()) else { return };
        if let Some((fd, kept)) = run.fcgi_link().map(|l| (l.fd(), l.token)) {
            // A kept connection is in the poll already: its token now
            // leads here.
            if let Some(token) = kept {
                let Some(slot @ Wsi::Cgi(CgiWsi::Fcgi { .. })) = self.wsis.get_mut(token) else {
                    log::error!("a kept FastCGI connection's token {token} is not its own");
                    self.close(key);
                    return;
                };
                *slot = Wsi::Cgi(CgiWsi::Fcgi { conn: key, generation });
                if let Some(Wsi::Conn(conn)) = self.wsis.get_mut(key) {
                    if let Some(run) = conn.http().and_then(|h| h.cgi_to_register()) {
                        run.tokens = Some([None, Some(token), None]);
                    }
                }
                return;
            }
            let entry = self.wsis.vacant_entry();
            let token = entry.key();
            let interest = Interest::READABLE | Interest::WRITABLE;
            match self.poll.registry().register(&mut mio::unix::SourceFd(&fd), Token(token), interest) {
                Ok(()) => {
                    entry.insert(Wsi::Cgi(CgiWsi::Fcgi { conn: key, generation }));
                    if let Some(Wsi::Conn(conn)) = self.wsis.get_mut(key) {
                        if let Some(run) = conn.http().and_then(|h| h.cgi_to_register()) {
                            run.tokens = Some([None, Some(token), None]);
                            if let Some(link) = run.fcgi_link_mut() {
                                link.token = Some(token);
                            }
                        }
                    }
                }
                Err(e) => {
                    log::error!("cannot register a FastCGI connection: {e}");
                    self.close(key);
                }
            }
            return;
        }
        let pidfd = run.pidfd();
        let mut tokens = [None; 3];
        let mut failed = None;
        for (fd, pipe) in run.fds() {
            let entry = self.wsis.vacant_entry();
            let token = entry.key();
            let interest = if pipe == Pipe::Stdin { Interest::WRITABLE } else { Interest::READABLE };
            match self.poll.registry().register(&mut mio::unix::SourceFd(&fd), Token(token), interest) {
                Ok(()) => {
                    entry.insert(Wsi::Cgi(CgiWsi::Pipe { conn: key, generation, pipe }));
                    tokens[pipe as usize] = Some(token);
                }
                Err(e) => failed = Some(e),
            }
        }
        let mut exit_token = None;
        if let Some(fd) = pidfd {
            let entry = self.wsis.vacant_entry();
            let token = entry.key();
            match self.poll.registry().register(&mut mio::unix::SourceFd(&fd), Token(token), Interest::READABLE) {
                Ok(()) => {
                    entry.insert(Wsi::Cgi(CgiWsi::Exit { conn: key, generation }));
                    exit_token = Some(token);
                }
                // Not fatal: its exit is polled instead.
                Err(e) => log::warn!("cannot register a CGI pidfd: {e}"),
            }
        }
        if let Some(Wsi::Conn(conn)) = self.wsis.get_mut(key) {
            if let Some(run) = conn.http().and_then(|h| h.cgi_to_register()) {
                run.tokens = Some(tokens);
                run.exit_token = exit_token;
                if pidfd.is_some() && exit_token.is_none() {
                    run.drop_pidfd();
                }
            }
        }
        if let Some(e) = failed {
            log::error!("cannot register a CGI pipe: {e}");
            self.close(key);
        }
    }

    /// Vacates the slots of CGI pipes that were closed, and of pidfds of
    /// programs reaped (freed at the end of the turn, like closed
    /// connections').
    pub(super) fn free_dead_pipes(&mut self) {
        let mut dead = std::mem::take(&mut self.sh.dead_pipes);
        dead.extend(self.sh.reaper.take_freed());
        for token in dead {
            if let Some(slot @ Wsi::Cgi(_)) = self.wsis.get_mut(token) {
                *slot = Wsi::Vacated;
                self.vacated.push(token);
            }
        }
    }

    /// Starts requests waiting for a CGI slot, in their order, while their
    /// mount has slots free (freed this turn by runs that ended). A waiter
    /// no longer waiting (gone, or its key reused) is skipped.
    fn wake_cgi_waiters(&mut self) {
        if self.sh.cgi_waiters.is_empty() {
            return;
        }
        for slots in self.sh.cgi_waiters.waited_for() {
            loop {
                let (running, max) = crate::roles::h1::slots_in_use(&mut self.sh, &slots, None);
                if running >= max {
                    break;
                }
                let Some((key, generation)) = self.sh.cgi_waiters.first(&slots) else { break };
                if !matches!(self.wsis.get(key), Some(Wsi::Conn(c)) if c.core.generation == generation && c.waits_for_cgi())
                {
                    self.sh.cgi_waiters.remove(&slots, key);
                    continue;
                }
                // As its timer would have it do, a slot being free: it
                // leaves the queue when it starts.
                self.conn_timer(key);
                if self.sh.cgi_waiters.first(&slots) == Some((key, generation)) {
                    break;
                }
            }
        }
    }
}
