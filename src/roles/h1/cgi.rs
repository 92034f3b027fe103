//! CGI orchestration for an HTTP/1 connection: starting the program (or
//! queueing the request for a slot), moving the request body to its stdin
//! and its stdout to the client, finishing the run, and local redirects.
//!
//! The process side (spawning, pipes, the response head parser) is in
//! [`crate::roles::cgi`]; this is the connection side, a second
//! `impl H1` block next to the state machine in the parent module.

use super::{body_reading, log_path, open_error_status, Close, Reading, Writing, H1, READ_CHUNK};
use crate::conn::{Core, Env, Step};
use crate::http::request::{self, Framing, Limits as HeadLimits, Request};
use crate::http::respond::{begin_head, end_head, server_sets, BodyFraming};
use crate::http::Version;
use crate::mount::Origin;
use crate::roles::cgi::{CgiRun, Exit, OutFraming, EXIT_WAIT};
use crate::vhost::strip_port;
use std::io;

/// How long a request waits for a CGI slot before 503 (it is started as
/// soon as one frees: `Env::cgi_waiters`).
const CGI_SLOT_WAIT: std::time::Duration = std::time::Duration::from_secs(2);
/// Local CGI redirects followed for one request.
const MAX_LOCAL_REDIRECTS: u8 = 3;

