//! The chat body of a message: a custom notification of Amazon Q Developer in chat
//! applications (formerly AWS Chatbot), which renders it in Slack and Microsoft
//! Teams channels.
//!
//! # What AWS documents
//!
//! "Custom notifications using Amazon Q Developer in chat applications"
//! (<https://docs.aws.amazon.com/chatbot/latest/adminguide/custom-notifs.html>):
//!
//! - The event format is `{"version", "source", "id", "content": {"textType",
//!   "title", "description", "nextSteps": [..], "keywords": [..]}, "metadata":
//!   {"threadId", "summary", "eventType", "relatedResources": [..],
//!   "additionalContext": {..}}}`, every value a string but the arrays (of strings)
//!   and `additionalContext` (string to string).
//! - `version` is required and must be `1.0`; `source` is required and must be
//!   `custom`; `id` is optional, a unique event identifier.
//! - `textType` is optional; only `client-markdown` is supported: the chat service
//!   renders the content in the target platform's own markdown (Slack's mrkdwn, or
//!   Teams'), so cutoff writes only what both read the same way (`*bold*` labels,
//!   bare links, plain lines).
//! - `title` supports markdown, emojis included. `threadId` threads notifications
//!   (when the channel's preferences allow threaded updates; `@Amazon Q
//!   preferences` in the channel).
//! - `metadata.enableCustomActions` (a boolean, used in AWS's own samples) says
//!   whether custom action buttons may be attached.
//! - The chat service subscribes to the topic itself when a topic is added to a
//!   channel configuration, with protocol `https` and the endpoint
//!   `https://global.sns-api.chatbot.amazonaws.com` (as public infrastructure code
//!   that manages the subscription declares it): with `MessageStructure=json` it
//!   receives the `https` key ([`super::publish`]).
//!
//! The copies of that page this was written from give no limit on any field's
//! length or on how many next steps or keywords a notification may carry. cutoff
//! bounds each itself ([`limits`]), to what one chat message shows well: the
//! description to 3,000 characters, the most Slack shows in one section block
//! (<https://api.slack.com/reference/block-kit/blocks#section>), since how the chat
//! service lays the description out is not documented. The custom actions API
//! (<https://docs.aws.amazon.com/chatbot/latest/APIReference/API_CustomActionAttachment.html>)
//! matches a notification's `eventType` against `NotificationType` (1 to 100 of
//! `[a-zA-Z0-9-]`) and reads variables as keys of `[A-Za-z0-9-_]` (up to 100) with
//! values of `[\x21-\x7F]` (up to 1,024): `eventType` and `additionalContext` keep to
//! those.
//!
//! # Hostile text
//!
//! Finding ids and types, reasons, requesters, error messages and tags reach the
//! message from outside, some from whoever could forge a finding. In a chat channel
//! such text could mention everyone (`<!channel>`, `@here`), link anywhere
//! (`<https://…|text>`, `[text](https://…)`), or dress itself as cutoff's own words
//! (`*bold*`, a code span that closes cutoff's). [`neutralise`] takes every one of
//! those powers away before any outside text is written, and cutoff's own markdown
//! goes only around text it neutralised or values it validated.

use serde::Serialize;

use super::links::ConsoleLinks;
use super::{MessageContext, Place, clean, is_routine};
use crate::outcome::{Outcome, Status};
use crate::principal::Target;

/// cutoff's bounds on each field (characters, unless a count), within which every
/// notification it writes stays; see the module documentation for why.
pub mod limits {
    pub const TITLE: usize = 250;
    pub const DESCRIPTION: usize = 3_000;
    pub const NEXT_STEPS: usize = 8;
    pub const NEXT_STEP: usize = 500;
    pub const KEYWORDS: usize = 10;
    pub const KEYWORD: usize = 64;
    pub const SUMMARY: usize = 250;
    pub const THREAD_ID: usize = 256;
    pub const ID: usize = 128;
    /// `NotificationType` of the custom actions API.
    pub const EVENT_TYPE: usize = 100;
    pub const CONTEXT_ENTRIES: usize = 10;
    /// A custom action variable's key and value.
    pub const CONTEXT_KEY: usize = 100;
    pub const CONTEXT_VALUE: usize = 1_024;
}

