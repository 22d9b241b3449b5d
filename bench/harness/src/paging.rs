//! A forwarder to moto that pages `iam:GetAccountAuthorizationDetails` as IAM does.
//!
//! moto (5.2.5) ignores `MaxItems` and `Marker` and answers the whole account at once
//! (5.5 MB for 10,000 roles); IAM answers at most `MaxItems` (cutoff asks for 1,000)
//! items a page, with `IsTruncated` and a `Marker` for the next. The sweeper's memory
//! depends on the page, so the sweep is measured through this forwarder: the first
//! request (no `Marker`) fetches moto's whole answer and keeps it, and every page is
//! cut from it: the items of `UserDetailList`, `GroupDetailList`, `RoleDetailList` and
//! `Policies`, in that order, `MaxItems` at a time. Every other request is forwarded
//! untouched.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, TcpListener as StdTcpListener};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};

use anyhow::{Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::sync::oneshot;

const LISTS: [&str; 4] = [
    "UserDetailList",
    "GroupDetailList",
    "RoleDetailList",
    "Policies",
];
const MARKER_PREFIX: &str = "bench-page-";

/// A running forwarder; stops on drop.
pub struct PagingShim {
    endpoint: String,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

type Upstream = Client<HttpConnector, Full<Bytes>>;

#[derive(Default)]
struct State {
    /// moto's whole answer, cut into its head, its items (list index, XML) and tail.
    cached: Option<Listing>,
}

struct Listing {
    head: String,
    items: Vec<(usize, String)>,
    tail: String,
}

impl PagingShim {
    pub fn start(upstream: &str) -> Result<PagingShim> {
        let listener = StdTcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("bind")?;
        listener.set_nonblocking(true).context("non-blocking")?;
        let addr = listener.local_addr().context("local address")?;
        let upstream = upstream.trim_end_matches('/').to_owned();
        let (shutdown, mut shutdown_rx) = oneshot::channel::<()>();
        let thread = {
            thread::Builder::new()
                .name("paging-shim".to_owned())
                .spawn(move || {
                    let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                    else {
                        return;
                    };
                    runtime.block_on(async move {
                        let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                            return;
                        };
                        let mut connector = HttpConnector::new();
                        connector.set_nodelay(true);
                        let client: Upstream =
                            Client::builder(TokioExecutor::new()).build(connector);
                        let state = Arc::new(Mutex::new(State::default()));
                        loop {
                            tokio::select! {
                                _ = &mut shutdown_rx => return,
                                accepted = listener.accept() => {
                                    let Ok((stream, _)) = accepted else { continue };
                                    let _ = stream.set_nodelay(true);
                                    let (client, upstream, state) = (
                                        client.clone(),
                                        upstream.clone(),
                                        Arc::clone(&state),
                                    );
                                    tokio::spawn(async move {
                                        let service = hyper::service::service_fn(move |req| {
                                            handle(
                                                req,
                                                client.clone(),
                                                upstream.clone(),
                                                Arc::clone(&state),
                                            )
                                        });
                                        let _ = hyper::server::conn::http1::Builder::new()
                                            .serve_connection(TokioIo::new(stream), service)
                                            .await;
                                    });
                                }
                            }
                        }
                    });
                })
                .context("spawn the paging shim")?
        };
        Ok(PagingShim {
            endpoint: format!("http://{addr}"),
            shutdown: Some(shutdown),
            thread: Some(thread),
        })
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }
}

impl Drop for PagingShim {
    fn drop(&mut self) {
        if let Some(s) = self.shutdown.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn form(body: &[u8]) -> BTreeMap<String, String> {
    String::from_utf8_lossy(body)
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| {
            (
                k.to_owned(),
                percent_decode(v).unwrap_or_else(|| v.to_owned()),
            )
        })
        .collect()
}

fn percent_decode(v: &str) -> Option<String> {
    let bytes = v.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

fn xml_response(status: u16, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or_default();
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/xml"),
    );
    response
}

async fn handle(
    request: Request<Incoming>,
    client: Upstream,
    upstream: String,
    state: Arc<Mutex<State>>,
) -> Result<Response<Full<Bytes>>, hyper::Error> {
    let (mut parts, body) = request.into_parts();
    let body = body.collect().await?.to_bytes();
    let params = form(&body);
    let paged = params.get("Action").map(String::as_str) == Some("GetAccountAuthorizationDetails");
    let page_size: usize = params
        .get("MaxItems")
        .and_then(|v| v.parse().ok())
        .unwrap_or(100)
        .clamp(1, 1000);
    let marker_page: Option<usize> = params
        .get("Marker")
        .and_then(|m| m.strip_prefix(MARKER_PREFIX))
        .and_then(|n| n.parse().ok());

    if paged && let Some(page) = marker_page {
        let state = state.lock().unwrap_or_else(|e| e.into_inner());
        return Ok(match &state.cached {
            Some(listing) => xml_response(200, listing.page(page, page_size)),
            None => xml_response(400, "<ErrorResponse><Error><Code>InvalidInput</Code><Message>unknown marker</Message></Error></ErrorResponse>".to_owned()),
        });
    }

    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "/".to_owned());
    let Ok(uri) = format!("{upstream}{path}").parse::<Uri>() else {
        return Ok(xml_response(502, "bad upstream uri".to_owned()));
    };
    parts.uri = uri;
    parts.headers.remove(hyper::header::HOST);
    let forwarded = Request::from_parts(parts, Full::new(body));
    let answer = match client.request(forwarded).await {
        Ok(a) => a,
        Err(e) => {
            return Ok(xml_response(
                502,
                format!("paging shim: upstream failed: {e}"),
            ));
        }
    };
    let (answer_parts, answer_body) = answer.into_parts();
    let answer_body = answer_body.collect().await?.to_bytes();
    if paged && answer_parts.status.is_success() {
        let text = String::from_utf8_lossy(&answer_body).into_owned();
        if let Some(listing) = Listing::parse(&text) {
            let first = listing.page(0, page_size);
            state.lock().unwrap_or_else(|e| e.into_inner()).cached = Some(listing);
            return Ok(xml_response(200, first));
        }
    }
    Ok(Response::from_parts(answer_parts, Full::new(answer_body)))
}

/// The top-level `<member>…</member>` elements of `inner`.
fn members(inner: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    let mut i = 0;
    while i < inner.len() {
        let rest = &inner[i..];
        if rest.starts_with("<member>") {
            if depth == 0 {
                start = i;
            }
            depth += 1;
            i += "<member>".len();
        } else if rest.starts_with("</member>") {
            depth = depth.saturating_sub(1);
            i += "</member>".len();
            if depth == 0 {
                out.push(inner[start..i].to_owned());
            }
        } else {
            i += rest.chars().next().map_or(1, char::len_utf8);
        }
    }
    out
}

impl Listing {
    fn parse(xml: &str) -> Option<Listing> {
        const OPEN: &str = "<GetAccountAuthorizationDetailsResult>";
        const CLOSE: &str = "</GetAccountAuthorizationDetailsResult>";
        let start = xml.find(OPEN)? + OPEN.len();
        let end = xml.find(CLOSE)?;
        let result = &xml[start..end];
        let mut items = Vec::new();
        for (index, list) in LISTS.iter().enumerate() {
            let open = format!("<{list}>");
            let close = format!("</{list}>");
            if let (Some(a), Some(b)) = (result.find(&open), result.find(&close)) {
                for m in members(&result[a + open.len()..b]) {
                    items.push((index, m));
                }
            }
        }
        Some(Listing {
            head: xml[..start].to_owned(),
            items,
            tail: xml[end..].to_owned(),
        })
    }

    fn page(&self, page: usize, size: usize) -> String {
        let from = (page * size).min(self.items.len());
        let to = (from + size).min(self.items.len());
        let mut result = String::new();
        for (index, list) in LISTS.iter().enumerate() {
            result.push_str(&format!("<{list}>"));
            for (_, item) in self.items[from..to].iter().filter(|(i, _)| *i == index) {
                result.push_str(item);
            }
            result.push_str(&format!("</{list}>"));
        }
        if to < self.items.len() {
            result.push_str(&format!(
                "<IsTruncated>true</IsTruncated><Marker>{MARKER_PREFIX}{}</Marker>",
                page + 1
            ));
        } else {
            result.push_str("<IsTruncated>false</IsTruncated>");
        }
        format!("{}{result}{}", self.head, self.tail)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const XML: &str = "<R xmlns=\"x\"><GetAccountAuthorizationDetailsResult><UserDetailList/><GroupDetailList/><RoleDetailList><member><RoleName>a</RoleName><Tags><member><Key>k</Key></member></Tags></member><member><RoleName>b</RoleName></member><member><RoleName>c</RoleName></member></RoleDetailList><Policies><member><PolicyName>p</PolicyName></member></Policies><IsTruncated>false</IsTruncated></GetAccountAuthorizationDetailsResult><ResponseMetadata/></R>";

    #[test]
    fn pages_cut_the_items_in_order_and_chain_markers() {
        let listing = Listing::parse(XML).unwrap();
        assert_eq!(listing.items.len(), 4);
        let first = listing.page(0, 2);
        assert!(first.contains("<RoleName>a</RoleName><Tags><member><Key>k</Key></member></Tags></member><member><RoleName>b</RoleName>"));
        assert!(!first.contains("<RoleName>c</RoleName>"));
        assert!(first.contains("<IsTruncated>true</IsTruncated><Marker>bench-page-1</Marker>"));
        assert!(first.starts_with(
            "<R xmlns=\"x\"><GetAccountAuthorizationDetailsResult><UserDetailList></UserDetailList>"
        ));
        assert!(first.ends_with("</GetAccountAuthorizationDetailsResult><ResponseMetadata/></R>"));
        let last = listing.page(1, 2);
        assert!(last.contains("<RoleDetailList><member><RoleName>c</RoleName></member></RoleDetailList><Policies><member><PolicyName>p</PolicyName></member></Policies><IsTruncated>false</IsTruncated>"));
    }

    #[test]
    fn form_bodies_are_decoded() {
        let f = form(b"Action=GetAccountAuthorizationDetails&Marker=bench-page-3&Filter.member.1=Role&X=a%2Fb+c");
        assert_eq!(f["Marker"], "bench-page-3");
        assert_eq!(f["X"], "a/b c");
    }
}
