//! Offline validation of YAML manifests, the core of `ferrolb check` (SPEC §7).
//!
//! Contract: pure, no I/O: the caller reads the files. Every YAML document is dispatched on
//! `apiVersion`/`kind`; ferrolb objects are decoded into the CRD types (a type error names the
//! field path), `v1` Namespaces feed pool namespace selectors, other objects are ignored. Then the
//! same [`model::build`] the controller runs applies the per-object and cross-object rules, and
//! each problem is mapped back to the file and document (1-based) that defined the object.

use std::collections::HashMap;
use std::fmt;

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::crd;
use crate::model::diagnostic::after_field;
use crate::model::{self, Diagnostic, ObjectKind, Objects, Severity};

/// One input file.
#[derive(Debug, Clone)]
pub struct Source {
    /// Shown in findings, usually the path.
    pub file: String,
    pub text: String,
}

/// One problem, located in a file.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Finding {
    pub file: String,
    /// 1-based document number within the file.
    pub doc: usize,
    /// `Kind/name`, or `-` when the document is not a readable object.
    pub object: String,
    pub field: String,
    pub severity: Severity,
    pub message: String,
}

impl Finding {
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

/// `file:doc kind/name field: message`.
impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{} {} {}: {}{}",
            self.file,
            self.doc,
            self.object,
            self.field,
            self.severity.message_prefix(),
            after_field(&self.message, &self.field)
        )
    }
}

/// The outcome of a check.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Sorted by file and document.
    pub findings: Vec<Finding>,
    /// ferrolb objects read.
    pub objects: usize,
}

impl Report {
    pub fn has_errors(&self) -> bool {
        self.findings.iter().any(Finding::is_error)
    }
}

/// Where an object was defined.
#[derive(Debug, Clone)]
struct Origin {
    file: String,
    doc: usize,
}

#[derive(Default)]
struct Reader {
    objects: Objects,
    origins: HashMap<(ObjectKind, String), Origin>,
    findings: Vec<Finding>,
}

impl Reader {
    fn finding(&mut self, origin: &Origin, object: String, field: &str, message: String) {
        self.findings.push(Finding {
            file: origin.file.clone(),
            doc: origin.doc,
            object,
            field: field.to_owned(),
            severity: Severity::Error,
            message,
        });
    }

    fn read_document(&mut self, origin: Origin, doc: Value) {
        if doc.is_null() {
            return;
        }
        let api_version = doc.get("apiVersion").and_then(Value::as_str).unwrap_or("");
        let kind_name = doc.get("kind").and_then(Value::as_str).unwrap_or("");
        let name = doc
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        if api_version == "v1" && kind_name == "Namespace" {
            if let Some(ns) = self.decode(&origin, &format!("Namespace/{name}"), doc) {
                self.objects.namespaces.push(ns);
            }
            return;
        }
        if !api_version.starts_with("ferrolb.io/") {
            if api_version.is_empty() || kind_name.is_empty() {
                self.finding(
                    &origin,
                    "-".to_owned(),
                    "apiVersion",
                    "document has no apiVersion or kind".to_owned(),
                );
            }
            return;
        }
        let kind = match ObjectKind::from_kind(kind_name) {
            Some(kind) if api_version == crd::API_VERSION => kind,
            _ => {
                self.finding(
                    &origin,
                    format!("{kind_name}/{name}"),
                    "kind",
                    format!(
                        "unknown ferrolb kind {kind_name:?} in {api_version:?}; expected {} with one of {}",
                        crd::API_VERSION,
                        ObjectKind::ALL.map(ObjectKind::as_str).join(", ")
                    ),
                );
                return;
            }
        };
        let label = format!("{kind}/{name}");
        if let Some(first) = self.origins.get(&(kind, name.clone())) {
            let message = format!(
                "defined again (first at {}:{}); when applied, this object replaces the earlier one",
                first.file, first.doc
            );
            self.finding(&origin, label.clone(), "metadata.name", message);
            self.remove(kind, &name);
        }
        let decoded = match kind {
            ObjectKind::IPAddressPool => {
                self.decode_into(&origin, &label, doc, |o, v| o.pools.push(v))
            }
            ObjectKind::L2Advertisement => {
                self.decode_into(&origin, &label, doc, |o, v| o.l2_advertisements.push(v))
            }
            ObjectKind::BGPAdvertisement => {
                self.decode_into(&origin, &label, doc, |o, v| o.bgp_advertisements.push(v))
            }
            ObjectKind::BGPPeer => self.decode_into(&origin, &label, doc, |o, v| o.peers.push(v)),
            ObjectKind::BFDProfile => {
                self.decode_into(&origin, &label, doc, |o, v| o.bfd_profiles.push(v))
            }
            ObjectKind::Community => {
                self.decode_into(&origin, &label, doc, |o, v| o.communities.push(v))
            }
            // Not part of the config snapshot; decoding checks its shape.
            ObjectKind::SpeakerStatus => self
                .decode::<crd::SpeakerStatus>(&origin, &label, doc)
                .is_some(),
        };
        if decoded {
            self.origins.insert((kind, name), origin);
        }
    }