/// A custom notification, with exactly the documented field names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChatNotification {
    /// `1.0`.
    pub version: &'static str,
    /// `custom`.
    pub source: &'static str,
    pub id: String,
    pub content: ChatContent,
    pub metadata: ChatMetadata,
    /// The description reduced to what every message must carry (the headline, the
    /// region, the request id, the links): what [`ChatNotification::compact`] keeps
    /// when the whole SNS message would not fit.
    #[serde(skip)]
    essentials: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChatContent {
    /// `client-markdown`.
    pub text_type: &'static str,
    pub title: String,
    pub description: String,
    pub next_steps: Vec<String>,
    pub keywords: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChatMetadata {
    /// The principal: every message about it threads together.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thread_id: Option<String>,
    pub summary: String,
    pub event_type: String,
    pub additional_context: std::collections::BTreeMap<String, String>,
    /// Always false: a custom action button would run a command with variables read
    /// from this notification, and parts of it came from outside.
    pub enable_custom_actions: bool,
}

impl ChatNotification {
    fn new(id: String, content: ChatContent, metadata: ChatMetadata, essentials: String) -> Self {
        Self {
            version: "1.0",
            source: "custom",
            id,
            content,
            metadata,
            essentials,
        }
    }

    /// The notification with the shortest description that still carries the
    /// headline, region, request id and links, and at most three next steps: what
    /// goes out when the whole SNS message would otherwise be too large.
    pub fn compact(&self) -> Self {
        let mut compact = self.clone();
        compact.content.description = self.essentials.clone();
        compact.content.next_steps.truncate(3);
        compact
    }

    /// The JSON the chat service reads. Plain data with string keys: serialising
    /// cannot fail.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// Outside text made inert in both Slack's and Teams' markdown, one line of it:
///
/// - `<` and `>` become `‹` and `›`: no `<!channel>`, `<@U…>`, `<#C…>`, `<url|text>`
///   or Teams `<at>` mention, no HTML;
/// - `[` and `]` become `［` and `］`: no `[text](url)` link;
/// - a backtick becomes `'`: outside text cannot close the code span cutoff puts it
///   in, or open one;
/// - `*` and `~` become `∗` and `∼`: no bold or struck text that passes for
///   cutoff's own (`_` stays: IAM names use it, and it can only italicise);
/// - `://` becomes `:⁄⁄`: a URL in outside text is not linked;
/// - `@channel`, `@here`, `@everyone` and `@all` get a fullwidth `＠`: a chat that
///   links names (Slack's `link_names`) cannot page a whole channel. Other `@`s stay
///   (e-mail addresses, Identity Center user names).
///
/// Visible look-alikes rather than invisible characters: the message stays free of
/// them (`is_unsafe_char`), and a person still reads the value.
pub fn neutralise(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        out.push(match c {
            '<' => '‹',
            '>' => '›',
            '[' => '［',
            ']' => '］',
            '`' => '\'',
            '*' => '∗',
            '~' => '∼',
            c if super::is_unsafe_char(c) => ' ',
            c => c,
        });
    }
    let out = out.replace("://", ":⁄⁄");
    break_broadcast_mentions(&out)
}

fn break_broadcast_mentions(text: &str) -> String {
    const BROADCASTS: [&str; 4] = ["channel", "here", "everyone", "all"];
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('@') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let word_end = after
            .find(|c: char| !c.is_alphanumeric())
            .unwrap_or(after.len());
        let word = &after[..word_end];
        let glued = rest[..at]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_alphanumeric());
        if !glued && BROADCASTS.iter().any(|b| word.eq_ignore_ascii_case(b)) {
            out.push('＠');
        } else {
            out.push('@');
        }
        rest = after;
    }
    out.push_str(rest);
    out
}

