use super::*;
use proptest::prelude::*;
use serde_json::{Value, json};

const MEMBER: &str = "111122223333";
const ADMIN: &str = "999988887777";

fn run(value: Value) -> Triage {
    run_with(value, &TriageConfig::default())
}

fn run_with(value: Value, config: &TriageConfig) -> Triage {
    triage(&event::recognise(value), config)
}

fn only(t: &Triage) -> &Decision {
    assert_eq!(t.decisions.len(), 1, "{:#?}", t.decisions);
    &t.decisions[0]
}

fn target_of(d: &Decision) -> (TargetKind, &str, &str) {
    let t = d.target.as_ref().expect("decision has a target");
    (t.kind, t.account.as_str(), t.name.as_str())
}

/// A GuardDuty finding event with the given access key details and severity.
fn gd(severity: Value, details: Value) -> Value {
    json!({
        "version": "0", "id": "4a7c1f2e-0000-4000-8000-000000000001",
        "detail-type": "GuardDuty Finding", "source": "aws.guardduty",
        "account": ADMIN, "time": "2026-11-23T11:59:00Z", "region": "us-east-1", "resources": [],
        "detail": {
            "schemaVersion": "2.0", "accountId": MEMBER, "region": "us-east-1", "partition": "aws",
            "id": "0cc7a4f3e9b8d2a1c6f5e4d3b2a19081",
            "type": "UnauthorizedAccess:IAMUser/InstanceCredentialExfiltration.OutsideAWS",
            "resource": { "resourceType": "AccessKey", "accessKeyDetails": details },
            "service": {
                "serviceName": "guardduty", "archived": false,
                "additionalInfo": { "value": "{}", "type": "default" },
                "eventFirstSeen": "2026-11-23T11:40:00.000Z", "eventLastSeen": "2026-11-23T11:55:12.000Z",
                "count": 3
            },
            "severity": severity,
            "createdAt": "2026-11-23T11:41:00.000Z", "updatedAt": "2026-11-23T11:56:00.000Z"
        }
    })
}

fn role_details(name: &str) -> Value {
    json!({
        "accessKeyId": "ASIAZXCVBNMASDFGHJKL", "principalId": "AROAZXCVBNMASDFGHJKLQ:i-0123456789abcdef0",
        "userName": name, "userType": "AssumedRole"
    })
}

fn gd_role(severity: Value, name: &str) -> Value {
    gd(severity, role_details(name))
}

/// Sets the value at `pointer`, adding the last key when its parent is an object.
fn set(value: &mut Value, pointer: &str, new: Value) {
    let (parent, key) = pointer.rsplit_once('/').expect("pointer has a parent");
    let parent = value.pointer_mut(parent).expect("parent exists");
    match parent {
        Value::Object(map) => {
            map.insert(key.to_owned(), new);
        }
        other => *other.get_mut(key).expect("slot exists") = new,
    }
}

// --- GuardDuty: severity rules -------------------------------------------------------

#[test]
fn high_severity_role_finding_revokes_the_role_in_the_member_account() {
    let t = run(gd_role(json!(8), "payments-api"));
    assert_eq!(t.source, Source::GuardDuty);
    let d = only(&t);
    assert_eq!(d.decision, Verdict::Revoke);
    assert_eq!(target_of(d), (TargetKind::Role, MEMBER, "payments-api"));
    let target = d.target.as_ref().unwrap();
    assert_eq!(
        target.session.as_ref().unwrap().as_str(),
        "i-0123456789abcdef0"
    );
    assert_eq!(
        target.access_key_id.as_ref().unwrap().as_str(),
        "ASIAZXCVBNMASDFGHJKL"
    );
    let finding = d.finding.as_ref().unwrap();
    assert_eq!(finding.id, "0cc7a4f3e9b8d2a1c6f5e4d3b2a19081");
    assert_eq!(finding.severity, Some(8.0));
    assert!(!finding.sample);
}

#[test]
fn severity_thresholds_are_inclusive_at_seven_and_four() {
    for (severity, expected) in [
        (json!(10), Verdict::Revoke),
        (json!(7), Verdict::Revoke),
        (json!(7.0), Verdict::Revoke),
        (json!(6.9), Verdict::Alert),
        (json!(5.5), Verdict::Alert),
        (json!(4), Verdict::Alert),
        (json!(3.9), Verdict::Ignore),
        (json!(0), Verdict::Ignore),
    ] {
        let d = run(gd_role(severity.clone(), "payments-api")).decisions[0].clone();
        assert_eq!(d.decision, expected, "severity {severity}");
        assert!(d.invalid.is_none());
    }
}

#[test]
fn thresholds_come_from_config() {
    let config = TriageConfig {
        revoke_severity: 9.0,
        alert_severity: 2.0,
        ..TriageConfig::default()
    };
    assert_eq!(
        run_with(gd_role(json!(8), "x"), &config).decisions[0].decision,
        Verdict::Alert
    );
    assert_eq!(
        run_with(gd_role(json!(9), "x"), &config).decisions[0].decision,
        Verdict::Revoke
    );
    assert_eq!(
        run_with(gd_role(json!(2.5), "x"), &config).decisions[0].decision,
        Verdict::Alert
    );
}

#[test]
fn severity_that_is_not_a_number_is_ignored_with_the_target_shown() {
    let d = run(gd_role(json!("8"), "payments-api")).decisions[0].clone();
    assert_eq!(d.decision, Verdict::Ignore);
    assert!(d.reason.contains("severity"));
    assert_eq!(d.finding.unwrap().severity, None);
    assert!(d.target.is_some());
}

// --- GuardDuty: principals table -----------------------------------------------------

#[test]
fn eks_role_user_type_is_handled_like_an_assumed_role() {
    let mut event = gd_role(json!(8), "eks-node-role");
    set(
        &mut event,
        "/detail/resource/accessKeyDetails/userType",
        json!("Role"),
    );
    set(
        &mut event,
        "/detail/resource/resourceType",
        json!("EKSCluster"),
    );
    let d = &run(event).decisions[0];
    assert_eq!(d.decision, Verdict::Revoke);
    assert_eq!(target_of(d).0, TargetKind::Role);
}

#[test]
fn iam_user_findings_revoke_the_user_and_carry_the_access_key() {
    let d = run(gd(
        json!(8),
        json!({"accessKeyId": "AKIAZXCVBNMASDFGHJKL", "principalId": "AIDAZXCVBNMASDFGHJKLQ",
               "userName": "ci-deployer", "userType": "IAMUser"}),
    ))
    .decisions[0]
        .clone();
    assert_eq!(d.decision, Verdict::Revoke);
    assert_eq!(target_of(&d), (TargetKind::User, MEMBER, "ci-deployer"));
    let key = d.target.unwrap().access_key_id.unwrap();
    assert!(key.is_long_term());
}

#[test]
fn alert_only_principals_alert_even_at_critical_severity() {
    let cases = [
        (
            json!({"principalId": MEMBER, "userName": "Root", "userType": "Root"}),
            TargetKind::Root,
        ),
        (
            json!({"principalId": format!("{MEMBER}:bob"), "userName": "bob", "userType": "FederatedUser"}),
            TargetKind::FederatedUser,
        ),
        (
            json!({"userName": "svc", "userType": "AWSService"}),
            TargetKind::Unknown,
        ),
    ];
    for (details, kind) in cases {
        let d = run(gd(json!(9.5), details)).decisions[0].clone();
        assert_eq!(d.decision, Verdict::Alert, "{kind:?}");
        assert_eq!(d.target.as_ref().unwrap().kind, kind);
        assert!(d.reason.contains("alert only"), "{}", d.reason);
    }
}

