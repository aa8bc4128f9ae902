//! The leader-election rules on a `coordination.k8s.io/v1` Lease, as a pure state machine: the
//! driver ([`crate::leader`]) feeds it what it read from the API server and the time, and it
//! answers what to write and whether this candidate leads. No async, no I/O; time is an
//! [`Instant`] passed in.
//!
//! # Contract
//! - A Lease that does not exist is created naming us; one with no holder (released) is claimed
//!   at once; one naming us is renewed; one naming another candidate is taken over only after it
//!   went unchanged for its `leaseDurationSeconds`, measured on **our own monotonic clock from
//!   when we first saw its current `resourceVersion`**. Comparing `renewTime` with our wall clock
//!   would make correctness depend on clock skew between nodes; this only depends on both
//!   clocks running at the same rate.
//! - Every write carries the `resourceVersion` it was decided on, so the API server accepts at
//!   most one of two concurrent writes (optimistic concurrency): two candidates can never both
//!   hold the Lease.
//! - We lead from a successful write until `renewDeadline` after the moment that write was
//!   *sent* (not answered), unless we see the Lease name someone else first. Because a standby
//!   waits `leaseDuration` after it saw our last write, and `renewDeadline < leaseDuration`, the
//!   old leader has stopped before any standby may start.

use std::time::{Duration, Instant};

/// The timing of leader election. Defaults are those of Kubernetes' own components
/// (kube-controller-manager): 15 s lease, 10 s renew deadline, 2 s retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timings {
    lease_duration: Duration,
    renew_deadline: Duration,
    retry_period: Duration,
}

/// Timings that would let two leaders overlap or never renew in time.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimingError {
    #[error(
        "renew deadline {renew_deadline:?} must be shorter than the lease duration {lease_duration:?}, or an old leader could still act after a standby took over"
    )]
    DeadlineNotBelowDuration {
        renew_deadline: Duration,
        lease_duration: Duration,
    },
    #[error(
        "retry period {retry_period:?} must be non-zero and shorter than the renew deadline {renew_deadline:?}, or the leader cannot renew before its deadline"
    )]
    RetryNotBelowDeadline {
        retry_period: Duration,
        renew_deadline: Duration,
    },
}

impl Timings {
    /// Checks `0 < retry_period < renew_deadline < lease_duration`.
    pub fn new(
        lease_duration: Duration,
        renew_deadline: Duration,
        retry_period: Duration,
    ) -> Result<Self, TimingError> {
        if renew_deadline >= lease_duration {
            return Err(TimingError::DeadlineNotBelowDuration {
                renew_deadline,
                lease_duration,
            });
        }
        if retry_period.is_zero() || retry_period >= renew_deadline {
            return Err(TimingError::RetryNotBelowDeadline {
                retry_period,
                renew_deadline,
            });
        }
        Ok(Self {
            lease_duration,
            renew_deadline,
            retry_period,
        })
    }

    /// How long a claim stays valid without renewal; written into the Lease.
    pub fn lease_duration(&self) -> Duration {
        self.lease_duration
    }

    /// How long the leader keeps leading while renewals fail.
    pub fn renew_deadline(&self) -> Duration {
        self.renew_deadline
    }

    /// The interval between acquire/renew attempts.
    pub fn retry_period(&self) -> Duration {
        self.retry_period
    }
}

impl Default for Timings {
    fn default() -> Self {
        Self {
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }
}

/// What the rules need from a Lease object; the driver converts the API object into this.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseView {
    /// `metadata.resourceVersion`: changes on every write, so it tells whether the holder renewed.
    pub resource_version: String,
    /// `spec.holderIdentity`; `None` when absent or empty (a released Lease).
    pub holder: Option<String>,
    /// `spec.leaseDurationSeconds` as the holder wrote it; `None` when absent or not positive.
    pub lease_duration: Option<Duration>,
    /// `spec.leaseTransitions`: how many times leadership changed hands.
    pub transitions: i32,
}

