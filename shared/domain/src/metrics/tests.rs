use super::*;
use crate::event::{ManualAction, Scope};
use crate::outcome::{RevocationRequest, Trigger};
use crate::principal::{Account, PrincipalName, Target};
use chrono::TimeZone;

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text).unwrap().to_utc()
}

fn outcome(status: Status, source: Source) -> Outcome {
    let request = RevocationRequest {
        action: ManualAction::Revoke,
        target: Target::role(
            Account::parse("111122223333").unwrap(),
            PrincipalName::parse("payments-api").unwrap(),
        ),
        scope: Scope::Role,
        trigger: Trigger {
            source,
            ..Trigger::default()
        },
        first_activity: None,
        expected_unique_id: None,
        activity_region: None,
        event_time: None,
        dry_run: false,
        force: false,
        needs_approval: false,
    };
    Outcome::for_request(&request, status, "")
}

/// The directives of a document: (namespace, dimension sets, [(name, unit)]).
type Directive = (String, Vec<Vec<String>>, Vec<(String, String)>);

fn directives(doc: &Value) -> Vec<Directive> {
    doc["_aws"]["CloudWatchMetrics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            let sets = d["Dimensions"]
                .as_array()
                .unwrap()
                .iter()
                .map(|set| {
                    set.as_array()
                        .unwrap()
                        .iter()
                        .map(|n| n.as_str().unwrap().to_owned())
                        .collect()
                })
                .collect();
            let metrics = d["Metrics"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| {
                    assert_eq!(m.as_object().unwrap().len(), 2, "Name and Unit only: {m}");
                    (
                        m["Name"].as_str().unwrap().to_owned(),
                        m["Unit"].as_str().unwrap().to_owned(),
                    )
                })
                .collect();
            (d["Namespace"].as_str().unwrap().to_owned(), sets, metrics)
        })
        .collect()
}

#[test]
fn a_record_is_one_emf_document_with_its_values_and_dimensions_at_the_top() {
    let namespace = Namespace::parse("cutoff-staging").unwrap();
    let time = at("2026-11-23T12:00:01.250Z");
    let doc = Record::of(Function::Revoker)
        .status(Status::Applied)
        .source(Source::GuardDuty)
        .value(&OUTCOMES, 3)
        .to_emf(&namespace, time);
    assert_eq!(doc["_aws"]["Timestamp"], json!(1_795_435_201_250_i64));
    assert_eq!(doc["_aws"].as_object().unwrap().len(), 2);
    assert_eq!(doc["Function"], "revoker");
    assert_eq!(doc["Status"], "applied");
    assert_eq!(doc["Source"], "guardduty");
    assert_eq!(doc["Outcomes"], 3);
    assert_eq!(
        directives(&doc),
        vec![(
            "cutoff-staging".to_owned(),
            vec![
                vec!["Function".to_owned(), "Status".to_owned()],
                vec!["Function".to_owned(), "Source".to_owned()],
            ],
            vec![("Outcomes".to_owned(), "Count".to_owned())],
        )]
    );
    // Nothing but the dimensions, the values and the directive.
    assert_eq!(doc.as_object().unwrap().len(), 5);
}

#[test]
fn metrics_of_different_dimension_sets_get_a_directive_each() {
    let doc = Record::of(Function::Sweeper)
        .value(&ACCOUNTS_SWEPT, 1)
        .value(&SWEEP_ERRORS, 2)
        .value(&IAM_CALLS, 40)
        .to_emf(&Namespace::default(), at("2026-11-23T12:00:00Z"));
    let found = directives(&doc);
    assert_eq!(found.len(), 1, "all three share [[Function]]: {doc}");
    assert_eq!(found[0].0, "cutoff");
    assert_eq!(found[0].1, vec![vec!["Function".to_owned()]]);
    assert_eq!(found[0].2.len(), 3);

    let doc = Record::of(Function::Revoker)
        .source(Source::CloudTrail)
        .value(&TIME_TO_CONTAIN_FROM_EVENT, 2_500)
        .value(&RETRIES, 1)
        .to_emf(&Namespace::default(), at("2026-11-23T12:00:00Z"));
    let found = directives(&doc);
    assert_eq!(found.len(), 2, "{doc}");
    assert_eq!(
        found[0].2,
        vec![(
            "TimeToContainFromEvent".to_owned(),
            "Milliseconds".to_owned()
        )]
    );
    assert_eq!(found[0].1.len(), 2);
    assert_eq!(found[1].1, vec![vec!["Function".to_owned()]]);
}