/// Outside text, cut to `max` characters, in a code span: shown as it is, never as
/// markdown.
pub fn code(text: &str, max: usize) -> String {
    let text = clean(text, max);
    if text.trim().is_empty() {
        return "(none)".to_owned();
    }
    format!("`{}`", neutralise(&text))
}

/// A line for the chat: neutralised and cut, and outside of a code span, so a dot
/// inside a word becomes `․` (one dot leader): Slack and Teams link bare host names
/// (`www.aws-signin-verify.com`, a name anyone can give an IAM user), and a host in
/// cutoff's message must never be a link cutoff did not make. Exact names are in the
/// code spans and the text body.
fn plain(text: &str, max: usize) -> String {
    unlink_hosts(&neutralise(&clean(text, max)))
}

fn unlink_hosts(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    chars
        .iter()
        .enumerate()
        .map(|(i, &c)| {
            let inside = i > 0
                && chars.get(i + 1).is_some_and(|n| !n.is_whitespace())
                && !chars[i - 1].is_whitespace();
            if c == '.' && inside { '․' } else { c }
        })
        .collect()
}

/// Keeps whole lines of `head` while they fit before `tail` (which always fits: it
/// is cut first if it alone is too long), so no cut ever splits a code span.
fn fit_lines(head: &[String], tail: &[String], max: usize) -> String {
    let tail = tail.join("\n");
    let tail = if tail.chars().count() > max {
        clean_lines(&tail, max)
    } else {
        tail
    };
    let mut room = max.saturating_sub(tail.chars().count() + 1);
    let mut kept = Vec::new();
    for (i, line) in head.iter().enumerate() {
        let len = line.chars().count() + 1;
        if len > room {
            let more = head.len() - i;
            let note = format!("… ({more} more line{} in the e-mail)", plural(more));
            if note.chars().count() < room {
                kept.push(note);
            }
            break;
        }
        room -= len;
        kept.push(line.clone());
    }
    kept.push(tail);
    kept.retain(|l| !l.is_empty());
    kept.join("\n")
}

/// Whole lines of `text` up to `max` characters (a single line longer than that is
/// dropped, not split).
fn clean_lines(text: &str, max: usize) -> String {
    let mut out = String::new();
    for line in text.lines() {
        if out.chars().count() + line.chars().count() + 1 > max {
            break;
        }
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str(line);
    }
    out
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// Next steps: each neutralised and cut, at most [`limits::NEXT_STEPS`] (the last
/// says how many more the e-mail has).
fn steps(all: &[String]) -> Vec<String> {
    let mut out: Vec<String> = all
        .iter()
        .take(limits::NEXT_STEPS)
        .map(|s| plain(s, limits::NEXT_STEP))
        .collect();
    if all.len() > limits::NEXT_STEPS {
        let more = all.len() - (limits::NEXT_STEPS - 1);
        out.truncate(limits::NEXT_STEPS - 1);
        out.push(format!("… {more} more steps in the e-mail."));
    }
    out
}

/// A keyword of letters, digits and `-._:` only (anything else is left out), cut.
fn keyword(text: &str) -> Option<String> {
    let k: String = text
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || "-._:".contains(*c))
        .take(limits::KEYWORD)
        .collect();
    (!k.is_empty()).then_some(k)
}

/// A custom action variable's value: printable ASCII without spaces, or left out.
/// `additionalContext` from its candidate entries: those whose value is there and
/// passes [`context_value`].
fn additional_context<const N: usize>(
    entries: [(&str, Option<&str>); N],
) -> std::collections::BTreeMap<String, String> {
    entries
        .into_iter()
        .filter_map(|(key, value)| Some((key.to_owned(), value.and_then(context_value)?)))
        .collect()
}

fn context_value(text: &str) -> Option<String> {
    (!text.is_empty()
        && text.len() <= limits::CONTEXT_VALUE
        && text.bytes().all(|b| (0x21..0x7f).contains(&b)))
    .then(|| text.to_owned())
}

fn event_type(what: &str) -> String {
    let t: String = format!("cutoff-{what}")
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .take(limits::EVENT_TYPE)
        .collect();
    t
}

