//! Owner election for layer-2 Service IPs (SPEC §5): pure, deterministic, identical on every speaker.
//!
//! Every speaker computes the same answer from the same inputs, with no coordination: among the live
//! eligible candidates the owner is the one with the **highest preference weight** (from the
//! L2Advertisement's `preferredNodes`, 0 when none matches), then the **highest rendezvous score**
//! (highest-random-weight hashing, Thaler & Ravishankar 1998), then — only on a 64-bit score
//! collision — the greatest node name.
//!
//! Rendezvous hashing gives minimal disruption: removing a node moves only the keys it owned, adding
//! one moves only the keys it now wins.
//!
//! **What is hashed.** All IPs of one Service must share an owner, and so must Services sharing an
//! IP, so the score is computed per [`ElectionKey`], not per IP:
//! - `shared:<sharing key>` for a Service with a non-empty `ferrolb.io/allow-shared-ip` key — every
//!   Service that shares an IP with it necessarily carries the same key (SPEC §4);
//! - `service:<namespace>/<name>` otherwise.
//!
//! Neither namespace nor name may contain `/` or `:`, so the two forms never collide. The caller
//! passes as candidates the nodes eligible for *all* IPs of the key.
//!
//! **The hash** is SipHash-2-4 (Aumasson & Bernstein 2012) with the fixed 128-bit key
//! k0 = `0x666572726f6c6200` ("ferrolb\0"), k1 = `0x656c656374696f6e` ("election"), over the bytes
//! `node name ‖ 0x00 ‖ election key` (UTF-8, no length prefix). It must never change: speakers of
//! different versions in one cluster must agree, which is why std's randomly keyed `RandomState` is
//! not used and why the tests pin golden scores.

use std::fmt;
use std::hash::Hasher;

use siphasher::sip::SipHasher24;

const SIPHASH_K0: u64 = 0x6665_7272_6f6c_6200;
const SIPHASH_K1: u64 = 0x656c_6563_7469_6f6e;

/// What the election hashes for a Service (see the module docs for the two forms).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ElectionKey(String);

