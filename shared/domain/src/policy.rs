//! Build, parse, merge and size the deny documents that revoke sessions.
//!
//! # The lever
//!
//! Temporary STS credentials cannot be invalidated: they work until they expire (up to
//! 12 h for a role session, 36 h for `GetSessionToken`). What IAM does offer is that a
//! principal's policies are evaluated on every request, so an inline deny on the
//! principal, conditioned on `aws:TokenIssueTime` being earlier than a cutoff, kills every
//! session issued before the cutoff while sessions issued later keep working. That is the
//! policy the IAM console writes for "Revoke active sessions", and the one built here.
//!
//! # Monotonic
//!
//! Requests arrive out of order, are retried and are coalesced. A cutoff must therefore
//! never move backwards: every merge writes `max(existing, new)` and reports "nothing to
//! write" when the existing cutoff already covers the new one (which also keeps finding
//! storms from hammering IAM). The cutoff is rounded *up* to a whole second, because
//! `aws:TokenIssueTime` has second resolution and the condition is `DateLessThan`: a
//! cutoff truncated down would spare a session minted in the same second as the write.
//!
//! # Console compatibility
//!
//! The console writes the same deny under the same name (`AWSRevokeOlderSessions`), in
//! its own shape: no `Sid`, `["*"]` arrays, a single statement object, millisecond
//! timestamps. That shape is recognised as ours, so a cutoff set by a person and one set
//! by cutoff collapse into a single statement with the later time instead of piling up.
//! Recognition is strict: a statement is ours only if it has exactly our shape, and
//! anything else (including our shape with a date we cannot read) is *foreign* and is
//! copied through untouched, in order. Guessing would risk lowering a cutoff or
//! deleting someone's deny.
//!
//! # Size
//!
//! A role's inline policies share 10,240 characters, a user's 2,048, and a managed policy
//! has 6,144; IAM does not count whitespace. [`policy_size`] counts the same way and
//! [`Budget`] does the arithmetic, so the revoker can fall back to a managed policy
//! *before* a write fails rather than dropping a revocation.
//!
//! # Untrusted input
//!
//! Documents come from IAM, URL-encoded, and may have been written by anyone with
//! `iam:PutRolePolicy`. Parsing is bounded (1 MB, serde_json's nesting limit), never
//! panics, rejects duplicate keys (two readers could disagree about which one counts),
//! and errors quote at most a short escaped excerpt of the input.
//!
//! Foreign statements survive as JSON values: same keys, order, strings, booleans and
//! integers. A non-integer number would be re-printed in its shortest form (same value);
//! IAM condition values are strings in practice.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::json::StrictValue;
use crate::principal::{
    InvalidValue, PrincipalName, PrincipalType, SessionName, UniqueId, excerpt,
};

/// The inline policy name the IAM console uses for "Revoke active sessions"; sharing it
/// means the console and cutoff see and refresh the same cutoff.
pub const ROLE_WIDE_POLICY_NAME: &str = "AWSRevokeOlderSessions";
/// The inline policy holding session-scoped denies. Kept apart from the role-wide policy
/// so the console never rewrites it and release of one scope leaves the other alone.
pub const SESSION_POLICY_NAME: &str = "CutoffRevokedSessions";
/// Aggregate size of all inline policies of a role, whitespace not counted.
pub const ROLE_INLINE_BUDGET: usize = 10_240;
/// Aggregate size of all inline policies of a user, whitespace not counted.
pub const USER_INLINE_BUDGET: usize = 2_048;
/// Size of one customer-managed policy, whitespace not counted.
pub const MANAGED_POLICY_BUDGET: usize = 6_144;
/// Largest input [`PolicyDocument::parse`] looks at. IAM's own documents are far smaller
/// (even URL-encoded); anything this big is not a policy and is refused before parsing.
pub const MAX_DOCUMENT_BYTES: usize = 1_048_576;
/// The policy language version written in new documents (needed for nothing we write,
/// but it is what the console writes and what every linter expects).
pub const POLICY_VERSION: &str = "2012-10-17";
/// The `Sid` of the role-wide statement cutoff writes. The console writes none; either
/// is recognised.
pub const ROLE_WIDE_SID: &str = "RevokeOlderSessions";

const STATEMENT: &str = "Statement";
const VERSION: &str = "Version";
const TOKEN_ISSUE_TIME: &str = "aws:TokenIssueTime";
const USER_ID: &str = "aws:userid";
const DATE_LESS_THAN: &str = "DateLessThan";
const STRING_EQUALS: &str = "StringEquals";

/// Name of the customer-managed policy used when a role's or user's inline budget is
/// exhausted: `cutoff-revoke-role-<name>` or `cutoff-revoke-user-<name>`, so that a role
/// and a user of the same name never share one. Principal names are at most 64
/// characters, so this stays well inside the 128-character limit on policy names.
pub fn fallback_managed_policy_name(kind: PrincipalType, principal: &PrincipalName) -> String {
    format!("cutoff-revoke-{}-{principal}", kind.as_str())
}

/// The name earlier versions gave the fallback (`cutoff-revoke-<name>`, shared by a role
/// and a user of the same name). Still read, released and swept; never written.
pub fn legacy_fallback_managed_policy_name(principal: &PrincipalName) -> String {
    format!("cutoff-revoke-{principal}")
}

/// Whether a managed policy name (the last segment of its ARN) is a fallback of this
/// principal, under the current name or the legacy one.
pub fn is_fallback_of(policy_name: &str, kind: PrincipalType, principal: &PrincipalName) -> bool {
    policy_name == fallback_managed_policy_name(kind, principal)
        || policy_name == legacy_fallback_managed_policy_name(principal)
}

// ---------------------------------------------------------------------------------------
// Cutoff
// ---------------------------------------------------------------------------------------

/// `0000-01-01T00:00:00Z`: the earliest instant whose rendering has a four-digit year.
const MIN_SECS: i64 = -62_167_219_200;
/// `9999-12-31T23:59:59Z`: the latest instant whose rendering has a four-digit year.
const MAX_SECS: i64 = 253_402_300_799;

/// The instant before which sessions are denied: whole seconds, UTC, years 0000–9999, so
/// that it always renders as the `2026-11-23T12:00:00Z` form IAM and the console use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Cutoff(DateTime<Utc>);

impl Cutoff {
    /// The cutoff to write at `now`: `now` itself when it is a whole second, else the next
    /// whole second, so that a session minted in the same second as the write is still
    /// denied. Saturates at year 9999 (a clock past that is not a clock).
    pub fn at_or_after(now: DateTime<Utc>) -> Self {
        let secs = ceil_secs(now).clamp(MIN_SECS, MAX_SECS);
        // Cannot fail inside the clamped range; were it ever to, the latest instant is the
        // conservative answer (a later cutoff denies more, never less).
        Self::from_secs(secs).unwrap_or(Self(DateTime::<Utc>::MAX_UTC))
    }

    /// Reads a cutoff as IAM and the console write it: RFC 3339 with `Z` or an offset,
    /// with or without fractional seconds, kept exactly. Kept, a merge that finds it
    /// later than the new cutoff leaves it as it is (never lowered); read down for
    /// coverage ([`Cutoff::covers`]), it is never taken to deny more than IAM does.
    pub fn parse(input: &str) -> Result<Self, InvalidValue> {
        let parsed = DateTime::parse_from_rfc3339(input).map_err(|_| {
            InvalidValue::new(
                "cutoff",
                input,
                "a cutoff is an RFC 3339 time such as 2026-11-23T12:00:00Z",
            )
        })?;
        let exact = parsed.to_utc();
        if !(MIN_SECS..=MAX_SECS).contains(&exact.timestamp()) {
            return Err(InvalidValue::new(
                "cutoff",
                input,
                "a cutoff lies between the years 0000 and 9999 in UTC",
            ));
        }
        Ok(Self(exact))
    }

    pub fn as_datetime(self) -> DateTime<Utc> {
        self.0
    }

    /// Whether a session issued at or before `issued_at` is certainly denied, so that
    /// no new write is needed for it. `DateLessThan` is strict (a session issued exactly
    /// at the cutoff is allowed) and `aws:TokenIssueTime` has second resolution, so a
    /// cutoff with a fraction (the console writes milliseconds) counts here only from
    /// its whole second: rounded down, it never claims a session IAM lets through.
    pub fn covers(self, issued_at: DateTime<Utc>) -> bool {
        // `timestamp()` is the whole second at or before the instant.
        DateTime::from_timestamp(self.0.timestamp(), 0).is_some_and(|whole| issued_at < whole)
    }

    /// Whether the cutoff has a fraction of a second (one read from a document the
    /// console wrote); cutoff writes whole seconds only.
    pub fn is_whole_second(self) -> bool {
        self.0.timestamp_subsec_nanos() == 0
    }

    fn from_secs(secs: i64) -> Option<Self> {
        if !(MIN_SECS..=MAX_SECS).contains(&secs) {
            return None;
        }
        DateTime::from_timestamp(secs, 0).map(Self)
    }
}

/// Seconds since the epoch, rounded up. chrono represents a leap second as a nanosecond
/// count of 1e9 or more, which also rounds up here.
fn ceil_secs(t: DateTime<Utc>) -> i64 {
    let secs = t.timestamp();
    if t.timestamp_subsec_nanos() > 0 {
        secs.saturating_add(1)
    } else {
        secs
    }
}

impl fmt::Display for Cutoff {
    /// `2026-11-23T12:00:00Z`, or with the fraction a document held
    /// (`2026-11-23T12:00:00.500Z`): a cutoff is shown and written back exactly.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_whole_second() {
            write!(f, "{}", self.0.format("%Y-%m-%dT%H:%M:%SZ"))
        } else {
            f.write_str(&self.0.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
        }
    }
}

impl FromStr for Cutoff {
    type Err = InvalidValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<String> for Cutoff {
    type Error = InvalidValue;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<Cutoff> for String {
    fn from(c: Cutoff) -> String {
        c.to_string()
    }
}

impl From<Cutoff> for DateTime<Utc> {
    fn from(c: Cutoff) -> DateTime<Utc> {
        c.0
    }
}

// ---------------------------------------------------------------------------------------
// Session principal
// ---------------------------------------------------------------------------------------

/// One role session as `aws:userid` names it: `<RoleId>:<session name>`. The RoleId (not
/// the role name) is what IAM puts there, so a deny keyed on it cannot be dodged by
/// deleting and recreating the role under the same name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SessionPrincipal {
    pub role_id: UniqueId,
    pub session: SessionName,
}

impl SessionPrincipal {
    pub fn new(role_id: UniqueId, session: SessionName) -> Self {
        Self { role_id, session }
    }

    /// Parses an `aws:userid` value of a role session. Neither part can contain `:`, so
    /// the first one is the separator.
    pub fn parse(input: &str) -> Result<Self, InvalidValue> {
        let (role_id, session) = input.split_once(':').ok_or_else(|| {
            InvalidValue::new(
                "session principal",
                input,
                "a role session's aws:userid is <RoleId>:<session name>",
            )
        })?;
        Ok(Self {
            role_id: UniqueId::parse(role_id)?,
            session: SessionName::parse(session)?,
        })
    }
}

impl fmt::Display for SessionPrincipal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.role_id, self.session)
    }
}