#[test]
fn a_dimension_set_naming_a_dimension_the_record_lacks_is_left_out() {
    // EMF refuses a set naming a member that is not there: only [Function, Status]
    // remains when no source is set.
    let doc = Record::of(Function::Revoker)
        .status(Status::Failed)
        .value(&OUTCOMES, 1)
        .to_emf(&Namespace::default(), at("2026-11-23T12:00:00Z"));
    assert_eq!(
        directives(&doc)[0].1,
        vec![vec!["Function".to_owned(), "Status".to_owned()]]
    );
    assert!(doc.get("Source").is_none());
}

#[test]
fn the_same_metric_twice_in_a_record_is_one_value_added_up() {
    let record = Record::of(Function::Intake)
        .decision("revoke")
        .value(&DECISIONS, 2)
        .value(&DECISIONS, 3);
    assert_eq!(record.get(&DECISIONS), Some(5));
    let doc = record.to_emf(&Namespace::default(), at("2026-11-23T12:00:00Z"));
    assert_eq!(directives(&doc)[0].2.len(), 1);
    assert_eq!(doc["Decisions"], 5);
}

#[test]
fn the_catalog_names_each_metric_once_within_emfs_limits() {
    let mut names: Vec<&str> = CATALOG.iter().map(|m| m.name).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), CATALOG.len());
    assert!(CATALOG.len() <= MAX_METRICS_PER_DIRECTIVE);
    let known = [
        dimension::FUNCTION,
        dimension::STATUS,
        dimension::SOURCE,
        dimension::DECISION,
    ];
    for metric in CATALOG {
        assert!(
            metric.name.chars().all(|c| c.is_ascii_alphanumeric()),
            "{}",
            metric.name
        );
        assert!(!metric.dimensions.is_empty(), "{}", metric.name);
        assert!(!metric.functions.is_empty(), "{}", metric.name);
        for set in metric.dimensions {
            assert!(set.len() <= MAX_DIMENSIONS_PER_SET);
            // Every metric can be read per function (stacks share nothing else).
            assert_eq!(set.first(), Some(&dimension::FUNCTION), "{}", metric.name);
            assert!(set.iter().all(|d| known.contains(d)), "{}", metric.name);
        }
        assert_eq!(find(metric.name), Some(*metric));
    }
    assert_eq!(find("Invocations"), None);
}

#[test]
fn time_to_contain_is_the_milliseconds_from_a_plausible_past_start() {
    let verified = at("2026-11-23T12:05:00.500Z");
    assert_eq!(
        time_to_contain(Some(at("2026-11-23T12:00:00Z")), verified),
        Some(300_500)
    );
    assert_eq!(time_to_contain(Some(verified), verified), Some(0));
    assert_eq!(time_to_contain(None, verified), None);
    // A start after the verification (a clock ahead, a finding's time from the future)
    // is no measurement, never a negative one.
    assert_eq!(
        time_to_contain(Some(at("2026-11-23T12:05:00.501Z")), verified),
        None
    );
    assert_eq!(
        time_to_contain(Some(at("2027-01-01T00:00:00Z")), verified),
        None
    );
    // A placeholder time (before 2010) measures nothing either.
    let epoch = Utc.timestamp_opt(0, 0).unwrap();
    assert_eq!(time_to_contain(Some(epoch), verified), None);
}

