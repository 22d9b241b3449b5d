//! The one HTTPS client that every SDK client in a process shares, and the roots of
//! trust it verifies AWS endpoints against.
//!
//! Why not the SDK's default client: it is correct, but costly at a Lambda cold start.
//! Each SDK client built from a configuration (the sweeper builds eight at start-up,
//! and the revoker and the sweeper one more per member account they reach) makes the
//! default client build a fresh TLS configuration, parsing every trusted certificate
//! again; and the
//! trust store it loads on Linux is the CA bundle file *and* every file in the
//! certificate directories, which on Debian-like systems hold each certificate a
//! second time, one file per certificate. Together that was about half of each
//! function's start-up on the machine `make bench` ran on.
//!
//! What this module changes, and what it does not:
//! - Trust: on Linux, with neither `SSL_CERT_FILE` nor `SSL_CERT_DIR` set, the
//!   system's CA bundle file (found where OpenSSL looks for it) is the trust store,
//!   without the certificate directory. Every distribution's CA tooling
//!   (update-ca-certificates, update-ca-trust) writes each trusted certificate into
//!   that bundle, and Lambda's provided.al2023 image keeps nothing else there.
//!   Certificates that do not parse as trust anchors are left out, as the SDK does.
//!   With either variable set, no bundle found, or a bundle without a usable
//!   certificate, the SDK's own loading applies unchanged (it honours both
//!   variables). Elsewhere than Linux, likewise.
//! - Work: the bundle is read and its certificates checked once, when the first SDK
//!   client is built (during init, as the SDK's default client loads its store), and
//!   a connector, with its TLS configuration, is built on first use and shared by
//!   every client (the default client also built one for each SDK client it met).
//!   With the platform's store, the first SDK client's build loads it during init. Timeouts, proxies (`HTTPS_PROXY`, `NO_PROXY`) and the
//!   TLS versions and cipher suites are the SDK's defaults.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use aws_smithy_http_client::proxy::ProxyConfig;
use aws_smithy_http_client::tls::rustls_provider::CryptoMode;
use aws_smithy_http_client::tls::{self, TlsContext, TrustStore};
use aws_smithy_http_client::{Builder, Connector, ConnectorBuilder};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::connector_metadata::ConnectorMetadata;
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnectorSettings, SharedHttpClient, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::runtime_components::{
    RuntimeComponents, RuntimeComponentsBuilder,
};
use aws_smithy_types::config_bag::ConfigBag;
use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;

/// Where the client's roots of trust come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrustSource {
    /// The SDK's own loading of the platform's store (`SSL_CERT_FILE` and
    /// `SSL_CERT_DIR` when set, else the bundle file and the certificate directories).
    Platform,
    /// The CA bundle file at this path, alone.
    Bundle(PathBuf),
}

impl TrustSource {
    /// The choice for this process, from its environment and file system.
    pub fn for_this_system() -> Self {
        let bundle = if cfg!(target_os = "linux") {
            openssl_probe::probe().cert_file
        } else {
            None
        };
        choose(
            std::env::var_os("SSL_CERT_FILE"),
            std::env::var_os("SSL_CERT_DIR"),
            bundle,
        )
    }
}

/// The rule of [`TrustSource::for_this_system`], apart from the process: an operator's
/// `SSL_CERT_FILE` or `SSL_CERT_DIR` (even empty: they asked) is the SDK's to honour.
fn choose(
    cert_file: Option<OsString>,
    cert_dir: Option<OsString>,
    probed_bundle: Option<PathBuf>,
) -> TrustSource {
    if cert_file.is_some() || cert_dir.is_some() {
        return TrustSource::Platform;
    }
    probed_bundle.map_or(TrustSource::Platform, TrustSource::Bundle)
}

/// Trust anchors read from a bundle, as PEM the SDK's trust store accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Anchors {
    pem: Vec<u8>,
    count: usize,
}

