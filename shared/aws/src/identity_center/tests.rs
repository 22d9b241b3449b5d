//! The SDK implementation against the SDK's mock client: the requests it sends and
//! how it reads the answers (moto serves most of these, but not the provisioning
//! status; the integration test runs the rest against it).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};

use aws_config::retry::RetryConfig;
use aws_sdk_identitystore::Client as Store;
use aws_sdk_identitystore::operation::get_user_id::GetUserIdOutput;
use aws_sdk_ssoadmin::Client as Sso;
use aws_sdk_ssoadmin::operation::describe_permission_set_provisioning_status::DescribePermissionSetProvisioningStatusOutput;
use aws_sdk_ssoadmin::operation::list_account_assignments_for_principal::ListAccountAssignmentsForPrincipalOutput;
use aws_sdk_ssoadmin::operation::provision_permission_set::ProvisionPermissionSetOutput;
use aws_sdk_ssoadmin::types::{
    AccountAssignmentForPrincipal, PermissionSetProvisioningStatus, PrincipalType,
    ProvisionTargetType, StatusValues,
};
use aws_smithy_mocks::{Rule, RuleMode, mock, mock_client};

use super::*;
use crate::ErrorKind;

const INSTANCE: &str = "arn:aws:sso:::instance/ssoins-7223a4f1b1a8e2c0";
const PS: &str = "arn:aws:sso:::permissionSet/ssoins-7223a4f1b1a8e2c0/ps-1a2b3c4d5e6f7a8b";

fn directory(sso: &[&Rule], store: &[&Rule]) -> SdkDirectory {
    directory_with(sso, store, &[])
}

fn directory_with(sso: &[&Rule], store: &[&Rule], organizations: &[&Rule]) -> SdkDirectory {
    SdkDirectory::new(
        mock_client!(aws_sdk_ssoadmin, RuleMode::MatchAny, sso, |c| c
            .retry_config(RetryConfig::disabled())),
        mock_client!(aws_sdk_identitystore, RuleMode::MatchAny, store, |c| c
            .retry_config(RetryConfig::disabled())),
        mock_client!(
            aws_sdk_organizations,
            RuleMode::MatchAny,
            organizations,
            |c| c.retry_config(RetryConfig::disabled())
        ),
    )
}

fn status(value: StatusValues, reason: Option<&str>) -> PermissionSetProvisioningStatus {
    PermissionSetProvisioningStatus::builder()
        .status(value)
        .request_id("3e2a-prov")
        .set_failure_reason(reason.map(str::to_owned))
        .build()
}

#[tokio::test]
async fn a_user_is_found_by_user_name_and_an_unknown_one_is_none() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let found = mock!(Store::get_user_id)
        .match_requests(|r| {
            matches!(r.alternate_identifier(), Some(aws_sdk_identitystore::types::AlternateIdentifier::UniqueAttribute(a))
                if a.attribute_value().as_string() == Some("alice@example.com"))
        })
        .then_compute_output({
            let seen = seen.clone();
            move |r| {
                seen.lock().unwrap().push(r.clone());
                GetUserIdOutput::builder()
                    .identity_store_id("d-9067a1b2c3")
                    // Upper case, as no identity store writes it: compared lowercased.
                    .user_id("906752D1-B1A2-4C3D-8E9F-0A1B2C3D4E5F")
                    .build()
                    .unwrap()
            }
        });
    let missing = mock!(Store::get_user_id).then_http_response(|| {
        aws_smithy_runtime_api::client::orchestrator::HttpResponse::new(
            aws_smithy_runtime_api::http::StatusCode::try_from(400).unwrap(),
            aws_smithy_types::body::SdkBody::from(
                r#"{"__type":"ResourceNotFoundException","Message":"no such user"}"#,
            ),
        )
    });
    let directory = directory(&[], &[&found, &missing]);
    let user = directory
        .user_id("d-9067a1b2c3", "alice@example.com")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(user.as_str(), "906752d1-b1a2-4c3d-8e9f-0a1b2c3d4e5f");
    let request = seen.lock().unwrap()[0].clone();
    assert_eq!(request.identity_store_id(), Some("d-9067a1b2c3"));
    let Some(aws_sdk_identitystore::types::AlternateIdentifier::UniqueAttribute(attribute)) =
        request.alternate_identifier()
    else {
        panic!("looked up by a unique attribute");
    };
    assert_eq!(attribute.attribute_path(), "userName");
    assert_eq!(
        directory.user_id("d-9067a1b2c3", "mallory").await.unwrap(),
        None
    );
}