#[test]
fn a_role_named_like_a_reserved_one_goes_to_the_revoker_which_asks_iam_for_its_path() {
    // Anyone allowed iam:CreateRole can name a role AWSReservedSSO_… or
    // AWSServiceRoleFor…: a name alone must not make an attacker's role unrevocable.
    for (name, kind, said) in [
        (
            "AWSReservedSSO_ReadOnly_0123456789abcdef",
            TargetKind::IdentityCenterRole,
            "Identity Center",
        ),
        (
            "AWSServiceRoleForECS",
            TargetKind::ServiceLinkedRole,
            "service-linked",
        ),
    ] {
        let d = run(gd(json!(8), role_details(name))).decisions[0].clone();
        assert_eq!(d.decision, Verdict::Revoke, "{name}");
        assert_eq!(d.target.as_ref().unwrap().kind, kind, "the guess is shown");
        assert!(
            d.reason.contains(said) && d.reason.contains("path"),
            "{}",
            d.reason
        );
    }
}

#[test]
fn root_without_a_user_name_is_named_root() {
    let d = run(gd(
        json!(8),
        json!({"principalId": MEMBER, "userType": "Root"}),
    ))
    .decisions[0]
        .clone();
    assert_eq!(target_of(&d), (TargetKind::Root, MEMBER, "root"));
}

#[test]
fn instance_profile_without_access_key_alerts() {
    let mut event = gd_role(json!(8), "unused");
    set(
        &mut event,
        "/detail/resource",
        json!({"resourceType": "Instance", "instanceDetails": {
            "instanceId": "i-0123456789abcdef0",
            "iamInstanceProfile": {"arn": format!("arn:aws:iam::{MEMBER}:instance-profile/web-tier"), "id": "AIPAZXCVBNMASDFGHJKLQ"}
        }}),
    );
    let d = &run(event).decisions[0];
    assert_eq!(d.decision, Verdict::Alert);
    assert_eq!(
        target_of(d),
        (TargetKind::InstanceProfile, MEMBER, "web-tier")
    );
}

#[test]
fn access_key_details_win_over_instance_details() {
    let mut event = gd_role(json!(8), "web-tier-role");
    set(
        &mut event,
        "/detail/resource/instanceDetails",
        json!({"iamInstanceProfile": {"arn": format!("arn:aws:iam::{MEMBER}:instance-profile/web-tier")}}),
    );
    let d = &run(event).decisions[0];
    assert_eq!(d.decision, Verdict::Revoke);
    assert_eq!(target_of(d), (TargetKind::Role, MEMBER, "web-tier-role"));
}

#[test]
fn s3_findings_take_the_principal_from_access_key_details() {
    let mut event = gd_role(json!(8), "data-lake-reader");
    set(
        &mut event,
        "/detail/resource/resourceType",
        json!("S3Bucket"),
    );
    set(
        &mut event,
        "/detail/resource/s3BucketDetails",
        json!([{"name": "payments-exports", "type": "Destination"}]),
    );
    assert_eq!(run(event).decisions[0].decision, Verdict::Revoke);
}

#[test]
fn findings_without_a_principal_are_ignored() {
    let mut event = gd_role(json!(8), "x");
    set(
        &mut event,
        "/detail/resource",
        json!({"resourceType": "Instance", "instanceDetails": {"instanceId": "i-1"}}),
    );
    let d = &run(event).decisions[0];
    assert_eq!(d.decision, Verdict::Ignore);
    assert!(d.target.is_none() && d.invalid.is_none());
}

#[test]
fn protected_roles_alert_instead_of_revoking() {
    let d = run(gd_role(json!(9), "cutoff-member")).decisions[0].clone();
    assert_eq!(d.decision, Verdict::Alert);
    assert!(d.reason.contains("protected"));
    // A name starting with cutoff- is anyone's to choose: it protects nothing.
    let d = run(gd_role(json!(9), "cutoff-backdoor")).decisions[0].clone();
    assert_eq!(d.decision, Verdict::Revoke, "{}", d.reason);
    let config = TriageConfig {
        protection: crate::principal::Protection {
            patterns: vec![crate::principal::NamePattern::parse("break-glass").unwrap()],
            ..TriageConfig::default().protection
        },
        ..TriageConfig::default()
    };
    assert_eq!(
        run_with(gd_role(json!(9), "break-glass"), &config).decisions[0].decision,
        Verdict::Alert
    );
}

// --- GuardDuty: sample, archived, aggregated -----------------------------------------

#[test]
fn sample_findings_are_ignored_even_at_high_severity() {
    let mut event = gd_role(json!(8), "payments-api");
    set(
        &mut event,
        "/detail/service/additionalInfo",
        json!({"sample": true}),
    );
    let d = &run(event).decisions[0];
    assert_eq!(d.decision, Verdict::Ignore);
    assert!(d.finding.as_ref().unwrap().sample);
    assert!(d.target.is_some(), "the target is still shown");
}

#[test]
fn sample_findings_with_invented_principals_are_ignored_without_error() {
    let mut event = gd_role(json!(8), "GeneratedFindingUserName");
    set(
        &mut event,
        "/detail/service/additionalInfo",
        json!({"sample": true}),
    );
    set(&mut event, "/detail/accountId", json!("not-an-account"));
    let d = &run(event).decisions[0];
    assert_eq!(d.decision, Verdict::Ignore);
    assert!(d.target.is_none() && d.invalid.is_none());
}

#[test]
fn archived_findings_are_ignored() {
    let mut event = gd_role(json!(8), "payments-api");
    set(&mut event, "/detail/service/archived", json!(true));
    assert_eq!(run(event).decisions[0].decision, Verdict::Ignore);
}

#[test]
fn aggregated_findings_use_the_member_account_not_the_envelope_account() {
    let t = run(gd_role(json!(8), "payments-api"));
    let (_, account, _) = target_of(only(&t));
    assert_eq!(account, MEMBER);
    assert_ne!(account, ADMIN);
}

#[test]
fn bare_findings_from_the_console_are_triaged_like_enveloped_ones() {
    let event = gd_role(json!(8), "payments-api");
    let bare = event["detail"].clone();
    assert_eq!(run(bare).decisions[0], run(event).decisions[0]);
}

#[test]
fn evidence_carries_the_update_and_first_activity_times_never_the_last() {
    let d = run(gd_role(json!(8), "payments-api")).decisions[0].clone();
    // eventFirstSeen: a session is issued before it is first used. eventLastSeen moves
    // with every update of a finding about a denied session and must not count.
    assert_eq!(
        d.evidence.first_activity.unwrap().to_rfc3339(),
        "2026-11-23T11:40:00+00:00"
    );
    assert_eq!(
        d.evidence.updated_at.unwrap().to_rfc3339(),
        "2026-11-23T11:56:00+00:00"
    );
}

// --- GuardDuty: invalid input --------------------------------------------------------

#[test]
fn invalid_principals_are_ignored_and_flagged_never_revoked() {
    let long = "r".repeat(65);
    let cases: Vec<(&str, Value)> = vec![
        ("/detail/accountId", json!("12345678901")),
        ("/detail/accountId", json!(null)),
        (
            "/detail/resource/accessKeyDetails/userName",
            json!("payments/../admin"),
        ),
        ("/detail/resource/accessKeyDetails/userName", json!(long)),
        (
            "/detail/resource/accessKeyDetails/userName",
            json!("paymënts"),
        ),
        ("/detail/resource/accessKeyDetails/userName", json!("")),
        (
            "/detail/resource/accessKeyDetails/accessKeyId",
            json!("AKIA!"),
        ),
        ("/detail/resource/accessKeyDetails/userName", json!(42)),
        ("/detail/resource", json!("string")),
        ("/detail/id", json!("x".repeat(1_000_000))),
        ("/detail/id", json!("line\nbreak")),
    ];
    for (pointer, value) in cases {
        let mut event = gd_role(json!(9), "payments-api");
        set(&mut event, pointer, value);
        let d = only(&run(event)).clone();
        assert_eq!(d.decision, Verdict::Ignore, "{pointer}");
        assert!(d.invalid.is_some(), "{pointer} flagged invalid");
        assert!(d.target.is_none());
        assert!(d.reason.len() < 1_000, "reason is bounded for {pointer}");
    }
}

