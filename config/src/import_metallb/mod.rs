//! Conversion of a MetalLB configuration to ferrolb objects, the core of `ferrolb import-metallb`
//! (SPEC §7).
//!
//! Contract: pure, no I/O: the caller reads the files and writes the result. [`convert`] reads
//! every YAML document of every source: MetalLB's `metallb.io` kinds (`IPAddressPool`,
//! `L2Advertisement`, `BGPAdvertisement`, `BGPPeer` v1beta1 and v1beta2, `BFDProfile`,
//! `Community`), `List`s of them as `kubectl get -o yaml` writes them, and MetalLB's legacy
//! `ConfigMap` (key `config`). It returns the ferrolb objects in input order, rendered as one
//! multi-document YAML, plus one [`Note`] per thing that cannot be carried over or changes meaning.
//!
//! - Every object is converted, also when a field is dropped; the only objects left out are those
//!   that would act somewhere else than MetalLB did (a peer in a VRF or over an unnumbered
//!   interface), and references to them are removed (see `convert`).
//! - A plain-text BGP password becomes a `v1` Secret (key `password`) in
//!   [`Options::secret_namespace`], referenced by `passwordSecret`.
//! - A label selector ferrolb cannot evaluate is replaced by one that matches nothing, so a peer
//!   or advertisement never reaches more nodes than intended.
//! - MetalLB objects are namespaced and ferrolb's are cluster-scoped: names are kept, and an
//!   object whose name is already taken by one of the same kind from another namespace is renamed
//!   `<namespace>-<name>` (references from its namespace follow).
//! - The result is validated with [`crate::check`], the code behind `ferrolb check`;
//!   [`Conversion::findings`] lists what it reports, located at the MetalLB input.
//!
//! Unreadable input (not YAML, a document that is not a Kubernetes object, a field of the wrong
//! type) is an [`ImportError`], never a partial conversion.

mod convert;
mod legacy;
mod metallb;
#[cfg(test)]
mod tests;

use std::fmt;

use k8s_openapi::api::core::v1::Secret;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::check::{self, Source};
use crate::crd;
use metallb::{DEFAULT_NAMESPACE, Metadata, Object, Spec};

/// Choices the input does not make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Namespace of the Secrets made from plain-text BGP passwords: where ferrolb runs, so its
    /// speakers may read them.
    pub secret_namespace: String,
}

/// Namespace ferrolb is installed in by default.
pub const DEFAULT_SECRET_NAMESPACE: &str = "ferrolb-system";

impl Default for Options {
    fn default() -> Self {
        Options {
            secret_namespace: DEFAULT_SECRET_NAMESPACE.to_owned(),
        }
    }
}

/// Something of the input that is not carried over as it was, located in the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    pub file: String,
    /// 1-based document number within the file.
    pub doc: usize,
    /// `Kind/name` of the input document (`ConfigMap/name` for the legacy format).
    pub object: String,
    /// Field of the input object (`spec.ebgpMultiHop`, `config.peers[0].ebgp-multihop`).
    pub field: String,
    pub message: String,
}

/// `file:doc kind/name field: message`, as `ferrolb check` writes its findings.
impl fmt::Display for Note {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{} {} {}: {}",
            self.file, self.doc, self.object, self.field, self.message
        )
    }
}

/// One object of the result.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Converted {
    IPAddressPool(crd::IPAddressPool),
    L2Advertisement(crd::L2Advertisement),
    BGPAdvertisement(crd::BGPAdvertisement),
    BGPPeer(crd::BGPPeer),
    BFDProfile(crd::BFDProfile),
    Community(crd::Community),
    /// A plain-text BGP password, moved out of the peer.
    Secret(Secret),
}

/// The result of [`convert`].
#[derive(Debug, Clone)]
pub struct Conversion {
    /// The ferrolb objects, in input order (a Secret just before the peer using it).
    pub objects: Vec<Converted>,
    /// The objects as one multi-document YAML.
    pub yaml: String,
    /// What was dropped or changes meaning, in input order.
    pub notes: Vec<Note>,
    /// What `ferrolb check` reports about the result, located at the input. Empty for a MetalLB
    /// configuration MetalLB itself accepts.
    pub findings: Vec<Note>,
    /// Whether any finding is an error, i.e. `ferrolb check` would fail on the result.
    pub has_errors: bool,
}

/// Why the input could not be converted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImportError {
    #[error("{file}: not valid YAML: {message}")]
    Yaml { file: String, message: String },
    #[error("{file}:{doc} {object} {field}: {message}")]
    Document {
        file: String,
        doc: usize,
        /// `Kind/name`, or `-` when the document has no kind.
        object: String,
        field: String,
        message: String,
    },
    #[error("rendering the result as YAML: {message}")]
    Render { message: String },
}

