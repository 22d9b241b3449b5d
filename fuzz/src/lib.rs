//! The invariants behind cutoff's fuzz targets.
//!
//! Each `pub fn <target>(data: &[u8])` is what `fuzz/fuzz_targets/<target>.rs` runs under
//! libFuzzer (`make fuzz`), and what `tests/integration/hostile.rs` runs on every file of
//! `tests/fuzz-corpus/<target>/` on the stable toolchain (`make test`). A broken
//! invariant panics with a message that names it: a crash with the input saved under
//! libFuzzer, a failed test naming the corpus file under `cargo test`.
//!
//! The targets:
//!
//! - [`event_triage`]: bytes → `serde_json::Value` → `event::recognise` → `triage`, the
//!   entry intake uses, then what intake does with each decision (the queue body, its
//!   group and deduplication ids, the `alerted` outcome) and what the notifier makes of
//!   the outcomes (`notify::render`). A revoke names a valid, revocable, unprotected
//!   principal whose name and account are both written in the input.
//! - [`policy_document`]: `PolicyDocument::parse`; a parsed document re-serialises to
//!   itself; `merge_role_wide` with a fixed cutoff keeps every foreign statement in
//!   order, never lowers the cutoff, leaves one role-wide statement, is idempotent, and
//!   its result parses back to itself, compact, pretty and URL-encoded.
//! - [`manual_request`]: the manual request parser: unknown fields are refused, a valid
//!   request is consistent (scope, session, key), survives the queue as JSON, and
//!   triages to decisions about its own target only.
//! - [`principal_parsers`]: every boundary type (account, names, ARNs, keys, paths,
//!   patterns, cutoffs, session principals, max session ages): a value that parses
//!   obeys its rule and prints to text that parses to the same value; an error quotes
//!   a bounded, escaped excerpt.
//!
//! The checks on a rendered message ([`check_message`]) are the notification contract:
//! a subject of fewer than 100 printable ASCII characters; a body with no control
//! character but the newline and none of the invisible formatting characters that
//! `notify::clean` promises to strip; no line carrying more than [`notify::FIELD_MAX`]
//! consecutive characters of any outside string; the JSON part parseable back with
//! every outside field within its documented cut.

use cutoff_domain::event::{self, ManualAction, Scope};
use cutoff_domain::notify::{self, FIELD_MAX, SEPARATOR};
use cutoff_domain::outcome::{
    FailureKind, FindingFormat, Outcome, RevocationRequest, Status, alert_outcome,
};
use cutoff_domain::policy::{
    self, Cutoff, PolicyDocument, PolicyError, SessionPrincipal, StatementKind,
};
use cutoff_domain::principal::{
    AccessKeyId, Account, IamPath, NamePattern, PrincipalArn, PrincipalName, SessionName, Target,
    TargetKind, UniqueId,
};
use cutoff_domain::queue::{deduplication_id, group_id};
use cutoff_domain::settings::TriageConfig;
use cutoff_domain::sweep_rules::MaxSessionAge;
use cutoff_domain::triage::{self, Decision, Source, Triage, Verdict};
use serde_json::Value;

/// The cutoff merged into every fuzzed policy document.
pub const FUZZ_CUTOFF: &str = "2026-11-23T12:00:00Z";

/// Invariants that cutoff once broke, found by these fuzzers and fixed since; checked
/// unless `CUTOFF_FUZZ_STRICT=0` (to look past one of them, should it come back, while
/// hunting for new failures). What they were:
///
/// - A triage reason for an invalid input quotes serde's error, which carries the
///   offending string whole (unbounded) and, for an unknown manual-request field or
///   action, raw (control characters included): `cutoff triage` prints it to stderr.
/// - A valid manual request's `reason` and `requested_by` may carry bidirectional
///   overrides and other invisible formatting characters (only control characters are
///   refused), which triage copies into its reason.
/// - A document whose single `Statement` object is nested to serde_json's recursion
///   limit parses, but its re-serialisation (the statement wrapped in an array, one
///   level deeper) does not.
/// - A non-integer number in a foreign statement does not always survive a
///   read-write-read cycle: serde_json's default float parsing is not correctly
///   rounded, so the shortest printed form can read back one unit in the last place
///   off (`18446744073704073709551615` → `1.8446744073704073e25` →
///   `1.8446744073704071e25`).
pub fn strict() -> bool {
    static FROM_ENV: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    STRICT_HERE.with(std::cell::Cell::get).unwrap_or_else(|| {
        // Strict by default: every gap it checks has been fixed. `CUTOFF_FUZZ_STRICT=0`
        // relaxes it, to look past a known failure while hunting for new ones.
        *FROM_ENV.get_or_init(|| std::env::var_os("CUTOFF_FUZZ_STRICT").is_none_or(|v| v != "0"))
    })
}

thread_local! {
    static STRICT_HERE: std::cell::Cell<Option<bool>> = const { std::cell::Cell::new(None) };
}

