//! The lab control plane's credentials: a throwaway CA, the API server's serving certificate, the
//! service-account signing key and a static admin bearer token.
//!
//! Everything is generated fresh for every lab (nothing secret is committed or reused) and written with
//! owner-only permissions into the lab's run directory. The serving certificate names every address a
//! client uses to reach the API server: the management address inside the lab, loopback for the
//! harness's forwarder, and the in-cluster service names.

use std::fs::{self, OpenOptions};
use std::io::{Read, Write};
use std::net::IpAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};

/// A credential could not be generated or written.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// rcgen refused the parameters or failed to sign.
    #[error("generating the {what}: {source}")]
    Generate {
        /// Which credential, e.g. "CA certificate".
        what: &'static str,
        /// The rcgen error.
        #[source]
        source: rcgen::Error,
    },
    /// The kernel's random source could not be read.
    #[error("reading /dev/urandom for the admin token: {0}")]
    Random(#[source] std::io::Error),
    /// A credential file could not be written.
    #[error("writing {}: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// The names the API server's serving certificate is valid for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServingNames {
    /// IP subject alternative names (management address, loopback, the `kubernetes` ClusterIP).
    pub ips: Vec<IpAddr>,
    /// DNS subject alternative names.
    pub dns: Vec<String>,
}

impl ServingNames {
    /// The names every lab API server carries: `advertise` (the management address), 127.0.0.1 and ::1
    /// (the harness forwarder and probes inside the control-plane namespace), `service_ip` (the first
    /// ClusterIP, which the API server gives the `kubernetes` Service), and the in-cluster DNS names.
    pub fn for_api_server(advertise: IpAddr, service_ip: IpAddr) -> Self {
        let mut ips = vec![
            advertise,
            IpAddr::from([127, 0, 0, 1]),
            IpAddr::from(std::net::Ipv6Addr::LOCALHOST),
            service_ip,
        ];
        ips.dedup();
        Self {
            ips,
            dns: [
                "localhost",
                "kubernetes",
                "kubernetes.default",
                "kubernetes.default.svc",
                "kubernetes.default.svc.cluster.local",
            ]
            .map(String::from)
            .to_vec(),
        }
    }
}

/// Freshly generated credentials, in PEM.
#[derive(Debug)]
pub struct LabPki {
    /// The CA certificate clients trust.
    pub ca_cert_pem: String,
    /// The API server's serving certificate, signed by the CA.
    pub serving_cert_pem: String,
    /// The serving certificate's private key.
    pub serving_key_pem: String,
    /// The private key that signs service-account tokens (PKCS#8).
    pub service_account_key_pem: String,
    /// Its public half, which the API server uses to verify tokens.
    pub service_account_public_pem: String,
    /// The bearer token of the lab administrator (group `system:masters`).
    pub admin_token: String,
}

/// Where [`LabPki::write_to`] put each credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PkiFiles {
    /// `ca.crt`
    pub ca_cert: PathBuf,
    /// `apiserver.crt`
    pub serving_cert: PathBuf,
    /// `apiserver.key`
    pub serving_key: PathBuf,
    /// `service-account.key`
    pub service_account_key: PathBuf,
    /// `service-account.pub`
    pub service_account_public: PathBuf,
    /// `tokens.csv`: the API server's static token file.
    pub token_file: PathBuf,
    /// `admin.token`: the admin bearer token alone, for kubeconfigs (`tokenFile`) and curl.
    pub admin_token: PathBuf,
}

impl PkiFiles {
    /// The file names [`LabPki::write_to`] uses in `dir`.
    pub fn in_dir(dir: &Path) -> Self {
        Self {
            ca_cert: dir.join("ca.crt"),
            serving_cert: dir.join("apiserver.crt"),
            serving_key: dir.join("apiserver.key"),
            service_account_key: dir.join("service-account.key"),
            service_account_public: dir.join("service-account.pub"),
            token_file: dir.join("tokens.csv"),
            admin_token: dir.join("admin.token"),
        }
    }
}

/// The user name of the lab administrator in the static token file.
pub const ADMIN_USER: &str = "ferrolb-lab-admin";

impl LabPki {
    /// Generates a CA, a serving certificate for `names`, a service-account key pair and an admin token.
    pub fn generate(names: &ServingNames) -> Result<Self, PkiError> {
        let generate = |what| move |source| PkiError::Generate { what, source };

        let ca_key = KeyPair::generate().map_err(generate("CA key"))?;
        let mut ca_params =
            CertificateParams::new(Vec::<String>::new()).map_err(generate("CA certificate"))?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "ferrolb lab CA");
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_cert = ca_params
            .self_signed(&ca_key)
            .map_err(generate("CA certificate"))?;
        let issuer = Issuer::new(ca_params, ca_key);

        let serving_key = KeyPair::generate().map_err(generate("serving key"))?;
        let mut serving_params =
            CertificateParams::new(names.dns.clone()).map_err(generate("serving certificate"))?;
        serving_params
            .subject_alt_names
            .extend(names.ips.iter().copied().map(SanType::IpAddress));
        serving_params
            .distinguished_name
            .push(DnType::CommonName, "kube-apiserver");
        serving_params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        serving_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        serving_params.use_authority_key_identifier_extension = true;
        let serving_cert = serving_params
            .signed_by(&serving_key, &issuer)
            .map_err(generate("serving certificate"))?;