/// The principal, as every message about it names it: the thread they share.
fn thread_of(t: &Target) -> String {
    let id: String = format!("cutoff-{}-{}-{}", t.account, t.kind.as_str(), t.name)
        .chars()
        .take(limits::THREAD_ID)
        .collect();
    id
}

fn title(emoji: &str, subject: &str) -> String {
    format!("{emoji} {}", plain(subject, limits::TITLE - 3))
}

fn emoji(o: &Outcome) -> &'static str {
    match o.status {
        _ if is_routine(o) => "ℹ️",
        Status::Applied => "🔒",
        Status::Released => "🔓",
        Status::DryRun => "📝",
        Status::Alerted => "⚠️",
        Status::AlreadyRevoked => "ℹ️",
        Status::AwaitingApproval => "✋",
        Status::ApprovalRefused => "ℹ️",
        Status::ApprovalExpired => "⌛",
        Status::Partial | Status::Failed | Status::Unmodifiable | Status::Protected => "🚨",
    }
}

/// The lines every message carries: region, request id, console links.
fn essential_lines(place: &Place, request_id: Option<&str>, links: &ConsoleLinks) -> Vec<String> {
    let mut lines = vec![format!("*Region:* {}", place.describe_md())];
    lines.push(match request_id {
        Some(id) => format!("*Request id:* {}", code(id, 128)),
        None => "*Request id:* not recorded".to_owned(),
    });
    for (label, link) in links.labelled() {
        let note = if label == "Finding" {
            ""
        } else {
            " (opens in the account you are signed in to)"
        };
        lines.push(format!("*{label}:* {link}{note}"));
    }
    lines
}

/// Parts of a message the plain text and the chat share, worked out once.
pub(super) struct Shared<'a> {
    pub outcome: &'a Outcome,
    pub subject: &'a str,
    pub headline: String,
    pub what_happened: Vec<String>,
    pub next_steps: Vec<String>,
    pub owner_known: bool,
    pub place: Place,
    pub links: ConsoleLinks,
    pub context: &'a MessageContext,
}

