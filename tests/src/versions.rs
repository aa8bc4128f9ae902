//! The pinned control-plane (and Helm) versions and where their cached binaries live.
//!
//! `tests/versions.env` is the single place the versions are written. `tests/build-control-plane.sh`
//! sources it to build the binaries; this module compiles the same file in (`include_str!`), so the
//! harness looks for exactly the binaries the script produced: `<cache>/bin/<name>-<version>`.

use std::path::{Path, PathBuf};

/// The text of `tests/versions.env`, compiled in.
const VERSIONS_ENV: &str = include_str!("../versions.env");

/// A problem with the pinned versions or the binary cache.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VersionsError {
    /// A line of the versions file is neither a comment, blank, nor `KEY=VALUE`.
    #[error("versions file line {line}: expected KEY=VALUE, got {text:?}")]
    MalformedLine {
        /// 1-based line number.
        line: usize,
        /// The offending text.
        text: String,
    },
    /// A version the lab needs is not in the versions file.
    #[error("versions file does not set {key}")]
    Missing {
        /// The key, e.g. `KUBERNETES_VERSION`.
        key: &'static str,
    },
    /// The binary has not been built into the cache yet.
    #[error("{} is not built; run tests/build-control-plane.sh (cache: {})", path.display(), cache.display())]
    NotBuilt {
        /// The expected binary path.
        path: PathBuf,
        /// The cache directory searched.
        cache: PathBuf,
    },
    /// Neither `FERROLB_CACHE` nor `HOME` is set, so there is no cache directory.
    #[error("neither FERROLB_CACHE nor HOME is set: cannot locate the control-plane cache")]
    NoCacheDirectory,
}

/// The control-plane versions the lab runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlPlaneVersions {
    /// The `k8s.io/kubernetes` module version kube-apiserver is built from, e.g. `v1.35.4`.
    pub kubernetes: String,
    /// The `go.etcd.io/etcd/server/v3` module version etcd is built from, e.g. `v3.6.16`.
    pub etcd: String,
}

impl ControlPlaneVersions {
    /// The versions pinned in `tests/versions.env`.
    pub fn pinned() -> Result<Self, VersionsError> {
        Self::parse(VERSIONS_ENV)
    }

    /// Parses the shell-sourceable `KEY=VALUE` format of the versions file.
    pub fn parse(text: &str) -> Result<Self, VersionsError> {
        Ok(Self {
            kubernetes: pinned_value(text, "KUBERNETES_VERSION")?,
            etcd: pinned_value(text, "ETCD_VERSION")?,
        })
    }
}

/// The value of `key` in the shell-sourceable `KEY=VALUE` text of the versions file; every line
/// is checked, so a malformed file is reported whichever key is asked for.
fn pinned_value(text: &str, key: &'static str) -> Result<String, VersionsError> {
    let mut found = None;
    for (index, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((name, value)) = line.split_once('=') else {
            return Err(VersionsError::MalformedLine {
                line: index + 1,
                text: raw.to_owned(),
            });
        };
        if name.trim() == key {
            found = Some(value.trim().trim_matches('"').to_owned());
        }
    }
    found.ok_or(VersionsError::Missing { key })
}

/// Paths of the cached control-plane binaries, checked to exist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlPlaneBinaries {
    /// The kube-apiserver binary.
    pub kube_apiserver: PathBuf,
    /// The etcd binary.
    pub etcd: PathBuf,
}

impl ControlPlaneBinaries {
    /// Locates the pinned binaries in the cache named by the environment (`FERROLB_CACHE`, else
    /// `$HOME/.cache/ferrolb`, as in the build script).
    pub fn locate() -> Result<Self, VersionsError> {
        let cache = cache_from_environment()?;
        Self::locate_in(&cache, &ControlPlaneVersions::pinned()?)
    }

    /// Locates the binaries for `versions` under `cache`.
    pub fn locate_in(cache: &Path, versions: &ControlPlaneVersions) -> Result<Self, VersionsError> {
        Ok(Self {
            kube_apiserver: cached_binary(cache, "kube-apiserver", &versions.kubernetes)?,
            etcd: cached_binary(cache, "etcd", &versions.etcd)?,
        })
    }
}