/// Runs `f` with the known-gap invariants on, on this thread only.
pub fn strictly<R>(f: impl FnOnce() -> R) -> R {
    let before = STRICT_HERE.with(|s| s.replace(Some(true)));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    STRICT_HERE.with(|s| s.set(before));
    result.unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

/// SNS: a subject is "less than 100 characters".
pub const SUBJECT_LIMIT: usize = 100;

/// How many characters of cutoff's own text next to a value may coincide with the
/// input around it (see [`check_message`]).
pub const TEMPLATE_SLACK: usize = 32;

/// A triage reason or invalid-input message: fixed text, a target, and excerpts of at
/// most 64 escaped characters. Far below this in practice.
pub const REASON_LIMIT: usize = 2048;

// ---------------------------------------------------------------------------------------
// event_triage
// ---------------------------------------------------------------------------------------

/// Intake's entry: the Lambda runtime hands intake the payload as a JSON value; input
/// that is not JSON never reaches it. Checked with the default configuration and with
/// everything opted in (Security Hub imports, CloudTrail calls), which reaches more code.
pub fn event_triage(data: &[u8]) {
    if data.len() > event::MAX_EVENT_BYTES {
        return; // `cutoff triage` refuses it before parsing; intake gets 256 KB at most.
    }
    // What intake reads: strict JSON (a duplicate key anywhere refuses the input, in
    // intake and in `cutoff triage` alike).
    let Ok(value) = cutoff_domain::json::from_slice(data) else {
        assert!(
            triage::triage_bytes(data, &TriageConfig::default()).is_err(),
            "cutoff triage accepted input that intake refuses"
        );
        return;
    };
    let default = TriageConfig::default();
    let triage = check_event(value.clone(), &default);
    // `cutoff triage` reads the same bytes and must say the same.
    let from_bytes = triage::triage_bytes(data, &default)
        .unwrap_or_else(|e| panic!("triage_bytes refused JSON that intake accepts: {e}"));
    assert_eq!(
        from_bytes.to_json(),
        triage.to_json(),
        "cutoff triage and intake disagree"
    );
    check_event(value, &opted_in());
}

/// The configuration with every optional signal on.
pub fn opted_in() -> TriageConfig {
    TriageConfig {
        securityhub_imported: true,
        securityhub_v2: true,
        cloudtrail_event_names: ["StopLogging", "DeleteTrail", "ConsoleLogin"]
            .map(str::to_owned)
            .to_vec(),
        medium_findings: cutoff_domain::settings::MediumFindings::Ask,
        ..TriageConfig::default()
    }
}

/// Triages one event as intake does and checks every decision and what intake and the
/// notifier make of it. Returns the triage for further checks.
pub fn check_event(value: Value, config: &TriageConfig) -> Triage {
    let mut named = Vec::new();
    collect_strings(&value, &mut named);
    let parsed = event::recognise(value);
    let triage = triage::triage(&parsed, config);
    assert!(
        !triage.decisions.is_empty(),
        "triage gave no decision (source {:?})",
        triage.source
    );
    check_contract_json(&triage);
    for decision in &triage.decisions {
        check_reason(decision);
        if decision.invalid.is_some() {
            assert!(
                decision.decision == Verdict::Ignore && decision.target.is_none(),
                "an invalid input gave {:?} with target {:?}",
                decision.decision,
                decision.target
            );
        }
        match decision.decision {
            Verdict::Revoke | Verdict::Ask => check_revoke(triage.source, decision, config, &named),
            Verdict::Alert => {
                let outcome = alert_outcome(triage.source, decision).unwrap_or_else(|| {
                    panic!("an alert decision has no target to alert about: {decision:?}")
                });
                check_message(&outcome);
            }
            Verdict::Ignore => assert!(
                RevocationRequest::from_decision(triage.source, decision).is_none(),
                "an ignore decision became a revocation request"
            ),
        }
    }
    triage
}

/// Every string in a JSON value, keys included.
pub fn collect_strings(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::String(s) => out.push(s.clone()),
        Value::Array(items) => items.iter().for_each(|v| collect_strings(v, out)),
        Value::Object(members) => {
            for (k, v) in members {
                out.push(k.clone());
                collect_strings(v, out);
            }
        }
        _ => {}
    }
}

/// The triage contract: `source` and `decisions`, each with `decision`, `reason`, and
/// `finding` and `target` present (possibly null), `target` with its five keys.
fn check_contract_json(triage: &Triage) {
    let json = triage.to_json();
    assert!(json.get("source").is_some_and(Value::is_string), "{json}");
    let decisions = json
        .get("decisions")
        .and_then(Value::as_array)
        .unwrap_or_else(|| panic!("triage JSON has no decisions array: {json}"));
    for d in decisions {
        for key in ["decision", "reason", "finding", "target"] {
            assert!(d.get(key).is_some(), "decision without {key}: {d}");
        }
        if let Some(target) = d.get("target").and_then(Value::as_object) {
            for key in ["kind", "account", "name", "access_key_id", "session"] {
                assert!(target.contains_key(key), "target without {key}: {d}");
            }
        }
    }
}

