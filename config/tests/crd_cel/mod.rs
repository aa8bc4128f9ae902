//! The CRDs' CEL rules evaluated client-side (kube's `cel` feature), shared by the tests that
//! check objects the way the API server would.

use ferrolb_config::crd::all_crds;
use kube::core::cel::Validator;
use serde_json::Value;

/// The OpenAPI schema of the CRD of `kind`.
fn schema_for(kind: &str) -> Value {
    let crd = all_crds()
        .into_iter()
        .find(|c| c.spec.names.kind == kind)
        .unwrap_or_else(|| panic!("no CRD for kind {kind}"));
    let schema = crd.spec.versions[0]
        .schema
        .as_ref()
        .and_then(|s| s.open_api_v3_schema.as_ref())
        .expect("schema");
    serde_json::to_value(schema).expect("schema serializes")
}

/// The CEL rules `doc` (a ferrolb object) breaks, as the API server would print them.
pub fn cel_errors(doc: &Value) -> Vec<String> {
    let kind = doc["kind"].as_str().expect("kind");
    match Validator::new().validate(&schema_for(kind), doc, None) {
        Ok(()) => Vec::new(),
        Err(errors) => errors.iter().map(ToString::to_string).collect(),
    }
}