#[test]
fn a_detail_that_is_not_an_object_is_invalid() {
    let mut event = gd_role(json!(9), "x");
    set(&mut event, "/detail", json!([1, 2]));
    assert!(only(&run(event)).invalid.is_some());
}

#[test]
fn an_empty_detail_is_ignored() {
    let mut event = gd_role(json!(9), "x");
    set(&mut event, "/detail", json!({}));
    let d = only(&run(event)).clone();
    assert_eq!(d.decision, Verdict::Ignore);
    assert!(d.finding.is_none() && d.target.is_none() && d.invalid.is_none());
}

#[test]
fn instance_profile_in_another_account_is_invalid() {
    let mut event = gd_role(json!(8), "x");
    set(
        &mut event,
        "/detail/resource",
        json!({"resourceType": "Instance", "instanceDetails": {"iamInstanceProfile": {"arn": "arn:aws:iam::444455556666:instance-profile/web"}}}),
    );
    assert!(only(&run(event)).invalid.is_some());
}

// --- Security Hub --------------------------------------------------------------------

fn asff(resources: Value, label: &str, normalized: u32) -> Value {
    json!({
        "SchemaVersion": "2018-10-08",
        "Id": format!("arn:aws:guardduty:us-east-1:{MEMBER}:detector/d1/finding/{normalized}{label}"),
        "ProductArn": "arn:aws:securityhub:us-east-1::product/aws/guardduty",
        "AwsAccountId": MEMBER,
        "Types": ["TTPs/Initial Access/UnauthorizedAccess:IAMUser-MaliciousIPCaller"],
        "Severity": {"Label": label, "Normalized": normalized},
        "Resources": resources,
        "RecordState": "ACTIVE", "Workflow": {"Status": "NEW"},
        "UpdatedAt": "2026-11-23T11:56:00.000Z"
    })
}

fn access_key_resource(principal_type: &str, name: &str) -> Value {
    json!([{
        "Type": "AwsIamAccessKey", "Id": "AWS::IAM::AccessKey:ASIAZXCVBNMASDFGHJKL", "Partition": "aws",
        "Details": {"AwsIamAccessKey": {"PrincipalType": principal_type, "PrincipalName": name,
                    "PrincipalId": "AROAZXCVBNMASDFGHJKLQ:session-1"}}
    }])
}

fn custom_action(findings: Vec<Value>) -> Value {
    json!({
        "version": "0", "id": "c1", "detail-type": "Security Hub Findings - Custom Action",
        "source": "aws.securityhub", "account": ADMIN, "time": "2026-11-23T12:00:00Z", "region": "us-east-1",
        "resources": [format!("arn:aws:securityhub:us-east-1:{ADMIN}:action/custom/revoke-sessions")],
        "detail": {"actionName": "revoke-sessions", "actionDescription": "Revoke", "findings": findings}
    })
}

fn imported(finding: Value) -> Value {
    json!({
        "version": "0", "id": "i1", "detail-type": "Security Hub Findings - Imported",
        "source": "aws.securityhub", "account": ADMIN, "time": "2026-11-23T12:00:00Z", "region": "us-east-1",
        "resources": [], "detail": {"findings": [finding]}
    })
}

#[test]
fn custom_action_revokes_each_selected_principal_whatever_the_severity() {
    let t = run(custom_action(vec![
        asff(
            access_key_resource("AssumedRole", "payments-api"),
            "LOW",
            10,
        ),
        asff(
            json!([{"Type": "AwsIamUser", "Id": "arn:aws:iam::444455556666:user/ops/deployer"}]),
            "MEDIUM",
            40,
        ),
        asff(
            json!([{"Type": "AwsAccount", "Id": format!("AWS::::Account:{MEMBER}")}]),
            "HIGH",
            70,
        ),
    ]));
    assert_eq!(t.source, Source::SecurityHub);
    let verdicts: Vec<Verdict> = t.decisions.iter().map(|d| d.decision).collect();
    // The user is in another account than the finding: an alert naming the mismatch.
    assert_eq!(verdicts, [Verdict::Revoke, Verdict::Alert, Verdict::Ignore]);
    assert_eq!(
        target_of(&t.decisions[0]),
        (TargetKind::Role, MEMBER, "payments-api")
    );
    assert_eq!(
        target_of(&t.decisions[1]),
        (TargetKind::User, "444455556666", "deployer")
    );
    assert!(
        t.decisions[1].reason.contains("own account"),
        "{}",
        t.decisions[1].reason
    );
    assert_eq!(t.decisions[0].finding.as_ref().unwrap().severity, Some(1.0));
    assert_eq!(
        t.decisions[0]
            .target
            .as_ref()
            .unwrap()
            .access_key_id
            .as_ref()
            .unwrap()
            .as_str(),
        "ASIAZXCVBNMASDFGHJKL"
    );
}

#[test]
fn custom_action_on_alert_only_or_protected_principals_alerts() {
    let t = run(custom_action(vec![asff(
        access_key_resource("AssumedRole", "cutoff-member"),
        "HIGH",
        70,
    )]));
    assert_eq!(only(&t).decision, Verdict::Alert);
}

#[test]
fn custom_action_on_a_sample_finding_is_ignored() {
    let mut finding = asff(
        access_key_resource("AssumedRole", "payments-api"),
        "HIGH",
        70,
    );
    finding["Sample"] = json!(true);
    assert_eq!(
        only(&run(custom_action(vec![finding]))).decision,
        Verdict::Ignore
    );
}

#[test]
fn custom_action_with_an_instance_profile_alerts() {
    let finding = asff(
        json!([{"Type": "AwsEc2Instance", "Id": "arn:aws:ec2:us-east-1:111122223333:instance/i-1",
                "Details": {"AwsEc2Instance": {"IamInstanceProfileArn": format!("arn:aws:iam::{MEMBER}:instance-profile/web")}}}]),
        "HIGH",
        70,
    );
    let d = only(&run(custom_action(vec![finding]))).clone();
    assert_eq!(d.decision, Verdict::Alert);
    assert_eq!(target_of(&d).0, TargetKind::InstanceProfile);
}

#[test]
fn one_bad_finding_in_a_custom_action_does_not_hide_the_others() {
    let t = run(custom_action(vec![
        asff(access_key_resource("AssumedRole", "bad/name"), "HIGH", 70),
        json!("not a finding"),
        asff(
            access_key_resource("AssumedRole", "payments-api"),
            "HIGH",
            70,
        ),
    ]));
    let verdicts: Vec<Verdict> = t.decisions.iter().map(|d| d.decision).collect();
    assert_eq!(
        verdicts,
        [Verdict::Ignore, Verdict::Ignore, Verdict::Revoke]
    );
    assert_eq!(t.invalid_inputs().count(), 2);
}

#[test]
fn imported_findings_are_ignored_unless_opted_in() {
    let event = imported(asff(
        access_key_resource("AssumedRole", "payments-api"),
        "HIGH",
        80,
    ));
    let d = only(&run(event.clone())).clone();
    assert_eq!(d.decision, Verdict::Ignore);
    assert!(d.target.is_some());
    let opted_in = TriageConfig {
        securityhub_imported: true,
        ..TriageConfig::default()
    };
    assert_eq!(only(&run_with(event, &opted_in)).decision, Verdict::Revoke);
    let medium = imported(asff(
        access_key_resource("AssumedRole", "payments-api"),
        "MEDIUM",
        50,
    ));
    assert_eq!(only(&run_with(medium, &opted_in)).decision, Verdict::Alert);
    let mut archived = asff(
        access_key_resource("AssumedRole", "payments-api"),
        "HIGH",
        80,
    );
    archived["RecordState"] = json!("ARCHIVED");
    assert_eq!(
        only(&run_with(imported(archived), &opted_in)).decision,
        Verdict::Ignore
    );
    let mut resolved = asff(
        access_key_resource("AssumedRole", "payments-api"),
        "HIGH",
        80,
    );
    resolved["Workflow"] = json!({"Status": "RESOLVED"});
    assert_eq!(
        only(&run_with(imported(resolved), &opted_in)).decision,
        Verdict::Ignore
    );
}