/// The chat notification of an outcome (already [`super::sanitized`]).
pub(super) fn for_outcome(s: &Shared<'_>) -> ChatNotification {
    let o = s.outcome;
    let mut head = vec![format!("*{}*", plain(&s.headline, 400))];
    head.extend(s.what_happened.iter().map(|l| plain(l, 600)));
    if let Some(t) = &o.target {
        let mut who = format!(
            "*Principal:* {} {} in account {}",
            super::long_kind(t.kind),
            code(t.name.as_str(), 128),
            code(t.account.as_str(), 12)
        );
        if let Some(session) = &t.session {
            who.push_str(&format!(", session {}", code(session.as_str(), 128)));
        }
        if let Some(key) = &t.access_key_id {
            who.push_str(&format!(", key {}", code(key.as_str(), 32)));
        }
        head.push(who);
    }
    if let Some(cutoff) = o.cutoff {
        head.push(format!(
            "*Cutoff:* {} (sessions issued before it are denied{})",
            code(&cutoff.to_string(), 32),
            if o.status == Status::DryRun {
                ", once written"
            } else {
                ""
            }
        ));
    }
    head.push(asked_by(o));
    if let Some(a) = &o.approval {
        head.push(approval_line(o, a));
    }
    for still in o.still_works.iter().take(5) {
        head.push(format!(
            "*Still works:* {}: {}",
            code(&still.credential, 128),
            code(&still.why, 300)
        ));
    }
    if let Some(error) = &o.error
        && o.status != Status::Partial
    {
        head.push(format!(
            "*Error:* {}: {}",
            code(error.kind.as_str(), 32),
            code(&error.message, 400)
        ));
    }
    head.push(match (&o.owner.team, s.owner_known) {
        (Some(team), true) => format!("*Owner:* team {}", code(team, 128)),
        (None, true) => "*Owner:* the principal's own topic (tag cutoff:notify)".to_owned(),
        (_, false) => {
            "*Owner:* none known: this went to the security team only; find the owner and tag the principal cutoff:owner".to_owned()
        }
    });
    for problem in &s.context.problems {
        head.push(format!(
            "*Configuration problem in cutoff's notifier:* {}",
            code(problem, 300)
        ));
    }
    let tail = essential_lines(&s.place, o.request_id.as_deref(), &s.links);
    let description = fit_lines(&head, &tail, limits::DESCRIPTION);
    let essentials = fit_lines(&head[..1], &tail, limits::DESCRIPTION);

    let mut keywords: Vec<String> = vec![
        o.status.as_str().replace('_', "-"),
        if is_routine(o) { "routine" } else { "incident" }.to_owned(),
        o.trigger.source.as_str().to_owned(),
    ];
    if let Some(t) = &o.target {
        keywords.push(t.kind.as_str().replace('_', "-"));
        keywords.push(t.account.to_string());
    }
    if let Some(severity) = o.trigger.severity {
        keywords.push(format!(
            "severity-{}",
            super::severity_label(severity).to_lowercase()
        ));
    }
    if o.dry_run {
        keywords.push("dry-run".to_owned());
    }
    if o.chain.is_some() {
        keywords.push("follow-up".to_owned());
    }
    let keywords = keywords
        .iter()
        .filter_map(|k| keyword(k))
        .take(limits::KEYWORDS)
        .collect();

    let mut context = std::collections::BTreeMap::new();
    let mut put = |key: &str, value: Option<&str>| {
        if let Some(value) = value.and_then(context_value) {
            context.insert(key.to_owned(), value);
        }
    };
    put("status", Some(o.status.as_str()));
    put("region", s.place.region.as_deref());
    put("homeRegion", s.context.home_region.as_deref());
    put("requestId", o.request_id.as_deref());
    if let Some(t) = &o.target {
        put("account", Some(t.account.as_str()));
        put("principalKind", Some(t.kind.as_str()));
        put("principalName", Some(t.name.as_str()));
    }
    let what = if o.chain.is_some() {
        "follow-up".to_owned()
    } else {
        o.status.as_str().to_owned()
    };
    ChatNotification::new(
        message_id(o),
        ChatContent {
            text_type: "client-markdown",
            title: title(emoji(o), s.subject),
            description,
            next_steps: steps(&s.next_steps),
            keywords,
        },
        ChatMetadata {
            thread_id: o.target.as_ref().map(thread_of),
            summary: plain(s.subject, limits::SUMMARY),
            event_type: event_type(&what),
            additional_context: context.into_iter().take(limits::CONTEXT_ENTRIES).collect(),
            enable_custom_actions: false,
        },
        essentials,
    )
}

/// The approval an outcome is about, in one line: how to decide it while it is open,
/// who decided it once it is not.
fn approval_line(o: &Outcome, a: &crate::approval::ApprovalNote) -> String {
    use crate::approval::{ApprovalState, approve_command, refuse_command, stamp};
    let mut line = format!(
        "*Approval:* {} ({}",
        code(a.id.as_str(), 16),
        a.state.as_str()
    );
    match a.state {
        ApprovalState::Pending => line.push_str(&format!(", expires {})", stamp(a.expires_at))),
        ApprovalState::Expired => line.push_str(&format!(", expired {})", stamp(a.expires_at))),
        _ => line.push(')'),
    }
    if o.status == Status::AwaitingApproval {
        line.push_str(&format!(
            "; approve: {}; refuse: {}",
            code(&approve_command(&a.id), 64),
            code(&refuse_command(&a.id), 64)
        ));
    }
    if let Some(by) = &a.decided_by {
        line.push_str(&format!("; by {}", code(by, 200)));
    }
    if let Some(reason) = &a.reason {
        line.push_str(&format!("; reason {}", code(reason, 300)));
    }
    line
}

