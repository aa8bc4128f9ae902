//! The Service reconciler (SPEC §3, §4): watches Services, IPAddressPools and Namespaces, keeps
//! one [`Allocator`] and publishes its decisions on the Services and pools.
//!
//! Contract and why it is shaped this way:
//! - **Caches first.** Three reflectors feed stores; nothing is allocated before all three have
//!   listed once, so an IP already held by a Service not yet seen cannot be handed out twice.
//! - **One allocator, owned here.** It exists only while this replica leads. On gaining
//!   leadership it is rebuilt from the caches: the config snapshot is built, then every IP in
//!   every Service's status is re-claimed (oldest Service first) before any Service is
//!   reconciled, so a restart or failover moves no IP (SPEC §4 stability invariant).
//! - **Only the leader writes.** A standby keeps its caches warm and answers `/readyz`, but its
//!   reconciles do nothing; losing the Lease drops the allocator.
//! - **Writes on change only, one request each.** A reconcile compares what the Service shows
//!   with what it should show ([`service::published`] vs [`service::desired`]) and writes and
//!   emits Events only when they differ, so resyncs and restarts are silent. The write is one
//!   server-side apply (one field manager) to the status subresource carrying ingress,
//!   condition and the pool annotation: the API server keeps metadata changes made through a
//!   Service's status (docs/reconciler-decisions.md).
//! - **Events off the critical path.** They go into a bounded, coalescing
//!   [`EventQueue`] sent by a background task; a reconcile never waits for one.
//! - **Pool changes** (a pool's generation, or Namespace labels, which pool namespace selectors
//!   read) rebuild the snapshot and call [`Allocator::set_pools`]; every Service is then
//!   reconciled, and those that lost their IP get a new one with an `IPReleased` Event naming why.
//! - **Deleted Services** are released from the allocator as the watch reports them; Services
//!   waiting for an address are then reconciled again.
//! - Errors are retried with backoff by [`error_policy`].

pub mod cached;
pub mod pool_status;
pub mod service;

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use ferrolb_config::crd::IPAddressPool;
use ferrolb_config::model::{self, Config, Diagnostic, Objects};
use ferrolb_runtime::cache::drop_managed_fields;
use ferrolb_runtime::events::{EventNote, EventPublisher, EventQueue, EventType};
use ferrolb_runtime::leader::Leadership;
use futures::StreamExt;
use futures::channel::mpsc;
use k8s_openapi::api::core::v1::{Namespace, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::WatchStreamExt;
use kube::runtime::controller::{self, Action, Controller};
use kube::runtime::reflector::{self, ObjectRef, Store, reflector};
use kube::runtime::watcher::{self, watcher};
use kube::{Client, Resource, ResourceExt};
use serde_json::json;
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

use self::cached::CachedService;
use self::service::{Outcome, Published};
use crate::allocator::{AllocError, Allocator, RejectedIp, ServiceKey, pools_from_config};
use crate::metrics::ControllerMetrics;
use ferrolb_runtime::class::ClassFilter;

/// The field manager of every write, so server-side apply removes what we stop publishing.
pub const FIELD_MANAGER: &str = "ferrolb-controller";

/// How often pool status is re-checked even without a change signal.
const POOL_STATUS_INTERVAL: Duration = Duration::from_secs(10);

/// Reconciles running at once. Unbounded, a cold start with thousands of Services opened one
/// API connection per Service in flight (HTTP/1.1, each with its own TLS state) and kept them
/// pooled afterwards: about 70 KiB of resident memory per Service. A few dozen requests in
/// flight already keep the API server busy; more only queue there.
const RECONCILE_CONCURRENCY: u16 = 32;

/// Events waiting to be published at most. A cold start of thousands of new Services produces
/// one `IPAllocated` each, faster than they can be sent without slowing the status writes;
/// those beyond this are dropped and counted (`ferrolb_events_dropped_total`).
const EVENT_QUEUE_CAPACITY: usize = 1024;

/// Event creates in flight: a small share of the API server next to [`RECONCILE_CONCURRENCY`]
/// status writes, which are what users wait for.
const EVENTS_IN_FLIGHT: usize = 4;

/// Why a reconcile failed; retried with backoff.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("Service without namespace or name")]
    NoKey,
    #[error("writing {what} of Service {service}: {source}")]
    Write {
        what: &'static str,
        service: ServiceKey,
        source: Box<kube::Error>,
    },
    #[error("pools from the config snapshot refused by the allocator: {0}")]
    Pools(AllocError),
}

