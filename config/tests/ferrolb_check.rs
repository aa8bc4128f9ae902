//! `ferrolb check` as a user runs it: the valid examples pass, every broken fixture fails and
//! names the field (and, for cross-object problems, the object) its first lines promise.

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn fixtures(dir: &str) -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(dir);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("fixture directory exists")
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

/// The value of a `# key: value` header line of a fixture.
fn header(path: &Path, key: &str) -> Option<String> {
    let text = std::fs::read_to_string(path).expect("fixture readable");
    text.lines()
        .take_while(|l| l.starts_with('#'))
        .find_map(|l| l.strip_prefix(&format!("# {key}: ")).map(str::to_owned))
}

fn ferrolb_check(paths: &[&Path]) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_ferrolb"))
        .arg("check")
        .args(paths)
        .output()
        .expect("ferrolb runs");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}

#[test]
fn examples_directory_is_clean() {
    let (ok, stdout) = ferrolb_check(&[&repo().join("deploy/examples")]);
    assert!(ok, "deploy/examples must pass ferrolb check:\n{stdout}");
    assert_eq!(stdout, "");
}

#[test]
fn examples_have_one_file_per_kind() {
    for kind in [
        "ipaddresspool",
        "l2advertisement",
        "bgpadvertisement",
        "bgppeer",
        "bfdprofile",
        "community",
        "speakerstatus",
    ] {
        let path = repo().join(format!("deploy/examples/{kind}.yaml"));
        assert!(path.is_file(), "{} is missing", path.display());
    }
}

#[test]
fn every_per_object_fixture_fails_naming_its_field() {
    let files = fixtures("invalid-per-object");
    assert!(
        files.len() >= 20,
        "need at least 20 per-object fixtures, have {}",
        files.len()
    );
    for file in files {
        let field = header(&file, "field").expect("first line is `# field: <path>`");
        let (ok, stdout) = ferrolb_check(&[&file]);
        assert!(!ok, "{} should fail", file.display());
        let lines: Vec<&str> = stdout.lines().collect();
        assert_eq!(
            lines.len(),
            1,
            "{} breaks exactly one rule, got:\n{stdout}",
            file.display()
        );
        assert!(
            lines[0].contains(&format!(" {field}: ")),
            "{}: expected field {field} in:\n{stdout}",
            file.display()
        );
    }
}

#[test]
fn every_cross_object_fixture_fails_naming_object_and_field() {
    let files = fixtures("invalid-cross-object");
    assert!(!files.is_empty());
    for file in files {
        let field = header(&file, "field").expect("`# field:` header");
        let object = header(&file, "kind/name").expect("`# kind/name:` header");
        let (ok, stdout) = ferrolb_check(&[&file]);
        assert!(!ok, "{} should fail", file.display());
        let lines: Vec<&str> = stdout.lines().collect();
        assert_eq!(
            lines.len(),
            1,
            "{} has exactly one problem, got:\n{stdout}",
            file.display()
        );
        assert!(
            lines[0].contains(&format!(" {object} {field}: ")),
            "{}: expected {object} {field} in:\n{stdout}",
            file.display()
        );
    }
}

#[test]
fn unreadable_path_exits_with_a_message() {
    let output = Command::new(env!("CARGO_BIN_EXE_ferrolb"))
        .args(["check", "/nonexistent/ferrolb.yaml"])
        .output()
        .expect("ferrolb runs");
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("/nonexistent/ferrolb.yaml"));
}
