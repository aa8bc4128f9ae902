//! Watch caches that hold only what a binary reads.
//!
//! Caches hold every Service, EndpointSlice and Node of the cluster, so what they keep per object
//! is what a binary costs at scale (docs/BENCHMARKS.md). Two tools, by kind:
//! - [`drop_managed_fields`] for kube-runtime reflectors of the few, small objects that are read
//!   whole (ferrolb's CRDs feed the config model as they are): `managedFields` (server-side apply
//!   bookkeeping) is often larger than the rest of an object and no binary reads it.
//! - [`Projection`] for the many: each object is reduced, as it arrives, to a compact value of the
//!   caller's own type, and only that value is kept. A full object lives only while one watch
//!   event is handled, so neither the cache nor the initial list ever holds thousands of them.
//!
//! The controller's Service cache is the one exception: kube-runtime's `Controller` drives its
//! reconciles from a reflector, which needs a `Resource` type, so it decodes its own compact
//! Service type instead (`ferrolb_controller::reconciler::cached`).

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard};

use futures::StreamExt;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, watcher};
use kube::{Api, Resource, ResourceExt};
use tokio::sync::{Notify, watch};

/// Clears `metadata.managedFields`; pass it to `WatchStreamExt::modify` before a reflector.
pub fn drop_managed_fields<K: Resource>(object: &mut K) {
    object.meta_mut().managed_fields = None;
}

/// Objects per page of the initial list. A page is held whole, as JSON and as full objects, until
/// projected: kube-runtime's 500 made those pages, several kinds listing at once, the peak of the
/// speaker's memory at start, and that peak is what its RSS keeps. 100 costs a few more round trips
/// at start (100 requests for 10,000 objects).
const LIST_PAGE_SIZE: u32 = 100;

/// Namespace (empty for cluster-scoped objects) and name of a cached object.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectKey {
    pub namespace: String,
    pub name: String,
}

impl ObjectKey {
    pub fn new(namespace: &str, name: &str) -> ObjectKey {
        ObjectKey {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        }
    }

    fn of<K: Resource>(object: &K) -> ObjectKey {
        ObjectKey {
            namespace: object.meta().namespace.clone().unwrap_or_default(),
            name: object.name_any(),
        }
    }
}

/// A watch cache of one kind that keeps `P`, a projection of each object, instead of the object.
///
/// Contract (as a kube-runtime reflector): after the first complete list it is ready and holds one
/// entry per object the projection kept; a re-list (after the watch lost its place) replaces the
/// contents only once complete, so readers never see a half-listed cache; a projection that
/// returns `None` keeps nothing for that object (and drops what an earlier version left).
pub struct Projection<P> {
    shared: Arc<Shared<P>>,
}

struct Shared<P> {
    objects: RwLock<HashMap<ObjectKey, P>>,
    ready: watch::Sender<bool>,
}

impl<P> std::fmt::Debug for Projection<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Projection")
            .field("objects", &self.read().len())
            .field("ready", &*self.shared.ready.borrow())
            .finish()
    }
}

impl<P> Clone for Projection<P> {
    fn clone(&self) -> Self {
        Projection {
            shared: self.shared.clone(),
        }
    }
}

impl<P> Default for Projection<P> {
    fn default() -> Self {
        Projection {
            shared: Arc::new(Shared {
                objects: RwLock::new(HashMap::new()),
                ready: watch::Sender::new(false),
            }),
        }
    }
}

impl<P> Projection<P> {
    /// The cached projections. A guard: read, and drop it before the next `.await`.
    pub fn read(&self) -> RwLockReadGuard<'_, HashMap<ObjectKey, P>> {
        // A writer that panicked mid-update left a map that is still a valid map.
        self.shared
            .objects
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Returns once the first complete list is in.
    pub async fn wait_until_ready(&self) {
        let mut ready = self.shared.ready.subscribe();
        // The sender lives as long as `self`, so the wait ends only by becoming ready.
        let _ = ready.wait_for(|ready| *ready).await;
    }