impl H1 {
    /// Starts the CGI program for `req` on the `cgi://` mount `mi`, or
    /// makes the request wait for a slot when the mount is at its limit or
    /// others already wait (`queued`: it is the one whose turn it is).
    pub(super) fn serve_cgi(
        &mut self,
        c: &mut Core,
        sh: &mut Env,
        req: Request,
        mi: usize,
        redirects: u8,
        queued: bool,
    ) {
        let vi = c.vhost;
        let now = sh.now;
        let looked = {
            let m = &sh.vhosts[vi].mounts[mi];
            let rest = m.remainder(req.path());
            let Origin::Cgi(origin) = &m.origin else { return };
            let cache = &mut sh.live[vi].mounts[mi].cgi_cache;
            let symlinks = warren_vfs::Symlinks::Confined;
            crate::roles::cgi::cgi_lookup_cached(origin, &m.mountpoint, rest, symlinks, cache, now)
        };
        let m = &sh.vhosts[vi].mounts[mi];
        let Origin::Cgi(origin) = &m.origin else { return };
        let target = match looked {
            Ok(t) => t,
            Err(why) => {
                log::info!("{}: cgi \"{}\": refused ({}): {}", c.peer, log_path(req.path()), why.status(), why.why());
                self.skip_body(&req);
                self.send_error(c, sh, why.status(), Some(&req));
                return;
            }
        };
        // Paths handed to the program are confined as file opens are: one
        // that resolves outside its mount's root refuses the request.
        let mounts = &sh.vhosts[vi].mounts;
        let translated = if target.path_info.is_empty() {
            Ok(None)
        } else {
            // Worked out for each request, never cached: a link swapped
            // in below the root must be refused from that moment on, as
            // a file open there is.
            crate::roles::cgi::translate(mounts, &target.path_info)
        };
        let path_translated = match translated {
            Ok(p) => p.map(|p| p.to_string_lossy().into_owned()),
            Err(e) => {
                // As a file open there: out of the root 403, a name too
                // long or a loop of links (the request's fault) 404.
                let status = open_error_status(&e);
                log::info!(
                    "{}: cgi \"{}\": refused ({status}): PATH_TRANSLATED for \"{}\": {e}",
                    c.peer,
                    log_path(req.path()),
                    log_path(&target.path_info)
                );
                self.skip_body(&req);
                self.send_error(c, sh, status, Some(&req));
                return;
            }
        };
        let framing = req.framing();
        self.reading = body_reading(framing);
        // Draining: this response is the connection's last.
        self.tx.keep_alive = req.keep_alive() && !sh.draining;
        if sh.live[vi].mounts[mi].cgi_running >= m.cgi.max_processes || (!queued && sh.cgi_waiters.has_waiters(vi, mi))
        {
            // CGI-3 [REC]: wait briefly for a slot, reading nothing, in
            // line: the loop starts the first waiter when a slot frees.
            if !sh.cgi_waiters.push(vi, mi, c.key, c.generation) {
                log::warn!("{}: too many requests wait for CGI slots of \"{}\"; 503", c.peer, log_path(req.path()));
                self.tx.keep_alive = false;
                self.reading = Reading::Done;
                self.send_simple(c, sh, 503, &[("Retry-After", "1")], true);
                sh.force(c);
                return;
            }
            c.rx_paused = true;
            self.cgi_paused_rx = true;
            let until = sh.now + CGI_SLOT_WAIT;
            self.writing = Writing::CgiWait { req: Box::new(req), mount: mi, until, redirects };
            sh.timers.set(c.key, until);
            return;
        }
        let document_root = sh.vhosts[vi].document_root.clone();
        // The origin is the program itself (no `stat` for that here).
        let program_mount = target.program == *origin;
        let no_script = path_translated.is_none();
        let host = req.host().map(strip_port).filter(|h| !h.is_empty());
        let cgi_req = warren_cgi::CgiRequest {
            method: req.method_str().to_string(),
            script_name: target.script_name.clone(),
            path_info: target.path_info.clone(),
            path_translated,
            query: req.query().unwrap_or("").to_string(),
            request_uri: req.target().to_string(),
            remote: Some(c.peer),
            server_name: host.unwrap_or(&sh.vhosts[vi].name).to_string(),
            server_port: c.out.sock.local_addr().map_or(0, |a| a.port()),
            protocol: req.version().as_str().to_string(),
            https: c.is_tls(),
            document_root,
            // A program mount (php-cgi, say) with no path after it has no
            // script: php-cgi would take SCRIPT_FILENAME, its own file,
            // as the script. Without one it answers "No input file".
            script_filename: if program_mount && no_script {
                String::new()
            } else {
                target.program.to_string_lossy().into_owned()
            },
            content_type: req.header_str("content-type").map(str::to_string),
            content_length: match framing {
                Framing::Length(n) => Some(n),
                _ => None,
            },
            headers: req.headers().map(|(k, v)| (k.to_string(), String::from_utf8_lossy(v).into_owned())).collect(),
            // An interpreter mount (php-cgi): as Apache's Action does.
            redirect: program_mount.then(|| (200, req.path().to_string())),
            extra: tls_vars(&req).into_iter().chain(m.cgi.env.iter().cloned()).collect(),
            path: m.cgi.path.clone(),
        };
        let cwd = target.program.parent().map_or_else(|| std::path::PathBuf::from("/"), |p| p.to_path_buf());
        let child = warren_cgi::spawn(&target.program, &[], &cgi_req.environment(), &cwd, m.cgi.limits);
        let child = match child {
            Ok(found) => found,
            Err(e) => {
                log::error!("cgi {}: cannot start {}: {e}", target.script_name, target.program.display());
                self.skip_body(&req);
                self.reading = Reading::Done;
                let status = if e.kind() == io::ErrorKind::PermissionDenied { 403 } else { 500 };
                self.send_error(c, sh, status, Some(&req));
                return;
            }
        };
        let timeout = m.cgi.timeout;
        sh.live[vi].mounts[mi].cgi_running += 1;
        let metrics = &sh.handle.inner.metrics;
        crate::metrics::inc(&metrics.cgi_started);
        crate::metrics::inc(&metrics.cgi_running);
        let mut run = CgiRun::new(child, target.script_name, vi, mi, redirects);
        if matches!(framing, Framing::None | Framing::Length(0)) {
            // No body: the program sees the end of its input at once.
            self.reading = Reading::Done;
            run.body_done = true;
            run.flush_stdin();
        }
        // How the body will leave is settled by the head; until then,
        // remember what the request allows.
        run.framing = if self.tx.head_only {
            OutFraming::Discard
        } else if self.tx.version == Version::Http11 {
            OutFraming::Chunk
        } else {
            OutFraming::Close
        };
        if self.cgi_paused_rx {
            self.cgi_paused_rx = false;
            c.rx_paused = false;
        }
        self.writing = Writing::Cgi(Box::new(run));
        if let Err(e) = self.continue_if_expected(c, &req) {
            log::debug!("{}: write: {e}", c.peer);
        }
        sh.timers.set(c.key, sh.now + timeout);
        sh.force(c);
    }

