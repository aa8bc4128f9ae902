//! `ferrolb check` as a user runs it: the valid examples pass, every broken fixture fails and
//! names the field (and, for cross-object problems, the object) its header lines promise.

mod fixture_files;

use std::path::{Path, PathBuf};
use std::process::Command;

use fixture_files::{examples_dir, fixture_dir, header, yaml_files};

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

/// Runs `ferrolb check` on `file` and asserts it fails with exactly one line holding `expected`.
fn assert_fails_with_one_line(file: &Path, expected: &str) {
    let (ok, stdout) = ferrolb_check(&[file]);
    assert!(!ok, "{} should fail", file.display());
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "{} has exactly one problem, got:\n{stdout}",
        file.display()
    );
    assert!(
        lines[0].contains(expected),
        "{}: expected {expected:?} in:\n{stdout}",
        file.display()
    );
}

#[test]
fn examples_directory_is_clean() {
    let (ok, stdout) = ferrolb_check(&[&examples_dir()]);
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
        let path: PathBuf = examples_dir().join(format!("{kind}.yaml"));
        assert!(path.is_file(), "{} is missing", path.display());
    }
}

#[test]
fn every_per_object_fixture_fails_naming_its_field() {
    let files = yaml_files(&fixture_dir("invalid-per-object"));
    assert!(
        files.len() >= 20,
        "need at least 20 per-object fixtures, have {}",
        files.len()
    );
    for file in files {
        let field = header(&file, "field").expect("first line is `# field: <path>`");
        assert_fails_with_one_line(&file, &format!(" {field}: "));
    }
}

/// Rules the API server cannot enforce (see `range_order_rule` in the CRD types) are caught offline.
#[test]
fn every_offline_only_fixture_fails_naming_its_field() {
    let files = yaml_files(&fixture_dir("invalid-offline"));
    assert!(!files.is_empty());
    for file in files {
        let field = header(&file, "field").expect("first line is `# field: <path>`");
        assert_fails_with_one_line(&file, &format!(" {field}: "));
    }
}

#[test]
fn every_cross_object_fixture_fails_naming_object_and_field() {
    let files = yaml_files(&fixture_dir("invalid-cross-object"));
    assert!(!files.is_empty());
    for file in files {
        let field = header(&file, "field").expect("`# field:` header");
        let object = header(&file, "kind/name").expect("`# kind/name:` header");
        assert_fails_with_one_line(&file, &format!(" {object} {field}: "));
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
