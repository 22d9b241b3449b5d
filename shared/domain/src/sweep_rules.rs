//! The sweeper's rules: what a scheduled sweep changes on one principal, and why.
//!
//! Pure: no I/O, no SDK, no clock. The caller reads a [`PrincipalSnapshot`] (what one
//! `GetAccountAuthorizationDetails` page says about a role or user), calls [`plan`] with
//! the [`SweepRules`] and the time, and carries out the [`Change`]s in order.
//!
//! # Rolling cutoff
//!
//! A principal with a max session age (tag `cutoff:max-session-age`, else the first
//! matching config pattern) gets a role-wide cutoff of `now − max age`, rounded up as
//! [`Cutoff::at_or_after`] does, merged into `AWSRevokeOlderSessions` with
//! [`merge_role_wide`]: never backwards, console statements collapse into it, foreign
//! statements survive. A later cutoff already in force (inline or in the managed
//! fallback) means nothing to write.
//!
//! # Cleanup
//!
//! A revocation whose cutoff is before `now − longest session − margin` (12 h for roles,
//! 36 h for users) denies only sessions that have expired anyway, so it is removed: from
//! `AWSRevokeOlderSessions`, from `CutoffRevokedSessions` (each session statement on its
//! own) and from the managed fallback `cutoff-revoke-<name>`, which is detached and
//! deleted once nothing is left in it. A cutoff exactly at the threshold stays. The
//! rolling cutoff is never older than the threshold when it is written (a max age so
//! long that it would be is reported and not enforced), so it is never removed by the
//! plan that keeps it moving.
//!
//! # Hands off
//!
//! Protected principals (config patterns or the tag `cutoff:protected=true`),
//! service-linked and Identity Center roles, a principal with an invalid max-age tag
//! and any policy whose document cannot be read get a note and no change.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Duration, Utc};

use crate::outcome::PROTECTED_TAG;
use crate::policy::{
    Budget, Cutoff, PolicyDocument, ROLE_WIDE_POLICY_NAME, SESSION_POLICY_NAME, is_fallback_of,
    merge_role_wide, remove_role_wide_older_than, remove_sessions_older_than, stored_policy_size,
};
use crate::principal::PrincipalType;
use crate::principal::{
    Account, IamPath, InvalidValue, NamePattern, PrincipalName, Protection, RoleClass, TargetKind,
    UniqueId, classify_role_path,
};

/// Tag through which a principal opts in to a rolling cutoff, e.g. `4h`, `30m`, `1h30m`.
pub const MAX_SESSION_AGE_TAG: &str = "cutoff:max-session-age";
/// The shortest max session age: the shortest STS session. Anything shorter would deny
/// every session continuously.
pub const MIN_MAX_SESSION_AGE: Duration = Duration::minutes(15);
/// The longest max session age: the longest session there is (`GetSessionToken`, 36 h).
pub const MAX_MAX_SESSION_AGE: Duration = Duration::hours(36);
/// Default margin added to the longest session before a revocation counts as expired.
pub const DEFAULT_EXPIRY_MARGIN: Duration = Duration::hours(1);

const AGE_WHAT: &str = "max session age";
const AGE_FORM: &str =
    "write hours and minutes such as 4h, 30m or 1h30m (lowercase units, no spaces)";

// ---------------------------------------------------------------------------------------
// MaxSessionAge
// ---------------------------------------------------------------------------------------

/// How long a session of an opted-in principal may live: whole minutes, 15 minutes to
/// 36 hours.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MaxSessionAge(Duration);

impl MaxSessionAge {
    /// Parses `4h`, `30m`, `1h30m`, `90m`, `2h0m`: hours and/or minutes, in that order,
    /// lowercase units, no spaces, no sign, no seconds.
    pub fn parse(input: &str) -> Result<Self, InvalidValue> {
        let invalid = |why| InvalidValue::new(AGE_WHAT, input, why);
        if input.is_empty() {
            return Err(invalid(
                "it is empty; write hours and minutes such as 4h, 30m or 1h30m",
            ));
        }
        if input.starts_with('-') {
            return Err(invalid("a max session age cannot be negative"));
        }
        // `90s`, `1h30s`: seconds. (`5 hours` is not, and gets the general message.)
        let bytes = input.as_bytes();
        if bytes.len() >= 2
            && bytes[bytes.len() - 1] == b's'
            && bytes[bytes.len() - 2].is_ascii_digit()
        {
            return Err(invalid(
                "seconds are not supported; write hours and minutes such as 4h, 30m or 1h30m",
            ));
        }
        let (first, rest) = leading_number(input).ok_or_else(|| invalid(AGE_FORM))?;
        let (hours, minutes) = match rest.split_at_checked(1) {
            Some(("h", "")) => (first, 0),
            Some(("m", "")) => (0, first),
            Some(("h", tail)) => {
                let (minutes, unit) = leading_number(tail).ok_or_else(|| invalid(AGE_FORM))?;
                if unit != "m" {
                    return Err(invalid(AGE_FORM));
                }
                if minutes > 59 {
                    return Err(invalid("minutes after hours are 0 to 59"));
                }
                (first, minutes)
            }
            _ => return Err(invalid(AGE_FORM)),
        };
        // Six digits at most each, so this cannot overflow.
        let total = hours * 60 + minutes;
        if total == 0 {
            return Err(invalid(
                "a max session age of zero would deny every session",
            ));
        }
        if total < MIN_MAX_SESSION_AGE.num_minutes().unsigned_abs() {
            return Err(invalid(
                "it is below 15 minutes, the shortest STS session, and would deny every session continuously",
            ));
        }
        if total > MAX_MAX_SESSION_AGE.num_minutes().unsigned_abs() {
            return Err(invalid(
                "it is above 36 hours, the longest session there is, and could never deny one",
            ));
        }
        let minutes = i64::try_from(total).map_err(|_| invalid(AGE_FORM))?;
        Ok(Self(Duration::minutes(minutes)))
    }

    pub fn as_duration(self) -> Duration {
        self.0
    }
}

/// Leading ASCII digits (one to six) as a number, and what follows them.
fn leading_number(s: &str) -> Option<(u64, &str)> {
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 || digits > 6 {
        return None;
    }
    let (number, rest) = s.split_at_checked(digits)?;
    Some((number.parse().ok()?, rest))
}

impl fmt::Display for MaxSessionAge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let total = self.0.num_minutes();
        match (total / 60, total % 60) {
            (0, m) => write!(f, "{m}m"),
            (h, 0) => write!(f, "{h}h"),
            (h, m) => write!(f, "{h}h{m}m"),
        }
    }
}