    /// One step of a CGI response: stderr to the log, body to stdin,
    /// and, when the client can take it, one read of stdout sent on.
    pub(super) fn cgi_step(&mut self, c: &mut Core, sh: &mut Env) -> Result<bool, Close> {
        let Writing::Cgi(mut run) = std::mem::replace(&mut self.writing, Writing::Idle) else { return Ok(false) };
        // stderr is drained a bounded amount per step (and does not count
        // as progress for the timeout: a program that only talks to its
        // log is not answering).
        let logged = run.drain_stderr();
        if run.stderr_pending() {
            sh.force(c);
        }
        let mut progress = run.flush_stdin();
        if self.cgi_paused_rx && !run.input_blocked() {
            self.cgi_paused_rx = false;
            c.rx_paused = false;
            progress = true;
        }
        if !run.stdout_eof && run.stdout_ready && c.out.writable && !c.out.has_pending() {
            let mut buf = std::mem::take(&mut sh.tx);
            buf.resize(READ_CHUNK, 0);
            let r = run.read_stdout(&mut buf);
            let r = match r {
                Ok(Some(n)) if n > 0 => {
                    progress = true;
                    self.cgi_output(c, sh, run, &buf[..n])
                }
                Ok(_) => Ok(Some(run)),
                Err(e) => {
                    log::warn!("cgi {}: stdout: {e}", run.script);
                    run.stdout_eof = true;
                    Ok(Some(run))
                }
            };
            sh.tx = buf;
            run = match r? {
                Some(run) => run,
                // The run ended (an error page, a redirect).
                None => return Ok(true),
            };
        }
        if run.stdout_eof {
            self.cgi_finish(c, sh, run);
            // Still waiting for its exit status: the timer comes back.
            return Ok(!matches!(self.writing, Writing::Cgi(_)));
        }
        if progress {
            let timeout = sh.vhosts[run.vhost].mounts[run.mount].cgi.timeout;
            sh.timers.set(c.key, sh.now + timeout);
        }
        self.writing = Writing::Cgi(run);
        Ok(progress || logged)
    }

    /// Bytes from stdout: the head while it lasts, then the body.
    /// Returns the run if it goes on.
    fn cgi_output(
        &mut self,
        c: &mut Core,
        sh: &mut Env,
        mut run: Box<CgiRun>,
        data: &[u8],
    ) -> Result<Option<Box<CgiRun>>, Close> {
        let Some(parser) = run.parser.as_mut() else {
            if let Err(e) = self.cgi_body(c, &mut run, data, Vec::new()) {
                // The client is gone: so is the program.
                self.cgi_end(c, sh, *run, true);
                return Err(e);
            }
            return Ok(Some(run));
        };
        let (head, used) = match parser.feed(data) {
            Ok(None) => return Ok(Some(run)),
            Ok(Some(h)) => h,
            Err(e) => {
                log::warn!("cgi {}: bad response head: {e:?}", run.script);
                self.cgi_end(c, sh, *run, true);
                self.tx.keep_alive = false;
                self.send_error(c, sh, 502, None);
                return Ok(None);
            }
        };
        run.parser = None;
        if let Some(warren_cgi::Redirect::Local(path)) = &head.redirect {
            // RFC 3875 §6.2.2: serve that path instead, as a GET.
            let path = path.clone();
            let redirects = run.redirects;
            self.cgi_end(c, sh, *run, true);
            self.internal_redirect(c, sh, &path, redirects + 1);
            return Ok(None);
        }
        let discard = run.framing == OutFraming::Discard || matches!(head.status, 100..=199 | 204 | 304);
        if head.chunked && self.tx.version == Version::Http10 && !discard {
            // An HTTP/1.0 client cannot take chunks, and passing them on
            // as body bytes would corrupt it.
            log::warn!("cgi {}: a chunked response for an HTTP/1.0 client", run.script);
            self.cgi_end(c, sh, *run, true);
            self.tx.keep_alive = false;
            self.send_error(c, sh, 502, None);
            return Ok(None);
        }
        let framing = if discard {
            BodyFraming::None
        } else {
            BodyFraming::plan(self.tx.version, head.status, head.content_length, head.chunked)
        };
        run.framing = match framing {
            _ if discard => OutFraming::Discard,
            BodyFraming::Chunked if head.chunked => OutFraming::Passthrough,
            BodyFraming::Chunked => OutFraming::Chunk,
            BodyFraming::Length(n) => OutFraming::Length(n),
            _ => OutFraming::Close,
        };
        let mut out = Vec::with_capacity(512 + data.len());
        let vh = &sh.vhosts[c.vhost];
        let env = vh.head_env(sh.date.text(), c.is_tls());
        let mut rh = begin_head(&mut out, &mut self.tx, head.status, env);
        for (k, v) in &head.headers {
            // The server owns the framing and these fields.
            if !server_sets(k) {
                rh.header(k, v);
            }
        }
        end_head(rh, &mut self.tx, framing);
        if let Err(e) = self.cgi_body(c, &mut run, &data[used..], out) {
            self.cgi_end(c, sh, *run, true);
            return Err(e);
        }
        Ok(Some(run))
    }

