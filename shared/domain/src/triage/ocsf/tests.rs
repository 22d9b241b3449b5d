use serde_json::{Value, json};

use crate::event;
use crate::outcome::{FindingFormat, RevocationRequest};
use crate::principal::TargetKind;
use crate::settings::{ProductV2, TriageConfig};
use crate::triage::{Source, Triage, Verdict, triage};

const ACCOUNT: &str = "111122223333";
const GUARDDUTY: &str = "arn:aws:securityhub:us-east-1::productv2/aws/guardduty";
const METADATA_UID: &str = "1d24e91799652d9e17025b61d94f436b20b515b6f3cd9bda788f48c1db9cf244";

fn access_key(user_type: &str, name: &str, principal_id: &str, key: &str) -> Value {
    json!({"type": "AWS::IAM::AccessKey", "uid": key, "name": name,
           "owner": {"account": {"uid": ACCOUNT}},
           "data": {"access_key_id": key, "principal_id": principal_id, "user_name": name, "user_type": user_type}})
}

fn role_key() -> Value {
    access_key(
        "AssumedRole",
        "payments-api",
        "AROAZSPCBG4NC2CGN4AUF:s1",
        "ASIA5Q2VZOLTLPHRTF4L",
    )
}

/// A `Findings Imported V2` event of one OCSF finding; `patch` is merged into it.
fn v2(patch: Value) -> Value {
    let mut finding = json!({
        "class_uid": 2004, "activity_id": 1,
        "cloud": {"account": {"uid": ACCOUNT}, "region": "eu-west-1"},
        "finding_info": {
            "uid": "arn:aws:guardduty:eu-west-1:111122223333:detector/d/finding/f",
            "types": ["Exfiltration:IAMUser/AnomalousBehavior"],
            "first_seen_time": 1_764_508_867_000_i64, "first_seen_time_dt": "2026-11-30T13:21:07.000Z",
            "modified_time_dt": "2026-11-30T13:40:11.877Z", "title": "Anomalous API"
        },
        "metadata": {"uid": METADATA_UID, "product": {"name": "GuardDuty", "uid": GUARDDUTY}},
        "severity_id": 4, "status_id": 1,
        "vendor_attributes": {"severity_id": 4},
        "resources": [role_key()]
    });
    merge(&mut finding, patch);
    json!({"version": "0", "id": "e", "detail-type": "Findings Imported V2", "source": "aws.securityhub",
           "account": "999988887777", "region": "eu-west-1", "resources": [METADATA_UID],
           "detail": {"findings": [finding]}})
}

fn merge(into: &mut Value, patch: Value) {
    match (into, patch) {
        (Value::Object(into), Value::Object(patch)) => {
            for (k, v) in patch {
                merge(into.entry(k).or_insert(Value::Null), v);
            }
        }
        (into, patch) => *into = patch,
    }
}

fn enabled() -> TriageConfig {
    TriageConfig {
        securityhub_v2: true,
        ..TriageConfig::default()
    }
}

fn run(event: Value, config: &TriageConfig) -> Triage {
    triage(&event::recognise(event), config)
}

/// A decision's target as (kind, account, name).
type Named = Option<(TargetKind, String, String)>;

fn verdicts(t: &Triage) -> Vec<(Verdict, Named)> {
    t.decisions
        .iter()
        .map(|d| {
            (
                d.decision,
                d.target
                    .as_ref()
                    .map(|t| (t.kind, t.account.to_string(), t.name.to_string())),
            )
        })
        .collect()
}

fn role(name: &str) -> Named {
    Some((TargetKind::Role, ACCOUNT.to_owned(), name.to_owned()))
}

#[test]
fn ocsf_findings_are_acted_on_only_when_enabled() {
    let off = run(v2(json!({})), &TriageConfig::default());
    assert_eq!(off.source, Source::SecurityHub);
    assert_eq!(verdicts(&off), [(Verdict::Ignore, role("payments-api"))]);
    assert!(off.decisions[0].reason.contains("CUTOFF_SECURITYHUB_V2"));
    let on = run(v2(json!({})), &enabled());
    assert_eq!(verdicts(&on), [(Verdict::Revoke, role("payments-api"))]);
}

