//! What the sweeper reads of an account: roles, users, their tags, inline policies and
//! attached managed policies, and the documents of cutoff's fallback managed policies,
//! through `iam:GetAccountAuthorizationDetails` pages instead of one call per principal.
//!
//! [`AuthorizationDetails::page`] is one call (one page, at most 1,000 items with
//! `Filter = [Role, User, LocalManagedPolicy]`). The call pages (`IsTruncated`/`Marker`);
//! moto, the local stand-in, never pages, so paging is tested here with mocks.
//!
//! # Managed policies on other pages
//!
//! IAM lists the managed policies of an account in the same paged stream as the roles
//! and users, so the fallback `cutoff-revoke-<name>` a role attaches may arrive on a
//! later page than the role. Only policies whose name starts with `cutoff-revoke-` are
//! kept (their default version's document), which bounds memory to the fallbacks that
//! exist. [`for_each_page`] hands out principals page by page; a principal that
//! attaches a `cutoff-revoke-*` policy whose document has not been seen yet is held
//! back (with nothing else of its page) until that document arrives, and released at
//! the end with whatever documents were found. So every principal handed out has all
//! the fallback documents IAM returned, while memory holds one page, the fallback
//! documents and the few principals waiting for theirs. A fallback deleted while the
//! account is read leaves its document missing, which [`cutoff_domain::sweep_rules::plan`] notes and
//! leaves alone. [`all_principals`] collects what [`for_each_page`] hands out.

use std::collections::HashMap;
use std::future::Future;

use aws_sdk_iam::types::{AttachedPolicy, EntityType, ManagedPolicyDetail, PolicyDetail, Tag};

use super::SdkIam;
use crate::error::{AwsError, ErrorKind, classify};
use cutoff_domain::principal::{Account, IamPath, PrincipalName, PrincipalType, UniqueId};
use cutoff_domain::sweep_rules::PrincipalSnapshot;

/// The operation name in errors and logs.
pub const OPERATION: &str = "iam:GetAccountAuthorizationDetails";
/// Managed policies kept from the listing: cutoff's fallbacks (`cutoff-revoke-<name>`).
pub const KEPT_POLICY_PREFIX: &str = "cutoff-revoke-";
/// IAM's largest page.
const MAX_ITEMS: i32 = 1000;

/// One page of `GetAccountAuthorizationDetails`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DetailsPage {
    /// The valid roles and users of this page, with the documents of the
    /// `cutoff-revoke-*` policies they attach that are on this page too.
    pub principals: Vec<PrincipalSnapshot>,
    /// ARN and default-version document (URL-encoded, as IAM returns it) of every
    /// `cutoff-revoke-*` customer-managed policy on this page, attached or not: a
    /// principal on another page may attach it.
    pub managed_documents: Vec<(String, String)>,
    /// The marker of the next page, None on the last.
    pub next_marker: Option<String>,
}

/// `iam:GetAccountAuthorizationDetails`.
pub trait AuthorizationDetails: Send + Sync {
    /// One page (one call, no retry): roles, users and customer-managed policies, at
    /// most 1,000 items, starting at `marker` (None for the first page). Principals
    /// whose name, path or id IAM returned invalid are skipped with a warning.
    fn page(
        &self,
        marker: Option<&str>,
    ) -> impl Future<Output = Result<DetailsPage, AwsError>> + Send;
}

/// Every principal of the account, each with the `cutoff-revoke-*` documents it
/// attaches, whatever page they were on. Holds the whole account in memory: prefer
/// [`for_each_page`] for large accounts.
pub async fn all_principals<A: AuthorizationDetails>(
    api: &A,
) -> Result<Vec<PrincipalSnapshot>, AwsError> {
    let mut all = Vec::new();
    for_each_page(api, |batch| all.extend(batch)).await?;
    Ok(all)
}

