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