    /// Sends body bytes framed as the head said, after `head` (the
    /// response head, for the first piece), in one write and without
    /// copying the data.
    fn cgi_body(&mut self, c: &mut Core, run: &mut CgiRun, data: &[u8], mut head: Vec<u8>) -> Result<(), Close> {
        use std::io::Write as _;
        let mut line = [0u8; 24];
        let mut line_len = 0;
        let body: &[u8] = match run.framing {
            OutFraming::Discard => &[],
            OutFraming::Chunk if data.is_empty() => &[],
            OutFraming::Chunk => {
                let mut cur = io::Cursor::new(&mut line[..]);
                let close = if run.chunk_open { "\r\n" } else { "" };
                write!(cur, "{close}{:x}\r\n", data.len())?;
                line_len = cur.position() as usize;
                run.chunk_open = true;
                data
            }
            OutFraming::Length(rem) => {
                // Bytes past the length the script announced are dropped.
                let n = (data.len() as u64).min(rem) as usize;
                run.framing = OutFraming::Length(rem - n as u64);
                &data[..n]
            }
            OutFraming::Passthrough => {
                // The script's own chunks: followed as they pass, so that
                // the body ends at the last chunk and nothing after it
                // (a second response, say) reaches the client.
                let mut used = 0;
                while used < data.len() && !run.own_chunks.is_done() {
                    match run.own_chunks.decode(&data[used..]) {
                        Ok((0, _)) => break,
                        Ok((n, _)) => used += n,
                        Err(e) => {
                            log::warn!("cgi {}: bad chunked framing in its body: {e:?}", run.script);
                            return Err(Close("bad chunked framing from a CGI".into()));
                        }
                    }
                }
                &data[..used]
            }
            OutFraming::Close => data,
        };
        let prefix: &[u8] = if head.is_empty() {
            &line[..line_len]
        } else {
            head.extend_from_slice(&line[..line_len]);
            &head
        };
        if prefix.is_empty() && body.is_empty() {
            return Ok(());
        }
        c.out.write_parts(prefix, body)?;
        Ok(())
    }

    /// stdout reached its end: close the response, retire the program.
    /// When we frame the body, the last chunk goes out only if the program
    /// did not die of a signal, which may take a moment to learn: until
    /// then (at most `EXIT_WAIT`) the run waits here, polled by the timer.
    pub(super) fn cgi_finish(&mut self, c: &mut Core, sh: &mut Env, mut run: Box<CgiRun>) {
        if run.parser.is_some() {
            // It ended (or crashed) before a whole head: CGI-5, 502.
            log::warn!("cgi {}: ended without a complete response head", run.script);
            self.cgi_end(c, sh, *run, true);
            self.tx.keep_alive = false;
            self.send_error(c, sh, 502, None);
            return;
        }
        let complete = match run.framing {
            OutFraming::Chunk => match run.exit() {
                Exit::Killed => false,
                Exit::Exited => true,
                Exit::Running => {
                    let until = *run.exit_wait.get_or_insert(sh.now + EXIT_WAIT);
                    if sh.now < until {
                        sh.timers.set(c.key, (sh.now + run.exit_poll()).min(until));
                        self.writing = Writing::Cgi(run);
                        return;
                    }
                    // It closed stdout and lives on: its answer is whole.
                    true
                }
            },
            OutFraming::Length(rem) => rem == 0,
            OutFraming::Passthrough => run.own_chunks.is_done(),
            OutFraming::Close | OutFraming::Discard => true,
        };
        if complete {
            if run.framing == OutFraming::Chunk {
                let end: &[u8] = if run.chunk_open { b"\r\n0\r\n\r\n" } else { b"0\r\n\r\n" };
                if let Err(e) = c.out.write(end, false) {
                    log::debug!("{}: write: {e}", c.peer);
                }
            }
        } else {
            // Cut short (killed, or short of its own framing): the body
            // must not look whole, so it ends without its last chunk or
            // short of its length, by closing; and its group is ended.
            log::warn!("cgi {}: the response body was cut short; closing the connection", run.script);
            self.tx.keep_alive = false;
        }
        self.cgi_end(c, sh, *run, !complete);
        self.writing = Writing::Complete;
        sh.force(c);
    }