    /// Applies one watch event, reducing objects with `project`; says whether the readers must
    /// look again: an object added or removed, or changed so that `wakes(old, new)`.
    /// `listing` holds a re-list in progress (between `Init` and `InitDone`).
    fn apply<K: Resource>(
        &self,
        event: watcher::Event<K>,
        project: &impl Fn(&K) -> Option<P>,
        wakes: fn(&P, &P) -> bool,
        listing: &mut Option<HashMap<ObjectKey, P>>,
    ) -> bool
    where
        P: PartialEq,
    {
        let mut objects = self
            .shared
            .objects
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        match event {
            watcher::Event::Apply(object) => {
                let key = ObjectKey::of(&object);
                match project(&object) {
                    Some(value) => {
                        let wake = match objects.get(&key) {
                            Some(old) if *old == value => return false,
                            Some(old) => wakes(old, &value),
                            None => true,
                        };
                        objects.insert(key, value);
                        wake
                    }
                    None => objects.remove(&key).is_some(),
                }
            }
            watcher::Event::Delete(object) => objects.remove(&ObjectKey::of(&object)).is_some(),
            watcher::Event::Init => {
                *listing = Some(HashMap::new());
                false
            }
            watcher::Event::InitApply(object) => {
                if let Some(value) = project(&object) {
                    listing
                        .get_or_insert_with(HashMap::new)
                        .insert(ObjectKey::of(&object), value);
                }
                false
            }
            watcher::Event::InitDone => {
                *objects = listing.take().unwrap_or_default();
                drop(objects);
                self.shared.ready.send_replace(true);
                true
            }
        }
    }
}