impl Anchors {
    /// Reads the bundle at `path`; `None` when it cannot be read or holds no
    /// certificate usable as a trust anchor (the caller then trusts the platform).
    pub fn from_bundle(path: &Path) -> Option<Self> {
        let loaded = rustls_native_certs::load_certs_from_paths(Some(path), None);
        if !loaded.errors.is_empty() {
            tracing::warn!(
                bundle = %path.display(),
                errors = loaded.errors.len(),
                "parts of the CA bundle could not be read; the certificates read are trusted"
            );
        }
        Self::from_certificates(loaded.certs)
    }

    /// Keeps the certificates that parse as trust anchors, the test the SDK applies
    /// to the platform's store; the others are dropped here rather than handed to a
    /// trust store that would refuse them when it is built.
    pub fn from_certificates(certificates: Vec<CertificateDer<'static>>) -> Option<Self> {
        let mut pem = Vec::new();
        let mut count = 0;
        for certificate in certificates {
            if RootCertStore::empty().add(certificate.clone()).is_err() {
                continue;
            }
            pem.extend_from_slice(b"-----BEGIN CERTIFICATE-----\n");
            pem.extend_from_slice(aws_smithy_types::base64::encode(certificate).as_bytes());
            pem.extend_from_slice(b"\n-----END CERTIFICATE-----\n");
            count += 1;
        }
        (count > 0).then_some(Self { pem, count })
    }

    /// How many certificates are trusted.
    pub fn count(&self) -> usize {
        self.count
    }

    /// The trusted certificates, PEM encoded.
    pub fn pem(&self) -> &[u8] {
        &self.pem
    }
}

/// The HTTPS client for every SDK client of this process, built on first use.
pub fn shared_client() -> SharedHttpClient {
    static CLIENT: OnceLock<SharedHttpClient> = OnceLock::new();
    CLIENT
        .get_or_init(|| {
            let source = TrustSource::for_this_system();
            let anchors = match &source {
                TrustSource::Bundle(path) => Anchors::from_bundle(path),
                TrustSource::Platform => None,
            };
            tracing::debug!(
                ?source,
                anchors = anchors.as_ref().map(Anchors::count),
                "HTTPS client trust store"
            );
            client_trusting(anchors.as_ref())
        })
        .clone()
}

/// An HTTP connector outside the SDK's clients, with the same TLS stack and trust
/// store: for the CLI's signed requests to the revoker's function URL.
pub fn standalone_connector() -> Connector {
    let anchors = match TrustSource::for_this_system() {
        TrustSource::Bundle(path) => Anchors::from_bundle(&path),
        TrustSource::Platform => None,
    };
    let trust = match &anchors {
        Some(anchors) => TrustStore::empty().with_pem_certificate(anchors.pem()),
        None => TrustStore::default(),
    };
    let context = TlsContext::builder()
        .with_trust_store(trust)
        .build()
        .unwrap_or_default();
    connector(&context, None, None)
}

/// An HTTPS client trusting `anchors`, or the platform's store when `None`. Used by
/// [`shared_client`], and by tests that choose what is trusted.
pub fn client_trusting(anchors: Option<&Anchors>) -> SharedHttpClient {
    let trust = match anchors {
        Some(anchors) => TrustStore::empty().with_pem_certificate(anchors.pem()),
        None => TrustStore::default(),
    };
    // The builder accepts any trust store today; should the SDK add a check that
    // fails, the platform's store (the SDK's default) is the safe answer.
    let context = TlsContext::builder()
        .with_trust_store(trust)
        .build()
        .unwrap_or_else(|err| {
            tracing::warn!(error = %err, "TLS context refused; trusting the platform's store");
            TlsContext::default()
        });
    // A bundle's anchors were read and checked already; the platform's store is
    // loaded by building a connector, once, during init.
    let warm_up: Box<dyn Fn() + Send + Sync> = match anchors {
        Some(_) => Box::new(|| {}),
        None => {
            let context = context.clone();
            Box::new(move || drop(connector(&context, None, None)))
        }
    };
    let inner = Builder::new().build_with_connector_fn(move |settings, components| {
        connector(&context, settings, components)
    });
    SharedHttpClient::new(WarmedOnce {
        inner,
        warm_up,
        warmed: OnceLock::new(),
    })
}