/// A decision's reason is logged and printed by `cutoff triage`: bounded, one line, no
/// control character. In [`strict`] mode (the default) also for invalid inputs, and
/// without the invisible formatting characters of [`is_unsafe_char`] either (a valid
/// manual request's `reason` may carry a bidirectional override into it).
fn check_reason(decision: &Decision) {
    let strict = strict();
    if decision.invalid.is_some() && !strict {
        return;
    }
    for text in std::iter::once(decision.reason.as_str()).chain(decision.invalid.as_deref()) {
        assert!(
            text.chars().count() <= REASON_LIMIT,
            "a triage reason is {} characters long (limit {REASON_LIMIT}): {}…",
            text.chars().count(),
            text.chars().take(200).collect::<String>()
        );
        let unsafe_char = |c: char| {
            if strict {
                is_unsafe_char(c)
            } else {
                c.is_control()
            }
        };
        if let Some(c) = text.chars().find(|c| unsafe_char(*c)) {
            panic!("a triage reason carries the character {c:?}: {text:?}");
        }
    }
}

fn check_revoke(source: Source, decision: &Decision, config: &TriageConfig, named: &[String]) {
    assert!(decision.invalid.is_none(), "an invalid input was revoked");
    assert!(
        decision.evidence.finding_format != Some(FindingFormat::Ocsf) || config.securityhub_v2,
        "an OCSF finding was revoked with CUTOFF_SECURITYHUB_V2 off"
    );
    let target = decision
        .target
        .as_ref()
        .unwrap_or_else(|| panic!("a revoke decision has no target: {decision:?}"));
    // A role whose name only looks service-linked or Identity Center goes to the
    // revoker, which decides from the path IAM returns.
    assert!(
        target.kind.is_revocable()
            || matches!(
                target.kind,
                TargetKind::ServiceLinkedRole | TargetKind::IdentityCenterRole
            )
            || (source == Source::Manual && target.kind == TargetKind::InstanceProfile),
        "revoke of an alert-only kind: {target}"
    );
    assert!(
        config.is_protected(target).is_none(),
        "revoke of a protected principal: {target}"
    );
    check_target_values(target);
    assert!(
        named.iter().any(|s| s.contains(target.name.as_str())),
        "revoked name {} is written nowhere in the input",
        target.name
    );
    assert!(
        named.iter().any(|s| s.contains(target.account.as_str())),
        "revoked account {} is written nowhere in the input",
        target.account
    );

    // What intake queues, and what the revoker reads back.
    let request = RevocationRequest::from_decision(source, decision)
        .unwrap_or_else(|| panic!("a revoke decision gave no request: {decision:?}"));
    assert_eq!(
        &request.target, target,
        "the queued target is not the decided one"
    );
    assert_eq!(request.action, ManualAction::Revoke);
    // Only a finding graded between the thresholds asks, and only when the deployment
    // says so; what asks is queued as needing approval, what revokes is not.
    let asks = decision.decision == Verdict::Ask;
    assert_eq!(request.needs_approval, asks, "{decision:?}");
    if asks {
        assert_eq!(
            config.medium_findings,
            cutoff_domain::settings::MediumFindings::Ask,
            "asked for approval with CUTOFF_MEDIUM_FINDINGS=alert"
        );
        let severity = decision.finding.as_ref().and_then(|f| f.severity);
        assert!(
            severity.is_some_and(|s| s >= config.alert_severity && s < config.revoke_severity),
            "asked for approval at severity {severity:?}"
        );
    }
    check_queue_body(&request);

    // What the owner reads, whatever the revoker's outcome.
    for status in [
        Status::Applied,
        Status::DryRun,
        Status::Protected,
        Status::AwaitingApproval,
    ] {
        check_message(&Outcome::for_request(&request, status, "fuzzed"));
    }
    check_message(
        &Outcome::for_request(&request, Status::Applied, "fuzzed")
            .failed(FailureKind::AccessDenied, "x"),
    );
}

/// The validated types inside a target still validate.
fn check_target_values(target: &Target) {
    for (what, ok) in [
        ("account", Account::parse(target.account.as_str()).is_ok()),
        ("name", PrincipalName::parse(target.name.as_str()).is_ok()),
        (
            "session",
            target
                .session
                .as_ref()
                .is_none_or(|s| SessionName::parse(s.as_str()).is_ok()),
        ),
        (
            "access key",
            target
                .access_key_id
                .as_ref()
                .is_none_or(|k| AccessKeyId::parse(k.as_str()).is_ok()),
        ),
    ] {
        assert!(ok, "target {what} does not validate: {target:?}");
    }
}

