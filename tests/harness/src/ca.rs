//! A throw-away certificate authority for TLS tests, made with rcgen.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::CertificateDer;

/// A self-signed test CA that issues server certificates.
///
/// Keys are ECDSA P-256 (rcgen's default), accepted by slapd's GnuTLS and by rustls.
pub struct TestCa {
    name: String,
    issuer: CertifiedIssuer<'static, KeyPair>,
    ca_pem: String,
}

/// A server certificate and its private key, both PEM, issued by a [`TestCa`].
#[derive(Clone, Debug)]
pub struct ServerCert {
    /// The certificate (PEM, one `CERTIFICATE` block).
    pub cert_pem: String,
    /// The private key (PEM, PKCS#8 `PRIVATE KEY`).
    pub key_pem: String,
}

impl std::fmt::Debug for TestCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestCa")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl TestCa {
    /// Makes a new self-signed CA whose subject common name is `name`.
    ///
    /// Panics only if rcgen cannot generate a key or sign (not expected).
    pub fn new(name: &str) -> TestCa {
        let mut params = CertificateParams::new(Vec::<String>::new())
            .expect("rcgen: CA parameters without SANs are valid");
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, name);
        dn.push(DnType::OrganizationName, "ldapmux test harness");
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate().expect("rcgen: generate CA key");
        let issuer = CertifiedIssuer::self_signed(params, key).expect("rcgen: self-sign CA");
        let ca_pem = issuer.pem();
        TestCa {
            name: name.to_owned(),
            issuer,
            ca_pem,
        }
    }

    /// Issues a server certificate for `sans`: entries that parse as IP addresses
    /// (`"127.0.0.1"`, `"::1"`) become IP SANs, the others DNS SANs.
    ///
    /// Panics if a SAN is neither an IP address nor a valid DNS name.
    pub fn issue(&self, sans: &[&str]) -> ServerCert {
        let names: Vec<String> = sans.iter().map(|s| (*s).to_owned()).collect();
        let mut params = CertificateParams::new(names)
            .unwrap_or_else(|e| panic!("rcgen: invalid SANs {sans:?}: {e}"));
        let mut dn = DistinguishedName::new();
        dn.push(
            DnType::CommonName,
            sans.first().copied().unwrap_or("ldapmux test server"),
        );
        params.distinguished_name = dn;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        let key = KeyPair::generate().expect("rcgen: generate server key");
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("rcgen: sign server certificate");
        ServerCert {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }

    /// Issues a TLS client certificate whose subject is `CN=<cn>` alone
    /// (slapd sees the SASL EXTERNAL identity `cn=<cn>`), valid from an hour
    /// ago for a year. The key is in [`ServerCert::key_pem`].
    pub fn issue_client(&self, cn: &str) -> ServerCert {
        let now = std::time::SystemTime::now();
        let hour = std::time::Duration::from_secs(3600);
        self.client_cert(cn, now - hour, now + 365 * 24 * hour)
    }

    /// A client certificate like [`TestCa::issue_client`]'s that expired
    /// a day ago (valid for one day, two days ago).
    pub fn issue_expired_client(&self, cn: &str) -> ServerCert {
        let day = std::time::Duration::from_secs(24 * 3600);
        let now = std::time::SystemTime::now();
        self.client_cert(cn, now - 2 * day, now - day)
    }

    fn client_cert(
        &self,
        cn: &str,
        not_before: std::time::SystemTime,
        not_after: std::time::SystemTime,
    ) -> ServerCert {
        let mut params = CertificateParams::new(Vec::<String>::new())
            .expect("rcgen: client parameters without SANs are valid");
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, cn);
        params.distinguished_name = dn;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.use_authority_key_identifier_extension = true;
        params.not_before = not_before.into();
        params.not_after = not_after.into();
        let key = KeyPair::generate().expect("rcgen: generate client key");
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("rcgen: sign client certificate");
        ServerCert {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }

    /// The CA certificate, PEM.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// The CA certificate, DER (for a rustls root store).
    pub fn ca_der(&self) -> CertificateDer<'static> {
        self.issuer.der().clone()
    }

    /// Writes the CA certificate to `dir/<name>-ca.pem` and returns the path.
    ///
    /// Panics if the file cannot be written (a test-environment problem).
    pub fn write_ca_file(&self, dir: &Path) -> PathBuf {
        let safe: String = self
            .name
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        let path = dir.join(format!("{safe}-ca.pem"));
        fs::write(&path, &self.ca_pem)
            .unwrap_or_else(|e| panic!("write CA file {}: {e}", path.display()));
        path
    }

    /// A rustls client configuration (ring provider) that trusts only this CA, for
    /// `ldap3::LdapConnSettings::set_config`.
    pub fn rustls_client_config(&self) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(self.ca_der())
            .expect("rustls accepts the test CA certificate");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("ring supports the default protocol versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        Arc::new(config)
    }
}
