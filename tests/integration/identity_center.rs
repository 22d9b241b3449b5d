//! Identity Center users (issue [11] item 6) through the real functions: a GuardDuty
//! finding on a permission set's role session into intake, the revoker (with the
//! integration on) assuming the Identity Center role and denying the user in every
//! permission set they can use in moto's SSO admin and identity store, the owner's
//! message, and a release by direct invoke. The independent evaluator decides that
//! the permission set's inline policy, as read back from moto, denies that user and
//! no other.
//!
//! What moto cannot show: it provisions at once (`SUCCEEDED` in the response, so the
//! status polling runs only against the fake and the SDK's mock client), does not put
//! the policy on the reserved roles in the accounts, lists only direct assignments of
//! a principal (groups are asked one by one, as cutoff does), and enforces no IAM.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::{Value, json};

use cutoff_domain::identity_center::{IdentityStoreUserId, denies_user};
use cutoff_tests::aws::{ACCOUNT, REGION, sdk_config_in};
use cutoff_tests::evaluator::{Decision, EvalRequest, evaluate};
use cutoff_tests::function_url::{FunctionUrl, Identity};
use cutoff_tests::moto::MotoServer;
use cutoff_tests::pipeline::Pipeline;
use cutoff_tests::runtime::revoker_on_moto;

/// The account that administers Identity Center (the Organization's management
/// account): its own moto backends, so no other test shares its instance.
const IDENTITY_ACCOUNT: &str = "333344445555";
// Names of its own on the shared server (revoke.rs has the 0123456789abcdef one).
const ROLE: &str = "AWSReservedSSO_Admin_1a2b3c4d5e6f7a8b";
const SSO_PATH: &str = "/aws-reserved/sso.amazonaws.com/us-east-1/";
const THEIRS: &str = r#"{"Version":"2012-10-17","Statement":[{"Sid":"NoLeavingTheOrg","Effect":"Deny","Action":"organizations:LeaveOrganization","Resource":"*"}]}"#;

struct Directory {
    sso: aws_sdk_ssoadmin::Client,
    instance: String,
    alice: String,
    bob: String,
    admin: String,
    read_only: String,
}

/// Alice holds Admin in the finding's account directly and ReadOnly through her
/// group; Bob holds ReadOnly only.
/// `target` is the account where the assignments are (the findings').
async fn directory(endpoint: &str, account: &str, target: &str) -> Directory {
    let config = sdk_config_in(endpoint, account).await;
    let sso = aws_sdk_ssoadmin::Client::new(&config);
    let store = aws_sdk_identitystore::Client::new(&config);
    let instances = sso.list_instances().send().await.unwrap();
    let instance = &instances.instances()[0];
    let (instance_arn, store_id) = (
        instance.instance_arn().unwrap().to_owned(),
        instance.identity_store_id().unwrap().to_owned(),
    );
    let user = |name: &'static str| {
        let (store, store_id) = (store.clone(), store_id.clone());
        async move {
            store
                .create_user()
                .identity_store_id(store_id)
                .user_name(name)
                .display_name(name)
                .name(
                    aws_sdk_identitystore::types::Name::builder()
                        .given_name(name)
                        .family_name("Example")
                        .build(),
                )
                .send()
                .await
                .unwrap()
                .user_id()
                .to_owned()
        }
    };
    let (alice, bob) = (
        user("alice@example.com").await,
        user("bob@example.com").await,
    );
    let group = store
        .create_group()
        .identity_store_id(&store_id)
        .display_name("engineers")
        .send()
        .await
        .unwrap()
        .group_id()
        .to_owned();
    store
        .create_group_membership()
        .identity_store_id(&store_id)
        .group_id(&group)
        .member_id(aws_sdk_identitystore::types::MemberId::UserId(
            alice.clone(),
        ))
        .send()
        .await
        .unwrap();
    let permission_set = |name: &'static str| {
        let (sso, instance_arn) = (sso.clone(), instance_arn.clone());
        async move {
            sso.create_permission_set()
                .instance_arn(instance_arn)
                .name(name)
                // moto echoes its default as a number, which the SDK refuses: given
                // as AWS writes it, it is echoed so.
                .session_duration("PT1H")
                .send()
                .await
                .unwrap()
                .permission_set()
                .unwrap()
                .permission_set_arn()
                .unwrap()
                .to_owned()
        }
    };
    let (admin, read_only) = (
        permission_set("Admin").await,
        permission_set("ReadOnly").await,
    );
    sso.put_inline_policy_to_permission_set()
        .instance_arn(&instance_arn)
        .permission_set_arn(&admin)
        .inline_policy(THEIRS)
        .send()
        .await
        .unwrap();
    for (principal, kind, set) in [
        (&alice, aws_sdk_ssoadmin::types::PrincipalType::User, &admin),
        (
            &group,
            aws_sdk_ssoadmin::types::PrincipalType::Group,
            &read_only,
        ),
        (
            &bob,
            aws_sdk_ssoadmin::types::PrincipalType::User,
            &read_only,
        ),
    ] {
        sso.create_account_assignment()
            .instance_arn(&instance_arn)
            .target_id(target)
            .target_type(aws_sdk_ssoadmin::types::TargetType::AwsAccount)
            .permission_set_arn(set)
            .principal_type(kind)
            .principal_id(principal)
            .send()
            .await
            .unwrap();
    }
    Directory {
        sso,
        instance: instance_arn,
        alice,
        bob,
        admin,
        read_only,
    }
}