impl ReconcileError {
    /// The variant name, for the metrics' `reason` label.
    fn variant(&self) -> &'static str {
        match self {
            ReconcileError::NoKey => "NoKey",
            ReconcileError::Write { .. } => "Write",
            ReconcileError::Pools(_) => "Pools",
        }
    }
}

/// What the reconciler needs besides the Service at hand.
struct Context {
    client: Client,
    filter: ClassFilter,
    leadership: Leadership,
    events: EventQueue,
    metrics: ControllerMetrics,
    services: Store<CachedService>,
    pools: Store<IPAddressPool>,
    namespaces: Store<Namespace>,
    state: Mutex<State>,
    /// Wakes the pool status writer after the allocator changed.
    pool_status_due: Notify,
    /// Services to reconcile again (waiting for an address that may have been freed).
    requeue: mpsc::UnboundedSender<ObjectRef<CachedService>>,
}

/// The allocator and what it was built from. Only present while leading.
#[derive(Default)]
struct State {
    allocator: Option<Allocator>,
    /// The pools' and Namespaces' inputs the current snapshot was built from.
    inputs: Inputs,
    config: Arc<Config>,
    diagnostics: Vec<Diagnostic>,
    /// Addresses a pool change took away, reported by the Service's next reconcile.
    displaced: BTreeMap<ServiceKey, Vec<RejectedIp>>,
    /// Ours, but without an address: reconciled again when an address is freed.
    waiting: BTreeSet<ServiceKey>,
    /// What we last wrote per Service, with the `resourceVersion` the write was based on; used
    /// instead of the cached object while the cache still holds that version, so a trigger that
    /// arrives before our own write comes back neither rewrites nor re-announces it. Dropped
    /// once the cache holds a newer version: then the cache shows the write.
    written: BTreeMap<ServiceKey, (Option<String>, Published)>,
    /// Consecutive failed reconciles per Service, for the retry backoff.
    failures: BTreeMap<ServiceKey, u32>,
}

/// What of the pools and Namespaces allocation depends on: pool spec generations and namespace
/// labels. Pool status writes change neither, so they trigger nothing.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Inputs {
    pools: BTreeMap<String, Option<i64>>,
    namespaces: BTreeMap<String, BTreeMap<String, String>>,
}

fn inputs(pools: &Store<IPAddressPool>, namespaces: &Store<Namespace>) -> Inputs {
    Inputs {
        pools: pool_inputs(pools),
        namespaces: namespace_inputs(namespaces),
    }
}

fn pool_inputs(pools: &Store<IPAddressPool>) -> BTreeMap<String, Option<i64>> {
    pools
        .state()
        .iter()
        .map(|p| (p.name_any(), p.metadata.generation))
        .collect()
}

fn namespace_inputs(namespaces: &Store<Namespace>) -> BTreeMap<String, BTreeMap<String, String>> {
    namespaces
        .state()
        .iter()
        .map(|n| (n.name_any(), n.labels().clone()))
        .collect()
}