    /// The request body's framing is broken: the program is ended, and the
    /// client gets 400 if its response has not begun (else the
    /// connection just closes).
    pub(super) fn cgi_bad_body(&mut self, c: &mut Core, sh: &mut Env, status: u16) -> Result<(), Close> {
        let Writing::Cgi(run) = std::mem::replace(&mut self.writing, Writing::Idle) else { return Ok(()) };
        let head_sent = run.parser.is_none();
        log::info!("cgi {}: request body failed ({status}); ending it", run.script);
        self.cgi_end(c, sh, *run, true);
        self.tx.keep_alive = false;
        self.reading = Reading::Done;
        if head_sent {
            self.writing = Writing::Closed;
            return Err(Close("bad request body during a CGI response".into()));
        }
        self.send_error(c, sh, status, None);
        sh.force(c);
        Ok(())
    }

    /// The run is over: its program goes to the reaper (`kill`: cut
    /// short), its slot is free, its pipes' tokens are let go.
    pub(super) fn cgi_end(&mut self, c: &mut Core, sh: &mut Env, run: CgiRun, kill: bool) {
        let m = &mut sh.live[run.vhost].mounts[run.mount];
        m.cgi_running = m.cgi_running.saturating_sub(1);
        sh.handle.inner.metrics.cgi_running.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        let linger = sh.vhosts[run.vhost].mounts[run.mount].cgi.timeout;
        if let Some(tokens) = run.tokens {
            sh.dead_pipes.extend(tokens.into_iter().flatten());
        }
        if self.cgi_paused_rx {
            self.cgi_paused_rx = false;
            c.rx_paused = false;
        }
        run.retire(&mut sh.reaper, kill, linger, sh.now);
    }

    /// Serves `path` as a GET in place of the CGI's response (a local
    /// redirect); a chain of more than a few is an error.
    fn internal_redirect(&mut self, c: &mut Core, sh: &mut Env, path: &str, redirects: u8) {
        if redirects > MAX_LOCAL_REDIRECTS {
            log::warn!("{}: more than {MAX_LOCAL_REDIRECTS} local CGI redirects", c.peer);
            self.tx.keep_alive = false;
            self.send_error(c, sh, 500, None);
            return;
        }
        let host = sh.vhosts[c.vhost].name.clone();
        let head = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n");
        let limits = HeadLimits { max_head: sh.limits.max_head, max_uri: sh.limits.max_uri };
        let keep_alive = self.tx.keep_alive;
        let version = self.tx.version;
        match request::parse(head.as_bytes(), limits) {
            Ok(Some((req, _))) => {
                let body_pending = !matches!(self.reading, Reading::Done);
                let reading = std::mem::replace(&mut self.reading, Reading::Done);
                self.writing = Writing::Idle;
                if let Err(Close(why)) = self.on_request(c, sh, req) {
                    log::debug!("{}: local redirect: {why}", c.peer);
                }
                // The client's own request stays what it was.
                self.tx.keep_alive &= keep_alive && !body_pending;
                self.tx.version = version;
                if body_pending {
                    self.reading = reading;
                }
                if let Writing::Cgi(run) = &mut self.writing {
                    run.redirects = redirects;
                }
            }
            _ => {
                self.tx.keep_alive = false;
                self.send_error(c, sh, 500, None);
            }
        }
    }

    /// The request waits for a CGI slot.
    pub(crate) fn waits_for_cgi(&self) -> bool {
        matches!(self.writing, Writing::CgiWait { .. })
    }

    /// The CGI run, if one needs its pipes registered.
    pub(crate) fn cgi_to_register(&mut self) -> Option<&mut CgiRun> {
        match &mut self.writing {
            Writing::Cgi(run) if run.tokens.is_none() => Some(run),
            _ => None,
        }
    }