#[test]
fn only_the_named_products_count_and_by_uid_not_name() {
    let acme = "arn:aws:securityhub:eu-west-1::productv2/acme/threatwatch";
    // Calls itself GuardDuty; its uid says otherwise.
    let impostor = v2(json!({"metadata": {"product": {"name": "GuardDuty", "uid": acme}}}));
    assert_eq!(
        verdicts(&run(impostor.clone(), &enabled())),
        [(Verdict::Ignore, role("payments-api"))]
    );
    let mut named = enabled();
    named.securityhub_v2_products = vec![ProductV2::parse("acme/threatwatch").unwrap()];
    assert_eq!(
        verdicts(&run(impostor, &named)),
        [(Verdict::Revoke, role("payments-api"))]
    );
    // Naming acme no longer takes GuardDuty's.
    assert_eq!(
        run(v2(json!({})), &named).decisions[0].decision,
        Verdict::Ignore
    );
    for uid in [
        "arn:aws:securityhub:eu-west-1::product/aws/guardduty",
        "arn:aws-cn:securityhub:cn-north-1::productv2/aws/guardduty",
        "arn:aws:securityhub:eu-west-1:444455556666:productv2/aws/guardduty",
    ] {
        let t = run(
            v2(json!({"metadata": {"product": {"uid": uid}}})),
            &enabled(),
        );
        assert_eq!(t.decisions[0].decision, Verdict::Ignore, "{uid}");
    }
}

#[test]
fn severity_thresholds_apply_to_the_products_own_severity() {
    for (patch, verdict) in [
        (
            json!({"severity_id": 3, "vendor_attributes": {"severity_id": 3}}),
            Verdict::Alert,
        ),
        (
            json!({"severity_id": 2, "vendor_attributes": {"severity_id": 2}}),
            Verdict::Ignore,
        ),
        (
            json!({"severity_id": 5, "vendor_attributes": {"severity_id": 5}}),
            Verdict::Revoke,
        ),
        // A customer lowered it; the product's own stays High.
        (
            json!({"severity_id": 1, "vendor_attributes": {"severity_id": 4}}),
            Verdict::Revoke,
        ),
        // A customer raised it; the product said Medium.
        (
            json!({"severity_id": 6, "vendor_attributes": {"severity_id": 3}}),
            Verdict::Alert,
        ),
        // No vendor attributes: the finding's own.
        (
            json!({"severity_id": 4, "vendor_attributes": null}),
            Verdict::Revoke,
        ),
        // The product's number wins.
        (
            json!({"severity_id": 3, "vendor_attributes": {"severity_id": 3}, "unmapped": {"severity": 7.5}}),
            Verdict::Revoke,
        ),
        // Unknown and Other are no severity.
        (
            json!({"severity_id": 99, "vendor_attributes": {"severity_id": 0}}),
            Verdict::Ignore,
        ),
    ] {
        let t = run(v2(patch.clone()), &enabled());
        assert_eq!(t.decisions[0].decision, verdict, "{patch}");
    }
}

#[test]
fn closed_and_sample_findings_are_ignored() {
    for patch in [
        json!({"status_id": 3}),
        json!({"status_id": 4}),
        json!({"status_id": 5}),
        json!({"status_id": 6}),
        json!({"activity_id": 3}),
        json!({"finding_info": {"title": "[SAMPLE] Anomalous API"}}),
    ] {
        let t = run(v2(patch.clone()), &enabled());
        assert_eq!(
            verdicts(&t),
            [(Verdict::Ignore, role("payments-api"))],
            "{patch}"
        );
    }
    let in_progress = run(v2(json!({"status_id": 2})), &enabled());
    assert_eq!(in_progress.decisions[0].decision, Verdict::Revoke);
}

