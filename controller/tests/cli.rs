//! The `ferrolb-controller` binary's command line. Having an integration test here also makes
//! `cargo test --workspace` build the binary that the lab's e2e suite starts.

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_ferrolb-controller");

#[test]
fn help_lists_the_class_flags() {
    let output = Command::new(BIN).arg("--help").output().expect("runs");
    assert!(output.status.success());
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("--lb-class"), "{text}");
    assert!(text.contains("--handle-classless"), "{text}");
}

#[test]
fn class_without_prefix_is_refused_before_connecting() {
    let output = Command::new(BIN)
        .args([
            "--lb-class",
            "lb",
            "--identity",
            "a",
            "--lease-namespace",
            "n",
        ])
        .output()
        .expect("runs");
    assert!(!output.status.success());
    let text = String::from_utf8_lossy(&output.stderr);
    assert!(text.contains("--lb-class"), "{text}");
}