    /// A pipe of this connection's CGI is ready.
    pub(crate) fn cgi_ready(&mut self, pipe: crate::roles::cgi::Pipe) {
        if let Writing::Cgi(run) = &mut self.writing {
            match pipe {
                crate::roles::cgi::Pipe::Stdin => run.stdin_ready = true,
                crate::roles::cgi::Pipe::Stdout => run.stdout_ready = true,
                crate::roles::cgi::Pipe::Stderr => run.stderr_ready = true,
            }
        }
    }

    /// The timer of a request waiting for a CGI slot (or woken because a
    /// slot freed), or of a running program: its slot, its exit, or its
    /// timeout.
    pub(super) fn cgi_timer(&mut self, c: &mut Core, sh: &mut Env, writing: Writing) -> Step {
        match writing {
            Writing::CgiWait { req, mount, until, redirects } => {
                let max = sh.vhosts[c.vhost].mounts[mount].cgi.max_processes;
                if sh.live[c.vhost].mounts[mount].cgi_running < max {
                    sh.cgi_waiters.remove(c.vhost, mount, c.key);
                    self.serve_cgi(c, sh, *req, mount, redirects, true);
                } else if sh.now >= until {
                    sh.cgi_waiters.remove(c.vhost, mount, c.key);
                    log::warn!("{}: CGI slots of \"{}\" all busy; 503", c.peer, log_path(req.path()));
                    self.cgi_paused_rx = false;
                    c.rx_paused = false;
                    self.tx.keep_alive = false;
                    self.reading = Reading::Done;
                    self.send_simple(c, sh, 503, &[("Retry-After", "1")], true);
                } else {
                    // Early (the timer was moved): the deadline stays.
                    self.writing = Writing::CgiWait { req, mount, until, redirects };
                    sh.timers.set(c.key, until);
                    return Step::Keep;
                }
                sh.force(c);
                Step::Keep
            }
            Writing::Cgi(run) if run.exit_wait.is_some() => {
                // stdout has ended; was it a crash?
                self.cgi_finish(c, sh, run);
                Step::Keep
            }
            Writing::Cgi(run) if !c.out.writable && c.out.peer_progress() => {
                // The program waits on a slow but steady reader (its
                // output backs up behind our full socket): not stuck.
                let timeout = sh.vhosts[run.vhost].mounts[run.mount].cgi.timeout;
                self.writing = Writing::Cgi(run);
                sh.timers.set(c.key, sh.now + timeout);
                Step::Keep
            }
            Writing::Cgi(run) => {
                let head_sent = run.parser.is_none();
                log::warn!("cgi {}: no progress within its timeout; ending it", run.script);
                crate::metrics::inc(&sh.handle.inner.metrics.cgi_timeouts);
                self.cgi_end(c, sh, *run, true);
                if head_sent || c.out.has_pending() {
                    return Step::Close;
                }
                // CGI-10: 504 when nothing was sent yet.
                self.tx.keep_alive = false;
                self.reading = Reading::Done;
                self.send_error(c, sh, 504, None);
                sh.timers.set(c.key, sh.now + sh.limits.io_timeout);
                sh.force(c);
                Step::Keep
            }
            other => {
                self.writing = other;
                Step::Keep
            }
        }
    }

    /// A piece of the request body for the program's stdin (`done`: the
    /// body is complete); bytes it takes are progress for its timeout.
    pub(super) fn cgi_feed(&mut self, c: &mut Core, sh: &mut Env, data: Option<&[u8]>, done: bool) {
        let Writing::Cgi(run) = &mut self.writing else { return };
        let mut moved = false;
        if let Some(data) = data {
            moved |= run.feed(data);
        }
        if done {
            run.body_done = true;
            moved |= run.flush_stdin();
        }
        if run.input_blocked() {
            c.rx_paused = true;
            self.cgi_paused_rx = true;
        }
        if moved {
            let timeout = sh.vhosts[run.vhost].mounts[run.mount].cgi.timeout;
            sh.timers.set(c.key, sh.now + timeout);
        }
        sh.force(c);
    }
}

/// mod_ssl's `SSL_*` variables for a program answering over TLS (set
/// before the mount's own `cgi-env`, which may override them): what the
/// request was told of its connection (`tls::policy::session_for`).
fn tls_vars(req: &Request) -> Vec<(String, String)> {
    #[cfg(feature = "tls")]
    if let Some(t) = req.tls() {
        return t.cgi_vars();
    }
    let _ = req;
    Vec::new()
}