#[test]
fn actors_map_onto_principal_types() {
    let actor = |user: Value, session: Value| {
        v2(json!({"resources": [], "evidences": [{"actor": {"user": user, "session": session}}]}))
    };
    let cases = [
        // An assumed-role ARN: the role and its session.
        (
            actor(
                json!({"uid": "arn:aws:sts::111122223333:assumed-role/ledger-writer/batch-42",
                       "credential_uid": "ASIA5Q2VZOLTW8X9Y2Z3"}),
                json!(null),
            ),
            (Verdict::Revoke, role("ledger-writer")),
        ),
        // A user's ARN, with a path.
        (
            actor(
                json!({"uid": "arn:aws:iam::111122223333:user/ci/deploy-bot"}),
                json!(null),
            ),
            (
                Verdict::Revoke,
                Some((
                    TargetKind::User,
                    ACCOUNT.to_owned(),
                    "deploy-bot".to_owned(),
                )),
            ),
        ),
        // No ARN: the session's issuer names the role.
        (
            actor(
                json!({"uid": "AROAZSPCBG4NC2CGN4AUF:s9", "type": "User"}),
                json!({"issuer": "arn:aws:iam::111122223333:role/service/payments-api"}),
            ),
            (Verdict::Revoke, role("payments-api")),
        ),
        // A product's own principal type with a name.
        (
            actor(
                json!({"name": "deploy-bot", "type": "IAMUser"}),
                json!(null),
            ),
            (
                Verdict::Revoke,
                Some((
                    TargetKind::User,
                    ACCOUNT.to_owned(),
                    "deploy-bot".to_owned(),
                )),
            ),
        ),
        // Root cannot be restricted.
        (
            actor(
                json!({"uid": "arn:aws:iam::111122223333:root"}),
                json!(null),
            ),
            (
                Verdict::Alert,
                Some((TargetKind::Root, ACCOUNT.to_owned(), "root".to_owned())),
            ),
        ),
        // An OCSF label says nothing about which AWS principal this is.
        (
            actor(
                json!({"name": "svc-reporter", "type": "Admin"}),
                json!(null),
            ),
            (
                Verdict::Alert,
                Some((
                    TargetKind::Unknown,
                    ACCOUNT.to_owned(),
                    "svc-reporter".to_owned(),
                )),
            ),
        ),
        // Another account's principal: alert only.
        (
            actor(
                json!({"uid": "arn:aws:sts::444455556666:assumed-role/payments-api/s1"}),
                json!(null),
            ),
            (
                Verdict::Alert,
                Some((
                    TargetKind::Role,
                    "444455556666".to_owned(),
                    "payments-api".to_owned(),
                )),
            ),
        ),
    ];
    for (event, expected) in cases {
        let t = run(event.clone(), &enabled());
        assert_eq!(verdicts(&t), [expected], "{event}");
    }
    let t = run(
        actor(
            json!({"uid": "arn:aws:sts::111122223333:assumed-role/ledger-writer/batch-42",
                   "credential_uid": "ASIA5Q2VZOLTW8X9Y2Z3"}),
            json!(null),
        ),
        &enabled(),
    );
    let target = t.decisions[0].target.as_ref().unwrap();
    assert_eq!(target.session.as_ref().unwrap().as_str(), "batch-42");
    assert_eq!(
        target.access_key_id.as_ref().unwrap().as_str(),
        "ASIA5Q2VZOLTW8X9Y2Z3"
    );
}

#[test]
fn hostile_actors_are_refused_or_only_alert() {
    let actor = |user: Value| v2(json!({"resources": [], "actor": {"user": user}}));
    // The stated account is not the one the ARN names: invalid, nothing revoked.
    let t = run(
        actor(
            json!({"uid": "arn:aws:iam::111122223333:user/deploy-bot", "account": {"uid": "444455556666"}}),
        ),
        &enabled(),
    );
    assert!(t.decisions[0].invalid.is_some());
    // A key of the wrong shape says nothing about which principal this is: dropped.
    let t = run(
        actor(
            json!({"uid": "arn:aws:iam::111122223333:user/deploy-bot", "credential_uid": "AKIA-nope"}),
        ),
        &enabled(),
    );
    assert_eq!(t.decisions[0].decision, Verdict::Revoke);
    assert!(
        t.decisions[0]
            .target
            .as_ref()
            .unwrap()
            .access_key_id
            .is_none()
    );
    // An ARN of another partition, a name IAM would refuse.
    for user in [
        json!({"uid": "arn:aws-cn:iam::111122223333:user/deploy-bot"}),
        json!({"name": "deploy bot", "type": "IAMUser"}),
    ] {
        let t = run(actor(user.clone()), &enabled());
        let d = &t.decisions[0];
        assert!(
            d.invalid.is_some() && d.decision == Verdict::Ignore,
            "{user}"
        );
    }
    // A user that names nothing at all is no principal.
    let t = run(actor(json!({"type": "User"})), &enabled());
    assert_eq!(verdicts(&t), [(Verdict::Ignore, None)]);
    assert!(t.decisions[0].invalid.is_none());
}

#[test]
fn the_same_principal_named_many_times_is_one_decision() {
    let arn_actor = json!({"actor": {"user": {"uid": "arn:aws:sts::111122223333:assumed-role/payments-api/s1"}}});
    let t = run(
        v2(json!({
            "resources": [role_key(), role_key(),
                {"type": "AWS::IAM::Role", "uid": "arn:aws:iam::111122223333:role/payments-api"}],
            "evidences": [arn_actor.clone(), arn_actor.clone(), arn_actor]
        })),
        &enabled(),
    );
    assert_eq!(verdicts(&t), [(Verdict::Revoke, role("payments-api"))]);
    // The key and unique id of the access key resource survive the actor first.
    let d = &t.decisions[0];
    assert_eq!(
        d.target
            .as_ref()
            .unwrap()
            .access_key_id
            .as_ref()
            .unwrap()
            .as_str(),
        "ASIA5Q2VZOLTLPHRTF4L"
    );
    assert_eq!(
        d.evidence.unique_id.as_ref().unwrap().as_str(),
        "AROAZSPCBG4NC2CGN4AUF"
    );
}

