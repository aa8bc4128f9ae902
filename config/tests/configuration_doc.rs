//! `docs/configuration.md` agrees with the CRD types: every field of every CRD schema is
//! documented, every YAML example passes `ferrolb check`, and no example holds a field the types
//! do not have (serde would drop it silently, so each example must survive a decode/encode round
//! trip with all its keys).

use std::path::PathBuf;

use ferrolb_config::check::{Source, check};
use ferrolb_config::crd::{self, all_crds};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

fn doc_text() -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/configuration.md");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// The ```yaml blocks of the page, in order.
fn yaml_blocks(text: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        match (&mut current, line.trim_end()) {
            (None, "```yaml") => current = Some(String::new()),
            (Some(block), "```") => {
                blocks.push(std::mem::take(block));
                current = None;
            }
            (Some(block), _) => {
                block.push_str(line);
                block.push('\n');
            }
            (None, _) => {}
        }
    }
    blocks
}

/// Property paths of a CRD schema below `root` (`spec`, `status`), skipping `conditions`, whose
/// fields are Kubernetes' own.
fn properties(schema: &Value, path: &str, out: &mut Vec<(String, String)>) {
    let nested = [
        schema.get("properties"),
        schema.pointer("/items/properties"),
    ];
    for props in nested.into_iter().flatten() {
        let Some(props) = props.as_object() else {
            continue;
        };
        for (name, sub) in props {
            if name == "conditions" {
                continue;
            }
            let sub_path = format!("{path}.{name}");
            out.push((sub_path.clone(), name.clone()));
            properties(sub, &sub_path, out);
        }
    }
}

#[test]
fn every_crd_field_is_documented() {
    let text = doc_text();
    let mut missing = Vec::new();
    for crd in all_crds() {
        let kind = crd.spec.names.kind.clone();
        let schema = serde_json::to_value(
            crd.spec.versions[0]
                .schema
                .as_ref()
                .and_then(|s| s.open_api_v3_schema.as_ref())
                .expect("schema"),
        )
        .expect("schema serializes");
        let mut fields = Vec::new();
        properties(&schema["properties"]["spec"], "spec", &mut fields);
        if matches!(kind.as_str(), "IPAddressPool" | "SpeakerStatus") {
            properties(&schema["properties"]["status"], "status", &mut fields);
        }
        assert!(!fields.is_empty(), "{kind} has no fields?");
        for (path, name) in fields {
            let documented =
                text.contains(&format!("`{name}`")) || text.contains(&format!("{name}:"));
            if !documented {
                missing.push(format!("{kind} {path}"));
            }
        }
    }
    assert_eq!(
        missing,
        Vec::<String>::new(),
        "fields not in docs/configuration.md"
    );
}

#[test]
fn every_example_passes_ferrolb_check() {
    let blocks = yaml_blocks(&doc_text());
    assert!(
        blocks.len() >= 7,
        "one example per kind, found {}",
        blocks.len()
    );
    let sources: Vec<Source> = blocks
        .into_iter()
        .enumerate()
        .map(|(i, text)| Source {
            file: format!("configuration.md block {}", i + 1),
            text,
        })
        .collect();
    let report = check(&sources);
    let findings: Vec<String> = report.findings.iter().map(ToString::to_string).collect();
    assert_eq!(findings, Vec::<String>::new());
    assert!(report.objects >= 8, "{} ferrolb objects", report.objects);
}

/// Keys of `original` (recursively) that `reencoded` lacks.
fn lost_keys(original: &Value, reencoded: &Value, path: &str, out: &mut Vec<String>) {
    match (original, reencoded) {
        (Value::Object(a), Value::Object(b)) => {
            for (key, value) in a {
                let sub = format!("{path}.{key}");
                match b.get(key) {
                    Some(other) => lost_keys(value, other, &sub, out),
                    None => out.push(sub),
                }
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                lost_keys(x, y, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

fn round_trip<T: DeserializeOwned + Serialize>(doc: &Value) -> Value {
    let typed: T = serde_json::from_value(doc.clone()).expect("decodes");
    serde_json::to_value(&typed).expect("encodes")
}

#[test]
fn examples_use_only_fields_the_types_have() {
    let mut lost = Vec::new();
    for block in yaml_blocks(&doc_text()) {
        for doc in serde_saphyr::from_multiple::<Value>(&block).expect("valid YAML") {
            if doc["apiVersion"] != crd::API_VERSION {
                continue;
            }
            let reencoded = match doc["kind"].as_str().expect("kind") {
                "IPAddressPool" => round_trip::<crd::IPAddressPool>(&doc),
                "L2Advertisement" => round_trip::<crd::L2Advertisement>(&doc),
                "BGPAdvertisement" => round_trip::<crd::BGPAdvertisement>(&doc),
                "BGPPeer" => round_trip::<crd::BGPPeer>(&doc),
                "BFDProfile" => round_trip::<crd::BFDProfile>(&doc),
                "Community" => round_trip::<crd::Community>(&doc),
                "SpeakerStatus" => round_trip::<crd::SpeakerStatus>(&doc),
                other => panic!("unknown kind {other}"),
            };
            let name = doc["metadata"]["name"].as_str().unwrap_or("").to_owned();
            lost_keys(&doc, &reencoded, &name, &mut lost);
        }
    }
    assert_eq!(lost, Vec::<String>::new(), "fields the types do not have");
}
