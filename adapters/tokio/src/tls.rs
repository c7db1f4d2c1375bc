//! One rustls client configuration per pool generation, shared by every
//! connection: system roots and/or a CA file, verification on unless the
//! caller explicitly turns it off.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::BuildError;

/// How server certificates are checked.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct TlsOptions {
    /// Trust the operating system's root certificates (default: yes).
    pub system_roots: bool,
    /// Also trust the certificates in this PEM file.
    pub ca_file: Option<PathBuf>,
    /// Verify certificates and host names (default: yes). Turning this off
    /// accepts any certificate: a man in the middle can read every password.
    pub verify: bool,
}

impl Default for TlsOptions {
    fn default() -> Self {
        TlsOptions {
            system_roots: true,
            ca_file: None,
            verify: true,
        }
    }
}

#[cfg(not(any(feature = "ring", feature = "aws-lc-rs")))]
compile_error!(
    "ldapmux needs a TLS crypto provider: enable its `ring` (default) or `aws-lc-rs` feature"
);

/// The crypto provider chosen by the crate's features: ring when its feature
/// is on (the default, and the choice if both are on), otherwise aws-lc-rs.
#[cfg(feature = "ring")]
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The crypto provider chosen by the crate's features: aws-lc-rs (the `ring`
/// feature is off).
#[cfg(all(feature = "aws-lc-rs", not(feature = "ring")))]
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// Builds the shared client configuration.
pub(crate) fn client_config(opts: &TlsOptions) -> Result<Arc<ClientConfig>, BuildError> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| BuildError::Tls(e.to_string()))?;
    if !opts.verify {
        let config = builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerification(provider())))
            .with_no_client_auth();
        return Ok(Arc::new(config));
    }
    let mut roots = RootCertStore::empty();
    if opts.system_roots {
        // Unreadable or unparsable system certificates are skipped, not fatal:
        // ldap3's own default would end with an EMPTY store on any error.
        let found = rustls_native_certs::load_native_certs();
        roots.add_parsable_certificates(found.certs);
    }
    if let Some(path) = &opts.ca_file {
        for cert in read_ca_file(path)? {
            roots.add(cert).map_err(|e| BuildError::CaFile {
                path: path.clone(),
                reason: format!("unusable certificate: {e}"),
            })?;
        }
    }
    Ok(Arc::new(
        builder.with_root_certificates(roots).with_no_client_auth(),
    ))
}

fn read_ca_file(path: &Path) -> Result<Vec<CertificateDer<'static>>, BuildError> {
    let err = |reason: String| BuildError::CaFile {
        path: path.to_owned(),
        reason,
    };
    let pem = std::fs::read(path).map_err(|e| err(e.to_string()))?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| err(format!("not PEM: {e}")))?;
    if certs.is_empty() {
        return Err(err("no certificate in the file".into()));
    }
    Ok(certs)
}

/// Accepts any certificate. Only reachable through
/// `TlsOptions { verify: false, .. }`, which the caller has to spell out.
#[derive(Debug)]
struct NoVerification(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_or_empty_ca_file_is_a_build_error_naming_the_file() {
        let opts = TlsOptions {
            ca_file: Some("/nonexistent/ca.pem".into()),
            ..TlsOptions::default()
        };
        let err = client_config(&opts).unwrap_err().to_string();
        assert!(err.contains("/nonexistent/ca.pem"), "{err}");

        let dir = std::env::temp_dir().join(format!("ldapmux-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "no certificate here\n").unwrap();
        let opts = TlsOptions {
            ca_file: Some(empty.clone()),
            ..TlsOptions::default()
        };
        let err = client_config(&opts).unwrap_err().to_string();
        assert!(err.contains("no certificate"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
