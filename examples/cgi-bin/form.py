#!/usr/bin/env python3
"""warren demo CGI: GET answers with a form, POST with the fields it got
(application/x-www-form-urlencoded), every value HTML-escaped. Mounted at
/cgi-bin by examples/conf, or by
`warren --root webroot --cgi /cgi-bin=examples/cgi-bin`."""
import html
import os
import sys
import urllib.parse

MAX_BODY = 64 * 1024

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>CGI form</title>
<link rel="stylesheet" href="/warren.css">
</head>
<body>
<header class="bar">
  <a class="brand" href="/"><img src="/favicon.svg" alt="" width="24" height="24">warren</a>
  <nav><a href="/">Home</a><a href="/cgi.html">CGI</a></nav>
</header>
<main>
<h1>CGI form</h1>
{content}
</main>
</body>
</html>
"""

FORM = """<p class="lead">A python3 CGI. Send the form and it answers with what it got.</p>
<form method="post" action="{action}">
  <p><label>Name <input name="name" value="Ada"></label></p>
  <p><label>Message <textarea name="message" rows="3">&lt;hello&gt; &amp; welcome</textarea></label></p>
  <p><button type="submit">Send</button></p>
</form>
"""


def answer(status, content):
    body = PAGE.format(content=content).encode("utf-8")
    out = sys.stdout.buffer
    out.write(b"Status: %s\r\n" % status.encode())
    out.write(b"Content-Type: text/html; charset=utf-8\r\n")
    out.write(b"Content-Length: %d\r\n\r\n" % len(body))
    out.write(body)
    out.flush()


def main():
    method = os.environ.get("REQUEST_METHOD", "GET")
    action = html.escape(os.environ.get("SCRIPT_NAME", ""), quote=True)
    if method in ("GET", "HEAD"):
        answer("200 OK", FORM.format(action=action))
        return
    if method != "POST":
        answer("405 Method Not Allowed", "<p>GET or POST only.</p>")
        return
    ctype = os.environ.get("CONTENT_TYPE", "").split(";")[0].strip().lower()
    if ctype != "application/x-www-form-urlencoded":
        answer("415 Unsupported Media Type", "<p>Send the form as application/x-www-form-urlencoded.</p>")
        return
    declared = os.environ.get("CONTENT_LENGTH", "")
    length = int(declared) if declared.isdigit() else 0
    if length > MAX_BODY:
        answer("413 Content Too Large", "<p>At most %d bytes, please.</p>" % MAX_BODY)
        return
    raw = sys.stdin.buffer.read(length) if length else b""
    fields = urllib.parse.parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True)
    rows = "".join(
        "<tr><td><code>%s</code></td><td>%d</td><td><code>%s</code></td></tr>\n"
        % (html.escape(name), len(value), html.escape(value))
        for name, value in fields
    )
    content = (
        "<p class=\"lead\">The CGI got %d field(s), %d bytes:</p>\n"
        "<table>\n<tr><th>name</th><th>length</th><th>value</th></tr>\n%s</table>\n"
        "<p><a href=\"%s\">Again</a></p>\n" % (len(fields), len(raw), rows, action)
    )
    answer("200 OK", content)


main()