#[tokio::test]
async fn a_user_id_that_is_not_one_is_refused_not_used() {
    let odd = mock!(Store::get_user_id).then_output(|| {
        GetUserIdOutput::builder()
            .identity_store_id("d-9067a1b2c3")
            .user_id("*")
            .build()
            .unwrap()
    });
    let err = directory(&[], &[&odd])
        .user_id("d-9067a1b2c3", "alice")
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Malformed);
}

#[tokio::test]
async fn assignments_are_read_page_by_page_for_users_and_groups() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let list = mock!(Sso::list_account_assignments_for_principal).then_compute_output({
        let seen = seen.clone();
        move |r| {
            seen.lock().unwrap().push(r.clone());
            ListAccountAssignmentsForPrincipalOutput::builder()
                .account_assignments(
                    AccountAssignmentForPrincipal::builder()
                        .account_id("444455556666")
                        .permission_set_arn(PS)
                        .build(),
                )
                .next_token("page-2")
                .build()
        }
    });
    let directory = directory(&[&list], &[]);
    let user = IdentityStoreUserId::parse("906752d1-b1a2-4c3d-8e9f-0a1b2c3d4e5f").unwrap();
    let page = directory
        .assignments(INSTANCE, &Assignee::User(user), Some("page-1".to_owned()))
        .await
        .unwrap();
    assert_eq!(page.next.as_deref(), Some("page-2"));
    assert_eq!(page.items[0].account.as_str(), "444455556666");
    assert_eq!(page.items[0].permission_set_arn, PS);
    directory
        .assignments(INSTANCE, &Assignee::Group("g-1".to_owned()), None)
        .await
        .unwrap();
    let seen = seen.lock().unwrap();
    assert_eq!(seen[0].principal_type(), Some(&PrincipalType::User));
    assert_eq!(seen[0].next_token(), Some("page-1"));
    assert_eq!(seen[1].principal_type(), Some(&PrincipalType::Group));
    assert_eq!(seen[1].principal_id(), Some("g-1"));
}

#[tokio::test]
async fn an_assignment_in_an_account_that_is_not_one_fails_the_list() {
    let odd = mock!(Sso::list_account_assignments_for_principal).then_output(|| {
        ListAccountAssignmentsForPrincipalOutput::builder()
            .account_assignments(
                AccountAssignmentForPrincipal::builder()
                    .account_id("12345")
                    .permission_set_arn(PS)
                    .build(),
            )
            .build()
    });
    let err = directory(&[&odd], &[])
        .assignments(INSTANCE, &Assignee::Group("g-1".to_owned()), None)
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Malformed);
}

#[tokio::test]
async fn provisioning_targets_one_account_or_all_and_reads_each_state() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let provision = mock!(Sso::provision_permission_set).then_compute_output({
        let seen = seen.clone();
        move |r| {
            seen.lock().unwrap().push(r.clone());
            ProvisionPermissionSetOutput::builder()
                .permission_set_provisioning_status(status(StatusValues::InProgress, None))
                .build()
        }
    });
    let states = mock!(Sso::describe_permission_set_provisioning_status)
        .sequence()
        .output(|| {
            DescribePermissionSetProvisioningStatusOutput::builder()
                .permission_set_provisioning_status(status(StatusValues::Succeeded, None))
                .build()
        })
        .output(|| {
            DescribePermissionSetProvisioningStatusOutput::builder()
                .permission_set_provisioning_status(status(
                    StatusValues::Failed,
                    Some("the role's inline policy is over its quota"),
                ))
                .build()
        })
        .build();
    let directory = directory(&[&provision, &states], &[]);
    let account = Account::parse("444455556666").unwrap();
    assert_eq!(
        directory
            .provision(INSTANCE, PS, Some(&account))
            .await
            .unwrap(),
        Provisioning::InProgress {
            request_id: "3e2a-prov".to_owned()
        }
    );
    directory.provision(INSTANCE, PS, None).await.unwrap();
    {
        let seen = seen.lock().unwrap();
        assert_eq!(
            seen[0].target_type(),
            Some(&ProvisionTargetType::AwsAccount)
        );
        assert_eq!(seen[0].target_id(), Some("444455556666"));
        assert_eq!(
            seen[1].target_type(),
            Some(&ProvisionTargetType::AllProvisionedAccounts)
        );
        assert_eq!(seen[1].target_id(), None);
    }
    assert_eq!(
        directory.provisioning(INSTANCE, "3e2a-prov").await.unwrap(),
        Provisioning::Succeeded
    );
    assert_eq!(
        directory.provisioning(INSTANCE, "3e2a-prov").await.unwrap(),
        Provisioning::Failed {
            reason: "the role's inline policy is over its quota".to_owned()
        }
    );
}

