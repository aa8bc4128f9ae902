//! [`Unread`]: the type a write's response is decoded into when the writer reads none of it.
//!
//! kube's `Api<K>` decodes every response into `K`. For a writer that applies its own fields and
//! moves on, decoding the whole object (managedFields above all) is pure allocation: a speaker
//! that takes 10,000 Services over writes 10,000 conditions, and decoding each response into a
//! `k8s_openapi` Service interleaved short-lived trees with the caches' long-lived entries and
//! left the heap fragmented (docs/BENCHMARKS.md). `Unread<K>` addresses the same API endpoint as
//! `K` and skips the body without allocating.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;
use serde::de::{Deserialize, Deserializer, IgnoredAny};

/// An object of kind `K` whose content was not read; only usable as the response type of writes.
pub struct Unread<K> {
    /// Always empty (kube's `Resource` needs one).
    metadata: ObjectMeta,
    kind: PhantomData<fn() -> K>,
}

impl<K> fmt::Debug for Unread<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Unread")
    }
}

impl<K> Clone for Unread<K> {
    fn clone(&self) -> Self {
        Unread {
            metadata: self.metadata.clone(),
            kind: PhantomData,
        }
    }
}

impl<'de, K> Deserialize<'de> for Unread<K> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        IgnoredAny::deserialize(deserializer)?;
        Ok(Unread {
            metadata: ObjectMeta::default(),
            kind: PhantomData,
        })
    }
}

impl<K: Resource<DynamicType = ()>> Resource for Unread<K> {
    type DynamicType = ();
    type Scope = K::Scope;

    fn kind(dynamic: &()) -> Cow<'_, str> {
        K::kind(dynamic)
    }

    fn group(dynamic: &()) -> Cow<'_, str> {
        K::group(dynamic)
    }

    fn version(dynamic: &()) -> Cow<'_, str> {
        K::version(dynamic)
    }

    fn api_version(dynamic: &()) -> Cow<'_, str> {
        K::api_version(dynamic)
    }

    fn plural(dynamic: &()) -> Cow<'_, str> {
        K::plural(dynamic)
    }

    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::Service;

    use super::*;

    #[test]
    fn any_body_decodes_and_the_endpoint_is_the_kinds() {
        let response = r#"{"apiVersion":"v1","kind":"Service","metadata":{"name":"web",
            "managedFields":[{"manager":"x","fieldsV1":{"f:status":{}}}]},"status":{}}"#;
        let unread: Unread<Service> = serde_json::from_str(response).expect("decodes");
        assert_eq!(unread.meta().name, None);
        assert!(serde_json::from_str::<Unread<Service>>("{").is_err());
        assert_eq!(
            Unread::<Service>::url_path(&(), Some("ns")),
            Service::url_path(&(), Some("ns"))
        );
        assert_eq!(Unread::<Service>::api_version(&()), "v1");
    }
}
