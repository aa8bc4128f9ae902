//! What the lab benchmarks share: the lab they start, the binaries they run, how they read a
//! process's memory and how they summarise samples.
//!
//! `#[path = "measure/mod.rs"] mod measure;` in a benchmark; items one does not use may stay unused.
#![allow(dead_code)]

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use ferrolb_lab::lab::{Lab, LabOptions};
pub use ferrolb_lab::probe::percentile;
use ferrolb_lab::topology::TopologyOptions;

/// A fresh default lab (3 nodes, every router) with this package's backend and reaper; the caller
/// removes it with [`Lab::destroy`] (the reaper does on interrupt).
pub async fn start_lab() -> anyhow::Result<Lab> {
    Ok(Lab::start(LabOptions {
        topology: TopologyOptions {
            backend: Some(env!("CARGO_BIN_EXE_lab-backend").into()),
            ..TopologyOptions::default()
        },
        reaper: Some(env!("CARGO_BIN_EXE_lab").into()),
        ..LabOptions::default()
    })
    .await?)
}

/// `target/<profile>/deps/<bench>` -> `target/<profile>/<binary>`: the build next to the benchmark.
pub fn binary_next_to_bench(binary: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    exe.parent()
        .and_then(|deps| deps.parent())
        .map(|dir| dir.join(binary))
        .context("target directory of the benchmark")
}

/// The benchmark's `--name value` arguments in order (cargo's own `--bench` left out).
pub fn named_args() -> anyhow::Result<Vec<(String, String)>> {
    let mut pairs = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(name) = args.next() {
        // cargo bench passes --bench to harness=false targets.
        if name == "--bench" {
            continue;
        }
        let value = args
            .next()
            .with_context(|| format!("{name} needs a value"))?;
        pairs.push((name, value));
    }
    Ok(pairs)
}

/// (VmRSS, VmHWM) of process `pid` in KiB, from `/proc/<pid>/status`.
pub fn memory(pid: u32) -> anyhow::Result<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| -> anyhow::Result<u64> {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .context(format!("{name} in /proc/{pid}/status"))?
            .parse()
            .context(name.to_owned())
    };
    Ok((field("VmRSS:")?, field("VmHWM:")?))
}

/// Prints one line: count, min, p50, p99 and max of `samples` in milliseconds.
pub fn report(what: &str, samples: &[Duration]) {
    let mut sorted = samples.to_vec();
    sorted.sort();
    let Some((min, max)) = sorted.first().zip(sorted.last()) else {
        println!("{what}: no samples");
        return;
    };
    let ms = |d: Duration| format!("{:.1} ms", d.as_secs_f64() * 1000.0);
    println!(
        "{what} | n={} | min {} | p50 {} | p99 {} | max {}",
        sorted.len(),
        ms(*min),
        ms(percentile(&sorted, 50)),
        ms(percentile(&sorted, 99)),
        ms(*max),
    );
}