#[tokio::test]
async fn an_empty_inline_policy_is_none_and_access_denied_is_classified() {
    use aws_sdk_ssoadmin::operation::get_inline_policy_for_permission_set::GetInlinePolicyForPermissionSetOutput;
    let answers = mock!(Sso::get_inline_policy_for_permission_set)
        .sequence()
        .output(|| {
            GetInlinePolicyForPermissionSetOutput::builder()
                .inline_policy("")
                .build()
        })
        .http_response(|| {
            aws_smithy_runtime_api::client::orchestrator::HttpResponse::new(
                aws_smithy_runtime_api::http::StatusCode::try_from(400).unwrap(),
                aws_smithy_types::body::SdkBody::from(
                    r#"{"__type":"AccessDeniedException","Message":"not authorized"}"#,
                ),
            )
        })
        .build();
    let directory = directory(&[&answers], &[]);
    assert_eq!(directory.inline_policy(INSTANCE, PS).await.unwrap(), None);
    let err = directory.inline_policy(INSTANCE, PS).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::AccessDenied);
    assert_eq!(err.operation, "sso:GetInlinePolicyForPermissionSet");
}

#[tokio::test]
async fn a_conflict_while_a_permission_set_is_busy_is_retryable() {
    let busy = mock!(Sso::provision_permission_set).then_http_response(|| {
        aws_smithy_runtime_api::client::orchestrator::HttpResponse::new(
            aws_smithy_runtime_api::http::StatusCode::try_from(400).unwrap(),
            aws_smithy_types::body::SdkBody::from(
                r#"{"__type":"ConflictException","Message":"a provisioning is in progress"}"#,
            ),
        )
    });
    let err = directory(&[&busy], &[])
        .provision(INSTANCE, PS, None)
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Transient);
    assert!(err.is_retryable());
}

#[tokio::test]
async fn the_scp_variant_reads_only_a_service_control_policy_and_updates_it() {
    use aws_sdk_organizations::Client as Organizations;
    use aws_sdk_organizations::operation::describe_policy::DescribePolicyOutput;
    use aws_sdk_organizations::operation::update_policy::UpdatePolicyOutput;
    use aws_sdk_organizations::types::{Policy, PolicySummary, PolicyType};
    let policy = |kind: PolicyType| {
        DescribePolicyOutput::builder()
            .policy(
                Policy::builder()
                    .policy_summary(PolicySummary::builder().r#type(kind).build())
                    .content(r#"{"Version":"2012-10-17","Statement":[]}"#)
                    .build(),
            )
            .build()
    };
    let scp = mock!(Organizations::describe_policy)
        .match_requests(|r| r.policy_id() == Some("p-scp00001"))
        .then_output(move || policy(PolicyType::ServiceControlPolicy));
    let tags =
        mock!(Organizations::describe_policy).then_output(move || policy(PolicyType::TagPolicy));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let update = mock!(Organizations::update_policy).then_compute_output({
        let seen = seen.clone();
        move |r| {
            seen.lock().unwrap().push(r.clone());
            UpdatePolicyOutput::builder().build()
        }
    });
    let directory = directory_with(&[], &[], &[&scp, &tags, &update]);
    assert!(
        directory
            .service_control_policy("p-scp00001")
            .await
            .unwrap()
            .contains("Statement")
    );
    let err = directory
        .service_control_policy("p-tags0001")
        .await
        .unwrap_err();
    assert_eq!(
        err.kind,
        ErrorKind::Malformed,
        "a tag policy is never written"
    );
    directory
        .update_service_control_policy("p-scp00001", "{}")
        .await
        .unwrap();
    let seen = seen.lock().unwrap();
    assert_eq!(seen[0].policy_id(), Some("p-scp00001"));
    assert_eq!(seen[0].content(), Some("{}"));
}