/// The Helm CLI the chart tests run: `HELM_VERSION` of the versions file, built into the same
/// cache as the control plane.
pub fn locate_helm() -> Result<PathBuf, VersionsError> {
    let cache = cache_from_environment()?;
    cached_binary(&cache, "helm", &pinned_value(VERSIONS_ENV, "HELM_VERSION")?)
}

/// `<cache>/bin/<name>-<version>`, checked to exist.
fn cached_binary(cache: &Path, name: &str, version: &str) -> Result<PathBuf, VersionsError> {
    let path = cache.join("bin").join(format!("{name}-{version}"));
    if path.is_file() {
        Ok(path)
    } else {
        Err(VersionsError::NotBuilt {
            path,
            cache: cache.to_owned(),
        })
    }
}

/// The cache directory the environment names, as the build script finds it.
fn cache_from_environment() -> Result<PathBuf, VersionsError> {
    cache_directory(
        std::env::var_os("FERROLB_CACHE").map(PathBuf::from),
        std::env::var_os("HOME").map(PathBuf::from),
    )
}

/// The cache directory: `FERROLB_CACHE` if set, else `$HOME/.cache/ferrolb`.
fn cache_directory(
    ferrolb_cache: Option<PathBuf>,
    home: Option<PathBuf>,
) -> Result<PathBuf, VersionsError> {
    match (ferrolb_cache, home) {
        (Some(cache), _) => Ok(cache),
        (None, Some(home)) => Ok(home.join(".cache").join("ferrolb")),
        (None, None) => Err(VersionsError::NoCacheDirectory),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pinned_versions_file_parses_and_names_a_kubernetes_k8s_openapi_covers() {
        let versions = ControlPlaneVersions::pinned().expect("versions.env parses");
        let minor: u32 = versions
            .kubernetes
            .strip_prefix("v1.")
            .and_then(|rest| rest.split('.').next())
            .and_then(|minor| minor.parse().ok())
            .expect("KUBERNETES_VERSION is v1.<minor>.<patch>");
        assert!(
            (33..=37).contains(&minor),
            "k8s-openapi 0.29 covers 1.33–1.37"
        );
        assert!(versions.etcd.starts_with("v3.6."), "{}", versions.etcd);
        let helm = pinned_value(VERSIONS_ENV, "HELM_VERSION").expect("HELM_VERSION pinned");
        assert!(helm.starts_with("v4."), "{helm}");
    }

    #[test]
    fn comments_blank_lines_quotes_and_unknown_keys_are_tolerated() {
        let text = "# pinned\n\nKUBERNETES_VERSION=\"v1.35.4\"\nOTHER=x\n  ETCD_VERSION = v3.6.1\n";
        assert_eq!(
            ControlPlaneVersions::parse(text),
            Ok(ControlPlaneVersions {
                kubernetes: "v1.35.4".into(),
                etcd: "v3.6.1".into(),
            })
        );
    }

    #[test]
    fn missing_key_and_malformed_line_are_named() {
        assert_eq!(
            ControlPlaneVersions::parse("KUBERNETES_VERSION=v1.35.4\n"),
            Err(VersionsError::Missing {
                key: "ETCD_VERSION"
            })
        );
        assert_eq!(
            ControlPlaneVersions::parse("# c\nKUBERNETES_VERSION v1\n"),
            Err(VersionsError::MalformedLine {
                line: 2,
                text: "KUBERNETES_VERSION v1".into()
            })
        );
    }

    #[test]
    fn cache_directory_prefers_ferrolb_cache_over_home() {
        assert_eq!(
            cache_directory(Some("/c".into()), Some("/h".into())),
            Ok(PathBuf::from("/c"))
        );
        assert_eq!(
            cache_directory(None, Some("/h".into())),
            Ok(PathBuf::from("/h/.cache/ferrolb"))
        );
        assert_eq!(
            cache_directory(None, None),
            Err(VersionsError::NoCacheDirectory)
        );
    }

    #[test]
    fn unbuilt_binary_is_reported_with_its_path() {
        let versions = ControlPlaneVersions {
            kubernetes: "v1.35.4".into(),
            etcd: "v3.6.16".into(),
        };
        let cache = Path::new("/nonexistent/ferrolb-cache");
        assert_eq!(
            ControlPlaneBinaries::locate_in(cache, &versions),
            Err(VersionsError::NotBuilt {
                path: cache.join("bin/kube-apiserver-v1.35.4"),
                cache: cache.to_owned(),
            })
        );
    }
}
