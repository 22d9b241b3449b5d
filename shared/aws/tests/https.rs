//! cutoff's HTTPS client against a real TLS endpoint on 127.0.0.1: it completes a
//! call to a server whose certificate chains to a trusted anchor, and refuses one
//! whose certificate does not. The certificates are in tests/fixtures/tls (see the
//! README there); the server speaks just enough HTTP to answer STS.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use aws_config::{BehaviorVersion, Region};
use aws_sdk_sts::config::Credentials;
use cutoff_aws::https::{Anchors, client_trusting};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

const ACCOUNT: &str = "123456789012";

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/tls")
        .join(name)
}

/// Answers one TLS connection with an STS GetCallerIdentity response; returns the
/// port and the task, whose result says whether the TLS handshake completed.
async fn sts_over_tls() -> (u16, JoinHandle<Result<(), String>>) {
    let chain = vec![CertificateDer::from_pem_file(fixture("server.pem")).unwrap()];
    let key = PrivateKeyDer::from_pem_file(fixture("server.key")).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .unwrap();
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.map_err(|e| e.to_string())?;
        let mut tls = acceptor.accept(tcp).await.map_err(|e| e.to_string())?;
        let mut request = Vec::new();
        let mut buffer = [0u8; 4096];
        // Headers, then the form body (its length is in the headers).
        while !request.windows(4).any(|w| w == b"\r\n\r\n") {
            let read = tls.read(&mut buffer).await.map_err(|e| e.to_string())?;
            if read == 0 {
                return Err("the client closed before its request ended".into());
            }
            request.extend_from_slice(&buffer[..read]);
        }
        let body = format!(
            "<GetCallerIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\
             <GetCallerIdentityResult><Arn>arn:aws:iam::{ACCOUNT}:user/tester</Arn>\
             <UserId>AIDAEXAMPLEEXAMPLE01</UserId><Account>{ACCOUNT}</Account>\
             </GetCallerIdentityResult><ResponseMetadata><RequestId>1</RequestId>\
             </ResponseMetadata></GetCallerIdentityResponse>"
        );
        let response = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: text/xml\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        tls.write_all(response.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        tls.shutdown().await.map_err(|e| e.to_string())
    });
    (port, server)
}

async fn caller_account(anchors: &Anchors, port: u16) -> Result<String, String> {
    let config = aws_config::defaults(BehaviorVersion::latest())
        .http_client(client_trusting(Some(anchors)))
        .credentials_provider(Credentials::for_tests())
        .region(Region::new("eu-west-1"))
        .endpoint_url(format!("https://localhost:{port}"))
        .retry_config(aws_config::retry::RetryConfig::disabled())
        .load()
        .await;
    aws_sdk_sts::Client::new(&config)
        .get_caller_identity()
        .send()
        .await
        .map(|out| out.account.unwrap_or_default())
        .map_err(|err| {
            format!(
                "{}",
                aws_smithy_types::error::display::DisplayErrorContext(err)
            )
        })
}

#[tokio::test]
async fn a_server_chaining_to_a_trusted_anchor_is_answered() {
    let (port, server) = sts_over_tls().await;
    let anchors = Anchors::from_bundle(&fixture("ca.pem")).unwrap();
    assert_eq!(caller_account(&anchors, port).await.unwrap(), ACCOUNT);
    server.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_server_chaining_to_no_trusted_anchor_is_refused() {
    let (port, server) = sts_over_tls().await;
    let anchors = Anchors::from_bundle(&fixture("other-ca.pem")).unwrap();
    let err = caller_account(&anchors, port).await.unwrap_err();
    assert!(err.contains("UnknownIssuer"), "{err}");
    // The server saw the client abort the handshake: nothing was sent in clear.
    assert!(server.await.unwrap().is_err());
}