impl Context {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves a state we cannot trust; start over from the
        // caches as after a leadership change.
        self.state.lock().unwrap_or_else(|poisoned| {
            let mut state = poisoned.into_inner();
            *state = State::default();
            state
        })
    }

    /// The allocator, built from the caches on first use after gaining leadership, with its
    /// pools brought up to date.
    fn allocator<'a>(&self, state: &'a mut State) -> Result<&'a mut Allocator, ReconcileError> {
        let now = inputs(&self.pools, &self.namespaces);
        let allocator = match (state.allocator.take(), state.inputs == now) {
            (Some(allocator), true) => allocator,
            (existing, _) => {
                let objects = Objects {
                    pools: self.pools.state().iter().map(|p| (**p).clone()).collect(),
                    namespaces: self
                        .namespaces
                        .state()
                        .iter()
                        .map(|n| (**n).clone())
                        .collect(),
                    ..Objects::default()
                };
                let (config, diagnostics) = model::build(&objects);
                self.metrics.record_config(&config, &diagnostics);
                for diagnostic in &diagnostics {
                    tracing::warn!(%diagnostic, "config object left out");
                }
                let pools = pools_from_config(&config);
                // On error the allocator is dropped: the next reconcile rebuilds it from the
                // caches, which is always safe.
                let allocator = match existing {
                    Some(mut allocator) => {
                        let displaced =
                            allocator.set_pools(pools).map_err(ReconcileError::Pools)?;
                        for lost in displaced {
                            tracing::info!(service = %lost.service, rejected = ?lost.rejected, "pool change took addresses away");
                            state.displaced.insert(lost.service, lost.rejected);
                        }
                        allocator
                    }
                    None => {
                        let mut allocator = Allocator::new(pools).map_err(ReconcileError::Pools)?;
                        self.reclaim(&mut allocator);
                        allocator
                    }
                };
                state.config = Arc::new(config);
                state.diagnostics = diagnostics;
                state.inputs = now;
                self.pool_status_due.notify_one();
                allocator
            }
        };
        Ok(state.allocator.insert(allocator))
    }

    /// Holds again every address our Services show, oldest Service first, so that of two
    /// Services showing one address without the right to share it the older keeps it.
    ///
    /// "Show" includes addresses another implementation wrote (say MetalLB, before ferrolb
    /// replaced it): a Service of our class keeps an address it already has when a pool of ours
    /// allows it, exactly as if we had assigned it. Moving every Service to a new IP during a
    /// migration is what users fear most; an address no pool allows is replaced as usual.
    fn reclaim(&self, allocator: &mut Allocator) {
        let mut held: Vec<_> = self
            .services
            .state()
            .into_iter()
            .filter(|s| service::serves(&self.filter, s))
            .filter_map(|s| {
                let published = service::published(&s);
                let key = service::key_of(&s)?;
                (!published.ips.is_empty()).then(|| {
                    let created = s.metadata.creation_timestamp.clone().map(|t| t.0);
                    (created, key, s, published.ips)
                })
            })
            .collect();
        held.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
        for (_, key, service, ips) in held {
            if let Ok((request, _)) = service::request_of(&key, &service) {
                let claim = allocator.claim(&request, &ips);
                if !claim.rejected.is_empty() {
                    tracing::info!(service = %key, rejected = ?claim.rejected, "addresses in status not re-claimed");
                }
            }
        }
        tracing::info!(
            services = allocator.assignments().count(),
            "re-claimed addresses from Service status"
        );
    }

    /// A Service was deleted: free what it held and retry the Services waiting for an address.
    fn forget(&self, key: &ServiceKey) {
        let waiting = {
            let mut state = self.lock();
            state.written.remove(key);
            state.failures.remove(key);
            state.displaced.remove(key);
            state.waiting.remove(key);
            let released = state
                .allocator
                .as_mut()
                .and_then(|allocator| allocator.release(key));
            if released.is_none() {
                return;
            }
            tracing::info!(service = %key, "Service deleted; released its addresses");
            state.waiting.clone()
        };
        self.pool_status_due.notify_one();
        for key in waiting {
            let _ = self
                .requeue
                .unbounded_send(ObjectRef::new(&key.name).within(&key.namespace));
        }
    }

    /// Decides for one Service under the lock: what it gets, what it showed, and the extras
    /// for Events.
    fn decide(&self, key: &ServiceKey, svc: &CachedService) -> Result<Decision, ReconcileError> {
        let mut state = self.lock();
        // Deleted while this reconcile was queued: the store drops it before the deletion
        // reaches `forget`, so checking under the lock closes the gap in which an address could
        // be assigned to a Service that no longer exists.
        if self
            .services
            .get(&ObjectRef::new(&key.name).within(&key.namespace))
            .is_none()
        {
            if let Some(allocator) = state.allocator.as_mut() {
                allocator.release(key);
            }
            return Ok(Decision {
                before: Published::default(),
                outcome: Outcome::NotOurs,
                aliases: Vec::new(),
                freed: Vec::new(),
                displaced: Vec::new(),
            });
        }
        let before = match state.written.remove(key) {
            Some((version, written)) if version == svc.metadata.resource_version => {
                state
                    .written
                    .insert(key.clone(), (version, written.clone()));
                written
            }
            _ => service::published(svc),
        };
        let mut freed = Vec::new();
        let (outcome, aliases) = if service::serves(&self.filter, svc) {
            match service::request_of(key, svc) {
                Ok((request, aliases)) => {
                    let allocator = self.allocator(&mut state)?;
                    match allocator.assign(&request) {
                        Ok(assignment) => (Outcome::Assigned(assignment), aliases),
                        Err(error) => {
                            self.metrics.allocation_failed(alloc_reason(&error));
                            (
                                Outcome::Failed {
                                    reason: service::REASON_ALLOCATION_FAILED,
                                    message: error.to_string(),
                                },
                                aliases,
                            )
                        }
                    }
                }
                Err(error) => {
                    freed = released_ips(self.allocator(&mut state)?.release(key));
                    (
                        Outcome::Failed {
                            reason: service::REASON_INVALID_REQUEST,
                            message: error.to_string(),
                        },
                        Vec::new(),
                    )
                }
            }
        } else {
            freed = released_ips(self.allocator(&mut state)?.release(key));
            (Outcome::NotOurs, Vec::new())
        };
        match &outcome {
            Outcome::Failed { .. } => state.waiting.insert(key.clone()),
            _ => state.waiting.remove(key),
        };
        let displaced = state.displaced.remove(key).unwrap_or_default();
        Ok(Decision {
            before,
            outcome,
            aliases,
            freed,
            displaced,
        })
    }

    /// One server-side apply to the status subresource with ingress, condition and pool
    /// annotation. A Service written by an earlier version holds the annotation through a
    /// second apply to the object; when the status apply cannot remove it (that apply still
    /// owns it), one apply to the object without it does, once.
    async fn write(
        &self,
        key: &ServiceKey,
        svc: &CachedService,
        after: &Published,
    ) -> Result<(), ReconcileError> {
        let api: Api<CachedService> = Api::namespaced(self.client.clone(), &key.namespace);
        let params = PatchParams::apply(FIELD_MANAGER).force();
        let mut status = json!({});
        if !after.ips.is_empty() {
            let ingress: Vec<_> = after
                .ips
                .iter()
                .map(|ip| json!({"ip": ip.to_string(), "ipMode": service::IP_MODE_VIP}))
                .collect();
            status["loadBalancer"] = json!({ "ingress": ingress });
        }
        if let Some(condition) = &after.condition {
            let status_text = if condition.status { "True" } else { "False" };
            // Kubernetes API conventions: the transition time moves only when the status does.
            let since = svc
                .status
                .condition
                .as_ref()
                .filter(|c| c.status == condition.status)
                .and_then(|c| c.last_transition_time.clone())
                .unwrap_or_else(|| Time(k8s_openapi::jiff::Timestamp::now()));
            status["conditions"] = json!([{
                "type": service::IP_ALLOCATED,
                "status": status_text,
                "reason": condition.reason,
                "message": condition.message,
                "observedGeneration": condition.observed_generation,
                "lastTransitionTime": since,
            }]);
        }
        let write_error = |what| {
            move |source| ReconcileError::Write {
                what,
                service: key.clone(),
                source: Box::new(source),
            }
        };
        let written = api
            .patch_status(
                &key.name,
                &params,
                &Patch::Apply(&apply_patch(key, after.pool.as_deref(), Some(status))),
            )
            .await
            .map_err(write_error("status"))?;
        if written.status.pool.as_deref() != after.pool.as_deref() {
            tracing::debug!(service = %key, "pool annotation held by an apply to the object; rewriting it there");
            api.patch(
                &key.name,
                &params,
                &Patch::Apply(&apply_patch(key, after.pool.as_deref(), None)),
            )
            .await
            .map_err(write_error("annotation"))?;
        }
        Ok(())
    }

    /// Queues the Events; never waits for the API server.
    fn publish(&self, svc: &CachedService, events: Vec<service::ServiceEvent>) {
        if events.is_empty() {
            return;
        }
        let reference: ObjectReference = svc.object_ref(&());
        for event in events {
            let event = EventNote {
                type_: if event.warning {
                    EventType::Warning
                } else {
                    EventType::Normal
                },
                reason: event.reason.to_owned(),
                note: event.note,
                action: "Allocate".to_owned(),
            };
            if let Err(dropped) = self.events.push(event, reference.clone()) {
                self.metrics.event_dropped();
                tracing::debug!(%dropped, "Event dropped");
            }
        }
    }
}

