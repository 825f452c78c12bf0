//! TLS material. On first start armlet makes a CA and a leaf certificate signed by it (SAN
//! 127.0.0.1, ::1, localhost and the bind host; basicConstraints, keyUsage, EKU serverAuth,
//! SKI/AKI) so that strict verifiers (Python ≥3.13's `VERIFY_X509_STRICT`) accept it; later
//! starts reuse them. Users trust the CA through `REQUESTS_CA_BUNDLE` (see `armlet env`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use time::Duration;

use crate::clock::Clock;

/// PEM-encoded certificate chain and key, plus the CA a client should trust.
#[derive(Clone)]
pub struct TlsMaterial {
    /// The leaf followed by its CA.
    pub chain_pem: String,
    pub key_pem: String,
    /// What clients trust: the generated CA, or the user's own certificate chain.
    pub ca_pem: String,
}

fn hosts_for(bind_host: &str) -> Vec<String> {
    let mut hosts = vec!["127.0.0.1".to_owned(), "::1".to_owned(), "localhost".to_owned()];
    let bind = bind_host.trim_matches(|c| c == '[' || c == ']');
    if !bind.is_empty() && bind != "0.0.0.0" && bind != "::" && !hosts.iter().any(|h| h == bind) {
        hosts.push(bind.to_owned());
    }
    hosts
}

fn tls_err(e: impl std::fmt::Display) -> String {
    format!("TLS setup failed: {e}")
}

fn new_ca() -> Result<(CertificateParams, KeyPair), String> {
    let key = KeyPair::generate().map_err(tls_err)?;
    let mut params = CertificateParams::new(Vec::<String>::new()).map_err(tls_err)?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "armlet local CA");
    dn.push(DnType::OrganizationName, "armlet");
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    let now = Clock::wall_now();
    params.not_before = now - Duration::days(1);
    params.not_after = now + Duration::days(3650);
    Ok((params, key))
}

fn new_leaf(hosts: &[String], issuer: &Issuer<'_, KeyPair>) -> Result<(String, String), String> {
    let key = KeyPair::generate().map_err(tls_err)?;
    let mut params = CertificateParams::new(hosts.to_vec()).map_err(tls_err)?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "armlet");
    params.distinguished_name = dn;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    let now = Clock::wall_now();
    params.not_before = now - Duration::days(1);
    params.not_after = now + Duration::days(825);
    let cert = params.signed_by(&key, issuer).map_err(tls_err)?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// Generates everything in memory (for `--in-memory` without a data directory).
pub fn generate(bind_host: &str) -> Result<TlsMaterial, String> {
    let (ca_params, ca_key) = new_ca()?;
    let ca_cert = ca_params.self_signed(&ca_key).map_err(tls_err)?;
    let (leaf_pem, key_pem) = new_leaf(&hosts_for(bind_host), &Issuer::new(ca_params, ca_key))?;
    Ok(TlsMaterial { chain_pem: format!("{leaf_pem}{}", ca_cert.pem()), key_pem, ca_pem: ca_cert.pem() })
}

struct Files {
    ca: PathBuf,
    ca_key: PathBuf,
    cert: PathBuf,
    key: PathBuf,
    hosts: PathBuf,
}

impl Files {
    fn in_dir(dir: &Path) -> Self {
        Self {
            ca: dir.join("ca.pem"),
            ca_key: dir.join("ca-key.pem"),
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
            hosts: dir.join("hosts.txt"),
        }
    }
}

fn read(path: &Path) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

fn write_private(path: &Path, contents: &str) -> Result<(), String> {
    std::fs::write(path, contents).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
    }
    Ok(())
}

/// Loads the CA and leaf kept in `dir`, creating them on first start. The leaf is reissued
/// (from the same CA, so clients keep trusting it) when the bind host changes.
pub fn load_or_create(dir: &Path, bind_host: &str) -> Result<TlsMaterial, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let files = Files::in_dir(dir);
    let hosts = hosts_for(bind_host);
    let hosts_line = hosts.join(",");

    let (issuer, ca_pem) = match (read(&files.ca), read(&files.ca_key)) {
        (Some(ca_pem), Some(ca_key_pem)) => {
            let key = KeyPair::from_pem(&ca_key_pem).map_err(tls_err)?;
            (Issuer::from_ca_cert_pem(&ca_pem, key).map_err(tls_err)?, ca_pem)
        }
        _ => {
            let (params, key) = new_ca()?;
            let cert = params.self_signed(&key).map_err(tls_err)?;
            write_private(&files.ca_key, &key.serialize_pem())?;
            write_private(&files.ca, &cert.pem())?;
            (Issuer::new(params, key), cert.pem())
        }
    };

    if let (Some(chain_pem), Some(key_pem), Some(stored_hosts)) =
        (read(&files.cert), read(&files.key), read(&files.hosts))
        && stored_hosts.trim() == hosts_line
    {
        return Ok(TlsMaterial { chain_pem, key_pem, ca_pem });
    }
    let (leaf_pem, key_pem) = new_leaf(&hosts, &issuer)?;
    let chain_pem = format!("{leaf_pem}{ca_pem}");
    write_private(&files.key, &key_pem)?;
    write_private(&files.cert, &chain_pem)?;
    write_private(&files.hosts, &hosts_line)?;
    Ok(TlsMaterial { chain_pem, key_pem, ca_pem })
}

/// Uses the caller's own certificate chain and key (`--tls-cert/--tls-key`).
pub fn load_user(cert: &Path, key: &Path) -> Result<TlsMaterial, String> {
    let chain_pem = std::fs::read_to_string(cert).map_err(|e| format!("cannot read {}: {e}", cert.display()))?;
    let key_pem = std::fs::read_to_string(key).map_err(|e| format!("cannot read {}: {e}", key.display()))?;
    Ok(TlsMaterial { ca_pem: chain_pem.clone(), chain_pem, key_pem })
}

/// A rustls server configuration (ring provider) for the material.
pub fn server_config(material: &TlsMaterial) -> Result<Arc<rustls::ServerConfig>, String> {
    let certs: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(material.chain_pem.as_bytes()).collect::<Result<_, _>>().map_err(tls_err)?;
    let key = PrivateKeyDer::from_pem_slice(material.key_pem.as_bytes()).map_err(tls_err)?;
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(tls_err)?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(tls_err)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn material_is_reused_and_reissued_for_a_new_host() {
        let dir = tempfile::tempdir().unwrap();
        let first = load_or_create(dir.path(), "127.0.0.1").unwrap();
        let again = load_or_create(dir.path(), "127.0.0.1").unwrap();
        assert_eq!(first.chain_pem, again.chain_pem);
        let other = load_or_create(dir.path(), "10.1.2.3").unwrap();
        assert_ne!(first.chain_pem, other.chain_pem, "leaf reissued for the new bind host");
        assert_eq!(first.ca_pem, other.ca_pem, "same CA");
        server_config(&other).unwrap();
    }
}