impl Directory {
    async fn inline(&self, set: &str) -> Option<String> {
        self.sso
            .get_inline_policy_for_permission_set()
            .instance_arn(&self.instance)
            .permission_set_arn(set)
            .send()
            .await
            .unwrap()
            .inline_policy()
            .filter(|p| !p.is_empty())
            .map(str::to_owned)
    }
}

fn finding(account: &str, role: &str, role_id: &str, session: &str) -> Value {
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    json!({
        "version": "0", "id": "evt-sso", "detail-type": "GuardDuty Finding", "source": "aws.guardduty",
        "account": ACCOUNT, "time": now, "region": REGION, "resources": [],
        "detail": {
            "schemaVersion": "2.0", "accountId": account, "region": REGION, "partition": "aws",
            "id": "55550000555500005555000055550001",
            "arn": format!("arn:aws:guardduty:{REGION}:{account}:detector/d/finding/55550000555500005555000055550001"),
            "type": "CredentialAccess:IAMUser/AnomalousBehavior",
            "resource": {"resourceType": "AccessKey", "accessKeyDetails": {
                "accessKeyId": "ASIASSOSESSIONKEY001", "principalId": format!("{role_id}:{session}"),
                "userName": role, "userType": "AssumedRole"}},
            "service": {"serviceName": "guardduty", "archived": false, "count": 1,
                "eventFirstSeen": now, "eventLastSeen": now,
                "additionalInfo": {"sample": false}},
            "severity": 8.0, "createdAt": now, "updatedAt": now,
            "title": "APIs commonly used to access credentials were invoked by a user's session."
        }
    })
}

