//! Hostile input: the fuzz targets' invariants on the stable toolchain, on every
//! `make test`.
//!
//! - Every file of `tests/fuzz-corpus/<target>/` (inputs the fuzzers found worth
//!   keeping, minimised) and every fixture is replayed through the same functions the
//!   libFuzzer targets run (`fuzz/src/lib.rs`, compiled here as the module `checks`).
//! - Property tests: a well-formed GuardDuty or Security Hub finding naming principal
//!   P in account A, with unknown fields and junk anywhere but the principal's own
//!   fields, revokes (A, P) and nothing else; any outcome renders to an SNS message
//!   whose subject is short printable ASCII and whose body carries no control
//!   character and no outside string longer than its cut; a finding or request whose
//!   principal name IAM would refuse never revokes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[allow(dead_code)]
#[path = "../../fuzz/src/lib.rs"]
mod checks;

use cutoff_domain::triage::Source;
use std::path::PathBuf;

use chrono::DateTime;
use cutoff_domain::approval::{ApprovalId, ApprovalNote, ApprovalState};
use cutoff_domain::event::Scope;
use cutoff_domain::notify;
use cutoff_domain::outcome::{
    FailureKind, FindingFormat, Outcome, OutcomeError, Owner, Status, StillWorks, Trigger,
};
use cutoff_domain::policy::Cutoff;
use cutoff_domain::principal::{
    AccessKeyId, Account, PrincipalName, SessionName, Target, TargetKind,
};
use cutoff_domain::settings::TriageConfig;
use cutoff_domain::triage::{Triage, Verdict};
use cutoff_tests::fixture_dir;
use proptest::prelude::*;
use proptest::strategy::Union;
use serde_json::{Map, Value, json};

// ---------------------------------------------------------------------------------------
// Replay
// ---------------------------------------------------------------------------------------

/// A fuzz target's checks.
type Check = fn(&[u8]);

const TARGETS: [(&str, Check); 4] = [
    ("event_triage", checks::event_triage),
    ("policy_document", checks::policy_document),
    ("manual_request", checks::manual_request),
    ("principal_parsers", checks::principal_parsers),
];

fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz-corpus")
}

