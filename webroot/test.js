/* warren WebSocket test page (test.html). Needs warren-common.js.
 *
 * Three sockets back to the server that sent the page, one per built-in
 * protocol. The page is shaded until a socket opens. A socket that closes
 * shades its own section (class "lost"); the whole page is shaded again
 * only when every socket is closed, so a server that stops leaves the
 * page dark while one lost socket leaves the other two usable.
 * Everything the server sends is shown with textContent, never as HTML.
 */
"use strict";

(function () {
  const MIRROR_LOG_LINES = 200;

  function el(id) {
    return document.getElementById(id);
  }

  /* How many of the sockets are open now. */
  let open_count = 0;

  function show_state(id, text) {
    const s = el(id);
    s.textContent = text;
    s.classList.toggle("open", text === "open");
    const section = s.closest("section");
    if (section) {
      section.classList.toggle("lost", text === "closed");
    }
  }

  /* A socket opened (delta 1) or one that was open closed (delta -1). */
  function count_open(delta) {
    open_count += delta;
    warren_gray_out(open_count === 0);
  }

  /* Opens a socket for protocol and keeps its status line (stateId) and the
   * page shade up to date; handlers get the socket's events. */
  function connect(protocol, stateId, handlers) {
    let ws;
    try {
      ws = new_ws(warren_ws_url("/"), protocol);
    } catch (e) {
      show_state(stateId, "closed");
      return null;
    }
    let was_open = false;
    ws.onopen = function () {
      was_open = true;
      show_state(stateId, "open");
      count_open(1);
      if (handlers.open) {
        handlers.open(ws);
      }
    };
    ws.onmessage = function (ev) {
      if (typeof ev.data === "string") {
        handlers.message(ev.data);
      }
    };
    ws.onclose = function (ev) {
      show_state(stateId, "closed");
      if (was_open) {
        was_open = false;
        count_open(-1);
      }
      if (handlers.close) {
        handlers.close(ev);
      }
    };
    return ws;
  }

  /* dumb-increment-protocol: a number every 50 ms. */
  function start_dumb() {
    const count = el("dumb-count");
    const reset = el("dumb-reset");
    const close = el("dumb-close");
    const why = el("dumb-why");
    const ws = connect("dumb-increment-protocol", "dumb-state", {
      open: function () {
        reset.disabled = false;
        close.disabled = false;
        why.textContent = "";
      },
      message: function (text) {
        count.textContent = warren_san(text);
      },
      close: function (ev) {
        reset.disabled = true;
        close.disabled = true;
        const reason = ev.reason ? " \u201c" + warren_san(ev.reason) + "\u201d" : "";
        why.textContent = "Closed with code " + ev.code + reason + ".";
      },
    });
    if (!ws) {
      return;
    }
    reset.addEventListener("click", function () {
      if (ws.readyState === WebSocket.OPEN) {
        ws.send("reset\n");
      }
    });
    close.addEventListener("click", function () {
      if (ws.readyState === WebSocket.OPEN) {
        ws.send("closeme\n");
      }
    });
  }

  /* lws-mirror-protocol: what any client sends, every client receives. */
  function start_mirror() {
    const form = el("mirror-form");
    const input = el("mirror-input");
    const send = el("mirror-send");
    const log = el("mirror-log");
    const ws = connect("lws-mirror-protocol", "mirror-state", {
      open: function () {
        send.disabled = false;
      },
      message: function (text) {
        const line = document.createElement("div");
        line.textContent = text;
        log.appendChild(line);
        while (log.childNodes.length > MIRROR_LOG_LINES) {
          log.removeChild(log.firstChild);
        }
        log.scrollTop = log.scrollHeight;
      },
      close: function () {
        send.disabled = true;
      },
    });
    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      if (ws && ws.readyState === WebSocket.OPEN && input.value !== "") {
        ws.send(input.value);
        input.value = "";
      }
    });
  }

  function cell(row, text) {
    const td = document.createElement("td");
    td.textContent = warren_san(text);
    row.appendChild(td);
  }

  function when(secs) {
    const n = Number(secs);
    if (!Number.isFinite(n) || n <= 0) {
      return String(secs);
    }
    return new Date(n * 1000).toLocaleString();
  }

  /* lws-status: a JSON snapshot of the server's connections. */
  function show_status(text) {
    const info = el("status-info");
    const body = el("status-table").tBodies[0];
    let s;
    try {
      s = JSON.parse(text);
    } catch (e) {
      info.textContent = "The server sent a status that is not JSON.";
      return;
    }
    const conns = Array.isArray(s.conns) ? s.conns : [];
    info.textContent =
      warren_san(s.version || "?") + " on " + warren_san(s.hostname || "?") + ": " + warren_san(s.wsi || "?") +
      " live (wsi), " + conns.length + " listed.";
    while (body.rows.length) {
      body.deleteRow(0);
    }
    for (const c of conns) {
      const row = body.insertRow();
      cell(row, c && c.peer !== undefined ? c.peer : "");
      cell(row, c && c.time !== undefined ? when(c.time) : "");
      cell(row, c && c.ua !== undefined ? c.ua : "");
    }
  }

  function start_status() {
    connect("lws-status", "status-state", { message: show_status });
  }

  warren_gray_out(true);
  start_dumb();
  start_mirror();
  start_status();
})();