impl FromStr for MaxSessionAge {
    type Err = InvalidValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<String> for MaxSessionAge {
    type Error = InvalidValue;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<MaxSessionAge> for String {
    fn from(a: MaxSessionAge) -> String {
        a.to_string()
    }
}

// ---------------------------------------------------------------------------------------
// Input and rules
// ---------------------------------------------------------------------------------------

/// One role or user as `GetAccountAuthorizationDetails` describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct PrincipalSnapshot {
    /// The account the principal is in.
    pub account: Account,
    pub kind: PrincipalType,
    pub name: PrincipalName,
    pub path: IamPath,
    pub unique_id: UniqueId,
    pub tags: Vec<(String, String)>,
    /// Inline policies: name and document as IAM returns it (maybe URL-encoded).
    pub inline: Vec<(String, String)>,
    /// ARNs of the attached managed policies.
    pub attached: Vec<String>,
    /// Managed policy ARN and the document of its default version.
    pub managed_documents: Vec<(String, String)>,
}

impl PrincipalSnapshot {
    pub fn tag(&self, key: &str) -> Option<&str> {
        self.tags
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    fn inline_policy(&self, name: &str) -> Option<&str> {
        self.inline
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, d)| d.as_str())
    }

    /// Attached managed policies that are this principal's fallback (any path, the
    /// current or the legacy name), sorted by ARN.
    fn fallback_arns(&self) -> Vec<&str> {
        let mut arns: Vec<&str> = self
            .attached
            .iter()
            .map(String::as_str)
            .filter(|arn| {
                arn.split_once(":policy/")
                    .and_then(|(_, rest)| rest.rsplit('/').next())
                    .is_some_and(|policy| is_fallback_of(policy, self.kind, &self.name))
            })
            .collect();
        arns.sort_unstable();
        arns.dedup();
        arns
    }
}

/// What the sweeper enforces (from config).
#[derive(Debug, Clone, PartialEq)]
pub struct SweepRules {
    /// Name patterns with a max session age; the first match counts. The tag wins.
    pub patterns: Vec<(NamePattern, MaxSessionAge)>,
    /// Added to the longest session before a revocation counts as expired. A negative
    /// margin is treated as zero.
    pub margin: Duration,
    /// Principals the sweeper never writes.
    pub protected: Protection,
}