/// A server-side apply of a Service carrying the pool annotation (when any) and, for the status
/// subresource, `status`. Leaving the annotation out removes it when this field manager held it.
fn apply_patch(
    key: &ServiceKey,
    pool: Option<&str>,
    status: Option<serde_json::Value>,
) -> serde_json::Value {
    let mut metadata = json!({"name": key.name, "namespace": key.namespace});
    if let Some(pool) = pool {
        metadata["annotations"] = json!({ service::ALLOCATED_FROM_POOL: pool });
    }
    let mut patch = json!({"apiVersion": "v1", "kind": "Service", "metadata": metadata});
    if let Some(status) = status {
        patch["status"] = status;
    }
    patch
}

/// The allocator error variant, for the metrics' `reason` label.
fn alloc_reason(error: &AllocError) -> &'static str {
    match error {
        AllocError::UnknownPool { .. } => "UnknownPool",
        AllocError::PoolNotAllowed { .. } => "PoolNotAllowed",
        AllocError::NoPoolForService { .. } => "NoPoolForService",
        AllocError::NoPoolWithFamily { .. } => "NoPoolWithFamily",
        AllocError::DualStackRequired { .. } => "DualStackRequired",
        AllocError::PoolExhausted { .. } => "PoolExhausted",
        AllocError::AllPoolsExhausted { .. } => "AllPoolsExhausted",
        AllocError::RequestedIpNotInAnyPool { .. } => "RequestedIpNotInAnyPool",
        AllocError::RequestedIpNotInRequestedPool { .. } => "RequestedIpNotInRequestedPool",
        AllocError::RequestedIpsInDifferentPools { .. } => "RequestedIpsInDifferentPools",
        AllocError::RequestedIpAvoided { .. } => "RequestedIpAvoided",
        AllocError::WrongFamily { .. } => "WrongFamily",
        AllocError::TooManyRequestedIps { .. } => "TooManyRequestedIps",
        AllocError::IpNoLongerRequested { .. } => "IpNoLongerRequested",
        AllocError::IpNotNeeded { .. } => "IpNotNeeded",
        AllocError::IpLeftEveryPool { .. } => "IpLeftEveryPool",
        AllocError::RequestedIpInUse { .. } => "RequestedIpInUse",
        AllocError::SharingKeyMismatch { .. } => "SharingKeyMismatch",
        AllocError::PortClash { .. } => "PortClash",
        AllocError::PodSelectorMismatch { .. } => "PodSelectorMismatch",
        AllocError::OverlappingPools { .. } => "OverlappingPools",
        AllocError::DuplicatePool { .. } => "DuplicatePool",
    }
}

