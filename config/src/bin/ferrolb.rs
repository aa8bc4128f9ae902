//! The `ferrolb` command line (SPEC §7).
//!
//! `ferrolb check FILE|DIR…` validates ferrolb manifests offline with the controller's own rules
//! and prints one line per problem, `file:doc kind/name field: message`. It exits 0 on a clean
//! set, 1 when any error was found, 2 when a file cannot be read.
//!
//! `ferrolb import-metallb FILE|DIR… [-o FILE]` converts a MetalLB configuration (CRs or the legacy
//! ConfigMap) to ferrolb objects, written as YAML to stdout or FILE; stderr gets one line per
//! thing that is not carried over as it was, same format. It exits 0 when converted (notes or
//! not), 1 when the result fails `ferrolb check` (the findings are printed; the input has a
//! problem MetalLB would also refuse), 2 when an input cannot be read or parsed.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use ferrolb_config::check::{Source, check};
use ferrolb_config::import_metallb::{self, DEFAULT_SECRET_NAMESPACE, Options};

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
    /// Convert MetalLB objects (IPAddressPool, L2Advertisement, BGPAdvertisement, BGPPeer,
    /// BFDProfile, Community) or MetalLB's legacy ConfigMap to ferrolb objects. Notes on what
    /// is not carried over as it was go to stderr.
    ImportMetallb {
        /// Files or directories (*.yaml, *.yml, read recursively).
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Write the ferrolb objects here instead of stdout.
        #[arg(short, long, env = "FERROLB_IMPORT_OUTPUT")]
        output: Option<PathBuf>,
        /// Namespace of the Secrets made from plain-text BGP passwords (where ferrolb runs).
        #[arg(long, env = "FERROLB_SECRET_NAMESPACE", default_value = DEFAULT_SECRET_NAMESPACE)]
        secret_namespace: String,
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
            let sources = read_sources(&paths)?;
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
        Command::ImportMetallb {
            paths,
            output,
            secret_namespace,
        } => import_metallb(&paths, output, secret_namespace),
    }
}

fn import_metallb(
    paths: &[PathBuf],
    output: Option<PathBuf>,
    secret_namespace: String,
) -> anyhow::Result<ExitCode> {
    let sources = read_sources(paths)?;
    let conversion = import_metallb::convert(&sources, &Options { secret_namespace })?;
    match &output {
        Some(file) => std::fs::write(file, &conversion.yaml)
            .with_context(|| format!("writing {}", file.display()))?,
        None => print!("{}", conversion.yaml),
    }
    for note in conversion.notes.iter().chain(&conversion.findings) {
        eprintln!("{note}");
    }
    eprintln!(
        "converted {} objects from {} files: {} notes, {} ferrolb check findings",
        conversion.objects.len(),
        sources.len(),
        conversion.notes.len(),
        conversion.findings.len()
    );
    Ok(if conversion.has_errors {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// The YAML files of `paths` (see [`collect_yaml_files`]), read.
fn read_sources(paths: &[PathBuf]) -> anyhow::Result<Vec<Source>> {
    let mut files = Vec::new();
    for path in paths {
        collect_yaml_files(path, &mut files)?;
    }
    files
        .iter()
        .map(|file| {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("reading {}", file.display()))?;
            Ok(Source {
                file: file.display().to_string(),
                text,
            })
        })
        .collect()
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