/// The SQS body: JSON the revoker reads back to the same request, one FIFO group per
/// principal, a 64-hex-digit deduplication id.
fn check_queue_body(request: &RevocationRequest) {
    let body = serde_json::to_string(request)
        .unwrap_or_else(|e| panic!("a request does not serialise: {e}"));
    let mut back: RevocationRequest = serde_json::from_str(&body)
        .unwrap_or_else(|e| panic!("the revoker cannot read the queue body {body}: {e}"));
    let mut sent = request.clone();
    // serde_json's default float parser may differ from the shortest printed form by
    // one unit in the last place; a severity is compared with a tolerance.
    match (sent.trigger.severity.take(), back.trigger.severity.take()) {
        (Some(a), Some(b)) => assert!((a - b).abs() <= a.abs() * 1e-12, "severity {a} → {b}"),
        (a, b) => assert_eq!(a, b, "severity lost or invented in the queue body"),
    }
    assert_eq!(
        back, sent,
        "the queue body does not read back to the request"
    );
    let t = &request.target;
    assert_eq!(
        group_id(request),
        format!("{}/{}/{}", t.account, t.kind, t.name)
    );
    let dedup = deduplication_id(request, &body);
    assert!(
        dedup.len() == 64 && dedup.bytes().all(|b| b.is_ascii_hexdigit()),
        "deduplication id {dedup:?}"
    );
}

// ---------------------------------------------------------------------------------------
// Messages
// ---------------------------------------------------------------------------------------

/// The characters `notify::clean` documents it removes from outside text: control
/// characters and invisible formatting characters (zero-width, bidirectional
/// embeddings, overrides and isolates, line and paragraph separators, the BOM,
/// interlinear annotations). The newline is allowed in a body, where cutoff itself
/// writes it.
pub fn is_unsafe_char(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{200B}'..='\u{200F}'
            | '\u{2028}'..='\u{202E}'
            | '\u{2060}'..='\u{2069}'
            | '\u{FEFF}'
            | '\u{FFF9}'..='\u{FFFB}')
}

/// Invisible or direction-changing characters that `notify::clean` does not list:
/// the Arabic letter mark (U+061C, a bidirectional control like U+200F), the soft
/// hyphen, the Mongolian vowel separator, the combining grapheme joiner, Hangul fillers
/// and the tag characters (U+E0000–U+E007F, invisible ASCII look-alikes). See the
/// report in tests/integration/hostile.rs
/// (`invisible_characters_beyond_the_documented_set`).
pub fn is_invisible_beyond_documented(c: char) -> bool {
    matches!(
        c,
        '\u{061C}'
            | '\u{00AD}'
            | '\u{180E}'
            | '\u{034F}'
            | '\u{115F}'
            | '\u{1160}'
            | '\u{3164}'
            | '\u{FFA0}'
            | '\u{E0000}'..='\u{E007F}'
    )
}

/// Renders an outcome the way the notifier does (owner known or not) and checks the
/// message contract.
pub fn check_message(outcome: &Outcome) {
    for owner_known in [true, false] {
        check_rendered(outcome, &notify::render(outcome, owner_known));
    }
    let note = notify::finding_note(
        outcome,
        &notify::Route {
            owner_topic: None,
            security_topic: "arn:aws:sns:us-east-1:999988887777:cutoff-security".to_owned(),
            owner_known: false,
            team: outcome.owner.team.clone(),
        },
    );
    assert!(note.chars().count() <= notify::NOTE_MAX, "note too long");
    if let Some(c) = note.chars().find(|c| is_unsafe_char(*c)) {
        panic!("a Security Hub note carries {c:?}");
    }
}

/// The outside strings of an outcome, with the cut `notify` documents for each.
pub fn outside_strings(o: &Outcome) -> Vec<(&'static str, &str, usize)> {
    let mut out = vec![
        ("trigger.source", o.trigger.source.as_str(), 32),
        ("detail", o.detail.as_str(), FIELD_MAX),
    ];
    let t = &o.trigger;
    for (name, value) in [
        ("trigger.finding_id", &t.finding_id),
        ("trigger.finding_type", &t.finding_type),
        ("trigger.product_arn", &t.product_arn),
        ("trigger.requested_by", &t.requested_by),
        ("trigger.reason", &t.reason),
        ("policy", &o.policy),
        ("owner.topic", &o.owner.topic),
    ] {
        if let Some(v) = value {
            out.push((name, v.as_str(), FIELD_MAX));
        }
    }
    if let Some(team) = &o.owner.team {
        out.push(("owner.team", team.as_str(), 128));
    }
    if let Some(p) = &o.propagation {
        out.push(("propagation", p.as_str(), 32));
    }
    if let Some(e) = &o.error {
        out.push(("error.kind", e.kind.as_str(), 32));
        out.push(("error.message", e.message.as_str(), FIELD_MAX));
    }
    for a in &o.actions {
        out.push(("actions[]", a.as_str(), FIELD_MAX));
    }
    out
}