fn files_in(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

/// Runs `run` on each file, catching panics; the failures, one line per file.
fn replay(label: &str, files: &[PathBuf], run: Check) -> Vec<String> {
    let mut failures = Vec::new();
    for file in files {
        let bytes = std::fs::read(file).unwrap();
        if let Err(panic) = std::panic::catch_unwind(|| run(&bytes)) {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_default();
            let message: String = message.chars().take(600).collect();
            failures.push(format!("{label} {}: {message}", file.display()));
        }
    }
    failures
}

fn assert_none(failures: &[String]) {
    assert!(
        failures.is_empty(),
        "{} input(s) broke an invariant:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn every_regression_corpus_file_keeps_its_targets_invariants() {
    let mut dirs: Vec<String> = std::fs::read_dir(corpus_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    dirs.sort();
    let mut known: Vec<String> = TARGETS.iter().map(|(t, _)| (*t).to_owned()).collect();
    known.sort();
    assert_eq!(
        dirs, known,
        "tests/fuzz-corpus/ has one folder per fuzz target"
    );
    let mut failures = Vec::new();
    for (target, run) in TARGETS {
        let files = files_in(&corpus_dir().join(target));
        assert!(!files.is_empty(), "no corpus for {target}");
        failures.extend(replay(target, &files, run));
    }
    assert_none(&failures);
}

#[test]
fn every_fixture_keeps_the_fuzz_invariants() {
    let files = files_in(&fixture_dir().join("events"));
    assert!(files.len() >= 30);
    let mut failures = replay("event_triage", &files, checks::event_triage);
    let manual: Vec<PathBuf> = files
        .into_iter()
        .filter(|f| f.file_name().unwrap().to_string_lossy().starts_with('4'))
        .collect();
    failures.extend(replay("manual_request", &manual, checks::manual_request));
    assert_none(&failures);
}

/// The hand-made corpus files that name a decoy principal (`evil-admin` in
/// 444455556666) in every free-text place revoke exactly the principals their
/// principal fields name.
#[test]
fn decoy_corpus_files_revoke_only_the_named_principals() {
    for (file, config, expected) in [
        (
            "gd-decoy-principals-in-free-text.json",
            TriageConfig::default(),
            vec![("111122223333", "payments-api")],
        ),
        (
            "sh-custom-action-decoys-and-bad-findings.json",
            TriageConfig::default(),
            vec![
                ("111122223333", "payments-api"),
                ("444455556666", "ok-role"),
            ],
        ),
        (
            "bare-gd-finding-with-action-key.json",
            checks::opted_in(),
            vec![],
        ),
    ] {
        let bytes = std::fs::read(corpus_dir().join("event_triage").join(file)).unwrap();
        let triage = checks::check_event(serde_json::from_slice(&bytes).unwrap(), &config);
        let revoked: Vec<(&str, &str)> = revokes(&triage)
            .iter()
            .map(|t| (t.account.as_str(), t.name.as_str()))
            .collect();
        assert_eq!(revoked, expected, "{file}");
    }
}

// ---------------------------------------------------------------------------------------
// Generators
// ---------------------------------------------------------------------------------------

const NAME_CHARS: &str = "[A-Za-z0-9_+=,.@-]";

fn account() -> impl Strategy<Value = String> {
    "[0-9]{12}"
}

/// A name triage revokes: valid, not protected (`cutoff-*`, `cutoff-member`), not a
/// service-linked or Identity Center role.
fn plain_name() -> impl Strategy<Value = String> {
    proptest::string::string_regex(&format!("{NAME_CHARS}{{1,64}}"))
        .unwrap()
        .prop_filter("a name triage revokes", |n| {
            let lower = n.to_ascii_lowercase();
            PrincipalName::parse(n).is_ok()
                && !lower.starts_with("cutoff-")
                && !n.starts_with("AWSServiceRoleFor")
                && !n.starts_with("AWSReservedSSO_")
        })
}

fn session_name() -> impl Strategy<Value = String> {
    proptest::string::string_regex(&format!("{NAME_CHARS}{{2,64}}")).unwrap()
}

/// Characters that have broken renderers and parsers: controls (C0, DEL, C1), ANSI
/// escape introducers, bidirectional controls, zero-width and invisible characters,
/// line separators, quotes and backslashes, JSON and ARN punctuation, non-Latin
/// letters, a combining mark and an emoji.
fn hostile_char() -> impl Strategy<Value = char> {
    prop_oneof![
        4 => proptest::char::range('a', 'z'),
        1 => proptest::char::range('\u{0}', '\u{1f}'),
        1 => Just('\u{7f}'),
        1 => proptest::char::range('\u{80}', '\u{9f}'),
        1 => proptest::sample::select(vec![
            '\u{1b}', '[', ']', ';', '"', '\\', '/', ':', '*', '.', ' ', '{', '}', '%', '\n',
            '\r', '\t', '\u{061c}', '\u{200b}', '\u{200c}', '\u{200d}', '\u{200e}', '\u{200f}',
            '\u{2028}', '\u{2029}', '\u{202a}', '\u{202b}', '\u{202c}', '\u{202d}', '\u{202e}',
            '\u{2060}', '\u{2066}', '\u{2067}', '\u{2068}', '\u{2069}', '\u{feff}', '\u{fff9}',
            '\u{fffb}', 'א', 'ي', '中', 'é', '\u{301}', '😀', '\u{e0041}', '\u{ad}',
        ]),
        1 => any::<char>(),
    ]
}

/// Junk text: short and long, from [`hostile_char`], arbitrary Unicode, strings
/// that look like other principals (ARNs, JSON, a manual request), and forged
/// message sections.
fn junk_text(other: (String, String)) -> impl Strategy<Value = String> {
    let (a, q) = other;
    let decoys = vec![
        format!("arn:aws:iam::{a}:role/{q}"),
        format!("arn:aws:iam::{a}:user/{q}"),
        format!("arn:aws:sts::{a}:assumed-role/{q}/session-1"),
        format!("arn:aws:iam::{a}:instance-profile/{q}"),
        format!("{q}"),
        format!("role {q} in account {a}"),
        format!("{{\"userName\":\"{q}\",\"accountId\":\"{a}\",\"userType\":\"AssumedRole\"}}"),
        format!("{{\"action\":\"revoke\",\"account\":\"{a}\",\"role\":\"{q}\"}}"),
        format!(
            "x\n\nWhat to do next\n  1. revoke {q}\n{}\n{{}}",
            notify::SEPARATOR
        ),
    ];
    prop_oneof![
        3 => proptest::collection::vec(hostile_char(), 0..40)
            .prop_map(|cs| cs.into_iter().collect::<String>()),
        // Long: a random stretch repeated past the 512-character cut.
        1 => (proptest::collection::vec(hostile_char(), 1..24), 30usize..150)
            .prop_map(|(cs, n)| cs.into_iter().collect::<String>().repeat(n)),
        1 => any::<String>(),
        2 => proptest::sample::select(decoys),
    ]
}

/// Another principal, named only in free text.
fn other_principal() -> impl Strategy<Value = (String, String)> {
    (account(), plain_name())
}

/// Keys that mean "principal" somewhere in some format, plus arbitrary ones.
fn junk_key() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => proptest::sample::select(vec![
            "userName", "userType", "principalId", "accessKeyId", "accountId", "arn",
            "roleName", "PrincipalName", "PrincipalType", "PrincipalId", "AccountId",
            "AwsIamRole", "AwsIamUser", "AwsIamAccessKey", "accessKeyDetails",
            "IamInstanceProfileArn", "Id", "Type", "principal_arn", "role", "user",
            "account", "action", "sample", "archived", "Sample", "RecordState",
            "detail-type", "detail", "findings", "severity", "Severity",
        ])
        .prop_map(str::to_owned),
        1 => "[a-zA-Z_-]{1,16}",
        1 => any::<String>(),
    ]
}

/// Any JSON value, its strings junk.
fn junk_json(other: (String, String)) -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        (-1e12f64..1e12).prop_map(Value::from),
        junk_text(other).prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::vec((junk_key(), inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// A JSON pointer to an object and the keys modelled there: junk goes under any other
/// key, so it can only be read as free text.
type Point = (&'static str, &'static [&'static str]);

/// One injection: where, under which key, what.
type Injection = (usize, String, Value);

fn injections(
    points: &'static [Point],
    other: (String, String),
) -> impl Strategy<Value = Vec<Injection>> {
    proptest::collection::vec((0..points.len(), junk_key(), junk_json(other)), 0..10)
}

fn inject(event: &mut Value, points: &[Point], injections: Vec<Injection>) {
    for (point, key, value) in injections {
        let (pointer, modelled) = points[point];
        if modelled.contains(&key.as_str()) {
            continue;
        }
        if let Some(Value::Object(object)) = event.pointer_mut(pointer) {
            object.insert(key, value);
        }
    }
}

/// Text triage accepts as a finding id or type (non-empty, bounded, no control
/// character); other text makes the finding invalid, which must not revoke either.
fn acceptable(text: &str, max: usize) -> bool {
    !text.is_empty() && text.chars().count() <= max && !text.chars().any(char::is_control)
}

fn revokes(triage: &Triage) -> Vec<&Target> {
    triage
        .decisions
        .iter()
        .filter(|d| d.decision == Verdict::Revoke)
        .map(|d| d.target.as_ref().expect("a revoke has a target"))
        .collect()
}

/// The principal a finding names.
#[derive(Debug, Clone)]
struct Named {
    account: String,
    name: String,
    user: bool,
    session: String,
}

fn named() -> impl Strategy<Value = Named> {
    (account(), plain_name(), any::<bool>(), session_name()).prop_map(
        |(account, name, user, session)| Named {
            account,
            name,
            user,
            session,
        },
    )
}

// ---------------------------------------------------------------------------------------
// GuardDuty
// ---------------------------------------------------------------------------------------

const GD_POINTS: &[Point] = &[
    ("", &["detail-type", "detail", "source"]),
    (
        "/detail",
        &[
            "schemaVersion",
            "accountId",
            "region",
            "partition",
            "id",
            "arn",
            "type",
            "resource",
            "service",
            "severity",
            "updatedAt",
        ],
    ),
    (
        "/detail/resource",
        &["resourceType", "accessKeyDetails", "instanceDetails"],
    ),
    (
        "/detail/resource/accessKeyDetails",
        &["accessKeyId", "principalId", "userName", "userType"],
    ),
    (
        "/detail/resource/instanceDetails",
        &["instanceId", "iamInstanceProfile"],
    ),
    (
        "/detail/resource/instanceDetails/iamInstanceProfile",
        &["arn", "id"],
    ),
    (
        "/detail/service",
        &[
            "serviceName",
            "archived",
            "additionalInfo",
            "eventFirstSeen",
            "eventLastSeen",
            "count",
        ],
    ),
    ("/detail/service/additionalInfo", &["sample"]),
    ("/detail/service/action", &[]),
    ("/detail/service/action/awsApiCallAction", &[]),
];

/// Junk for the modelled string fields that do not name the principal.
#[derive(Debug, Clone)]
struct GdText {
    id: String,
    finding_type: String,
    region: String,
    partition: String,
    arn: String,
    updated_at: String,
    last_seen: String,
    resource_type: String,
    instance_id: String,
    profile_arn: String,
}

fn gd_text(other: (String, String)) -> impl Strategy<Value = GdText> {
    let (a, q) = other.clone();
    let t = move || {
        prop_oneof![
            3 => "[a-f0-9]{32}",
            1 => junk_text(other.clone()),
        ]
    };
    (
        (t(), t(), t(), t(), t()),
        (t(), t(), t(), t()),
        prop_oneof![
            Just(format!("arn:aws:iam::{a}:instance-profile/{q}")),
            Just(format!("arn:aws:iam::{a}:role/{q}")),
            t(),
        ],
    )
        .prop_map(
            |(
                (id, finding_type, region, partition, arn),
                (updated_at, last_seen, resource_type, instance_id),
                profile_arn,
            )| GdText {
                id,
                finding_type,
                region,
                partition,
                arn,
                updated_at,
                last_seen,
                resource_type,
                instance_id,
                profile_arn,
            },
        )
}

type GdCase = (Named, (String, String), f64, GdText, Vec<Injection>);

fn gd_case() -> impl Strategy<Value = GdCase> {
    (named(), other_principal(), 7.0f64..=10.0).prop_flat_map(|(p, other, severity)| {
        (
            Just(p),
            Just(other.clone()),
            Just(severity),
            gd_text(other.clone()),
            injections(GD_POINTS, other),
        )
    })
}

fn gd_event(p: &Named, severity: f64, text: &GdText, other: &(String, String)) -> Value {
    let (other_account, q) = other;
    let details = if p.user {
        json!({"accessKeyId": "AKIAZXCVBNMASDFGHJKL", "principalId": "AIDAZXCVBNMASDFGHJKLQ",
               "userName": p.name, "userType": "IAMUser"})
    } else {
        json!({"accessKeyId": "ASIAZXCVBNMASDFGHJKL",
               "principalId": format!("AROAZXCVBNMASDFGHJKLQ:{}", p.session),
               "userName": p.name, "userType": "AssumedRole"})
    };
    json!({
        "version": "0", "id": "4b4f1e3c-0000-0000-0000-000000000000",
        "detail-type": "GuardDuty Finding", "source": "aws.guardduty",
        "account": other_account, "time": "2026-11-23T11:56:00Z", "region": "us-east-1",
        "resources": [format!("arn:aws:iam::{other_account}:role/{q}")],
        "detail": {
            "schemaVersion": "2.0", "accountId": p.account, "region": text.region,
            "partition": text.partition, "id": text.id, "arn": text.arn,
            "type": text.finding_type,
            "resource": {
                "resourceType": text.resource_type,
                "accessKeyDetails": details,
                "instanceDetails": {
                    "instanceId": text.instance_id,
                    "iamInstanceProfile": {"arn": text.profile_arn, "id": "AIPAZXCVBNMASDFGHJKLQ"}
                }
            },
            "service": {
                "serviceName": "guardduty", "archived": false,
                "additionalInfo": {"sample": false},
                "eventFirstSeen": text.last_seen, "eventLastSeen": text.last_seen,
                "action": {"actionType": "AWS_API_CALL", "awsApiCallAction": {
                    "api": "AssumeRole", "serviceName": "sts.amazonaws.com",
                    "affectedResources": {"AWS::IAM::Role": format!("arn:aws:iam::{other_account}:role/{q}")}
                }},
                "count": 3
            },
            "severity": severity, "updatedAt": text.updated_at,
            "title": format!("Role {q} in {other_account} was used from a malicious IP"),
            "description": format!("arn:aws:sts::{other_account}:assumed-role/{q}/x")
        }
    })
}

// ---------------------------------------------------------------------------------------
// Security Hub
// ---------------------------------------------------------------------------------------

const SH_POINTS: &[Point] = &[
    ("", &["detail-type", "detail", "source"]),
    ("/detail", &["findings", "actionName"]),
    (
        "/detail/findings/0",
        &[
            "AwsAccountId",
            "Id",
            "ProductArn",
            "Types",
            "Severity",
            "Resources",
            "RecordState",
            "Workflow",
            "Sample",
            "UpdatedAt",
            "LastObservedAt",
        ],
    ),
    ("/detail/findings/0/ProductFields", &[]),
    ("/detail/findings/0/Severity", &["Label", "Normalized"]),
    (
        "/detail/findings/0/Resources/0",
        &["Type", "Id", "Partition", "Details"],
    ),
    (
        "/detail/findings/0/Resources/0/Details",
        &[
            "AwsIamAccessKey",
            "AwsEc2Instance",
            "AwsIamRole",
            "AwsIamUser",
        ],
    ),
    (
        "/detail/findings/0/Resources/0/Details/AwsIamAccessKey",
        &[
            "PrincipalType",
            "PrincipalName",
            "PrincipalId",
            "UserName",
            "AccountId",
            "AccessKeyId",
        ],
    ),
    (
        "/detail/findings/0/Resources/1",
        &["Type", "Id", "Partition", "Details"],
    ),
    (
        "/detail/findings/0/Resources/1/Details",
        &[
            "AwsIamAccessKey",
            "AwsEc2Instance",
            "AwsIamRole",
            "AwsIamUser",
        ],
    ),
    ("/detail/findings/0/Resources/1/Details/AwsS3Bucket", &[]),
];

/// How the finding names its principal.
#[derive(Debug, Clone, Copy)]
enum ShForm {
    /// `AwsIamAccessKey` with `PrincipalName` (GuardDuty's form).
    AccessKey,
    /// `AwsIamRole` or `AwsIamUser` with the ARN in `Id`.
    Arn,
    /// `AwsIamRole` or `AwsIamUser` with the name in `Details` and no ARN.
    DetailsName,
}

fn sh_form() -> impl Strategy<Value = ShForm> {
    prop_oneof![
        Just(ShForm::AccessKey),
        Just(ShForm::Arn),
        Just(ShForm::DetailsName)
    ]
}

fn sh_principal_resource(p: &Named, form: ShForm, path: &str) -> Value {
    let (kind, type_) = if p.user {
        ("user", "AwsIamUser")
    } else {
        ("role", "AwsIamRole")
    };
    match form {
        ShForm::AccessKey => json!({
            "Type": "AwsIamAccessKey", "Id": "AWS::IAM::AccessKey:ASIAZXCVBNMASDFGHJKL",
            "Partition": "aws", "Region": "us-east-1",
            "Details": {"AwsIamAccessKey": {
                "PrincipalId": format!("AROAZXCVBNMASDFGHJKLQ:{}", p.session),
                "PrincipalName": p.name,
                "PrincipalType": if p.user { "IAMUser" } else { "AssumedRole" },
                "AccountId": p.account
            }},
            "Tags": {}
        }),
        ShForm::Arn => json!({
            "Type": type_, "Id": format!("arn:aws:iam::{}:{kind}{path}{}", p.account, p.name),
            "Partition": "aws", "Details": {}
        }),
        ShForm::DetailsName => {
            let details = if p.user {
                json!({"AwsIamUser": {"UserName": p.name}})
            } else {
                json!({"AwsIamRole": {"RoleName": p.name}})
            };
            json!({"Type": type_, "Id": p.name, "Partition": "aws", "Details": details})
        }
    }
}

type ShCase = (
    Named,
    (String, String),
    (ShForm, bool),
    String,
    String,
    String,
    Vec<Injection>,
);

fn sh_case() -> impl Strategy<Value = ShCase> {
    (named(), other_principal(), sh_form(), any::<bool>()).prop_flat_map(
        |(p, other, form, imported)| {
            (
                Just(p),
                Just(other.clone()),
                Just((form, imported)),
                prop_oneof![3 => "[a-f0-9]{32}".boxed(), 1 => junk_text(other.clone()).boxed()],
                prop_oneof![
                    3 => Just("TTPs/Credential Access".to_owned()).boxed(),
                    1 => junk_text(other.clone()).boxed()
                ],
                junk_text(other.clone()),
                injections(SH_POINTS, other),
            )
        },
    )
}

fn sh_event(
    p: &Named,
    form: ShForm,
    id: &str,
    finding_type: &str,
    free: &str,
    other: &(String, String),
) -> Value {
    let (a, q) = other;
    json!({
        "version": "0", "id": "e6be2d35-0000-0000-0000-000000000000",
        "detail-type": "Security Hub Findings - Custom Action", "source": "aws.securityhub",
        "account": a, "time": "2026-11-23T11:56:00Z", "region": "us-east-1",
        "resources": [format!("arn:aws:securityhub:us-east-1:{a}:action/custom/revoke"),
                      format!("arn:aws:iam::{a}:role/{q}")],
        "detail": {
            "actionName": "revoke-sessions", "actionDescription": free,
            "findings": [{
                "SchemaVersion": "2018-10-08", "Id": id,
                "ProductArn": "arn:aws:securityhub:us-east-1::product/aws/guardduty",
                "GeneratorId": free, "AwsAccountId": p.account, "Types": [finding_type],
                "UpdatedAt": "2026-11-23T11:55:00.000Z",
                "Severity": {"Label": "HIGH", "Normalized": 80, "Product": 8},
                "Title": format!("Credentials of role {q} used from an external IP"),
                "Description": free,
                "ProductFields": {
                    "aws/guardduty/service/action/awsApiCallAction/affectedResources/AWS::IAM::Role":
                        format!("arn:aws:iam::{a}:role/{q}"),
                    "aws/securityhub/FindingId": free
                },
                "UserDefinedFields": {"principal": q},
                "Resources": [
                    sh_principal_resource(p, form, "/service/"),
                    {"Type": "AwsS3Bucket", "Id": format!("arn:aws:s3:::{}", q.to_ascii_lowercase()),
                     "Partition": "aws",
                     "Details": {"AwsS3Bucket": {"OwnerName": q, "OwnerAccountId": a}}},
                    {"Type": "AwsEc2Instance", "Id": "arn:aws:ec2:us-east-1:111122223333:instance/i-0",
                     "Details": {"AwsEc2Instance": {
                         "IamInstanceProfileArn": format!("arn:aws:iam::{a}:instance-profile/{q}")}}},
                    {"Type": "Other", "Id": format!("arn:aws:iam::{a}:user/{q}"),
                     "Details": {"Other": {"userName": q}}}
                ],
                "Note": {"Text": free, "UpdatedBy": q},
                "Workflow": {"Status": "NEW"}, "RecordState": "ACTIVE"
            }]
        }
    })
}

// ---------------------------------------------------------------------------------------
// Outcomes
// ---------------------------------------------------------------------------------------

fn any_kind() -> impl Strategy<Value = TargetKind> {
    proptest::sample::select(vec![
        TargetKind::Role,
        TargetKind::User,
        TargetKind::Root,
        TargetKind::ServiceLinkedRole,
        TargetKind::IdentityCenterRole,
        TargetKind::InstanceProfile,
        TargetKind::FederatedUser,
        TargetKind::Unknown,
    ])
}

fn any_status() -> impl Strategy<Value = Status> {
    proptest::sample::select(Status::ALL.to_vec())
}

fn any_target() -> impl Strategy<Value = Target> {
    let name = proptest::string::string_regex(&format!("{NAME_CHARS}{{1,64}}"))
        .unwrap()
        .prop_filter("valid", |n| PrincipalName::parse(n).is_ok());
    (
        any_kind(),
        account(),
        name,
        proptest::option::of(session_name()),
        proptest::option::of("(AKIA|ASIA)[A-Z0-9]{16}"),
    )
        .prop_map(|(kind, account, name, session, key)| Target {
            kind,
            account: Account::parse(&account).unwrap(),
            name: PrincipalName::parse(&name).unwrap(),
            access_key_id: key.map(|k| AccessKeyId::parse(&k).unwrap()),
            session: session.map(|s| SessionName::parse(&s).unwrap()),
        })
}

fn cutoff_at() -> impl Strategy<Value = Cutoff> {
    (0i64..4_000_000_000).prop_map(|s| Cutoff::at_or_after(DateTime::from_timestamp(s, 0).unwrap()))
}

fn text() -> impl Strategy<Value = String> {
    junk_text(("444455556666".to_owned(), "payments-api".to_owned()))
}

fn outcome() -> BoxedStrategy<Outcome> {
    let known = |words: &[&'static str]| {
        Union::new_weighted(vec![
            (
                1,
                proptest::sample::select(words.to_vec())
                    .prop_map(str::to_owned)
                    .boxed(),
            ),
            (1, text().boxed()),
        ])
    };
    let trigger = (
        // A source is an enum now: text outside it cannot be an outcome's.
        proptest::sample::select(vec![
            Source::GuardDuty,
            Source::SecurityHub,
            Source::CloudTrail,
            Source::Manual,
            Source::Schedule,
            Source::Queue,
            Source::Unknown,
        ]),
        proptest::option::of(text()),
        proptest::option::of(text()),
        proptest::option::of(prop_oneof![
            any::<f64>(),
            Just(f64::NAN),
            Just(f64::INFINITY),
            0.0f64..10.0
        ]),
        proptest::option::of(
            (0i64..4_000_000_000).prop_map(|s| DateTime::from_timestamp(s, 0).unwrap()),
        ),
        (
            proptest::option::of(text()),
            proptest::option::of(text()),
            proptest::option::of(proptest::sample::select(vec![
                FindingFormat::Asff,
                FindingFormat::Ocsf,
            ])),
        ),
        (
            proptest::option::of(text()),
            any::<bool>(),
            proptest::option::of(text()),
        ),
        proptest::option::of(text()),
    )
        .prop_map(
            |(
                source,
                finding_id,
                finding_type,
                severity,
                updated_at,
                (product_arn, custom_action, finding_format),
                (requested_by, requested_by_verified, approved_by),
                reason,
            )| {
                Trigger {
                    source,
                    finding_id,
                    finding_type,
                    severity,
                    updated_at,
                    product_arn,
                    finding_format,
                    requested_by,
                    requested_by_verified,
                    custom_action,
                    reason,
                    approved_by,
                }
            },
        );
    // An approval's decider and reason are an operator's text, its id one of ours.
    let approval = proptest::option::of(
        (
            proptest::sample::select(vec![
                ApprovalState::Pending,
                ApprovalState::Approved,
                ApprovalState::Refused,
                ApprovalState::Expired,
            ]),
            proptest::option::of(text()),
            proptest::option::of(text()),
            (0i64..4_000_000_000).prop_map(|s| DateTime::from_timestamp(s, 0).unwrap()),
        )
            .prop_map(|(state, decided_by, reason, expires_at)| ApprovalNote {
                id: ApprovalId::parse("0123456789abcdef").unwrap(),
                state,
                expires_at,
                decided_at: decided_by.as_ref().map(|_| expires_at),
                decided_by,
                reason,
            }),
    );
    let owner = (
        proptest::option::of(text()),
        proptest::option::of(known(&[
            "arn:aws:sns:us-east-1:111122223333:payments-alerts",
        ])),
    )
        .prop_map(|(team, topic)| Owner { team, topic });
    let error = proptest::option::of(
        (
            proptest::sample::select(vec![
                FailureKind::AccessDenied,
                FailureKind::Throttled,
                FailureKind::UnreadablePolicy,
                FailureKind::Refused,
                FailureKind::Unknown,
            ]),
            text(),
        )
            .prop_map(|(kind, message)| OutcomeError { kind, message }),
    );
    (
        (
            any_status(),
            proptest::option::of(any_target()),
            proptest::option::of(cutoff_at()),
            proptest::option::of(cutoff_at()),
            proptest::option::of(known(&["AWSRevokeOlderSessions", "CutoffRevokedSessions"])),
            prop_oneof![Just(Scope::Role), Just(Scope::Session)],
        ),
        (
            owner,
            trigger,
            any::<u32>(),
            error,
            proptest::option::of(known(&["eventual"])),
            text(),
            proptest::collection::vec(text(), 0..30),
            any::<bool>(),
        ),
        (
            proptest::collection::vec(
                (text(), text()).prop_map(|(credential, why)| StillWorks { credential, why }),
                0..4,
            ),
            proptest::collection::vec(text(), 0..4),
            approval,
        ),
    )
        .prop_map(
            |(
                (status, target, cutoff, previous_cutoff, policy, scope),
                (owner, trigger, api_calls, error, propagation, detail, actions, dry_run),
                (still_works, other_access, approval),
            )| Outcome {
                status,
                target,
                cutoff,
                previous_cutoff,
                policy,
                scope,
                owner,
                trigger,
                api_calls,
                error,
                propagation,
                detail,
                actions,
                dry_run,
                still_works,
                other_access,
                chain: None,
                identity_center: None,
                request_id: None,
                activity_region: None,
                approval,
            },
        )
        .boxed()
}

// ---------------------------------------------------------------------------------------
// Invalid names
// ---------------------------------------------------------------------------------------

/// Names IAM refuses: a slash, `..`, a space, 65 or more characters, non-ASCII, a
/// control character, a wildcard, a colon, or nothing.
fn invalid_name() -> impl Strategy<Value = String> {
    let base = || proptest::string::string_regex("[A-Za-z0-9_+=,@-]{1,20}").unwrap();
    prop_oneof![
        (base(), base()).prop_map(|(a, b)| format!("{a}/{b}")),
        (base(), base()).prop_map(|(a, b)| format!("{a}/../{b}")),
        (base(), base()).prop_map(|(a, b)| format!("{a}..{b}")),
        (base(), base()).prop_map(|(a, b)| format!("{a} {b}")),
        proptest::string::string_regex(&format!("{NAME_CHARS}{{65,200}}")).unwrap(),
        (
            base(),
            prop_oneof![
                proptest::char::range('\u{80}', '\u{10ffff}'),
                hostile_char()
            ]
        )
            .prop_map(|(a, c)| format!("{a}{c}"))
            .prop_filter("not a name char", |s| !s
                .chars()
                .last()
                .unwrap()
                .is_ascii_alphanumeric()
                && !"_+=,.@-".contains(s.chars().last().unwrap())),
        base().prop_map(|a| format!("{a}*")),
        base().prop_map(|a| format!("{a}:x")),
        Just(String::new()),
        Just("..".to_owned()),
    ]
    .prop_filter("IAM refuses it", |n| PrincipalName::parse(n).is_err())
}

// ---------------------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------------------

/// Cases per property; proptest's failure files are off (this crate's sources are not
/// where proptest looks for them): a failure prints its minimal case.
fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config(256))]

    /// A well-formed GuardDuty finding naming (A, P), with junk in every other field
    /// and unknown fields anywhere, revokes (A, P) once when its id and type are
    /// acceptable, and nothing at all otherwise; never another principal, never a
    /// name or account from a title, description, tag, action, instance profile or
    /// the envelope.
    #[test]
    fn guardduty_revokes_only_the_principal_it_names(
        (p, other, severity, text, extra) in gd_case()
    ) {
        let mut event = gd_event(&p, severity, &text, &other);
        inject(&mut event, GD_POINTS, extra);
        for config in [TriageConfig::default(), checks::opted_in()] {
            let triage = checks::check_event(event.clone(), &config);
            let revoked = revokes(&triage);
            for t in &revoked {
                prop_assert_eq!(t.account.as_str(), p.account.as_str());
                prop_assert_eq!(t.name.as_str(), p.name.as_str());
                prop_assert_eq!(t.kind, if p.user { TargetKind::User } else { TargetKind::Role });
            }
            let well_formed = acceptable(&text.id, 512) && acceptable(&text.finding_type, 256);
            prop_assert_eq!(revoked.len(), usize::from(well_formed), "{:?}", triage.decisions);
        }
    }

    /// The same for Security Hub, a custom action or (opted in) an imported finding,
    /// with the principal given as an access key, an ARN or a name, beside resources
    /// that are not principals (a bucket owned by Q, an instance with Q's instance
    /// profile, an `Other` resource with Q's ARN) and junk in titles, descriptions,
    /// notes and product fields.
    #[test]
    fn security_hub_revokes_only_the_principal_it_names(
        (p, other, (form, imported), id, finding_type, free, extra) in sh_case()
    ) {
        let mut event = sh_event(&p, form, &id, &finding_type, &free, &other);
        if imported {
            event["detail-type"] = json!("Security Hub Findings - Imported");
        }
        inject(&mut event, SH_POINTS, extra);
        for config in [TriageConfig::default(), checks::opted_in()] {
            let triage = checks::check_event(event.clone(), &config);
            let revoked = revokes(&triage);
            for t in &revoked {
                prop_assert_eq!(t.account.as_str(), p.account.as_str());
                prop_assert_eq!(t.name.as_str(), p.name.as_str());
            }
            let acted_on = !imported || config.securityhub_imported;
            let well_formed = acceptable(&id, 512) && acceptable(&finding_type, 256);
            prop_assert_eq!(
                revoked.len(),
                usize::from(acted_on && well_formed),
                "{:?}",
                triage.decisions
            );
        }
    }

    /// Any outcome, however hostile its strings, renders to a subject of at most 99
    /// printable ASCII characters and a body with no control character but the
    /// newline, no invisible formatting character `notify::clean` lists, no line with
    /// more than 512 consecutive characters of any outside string, and a JSON part
    /// that reads back with every field within its cut (see `checks::check_message`).
    #[test]
    fn any_outcome_renders_to_a_bounded_clean_message(o in outcome()) {
        checks::check_message(&o);
        let m = notify::render(&o, true);
        prop_assert!(m.subject.len() <= 100);
        prop_assert!(m.subject.chars().all(|c| c.is_ascii_graphic() || c == ' '));
        for line in m.body.lines() {
            prop_assert!(!line.chars().any(char::is_control), "{:?}", line);
        }
    }

    /// A finding or request whose principal name IAM would refuse never revokes:
    /// GuardDuty, Security Hub (access key, role or user by name or ARN), CloudTrail
    /// opted in, and manual requests. The input is flagged invalid and the name
    /// reaches no decision.
    #[test]
    fn an_invalid_principal_name_never_revokes(
        bad in invalid_name(),
        p in named(),
        form in sh_form(),
        other in other_principal(),
    ) {
        let mut events = Vec::new();
        let text = GdText {
            id: "0123456789abcdef0123456789abcdef".to_owned(),
            finding_type: "UnauthorizedAccess:IAMUser/MaliciousIPCaller".to_owned(),
            region: "us-east-1".to_owned(),
            partition: "aws".to_owned(),
            arn: "arn:aws:guardduty:us-east-1:111122223333:detector/x/finding/y".to_owned(),
            updated_at: "2026-11-23T11:55:00Z".to_owned(),
            last_seen: "2026-11-23T11:55:00Z".to_owned(),
            resource_type: "AccessKey".to_owned(),
            instance_id: "i-0123456789abcdef0".to_owned(),
            profile_arn: String::new(),
        };
        let with_bad = Named { name: bad.clone(), ..p.clone() };
        events.push(gd_event(&with_bad, 9.0, &text, &other));
        // Inside an ARN a slash starts a path, so only the other faults apply there.
        if !matches!(form, ShForm::Arn) || !bad.contains('/') {
            events.push(sh_event(&with_bad, form, "f-1", "TTPs", "x", &other));
        }
        events.push(json!({
            "detail-type": "AWS API Call via CloudTrail", "source": "aws.cloudtrail",
            "detail": {"eventVersion": "1.09", "eventSource": "cloudtrail.amazonaws.com",
                "eventName": "StopLogging", "eventID": "e-1",
                "userIdentity": {"type": if p.user { "IAMUser" } else { "AssumedRole" },
                    "accountId": p.account, "userName": bad,
                    "sessionContext": {"sessionIssuer": {"type": "Role", "userName": bad}}}}
        }));
        events.push(json!({"action": "revoke", "account": p.account,
                           (if p.user { "user" } else { "role" }): bad}));
        if !bad.contains('/') {
            events.push(json!({"action": "revoke",
                "principal_arn": format!("arn:aws:iam::{}:role/{bad}", p.account)}));
        }
        for event in events {
            let triage = checks::check_event(event.clone(), &checks::opted_in());
            prop_assert!(revokes(&triage).is_empty(), "{} revoked: {:?}", event, triage.decisions);
            prop_assert!(triage.invalid_inputs().next().is_some(), "{} not flagged invalid", event);
            for d in &triage.decisions {
                prop_assert!(d.target.as_ref().is_none_or(|t| t.name.as_str() != bad));
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Gaps these tests found, fixed in shared/ since: raw, unbounded serde errors in triage
// reasons; invisible characters in operator text and messages; a document at the
// nesting limit that could not be read back; floats that drifted across a rewrite.
// ---------------------------------------------------------------------------------------

/// The whole regression corpus under the strict invariants (`checks::strict`):
/// a triage reason for malformed input must be bounded and free of control
/// characters, and a policy document at the nesting limit must read back.
#[test]
fn the_corpus_meets_the_strict_invariants() {
    let mut failures = Vec::new();
    for (target, run) in TARGETS {
        let files = files_in(&corpus_dir().join(target));
        failures.extend(checks::strictly(|| replay(target, &files, run)));
    }
    assert_none(&failures);
}

/// Invisible or direction-changing characters `notify::clean` does not list reach the
/// message body: the Arabic letter mark U+061C (a bidirectional control like U+200F),
/// the soft hyphen, the Mongolian vowel separator, the combining grapheme joiner,
/// Hangul fillers and the tag characters U+E0000–U+E007F (invisible look-alikes of
/// ASCII, which can hide text from a reader but not from a tool).
#[test]
fn invisible_characters_beyond_the_bidi_set_are_cleaned() {
    let hidden: String = [
        '\u{061c}',
        '\u{00ad}',
        '\u{180e}',
        '\u{034f}',
        '\u{115f}',
        '\u{3164}',
        '\u{e0001}',
        '\u{e0041}',
        '\u{e007f}',
    ]
    .iter()
    .collect();
    let target = Target::new(
        TargetKind::Role,
        Account::parse("111122223333").unwrap(),
        PrincipalName::parse("payments-api").unwrap(),
    );
    let mut o = Outcome {
        status: Status::Alerted,
        target: Some(target),
        cutoff: None,
        previous_cutoff: None,
        policy: None,
        scope: Scope::Role,
        owner: Owner::default(),
        trigger: Trigger {
            source: Source::GuardDuty,
            finding_id: Some(format!("f{hidden}")),
            finding_type: Some(format!("t{hidden}")),
            ..Trigger::default()
        },
        api_calls: 0,
        error: None,
        propagation: None,
        detail: format!("d{hidden}"),
        actions: Vec::new(),
        dry_run: false,
        still_works: Vec::new(),
        other_access: Vec::new(),
        chain: None,
        identity_center: None,
        request_id: None,
        activity_region: None,
        approval: None,
    };
    o.owner.team = Some(format!("team{hidden}"));
    let m = notify::render(&o, true);
    let survivors: std::collections::BTreeSet<char> = m
        .body
        .chars()
        .chain(m.attributes.iter().flat_map(|(_, v)| v.chars()))
        .filter(|c| checks::is_invisible_beyond_documented(*c))
        .collect();
    assert!(survivors.is_empty(), "survived: {survivors:?}");
}

proptest! {
    #![proptest_config(config(256))]

    /// The message checks measure leaks with a suffix automaton: it agrees with the
    /// quadratic definition of the longest common substring.
    #[test]
    fn the_longest_common_substring_is_measured_right(
        a in "[ab\u{202e}]{0,12}",
        b in "[ab\u{202e}]{0,12}",
    ) {
        let chars = |s: &str| s.chars().collect::<Vec<char>>();
        let (x, y) = (chars(&a), chars(&b));
        let mut brute = 0;
        for i in 0..x.len() {
            for j in 0..y.len() {
                let mut k = 0;
                while i + k < x.len() && j + k < y.len() && x[i + k] == y[j + k] {
                    k += 1;
                }
                brute = brute.max(k);
            }
        }
        prop_assert_eq!(checks::SuffixAutomaton::new(&a).longest_common(&b), brute);
    }
}