/// Who or what asked, in one line.
fn asked_by(o: &Outcome) -> String {
    let t = &o.trigger;
    let mut line = format!("*Asked by:* {}", super::source_label(t));
    if let Some(kind) = &t.finding_type {
        line.push_str(&format!(", finding type {}", code(kind, 200)));
    }
    if let Some(id) = &t.finding_id {
        line.push_str(&format!(", finding {}", code(id, 200)));
    }
    if let Some(severity) = t.severity {
        line.push_str(&format!(
            ", severity {severity:.1} ({})",
            super::severity_label(severity)
        ));
    }
    if let Some(by) = &t.requested_by {
        line.push_str(&format!(
            ", requested by {} ({})",
            code(by, 200),
            if t.requested_by_verified {
                "verified by AWS"
            } else {
                "claimed, not verified"
            }
        ));
    }
    if let Some(reason) = &t.reason {
        line.push_str(&format!(", reason {}", code(reason, 300)));
    }
    if let Some(by) = &t.approved_by {
        line.push_str(&format!(
            ", approved by {} (verified by AWS)",
            code(by, 200)
        ));
    }
    line
}

/// A stable id per published message (an outcome, a summary, a digest): the same one
/// published again (Lambda's retry of the notifier) has the same id; another attempt
/// of the same request, whose words differ, has another.
fn message_id<T: serde::Serialize>(what: &T) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(serde_json::to_vec(what).unwrap_or_default());
    let hex: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
    format!("cutoff-{hex}")
}

/// The chat notification of a sweep run's summary.
pub(super) fn for_summary(
    summary: &crate::summary::SweepSummary,
    subject: &str,
    context: &MessageContext,
) -> ChatNotification {
    let s = summary;
    let trouble = s.has_failures();
    let mut head = vec![format!(
        "*cutoff's scheduled sweep {} finished{}.*",
        code(&s.run_id, 64),
        if trouble {
            " with failures that need a person"
        } else {
            ""
        }
    )];
    if s.dry_run {
        head.push(
            "This was a dry run: nothing was written; the counts say what would change.".to_owned(),
        );
    }
    head.push(format!(
        "*Accounts:* {} of {} reported, {} failed. *Principals:* {} read, {} failed.",
        s.accounts_reported,
        s.accounts,
        s.accounts_failed,
        s.principals_scanned,
        s.principals_failed
    ));
    head.push(format!(
        "*Cutoffs moved:* {}. *Expired removed:* {} statements, {} policies deleted.",
        s.cutoffs_moved, s.statements_removed, s.policies_deleted
    ));
    for f in s.failures.iter().take(10) {
        head.push(format!(
            "*Not swept:* account {} ({}): {}",
            code(f.account.as_str(), 12),
            code(f.kind.as_str(), 32),
            code(&f.message, 300)
        ));
    }
    for e in s.failed.iter().take(10) {
        head.push(format!(
            "*Failed:* {} {} in {}: {}",
            code(&e.kind, 16),
            code(&e.name, 64),
            code(e.account.as_str(), 12),
            code(e.error.as_deref().unwrap_or(""), 300)
        ));
    }
    for problem in &context.problems {
        head.push(format!(
            "*Configuration problem in cutoff's notifier:* {}",
            code(problem, 300)
        ));
    }
    let place = Place::new(None, context.home_region.as_deref());
    let tail = essential_lines(&place, Some(&s.run_id), &ConsoleLinks::default());
    let description = fit_lines(&head, &tail, limits::DESCRIPTION);
    let essentials = fit_lines(&head[..1], &tail, limits::DESCRIPTION);
    let next_steps = if trouble {
        steps(&[
            "Accounts not swept: check that the member role exists there and trusts the sweeper (infra/member-role.yaml), then run `cutoff sweep --account <id>`.".to_owned(),
            "Failed principals: the error says why; the next sweep retries them.".to_owned(),
        ])
    } else {
        Vec::new()
    };
    let mut keywords = vec![
        "sweep".to_owned(),
        if trouble { "failures" } else { "clean" }.to_owned(),
        super::MessageClass::of_summary(s).as_str().to_owned(),
    ];
    if s.dry_run {
        keywords.push("dry-run".to_owned());
    }
    let context_map = additional_context([
        ("runId", Some(s.run_id.as_str())),
        ("homeRegion", context.home_region.as_deref()),
    ]);
    let id = message_id(s);
    ChatNotification::new(
        id,
        ChatContent {
            text_type: "client-markdown",
            title: title(if trouble { "🚨" } else { "🧹" }, subject),
            description,
            next_steps,
            keywords,
        },
        ChatMetadata {
            thread_id: None,
            summary: plain(subject, limits::SUMMARY),
            event_type: event_type("sweep"),
            additional_context: context_map,
            enable_custom_actions: false,
        },
        essentials,
    )
}