/// The connector the SDK's default HTTPS client builds (rustls with aws-lc, proxy
/// settings from the environment), with `context` as its TLS context. Building one
/// builds the TLS configuration: the trust store is loaded and parsed.
fn connector(
    context: &TlsContext,
    settings: Option<&HttpConnectorSettings>,
    components: Option<&RuntimeComponents>,
) -> Connector {
    let mut connector = ConnectorBuilder::default()
        .tls_provider(tls::Provider::Rustls(CryptoMode::AwsLc))
        .tls_context(context.clone());
    connector.set_connector_settings(settings.cloned());
    if let Some(components) = components {
        connector.set_sleep_impl(components.sleep_impl());
    }
    connector.set_proxy_config(Some(ProxyConfig::from_env()));
    connector.build()
}

/// Runs `warm_up` (loading the trust store) when the first SDK client is built, as
/// the SDK's default client does for every client by building a throwaway connector,
/// and only then: later clients share the same trust store and the inner client's
/// connector cache, so building it again proves nothing and costs a parse of every
/// certificate.
struct WarmedOnce<W> {
    inner: SharedHttpClient,
    warm_up: W,
    warmed: OnceLock<()>,
}

impl<W> std::fmt::Debug for WarmedOnce<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WarmedOnce")
            .field("inner", &self.inner)
            .field("warmed", &self.warmed.get().is_some())
            .finish()
    }
}