#[test]
fn only_an_applied_verified_outcome_measures_time_to_contain() {
    let verified_at = at("2026-11-23T12:01:00Z");
    let verified = Some(verified_at);
    let first_seen = Some(at("2026-11-23T11:50:00Z"));
    let event = Some(at("2026-11-23T11:59:30Z"));
    let applied = outcome(Status::Applied, Source::GuardDuty);
    let record = containment(&applied, verified, first_seen, event).unwrap();
    assert_eq!(record.get(&TIME_TO_CONTAIN_FROM_FIRST_SEEN), Some(660_000));
    assert_eq!(record.get(&TIME_TO_CONTAIN_FROM_EVENT), Some(90_000));
    let doc = record.to_emf(&Namespace::default(), verified_at);
    assert_eq!(doc["Source"], "guardduty");
    assert_eq!(doc["Function"], "revoker");

    for status in [
        Status::Partial,
        Status::Failed,
        Status::AlreadyRevoked,
        Status::DryRun,
        Status::Protected,
        Status::Released,
    ] {
        let other = outcome(status, Source::GuardDuty);
        assert_eq!(
            containment(&other, verified, first_seen, event),
            None,
            "{status:?}"
        );
    }
    // A dry run that says applied (a forced dry run reports what it would do) is none.
    let mut dry = applied.clone();
    dry.dry_run = true;
    assert_eq!(containment(&dry, verified, first_seen, event), None);
    // Not verified in this run (answered from the ledger): none.
    assert_eq!(containment(&applied, None, first_seen, event), None);
    // Nothing to measure from (a manual request): none.
    assert_eq!(containment(&applied, verified, None, None), None);
    // A first-seen time from the future leaves the event's measurement alone.
    let record = containment(&applied, verified, Some(at("2026-11-23T13:00:00Z")), event).unwrap();
    assert_eq!(record.get(&TIME_TO_CONTAIN_FROM_FIRST_SEEN), None);
    assert_eq!(record.get(&TIME_TO_CONTAIN_FROM_EVENT), Some(90_000));
}

#[test]
fn outcomes_are_counted_by_status_and_source() {
    let outcomes = [
        outcome(Status::Applied, Source::GuardDuty),
        outcome(Status::Failed, Source::GuardDuty),
        outcome(Status::Applied, Source::GuardDuty),
        outcome(Status::Applied, Source::CloudTrail),
    ];
    let tally: OutcomeTally = outcomes.iter().collect();
    let records = tally.records(Function::Revoker);
    let doc = |r: &Record| r.to_emf(&Namespace::default(), at("2026-11-23T12:00:00Z"));
    let seen: Vec<(String, String, u64)> = records
        .iter()
        .map(|r| {
            let d = doc(r);
            (
                d["Status"].as_str().unwrap().to_owned(),
                d["Source"].as_str().unwrap().to_owned(),
                d["Outcomes"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        vec![
            ("applied".to_owned(), "cloudtrail".to_owned(), 1),
            ("applied".to_owned(), "guardduty".to_owned(), 2),
            ("failed".to_owned(), "guardduty".to_owned(), 1),
        ]
    );
    assert!(
        OutcomeTally::default()
            .records(Function::Revoker)
            .is_empty()
    );

    let mut merged: OutcomeTally = outcomes[..2].iter().collect();
    merged.merge(&outcomes[2..].iter().collect());
    assert_eq!(merged, tally);
}

#[test]
fn a_namespace_is_what_cloudwatch_accepts() {
    assert_eq!(Namespace::default().as_str(), "cutoff");
    for good in ["cutoff", "cutoff-staging", "Security/cutoff", "a"] {
        assert_eq!(Namespace::parse(good).unwrap().as_str(), good);
    }
    let long = "a".repeat(256);
    for bad in ["", "AWS/Lambda", "cutoff\n", "cutoff{x}", long.as_str()] {
        assert!(Namespace::parse(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn a_decision_names_its_verdict_and_an_invalid_ignore_is_invalid() {
    assert_eq!(decision_name(Verdict::Revoke, false), "revoke");
    assert_eq!(decision_name(Verdict::Ask, false), "ask");
    assert_eq!(decision_name(Verdict::Alert, false), "alert");
    assert_eq!(decision_name(Verdict::Ignore, false), "ignore");
    assert_eq!(decision_name(Verdict::Ignore, true), "invalid");
}