/// Where a MetalLB object came from, for notes.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Origin {
    file: String,
    doc: usize,
    /// `Kind/name` of the document.
    object: String,
    /// For an object made from the legacy ConfigMap: the entry of `config` it comes from
    /// (`config.peers[0]`); notes then name the legacy keys.
    legacy_path: Option<String>,
}

impl Origin {
    /// The input field behind the ferrolb-side field name `spec.<field>` of a MetalLB object.
    fn field(&self, field: &str) -> String {
        match &self.legacy_path {
            None => field.to_owned(),
            Some(path) => legacy::field_path(path, field),
        }
    }

    fn note(&self, field: &str, message: impl Into<String>) -> Note {
        Note {
            file: self.file.clone(),
            doc: self.doc,
            object: self.object.clone(),
            field: self.field(field),
            message: message.into(),
        }
    }

    fn error(&self, field: &str, message: impl Into<String>) -> ImportError {
        ImportError::Document {
            file: self.file.clone(),
            doc: self.doc,
            object: self.object.clone(),
            field: self.field(field),
            message: message.into(),
        }
    }
}

/// A MetalLB object and where it came from.
#[derive(Debug, Clone)]
struct Input {
    origin: Origin,
    object: Object,
}

/// Converts every MetalLB object of `sources` to ferrolb objects and validates the result.
pub fn convert(sources: &[Source], options: &Options) -> Result<Conversion, ImportError> {
    let mut reader = Reader::default();
    for source in sources {
        let docs = serde_saphyr::from_multiple::<Value>(&source.text).map_err(|err| {
            ImportError::Yaml {
                file: source.file.clone(),
                message: err.to_string(),
            }
        })?;
        for (index, doc) in docs.into_iter().enumerate() {
            reader.read_document(&source.file, index + 1, doc)?;
        }
    }
    let mut notes = reader.notes;
    let converted = convert::convert(&reader.inputs, options, &mut notes);
    // Input order: by source, then document; notes on one document keep the order of the fields.
    let position = |file: &str| sources.iter().position(|s| s.file == file);
    notes.sort_by_key(|note| (position(&note.file), note.doc));
    let objects: Vec<Converted> = converted.iter().map(|(_, o)| o.clone()).collect();
    let yaml = render(&objects)?;
    let report = check::check(&[Source {
        file: "converted".to_owned(),
        text: yaml.clone(),
    }]);
    let findings = report
        .findings
        .iter()
        .map(|finding| {
            // Documents are rendered one per object, in order. `check` locates every finding
            // of a readable document; anything else is shown without a location.
            let origin = finding
                .doc
                .checked_sub(1)
                .and_then(|i| converted.get(i))
                .map(|(origin, _)| origin.clone())
                .unwrap_or_else(|| Origin {
                    file: "-".to_owned(),
                    doc: 0,
                    object: "-".to_owned(),
                    legacy_path: None,
                });
            Note {
                field: origin.field(&finding.field),
                file: origin.file,
                doc: origin.doc,
                object: origin.object,
                message: format!(
                    "the converted {} fails ferrolb check: {}{}",
                    finding.object,
                    finding.severity.message_prefix(),
                    finding.message
                ),
            }
        })
        .collect();
    Ok(Conversion {
        objects,
        yaml,
        notes,
        findings,
        has_errors: report.has_errors(),
    })
}

/// The objects as multi-document YAML, one document per object.
pub fn render(objects: &[Converted]) -> Result<String, ImportError> {
    let mut out = String::new();
    for object in objects {
        // Serialized directly (not through a JSON value) to keep the fields in declaration order.
        let text = serde_saphyr::to_string(object).map_err(|err| ImportError::Render {
            message: err.to_string(),
        })?;
        out.push_str("---\n");
        out.push_str(&text);
        if !text.ends_with('\n') {
            out.push('\n');
        }
    }
    Ok(out)
}

#[derive(Default)]
struct Reader {
    inputs: Vec<Input>,
    notes: Vec<Note>,
}