impl Default for SweepRules {
    fn default() -> Self {
        Self {
            patterns: Vec::new(),
            margin: DEFAULT_EXPIRY_MARGIN,
            protected: Protection::default(),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Plan
// ---------------------------------------------------------------------------------------

/// One write the sweeper wants, in the order to carry them out.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// Put the inline policy `policy` (`AWSRevokeOlderSessions`) with `document`, which
    /// holds the rolling cutoff `to` (was `from` in that policy).
    MoveCutoff {
        policy: String,
        from: Option<Cutoff>,
        to: Cutoff,
        document: String,
    },
    /// Remove expired revocations from `policy`: an inline policy name, or the ARN of the
    /// managed fallback (write a new default version). `remaining: None` means delete the
    /// inline policy (never produced for a managed policy: see `DetachAndDeleteFallback`).
    RemoveExpired {
        policy: String,
        removed: Vec<Cutoff>,
        remaining: Option<String>,
    },
    /// The managed fallback holds nothing but expired revocations: detach it from the
    /// principal and delete it (its non-default versions first).
    DetachAndDeleteFallback { arn: String, removed: Vec<Cutoff> },
}

/// What to do to one principal, and what the sweeper noticed without acting.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PrincipalPlan {
    pub changes: Vec<Change>,
    pub notes: Vec<String>,
}

/// Why the sweeper must not touch a principal, if it must not.
fn hands_off(snapshot: &PrincipalSnapshot, rules: &SweepRules) -> Option<String> {
    let kind = match snapshot.kind {
        PrincipalType::Role => TargetKind::Role,
        PrincipalType::User => TargetKind::User,
    };
    if let Some(why) = rules
        .protected
        .reason(&snapshot.account, kind, &snapshot.name)
    {
        return Some(format!("protected ({why})"));
    }
    if snapshot
        .tag(PROTECTED_TAG)
        .is_some_and(|v| v.eq_ignore_ascii_case("true"))
    {
        return Some(format!("tagged {PROTECTED_TAG}=true"));
    }
    if snapshot.kind == PrincipalType::Role {
        // By the path IAM returned: a name is anyone's to choose.
        match classify_role_path(&snapshot.path) {
            RoleClass::Ordinary => {}
            RoleClass::ServiceLinked => {
                return Some("a service-linked role, which IAM does not let anyone change".into());
            }
            RoleClass::IdentityCenter => {
                return Some(
                    "an Identity Center role, whose policies Identity Center reverts".into(),
                );
            }
        }
    }
    None
}

/// The max session age that applies: the tag, else the first matching pattern.
fn max_age(
    snapshot: &PrincipalSnapshot,
    rules: &SweepRules,
) -> Result<Option<MaxSessionAge>, String> {
    if let Some(value) = snapshot.tag(MAX_SESSION_AGE_TAG) {
        return MaxSessionAge::parse(value)
            .map(Some)
            .map_err(|e| format!("tag {MAX_SESSION_AGE_TAG}: {e}"));
    }
    Ok(rules
        .patterns
        .iter()
        .find(|(p, _)| p.matches(&snapshot.name))
        .map(|(_, age)| *age))
}

/// The instant before which a revocation of this kind of principal no longer denies any
/// live session: `now − longest session − margin` (negative margin counts as zero).
pub fn expiry_threshold(
    kind: PrincipalType,
    margin: Duration,
    now: DateTime<Utc>,
) -> DateTime<Utc> {
    let back = PrincipalType::max_session(kind) + margin.max(Duration::zero());
    now.checked_sub_signed(back)
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// The rolling cutoff for a max session age at `now`.
pub fn rolling_cutoff(age: MaxSessionAge, now: DateTime<Utc>) -> Cutoff {
    Cutoff::at_or_after(
        now.checked_sub_signed(age.as_duration())
            .unwrap_or(DateTime::<Utc>::MIN_UTC),
    )
}

/// What a sweep at `now` changes on one principal. Changes come in a fixed order: the
/// inline `AWSRevokeOlderSessions`, the inline `CutoffRevokedSessions`, then managed
/// fallbacks by ARN; at most one change per policy.
pub fn plan(snapshot: &PrincipalSnapshot, rules: &SweepRules, now: DateTime<Utc>) -> PrincipalPlan {
    let mut out = PrincipalPlan::default();
    let who = format!("{} `{}`", snapshot.kind.as_str(), snapshot.name);
    if let Some(why) = hands_off(snapshot, rules) {
        out.notes
            .push(format!("{who} is {why}; the sweeper leaves it alone"));
        return out;
    }
    let age = match max_age(snapshot, rules) {
        Ok(age) => age,
        Err(why) => {
            out.notes.push(format!(
                "{who}: {why}; nothing changed until the tag is fixed"
            ));
            return out;
        }
    };
    let threshold = expiry_threshold(snapshot.kind, rules.margin, now);
    let mut rolling = age.map(|a| (a, rolling_cutoff(a, now)));
    if let Some((a, r)) = rolling
        && r.as_datetime() < threshold
    {
        out.notes.push(format!(
            "{who}: max session age {a} is longer than any {} session plus the margin; nothing to enforce",
            snapshot.kind.as_str()
        ));
        rolling = None;
    }

    let fallbacks: Vec<(&str, Option<PolicyDocument>)> = snapshot
        .fallback_arns()
        .into_iter()
        .map(|arn| {
            let doc = match snapshot.managed_documents.iter().find(|(a, _)| a == arn) {
                None => {
                    out.notes.push(format!(
                        "{who}: the document of {arn} is missing from the snapshot; left as it is"
                    ));
                    None
                }
                Some((_, text)) => match PolicyDocument::parse(text) {
                    Ok(d) => Some(d),
                    Err(e) => {
                        out.notes
                            .push(format!("{who}: {arn} cannot be read ({e}); left as it is"));
                        None
                    }
                },
            };
            (arn, doc)
        })
        .collect();

    // Inline role-wide policy: move the rolling cutoff, else remove expired statements.
    let inline = snapshot
        .inline_policy(ROLE_WIDE_POLICY_NAME)
        .map(PolicyDocument::parse);
    match inline {
        Some(Err(e)) => out.notes.push(format!(
            "{who}: {ROLE_WIDE_POLICY_NAME} cannot be read ({e}); left as it is"
        )),
        Some(Ok(_)) | None => {
            let doc = inline.and_then(Result::ok);
            let in_force = doc
                .iter()
                .chain(fallbacks.iter().filter_map(|(_, d)| d.as_ref()))
                .filter_map(PolicyDocument::role_wide_cutoff)
                .max();
            let moved = match rolling {
                Some((_, r)) if in_force.is_none_or(|c| c < r) => {
                    move_cutoff(snapshot, &who, doc.as_ref(), r, &mut out)
                }
                _ => false,
            };
            if !moved && let Some(doc) = &doc {
                let removal = remove_role_wide_older_than(doc, threshold);
                if removal.changed() {
                    out.changes.push(Change::RemoveExpired {
                        policy: ROLE_WIDE_POLICY_NAME.to_owned(),
                        removed: removal.removed,
                        remaining: removal.remaining.map(|d| d.to_json()),
                    });
                }
            }
        }
    }

    // Inline session policy: each expired session statement goes on its own.
    if let Some(text) = snapshot.inline_policy(SESSION_POLICY_NAME) {
        match PolicyDocument::parse(text) {
            Err(e) => out.notes.push(format!(
                "{who}: {SESSION_POLICY_NAME} cannot be read ({e}); left as it is"
            )),
            Ok(doc) => {
                let removal = remove_sessions_older_than(&doc, threshold);
                if removal.changed() {
                    out.changes.push(Change::RemoveExpired {
                        policy: SESSION_POLICY_NAME.to_owned(),
                        removed: removal.removed.into_iter().map(|(_, c)| c).collect(),
                        remaining: removal.remaining.map(|d| d.to_json()),
                    });
                }
            }
        }
    }

    // Managed fallbacks: remove expired statements; detach and delete when emptied.
    for (arn, doc) in &fallbacks {
        let Some(doc) = doc else { continue };
        let removal = remove_role_wide_older_than(doc, threshold);
        if !removal.changed() {
            continue;
        }
        out.changes.push(match removal.remaining {
            Some(rest) => Change::RemoveExpired {
                policy: (*arn).to_owned(),
                removed: removal.removed,
                remaining: Some(rest.to_json()),
            },
            None => Change::DetachAndDeleteFallback {
                arn: (*arn).to_owned(),
                removed: removal.removed,
            },
        });
    }
    out
}

/// Plans the write of the rolling cutoff into the inline role-wide policy; false when it
/// cannot be written (a note says why).
fn move_cutoff(
    snapshot: &PrincipalSnapshot,
    who: &str,
    existing: Option<&PolicyDocument>,
    rolling: Cutoff,
    out: &mut PrincipalPlan,
) -> bool {
    let merged = merge_role_wide(existing, rolling);
    if !merged.changed {
        return false;
    }
    let mut others = 0usize;
    for (name, text) in &snapshot.inline {
        if name == ROLE_WIDE_POLICY_NAME {
            continue;
        }
        match stored_policy_size(text) {
            Ok(size) => others = others.saturating_add(size),
            Err(e) => {
                out.notes.push(format!(
                    "{who}: inline policy `{name}` cannot be sized ({e}); rolling cutoff {rolling} not written"
                ));
                return false;
            }
        }
    }
    let budget = match snapshot.kind {
        PrincipalType::Role => Budget::role(others),
        PrincipalType::User => Budget::user(others),
    };
    let document = merged.document.to_json();
    if !budget.fits(merged.document.size()) {
        out.notes.push(format!(
            "{who}: rolling cutoff {rolling} does not fit the inline policy budget ({} of {} characters left); not written, a revocation would use the managed fallback",
            budget.remaining(),
            budget.limit
        ));
        return false;
    }
    out.changes.push(Change::MoveCutoff {
        policy: ROLE_WIDE_POLICY_NAME.to_owned(),
        from: merged.previous,
        to: merged.cutoff,
        document,
    });
    true
}

/// A duration as people write it: `45m`, `3h`, `3h 20m` (seconds below a minute).
pub fn humanize(d: chrono::Duration) -> String {
    let s = d.num_seconds().max(0);
    match (s / 3600, (s % 3600) / 60) {
        (0, 0) => format!("{s}s"),
        (0, m) => format!("{m}m"),
        (h, 0) => format!("{h}h"),
        (h, m) => format!("{h}h {m}m"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use proptest::prelude::*;
    use serde_json::{Value, json};

    use crate::policy::{SessionPrincipal, role_wide_statement, session_statement};

    const ROLE_ID: &str = "AROAEXAMPLEID0000001";
    const FALLBACK_ARN: &str = "arn:aws:iam::111122223333:policy/cutoff/cutoff-revoke-payments-api";
    const CONSOLE_OLD: &str = r#"{"Version":"2012-10-17","Statement":{"Effect":"Deny","Action":["*"],"Resource":["*"],"Condition":{"DateLessThan":{"aws:TokenIssueTime":"2026-11-20T10:20:30.123Z"}}}}"#;

    fn now() -> DateTime<Utc> {
        at("2026-11-23T12:00:00Z")
    }

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().to_utc()
    }

    fn cutoff(s: &str) -> Cutoff {
        Cutoff::parse(s).unwrap()
    }

    fn ago(d: Duration) -> Cutoff {
        Cutoff::at_or_after(now() - d)
    }

    fn foreign() -> Value {
        json!({"Sid":"ReadReports","Effect":"Allow","Action":["s3:GetObject"],"Resource":"arn:aws:s3:::reports/*"})
    }

    fn doc(statements: Vec<Value>) -> String {
        PolicyDocument::new(statements).to_json()
    }

    fn role_wide(cutoffs: &[Cutoff]) -> String {
        doc(cutoffs.iter().map(|c| role_wide_statement(*c)).collect())
    }

    fn session(name: &str) -> SessionPrincipal {
        SessionPrincipal::parse(&format!("{ROLE_ID}:{name}")).unwrap()
    }

    fn snapshot(kind: PrincipalType, name: &str) -> PrincipalSnapshot {
        PrincipalSnapshot {
            account: Account::parse("111122223333").unwrap(),
            kind,
            name: PrincipalName::parse(name).unwrap(),
            path: IamPath::parse("/").unwrap(),
            unique_id: UniqueId::parse(ROLE_ID).unwrap(),
            tags: Vec::new(),
            inline: Vec::new(),
            attached: Vec::new(),
            managed_documents: Vec::new(),
        }
    }

    fn role() -> PrincipalSnapshot {
        snapshot(PrincipalType::Role, "payments-api")
    }

    fn with_tag(mut s: PrincipalSnapshot, k: &str, v: &str) -> PrincipalSnapshot {
        s.tags.push((k.to_owned(), v.to_owned()));
        s
    }

    fn with_inline(mut s: PrincipalSnapshot, name: &str, text: String) -> PrincipalSnapshot {
        s.inline.push((name.to_owned(), text));
        s
    }

    fn with_fallback(mut s: PrincipalSnapshot, text: String) -> PrincipalSnapshot {
        s.attached.push(FALLBACK_ARN.to_owned());
        s.managed_documents.push((FALLBACK_ARN.to_owned(), text));
        s
    }

    fn rules() -> SweepRules {
        SweepRules::default()
    }

    fn role_wide_cutoffs(text: &str) -> Vec<Cutoff> {
        PolicyDocument::parse(text)
            .unwrap()
            .statements()
            .iter()
            .filter_map(|s| match crate::policy::classify_statement(s) {
                crate::policy::StatementKind::RoleWide(c) => Some(c),
                _ => None,
            })
            .collect()
    }

    /// What IAM would hold after carrying out the plan.
    fn apply(s: &PrincipalSnapshot, plan: &PrincipalPlan) -> PrincipalSnapshot {
        let mut s = s.clone();
        let set_inline = |s: &mut PrincipalSnapshot, name: &str, text: Option<&String>| {
            s.inline.retain(|(n, _)| n != name);
            if let Some(t) = text {
                s.inline.push((name.to_owned(), t.clone()));
            }
        };
        for change in &plan.changes {
            match change {
                Change::MoveCutoff {
                    policy, document, ..
                } => set_inline(&mut s, policy, Some(document)),
                Change::RemoveExpired {
                    policy, remaining, ..
                } if policy.starts_with("arn:") => {
                    let text = remaining
                        .clone()
                        .expect("a managed policy is never emptied here");
                    for (a, d) in &mut s.managed_documents {
                        if a == policy {
                            *d = text.clone();
                        }
                    }
                }
                Change::RemoveExpired {
                    policy, remaining, ..
                } => set_inline(&mut s, policy, remaining.as_ref()),
                Change::DetachAndDeleteFallback { arn, .. } => {
                    s.attached.retain(|a| a != arn);
                    s.managed_documents.retain(|(a, _)| a != arn);
                }
            }
        }
        s
    }

    /// The role-wide cutoff in force: inline and attached fallback together.
    fn in_force(s: &PrincipalSnapshot) -> Option<Cutoff> {
        let inline = s.inline_policy(ROLE_WIDE_POLICY_NAME).map(str::to_owned);
        let managed = s
            .managed_documents
            .iter()
            .filter(|(a, _)| s.attached.contains(a))
            .map(|(_, d)| d.clone());
        inline
            .into_iter()
            .chain(managed)
            .filter_map(|t| PolicyDocument::parse(&t).unwrap().role_wide_cutoff())
            .max()
    }

    // --- rolling cutoff ----------------------------------------------------------------

    #[test]
    fn given_role_tagged_4h_without_policy_when_swept_then_cutoff_is_now_minus_4h() {
        let s = with_tag(role(), MAX_SESSION_AGE_TAG, "4h");
        let p = plan(&s, &rules(), now());
        assert_eq!(p.notes, Vec::<String>::new());
        let [
            Change::MoveCutoff {
                policy,
                from,
                to,
                document,
            },
        ] = p.changes.as_slice()
        else {
            panic!("{p:?}")
        };
        assert_eq!(policy, ROLE_WIDE_POLICY_NAME);
        assert_eq!(*from, None);
        assert_eq!(*to, cutoff("2026-11-23T08:00:00Z"));
        assert_eq!(role_wide_cutoffs(document), vec![*to]);
    }

    #[test]
    fn given_opted_in_role_with_earlier_cutoff_when_swept_then_cutoff_moves_forward() {
        let old = ago(Duration::hours(6));
        let s = with_inline(
            with_tag(role(), MAX_SESSION_AGE_TAG, "1h30m"),
            ROLE_WIDE_POLICY_NAME,
            role_wide(&[old]),
        );
        let p = plan(&s, &rules(), now());
        assert_eq!(
            p.changes,
            vec![Change::MoveCutoff {
                policy: ROLE_WIDE_POLICY_NAME.into(),
                from: Some(old),
                to: cutoff("2026-11-23T10:30:00Z"),
                document: role_wide(&[cutoff("2026-11-23T10:30:00Z")]),
            }]
        );
    }

    #[test]
    fn given_rolling_cutoff_with_subsecond_now_when_swept_then_it_is_rounded_up() {
        let s = with_tag(role(), MAX_SESSION_AGE_TAG, "30m");
        let p = plan(&s, &rules(), at("2026-11-23T12:00:00.250Z"));
        let [Change::MoveCutoff { to, .. }] = p.changes.as_slice() else {
            panic!("{p:?}")
        };
        assert_eq!(*to, cutoff("2026-11-23T11:30:01Z"));
    }

    #[test]
    fn given_existing_later_cutoff_when_swept_then_it_never_moves_backwards() {
        let later = ago(Duration::minutes(5));
        let s = with_inline(
            with_tag(role(), MAX_SESSION_AGE_TAG, "4h"),
            ROLE_WIDE_POLICY_NAME,
            role_wide(&[later]),
        );
        let p = plan(&s, &rules(), now());
        assert_eq!(p, PrincipalPlan::default());
        assert_eq!(in_force(&apply(&s, &p)), Some(later));
    }

    #[test]
    fn given_later_cutoff_in_the_fallback_when_swept_then_inline_is_not_written() {
        let s = with_fallback(
            with_tag(role(), MAX_SESSION_AGE_TAG, "4h"),
            role_wide(&[ago(Duration::hours(1))]),
        );
        assert_eq!(plan(&s, &rules(), now()), PrincipalPlan::default());
    }

    #[test]
    fn given_foreign_statements_when_cutoff_moves_then_they_survive_in_order() {
        let text = doc(vec![
            foreign(),
            role_wide_statement(ago(Duration::hours(9))),
            json!({"Effect":"Deny","Action":"iam:*","Resource":"*"}),
        ]);
        let s = with_inline(
            with_tag(role(), MAX_SESSION_AGE_TAG, "4h"),
            ROLE_WIDE_POLICY_NAME,
            text,
        );
        let p = plan(&s, &rules(), now());
        let [Change::MoveCutoff { document, .. }] = p.changes.as_slice() else {
            panic!("{p:?}")
        };
        let written = PolicyDocument::parse(document).unwrap();
        assert_eq!(
            written.statements(),
            &[
                foreign(),
                role_wide_statement(ago(Duration::hours(4))),
                json!({"Effect":"Deny","Action":"iam:*","Resource":"*"}),
            ]
        );
    }

    #[test]
    fn given_console_statement_when_cutoff_moves_then_it_is_merged_not_duplicated() {
        let s = with_inline(
            with_tag(role(), MAX_SESSION_AGE_TAG, "4h"),
            ROLE_WIDE_POLICY_NAME,
            CONSOLE_OLD.to_owned(),
        );
        let p = plan(&s, &rules(), now());
        let [Change::MoveCutoff { from, document, .. }] = p.changes.as_slice() else {
            panic!("{p:?}")
        };
        assert_eq!(*from, Some(cutoff("2026-11-20T10:20:30.123Z")));
        assert_eq!(role_wide_cutoffs(document), vec![ago(Duration::hours(4))]);
    }

    #[test]
    fn given_config_pattern_when_swept_then_first_match_applies_and_tag_wins() {
        let rules = SweepRules {
            patterns: vec![
                (
                    NamePattern::parse("payments-*").unwrap(),
                    MaxSessionAge::parse("2h").unwrap(),
                ),
                (
                    NamePattern::parse("*").unwrap(),
                    MaxSessionAge::parse("8h").unwrap(),
                ),
            ],
            ..rules()
        };
        let to = |s: &PrincipalSnapshot| match plan(s, &rules, now()).changes.as_slice() {
            [Change::MoveCutoff { to, .. }] => *to,
            other => panic!("{other:?}"),
        };
        assert_eq!(to(&role()), ago(Duration::hours(2)));
        assert_eq!(
            to(&snapshot(PrincipalType::Role, "batch")),
            ago(Duration::hours(8))
        );
        assert_eq!(
            to(&with_tag(role(), MAX_SESSION_AGE_TAG, "45m")),
            ago(Duration::minutes(45))
        );
    }

    #[test]
    fn given_max_age_longer_than_any_role_session_when_swept_then_note_and_cleanup_only() {
        let s = with_inline(
            with_tag(role(), MAX_SESSION_AGE_TAG, "20h"),
            ROLE_WIDE_POLICY_NAME,
            role_wide(&[ago(Duration::hours(30))]),
        );
        let p = plan(&s, &rules(), now());
        assert_eq!(p.notes.len(), 1, "{p:?}");
        assert!(p.notes[0].contains("nothing to enforce"), "{p:?}");
        assert_eq!(
            p.changes,
            vec![Change::RemoveExpired {
                policy: ROLE_WIDE_POLICY_NAME.into(),
                removed: vec![ago(Duration::hours(30))],
                remaining: None,
            }]
        );
        // A user's sessions live up to 36 h, so the same age is enforced on a user.
        let u = with_tag(
            snapshot(PrincipalType::User, "alice"),
            MAX_SESSION_AGE_TAG,
            "20h",
        );
        let p = plan(&u, &rules(), now());
        assert!(
            matches!(p.changes.as_slice(), [Change::MoveCutoff { .. }]),
            "{p:?}"
        );
    }

    #[test]
    fn given_opted_in_role_when_swept_then_the_rolling_cutoff_is_never_removed() {
        // 12 h is the longest a role session lives: the rolling cutoff sits just inside
        // the window (threshold = now − 13 h), and older duplicates go.
        let s = with_inline(
            with_tag(role(), MAX_SESSION_AGE_TAG, "12h"),
            ROLE_WIDE_POLICY_NAME,
            role_wide(&[ago(Duration::hours(12)), ago(Duration::hours(20))]),
        );
        let p = plan(&s, &rules(), now());
        assert_eq!(
            p.changes,
            vec![Change::RemoveExpired {
                policy: ROLE_WIDE_POLICY_NAME.into(),
                removed: vec![ago(Duration::hours(20))],
                remaining: Some(role_wide(&[ago(Duration::hours(12))])),
            }]
        );
        let after = apply(&s, &p);
        assert_eq!(in_force(&after), Some(ago(Duration::hours(12))));
        assert_eq!(plan(&after, &rules(), now()), PrincipalPlan::default());
    }

    #[test]
    fn given_inline_budget_exhausted_when_cutoff_would_move_then_note_and_no_write() {
        let big = doc(
            (0..60)
                .map(|i| json!({"Sid": format!("S{i}"), "Effect":"Allow","Action":"s3:GetObject","Resource": format!("arn:aws:s3:::bucket-with-a-long-name-{i}/*")}))
                .collect(),
        );
        let s = with_inline(
            with_tag(
                snapshot(PrincipalType::User, "alice"),
                MAX_SESSION_AGE_TAG,
                "4h",
            ),
            "Reports",
            big,
        );
        let p = plan(&s, &rules(), now());
        assert_eq!(p.changes, vec![]);
        assert!(p.notes[0].contains("does not fit"), "{p:?}");
    }

    // --- cleanup -----------------------------------------------------------------------

    #[test]
    fn given_expired_and_fresh_role_wide_when_swept_then_only_expired_is_removed() {
        let expired = ago(Duration::hours(14));
        let fresh = ago(Duration::hours(2));
        let s = with_inline(
            role(),
            ROLE_WIDE_POLICY_NAME,
            doc(vec![foreign(), role_wide_statement(expired)]),
        );
        let p = plan(&s, &rules(), now());
        assert_eq!(
            p.changes,
            vec![Change::RemoveExpired {
                policy: ROLE_WIDE_POLICY_NAME.into(),
                removed: vec![expired],
                remaining: Some(doc(vec![foreign()])),
            }]
        );
        let s = with_inline(role(), ROLE_WIDE_POLICY_NAME, role_wide(&[fresh]));
        assert_eq!(plan(&s, &rules(), now()), PrincipalPlan::default());
    }

    #[test]
    fn given_only_expired_console_statement_when_swept_then_policy_is_deleted() {
        let s = with_inline(role(), ROLE_WIDE_POLICY_NAME, CONSOLE_OLD.to_owned());
        let p = plan(&s, &rules(), now());
        assert_eq!(
            p.changes,
            vec![Change::RemoveExpired {
                policy: ROLE_WIDE_POLICY_NAME.into(),
                removed: vec![cutoff("2026-11-20T10:20:30.123Z")],
                remaining: None,
            }]
        );
    }

    #[test]
    fn given_url_encoded_document_when_swept_then_it_is_read() {
        let text: String = percent_encoding::utf8_percent_encode(
            &role_wide(&[ago(Duration::hours(20))]),
            percent_encoding::NON_ALPHANUMERIC,
        )
        .to_string();
        let s = with_inline(role(), ROLE_WIDE_POLICY_NAME, text);
        let p = plan(&s, &rules(), now());
        assert!(
            matches!(
                p.changes.as_slice(),
                [Change::RemoveExpired {
                    remaining: None,
                    ..
                }]
            ),
            "{p:?}"
        );
    }

    #[test]
    fn given_user_when_swept_then_the_36_hour_window_applies() {
        let user = snapshot(PrincipalType::User, "alice");
        let s = with_inline(
            user.clone(),
            ROLE_WIDE_POLICY_NAME,
            role_wide(&[ago(Duration::hours(30))]),
        );
        assert_eq!(plan(&s, &rules(), now()), PrincipalPlan::default());
        let s = with_inline(
            user,
            ROLE_WIDE_POLICY_NAME,
            role_wide(&[ago(Duration::hours(38))]),
        );
        let p = plan(&s, &rules(), now());
        assert_eq!(
            p.changes,
            vec![Change::RemoveExpired {
                policy: ROLE_WIDE_POLICY_NAME.into(),
                removed: vec![ago(Duration::hours(38))],
                remaining: None,
            }]
        );
    }

    #[test]
    fn given_session_statements_when_swept_then_each_expires_on_its_own() {
        let old = ago(Duration::hours(20));
        let fresh = ago(Duration::hours(1));
        let s = with_inline(
            role(),
            SESSION_POLICY_NAME,
            doc(vec![
                session_statement(&session("i-0aaa"), old),
                session_statement(&session("i-0bbb"), fresh),
            ]),
        );
        let p = plan(&s, &rules(), now());
        assert_eq!(
            p.changes,
            vec![Change::RemoveExpired {
                policy: SESSION_POLICY_NAME.into(),
                removed: vec![old],
                remaining: Some(doc(vec![session_statement(&session("i-0bbb"), fresh)])),
            }]
        );
    }

    #[test]
    fn given_cutoff_exactly_at_threshold_when_swept_then_it_stays_and_one_second_older_goes() {
        // Threshold for a role with the default margin: now − 12 h − 1 h.
        let at_threshold = ago(Duration::hours(13));
        let older = ago(Duration::hours(13) + Duration::seconds(1));
        let s = with_inline(role(), ROLE_WIDE_POLICY_NAME, role_wide(&[at_threshold]));
        assert_eq!(plan(&s, &rules(), now()), PrincipalPlan::default());
        let s = with_inline(role(), ROLE_WIDE_POLICY_NAME, role_wide(&[older]));
        assert_eq!(plan(&s, &rules(), now()).changes.len(), 1);
        // Without the margin, the statement at now − 13 h is past the window.
        let no_margin = SweepRules {
            margin: Duration::zero(),
            ..rules()
        };
        let s = with_inline(role(), ROLE_WIDE_POLICY_NAME, role_wide(&[at_threshold]));
        assert_eq!(plan(&s, &no_margin, now()).changes.len(), 1);
        // A negative margin counts as zero, never shrinking the window below 12 h.
        let negative = SweepRules {
            margin: Duration::hours(-5),
            ..rules()
        };
        let s = with_inline(
            role(),
            ROLE_WIDE_POLICY_NAME,
            role_wide(&[ago(Duration::hours(12))]),
        );
        assert_eq!(plan(&s, &negative, now()), PrincipalPlan::default());
    }

    #[test]
    fn given_fallback_with_only_expired_statements_when_swept_then_detach_and_delete() {
        let expired = ago(Duration::hours(15));
        let s = with_fallback(role(), role_wide(&[expired]));
        let p = plan(&s, &rules(), now());
        assert_eq!(
            p.changes,
            vec![Change::DetachAndDeleteFallback {
                arn: FALLBACK_ARN.into(),
                removed: vec![expired],
            }]
        );
        let s = with_fallback(role(), doc(vec![role_wide_statement(expired), foreign()]));
        assert_eq!(
            plan(&s, &rules(), now()).changes,
            vec![Change::RemoveExpired {
                policy: FALLBACK_ARN.into(),
                removed: vec![expired],
                remaining: Some(doc(vec![foreign()])),
            }]
        );
    }

    #[test]
    fn given_managed_policy_of_another_principal_when_swept_then_it_is_not_touched() {
        let mut s = role();
        let other = "arn:aws:iam::111122223333:policy/cutoff/cutoff-revoke-payments-api-v2";
        s.attached.push(other.into());
        s.managed_documents
            .push((other.into(), role_wide(&[ago(Duration::hours(20))])));
        assert_eq!(plan(&s, &rules(), now()), PrincipalPlan::default());
    }

    #[test]
    fn given_everything_expired_when_swept_then_changes_come_in_a_fixed_order() {
        let old = ago(Duration::hours(20));
        let s = with_fallback(
            with_inline(
                with_inline(
                    role(),
                    SESSION_POLICY_NAME,
                    doc(vec![session_statement(&session("i-0aaa"), old)]),
                ),
                ROLE_WIDE_POLICY_NAME,
                role_wide(&[old]),
            ),
            role_wide(&[old]),
        );
        let p = plan(&s, &rules(), now());
        let policies: Vec<&str> = p
            .changes
            .iter()
            .map(|c| match c {
                Change::MoveCutoff { policy, .. } | Change::RemoveExpired { policy, .. } => {
                    policy.as_str()
                }
                Change::DetachAndDeleteFallback { arn, .. } => arn.as_str(),
            })
            .collect();
        assert_eq!(
            policies,
            vec![ROLE_WIDE_POLICY_NAME, SESSION_POLICY_NAME, FALLBACK_ARN]
        );
        assert_eq!(plan(&s, &rules(), now()), p);
        assert_eq!(
            plan(&apply(&s, &p), &rules(), now()),
            PrincipalPlan::default()
        );
    }

    // --- hands off ---------------------------------------------------------------------

    #[test]
    fn given_invalid_max_age_tag_when_swept_then_only_a_note() {
        let s = with_inline(
            with_tag(role(), MAX_SESSION_AGE_TAG, "4 hours"),
            ROLE_WIDE_POLICY_NAME,
            role_wide(&[ago(Duration::hours(20))]),
        );
        let p = plan(&s, &rules(), now());
        assert_eq!(p.changes, vec![]);
        assert_eq!(p.notes.len(), 1);
        assert!(p.notes[0].contains(MAX_SESSION_AGE_TAG), "{p:?}");
        assert!(p.notes[0].contains("payments-api"), "{p:?}");
    }

    #[test]
    fn given_protected_service_linked_or_identity_center_when_swept_then_untouched() {
        let expired = |s: PrincipalSnapshot| {
            with_inline(
                with_tag(s, MAX_SESSION_AGE_TAG, "1h"),
                ROLE_WIDE_POLICY_NAME,
                role_wide(&[ago(Duration::hours(20))]),
            )
        };
        let protected_rules = SweepRules {
            protected: Protection {
                patterns: vec![NamePattern::parse("payments-*").unwrap()],
                ..Protection::default()
            },
            ..rules()
        };
        let mut sso_path = snapshot(PrincipalType::Role, "ops");
        sso_path.path = IamPath::parse("/aws-reserved/sso.amazonaws.com/eu-west-1/").unwrap();
        let mut slr_path = snapshot(PrincipalType::Role, "custom");
        slr_path.path =
            IamPath::parse("/aws-service-role/elasticbeanstalk.amazonaws.com/").unwrap();
        let cases = [
            (expired(role()), &protected_rules, "protected"),
            (
                expired(with_tag(role(), PROTECTED_TAG, "TRUE")),
                &rules(),
                "protected",
            ),
            (expired(slr_path), &rules(), "service-linked"),
            (expired(sso_path), &rules(), "Identity Center"),
        ];
        for (s, r, why) in cases {
            let p = plan(&s, r, now());
            assert_eq!(p.changes, vec![], "{}", s.name);
            assert_eq!(p.notes.len(), 1, "{}", s.name);
            assert!(p.notes[0].contains(why), "{}: {:?}", s.name, p.notes);
        }
    }

    #[test]
    fn given_a_reserved_looking_name_at_an_ordinary_path_when_swept_then_it_is_a_role_like_any_other()
     {
        // Only IAM's path says service-linked or Identity Center; names are anyone's.
        for name in [
            "AWSServiceRoleForECS",
            "AWSReservedSSO_Admin_0123456789abcdef",
        ] {
            let s = with_inline(
                with_tag(
                    snapshot(PrincipalType::Role, name),
                    MAX_SESSION_AGE_TAG,
                    "1h",
                ),
                ROLE_WIDE_POLICY_NAME,
                role_wide(&[ago(Duration::hours(20))]),
            );
            let p = plan(&s, &rules(), now());
            assert!(
                matches!(p.changes.as_slice(), [Change::MoveCutoff { .. }]),
                "{name}: {p:?}"
            );
        }
    }

    #[test]
    fn given_unreadable_document_when_swept_then_note_and_that_policy_is_left_alone() {
        let old = ago(Duration::hours(20));
        let s = with_inline(
            with_inline(
                with_tag(role(), MAX_SESSION_AGE_TAG, "4h"),
                ROLE_WIDE_POLICY_NAME,
                "{not json".into(),
            ),
            SESSION_POLICY_NAME,
            doc(vec![session_statement(&session("i-0aaa"), old)]),
        );
        let p = plan(&s, &rules(), now());
        assert_eq!(
            p.changes,
            vec![Change::RemoveExpired {
                policy: SESSION_POLICY_NAME.into(),
                removed: vec![old],
                remaining: None,
            }]
        );
        assert_eq!(p.notes.len(), 1);
        assert!(p.notes[0].contains("cannot be read"), "{p:?}");

        let mut s = with_fallback(role(), "%zz".into());
        s.attached
            .push("arn:aws:iam::111122223333:policy/x/cutoff-revoke-payments-api".into());
        let p = plan(&s, &rules(), now());
        assert_eq!(p.changes, vec![]);
        assert_eq!(p.notes.len(), 2, "{p:?}");
    }

    // --- MaxSessionAge -----------------------------------------------------------------

    #[test]
    fn given_max_session_age_texts_when_parsed_then_table_holds() {
        let ok = [
            ("4h", 240),
            ("30m", 30),
            ("1h30m", 90),
            ("90m", 90),
            ("2h0m", 120),
            ("15m", 15),
            ("0h15m", 15),
            ("36h", 2160),
            ("2160m", 2160),
            ("35h59m", 2159),
        ];
        for (text, minutes) in ok {
            let age = MaxSessionAge::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(age.as_duration(), Duration::minutes(minutes), "{text}");
            assert_eq!(MaxSessionAge::parse(&age.to_string()), Ok(age), "{text}");
        }
        let bad = [
            ("", "empty"),
            ("0m", "zero"),
            ("0h0m", "zero"),
            ("14m", "below 15 minutes"),
            ("36h1m", "above 36 hours"),
            ("37h", "above 36 hours"),
            ("9999999h", "hours and minutes"),
            ("30s", "seconds"),
            ("1h30s", "seconds"),
            ("-4h", "negative"),
            ("4H", "hours and minutes"),
            ("4 h", "hours and minutes"),
            ("5 hours", "hours and minutes"),
            ("4hours", "hours and minutes"),
            (" 4h", "hours and minutes"),
            ("4h ", "hours and minutes"),
            ("4", "hours and minutes"),
            ("h", "hours and minutes"),
            ("30m1h", "hours and minutes"),
            ("1h90m", "0 to 59"),
            ("1d", "hours and minutes"),
            ("PT4H", "hours and minutes"),
            ("+4h", "hours and minutes"),
            ("4h4h", "hours and minutes"),
            ("1.5h", "hours and minutes"),
            ("４h", "hours and minutes"),
        ];
        for (text, why) in bad {
            let e = MaxSessionAge::parse(text).expect_err(text);
            assert!(e.to_string().contains(why), "{text}: {e}");
            assert_eq!(e.what, "max session age");
        }
        assert_eq!(MaxSessionAge::parse("1h30m").unwrap().to_string(), "1h30m");
        assert_eq!(MaxSessionAge::parse("120m").unwrap().to_string(), "2h");
    }

    // --- property ----------------------------------------------------------------------

    fn arb_case() -> impl Strategy<Value = (PrincipalSnapshot, SweepRules, DateTime<Utc>)> {
        let offsets = || prop::collection::vec(0i64..50 * 3600, 0..4);
        (
            any::<bool>(),
            prop::option::of(15i64..=2160),
            offsets(),
            prop::collection::vec((0usize..3, 0i64..50 * 3600), 0..5),
            prop::option::of(offsets()),
            any::<bool>(),
            0i64..3 * 3600,
            0u32..1_000_000_000,
        )
            .prop_map(
                |(is_role, age, inline, sessions, fallback, with_foreign, margin, nanos)| {
                    let now = now() + Duration::nanoseconds(i64::from(nanos));
                    let back = |secs: i64| Cutoff::at_or_after(now - Duration::seconds(secs));
                    let kind = if is_role {
                        PrincipalType::Role
                    } else {
                        PrincipalType::User
                    };
                    let mut s = snapshot(kind, "payments-api");
                    if let Some(m) = age {
                        s = with_tag(s, MAX_SESSION_AGE_TAG, &format!("{m}m"));
                    }
                    let mut statements: Vec<Value> = inline
                        .iter()
                        .map(|o| role_wide_statement(back(*o)))
                        .collect();
                    if with_foreign {
                        statements.insert(0, foreign());
                    }
                    if !statements.is_empty() {
                        s = with_inline(s, ROLE_WIDE_POLICY_NAME, doc(statements));
                    }
                    let sessions: Vec<Value> = sessions
                        .iter()
                        .map(|(i, o)| session_statement(&session(&format!("s{i}")), back(*o)))
                        .collect();
                    if !sessions.is_empty() {
                        s = with_inline(s, SESSION_POLICY_NAME, doc(sessions));
                    }
                    if let Some(f) = fallback.filter(|f| !f.is_empty()) {
                        s = with_fallback(
                            s,
                            doc(f.iter().map(|o| role_wide_statement(back(*o))).collect()),
                        );
                    }
                    let rules = SweepRules {
                        margin: Duration::seconds(margin),
                        ..rules()
                    };
                    (s, rules, now)
                },
            )
    }

    fn all_role_wide(s: &PrincipalSnapshot) -> Vec<Cutoff> {
        let mut out: Vec<Cutoff> = s
            .inline_policy(ROLE_WIDE_POLICY_NAME)
            .map(role_wide_cutoffs)
            .unwrap_or_default();
        for (a, d) in &s.managed_documents {
            if s.attached.contains(a) {
                out.extend(role_wide_cutoffs(d));
            }
        }
        out
    }

    fn sessions_of(s: &PrincipalSnapshot) -> Vec<(SessionPrincipal, Cutoff)> {
        s.inline_policy(SESSION_POLICY_NAME)
            .map(|t| PolicyDocument::parse(t).unwrap().session_cutoffs())
            .unwrap_or_default()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn applying_a_plan_never_lowers_a_cutoff_still_in_its_window((s, rules, now) in arb_case()) {
            let p = plan(&s, &rules, now);
            let after = apply(&s, &p);
            let threshold = expiry_threshold(s.kind, rules.margin, now);
            let force_after = in_force(&after);

            for c in all_role_wide(&s) {
                if c.as_datetime() >= threshold {
                    prop_assert!(force_after >= Some(c), "{c} lowered to {force_after:?}: {p:?}");
                }
            }
            let sessions_after = sessions_of(&after);
            for (q, c) in sessions_of(&s) {
                if c.as_datetime() >= threshold {
                    let now_c = sessions_after.iter().find(|(p, _)| *p == q).map(|(_, c)| *c);
                    prop_assert!(now_c >= Some(c), "session {q} {c} lowered: {p:?}");
                }
            }
            // The rolling cutoff is in force after the sweep, whenever it is enforceable.
            if let Some(age) = s.tag(MAX_SESSION_AGE_TAG) {
                let r = rolling_cutoff(MaxSessionAge::parse(age).unwrap(), now);
                if r.as_datetime() >= threshold {
                    prop_assert!(force_after >= Some(r), "rolling {r} not in force: {p:?}");
                }
            }
            // Only expired statements go; foreign statements stay.
            for change in &p.changes {
                if let Change::RemoveExpired { removed, .. } | Change::DetachAndDeleteFallback { removed, .. } = change {
                    prop_assert!(removed.iter().all(|c| c.as_datetime() < threshold));
                }
            }
            let has_foreign = |x: &PrincipalSnapshot| x
                .inline_policy(ROLE_WIDE_POLICY_NAME)
                .is_some_and(|t| t.contains("ReadReports"));
            prop_assert_eq!(has_foreign(&after), has_foreign(&s));
            // A second sweep at the same instant has nothing left to do.
            prop_assert_eq!(plan(&after, &rules, now).changes, vec![]);
        }
    }

    #[test]
    fn durations_read_like_a_person_would_write_them() {
        assert_eq!(humanize(chrono::Duration::seconds(12)), "12s");
        assert_eq!(humanize(chrono::Duration::minutes(45)), "45m");
        assert_eq!(humanize(chrono::Duration::hours(3)), "3h");
        assert_eq!(humanize(chrono::Duration::minutes(200)), "3h 20m");
    }
}