#[test]
fn security_hub_role_resources_are_read_from_their_arn() {
    let finding = asff(
        json!([{"Type": "AwsIamRole", "Id": format!("arn:aws:iam::{MEMBER}:role/app/batch")}]),
        "HIGH",
        70,
    );
    let d = only(&run(custom_action(vec![finding]))).clone();
    assert_eq!(d.decision, Verdict::Revoke);
    assert_eq!(target_of(&d), (TargetKind::Role, MEMBER, "batch"));
}

#[test]
fn an_arn_of_another_partition_is_refused_never_mapped_into_ours() {
    let finding = asff(
        json!([{"Type": "AwsIamRole", "Id": format!("arn:aws-us-gov:iam::{MEMBER}:role/app/batch")}]),
        "HIGH",
        70,
    );
    let d = only(&run(custom_action(vec![finding]))).clone();
    assert_eq!(d.decision, Verdict::Ignore);
    assert!(
        d.invalid.as_deref().unwrap().contains("partition"),
        "{:?}",
        d.invalid
    );
    // The same ARN in a deployment of that partition is its own.
    let gov = TriageConfig {
        partition: crate::principal::Partition::AwsUsGov,
        ..TriageConfig::default()
    };
    let finding = asff(
        json!([{"Type": "AwsIamRole", "Id": format!("arn:aws-us-gov:iam::{MEMBER}:role/app/batch")}]),
        "HIGH",
        70,
    );
    assert_eq!(
        only(&run_with(custom_action(vec![finding]), &gov)).decision,
        Verdict::Revoke
    );
    // A manual request naming an ARN of another partition.
    let manual =
        json!({"action": "revoke", "principal_arn": format!("arn:aws-cn:iam::{MEMBER}:role/x")});
    let d = only(&run(manual)).clone();
    assert!(d.invalid.is_some(), "{d:?}");
}

#[test]
fn a_security_hub_finding_cannot_revoke_a_principal_of_another_account() {
    // An access key resource naming another account than the finding's AwsAccountId.
    let mut resources = access_key_resource("AssumedRole", "payments-api");
    resources[0]["Details"]["AwsIamAccessKey"]["AccountId"] = json!("444455556666");
    let d = only(&run(custom_action(vec![asff(resources, "HIGH", 70)]))).clone();
    assert_eq!(d.decision, Verdict::Alert, "{}", d.reason);
    assert_eq!(
        target_of(&d),
        (TargetKind::Role, "444455556666", "payments-api")
    );
    assert!(
        d.reason.contains("444455556666") && d.reason.contains(MEMBER),
        "{}",
        d.reason
    );
    // An imported finding, opted in, likewise.
    let config = TriageConfig {
        securityhub_imported: true,
        ..TriageConfig::default()
    };
    let mut resources = access_key_resource("AssumedRole", "payments-api");
    resources[0]["Details"]["AwsIamAccessKey"]["AccountId"] = json!("444455556666");
    let t = run_with(imported(asff(resources, "CRITICAL", 90)), &config);
    assert_eq!(only(&t).decision, Verdict::Alert);
}

#[test]
fn a_custom_action_naming_more_principals_than_the_cap_revokes_none() {
    let findings: Vec<Value> = (0..4)
        .map(|i| {
            asff(
                access_key_resource("AssumedRole", &format!("app-{i}")),
                "HIGH",
                70 + i,
            )
        })
        .collect();
    let config = TriageConfig {
        max_principals_per_action: 3,
        ..TriageConfig::default()
    };
    let t = run_with(custom_action(findings.clone()), &config);
    assert_eq!(t.decisions.len(), 4);
    for d in &t.decisions {
        assert_eq!(d.decision, Verdict::Alert, "{}", d.reason);
        assert!(d.reason.contains("circuit breaker"), "{}", d.reason);
    }
    // At the cap, every one is revoked.
    let t = run_with(custom_action(findings[..3].to_vec()), &config);
    assert!(t.decisions.iter().all(|d| d.decision == Verdict::Revoke));
    // The same principal named by many findings counts once.
    let same: Vec<Value> = (0..10)
        .map(|i| asff(access_key_resource("AssumedRole", "app-0"), "HIGH", 70 + i))
        .collect();
    let t = run_with(custom_action(same), &config);
    assert!(t.decisions.iter().all(|d| d.decision == Verdict::Revoke));
}

#[test]
fn duplicate_principals_in_one_finding_give_one_decision() {
    let mut resources = access_key_resource("AssumedRole", "payments-api");
    let copy = resources[0].clone();
    resources.as_array_mut().unwrap().push(copy);
    let t = run(custom_action(vec![asff(resources, "HIGH", 70)]));
    assert_eq!(t.decisions.len(), 1);
}

#[test]
fn the_access_key_survives_whatever_the_order_of_the_resources() {
    let resources = json!([
        {"Type": "AwsIamUser", "Id": format!("arn:aws:iam::{MEMBER}:user/ci-bot")},
        {"Type": "AwsIamAccessKey", "Id": "AWS::IAM::AccessKey:AKIAZXCVBNMASDFGHJKL",
         "Details": {"AwsIamAccessKey": {"PrincipalType": "IAMUser", "PrincipalName": "ci-bot"}}}
    ]);
    let t = run(custom_action(vec![asff(resources, "HIGH", 70)]));
    let d = only(&t);
    assert_eq!(target_of(d), (TargetKind::User, MEMBER, "ci-bot"));
    assert_eq!(
        d.target
            .as_ref()
            .unwrap()
            .access_key_id
            .as_ref()
            .unwrap()
            .as_str(),
        "AKIAZXCVBNMASDFGHJKL"
    );
}

#[test]
fn one_bad_resource_does_not_hide_the_valid_principals_of_the_same_finding() {
    let mut resources = access_key_resource("AssumedRole", "payments-api");
    resources
        .as_array_mut()
        .unwrap()
        .push(json!({"Type": "AwsIamUser", "Id": "not-an-arn"}));
    let t = run(custom_action(vec![asff(resources, "HIGH", 70)]));
    let verdicts: Vec<Verdict> = t.decisions.iter().map(|d| d.decision).collect();
    assert_eq!(verdicts, [Verdict::Revoke, Verdict::Ignore]);
    assert_eq!(
        t.invalid_inputs().count(),
        1,
        "the bad resource is still reported"
    );
}

#[test]
fn empty_custom_action_yields_one_ignore() {
    assert_eq!(only(&run(custom_action(vec![]))).decision, Verdict::Ignore);
}

// --- CloudTrail ----------------------------------------------------------------------

