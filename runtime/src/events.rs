//! Kubernetes Events (`events.k8s.io/v1`) as ferrolb publishes them: one create per Event, no
//! client-side state once sent.
//!
//! kube's `Recorder` keeps every Event it published for six minutes so that a repeat can be sent
//! as a growing series instead of a new object. ferrolb emits an Event only when a decision
//! changes (never per resync), so there are no repeats to fold — and that cache cost the
//! controller about 2 KiB per Service in a cold start, a fifth of its heap at 10,000 Services
//! (measured with heaptrack; docs/BENCHMARKS.md). [`EventPublisher`] keeps nothing.
//!
//! [`EventQueue`] takes Events off a caller's critical path: a reconcile queues its Events and
//! returns, and one background task ([`EventQueue::run`]) sends them a few at a time. The queue
//! is bounded (an Event that does not fit is dropped and reported to the caller, who counts it),
//! and it coalesces: a newer Event about the same object with the same reason replaces a queued
//! one, so only the latest word on each object is sent. Events are advisory (the object's own
//! status carries the state), so losing some under a burst is the right trade for never slowing
//! the writes that matter.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};
use kube::{Client, Resource};
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

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

/// Why [`EventQueue::push`] did not queue an Event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Event queue full ({capacity} waiting): {reason} Event about {object} dropped")]
pub struct EventDropped {
    pub capacity: usize,
    pub reason: String,
    /// `namespace/name` of the object the Event was about.
    pub object: String,
}

/// What [`EventQueue::push`] did with an Event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Queued {
    /// Added at the end of the queue.
    Added,
    /// Replaced a queued Event about the same object with the same reason, and moved to the end.
    Coalesced,
}

/// Identifies the Events that coalesce: same object (by uid when known), same reason.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct CoalesceKey {
    namespace: Option<String>,
    name: Option<String>,
    uid: Option<String>,
    reason: String,
}

impl CoalesceKey {
    fn of(note: &EventNote, regarding: &ObjectReference) -> Self {
        CoalesceKey {
            namespace: regarding.namespace.clone(),
            name: regarding.name.clone(),
            uid: regarding.uid.clone(),
            reason: note.reason.clone(),
        }
    }
}

/// The waiting Events in send order: pure bookkeeping, no I/O.
#[derive(Debug)]
struct Pending {
    capacity: usize,
    next: u64,
    order: BTreeMap<u64, (EventNote, ObjectReference)>,
    index: HashMap<CoalesceKey, u64>,
}

impl Pending {
    fn new(capacity: usize) -> Self {
        Pending {
            capacity,
            next: 0,
            order: BTreeMap::new(),
            index: HashMap::new(),
        }
    }

    fn push(
        &mut self,
        note: EventNote,
        regarding: ObjectReference,
    ) -> Result<Queued, EventDropped> {
        let key = CoalesceKey::of(&note, &regarding);
        let queued = match self.index.remove(&key) {
            Some(older) => {
                self.order.remove(&older);
                Queued::Coalesced
            }
            None if self.order.len() >= self.capacity => {
                return Err(EventDropped {
                    capacity: self.capacity,
                    reason: note.reason,
                    object: format!(
                        "{}/{}",
                        regarding.namespace.as_deref().unwrap_or_default(),
                        regarding.name.as_deref().unwrap_or_default()
                    ),
                });
            }
            None => Queued::Added,
        };
        let sequence = self.next;
        self.next += 1;
        self.order.insert(sequence, (note, regarding));
        self.index.insert(key, sequence);
        Ok(queued)
    }

    fn pop(&mut self) -> Option<(EventNote, ObjectReference)> {
        let (_, (note, regarding)) = self.order.pop_first()?;
        self.index.remove(&CoalesceKey::of(&note, &regarding));
        Some((note, regarding))
    }
}

/// A bounded, coalescing queue of Events, sent by [`EventQueue::run`]; cloning shares it.
#[derive(Debug, Clone)]
pub struct EventQueue {
    pending: Arc<Mutex<Pending>>,
    queued: Arc<Notify>,
}