/// Reads the account page by page (one call per page through `api`: wrap it in
/// [`Retrying`](crate::retrying::Retrying) to retry and count) and hands the principals to `deliver` in batches, about one per page, so
/// that a sweep of 10,000 roles never holds them all. Empty batches are not delivered.
///
/// A principal that attaches a `cutoff-revoke-*` policy not seen yet is delivered in the
/// batch of the page that brings the document, or in a last batch after the last page
/// if it never comes (see the [module documentation](self)). Each principal is
/// delivered once. On an error nothing more is delivered: principals already handed
/// out were complete, the rest of the account was not read.
pub async fn for_each_page<A, F>(api: &A, mut deliver: F) -> Result<(), AwsError>
where
    A: AuthorizationDetails,
    F: FnMut(Vec<PrincipalSnapshot>),
{
    let mut joiner = Joiner::default();
    let mut marker: Option<String> = None;
    loop {
        let current = marker.as_deref();
        let page = api.page(current).await?;
        let ready = joiner.add_page(page.principals, page.managed_documents);
        if !ready.is_empty() {
            deliver(ready);
        }
        match page.next_marker {
            None => break,
            // A service that hands back the marker it was given would loop forever.
            Some(next) if marker.as_deref() == Some(next.as_str()) => {
                return Err(AwsError::new(
                    ErrorKind::Malformed,
                    OPERATION,
                    "following pages",
                    "the response repeats the marker of the request",
                ));
            }
            Some(next) => marker = Some(next),
        }
    }
    let rest = joiner.finish();
    if !rest.is_empty() {
        deliver(rest);
    }
    Ok(())
}

/// Joins principals with the `cutoff-revoke-*` documents of any page.
#[derive(Debug, Default)]
struct Joiner {
    documents: HashMap<String, String>,
    waiting: Vec<PrincipalSnapshot>,
}

impl Joiner {
    /// The principals now complete: waiting ones whose documents arrived, then this
    /// page's.
    fn add_page(
        &mut self,
        principals: Vec<PrincipalSnapshot>,
        documents: Vec<(String, String)>,
    ) -> Vec<PrincipalSnapshot> {
        self.documents.extend(documents);
        let mut ready = Vec::with_capacity(principals.len());
        let candidates = std::mem::take(&mut self.waiting);
        for mut principal in candidates.into_iter().chain(principals) {
            if fill_documents(&mut principal, &self.documents) {
                ready.push(principal);
            } else {
                self.waiting.push(principal);
            }
        }
        ready
    }

    /// The principals whose documents never came.
    fn finish(self) -> Vec<PrincipalSnapshot> {
        for principal in &self.waiting {
            tracing::debug!(
                kind = principal.kind.as_str(),
                name = %principal.name,
                "a cutoff-revoke managed policy attached to this principal was not listed"
            );
        }
        self.waiting
    }
}

/// Adds the known documents of the `cutoff-revoke-*` policies `principal` attaches;
/// true when none is missing.
fn fill_documents(principal: &mut PrincipalSnapshot, documents: &HashMap<String, String>) -> bool {
    let mut complete = true;
    for arn in &principal.attached {
        if !is_kept_policy_arn(arn) || principal.managed_documents.iter().any(|(a, _)| a == arn) {
            continue;
        }
        match documents.get(arn) {
            Some(document) => principal
                .managed_documents
                .push((arn.clone(), document.clone())),
            None => complete = false,
        }
    }
    complete
}

/// `arn:…:iam::<account>:policy/<path>cutoff-revoke-…`.
fn is_kept_policy_arn(arn: &str) -> bool {
    arn.split_once(":policy/")
        .and_then(|(_, rest)| rest.rsplit('/').next())
        .is_some_and(|name| name.starts_with(KEPT_POLICY_PREFIX))
}