impl<W: Fn() + Send + Sync> HttpClient for WarmedOnce<W> {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        self.inner.http_connector(settings, components)
    }

    fn validate_base_client_config(
        &self,
        _: &RuntimeComponentsBuilder,
        _: &ConfigBag,
    ) -> Result<(), BoxError> {
        self.warmed.get_or_init(&self.warm_up);
        Ok(())
    }

    fn connector_metadata(&self) -> Option<ConnectorMetadata> {
        self.inner.connector_metadata()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use aws_smithy_runtime_api::client::http::http_client_fn;
    use rustls::pki_types::pem::PemObject;

    use super::*;

    const CA: &[u8] = include_bytes!("../tests/fixtures/tls/ca.pem");
    const OTHER_CA: &[u8] = include_bytes!("../tests/fixtures/tls/other-ca.pem");
    const SERVER: &[u8] = include_bytes!("../tests/fixtures/tls/server.pem");

    fn der(pem: &[u8]) -> CertificateDer<'static> {
        CertificateDer::from_pem_slice(pem).unwrap()
    }

    fn path(text: &str) -> Option<PathBuf> {
        Some(PathBuf::from(text))
    }

    #[test]
    fn the_probed_bundle_is_trusted_alone_when_the_operator_set_nothing() {
        assert_eq!(
            choose(None, None, path("/etc/pki/tls/certs/ca-bundle.crt")),
            TrustSource::Bundle(PathBuf::from("/etc/pki/tls/certs/ca-bundle.crt"))
        );
    }

    #[test]
    fn ssl_cert_file_or_dir_leaves_the_choice_to_the_sdk() {
        let bundle = path("/etc/ssl/certs/ca-certificates.crt");
        for (file, dir) in [
            (Some("/opt/corp/ca.pem"), None),
            (None, Some("/opt/corp/certs")),
            (Some("/opt/corp/ca.pem"), Some("/opt/corp/certs")),
            // Set but empty is still the operator's word, not ours to reinterpret.
            (Some(""), None),
            (None, Some("")),
        ] {
            assert_eq!(
                choose(
                    file.map(OsString::from),
                    dir.map(OsString::from),
                    bundle.clone()
                ),
                TrustSource::Platform,
                "SSL_CERT_FILE={file:?} SSL_CERT_DIR={dir:?}"
            );
        }
    }

    #[test]
    fn no_bundle_found_means_the_platform_store() {
        assert_eq!(choose(None, None, None), TrustSource::Platform);
    }

    #[test]
    fn anchors_keep_every_certificate_that_parses_as_a_trust_anchor() {
        let anchors = Anchors::from_certificates(vec![der(CA), der(OTHER_CA)]).unwrap();
        assert_eq!(anchors.count(), 2);
        // The PEM handed to the SDK decodes to exactly the certificates given.
        let decoded: Vec<_> = CertificateDer::pem_slice_iter(anchors.pem())
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(decoded, vec![der(CA), der(OTHER_CA)]);
    }

    #[test]
    fn certificates_that_are_not_anchors_are_dropped_not_fatal() {
        let garbage = CertificateDer::from(b"not a certificate".to_vec());
        let anchors = Anchors::from_certificates(vec![garbage, der(CA)]).unwrap();
        assert_eq!(anchors.count(), 1);
        let decoded: Vec<_> = CertificateDer::pem_slice_iter(anchors.pem())
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(decoded, vec![der(CA)]);
    }

    #[test]
    fn a_bundle_without_a_usable_certificate_gives_no_anchors() {
        let garbage = CertificateDer::from(vec![0x30, 0x03, 0x02, 0x01, 0x00]);
        assert_eq!(Anchors::from_certificates(vec![garbage]), None);
        assert_eq!(Anchors::from_certificates(Vec::new()), None);
    }

    #[test]
    fn a_bundle_file_is_read_with_its_other_sections_ignored() {
        let dir = std::env::temp_dir().join(format!("cutoff-https-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let bundle = dir.join("bundle.pem");
        let mut text = b"# a comment line, as distributions write\n".to_vec();
        text.extend_from_slice(CA);
        text.extend_from_slice(b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n");
        text.extend_from_slice(SERVER);
        std::fs::write(&bundle, text).unwrap();
        let anchors = Anchors::from_bundle(&bundle).unwrap();
        // The CA and the server certificate (any certificate parses as an anchor;
        // trusting it is the bundle's owner's choice); the key is not a certificate.
        assert_eq!(anchors.count(), 2);
        assert_eq!(Anchors::from_bundle(&dir.join("missing.pem")), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// The TLS configuration is built when the first SDK client is, and only then;
    /// every client still gets its connectors from the one inner client.
    #[test]
    fn the_trust_store_is_parsed_once_for_many_clients() {
        let builds = Arc::new(AtomicUsize::new(0));
        let counted = builds.clone();
        let client = SharedHttpClient::new(WarmedOnce {
            inner: http_client_fn(|_, _| SharedHttpConnector::new(NoNetwork)),
            warm_up: move || {
                counted.fetch_add(1, Ordering::SeqCst);
            },
            warmed: OnceLock::new(),
        });
        let config = aws_config::SdkConfig::builder()
            .http_client(client)
            .behavior_version(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("eu-west-1"))
            .build();
        assert_eq!(
            builds.load(Ordering::SeqCst),
            0,
            "nothing built before a client"
        );
        let _sts = aws_sdk_sts::Client::new(&config);
        assert_eq!(
            builds.load(Ordering::SeqCst),
            1,
            "built with the first client"
        );
        let _iam = aws_sdk_iam::Client::new(&config);
        let _sqs = aws_sdk_sqs::Client::new(&config);
        let _iam_for_a_member = aws_sdk_iam::Client::from_conf(
            aws_sdk_iam::config::Builder::from(&config)
                .credentials_provider(aws_sdk_iam::config::Credentials::for_tests())
                .build(),
        );
        assert_eq!(builds.load(Ordering::SeqCst), 1);
    }

    /// A connector for clients that never send: this test only builds clients.
    #[derive(Debug)]
    struct NoNetwork;
    impl aws_smithy_runtime_api::client::http::HttpConnector for NoNetwork {
        fn call(
            &self,
            _: aws_smithy_runtime_api::client::orchestrator::HttpRequest,
        ) -> aws_smithy_runtime_api::client::http::HttpConnectorFuture {
            aws_smithy_runtime_api::client::http::HttpConnectorFuture::ready(Err(
                aws_smithy_runtime_api::client::result::ConnectorError::other(
                    "no network in this test".into(),
                    None,
                ),
            ))
        }
    }
}