impl EventQueue {
    /// A queue holding at most `capacity` Events.
    pub fn new(capacity: usize) -> Self {
        EventQueue {
            pending: Arc::new(Mutex::new(Pending::new(capacity))),
            queued: Arc::new(Notify::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Pending> {
        // The bookkeeping stays consistent even if a holder panicked: every method leaves the
        // two maps in step before it can panic.
        self.pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Queues an Event without waiting; refused when the queue is full.
    pub fn push(
        &self,
        note: EventNote,
        regarding: ObjectReference,
    ) -> Result<Queued, EventDropped> {
        let queued = self.lock().push(note, regarding)?;
        self.queued.notify_one();
        Ok(queued)
    }

    /// Sends queued Events through `publisher`, at most `in_flight` at once, until `shutdown`;
    /// Events still waiting then are dropped. A failed create is logged, not retried: by the time
    /// a retry succeeded the object's status would already say more.
    pub async fn run(
        self,
        publisher: EventPublisher,
        in_flight: usize,
        shutdown: CancellationToken,
    ) {
        let mut sending = JoinSet::new();
        loop {
            while sending.len() < in_flight.max(1) {
                let Some((note, regarding)) = self.lock().pop() else {
                    break;
                };
                let publisher = publisher.clone();
                sending.spawn(async move {
                    if let Err(error) = publisher.publish(&note, &regarding).await {
                        tracing::warn!(%error, reason = %note.reason, object = ?regarding.name, "publishing Event");
                    }
                });
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = self.queued.notified() => {}
                Some(_) = sending.join_next(), if !sending.is_empty() => {}
            }
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

    fn about(name: &str, reason: &str, text: &str) -> (EventNote, ObjectReference) {
        let mut event = note(text);
        event.reason = reason.into();
        let mut regarding = service(Some("shop"));
        regarding.name = Some(name.into());
        regarding.uid = Some(format!("uid-{name}"));
        (event, regarding)
    }

    fn drain(pending: &mut Pending) -> Vec<(String, String, String)> {
        std::iter::from_fn(|| pending.pop())
            .map(|(note, regarding)| (regarding.name.unwrap_or_default(), note.reason, note.note))
            .collect()
    }

    #[test]
    fn queue_sends_in_arrival_order() {
        let mut pending = Pending::new(8);
        for name in ["a", "b", "c"] {
            let (note, regarding) = about(name, "IPAllocated", name);
            assert_eq!(pending.push(note, regarding), Ok(Queued::Added));
        }
        let names: Vec<_> = drain(&mut pending).into_iter().map(|e| e.0).collect();
        assert_eq!(names, ["a", "b", "c"]);
    }

    #[test]
    fn newer_event_with_the_same_reason_replaces_the_queued_one_and_goes_last() {
        let mut pending = Pending::new(8);
        for (name, reason, text) in [
            ("a", "IPAllocated", "assigned 192.0.2.1"),
            ("a", "IPReleased", "released 192.0.2.1"),
            ("b", "IPAllocated", "assigned 192.0.2.2"),
        ] {
            let (note, regarding) = about(name, reason, text);
            assert_eq!(pending.push(note, regarding), Ok(Queued::Added));
        }
        let (note, regarding) = about("a", "IPAllocated", "assigned 192.0.2.3");
        assert_eq!(pending.push(note, regarding), Ok(Queued::Coalesced));
        assert_eq!(
            drain(&mut pending),
            [
                ("a".into(), "IPReleased".into(), "released 192.0.2.1".into()),
                (
                    "b".into(),
                    "IPAllocated".into(),
                    "assigned 192.0.2.2".into()
                ),
                (
                    "a".into(),
                    "IPAllocated".into(),
                    "assigned 192.0.2.3".into()
                ),
            ]
        );
    }

    #[test]
    fn full_queue_refuses_new_objects_but_still_coalesces() {
        let mut pending = Pending::new(2);
        for name in ["a", "b"] {
            let (note, regarding) = about(name, "IPAllocated", name);
            assert_eq!(pending.push(note, regarding), Ok(Queued::Added));
        }
        let (note, regarding) = about("c", "IPAllocated", "c");
        let dropped = pending.push(note, regarding).expect_err("full");
        assert_eq!(dropped.object, "shop/c");
        assert_eq!(dropped.reason, "IPAllocated");
        let (note, regarding) = about("a", "IPAllocated", "a again");
        assert_eq!(pending.push(note, regarding), Ok(Queued::Coalesced));
        assert_eq!(drain(&mut pending).len(), 2);
        let (note, regarding) = about("c", "IPAllocated", "c");
        assert_eq!(
            pending.push(note, regarding),
            Ok(Queued::Added),
            "room again"
        );
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
