//! `ferrolb import-metallb` as a user runs it, against golden files.
//!
//! Each directory under `tests/fixtures/import-metallb/` is one case: `input.yaml` (MetalLB
//! objects or the legacy ConfigMap), `expected.yaml` (stdout: the ferrolb objects) and
//! `expected-notes.txt` (stderr: one line per thing not carried over as it was, then the summary).
//! The converter runs in the case directory, so notes name `input.yaml`. Every output must pass
//! `ferrolb check`'s validation with no finding and break no CRD CEL rule, as the API server would
//! apply it.
//!
//! After an intended change of the output, rewrite the golden files with
//! `UPDATE_GOLDEN=1 cargo test -p ferrolb-config --test import_metallb` and review the diff.

mod crd_cel;

use std::path::{Path, PathBuf};
use std::process::Command;

use crd_cel::cel_errors;
use ferrolb_config::check::{Source, check};
use serde_json::Value;

fn cases() -> Vec<PathBuf> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/import-metallb");
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("listing {}: {e}", root.display()))
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.is_dir())
        .collect();
    cases.sort();
    cases
}

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn ferrolb(dir: &Path, args: &[&str]) -> Run {
    let output = Command::new(env!("CARGO_BIN_EXE_ferrolb"))
        .current_dir(dir)
        .args(args)
        .output()
        .expect("ferrolb runs");
    Run {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// Compares `actual` with the golden file, or rewrites it under `UPDATE_GOLDEN=1`.
fn assert_golden(path: &Path, actual: &str) {
    if std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| v == "1") {
        std::fs::write(path, actual).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
        return;
    }
    let expected = std::fs::read_to_string(path).unwrap_or_else(|e| {
        panic!(
            "reading {}: {e} (UPDATE_GOLDEN=1 writes it)",
            path.display()
        )
    });
    assert!(
        expected == actual,
        "{} differs (UPDATE_GOLDEN=1 rewrites it):\n--- expected\n{expected}\n--- actual\n{actual}",
        path.display()
    );
}

#[test]
fn every_case_converts_to_its_golden_files() {
    let cases = cases();
    assert!(
        cases.len() >= 3,
        "need at least 3 cases, have {}",
        cases.len()
    );
    for case in cases {
        let run = ferrolb(&case, &["import-metallb", "input.yaml"]);
        assert_eq!(run.code, Some(0), "{}: {}", case.display(), run.stderr);
        assert_golden(&case.join("expected.yaml"), &run.stdout);
        assert_golden(&case.join("expected-notes.txt"), &run.stderr);
    }
}

/// What the converter writes for `case`; checked directly rather than through the golden file,
/// so these tests hold while `UPDATE_GOLDEN=1` rewrites the files.
fn converted(case: &Path) -> String {
    let run = ferrolb(case, &["import-metallb", "input.yaml"]);
    assert_eq!(run.code, Some(0), "{}: {}", case.display(), run.stderr);
    run.stdout
}

#[test]
fn every_output_passes_ferrolb_check() {
    for case in cases() {
        let report = check(&[Source {
            file: "converted".to_owned(),
            text: converted(&case),
        }]);
        let findings: Vec<String> = report.findings.iter().map(ToString::to_string).collect();
        assert_eq!(findings, Vec::<String>::new(), "{}", case.display());
        assert!(report.objects > 0, "{} converts nothing", case.display());
    }
}

#[test]
fn every_output_breaks_no_cel_rule() {
    for case in cases() {
        let docs = serde_saphyr::from_multiple::<Value>(&converted(&case)).expect("valid YAML");
        for doc in docs
            .iter()
            .filter(|d| d["apiVersion"] == "ferrolb.io/v1beta1")
        {
            assert_eq!(cel_errors(doc), Vec::<String>::new(), "{}", case.display());
        }
    }
}

#[test]
fn output_file_gets_the_objects_and_stderr_the_notes() {
    let case = cases().into_iter().next().expect("a case");
    let out = std::env::temp_dir().join(format!("ferrolb-import-{}.yaml", std::process::id()));
    let run = ferrolb(
        &case,
        &[
            "import-metallb",
            "input.yaml",
            "-o",
            out.to_str().expect("utf-8 path"),
        ],
    );
    let written = std::fs::read_to_string(&out).expect("output written");
    std::fs::remove_file(&out).expect("output removed");
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(run.stdout, "");
    assert_eq!(written, converted(&case));
}

#[test]
fn secret_namespace_flag_moves_the_password_secret() {
    let case = cases()
        .into_iter()
        .find(|c| c.ends_with("realistic-crds"))
        .expect("realistic-crds case");
    let run = ferrolb(
        &case,
        &["import-metallb", "--secret-namespace", "lb", "input.yaml"],
    );
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(
        run.stdout
            .contains("name: tor-a-bgp-password\n  namespace: lb\n"),
        "{}",
        run.stdout
    );
}

#[test]
fn unparseable_input_fails_with_status_2_naming_the_field() {
    let dir = std::env::temp_dir().join(format!("ferrolb-import-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    std::fs::write(
        dir.join("bad.yaml"),
        "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata:\n  name: a\nspec:\n  addresses: 198.51.100.0/24\n",
    )
    .expect("written");
    std::fs::write(dir.join("broken.yaml"), "apiVersion: [unclosed\n").expect("written");
    let bad = ferrolb(&dir, &["import-metallb", "bad.yaml"]);
    let broken = ferrolb(&dir, &["import-metallb", "broken.yaml"]);
    let missing = ferrolb(&dir, &["import-metallb", "missing.yaml"]);
    std::fs::remove_dir_all(&dir).expect("temp dir removed");
    assert_eq!(bad.code, Some(2));
    assert!(
        bad.stderr
            .contains("bad.yaml:1 IPAddressPool/a spec.addresses:"),
        "{}",
        bad.stderr
    );
    assert_eq!(bad.stdout, "");
    assert_eq!(broken.code, Some(2));
    assert!(
        broken.stderr.contains("not valid YAML"),
        "{}",
        broken.stderr
    );
    assert_eq!(missing.code, Some(2));
}

#[test]
fn input_ferrolb_refuses_fails_with_status_1_and_still_writes_the_output() {
    let dir = std::env::temp_dir().join(format!("ferrolb-import-overlap-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let pool = |name: &str, cidr: &str| {
        format!(
            "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata:\n  name: {name}\nspec:\n  addresses: [{cidr}]\n"
        )
    };
    let text = format!(
        "{}---\n{}",
        pool("a", "198.51.100.0/24"),
        pool("b", "198.51.100.128/25")
    );
    std::fs::write(dir.join("overlap.yaml"), text).expect("written");
    let run = ferrolb(&dir, &["import-metallb", "overlap.yaml"]);
    std::fs::remove_dir_all(&dir).expect("temp dir removed");
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert!(run.stdout.contains("name: b"), "{}", run.stdout);
    assert!(
        run.stderr
            .contains("overlap.yaml:2 IPAddressPool/b spec.addresses[0]: the converted IPAddressPool/b fails ferrolb check:"),
        "{}",
        run.stderr
    );
}