struct Decision {
    before: Published,
    outcome: Outcome,
    aliases: Vec<crate::allocator::AliasUsed>,
    /// Addresses the allocator released for this Service in this reconcile.
    freed: Vec<IpAddr>,
    displaced: Vec<RejectedIp>,
}

fn released_ips(released: Option<crate::allocator::Assignment>) -> Vec<IpAddr> {
    released.map(|a| a.ips).unwrap_or_default()
}

/// Reconciles one Service: decide under the lock, then write and announce outside it.
async fn reconcile(svc: Arc<CachedService>, ctx: Arc<Context>) -> Result<Action, ReconcileError> {
    if !ctx.leadership.is_leader() {
        return Ok(Action::await_change());
    }
    let started = Instant::now();
    let result = reconcile_leading(&svc, &ctx).await;
    match &result {
        Ok(_) => {
            ctx.metrics.reconcile_succeeded(started.elapsed());
            if let Some(key) = service::key_of(&svc) {
                ctx.lock().failures.remove(&key);
            }
        }
        Err(error) => ctx
            .metrics
            .reconcile_failed(started.elapsed(), error.variant()),
    }
    result
}

async fn reconcile_leading(svc: &CachedService, ctx: &Context) -> Result<Action, ReconcileError> {
    let key = service::key_of(svc).ok_or(ReconcileError::NoKey)?;
    let decision = ctx.decide(&key, svc)?;
    let after = service::desired(&decision.outcome, svc.metadata.generation);
    // Nothing of ours on a Service that is not ours: leave it untouched (another
    // implementation may own its status).
    let foreign = decision.outcome == Outcome::NotOurs && !decision.before.is_ours();
    let needs_write = decision.before != after && !foreign;
    if !needs_write && decision.freed.is_empty() {
        return Ok(Action::await_change());
    }
    if needs_write {
        ctx.write(&key, svc, &after).await?;
    }
    if let Outcome::Assigned(assignment) = &decision.outcome
        && decision.before.ips != assignment.ips
    {
        for ip in &assignment.ips {
            ctx.metrics
                .allocated(&assignment.pool, ferrolb_config::addresses::Family::of(*ip));
        }
    }
    ctx.lock().written.insert(
        key.clone(),
        (svc.metadata.resource_version.clone(), after.clone()),
    );
    let events = service::events(
        (&decision.before, &after),
        &decision.outcome,
        &decision.freed,
        &decision.displaced,
        &decision.aliases,
    );
    ctx.publish(svc, events);
    ctx.pool_status_due.notify_one();
    if !decision.freed.is_empty()
        || (!decision.before.ips.is_empty() && decision.before.ips != after.ips)
    {
        // Addresses were freed: Services waiting for one may get it now.
        let waiting: Vec<ServiceKey> = ctx.lock().waiting.iter().cloned().collect();
        for other in waiting.into_iter().filter(|k| *k != key) {
            let _ = ctx
                .requeue
                .unbounded_send(ObjectRef::new(&other.name).within(&other.namespace));
        }
    }
    Ok(Action::await_change())
}