/// The chat notification of the sweep's daily digest.
pub(super) fn for_digest(
    digest: &crate::summary::SweepDigest,
    subject: &str,
    context: &MessageContext,
) -> ChatNotification {
    let d = digest;
    let mut head = vec![format!(
        "*cutoff's daily digest of the sweep for {} (UTC).*",
        d.date
    )];
    if d.runs == 0 {
        head.push(format!(
            "No sweep was planned on {}: check the schedule (the heartbeat-missing alarm fires when sweeps stop).",
            d.date
        ));
    }
    head.push(format!(
        "*Runs:* {} ({} dry runs): {} quiet, {} with changes, {} with failures, {} unfinished.",
        d.runs,
        d.dry_runs,
        d.quiet_runs,
        d.runs_with_changes,
        d.runs_with_failures,
        d.unfinished_runs
    ));
    head.push(format!(
        "*Accounts swept:* {}. *Principals read:* {}.",
        d.accounts_swept, d.principals_scanned
    ));
    head.push(format!(
        "*Changes:* {} ({} cutoffs moved, {} expired statements removed, {} policies deleted).",
        d.changes, d.cutoffs_moved, d.statements_removed, d.policies_deleted
    ));
    head.push(format!(
        "*Failures:* {} ({} accounts not swept, {} accounts never reported, {} principals failed).",
        d.failures, d.accounts_failed, d.accounts_unreported, d.principals_failed
    ));
    for id in d.failed.iter().take(10) {
        head.push(format!("*Run with failures:* {}", code(id, 64)));
    }
    for id in d.unfinished.iter().take(10) {
        head.push(format!("*Unfinished run:* {}", code(id, 64)));
    }
    for problem in &context.problems {
        head.push(format!(
            "*Configuration problem in cutoff's notifier:* {}",
            code(problem, 300)
        ));
    }
    let place = Place::new(None, context.home_region.as_deref());
    let tail = essential_lines(&place, Some(&d.made_by), &ConsoleLinks::default());
    let description = fit_lines(&head, &tail, limits::DESCRIPTION);
    let essentials = fit_lines(&head[..1], &tail, limits::DESCRIPTION);
    let keywords = vec![
        "sweep".to_owned(),
        "digest".to_owned(),
        super::MessageClass::Routine.as_str().to_owned(),
    ];
    let date = d.date.to_string();
    let context_map = additional_context([
        ("date", Some(date.as_str())),
        ("runId", Some(d.made_by.as_str())),
        ("homeRegion", context.home_region.as_deref()),
    ]);
    let id = message_id(d);
    ChatNotification::new(
        id,
        ChatContent {
            text_type: "client-markdown",
            title: title("📋", subject),
            description,
            next_steps: Vec::new(),
            keywords,
        },
        ChatMetadata {
            thread_id: None,
            summary: plain(subject, limits::SUMMARY),
            event_type: event_type("sweep-digest"),
            additional_context: context_map,
            enable_custom_actions: false,
        },
        essentials,
    )
}