impl FromStr for SessionPrincipal {
    type Err = InvalidValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<String> for SessionPrincipal {
    type Error = InvalidValue;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<SessionPrincipal> for String {
    fn from(p: SessionPrincipal) -> String {
        p.to_string()
    }
}

// ---------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------

/// Why a policy document could not be read. Messages never quote more than a bounded,
/// escaped excerpt of the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("policy document is too large: {len} bytes, the limit is {limit}")]
    TooLarge { len: usize, limit: usize },
    #[error("policy document is not valid url-encoded utf-8: {why}, at {excerpt}")]
    Encoding { why: &'static str, excerpt: String },
    #[error("policy document is not json: {message}")]
    NotJson { message: String },
    #[error("policy document is not a json object but {found}")]
    NotObject { found: &'static str },
    #[error("policy document has no statement")]
    MissingStatement,
    #[error("policy document has an invalid statement: {why}")]
    InvalidStatement { why: String },
    #[error("policy document is nested {depth} levels deep; IAM documents are at most {limit}")]
    TooDeep { depth: usize, limit: usize },
}

/// How deep a document may nest. IAM's grammar needs six (document, statement list,
/// statement, condition, operator, key, value list); the margin keeps odd but valid
/// documents readable, and the bound keeps every document we write (one level deeper
/// when a single statement becomes a list) within serde_json's recursion limit.
pub const MAX_DOCUMENT_DEPTH: usize = 32;

/// The nesting depth of a JSON value (a scalar is 0), stopping early past `limit`.
fn depth(value: &Value, limit: usize) -> usize {
    let mut deepest = 0;
    let mut stack: Vec<(&Value, usize)> = vec![(value, 0)];
    while let Some((v, d)) = stack.pop() {
        let children: Box<dyn Iterator<Item = &Value>> = match v {
            Value::Array(items) => Box::new(items.iter()),
            Value::Object(members) => Box::new(members.values()),
            _ => continue,
        };
        let d = d + 1;
        deepest = deepest.max(d);
        if deepest > limit {
            return deepest;
        }
        stack.extend(children.map(|c| (c, d)));
    }
    deepest
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

// ---------------------------------------------------------------------------------------
// Statements
// ---------------------------------------------------------------------------------------

/// What a statement is to cutoff.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatementKind {
    /// A role-wide revocation (ours or the console's) with its cutoff.
    RoleWide(Cutoff),
    /// A session-scoped revocation with the session it targets and its cutoff.
    Session(SessionPrincipal, Cutoff),
    /// Anything else: kept exactly as it is.
    Foreign,
}

/// Classifies one statement. Only the exact revocation shapes are ours: `Deny`, action and
/// resource `*` (or `["*"]`), an optional string `Sid`, no other element, and a condition
/// that is exactly `DateLessThan aws:TokenIssueTime` (role-wide) or that plus
/// `StringEquals aws:userid` (session). Condition keys match case-insensitively, as IAM
/// matches them; element and operator names are case-sensitive, as in IAM.
pub fn classify_statement(statement: &Value) -> StatementKind {
    classify(statement).unwrap_or(StatementKind::Foreign)
}

fn classify(statement: &Value) -> Option<StatementKind> {
    let object = statement.as_object()?;
    let only_known_elements = object.keys().all(|k| {
        matches!(
            k.as_str(),
            "Sid" | "Effect" | "Action" | "Resource" | "Condition"
        )
    });
    if !only_known_elements {
        return None;
    }
    if let Some(sid) = object.get("Sid")
        && !sid.is_string()
    {
        return None;
    }
    if object.get("Effect")?.as_str()? != "Deny"
        || !is_wildcard(object.get("Action")?)
        || !is_wildcard(object.get("Resource")?)
    {
        return None;
    }
    let condition = object.get("Condition")?.as_object()?;
    let cutoff = single_condition(condition, DATE_LESS_THAN, TOKEN_ISSUE_TIME)?;
    let cutoff = Cutoff::parse(cutoff).ok()?;
    match condition.len() {
        1 => Some(StatementKind::RoleWide(cutoff)),
        2 => {
            let user_id = single_condition(condition, STRING_EQUALS, USER_ID)?;
            let principal = SessionPrincipal::parse(user_id).ok()?;
            Some(StatementKind::Session(principal, cutoff))
        }
        _ => None,
    }
}

fn is_wildcard(value: &Value) -> bool {
    single_string(value) == Some("*")
}

/// A string, or an array holding exactly one string: IAM treats them alike.
fn single_string(value: &Value) -> Option<&str> {
    match value {
        Value::String(s) => Some(s),
        Value::Array(items) => match items.as_slice() {
            [Value::String(s)] => Some(s),
            _ => None,
        },
        _ => None,
    }
}

/// The single value of `operator: { key: value }`, when the operator block holds exactly
/// that one key.
fn single_condition<'a>(
    condition: &'a Map<String, Value>,
    operator: &str,
    key: &str,
) -> Option<&'a str> {
    let block = condition.get(operator)?.as_object()?;
    if block.len() != 1 {
        return None;
    }
    let (name, value) = block.iter().next()?;
    if !name.eq_ignore_ascii_case(key) {
        return None;
    }
    single_string(value)
}

fn sid_of(statement: &Value) -> Option<&str> {
    statement.get("Sid").and_then(Value::as_str)
}

/// The role-wide statement cutoff writes.
pub fn role_wide_statement(cutoff: Cutoff) -> Value {
    role_wide_statement_with_sid(cutoff, Some(ROLE_WIDE_SID))
}

fn role_wide_statement_with_sid(cutoff: Cutoff, sid: Option<&str>) -> Value {
    let mut statement = Map::new();
    if let Some(sid) = sid {
        statement.insert("Sid".to_owned(), Value::from(sid));
    }
    statement.insert("Effect".to_owned(), Value::from("Deny"));
    statement.insert("Action".to_owned(), Value::from("*"));
    statement.insert("Resource".to_owned(), Value::from("*"));
    statement.insert(
        "Condition".to_owned(),
        json!({ DATE_LESS_THAN: { TOKEN_ISSUE_TIME: cutoff.to_string() } }),
    );
    Value::Object(statement)
}

/// The session-scoped statement cutoff writes. It has no `Sid`: IAM wants Sids unique
/// and alphanumeric, and a session name is neither; the condition identifies it anyway.
pub fn session_statement(principal: &SessionPrincipal, cutoff: Cutoff) -> Value {
    json!({
        "Effect": "Deny",
        "Action": "*",
        "Resource": "*",
        "Condition": {
            STRING_EQUALS: { USER_ID: principal.to_string() },
            DATE_LESS_THAN: { TOKEN_ISSUE_TIME: cutoff.to_string() },
        },
    })
}

// ---------------------------------------------------------------------------------------
// Documents
// ---------------------------------------------------------------------------------------

/// A parsed IAM policy document. Top-level members keep their order; `Statement` is
/// always held as an array of objects (IAM also accepts a single object, and writing the
/// array form is equivalent).
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyDocument {
    members: Map<String, Value>,
}

impl PolicyDocument {
    /// Parses a document as IAM returns it: raw JSON, or URL-encoded JSON (what
    /// `GetRolePolicy` and `GetUserPolicy` return) when the text does not start with `{`.
    pub fn parse(text: &str) -> Result<Self, PolicyError> {
        if text.len() > MAX_DOCUMENT_BYTES {
            return Err(PolicyError::TooLarge {
                len: text.len(),
                limit: MAX_DOCUMENT_BYTES,
            });
        }
        let json = decode_policy_text(text)?;
        let StrictValue(value) = serde_json::from_str(&json).map_err(|e| PolicyError::NotJson {
            message: bounded(&e.to_string()),
        })?;

        let mut members = match value {
            Value::Object(members) => members,
            other => {
                return Err(PolicyError::NotObject {
                    found: kind_of(&other),
                });
            }
        };
        let statement = members
            .get_mut(STATEMENT)
            .ok_or(PolicyError::MissingStatement)?;
        match &*statement {
            Value::Object(_) => {}
            Value::Array(items) => {
                if let Some((index, item)) = items.iter().enumerate().find(|(_, s)| !s.is_object())
                {
                    return Err(PolicyError::InvalidStatement {
                        why: format!("statement {index} is {}, not an object", kind_of(item)),
                    });
                }
            }
            other => {
                return Err(PolicyError::InvalidStatement {
                    why: format!(
                        "expected an object or an array of objects, found {}",
                        kind_of(other)
                    ),
                });
            }
        }
        if statement.is_object() {
            let single = statement.take();
            *statement = Value::Array(vec![single]);
        }
        // Measured as it will be written (a single statement becomes a list), so that
        // whatever is read can be written and read again.
        let nested = members
            .values()
            .map(|v| 1 + depth(v, MAX_DOCUMENT_DEPTH))
            .max()
            .unwrap_or(1);
        if nested > MAX_DOCUMENT_DEPTH {
            return Err(PolicyError::TooDeep {
                depth: nested,
                limit: MAX_DOCUMENT_DEPTH,
            });
        }
        Ok(Self { members })
    }

    /// A new document with the given statements.
    pub fn new(statements: Vec<Value>) -> Self {
        let mut members = Map::new();
        members.insert(VERSION.to_owned(), Value::from(POLICY_VERSION));
        members.insert(STATEMENT.to_owned(), Value::Array(statements));
        Self { members }
    }

    /// Compact JSON: what gets written to IAM.
    pub fn to_json(&self) -> String {
        Value::Object(self.members.clone()).to_string()
    }

    /// Indented JSON, for people.
    pub fn to_pretty_json(&self) -> String {
        format!("{:#}", Value::Object(self.members.clone()))
    }

    /// The size IAM charges for this document against a quota.
    pub fn size(&self) -> usize {
        policy_size(&self.to_json())
    }

    /// The `Version` member, if present and a string.
    pub fn version(&self) -> Option<&str> {
        self.members.get(VERSION).and_then(Value::as_str)
    }

    pub fn statements(&self) -> &[Value] {
        match self.members.get(STATEMENT) {
            Some(Value::Array(statements)) => statements,
            _ => &[],
        }
    }

    /// Statements that are neither role-wide nor session revocations.
    pub fn foreign_statements(&self) -> Vec<&Value> {
        self.statements()
            .iter()
            .filter(|s| classify_statement(s) == StatementKind::Foreign)
            .collect()
    }

    /// The role-wide cutoff in force: the latest over every role-wide statement.
    pub fn role_wide_cutoff(&self) -> Option<Cutoff> {
        self.statements()
            .iter()
            .filter_map(|s| match classify_statement(s) {
                StatementKind::RoleWide(cutoff) => Some(cutoff),
                _ => None,
            })
            .max()
    }

    /// The session cutoff in force for one session: the latest over its statements.
    pub fn session_cutoff(&self, principal: &SessionPrincipal) -> Option<Cutoff> {
        self.statements()
            .iter()
            .filter_map(|s| match classify_statement(s) {
                StatementKind::Session(p, cutoff) if &p == principal => Some(cutoff),
                _ => None,
            })
            .max()
    }

    /// Every session with a session-scoped deny, once each with its latest cutoff, in the
    /// order the sessions first appear.
    pub fn session_cutoffs(&self) -> Vec<(SessionPrincipal, Cutoff)> {
        let mut out: Vec<(SessionPrincipal, Cutoff)> = Vec::new();
        for statement in self.statements() {
            if let StatementKind::Session(principal, cutoff) = classify_statement(statement) {
                match out.iter_mut().find(|(p, _)| *p == principal) {
                    Some((_, existing)) => *existing = (*existing).max(cutoff),
                    None => out.push((principal, cutoff)),
                }
            }
        }
        out
    }

    /// The same document (version, other members, their order) with other statements.
    fn with_statements(&self, statements: Vec<Value>) -> Self {
        let mut members = self.members.clone();
        // Inserting an existing key keeps its position in an order-preserving map.
        members.insert(STATEMENT.to_owned(), Value::Array(statements));
        Self { members }
    }
}

impl fmt::Display for PolicyDocument {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_json())
    }
}

/// A fresh `AWSRevokeOlderSessions` document holding one role-wide deny.
pub fn role_wide_document(cutoff: Cutoff) -> PolicyDocument {
    PolicyDocument::new(vec![role_wide_statement(cutoff)])
}

/// A fresh `CutoffRevokedSessions` document holding one session deny.
pub fn session_document(principal: &SessionPrincipal, cutoff: Cutoff) -> PolicyDocument {
    PolicyDocument::new(vec![session_statement(principal, cutoff)])
}

