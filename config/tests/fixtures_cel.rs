//! The CRDs' CEL rules, evaluated client-side (kube's `cel` feature), agree with the fixtures:
//! the examples break no rule, and a per-object fixture that breaks a CEL rule is reported at the
//! field its header names. (Fixtures that break an OpenAPI constraint instead, such as a minimum,
//! are checked by the API server in the lab and by `ferrolb check`.)

mod crd_cel;
mod fixture_files;

use std::path::Path;

use crd_cel::cel_errors;
use fixture_files::{examples_dir, fixture_dir, header, yaml_files};
use serde_json::Value;

fn documents(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).expect("readable");
    serde_saphyr::from_multiple::<Value>(&text)
        .expect("valid YAML")
        .into_iter()
        .filter(|d| !d.is_null())
        .collect()
}

#[test]
fn examples_break_no_cel_rule() {
    for file in yaml_files(&examples_dir()) {
        for doc in documents(&file) {
            assert_eq!(cel_errors(&doc), Vec::<String>::new(), "{}", file.display());
        }
    }
}

#[test]
fn cel_errors_on_per_object_fixtures_are_at_the_named_field() {
    let mut caught_by_cel = 0;
    for file in yaml_files(&fixture_dir("invalid-per-object")) {
        let field = header(&file, "field").expect("field header");
        for doc in documents(&file) {
            let errors = cel_errors(&doc);
            if !errors.is_empty() {
                caught_by_cel += 1;
                assert_eq!(errors.len(), 1, "{}: {errors:?}", file.display());
                assert!(
                    errors[0].starts_with(&format!("{field}: ")),
                    "{}: {errors:?}",
                    file.display()
                );
            }
        }
    }
    assert!(
        caught_by_cel >= 15,
        "only {caught_by_cel} fixtures exercise CEL rules"
    );
}