    /// Decodes `doc` as a `T`, reporting a type error with the path of the offending field.
    fn decode<T: DeserializeOwned>(
        &mut self,
        origin: &Origin,
        label: &str,
        doc: Value,
    ) -> Option<T> {
        match serde_path_to_error::deserialize::<_, T>(doc) {
            Ok(value) => Some(value),
            Err(err) => {
                let field = err.path().to_string();
                let message = format!("{field}: {}", err.inner());
                self.finding(origin, label.to_owned(), &field, message);
                None
            }
        }
    }

    /// Decodes `doc` and hands it to `push`; whether it decoded.
    fn decode_into<T: DeserializeOwned>(
        &mut self,
        origin: &Origin,
        label: &str,
        doc: Value,
        push: impl FnOnce(&mut Objects, T),
    ) -> bool {
        match self.decode::<T>(origin, label, doc) {
            Some(value) => {
                push(&mut self.objects, value);
                true
            }
            None => false,
        }
    }

    /// Forgets an earlier object of the same kind and name (a later document replaces it).
    fn remove(&mut self, kind: ObjectKind, name: &str) {
        fn named<K: kube::Resource>(name: &str) -> impl Fn(&K) -> bool + '_ {
            move |o: &K| o.meta().name.as_deref() != Some(name)
        }
        let o = &mut self.objects;
        match kind {
            ObjectKind::IPAddressPool => o.pools.retain(named(name)),
            ObjectKind::L2Advertisement => o.l2_advertisements.retain(named(name)),
            ObjectKind::BGPAdvertisement => o.bgp_advertisements.retain(named(name)),
            ObjectKind::BGPPeer => o.peers.retain(named(name)),
            ObjectKind::BFDProfile => o.bfd_profiles.retain(named(name)),
            ObjectKind::Community => o.communities.retain(named(name)),
            ObjectKind::SpeakerStatus => {}
        }
        self.origins.remove(&(kind, name.to_owned()));
    }

    fn locate(&self, diagnostic: &Diagnostic) -> Finding {
        let origin = self
            .origins
            .get(&(diagnostic.kind, diagnostic.name.clone()))
            .cloned()
            .unwrap_or(Origin {
                file: "-".to_owned(),
                doc: 0,
            });
        Finding {
            file: origin.file,
            doc: origin.doc,
            object: format!("{}/{}", diagnostic.kind, diagnostic.name),
            field: diagnostic.field.clone(),
            severity: diagnostic.severity,
            message: diagnostic.message.clone(),
        }
    }
}