/// The JSON text of a document as IAM returns it: URL-decoded unless it already starts
/// with `{`. A `%` not followed by two hex digits is an error rather than passed through,
/// since IAM's encoding never produces one; `+` is a literal plus (IAM encodes spaces
/// as `%20`).
pub fn decode_policy_text(text: &str) -> Result<String, PolicyError> {
    let trimmed = text.trim();
    if trimmed.starts_with('{') {
        return Ok(trimmed.to_owned());
    }
    let bytes = trimmed.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = |j: usize| bytes.get(j).is_some_and(u8::is_ascii_hexdigit);
            if !(hex(i + 1) && hex(i + 2)) {
                return Err(PolicyError::Encoding {
                    why: "a % is not followed by two hex digits",
                    excerpt: excerpt(trimmed.get(i..).unwrap_or_default()),
                });
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    percent_encoding::percent_decode(bytes)
        .decode_utf8()
        .map(|decoded| decoded.into_owned())
        .map_err(|_| PolicyError::Encoding {
            why: "the decoded bytes are not utf-8",
            excerpt: excerpt(trimmed),
        })
}

/// serde_json's messages are fixed phrases plus a position and our own bounded
/// excerpts; the cap is a second guard so an error can never carry a document.
fn bounded(message: &str) -> String {
    const MAX: usize = 200;
    if message.chars().count() <= MAX {
        message.to_owned()
    } else {
        let mut cut: String = message.chars().take(MAX).collect();
        cut.push('…');
        cut
    }
}

// ---------------------------------------------------------------------------------------
// Merge
// ---------------------------------------------------------------------------------------

/// The result of adding a role-wide cutoff to a document.
#[derive(Debug, Clone, PartialEq)]
pub struct RoleWideMerge {
    /// The document to write. When `changed` is false this is the existing document,
    /// untouched: what IAM already holds.
    pub document: PolicyDocument,
    /// The cutoff in force after the merge: `max(existing, new)`.
    pub cutoff: Cutoff,
    /// The cutoff in force before, if any.
    pub previous: Option<Cutoff>,
    /// Whether there is anything to write.
    pub changed: bool,
}

/// Adds a role-wide cutoff, never lowering one. All role-wide statements (the console's
/// included) collapse into one with the latest cutoff, at the position of the first (or
/// appended); every other statement and member is kept as it is, in order. When the
/// existing cutoff already covers `new`, nothing changes and nothing should be written.
pub fn merge_role_wide(existing: Option<&PolicyDocument>, new: Cutoff) -> RoleWideMerge {
    let Some(existing) = existing else {
        return RoleWideMerge {
            document: role_wide_document(new),
            cutoff: new,
            previous: None,
            changed: true,
        };
    };
    let previous = existing.role_wide_cutoff();
    if let Some(previous) = previous
        && previous >= new
    {
        return RoleWideMerge {
            document: existing.clone(),
            cutoff: previous,
            previous: Some(previous),
            changed: false,
        };
    }
    // IAM wants Sids unique within a policy; should a foreign statement already use ours,
    // ours goes without one (the shape, not the Sid, is what identifies it).
    let sid_taken = existing.statements().iter().any(|s| {
        !matches!(classify_statement(s), StatementKind::RoleWide(_))
            && sid_of(s).is_some_and(|sid| sid.eq_ignore_ascii_case(ROLE_WIDE_SID))
    });
    let ours = role_wide_statement_with_sid(new, (!sid_taken).then_some(ROLE_WIDE_SID));
    let statements = replace_matching(existing.statements(), ours, |s| {
        matches!(classify_statement(s), StatementKind::RoleWide(_))
    });
    RoleWideMerge {
        document: existing.with_statements(statements),
        cutoff: new,
        previous,
        changed: true,
    }
}

/// The result of adding a session cutoff to a document.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionMerge {
    /// The document to write; the existing one untouched when `changed` is false.
    pub document: PolicyDocument,
    pub principal: SessionPrincipal,
    /// The cutoff in force for this session after the merge: `max(existing, new)`.
    pub cutoff: Cutoff,
    /// The cutoff in force for this session before, if any.
    pub previous: Option<Cutoff>,
    /// Whether there is anything to write.
    pub changed: bool,
}

/// Adds a session-scoped cutoff, never lowering one: one statement per session with its
/// latest cutoff, at the position of its first statement (or appended). Other sessions'
/// statements, role-wide statements and foreign statements are kept as they are.
pub fn merge_session(
    existing: Option<&PolicyDocument>,
    principal: &SessionPrincipal,
    new: Cutoff,
) -> SessionMerge {
    let Some(existing) = existing else {
        return SessionMerge {
            document: session_document(principal, new),
            principal: principal.clone(),
            cutoff: new,
            previous: None,
            changed: true,
        };
    };
    let previous = existing.session_cutoff(principal);
    if let Some(previous) = previous
        && previous >= new
    {
        return SessionMerge {
            document: existing.clone(),
            principal: principal.clone(),
            cutoff: previous,
            previous: Some(previous),
            changed: false,
        };
    }
    let statements = replace_matching(
        existing.statements(),
        session_statement(principal, new),
        |s| matches!(classify_statement(s), StatementKind::Session(p, _) if &p == principal),
    );
    SessionMerge {
        document: existing.with_statements(statements),
        principal: principal.clone(),
        cutoff: new,
        previous,
        changed: true,
    }
}

/// Replaces every statement `selected` picks by one `replacement`, placed where the first
/// was, or appended when none was.
fn replace_matching(
    statements: &[Value],
    replacement: Value,
    selected: impl Fn(&Value) -> bool,
) -> Vec<Value> {
    let mut out = Vec::with_capacity(statements.len() + 1);
    let mut replacement = Some(replacement);
    for statement in statements {
        if selected(statement) {
            if let Some(ours) = replacement.take() {
                out.push(ours);
            }
        } else {
            out.push(statement.clone());
        }
    }
    if let Some(ours) = replacement {
        out.push(ours);
    }
    out
}

// ---------------------------------------------------------------------------------------
// Removal
// ---------------------------------------------------------------------------------------

/// The result of removing role-wide revocations.
#[derive(Debug, Clone, PartialEq)]
pub struct Removal {
    /// The document to write, or `None` when no statement is left (delete the policy:
    /// IAM does not accept a document without statements).
    pub remaining: Option<PolicyDocument>,
    /// The cutoffs of the statements removed; empty means there is nothing to do.
    pub removed: Vec<Cutoff>,
}

impl Removal {
    pub fn changed(&self) -> bool {
        !self.removed.is_empty()
    }
}

/// The result of removing session revocations.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionRemoval {
    /// The document to write, or `None` when no statement is left (delete the policy).
    pub remaining: Option<PolicyDocument>,
    /// The sessions and cutoffs of the statements removed; empty means nothing to do.
    pub removed: Vec<(SessionPrincipal, Cutoff)>,
}

impl SessionRemoval {
    pub fn changed(&self) -> bool {
        !self.removed.is_empty()
    }
}

/// Removes every role-wide revocation (release). Everything else stays.
pub fn remove_role_wide(document: &PolicyDocument) -> Removal {
    let (remaining, removed) = remove_where(document, |s| match classify_statement(s) {
        StatementKind::RoleWide(cutoff) => Some(cutoff),
        _ => None,
    });
    Removal { remaining, removed }
}

/// Removes role-wide revocations whose cutoff is before `threshold`. With `threshold` =
/// now minus the longest possible session, such a statement can no longer match a live
/// session: every session it denies has expired anyway.
pub fn remove_role_wide_older_than(document: &PolicyDocument, threshold: DateTime<Utc>) -> Removal {
    let (remaining, removed) = remove_where(document, |s| match classify_statement(s) {
        StatementKind::RoleWide(cutoff) if cutoff.as_datetime() < threshold => Some(cutoff),
        _ => None,
    });
    Removal { remaining, removed }
}

/// Removes the session revocations of one session (release of a session scope).
pub fn remove_session(document: &PolicyDocument, principal: &SessionPrincipal) -> SessionRemoval {
    let (remaining, removed) = remove_where(document, |s| match classify_statement(s) {
        StatementKind::Session(p, cutoff) if &p == principal => Some((p, cutoff)),
        _ => None,
    });
    SessionRemoval { remaining, removed }
}

/// Removes session revocations whose cutoff is before `threshold` (see
/// [`remove_role_wide_older_than`] for why that is safe).
pub fn remove_sessions_older_than(
    document: &PolicyDocument,
    threshold: DateTime<Utc>,
) -> SessionRemoval {
    let (remaining, removed) = remove_where(document, |s| match classify_statement(s) {
        StatementKind::Session(p, cutoff) if cutoff.as_datetime() < threshold => Some((p, cutoff)),
        _ => None,
    });
    SessionRemoval { remaining, removed }
}

fn remove_where<T>(
    document: &PolicyDocument,
    select: impl Fn(&Value) -> Option<T>,
) -> (Option<PolicyDocument>, Vec<T>) {
    let mut kept = Vec::new();
    let mut removed = Vec::new();
    for statement in document.statements() {
        match select(statement) {
            Some(item) => removed.push(item),
            None => kept.push(statement.clone()),
        }
    }
    let remaining = (!kept.is_empty()).then(|| document.with_statements(kept));
    (remaining, removed)
}

// ---------------------------------------------------------------------------------------
// Size
// ---------------------------------------------------------------------------------------

/// The size IAM charges for a JSON policy text: its characters, whitespace not counted.
/// Only ASCII whitespace is discounted: a Unicode space inside a string may or may not be
/// discounted by IAM, and over-counting only ever means falling back to a managed policy
/// early, where under-counting means a write that fails.
pub fn policy_size(json_text: &str) -> usize {
    json_text
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .count()
}

/// The size of a policy as IAM stores it (for summing a principal's other inline
/// policies): the original text, URL-decoded, not a re-serialization of it, which could
/// differ in escapes.
pub fn stored_policy_size(text: &str) -> Result<usize, PolicyError> {
    if text.len() > MAX_DOCUMENT_BYTES {
        return Err(PolicyError::TooLarge {
            len: text.len(),
            limit: MAX_DOCUMENT_BYTES,
        });
    }
    decode_policy_text(text).map(|json| policy_size(&json))
}

/// A size quota and what other policies already use of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    pub limit: usize,
    pub used_by_other_policies: usize,
}

impl Budget {
    /// A role's inline quota, given the size of its other inline policies.
    pub fn role(used_by_other_policies: usize) -> Self {
        Self {
            limit: ROLE_INLINE_BUDGET,
            used_by_other_policies,
        }
    }

    /// A user's inline quota, given the size of its other inline policies.
    pub fn user(used_by_other_policies: usize) -> Self {
        Self {
            limit: USER_INLINE_BUDGET,
            used_by_other_policies,
        }
    }

    /// A managed policy's quota: each managed policy stands alone.
    pub fn managed() -> Self {
        Self {
            limit: MANAGED_POLICY_BUDGET,
            used_by_other_policies: 0,
        }
    }

    pub fn fits(&self, document_size: usize) -> bool {
        self.used_by_other_policies.saturating_add(document_size) <= self.limit
    }

    pub fn remaining(&self) -> usize {
        self.limit.saturating_sub(self.used_by_other_policies)
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_document_nested_past_iam_grammar_is_refused_and_one_at_the_bound_round_trips() {
        let nest = |levels: usize| {
            let mut v = "1".to_owned();
            for _ in 0..levels {
                v = format!("[{v}]");
            }
            format!(
                r#"{{"Version":"2012-10-17","Statement":{{"Effect":"Deny","Action":"*","Resource":"*","X":{v}}}}}"#
            )
        };
        // Document, statement list and statement around the value.
        let at_bound = PolicyDocument::parse(&nest(MAX_DOCUMENT_DEPTH - 3)).unwrap();
        assert_eq!(
            PolicyDocument::parse(&at_bound.to_json()).unwrap(),
            at_bound
        );
        let err = PolicyDocument::parse(&nest(MAX_DOCUMENT_DEPTH - 2)).unwrap_err();
        assert!(matches!(err, PolicyError::TooDeep { .. }), "{err}");
        // Far past serde_json's own limit: refused by the parser, never a panic.
        assert!(PolicyDocument::parse(&nest(200)).is_err());
    }
    use super::*;

    use chrono::{Duration, NaiveDateTime};
    use proptest::prelude::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().to_utc()
    }