impl Reader {
    fn read_document(&mut self, file: &str, doc: usize, value: Value) -> Result<(), ImportError> {
        if value.is_null() {
            return Ok(());
        }
        let text = |key: &str| value.get(key).and_then(Value::as_str).unwrap_or("");
        let (api_version, kind) = (text("apiVersion").to_owned(), text("kind").to_owned());
        let name = value
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        let origin = Origin {
            file: file.to_owned(),
            doc,
            object: format!("{kind}/{name}"),
            legacy_path: None,
        };
        if api_version.is_empty() || kind.is_empty() {
            return Err(ImportError::Document {
                file: file.to_owned(),
                doc,
                object: "-".to_owned(),
                field: "apiVersion".to_owned(),
                message: "document has no apiVersion or kind, so it is not a Kubernetes object"
                    .to_owned(),
            });
        }
        // `kubectl get -o yaml` of several objects writes a `List` (or `<Kind>List`).
        if kind.ends_with("List")
            && let Some(items) = value.get("items").and_then(Value::as_array)
        {
            for item in items.clone() {
                self.read_document(file, doc, item)?;
            }
            return Ok(());
        }
        if api_version == "v1" && kind == "ConfigMap" {
            return self.read_config_map(origin, &value);
        }
        if !api_version.starts_with("metallb.io/") {
            self.notes.push(origin.note(
                "kind",
                format!("{api_version} {kind} is not a MetalLB object; skipped"),
            ));
            return Ok(());
        }
        let spec_value = value.get("spec");
        let spec = match (api_version.as_str(), kind.as_str()) {
            ("metallb.io/v1beta1", "IPAddressPool") => {
                Spec::IPAddressPool(decode(&origin, "spec", spec_value)?)
            }
            ("metallb.io/v1beta1", "L2Advertisement") => {
                Spec::L2Advertisement(decode(&origin, "spec", spec_value)?)
            }
            ("metallb.io/v1beta1", "BGPAdvertisement") => {
                Spec::BGPAdvertisement(decode(&origin, "spec", spec_value)?)
            }
            // v1beta2 is v1beta1 plus fields; v1beta1's node selector has a LabelSelector's shape.
            ("metallb.io/v1beta1" | "metallb.io/v1beta2", "BGPPeer") => {
                Spec::BGPPeer(Box::new(decode(&origin, "spec", spec_value)?))
            }
            ("metallb.io/v1beta1", "BFDProfile") => {
                Spec::BFDProfile(decode(&origin, "spec", spec_value)?)
            }
            ("metallb.io/v1beta1", "Community") => {
                Spec::Community(decode(&origin, "spec", spec_value)?)
            }
            _ => {
                self.notes.push(origin.note(
                    "kind",
                    format!(
                        "{api_version} {kind} is not converted (only IPAddressPool, \
                         L2Advertisement, BGPAdvertisement, BGPPeer, BFDProfile and Community of \
                         metallb.io/v1beta1, and BGPPeer of v1beta2); skipped"
                    ),
                ));
                return Ok(());
            }
        };
        let metadata: Metadata = decode(&origin, "metadata", value.get("metadata"))?;
        if metadata.name.is_empty() {
            return Err(origin.error("metadata.name", "metadata.name is required"));
        }
        self.inputs.push(Input {
            origin,
            object: Object {
                name: metadata.name,
                namespace: metadata
                    .namespace
                    .unwrap_or_else(|| DEFAULT_NAMESPACE.to_owned()),
                labels: metadata.labels,
                spec,
            },
        });
        Ok(())
    }

    fn read_config_map(&mut self, origin: Origin, value: &Value) -> Result<(), ImportError> {
        let Some(config) = value.pointer("/data/config") else {
            self.notes.push(origin.note(
                "data",
                "ConfigMap has no `config` key, so it is not MetalLB's legacy configuration; skipped",
            ));
            return Ok(());
        };
        let Some(config) = config.as_str() else {
            return Err(origin.error("data.config", "data.config must be a string"));
        };
        let metadata: Metadata = decode(&origin, "metadata", value.get("metadata"))?;
        let namespace = metadata
            .namespace
            .unwrap_or_else(|| DEFAULT_NAMESPACE.to_owned());
        let (inputs, notes) = legacy::read(&origin, &namespace, config)?;
        self.inputs.extend(inputs);
        self.notes.extend(notes);
        Ok(())
    }
}

/// Decodes `value` (absent = empty object) as a `T`; a type error names the field path.
fn decode<T: DeserializeOwned>(
    origin: &Origin,
    field: &str,
    value: Option<&Value>,
) -> Result<T, ImportError> {
    let value = value
        .cloned()
        .unwrap_or_else(|| Value::Object(Default::default()));
    serde_path_to_error::deserialize::<_, T>(value).map_err(|err| {
        let path = err.path().to_string();
        let field = if path == "." {
            field.to_owned()
        } else {
            format!("{field}.{path}")
        };
        origin.error(&field, err.inner().to_string())
    })
}
