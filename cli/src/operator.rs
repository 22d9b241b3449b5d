//! The operator path: a manual request sent to the revoker's function URL, which
//! authenticates with IAM. The request is signed (SigV4, service `lambda`) with the
//! operator's own credentials, so AWS verifies who asks and hands the caller's ARN to
//! the revoker, which records it as `requested_by`: nobody can claim to be someone
//! else, as a plain invoke's self-declared name could.

use std::time::{Duration, SystemTime};

use anyhow::{Context, bail};
use aws_config::SdkConfig;
use aws_credential_types::provider::ProvideCredentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::http::HttpConnector;
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_types::body::SdkBody;
use cutoff_domain::clock::Clock;
use cutoff_domain::principal::clean_text;
use serde_json::Value;

/// How long the CLI waits for the revoker's answer: its 90 s timeout and some.
pub const ANSWER_WAIT: Duration = Duration::from_secs(120);

/// The revoker's function URL, checked: HTTPS (plain HTTP only to this machine, for a
/// local stand-in), a host, no user info, query or fragment.
#[derive(Debug, Clone)]
pub struct OperatorUrl {
    url: String,
    host: String,
    /// From the host (`<id>.lambda-url.<region>.on.aws`), else the configuration's.
    region: Option<String>,
    /// 127.0.0.1, localhost or [::1]: a stand-in on this machine.
    loopback: bool,
}

impl OperatorUrl {
    pub fn parse(input: &str) -> Result<Self, String> {
        Self::parse_from("--url", input)
    }