    fn cutoff(s: &str) -> Cutoff {
        Cutoff::parse(s).unwrap()
    }

    fn principal(s: &str) -> SessionPrincipal {
        SessionPrincipal::parse(s).unwrap()
    }

    fn doc(text: &str) -> PolicyDocument {
        PolicyDocument::parse(text).unwrap()
    }

    fn compact(v: &Value) -> String {
        serde_json::to_string(v).unwrap()
    }

    const CONSOLE: &str = r#"{"Version":"2012-10-17","Statement":{"Effect":"Deny","Action":["*"],"Resource":["*"],"Condition":{"DateLessThan":{"aws:TokenIssueTime":"2024-03-01T10:20:30.123Z"}}}}"#;
    const ALLOW_S3: &str = r#"{"Sid":"ReadReports","Effect":"Allow","Action":["s3:GetObject"],"Resource":"arn:aws:s3:::reports/*"}"#;
    const DENY_MFA: &str = r#"{"Effect":"Deny","Action":"*","Resource":"*","Condition":{"BoolIfExists":{"aws:MultiFactorAuthPresent":"false"}}}"#;
    const NOT_ACTION: &str = r#"{"Sid":"OnlyIam","Effect":"Deny","NotAction":["iam:*","sts:GetCallerIdentity"],"Resource":"*","Condition":{"DateLessThan":{"aws:TokenIssueTime":"2030-01-01T00:00:00Z"}}}"#;
    const ROLE: &str = "AROAEXAMPLEID0000001";

    // --- constants and names -----------------------------------------------------------

    #[test]
    fn fallback_managed_policy_name_is_prefixed_and_within_iam_limits() {
        let name = PrincipalName::parse("payments-api").unwrap();
        assert_eq!(
            fallback_managed_policy_name(PrincipalType::Role, &name),
            "cutoff-revoke-role-payments-api"
        );
        assert_eq!(
            fallback_managed_policy_name(PrincipalType::User, &name),
            "cutoff-revoke-user-payments-api"
        );
        let longest = PrincipalName::parse(&"r".repeat(64)).unwrap();
        assert!(fallback_managed_policy_name(PrincipalType::User, &longest).len() <= 128);
    }

    #[test]
    fn a_role_and_a_user_of_one_name_have_their_own_fallbacks_and_the_legacy_name_is_known() {
        let name = PrincipalName::parse("ci").unwrap();
        let (role, user) = (
            fallback_managed_policy_name(PrincipalType::Role, &name),
            fallback_managed_policy_name(PrincipalType::User, &name),
        );
        assert_ne!(role, user);
        assert!(is_fallback_of(&role, PrincipalType::Role, &name));
        assert!(!is_fallback_of(&role, PrincipalType::User, &name));
        assert!(is_fallback_of(
            "cutoff-revoke-ci",
            PrincipalType::User,
            &name
        ));
        assert!(is_fallback_of(
            "cutoff-revoke-ci",
            PrincipalType::Role,
            &name
        ));
        assert!(!is_fallback_of(
            "cutoff-revoke-ci-2",
            PrincipalType::Role,
            &name
        ));
    }

    // --- cutoff ------------------------------------------------------------------------

    #[test]
    fn at_or_after_rounds_a_fraction_up_and_keeps_whole_seconds() {
        assert_eq!(
            Cutoff::at_or_after(at("2026-11-23T12:00:00.001Z")).to_string(),
            "2026-11-23T12:00:01Z"
        );
        assert_eq!(
            Cutoff::at_or_after(at("2026-11-23T12:00:00.000Z")).to_string(),
            "2026-11-23T12:00:00Z"
        );
        assert_eq!(
            Cutoff::at_or_after(at("2026-11-23T23:59:59.999999999Z")).to_string(),
            "2026-11-24T00:00:00Z"
        );
    }

    #[test]
    fn at_or_after_never_precedes_now() {
        let now = at("2026-11-23T12:00:00.5Z");
        assert!(Cutoff::at_or_after(now).as_datetime() >= now);
        assert!(!Cutoff::at_or_after(now).covers(now + Duration::seconds(1)));
        assert!(Cutoff::at_or_after(now).covers(now));
    }

    #[test]
    fn at_or_after_saturates_outside_four_digit_years() {
        assert_eq!(
            Cutoff::at_or_after(DateTime::<Utc>::MAX_UTC).to_string(),
            "9999-12-31T23:59:59Z"
        );
        assert_eq!(
            Cutoff::at_or_after(DateTime::<Utc>::MIN_UTC).to_string(),
            "0000-01-01T00:00:00Z"
        );
    }

    #[test]
    fn year_bounds_are_what_they_claim() {
        assert_eq!(
            DateTime::from_timestamp(MIN_SECS, 0),
            Some(at("0000-01-01T00:00:00Z"))
        );
        assert_eq!(
            DateTime::from_timestamp(MAX_SECS, 0),
            Some(at("9999-12-31T23:59:59Z"))
        );
    }

    #[test]
    fn cutoff_parses_what_iam_and_the_console_write() {
        assert_eq!(
            cutoff("2026-11-23T12:00:00Z").to_string(),
            "2026-11-23T12:00:00Z"
        );
        assert_eq!(
            cutoff("2026-11-23T12:00:00.000Z").to_string(),
            "2026-11-23T12:00:00Z"
        );
        assert_eq!(
            cutoff("2026-11-23T12:00:00.123Z").to_string(),
            "2026-11-23T12:00:00.123Z",
            "a console cutoff is kept exactly, never rounded"
        );
        assert_eq!(
            cutoff("2026-11-23T12:00:00+00:00").to_string(),
            "2026-11-23T12:00:00Z"
        );
        assert_eq!(
            cutoff("2026-11-23T14:00:00+02:00").to_string(),
            "2026-11-23T12:00:00Z"
        );
        assert_eq!(
            cutoff("2026-11-23T07:30:00-04:30").to_string(),
            "2026-11-23T12:00:00Z"
        );
    }

    #[test]
    fn cutoff_rejects_anything_else_with_a_bounded_message() {
        for bad in [
            "",
            "yesterday",
            "2026-11-23",
            "2026-11-23T12:00:00",
            "1763899200",
            "2026-13-01T00:00:00Z",
            " 2026-11-23T12:00:00Z",
            "0000-01-01T00:30:00+01:00",
        ] {
            assert!(Cutoff::parse(bad).is_err(), "{bad:?} accepted");
        }
        let err = Cutoff::parse(&"9".repeat(100_000)).unwrap_err().to_string();
        assert!(err.len() < 300, "{err}");
    }