/// Conflicts and unreachable API servers are retried with backoff per Service, doubling from
/// [`FIRST_RETRY`] to [`LAST_RETRY`]; a success resets it.
fn error_policy(svc: Arc<CachedService>, error: &ReconcileError, ctx: Arc<Context>) -> Action {
    let failures = service::key_of(&svc).map_or(1, |key| {
        let mut state = ctx.lock();
        let failures = state.failures.entry(key).or_insert(0);
        *failures = failures.saturating_add(1);
        *failures
    });
    let delay = retry_delay(failures);
    tracing::warn!(%error, failures, ?delay, "reconcile failed; retrying");
    Action::requeue(delay)
}

const FIRST_RETRY: Duration = Duration::from_millis(250);
const LAST_RETRY: Duration = Duration::from_secs(60);

/// The wait before retry number `failures` (1 for the first).
fn retry_delay(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    FIRST_RETRY.saturating_mul(1 << doublings).min(LAST_RETRY)
}

/// Watches one kind into a store and signals through `changed` whenever `fingerprint` of the
/// store changes (after the initial list: then once).
fn drive<K, F, T>(
    api: Api<K>,
    changed: mpsc::UnboundedSender<()>,
    fingerprint: F,
) -> (Store<K>, impl std::future::Future<Output = ()>)
where
    K: Resource<DynamicType = ()> + Clone + std::fmt::Debug + Send + Sync + 'static,
    K: serde::de::DeserializeOwned,
    F: Fn(&Store<K>) -> T,
    T: PartialEq,
{
    let (reader, writer) = reflector::store();
    let store = reader.clone();
    let task = async move {
        let mut events = std::pin::pin!(
            reflector(
                writer,
                watcher(api, watcher::Config::default()).modify(drop_managed_fields)
            )
            .default_backoff()
        );
        let mut last = None;
        let mut synced = false;
        while let Some(event) = events.next().await {
            match event {
                Ok(event) => {
                    synced |= matches!(event, watcher::Event::InitDone);
                    if !synced {
                        continue;
                    }
                    let now = fingerprint(&reader);
                    if last.as_ref() != Some(&now) {
                        last = Some(now);
                        let _ = changed.unbounded_send(());
                    }
                }
                Err(error) => tracing::warn!(%error, "watch failed; retrying"),
            }
        }
    };
    (store, task)
}

/// Everything [`run`] needs.
#[derive(Debug)]
pub struct ReconcilerConfig {
    pub filter: ClassFilter,
    pub leadership: Leadership,
    pub metrics: ControllerMetrics,
    /// The reporting instance in Events (the pod name).
    pub identity: String,
    /// Set to `true` once every cache has synced.
    pub ready: watch::Sender<bool>,
}

