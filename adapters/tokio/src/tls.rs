//! One rustls client configuration per pool generation, shared by every
//! connection: system roots and/or a CA file, verification on unless the
//! caller explicitly turns it off. A connection bound with SASL EXTERNAL
//! over TLS gets a copy of it that also presents a [`ClientCert`].

use std::fmt;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{ResolvesClientCert, Resumption};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use zeroize::Zeroizing;

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

/// A TLS client certificate chain and its private key, for SASL EXTERNAL
/// ([`Credential::sasl_external_tls`](crate::Credential::sasl_external_tls)):
/// the server maps the certificate's subject to an identity.
///
/// Loaded once, when it is made: a missing, unreadable or malformed file,
/// or a key that does not belong to the certificate, is a
/// [`BuildError::ClientCert`] naming the file. The private key never shows
/// in `Debug`, logs or errors. Two `ClientCert`s are the same identity (and
/// share pooled connections) only if their certificate chains are equal.
pub struct ClientCert {
    /// Immutable once made; the signing key inside is a `dyn` trait object
    /// rustls does not mark unwind-safe, and a panic cannot leave it half
    /// changed: asserted, so that a `Credential` (and the pool holding one)
    /// stays `UnwindSafe` as it was before client certificates.
    key: AssertUnwindSafe<Arc<CertifiedKey>>,
    /// The certificate and key files, if read from files.
    files: Option<(PathBuf, PathBuf)>,
}

/// Where PEM given in memory is said to come from, in errors.
const IN_MEMORY: &str = "(PEM given in memory)";

impl ClientCert {
    /// Reads the certificate chain (PEM, end-entity first) from `cert_file`
    /// and its private key (PEM: PKCS#8, PKCS#1 or SEC1) from `key_file`.
    pub fn from_pem_files(
        cert_file: impl AsRef<Path>,
        key_file: impl AsRef<Path>,
    ) -> Result<ClientCert, BuildError> {
        let (cert_file, key_file) = (cert_file.as_ref(), key_file.as_ref());
        let cert_pem = std::fs::read(cert_file)
            .map_err(|e| client_cert_error("tls_cert_file", cert_file, e.to_string()))?;
        let key_pem = Zeroizing::new(
            std::fs::read(key_file)
                .map_err(|e| client_cert_error("tls_key_file", key_file, e.to_string()))?,
        );
        let mut cert = ClientCert::load(&cert_pem, &key_pem, cert_file, key_file)?;
        cert.files = Some((cert_file.to_owned(), key_file.to_owned()));
        Ok(cert)
    }

    /// The same from PEM text in memory.
    pub fn from_pem(cert_pem: &[u8], key_pem: &[u8]) -> Result<ClientCert, BuildError> {
        ClientCert::load(
            cert_pem,
            key_pem,
            Path::new(IN_MEMORY),
            Path::new(IN_MEMORY),
        )
    }

    fn load(
        cert_pem: &[u8],
        key_pem: &[u8],
        cert_path: &Path,
        key_path: &Path,
    ) -> Result<ClientCert, BuildError> {
        let cert_err = |reason: String| client_cert_error("tls_cert_file", cert_path, reason);
        let key_err = |reason: &str| client_cert_error("tls_key_file", key_path, reason.into());
        let chain = CertificateDer::pem_slice_iter(cert_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| cert_err(format!("not PEM: {e}")))?;
        if chain.is_empty() {
            return Err(cert_err("no certificate in the file".into()));
        }
        // The PEM parser's own messages may quote a line of the file: the
        // key file's errors say only what kind of problem it is.
        let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| {
            key_err(match e {
                rustls::pki_types::pem::Error::NoItemsFound => "no private key in the file",
                _ => "not a PEM private key",
            })
        })?;
        let key = CertifiedKey::from_der(chain, key, &provider()).map_err(|e| match e {
            rustls::Error::InconsistentKeys(_) => {
                key_err("this key does not belong to the certificate")
            }
            _ => key_err("a private key the TLS library cannot use"),
        })?;
        Ok(ClientCert {
            key: AssertUnwindSafe(Arc::new(key)),
            files: None,
        })
    }

    /// The certificate file, if it was read from one.
    pub fn cert_file(&self) -> Option<&Path> {
        self.files.as_ref().map(|(cert, _)| cert.as_path())
    }

    /// The key file, if it was read from one (its name, never its content).
    pub fn key_file(&self) -> Option<&Path> {
        self.files.as_ref().map(|(_, key)| key.as_path())
    }

    /// Whether both present the same certificate chain.
    pub(crate) fn same_as(&self, other: &ClientCert) -> bool {
        self.key.cert == other.key.cert
    }
}

