//! Writes the ferrolb CRDs to `deploy/crds/<plural>.ferrolb.io.yaml`, one file per kind.
//!
//! Usage: `cargo run -p ferrolb-config --bin crdgen [OUT_DIR]` (default: `deploy/crds` of the
//! workspace). `config/tests/crds_up_to_date.rs` fails when the committed files differ.

use std::path::PathBuf;

use anyhow::Context;

fn main() -> anyhow::Result<()> {
    let out_dir = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy/crds"));
    std::fs::create_dir_all(&out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    for manifest in ferrolb_config::crd::crd_manifests()? {
        let path = out_dir.join(&manifest.file_name);
        std::fs::write(&path, &manifest.yaml)
            .with_context(|| format!("writing {}", path.display()))?;
        println!("wrote {}", path.display());
    }
    Ok(())
}