/// Runs the reconciler until `shutdown` is cancelled.
pub async fn run(client: Client, config: ReconcilerConfig, shutdown: CancellationToken) {
    let (trigger_all, all_rx) = mpsc::unbounded::<()>();
    let (pools, pool_task) = drive(
        Api::<IPAddressPool>::all(client.clone()),
        trigger_all.clone(),
        pool_inputs,
    );
    let (namespaces, namespace_task) = drive(
        Api::<Namespace>::all(client.clone()),
        trigger_all.clone(),
        namespace_inputs,
    );
    let (service_reader, service_writer) = reflector::store();
    // Services to reconcile, from the watch and from the reconciler itself. References, not
    // objects: while every reconcile slot is busy (a cold start) this queue backs up, and
    // full Service copies in it cost megabytes for nothing — the store has the object.
    let (requeue_tx, requeue_rx) = mpsc::unbounded::<ObjectRef<CachedService>>();
    let applied_tx = requeue_tx.clone();
    let ctx = Arc::new(Context {
        events: EventQueue::new(EVENT_QUEUE_CAPACITY),
        client: client.clone(),
        filter: config.filter,
        leadership: config.leadership.clone(),
        metrics: config.metrics,
        services: service_reader.clone(),
        pools,
        namespaces,
        state: Mutex::new(State::default()),
        pool_status_due: Notify::new(),
        requeue: requeue_tx,
    });
    let service_task = {
        let ctx = ctx.clone();
        let api = Api::<CachedService>::all(client.clone());
        async move {
            let mut events = std::pin::pin!(
                reflector(service_writer, watcher(api, watcher::Config::default()))
                    .default_backoff()
            );
            while let Some(event) = events.next().await {
                match event {
                    Ok(watcher::Event::Apply(svc) | watcher::Event::InitApply(svc)) => {
                        let _ = applied_tx.unbounded_send(ObjectRef::from(&svc));
                    }
                    Ok(watcher::Event::Delete(svc)) => {
                        if let Some(key) = service::key_of(&svc) {
                            ctx.forget(&key);
                        }
                    }
                    Ok(watcher::Event::Init | watcher::Event::InitDone) => {}
                    Err(error) => tracing::warn!(%error, "Service watch failed; retrying"),
                }
            }
        }
    };
    tokio::spawn(pool_task);
    tokio::spawn(namespace_task);
    tokio::spawn(service_task);

    // Caches first (SPEC §4): no allocation before every store has listed once.
    let synced = async {
        let _ = tokio::join!(
            ctx.pools.wait_until_ready(),
            ctx.namespaces.wait_until_ready(),
            ctx.services.wait_until_ready()
        );
    };
    tokio::select! {
        () = synced => {}
        () = shutdown.cancelled() => return,
    }
    tracing::info!("caches synced");
    let _ = config.ready.send(true);

    tokio::spawn(leadership_task(ctx.clone(), config.leadership, trigger_all));
    tokio::spawn(pool_status_task(ctx.clone(), shutdown.clone()));
    tokio::spawn(ctx.events.clone().run(
        EventPublisher::new(client.clone(), FIELD_MANAGER, config.identity),
        EVENTS_IN_FLIGHT,
        shutdown.clone(),
    ));

    Controller::for_stream(
        futures::stream::pending::<Result<CachedService, watcher::Error>>(),
        service_reader,
    )
    .reconcile_all_on(all_rx)
    .reconcile_on(requeue_rx)
    .graceful_shutdown_on(shutdown.cancelled_owned())
    .with_config(controller::Config::default().concurrency(RECONCILE_CONCURRENCY))
    .run(reconcile, error_policy, ctx)
    .for_each(|result| async move {
        if let Err(error) = result {
            tracing::debug!(%error, "reconcile");
        }
    })
    .await;
}

/// Drops the allocator when leadership is lost; on gaining it reconciles every Service, the
/// first reconcile rebuilding the allocator from the caches.
async fn leadership_task(
    ctx: Arc<Context>,
    mut leadership: Leadership,
    trigger_all: mpsc::UnboundedSender<()>,
) {
    // The elector republishes `true` on every renewal; only a change of value matters.
    let mut was_leading = false;
    loop {
        let leading = leadership.is_leader();
        if leading && !was_leading {
            tracing::info!("leading: reconciling every Service");
            let _ = trigger_all.unbounded_send(());
        } else if !leading && was_leading {
            tracing::info!("no longer leading: dropping the allocator");
            *ctx.lock() = State::default();
        }
        was_leading = leading;
        if !leadership.changed().await {
            *ctx.lock() = State::default();
            return;
        }
    }
}