fn check_rendered(outcome: &Outcome, m: &cutoff_domain::notify::SnsMessage) {
    // Subject: printable ASCII, shorter than SNS's limit, never empty.
    assert!(
        !m.subject.is_empty()
            && m.subject.len() < SUBJECT_LIMIT
            && m.subject.chars().all(|c| (' '..='~').contains(&c)),
        "subject is not at most 99 printable ASCII characters: {:?}",
        m.subject
    );

    // Body: no control character but the newline, no invisible formatting character.
    if let Some(c) = m.body.chars().find(|&c| c != '\n' && is_unsafe_char(c)) {
        panic!("the body carries {c:?}");
    }
    let line_separator = format!("\n{SEPARATOR}\n");
    assert_eq!(
        m.body.matches(&line_separator).count(),
        1,
        "the JSON separator line is missing or forged"
    );

    // No line carries more of an outside string than the longest documented cut.
    // Whitespace runs count as one space on both sides, and [`TEMPLATE_SLACK`]
    // characters are allowed for cutoff's own text next to a value that happens to
    // match the input (a label before it, or another field holding part of the same
    // string); the exact cut of every field is checked on the JSON part below, which
    // the human part is written from.
    let inputs = outside_strings(outcome);
    let automata: Vec<(&str, SuffixAutomaton)> = inputs
        .iter()
        .filter(|(_, s, _)| s.chars().count() > FIELD_MAX)
        .map(|(name, s, _)| (*name, SuffixAutomaton::new(&visible(s))))
        .collect();
    if !automata.is_empty() {
        for line in m.body.lines() {
            let line = visible(line);
            for (name, shown) in &automata {
                let longest = shown.longest_common(&line);
                assert!(
                    longest <= FIELD_MAX + TEMPLATE_SLACK,
                    "a body line carries {longest} consecutive characters of {name} (cut {FIELD_MAX})"
                );
            }
        }
    }

    // The JSON part reads back, every outside field within its cut and clean.
    let (_, json) = m
        .body
        .rsplit_once(&line_separator)
        .unwrap_or_else(|| panic!("no JSON part"));
    let back: Outcome = serde_json::from_str(json)
        .unwrap_or_else(|e| panic!("the JSON part of a message does not read back: {e}"));
    assert_eq!(back.status, outcome.status);
    assert_eq!(back.target, outcome.target);
    for (name, value, cut) in outside_strings(&back) {
        assert!(
            value.chars().count() <= cut,
            "{name} is {} characters in the JSON part (cut {cut})",
            value.chars().count()
        );
        if let Some(c) = value.chars().find(|c| is_unsafe_char(*c)) {
            panic!("{name} carries {c:?} in the JSON part");
        }
    }
    assert!(
        back.actions.len() <= 20,
        "{} actions shown",
        back.actions.len()
    );

    // Attributes feed subscription filter policies.
    for (name, value) in &m.attributes {
        assert!(
            value.chars().count() <= 128 && !value.chars().any(is_unsafe_char),
            "attribute {name} = {value:?}"
        );
    }

    check_chat(m);
}

/// The chat body: the documented schema within cutoff's bounds; no control or
/// invisible character; nothing outside text could make a mention, a link or a code
/// span of (cutoff's own text has no angle or square bracket either); and the whole
/// SNS message within SNS's limit.
fn check_chat(m: &notify::SnsMessage) {
    let chat: Value = serde_json::from_str(&m.chat.to_json()).expect("the chat body is JSON");
    let problems = notify::chat::schema_problems(&chat);
    assert!(
        problems.is_empty(),
        "the chat body breaks its schema: {problems:?}"
    );
    let content = &m.chat.content;
    let texts = [
        &content.title,
        &content.description,
        &m.chat.metadata.summary,
    ]
    .into_iter()
    .chain(&content.next_steps)
    .chain(&content.keywords);
    for text in texts {
        if let Some(c) = text.chars().find(|&c| c != '\n' && is_unsafe_char(c)) {
            panic!("the chat body carries {c:?}: {text}");
        }
        for forbidden in ["<", ">", "[", "]"] {
            assert!(
                !text.contains(forbidden),
                "{forbidden} in the chat body: {text}"
            );
        }
        assert!(
            !pages_everyone(text),
            "a mention of everyone in the chat body: {text}"
        );
        for line in text.lines() {
            assert!(
                line.matches('`').count() % 2 == 0,
                "an unbalanced code span in the chat body: {line}"
            );
        }
    }
    let size = notify::message_structure(m).len();
    assert!(
        size <= notify::SNS_MESSAGE_MAX_BYTES,
        "the SNS message is {size} bytes"
    );
}

/// Whether `text` holds `@channel`, `@here`, `@everyone` or `@all` as a word of its
/// own (an `@` inside a word, as in an e-mail address, mentions nobody).
fn pages_everyone(text: &str) -> bool {
    text.match_indices('@').any(|(i, _)| {
        let before = text[..i].chars().next_back();
        let word: String = text[i + 1..]
            .chars()
            .take_while(|c| c.is_alphanumeric())
            .collect();
        !before.is_some_and(char::is_alphanumeric)
            && ["channel", "here", "everyone", "all"]
                .iter()
                .any(|b| word.eq_ignore_ascii_case(b))
    })
}