fn cloudtrail_event(event_name: &str) -> Value {
    json!({
        "version": "0", "id": "ct1", "detail-type": "AWS API Call via CloudTrail", "source": "aws.cloudtrail",
        "account": MEMBER, "time": "2026-11-23T12:00:00Z", "region": "us-east-1", "resources": [],
        "detail": {
            "eventVersion": "1.09", "eventSource": "cloudtrail.amazonaws.com", "eventName": event_name,
            "eventTime": "2026-11-23T12:00:00Z", "eventID": "8f7e6d5c-0000-4000-8000-000000000001",
            "userIdentity": {
                "type": "AssumedRole", "principalId": "AROAZXCVBNMASDFGHJKLQ:build-42",
                "arn": format!("arn:aws:sts::{MEMBER}:assumed-role/ci-runner/build-42"),
                "accountId": MEMBER, "accessKeyId": "ASIAZXCVBNMASDFGHJKL",
                "sessionContext": {"sessionIssuer": {"type": "Role", "userName": "ci-runner",
                    "arn": format!("arn:aws:iam::{MEMBER}:role/ci-runner"), "accountId": MEMBER}}
            }
        }
    })
}

#[test]
fn cloudtrail_calls_are_ignored_unless_opted_in() {
    let t = run(cloudtrail_event("StopLogging"));
    assert_eq!(t.source, Source::CloudTrail);
    assert_eq!(only(&t).decision, Verdict::Ignore);
    let config = TriageConfig {
        cloudtrail_event_names: vec!["StopLogging".to_owned()],
        ..TriageConfig::default()
    };
    let d = only(&run_with(cloudtrail_event("StopLogging"), &config)).clone();
    assert_eq!(d.decision, Verdict::Revoke);
    assert_eq!(target_of(&d), (TargetKind::Role, MEMBER, "ci-runner"));
    assert_eq!(d.target.unwrap().session.unwrap().as_str(), "build-42");
    assert_eq!(
        only(&run_with(cloudtrail_event("DeleteTrail"), &config)).decision,
        Verdict::Ignore
    );
}

#[test]
fn cloudtrail_caller_account_must_match_its_arn() {
    let config = TriageConfig {
        cloudtrail_event_names: vec!["StopLogging".to_owned()],
        ..TriageConfig::default()
    };
    let mut event = cloudtrail_event("StopLogging");
    set(
        &mut event,
        "/detail/userIdentity/accountId",
        json!("444455556666"),
    );
    assert!(only(&run_with(event, &config)).invalid.is_some());
}

#[test]
fn a_cloudtrail_record_from_another_account_does_not_revoke_its_caller() {
    let config = TriageConfig {
        cloudtrail_event_names: vec!["StopLogging".to_owned()],
        ..TriageConfig::default()
    };
    // The same cross-account call recorded in the other account (or forwarded from
    // it): its caller is not of the account the event was recorded in.
    let mut event = cloudtrail_event("StopLogging");
    set(&mut event, "/account", json!("444455556666"));
    let d = only(&run_with(event, &config)).clone();
    assert_eq!(d.decision, Verdict::Alert, "{}", d.reason);
    assert!(d.reason.contains("444455556666"), "{}", d.reason);
    // A bare record names the account it was recorded in as recipientAccountId.
    let mut bare = cloudtrail_event("StopLogging")["detail"].clone();
    bare["recipientAccountId"] = json!(MEMBER);
    assert_eq!(
        only(&run_with(bare.clone(), &config)).decision,
        Verdict::Revoke
    );
    bare["recipientAccountId"] = json!("444455556666");
    assert_eq!(only(&run_with(bare, &config)).decision, Verdict::Alert);
}

#[test]
fn a_cloudtrail_event_put_on_the_bus_by_anyone_but_aws_may_be_forged() {
    let config = TriageConfig {
        cloudtrail_event_names: vec!["StopLogging".to_owned()],
        ..TriageConfig::default()
    };
    for (source, event_source) in [
        ("cutoff.forged", "cloudtrail.amazonaws.com"),
        ("aws.iam", "cloudtrail.amazonaws.com"),
    ] {
        let mut event = cloudtrail_event("StopLogging");
        set(&mut event, "/source", json!(source));
        set(&mut event, "/detail/eventSource", json!(event_source));
        let t = run_with(event, &config);
        let d = only(&t);
        assert_eq!(d.decision, Verdict::Ignore, "{source}");
        assert!(d.reason.contains("may be forged"), "{}", d.reason);
    }
}

#[test]
fn a_guardduty_finding_put_on_the_bus_by_anyone_but_aws_may_be_forged() {
    let mut event = gd_role(json!(9), "payments-api");
    set(&mut event, "/source", json!("custom.guardduty"));
    let t = run(event);
    let d = only(&t);
    assert_eq!(d.decision, Verdict::Ignore);
    assert!(d.reason.contains("may be forged"), "{}", d.reason);
    assert!(d.target.is_none(), "nothing of a forged finding is trusted");
}

#[test]
fn a_finding_names_the_unique_id_of_its_principal_for_the_revoker_to_check() {
    let d = run(gd_role(json!(8), "payments-api")).decisions[0].clone();
    assert_eq!(
        d.evidence.unique_id.as_ref().map(|u| u.as_str()),
        Some("AROAZXCVBNMASDFGHJKLQ")
    );
    let d = run(gd(
        json!(8),
        json!({"accessKeyId": "AKIAZXCVBNMASDFGHJKL", "principalId": "AIDAZXCVBNMASDFGHJKLM",
               "userName": "ci-deployer", "userType": "IAMUser"}),
    ))
    .decisions[0]
        .clone();
    assert_eq!(
        d.evidence.unique_id.as_ref().map(|u| u.as_str()),
        Some("AIDAZXCVBNMASDFGHJKLM")
    );
    // A role id on a user (or anything IAM would not issue) is not taken as one.
    let d = run(gd(
        json!(8),
        json!({"accessKeyId": "AKIAZXCVBNMASDFGHJKL", "principalId": "AROAZXCVBNMASDFGHJKLQ",
               "userName": "ci-deployer", "userType": "IAMUser"}),
    ))
    .decisions[0]
        .clone();
    assert_eq!(d.evidence.unique_id, None);
    let d = run(gd(
        json!(8),
        json!({"accessKeyId": "ASIAZXCVBNMASDFGHJKL", "principalId": "AROA-bad:s",
               "userName": "payments-api", "userType": "AssumedRole"}),
    ))
    .decisions[0]
        .clone();
    assert!(d.invalid.is_some(), "{d:?}");
}

// --- Manual, schedule, unknown -------------------------------------------------------

#[test]
fn manual_revoke_requests_revoke_and_status_requests_are_ignored() {
    let d = only(&run(
        json!({"action": "revoke", "account": MEMBER, "role": "payments-api", "dry_run": true}),
    ))
    .clone();
    assert_eq!(d.decision, Verdict::Revoke);
    assert!(d.finding.is_none());
    assert!(d.evidence.manual.as_ref().unwrap().dry_run);
    let d = only(&run(
        json!({"action": "status", "account": MEMBER, "role": "payments-api"}),
    ))
    .clone();
    assert_eq!(d.decision, Verdict::Ignore);
    assert!(d.target.is_some());
}

#[test]
fn manual_instance_profile_is_revocable_but_root_and_protected_are_not() {
    let d = only(&run(json!({"action": "revoke",
        "principal_arn": format!("arn:aws:iam::{MEMBER}:instance-profile/web")})))
    .clone();
    assert_eq!(d.decision, Verdict::Revoke);
    assert_eq!(target_of(&d).0, TargetKind::InstanceProfile);
    let d = only(&run(
        json!({"action": "revoke", "principal_arn": format!("arn:aws:iam::{MEMBER}:root")}),
    ))
    .clone();
    assert_eq!(d.decision, Verdict::Alert);
    let d = only(&run(
        json!({"action": "revoke", "account": MEMBER, "role": "cutoff-member"}),
    ))
    .clone();
    assert_eq!(d.decision, Verdict::Alert);
}

#[test]
fn invalid_manual_requests_are_flagged() {
    let d = only(&run(
        json!({"action": "revoke", "account": "abc", "role": "x"}),
    ))
    .clone();
    assert_eq!(d.decision, Verdict::Ignore);
    assert!(d.invalid.is_some() && d.target.is_none());
}

