//! The speaker's writes to the API server: its `SpeakerStatus` and, for the Services it announces,
//! the `ferrolb.io/L2Announced` condition and `Announcing` Events (what to write is decided by the
//! pure [`super::status`]).
//!
//! Each writer is a task that follows a `watch` channel of the wanted state and writes only what
//! differs from what it last wrote successfully; a failed write (API server down) is retried after
//! [`RETRY`], so the announcements themselves never wait for the API. The `SpeakerStatus` is
//! written at most once per [`STATUS_MIN_INTERVAL`]: during a failover storm every change in
//! between is folded into the next write. Events go to the shared bounded queue
//! ([`ferrolb_runtime::events::EventQueue`]), so a takeover of thousands of Services never waits
//! for its Events.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use ferrolb_config::crd::{SpeakerStatus, SpeakerStatusStatus};
use ferrolb_runtime::cache::{ObjectKey, Projection};
use ferrolb_runtime::events::{EventNote, EventQueue, EventType};
use ferrolb_runtime::unread::Unread;
use k8s_openapi::api::core::v1::{Node, ObjectReference, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::Client;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::FIELD_MANAGER;
use super::metrics::SpeakerMetrics;
use super::objects::ServiceFacts;
use super::status::{
    Announced, L2_ANNOUNCED, REASON_ANNOUNCING, REASON_CONFLICT, ServiceUpdate, after_updates,
    service_updates,
};
use crate::desired::ServiceRef;

/// Least time between two `SpeakerStatus` writes.
pub const STATUS_MIN_INTERVAL: Duration = Duration::from_secs(1);
/// Wait before retrying a failed write.
pub const RETRY: Duration = Duration::from_secs(1);
/// How often the conditions are compared with the Services even without a change here, so one
/// overwritten by another node's speaker (they share a field manager) is restored.
pub const CONDITION_RESYNC: Duration = Duration::from_secs(5);

/// Keeps `SpeakerStatus/<node>` equal to the latest `wanted`, rate-limited.
pub async fn speaker_status(
    client: Client,
    node: String,
    mut wanted: watch::Receiver<Arc<SpeakerStatusStatus>>,
    shutdown: CancellationToken,
) {
    // The writer reads no response; the full object would be a copy of every announcement.
    let api: Api<Unread<SpeakerStatus>> = Api::all(client);
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let mut object_written = false;
    let mut written: Option<Arc<SpeakerStatusStatus>> = None;
    loop {
        let status = wanted.borrow_and_update().clone();
        if written.as_ref() != Some(&status) {
            match write_status(&api, &params, &node, &status, &mut object_written).await {
                Ok(()) => written = Some(status),
                Err(error) => {
                    tracing::warn!(%error, node, "writing SpeakerStatus; retrying");
                    // The object may have been deleted: apply it again with the next try.
                    object_written = false;
                    if pause(RETRY, &shutdown).await {
                        return;
                    }
                    continue;
                }
            }
            if pause(STATUS_MIN_INTERVAL, &shutdown).await {
                return;
            }
            continue;
        }
        tokio::select! {
            changed = wanted.changed() => if changed.is_err() { return },
            () = shutdown.cancelled() => return,
        }
    }
}

/// Sleeps for `duration`; `true` when shutdown came first.
async fn pause(duration: Duration, shutdown: &CancellationToken) -> bool {
    tokio::select! {
        () = tokio::time::sleep(duration) => false,
        () = shutdown.cancelled() => true,
    }
}

async fn write_status(
    api: &Api<Unread<SpeakerStatus>>,
    params: &PatchParams,
    node: &str,
    status: &SpeakerStatusStatus,
    object_written: &mut bool,
) -> Result<(), kube::Error> {
    if !*object_written {
        // Owned by the Node, so the garbage collector removes it with the Node: a node that is
        // gone must not keep claiming IPs in `kubectl get speakerstatus`.
        let owner = Api::<Node>::all(api.clone().into_client())
            .get(node)
            .await?
            .metadata
            .uid
            .map(|uid| json!([{"apiVersion": "v1", "kind": "Node", "name": node, "uid": uid}]));
        let mut metadata = json!({"name": node});
        if let Some(owner) = owner {
            metadata["ownerReferences"] = owner;
        }
        let object = json!({
            "apiVersion": "ferrolb.io/v1beta1",
            "kind": "SpeakerStatus",
            "metadata": metadata,
            "spec": {"nodeName": node},
        });
        api.patch(node, params, &Patch::Apply(&object)).await?;
        *object_written = true;
    }
    let patch = StatusPatch {
        api_version: "ferrolb.io/v1beta1",
        kind: "SpeakerStatus",
        metadata: PatchMetadata { name: node },
        status,
    };
    api.patch_status(node, params, &Patch::Apply(&patch))
        .await
        .map(drop)
}

/// The server-side apply body of a status write, serialized straight from the status: with
/// thousands of announcements a `serde_json::Value` of it would be a tree of as many maps, built
/// for every write.
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct StatusPatch<'a> {
    api_version: &'static str,
    kind: &'static str,
    metadata: PatchMetadata<'a>,
    status: &'a SpeakerStatusStatus,
}

