//! CGI orchestration for an HTTP/1 connection: starting the program (or
//! queueing the request for a slot), moving the request body to its stdin
//! and its stdout to the client, finishing the run, and local redirects.
//!
//! The process side (spawning, pipes, the response head parser) is in
//! [`crate::roles::cgi`]; this is the connection side, a second
//! `impl H1` block next to the state machine in the parent module.

use super::{body_reading, log_path, Close, Reading, Writing, H1, READ_CHUNK};
use crate::conn::{Core, Env, Step};
use crate::http::request::{self, Framing, Limits as HeadLimits, Request};
use crate::http::respond::{begin_head, end_head, server_sets, BodyFraming};
use crate::http::{open_error_status, Version};
use crate::mount::{FcgiAddr, Located, Origin, Runner};
use crate::roles::cgi::{CgiRun, CgiTarget, ConnectError, Exit, FcgiLink, OutFraming, Retire, Slots, EXIT_WAIT};
use crate::vhost::strip_port;
use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};

/// How much of a FastCGI answer is taken per turn.
const FCGI_READ_CHUNK: usize = 64 * 1024;
/// How long a request waits for a CGI slot before 503 (it is started as
/// soon as one frees: `Env::cgi_waiters`).
const CGI_SLOT_WAIT: std::time::Duration = std::time::Duration::from_secs(2);
/// `PATH_INFO` segments past which an in-place script's is not
/// translated (each costs a lookup in the loop).
const MAX_TRANSLATED_DEPTH: usize = 32;
/// `FCGI_OVERLOADED`: the FastCGI server refused the request for want
/// of resources.
const FCGI_OVERLOADED: u8 = 2;
/// Local CGI redirects followed for one request.
const MAX_LOCAL_REDIRECTS: u8 = 3;