impl Clone for ClientCert {
    fn clone(&self) -> Self {
        ClientCert {
            key: AssertUnwindSafe(Arc::clone(&self.key)),
            files: self.files.clone(),
        }
    }
}

impl fmt::Debug for ClientCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientCert")
            .field(
                "cert_file",
                &self.cert_file().unwrap_or(Path::new(IN_MEMORY)),
            )
            .field("chain_len", &self.key.cert.len())
            .field("key", &"<redacted>")
            .finish()
    }
}

fn client_cert_error(field: &'static str, path: &Path, reason: String) -> BuildError {
    BuildError::ClientCert {
        field,
        path: path.to_owned(),
        reason,
    }
}

/// Always presents the one certificate.
#[derive(Debug)]
struct PresentCert(Arc<CertifiedKey>);

impl ResolvesClientCert for PresentCert {
    fn resolve(&self, _hints: &[&[u8]], _schemes: &[SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// `base` (the generation's configuration: same roots and verification)
/// presenting `cert`. Session resumption is off: a resumed TLS 1.3 session
/// keeps the client authentication of the connection that made it, and
/// rustls keys its session cache by server name only, so a shared cache
/// could let one identity's connection resume another's.
pub(crate) fn with_client_cert(base: &ClientConfig, cert: &ClientCert) -> Arc<ClientConfig> {
    let mut config = base.clone();
    config.client_auth_cert_resolver = Arc::new(PresentCert(Arc::clone(&cert.key)));
    config.resumption = Resumption::disabled();
    Arc::new(config)
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
pub(crate) mod tests {
    use super::*;

    /// A self-signed client certificate and its key, PEM.
    pub(crate) fn self_signed(cn: &str) -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        let cert = params.self_signed(&key).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    #[test]
    fn a_client_cert_loads_and_its_key_never_shows() {
        let (cert, key) = self_signed("alice");
        let c = ClientCert::from_pem(cert.as_bytes(), key.as_bytes()).unwrap();
        let shown = format!("{c:?}");
        let body = key.lines().nth(1).unwrap();
        assert!(!shown.contains(body), "{shown}");
        assert!(shown.contains("redacted"), "{shown}");
        let again = ClientCert::from_pem(cert.as_bytes(), key.as_bytes()).unwrap();
        assert!(c.same_as(&again));
        let (other, other_key) = self_signed("alice");
        let other = ClientCert::from_pem(other.as_bytes(), other_key.as_bytes()).unwrap();
        assert!(!c.same_as(&other), "same subject, another certificate");
    }

    #[test]
    fn client_cert_errors_name_the_file_and_never_quote_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = self_signed("alice");
        let (_, wrong_key) = self_signed("bob");
        let cert_file = dir.path().join("c.pem");
        let key_file = dir.path().join("k.pem");
        std::fs::write(&cert_file, &cert).unwrap();
        std::fs::write(&key_file, &wrong_key).unwrap();
        let e = ClientCert::from_pem_files(&cert_file, &key_file).unwrap_err();
        assert!(
            matches!(&e, BuildError::ClientCert { field: "tls_key_file", path, .. } if *path == key_file),
            "{e}"
        );
        assert!(e.to_string().contains("does not belong"), "{e}");
        let garbled = key.replace("BEGIN PRIVATE KEY", "BEGIN PRIVATE KEY\n!!");
        std::fs::write(&key_file, &garbled).unwrap();
        let e = ClientCert::from_pem_files(&cert_file, &key_file).unwrap_err();
        assert!(!e.to_string().contains(key.lines().nth(1).unwrap()), "{e}");
        let e = ClientCert::from_pem_files(dir.path().join("none.pem"), &key_file).unwrap_err();
        assert_eq!(e.field(), Some("tls_cert_file"), "{e}");
        assert!(e.to_string().contains("none.pem"), "{e}");
        std::fs::write(&key_file, "no key\n").unwrap();
        let e = ClientCert::from_pem_files(&cert_file, &key_file).unwrap_err();
        assert!(e.to_string().contains("no private key"), "{e}");
    }

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