#[test]
fn an_instance_profile_is_used_only_when_nothing_else_names_a_principal() {
    let instance = json!({"type": "AWS::EC2::Instance", "uid": "i-0123456789abcdef0",
        "data": {"iam_instance_profile": {"arn": "arn:aws:iam::111122223333:instance-profile/app/web"}}});
    let t = run(v2(json!({"resources": [instance.clone()]})), &enabled());
    assert_eq!(
        verdicts(&t),
        [(
            Verdict::Alert,
            Some((
                TargetKind::InstanceProfile,
                ACCOUNT.to_owned(),
                "web".to_owned()
            ))
        )]
    );
    let t = run(v2(json!({"resources": [role_key(), instance]})), &enabled());
    assert_eq!(verdicts(&t), [(Verdict::Revoke, role("payments-api"))]);
}

#[test]
fn a_revocation_request_says_which_api_updates_the_finding() {
    let t = run(v2(json!({})), &enabled());
    let d = &t.decisions[0];
    assert_eq!(d.finding.as_ref().unwrap().id, METADATA_UID);
    assert_eq!(
        d.finding.as_ref().unwrap().finding_type.as_deref(),
        Some("Exfiltration:IAMUser/AnomalousBehavior")
    );
    let request = RevocationRequest::from_decision(t.source, d).unwrap();
    request.check_queued().unwrap();
    assert_eq!(request.trigger.finding_format, Some(FindingFormat::Ocsf));
    assert_eq!(request.trigger.product_arn.as_deref(), Some(GUARDDUTY));
    assert_eq!(
        request.first_activity.unwrap().to_rfc3339(),
        "2026-11-30T13:21:07+00:00"
    );
    assert_eq!(
        request.trigger.updated_at.unwrap().to_rfc3339(),
        "2026-11-30T13:40:11.877+00:00"
    );
    assert_eq!(request.activity_region.as_deref(), Some("eu-west-1"));
    let body = serde_json::to_value(&request).unwrap();
    assert_eq!(body["trigger"]["finding_format"], "ocsf");
    // Read back as the revoker reads the queue.
    let back: RevocationRequest = serde_json::from_value(body).unwrap();
    assert_eq!(back, request);
}

#[test]
fn a_malformed_finding_does_not_hide_another_in_the_same_event() {
    let mut event = v2(json!({}));
    let good = event["detail"]["findings"][0].clone();
    event["detail"]["findings"] = json!([{"resources": "x"}, good, 7]);
    let t = run(event, &enabled());
    let kinds: Vec<(Verdict, bool)> = t
        .decisions
        .iter()
        .map(|d| (d.decision, d.invalid.is_some()))
        .collect();
    assert_eq!(
        kinds,
        [
            (Verdict::Ignore, true),
            (Verdict::Revoke, false),
            (Verdict::Ignore, true)
        ]
    );
    let empty = run(
        json!({"detail-type": "Findings Imported V2", "source": "aws.securityhub", "detail": {"findings": []}}),
        &enabled(),
    );
    assert_eq!(empty.decisions.len(), 1);
    assert_eq!(empty.decisions[0].decision, Verdict::Ignore);
}

#[test]
fn guarddutys_own_event_decides_its_attack_sequences_and_instance_credential_findings() {
    // The OCSF copy of an attack sequence does not say who acted; a role it only
    // touched must not be revoked from it.
    let sequence = v2(json!({
        "finding_info": {"types": ["AttackSequence:IAM/CompromisedCredentials"]},
        "resources": [role_key(), {"type": "AWS::IAM::Role", "uid": "arn:aws:iam::111122223333:role/victim-role"}]
    }));
    let t = run(sequence, &enabled());
    assert_eq!(
        verdicts(&t),
        [
            (Verdict::Alert, role("payments-api")),
            (Verdict::Alert, role("victim-role"))
        ]
    );
    assert!(t.decisions[0].reason.contains("GuardDuty's own event"));
    // The OCSF copy of an instance-credential finding would deny every session of the
    // instance role; GuardDuty's own event denies that instance's only.
    let instance = v2(json!({"finding_info": {"types": [
        "UnauthorizedAccess:IAMUser/InstanceCredentialExfiltration.OutsideAWS"]}}));
    let t = run(instance, &enabled());
    assert_eq!(verdicts(&t), [(Verdict::Alert, role("payments-api"))]);
    // Without a principal, nothing to alert about.
    let bare = v2(
        json!({"finding_info": {"types": ["AttackSequence:S3/CompromisedData"]}, "resources": []}),
    );
    assert_eq!(verdicts(&run(bare, &enabled())), [(Verdict::Ignore, None)]);
}

