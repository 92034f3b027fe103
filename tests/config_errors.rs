//! Configuration mistakes are reported with the file, the line and column
//! of the key, and what was expected, in words (issue 11 item 5).

use std::path::Path;

/// Writes `conf` and `conf.d/site`, loads, and returns the error.
fn error_of(dir: &Path, conf: &str, site: &str) -> warren::config::ConfigError {
    std::fs::create_dir_all(dir.join("conf.d")).expect("mkdir");
    std::fs::write(dir.join("conf"), conf).expect("write");
    std::fs::write(dir.join("conf.d/site"), site).expect("write");
    match warren::config::load_dir(dir) {
        Ok(_) => panic!("accepted:\n{site}"),
        Err(e) => e,
    }
}

#[test]
fn a_value_of_the_wrong_kind_names_its_line_and_column() {
    let t = tempfile::tempdir().expect("tempdir");
    let site = "{\n  \"vhosts\": [\n    {\n      \"name\": \"a\",\n      \"port\": \"seventy\"\n    }\n  ]\n}\n";
    let e = error_of(t.path(), "{}", site);
    assert_eq!(e.position, Some((5, 7)), "{e}");
    assert!(e.message.contains("vhosts[0].port") && e.message.contains("expected a number"), "{e}");
    assert!(e.to_string().starts_with(&format!("{}:5:7: ", t.path().join("conf.d/site").display())), "{e}");
}

#[test]
fn a_bad_value_deep_inside_is_found() {
    let t = tempfile::tempdir().expect("tempdir");
    let site = format!(
        r#"{{"vhosts": [
  {{"name": "a", "port": "0", "mounts": [{{"mountpoint": "/", "origin": "file://{root}"}}]}},
  {{"name": "b", "port": "0",
    "mounts": [
      {{"mountpoint": "/", "origin": "file://{root}"}},
      {{"mountpoint": "/c", "origin": "cgi://{root}",
        "cgi-timeout": "99999999999"}}
    ]}}
]}}"#,
        root = t.path().display()
    );
    let e = error_of(t.path(), "{}", &site);
    assert!(e.message.starts_with("vhosts[1].mounts[1].cgi-timeout: "), "{e}");
    assert_eq!(e.position, Some((7, 9)), "{e}");
}

#[test]
fn an_unclosed_object_points_at_its_brace() {
    let t = tempfile::tempdir().expect("tempdir");
    let site = "{\"vhosts\": [\n  {\"name\": \"a\", \"port\": \"0\",\n   \"mounts\": [\n";
    let e = error_of(t.path(), "{}", site);
    let (line, col) = e.position.expect("position");
    assert!(col >= 1, "{e}");
    assert_eq!((line, col), (3, 14), "{e}");
    assert!(e.message.contains("never closed"), "{e}");
}

#[test]
fn two_mounts_on_one_mountpoint_are_refused() {
    let t = tempfile::tempdir().expect("tempdir");
    let site = format!(
        r#"{{"vhosts": [{{"name": "a", "port": "0", "mounts": [
  {{"mountpoint": "/docs", "origin": "file://{root}"}},
  {{"mountpoint": "/docs/", "origin": "file://{root}"}}
]}}]}}"#,
        root = t.path().display()
    );
    let e = error_of(t.path(), "{}", &site);
    assert!(e.message.contains("vhosts[0].mounts[1].mountpoint"), "{e}");
    assert!(e.message.contains("already the mountpoint of vhosts[0].mounts[0]"), "{e}");
    assert_eq!(e.position.map(|p| p.0), Some(3), "{e}");
}

#[test]
fn messages_say_what_is_wrong_in_words() {
    let t = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(t.path().join("conf.d")).expect("mkdir");
    std::fs::write(t.path().join("conf"), "{}").expect("write");
    let e = warren::config::load_dir(t.path()).map(|_| ()).expect_err("no vhost accepted");
    // More than a requirement id: what to do about it.
    assert!(e.message.contains("conf.d"), "{e}");
    let site = r#"{"vhosts": [{"name": "a", "port": "0", "mounts": [{"mountpoint": "/", "origin": "ftp://x"}]}]}"#;
    let e = error_of(t.path(), "{}", site);
    assert!(e.message.contains("expected file://"), "{e}");
}

/// One mount at `/` of `root` with `keys` added; loaded.
fn mount_with(dir: &Path, keys: &str) -> Result<warren::ContextInfo, warren::config::ConfigError> {
    let site = format!(
        r#"{{"vhosts": [{{"name": "a", "port": "0", "mounts": [
  {{"mountpoint": "/", "origin": "file://{root}", {keys}}}
]}}]}}"#,
        root = dir.display()
    );
    std::fs::create_dir_all(dir.join("conf.d")).expect("mkdir");
    std::fs::write(dir.join("conf"), "{}").expect("write");
    std::fs::write(dir.join("conf.d/site"), site).expect("write");
    warren::config::load_dir(dir)
}