/// What the driver should do after an observation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// No Lease exists: create one naming us (a concurrent create fails with a conflict).
    Create,
    /// Write the Lease naming us, guarded by `resource_version`.
    Claim {
        resource_version: String,
        /// `true` when this starts a new term (the Lease was free, released or expired): set
        /// `acquireTime` and write `transitions`. `false` for a renewal of our own term.
        acquire: bool,
        /// The `leaseTransitions` value to write.
        transitions: i32,
    },
    /// Another candidate holds a live Lease; try again later.
    Wait {
        holder: String,
        /// How long until its claim expires if it does not renew.
        expires_in: Duration,
    },
}

/// The last Lease seen and when its current version was first seen.
#[derive(Debug, Clone)]
struct Observation {
    lease: Option<LeaseView>,
    changed_at: Instant,
}

/// One candidate's view of the election.
#[derive(Debug, Clone)]
pub struct Elector {
    identity: String,
    timings: Timings,
    observed: Option<Observation>,
    /// When the last successful write naming us was sent; `None` when we do not lead.
    claimed_at: Option<Instant>,
}

impl Elector {
    /// A candidate named `identity` (unique among the candidates: the pod name).
    pub fn new(identity: impl Into<String>, timings: Timings) -> Self {
        Self {
            identity: identity.into(),
            timings,
            observed: None,
            claimed_at: None,
        }
    }

    /// This candidate's identity, as written into `holderIdentity`.
    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// The timings this candidate uses.
    pub fn timings(&self) -> Timings {
        self.timings
    }

    /// Records the Lease as read from the API server at `now` (`None`: it does not exist).
    pub fn observe(&mut self, now: Instant, lease: Option<LeaseView>) {
        let unchanged = self.observed.as_ref().is_some_and(|seen| {
            seen.lease.as_ref().map(|l| &l.resource_version)
                == lease.as_ref().map(|l| &l.resource_version)
        });
        // Leadership is only ours while the Lease names us; a Lease that names someone else,
        // nobody, or was deleted ends our term at once, whatever the deadline says.
        let names_us = lease
            .as_ref()
            .and_then(|l| l.holder.as_deref())
            .is_some_and(|holder| holder == self.identity);
        if !names_us {
            self.claimed_at = None;
        }
        let changed_at = match &self.observed {
            Some(seen) if unchanged => seen.changed_at,
            _ => now,
        };
        self.observed = Some(Observation { lease, changed_at });
    }

    /// What to do, given the last observation, at `now`.
    pub fn decide(&self, now: Instant) -> Action {
        let Some(lease) = self.observed.as_ref().and_then(|seen| seen.lease.as_ref()) else {
            return Action::Create;
        };
        let next_term = Action::Claim {
            resource_version: lease.resource_version.clone(),
            acquire: true,
            transitions: lease.transitions.saturating_add(1),
        };
        match lease.holder.as_deref() {
            None => next_term,
            Some(holder) if holder == self.identity => Action::Claim {
                resource_version: lease.resource_version.clone(),
                acquire: false,
                transitions: lease.transitions,
            },
            Some(holder) => {
                let changed_at = self.observed.as_ref().map_or(now, |seen| seen.changed_at);
                let valid_for = lease.lease_duration.unwrap_or(self.timings.lease_duration);
                let expires = changed_at + valid_for;
                if now >= expires {
                    next_term
                } else {
                    Action::Wait {
                        holder: holder.to_owned(),
                        expires_in: expires - now,
                    }
                }
            }
        }
    }

    /// A write naming us that was sent at `sent_at` succeeded.
    pub fn claimed(&mut self, sent_at: Instant) {
        self.claimed_at = Some(sent_at);
    }

    /// When our leadership ends unless a renewal succeeds first; `None` when we do not lead.
    pub fn deadline(&self) -> Option<Instant> {
        self.claimed_at
            .map(|sent| sent + self.timings.renew_deadline)
    }

    /// Whether we lead at `now`: a write naming us succeeded less than the renew deadline ago.
    pub fn is_leader(&self, now: Instant) -> bool {
        self.deadline().is_some_and(|deadline| now < deadline)
    }