        let service_account_key = KeyPair::generate().map_err(generate("service-account key"))?;

        Ok(Self {
            ca_cert_pem: ca_cert.pem(),
            serving_cert_pem: serving_cert.pem(),
            serving_key_pem: serving_key.serialize_pem(),
            service_account_key_pem: service_account_key.serialize_pem(),
            service_account_public_pem: service_account_key.public_key_pem(),
            admin_token: random_token()?,
        })
    }

    /// Writes every credential into `dir` (which must exist); keys and tokens are readable by the owner
    /// only.
    pub fn write_to(&self, dir: &Path) -> Result<PkiFiles, PkiError> {
        let files = PkiFiles::in_dir(dir);
        write_file(&files.ca_cert, &self.ca_cert_pem, 0o644)?;
        write_file(&files.serving_cert, &self.serving_cert_pem, 0o644)?;
        write_file(&files.serving_key, &self.serving_key_pem, 0o600)?;
        write_file(
            &files.service_account_key,
            &self.service_account_key_pem,
            0o600,
        )?;
        write_file(
            &files.service_account_public,
            &self.service_account_public_pem,
            0o644,
        )?;
        // Static token file format: token,user,uid,"group1,group2".
        write_file(
            &files.token_file,
            &format!(
                "{},{ADMIN_USER},{ADMIN_USER},\"system:masters\"\n",
                self.admin_token
            ),
            0o600,
        )?;
        write_file(&files.admin_token, &self.admin_token, 0o600)?;
        Ok(files)
    }
}

/// 32 random bytes from the kernel, hex-encoded: unguessable, and free of characters that would need
/// quoting in the token CSV or an HTTP header.
fn random_token() -> Result<String, PkiError> {
    let mut bytes = [0_u8; 32];
    fs::File::open("/dev/urandom")
        .and_then(|mut urandom| urandom.read_exact(&mut bytes))
        .map_err(PkiError::Random)?;
    Ok(bytes.iter().map(|byte| format!("{byte:02x}")).collect())
}

/// Creates or truncates `path` with `mode` and writes `contents`.
fn write_file(path: &Path, contents: &str, mode: u32) -> Result<(), PkiError> {
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)
        .and_then(|mut file| file.write_all(contents.as_bytes()))
        .map_err(|source| PkiError::Write {
            path: path.to_owned(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn names() -> ServingNames {
        ServingNames::for_api_server(
            IpAddr::from([198, 51, 100, 1]),
            IpAddr::from([198, 18, 0, 1]),
        )
    }

    #[test]
    fn serving_names_cover_management_loopback_and_service_addresses() {
        let names = names();
        for ip in ["198.51.100.1", "127.0.0.1", "::1", "198.18.0.1"] {
            let ip: IpAddr = ip.parse().expect("literal");
            assert!(names.ips.contains(&ip), "{ip} missing");
        }
        assert!(names.dns.iter().any(|name| name == "kubernetes.default"));
        assert!(names.dns.iter().any(|name| name == "localhost"));
    }

    #[test]
    fn every_lab_gets_distinct_credentials() {
        let first = LabPki::generate(&names()).expect("generate");
        let second = LabPki::generate(&names()).expect("generate");
        assert_ne!(first.admin_token, second.admin_token);
        assert_ne!(first.ca_cert_pem, second.ca_cert_pem);
        assert_eq!(first.admin_token.len(), 64);
        assert!(first.admin_token.chars().all(|c| c.is_ascii_hexdigit()));
        assert!(
            first
                .serving_cert_pem
                .starts_with("-----BEGIN CERTIFICATE-----")
        );
        assert!(first.service_account_key_pem.contains("PRIVATE KEY"));
        assert!(first.service_account_public_pem.contains("PUBLIC KEY"));
    }

    #[test]
    fn keys_and_tokens_are_owner_only_and_token_file_puts_admin_in_system_masters() {
        let dir = std::env::temp_dir().join(format!("ferrolb-pki-test-{}", std::process::id()));
        fs::create_dir_all(&dir).expect("temp dir");
        let pki = LabPki::generate(&names()).expect("generate");
        let files = pki.write_to(&dir).expect("write");
        let mode = |path: &Path| fs::metadata(path).expect("written").permissions().mode() & 0o777;
        assert_eq!(mode(&files.serving_key), 0o600);
        assert_eq!(mode(&files.service_account_key), 0o600);
        assert_eq!(mode(&files.token_file), 0o600);
        assert_eq!(mode(&files.ca_cert), 0o644);
        let tokens = fs::read_to_string(&files.token_file).expect("read");
        assert_eq!(
            tokens,
            format!(
                "{},{ADMIN_USER},{ADMIN_USER},\"system:masters\"\n",
                pki.admin_token
            )
        );
        fs::remove_dir_all(&dir).expect("cleanup");
    }
}