/// Checks every document of every source with the controller's rules.
pub fn check(sources: &[Source]) -> Report {
    let mut reader = Reader::default();
    for source in sources {
        match serde_saphyr::from_multiple::<Value>(&source.text) {
            Ok(docs) => {
                for (index, doc) in docs.into_iter().enumerate() {
                    let origin = Origin {
                        file: source.file.clone(),
                        doc: index + 1,
                    };
                    reader.read_document(origin, doc);
                }
            }
            Err(err) => {
                let origin = Origin {
                    file: source.file.clone(),
                    doc: 1,
                };
                reader.finding(
                    &origin,
                    "-".to_owned(),
                    "-",
                    format!("not valid YAML: {err}"),
                );
            }
        }
    }
    let (_, diagnostics) = model::build(&reader.objects);
    let located: Vec<Finding> = diagnostics.iter().map(|d| reader.locate(d)).collect();
    let objects = reader.origins.len();
    let mut findings = reader.findings;
    findings.extend(located);
    findings.sort();
    Report { findings, objects }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn run(text: &str) -> Report {
        check(&[Source {
            file: "test.yaml".to_owned(),
            text: text.to_owned(),
        }])
    }

    fn lines(report: &Report) -> Vec<String> {
        report.findings.iter().map(ToString::to_string).collect()
    }

    const POOL: &str = "apiVersion: ferrolb.io/v1beta1
kind: IPAddressPool
metadata:
  name: a
spec:
  addresses: [192.0.2.0/24]
";

    #[test]
    fn clean_set_has_no_findings() {
        let report = run(POOL);
        assert_eq!(lines(&report), Vec::<String>::new());
        assert_eq!(report.objects, 1);
        assert!(!report.has_errors());
    }

    #[test]
    fn problem_is_located_by_file_and_document() {
        let text = format!(
            "{POOL}---\napiVersion: ferrolb.io/v1beta1\nkind: BGPPeer\nmetadata:\n  name: tor\nspec:\n  myASN: 64512\n  peerASN: 64513\n  peerAddress: 192.0.2.1\n  holdTime: 2s\n"
        );
        let report = run(&text);
        assert_eq!(
            lines(&report),
            vec![
                "test.yaml:2 BGPPeer/tor spec.holdTime: spec.holdTime must be 0s or at least 3s (RFC 4271 section 4.2)"
            ]
        );
        assert!(report.has_errors());
    }

    #[test]
    fn a_line_names_the_field_once() {
        let report = run(
            "apiVersion: ferrolb.io/v1beta1\nkind: IPAddressPool\nmetadata:\n  name: p\nspec:\n  addresses: [pool-a]\n",
        );
        assert_eq!(
            lines(&report),
            vec![
                "test.yaml:1 IPAddressPool/p spec.addresses[0]: \"pool-a\" is not an IP address, a CIDR or a range start-end"
            ]
        );
        // The message itself keeps the field: it also stands alone in a status condition.
        assert!(
            report.findings[0]
                .message
                .starts_with("spec.addresses[0]: ")
        );
    }

    #[test]
    fn type_error_names_the_field_path() {
        let report = run(
            "apiVersion: ferrolb.io/v1beta1\nkind: BGPPeer\nmetadata:\n  name: tor\nspec:\n  myASN: 64512\n  dynamicASN: sometimes\n  peerAddress: 192.0.2.1\n",
        );
        assert_eq!(report.findings.len(), 1);
        assert_eq!(report.findings[0].field, "spec.dynamicASN");
        assert_eq!(report.findings[0].object, "BGPPeer/tor");
    }

    #[test]
    fn missing_required_field_is_reported() {
        let report = run(
            "apiVersion: ferrolb.io/v1beta1\nkind: IPAddressPool\nmetadata:\n  name: a\nspec: {}\n",
        );
        assert_eq!(report.findings.len(), 1);
        assert!(
            report.findings[0].message.contains("addresses"),
            "{:?}",
            report.findings
        );
    }

    #[test]
    fn unknown_ferrolb_kind_is_an_error_and_foreign_objects_are_ignored() {
        let report = run(
            "apiVersion: ferrolb.io/v1beta1\nkind: IPPool\nmetadata:\n  name: a\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: x\n",
        );
        assert_eq!(lines(&report).len(), 1);
        assert_eq!(report.findings[0].field, "kind");
    }

    #[test]
    fn document_without_kind_is_an_error() {
        let report = run("foo: bar\n");
        assert_eq!(report.findings[0].field, "apiVersion");
    }

    #[test]
    fn broken_yaml_is_an_error_not_a_panic() {
        let report = run("apiVersion: [unclosed\n");
        assert!(report.has_errors());
        assert!(report.findings[0].message.contains("not valid YAML"));
    }

    #[test]
    fn same_object_twice_is_reported_and_the_later_wins() {
        let later = POOL.replace("192.0.2.0/24", "198.51.100.0/24");
        let report = run(&format!("{POOL}---\n{later}"));
        assert_eq!(report.findings.len(), 1, "{:?}", lines(&report));
        assert_eq!(report.findings[0].doc, 2);
        assert!(report.findings[0].message.contains("defined again"));
    }

    #[test]
    fn cross_object_problem_names_the_newer_object() {
        let b = POOL
            .replace("name: a", "name: b")
            .replace("192.0.2.0/24", "192.0.2.128/25");
        let report = run(&format!("{POOL}---\n{b}"));
        assert_eq!(
            report
                .findings
                .iter()
                .map(|f| (f.doc, f.object.as_str(), f.field.as_str()))
                .collect::<Vec<_>>(),
            vec![(2, "IPAddressPool/b", "spec.addresses[0]")]
        );
    }

    #[test]
    fn namespaces_feed_pool_selectors_without_findings() {
        let ns =
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: web\n  labels:\n    team: shop\n";
        let report = run(&format!("{ns}---\n{POOL}"));
        assert_eq!(lines(&report), Vec::<String>::new());
    }

    proptest! {
        #[test]
        fn arbitrary_text_never_panics(text in "\\PC{0,200}") {
            let _ = run(&text);
        }

        #[test]
        fn pool_documents_with_arbitrary_addresses_never_panic(
            addresses in proptest::collection::vec("[0-9a-f:./ -]{0,24}", 0..4)
        ) {
            let list = addresses.iter().map(|a| format!("{a:?}")).collect::<Vec<_>>().join(", ");
            let _ = run(&format!("apiVersion: ferrolb.io/v1beta1\nkind: IPAddressPool\nmetadata:\n  name: a\nspec:\n  addresses: [{list}]\n"));
        }
    }
}
