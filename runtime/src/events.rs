//! Kubernetes Events (`events.k8s.io/v1`) as ferrolb publishes them: one create per Event, no
//! client-side state.
//!
//! kube's `Recorder` keeps every Event it published for six minutes so that a repeat can be sent
//! as a growing series instead of a new object. ferrolb emits an Event only when a decision
//! changes (never per resync), so there are no repeats to fold — and that cache cost the
//! controller about 2 KiB per Service in a cold start, a fifth of its heap at 10,000 Services
//! (measured with heaptrack; docs/BENCHMARKS.md). This publisher keeps nothing.

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};
use kube::{Client, Resource};

/// An Event's severity (`type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Normal,
    Warning,
}

impl EventType {
    fn as_str(self) -> &'static str {
        match self {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        }
    }
}

/// What happened, about one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventNote {
    pub type_: EventType,
    /// CamelCase, machine-readable (`IPAllocated`).
    pub reason: String,
    /// What the component did (`Allocate`, `Announce`).
    pub action: String,
    /// For humans; the API server refuses more than 1 KiB.
    pub note: String,
}

/// Publishes Events as one reporting component instance.
#[derive(Clone)]
pub struct EventPublisher {
    client: Client,
    controller: String,
    instance: String,
}

impl std::fmt::Debug for EventPublisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventPublisher")
            .field("controller", &self.controller)
            .field("instance", &self.instance)
            .finish_non_exhaustive()
    }
}

impl EventPublisher {
    /// `controller` is `reportingController` (e.g. `ferrolb.io/controller`), `instance` the
    /// replica or node (`reportingInstance`).
    pub fn new(client: Client, controller: impl Into<String>, instance: impl Into<String>) -> Self {
        EventPublisher {
            client,
            controller: controller.into(),
            instance: instance.into(),
        }
    }

    /// Creates the Event in the namespace of `regarding` (`default` for cluster-scoped objects,
    /// where the API server expects them).
    pub async fn publish(
        &self,
        event: &EventNote,
        regarding: &ObjectReference,
    ) -> Result<(), kube::Error> {
        let event = self.event(event, regarding, Timestamp::now());
        let namespace = event.meta().namespace.clone().unwrap_or_default();
        Api::<Event>::namespaced(self.client.clone(), &namespace)
            .create(&PostParams::default(), &event)
            .await
            .map(drop)
    }

    /// The Event object; its name is unique per object and nanosecond, as `kubectl` expects.
    fn event(&self, event: &EventNote, regarding: &ObjectReference, now: Timestamp) -> Event {
        let object = regarding.name.as_deref().unwrap_or(&self.controller);
        Event {
            metadata: ObjectMeta {
                name: Some(format!("{object}.{:x}", now.as_nanosecond())),
                namespace: Some(
                    regarding
                        .namespace
                        .clone()
                        .unwrap_or_else(|| "default".to_owned()),
                ),
                ..ObjectMeta::default()
            },
            action: Some(event.action.clone()),
            reason: Some(event.reason.clone()),
            note: Some(truncate(&event.note, NOTE_LIMIT).to_owned()),
            type_: Some(event.type_.as_str().to_owned()),
            event_time: Some(MicroTime(now)),
            regarding: Some(regarding.clone()),
            reporting_controller: Some(self.controller.clone()),
            reporting_instance: Some(self.instance.clone()),
            ..Event::default()
        }
    }
}

/// `note` may hold at most 1 KiB (API validation).
const NOTE_LIMIT: usize = 1024;

/// The longest prefix of `text` of at most `limit` bytes that ends on a character boundary.
fn truncate(text: &str, limit: usize) -> &str {
    if text.len() <= limit {
        return text;
    }
    let end = (0..=limit)
        .rev()
        .find(|&i| text.is_char_boundary(i))
        .unwrap_or(0);
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn publisher() -> EventPublisher {
        // A client that is never used: building the object needs no connection.
        let config = kube::Config::new("http://127.0.0.1:1".parse().expect("uri"));
        let client = Client::try_from(config).expect("client");
        EventPublisher::new(client, "ferrolb.io/controller", "ctl-0")
    }

    fn service(namespace: Option<&str>) -> ObjectReference {
        ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Service".into()),
            name: Some("web".into()),
            namespace: namespace.map(str::to_owned),
            uid: Some("u-1".into()),
            ..ObjectReference::default()
        }
    }

    fn note(text: &str) -> EventNote {
        EventNote {
            type_: EventType::Warning,
            reason: "AllocationFailed".into(),
            action: "Allocate".into(),
            note: text.into(),
        }
    }

    #[tokio::test]
    async fn event_carries_every_required_field_in_the_objects_namespace() {
        let now = Timestamp::from_second(1_700_000_000).expect("timestamp");
        let event = publisher().event(&note("no pool"), &service(Some("shop")), now);
        assert_eq!(event.metadata.namespace.as_deref(), Some("shop"));
        assert_eq!(
            event.metadata.name,
            Some(format!("web.{:x}", now.as_nanosecond()))
        );
        assert_eq!(event.type_.as_deref(), Some("Warning"));
        assert_eq!(event.reason.as_deref(), Some("AllocationFailed"));
        assert_eq!(event.action.as_deref(), Some("Allocate"));
        assert_eq!(event.note.as_deref(), Some("no pool"));
        assert_eq!(event.event_time, Some(MicroTime(now)));
        assert_eq!(event.regarding, Some(service(Some("shop"))));
        assert_eq!(
            event.reporting_controller.as_deref(),
            Some("ferrolb.io/controller")
        );
        assert_eq!(event.reporting_instance.as_deref(), Some("ctl-0"));
    }

    #[tokio::test]
    async fn cluster_scoped_objects_get_their_events_in_default() {
        let event = publisher().event(&note("x"), &service(None), Timestamp::UNIX_EPOCH);
        assert_eq!(event.metadata.namespace.as_deref(), Some("default"));
    }

    #[tokio::test]
    async fn long_notes_are_cut_on_a_character_boundary() {
        let long = "é".repeat(NOTE_LIMIT);
        let event = publisher().event(&note(&long), &service(Some("a")), Timestamp::UNIX_EPOCH);
        let kept = event.note.expect("note");
        assert!(kept.len() <= NOTE_LIMIT);
        assert_eq!(kept.len(), NOTE_LIMIT);
        assert!(long.starts_with(&kept));
    }
}