#[test]
fn a_time_before_any_finding_could_be_is_no_time() {
    for patch in [
        json!({"finding_info": {"first_seen_time": -5, "first_seen_time_dt": null}}),
        json!({"finding_info": {"first_seen_time": 0, "first_seen_time_dt": null}}),
        json!({"finding_info": {"first_seen_time_dt": "1970-01-01T00:00:01Z"}}),
    ] {
        let t = run(v2(patch.clone()), &enabled());
        assert_eq!(t.decisions[0].evidence.first_activity, None, "{patch}");
    }
}

#[test]
fn conflicting_unique_ids_stay_unchecked_whatever_comes_after() {
    let key = |id: &str| {
        access_key(
            "AssumedRole",
            "payments-api",
            &format!("{id}:s1"),
            "ASIA5Q2VZOLTLPHRTF4L",
        )
    };
    for order in [
        [
            "AROAZSPCBG4NC2CGN4AUF",
            "AROAQW3ER5TY7UI9OP1AS",
            "AROAQW3ER5TY7UI9OP1AS",
        ],
        [
            "AROAQW3ER5TY7UI9OP1AS",
            "AROAZSPCBG4NC2CGN4AUF",
            "AROAZSPCBG4NC2CGN4AUF",
        ],
    ] {
        let t = run(v2(json!({"resources": order.map(key)})), &enabled());
        assert_eq!(verdicts(&t), [(Verdict::Revoke, role("payments-api"))]);
        assert!(t.decisions[0].evidence.unique_id.is_none(), "{order:?}");
    }
}

#[test]
fn guarddutys_own_event_findings_below_the_threshold_are_quiet_and_invalid_ones_reported() {
    let types =
        json!({"types": ["UnauthorizedAccess:IAMUser/InstanceCredentialExfiltration.InsideAWS"]});
    let low = v2(
        json!({"finding_info": types.clone(), "severity_id": 2, "vendor_attributes": {"severity_id": 2}}),
    );
    assert_eq!(
        verdicts(&run(low, &enabled())),
        [(Verdict::Ignore, role("payments-api"))]
    );
    let bad = v2(json!({"finding_info": types, "resources": [role_key(),
        access_key("AssumedRole", "payments/../admin", "AROAZSPCBG4NC2CGN4AUF:s", "ASIA5Q2VZOLTLPHRTF4L")]}));
    let t = run(bad, &enabled());
    let kinds: Vec<(Verdict, bool)> = t
        .decisions
        .iter()
        .map(|d| (d.decision, d.invalid.is_some()))
        .collect();
    assert_eq!(kinds, [(Verdict::Alert, false), (Verdict::Ignore, true)]);
}

#[test]
fn a_principal_named_with_two_session_keys_has_no_first_activity_to_skip_by() {
    let t = run(
        v2(json!({"resources": [
            access_key("AssumedRole", "payments-api", "AROAZSPCBG4NC2CGN4AUF:s1", "ASIA5Q2VZOLTLPHRTF4L"),
            access_key("AssumedRole", "payments-api", "AROAZSPCBG4NC2CGN4AUF:s2", "ASIA5Q2VZOLTMN4B8CDE")
        ]})),
        &enabled(),
    );
    assert_eq!(verdicts(&t), [(Verdict::Revoke, role("payments-api"))]);
    let d = &t.decisions[0];
    assert!(d.target.as_ref().unwrap().access_key_id.is_none());
    assert_eq!(d.evidence.first_activity, None);
    // A user's long-term key after two conflicting session keys is a decision of its own.
    let user_key = |key: &str| access_key("IAMUser", "deploy-bot", "AIDA5Q2VZOLTNQ3KXWB7E", key);
    let t = run(
        v2(
            json!({"resources": [user_key("ASIA5Q2VZOLTLPHRTF4L"), user_key("ASIA5Q2VZOLTMN4B8CDE"), user_key("AKIA5Q2VZOLTH7PZ2N4M")]}),
        ),
        &enabled(),
    );
    let keys: Vec<Option<String>> = t
        .decisions
        .iter()
        .map(|d| {
            d.target
                .as_ref()
                .unwrap()
                .access_key_id
                .as_ref()
                .map(|k| k.to_string())
        })
        .collect();
    assert_eq!(keys, [None, Some("AKIA5Q2VZOLTH7PZ2N4M".to_owned())]);
}
