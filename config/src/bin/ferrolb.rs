//! The `ferrolb` command line (SPEC §7).
//!
//! `ferrolb check FILE|DIR…` validates ferrolb manifests offline with the controller's own rules
//! and prints one line per problem, `file:doc kind/name field: message`. It exits 0 on a clean
//! set, 1 when any error was found, 2 when a file cannot be read.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use ferrolb_config::check::{Source, check};

#[derive(Debug, Parser)]
#[command(name = "ferrolb", version, about = "ferrolb command line tools")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Validate ferrolb YAML manifests (multi-document files; directories are read recursively
    /// for *.yaml and *.yml) with the same per-object and cross-object rules as the controller.
    Check {
        /// Files or directories.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("ferrolb: {err:#}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Check { paths } => {
            let mut files = Vec::new();
            for path in &paths {
                collect_yaml_files(path, &mut files)?;
            }
            let sources = files
                .iter()
                .map(|file| {
                    let text = std::fs::read_to_string(file)
                        .with_context(|| format!("reading {}", file.display()))?;
                    Ok(Source {
                        file: file.display().to_string(),
                        text,
                    })
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            let report = check(&sources);
            for finding in &report.findings {
                println!("{finding}");
            }
            let errors = report.findings.iter().filter(|f| f.is_error()).count();
            eprintln!(
                "checked {} objects in {} files: {errors} errors",
                report.objects,
                sources.len()
            );
            Ok(if report.has_errors() {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            })
        }
    }
}

/// `path` itself when it is a file; the YAML files below it, sorted, when it is a directory.
fn collect_yaml_files(path: &Path, files: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    let metadata =
        std::fs::metadata(path).with_context(|| format!("reading {}", path.display()))?;
    if !metadata.is_dir() {
        files.push(path.to_owned());
        return Ok(());
    }
    let mut entries = std::fs::read_dir(path)
        .with_context(|| format!("listing {}", path.display()))?
        .map(|entry| entry.map(|e| e.path()))
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("listing {}", path.display()))?;
    entries.sort();
    for entry in entries {
        let is_yaml = entry
            .extension()
            .is_some_and(|ext| ext == "yaml" || ext == "yml");
        if entry.is_dir() || is_yaml {
            collect_yaml_files(&entry, files)?;
        }
    }
    Ok(())
}