impl AuthorizationDetails for SdkIam {
    async fn page(&self, marker: Option<&str>) -> Result<DetailsPage, AwsError> {
        let context = || format!("in {}", self.account());
        let out = self
            .client()
            .get_account_authorization_details()
            .filter(EntityType::Role)
            .filter(EntityType::User)
            .filter(EntityType::LocalManagedPolicy)
            .max_items(MAX_ITEMS)
            .set_marker(marker.map(str::to_owned))
            .send()
            .await
            .map_err(|e| classify(&e, OPERATION, context()))?;

        let next_marker = match (out.is_truncated(), out.marker()) {
            (false, _) => None,
            (true, Some(next)) if !next.is_empty() => Some(next.to_owned()),
            (true, _) => {
                return Err(AwsError::new(
                    ErrorKind::Malformed,
                    OPERATION,
                    context(),
                    "the response is truncated but has no marker",
                ));
            }
        };

        let managed_documents: Vec<(String, String)> = out
            .policies()
            .iter()
            .filter_map(|p| kept_policy(p, self))
            .collect();
        let on_page: HashMap<String, String> = managed_documents.iter().cloned().collect();

        let roles = out.role_detail_list().iter().filter_map(|r| {
            snapshot(
                self,
                Raw {
                    kind: PrincipalType::Role,
                    name: r.role_name(),
                    path: r.path(),
                    id: r.role_id(),
                    tags: r.tags(),
                    inline: r.role_policy_list(),
                    attached: r.attached_managed_policies(),
                },
            )
        });
        let users = out.user_detail_list().iter().filter_map(|u| {
            snapshot(
                self,
                Raw {
                    kind: PrincipalType::User,
                    name: u.user_name(),
                    path: u.path(),
                    id: u.user_id(),
                    tags: u.tags(),
                    inline: u.user_policy_list(),
                    attached: u.attached_managed_policies(),
                },
            )
        });
        let principals = roles
            .chain(users)
            .map(|mut p| {
                fill_documents(&mut p, &on_page);
                p
            })
            .collect();

        Ok(DetailsPage {
            principals,
            managed_documents,
            next_marker,
        })
    }
}

/// A role or user detail, as IAM returned it.
struct Raw<'a> {
    kind: PrincipalType,
    name: Option<&'a str>,
    path: Option<&'a str>,
    id: Option<&'a str>,
    tags: &'a [Tag],
    inline: &'a [PolicyDetail],
    attached: &'a [AttachedPolicy],
}

/// The snapshot of a principal, or None (with a warning) when IAM returned something
/// cutoff cannot act on safely.
fn snapshot(iam: &SdkIam, raw: Raw<'_>) -> Option<PrincipalSnapshot> {
    match parse_snapshot(iam.account(), &raw) {
        Ok(snapshot) => Some(snapshot),
        Err(why) => {
            tracing::warn!(
                operation = OPERATION,
                account = %iam.account(),
                kind = raw.kind.as_str(),
                name = ?raw.name,
                reason = %why,
                "skipping a principal iam returned invalid"
            );
            None
        }
    }
}

