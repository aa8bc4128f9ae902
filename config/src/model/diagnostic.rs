//! Problems found while building the config snapshot, each naming the object and field.

use std::fmt;

/// The ferrolb kinds, as written in `kind:`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ObjectKind {
    IPAddressPool,
    L2Advertisement,
    BGPAdvertisement,
    BGPPeer,
    BFDProfile,
    Community,
    SpeakerStatus,
}

impl ObjectKind {
    /// Every kind, in the order documents are reported.
    pub const ALL: [ObjectKind; 7] = [
        ObjectKind::IPAddressPool,
        ObjectKind::L2Advertisement,
        ObjectKind::BGPAdvertisement,
        ObjectKind::BGPPeer,
        ObjectKind::BFDProfile,
        ObjectKind::Community,
        ObjectKind::SpeakerStatus,
    ];

    /// The `kind:` string.
    pub fn as_str(self) -> &'static str {
        match self {
            ObjectKind::IPAddressPool => "IPAddressPool",
            ObjectKind::L2Advertisement => "L2Advertisement",
            ObjectKind::BGPAdvertisement => "BGPAdvertisement",
            ObjectKind::BGPPeer => "BGPPeer",
            ObjectKind::BFDProfile => "BFDProfile",
            ObjectKind::Community => "Community",
            ObjectKind::SpeakerStatus => "SpeakerStatus",
        }
    }

    /// The kind named by a `kind:` string.
    pub fn from_kind(kind: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == kind)
    }
}

impl fmt::Display for ObjectKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How bad a problem is. `ferrolb check` fails on any `Error`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    Warning,
    Error,
}

impl Severity {
    /// Put before a message: nothing for errors (the default), `warning: ` for warnings.
    pub fn message_prefix(self) -> &'static str {
        match self {
            Severity::Error => "",
            Severity::Warning => "warning: ",
        }
    }
}

/// What kind of problem, for the status condition the controller writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Reason {
    /// The object breaks a per-object rule and is not used.
    Invalid,
    /// The object clashes with an older object and is left out (or loses the clashing part).
    Conflict,
    /// The object names another object that does not exist (or is not usable).
    MissingReference,
}

impl Reason {
    /// CamelCase reason for a Kubernetes condition or Event.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Invalid => "Invalid",
            Reason::Conflict => "Conflict",
            Reason::MissingReference => "MissingReference",
        }
    }
}

/// One problem with one object.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Diagnostic {
    pub kind: ObjectKind,
    pub name: String,
    /// Path of the field as the API server prints it, e.g. `spec.addresses[0]`.
    pub field: String,
    pub severity: Severity,
    pub reason: Reason,
    pub message: String,
}

impl Diagnostic {
    pub(crate) fn error(
        kind: ObjectKind,
        name: &str,
        field: impl Into<String>,
        reason: Reason,
        message: impl Into<String>,
    ) -> Self {
        Diagnostic {
            kind,
            name: name.to_owned(),
            field: field.into(),
            severity: Severity::Error,
            reason,
            message: message.into(),
        }
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

/// `kind/name field: message`, the form `ferrolb check` prints after `file:doc`; warnings say so.
impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{} {}: {}{}",
            self.kind,
            self.name,
            self.field,
            self.severity.message_prefix(),
            after_field(&self.message, &self.field)
        )
    }
}

/// `message` without a leading `field: `: messages name their field so that they stand alone in a
/// status condition, and a line that already names the field before them need not say it twice.
pub fn after_field<'m>(message: &'m str, field: &str) -> &'m str {
    message
        .strip_prefix(field)
        .and_then(|rest| rest.strip_prefix(": "))
        .unwrap_or(message)
}