/// `s` as a message shows it at best: unsafe characters and whitespace as one space
/// per run.
fn visible(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut last_space = false;
    for c in s.chars() {
        if is_unsafe_char(c) || c.is_whitespace() {
            if !last_space {
                out.push(' ');
            }
            last_space = true;
        } else {
            out.push(c);
            last_space = false;
        }
    }
    out
}

/// A suffix automaton of a string: the length, in characters, of the longest
/// substring it shares with another string, in time linear in both.
pub struct SuffixAutomaton {
    /// Per state: its transitions (few per state, so a list), suffix link, length.
    next: Vec<Vec<(char, usize)>>,
    link: Vec<usize>,
    len: Vec<usize>,
}

const NO_LINK: usize = usize::MAX;

impl SuffixAutomaton {
    pub fn new(s: &str) -> Self {
        let mut sa = Self {
            next: vec![Vec::new()],
            link: vec![NO_LINK],
            len: vec![0],
        };
        let mut last = 0;
        for c in s.chars() {
            let cur = sa.push(sa.len[last] + 1, NO_LINK, Vec::new());
            let mut p = last;
            while p != NO_LINK && sa.step(p, c).is_none() {
                sa.next[p].push((c, cur));
                p = sa.link[p];
            }
            if p == NO_LINK {
                sa.link[cur] = 0;
            } else if let Some(q) = sa.step(p, c) {
                if sa.len[p] + 1 == sa.len[q] {
                    sa.link[cur] = q;
                } else {
                    let clone = sa.push(sa.len[p] + 1, sa.link[q], sa.next[q].clone());
                    while p != NO_LINK && sa.step(p, c) == Some(q) {
                        sa.set(p, c, clone);
                        p = sa.link[p];
                    }
                    sa.link[q] = clone;
                    sa.link[cur] = clone;
                }
            }
            last = cur;
        }
        sa
    }

    fn push(&mut self, len: usize, link: usize, next: Vec<(char, usize)>) -> usize {
        self.next.push(next);
        self.link.push(link);
        self.len.push(len);
        self.len.len() - 1
    }

    fn step(&self, state: usize, c: char) -> Option<usize> {
        self.next[state]
            .iter()
            .find(|(k, _)| *k == c)
            .map(|(_, to)| *to)
    }

    fn set(&mut self, state: usize, c: char, to: usize) {
        if let Some(edge) = self.next[state].iter_mut().find(|(k, _)| *k == c) {
            edge.1 = to;
        }
    }

    /// The length of the longest common substring of the automaton's string and `t`.
    pub fn longest_common(&self, t: &str) -> usize {
        let (mut state, mut length, mut best) = (0, 0, 0);
        for c in t.chars() {
            while state != 0 && self.step(state, c).is_none() {
                state = self.link[state];
                length = self.len[state];
            }
            if let Some(n) = self.step(state, c) {
                state = n;
                length += 1;
            }
            best = best.max(length);
        }
        best
    }
}

// ---------------------------------------------------------------------------------------
// policy_document
// ---------------------------------------------------------------------------------------

/// `PolicyDocument::parse` on any text, then `merge_role_wide` with [`FUZZ_CUTOFF`].
pub fn policy_document(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // Sizing never panics, whatever the text.
    let _ = policy::stored_policy_size(text);
    let Ok(document) = PolicyDocument::parse(text) else {
        return;
    };
    check_policy_document(&document);
}

fn fuzz_cutoff() -> Cutoff {
    Cutoff::parse(FUZZ_CUTOFF).unwrap_or_else(|e| panic!("{e}"))
}

/// Reads a document back from each form cutoff or IAM writes it in.
fn reads_back(document: &PolicyDocument, what: &str) {
    for (form, text) in [
        ("compact", document.to_json()),
        ("pretty", document.to_pretty_json()),
        ("url-encoded", url_encode(&document.to_json())),
    ] {
        if text.len() > policy::MAX_DOCUMENT_BYTES {
            // Refused by design; IAM's own limits are a hundred times smaller.
            assert!(matches!(
                PolicyDocument::parse(&text),
                Err(PolicyError::TooLarge { .. })
            ));
            continue;
        }
        match PolicyDocument::parse(&text) {
            Ok(again) if strict() => assert_eq!(
                &again, document,
                "{what} does not read back to itself ({form})"
            ),
            Ok(again) => assert!(
                same_json_but_float_rounding(&json_of(&again), &json_of(document)),
                "{what} does not read back to itself ({form}): {again} != {document}"
            ),
            Err(PolicyError::NotJson { message })
                if !strict() && message.contains("recursion limit exceeded") => {}
            Err(e) => panic!("{what} does not parse back ({form}): {e}"),
        }
    }
}

fn json_of(document: &PolicyDocument) -> Value {
    serde_json::from_str(&document.to_json()).unwrap_or(Value::Null)
}