fn parse_snapshot(account: &Account, raw: &Raw<'_>) -> Result<PrincipalSnapshot, String> {
    let name =
        PrincipalName::parse(raw.name.ok_or("it has no name")?).map_err(|e| e.to_string())?;
    let path = IamPath::parse(raw.path.ok_or("it has no path")?).map_err(|e| e.to_string())?;
    let unique_id =
        UniqueId::parse(raw.id.ok_or("it has no unique id")?).map_err(|e| e.to_string())?;
    // A policy without its name or document would look absent to the sweep, which
    // could then overwrite it: the whole principal is skipped instead.
    let inline = raw
        .inline
        .iter()
        .map(|p| match (p.policy_name(), p.policy_document()) {
            (Some(n), Some(d)) => Ok((n.to_owned(), d.to_owned())),
            _ => Err("an inline policy has no name or no document".to_owned()),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let attached = raw
        .attached
        .iter()
        .map(|p| {
            p.policy_arn()
                .map(str::to_owned)
                .ok_or_else(|| "an attached managed policy has no ARN".to_owned())
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(PrincipalSnapshot {
        account: account.clone(),
        kind: raw.kind,
        name,
        path,
        unique_id,
        tags: raw
            .tags
            .iter()
            .map(|t| (t.key().to_owned(), t.value().to_owned()))
            .collect(),
        inline,
        attached,
        managed_documents: Vec::new(),
    })
}

/// ARN and default-version document of a `cutoff-revoke-*` policy; None for any other
/// policy, and (with a warning) for one whose default version is not in the listing.
fn kept_policy(policy: &ManagedPolicyDetail, iam: &SdkIam) -> Option<(String, String)> {
    // The ARN decides (its last segment is the name); moto leaves `PolicyName` out of
    // this listing, and a name that disagreed with the ARN would be IAM's bug, not a
    // reason to skip cutoff's own policy.
    let arn = match (policy.arn(), policy.policy_name()) {
        (Some(arn), _) => arn,
        (None, Some(name)) if name.starts_with(KEPT_POLICY_PREFIX) => {
            tracing::warn!(
                operation = OPERATION,
                account = %iam.account(),
                policy = name,
                "a cutoff-revoke managed policy came without its ARN; it is left out"
            );
            return None;
        }
        (None, _) => return None,
    };
    if !is_kept_policy_arn(arn) {
        return None;
    }
    let default = policy.default_version_id();
    let document = policy
        .policy_version_list()
        .iter()
        .find(|v| v.is_default_version() || (default.is_some() && v.version_id() == default))
        .and_then(|v| v.document());
    match document {
        Some(document) => Some((arn.to_owned(), document.to_owned())),
        None => {
            tracing::warn!(
                operation = OPERATION,
                account = %iam.account(),
                policy = arn,
                "a cutoff-revoke managed policy came without its default document; it is left out"
            );
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::retry::RetryPolicy;
    use crate::retrying::Retrying;
    use aws_config::retry::RetryConfig;
    use aws_sdk_iam::Client as Iam;
    use aws_sdk_iam::operation::get_account_authorization_details::GetAccountAuthorizationDetailsOutput as Out;
    use aws_sdk_iam::types::{PolicyVersion, RoleDetail, UserDetail};
    use aws_smithy_mocks::{RuleMode, mock, mock_client};
    use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
    use aws_smithy_runtime_api::http::StatusCode;
    use aws_smithy_types::body::SdkBody;

    use cutoff_domain::principal::{Account, Partition};

    macro_rules! mocked {
        ($rules:expr) => {
            mock_client!(aws_sdk_iam, RuleMode::Sequential, $rules, |c| c
                .retry_config(RetryConfig::disabled()))
        };
    }

    const HOME: &str = "111122223333";
    const FALLBACK_ARN: &str = "arn:aws:iam::111122223333:policy/cutoff/cutoff-revoke-payments-api";
    const OTHER_ARN: &str = "arn:aws:iam::111122223333:policy/team-readonly";
    const AWS_ARN: &str = "arn:aws:iam::aws:policy/ReadOnlyAccess";
    const DOC: &str = "%7B%22Version%22%3A%222012-10-17%22%2C%22Statement%22%3A%5B%5D%7D";
    const OLD_DOC: &str = "%7B%22Version%22%3A%222012-10-17%22%7D";

    fn sdk(client: Iam) -> SdkIam {
        SdkIam::new(client, Account::parse(HOME).unwrap(), Partition::Aws)
    }

    fn http_error(status: u16, code: &str, message: &str) -> HttpResponse {
        let body = format!(
            "<ErrorResponse xmlns=\"https://iam.amazonaws.com/doc/2010-05-08/\">\
             <Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error>\
             <RequestId>4b1f7c52-0000-0000-0000-000000000000</RequestId></ErrorResponse>"
        );
        HttpResponse::new(StatusCode::try_from(status).unwrap(), SdkBody::from(body))
    }

    fn tag(k: &str, v: &str) -> Tag {
        Tag::builder().key(k).value(v).build().unwrap()
    }

    fn inline(name: &str, doc: &str) -> PolicyDetail {
        PolicyDetail::builder()
            .policy_name(name)
            .policy_document(doc)
            .build()
    }

    fn attached(arn: &str) -> AttachedPolicy {
        let name = arn.rsplit('/').next().unwrap();
        AttachedPolicy::builder()
            .policy_name(name)
            .policy_arn(arn)
            .build()
    }

    fn role(name: &str, id: &str) -> RoleDetail {
        RoleDetail::builder()
            .path("/")
            .role_name(name)
            .role_id(id)
            .arn(format!("arn:aws:iam::{HOME}:role/{name}"))
            .build()
    }

    fn payments_role() -> RoleDetail {
        RoleDetail::builder()
            .path("/service/")
            .role_name("payments-api")
            .role_id("AROAEXAMPLEROLEID0001")
            .arn("arn:aws:iam::111122223333:role/service/payments-api")
            .tags(tag("cutoff:owner", "payments"))
            .tags(tag("cutoff:max-session-age", "4h"))
            .role_policy_list(inline("AWSRevokeOlderSessions", DOC))
            .role_policy_list(inline("app", OLD_DOC))
            .attached_managed_policies(attached(FALLBACK_ARN))
            .attached_managed_policies(attached(AWS_ARN))
            .build()
    }

    fn fallback_policy() -> ManagedPolicyDetail {
        ManagedPolicyDetail::builder()
            .policy_name("cutoff-revoke-payments-api")
            .arn(FALLBACK_ARN)
            .path("/cutoff/")
            .default_version_id("v2")
            .policy_version_list(
                PolicyVersion::builder()
                    .version_id("v1")
                    .is_default_version(false)
                    .document(OLD_DOC)
                    .build(),
            )
            .policy_version_list(
                PolicyVersion::builder()
                    .version_id("v2")
                    .is_default_version(true)
                    .document(DOC)
                    .build(),
            )
            .build()
    }

    fn other_policy() -> ManagedPolicyDetail {
        ManagedPolicyDetail::builder()
            .policy_name("team-readonly")
            .arn(OTHER_ARN)
            .default_version_id("v1")
            .policy_version_list(
                PolicyVersion::builder()
                    .version_id("v1")
                    .is_default_version(true)
                    .document(DOC)
                    .build(),
            )
            .build()
    }

    fn names(principals: &[PrincipalSnapshot]) -> Vec<&str> {
        principals.iter().map(|p| p.name.as_str()).collect()
    }

    #[tokio::test]
    async fn a_role_maps_with_tags_inline_policies_attachments_and_its_fallback_document() {
        let rule = mock!(Iam::get_account_authorization_details)
            .match_requests(|r| {
                r.marker().is_none()
                    && r.max_items() == Some(1000)
                    && r.filter()
                        == [
                            EntityType::Role,
                            EntityType::User,
                            EntityType::LocalManagedPolicy,
                        ]
            })
            .then_output(|| {
                Out::builder()
                    .role_detail_list(payments_role())
                    .policies(other_policy())
                    .policies(fallback_policy())
                    .is_truncated(false)
                    .build()
            });
        let iam = sdk(mocked!([&rule]));
        let page = iam.page(None).await.unwrap();
        assert_eq!(page.next_marker, None);
        assert_eq!(
            page.managed_documents,
            vec![(FALLBACK_ARN.to_owned(), DOC.to_owned())],
            "only cutoff-revoke-* policies are kept, with their default version"
        );
        let [role] = page.principals.as_slice() else {
            panic!("one principal expected: {:?}", page.principals)
        };
        assert_eq!(role.kind, PrincipalType::Role);
        assert_eq!(role.name.as_str(), "payments-api");
        assert_eq!(role.path.as_str(), "/service/");
        assert_eq!(role.unique_id.as_str(), "AROAEXAMPLEROLEID0001");
        assert_eq!(
            role.tags,
            vec![
                ("cutoff:owner".to_owned(), "payments".to_owned()),
                ("cutoff:max-session-age".to_owned(), "4h".to_owned()),
            ]
        );
        assert_eq!(role.tag("cutoff:max-session-age"), Some("4h"));
        assert_eq!(
            role.inline,
            vec![
                ("AWSRevokeOlderSessions".to_owned(), DOC.to_owned()),
                ("app".to_owned(), OLD_DOC.to_owned()),
            ],
            "documents stay URL-encoded, as IAM returns them"
        );
        assert_eq!(role.attached, vec![FALLBACK_ARN, AWS_ARN]);
        assert_eq!(
            role.managed_documents,
            vec![(FALLBACK_ARN.to_owned(), DOC.to_owned())]
        );
    }

    #[tokio::test]
    async fn a_user_maps_from_the_user_detail_list() {
        let rule = mock!(Iam::get_account_authorization_details).then_output(|| {
            Out::builder()
                .user_detail_list(
                    UserDetail::builder()
                        .path("/people/")
                        .user_name("alice")
                        .user_id("AIDAEXAMPLEUSERID0001")
                        .arn("arn:aws:iam::111122223333:user/people/alice")
                        .tags(tag("cutoff:owner", "alice"))
                        .user_policy_list(inline("CutoffRevokedSessions", DOC))
                        .attached_managed_policies(attached(OTHER_ARN))
                        .group_list("admins")
                        .build(),
                )
                .is_truncated(false)
                .build()
        });
        let iam = sdk(mocked!([&rule]));
        let page = iam.page(None).await.unwrap();
        assert_eq!(
            page.principals,
            vec![PrincipalSnapshot {
                account: iam.account().clone(),
                kind: PrincipalType::User,
                name: PrincipalName::parse("alice").unwrap(),
                path: IamPath::parse("/people/").unwrap(),
                unique_id: UniqueId::parse("AIDAEXAMPLEUSERID0001").unwrap(),
                tags: vec![("cutoff:owner".to_owned(), "alice".to_owned())],
                inline: vec![("CutoffRevokedSessions".to_owned(), DOC.to_owned())],
                attached: vec![OTHER_ARN.to_owned()],
                managed_documents: Vec::new(),
            }]
        );
    }

    /// Page 1 has the role that attaches the fallback, page 3 the fallback itself.
    fn three_pages() -> [aws_smithy_mocks::Rule; 3] {
        let first = mock!(Iam::get_account_authorization_details)
            .match_requests(|r| r.marker().is_none())
            .then_output(|| {
                Out::builder()
                    .role_detail_list(payments_role())
                    .role_detail_list(role("first-a", "AROAEXAMPLEROLEID0002"))
                    .is_truncated(true)
                    .marker("m1")
                    .build()
            });
        let second = mock!(Iam::get_account_authorization_details)
            .match_requests(|r| r.marker() == Some("m1"))
            .then_output(|| {
                Out::builder()
                    .role_detail_list(role("second-a", "AROAEXAMPLEROLEID0003"))
                    .policies(other_policy())
                    .is_truncated(true)
                    .marker("m2")
                    .build()
            });
        let third = mock!(Iam::get_account_authorization_details)
            .match_requests(|r| r.marker() == Some("m2"))
            .then_output(|| {
                Out::builder()
                    .role_detail_list(role("third-a", "AROAEXAMPLEROLEID0004"))
                    .policies(fallback_policy())
                    .is_truncated(false)
                    .build()
            });
        [first, second, third]
    }

    #[tokio::test]
    async fn all_principals_follows_markers_and_joins_documents_from_later_pages() {
        let [first, second, third] = three_pages();
        let iam = sdk(mocked!([&first, &second, &third]));
        let iam = Retrying::new(&iam, RetryPolicy::immediate(3));
        let all = all_principals(&iam).await.unwrap();
        assert_eq!(iam.calls(), 3);
        assert_eq!(
            (first.num_calls(), second.num_calls(), third.num_calls()),
            (1, 1, 1)
        );
        let mut got = names(&all);
        got.sort_unstable();
        assert_eq!(got, ["first-a", "payments-api", "second-a", "third-a"]);
        let payments = all
            .iter()
            .find(|p| p.name.as_str() == "payments-api")
            .unwrap();
        assert_eq!(
            payments.managed_documents,
            vec![(FALLBACK_ARN.to_owned(), DOC.to_owned())]
        );
    }

    #[tokio::test]
    async fn for_each_page_delivers_per_page_and_holds_back_only_principals_awaiting_a_document() {
        let [first, second, third] = three_pages();
        let iam = sdk(mocked!([&first, &second, &third]));

        let mut batches: Vec<Vec<PrincipalSnapshot>> = Vec::new();
        let iam = Retrying::new(&iam, RetryPolicy::immediate(3));
        for_each_page(&iam, |b| batches.push(b)).await.unwrap();
        assert_eq!(iam.calls(), 3);
        let batch_names: Vec<Vec<&str>> = batches.iter().map(|b| names(b)).collect();
        assert_eq!(
            batch_names,
            vec![
                vec!["first-a"],
                vec!["second-a"],
                vec!["payments-api", "third-a"]
            ]
        );
        assert_eq!(
            batches[2][0].managed_documents,
            vec![(FALLBACK_ARN.to_owned(), DOC.to_owned())]
        );
    }

    #[tokio::test]
    async fn a_fallback_never_listed_releases_its_principal_at_the_end_without_it() {
        let rule = mock!(Iam::get_account_authorization_details).then_output(|| {
            Out::builder()
                .role_detail_list(payments_role())
                .is_truncated(false)
                .build()
        });
        let iam = sdk(mocked!([&rule]));
        let mut batches = Vec::new();
        for_each_page(&iam, |b| batches.push(b)).await.unwrap();
        assert_eq!(batches.len(), 1);
        assert_eq!(names(&batches[0]), ["payments-api"]);
        assert!(batches[0][0].managed_documents.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn throttling_is_retried_with_the_same_marker() {
        let first = mock!(Iam::get_account_authorization_details)
            .match_requests(|r| r.marker().is_none())
            .then_output(|| {
                Out::builder()
                    .role_detail_list(role("first-a", "AROAEXAMPLEROLEID0002"))
                    .is_truncated(true)
                    .marker("m1")
                    .build()
            });
        let throttled = mock!(Iam::get_account_authorization_details)
            .match_requests(|r| r.marker() == Some("m1"))
            .then_http_response(|| http_error(400, "Throttling", "Rate exceeded"));
        let second = mock!(Iam::get_account_authorization_details)
            .match_requests(|r| r.marker() == Some("m1"))
            .then_output(|| {
                Out::builder()
                    .role_detail_list(role("second-a", "AROAEXAMPLEROLEID0003"))
                    .is_truncated(false)
                    .build()
            });
        let iam = sdk(mocked!([&first, &throttled, &second]));
        let iam = Retrying::new(&iam, RetryPolicy::default());
        let all = all_principals(&iam).await.unwrap();
        assert_eq!(names(&all), ["first-a", "second-a"]);
        assert_eq!(iam.calls(), 3);
        assert_eq!(throttled.num_calls(), 1);
    }

    #[tokio::test]
    async fn access_denied_is_fatal_and_not_retried() {
        let denied = mock!(Iam::get_account_authorization_details).then_http_response(|| {
            http_error(
                403,
                "AccessDenied",
                "User: x is not authorized to perform: iam:GetAccountAuthorizationDetails",
            )
        });
        let iam = sdk(mocked!([&denied]));

        let mut delivered = 0;
        let iam = Retrying::new(&iam, RetryPolicy::immediate(5));
        let err = for_each_page(&iam, |b| delivered += b.len())
            .await
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::AccessDenied);
        assert_eq!(err.operation, "iam:GetAccountAuthorizationDetails");
        assert_eq!(err.context, "in 111122223333");
        assert_eq!(iam.calls(), 1);
        assert_eq!(delivered, 0);
    }

    #[tokio::test]
    async fn principals_with_invalid_names_paths_or_ids_are_skipped() {
        let rule = mock!(Iam::get_account_authorization_details).then_output(|| {
            Out::builder()
                .role_detail_list(role("good", "AROAEXAMPLEROLEID0002"))
                .role_detail_list(role("bad..name", "AROAEXAMPLEROLEID0003"))
                .role_detail_list(role("", "AROAEXAMPLEROLEID0004"))
                .role_detail_list(role("no-id-here", "not a valid id!"))
                .role_detail_list(
                    RoleDetail::builder()
                        .path("no-slashes")
                        .role_name("bad-path")
                        .role_id("AROAEXAMPLEROLEID0005")
                        .build(),
                )
                .role_detail_list(
                    RoleDetail::builder()
                        .path("/")
                        .role_id("AROAEXAMPLEROLEID0006")
                        .build(),
                )
                .role_detail_list(
                    RoleDetail::builder()
                        .path("/")
                        .role_name("doc-missing")
                        .role_id("AROAEXAMPLEROLEID0007")
                        .role_policy_list(PolicyDetail::builder().policy_name("p").build())
                        .build(),
                )
                .user_detail_list(
                    UserDetail::builder()
                        .path("/")
                        .user_name("a b")
                        .user_id("AIDAEXAMPLEUSERID0001")
                        .build(),
                )
                .is_truncated(false)
                .build()
        });
        let iam = sdk(mocked!([&rule]));
        let page = iam.page(None).await.unwrap();
        assert_eq!(names(&page.principals), ["good"]);
    }

    #[tokio::test]
    async fn a_truncated_page_without_a_marker_or_a_repeated_marker_is_an_error() {
        let no_marker = mock!(Iam::get_account_authorization_details)
            .then_output(|| Out::builder().is_truncated(true).build());
        let iam = sdk(mocked!([&no_marker]));
        let err = iam.page(None).await.unwrap_err();
        assert_eq!(err.kind, ErrorKind::Malformed);

        let first = mock!(Iam::get_account_authorization_details)
            .then_output(|| Out::builder().is_truncated(true).marker("m1").build());
        let again = mock!(Iam::get_account_authorization_details)
            .then_output(|| Out::builder().is_truncated(true).marker("m1").build());
        let iam = sdk(mocked!([&first, &again]));
        let iam = Retrying::new(&iam, RetryPolicy::immediate(3));
        let err = all_principals(&iam).await.unwrap_err();
        assert_eq!(err.kind, ErrorKind::Malformed);
        assert_eq!(iam.calls(), 2);
    }

    #[test]
    fn a_fallback_listed_without_its_name_is_kept_by_its_arn() {
        let iam = sdk(Iam::from_conf(
            aws_sdk_iam::Config::builder()
                .behavior_version(aws_config::BehaviorVersion::latest())
                .region(aws_config::Region::new("us-east-1"))
                .build(),
        ));
        let mut nameless = fallback_policy();
        nameless.policy_name = None;
        let kept = kept_policy(&nameless, &iam).expect("kept by its ARN");
        assert_eq!(kept.0, FALLBACK_ARN);
        assert!(kept_policy(&other_policy(), &iam).is_none());
    }

    #[test]
    fn kept_policy_arns_are_cutoff_revoke_at_any_path() {
        assert!(is_kept_policy_arn(FALLBACK_ARN));
        assert!(is_kept_policy_arn(
            "arn:aws:iam::111122223333:policy/cutoff-revoke-x"
        ));
        assert!(!is_kept_policy_arn(OTHER_ARN));
        assert!(!is_kept_policy_arn(
            "arn:aws:iam::111122223333:policy/cutoff-revoke/other"
        ));
        assert!(!is_kept_policy_arn("not-an-arn"));
    }
}