impl ElectionKey {
    /// The key of a Service: its sharing key when it has a non-empty one, else namespace/name.
    pub fn for_service(namespace: &str, name: &str, sharing_key: Option<&str>) -> ElectionKey {
        match sharing_key {
            Some(key) if !key.is_empty() => ElectionKey(format!("shared:{key}")),
            _ => ElectionKey(format!("service:{namespace}/{name}")),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ElectionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A live, eligible node and its preference weight for the key being elected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidate<'a> {
    pub node: &'a str,
    pub weight: u32,
}

/// Rendezvous score of `node` for `key`: SipHash-2-4 with the fixed key over `node ‖ 0 ‖ key`.
pub fn score(node: &str, key: &ElectionKey) -> u64 {
    let mut hasher = SipHasher24::new_with_keys(SIPHASH_K0, SIPHASH_K1);
    hasher.write(node.as_bytes());
    hasher.write(&[0]);
    hasher.write(key.0.as_bytes());
    hasher.finish()
}

/// The owner of `key` among `candidates`, `None` when there are none. Independent of the order of
/// the candidates; a node listed twice counts once with its highest weight.
pub fn elect<'a>(
    key: &ElectionKey,
    candidates: impl IntoIterator<Item = Candidate<'a>>,
) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|candidate| (candidate.weight, score(candidate.node, key), candidate.node))
        .max()
        .map(|(_, _, node)| node)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::{BTreeMap, BTreeSet};

    fn web() -> ElectionKey {
        ElectionKey::for_service("default", "web", None)
    }

    fn unweighted<'a>(nodes: &'a [String]) -> impl Iterator<Item = Candidate<'a>> {
        nodes.iter().map(|node| Candidate { node, weight: 0 })
    }

    #[test]
    fn siphasher_is_siphash_2_4_per_reference_vector() {
        // Aumasson & Bernstein, "SipHash: a fast short-input PRF", appendix A: key 00..0f,
        // message 00..0e.
        let key: [u8; 16] = std::array::from_fn(|i| i as u8);
        let message: [u8; 15] = std::array::from_fn(|i| i as u8);
        let k0 = u64::from_le_bytes(key[..8].try_into().expect("8 octets"));
        let k1 = u64::from_le_bytes(key[8..].try_into().expect("8 octets"));
        let mut hasher = SipHasher24::new_with_keys(k0, k1);
        hasher.write(&message);
        assert_eq!(hasher.finish(), 0xa129_ca61_49be_45e5);
    }

    #[test]
    fn scores_match_golden_values() {
        // Computed by an independent SipHash-2-4 implementation; a change here breaks mixed-version
        // clusters and must never happen.
        assert_eq!(score("node-a", &web()), 0xbacf_05ae_23ee_90f6);
        assert_eq!(score("node-b", &web()), 0x318b_0a7e_d8d8_1397);
        let dns = ElectionKey::for_service("kube-system", "dns-udp", Some("dns"));
        assert_eq!(score("node-a", &dns), 0x66e1_2259_d825_2cc4);
    }

    #[test]
    fn election_key_uses_sharing_key_when_present() {
        assert_eq!(web().as_str(), "service:default/web");
        assert_eq!(ElectionKey::for_service("default", "web", Some("")), web());
        let tcp = ElectionKey::for_service("a", "dns-tcp", Some("dns"));
        let udp = ElectionKey::for_service("b", "dns-udp", Some("dns"));
        assert_eq!(tcp, udp);
        assert_eq!(tcp.to_string(), "shared:dns");
    }

    #[test]
    fn highest_score_wins_without_preferences() {
        let nodes = ["node-a".to_owned(), "node-b".to_owned()];
        // 0xbacf… > 0x318b… (golden values above).
        assert_eq!(elect(&web(), unweighted(&nodes)), Some("node-a"));
    }

    #[test]
    fn preference_weight_beats_hash() {
        let candidates = [
            Candidate {
                node: "node-a",
                weight: 10,
            },
            Candidate {
                node: "node-b",
                weight: 50,
            },
        ];
        assert_eq!(elect(&web(), candidates), Some("node-b"));
    }

    #[test]
    fn no_candidates_no_owner() {
        assert_eq!(elect(&web(), []), None);
    }

    #[test]
    fn owners_are_balanced_across_nodes() {
        let nodes: Vec<String> = (0..8).map(|i| format!("node-{i}")).collect();
        let mut owned: BTreeMap<&str, usize> = BTreeMap::new();
        for i in 0..8000 {
            let key = ElectionKey::for_service("default", &format!("svc-{i}"), None);
            let owner = elect(&key, unweighted(&nodes)).expect("non-empty");
            *owned.entry(owner).or_default() += 1;
        }
        assert_eq!(owned.len(), 8);
        for (node, count) in owned {
            assert!((800..=1200).contains(&count), "{node} owns {count} of 8000");
        }
    }

    fn node_names() -> impl Strategy<Value = BTreeSet<String>> {
        proptest::collection::btree_set("[a-z]{1,8}(-[0-9]{1,2})?", 1..12)
    }

    fn weighted<'a>(nodes: &'a BTreeSet<String>, weights: &[u32]) -> Vec<Candidate<'a>> {
        nodes
            .iter()
            .zip(weights)
            .map(|(node, weight)| Candidate {
                node,
                weight: *weight,
            })
            .collect()
    }

    fn keys() -> impl Strategy<Value = Vec<ElectionKey>> {
        proptest::collection::vec(
            ("[a-z]{1,6}", "[a-z0-9-]{1,10}")
                .prop_map(|(ns, name)| ElectionKey::for_service(&ns, &name, None)),
            1..40,
        )
    }

    proptest! {
        #[test]
        fn removing_a_node_moves_only_what_it_owned(nodes in node_names(), keys in keys(), pick: prop::sample::Index) {
            let all: Vec<String> = nodes.iter().cloned().collect();
            let removed = pick.get(&all).clone();
            let rest: Vec<String> = all.iter().filter(|n| **n != removed).cloned().collect();
            for key in &keys {
                let before = elect(key, unweighted(&all));
                let after = elect(key, unweighted(&rest));
                if before != Some(removed.as_str()) {
                    prop_assert_eq!(before, after);
                }
            }
        }

        #[test]
        fn adding_a_node_moves_only_what_it_wins(nodes in node_names(), keys in keys(), added in "[A-Z]{1,8}") {
            let before_nodes: Vec<String> = nodes.iter().cloned().collect();
            let mut after_nodes = before_nodes.clone();
            after_nodes.push(added.clone());
            for key in &keys {
                let before = elect(key, unweighted(&before_nodes));
                let after = elect(key, unweighted(&after_nodes));
                if after != Some(added.as_str()) {
                    prop_assert_eq!(before, after);
                }
            }
        }

        #[test]
        fn result_is_independent_of_candidate_order(
            nodes in node_names(), keys in keys(), weights in proptest::collection::vec(0u32..3, 12),
        ) {
            let candidates = weighted(&nodes, &weights);
            let mut reversed = candidates.clone();
            reversed.reverse();
            for key in &keys {
                prop_assert_eq!(elect(key, candidates.iter().copied()), elect(key, reversed.iter().copied()));
            }
        }

        #[test]
        fn owner_has_the_highest_weight(
            nodes in node_names(), keys in keys(), weights in proptest::collection::vec(0u32..100, 12),
        ) {
            let candidates = weighted(&nodes, &weights);
            let top = candidates.iter().map(|c| c.weight).max().unwrap_or_default();
            for key in &keys {
                let owner = elect(key, candidates.iter().copied()).expect("non-empty");
                let winner = candidates.iter().find(|c| c.node == owner).expect("is a candidate");
                prop_assert_eq!(winner.weight, top);
            }
        }
    }
}