/// Watches every object of `api`'s kind in a task of its own, keeping `project(object)` of each in
/// the returned cache, and wakes `changed` when an object is added or removed or changes so that
/// `wakes(old, new)` (`PartialEq::ne` for "any change"): an edit of a field the projection leaves
/// out (another node's counters) wakes no one, and neither does a change only other readers of
/// the cache care about.
pub fn project<K, P, F>(
    api: Api<K>,
    project: F,
    wakes: fn(&P, &P) -> bool,
    changed: Arc<Notify>,
) -> Projection<P>
where
    K: Resource<DynamicType = ()> + Clone + std::fmt::Debug + Send + 'static,
    K: serde::de::DeserializeOwned,
    P: PartialEq + Send + Sync + 'static,
    F: Fn(&K) -> Option<P> + Send + 'static,
{
    let cache = Projection::default();
    let writer = cache.clone();
    tokio::spawn(async move {
        let config = watcher::Config::default().page_size(LIST_PAGE_SIZE);
        let mut events = std::pin::pin!(watcher(api, config).default_backoff());
        let mut listing = None;
        while let Some(event) = events.next().await {
            match event {
                Ok(event) => {
                    if writer.apply(event, &project, wakes, &mut listing) {
                        changed.notify_one();
                    }
                }
                Err(error) => {
                    tracing::warn!(kind = %K::kind(&()), %error, "watch failed; retrying");
                }
            }
        }
    });
    cache
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ConfigMap;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ManagedFieldsEntry, ObjectMeta};

    #[test]
    fn managed_fields_are_dropped_and_the_rest_kept() {
        let mut object = ConfigMap {
            metadata: ObjectMeta {
                name: Some("a".into()),
                managed_fields: Some(vec![ManagedFieldsEntry::default()]),
                ..ObjectMeta::default()
            },
            ..ConfigMap::default()
        };
        drop_managed_fields(&mut object);
        assert!(object.metadata.managed_fields.is_none());
        assert_eq!(object.metadata.name.as_deref(), Some("a"));
    }

    fn config_map(namespace: &str, name: &str, value: &str) -> ConfigMap {
        ConfigMap {
            metadata: ObjectMeta {
                namespace: Some(namespace.into()),
                name: Some(name.into()),
                ..ObjectMeta::default()
            },
            data: Some([("v".to_owned(), value.to_owned())].into()),
            ..ConfigMap::default()
        }
    }

    /// The projection of the tests: the value, and nothing for objects whose value is "skip".
    fn value(map: &ConfigMap) -> Option<String> {
        let value = map.data.as_ref()?.get("v")?;
        (value != "skip").then(|| value.clone())
    }

    fn contents(cache: &Projection<String>) -> Vec<(String, String)> {
        let mut all: Vec<_> = cache
            .read()
            .iter()
            .map(|(key, value)| (format!("{}/{}", key.namespace, key.name), value.clone()))
            .collect();
        all.sort();
        all
    }

    #[test]
    fn ready_only_after_the_first_complete_list() {
        let cache = Projection::default();
        let mut listing = None;
        cache.apply(watcher::Event::Init, &value, String::ne, &mut listing);
        cache.apply(
            watcher::Event::InitApply(config_map("a", "x", "1")),
            &value,
            String::ne,
            &mut listing,
        );
        assert!(!*cache.shared.ready.borrow());
        assert!(contents(&cache).is_empty(), "a half list is never visible");
        cache.apply(watcher::Event::InitDone, &value, String::ne, &mut listing);
        assert!(*cache.shared.ready.borrow());
        assert_eq!(contents(&cache), [("a/x".to_owned(), "1".to_owned())]);
    }

    #[test]
    fn applies_and_deletes_keep_only_projected_objects_and_report_real_changes() {
        let cache = Projection::default();
        let mut listing = None;
        let changed: Vec<bool> = [
            watcher::Event::Init,
            watcher::Event::InitDone,
            watcher::Event::Apply(config_map("a", "x", "1")),
            watcher::Event::Apply(config_map("b", "x", "2")),
            watcher::Event::Apply(config_map("a", "y", "skip")),
            watcher::Event::Apply(config_map("a", "x", "3")),
            // The same projection again (an edit of a field the projection leaves out).
            watcher::Event::Apply(config_map("a", "x", "3")),
        ]
        .into_iter()
        .map(|event| cache.apply(event, &value, String::ne, &mut listing))
        .collect();
        assert_eq!(changed, [false, true, true, true, false, true, false]);
        assert_eq!(
            contents(&cache),
            [
                ("a/x".to_owned(), "3".to_owned()),
                ("b/x".to_owned(), "2".to_owned())
            ]
        );
        // An object edited so that the projection drops it leaves nothing behind.
        assert!(cache.apply(
            watcher::Event::Apply(config_map("b", "x", "skip")),
            &value,
            String::ne,
            &mut listing,
        ));
        assert!(cache.apply(
            watcher::Event::Delete(config_map("a", "x", "3")),
            &value,
            String::ne,
            &mut listing,
        ));
        assert!(!cache.apply(
            watcher::Event::Delete(config_map("a", "y", "skip")),
            &value,
            String::ne,
            &mut listing,
        ));
        assert!(contents(&cache).is_empty());
    }

    #[test]
    fn a_relist_replaces_the_contents_once_complete() {
        let cache = Projection::default();
        let mut listing = None;
        for event in [
            watcher::Event::Init,
            watcher::Event::InitApply(config_map("a", "gone", "1")),
            watcher::Event::InitApply(config_map("a", "kept", "1")),
            watcher::Event::InitDone,
            watcher::Event::Init,
            watcher::Event::InitApply(config_map("a", "kept", "2")),
        ] {
            cache.apply(event, &value, String::ne, &mut listing);
        }
        assert_eq!(
            contents(&cache).len(),
            2,
            "the old list stays until the new one is done"
        );
        cache.apply(watcher::Event::InitDone, &value, String::ne, &mut listing);
        assert_eq!(contents(&cache), [("a/kept".to_owned(), "2".to_owned())]);
    }

    #[test]
    fn a_change_the_readers_ignore_is_kept_without_waking_them() {
        let cache = Projection::default();
        let mut listing = None;
        // Only the first character matters to the readers of this cache.
        let first_differs = |a: &String, b: &String| a.chars().next() != b.chars().next();
        for event in [watcher::Event::Init, watcher::Event::InitDone] {
            cache.apply(event, &value, first_differs, &mut listing);
        }
        let mut apply = |v: &str| {
            cache.apply(
                watcher::Event::Apply(config_map("a", "x", v)),
                &value,
                first_differs,
                &mut listing,
            )
        };
        assert!(apply("10"), "a new object wakes");
        assert!(!apply("11"), "an ignored change does not");
        assert!(apply("21"), "a change the readers see does");
        assert_eq!(contents(&cache), [("a/x".to_owned(), "21".to_owned())]);
        assert!(!apply("22"));
        assert_eq!(
            contents(&cache),
            [("a/x".to_owned(), "22".to_owned())],
            "an ignored change is still kept"
        );
    }
}
