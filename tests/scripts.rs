//! The test scripts a clone of the repository runs (issue 11 item 11):
//! the Autobahn runner is the workplace's, found beside the repository or
//! where `WARREN_CONFORMANCE` points, never at one machine's absolute path;
//! `scripts/test` skips it in one line where it is absent, and `.ci/run`
//! requires it.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const REPO: &str = env!("CARGO_MANIFEST_DIR");

/// `scripts/` and `.ci/` copied into `<tmp>/repo`, with nothing beside it.
fn layout() -> (tempfile::TempDir, PathBuf) {
    let t = tempfile::tempdir().expect("tempdir");
    let repo = t.path().join("repo");
    for f in ["scripts/test", "scripts/autobahn", ".ci/run"] {
        let to = repo.join(f);
        std::fs::create_dir_all(to.parent().expect("parent")).expect("mkdir");
        std::fs::copy(Path::new(REPO).join(f), &to).expect("copy");
    }
    (t, repo)
}

fn executable(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, text).expect("write");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

fn run(repo: &Path, script: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(repo.join(script));
    c.args(args).env_remove("WARREN_CONFORMANCE").env_remove("WARREN_REQUIRE_CONFORMANCE");
    c.envs(env.iter().copied()).output().expect("run script")
}

#[test]
fn autobahn_runner_is_found_beside_the_repository_or_where_the_variable_points() {
    let text = std::fs::read_to_string(Path::new(REPO).join("scripts/autobahn")).expect("read");
    assert!(!text.contains("/work/"), "no absolute path of one machine");
    let (t, repo) = layout();
    let out = run(&repo, "scripts/autobahn", &["--find"], &[]);
    assert_eq!(out.status.code(), Some(1));
    let out = run(&repo, "scripts/autobahn", &[], &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("shared/conformance/autobahn.sh") && err.contains("WARREN_CONFORMANCE"), "{err}");
    let beside = t.path().join("shared/conformance/autobahn.sh");
    executable(&beside, "#!/bin/sh\nexit 0\n");
    let out = run(&repo, "scripts/autobahn", &["--find"], &[]);
    assert_eq!(out.status.code(), Some(0));
    let found = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    assert_eq!(found.canonicalize().ok(), beside.canonicalize().ok());
    let elsewhere = t.path().join("else");
    executable(&elsewhere.join("autobahn.sh"), "#!/bin/sh\nexit 0\n");
    let out = run(&repo, "scripts/autobahn", &["--find"], &[("WARREN_CONFORMANCE", &elsewhere.to_string_lossy())]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), elsewhere.join("autobahn.sh").to_string_lossy());
}

/// `scripts/test` and `.ci/run` with `cargo` replaced by a stand-in that
/// succeeds (this test runs inside `cargo test`), so only the scripts'
/// own logic runs.
#[test]
fn scripts_test_skips_a_missing_runner_in_one_line_and_ci_requires_it() {
    // scripts/test installs these first where they are missing; this test
    // must not.
    let have = |p: &str| Path::new(p).exists();
    let tools = ["curl", "chromium"].iter().all(|t| {
        Command::new("sh").args(["-c", &format!("command -v {t}")]).output().is_ok_and(|o| o.status.success())
    });
    if !(tools && have("/usr/bin/php-cgi") && (have("/usr/bin/python3") || have("/usr/local/bin/python3"))) {
        eprintln!("curl, chromium, php-cgi or python3 missing: scripts/test would install them; not run");
        return;
    }
    let (t, repo) = layout();
    let bin = t.path().join("bin");
    executable(&bin.join("cargo"), "#!/bin/sh\nexit 0\n");
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    let out = run(&repo, "scripts/test", &[], &[("PATH", &path)]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("Autobahn") && err.contains("not run"), "{err}");
    // CI requires the runner: its absence fails .ci/run.
    let out = run(&repo, ".ci/run", &[], &[("PATH", &path)]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("no conformance runner"), "{err}");
    // A WARREN_CONFORMANCE that points nowhere is a mistake, not a skip.
    let out = run(&repo, "scripts/test", &[], &[("PATH", &path), ("WARREN_CONFORMANCE", "/nonexistent")]);
    assert_eq!(out.status.code(), Some(2));
}
