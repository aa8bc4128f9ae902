//! One layer-2 end-to-end test's hold on the shared lab: the lab's lock, ferrolb's processes
//! ([`Install`]) and a client, with what the layer-2 tests ask of them. Shared by the
//! `speaker_l2` and `speaker_l2_scenarios` tests; `mod common;` must be declared next to it.
//!
//! Each test clears what the one before left and starts its own controller and speakers, settled
//! ([`l2_mode::start_afresh`]); they stop before the lock is given up, and a failed test prints
//! their logs ([`Install`]'s `Drop`).
#![allow(dead_code)]

use std::net::IpAddr;
use std::time::Duration;

use ferrolb_lab::binaries::SpeakerOptions;
use ferrolb_lab::l2_mode::{self, Install, NAMESPACE};
use ferrolb_lab::lab::Lab;
use ferrolb_lab::topology::plan;
use ferrolb_lab::workload;
use serde_json::{Value, json};
use tokio::sync::MutexGuard;

use crate::common;

pub const NODES: [usize; 3] = [1, 2, 3];
pub const WAIT: Duration = Duration::from_secs(30);

/// One test's lab, controller and speakers. `install` is declared first so the processes stop
/// before the lab lock is released.
pub struct L2Test {
    pub install: Install,
    pub lab: MutexGuard<'static, Lab>,
    pub client: kube::Client,
    /// The label of every object the test writes.
    label: &'static str,
}

impl L2Test {
    /// Takes the shared lab, starts the controller and a speaker on every node with `options`,
    /// settled, and applies the L2 pool `pool` (both families). Objects carry `label`.
    pub async fn start(
        test: &str,
        label: &'static str,
        pool: &str,
        options: SpeakerOptions,
    ) -> L2Test {
        let mut lab = common::shared_lab().await;
        let install = l2_mode::start_afresh(&mut lab, test, label, &NODES, options, WAIT)
            .await
            .expect("controller and speakers settle");
        let client = lab.client().expect("client");
        l2_mode::apply_pool(&client, label, pool, &[plan::L2_POOL_V4, plan::L2_POOL_V6])
            .await
            .expect("pool");
        L2Test {
            install,
            lab,
            client,
            label,
        }
    }

    /// Applies the L2Advertisement `name` with `spec`.
    pub async fn advertise(&self, name: &str, spec: Value) {
        l2_mode::apply_advertisement(&self.client, self.label, name, spec)
            .await
            .expect("advertisement");
    }

    /// Creates the LoadBalancer Service `name` with `spec` and extra `metadata` (annotations);
    /// waits for its first IP.
    pub async fn create_service(&self, name: &str, spec: Value, metadata: Value) -> IpAddr {
        let mut service =
            workload::load_balancer(NAMESPACE, name, json!({self.label: "true"}), spec);
        if let (Some(base), Some(extra)) =
            (service["metadata"].as_object_mut(), metadata.as_object())
        {
            base.extend(extra.clone());
        }
        l2_mode::apply_service(&self.client, &service)
            .await
            .expect("Service");
        workload::wait_ingress_ip(&self.client, NAMESPACE, name, WAIT)
            .await
            .unwrap_or_else(|| panic!("{name} got no IP within {WAIT:?}"))
    }

    /// Writes the Service's EndpointSlice of `family`: a ready endpoint on each node of `nodes`.
    pub async fn set_endpoints(&self, service: &str, family: &str, nodes: &[usize]) {
        let topology = self.lab.topology().expect("topology");
        l2_mode::apply_endpoints(&self.client, topology, self.label, service, family, nodes)
            .await
            .expect("EndpointSlice");
    }

    /// The one node that announces `ip` in its SpeakerStatus and answers the client on it.
    pub async fn owner(&self, ip: IpAddr) -> String {
        l2_mode::wait_owner(&self.lab, &self.install, ip, WAIT)
            .await
            .expect("one owner")
    }

    /// Waits until every running speaker counts every other alive.
    pub async fn wait_members_alive(&self) {
        self.install
            .wait_members_alive(&self.lab, WAIT)
            .await
            .expect("members alive");
    }

    pub fn node_name(&self, index: usize) -> String {
        let topology = self.lab.topology().expect("topology");
        topology.node(index).expect("node").name.clone()
    }

    pub fn node_index(&self, name: &str) -> usize {
        let topology = self.lab.topology().expect("topology");
        topology.node_named(name).expect("a lab node").index
    }

    /// The segment interface's name, the same in every lab namespace.
    pub fn segment_interface(&self) -> String {
        let topology = self.lab.topology().expect("topology");
        topology.segment_interface().expect("segment interface")
    }

    /// The MAC of node `index`'s segment interface.
    pub fn segment_mac(&self, index: usize) -> String {
        l2_mode::segment_mac(&self.lab, index).expect("MAC")
    }
}