    #[test]
    fn cutoff_serializes_as_the_iam_string() {
        let c = cutoff("2026-11-23T12:00:00Z");
        assert_eq!(
            serde_json::to_string(&c).unwrap(),
            r#""2026-11-23T12:00:00Z""#
        );
        assert_eq!(
            serde_json::from_str::<Cutoff>(r#""2026-11-23T12:00:00Z""#).unwrap(),
            c
        );
        assert!(serde_json::from_str::<Cutoff>(r#""soon""#).is_err());
    }

    #[test]
    fn cutoffs_order_by_time() {
        assert!(cutoff("2026-11-23T12:00:00Z") < cutoff("2026-11-23T12:00:01Z"));
        assert!(cutoff("2026-11-23T14:00:00+02:00") == cutoff("2026-11-23T12:00:00Z"));
    }

    // --- session principal ---------------------------------------------------------------

    #[test]
    fn session_principal_is_role_id_colon_session() {
        let p = principal("AROAEXAMPLEID0000001:i-0123456789abcdef0");
        assert_eq!(p.role_id.as_str(), ROLE);
        assert_eq!(p.session.as_str(), "i-0123456789abcdef0");
        assert_eq!(p.to_string(), "AROAEXAMPLEID0000001:i-0123456789abcdef0");
        for bad in [
            "AROAEXAMPLEID0000001",
            "short:session",
            "AROAEXAMPLEID0000001:x",
            ":s1",
            "AROAEXAMPLEID0000001:a:b",
        ] {
            assert!(SessionPrincipal::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    // --- builders --------------------------------------------------------------------------

    #[test]
    fn role_wide_document_is_byte_exact() {
        let d = role_wide_document(cutoff("2026-11-23T12:00:00Z"));
        assert_eq!(
            d.to_json(),
            r#"{"Version":"2012-10-17","Statement":[{"Sid":"RevokeOlderSessions","Effect":"Deny","Action":"*","Resource":"*","Condition":{"DateLessThan":{"aws:TokenIssueTime":"2026-11-23T12:00:00Z"}}}]}"#
        );
        assert_eq!(d.to_string(), d.to_json());
    }

    #[test]
    fn session_document_is_byte_exact() {
        let d = session_document(
            &principal("AROAEXAMPLEID0000001:i-0123456789abcdef0"),
            cutoff("2026-11-23T12:00:00Z"),
        );
        assert_eq!(
            d.to_json(),
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":"*","Resource":"*","Condition":{"StringEquals":{"aws:userid":"AROAEXAMPLEID0000001:i-0123456789abcdef0"},"DateLessThan":{"aws:TokenIssueTime":"2026-11-23T12:00:00Z"}}}]}"#
        );
    }

    #[test]
    fn built_documents_are_recognised_as_ours() {
        let c = cutoff("2026-11-23T12:00:00Z");
        assert_eq!(role_wide_document(c).role_wide_cutoff(), Some(c));
        let p = principal("AROAEXAMPLEID0000001:alice@example.com");
        let d = session_document(&p, c);
        assert_eq!(d.session_cutoffs(), vec![(p.clone(), c)]);
        assert_eq!(d.session_cutoff(&p), Some(c));
        assert_eq!(
            d.role_wide_cutoff(),
            None,
            "a session deny is not role-wide"
        );
        assert!(d.foreign_statements().is_empty());
    }

    // --- parsing ---------------------------------------------------------------------------

    #[test]
    fn console_shape_is_recognised_and_its_cutoff_kept_exactly() {
        let d = doc(CONSOLE);
        assert_eq!(
            d.role_wide_cutoff(),
            Some(cutoff("2024-03-01T10:20:30.123Z"))
        );
        assert_eq!(d.statements().len(), 1);
        assert_eq!(d.version(), Some("2012-10-17"));
    }

    #[test]
    fn console_pretty_printed_document_is_recognised() {
        let pretty = "{\n  \"Version\": \"2012-10-17\",\n  \"Statement\": {\n    \"Effect\": \"Deny\",\n    \"Action\": \"*\",\n    \"Resource\": \"*\",\n    \"Condition\": {\n      \"DateLessThan\": {\"aws:TokenIssueTime\": \"2014-05-07T23:47:00Z\"}\n    }\n  }\n}\n";
        assert_eq!(
            doc(pretty).role_wide_cutoff(),
            Some(cutoff("2014-05-07T23:47:00Z"))
        );
    }

    #[test]
    fn url_encoded_documents_decode() {
        let encoded = "%7B%22Version%22%3A%222012-10-17%22%2C%22Statement%22%3A%7B%22Effect%22%3A%22Deny%22%2C%22Action%22%3A%5B%22%2A%22%5D%2C%22Resource%22%3A%5B%22%2A%22%5D%2C%22Condition%22%3A%7B%22DateLessThan%22%3A%7B%22aws%3ATokenIssueTime%22%3A%222024-03-01T10%3A20%3A30.123Z%22%7D%7D%7D%7D";
        let d = doc(encoded);
        assert_eq!(
            d.role_wide_cutoff(),
            Some(cutoff("2024-03-01T10:20:30.123Z"))
        );

        let with_newlines = percent_encoding::utf8_percent_encode(
            "\n{\n  \"Version\": \"2012-10-17\",\n  \"Statement\": []\n}",
            percent_encoding::NON_ALPHANUMERIC,
        )
        .to_string();
        assert!(doc(&with_newlines).statements().is_empty());
    }

    #[test]
    fn a_plus_in_an_encoded_document_stays_a_plus() {
        let raw = r#"{"Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::a+b/*"}]}"#;
        let encoded = raw
            .replace('{', "%7B")
            .replace('}', "%7D")
            .replace('"', "%22");
        assert_eq!(doc(&encoded).to_json(), raw);
    }

    #[test]
    fn raw_json_is_never_url_decoded() {
        let raw = r#"{"Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::a%41b/*"}]}"#;
        assert_eq!(doc(raw).to_json(), raw);
    }

    #[test]
    fn action_and_resource_may_be_strings_or_single_element_arrays() {
        for (action, resource) in [
            (r#""*""#, r#""*""#),
            (r#"["*"]"#, r#""*""#),
            (r#""*""#, r#"["*"]"#),
        ] {
            let text = format!(
                r#"{{"Statement":[{{"Effect":"Deny","Action":{action},"Resource":{resource},"Condition":{{"DateLessThan":{{"aws:TokenIssueTime":"2026-01-01T00:00:00Z"}}}}}}]}}"#
            );
            assert_eq!(
                doc(&text).role_wide_cutoff(),
                Some(cutoff("2026-01-01T00:00:00Z"))
            );
        }
    }

    #[test]
    fn condition_keys_match_case_insensitively_and_values_may_be_arrays() {
        let text = r#"{"Statement":[{"Effect":"Deny","Action":"*","Resource":"*","Condition":{"DateLessThan":{"AWS:tokenissuetime":["2026-01-01T00:00:00Z"]}}}]}"#;
        assert_eq!(
            doc(text).role_wide_cutoff(),
            Some(cutoff("2026-01-01T00:00:00Z"))
        );
        let session = r#"{"Statement":[{"Effect":"Deny","Action":["*"],"Resource":"*","Condition":{"DateLessThan":{"aws:TokenIssueTime":"2026-01-01T00:00:00Z"},"StringEquals":{"AWS:UserId":["AROAEXAMPLEID0000001:s1"]}}}]}"#;
        assert_eq!(
            doc(session).session_cutoffs(),
            vec![(
                principal("AROAEXAMPLEID0000001:s1"),
                cutoff("2026-01-01T00:00:00Z")
            )]
        );
    }

    #[test]
    fn near_misses_of_our_shape_are_foreign() {
        let ours = json!({"Effect":"Deny","Action":"*","Resource":"*","Condition":{"DateLessThan":{"aws:TokenIssueTime":"2026-01-01T00:00:00Z"}}});
        assert_eq!(
            classify_statement(&ours),
            StatementKind::RoleWide(cutoff("2026-01-01T00:00:00Z"))
        );
        let mutate = |f: &dyn Fn(&mut Map<String, Value>)| {
            let mut s = ours.clone();
            f(s.as_object_mut().unwrap());
            s
        };
        let misses = [
            mutate(&|s| {
                s.insert("Effect".into(), json!("Allow"));
            }),
            mutate(&|s| {
                s.insert("Effect".into(), json!("deny"));
            }),
            mutate(&|s| {
                s.insert("Action".into(), json!("s3:*"));
            }),
            mutate(&|s| {
                s.insert("Action".into(), json!(["*", "*"]));
            }),
            mutate(&|s| {
                s.insert("Resource".into(), json!("arn:aws:s3:::*"));
            }),
            mutate(&|s| {
                s.remove("Action");
                s.insert("NotAction".into(), json!("iam:*"));
            }),
            mutate(&|s| {
                s.insert("NotResource".into(), json!("*"));
            }),
            mutate(&|s| {
                s.insert("Principal".into(), json!("*"));
            }),
            mutate(&|s| {
                s.insert("Sid".into(), json!(7));
            }),
            mutate(&|s| {
                s.remove("Condition");
            }),
            mutate(&|s| {
                s.insert(
                    "Condition".into(),
                    json!({"DateGreaterThan":{"aws:TokenIssueTime":"2026-01-01T00:00:00Z"}}),
                );
            }),
            mutate(&|s| {
                s.insert(
                    "Condition".into(),
                    json!({"datelessthan":{"aws:TokenIssueTime":"2026-01-01T00:00:00Z"}}),
                );
            }),
            mutate(&|s| {
                s.insert("Condition".into(), json!({"DateLessThan":{"aws:TokenIssueTime":"2026-01-01T00:00:00Z","aws:CurrentTime":"2027-01-01T00:00:00Z"}}));
            }),
            mutate(&|s| {
                s.insert("Condition".into(), json!({"DateLessThan":{"aws:TokenIssueTime":["2026-01-01T00:00:00Z","2027-01-01T00:00:00Z"]}}));
            }),
            mutate(&|s| {
                s.insert(
                    "Condition".into(),
                    json!({"DateLessThan":{"aws:TokenIssueTime":"yesterday"}}),
                );
            }),
            mutate(&|s| {
                s.insert("Condition".into(), json!({"DateLessThan":{"aws:TokenIssueTime":"2026-01-01T00:00:00Z"},"Bool":{"aws:SecureTransport":"true"}}));
            }),
            mutate(&|s| {
                s.insert("Condition".into(), json!({"DateLessThan":{"aws:TokenIssueTime":"2026-01-01T00:00:00Z"},"StringEquals":{"aws:userid":"AIDAEXAMPLEUSERID001"}}));
            }),
            mutate(&|s| {
                s.insert("Condition".into(), json!({"DateLessThan":{"aws:TokenIssueTime":"2026-01-01T00:00:00Z"},"StringLike":{"aws:userid":"AROAEXAMPLEID0000001:*"}}));
            }),
            mutate(&|s| {
                s.insert("Condition".into(), json!({"DateLessThan":{"aws:TokenIssueTime":"2026-01-01T00:00:00Z"},"StringEquals":{"aws:userid":["AROAEXAMPLEID0000001:s1","AROAEXAMPLEID0000001:s2"]}}));
            }),
            json!("not an object"),
        ];
        for miss in misses {
            assert_eq!(classify_statement(&miss), StatementKind::Foreign, "{miss}");
        }
    }

    #[test]
    fn sid_is_optional_and_any_string_sid_is_accepted() {
        let text = r#"{"Statement":[{"Sid":"ManualBreakGlass","Effect":"Deny","Action":"*","Resource":"*","Condition":{"DateLessThan":{"aws:TokenIssueTime":"2026-01-01T00:00:00Z"}}}]}"#;
        assert_eq!(
            doc(text).role_wide_cutoff(),
            Some(cutoff("2026-01-01T00:00:00Z"))
        );
    }

    #[test]
    fn top_level_members_and_their_order_survive() {
        let text = r#"{"Id":"team-policy","Statement":[],"Version":"2008-10-17"}"#;
        assert_eq!(doc(text).to_json(), text);
        assert_eq!(doc(text).version(), Some("2008-10-17"));
    }

    // --- hostile input -----------------------------------------------------------------------

    #[test]
    fn hostile_inputs_give_errors_not_panics() {
        let deep_arrays = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        let deep_objects = format!("{}1{}", r#"{"a":"#.repeat(10_000), "}".repeat(10_000));
        let deep_statement = format!(
            r#"{{"Statement":[{{"Condition":{}{}}}]}}"#,
            "[".repeat(10_000),
            "]".repeat(10_000)
        );
        let huge = format!(
            r#"{{"Statement":[],"x":"{}"}}"#,
            "a".repeat(2 * 1024 * 1024)
        );
        let cases: Vec<(&str, String)> = vec![
            ("empty", String::new()),
            ("whitespace", "  \n\t ".to_owned()),
            ("null", "null".to_owned()),
            ("array", "[]".to_owned()),
            ("string", r#""{}""#.to_owned()),
            ("deep arrays", deep_arrays),
            ("deep objects", deep_objects),
            ("deep statement", deep_statement),
            ("2 MB", huge),
            ("bad escape", "%7B%2".to_owned()),
            ("bad hex", "%ZZ%7B".to_owned()),
            ("lone percent", "%".to_owned()),
            ("not utf-8", "%FF%FE%7B%7D".to_owned()),
            ("encoded null", "%6E%75%6C%6C".to_owned()),
            ("statement number", r#"{"Statement":5}"#.to_owned()),
            ("statement string", r#"{"Statement":"*"}"#.to_owned()),
            ("statement of numbers", r#"{"Statement":[{},3]}"#.to_owned()),
            ("no statement", r#"{"Version":"2012-10-17"}"#.to_owned()),
            ("trailing garbage", r#"{"Statement":[]} x"#.to_owned()),
            (
                "duplicate key",
                r#"{"Statement":[{"Effect":"Allow","Effect":"Deny"}]}"#.to_owned(),
            ),
            ("bom", "\u{feff}{\"Statement\":[]}".to_owned()),
        ];
        for (name, input) in cases {
            let err = PolicyDocument::parse(&input).expect_err(name).to_string();
            assert!(
                err.len() < 400,
                "{name}: unbounded message {} bytes",
                err.len()
            );
            assert!(err.starts_with("policy document"), "{name}: {err}");
            assert!(!err.contains('\n'), "{name}: {err}");
        }
    }

    #[test]
    fn errors_name_the_problem() {
        let kind = |s: &str| PolicyDocument::parse(s).unwrap_err();
        assert!(matches!(
            kind("null"),
            PolicyError::NotObject { found: "null" }
        ));
        assert!(matches!(
            kind("[]"),
            PolicyError::NotObject { found: "an array" }
        ));
        assert_eq!(
            kind(r#"{"Version":"2012-10-17"}"#),
            PolicyError::MissingStatement
        );
        assert!(matches!(
            kind(r#"{"Statement":5}"#),
            PolicyError::InvalidStatement { .. }
        ));
        assert!(matches!(kind("%ZZ"), PolicyError::Encoding { .. }));
        assert!(matches!(kind("%C3%28"), PolicyError::Encoding { .. }));
        assert!(matches!(kind("{"), PolicyError::NotJson { .. }));
        assert!(matches!(
            kind(&"x".repeat(MAX_DOCUMENT_BYTES + 1)),
            PolicyError::TooLarge { .. }
        ));
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        assert!(kind(&deep).to_string().contains("recursion limit"));
        let dup = kind(r#"{"Statement":[],"Statement":[]}"#).to_string();
        assert!(dup.contains("duplicate key \"Statement\""), "{dup}");
    }

    #[test]
    fn a_duplicate_key_message_quotes_only_an_excerpt() {
        let key = "k".repeat(10_000);
        let text = format!(r#"{{"Statement":[],"{key}":1,"{key}":2}}"#);
        let err = PolicyDocument::parse(&text).unwrap_err().to_string();
        assert!(err.len() < 300, "{err}");
    }

    // --- merge -------------------------------------------------------------------------------

    #[test]
    fn merge_into_nothing_writes_the_built_document() {
        let c = cutoff("2026-11-23T12:00:00Z");
        let m = merge_role_wide(None, c);
        assert_eq!(m.document, role_wide_document(c));
        assert_eq!((m.cutoff, m.previous, m.changed), (c, None, true));
    }

    #[test]
    fn merge_keeps_a_later_existing_cutoff() {
        let existing = role_wide_document(cutoff("2026-11-23T13:00:00Z"));
        let m = merge_role_wide(Some(&existing), cutoff("2026-11-23T12:00:00Z"));
        assert!(!m.changed);
        assert_eq!(m.cutoff, cutoff("2026-11-23T13:00:00Z"));
        assert_eq!(m.previous, Some(cutoff("2026-11-23T13:00:00Z")));
        assert_eq!(m.document.to_json(), existing.to_json());
    }

    #[test]
    fn merge_with_an_equal_cutoff_writes_nothing() {
        let c = cutoff("2026-11-23T12:00:00Z");
        let m = merge_role_wide(Some(&role_wide_document(c)), c);
        assert!(!m.changed);
        assert_eq!(m.cutoff, c);
    }

    #[test]
    fn a_later_console_cutoff_with_a_fraction_is_kept_exactly_never_rounded_down() {
        let console = r#"{"Version":"2012-10-17","Statement":{"Effect":"Deny","Action":["*"],"Resource":["*"],"Condition":{"DateLessThan":{"aws:TokenIssueTime":"2026-11-23T12:00:00.900Z"}}}}"#;
        let existing = doc(console);
        // A new cutoff of 12:00:00 is before 12:00:00.900: nothing to write, and the
        // document IAM holds stays as it is (rounding it down would lower it).
        let m = merge_role_wide(Some(&existing), cutoff("2026-11-23T12:00:00Z"));
        assert!(!m.changed);
        assert_eq!(m.cutoff, cutoff("2026-11-23T12:00:00.900Z"));
        assert_eq!(m.document, existing);
        // A later one replaces it.
        let m = merge_role_wide(Some(&existing), cutoff("2026-11-23T12:00:01Z"));
        assert!(m.changed);
        assert_eq!(m.previous, Some(cutoff("2026-11-23T12:00:00.900Z")));
        // For coverage it counts only from its whole second.
        let c = cutoff("2026-11-23T12:00:00.900Z");
        assert!(c.covers(at("2026-11-23T11:59:59.999Z")));
        assert!(!c.covers(at("2026-11-23T12:00:00Z")));
        assert!(!c.covers(at("2026-11-23T12:00:00.500Z")));
    }

    #[test]
    fn merge_raises_an_earlier_cutoff() {
        let existing = doc(CONSOLE);
        let m = merge_role_wide(Some(&existing), cutoff("2026-11-23T12:00:00Z"));
        assert!(m.changed);
        assert_eq!(m.previous, Some(cutoff("2024-03-01T10:20:30.123Z")));
        assert_eq!(m.cutoff, cutoff("2026-11-23T12:00:00Z"));
        assert_eq!(
            m.document.to_json(),
            role_wide_document(cutoff("2026-11-23T12:00:00Z")).to_json(),
            "the console's statement is replaced by ours"
        );
    }

    #[test]
    fn merge_keeps_foreign_statements_byte_identical_and_in_order() {
        let text = format!(
            r#"{{"Version":"2012-10-17","Statement":[{ALLOW_S3},{},{DENY_MFA},{NOT_ACTION}]}}"#,
            r#"{"Effect":"Deny","Action":"*","Resource":"*","Condition":{"DateLessThan":{"aws:TokenIssueTime":"2024-01-01T00:00:00Z"}}}"#
        );
        let m = merge_role_wide(Some(&doc(&text)), cutoff("2026-11-23T12:00:00Z"));
        let ours = compact(&role_wide_statement(cutoff("2026-11-23T12:00:00Z")));
        assert_eq!(
            m.document.to_json(),
            format!(
                r#"{{"Version":"2012-10-17","Statement":[{ALLOW_S3},{ours},{DENY_MFA},{NOT_ACTION}]}}"#
            )
        );
    }

    #[test]
    fn merge_appends_when_only_foreign_statements_exist() {
        let text = format!(r#"{{"Statement":[{ALLOW_S3}]}}"#);
        let m = merge_role_wide(Some(&doc(&text)), cutoff("2026-11-23T12:00:00Z"));
        assert!(m.changed);
        assert_eq!(m.previous, None);
        let statements = m.document.statements();
        assert_eq!(statements.len(), 2);
        assert_eq!(compact(&statements[0]), ALLOW_S3);
        assert_eq!(
            m.document.version(),
            None,
            "a missing version is not invented"
        );
    }

    #[test]
    fn an_unreadable_date_is_kept_verbatim_and_never_guessed() {
        let odd = r#"{"Effect":"Deny","Action":"*","Resource":"*","Condition":{"DateLessThan":{"aws:TokenIssueTime":"1763899200"}}}"#;
        let text = format!(r#"{{"Statement":[{odd}]}}"#);
        let d = doc(&text);
        assert_eq!(d.role_wide_cutoff(), None);
        let m = merge_role_wide(Some(&d), cutoff("2026-11-23T12:00:00Z"));
        assert_eq!(compact(&m.document.statements()[0]), odd);
        assert_eq!(m.document.statements().len(), 2);
        assert!(remove_role_wide(&m.document).remaining.is_some());
    }

    #[test]
    fn two_revocation_statements_collapse_into_one_with_the_max() {
        let text = format!(
            r#"{{"Statement":[{ALLOW_S3},{},{}]}}"#,
            r#"{"Effect":"Deny","Action":["*"],"Resource":["*"],"Condition":{"DateLessThan":{"aws:TokenIssueTime":"2026-11-23T10:00:00Z"}}}"#,
            r#"{"Sid":"RevokeOlderSessions","Effect":"Deny","Action":"*","Resource":"*","Condition":{"DateLessThan":{"aws:TokenIssueTime":"2026-11-23T11:00:00Z"}}}"#,
        );
        let m = merge_role_wide(Some(&doc(&text)), cutoff("2026-11-23T12:00:00Z"));
        assert!(m.changed);
        assert_eq!(m.previous, Some(cutoff("2026-11-23T11:00:00Z")));
        let kinds: Vec<_> = m
            .document
            .statements()
            .iter()
            .map(classify_statement)
            .collect();
        assert_eq!(
            kinds,
            vec![
                StatementKind::Foreign,
                StatementKind::RoleWide(cutoff("2026-11-23T12:00:00Z"))
            ]
        );
        assert_eq!(
            m.document.role_wide_cutoff(),
            Some(cutoff("2026-11-23T12:00:00Z"))
        );
    }

    #[test]
    fn our_sid_is_dropped_when_a_foreign_statement_already_uses_it() {
        let foreign = r#"{"Sid":"RevokeOlderSessions","Effect":"Allow","Action":"s3:ListBucket","Resource":"*"}"#;
        let m = merge_role_wide(
            Some(&doc(&format!(r#"{{"Statement":[{foreign}]}}"#))),
            cutoff("2026-11-23T12:00:00Z"),
        );
        let ours = &m.document.statements()[1];
        assert_eq!(sid_of(ours), None);
        assert_eq!(
            classify_statement(ours),
            StatementKind::RoleWide(cutoff("2026-11-23T12:00:00Z"))
        );
    }

    #[test]
    fn role_wide_merge_keeps_session_statements() {
        let p = principal("AROAEXAMPLEID0000001:s1");
        let existing = session_document(&p, cutoff("2026-11-23T11:00:00Z"));
        let m = merge_role_wide(Some(&existing), cutoff("2026-11-23T12:00:00Z"));
        assert_eq!(m.previous, None);
        assert_eq!(m.document.session_cutoffs(), existing.session_cutoffs());
        assert_eq!(
            m.document.role_wide_cutoff(),
            Some(cutoff("2026-11-23T12:00:00Z"))
        );
    }

    #[test]
    fn session_merge_adds_and_updates_per_principal_and_keeps_others() {
        let a = principal("AROAEXAMPLEID0000001:i-0aaaaaaaaaaaaaaaa");
        let b = principal("AROAEXAMPLEID0000001:i-0bbbbbbbbbbbbbbbb");
        let t1 = cutoff("2026-11-23T11:00:00Z");
        let t2 = cutoff("2026-11-23T12:00:00Z");

        let first = merge_session(None, &a, t1);
        assert!(first.changed);
        assert_eq!(first.document, session_document(&a, t1));

        let with_foreign = doc(&format!(
            r#"{{"Version":"2012-10-17","Statement":[{},{ALLOW_S3}]}}"#,
            compact(&first.document.statements()[0])
        ));
        let second = merge_session(Some(&with_foreign), &b, t1);
        assert!(second.changed);
        assert_eq!(second.previous, None);
        assert_eq!(
            second.document.session_cutoffs(),
            vec![(a.clone(), t1), (b.clone(), t1)]
        );

        let third = merge_session(Some(&second.document), &a, t2);
        assert!(third.changed);
        assert_eq!(third.previous, Some(t1));
        assert_eq!(
            third.document.session_cutoffs(),
            vec![(a.clone(), t2), (b.clone(), t1)]
        );
        assert_eq!(
            compact(&third.document.statements()[0]),
            compact(&session_statement(&a, t2))
        );
        assert_eq!(compact(&third.document.statements()[1]), ALLOW_S3);

        let stale = merge_session(Some(&third.document), &b, cutoff("2026-11-23T10:00:00Z"));
        assert!(!stale.changed);
        assert_eq!(stale.cutoff, t1);
        assert_eq!(stale.document, third.document);
    }

    #[test]
    fn session_merge_collapses_duplicate_statements_for_one_session() {
        let a = principal("AROAEXAMPLEID0000001:s1");
        let text = format!(
            r#"{{"Statement":[{},{ALLOW_S3},{}]}}"#,
            compact(&session_statement(&a, cutoff("2026-11-23T10:00:00Z"))),
            compact(&session_statement(&a, cutoff("2026-11-23T11:00:00Z"))),
        );
        let m = merge_session(Some(&doc(&text)), &a, cutoff("2026-11-23T12:00:00Z"));
        assert_eq!(m.previous, Some(cutoff("2026-11-23T11:00:00Z")));
        assert_eq!(m.document.statements().len(), 2);
        assert_eq!(
            m.document.session_cutoffs(),
            vec![(a, cutoff("2026-11-23T12:00:00Z"))]
        );
    }

    // --- removal -------------------------------------------------------------------------------

    #[test]
    fn removal_returns_none_when_nothing_is_left() {
        let r = remove_role_wide(&doc(CONSOLE));
        assert_eq!(r.remaining, None);
        assert_eq!(r.removed, vec![cutoff("2024-03-01T10:20:30.123Z")]);
        assert!(r.changed());
    }

    #[test]
    fn removal_keeps_foreign_statements() {
        let text = format!(
            r#"{{"Version":"2012-10-17","Statement":[{ALLOW_S3},{},{DENY_MFA}]}}"#,
            compact(&role_wide_statement(cutoff("2026-11-23T12:00:00Z")))
        );
        let r = remove_role_wide(&doc(&text));
        assert_eq!(
            r.remaining.map(|d| d.to_json()),
            Some(format!(
                r#"{{"Version":"2012-10-17","Statement":[{ALLOW_S3},{DENY_MFA}]}}"#
            ))
        );
        assert_eq!(r.removed, vec![cutoff("2026-11-23T12:00:00Z")]);
    }

    #[test]
    fn removal_without_revocations_changes_nothing() {
        let text = format!(r#"{{"Statement":[{ALLOW_S3}]}}"#);
        let r = remove_role_wide(&doc(&text));
        assert!(!r.changed());
        assert_eq!(r.remaining.map(|d| d.to_json()), Some(text));
    }

    #[test]
    fn old_revocations_are_removed_and_recent_ones_kept() {
        let threshold = at("2026-11-23T12:00:00Z");
        let old = cutoff("2026-11-23T11:59:59Z");
        let edge = cutoff("2026-11-23T12:00:00Z");
        let a = principal("AROAEXAMPLEID0000001:s1");
        let b = principal("AROAEXAMPLEID0000001:s2");
        let text = format!(
            r#"{{"Statement":[{},{},{ALLOW_S3},{},{}]}}"#,
            compact(&role_wide_statement(old)),
            compact(&role_wide_statement(edge)),
            compact(&session_statement(&a, old)),
            compact(&session_statement(&b, edge)),
        );
        let d = doc(&text);

        let r = remove_role_wide_older_than(&d, threshold);
        assert_eq!(r.removed, vec![old]);
        let left = r.remaining.unwrap();
        assert_eq!(left.role_wide_cutoff(), Some(edge));
        assert_eq!(left.statements().len(), 4);

        let s = remove_sessions_older_than(&d, threshold);
        assert_eq!(s.removed, vec![(a.clone(), old)]);
        let left = s.remaining.unwrap();
        assert_eq!(left.session_cutoffs(), vec![(b.clone(), edge)]);
        assert_eq!(left.foreign_statements().len(), 1);

        let only = remove_session(&d, &b);
        assert_eq!(only.removed, vec![(b, edge)]);
        assert_eq!(only.remaining.unwrap().session_cutoffs(), vec![(a, old)]);
    }

    #[test]
    fn removing_the_last_session_deletes_the_policy() {
        let a = principal("AROAEXAMPLEID0000001:s1");
        let d = session_document(&a, cutoff("2026-11-23T11:00:00Z"));
        let r = remove_sessions_older_than(&d, at("2026-11-24T00:00:00Z"));
        assert_eq!(r.remaining, None);
        assert!(r.changed());
    }

    // --- size ----------------------------------------------------------------------------------

    #[test]
    fn size_ignores_whitespace() {
        let d = doc(CONSOLE);
        assert_eq!(policy_size(&d.to_pretty_json()), policy_size(&d.to_json()));
        assert_eq!(policy_size(&d.to_json()), d.to_json().len());
        assert_eq!(policy_size(" { \"a\" :\t1 }\r\n"), 7);
        assert_eq!(d.size(), d.to_json().len());
    }

    #[test]
    fn size_counts_characters_not_bytes() {
        assert_eq!(policy_size(r#""é""#), 3);
    }

    #[test]
    fn the_built_role_wide_document_is_small() {
        let size = role_wide_document(cutoff("2026-11-23T12:00:00Z")).size();
        assert_eq!(size, 187);
        assert!(Budget::user(2_048 - 187).fits(size));
        assert!(!Budget::user(2_048 - 186).fits(size));
    }

    #[test]
    fn stored_size_counts_the_decoded_original_text() {
        let pretty = "{\n  \"Statement\": [ ]\n}";
        let encoded =
            percent_encoding::utf8_percent_encode(pretty, percent_encoding::NON_ALPHANUMERIC)
                .to_string();
        assert_eq!(stored_policy_size(&encoded), Ok(policy_size(pretty)));
        assert_eq!(stored_policy_size(pretty), Ok(16));
        assert!(stored_policy_size("%ZZ").is_err());
    }

    #[test]
    fn budget_arithmetic() {
        assert!(!Budget::role(10_000).fits(300));
        assert!(Budget::role(10_000).fits(240));
        assert!(!Budget::role(10_000).fits(241));
        assert_eq!(Budget::role(10_000).remaining(), 240);
        assert_eq!(Budget::user(3_000).remaining(), 0);
        assert!(!Budget::user(3_000).fits(0));
        assert!(Budget::managed().fits(MANAGED_POLICY_BUDGET));
        assert!(!Budget::managed().fits(MANAGED_POLICY_BUDGET + 1));
        assert!(!Budget::role(usize::MAX).fits(usize::MAX), "no overflow");
    }

    // --- properties ------------------------------------------------------------------------------

    const ROLE_IDS: [&str; 2] = ["AROAEXAMPLEID0000001", "AROAEXAMPLEID0000002"];
    const SESSIONS: [&str; 3] = ["i-0123456789abcdef0", "alice@example.com", "ci-run_42"];

    /// A statement in a generated document, with what it is expected to be.
    #[derive(Debug, Clone)]
    enum Gen {
        Foreign(Value),
        RoleWide(Value, Cutoff),
        Session(Value, SessionPrincipal, Cutoff),
    }

    impl Gen {
        fn value(&self) -> &Value {
            match self {
                Gen::Foreign(v) | Gen::RoleWide(v, _) | Gen::Session(v, _, _) => v,
            }
        }
    }

    fn arb_cutoff() -> impl Strategy<Value = Cutoff> {
        (1_300_000_000i64..4_100_000_000)
            .prop_map(|s| Cutoff::at_or_after(DateTime::from_timestamp(s, 0).unwrap()))
    }

    /// A date as IAM or a person might write it, and the cutoff it must read as.
    fn arb_date() -> impl Strategy<Value = (String, Cutoff)> {
        (
            1_300_000_000i64..4_100_000_000,
            0u32..1000,
            any::<bool>(),
            prop_oneof![Just(None), (-720i64..=840).prop_map(Some)],
        )
            .prop_map(|(secs, millis, with_millis, offset_minutes)| {
                let millis = if with_millis { millis } else { 0 };
                let instant = DateTime::from_timestamp(secs, millis * 1_000_000).unwrap();
                // Read exactly: a cutoff is kept as the document holds it.
                let expected = Cutoff(instant);
                let fraction = if with_millis {
                    format!(".{millis:03}")
                } else {
                    String::new()
                };
                let text = match offset_minutes {
                    None => format!("{}{fraction}Z", instant.format("%Y-%m-%dT%H:%M:%S")),
                    Some(m) => {
                        let local: NaiveDateTime = instant.naive_utc() + Duration::minutes(m);
                        let sign = if m < 0 { '-' } else { '+' };
                        let (h, mm) = (m.abs() / 60, m.abs() % 60);
                        format!(
                            "{}{fraction}{sign}{h:02}:{mm:02}",
                            local.format("%Y-%m-%dT%H:%M:%S")
                        )
                    }
                };
                (text, expected)
            })
    }

    fn arb_star() -> impl Strategy<Value = Value> {
        prop_oneof![Just(json!("*")), Just(json!(["*"]))]
    }

    fn arb_key(canonical: &'static str) -> impl Strategy<Value = String> {
        prop_oneof![
            Just(canonical.to_owned()),
            Just(canonical.to_ascii_lowercase()),
            Just(canonical.to_ascii_uppercase()),
        ]
    }

    fn arb_single(value: String) -> impl Strategy<Value = Value> {
        prop_oneof![Just(json!(value.clone())), Just(json!([value]))]
    }

    fn arb_role_wide() -> impl Strategy<Value = Gen> {
        (
            prop_oneof![
                Just(None),
                Just(Some("RevokeOlderSessions")),
                Just(Some("ByHand1"))
            ],
            arb_star(),
            arb_star(),
            arb_key(TOKEN_ISSUE_TIME),
            arb_date(),
            any::<bool>(),
        )
            .prop_flat_map(|(sid, action, resource, key, (date, c), sid_last)| {
                arb_single(date).prop_map(move |date_value| {
                    let mut s = Map::new();
                    if let (Some(sid), false) = (sid, sid_last) {
                        s.insert("Sid".into(), json!(sid));
                    }
                    s.insert("Effect".into(), json!("Deny"));
                    s.insert("Action".into(), action.clone());
                    s.insert("Resource".into(), resource.clone());
                    let mut block = Map::new();
                    block.insert(key.clone(), date_value);
                    s.insert("Condition".into(), json!({ DATE_LESS_THAN: block }));
                    if let (Some(sid), true) = (sid, sid_last) {
                        s.insert("Sid".into(), json!(sid));
                    }
                    Gen::RoleWide(Value::Object(s), c)
                })
            })
    }

    fn arb_principal() -> impl Strategy<Value = SessionPrincipal> {
        (0..ROLE_IDS.len(), 0..SESSIONS.len())
            .prop_map(|(r, s)| principal(&format!("{}:{}", ROLE_IDS[r], SESSIONS[s])))
    }

    fn arb_session() -> impl Strategy<Value = Gen> {
        (arb_principal(), arb_date(), arb_key(USER_ID), any::<bool>()).prop_flat_map(
            |(p, (date, c), key, user_id_first)| {
                (arb_single(p.to_string()), arb_single(date), arb_star()).prop_map(
                    move |(user_id, date, action)| {
                        let mut condition = Map::new();
                        let user = json!({ key.clone(): user_id });
                        let time = json!({ TOKEN_ISSUE_TIME: date });
                        if user_id_first {
                            condition.insert(STRING_EQUALS.into(), user);
                            condition.insert(DATE_LESS_THAN.into(), time);
                        } else {
                            condition.insert(DATE_LESS_THAN.into(), time);
                            condition.insert(STRING_EQUALS.into(), user);
                        }
                        let s = json!({"Effect":"Deny","Action":action,"Resource":"*","Condition":condition});
                        Gen::Session(s, p.clone(), c)
                    },
                )
            },
        )
    }

    /// JSON values IAM could hold in a foreign statement (no floats: serde_json's
    /// default float parsing is not bit-exact, and IAM condition values are strings).
    fn arb_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            "\\PC{0,12}".prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<bool>().prop_map(Value::from),
            Just(Value::Null),
        ];
        leaf.prop_recursive(3, 16, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::vec(("[A-Za-z:]{1,10}", inner), 0..4)
                    .prop_map(|kv| { Value::Object(kv.into_iter().collect()) }),
            ]
        })
    }

    fn arb_foreign() -> impl Strategy<Value = Gen> {
        let allow = (
            "[a-z0-9]{2,8}:[A-Za-z*]{1,12}",
            "arn:aws:[a-z0-9]{2,5}:::[a-z*/]{1,12}",
            any::<bool>(),
        )
            .prop_map(|(action, resource, array)| {
                let action = if array {
                    json!([action])
                } else {
                    json!(action)
                };
                json!({"Effect":"Allow","Action":action,"Resource":resource})
            });
        let arbitrary = ("[A-Za-z0-9]{1,12}", prop_oneof![Just("Allow"), Just("Deny")], arb_json())
            .prop_map(|(sid, effect, condition)| {
                json!({"Sid":sid,"Effect":effect,"NotAction":["iam:*"],"Resource":"*","Condition":{"StringEquals":{"aws:PrincipalTag/team":condition}}})
            });
        // Our shape with one thing changed: the cases most likely to be misread.
        let near_miss = (arb_role_wide(), 0..6usize).prop_map(|(g, which)| {
            let mut s = g.value().clone();
            if let Some(o) = s.as_object_mut() {
                match which {
                    0 => { o.insert("Effect".into(), json!("Allow")); }
                    1 => { o.insert("Action".into(), json!("s3:*")); }
                    2 => { o.insert("NotResource".into(), json!("*")); }
                    3 => { o.insert("Condition".into(), json!({"DateGreaterThan":{"aws:TokenIssueTime":"2026-01-01T00:00:00Z"}})); }
                    4 => { o.insert("Condition".into(), json!({"DateLessThan":{"aws:TokenIssueTime":"not a date"}})); }
                    _ => { o.insert("Principal".into(), json!({"AWS":"*"})); }
                }
            }
            s
        });
        prop_oneof![allow, arbitrary, near_miss]
            .prop_filter("foreign by construction", |v| {
                classify_statement(v) == StatementKind::Foreign
            })
            .prop_map(Gen::Foreign)
    }

    fn arb_gen() -> impl Strategy<Value = Gen> {
        prop_oneof![3 => arb_foreign(), 2 => arb_role_wide(), 2 => arb_session()]
    }

    /// A document as IAM might hand it over: any mix of statements, any version, the
    /// single-object form, pretty or compact, raw or URL-encoded.
    fn arb_document() -> impl Strategy<Value = (String, Vec<Gen>)> {
        (
            prop::collection::vec(arb_gen(), 0..7),
            prop_oneof![
                Just(Some("2012-10-17")),
                Just(Some("2008-10-17")),
                Just(None)
            ],
            any::<bool>(),
            any::<bool>(),
            any::<bool>(),
        )
            .prop_map(|(gens, version, single, pretty, encoded)| {
                let mut top = Map::new();
                if let Some(v) = version {
                    top.insert("Version".into(), json!(v));
                }
                let statements: Vec<Value> = gens.iter().map(|g| g.value().clone()).collect();
                let statement = match (single, statements.as_slice()) {
                    (true, [only]) => only.clone(),
                    _ => Value::Array(statements),
                };
                top.insert("Statement".into(), statement);
                let top = Value::Object(top);
                let text = if pretty {
                    format!("{top:#}")
                } else {
                    top.to_string()
                };
                let text = if encoded {
                    percent_encoding::utf8_percent_encode(&text, percent_encoding::NON_ALPHANUMERIC)
                        .to_string()
                } else {
                    text
                };
                (text, gens)
            })
    }

    fn role_wide_of(gens: &[Gen]) -> Vec<Cutoff> {
        gens.iter()
            .filter_map(|g| match g {
                Gen::RoleWide(_, c) => Some(*c),
                _ => None,
            })
            .collect()
    }

    fn session_max(gens: &[Gen], p: &SessionPrincipal) -> Option<Cutoff> {
        gens.iter()
            .filter_map(|g| match g {
                Gen::Session(_, q, c) if q == p => Some(*c),
                _ => None,
            })
            .max()
    }

    fn compact_where(d: &PolicyDocument, keep: impl Fn(&StatementKind) -> bool) -> Vec<String> {
        d.statements()
            .iter()
            .filter(|s| keep(&classify_statement(s)))
            .map(compact)
            .collect()
    }

    fn foreign_of(gens: &[Gen]) -> Vec<String> {
        gens.iter()
            .filter_map(|g| match g {
                Gen::Foreign(v) => Some(compact(v)),
                _ => None,
            })
            .collect()
    }

    fn is_role_wide(k: &StatementKind) -> bool {
        matches!(k, StatementKind::RoleWide(_))
    }

    fn is_session(k: &StatementKind) -> bool {
        matches!(k, StatementKind::Session(..))
    }

    fn assert_round_trips(d: &PolicyDocument) -> Result<(), TestCaseError> {
        let again = PolicyDocument::parse(&d.to_json())
            .map_err(|e| TestCaseError::fail(format!("{e}: {}", d.to_json())))?;
        prop_assert_eq!(again.to_json(), d.to_json());
        prop_assert_eq!(again.statements(), d.statements());
        prop_assert_eq!(again.role_wide_cutoff(), d.role_wide_cutoff());
        prop_assert_eq!(again.session_cutoffs(), d.session_cutoffs());
        let pretty = PolicyDocument::parse(&d.to_pretty_json())
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(pretty.to_json(), d.to_json());
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn generated_documents_parse_as_expected((text, gens) in arb_document()) {
            let d = PolicyDocument::parse(&text).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(d.statements().len(), gens.len());
            for (statement, g) in d.statements().iter().zip(&gens) {
                let expected = match g {
                    Gen::Foreign(_) => StatementKind::Foreign,
                    Gen::RoleWide(_, c) => StatementKind::RoleWide(*c),
                    Gen::Session(_, p, c) => StatementKind::Session(p.clone(), *c),
                };
                prop_assert_eq!(classify_statement(statement), expected);
                prop_assert_eq!(statement, g.value());
            }
            prop_assert_eq!(d.role_wide_cutoff(), role_wide_of(&gens).into_iter().max());
            assert_round_trips(&d)?;
        }

        #[test]
        fn role_wide_merge_never_lowers_a_cutoff((text, gens) in arb_document(), new in arb_cutoff()) {
            let d = PolicyDocument::parse(&text).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let existing = role_wide_of(&gens);
            let previous = existing.iter().copied().max();
            let m = merge_role_wide(Some(&d), new);

            prop_assert_eq!(m.cutoff, previous.map_or(new, |p| p.max(new)));
            prop_assert!(m.cutoff >= new);
            for c in &existing {
                prop_assert!(m.cutoff >= *c);
            }
            prop_assert_eq!(m.previous, previous);
            prop_assert_eq!(m.changed, previous.is_none_or(|p| p < new));
            prop_assert_eq!(m.document.role_wide_cutoff(), Some(m.cutoff));
            if m.changed {
                prop_assert_eq!(compact_where(&m.document, is_role_wide).len(), 1);
            } else {
                prop_assert_eq!(m.document.to_json(), d.to_json());
            }
            // Everything that is not a role-wide revocation is untouched and in order.
            let not_role_wide = |k: &StatementKind| !is_role_wide(k);
            prop_assert_eq!(compact_where(&m.document, not_role_wide), compact_where(&d, not_role_wide));
            prop_assert_eq!(
                compact_where(&m.document, |k| *k == StatementKind::Foreign),
                foreign_of(&gens)
            );
            prop_assert_eq!(m.document.version(), d.version());
            assert_round_trips(&m.document)?;

            // Merging again with the same or an older cutoff is a no-op.
            let again = merge_role_wide(Some(&m.document), new);
            prop_assert!(!again.changed);
            prop_assert_eq!(again.cutoff, m.cutoff);
        }

        #[test]
        fn merge_from_nothing_then_in_any_order_ends_at_the_max(cutoffs in prop::collection::vec(arb_cutoff(), 1..8)) {
            let mut d: Option<PolicyDocument> = None;
            for c in &cutoffs {
                let m = merge_role_wide(d.as_ref(), *c);
                d = Some(m.document);
            }
            let d = d.ok_or_else(|| TestCaseError::fail("no document"))?;
            prop_assert_eq!(d.role_wide_cutoff(), cutoffs.iter().copied().max());
            prop_assert_eq!(d.statements().len(), 1);
        }

        #[test]
        fn session_merge_never_lowers_a_cutoff((text, gens) in arb_document(), p in arb_principal(), new in arb_cutoff()) {
            let d = PolicyDocument::parse(&text).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let previous = session_max(&gens, &p);
            let m = merge_session(Some(&d), &p, new);

            prop_assert_eq!(m.cutoff, previous.map_or(new, |x| x.max(new)));
            prop_assert_eq!(m.previous, previous);
            prop_assert_eq!(m.changed, previous.is_none_or(|x| x < new));
            prop_assert_eq!(m.document.session_cutoff(&p), Some(m.cutoff));
            // Other sessions keep their cutoffs; role-wide and foreign statements are untouched.
            for (q, c) in d.session_cutoffs() {
                if q != p {
                    prop_assert_eq!(m.document.session_cutoff(&q), Some(c));
                }
            }
            let others = |k: &StatementKind| !matches!(k, StatementKind::Session(q, _) if *q == p);
            prop_assert_eq!(compact_where(&m.document, others), compact_where(&d, others));
            if m.changed {
                let mine = |k: &StatementKind| matches!(k, StatementKind::Session(q, _) if *q == p);
                prop_assert_eq!(compact_where(&m.document, mine).len(), 1);
            }
            assert_round_trips(&m.document)?;
        }

        #[test]
        fn removal_keeps_everything_else((text, gens) in arb_document(), threshold in arb_cutoff()) {
            let d = PolicyDocument::parse(&text).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let foreign = foreign_of(&gens);

            let r = remove_role_wide(&d);
            prop_assert_eq!(r.removed, role_wide_of(&gens));
            let left = r.remaining.clone().map(|x| compact_where(&x, |_| true)).unwrap_or_default();
            prop_assert_eq!(left, compact_where(&d, |k| !is_role_wide(k)));
            if let Some(rest) = &r.remaining {
                prop_assert_eq!(rest.role_wide_cutoff(), None);
                prop_assert_eq!(compact_where(rest, |k| *k == StatementKind::Foreign), foreign.clone());
                assert_round_trips(rest)?;
            }

            let t = threshold.as_datetime();
            let old = remove_role_wide_older_than(&d, t);
            prop_assert!(old.removed.iter().all(|c| c.as_datetime() < t));
            let rest = old.remaining.clone();
            let kept_role_wide: Vec<Cutoff> = rest.iter().flat_map(|x| x.statements().iter().filter_map(|s| match classify_statement(s) {
                StatementKind::RoleWide(c) => Some(c),
                _ => None,
            }).collect::<Vec<_>>()).collect();
            prop_assert!(kept_role_wide.iter().all(|c| c.as_datetime() >= t));
            prop_assert_eq!(old.removed.len() + kept_role_wide.len(), role_wide_of(&gens).len());
            prop_assert_eq!(
                rest.as_ref().map(|x| compact_where(x, |k| !is_role_wide(k))).unwrap_or_default(),
                compact_where(&d, |k| !is_role_wide(k))
            );

            let s = remove_sessions_older_than(&d, t);
            prop_assert!(s.removed.iter().all(|(_, c)| c.as_datetime() < t));
            let rest = s.remaining.clone();
            if let Some(rest) = &rest {
                prop_assert!(rest.session_cutoffs().iter().all(|(_, c)| c.as_datetime() >= t));
            }
            prop_assert_eq!(
                rest.as_ref().map(|x| compact_where(x, |k| !is_session(k))).unwrap_or_default(),
                compact_where(&d, |k| !is_session(k))
            );
            prop_assert_eq!(s.remaining.is_none(), s.removed.len() == gens.len());
        }

        #[test]
        fn cutoff_display_parse_and_serde_round_trip(c in arb_cutoff()) {
            prop_assert_eq!(Cutoff::parse(&c.to_string()), Ok(c));
            prop_assert_eq!(c.to_string().len(), 20);
            let json = serde_json::to_string(&c).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(serde_json::from_str::<Cutoff>(&json).ok(), Some(c));
        }

        #[test]
        fn cutoff_at_or_after_is_the_least_whole_second_not_before(secs in -70_000_000_000i64..300_000_000_000, nanos in 0u32..1_000_000_000) {
            let now = DateTime::from_timestamp(secs, nanos).ok_or_else(|| TestCaseError::reject("out of range"))?;
            let c = Cutoff::at_or_after(now);
            prop_assert_eq!(c.as_datetime().timestamp_subsec_nanos(), 0);
            prop_assert_eq!(Cutoff::parse(&c.to_string()), Ok(c));
            if (MIN_SECS..MAX_SECS).contains(&secs) {
                prop_assert!(c.as_datetime() >= now);
                prop_assert!(c.as_datetime() - now < Duration::seconds(1));
            }
        }

        #[test]
        fn built_documents_round_trip(c in arb_cutoff(), p in arb_principal()) {
            assert_round_trips(&role_wide_document(c))?;
            assert_round_trips(&session_document(&p, c))?;
            prop_assert_eq!(role_wide_document(c).role_wide_cutoff(), Some(c));
            prop_assert_eq!(session_document(&p, c).session_cutoffs(), vec![(p, c)]);
        }

        #[test]
        fn size_of_compact_equals_size_of_pretty((text, _gens) in arb_document()) {
            let d = PolicyDocument::parse(&text).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(policy_size(&d.to_json()), policy_size(&d.to_pretty_json()));
            prop_assert_eq!(d.size(), policy_size(&d.to_pretty_json()));
        }

        #[test]
        fn parse_never_panics_on_arbitrary_strings(s in "\\PC*") {
            let _ = PolicyDocument::parse(&s);
            let _ = stored_policy_size(&s);
        }

        #[test]
        fn parse_never_panics_on_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
            let text = String::from_utf8_lossy(&bytes);
            let _ = PolicyDocument::parse(&text);
            let _ = PolicyDocument::parse(&format!("{{{text}"));
            let _ = PolicyDocument::parse(&format!("%{text}"));
            let encoded = percent_encoding::percent_encode(&bytes, percent_encoding::NON_ALPHANUMERIC).to_string();
            let _ = PolicyDocument::parse(&encoded);
        }

        #[test]
        fn parse_never_panics_on_mutated_documents((text, _gens) in arb_document(), cut in any::<prop::sample::Index>(), insert in "[\\[\\]{}\":,%0-9A-Za-z ]{0,4}") {
            let at = cut.index(text.len() + 1);
            if let (Some(head), Some(tail)) = (text.get(..at), text.get(at..)) {
                let _ = PolicyDocument::parse(&format!("{head}{insert}{tail}"));
                let _ = PolicyDocument::parse(head);
            }
        }
    }
}
