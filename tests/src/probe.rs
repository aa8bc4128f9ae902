//! A client-side prober for failover measurements: from inside a lab namespace (the L2 client), a
//! new HTTP request to a Service every `period` (10 ms in the benchmarks), each on its own
//! connection and with its own timeout, so a request stuck on a dead owner never delays the next.
//! Each records when it was sent and which node answered, if any (the lab backend answers with its
//! node name).
//!
//! The prober is a thread that enters the namespace with `setns(2)` and runs a current-thread
//! tokio runtime there: every socket it creates belongs to that namespace (as in
//! [`crate::kube_access`]), while the caller stays in its own.
//!
//! [`outage`] and [`takeover`] turn the recorded probes into the figures, as pure functions.

use std::fs::File;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::sched::CloneFlags;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::netns::NetNs;

/// Failures of starting a prober.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("entering network namespace {}: {source}", path.display())]
    EnterNamespace {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("starting the prober thread: {0}")]
    Thread(#[source] std::io::Error),
}

/// One request: when it was sent, when it finished (answered or given up) and the node that
/// answered it (`None`: no answer in time).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    pub sent: Instant,
    pub finished: Instant,
    pub answer: Option<String>,
}

/// A running prober; [`Prober::stop`] ends it and returns every probe.
#[derive(Debug)]
pub struct Prober {
    probes: Arc<Mutex<Vec<Probe>>>,
    stopping: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Prober {
    /// Starts probing `target` from `ns`: a request every `period`, each given up after `timeout`.
    pub fn start(
        ns: &NetNs,
        target: SocketAddr,
        period: Duration,
        timeout: Duration,
    ) -> Result<Prober, ProbeError> {
        let path = PathBuf::from("/var/run/netns").join(ns.name());
        let enter_error = |source| ProbeError::EnterNamespace {
            path: path.clone(),
            source,
        };
        let file = File::open(&path).map_err(enter_error)?;
        let probes = Arc::new(Mutex::new(Vec::new()));
        let stopping = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let thread = {
            let probes = Arc::clone(&probes);
            let stopping = Arc::clone(&stopping);
            std::thread::Builder::new()
                .name("prober".into())
                .spawn(move || {
                    let started = nix::sched::setns(&file, CloneFlags::CLONE_NEWNET)
                        .map_err(std::io::Error::from)
                        .and_then(|()| {
                            tokio::runtime::Builder::new_current_thread()
                                .enable_all()
                                .build()
                        });
                    let runtime = match started {
                        Ok(runtime) => {
                            let _ = ready_tx.send(Ok(()));
                            runtime
                        }
                        Err(error) => {
                            let _ = ready_tx.send(Err(error));
                            return;
                        }
                    };
                    runtime.block_on(probe_loop(target, period, timeout, &probes, &stopping));
                })
                .map_err(ProbeError::Thread)?
        };
        match ready_rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(source)) => return Err(enter_error(source)),
            Err(_) => return Err(enter_error(std::io::Error::other("prober thread exited"))),
        }
        Ok(Prober {
            probes,
            stopping,
            thread: Some(thread),
        })
    }

    /// The probes finished so far, in the order they finished.
    pub fn probes(&self) -> Vec<Probe> {
        self.probes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Stops probing (requests in flight are abandoned) and returns every finished probe,
    /// ordered by send time.
    pub fn stop(mut self) -> Vec<Probe> {
        self.halt();
        let mut probes = self.probes();
        probes.sort_by_key(|probe| probe.sent);
        probes
    }

    fn halt(&mut self) {
        self.stopping.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Prober {
    fn drop(&mut self) {
        self.halt();
    }
}

async fn probe_loop(
    target: SocketAddr,
    period: Duration,
    timeout: Duration,
    probes: &Arc<Mutex<Vec<Probe>>>,
    stopping: &AtomicBool,
) {
    let mut ticks = tokio::time::interval(period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while !stopping.load(Ordering::SeqCst) {
        ticks.tick().await;
        let probes = Arc::clone(probes);
        tokio::spawn(async move {
            let sent = Instant::now();
            let answer = tokio::time::timeout(timeout, request(target))
                .await
                .ok()
                .flatten();
            probes
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(Probe {
                    sent,
                    finished: Instant::now(),
                    answer,
                });
        });
    }
}

/// One HTTP/1.0 GET on a new connection: the response body, trimmed, when the status is 200.
async fn request(target: SocketAddr) -> Option<String> {
    let mut stream = tokio::net::TcpStream::connect(target).await.ok()?;
    stream
        .write_all(b"GET / HTTP/1.0\r\nHost: probe\r\n\r\n")
        .await
        .ok()?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.ok()?;
    let text = String::from_utf8(response).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    let node = body.trim();
    (head.starts_with("HTTP/1.1 200") && !node.is_empty()).then(|| node.to_owned())
}

/// Client-measured outage around a fault at `fault`: the longest time between two consecutive
/// answered probes (by send time), from the last one answered before the fault to the first one
/// that a node other than `old` answered ([`takeover`]). With nothing lost this is the probe
/// period; the fault itself takes a few milliseconds to act, so probes sent just after `fault`
/// may still be answered by `old`, which this measure does not mistake for a quick recovery.
/// `None` when no other node answered.
pub fn outage(probes: &[Probe], fault: Instant, old: &str) -> Option<Duration> {
    let end = fault + takeover(probes, fault, old)?;
    let mut answered: Vec<Instant> = probes
        .iter()
        .filter(|probe| probe.answer.is_some() && probe.sent <= end)
        .map(|probe| probe.sent)
        .collect();
    answered.sort();
    let start = answered.iter().rposition(|sent| *sent < fault).unwrap_or(0);
    answered[start..]
        .windows(2)
        .map(|pair| pair[1] - pair[0])
        .max()
        .or(Some(end.saturating_duration_since(fault)))
}

/// From the fault to the first probe sent at or after it that a node other than `old` answered.
pub fn takeover(probes: &[Probe], fault: Instant, old: &str) -> Option<Duration> {
    probes
        .iter()
        .filter(|probe| {
            probe.sent >= fault && probe.answer.as_deref().is_some_and(|node| node != old)
        })
        .map(|probe| probe.sent - fault)
        .min()
}

/// When the first answer arrived (the earliest finish of an answered probe).
pub fn first_answer(probes: &[Probe]) -> Option<Instant> {
    probes
        .iter()
        .filter(|probe| probe.answer.is_some())
        .map(|probe| probe.finished)
        .min()
}

/// Nearest-rank percentile `p` (0–100) of samples sorted ascending; zero for no samples.
pub fn percentile(sorted: &[Duration], p: usize) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = (p * sorted.len()).div_ceil(100).max(1);
    sorted[rank.min(sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probes(start: Instant, answers: &[(u64, Option<&str>)]) -> Vec<Probe> {
        answers
            .iter()
            .map(|(ms, answer)| Probe {
                sent: start + Duration::from_millis(*ms),
                finished: start + Duration::from_millis(ms + 3),
                answer: answer.map(str::to_owned),
            })
            .collect()
    }

    #[test]
    fn outage_ends_at_the_first_answered_probe_after_the_fault() {
        let start = Instant::now();
        let seen = probes(
            start,
            &[
                (0, Some("node-1")),
                (10, None),
                (20, None),
                (30, Some("node-2")),
                (40, Some("node-2")),
            ],
        );
        let fault = start + Duration::from_millis(5);
        assert_eq!(
            outage(&seen, fault, "node-1"),
            Some(Duration::from_millis(30))
        );
        assert_eq!(
            takeover(&seen, fault, "node-1"),
            Some(Duration::from_millis(25))
        );
        assert_eq!(
            first_answer(&seen[1..]),
            Some(start + Duration::from_millis(33))
        );
    }

    #[test]
    fn old_owner_answering_is_no_outage_but_no_takeover_either() {
        let start = Instant::now();
        let seen = probes(
            start,
            &[
                (0, Some("node-1")),
                (10, Some("node-1")),
                (20, Some("node-1")),
                (30, Some("node-3")),
            ],
        );
        let fault = start + Duration::from_millis(5);
        assert_eq!(
            outage(&seen, fault, "node-1"),
            Some(Duration::from_millis(10))
        );
        assert_eq!(
            takeover(&seen, fault, "node-1"),
            Some(Duration::from_millis(25))
        );
        assert_eq!(takeover(&seen[..3], fault, "node-1"), None);
        assert_eq!(outage(&seen[..3], fault, "node-1"), None);
    }

    #[test]
    fn probes_the_fault_has_not_reached_yet_do_not_shorten_the_outage() {
        let start = Instant::now();
        let mut answers: Vec<(u64, Option<&str>)> = vec![(0, Some("node-1")), (10, Some("node-1"))];
        answers.extend((20..300).step_by(10).map(|ms| (ms, None)));
        answers.push((300, Some("node-2")));
        let seen = probes(start, &answers);
        let fault = start + Duration::from_millis(8);
        assert_eq!(
            outage(&seen, fault, "node-1"),
            Some(Duration::from_millis(290))
        );
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let sorted: Vec<Duration> = (1..=20).map(Duration::from_millis).collect();
        assert_eq!(percentile(&sorted, 50), Duration::from_millis(10));
        assert_eq!(percentile(&sorted, 99), Duration::from_millis(20));
        assert_eq!(percentile(&[], 99), Duration::ZERO);
    }
}