#[derive(Debug, serde::Serialize)]
struct PatchMetadata<'a> {
    name: &'a str,
}

/// Keeps the `ferrolb.io/L2Announced` condition on the Services this node announces, and emits an
/// `Announcing` Event when it takes one over.
pub async fn service_conditions(
    client: Client,
    node: String,
    events: EventQueue,
    metrics: SpeakerMetrics,
    services: Projection<ServiceFacts>,
    mut wanted: watch::Receiver<Arc<BTreeMap<ServiceRef, Announced>>>,
    shutdown: CancellationToken,
) {
    // What this node last wrote; after a pass without failures it is the target itself, shared.
    let mut written: Arc<BTreeMap<ServiceRef, Announced>> = Arc::default();
    loop {
        let target = Arc::clone(&wanted.borrow_and_update());
        let updates = {
            let cached = services.read();
            service_updates(&node, &written, &target, |service| {
                cached
                    .get(&ObjectKey::new(&service.namespace, &service.name))?
                    .l2_announced
                    .as_deref()
            })
        };
        let mut applied = Vec::new();
        let mut failed = false;
        for update in &updates {
            match apply(&client, &node, update).await {
                Ok(()) => {
                    for (note, reference) in events_of(&services, &node, update) {
                        if let Err(dropped) = events.push(note, reference) {
                            tracing::debug!(%dropped, "Event not published");
                            metrics.event_dropped();
                        }
                    }
                    applied.push(update);
                }
                Err(error) => {
                    tracing::warn!(%error, ?update, "writing Service condition; retrying");
                    failed = true;
                }
            }
        }
        // Without failures every Service shows the target (a condition that names another node
        // now is that node's to remove); else only what succeeded is written.
        let now_written = if failed {
            Arc::new(after_updates(&written, &applied))
        } else {
            Arc::clone(&target)
        };
        drop(applied);
        drop(updates);
        written = now_written;
        if failed {
            if pause(RETRY, &shutdown).await {
                return;
            }
            continue;
        }
        tokio::select! {
            changed = wanted.changed() => if changed.is_err() { return },
            () = tokio::time::sleep(CONDITION_RESYNC) => {}
            () = shutdown.cancelled() => return,
        }
    }
}

/// Writes the condition of one update.
async fn apply(client: &Client, node: &str, update: &ServiceUpdate<'_>) -> Result<(), kube::Error> {
    let (service, status) = match update {
        ServiceUpdate::Announce {
            service, announced, ..
        } => {
            let condition = json!({
                "type": L2_ANNOUNCED,
                "status": "True",
                "reason": REASON_ANNOUNCING,
                "message": announced.message(node),
                "lastTransitionTime": Time(k8s_openapi::jiff::Timestamp::now()),
            });
            (service, json!({ "conditions": [condition] }))
        }
        // Owning no condition any more removes ours unless another node's speaker took it over.
        ServiceUpdate::Withdraw { service } => (service, json!({})),
    };
    // One write per announced Service: the response is not read, so it is not decoded.
    let api: Api<Unread<Service>> = Api::namespaced(client.clone(), &service.namespace);
    let patch = json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": service.name, "namespace": service.namespace},
        "status": status,
    });
    let params = PatchParams::apply(FIELD_MANAGER).force();
    match api
        .patch_status(&service.name, &params, &Patch::Apply(&patch))
        .await
    {
        Ok(_) => {}
        // Deleted meanwhile: nothing left to write on.
        Err(kube::Error::Api(response)) if response.code == 404 => {}
        Err(error) => return Err(error),
    }
    Ok(())
}

/// The Events of an `Announce` written: `Announcing` when this node took the Service over,
/// `AddressConflict` when a foreign station newly claims one of its IPs.
fn events_of(
    services: &Projection<ServiceFacts>,
    node: &str,
    update: &ServiceUpdate<'_>,
) -> Vec<(EventNote, ObjectReference)> {
    let ServiceUpdate::Announce {
        service,
        announced,
        event,
        conflict_event,
    } = update
    else {
        return Vec::new();
    };
    let uid = services
        .read()
        .get(&ObjectKey::new(&service.namespace, &service.name))
        .and_then(|facts| facts.uid.clone());
    let reference = ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Service".into()),
        name: Some(service.name.clone()),
        namespace: Some(service.namespace.clone()),
        uid,
        ..ObjectReference::default()
    };
    let mut events = Vec::new();
    if *event {
        events.push(EventNote {
            type_: EventType::Normal,
            reason: REASON_ANNOUNCING.to_owned(),
            note: announced.message(node),
            action: "Announce".to_owned(),
        });
    }
    if *conflict_event && let Some(note) = announced.conflict_note() {
        events.push(EventNote {
            type_: EventType::Warning,
            reason: REASON_CONFLICT.to_owned(),
            note: format!("node {node}: {note}"),
            action: "Announce".to_owned(),
        });
    }
    events
        .into_iter()
        .map(|note| (note, reference.clone()))
        .collect()
}
