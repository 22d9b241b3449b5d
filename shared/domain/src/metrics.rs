//! The functions' metrics, as CloudWatch's embedded metric format (EMF): a JSON object
//! on a log line of its own whose `_aws` member tells CloudWatch Logs which of the
//! object's members are metrics and which are their dimensions. CloudWatch Logs
//! extracts them from the function's log group: no `cloudwatch:PutMetricData`, no call
//! on the revocation's path, nothing to flush.
//!
//! What is measured is listed once, in [`CATALOG`]: the code emits only what is there,
//! and the template's dashboard and alarms are tested against it
//! (`tests/integration/infra/observability.rs`). Dimensions are bounded sets cutoff
//! defines (the function, an outcome's status, a trigger's source, a triage decision):
//! never a principal, an account or any text a finding carries, which would make one
//! metric per attacker-chosen name, each billed.
//!
//! Pure: the documents are built here from the clock's time handed in; writing them to
//! standard output is the application's (`cutoff::metrics`).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use crate::outcome::{Outcome, Status};
use crate::triage::{Source, Verdict};

/// The namespace when the deployment names none (the template sets its `NamePrefix`,
/// so that two stacks in one account keep their metrics apart).
pub const DEFAULT_NAMESPACE: &str = "cutoff";

/// A CloudWatch namespace: 1 to 255 of letters, digits and `.-_/#:` or space, not
/// starting with `AWS/` (reserved for AWS's own metrics).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Namespace(String);

impl Namespace {
    pub fn parse(text: &str) -> Result<Self, String> {
        let valid = !text.is_empty()
            && text.len() <= 255
            && text
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || ".-_/#: ".contains(c))
            && !text.starts_with("AWS/");
        if valid {
            Ok(Self(text.to_owned()))
        } else {
            Err("a CloudWatch namespace is 1 to 255 letters, digits, `.-_/#:` or spaces, not starting with AWS/".to_owned())
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for Namespace {
    fn default() -> Self {
        Self(DEFAULT_NAMESPACE.to_owned())
    }
}

/// The unit CloudWatch stores with a metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Count,
    Milliseconds,
}

impl Unit {
    pub fn as_str(self) -> &'static str {
        match self {
            Unit::Count => "Count",
            Unit::Milliseconds => "Milliseconds",
        }
    }
}

/// Which function wrote a metric: the `Function` dimension of every metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Function {
    Intake,
    Revoker,
    Notifier,
    Sweeper,
}

impl Function {
    pub const ALL: [Function; 4] = [
        Function::Intake,
        Function::Revoker,
        Function::Notifier,
        Function::Sweeper,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Function::Intake => "intake",
            Function::Revoker => "revoker",
            Function::Notifier => "notifier",
            Function::Sweeper => "sweeper",
        }
    }
}

/// The dimension names. Their values come from cutoff's own enums only.
pub mod dimension {
    /// [`super::Function`].
    pub const FUNCTION: &str = "Function";
    /// An outcome's status ([`crate::outcome::Status`]).
    pub const STATUS: &str = "Status";
    /// A trigger's source ([`crate::triage::Source`]).
    pub const SOURCE: &str = "Source";
    /// A triage verdict (`revoke`, `ask`, `alert`, `ignore`, or `invalid`).
    pub const DECISION: &str = "Decision";
}

use dimension::{DECISION, FUNCTION, SOURCE, STATUS};

