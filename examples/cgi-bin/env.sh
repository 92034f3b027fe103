#!/bin/sh
# warren demo CGI: shows the environment a CGI program gets, as an HTML
# table (every name and value HTML-escaped). Mounted at /cgi-bin by
# examples/conf, or by `warren --root webroot --cgi /cgi-bin=examples/cgi-bin`.
printf 'Content-Type: text/html; charset=utf-8\r\n\r\n'
cat <<'HEAD'
<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>CGI environment</title>
<link rel="stylesheet" href="/warren.css">
</head>
<body>
<header class="bar">
  <a class="brand" href="/"><img src="/favicon.svg" alt="" width="24" height="24">warren</a>
  <nav><a href="/">Home</a><a href="/cgi.html">CGI</a></nav>
</header>
<main>
<h1>CGI environment</h1>
<p class="lead">What <code>env.sh</code> was started with: the RFC 3875
variables, one <code>HTTP_*</code> per request header, the mount's extras, and
nothing of the server's own environment.</p>
<table>
<tr><th>name</th><th>value</th></tr>
HEAD
env | sort | sed -e 's/&/\&amp;/g' -e 's/</\&lt;/g' -e 's/>/\&gt;/g' -e 's/"/\&quot;/g' \
    -e 's/^\([A-Za-z_][A-Za-z0-9_]*\)=\(.*\)$/<tr><td><code>\1<\/code><\/td><td><code>\2<\/code><\/td><\/tr>/'
cat <<'TAIL'
</table>
</main>
</body>
</html>
TAIL