/// What the evaluator decides for a session of `user_id` under the set's policy.
fn decide(document: &str, user_id: &str) -> Decision {
    evaluate(
        &EvalRequest::new(
            "s3:GetObject",
            "arn:aws:s3:::payments-exports/cards.csv",
            &format!("arn:aws:iam::{ACCOUNT}:role{SSO_PATH}{ROLE}"),
        )
        .policy(json!({"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}))
        .policy(serde_json::from_str::<Value>(document).unwrap())
        .context("identitystore:userId", user_id),
    )
    .decision
}

#[tokio::test]
async fn an_identity_center_user_is_denied_in_every_permission_set_by_the_real_functions_and_released()
 {
    let moto = MotoServer::shared();
    let d = directory(moto.endpoint(), IDENTITY_ACCOUNT, ACCOUNT).await;
    let mut p = Pipeline::start(
        moto,
        "sso0",
        &[
            (
                "CUTOFF_IDENTITY_CENTER_ROLE_ARN",
                &*format!("arn:aws:iam::{IDENTITY_ACCOUNT}:role/cutoff-identity-center"),
            ),
            ("CUTOFF_IDENTITY_CENTER_REGION", REGION),
        ],
    )
    .await;
    p.iam
        .create_role()
        .role_name(ROLE)
        .path(SSO_PATH)
        .assume_role_policy_document(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Federated":"arn:aws:iam::123456789012:saml-provider/AWSSSO_0123456789abcdef_DO_NOT_DELETE"},"Action":["sts:AssumeRoleWithSAML","sts:TagSession"]}]}"#,
        )
        .tags(
            aws_sdk_iam::types::Tag::builder()
                .key("cutoff:owner")
                .value("payments")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let role_id = p.role_id(ROLE).await;

    let report = p.send_event(&finding(ACCOUNT, ROLE, &role_id, "alice@example.com"));
    assert_eq!(report["queued"], 1, "{report}");
    p.drain_requests(10).await;
    let outcomes = p.drain_outcomes().await;
    let outcome = outcomes
        .iter()
        .map(|(event, _)| &event["detail"])
        .find(|o| o["identity_center"].is_object())
        .unwrap_or_else(|| panic!("an Identity Center outcome: {outcomes:#?}"));
    assert_eq!(outcome["status"], "applied", "{outcome:#}");
    assert_eq!(outcome["identity_center"]["user_id"], d.alice.as_str());
    let sets: Vec<(&str, &str)> = outcome["identity_center"]["permission_sets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["name"].as_str().unwrap(), s["state"].as_str().unwrap()))
        .collect();
    assert_eq!(sets, [("Admin", "denied"), ("ReadOnly", "denied")]);

    // Read back from moto: the deny in both of her sets, their statement kept, and
    // by the evaluator her sessions are denied, Bob's (in ReadOnly too) are not.
    let alice = IdentityStoreUserId::parse(&d.alice).unwrap();
    let admin = d.inline(&d.admin).await.unwrap();
    let read_only = d.inline(&d.read_only).await.unwrap();
    assert!(denies_user(&admin, &alice) && admin.contains("NoLeavingTheOrg"));
    assert!(denies_user(&read_only, &alice));
    assert_eq!(decide(&read_only, &d.alice), Decision::ExplicitlyDenied);
    assert_eq!(decide(&read_only, &d.bob), Decision::Allowed);
    // The reserved role itself is never written (IAM refuses it).
    let role_policies = p
        .iam
        .list_role_policies()
        .role_name(ROLE)
        .send()
        .await
        .unwrap();
    assert!(role_policies.policy_names().is_empty());

    // The owner is told, with the step only a person can take.
    let inbox = p.inbox(&p.payments_topic.clone()).await;
    let message = inbox
        .iter()
        .find(|n| n.message.contains("Identity Center user"))
        .unwrap_or_else(|| panic!("the owner's message: {inbox:#?}"));
    assert!(
        message.message.contains("disable the user"),
        "{}",
        message.message
    );

    // Released by an operator, through the operator path (the function URL with IAM
    // auth; a plain invoke may not release): gone from both sets, theirs kept.
    let operator = Identity::role_session(ACCOUNT, "CutoffBreakGlassOperator", "carol", "CAROL1");
    let url = FunctionUrl::start(
        revoker_on_moto(
            moto.endpoint(),
            &[
                (
                    "CUTOFF_IDENTITY_CENTER_ROLE_ARN",
                    &*format!("arn:aws:iam::{IDENTITY_ACCOUNT}:role/cutoff-identity-center"),
                ),
                ("CUTOFF_IDENTITY_CENTER_REGION", REGION),
            ],
        ),
        vec![operator.clone()],
        &["arn:aws:iam::123456789012:role/CutoffBreakGlassOperator"],
    );
    let body = json!({
        "action": "release", "account": ACCOUNT, "role": ROLE, "session": "alice@example.com",
        "reason": "INC-77 closed"
    });
    let released = url.post_signed(&operator, &body.to_string()).json();
    assert_eq!(released["status"], "released", "{released:#}");
    assert_eq!(
        released["trigger"]["requested_by"],
        operator.arn.as_str(),
        "{released:#}"
    );
    let admin = d.inline(&d.admin).await.unwrap();
    assert!(!denies_user(&admin, &alice) && admin.contains("NoLeavingTheOrg"));
    assert_eq!(d.inline(&d.read_only).await, None);
}

/// The SCP variant through the real functions: the user's deny in cutoff's service
/// control policy in moto's Organizations (its placeholder gone while she is denied,
/// back after the release), and no permission set touched.
#[tokio::test]
async fn the_scp_variant_denies_the_user_in_cutoffs_service_control_policy_through_the_real_functions()
 {
    const MANAGEMENT: &str = "333344446666";
    let moto = MotoServer::shared();
    let management = sdk_config_in(moto.endpoint(), MANAGEMENT).await;
    let organizations = aws_sdk_organizations::Client::new(&management);
    organizations
        .create_organization()
        .feature_set(aws_sdk_organizations::types::OrganizationFeatureSet::All)
        .send()
        .await
        .unwrap();
    // The finding's account, a member of this Organization (moto numbers it).
    let created = organizations
        .create_account()
        .account_name("workloads")
        .email("workloads@example.com")
        .send()
        .await
        .unwrap();
    let member = created
        .create_account_status()
        .and_then(|s| s.account_id())
        .unwrap()
        .to_owned();
    let d = directory(moto.endpoint(), MANAGEMENT, &member).await;
    let placeholder = json!({"Version": "2012-10-17", "Statement": [cutoff_domain::identity_center::scp_placeholder()]});
    let policy_id = organizations
        .create_policy()
        .name("cutoff-identity-center-deny")
        .description("written by cutoff")
        .r#type(aws_sdk_organizations::types::PolicyType::ServiceControlPolicy)
        .content(placeholder.to_string())
        .send()
        .await
        .unwrap()
        .policy()
        .and_then(|p| p.policy_summary())
        .and_then(|s| s.id())
        .unwrap()
        .to_owned();
    let content = |organizations: aws_sdk_organizations::Client, id: String| async move {
        organizations
            .describe_policy()
            .policy_id(id)
            .send()
            .await
            .unwrap()
            .policy()
            .and_then(|p| p.content())
            .unwrap()
            .to_owned()
    };
    let role_arn = format!("arn:aws:iam::{MANAGEMENT}:role/cutoff-identity-center");
    let env = [
        ("CUTOFF_IDENTITY_CENTER_ROLE_ARN", role_arn.as_str()),
        ("CUTOFF_IDENTITY_CENTER_REGION", REGION),
        ("CUTOFF_IDENTITY_CENTER_SCP_ID", policy_id.as_str()),
    ];
    let mut p = Pipeline::start(moto, "sso1", &env).await;
    // The permission set's role in the member account.
    const SCP_ROLE: &str = "AWSReservedSSO_Admin_0fedcba987654321";
    let member_iam = aws_sdk_iam::Client::new(&sdk_config_in(moto.endpoint(), &member).await);
    member_iam
        .create_role()
        .role_name(SCP_ROLE)
        .path(SSO_PATH)
        .assume_role_policy_document(r#"{"Version":"2012-10-17","Statement":[]}"#)
        .send()
        .await
        .unwrap();
    let role_id = member_iam
        .get_role()
        .role_name(SCP_ROLE)
        .send()
        .await
        .unwrap()
        .role()
        .unwrap()
        .role_id()
        .to_owned();
    // Not attached yet: in cutoff's policy, but it reaches no account.
    let report = p.send_event(&finding(&member, SCP_ROLE, &role_id, "alice@example.com"));
    assert_eq!(report["queued"], 1, "{report}");
    p.drain_requests(10).await;
    let unattached = p
        .drain_outcomes()
        .await
        .into_iter()
        .map(|(event, _)| event["detail"].clone())
        .find(|o| o["identity_center"].is_object())
        .unwrap();
    assert_eq!(unattached["status"], "partial", "{unattached:#}");
    assert!(
        unattached["detail"]
            .as_str()
            .unwrap()
            .contains("not attached"),
        "{unattached:#}"
    );
    // Attached to the root: the account is reached.
    let root = organizations.list_roots().send().await.unwrap().roots()[0]
        .id()
        .unwrap()
        .to_owned();
    organizations
        .attach_policy()
        .policy_id(&policy_id)
        .target_id(&root)
        .send()
        .await
        .unwrap();
    let mut update = finding(&member, SCP_ROLE, &role_id, "alice@example.com");
    update["detail"]["updatedAt"] = json!(
        chrono::Utc::now()
            .checked_add_signed(chrono::Duration::seconds(1))
            .unwrap()
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    );
    update["id"] = json!("evt-sso-2");
    let report = p.send_event(&update);
    assert_eq!(report["queued"], 1, "{report}");
    p.drain_requests(10).await;
    let outcomes = p.drain_outcomes().await;
    let outcome = outcomes
        .iter()
        .map(|(event, _)| &event["detail"])
        .find(|o| o["identity_center"].is_object())
        .unwrap_or_else(|| panic!("an Identity Center outcome: {outcomes:#?}"));
    assert_eq!(outcome["status"], "applied", "{outcome:#}");
    assert_eq!(
        outcome["identity_center"]["service_control_policy"]["policy_id"],
        policy_id.as_str()
    );
    let alice = IdentityStoreUserId::parse(&d.alice).unwrap();
    let denied = content(organizations.clone(), policy_id.clone()).await;
    assert!(denies_user(&denied, &alice), "{denied}");
    assert!(!denied.contains(cutoff_domain::identity_center::SCP_PLACEHOLDER_SID));
    // By the evaluator, the statement read back from Organizations denies her
    // sessions and not Bob's.
    assert_eq!(decide(&denied, &d.alice), Decision::ExplicitlyDenied);
    assert_eq!(decide(&denied, &d.bob), Decision::Allowed);
    // No permission set touched.
    assert!(
        !d.inline(&d.admin)
            .await
            .unwrap()
            .contains("CutoffDenyIdentityCenterUser")
    );
    assert_eq!(d.inline(&d.read_only).await, None);

    let operator = Identity::role_session(ACCOUNT, "CutoffBreakGlassOperator", "dave", "DAVE01");
    let url = FunctionUrl::start(
        revoker_on_moto(moto.endpoint(), &env),
        vec![operator.clone()],
        &["arn:aws:iam::123456789012:role/CutoffBreakGlassOperator"],
    );
    let body = json!({
        "action": "release", "account": member, "role": SCP_ROLE, "session": "alice@example.com",
        "reason": "INC-78 closed"
    });
    let released = url.post_signed(&operator, &body.to_string()).json();
    assert_eq!(released["status"], "released", "{released:#}");
    let after = content(organizations, policy_id).await;
    assert_eq!(serde_json::from_str::<Value>(&after).unwrap(), placeholder);
}