/// Equal, but for non-integer numbers that differ in the last bits: serde_json's
/// default float parser is not correctly rounded, so the shortest form of a float does
/// not always read back to the same float (fixed with serde_json's `float_roundtrip`; exact in [`strict`] mode).
fn same_json_but_float_rounding(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) if x.is_f64() || y.is_f64() => {
            match (x.as_f64(), y.as_f64()) {
                (Some(x), Some(y)) => x == y || (x - y).abs() <= x.abs().max(y.abs()) * 1e-15,
                _ => false,
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y)
                    .all(|(x, y)| same_json_but_float_rounding(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y)
                    .all(|((kx, vx), (ky, vy))| kx == ky && same_json_but_float_rounding(vx, vy))
        }
        _ => a == b,
    }
}

/// The checks on a parsed document.
pub fn check_policy_document(document: &PolicyDocument) {
    reads_back(document, "a parsed document");
    let size = document.size();
    assert_eq!(size, policy::policy_size(&document.to_json()));

    let new = fuzz_cutoff();
    let merged = policy::merge_role_wide(Some(document), new);
    let previous = document.role_wide_cutoff();
    assert_eq!(
        merged.previous, previous,
        "merge misread the cutoff in force"
    );
    assert_eq!(
        merged.cutoff,
        previous.map_or(new, |p| p.max(new)),
        "merge is not max(existing, new)"
    );
    assert_eq!(
        merged.changed,
        previous.is_none_or(|p| p < new),
        "merge wrote when nothing changed, or did not write when it should"
    );
    if !merged.changed {
        assert_eq!(
            &merged.document, document,
            "an unchanged merge altered the document"
        );
    }
    assert_eq!(merged.document.role_wide_cutoff(), Some(merged.cutoff));
    assert_eq!(
        merged.document.foreign_statements(),
        document.foreign_statements(),
        "merge lost, changed or reordered a foreign statement"
    );
    assert_eq!(
        merged.document.session_cutoffs(),
        document.session_cutoffs(),
        "merge changed a session deny"
    );
    assert_eq!(merged.document.version(), document.version());
    if merged.changed {
        let role_wide = merged
            .document
            .statements()
            .iter()
            .filter(|s| matches!(policy::classify_statement(s), StatementKind::RoleWide(_)))
            .count();
        assert_eq!(role_wide, 1, "merge left {role_wide} role-wide statements");
    }
    reads_back(&merged.document, "a merged document");

    let again = policy::merge_role_wide(Some(&merged.document), new);
    assert!(!again.changed, "merging the same cutoff twice writes twice");

    // Release removes our statements and nothing else.
    let removal = policy::remove_role_wide(&merged.document);
    assert!(
        removal.changed(),
        "release found no role-wide statement to remove"
    );
    let left = removal.remaining.as_ref();
    assert_eq!(
        left.map(PolicyDocument::foreign_statements)
            .unwrap_or_default(),
        document.foreign_statements(),
        "release touched a foreign statement"
    );
    assert!(left.is_none_or(|d| d.role_wide_cutoff().is_none()));
}

/// What IAM's `GetRolePolicy` returns: the document percent-encoded.
fn url_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 3);
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

// ---------------------------------------------------------------------------------------
// manual_request
// ---------------------------------------------------------------------------------------

/// The fields a manual request may have.
pub const MANUAL_FIELDS: [&str; 12] = [
    "action",
    "account",
    "role",
    "user",
    "principal_arn",
    "access_key_id",
    "session",
    "scope",
    "reason",
    "requested_by",
    "dry_run",
    "force",
];

/// The manual request parser, then the same payload through intake's triage.
pub fn manual_request(data: &[u8]) {
    let Ok(value) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let unknown_field = value
        .as_object()
        .is_some_and(|o| o.keys().any(|k| !MANUAL_FIELDS.contains(&k.as_str())));
    match event::manual::parse(value.clone()) {
        Ok(request) => {
            assert!(
                !unknown_field,
                "a request with an unknown field was accepted"
            );
            let target = &request.target;
            check_target_values(target);
            if request.scope == Scope::Session {
                assert!(target.session.is_some(), "session scope without a session");
            }
            if target.session.is_some() {
                assert!(
                    matches!(
                        target.kind,
                        TargetKind::Role
                            | TargetKind::ServiceLinkedRole
                            | TargetKind::IdentityCenterRole
                    ),
                    "a session on a {}",
                    target.kind
                );
            }
            if target.access_key_id.is_some() {
                assert_eq!(target.kind, TargetKind::User, "an access key on a non-user");
            }
            for text in [&request.reason, &request.requested_by]
                .into_iter()
                .flatten()
            {
                assert!(
                    text.as_str().chars().count() <= 512
                        && !text.as_str().chars().any(char::is_control)
                );
            }
            let queued = RevocationRequest::from_manual(&request);
            assert_eq!(&queued.target, target);
            assert_eq!(queued.dry_run, request.dry_run);
            assert_eq!(queued.force, request.force);
            check_queue_body(&queued);
            for status in [Status::Applied, Status::Released, Status::Failed] {
                check_message(&Outcome::for_request(&queued, status, "manual"));
            }

            // Through intake: decisions about this target only.
            if reaches_intake_as_manual(&value) {
                let triage = check_event(value, &TriageConfig::default());
                assert_eq!(triage.source, Source::Manual);
                for d in &triage.decisions {
                    assert_eq!(d.target.as_ref(), Some(target), "triage changed the target");
                }
            }
        }
        Err(e) => {
            // The revoker answers an unreadable request with a failed outcome.
            check_message(&Outcome::invalid_request(e.to_string()));
            if reaches_intake_as_manual(&value) {
                let triage = check_event(value, &TriageConfig::default());
                assert!(
                    triage.invalid_inputs().next().is_some(),
                    "a refused manual request did not triage as invalid"
                );
            }
        }
    }
}

