/* warren-common.js: small helpers shared by warren's WebSocket test pages.
 *
 * Plain ES2017, no external resources: the pages load only from their own
 * origin. Nothing here builds HTML from strings.
 */
"use strict";

/* The full-page shade that tells the user the server has gone away. */
const WARREN_SHADE_ID = "darkenScreenObject";

/* Shows (on = true) or hides (on = false) a shade over the whole page.
 * The shade is fixed to the viewport (inset 0), so it covers whatever is
 * scrolled into view without being measured, and never makes the page
 * wider or taller (sizing it from the page, window.innerWidth included,
 * counted the scrollbar and added a horizontal one).
 * The shade is a div with id "darkenScreenObject", created on the first
 * call and reused after that. options may set:
 *   zindex  (default 50)
 *   opacity (percent, default 70)
 *   bgcolor (default "#000000")
 * Options given on a later call are applied too. */
function warren_gray_out(on, options) {
  const opts = options || {};
  let shade = document.getElementById(WARREN_SHADE_ID);
  if (!shade) {
    shade = document.createElement("div");
    shade.id = WARREN_SHADE_ID;
    shade.style.position = "fixed";
    shade.style.top = "0px";
    shade.style.left = "0px";
    shade.style.right = "0px";
    shade.style.bottom = "0px";
    shade.style.overflow = "hidden";
    shade.style.display = "none";
    shade.style.zIndex = "50";
    shade.style.opacity = "0.7";
    shade.style.backgroundColor = "#000000";
    shade.setAttribute("aria-hidden", "true");
    (document.body || document.documentElement).appendChild(shade);
  }
  if (opts.zindex !== undefined) {
    shade.style.zIndex = String(opts.zindex);
  }
  if (opts.opacity !== undefined) {
    shade.style.opacity = String(Number(opts.opacity) / 100);
  }
  if (opts.bgcolor !== undefined) {
    shade.style.backgroundColor = String(opts.bgcolor);
  }
  if (on) {
    shade.style.display = "block";
  } else {
    shade.style.display = "none";
  }
  return shade;
}

/* Opens a WebSocket to url speaking protocol (a subprotocol name). */
function new_ws(url, protocol) {
  return new WebSocket(url, protocol);
}

/* A string that is safe to show: anything holding "<" is replaced. */
function warren_san(s) {
  const str = String(s);
  if (str.indexOf("<") !== -1) {
    return "invalid string";
  }
  return str;
}

/* The ws:// or wss:// URL of path on the server that served this page. */
function warren_ws_url(path) {
  const scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
  return scheme + window.location.host + (path || "/");
}
