//! Error pages on a user's own site (issue 11 item 9): styled even when
//! the site has no `/error.css`, never shadowing one it has, with a way
//! home.

mod support;

use support::*;

#[test]
fn a_site_without_error_css_gets_the_built_in_style() {
    let (_t, root) = site();
    let server = Server::files(&root);
    let page = get(&server, "/no/such/page");
    assert_eq!(page.status, 404);
    let body = page.text();
    assert!(body.contains("href=\"/error.css\""), "{body}");
    assert!(body.contains("<a href=\"/\">"), "no way home: {body}");
    let css = get(&server, "/error.css");
    assert_eq!(css.status, 200);
    assert!(css.header("content-type").is_some_and(|t| t.starts_with("text/css")), "{:?}", css.headers);
    assert_eq!(css.text(), warren::http::error_page::ERROR_CSS);
    // HEAD too, without a body.
    let head = request(&server, "HEAD /error.css HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-length"), Some(css.body.len().to_string().as_str()));
    // Only that path: other missing files stay 404.
    assert_eq!(get(&server, "/error2.css").status, 404);
    assert_eq!(get(&server, "/sub/error.css").status, 404);
}

#[test]
fn a_site_with_its_own_error_css_keeps_it() {
    let (_t, root) = site();
    std::fs::write(root.join("error.css"), "h1 { color: red }\n").expect("write");
    let server = Server::files(&root);
    let css = get(&server, "/error.css");
    assert_eq!(css.status, 200);
    assert_eq!(css.text(), "h1 { color: red }\n");
}

#[test]
fn the_binary_on_a_user_root_serves_the_style_too() {
    let (_t, root) = site();
    let (_w, port) = start_warren(&["--root", root.to_str().expect("utf-8")]);
    let url = format!("http://127.0.0.1:{port}/error.css");
    let (ok, out) = curl(&["-f", &url]);
    assert!(ok, "curl failed");
    assert!(String::from_utf8_lossy(&out).contains("h1"), "not the error style");
}