/// The hosting keys (cgi-assign, default lists, deny, allow-dotfiles,
/// symlinks, x-sendfile) are taken in their documented forms, and every
/// other form is refused naming the file, the key and what was expected.
#[test]
fn hosting_keys_take_their_forms_and_refuse_others() {
    let t = tempfile::tempdir().expect("tempdir");
    let d = t.path();
    let good = format!(
        r#""cgi-assign": {{".php": "/bin/sh", ".cgi": ""}}, "default": ["index.php", "index.html"],
        "deny": ["/inc", "*.bak", ".svn", {{"path": "/data", "status": "404"}}, {{"suffix": "~", "status": 403}}],
        "allow-dotfiles": "0", "symlinks": "owner", "x-sendfile": "{dl}", "cgi-timeout": "5""#,
        dl = d.display()
    );
    let config = mount_with(d, &good).expect("the documented forms load");
    let report = config.check().expect("check");
    let m = &report.listeners[0].vhosts[0].mounts[0];
    assert_eq!(m.index, ["index.php", "index.html"]);
    assert_eq!(m.assign.len(), 2);
    assert_eq!(m.deny, ["/inc", "*.bak", ".svn", "/data (404)", "*~"]);
    assert_eq!(m.symlinks, warren::Symlinks::SameOwner);
    assert!(mount_with(d, r#""default": "doku.php""#).is_ok(), "one name as a string");
    for (keys, key, says) in [
        (r#""cgi-assign": [".php"]"#, "mounts[0].cgi-assign", "expected"),
        (r#""cgi-assign": {".php": "php-cgi"}"#, "mounts[0].cgi-assign..php", "absolute path"),
        (r#""cgi-assign": {"": "/bin/sh"}"#, "mounts[0].cgi-assign.", "suffix"),
        (r#""cgi-assign": {"*.php": "/bin/sh"}"#, "mounts[0].cgi-assign.*.php", "starting with"),
        (r#""cgi-assign": {"php": "/bin/sh"}"#, "mounts[0].cgi-assign.php", "starting with"),
        (r#""cgi-assign": {".php": "/bin/sh", ".PHP": "/bin/cat"}"#, "mounts[0].cgi-assign..PHP", "twice"),
        (r#""deny": ["/inc=404"]"#, "mounts[0].deny[0]", "status"),
        (r#""deny": ["/inc/../x"]"#, "mounts[0].deny[0]", ".."),
        (r#""default": ["a/b.php"]"#, "mounts[0].default[0]", "file name"),
        (r#""default": 3"#, "mounts[0].default", "string or an array"),
        (r#""deny": "/inc""#, "mounts[0].deny", "array of rules"),
        (r#""deny": [""]"#, "mounts[0].deny[0]", "/path"),
        (r#""deny": ["a/b"]"#, "mounts[0].deny[0]", "segment name"),
        (r#""deny": [{"path": "/x", "status": "500"}]"#, "mounts[0].deny[0].status", "\"403\" or \"404\""),
        (r#""deny": [{"status": "404"}]"#, "mounts[0].deny[0]", "needs one of"),
        (r#""deny": [{"glob": "*"}]"#, "mounts[0].deny[0].glob", "unknown"),
        (r#""symlinks": "always""#, "mounts[0].symlinks", "\"confined\", \"follow\" or \"owner\""),
        (r#""cgi-assign": {".cgi": ""}, "x-sendfile": "relative/dir""#, "mounts[0].x-sendfile[0]", "absolute"),
        (r#""x-sendfile": "/tmp""#, "mounts[0].x-sendfile", "cgi:// mounts and file mounts with cgi-assign"),
        (r#""cgi-timeout": "5""#, "mounts[0].cgi-timeout", "cgi:// mounts and file mounts with cgi-assign"),
    ] {
        let e = match mount_with(d, keys) {
            Ok(_) => panic!("accepted: {keys}"),
            Err(e) => e,
        };
        assert!(e.message.contains(&format!("vhosts[0].{key}: ")), "{keys}: {e}");
        assert!(e.message.contains(says), "{keys}: {e}");
        assert!(e.to_string().starts_with(&d.join("conf.d/site").display().to_string()), "{e}");
    }
    // An interpreter that is not there is the vhost's problem, said at start.
    let e = mount_with(d, r#""cgi-assign": {".php": "/nonexistent/php-cgi"}"#)
        .map(|c| warren::Context::new(c).map(|_| ()))
        .expect("loads");
    let e = e.expect_err("refused at start");
    assert!(e.to_string().contains("cgi-assign .php") && e.to_string().contains("/nonexistent/php-cgi"), "{e}");
}