/// What is wrong with `value` as a custom notification cutoff writes: a missing or
/// unknown field, a field of the wrong type, a value outside the documented ones or
/// outside cutoff's bounds ([`limits`]). Empty when it is one. For tests, here and in
/// the crates that publish it.
pub fn schema_problems(value: &serde_json::Value) -> Vec<String> {
    use serde_json::Value;
    let mut problems = Vec::new();
    let mut check_keys = |what: &str, v: &Value, required: &[&str], allowed: &[&str]| {
        let Some(map) = v.as_object() else {
            problems.push(format!("{what} is not an object"));
            return;
        };
        for key in required {
            if !map.contains_key(*key) {
                problems.push(format!("{what} has no `{key}`"));
            }
        }
        for key in map.keys() {
            if !allowed.contains(&key.as_str()) {
                problems.push(format!("{what} has an unknown field `{key}`"));
            }
        }
    };
    check_keys(
        "the notification",
        value,
        &["version", "source", "content"],
        &["version", "source", "id", "content", "metadata"],
    );
    let content = &value["content"];
    check_keys(
        "content",
        content,
        &["description"],
        &["textType", "title", "description", "nextSteps", "keywords"],
    );
    let metadata = &value["metadata"];
    if !metadata.is_null() {
        check_keys(
            "metadata",
            metadata,
            &[],
            &[
                "threadId",
                "summary",
                "eventType",
                "relatedResources",
                "additionalContext",
                "enableCustomActions",
            ],
        );
    }
    if value["version"] != "1.0" {
        problems.push(format!("version is {}, not \"1.0\"", value["version"]));
    }
    if value["source"] != "custom" {
        problems.push(format!("source is {}, not \"custom\"", value["source"]));
    }
    if !content["textType"].is_null() && content["textType"] != "client-markdown" {
        problems.push(format!("textType is {}", content["textType"]));
    }
    let mut string = |what: &str, v: &Value, max: usize, required: bool| match v {
        Value::String(s) if s.chars().count() <= max => {}
        Value::String(s) => problems.push(format!(
            "{what} has {} characters (> {max})",
            s.chars().count()
        )),
        Value::Null if !required => {}
        other => problems.push(format!("{what} is not a string: {other}")),
    };
    string("id", &value["id"], limits::ID, false);
    string("title", &content["title"], limits::TITLE, false);
    string(
        "description",
        &content["description"],
        limits::DESCRIPTION,
        true,
    );
    string("threadId", &metadata["threadId"], limits::THREAD_ID, false);
    string("summary", &metadata["summary"], limits::SUMMARY, false);
    string(
        "eventType",
        &metadata["eventType"],
        limits::EVENT_TYPE,
        false,
    );
    let mut list = |what: &str, v: &Value, max_items: usize, max: usize| match v {
        Value::Null => {}
        Value::Array(items) => {
            if items.len() > max_items {
                problems.push(format!("{what} has {} items (> {max_items})", items.len()));
            }
            for item in items {
                match item.as_str() {
                    Some(s) if s.chars().count() <= max => {}
                    _ => problems.push(format!(
                        "{what} has an item that is no string of at most {max}: {item}"
                    )),
                }
            }
        }
        other => problems.push(format!("{what} is not an array: {other}")),
    };
    list(
        "nextSteps",
        &content["nextSteps"],
        limits::NEXT_STEPS,
        limits::NEXT_STEP,
    );
    list(
        "keywords",
        &content["keywords"],
        limits::KEYWORDS,
        limits::KEYWORD,
    );
    list("relatedResources", &metadata["relatedResources"], 10, 1024);
    if let Some(event_type) = metadata["eventType"].as_str()
        && !event_type
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    {
        problems.push(format!("eventType {event_type} is not of [a-zA-Z0-9-]"));
    }
    match &metadata["additionalContext"] {
        Value::Null => {}
        Value::Object(map) => {
            if map.len() > limits::CONTEXT_ENTRIES {
                problems.push(format!("additionalContext has {} entries", map.len()));
            }
            for (k, v) in map {
                let key_ok = !k.is_empty()
                    && k.len() <= limits::CONTEXT_KEY
                    && k.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
                let value_ok = v.as_str().is_some_and(|v| context_value(v).is_some());
                if !key_ok || !value_ok {
                    problems.push(format!(
                        "additionalContext entry {k}: {v} is no custom action variable"
                    ));
                }
            }
        }
        other => problems.push(format!("additionalContext is not an object: {other}")),
    }
    match &metadata["enableCustomActions"] {
        Value::Null | Value::Bool(_) => {}
        other => problems.push(format!("enableCustomActions is not a boolean: {other}")),
    }
    problems
}