/// Intake reads an object with `action` and no envelope (`detail-type`, `detail`) as a
/// manual request.
fn reaches_intake_as_manual(value: &Value) -> bool {
    value.as_object().is_some_and(|o| {
        o.contains_key("action") && !o.contains_key("detail-type") && !o.contains_key("detail")
    })
}

// ---------------------------------------------------------------------------------------
// principal_parsers
// ---------------------------------------------------------------------------------------

/// Every boundary parser on the input as text.
pub fn principal_parsers(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    check_principal_parsers(text);
}

fn round_trips<T, E>(what: &str, input: &str, parse: impl Fn(&str) -> Result<T, E>) -> Option<T>
where
    T: std::fmt::Display + PartialEq + std::fmt::Debug,
    E: std::fmt::Display,
{
    match parse(input) {
        Ok(value) => {
            let printed = value.to_string();
            match parse(&printed) {
                Ok(again) => assert_eq!(again, value, "{what} {input:?} prints as {printed:?}"),
                Err(e) => panic!("{what} {input:?} prints as {printed:?}, which is refused: {e}"),
            }
            Some(value)
        }
        Err(e) => {
            check_error_text(what, &e.to_string());
            None
        }
    }
}

/// An error names the rule and shows a bounded, escaped excerpt.
fn check_error_text(what: &str, message: &str) {
    assert!(
        message.chars().count() <= 600,
        "{what} error is {} characters long",
        message.chars().count()
    );
    if let Some(c) = message.chars().find(|c| is_unsafe_char(*c)) {
        panic!("{what} error carries {c:?}: {message:?}");
    }
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "_+=,.@-".contains(c)
}

pub fn check_principal_parsers(text: &str) {
    if round_trips("account", text, Account::parse).is_some() {
        assert!(text.len() == 12 && text.bytes().all(|b| b.is_ascii_digit()));
    }
    if round_trips("name", text, PrincipalName::parse).is_some() {
        assert!(
            (1..=64).contains(&text.len())
                && text.chars().all(is_name_char)
                && !text.contains(".."),
            "name {text:?} accepted"
        );
    }
    if round_trips("session", text, SessionName::parse).is_some() {
        assert!((2..=64).contains(&text.len()) && text.chars().all(is_name_char));
    }
    if round_trips("access key id", text, AccessKeyId::parse).is_some() {
        assert!(
            (16..=128).contains(&text.len())
                && text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        );
    }
    round_trips("unique id", text, UniqueId::parse);
    if round_trips("path", text, IamPath::parse).is_some() {
        // IAM allows any printable ASCII; cutoff refuses `.` and `..` segments.
        assert!(
            text.starts_with('/')
                && text.ends_with('/')
                && text.bytes().all(|b| (0x21..=0x7e).contains(&b))
                && !text.split('/').any(|s| s == "." || s == ".."),
            "path {text:?} accepted"
        );
    }
    round_trips("name pattern", text, NamePattern::parse);
    round_trips("session principal", text, SessionPrincipal::parse);
    if let Some(arn) = round_trips("principal ARN", text, PrincipalArn::parse) {
        let target = Target::from_arn(&arn);
        check_target_values(&target);
        assert_eq!(target.account, arn.account);
        assert!(
            text.contains(target.name.as_str()) || target.kind == TargetKind::Root,
            "ARN {text:?} names {target}, which it does not contain"
        );
    }
    if let Some(cutoff) = round_trips("cutoff", text, Cutoff::parse) {
        // Whole seconds as IAM and the console write them, or the fraction a document
        // held, kept exactly (never rounded: that could lower a cutoff).
        let shown = cutoff.to_string();
        assert!(
            shown.ends_with('Z')
                && (shown.len() == 20 || (shown.len() > 21 && shown.as_bytes()[19] == b'.')),
            "cutoff shown as {shown:?}"
        );
    }
    if let Some(age) = round_trips("max session age", text, MaxSessionAge::parse) {
        let minutes = age.as_duration().num_minutes();
        assert!(
            (15..=36 * 60).contains(&minutes),
            "max session age {minutes} min"
        );
    }
    // Names go through serde the same way.
    let quoted = Value::String(text.to_owned());
    let via_serde = serde_json::from_value::<PrincipalName>(quoted.clone()).ok();
    assert_eq!(via_serde, PrincipalName::parse(text).ok());
    let via_serde = serde_json::from_value::<Account>(quoted).ok();
    assert_eq!(via_serde, Account::parse(text).ok());
}