/// One metric cutoff emits: its name, unit, the dimension sets it is published under,
/// the functions that emit it, and what it counts.
#[derive(Debug, PartialEq, Eq)]
pub struct MetricDef {
    pub name: &'static str,
    pub unit: Unit,
    pub dimensions: &'static [&'static [&'static str]],
    pub functions: &'static [Function],
    pub what: &'static str,
}

const BY_FUNCTION: &[&[&str]] = &[&[FUNCTION]];
const BY_STATUS_AND_SOURCE: &[&[&str]] = &[&[FUNCTION, STATUS], &[FUNCTION, SOURCE]];
const BY_SOURCE: &[&[&str]] = &[&[FUNCTION], &[FUNCTION, SOURCE]];

pub const OUTCOMES: MetricDef = MetricDef {
    name: "Outcomes",
    unit: Unit::Count,
    dimensions: BY_STATUS_AND_SOURCE,
    functions: &[Function::Intake, Function::Revoker, Function::Sweeper],
    what: "outcomes a function reached, by status and by the trigger's source: the revoker's for every request on every attempt (a failed request is counted each time it fails; an approval asked, refused or approved once, when it is), intake's alerts, the sweeper's changes and the approvals it expired",
};

pub const TIME_TO_CONTAIN_FROM_FIRST_SEEN: MetricDef = MetricDef {
    name: "TimeToContainFromFirstSeen",
    unit: Unit::Milliseconds,
    dimensions: BY_SOURCE,
    functions: &[Function::Revoker],
    what: "from the finding's first sight of the activity (the request's first_activity: GuardDuty's eventFirstSeen, ASFF FirstObservedAt, OCSF first_seen, the CloudTrail call's time; an attack sequence actor's session issue time) to the revoker's verified deny; applied outcomes only, never a dry run",
};

pub const TIME_TO_CONTAIN_FROM_EVENT: MetricDef = MetricDef {
    name: "TimeToContainFromEvent",
    unit: Unit::Milliseconds,
    dimensions: BY_SOURCE,
    functions: &[Function::Revoker],
    what: "from the EventBridge event's time (the request's event_time, which intake copies) to the revoker's verified deny; applied outcomes only, never a dry run",
};

pub const IAM_CALLS: MetricDef = MetricDef {
    name: "IamCalls",
    unit: Unit::Count,
    dimensions: BY_FUNCTION,
    functions: &[Function::Revoker, Function::Sweeper],
    what: "IAM calls (and STS AssumeRole of the member role) every attempt counted: the revoker's per revocation run, the sweeper's per account swept",
};

pub const RETRIES: MetricDef = MetricDef {
    name: "Retries",
    unit: Unit::Count,
    dimensions: BY_FUNCTION,
    functions: &Function::ALL,
    what: "AWS calls attempted again after a throttled or transient answer, per invocation",
};

pub const THROTTLES: MetricDef = MetricDef {
    name: "Throttles",
    unit: Unit::Count,
    dimensions: BY_FUNCTION,
    functions: &Function::ALL,
    what: "AWS answers that were throttling (retried or not), per invocation",
};

pub const DECISIONS: MetricDef = MetricDef {
    name: "Decisions",
    unit: Unit::Count,
    dimensions: &[&[FUNCTION, DECISION], &[FUNCTION, SOURCE]],
    functions: &[Function::Intake],
    what: "intake's triage decisions, by decision (revoke: queued; ask: queued for a person's approval; alert; ignore; invalid) and by source",
};

pub const NOTIFICATIONS: MetricDef = MetricDef {
    name: "Notifications",
    unit: Unit::Count,
    dimensions: &[&[FUNCTION, STATUS]],
    functions: &[Function::Notifier],
    what: "SNS messages the notifier published, by the outcome's status",
};

pub const HEARTBEAT: MetricDef = MetricDef {
    name: "Heartbeat",
    unit: Unit::Count,
    dimensions: BY_FUNCTION,
    functions: &[Function::Sweeper],
    what: "one per sweep the sweeper planned (the schedule fired, the sweeper started and its metrics reached CloudWatch)",
};

pub const ACCOUNTS_SWEPT: MetricDef = MetricDef {
    name: "AccountsSwept",
    unit: Unit::Count,
    dimensions: BY_FUNCTION,
    functions: &[Function::Sweeper],
    what: "accounts the sweeper worked (one per sweep task)",
};

pub const SWEEP_ERRORS: MetricDef = MetricDef {
    name: "SweepErrors",
    unit: Unit::Count,
    dimensions: BY_FUNCTION,
    functions: &[Function::Sweeper],
    what: "accounts that could not be swept and principals whose change failed",
};

/// Every metric cutoff emits. The dashboard and the alarms may name these only.
pub const CATALOG: &[&MetricDef] = &[
    &OUTCOMES,
    &TIME_TO_CONTAIN_FROM_FIRST_SEEN,
    &TIME_TO_CONTAIN_FROM_EVENT,
    &IAM_CALLS,
    &RETRIES,
    &THROTTLES,
    &DECISIONS,
    &NOTIFICATIONS,
    &HEARTBEAT,
    &ACCOUNTS_SWEPT,
    &SWEEP_ERRORS,
];

/// The catalog's entry of a metric name.
pub fn find(name: &str) -> Option<&'static MetricDef> {
    CATALOG.iter().copied().find(|m| m.name == name)
}