#[test]
fn schedule_and_unknown_events_yield_one_ignore_without_finding_or_target() {
    let schedule = run(
        json!({"version": "0", "id": "s", "detail-type": "Scheduled Event", "source": "aws.events",
        "account": MEMBER, "time": "2026-11-23T12:00:00Z", "region": "us-east-1",
        "resources": ["arn:aws:events:us-east-1:111122223333:rule/cutoff-sweep"], "detail": {}}),
    );
    assert_eq!(schedule.source, Source::Schedule);
    let unknown = run(json!([1, 2, 3]));
    assert_eq!(unknown.source, Source::Unknown);
    for t in [schedule, unknown] {
        let d = only(&t);
        assert_eq!(d.decision, Verdict::Ignore);
        assert!(d.finding.is_none() && d.target.is_none() && d.invalid.is_none());
    }
}

// --- Contract shape ------------------------------------------------------------------

#[test]
fn json_has_exactly_the_contract_fields() {
    let json = run(gd_role(json!(8), "payments-api")).to_json();
    let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    assert_eq!(keys(&json), ["source", "decisions"]);
    assert_eq!(json["source"], "guardduty");
    let decision = &json["decisions"][0];
    assert_eq!(keys(decision), ["decision", "reason", "finding", "target"]);
    assert_eq!(
        keys(&decision["finding"]),
        ["id", "type", "severity", "sample"]
    );
    assert_eq!(
        keys(&decision["target"]),
        ["kind", "account", "name", "access_key_id", "session"]
    );
    assert_eq!(decision["decision"], "revoke");
    assert_eq!(decision["target"]["kind"], "role");
    let unknown = run(json!({})).to_json();
    assert_eq!(unknown["decisions"][0]["finding"], Value::Null);
    assert_eq!(unknown["decisions"][0]["target"], Value::Null);
    assert!(
        unknown["decisions"][0]
            .as_object()
            .unwrap()
            .contains_key("target")
    );
}

// --- Hostile input -------------------------------------------------------------------

#[test]
fn hostile_bytes_give_errors_or_ignore_never_revoke() {
    let config = TriageConfig::default();
    let huge_name = format!(
        r#"{{"action":"revoke","account":"111122223333","role":"{}"}}"#,
        "a".repeat(1_000_000)
    );
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let inputs: Vec<Vec<u8>> = vec![
        vec![],
        b"not json".to_vec(),
        vec![0xff; 64],
        deep.into_bytes(),
        huge_name.into_bytes(),
        br#"{"detail-type":"GuardDuty Finding","source":"aws.guardduty","detail":"x"}"#.to_vec(),
        br#"{"detail-type":5,"source":[],"detail":{}}"#.to_vec(),
        br#"{"action":"revoke","account":111122223333,"role":"x"}"#.to_vec(),
    ];
    for input in inputs {
        if let Ok(t) = triage_bytes(&input, &config) {
            assert!(t.decisions.iter().all(|d| d.decision != Verdict::Revoke));
        }
    }
}

fn arbitrary_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        "[ -~]{0,24}".prop_map(Value::from),
        // Values that look like what triage looks for.
        prop_oneof![
            Just("AssumedRole"),
            Just("IAMUser"),
            Just("aws.guardduty"),
            Just("GuardDuty Finding"),
            Just("111122223333"),
            Just("payments-api"),
            Just("revoke"),
            Just("AwsIamAccessKey"),
        ]
        .prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec(
                (
                    prop_oneof![
                        "[a-zA-Z-]{1,12}".boxed(),
                        prop_oneof![
                            Just("detail"),
                            Just("detail-type"),
                            Just("source"),
                            Just("accountId"),
                            Just("resource"),
                            Just("accessKeyDetails"),
                            Just("userType"),
                            Just("userName"),
                            Just("severity"),
                            Just("id"),
                            Just("action"),
                            Just("findings"),
                        ]
                        .prop_map(str::to_owned)
                        .boxed(),
                    ],
                    inner
                ),
                0..6
            )
            .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

/// Rewrites one random location of a known revoking event with an arbitrary value.
fn mutate(event: &mut Value, path_choice: usize, replacement: Value) {
    let mut pointers = Vec::new();
    collect_pointers(event, String::new(), &mut pointers);
    let pointer = &pointers[path_choice % pointers.len()];
    if let Some(slot) = event.pointer_mut(pointer) {
        *slot = replacement;
    }
}

fn collect_pointers(value: &Value, at: String, out: &mut Vec<String>) {
    out.push(at.clone());
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                collect_pointers(
                    v,
                    format!("{at}/{}", k.replace('~', "~0").replace('/', "~1")),
                    out,
                );
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                collect_pointers(v, format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn triage_never_panics_and_never_revokes_on_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        if let Ok(t) = triage_bytes(&bytes, &TriageConfig::default()) {
            prop_assert!(t.decisions.iter().all(|d| d.decision != Verdict::Revoke));
            prop_assert!(!t.decisions.is_empty());
        }
    }

    #[test]
    fn triage_never_revokes_on_arbitrary_json(value in arbitrary_json()) {
        let t = run(value);
        prop_assert!(!t.decisions.is_empty());
        prop_assert!(t.decisions.iter().all(|d| d.decision != Verdict::Revoke));
    }

    /// A mutated real finding may still revoke, but only a principal that is named,
    /// with its account, in the mutated input itself and only if that input is still
    /// well-formed enough to name a valid account and name.
    #[test]
    fn mutated_findings_revoke_only_principals_named_in_the_input(
        choice in any::<usize>(),
        replacement in arbitrary_json(),
        which in 0usize..3,
    ) {
        let mut event = match which {
            0 => gd_role(json!(8), "payments-api"),
            1 => custom_action(vec![asff(access_key_resource("AssumedRole", "payments-api"), "HIGH", 70)]),
            _ => json!({"action": "revoke", "account": MEMBER, "role": "payments-api"}),
        };
        mutate(&mut event, choice, replacement);
        let text = event.to_string();
        for d in run(event).decisions {
            if d.decision == Verdict::Revoke {
                let target = d.target.expect("revoke always has a target");
                prop_assert!(text.contains(&format!("\"{}\"", target.name)), "name {} not in input", target.name);
                prop_assert!(text.contains(target.account.as_str()), "account not in input");
                prop_assert!(d.invalid.is_none());
            }
        }
    }
}

#[test]
fn a_guardduty_finding_about_a_caller_of_another_account_revokes_nothing_in_the_finding_account() {
    // An administrator of 444455556666 names a role `payments-api` like the member
    // account's and touches the member's data with it. The member's finding names
    // that caller: revoking `payments-api` in the member account would lock out the
    // wrong team and leave the caller in.
    let mut e = gd_role(json!(8), "payments-api");
    set(
        &mut e,
        "/detail/service/action",
        json!({"actionType": "AWS_API_CALL", "awsApiCallAction": {
            "api": "GetObject", "serviceName": "s3.amazonaws.com",
            "remoteAccountDetails": {"accountId": "444455556666", "affiliated": false}}}),
    );
    let t = run(e.clone());
    let d = only(&t);
    assert_eq!(d.decision, Verdict::Alert, "{d:?}");
    assert!(d.reason.contains("444455556666"), "{}", d.reason);
    assert_eq!(
        target_of(d),
        (TargetKind::Role, "444455556666", "payments-api"),
        "the alert names the caller where it lives"
    );
    // Below the alert threshold it is noise like any other finding.
    let mut low = e.clone();
    set(&mut low, "/detail/severity", json!(1.0));
    assert_eq!(only(&run(low)).decision, Verdict::Ignore);
    // The same call from the finding's own account is an ordinary finding.
    set(
        &mut e,
        "/detail/service/action/awsApiCallAction/remoteAccountDetails/accountId",
        json!(MEMBER),
    );
    assert_eq!(only(&run(e)).decision, Verdict::Revoke);
}