/// Keeps every pool's status current while leading, writing only what changed.
async fn pool_status_task(ctx: Arc<Context>, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            () = ctx.pool_status_due.notified() => {}
            () = tokio::time::sleep(POOL_STATUS_INTERVAL) => {}
            () = shutdown.cancelled() => return,
        }
        if !ctx.leadership.is_leader() {
            continue;
        }
        let wanted: Vec<(Arc<IPAddressPool>, pool_status::DesiredPoolStatus)> = {
            let mut state = ctx.lock();
            if ctx.allocator(&mut state).is_err() {
                continue;
            }
            let Some(allocator) = state.allocator.as_ref() else {
                continue;
            };
            let usage: Vec<_> = state
                .config
                .pools
                .keys()
                .filter_map(|name| allocator.usage(name).map(|u| (name.clone(), u)))
                .collect();
            ctx.metrics
                .record_pool_use(usage.iter().flat_map(|(name, u)| {
                    [
                        (
                            name.as_str(),
                            ferrolb_config::addresses::Family::V4,
                            clamp(u.ipv4.assigned),
                        ),
                        (
                            name.as_str(),
                            ferrolb_config::addresses::Family::V6,
                            clamp(u.ipv6.assigned),
                        ),
                    ]
                }));
            ctx.pools
                .state()
                .into_iter()
                .map(|pool| {
                    let name = pool.name_any();
                    let desired = pool_status::desired(
                        &name,
                        pool.metadata.generation,
                        allocator
                            .usage(&name)
                            .filter(|_| state.config.pools.contains_key(&name)),
                        &state.diagnostics,
                    );
                    (pool, desired)
                })
                .filter(|(pool, desired)| pool_status::differs(pool.status.as_ref(), desired))
                .collect()
        };
        for (pool, desired) in wanted {
            if let Err(error) = write_pool_status(&ctx.client, &pool, &desired).await {
                tracing::warn!(pool = %pool.name_any(), %error, "writing pool status");
            }
        }
    }
}

fn clamp(count: u128) -> u64 {
    u64::try_from(count).unwrap_or(u64::MAX)
}

async fn write_pool_status(
    client: &Client,
    pool: &IPAddressPool,
    desired: &pool_status::DesiredPoolStatus,
) -> Result<(), kube::Error> {
    let now = Time(k8s_openapi::jiff::Timestamp::now());
    let current = pool
        .status
        .as_ref()
        .map(|s| s.conditions.as_slice())
        .unwrap_or_default();
    let conditions: Vec<_> = desired
        .conditions
        .iter()
        .map(|c| {
            let status = if c.status { "True" } else { "False" };
            let since = current
                .iter()
                .find(|have| have.type_ == c.type_ && have.status == status)
                .map(|have| have.last_transition_time.clone())
                .unwrap_or_else(|| now.clone());
            json!({
                "type": c.type_, "status": status, "reason": c.reason, "message": c.message,
                "lastTransitionTime": since, "observedGeneration": desired.observed_generation,
            })
        })
        .collect();
    let patch = json!({
        "apiVersion": "ferrolb.io/v1beta1",
        "kind": "IPAddressPool",
        "metadata": {"name": pool.name_any()},
        "status": {
            "observedGeneration": desired.observed_generation,
            "assignedIPv4": desired.assigned_ipv4,
            "availableIPv4": desired.available_ipv4,
            "assignedIPv6": desired.assigned_ipv6,
            "availableIPv6": desired.available_ipv6,
            "conditions": conditions,
        }
    });
    Api::<IPAddressPool>::all(client.clone())
        .patch_status(
            &pool.name_any(),
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await
        .map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delay_doubles_from_a_quarter_second_up_to_a_minute() {
        assert_eq!(retry_delay(1), Duration::from_millis(250));
        assert_eq!(retry_delay(2), Duration::from_millis(500));
        assert_eq!(retry_delay(5), Duration::from_secs(4));
        assert_eq!(retry_delay(9), Duration::from_secs(60));
        assert_eq!(retry_delay(u32::MAX), Duration::from_secs(60));
    }
}
