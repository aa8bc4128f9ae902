//! What both binaries drop from objects before they enter a watch cache.
//!
//! `managedFields` (server-side apply bookkeeping) is often larger than the rest of an object and
//! neither binary reads it. Caches hold every Service, EndpointSlice and Node of the cluster, so
//! keeping it cost the controller and the speaker most of their memory at 10,000 Services
//! (docs/BENCHMARKS.md).

use kube::Resource;

/// Clears `metadata.managedFields`; pass it to `WatchStreamExt::modify` before a reflector.
pub fn drop_managed_fields<K: Resource>(object: &mut K) {
    object.meta_mut().managed_fields = None;
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
}