    /// [`Self::parse`], the error naming where the URL came from (`--url`, a stack
    /// output).
    pub fn parse_from(source: &str, input: &str) -> Result<Self, String> {
        let bad = |why: &str| {
            format!(
                "{source} {}: {why}",
                cutoff_domain::principal::excerpt(input)
            )
        };
        let (scheme, rest) = input
            .split_once("://")
            .ok_or_else(|| bad("expected https://<url-id>.lambda-url.<region>.on.aws/"))?;
        let (authority, path) = match rest.find('/') {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        if authority.is_empty() || authority.contains('@') {
            return Err(bad("expected a host and no user name"));
        }
        if path.contains('?') || path.contains('#') {
            return Err(bad("the URL takes no query or fragment"));
        }
        // The host without the port; an IPv6 literal keeps its brackets (`[::1]:8080`).
        let host = match authority.find(']') {
            Some(end) if authority.starts_with('[') => &authority[..=end],
            _ => authority.split(':').next().unwrap_or(authority),
        };
        let port = &authority[host.len()..];
        if !port.is_empty()
            && !port
                .strip_prefix(':')
                .is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        {
            return Err(bad("expected host or host:port"));
        }
        let loopback = matches!(host, "127.0.0.1" | "localhost" | "[::1]");
        match scheme {
            "https" => {}
            "http" if loopback => {}
            _ => {
                return Err(bad(
                    "the operator path is HTTPS (plain HTTP only to this machine)",
                ));
            }
        }
        if !authority
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'))
        {
            return Err(bad("the host has characters a host name cannot"));
        }
        let region = host
            .strip_suffix(".on.aws")
            .and_then(|h| h.split_once(".lambda-url."))
            .map(|(_, region)| region.to_owned());
        let path = if path.is_empty() { "/" } else { path };
        Ok(Self {
            url: format!("{scheme}://{authority}{path}"),
            host: authority.to_owned(),
            region,
            loopback,
        })
    }

    /// The region a Lambda function URL's host names (`<id>.lambda-url.<region>.on.aws`);
    /// None for any other host.
    pub fn lambda_url_region(&self) -> Option<&str> {
        self.region.as_deref()
    }

    /// Whether the URL is on this machine (a local stand-in).
    pub fn is_loopback(&self) -> bool {
        self.loopback
    }

    pub fn as_str(&self) -> &str {
        &self.url
    }
}

/// Signs `body` for the function URL with the configuration's credentials, at the
/// clock's time (AWS's), sends it, and returns the JSON the revoker answered.
pub async fn send(
    url: &OperatorUrl,
    body: &Value,
    sdk: &SdkConfig,
    clock: &dyn Clock,
    wait: Duration,
) -> anyhow::Result<Value> {
    let region = url
        .region
        .clone()
        .or_else(|| sdk.region().map(ToString::to_string))
        .context("the function URL's region is unknown: give --region")?;
    let provider = sdk
        .credentials_provider()
        .context("no AWS credentials: the operator path signs with yours")?;
    let credentials = provider
        .provide_credentials()
        .await
        .context("loading your AWS credentials to sign the request")?;
    let identity = credentials.into();
    let text = body.to_string();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(&region)
        .name("lambda")
        .time(SystemTime::from(clock.now()))
        .settings(SigningSettings::default())
        .build()
        .context("building the request signature")?
        .into();
    let headers = [
        ("host", url.host.as_str()),
        ("content-type", "application/json"),
    ];
    let signable = SignableRequest::new(
        "POST",
        url.url.as_str(),
        headers.iter().copied(),
        SignableBody::Bytes(text.as_bytes()),
    )
    .context("preparing the request for signing")?;
    let (instructions, _) = sign(signable, &params)
        .context("signing the request")?
        .into_parts();
    let (signed_headers, _) = instructions.into_parts();
    let mut request = http::Request::builder()
        .method("POST")
        .uri(url.url.as_str())
        .header("host", url.host.as_str())
        .header("content-type", "application/json");
    for header in &signed_headers {
        request = request.header(header.name(), header.value());
    }
    let request = request
        .body(SdkBody::from(text))
        .context("building the request")?;
    let request = HttpRequest::try_from(request).context("building the request")?;
    let exchange = async {
        let response = cutoff_aws::https::standalone_connector()
            .call(request)
            .await
            .map_err(|e| anyhow::anyhow!("sending the request to {}: {e}", url.url))?;
        let status = response.status().as_u16();
        let bytes = aws_smithy_types::byte_stream::ByteStream::new(response.into_body())
            .collect()
            .await
            .map_err(|e| anyhow::anyhow!("reading the answer of {}: {e}", url.url))?
            .into_bytes();
        anyhow::Ok((status, bytes))
    };
    // The revoker may take up to its 90 s timeout; past that, nothing more will come.
    let (status, bytes) = tokio::time::timeout(wait, exchange)
        .await
        .map_err(|_| {
            anyhow::anyhow!(
                "no answer from {} within {} s: the revoker may still have acted; check with `cutoff status --url` before asking again",
                url.url,
                wait.as_secs()
            )
        })??;
    let answer = String::from_utf8_lossy(&bytes);
    match status {
        200 => serde_json::from_str(&answer).with_context(|| {
            format!(
                "the operator path answered something that is not JSON: {}",
                clean_text(&answer, 200)
            )
        }),
        403 => bail!(
            "AWS refused the request (403): your credentials may not invoke the operator path (are they a break-glass principal, with a recent MFA sign-in?): {}",
            clean_text(&answer, 200)
        ),
        other => bail!(
            "the operator path answered HTTP {other}: {}",
            clean_text(&answer, 200)
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_function_url_names_its_region_and_only_https_leaves_the_machine() {
        let url = OperatorUrl::parse("https://abcdef123.lambda-url.eu-west-1.on.aws/").unwrap();
        assert_eq!(url.region.as_deref(), Some("eu-west-1"));
        assert_eq!(url.host, "abcdef123.lambda-url.eu-west-1.on.aws");
        assert!(OperatorUrl::parse("http://abcdef123.lambda-url.eu-west-1.on.aws/").is_err());
        assert!(OperatorUrl::parse("http://127.0.0.1:8080/").is_ok());
        assert!(OperatorUrl::parse("http://localhost/").is_ok());
        assert!(OperatorUrl::parse("http://[::1]:8080/").is_ok());
        assert!(OperatorUrl::parse("http://[::1]/").is_ok());
        for remote in [
            "http://127.0.0.1.example.com/",
            "http://[2001:db8::1]:8080/",
            "http://localhost.example.com:8080/",
            "http://[::1]evil.example.com/",
            "http://localhost:80:90/",
        ] {
            assert!(OperatorUrl::parse(remote).is_err(), "{remote}");
        }
        for bad in [
            "abcdef.lambda-url.eu-west-1.on.aws",
            "https://user@host/",
            "https:///x",
            "https://host/?a=b",
            "https://ho st/",
        ] {
            assert!(OperatorUrl::parse(bad).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn a_url_that_never_answers_ends_with_a_clear_error_not_a_hang() {
        // A listener that accepts the connection and never says a word.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let url = OperatorUrl::parse(&format!("http://127.0.0.1:{port}/")).unwrap();
        let sdk = SdkConfig::builder()
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(
                aws_credential_types::provider::SharedCredentialsProvider::new(
                    aws_credential_types::Credentials::new(
                        "AKIAEXAMPLE",
                        "secret",
                        None,
                        None,
                        "test",
                    ),
                ),
            )
            .build();
        let err = send(
            &url,
            &serde_json::json!({"action": "status"}),
            &sdk,
            &cutoff_domain::clock::SystemClock,
            Duration::from_millis(300),
        )
        .await
        .unwrap_err()
        .to_string();
        assert!(err.contains("no answer"), "{err}");
        assert!(err.contains("cutoff status --url"), "{err}");
        drop(listener);
    }
}