/// EMF's limits (the specification): metrics per directive, dimensions per set.
pub const MAX_METRICS_PER_DIRECTIVE: usize = 100;
pub const MAX_DIMENSIONS_PER_SET: usize = 30;

/// One line's worth of metrics: the dimension values, and the values of metrics of the
/// catalog. Built from cutoff's enums only, so that no dimension value is text from
/// outside.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    dimensions: BTreeMap<&'static str, &'static str>,
    values: Vec<(&'static MetricDef, u64)>,
}

impl Record {
    /// A record of `function`'s.
    pub fn of(function: Function) -> Self {
        Self {
            dimensions: BTreeMap::from([(FUNCTION, function.as_str())]),
            values: Vec::new(),
        }
    }

    pub fn status(mut self, status: Status) -> Self {
        self.dimensions.insert(STATUS, status.as_str());
        self
    }

    pub fn source(mut self, source: Source) -> Self {
        self.dimensions.insert(SOURCE, source.as_str());
        self
    }

    pub fn decision(mut self, decision: &'static str) -> Self {
        self.dimensions.insert(DECISION, decision);
        self
    }

    /// Adds a value; a metric already in the record is added to.
    pub fn value(mut self, metric: &'static MetricDef, value: u64) -> Self {
        match self.values.iter_mut().find(|(m, _)| m.name == metric.name) {
            Some((_, v)) => *v = v.saturating_add(value),
            None => self.values.push((metric, value)),
        }
        self
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// The value of `metric`, if the record has one.
    pub fn get(&self, metric: &MetricDef) -> Option<u64> {
        self.values
            .iter()
            .find(|(m, _)| m.name == metric.name)
            .map(|(_, v)| *v)
    }

    /// The record as an EMF document at `at`: the dimension values and metric values at
    /// the top level, and one directive per distinct set of dimension sets. A dimension
    /// set naming a dimension the record does not have is left out (EMF requires every
    /// member a set names to exist); a metric with no set left is published under none.
    pub fn to_emf(&self, namespace: &Namespace, at: DateTime<Utc>) -> Value {
        let mut root = Map::new();
        for (name, value) in &self.dimensions {
            root.insert((*name).to_owned(), Value::from(*value));
        }
        let mut directives: Vec<(Vec<Vec<&str>>, Vec<Value>)> = Vec::new();
        for (metric, value) in &self.values {
            root.insert(metric.name.to_owned(), Value::from(*value));
            let sets: Vec<Vec<&str>> = metric
                .dimensions
                .iter()
                .filter(|set| set.iter().all(|d| self.dimensions.contains_key(d)))
                .map(|set| set.to_vec())
                .collect();
            let definition = json!({"Name": metric.name, "Unit": metric.unit.as_str()});
            match directives.iter_mut().find(|(s, _)| *s == sets) {
                Some((_, metrics)) => metrics.push(definition),
                None => directives.push((sets, vec![definition])),
            }
        }
        let directives: Vec<Value> = directives
            .into_iter()
            .map(|(sets, metrics)| {
                json!({"Namespace": namespace.as_str(), "Dimensions": sets, "Metrics": metrics})
            })
            .collect();
        root.insert(
            "_aws".to_owned(),
            json!({"Timestamp": at.timestamp_millis(), "CloudWatchMetrics": directives}),
        );
        Value::Object(root)
    }
}

/// Milliseconds from `from` to `verified`: None when there is no start, when it is
/// before 2010 (a placeholder, see [`crate::clock::EARLIEST_PLAUSIBLE`]), or when it is
/// after the verification (a clock or a finding from the future measures nothing; a
/// negative time would drag every percentile down).
pub fn time_to_contain(from: Option<DateTime<Utc>>, verified: DateTime<Utc>) -> Option<u64> {
    let from = from.filter(|t| *t >= crate::clock::EARLIEST_PLAUSIBLE)?;
    u64::try_from((verified - from).num_milliseconds()).ok()
}

/// Outcomes counted by status and source: one record per pair seen (in the order of
/// their names, so that the lines come out the same every time).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutcomeTally(BTreeMap<(&'static str, &'static str), (Status, Source, u64)>);

impl OutcomeTally {
    pub fn add(&mut self, outcome: &Outcome) {
        let (status, source) = (outcome.status, outcome.trigger.source);
        self.0
            .entry((status.as_str(), source.as_str()))
            .or_insert((status, source, 0))
            .2 += 1;
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Adds `other`'s counts to these.
    pub fn merge(&mut self, other: &OutcomeTally) {
        for (key, (status, source, count)) in &other.0 {
            self.0.entry(*key).or_insert((*status, *source, 0)).2 += count;
        }
    }

    pub fn records(&self, function: Function) -> Vec<Record> {
        self.0
            .values()
            .map(|(status, source, count)| {
                Record::of(function)
                    .status(*status)
                    .source(*source)
                    .value(&OUTCOMES, *count)
            })
            .collect()
    }
}

impl<'a> FromIterator<&'a Outcome> for OutcomeTally {
    fn from_iter<I: IntoIterator<Item = &'a Outcome>>(outcomes: I) -> Self {
        let mut tally = Self::default();
        for outcome in outcomes {
            tally.add(outcome);
        }
        tally
    }
}

/// The time-to-contain record of one request's outcome, when it is one: an `applied`
/// outcome (not a dry run) whose deny the revoker verified at `verified` in this run (a
/// redelivery answered from the ledger has no verification of its own), with at least
/// one start time it can be measured from.
pub fn containment(
    outcome: &Outcome,
    verified: Option<DateTime<Utc>>,
    first_seen: Option<DateTime<Utc>>,
    event_time: Option<DateTime<Utc>>,
) -> Option<Record> {
    if outcome.status != Status::Applied || outcome.dry_run {
        return None;
    }
    let verified = verified?;
    let mut record = Record::of(Function::Revoker).source(outcome.trigger.source);
    if let Some(ms) = time_to_contain(first_seen, verified) {
        record = record.value(&TIME_TO_CONTAIN_FROM_FIRST_SEEN, ms);
    }
    if let Some(ms) = time_to_contain(event_time, verified) {
        record = record.value(&TIME_TO_CONTAIN_FROM_EVENT, ms);
    }
    (!record.is_empty()).then_some(record)
}

/// The `Decision` dimension of a triage verdict; an `ignore` that found the input
/// invalid is `invalid`.
pub fn decision_name(verdict: Verdict, invalid: bool) -> &'static str {
    match verdict {
        Verdict::Revoke => "revoke",
        Verdict::Ask => "ask",
        Verdict::Alert => "alert",
        Verdict::Ignore if invalid => "invalid",
        Verdict::Ignore => "ignore",
    }
}

#[cfg(test)]
mod tests;