impl H1 {
    /// Starts the CGI program for `req` on mount `mi` (a `cgi://` mount,
    /// or a file mount running `script` in place), or makes the request
    /// wait for a slot when the mount is at its limit or others already
    /// wait (`queued`: it is the one whose turn it is). Without `script`
    /// the mount's path is resolved again.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn serve_cgi(
        &mut self,
        c: &mut Core,
        sh: &mut Env,
        req: Request,
        mi: usize,
        redirects: u8,
        queued: Option<std::time::Instant>,
        script: Option<crate::mount::Script>,
    ) {
        let vi = c.vhost;
        let plan = match script {
            Some(s) => script_launch(sh, vi, mi, s),
            None => plan_cgi(sh, vi, mi, &req),
        };
        if !matches!(plan, Plan::Run(_)) {
            // No program after all (a request that waited for a slot is
            // planned again): nothing reads the body, nothing is paused.
            self.reading = Reading::Done;
            if self.cgi_paused_rx {
                self.cgi_paused_rx = false;
                c.rx_paused = false;
            }
        }
        let launch = match plan {
            Plan::Run(l) => l,
            Plan::Refuse(status, why) => {
                log::info!("{}: cgi \"{}\": refused ({status}): {why}", c.peer, log_path(req.path()));
                self.skip_body(&req);
                self.send_error(c, sh, status, Some(&req));
                return;
            }
            Plan::AddSlash => {
                let to = format!("{}/", super::raw_path(&req));
                self.skip_body(&req);
                self.redirect(c, sh, 301, &to, &req);
                return;
            }
            Plan::File => {
                self.serve_file(c, sh, &req, mi);
                return;
            }
        };
        let framing = req.framing();
        self.reading = body_reading(framing);
        // Draining: this response is the connection's last.
        self.tx.keep_alive = req.keep_alive() && !sh.draining;
        let slots = match &launch.exec {
            Exec::Spawn { .. } => Slots::Mount(vi, mi),
            Exec::Fcgi(addr) => Slots::Fcgi(addr.clone()),
        };
        let max = sh.vhosts[vi].mounts[mi].cgi.fcgi.max_requests;
        let (running, max) = slots_in_use(sh, &slots, Some(max));
        if running >= max || (queued.is_none() && sh.cgi_waiters.has_waiters(&slots)) {
            // CGI-3 [REC]: wait briefly for a slot, reading nothing, in
            // line: the loop starts the first waiter when a slot frees.
            // One that waited already keeps its place and its deadline.
            let pushed = match queued {
                Some(_) => sh.cgi_waiters.push_front(&slots, c.key, c.generation),
                None => sh.cgi_waiters.push(&slots, c.key, c.generation),
            };
            if !pushed {
                log::warn!("{}: too many requests wait for CGI slots of \"{}\"; 503", c.peer, log_path(req.path()));
                self.tx.keep_alive = false;
                self.reading = Reading::Done;
                self.send_simple(c, sh, 503, &[("Retry-After", "1")], true);
                sh.force(c);
                return;
            }
            c.rx_paused = true;
            self.cgi_paused_rx = true;
            // Past the configured limit, a short wait. Under it, a
            // FastCGI server's requests over its workers wait here
            // rather than in its listen queue (see `FcgiPool`): as long
            // as they would have there.
            let wait = match &slots {
                Slots::Fcgi(addr) if !sh.fcgi.at_max(addr) => sh.vhosts[vi].mounts[mi].cgi.timeout,
                _ => CGI_SLOT_WAIT,
            };
            let until = queued.unwrap_or(sh.now + wait);
            let short = queued.is_none() && wait == CGI_SLOT_WAIT;
            sh.timers.set(c.key, wait_timer(sh, &slots, until));
            self.writing = Writing::CgiWait { req: Box::new(req), mount: mi, slots, until, redirects, short };
            return;
        }
        let m = &sh.vhosts[vi].mounts[mi];
        let host = req.host().map(strip_port).filter(|h| !h.is_empty());
        let cgi_req = warren_cgi::CgiRequest {
            method: req.method_str().to_string(),
            script_name: launch.script_name.clone(),
            path_info: launch.path_info,
            path_translated: launch.path_translated,
            query: req.query().unwrap_or("").to_string(),
            request_uri: req.target().to_string(),
            remote: Some(c.peer),
            server_name: host.unwrap_or(&sh.vhosts[vi].name).to_string(),
            server_port: sh.listen_ports.get(c.listener).copied().unwrap_or(0),
            protocol: req.version().as_str().to_string(),
            https: c.is_tls(),
            document_root: launch.document_root,
            script_filename: launch.script_filename,
            content_type: req.header_str("content-type").map(str::to_string),
            content_length: match framing {
                Framing::Length(n) => Some(n),
                _ => None,
            },
            headers: req.headers().map(|(k, v)| (k.to_string(), String::from_utf8_lossy(v).into_owned())).collect(),
            redirect_status: launch.redirect_status,
            redirect_url: launch.redirect_url,
            extra: tls_vars(&req).into_iter().chain(m.cgi.env.iter().cloned()).collect(),
            path: m.cgi.path.clone(),
        };
        let no_body = matches!(framing, Framing::None | Framing::Length(0));
        let (mut timeout, conf) = (m.cgi.timeout, m.cgi.fcgi.clone());
        let mut run = match launch.exec {
            Exec::Spawn { program, args, cwd } => {
                let child = warren_cgi::spawn(&program, &args, &cgi_req.environment(), &cwd, m.cgi.limits);
                let child = match child {
                    Ok(found) => found,
                    Err(e) => {
                        log::error!("cgi {}: cannot start {}: {e}", launch.script_name, program.display());
                        self.skip_body(&req);
                        self.reading = Reading::Done;
                        let status = if e.kind() == io::ErrorKind::PermissionDenied { 403 } else { 500 };
                        self.send_error(c, sh, status, Some(&req));
                        return;
                    }
                };
                sh.live[vi].mounts[mi].cgi_running += 1;
                CgiRun::new(child, launch.script_name, vi, mi, redirects)
            }
            Exec::Fcgi(addr) => {
                if matches!(framing, Framing::Chunked) {
                    // PHP reads stdin only up to CONTENT_LENGTH: a body
                    // without one would reach the script as nothing, the
                    // upload silently lost. Said plainly instead (as nginx
                    // did before it spooled such bodies to disk).
                    log::info!("{}: {addr}: a chunked request body (no length); 411", c.peer);
                    self.fcgi_refused(c, sh, &req, 411);
                    return;
                }
                let keep_conn = conf.keepalive > 0;
                let mut link =
                    match sh.fcgi.connect(&addr, keep_conn, std::mem::take(&mut self.fcgi_fresh), &mut sh.reaper) {
                        Ok(link) => link,
                        Err(e) => {
                            let status = match e {
                                ConnectError::Busy(e) => {
                                    log::warn!("{}: {addr}: {e}; 503", c.peer);
                                    503
                                }
                                ConnectError::Down(e) => {
                                    log::error!("{}: cannot connect to {addr}: {e}; 502", c.peer);
                                    502
                                }
                            };
                            self.fcgi_refused(c, sh, &req, status);
                            return;
                        }
                    };
                if let Err(e) = link.begin(&cgi_req.pairs(), no_body) {
                    // A header (or a cgi-env value) longer than a record:
                    // nothing was sent.
                    log::warn!("{}: {addr}: {e}; 431", c.peer);
                    sh.fcgi.release(link, 0, false, &mut sh.reaper);
                    self.fcgi_refused(c, sh, &req, 431);
                    return;
                }
                let mut run = CgiRun::fcgi(link, launch.script_name, vi, mi, redirects);
                // RFC 9110 §9.2.2: a request that may be repeated. A
                // worker killed while running a POST (or a GET) also
                // closes without an answer; only these may then run twice
                // (as nginx resends only idempotent methods).
                let idempotent = matches!(req.method_str(), "GET" | "HEAD" | "OPTIONS" | "TRACE" | "PUT" | "DELETE");
                if no_body && idempotent && run.fcgi_link().is_some_and(FcgiLink::retryable) {
                    // Kept to be sent again, should this kept connection
                    // turn out closed (see `cgi_finish`).
                    run.request = Some(Box::new(req.clone()));
                }
                run
            }
        };
        let metrics = &sh.handle.inner.metrics;
        crate::metrics::inc(&metrics.cgi_started);
        crate::metrics::inc(&metrics.cgi_running);
        if !sh.vhosts[vi].mounts[mi].x_sendfile.is_empty() {
            run.request = Some(Box::new(req.clone()));
        }
        if no_body {
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
        // A connection still being made has `fcgi-connect-timeout` (the
        // step that completes it moves the deadline on); one made at
        // once (loopback, Unix) has the whole timeout.
        if run.fcgi_link().is_some_and(FcgiLink::connecting) {
            timeout = timeout.min(sh.vhosts[vi].mounts[mi].cgi.fcgi.connect_timeout);
        }
        self.writing = Writing::Cgi(Box::new(run));
        if let Err(e) = self.continue_if_expected(c, &req) {
            log::debug!("{}: write: {e}", c.peer);
        }
        sh.timers.set(c.key, sh.now + timeout);
        sh.force(c);
    }

    /// A FastCGI request that goes no further: its body skipped, the
    /// connection closed after `status` (503 with `Retry-After`, else the
    /// styled page).
    fn fcgi_refused(&mut self, c: &mut Core, sh: &mut Env, req: &Request, status: u16) {
        self.skip_body(req);
        self.reading = Reading::Done;
        self.tx.keep_alive = false;
        if status == 503 {
            self.send_simple(c, sh, 503, &[("Retry-After", "1")], true);
        } else {
            self.send_error(c, sh, status, Some(req));
        }
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
        let mut again = false;
        if self.cgi_paused_rx && !run.input_blocked() {
            self.cgi_paused_rx = false;
            c.rx_paused = false;
            progress = true;
        }
        if !run.stdout_eof && run.can_read() && c.out.writable && !c.out.has_pending() {
            let mut buf = std::mem::take(&mut sh.tx);
            // A FastCGI answer comes in records of up to 64 KiB, read a
            // whole one at a time: so much at most goes to the client
            // per turn (and waits for it, if it is slow), as nginx's
            // default fastcgi_buffers hold.
            buf.resize(if run.fcgi_link().is_some() { FCGI_READ_CHUNK } else { READ_CHUNK }, 0);
            let r = run.read_stdout(&mut buf);
            let r = match r {
                Ok(Some(n)) if n > 0 => {
                    progress = true;
                    self.cgi_output(c, sh, run, &buf[..n])
                }
                Ok(_) => {
                    // Records that were not stdout, more than a turn's
                    // worth: the loop comes back for the rest (the
                    // timeout runs on: stderr alone is no answer).
                    again = std::mem::take(&mut run.fcgi_again);
                    Ok(Some(run))
                }
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
        Ok(progress || logged || again)
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
        // A status that has no body (304 to the script's own
        // conditional, say) goes out as it is, without the file.
        let bodiless = matches!(head.status, 100..=199 | 204 | 304);
        // (The request is also kept for a FastCGI retry: the mount's
        // x-sendfile directories say whether the header is taken.)
        let sends_files = !sh.vhosts[c.vhost].mounts[run.mount].x_sendfile.is_empty();
        if let Some(named) = x_sendfile(&head.headers).filter(|_| !bodiless && sends_files) {
            if let Some(req) = run.request.take() {
                // The program's answer is the file: its body is dropped,
                // and it may finish (a session saved after the head, say)
                // without being cut short.
                let (named, mi) = (named.to_string(), run.mount);
                self.cgi_end(c, sh, *run, false);
                self.send_named_file(c, sh, &req, mi, &head, &named);
                return Ok(None);
            }
            log::warn!("cgi {}: X-Sendfile ignored and removed: the mount has no x-sendfile directory", run.script);
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
            // The whole answer already here (a FastCGI response and its
            // end in one read): its length is known, and it goes out in
            // one write, without chunks.
            let whole = run.fcgi_link().is_some_and(|l| l.ended() && l.drained()) && !head.chunked;
            let length = head.content_length.or_else(|| whole.then(|| (data.len() - used) as u64));
            BodyFraming::plan(self.tx.version, head.status, length, head.chunked)
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
            // The server owns the framing and these fields, and a path
            // on the server's disk is not the client's business.
            if !server_sets(k) && !internal_field(k) {
                rh.header_bytes(k, v);
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

    /// Sends the file a CGI response named (`X-Sendfile`), if it lies
    /// below one of the mount's x-sendfile directories, as a file mount
    /// sends its files: validators, conditionals and ranges of `req`,
    /// `sendfile`; the response's own fields go with it.
    fn send_named_file(
        &mut self,
        c: &mut Core,
        sh: &mut Env,
        req: &Request,
        mi: usize,
        head: &warren_cgi::CgiHead,
        named: &str,
    ) {
        let m = &sh.vhosts[c.vhost].mounts[mi];
        let path = Path::new(named);
        let found = m.x_sendfile.iter().find_map(|x| {
            let fops = x.fops.clone()?;
            // As configured, or as resolved (an application may name
            // the realpath of a directory configured through a link).
            let rel = path.strip_prefix(&x.dir).or_else(|_| path.strip_prefix(fops.origin())).ok()?;
            Some((fops, rel.to_str()?.to_string()))
        });
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let dotted = found.as_ref().is_some_and(|(_, rel)| rel.split('/').any(|s| s.starts_with('.')));
        let opened = match found {
            _ if !path.is_absolute() => Err((403, "not an absolute path".to_string())),
            // Never a script's source, nor a dotfile the mount refuses.
            _ if m.assigned(name).is_some() => Err((403, "a file whose suffix the mount runs".to_string())),
            _ if dotted && !m.dotfiles => Err((403, "a dotfile".to_string())),
            None => Err((403, "outside the mount's x-sendfile directories".to_string())),
            Some((fops, rel)) => match warren_vfs::VPath::new(&rel) {
                Err(e) => Err((403, e.to_string())),
                Ok(v) if v.is_root() => Err((403, "a directory".to_string())),
                Ok(v) => match warren_vfs::Fops::open(&*fops, &v, warren_vfs::OpenFlags::READ) {
                    Ok(f) => Ok((f, v)),
                    Err(e) => Err((open_error_status(&e), e.to_string())),
                },
            },
        };
        let (file, vpath) = match opened {
            Ok(x) => x,
            Err((status, why)) => {
                log::warn!("{}: X-Sendfile {:?} refused ({status}): {why}", c.peer, log_path(named));
                self.tx.keep_alive = false;
                self.send_error(c, sh, status, Some(req));
                return;
            }
        };
        if !matches!(self.reading, Reading::Done) {
            // The program took what it took of the body; the rest cannot
            // be told from a next request, and is not read.
            self.tx.keep_alive = false;
            self.reading = Reading::Done;
            self.body_deadline = None;
        }
        // A 206 of the script's own is the file's ranges' to decide.
        let status = if head.status == 206 { 200 } else { head.status };
        let from = super::files::Sending { status, mount: mi, cgi: Some(&head.headers) };
        self.send_file(c, sh, req, file, vpath.file_name().unwrap_or(""), from);
        sh.force(c);
    }

    /// stdout reached its end: close the response, retire the program.
    /// When we frame the body, the last chunk goes out only if the program
    /// did not die of a signal, which may take a moment to learn: until
    /// then (at most `EXIT_WAIT`) the run waits here, polled by the timer.
    pub(super) fn cgi_finish(&mut self, c: &mut Core, sh: &mut Env, mut run: Box<CgiRun>) {
        if run.parser.is_some() {
            // It ended (or crashed) before a whole head: CGI-5, 502; a
            // FastCGI server too busy to take the request says so: 503.
            if run.fcgi_link().is_some_and(FcgiLink::retryable) {
                if let Some(req) = run.request.take() {
                    // Closed under it before it was taken: once more, on
                    // a new connection.
                    log::info!("cgi {}: a kept FastCGI connection was closed; sending again", run.script);
                    let (mi, redirects) = (run.mount, run.redirects);
                    self.cgi_end(c, sh, *run, true);
                    self.fcgi_fresh = true;
                    let until = sh.now + sh.vhosts[c.vhost].mounts[mi].cgi.timeout;
                    self.serve_cgi(c, sh, *req, mi, redirects, Some(until), None);
                    return;
                }
            }
            log::warn!("cgi {}: ended without a complete response head", run.script);
            let busy = run.fcgi_link().and_then(|l| l.protocol_status()) == Some(FCGI_OVERLOADED);
            self.cgi_end(c, sh, *run, true);
            self.tx.keep_alive = false;
            if busy {
                self.send_simple(c, sh, 503, &[("Retry-After", "1")], true);
            } else {
                self.send_error(c, sh, 502, None);
            }
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
        if run.fcgi_link().is_none() {
            // A FastCGI request's slot is its server's, freed by the pool.
            if let Some(m) = sh.live.get_mut(run.vhost).and_then(|v| v.mounts.get_mut(run.mount)) {
                m.cgi_running = m.cgi_running.saturating_sub(1);
            }
        }
        sh.handle.inner.metrics.cgi_running.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        let conf = &sh.vhosts[run.vhost].mounts[run.mount].cgi;
        let end = Retire { kill, linger: conf.timeout, keepalive: conf.fcgi.keepalive };
        // A FastCGI connection's token goes with the connection (kept
        // in the poll while it is kept: see `FcgiPool::release`).
        if let Some(tokens) = run.tokens.filter(|_| run.fcgi_link().is_none()) {
            sh.dead_pipes.extend(tokens.into_iter().flatten());
        }
        if self.cgi_paused_rx {
            self.cgi_paused_rx = false;
            c.rx_paused = false;
        }
        run.retire(&mut sh.reaper, &mut sh.fcgi, end, sh.now);
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

    /// The connection to this request's FastCGI server is ready.
    pub(crate) fn fcgi_ready(&mut self, token: usize, readable: bool, writable: bool) {
        if let Writing::Cgi(run) = &mut self.writing {
            run.fcgi_ready(token, readable, writable);
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
            Writing::CgiWait { req, mount, slots, mut until, redirects, mut short } => {
                if short && sh.now >= until {
                    // It came while the server ran as many requests as
                    // allowed (a cold start: its limit not learned yet);
                    // under the learned limit now, it waits as long as
                    // the others.
                    if let Slots::Fcgi(addr) = &slots {
                        if !sh.fcgi.at_max(addr) {
                            let since = until.checked_sub(CGI_SLOT_WAIT).unwrap_or(until);
                            until = since + sh.vhosts[c.vhost].mounts[mount].cgi.timeout;
                            short = false;
                        }
                    }
                }
                // Only the first waiter may start (the loop wakes it
                // when a slot frees), so they start in arrival order.
                let first = sh.cgi_waiters.first(&slots).is_none_or(|(k, _)| k == c.key);
                let (mut running, mut max) = slots_in_use(sh, &slots, None);
                if first && running >= max && sh.now < until {
                    if let Slots::Fcgi(addr) = &slots {
                        if sh.fcgi.try_more(addr) {
                            (running, max) = slots_in_use(sh, &slots, None);
                        }
                    }
                }
                if first && running < max {
                    sh.cgi_waiters.remove(&slots, c.key);
                    self.serve_cgi(c, sh, *req, mount, redirects, Some(until), None);
                } else if sh.now >= until {
                    sh.cgi_waiters.remove(&slots, c.key);
                    log::warn!("{}: CGI slots of \"{}\" all busy; 503", c.peer, log_path(req.path()));
                    self.cgi_paused_rx = false;
                    c.rx_paused = false;
                    self.tx.keep_alive = false;
                    self.reading = Reading::Done;
                    self.send_simple(c, sh, 503, &[("Retry-After", "1")], true);
                } else {
                    // Not yet: the deadline stays.
                    sh.timers.set(c.key, wait_timer(sh, &slots, until));
                    self.writing = Writing::CgiWait { req, mount, slots, until, redirects, short };
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
                match run.fcgi_link() {
                    Some(l) if l.connecting() => {
                        log::warn!("cgi {}: cannot connect to {} in time", run.script, l.addr())
                    }
                    _ => log::warn!("cgi {}: no progress within its timeout; ending it", run.script),
                }
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

/// What runs a CGI request.
#[derive(Debug)]
enum Exec {
    Spawn {
        /// What is executed: the program, or a script's interpreter.
        program: PathBuf,
        /// Its arguments: the script, for an interpreter.
        args: Vec<OsString>,
        /// Where it runs: the script's (or program's) own directory.
        cwd: PathBuf,
    },
    /// A FastCGI server.
    Fcgi(FcgiAddr),
}

/// What runs for a CGI request and what it is told.
#[derive(Debug)]
struct Launch {
    exec: Exec,
    script_name: String,
    path_info: String,
    path_translated: Option<String>,
    /// Empty: not set.
    script_filename: String,
    document_root: Option<String>,
    redirect_status: Option<u16>,
    redirect_url: Option<String>,
}

/// What a CGI request comes to.
#[derive(Debug)]
enum Plan {
    Run(Launch),
    /// Refused: the status and why, for the log.
    Refuse(u16, String),
    /// A directory named without its slash: 301 to add it.
    AddSlash,
    /// A file mount's path that is no script (any more): served as a file.
    File,
}

/// Plans the request `req` on mount `mi` of vhost `vi`: a `cgi://` mount's
/// program, or a script a file mount runs in place.
fn plan_cgi(sh: &mut Env, vi: usize, mi: usize, req: &Request) -> Plan {
    let m = &sh.vhosts[vi].mounts[mi];
    let rest = m.remainder(req.path());
    match &m.origin {
        Origin::File(fops) => match crate::mount::locate(m, &**fops, rest, false) {
            Located::Script(s) => script_launch(sh, vi, mi, s),
            Located::Refused(status, why) => Plan::Refuse(status, why.into()),
            Located::AddSlash => Plan::AddSlash,
            Located::File(..) | Located::Failed(_) => Plan::File,
        },
        Origin::Cgi(origin) => {
            let cache = &mut sh.live[vi].mounts[mi].cgi_cache;
            // Deny rules and dotfiles apply to a directory of programs and
            // to an interpreter of the site's files; a one-program mount's
            // PATH_INFO is its own route (cgit's `/repo/tree/.gitignore`).
            if m.is_cgi_action() || !cache.origin_is_program(origin, sh.now) {
                if let Some((status, why)) = crate::mount::refusal(m, req.path()) {
                    return Plan::Refuse(status, why.into());
                }
            }
            match crate::roles::cgi::cgi_lookup_cached(origin, &m.mountpoint, rest, m.symlinks, cache, sh.now) {
                Ok(target) => program_launch(&sh.vhosts[vi], mi, req, target),
                Err(why) => Plan::Refuse(why.status(), why.why().into()),
            }
        }
        Origin::Fcgi(addr) => fcgi_launch(&sh.vhosts[vi], mi, addr, rest),
        _ => Plan::Refuse(500, "not a mount that runs programs".into()),
    }
}

/// A request to an `fcgi://` mount's server: the path below the
/// mountpoint is `PATH_INFO` (its route), `SCRIPT_NAME` the mountpoint;
/// `PATH_TRANSLATED` is `PATH_INFO` mapped through the file mounts,
/// confined as for a `cgi://` program.
fn fcgi_launch(vh: &crate::vhost::Vhost, mi: usize, addr: &FcgiAddr, rest: &str) -> Plan {
    let m = &vh.mounts[mi];
    let path_translated = if rest.is_empty() {
        None
    } else {
        match crate::roles::cgi::translate(&vh.mounts, rest) {
            Ok(p) => p.map(|p| p.to_string_lossy().into_owned()),
            Err(e) => {
                let why = format!("PATH_TRANSLATED for \"{}\": {e}", log_path(rest));
                return Plan::Refuse(open_error_status(&e), why);
            }
        }
    };
    let script_name = if m.mountpoint == "/" { String::new() } else { m.mountpoint.clone() };
    Plan::Run(Launch {
        exec: Exec::Fcgi(addr.clone()),
        script_name,
        path_info: rest.to_string(),
        path_translated,
        script_filename: String::new(),
        document_root: vh.document_root.clone(),
        redirect_status: None,
        redirect_url: None,
    })
}

/// When a request waiting for a slot is looked at next: at its deadline,
/// or, waiting for a FastCGI server under its learned limit, after
/// [`TRY_AFTER`](crate::roles::cgi::TRY_AFTER) (it may then try one more
/// connection).
fn wait_timer(sh: &Env, slots: &Slots, until: std::time::Instant) -> std::time::Instant {
    match slots {
        Slots::Fcgi(addr) if !sh.fcgi.at_max(addr) => until.min(sh.now + crate::roles::cgi::TRY_AFTER),
        _ => until,
    }
}

/// Requests running for `slots` and how many may: a mount's programs,
/// or a FastCGI server's requests (`max`: the limit of the mount asking,
/// remembered for the waiters).
pub(crate) fn slots_in_use(sh: &mut Env, slots: &Slots, max: Option<usize>) -> (usize, usize) {
    match slots {
        Slots::Mount(vi, mi) => {
            let running = sh.live.get(*vi).and_then(|v| v.mounts.get(*mi)).map_or(0, |m| m.cgi_running);
            let max = sh.vhosts.get(*vi).and_then(|v| v.mounts.get(*mi)).map_or(0, |m| m.cgi.max_processes);
            (running, max)
        }
        Slots::Fcgi(addr) => sh.fcgi.slots(addr, max),
    }
}

/// A `cgi://` mount's program for `target`. An interpreter mount (the
/// origin is one program, php-cgi say) runs the file `PATH_INFO` names
/// through the vhost's file mounts, as Apache's `Action` does: so that
/// path must be one those mounts would serve (their deny rules and
/// dotfiles apply), and a directory goes through this mount's default
/// documents; the interpreter is never handed itself or a directory.
fn program_launch(vh: &crate::vhost::Vhost, mi: usize, req: &Request, mut target: CgiTarget) -> Plan {
    let m = &vh.mounts[mi];
    let Origin::Cgi(origin) = &m.origin else { return Plan::Refuse(500, "not a cgi:// mount".into()) };
    // One program: PATH_INFO and REDIRECT_* as Apache's Action gives
    // them. An interpreter of the site's files (php-cgi) also has its
    // paths taken as the site's: see `Mount::cgi_action`.
    let interpreter = target.program == *origin;
    let action = interpreter && m.is_cgi_action();
    let mut translated = Ok(None);
    if action {
        if target.path_info.is_empty() {
            return Plan::AddSlash;
        }
        // What the file mounts would refuse to serve, or run themselves
        // (a suffix one assigns), is not handed over either.
        let served = |path: &str| {
            crate::mount::file_refusal(&vh.mounts, path).or_else(|| match crate::mount::find(&vh.mounts, path) {
                Some((_, fm)) if matches!(fm.origin, Origin::File(_)) => {
                    let name = path.rsplit('/').next().unwrap_or("");
                    fm.assigned(name).map(|_| (403, "a file its own mount runs in place"))
                }
                _ => None,
            })
        };
        if let Some((status, why)) = served(&target.path_info) {
            return Plan::Refuse(status, format!("PATH_INFO names a path its file mount refuses: {why}"));
        }
        translated = crate::roles::cgi::translate(&vh.mounts, &target.path_info);
        if matches!(&translated, Ok(Some(p)) if p.is_dir()) {
            if !target.path_info.ends_with('/') {
                return Plan::AddSlash;
            }
            let found = m.index.iter().find_map(|name| {
                let path = format!("{}{name}", target.path_info);
                match crate::roles::cgi::translate(&vh.mounts, &path) {
                    Ok(Some(p)) if p.is_file() && served(&path).is_none() => Some((path, p)),
                    _ => None,
                }
            });
            let Some((path, file)) = found else {
                return Plan::Refuse(404, "a directory without a default document".into());
            };
            target.path_info = path;
            translated = Ok(Some(file));
        } else if let Ok(Some(p)) = &translated {
            // A FIFO or a device would hold the program (and a slot) on
            // a read that never ends.
            if std::fs::metadata(p).is_ok_and(|md| !md.is_file()) {
                return Plan::Refuse(403, "PATH_INFO names something that is not a regular file".into());
            }
        }
    } else if !target.path_info.is_empty() {
        // Worked out for each request, never cached: a link swapped in
        // below the root must be refused from that moment on, as a file
        // open there is.
        translated = crate::roles::cgi::translate(&vh.mounts, &target.path_info);
    }
    // Paths handed to the program are confined as file opens are: one
    // that resolves outside its mount's root refuses the request (403;
    // a name too long or a loop of links, the request's fault, 404).
    let path_translated = match translated {
        Ok(p) => p.map(|p| p.to_string_lossy().into_owned()),
        Err(e) => {
            let why = format!("PATH_TRANSLATED for \"{}\": {e}", log_path(&target.path_info));
            return Plan::Refuse(open_error_status(&e), why);
        }
    };
    let cwd = crate::mount::script_dir(&target.program);
    // An interpreter with no file to run has no script: php-cgi would
    // take SCRIPT_FILENAME, its own file, as the script. Without one it
    // answers "No input file".
    let script_filename = if interpreter && path_translated.is_none() {
        String::new()
    } else {
        target.program.to_string_lossy().into_owned()
    };
    Plan::Run(Launch {
        exec: Exec::Spawn { program: target.program, args: Vec::new(), cwd },
        script_name: target.script_name,
        path_info: target.path_info,
        path_translated,
        script_filename,
        document_root: vh.document_root.clone(),
        redirect_status: interpreter.then_some(200),
        redirect_url: interpreter.then(|| req.path().to_string()),
    })
}

/// A script a file mount runs where it sits: its interpreter gets it as
/// the argument (as lighttpd's `cgi.assign` does), `SCRIPT_FILENAME`
/// names it, `DOCUMENT_ROOT` is the mount's directory, and
/// `REDIRECT_STATUS` tells php-cgi a server sent it. `PATH_TRANSLATED`
/// is `PATH_INFO` mapped through the file mounts, when it maps.
fn script_launch(sh: &Env, vi: usize, mi: usize, s: crate::mount::Script) -> Plan {
    let vh = &sh.vhosts[vi];
    let m = &vh.mounts[mi];
    let Origin::File(fops) = &m.origin else { return Plan::Refuse(500, "not a file mount".into()) };
    let cwd = crate::mount::script_dir(&s.file);
    let exec = match s.runner {
        Runner::Interpreter(interpreter) => {
            Exec::Spawn { program: interpreter, args: vec![s.file.clone().into_os_string()], cwd }
        }
        Runner::Itself => {
            if !crate::roles::cgi::executable(&s.file) {
                return Plan::Refuse(403, "the script is its own program and is not executable".into());
            }
            Exec::Spawn { program: s.file.clone(), args: Vec::new(), cwd }
        }
        Runner::Fcgi(addr) => Exec::Fcgi(addr),
    };
    // PATH_INFO is the script's to read (often a route, not a file): a
    // path that maps nowhere, out of a root, to what its file mount
    // refuses (php-cgi with cgi.fix_pathinfo=0 would read it), or that
    // is too deep to be worth resolving segment by segment, just has no
    // translation.
    let deep = s.path_info.matches('/').count() > MAX_TRANSLATED_DEPTH;
    let refused = crate::mount::file_refusal(&vh.mounts, &s.path_info).is_some();
    let path_translated = if s.path_info.is_empty() || deep || refused {
        None
    } else {
        crate::roles::cgi::translate(&vh.mounts, &s.path_info).ok().flatten()
    };
    let document_root = fops.local_path(&warren_vfs::VPath::root());
    Plan::Run(Launch {
        exec,
        script_name: s.script_name,
        path_info: s.path_info,
        path_translated: path_translated.map(|p| p.to_string_lossy().into_owned()),
        script_filename: s.file.to_string_lossy().into_owned(),
        document_root: document_root.map(|p| p.to_string_lossy().into_owned()),
        redirect_status: Some(200),
        redirect_url: None,
    })
}

/// The file a CGI response names for the server to send, if it does
/// (`X-Sendfile`, or lighttpd's `X-LIGHTTPD-send-file`).
fn x_sendfile(headers: &[(String, Vec<u8>)]) -> Option<&str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("x-sendfile") || k.eq_ignore_ascii_case("x-lighttpd-send-file"))
        // (A name that is not UTF-8 names no file warren serves.)
        .and_then(|(_, v)| std::str::from_utf8(v).ok())
        .map(str::trim)
}

/// Fields a CGI response addresses to its server, naming paths on its
/// disk: never passed to the client (lighttpd's and nginx's variants
/// included, which warren does not act on).
fn internal_field(name: &str) -> bool {
    ["x-sendfile", "x-lighttpd-send-file", "x-sendfile2", "x-lighttpd-send-tempfile", "x-accel-redirect"]
        .iter()
        .any(|f| name.eq_ignore_ascii_case(f))
}