#[test]
fn a_call_from_another_account_without_access_key_details_is_decided_by_its_principal() {
    // Found by `make fuzz`: such a finding names no caller, and the alert it gave had
    // no target, so intake published nothing and nobody was told.
    let action = json!({"actionType": "AWS_API_CALL", "awsApiCallAction": {
        "remoteAccountDetails": {"accountId": "444455556666"}}});
    let mut no_principal = gd_role(json!(8), "payments-api");
    set(&mut no_principal, "/detail/service/action", action.clone());
    no_principal["detail"]["resource"]
        .as_object_mut()
        .unwrap()
        .remove("accessKeyDetails");
    let d = only(&run(no_principal.clone())).clone();
    assert_eq!(
        (d.decision, d.target.is_none()),
        (Verdict::Ignore, true),
        "{d:?}"
    );
    // With the finding's own instance profile: an alert that names it.
    set(
        &mut no_principal,
        "/detail/resource/instanceDetails",
        json!({"instanceId": "i-0123456789abcdef0",
               "iamInstanceProfile": {"arn": format!("arn:aws:iam::{MEMBER}:instance-profile/web")}}),
    );
    let t = run(no_principal);
    let d = only(&t);
    assert_eq!(d.decision, Verdict::Alert);
    assert_eq!(target_of(d), (TargetKind::InstanceProfile, MEMBER, "web"));
}

#[test]
fn a_custom_action_names_itself_so_the_revoker_can_count_its_revocations_across_events() {
    // Security Hub sends each selected finding in an event of its own: only the action's
    // ARN ties them together.
    let t = run(custom_action(vec![asff(
        access_key_resource("AssumedRole", "payments-api"),
        "LOW",
        10,
    )]));
    let d = only(&t);
    assert_eq!(d.decision, Verdict::Revoke);
    let request = crate::outcome::RevocationRequest::from_decision(t.source, d).unwrap();
    assert_eq!(
        request.trigger.custom_action.as_deref(),
        Some(
            format!("arn:aws:securityhub:us-east-1:{ADMIN}:action/custom/revoke-sessions").as_str()
        )
    );
    // An imported finding names no action.
    let config = TriageConfig {
        securityhub_imported: true,
        ..TriageConfig::default()
    };
    let imported = run_with(
        imported(asff(
            access_key_resource("AssumedRole", "payments-api"),
            "CRITICAL",
            90,
        )),
        &config,
    );
    let request =
        crate::outcome::RevocationRequest::from_decision(imported.source, only(&imported)).unwrap();
    assert_eq!(request.trigger.custom_action, None);
}

// --- GuardDuty: the blast radius of an instance-credential finding --------------------

const INSTANCE: &str = "i-0123456789abcdef0";

/// An instance-credential finding about role `web-fleet`, its session `session`, and
/// the instance GuardDuty reports (none when `instance` is None).
fn instance_finding(session: &str, instance: Option<&str>) -> Value {
    let mut v = gd(
        json!(8),
        json!({
            "accessKeyId": "ASIAZXCVBNMASDFGHJKL",
            "principalId": format!("AROAZXCVBNMASDFGHJKLQ:{session}"),
            "userName": "web-fleet", "userType": "AssumedRole"
        }),
    );
    if let Some(id) = instance {
        set(
            &mut v,
            "/detail/resource/instanceDetails",
            json!({"instanceId": id, "instanceType": "m6i.large"}),
        );
    }
    v
}

#[test]
fn an_instance_credential_finding_on_the_instances_own_session_denies_that_instances_sessions() {
    for finding_type in INSTANCE_CREDENTIAL_FINDINGS {
        let mut v = instance_finding(INSTANCE, Some(INSTANCE));
        set(&mut v, "/detail/type", json!(finding_type));
        let t = run(v);
        let d = only(&t);
        assert_eq!(d.decision, Verdict::Revoke);
        assert_eq!(d.evidence.scope, Scope::Session, "{finding_type}");
        assert!(
            d.reason
                .contains(&format!("only the sessions of instance {INSTANCE}")),
            "{}",
            d.reason
        );
        let request =
            crate::outcome::RevocationRequest::from_decision(Source::GuardDuty, d).unwrap();
        assert_eq!(request.scope, Scope::Session);
        assert_eq!(request.target.session.as_ref().unwrap().as_str(), INSTANCE);
        assert_eq!(request.check_queued(), Ok(()));
    }
}

#[test]
fn anyone_can_name_a_session_for_an_instance_so_the_name_alone_never_narrows_the_deny() {
    let cases = [
        // The session names another instance than the one the finding reports.
        (
            instance_finding("i-0aaaaaaaaaaaaaaaa", Some(INSTANCE)),
            Some("not named for the instance"),
        ),
        // The finding reports no instance: the name says nothing.
        (instance_finding(INSTANCE, None), None),
        // An instance id that is not one (upper case, wrong length, no prefix).
        (
            instance_finding("i-0123456789ABCDEF0", Some("i-0123456789ABCDEF0")),
            None,
        ),
        (instance_finding("i-0123", Some("i-0123")), None),
        (
            instance_finding("0123456789abcdef0", Some("0123456789abcdef0")),
            None,
        ),
        // Another finding type about the same session.
        (
            {
                let mut v = instance_finding(INSTANCE, Some(INSTANCE));
                set(
                    &mut v,
                    "/detail/type",
                    json!("CredentialAccess:IAMUser/AnomalousBehavior"),
                );
                v
            },
            None,
        ),
    ];
    for (event, note) in cases {
        let t = run(event);
        let d = only(&t);
        assert_eq!(d.decision, Verdict::Revoke, "{}", d.reason);
        assert_eq!(d.evidence.scope, Scope::Role, "{}", d.reason);
        assert!(!d.reason.contains("only the sessions"), "{}", d.reason);
        if let Some(note) = note {
            assert!(d.reason.contains(note), "{}", d.reason);
        }
        let request =
            crate::outcome::RevocationRequest::from_decision(Source::GuardDuty, d).unwrap();
        assert_eq!(request.scope, Scope::Role);
    }
}

#[test]
fn the_setting_makes_instance_findings_role_wide_and_says_so() {
    let config = TriageConfig::from_lookup(|k| {
        (k == "CUTOFF_INSTANCE_FINDING_SCOPE").then(|| "role".to_owned())
    })
    .unwrap();
    let t = run_with(instance_finding(INSTANCE, Some(INSTANCE)), &config);
    let d = only(&t);
    assert_eq!(d.evidence.scope, Scope::Role);
    assert!(
        d.reason.contains("CUTOFF_INSTANCE_FINDING_SCOPE=role says"),
        "{}",
        d.reason
    );
    let bad = TriageConfig::from_lookup(|k| {
        (k == "CUTOFF_INSTANCE_FINDING_SCOPE").then(|| "instance".to_owned())
    });
    assert!(
        bad.unwrap_err()
            .to_string()
            .contains("CUTOFF_INSTANCE_FINDING_SCOPE")
    );
}