    /// The `resourceVersion` to release the Lease with when shutting down, if we hold it: only
    /// a Lease that still names us is ours to clear.
    pub fn release(&self) -> Option<String> {
        self.observed
            .as_ref()
            .and_then(|seen| seen.lease.as_ref())
            .filter(|lease| lease.holder.as_deref() == Some(self.identity.as_str()))
            .map(|lease| lease.resource_version.clone())
    }

    /// We released the Lease (or gave up trying): we no longer lead.
    pub fn released(&mut self) {
        self.claimed_at = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    fn lease(rv: &str, holder: Option<&str>, transitions: i32) -> LeaseView {
        LeaseView {
            resource_version: rv.to_owned(),
            holder: holder.map(str::to_owned),
            lease_duration: Some(15 * SECOND),
            transitions,
        }
    }

    fn elector(identity: &str) -> Elector {
        Elector::new(identity, Timings::default())
    }

    #[test]
    fn timings_default_to_kubernetes_components() {
        let timings = Timings::default();
        assert_eq!(
            Timings::new(15 * SECOND, 10 * SECOND, 2 * SECOND),
            Ok(timings)
        );
    }

    #[test]
    fn renew_deadline_at_or_above_lease_duration_is_refused() {
        assert_eq!(
            Timings::new(10 * SECOND, 10 * SECOND, 2 * SECOND),
            Err(TimingError::DeadlineNotBelowDuration {
                renew_deadline: 10 * SECOND,
                lease_duration: 10 * SECOND,
            })
        );
    }

    #[test]
    fn retry_period_zero_or_at_deadline_is_refused() {
        for retry in [Duration::ZERO, 10 * SECOND] {
            assert_eq!(
                Timings::new(15 * SECOND, 10 * SECOND, retry),
                Err(TimingError::RetryNotBelowDeadline {
                    retry_period: retry,
                    renew_deadline: 10 * SECOND,
                })
            );
        }
    }

    #[test]
    fn missing_lease_is_created() {
        let mut me = elector("a");
        let now = Instant::now();
        assert_eq!(me.decide(now), Action::Create);
        me.observe(now, None);
        assert_eq!(me.decide(now), Action::Create);
        assert!(!me.is_leader(now));
    }

    #[test]
    fn released_lease_is_claimed_at_once_as_a_new_term() {
        let mut me = elector("a");
        let now = Instant::now();
        me.observe(now, Some(lease("7", None, 3)));
        assert_eq!(
            me.decide(now),
            Action::Claim {
                resource_version: "7".into(),
                acquire: true,
                transitions: 4
            }
        );
    }

    #[test]
    fn live_lease_of_another_holder_is_waited_for() {
        let mut me = elector("a");
        let start = Instant::now();
        me.observe(start, Some(lease("7", Some("b"), 1)));
        assert_eq!(
            me.decide(start + 5 * SECOND),
            Action::Wait {
                holder: "b".into(),
                expires_in: 10 * SECOND
            }
        );
    }

    #[test]
    fn lease_unchanged_for_its_duration_is_taken_over() {
        let mut me = elector("a");
        let start = Instant::now();
        me.observe(start, Some(lease("7", Some("b"), 1)));
        // Re-reading the same version does not restart the clock.
        me.observe(start + 14 * SECOND, Some(lease("7", Some("b"), 1)));
        assert!(matches!(
            me.decide(start + 14 * SECOND),
            Action::Wait { .. }
        ));
        me.observe(start + 15 * SECOND, Some(lease("7", Some("b"), 1)));
        assert_eq!(
            me.decide(start + 15 * SECOND),
            Action::Claim {
                resource_version: "7".into(),
                acquire: true,
                transitions: 2
            }
        );
    }

    #[test]
    fn renewal_by_the_holder_restarts_the_expiry_clock() {
        let mut me = elector("a");
        let start = Instant::now();
        me.observe(start, Some(lease("7", Some("b"), 1)));
        me.observe(start + 10 * SECOND, Some(lease("8", Some("b"), 1)));
        assert_eq!(
            me.decide(start + 20 * SECOND),
            Action::Wait {
                holder: "b".into(),
                expires_in: 5 * SECOND
            }
        );
    }

    #[test]
    fn expiry_uses_the_duration_the_holder_wrote() {
        let mut me = elector("a");
        let start = Instant::now();
        let mut short = lease("7", Some("b"), 0);
        short.lease_duration = Some(3 * SECOND);
        me.observe(start, Some(short));
        assert!(matches!(
            me.decide(start + 3 * SECOND),
            Action::Claim { acquire: true, .. }
        ));
    }

    #[test]
    fn lease_without_duration_uses_ours() {
        let mut me = elector("a");
        let start = Instant::now();
        let mut unknown = lease("7", Some("b"), 0);
        unknown.lease_duration = None;
        me.observe(start, Some(unknown));
        assert!(matches!(
            me.decide(start + 14 * SECOND),
            Action::Wait { .. }
        ));
        assert!(matches!(
            me.decide(start + 15 * SECOND),
            Action::Claim { .. }
        ));
    }

    #[test]
    fn own_lease_is_renewed_without_a_new_term() {
        let mut me = elector("a");
        let now = Instant::now();
        me.observe(now, Some(lease("9", Some("a"), 2)));
        assert_eq!(
            me.decide(now),
            Action::Claim {
                resource_version: "9".into(),
                acquire: false,
                transitions: 2
            }
        );
    }

    #[test]
    fn leads_only_after_a_successful_write() {
        let mut me = elector("a");
        let now = Instant::now();
        me.observe(now, None);
        assert!(!me.is_leader(now));
        me.claimed(now);
        assert!(me.is_leader(now));
    }

    #[test]
    fn leadership_ends_at_the_renew_deadline_counted_from_the_send() {
        let mut me = elector("a");
        let sent = Instant::now();
        me.observe(sent, Some(lease("9", Some("a"), 0)));
        me.claimed(sent);
        // Renewals fail from here on: nothing new is claimed.
        assert_eq!(me.deadline(), Some(sent + 10 * SECOND));
        assert!(me.is_leader(sent + 9 * SECOND));
        assert!(!me.is_leader(sent + 10 * SECOND));
    }

    #[test]
    fn leader_that_keeps_renewing_keeps_leading() {
        let mut me = elector("a");
        let start = Instant::now();
        for tick in 0..20u32 {
            let now = start + tick * 2 * SECOND;
            me.observe(now, Some(lease(&tick.to_string(), Some("a"), 0)));
            assert!(matches!(
                me.decide(now),
                Action::Claim { acquire: false, .. }
            ));
            me.claimed(now);
            assert!(me.is_leader(now + SECOND));
        }
    }

    #[test]
    fn seeing_another_holder_ends_leadership_at_once() {
        let mut me = elector("a");
        let now = Instant::now();
        me.observe(now, Some(lease("9", Some("a"), 0)));
        me.claimed(now);
        me.observe(now + SECOND, Some(lease("10", Some("b"), 1)));
        assert!(!me.is_leader(now + SECOND));
        assert!(matches!(me.decide(now + SECOND), Action::Wait { .. }));
    }

    #[test]
    fn deleted_lease_ends_leadership_and_is_recreated() {
        let mut me = elector("a");
        let now = Instant::now();
        me.observe(now, Some(lease("9", Some("a"), 0)));
        me.claimed(now);
        me.observe(now + SECOND, None);
        assert!(!me.is_leader(now + SECOND));
        assert_eq!(me.decide(now + SECOND), Action::Create);
    }

    #[test]
    fn release_is_offered_only_for_a_lease_naming_us() {
        let mut me = elector("a");
        let now = Instant::now();
        assert_eq!(me.release(), None);
        me.observe(now, Some(lease("9", Some("b"), 0)));
        assert_eq!(me.release(), None);
        me.observe(now, Some(lease("10", Some("a"), 1)));
        me.claimed(now);
        assert_eq!(me.release(), Some("10".into()));
        me.released();
        assert!(!me.is_leader(now));
    }

    #[test]
    fn transitions_saturate_instead_of_overflowing() {
        let mut me = elector("a");
        let now = Instant::now();
        me.observe(now, Some(lease("1", None, i32::MAX)));
        assert!(matches!(
            me.decide(now),
            Action::Claim {
                transitions: i32::MAX,
                ..
            }
        ));
    }

    /// The safety argument of the module docs, checked on a timeline: a leader whose renewals
    /// start failing stops leading before a standby that watched it may take over.
    #[test]
    fn old_leader_stops_before_standby_may_take_over() {
        let timings = Timings::default();
        let mut leader = Elector::new("a", timings);
        let mut standby = Elector::new("b", timings);
        let start = Instant::now();
        leader.observe(start, None);
        leader.claimed(start);
        // The write committed a little later; the standby sees it later still.
        let seen = start + SECOND / 2;
        standby.observe(seen, Some(lease("1", Some("a"), 0)));
        let mut now = seen;
        while !matches!(standby.decide(now), Action::Claim { .. }) {
            now += Duration::from_millis(100);
            standby.observe(now, Some(lease("1", Some("a"), 0)));
        }
        assert!(!leader.is_leader(now), "overlap at {:?}", now - start);
        assert!(now - start >= timings.lease_duration());
    }

    /// A model API server: one Lease whose every write bumps the version and is refused when
    /// the writer's version is stale, as the real one does.
    #[derive(Debug, Default)]
    struct Store {
        version: u64,
        lease: Option<LeaseView>,
    }

    impl Store {
        fn write(&mut self, action: &Action, holder: &str) -> bool {
            let transitions = match (action, &self.lease) {
                (Action::Create, None) => 0,
                (
                    Action::Claim {
                        resource_version,
                        transitions,
                        ..
                    },
                    Some(current),
                ) if *resource_version == current.resource_version => *transitions,
                _ => return false,
            };
            self.version += 1;
            self.lease = Some(LeaseView {
                resource_version: self.version.to_string(),
                holder: Some(holder.to_owned()),
                lease_duration: Some(15 * SECOND),
                transitions,
            });
            true
        }
    }

    /// One thing that happens in the model cluster.
    #[derive(Debug, Clone)]
    enum Step {
        /// Time passes (a retry period, a GC pause, a partition).
        Wait(Duration),
        /// Candidate reads, decides and, if told to, writes. `lost_reply`: the write landed but
        /// its answer never arrived.
        Round { candidate: usize, lost_reply: bool },
    }

    fn step() -> impl proptest::strategy::Strategy<Value = Step> {
        use proptest::prelude::*;
        prop_oneof![
            (0u64..20_000).prop_map(|ms| Step::Wait(Duration::from_millis(ms))),
            (0usize..3, proptest::bool::weighted(0.1)).prop_map(|(candidate, lost_reply)| {
                Step::Round {
                    candidate,
                    lost_reply,
                }
            }),
        ]
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]

        /// Under any interleaving of rounds, failed reads, lost replies and pauses, no two
        /// candidates ever believe they lead at the same instant.
        #[test]
        fn never_two_leaders(steps in proptest::collection::vec(step(), 1..200)) {
            let names = ["a", "b", "c"];
            let mut electors: Vec<Elector> = names.iter().map(|n| elector(n)).collect();
            let mut store = Store::default();
            let mut now = Instant::now();
            for step in steps {
                match step {
                    Step::Wait(gap) => now += gap,
                    Step::Round { candidate, lost_reply } => {
                        let me = &mut electors[candidate];
                        me.observe(now, store.lease.clone());
                        let action = me.decide(now);
                        if !matches!(action, Action::Wait { .. })
                            && store.write(&action, names[candidate])
                            && !lost_reply
                        {
                            me.claimed(now);
                        }
                    }
                }
                let leaders = electors.iter().filter(|e| e.is_leader(now)).count();
                proptest::prop_assert!(leaders <= 1, "{leaders} leaders at once");
            }
        }
    }
}