#[test]
fn a_security_hub_copy_of_an_instance_finding_stays_role_wide() {
    // Whoever may import findings writes their fields; only GuardDuty's own event,
    // whose source no one else can send, narrows the deny.
    let finding = json!({
        "SchemaVersion": "2018-10-08", "Id": "sh-1", "AwsAccountId": MEMBER,
        "ProductArn": "arn:aws:securityhub:us-east-1::product/aws/guardduty",
        "GeneratorId": "x", "CreatedAt": "2026-11-23T11:41:00Z", "UpdatedAt": "2026-11-23T11:56:00Z",
        "Types": ["TTPs/UnauthorizedAccess:IAMUser-InstanceCredentialExfiltration.OutsideAWS"],
        "Title": "t", "Description": "d",
        "Severity": {"Label": "HIGH", "Normalized": 70},
        "Resources": [
            {"Type": "AwsIamAccessKey", "Id": "ASIAZXCVBNMASDFGHJKL",
             "Details": {"AwsIamAccessKey": {"PrincipalType": "AssumedRole", "PrincipalName": "web-fleet",
                "PrincipalId": format!("AROAZXCVBNMASDFGHJKLQ:{INSTANCE}")}}},
            {"Type": "AwsEc2Instance", "Id": format!("arn:aws:ec2:us-east-1:{MEMBER}:instance/{INSTANCE}")}
        ]
    });
    let config = TriageConfig {
        securityhub_imported: true,
        ..TriageConfig::default()
    };
    let t = run_with(imported(finding), &config);
    let revoked: Vec<&Decision> = t
        .decisions
        .iter()
        .filter(|d| d.decision == Verdict::Revoke)
        .collect();
    assert_eq!(revoked.len(), 1, "{:#?}", t.decisions);
    assert_eq!(
        revoked[0]
            .target
            .as_ref()
            .unwrap()
            .session
            .as_ref()
            .map(|s| s.as_str()),
        Some(INSTANCE)
    );
    assert_eq!(revoked[0].evidence.scope, Scope::Role);
}

#[test]
fn instance_credentials_used_from_another_account_are_revoked_not_only_alerted() {
    // `.InsideAWS`: the finding account's own instance credentials, used from another
    // AWS account (`remoteAccountDetails`). The remote account is the thief's, not the
    // principal's: the role is the finding account's, and it is revoked, scoped to the
    // instance when the session is the instance's.
    let mut v = instance_finding(INSTANCE, Some(INSTANCE));
    set(
        &mut v,
        "/detail/type",
        json!("UnauthorizedAccess:IAMUser/InstanceCredentialExfiltration.InsideAWS"),
    );
    set(
        &mut v,
        "/detail/service/action",
        json!({"actionType": "AWS_API_CALL", "awsApiCallAction": {
            "api": "ListBuckets", "serviceName": "s3.amazonaws.com",
            "remoteAccountDetails": {"accountId": "777788889999", "affiliated": false}}}),
    );
    let t = run(v.clone());
    let d = only(&t);
    assert_eq!(d.decision, Verdict::Revoke, "{}", d.reason);
    assert_eq!(target_of(d), (TargetKind::Role, MEMBER, "web-fleet"));
    assert_eq!(d.evidence.scope, Scope::Session);

    // Any other finding with a caller from another account still only alerts.
    set(
        &mut v,
        "/detail/type",
        json!("Discovery:S3/AnomalousBehavior"),
    );
    let t = run(v);
    assert_eq!(only(&t).decision, Verdict::Alert);
}

// --- CUTOFF_MEDIUM_FINDINGS=ask ------------------------------------------------------

fn asking() -> TriageConfig {
    TriageConfig {
        medium_findings: crate::settings::MediumFindings::Ask,
        ..TriageConfig::default()
    }
}

#[test]
fn with_ask_a_medium_finding_asks_exactly_from_the_alert_threshold_to_below_the_revoke_one() {
    for (severity, expected) in [
        (json!(10), Verdict::Revoke),
        (json!(7), Verdict::Revoke),
        (json!(6.99), Verdict::Ask),
        (json!(5.5), Verdict::Ask),
        (json!(4), Verdict::Ask),
        (json!(3.99), Verdict::Ignore),
        (json!(0), Verdict::Ignore),
    ] {
        let t = run_with(gd_role(severity.clone(), "payments-api"), &asking());
        let d = only(&t);
        assert_eq!(d.decision, expected, "severity {severity}");
        let request = crate::outcome::RevocationRequest::from_decision(t.source, d);
        match expected {
            Verdict::Ask => {
                let request = request.expect("an ask is queued");
                assert!(request.needs_approval);
                assert_eq!(request.check_queued(), Ok(()));
                assert!(
                    d.reason.contains("ask a person to approve")
                        && d.reason.contains("CUTOFF_MEDIUM_FINDINGS=ask"),
                    "{}",
                    d.reason
                );
            }
            Verdict::Revoke => assert!(!request.unwrap().needs_approval),
            _ => assert!(request.is_none()),
        }
    }
    // The default is today's behaviour: alert.
    let d = run(gd_role(json!(5.5), "payments-api")).decisions[0].clone();
    assert_eq!(d.decision, Verdict::Alert);
    // Thresholds from the configuration: the same rule around them.
    let config = TriageConfig {
        revoke_severity: 8.0,
        alert_severity: 5.0,
        ..asking()
    };
    for (severity, expected) in [
        (8.0, Verdict::Revoke),
        (7.9, Verdict::Ask),
        (5.0, Verdict::Ask),
        (4.9, Verdict::Ignore),
    ] {
        let d = run_with(gd_role(json!(severity), "x"), &config).decisions[0].clone();
        assert_eq!(d.decision, expected, "severity {severity}");
    }
    // Both thresholds equal: nothing lies between them, nothing asks.
    let config = TriageConfig {
        revoke_severity: 5.0,
        alert_severity: 5.0,
        ..asking()
    };
    let d = run_with(gd_role(json!(5.0), "x"), &config).decisions[0].clone();
    assert_eq!(d.decision, Verdict::Revoke);
}

#[test]
fn with_ask_what_would_never_be_revoked_still_only_alerts() {
    // Alert-only kinds and protected principals: no approval could revoke them.
    for details in [
        json!({"principalId": MEMBER, "userName": "Root", "userType": "Root"}),
        json!({"principalId": format!("{MEMBER}:bob"), "userName": "bob", "userType": "FederatedUser"}),
    ] {
        let d = run_with(gd(json!(5), details), &asking()).decisions[0].clone();
        assert_eq!(d.decision, Verdict::Alert, "{d:?}");
    }
    let d = run_with(gd_role(json!(5), "cutoff-member"), &asking()).decisions[0].clone();
    assert_eq!(d.decision, Verdict::Alert, "the member role is protected");
    assert!(d.reason.contains("protected"), "{}", d.reason);
    // A caller of another account on this account's finding: alert only, as before.
    let mut remote = gd_role(json!(5), "payments-api");
    set(
        &mut remote,
        "/detail/service/action",
        json!({"actionType": "AWS_API_CALL", "awsApiCallAction": {
            "remoteAccountDetails": {"accountId": "444455556666", "affiliated": false}}}),
    );
    let d = run_with(remote, &asking()).decisions[0].clone();
    assert_eq!(d.decision, Verdict::Alert, "{}", d.reason);
    // A sample finding: ignored however it is graded.
    let mut sample = gd_role(json!(5), "payments-api");
    set(
        &mut sample,
        "/detail/service/additionalInfo",
        json!({"sample": true}),
    );
    assert_eq!(
        run_with(sample, &asking()).decisions[0].decision,
        Verdict::Ignore
    );
}

#[test]
fn an_instance_finding_that_asks_keeps_the_instances_scope() {
    let mut v = instance_finding(INSTANCE, Some(INSTANCE));
    set(&mut v, "/detail/severity", json!(5));
    let t = run_with(v, &asking());
    let d = only(&t);
    assert_eq!(d.decision, Verdict::Ask);
    assert_eq!(d.evidence.scope, Scope::Session);
    let request = crate::outcome::RevocationRequest::from_decision(Source::GuardDuty, d).unwrap();
    assert_eq!(request.scope, Scope::Session);
    assert!(request.needs_approval);
}

#[test]
fn the_ask_decision_is_ask_in_the_triage_contract() {
    let t = run_with(gd_role(json!(5), "payments-api"), &asking());
    assert_eq!(t.to_json()["decisions"][0]["decision"], "ask");
}
