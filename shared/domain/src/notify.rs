//! Rendering an outcome into the message people read, and choosing who reads it.
//!
//! Pure: no I/O. The notifier Lambda (`cutoff::handler::notifier`) publishes what
//! [`render_in`] builds to the topics [`route`] picks.
//!
//! A message has one body per kind of subscriber ([`publish`]): the plain text below
//! for e-mail, queues and functions, and a custom notification of Amazon Q Developer
//! in chat applications ([`chat`]) for Slack and Teams channels. Both say what
//! happened, where (the region), under which request id cutoff recorded it, and link
//! to the finding, the principal and CloudTrail ([`links`]).
//!
//! A message is written for someone who has never heard of cutoff: what happened, to
//! which principal, why, where the deny lives, and what to do next. It ends with the
//! outcome as JSON for tools. Every string that reached cutoff from outside (finding
//! ids and types, reasons, requesters, error messages, tags) is bounded and stripped
//! of control characters before it is written into either part, so a finding cannot
//! forge lines of the message, smuggle terminal escapes, or blow up its size.

pub mod chat;
pub mod links;
pub mod publish;

pub use chat::ChatNotification;
pub use links::ConsoleLinks;
pub use publish::{SNS_MESSAGE_MAX_BYTES, attributes_bytes, message_structure};

use crate::chain::is_region_name;
use crate::outcome::{FailureKind, FindingFormat, Outcome, Status, Trigger};
use crate::principal::{Target, TargetKind};
use crate::principal::{clean_text as clean, is_sns_topic_arn, is_unsafe_char};
use crate::settings::NotifierConfig;
use crate::triage::Source;

/// What a message needs from the notifier beyond the outcome.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MessageContext {
    /// cutoff's home region: the notifier's own (`AWS_REGION`, read when the
    /// notifier starts), where its logs, ledger and outcome bus are. None when
    /// unknown; a value that is no region name is never kept.
    pub home_region: Option<String>,
    /// Problems in the notifier's configuration (a team topic it may not use): the
    /// security team hears of them with every message until they are fixed.
    pub problems: Vec<String>,
}

impl MessageContext {
    /// The context of a notifier running in `home_region` (dropped unless it is a
    /// region name).
    pub fn new(home_region: Option<&str>, problems: Vec<String>) -> Self {
        Self {
            home_region: home_region.filter(|r| is_region_name(r)).map(str::to_owned),
            problems,
        }
    }
}

/// The regions a message names. Links go to the finding's region when the outcome
/// names one (the finding, and the stolen credential's CloudTrail events, are
/// there), else to cutoff's home region; the request id's logs are always in the
/// home region.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Place {
    /// The region the links use.
    pub region: Option<String>,
    /// Where the finding's activity was seen.
    pub finding_region: Option<String>,
    /// Where cutoff runs.
    pub home_region: Option<String>,
}

impl Place {
    pub fn new(finding_region: Option<&str>, home_region: Option<&str>) -> Self {
        let valid = |r: Option<&str>| r.filter(|r| is_region_name(r)).map(str::to_owned);
        let finding_region = valid(finding_region);
        let home_region = valid(home_region);
        Self {
            region: finding_region.clone().or_else(|| home_region.clone()),
            finding_region,
            home_region,
        }
    }

    /// "eu-west-1 (where the finding's activity was seen; cutoff runs in us-east-1)",
    /// each region through `show`.
    fn describe_with(&self, show: impl Fn(&str) -> String) -> String {
        match (&self.finding_region, &self.home_region) {
            (Some(f), Some(h)) if f == h => {
                format!(
                    "{} (where the finding's activity was seen, and cutoff's region)",
                    show(f)
                )
            }
            (Some(f), Some(h)) => format!(
                "{} (where the finding's activity was seen; cutoff runs in {})",
                show(f),
                show(h)
            ),
            (Some(f), None) => format!("{} (where the finding's activity was seen)", show(f)),
            (None, Some(h)) => format!("{} (cutoff's region)", show(h)),
            (None, None) => "unknown".to_owned(),
        }
    }

    pub fn describe(&self) -> String {
        self.describe_with(str::to_owned)
    }

    /// [`Place::describe`] for the chat, the regions in code spans.
    pub fn describe_md(&self) -> String {
        self.describe_with(|r| format!("`{r}`"))
    }
}

/// The longest subject cutoff writes. SNS documents subjects as "less than 100
/// characters", without line breaks or control characters; cutoff writes printable
/// ASCII only.
pub const SUBJECT_MAX: usize = 99;
/// The bound on any one outside string in a message.
pub const FIELD_MAX: usize = 512;
/// The bound on a Security Hub note.
pub const NOTE_MAX: usize = 512;
/// At most this many `actions` are shown.
const ACTIONS_MAX: usize = 20;
/// The line between the human text and the JSON outcome.
pub const SEPARATOR: &str = "-----BEGIN CUTOFF OUTCOME JSON-----";

/// Message attribute names, for SNS subscription filter policies.
pub mod attribute {
    pub const STATUS: &str = "cutoff_status";
    pub const ACCOUNT: &str = "cutoff_account";
    pub const TEAM: &str = "cutoff_team";
    pub const KIND: &str = "cutoff_kind";
    /// `incident` or `routine`: routine messages (a deny already in force covered a
    /// finding's update, a rolling cutoff moved) can be filtered away from paging
    /// subscriptions; everything else is an incident.
    pub const CLASS: &str = "cutoff_class";
}

/// Whether an outcome is routine: nothing changed because a deny already in force
/// covers it, the sweeper moved a rolling cutoff, or a follow-up run read everything
/// and found nothing new. Not an incident to page on.
pub fn is_routine(o: &Outcome) -> bool {
    o.status == Status::AlreadyRevoked
        // A person decided not to revoke: a record, not an incident.
        || o.status == Status::ApprovalRefused
        || is_rolling(o)
        || o.chain.as_ref().is_some_and(|c| {
            c.complete && c.new_links().next().is_none() && o.status == Status::Applied
        })
}

/// What a message is to its readers, as its `cutoff_class` attribute says: an
/// incident (someone must look; a pager's subscription takes these) or routine (a
/// record that something expected happened; a filter policy can send it elsewhere).
/// Every message cutoff publishes has exactly one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageClass {
    Incident,
    Routine,
}

impl MessageClass {
    /// The attribute's value: `incident` or `routine`.
    pub fn as_str(self) -> &'static str {
        match self {
            MessageClass::Incident => "incident",
            MessageClass::Routine => "routine",
        }
    }

    /// An outcome's class: routine when [`is_routine`], else an incident.
    pub fn of_outcome(o: &Outcome) -> Self {
        if is_routine(o) {
            MessageClass::Routine
        } else {
            MessageClass::Incident
        }
    }

    /// A sweep summary's class: an incident when something failed (an account not
    /// swept or never reported, a principal whose change failed), routine when it
    /// only changed things (its owners were told of each moved cutoff already).
    pub fn of_summary(s: &crate::summary::SweepSummary) -> Self {
        if s.has_failures() {
            MessageClass::Incident
        } else {
            MessageClass::Routine
        }
    }
}

/// The hours after which no session issued before a cutoff can still be alive: a
/// role session lasts at most 12 h, `GetSessionToken` credentials 36 h.
pub const ROLE_SESSION_MAX_HOURS: u32 = 12;
pub const USER_SESSION_MAX_HOURS: u32 = 36;

/// Who gets an outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The owner team's topic, when one is known (it may equal the security topic).
    pub owner_topic: Option<String>,
    /// Always published to.
    pub security_topic: String,
    /// Whether anyone owns the principal (a team, or a `cutoff:notify` topic).
    pub owner_known: bool,
    /// The owner team, from the `cutoff:owner` tag or an owner pattern.
    pub team: Option<String>,
}

impl Route {
    /// The topics to publish to, security first, without duplicates.
    pub fn topics(&self) -> Vec<&str> {
        let mut topics = vec![self.security_topic.as_str()];
        if let Some(owner) = self.owner_topic.as_deref()
            && owner != self.security_topic
        {
            topics.push(owner);
        }
        topics
    }
}

/// Picks the topics for an outcome: the `cutoff:notify` tag's topic, else the topic
/// of the `cutoff:owner` team, else (when the principal has no owner tag) the topic of
/// the team an owner pattern gives its name. The security topic always.
pub fn route(outcome: &Outcome, config: &NotifierConfig) -> Route {
    // The revoker validated the tag, but the event crossed a bus: check again.
    let tag_topic = outcome
        .owner
        .topic
        .as_deref()
        .filter(|t| is_sns_topic_arn(t))
        .map(str::to_owned);
    let tag_team = outcome
        .owner
        .team
        .as_deref()
        .map(|t| clean(t, 128))
        .filter(|t| !t.trim().is_empty());
    let team = tag_team.or_else(|| {
        let target = outcome.target.as_ref()?;
        config.pattern_owner(&target.name).map(str::to_owned)
    });
    let owner_topic = tag_topic.clone().or_else(|| {
        team.as_deref()
            .and_then(|t| config.team_topic(t))
            .map(str::to_owned)
    });
    Route {
        owner_known: team.is_some() || tag_topic.is_some(),
        owner_topic,
        security_topic: config.security_topic.clone(),
        team,
    }
}

fn clean_opt(input: Option<&str>) -> Option<String> {
    input.map(|s| clean(s, FIELD_MAX))
}

/// The outcome with every outside string bounded and cleaned: what the JSON part of
/// a message carries.
pub fn sanitized(outcome: &Outcome) -> Outcome {
    let mut o = outcome.clone();
    o.policy = clean_opt(outcome.policy.as_deref());
    o.owner.team = outcome.owner.team.as_deref().map(|s| clean(s, 128));
    o.owner.topic = clean_opt(outcome.owner.topic.as_deref());
    let t = &mut o.trigger;
    for field in [
        &mut t.finding_id,
        &mut t.finding_type,
        &mut t.product_arn,
        &mut t.requested_by,
        &mut t.custom_action,
        &mut t.reason,
        &mut t.approved_by,
    ] {
        *field = clean_opt(field.as_deref());
    }
    if let Some(approval) = &mut o.approval {
        approval.decided_by = clean_opt(approval.decided_by.as_deref());
        approval.reason = clean_opt(approval.reason.as_deref());
    }
    t.severity = t.severity.filter(|s| s.is_finite());
    // The error's kind is one of a closed set (an unknown one is read as `unknown`):
    // only its message is text from outside.
    if let Some(e) = &mut o.error {
        e.message = clean(&e.message, FIELD_MAX);
    }
    o.propagation = outcome.propagation.as_deref().map(|s| clean(s, 32));
    o.request_id = outcome.request_id.as_deref().map(|s| clean(s, 128));
    // The event crossed a bus: a region that is not one is dropped, never linked to.
    o.activity_region = outcome
        .activity_region
        .clone()
        .filter(|r| is_region_name(r));
    o.detail = clean(&outcome.detail, FIELD_MAX);
    o.actions = outcome
        .actions
        .iter()
        .take(ACTIONS_MAX)
        .map(|a| clean(a, FIELD_MAX))
        .collect();
    for still in &mut o.still_works {
        still.credential = clean(&still.credential, FIELD_MAX);
        still.why = clean(&still.why, FIELD_MAX);
    }
    o.still_works.truncate(ACTIONS_MAX);
    o.other_access = outcome
        .other_access
        .iter()
        .take(ACTIONS_MAX)
        .map(|a| clean(a, FIELD_MAX))
        .collect();
    if let Some(sso) = &mut o.identity_center {
        for text in [
            &mut sso.user_name,
            &mut sso.user_id,
            &mut sso.instance_arn,
            &mut sso.to_do,
        ] {
            *text = clean(text, FIELD_MAX);
        }
        sso.permission_sets.truncate(LINKS_MAX);
        for set in &mut sso.permission_sets {
            set.arn = clean(&set.arn, FIELD_MAX);
            set.name = clean(&set.name, FIELD_MAX);
            set.note = clean_opt(set.note.as_deref());
        }
    }
    // What a follow-up found is read from CloudTrail records the attacker's calls
    // wrote: every string of it is cleaned too.
    if let Some(chain) = &mut o.chain {
        chain.key = clean(&chain.key, 32);
        for text in chain.searched.iter_mut().chain(chain.gaps.iter_mut()) {
            *text = clean(text, FIELD_MAX);
        }
        chain.searched.truncate(ACTIONS_MAX);
        chain.gaps.truncate(ACTIONS_MAX);
        chain.links.truncate(LINKS_MAX);
        for link in &mut chain.links {
            for text in [
                &mut link.id,
                &mut link.by,
                &mut link.account,
                &mut link.found,
                &mut link.result,
            ] {
                *text = clean(text, FIELD_MAX);
            }
        }
    }
    o
}

/// An Identity Center user's containment: who, and each permission set.
fn render_sso(sso: &crate::identity_center::SsoContainment, body: &mut String) {
    use crate::identity_center::PermissionSetState as State;
    section(body, "Identity Center user");
    field(
        body,
        "User",
        &format!("{} ({})", sso.user_name, sso.user_id),
    );
    field(body, "Instance", &sso.instance_arn);
    if let Some(scp) = &sso.service_control_policy {
        let state = match (scp.state, sso.action) {
            (State::Denied, _) => {
                "denies the user in every member account (read back; no SCP reaches the management account)"
            }
            (State::Released, _) => "deny removed",
            (State::WouldDeny, _) => "would change (dry run)",
            (_, crate::identity_center::SsoAction::Release) => "deny NOT removed",
            _ => "NOT denying the user",
        };
        line(
            body,
            &format!("Service control policy {}: {state}", scp.policy_id),
        );
    }
    for set in &sso.permission_sets {
        let state = match set.state {
            State::Denied => "denied, provisioned and read back",
            State::Provisioning => "written, still provisioning",
            State::Failed if sso.action == crate::identity_center::SsoAction::Release => {
                "deny NOT removed"
            }
            State::Failed => "NOT denied",
            State::Released => "deny removed",
            State::WouldDeny => "would be denied (dry run)",
        };
        let accounts: Vec<&str> = set.accounts.iter().map(|a| a.as_str()).collect();
        let mut text = format!("Permission set {}: {state}", set.name);
        if !accounts.is_empty() {
            let more = set.accounts_total.saturating_sub(accounts.len());
            let more = if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            };
            text.push_str(&format!(" (used in {}{more})", accounts.join(", ")));
        }
        if let Some(note) = &set.note {
            text.push_str(&format!("; {note}"));
        }
        line(body, &text);
    }
    let unlisted = sso
        .permission_sets_total
        .saturating_sub(sso.permission_sets.len());
    if unlisted > 0 {
        line(
            body,
            &format!("… and {unlisted} more permission sets (in the JSON's count, not listed)"),
        );
    }
}

/// What to do after an Identity Center user's containment.
fn sso_steps(o: &Outcome, t: &Target, sso: &crate::identity_center::SsoContainment) -> Vec<String> {
    use crate::identity_center::{PermissionSetState as State, SsoAction};
    if sso.action == SsoAction::Release {
        return match o.status {
            Status::Released => vec![format!(
                "{} can use their permission sets again, if their identity source lets them sign in.",
                sso.user_name
            )],
            Status::DryRun => {
                vec!["Nothing was written: run the release without dry run.".to_owned()]
            }
            _ => vec![
                format!(
                    "The deny of {} may still be in the permission sets listed above, or still in their accounts until provisioning finishes: read the error, then run the release again (it provisions again).",
                    sso.user_name
                ),
                retry_step(o),
            ],
        };
    }
    if o.status == Status::DryRun {
        return vec![format!(
            "Nothing was written. Without dry run, cutoff would deny {} in the permission sets listed above.",
            sso.user_name
        )];
    }
    let mut steps = vec![format!("Now: {}.", sso.to_do)];
    for set in sso
        .permission_sets
        .iter()
        .filter(|s| matches!(s.state, State::Failed | State::Provisioning))
    {
        steps.push(format!(
            "Permission set {} is not yet denying {}: add to its inline policy a statement denying Action * on Resource * when identitystore:userId equals {} and provision it, or remove the user's assignments of it.",
            set.name, sso.user_name, sso.user_id
        ));
    }
    if sso.service_control_policy.is_some() {
        for still in &o.still_works {
            steps.push(format!("{} still work: {}.", still.credential, still.why));
        }
    }
    if o.needs_retry() {
        steps.push(retry_step(o));
    }
    steps.push(format!(
        "Review what {} did in each account they use (CloudTrail, sessions of their permission sets' roles), and end their access-portal sessions.",
        sso.user_name
    ));
    steps.push(format!(
        "When they are safe again: cutoff release --account {} --role {} --session {} removes the deny from every permission set.",
        t.account,
        t.name,
        t.session.as_ref().map_or(sso.user_name.as_str(), |s| s.as_str())
    ));
    steps
}

/// Links of a follow-up listed in one message at most (the JSON part holds as many).
const LINKS_MAX: usize = 100;

/// The message of a follow-up run: what the stolen credential was found to have done
/// and what cutoff did about each link.
fn render_chain(o: &Outcome, chain: &crate::chain::ChainReport, body: &mut String) {
    let new = chain.new_links().count();
    section(body, "What happened");
    line(
        body,
        &format!(
            "After revoking the principal below, cutoff read CloudTrail for what its key {} \
             did since {} (run {} of {}: CloudTrail delivers events late, so it looks again). \
             Every session the key minted is denied on its own session, keys it created are \
             set Inactive, and what it cannot undo is listed for you.",
            chain.key,
            chain.from.format("%Y-%m-%d %H:%M UTC"),
            chain.run,
            chain.runs
        ),
    );
    line(
        body,
        &format!(
            "Read: {}.",
            if chain.searched.is_empty() {
                "nothing".to_owned()
            } else {
                chain.searched.join(", ")
            }
        ),
    );
    section(body, "What the stolen credential did");
    if chain.links.is_empty() {
        line(body, "Nothing that mints or keeps access, so far.");
    }
    for link in &chain.links {
        line(
            body,
            &format!(
                "- {}{} (link {}, by key {} in {}): {}",
                if link.new { "NEW: " } else { "" },
                link.found,
                link.depth,
                link.by,
                link.account,
                link.result
            ),
        );
    }
    if !chain.gaps.is_empty() {
        section(body, "Not followed (look in CloudTrail)");
        for gap in &chain.gaps {
            line(body, gap);
        }
    }
    section(body, "Principal");
    principal_lines(body, o);
    if new > 0 || !chain.gaps.is_empty() {
        section(body, "What to do next");
        line(
            body,
            "1. Read each new link above: the revocations it made have messages of their own, sent to the owners of those principals.",
        );
        line(
            body,
            "2. Remove what is listed as reported (users, login profiles, roles, trust and policy changes) once investigated: cutoff keeps them as evidence.",
        );
    }
}

fn chain_subject(o: &Outcome, chain: &crate::chain::ChainReport) -> String {
    let prefix = match o.status {
        Status::Partial => "cutoff PARTIAL: follow-up",
        Status::Failed => "cutoff FAILED: follow-up",
        _ => "cutoff: follow-up",
    };
    let new = chain.new_links().count();
    let name = o
        .target
        .as_ref()
        .map_or_else(String::new, |t| format!(" of {}", t.name));
    fit_subject(
        &format!("{prefix} {}/{}", chain.run, chain.runs),
        &name,
        &format!(
            ": {} link{}, {new} new",
            chain.links.len(),
            if chain.links.len() == 1 { "" } else { "s" }
        ),
    )
}

/// What a follow-up run's chat says happened: the key, and each new link.
fn chain_summary(chain: &crate::chain::ChainReport) -> (String, Vec<String>) {
    let new = chain.new_links().count();
    let headline = format!(
        "Follow-up {} of {} of key {}: {} link{} found, {new} new",
        chain.run,
        chain.runs,
        chain.key,
        chain.links.len(),
        if chain.links.len() == 1 { "" } else { "s" }
    );
    let mut lines: Vec<String> = chain
        .links
        .iter()
        .filter(|l| l.new)
        .take(10)
        .map(|l| format!("NEW: {} (in {}): {}", l.found, l.account, l.result))
        .collect();
    if new > 10 {
        lines.push(format!("… and {} more new links in the e-mail.", new - 10));
    }
    lines.extend(
        chain
            .gaps
            .iter()
            .take(5)
            .map(|g| format!("Not followed: {g}")),
    );
    (headline, lines)
}

/// The next steps of a follow-up run (the same as its text's).
fn chain_steps(chain: &crate::chain::ChainReport) -> Vec<String> {
    if chain.new_links().next().is_none() && chain.gaps.is_empty() {
        return Vec::new();
    }
    vec![
        "Read each new link above: the revocations it made have messages of their own, sent to the owners of those principals.".to_owned(),
        "Remove what is listed as reported (users, login profiles, roles, trust and policy changes) once investigated: cutoff keeps them as evidence.".to_owned(),
    ]
}

/// Where to look: the region, the request id, the console links. Every message
/// carries this section.
fn where_to_look(body: &mut String, o: &Outcome, place: &Place, links: &ConsoleLinks) {
    section(body, "Where to look");
    field(body, "Region", &place.describe());
    match &o.request_id {
        Some(id) => field(
            body,
            "Request id",
            &format!(
                "{id} (what cutoff recorded the request under; `cutoff history` lists revocations with it)"
            ),
        ),
        None => field(body, "Request id", "not recorded"),
    }
    let account = o
        .target
        .as_ref()
        .map_or_else(String::new, |t| format!(": sign in to {}", t.account));
    for (label, link) in links.labelled() {
        let note = match label {
            "Finding" => " (in the account that administers the findings)".to_owned(),
            "CloudTrail" => format!(" (events of one account and one region{account})"),
            _ => format!(" (opens in the account you are signed in to{account})"),
        };
        field(body, label, &format!("{link}{note}"));
    }
}

/// Builds the message for an outcome with no notifier context (no home region, no
/// configuration problems): [`render_in`].
pub fn render(outcome: &Outcome, owner_known: bool) -> SnsMessage {
    render_in(outcome, owner_known, &MessageContext::default())
}

/// Builds the message for an outcome. `owner_known` says whether anyone owns the
/// principal; when not, the message says so and asks the security team to find one.
/// `context` gives cutoff's home region and the notifier's configuration problems.
pub fn render_in(outcome: &Outcome, owner_known: bool, context: &MessageContext) -> SnsMessage {
    let clean_outcome = sanitized(outcome);
    let o = &clean_outcome;
    let place = Place::new(o.activity_region.as_deref(), context.home_region.as_deref());
    let links = ConsoleLinks::for_outcome(o, place.region.as_deref());
    let mut body = String::new();
    body.push_str(&headline(o));
    body.push_str("\n\n");
    body.push_str(
        "This message is from cutoff, the automated responder that cuts off the AWS \
         sessions of credentials suspected to be compromised. ",
    );
    body.push_str(if owner_known {
        "It goes to the security team and, when it has a topic, to the team that owns \
         the principal.\n"
    } else {
        "It goes to the security team: no owner is known (see Owner below).\n"
    });

    if let Some(chain) = &o.chain {
        render_chain(o, chain, &mut body);
        where_to_look(&mut body, o, &place, &links);
        problem_lines(&mut body, context);
        let subject = chain_subject(o, chain);
        let (headline, what_happened) = chain_summary(chain);
        let chat = chat::for_outcome(&chat::Shared {
            outcome: o,
            subject: &subject,
            headline,
            what_happened,
            next_steps: chain_steps(chain),
            owner_known,
            place,
            links,
            context,
        });
        return finish(subject, body, o, message_attributes(o), chat);
    }

    section(&mut body, "What happened");
    line(&mut body, &what_happened(o));
    if !o.detail.is_empty() {
        line(&mut body, &format!("cutoff's record: {}", o.detail));
    }
    if o.dry_run && o.status != Status::DryRun {
        line(&mut body, "This was a dry run: nothing was written.");
    }

    section(&mut body, "Principal");
    principal_lines(&mut body, o);

    section(&mut body, "Why");
    trigger_lines(&mut body, &o.trigger);

    if let Some(approval) = &o.approval {
        section(&mut body, "Approval");
        approval_lines(&mut body, o, approval);
    }

    if o.identity_center.is_none()
        && (o.cutoff.is_some() || o.previous_cutoff.is_some() || o.policy.is_some())
    {
        section(&mut body, "The deny");
        deny_lines(&mut body, o);
    }

    if let Some(sso) = &o.identity_center {
        render_sso(sso, &mut body);
    }

    if !o.still_works.is_empty() {
        section(&mut body, "What still works");
        for still in &o.still_works {
            line(&mut body, &format!("{}: {}", still.credential, still.why));
        }
    }

    if !o.other_access.is_empty() {
        section(&mut body, "Other ways in (not touched by cutoff)");
        for way in &o.other_access {
            line(&mut body, way);
        }
    }

    if let Some(error) = &o.error
        && o.status != Status::Partial
    {
        section(&mut body, "What failed");
        field(&mut body, "Error kind", error.kind.as_str());
        field(&mut body, "Message", &error.message);
    }

    let steps = next_steps(o);
    section(&mut body, "What to do next");
    for (i, step) in steps.iter().enumerate() {
        line(&mut body, &format!("{}. {step}", i + 1));
    }

    where_to_look(&mut body, o, &place, &links);

    section(&mut body, "Owner");
    owner_lines(&mut body, o, owner_known);
    problem_lines(&mut body, context);

    let subject = subject(o);
    let mut what = vec![what_happened(o)];
    if o.dry_run && o.status != Status::DryRun {
        what.push("This was a dry run: nothing was written.".to_owned());
    }
    let chat = chat::for_outcome(&chat::Shared {
        outcome: o,
        subject: &subject,
        headline: headline(o),
        what_happened: what,
        next_steps: steps,
        owner_known,
        place,
        links,
        context,
    });
    finish(subject, body, o, message_attributes(o), chat)
}

/// The notifier's configuration problems, for the security team.
fn problem_lines(body: &mut String, context: &MessageContext) {
    if context.problems.is_empty() {
        return;
    }
    section(
        body,
        "Configuration problem in cutoff's notifier (the owner team may not have been told)",
    );
    for problem in &context.problems {
        line(body, &clean(problem, FIELD_MAX));
    }
}

/// The text, its outcome JSON after the separator, and the chat body.
fn finish(
    subject: String,
    mut body: String,
    o: &Outcome,
    attributes: Vec<(String, String)>,
    chat: ChatNotification,
) -> SnsMessage {
    body.push('\n');
    body.push_str(SEPARATOR);
    body.push('\n');
    // Plain data with string keys: serialising cannot fail.
    body.push_str(&serde_json::to_string_pretty(o).unwrap_or_default());
    body.push('\n');
    SnsMessage {
        subject,
        body,
        attributes,
        chat,
    }
}

/// The attributes subscription filters read.
fn message_attributes(o: &Outcome) -> Vec<(String, String)> {
    let mut attributes = vec![(attribute::STATUS.to_owned(), o.status.as_str().to_owned())];
    if let Some(target) = &o.target {
        attributes.push((attribute::ACCOUNT.to_owned(), target.account.to_string()));
    }
    if let Some(team) = o.owner.team.as_deref().filter(|t| !t.trim().is_empty()) {
        attributes.push((attribute::TEAM.to_owned(), team.to_owned()));
    }
    attributes.push((
        attribute::KIND.to_owned(),
        o.target
            .as_ref()
            .map_or("unknown", |t| t.kind.as_str())
            .to_owned(),
    ));
    attributes.push((
        attribute::CLASS.to_owned(),
        MessageClass::of_outcome(o).as_str().to_owned(),
    ));
    attributes
}

/// A ≤512-character note for the Security Hub finding that triggered the request.
pub fn finding_note(outcome: &Outcome, route: &Route) -> String {
    let o = sanitized(outcome);
    let owner_told = route
        .owner_topic
        .as_deref()
        .is_some_and(|t| t != route.security_topic);
    let who = match (&route.team, owner_told) {
        (Some(team), true) => format!("owner team {team} and the security team notified"),
        (None, true) => "the owner's topic and the security team notified".to_owned(),
        (Some(team), false) => {
            format!("security team notified (owner team {team} has no topic configured)")
        }
        (None, false) => "no owner known; the security team notified".to_owned(),
    };
    let text = format!("cutoff {}: {}. {who}.", o.status.as_str(), o.detail);
    clean(&text, NOTE_MAX)
}

// ---- subject ---------------------------------------------------------------------

/// ("role ", "payments-api", " in 111122223333") / ("the root user of ",
/// "111122223333", ""): the name apart, so that only it is ever shortened.
fn short_principal(target: &Target) -> (String, String, String) {
    if target.kind == TargetKind::Root {
        return (
            "the root user of ".to_owned(),
            target.account.to_string(),
            String::new(),
        );
    }
    (
        format!("{} ", short_kind(target.kind)),
        target.name.to_string(),
        format!(" in {}", target.account),
    )
}

fn short_kind(kind: TargetKind) -> &'static str {
    match kind {
        TargetKind::Role => "role",
        TargetKind::User => "user",
        TargetKind::Root => "root user",
        TargetKind::ServiceLinkedRole => "service-linked role",
        TargetKind::IdentityCenterRole => "Identity Center role",
        TargetKind::InstanceProfile => "instance profile",
        TargetKind::FederatedUser => "federated user",
        TargetKind::Unknown => "principal",
    }
}

fn subject(o: &Outcome) -> String {
    let Some(target) = &o.target else {
        let kind = o.error.as_ref().map_or("unknown", |e| e.kind.as_str());
        return fit_subject(
            &format!("cutoff FAILED: a request could not be read ({kind})"),
            "",
            "",
        );
    };
    let (prefix, suffix): (String, String) = match o.status {
        Status::Applied if is_rolling(o) => (
            "cutoff: rolling cutoff moved on ".to_owned(),
            " (max session age)".to_owned(),
        ),
        Status::Applied => {
            let what = if o.scope == crate::event::Scope::Session {
                "revoked a session of "
            } else {
                "revoked sessions of "
            };
            (format!("cutoff: {what}"), String::new())
        }
        Status::AlreadyRevoked => (
            "cutoff: sessions of ".to_owned(),
            " already revoked".to_owned(),
        ),
        Status::Partial => (
            "cutoff PARTIAL: revoked, NOT fully contained: ".to_owned(),
            String::new(),
        ),
        Status::DryRun => (
            "cutoff (dry run): would revoke sessions of ".to_owned(),
            String::new(),
        ),
        Status::Protected => (
            "cutoff ALERT: protected ".to_owned(),
            " named, NOT revoked".to_owned(),
        ),
        Status::Unmodifiable => ("cutoff ALERT: act by hand on ".to_owned(), String::new()),
        Status::Alerted => (
            "cutoff ALERT: suspicious activity by ".to_owned(),
            String::new(),
        ),
        Status::Released => (
            "cutoff: released the session deny on ".to_owned(),
            String::new(),
        ),
        Status::Failed => {
            let kind = o.error.as_ref().map_or("unknown", |e| e.kind.as_str());
            ("cutoff FAILED: ".to_owned(), format!(" not done ({kind})"))
        }
        Status::AwaitingApproval => (
            "cutoff APPROVAL NEEDED: revoke sessions of ".to_owned(),
            "?".to_owned(),
        ),
        Status::ApprovalRefused => (
            "cutoff: approval refused, NOT revoking ".to_owned(),
            String::new(),
        ),
        Status::ApprovalExpired => (
            "cutoff: approval EXPIRED, NOT revoked: ".to_owned(),
            String::new(),
        ),
    };
    let (kind, name, place) = short_principal(target);
    fit_subject(
        &format!("{prefix}{kind}"),
        &name,
        &format!("{place}{suffix}"),
    )
}

/// `prefix + middle + suffix` in printable ASCII, at most [`SUBJECT_MAX`] characters;
/// the middle (the name) is shortened with `...` when the whole does not fit.
fn fit_subject(prefix: &str, middle: &str, suffix: &str) -> String {
    let ascii = |s: &str| -> String {
        s.chars()
            .map(|c| if (' '..='~').contains(&c) { c } else { '?' })
            .collect()
    };
    let (prefix, middle, suffix) = (ascii(prefix), ascii(middle), ascii(suffix));
    let whole = format!("{prefix}{middle}{suffix}");
    if whole.len() <= SUBJECT_MAX {
        return whole;
    }
    let room = SUBJECT_MAX.saturating_sub(prefix.len() + suffix.len() + 3);
    let whole = format!("{prefix}{}...{suffix}", &middle[..room.min(middle.len())]);
    whole.chars().take(SUBJECT_MAX).collect()
}

// ---- body ------------------------------------------------------------------------

fn section(body: &mut String, title: &str) {
    body.push('\n');
    body.push_str(title);
    body.push('\n');
}

fn line(body: &mut String, text: &str) {
    body.push_str("  ");
    body.push_str(text);
    body.push('\n');
}

fn field(body: &mut String, name: &str, value: &str) {
    body.push_str(&format!("  {:<18}{value}\n", format!("{name}:")));
}

fn long_kind(kind: TargetKind) -> &'static str {
    match kind {
        TargetKind::Role => "IAM role",
        TargetKind::User => "IAM user",
        TargetKind::Root => "root user",
        TargetKind::ServiceLinkedRole => "service-linked role",
        TargetKind::IdentityCenterRole => "IAM Identity Center role",
        TargetKind::InstanceProfile => "instance profile",
        TargetKind::FederatedUser => "federated user",
        TargetKind::Unknown => "principal of unknown kind",
    }
}

/// "IAM role payments-api in account 111122223333".
fn describe(target: &Target) -> String {
    if target.kind == TargetKind::Root {
        return format!("the root user of account {}", target.account);
    }
    format!(
        "{} {} in account {}",
        long_kind(target.kind),
        target.name,
        target.account
    )
}

/// A rolling cutoff moved by the scheduled sweep: routine, not an incident.
fn is_rolling(o: &Outcome) -> bool {
    o.trigger.source == Source::Schedule && o.status == Status::Applied
}

fn headline(o: &Outcome) -> String {
    let Some(t) = &o.target else {
        return "cutoff could not act on a request: it could not be read.".to_owned();
    };
    let who = describe(t);
    if let Some(sso) = &o.identity_center {
        use crate::identity_center::SsoAction;
        let user = format!("Identity Center user {}", sso.user_name);
        return match (sso.action, o.status) {
            (SsoAction::Deny, Status::Applied) if sso.service_control_policy.is_some() => format!(
                "cutoff denied {user} everything in every member account (their session of {who} was in a finding)."
            ),
            (SsoAction::Deny, Status::Applied) => format!(
                "cutoff denied {user} everything in every permission set they use (their session of {who} was in a finding)."
            ),
            (SsoAction::Deny, Status::Partial) => {
                format!("ACTION NEEDED: cutoff denied {user} in some permission sets, NOT all yet.")
            }
            (SsoAction::Deny, Status::DryRun) => {
                format!("cutoff would deny {user} in their permission sets (dry run).")
            }
            (SsoAction::Deny, _) => {
                format!("ACTION NEEDED: cutoff FAILED to deny {user} in their permission sets.")
            }
            (SsoAction::Release, Status::Released) => {
                format!("cutoff removed its deny of {user} from the permission sets.")
            }
            (SsoAction::Release, Status::DryRun) => format!(
                "cutoff would remove its deny of {user} from the permission sets (dry run)."
            ),
            (SsoAction::Release, _) => format!(
                "cutoff FAILED to complete the release of {user}: the deny may still be in force."
            ),
        };
    }
    if is_rolling(o) {
        return format!("cutoff moved the rolling cutoff of {who} (max session age).");
    }
    match o.status {
        Status::Applied if o.scope == crate::event::Scope::Session => {
            format!("cutoff revoked one session of {who}.")
        }
        Status::Applied => format!("cutoff revoked the active sessions of {who}."),
        Status::Partial => format!(
            "ACTION NEEDED: cutoff revoked the sessions of {who}, but NOT everything in scope is stopped."
        ),
        Status::AlreadyRevoked => format!("The sessions of {who} were already revoked."),
        Status::DryRun => format!("cutoff would revoke the sessions of {who} (dry run)."),
        Status::Protected => format!("cutoff did NOT revoke {who}: it is protected."),
        Status::Unmodifiable => {
            format!("ACTION NEEDED: cutoff cannot revoke {who}; a person must act.")
        }
        Status::Alerted => format!("ALERT: suspicious activity by {who}."),
        Status::Released => format!("cutoff removed its session deny from {who}."),
        Status::Failed => format!("cutoff FAILED to complete a request for {who}."),
        Status::AwaitingApproval => match &o.approval {
            Some(a) => format!(
                "APPROVAL NEEDED: revoke the active sessions of {who}? Approve with `{}` before {}.",
                crate::approval::approve_command(&a.id),
                crate::approval::stamp(a.expires_at)
            ),
            None => format!("APPROVAL NEEDED: revoke the active sessions of {who}?"),
        },
        Status::ApprovalRefused => format!(
            "{} refused the revocation of {who}: nothing was written.",
            o.approval
                .as_ref()
                .and_then(|a| a.decided_by.as_deref())
                .unwrap_or("An operator")
        ),
        Status::ApprovalExpired => {
            format!("Nobody approved the revocation of {who} in time: nothing was written.")
        }
    }
}

fn what_happened(o: &Outcome) -> String {
    if let Some(sso) = o
        .identity_center
        .as_ref()
        .filter(|sso| sso.action == crate::identity_center::SsoAction::Deny)
    {
        let how = if sso.service_control_policy.is_some() {
            "in cutoff's service control policy, which reaches every member account of \
             the Organization (no SCP reaches the management account)"
        } else {
            "in the inline policy of each permission set they can use (listed below), \
             provisioned to every account it is provisioned to"
        };
        return format!(
            "A finding named a session of a permission set's role, which belongs to an \
             IAM Identity Center user. A cutoff on the role would not stop them: their \
             access-portal session mints fresh credentials. cutoff denies the user \
             everything, whatever session they use and with no time condition, {how}."
        );
    }
    if let Some(sso) = &o.identity_center {
        return format!(
            "An operator asked cutoff to lift its deny of Identity Center user {}: cutoff \
             removes its statement (and only its own) from wherever it is and provisions \
             the change, or lists what is left.",
            sso.user_name
        );
    }
    let cutoff = o
        .cutoff
        .map_or_else(|| "the cutoff".to_owned(), |c| c.to_string());
    let session_only = o.scope == crate::event::Scope::Session;
    if is_rolling(o) {
        return format!(
            "The principal opted in to a maximum session age (tag cutoff:max-session-age \
             or a sweeper pattern). The scheduled sweep denied every session issued before \
             {cutoff}, so no session lives longer than allowed. This is routine \
             enforcement, not an incident."
        );
    }
    match o.status {
        Status::Applied if session_only => format!(
            "cutoff denied every action to the session named below when it was issued \
             before {cutoff}. Other sessions of the principal are not affected."
        ),
        Status::Applied => format!(
            "cutoff denied every action to every session of this principal issued before \
             {cutoff}. Sessions issued after that time work normally, so workloads and \
             people that sign in again get fresh, working credentials."
        ),
        Status::AlreadyRevoked => format!(
            "The deny already in force ({cutoff}) covers the credential that triggered \
             this request (its session was issued before the cutoff), so nothing was \
             written. This is routine: an update of a finding cutoff already acted on."
        ),
        Status::Partial => format!(
            "cutoff denied every session of this principal issued before {cutoff}, but \
             something in the request's scope still works (listed below): a long-term \
             access key is never stopped by a deny on sessions, only by deactivating it."
        ),
        Status::DryRun => format!(
            "Nothing was written. cutoff computed the deny it would write (cutoff {cutoff}), \
             shown below."
        ),
        Status::Protected => "The principal is protected: cutoff never writes a deny on \
             its member role, its own roles (by exact ARN), principals listed in \
             CUTOFF_PROTECTED_ARNS or CUTOFF_PROTECTED, or (when the deployment trusts the \
             tag) principals tagged cutoff:protected=true. This stops a forged or mistaken \
             finding from locking out the responder or break-glass access. Nothing was \
             changed, so a person must decide."
            .to_owned(),
        Status::Unmodifiable => {
            "IAM does not let cutoff put a deny on this kind of principal, so nothing was \
             changed and its sessions are still valid."
                .to_owned()
        }
        Status::Alerted => "cutoff raised an alert only: nothing was changed and the \
             principal's sessions are still valid."
            .to_owned(),
        Status::Released => format!(
            "cutoff removed its deny (the cutoff was {}). Sessions issued before it are \
             no longer denied by cutoff.",
            o.previous_cutoff
                .map_or_else(|| "unknown".to_owned(), |c| c.to_string())
        ),
        Status::Failed => "The request did not complete. The principal may NOT be \
             revoked: check the steps below."
            .to_owned(),
        Status::AwaitingApproval => {
            let severity = o
                .trigger
                .severity
                .map_or_else(String::new, |s| format!(" ({s:.1})"));
            let until = o.approval.as_ref().map_or_else(
                || "it expires".to_owned(),
                |a| crate::approval::stamp(a.expires_at),
            );
            format!(
                "A finding of medium severity{severity} names this principal. cutoff is set \
                 to ask a person before revoking on such findings (CUTOFF_MEDIUM_FINDINGS=ask): \
                 nothing was written, and its sessions are still valid. If someone approves \
                 before {until}, cutoff denies every session of the principal issued before \
                 the approval, as it would have for a high-severity finding, and records who \
                 approved. If nobody decides by then, the request expires and nothing is done."
            )
        }
        Status::ApprovalRefused => {
            let reason = o
                .approval
                .as_ref()
                .and_then(|a| a.reason.as_deref())
                .map_or_else(String::new, |r| format!(" Their reason: {r}."));
            format!(
                "An operator refused the revocation this finding asked for. Nothing was \
                 written, and the principal's sessions are still valid.{reason}"
            )
        }
        Status::ApprovalExpired => {
            let at = o.approval.as_ref().map_or_else(
                || "its expiry".to_owned(),
                |a| crate::approval::stamp(a.expires_at),
            );
            format!(
                "Nobody approved or refused the revocation this finding asked for before \
                 {at}: it expired. Nothing was written, and the principal's sessions are still \
                 valid. If the finding goes on, it asks again."
            )
        }
    }
}

/// The approval an outcome is about: its id, state, expiry, the commands that decide
/// it while it is open, and who decided it.
fn approval_lines(body: &mut String, o: &Outcome, a: &crate::approval::ApprovalNote) {
    use crate::approval::{ApprovalState, approve_body, approve_command, refuse_command, stamp};
    field(body, "Approval id", a.id.as_str());
    field(body, "State", a.state.as_str());
    let expiry = if a.state == ApprovalState::Pending {
        "Expires"
    } else {
        "Expired at"
    };
    if a.state == ApprovalState::Pending || a.state == ApprovalState::Expired {
        field(body, expiry, &stamp(a.expires_at));
    }
    if o.status == Status::AwaitingApproval {
        field(body, "Approve", &approve_command(&a.id));
        field(body, "Refuse", &refuse_command(&a.id));
        field(
            body,
            "Without the CLI",
            &format!(
                "POST {} to the revoker's function URL (stack output OperatorUrl), signed with IAM auth",
                approve_body(&a.id)
            ),
        );
        line(
            body,
            "Only the operator path can decide it (AWS verifies who asks); the principal \
             named above cannot decide its own revocation.",
        );
    }
    if let Some(by) = &a.decided_by {
        let what = match a.state {
            ApprovalState::Approved => "Approved by",
            ApprovalState::Refused => "Refused by",
            _ => "Closed by",
        };
        let when = a
            .decided_at
            .map_or_else(String::new, |t| format!(" at {}", stamp(t)));
        field(body, what, &format!("{by}{when}"));
    }
    if let Some(reason) = &a.reason {
        field(body, "Their reason", reason);
    }
}

fn principal_lines(body: &mut String, o: &Outcome) {
    let Some(t) = &o.target else {
        line(body, "Unknown: the request could not be read.");
        return;
    };
    field(body, "Kind", long_kind(t.kind));
    if t.kind != TargetKind::Root {
        field(body, "Name", t.name.as_str());
    }
    field(body, "Account", t.account.as_str());
    if let Some(session) = &t.session {
        field(body, "Session", session.as_str());
    }
    if let Some(key) = &t.access_key_id {
        field(body, "Access key", key.as_str());
    }
}

fn source_label(trigger: &Trigger) -> &'static str {
    let attack_sequence = trigger
        .finding_type
        .as_deref()
        .is_some_and(|t| t.starts_with("AttackSequence:"));
    match trigger.source {
        Source::GuardDuty if attack_sequence => {
            "Amazon GuardDuty attack sequence (Extended Threat Detection)"
        }
        Source::GuardDuty => "Amazon GuardDuty finding",
        Source::SecurityHub if trigger.custom_action.is_some() => {
            "AWS Security Hub (an operator chose a custom action)"
        }
        Source::SecurityHub if trigger.finding_format == Some(FindingFormat::Ocsf) => {
            "AWS Security Hub finding (OCSF, Findings Imported V2)"
        }
        Source::SecurityHub => "AWS Security Hub finding",
        Source::CloudTrail => "CloudTrail API call (opt-in rule)",
        Source::Manual => "manual request by an operator",
        Source::Schedule => "cutoff's scheduled sweep",
        Source::Chain => "cutoff's follow-up: CloudTrail shows the stolen credential made this",
        Source::Queue | Source::Unknown => trigger.source.as_str(),
    }
}

fn severity_label(severity: f64) -> &'static str {
    match severity {
        s if s >= 9.0 => "Critical",
        s if s >= 7.0 => "High",
        s if s >= 4.0 => "Medium",
        _ => "Low",
    }
}

fn trigger_lines(body: &mut String, t: &Trigger) {
    field(body, "Source", source_label(t));
    if let Some(v) = &t.finding_type {
        field(body, "Finding type", v);
    }
    if let Some(v) = &t.finding_id {
        field(body, "Finding id", v);
    }
    if let Some(s) = t.severity {
        field(body, "Severity", &format!("{s:.1} ({})", severity_label(s)));
    }
    if let Some(v) = &t.updated_at {
        field(
            body,
            "Finding updated",
            &v.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        );
    }
    if let Some(v) = &t.requested_by {
        let how = if t.requested_by_verified {
            "verified by AWS (IAM-authenticated operator path)"
        } else {
            "as the request claims; not verified"
        };
        field(body, "Requested by", &format!("{v} ({how})"));
    }
    if let Some(v) = &t.reason {
        field(body, "Reason", v);
    }
    if let Some(v) = &t.approved_by {
        field(
            body,
            "Approved by",
            &format!("{v} (verified by AWS: IAM-authenticated operator path)"),
        );
    }
}

fn policy_location(o: &Outcome) -> Option<String> {
    let policy = o.policy.as_deref()?;
    let holder = o.target.as_ref().map_or("principal", |t| match t.kind {
        TargetKind::User => "user",
        _ => "role",
    });
    Some(if policy.starts_with("arn:") {
        format!(
            "customer-managed policy {policy}, attached to the {holder} (the inline \
             policy budget was full)"
        )
    } else {
        format!("inline policy {policy} on the {holder}")
    })
}

fn deny_lines(body: &mut String, o: &Outcome) {
    if let Some(c) = o.cutoff {
        let meaning = match o.status {
            Status::Applied | Status::AlreadyRevoked | Status::Partial => {
                "sessions issued before this time are denied"
            }
            Status::DryRun => "would deny sessions issued before this time",
            Status::Failed => "attempted; NOT confirmed to be in force",
            Status::Released => "no longer in force",
            _ => "in force on this principal",
        };
        field(body, "Cutoff", &format!("{c} ({meaning})"));
    }
    field(
        body,
        "Previous cutoff",
        &o.previous_cutoff
            .map_or_else(|| "none".to_owned(), |c| c.to_string()),
    );
    if let Some(location) = policy_location(o) {
        field(body, "Where", &location);
    }
    let session = o.target.as_ref().and_then(|t| t.session.as_ref());
    let scope = match (o.scope, session) {
        (crate::event::Scope::Role, _) => "every session of the principal".to_owned(),
        (crate::event::Scope::Session, Some(session)) => format!(
            "only its sessions named {session}; other sessions of the principal keep working"
        ),
        (crate::event::Scope::Session, None) => "one session only".to_owned(),
    };
    field(body, "Scope", &scope);
    if o.propagation.as_deref() == Some("eventual") {
        field(
            body,
            "Propagation",
            "IAM is eventually consistent: the deny takes a few seconds to reach every endpoint",
        );
    }
    for (i, action) in o.actions.iter().enumerate() {
        field(body, if i == 0 { "Changes" } else { "" }, action);
    }
}

/// `--role NAME` / `--user NAME`, for the CLI commands in a message.
fn cli_target(t: &Target) -> Option<String> {
    match t.kind {
        TargetKind::Role => Some(format!("--account {} --role {}", t.account, t.name)),
        TargetKind::User => Some(format!("--account {} --user {}", t.account, t.name)),
        _ => None,
    }
}

fn investigate(o: &Outcome, t: &Target) -> String {
    let mut where_ = Vec::new();
    if let Some(id) = &o.trigger.finding_id {
        where_.push(format!("the finding {id}"));
    }
    let mut trail = format!(
        "CloudTrail in account {} for calls made by {}",
        t.account, t.name
    );
    if let Some(s) = &t.session {
        trail.push_str(&format!(" with session name {s}"));
    }
    if let Some(k) = &t.access_key_id {
        trail.push_str(&format!(" (access key {k})"));
    }
    where_.push(trail);
    format!(
        "Investigate: read {} to learn how the credentials leaked and what they did.",
        where_.join(" and ")
    )
}

fn revoke_by_hand(t: &Target) -> String {
    match cli_target(t) {
        Some(args) => format!(
            "To revoke by hand: `cutoff revoke {args} --reason \"...\"`, or in the IAM \
             console choose the {} and \"Revoke active sessions\".",
            if t.kind == TargetKind::User {
                "user, deactivate its access keys"
            } else {
                "role"
            }
        ),
        None => "To revoke by hand, follow the remedy above for this kind of principal.".to_owned(),
    }
}

fn release_step(t: &Target) -> Option<String> {
    let args = cli_target(t)?;
    let hours = if t.kind == TargetKind::User {
        USER_SESSION_MAX_HOURS
    } else {
        ROLE_SESSION_MAX_HOURS
    };
    Some(format!(
        "Once the incident is closed, remove the deny with `cutoff release {args}`. \
         It is refused until {hours} hours after the cutoff (until then a session issued \
         before it could still be alive); `--force` overrides that once you are sure. \
         Leaving the deny in place is harmless: new sessions are not affected."
    ))
}

/// What the owner should do, for principals IAM cannot restrict.
fn kind_remedy(t: &Target) -> Option<String> {
    Some(match t.kind {
        TargetKind::IdentityCenterRole => {
            let permission_set = permission_set_name(t.name.as_str());
            format!(
                "This role is provisioned by IAM Identity Center from the permission set \
                 {permission_set}, and Identity Center reverts changes made to it in IAM. \
                 To cut off its sessions, either (a) add to that permission set an inline \
                 policy that denies everything to sessions issued before now: \
                 {{\"Version\":\"2012-10-17\",\"Statement\":[{{\"Effect\":\"Deny\",\
                 \"Action\":\"*\",\"Resource\":\"*\",\"Condition\":{{\"DateLessThan\":\
                 {{\"aws:TokenIssueTime\":\"<current UTC time, e.g. 2026-11-23T12:00:00Z>\"}}}}}}]}} \
                 and re-provision the permission set to account {}; or (b) in IAM \
                 Identity Center, revoke the active sessions of the user involved{} and \
                 disable the user while you investigate.",
                t.account,
                t.session.as_ref().map_or_else(String::new, |s| format!(
                    " (the session name, {s}, is their Identity Center user name)"
                ))
            )
        }
        TargetKind::ServiceLinkedRole => {
            let service = t
                .name
                .as_str()
                .strip_prefix("AWSServiceRoleFor")
                .filter(|s| !s.is_empty())
                .unwrap_or("an AWS service");
            format!(
                "This service-linked role belongs to {service}; IAM refuses changes to it. \
                 Investigate the service: which resources in account {} use it, what the \
                 role did in CloudTrail, and who changed the service's configuration. Fix \
                 the configuration that was abused, and contact AWS Support if you believe \
                 the service itself acted wrongly.",
                t.account
            )
        }
        TargetKind::Root => format!(
            "IAM policies cannot restrict the root user. Sign in as root of account {} \
             (or use your organization's centralized root access), change the password, \
             delete any root access keys, check that every MFA device is yours, review \
             CloudTrail for root activity, and contact AWS Support if you cannot regain \
             control.",
            t.account
        ),
        TargetKind::FederatedUser => format!(
            "Federated-user sessions (GetFederationToken) have no IAM principal to hold a \
             deny. Find in CloudTrail the IAM user whose long-term key called \
             GetFederationToken for {}, then revoke that user: `cutoff revoke --account {} \
             --user <user>`.",
            t.name, t.account
        ),
        TargetKind::InstanceProfile => format!(
            "Find the role of instance profile {} (aws iam get-instance-profile) and revoke \
             it: `cutoff revoke --account {} --role <role>`.",
            t.name, t.account
        ),
        TargetKind::Unknown => "cutoff does not know this kind of principal. Identify it \
             from the finding and revoke its credentials by hand."
            .to_owned(),
        TargetKind::Role | TargetKind::User => return None,
    })
}

/// `AWSReservedSSO_<permission set>_<hex>` → the permission set's name.
fn permission_set_name(role: &str) -> String {
    role.strip_prefix("AWSReservedSSO_")
        .and_then(|rest| rest.rsplit_once('_').map(|(set, _)| set))
        .filter(|set| !set.is_empty())
        .map_or_else(
            || "that provisions it".to_owned(),
            |set| format!("\"{set}\""),
        )
}

fn credentials_step(t: &Target) -> String {
    if t.kind == TargetKind::User {
        match &t.access_key_id {
            Some(k) if k.is_long_term() => format!(
                "The access key {k} was set Inactive (not deleted: it is evidence). \
                 Create a new key for the legitimate user, update every place that uses \
                 it, and delete the old key only after the investigation. Rotate any other \
                 credentials of the user (password, other keys)."
            ),
            Some(k) => format!(
                "The key {k} is temporary and cannot be deactivated: find in CloudTrail \
                 the long-term AKIA key that minted it (GetSessionToken or \
                 GetFederationToken), set it Inactive, and rotate it."
            ),
            None => "Rotate the user's long-term credentials: set its access keys \
                 Inactive, create new ones, and change its password."
                .to_owned(),
        }
    } else {
        "Rotate any long-term credentials involved: access keys of users that could \
         assume this role, and secrets the role can read (they may have been copied)."
            .to_owned()
    }
}

fn retry_step(o: &Outcome) -> String {
    if o.trigger.source == Source::Manual {
        "This was a direct request and is not retried: fix the cause and run it again.".to_owned()
    } else {
        "Queued requests are retried automatically with backoff; after the last attempt \
         the request goes to cutoff's dead-letter queue (an alarm fires). Check it if this \
         does not resolve itself within minutes."
            .to_owned()
    }
}

fn error_hint(kind: FailureKind) -> Option<&'static str> {
    Some(match kind {
        FailureKind::AccessDenied => {
            "access_denied: check that the member role (cutoff-member) exists in the \
             account, trusts cutoff's account with the right ExternalId, and allows the IAM \
             actions cutoff needs."
        }
        FailureKind::NotFound => "not_found: the principal or policy no longer exists.",
        FailureKind::Quota => {
            "quota: the principal's policy budget or the account's policy quota is full; \
             free space and retry."
        }
        FailureKind::Throttled | FailureKind::Transient => {
            "the AWS API was throttled or unavailable."
        }
        FailureKind::InvalidRequest => "invalid_request: the request itself was malformed.",
        FailureKind::Unverified => {
            "unverified: the deny was written but could not be read back; check the \
             policy by hand."
        }
        FailureKind::UnreadablePolicy => {
            "unreadable_policy: an existing AWSRevokeOlderSessions policy could not be \
             parsed and was left alone; inspect it by hand."
        }
        FailureKind::PrincipalMismatch => {
            "principal_mismatch: IAM's principal of that name is not the one in the \
             finding (deleted and recreated since, or another principal): nothing was \
             written. Find where the finding's principal went; revoke by hand if needed."
        }
        FailureKind::AccountNotAllowed => {
            "account_not_allowed: the account is not one cutoff is configured for \
             (CUTOFF_ACCOUNTS / the Organization); nothing was done there."
        }
        FailureKind::CircuitOpen => {
            "circuit_open: more automatic revocations in this account this hour than the \
             circuit breaker allows (CUTOFF_BREAKER_PER_ACCOUNT_HOUR); nothing was written. \
             Find out why so many findings fire, and revoke by hand what is real."
        }
        FailureKind::KeyNotFound => {
            "key_not_found: the access key is not one of this user's; the deny on the \
             user stands. Find the key's owner and contain that user."
        }
        FailureKind::LedgerUnavailable => {
            "ledger_unavailable: a release runs only under the principal lock, and the \
             ledger could not be reached; nothing was removed. Retry later."
        }
        _ => return None,
    })
}

fn next_steps(o: &Outcome) -> Vec<String> {
    let Some(t) = &o.target else {
        let mut steps = vec![
            "Nothing was revoked. Read the error above, fix the request, and send it again."
                .to_owned(),
        ];
        steps.push(retry_step(o));
        return steps;
    };
    if let Some(sso) = &o.identity_center {
        return sso_steps(o, t, sso);
    }
    let mut steps = Vec::new();
    if is_rolling(o) {
        steps.push(
            "Nothing to do if the workload refreshes its credentials within the maximum \
             session age; a workload that holds a session longer gets AccessDenied and must \
             assume the role again."
                .to_owned(),
        );
        steps.push(format!(
            "To change the maximum, edit the tag cutoff:max-session-age on {} (or remove \
             it to opt out); the next sweep follows it.",
            t.name
        ));
        return steps;
    }
    match o.status {
        Status::Partial => {
            for still in &o.still_works {
                steps.push(format!(
                    "{} still works ({}): stop it by hand now (IAM console, or `aws iam update-access-key --status Inactive`).",
                    still.credential, still.why
                ));
            }
            steps.push(retry_step(o));
            steps.push(credentials_step(t));
            steps.push(investigate(o, t));
        }
        Status::Applied | Status::AlreadyRevoked => {
            if t.session.is_some() && o.scope == crate::event::Scope::Session {
                steps.push(format!(
                    "Sessions of {} named {} issued before the cutoff are denied; other \
                     sessions and new sessions work.",
                    t.name,
                    t.session.as_ref().map_or("", |s| s.as_str())
                ));
            } else {
                steps.push(
                    "Sessions issued before the cutoff are denied; new sessions work. If a \
                     workload fails now, restarting it gets it fresh credentials."
                        .to_owned(),
                );
            }
            steps.push(credentials_step(t));
            steps.push(investigate(o, t));
            steps.extend(release_step(t));
        }
        Status::DryRun => {
            steps.push(investigate(o, t));
            if let Some(args) = cli_target(t) {
                steps.push(format!(
                    "To write the deny for real: `cutoff revoke {args} --reason \"...\"`."
                ));
            }
        }
        Status::Protected => {
            steps.push(
                "A person must act: decide whether the activity is legitimate. cutoff will \
                 not revoke a protected principal, whatever the finding."
                    .to_owned(),
            );
            steps.push(investigate(o, t));
            steps.push(
                "If the credentials are compromised, revoke by hand in the IAM console \
                 (\"Revoke active sessions\") and rotate the credentials involved."
                    .to_owned(),
            );
        }
        Status::Unmodifiable | Status::Alerted => {
            if o.status == Status::Alerted && t.kind.is_revocable() {
                let severity = o
                    .trigger
                    .severity
                    .map_or_else(String::new, |s| format!(" ({s:.1})"));
                steps.push(format!(
                    "The finding's severity{severity} is below the revoke threshold \
                     (CUTOFF_REVOKE_SEVERITY, 7 by default), so cutoff only alerted. \
                     Decide whether this is a real compromise."
                ));
            } else if o.status == Status::Alerted {
                steps.push(
                    "cutoff only alerts on this kind of principal: IAM cannot restrict it, \
                     so a person must act."
                        .to_owned(),
                );
            }
            steps.extend(kind_remedy(t));
            steps.push(investigate(o, t));
            if o.status == Status::Alerted && t.kind.is_revocable() {
                steps.push(revoke_by_hand(t));
            }
        }
        Status::Released => {
            steps.push(
                "Nothing to do if this release was expected. If it was not, revoke again \
                 and find out who released it."
                    .to_owned(),
            );
            if let Some(args) = cli_target(t) {
                steps.push(format!("To revoke again: `cutoff revoke {args}`."));
            }
        }
        Status::AwaitingApproval => {
            if let Some(a) = &o.approval {
                steps.push(format!(
                    "To revoke: `{}` (through the deployed stack, with your own AWS credentials; AWS vouches for who approves). cutoff then runs the revocation exactly as the finding asked and records you as the approver.",
                    crate::approval::approve_command(&a.id)
                ));
                steps.push(format!(
                    "To decline: `{}`. Nothing is revoked; the refusal is recorded and announced.",
                    crate::approval::refuse_command(&a.id)
                ));
                steps.push(format!(
                    "Decide before {} (CUTOFF_APPROVAL_HOURS): after that it expires and nothing is done. `cutoff pending` lists the approvals still open.",
                    crate::approval::stamp(a.expires_at)
                ));
            }
            steps.push(investigate(o, t));
        }
        Status::ApprovalRefused => {
            steps.push(
                "Nothing to do if the activity is legitimate: the refusal stands, and later \
                 updates of the same finding about the same credential do not ask again."
                    .to_owned(),
            );
            steps.push(revoke_by_hand(t));
        }
        Status::ApprovalExpired => {
            steps.push(investigate(o, t));
            steps.push(
                "Decide whether this is a compromise: nobody did within the approval's time."
                    .to_owned(),
            );
            steps.push(revoke_by_hand(t));
        }
        Status::Failed => {
            let kind = o.error.as_ref().map_or("unknown", |e| e.kind.as_str());
            let message = o.error.as_ref().map_or("", |e| e.message.as_str());
            steps.push(format!("What failed: {kind}: {message}"));
            steps.extend(
                o.error
                    .as_ref()
                    .and_then(|e| error_hint(e.kind))
                    .map(str::to_owned),
            );
            steps.push(retry_step(o));
            steps.extend(kind_remedy(t));
            if t.kind.is_revocable() {
                steps.push(revoke_by_hand(t));
            }
        }
    }
    steps
}

fn owner_lines(body: &mut String, o: &Outcome, owner_known: bool) {
    if !owner_known {
        line(
            body,
            "No owner is known for this principal: it has no cutoff:owner tag and no \
             configured owner (CUTOFF_OWNER_PATTERNS). This message went to the security \
             team only.",
        );
        line(
            body,
            "Security team: find the owning team, forward this message to them, and tag \
             the principal cutoff:owner=<team> (optionally cutoff:notify=<SNS topic ARN>) \
             so that they are told directly next time.",
        );
        return;
    }
    match (&o.owner.team, &o.owner.topic) {
        (Some(team), _) => field(body, "Team", team),
        (None, Some(_)) => line(
            body,
            "The topic named by the principal's cutoff:notify tag.",
        ),
        (None, None) => line(body, "Known to the notifier's configuration."),
    }
}

/// [`render_summary_in`] with no notifier context.
pub fn render_summary(summary: &crate::summary::SweepSummary) -> SnsMessage {
    render_summary_in(summary, &MessageContext::default())
}

/// The security team's message for a sweep run: totals, failed accounts, and the
/// principals released, moved and failed (names are validated IAM names; messages
/// are cleaned and cut). Its request id is the run's id.
pub fn render_summary_in(
    summary: &crate::summary::SweepSummary,
    context: &MessageContext,
) -> SnsMessage {
    let s = summary;
    let trouble = s.has_failures();
    let subject_text = format!(
        "cutoff sweep{}: {} accounts, {} cutoffs moved, {} expired removed{}",
        if s.dry_run { " (dry run)" } else { "" },
        s.accounts_reported,
        s.cutoffs_moved,
        s.statements_removed,
        if trouble { ", FAILURES" } else { "" }
    );
    let mut body = String::new();
    body.push_str(&format!(
        "cutoff's scheduled sweep {} finished{}.\n",
        clean(&s.run_id, 64),
        if trouble {
            " with failures that need a person"
        } else {
            ""
        }
    ));
    if s.dry_run {
        body.push_str(
            "This was a dry run: nothing was written; the counts say what would change.\n",
        );
    }
    section(&mut body, "Totals");
    field(
        &mut body,
        "Accounts",
        &format!("{} of {} reported", s.accounts_reported, s.accounts),
    );
    field(&mut body, "Accounts failed", &s.accounts_failed.to_string());
    field(
        &mut body,
        "Principals read",
        &s.principals_scanned.to_string(),
    );
    field(&mut body, "Cutoffs moved", &s.cutoffs_moved.to_string());
    field(
        &mut body,
        "Expired removed",
        &format!(
            "{} statements, {} policies deleted",
            s.statements_removed, s.policies_deleted
        ),
    );
    field(
        &mut body,
        "Principals failed",
        &s.principals_failed.to_string(),
    );
    field(&mut body, "API calls", &s.api_calls.to_string());
    field(
        &mut body,
        "Duration",
        &format!("{:.1} s", s.duration_ms as f64 / 1000.0),
    );
    if !s.failures.is_empty() {
        section(&mut body, "Accounts not swept");
        for f in &s.failures {
            line(
                &mut body,
                &format!(
                    "{} ({}): {}",
                    f.account,
                    f.kind.as_str(),
                    clean(&f.message, 300)
                ),
            );
        }
    }
    let entries =
        |body: &mut String, title: &str, list: &[crate::summary::PrincipalEntry], total: u64| {
            if list.is_empty() {
                return;
            }
            section(body, title);
            for e in list {
                let cutoffs: Vec<String> = e.cutoffs.iter().map(ToString::to_string).collect();
                let mut text = format!(
                    "{} {} in {}",
                    clean(&e.kind, 16),
                    clean(&e.name, 64),
                    e.account
                );
                if !cutoffs.is_empty() {
                    text.push_str(&format!(" ({})", cutoffs.join(", ")));
                }
                if let Some(err) = &e.error {
                    text.push_str(&format!(": {}", clean(err, 300)));
                }
                line(body, &text);
            }
            if total > list.len() as u64 {
                line(
                    body,
                    &format!(
                        "... and {} more (see the run's records or `cutoff sweep --json`)",
                        total - list.len() as u64
                    ),
                );
            }
        };
    entries(
        &mut body,
        "Failed (retry on the next sweep; read the error)",
        &s.failed,
        s.principals_failed,
    );
    entries(
        &mut body,
        "Rolling cutoffs moved (owners were told)",
        &s.moved,
        s.cutoffs_moved,
    );
    entries(
        &mut body,
        "Expired revocations removed (they could no longer deny a live session)",
        &s.released,
        s.released.len() as u64,
    );
    if trouble {
        section(&mut body, "What to do next");
        line(
            &mut body,
            "1. Accounts not swept: check that the member role exists there and trusts the sweeper (infra/member-role.yaml), then run `cutoff sweep --account <id>`.",
        );
        line(
            &mut body,
            "2. Failed principals: the error says why; the next sweep retries them.",
        );
    }
    let place = Place::new(None, context.home_region.as_deref());
    section(&mut body, "Where to look");
    field(&mut body, "Region", &place.describe());
    field(
        &mut body,
        "Request id",
        &format!(
            "{} (the sweep run: its records in the ledger, and cutoff's logs)",
            clean(&s.run_id, 64)
        ),
    );
    problem_lines(&mut body, context);
    body.push('\n');
    body.push_str(SEPARATOR);
    body.push('\n');
    body.push_str(&serde_json::to_string_pretty(s).unwrap_or_default());
    body.push('\n');
    let subject = fit_subject(&subject_text, "", "");
    let chat = chat::for_summary(s, &subject, context);
    SnsMessage {
        subject,
        body,
        attributes: vec![
            (
                attribute::STATUS.to_owned(),
                if trouble { "sweep_failed" } else { "swept" }.to_owned(),
            ),
            (
                attribute::CLASS.to_owned(),
                MessageClass::of_summary(s).as_str().to_owned(),
            ),
        ],
        chat,
    }
}

/// [`render_digest_in`] with no notifier context.
pub fn render_digest(digest: &crate::summary::SweepDigest) -> SnsMessage {
    render_digest_in(digest, &MessageContext::default())
}

/// The security team's daily digest of the sweep: what one UTC day's runs did,
/// quiet ones included. Routine: the runs that changed or failed something had
/// their own summaries. Its request id is the run that made it.
pub fn render_digest_in(
    digest: &crate::summary::SweepDigest,
    context: &MessageContext,
) -> SnsMessage {
    let d = digest;
    let subject = fit_subject(
        &format!(
            "cutoff sweep digest {}: {} runs, {} quiet, {} changes, {} failures",
            d.date, d.runs, d.quiet_runs, d.changes, d.failures
        ),
        "",
        "",
    );
    let mut body = String::new();
    body.push_str(&format!(
        "cutoff's daily digest of the sweep for {} (UTC).\n",
        d.date
    ));
    body.push_str(
        "A sweep run's own summary goes out only when it changed something or something \
         failed; this digest counts every run of the day, the quiet ones too.\n",
    );
    if d.runs == 0 {
        body.push_str(&format!(
            "No sweep was planned on {}: check the schedule (the heartbeat-missing alarm \
             fires when sweeps stop).\n",
            d.date
        ));
    }
    section(&mut body, "Runs");
    field(
        &mut body,
        "Runs",
        &format!("{} ({} dry runs)", d.runs, d.dry_runs),
    );
    field(
        &mut body,
        "Quiet",
        &format!("{} (no summary was sent)", d.quiet_runs),
    );
    field(&mut body, "With changes", &d.runs_with_changes.to_string());
    field(
        &mut body,
        "With failures",
        &format!(
            "{} (their summaries were sent as incidents)",
            d.runs_with_failures
        ),
    );
    field(&mut body, "Unfinished", &d.unfinished_runs.to_string());
    section(&mut body, "Totals of the finished runs");
    field(&mut body, "Accounts swept", &d.accounts_swept.to_string());
    field(
        &mut body,
        "Principals read",
        &d.principals_scanned.to_string(),
    );
    field(
        &mut body,
        "Changes",
        &format!(
            "{} ({} cutoffs moved, {} expired statements removed, {} policies deleted)",
            d.changes, d.cutoffs_moved, d.statements_removed, d.policies_deleted
        ),
    );
    field(
        &mut body,
        "Failures",
        &format!(
            "{} ({} accounts not swept, {} accounts never reported, {} principals failed)",
            d.failures, d.accounts_failed, d.accounts_unreported, d.principals_failed
        ),
    );
    if d.dry_runs > 0 {
        line(
            &mut body,
            "Dry runs wrote nothing: their changes are what they would have changed.",
        );
    }
    let runs = |body: &mut String, title: &str, ids: &[String], total: u64| {
        if ids.is_empty() {
            return;
        }
        section(body, title);
        for id in ids {
            line(body, &clean(id, 64));
        }
        if total > ids.len() as u64 {
            line(body, &format!("... and {} more", total - ids.len() as u64));
        }
    };
    runs(
        &mut body,
        "Runs with failures (each had its own summary)",
        &d.failed,
        d.runs_with_failures,
    );
    runs(
        &mut body,
        "Unfinished runs (still running when this digest was made, or a task in the sweep dead-letter queue)",
        &d.unfinished,
        d.unfinished_runs,
    );
    let place = Place::new(None, context.home_region.as_deref());
    section(&mut body, "Where to look");
    field(&mut body, "Region", &place.describe());
    field(
        &mut body,
        "Request id",
        &format!(
            "{} (the sweep run that made this digest; each run's records are in the ledger under its id, and in cutoff's logs)",
            clean(&d.made_by, 64)
        ),
    );
    problem_lines(&mut body, context);
    body.push('\n');
    body.push_str(SEPARATOR);
    body.push('\n');
    body.push_str(&serde_json::to_string_pretty(d).unwrap_or_default());
    body.push('\n');
    let chat = chat::for_digest(d, &subject, context);
    SnsMessage {
        subject,
        body,
        attributes: vec![
            (attribute::STATUS.to_owned(), "sweep_digest".to_owned()),
            (
                attribute::CLASS.to_owned(),
                MessageClass::Routine.as_str().to_owned(),
            ),
        ],
        chat,
    }
}

/// An SNS message as cutoff sends it: one subject and set of attributes, and a body
/// per kind of subscriber ([`message_structure`] puts them together).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnsMessage {
    /// At most 100 printable ASCII characters (SNS's limit for email subjects).
    pub subject: String,
    /// The plain text: e-mail, and every protocol without a body of its own (queues,
    /// functions).
    pub body: String,
    /// String message attributes (for subscription filter policies).
    pub attributes: Vec<(String, String)>,
    /// The chat body: HTTPS subscriptions, Amazon Q Developer in chat applications'.
    pub chat: ChatNotification,
}

#[cfg(test)]
mod message_tests;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Scope;
    use crate::outcome::Owner;
    use crate::policy::Cutoff;
    use crate::principal::{AccessKeyId, Account, PrincipalName, SessionName};

    const ACCOUNT: &str = "111122223333";
    const SECURITY: &str = "arn:aws:sns:us-east-1:999988887777:cutoff-security";
    const PAYMENTS: &str = "arn:aws:sns:us-east-1:111122223333:payments-alerts";
    const TAGGED: &str = "arn:aws:sns:us-east-1:111122223333:payments-oncall";

    const ALL_STATUSES: [Status; 11] = [
        Status::Applied,
        Status::AlreadyRevoked,
        Status::DryRun,
        Status::Protected,
        Status::Unmodifiable,
        Status::Alerted,
        Status::Released,
        Status::Failed,
        Status::AwaitingApproval,
        Status::ApprovalRefused,
        Status::ApprovalExpired,
    ];

    fn target(kind: TargetKind, name: &str) -> Target {
        Target::new(
            kind,
            Account::parse(ACCOUNT).unwrap(),
            PrincipalName::parse(name).unwrap(),
        )
    }

    fn outcome(status: Status, target: Target) -> Outcome {
        let cutoff = Cutoff::parse("2026-11-23T12:00:02Z").unwrap();
        let mut o = Outcome {
            status,
            target: Some(target),
            cutoff: Some(cutoff),
            previous_cutoff: None,
            policy: Some("AWSRevokeOlderSessions".to_owned()),
            scope: Scope::Role,
            owner: Owner {
                team: Some("payments".to_owned()),
                topic: None,
            },
            trigger: Trigger {
                source: Source::GuardDuty,
                finding_id: Some("f-123".to_owned()),
                finding_type: Some(
                    "UnauthorizedAccess:IAMUser/InstanceCredentialExfiltration.OutsideAWS"
                        .to_owned(),
                ),
                severity: Some(8.0),
                reason: Some("severity 8.0 at or above 7".to_owned()),
                ..Trigger::default()
            },
            api_calls: 4,
            error: None,
            propagation: Some("eventual".to_owned()),
            detail: "denied every session".to_owned(),
            actions: vec!["put inline policy AWSRevokeOlderSessions".to_owned()],
            dry_run: status == Status::DryRun,
            still_works: Vec::new(),
            other_access: Vec::new(),
            chain: None,
            identity_center: None,
            request_id: None,
            activity_region: None,
            approval: None,
        };
        if status == Status::Failed {
            o = o.failed(
                FailureKind::AccessDenied,
                "iam:PutRolePolicy: not authorized",
            );
        }
        o
    }

    fn role_outcome(status: Status) -> Outcome {
        outcome(status, target(TargetKind::Role, "payments-api"))
    }

    fn human(message: &SnsMessage) -> &str {
        message
            .body
            .split(SEPARATOR)
            .next()
            .unwrap_or(&message.body)
    }

    fn config() -> NotifierConfig {
        let mut config = NotifierConfig::new(SECURITY);
        config
            .team_topics
            .insert("payments".to_owned(), PAYMENTS.to_owned());
        config.owner_patterns.push((
            crate::principal::NamePattern::parse("ledger-*").unwrap(),
            "payments".to_owned(),
        ));
        config
    }

    #[test]
    fn given_any_status_and_kind_when_rendered_then_subject_fits_and_body_names_principal_account_and_next_step()
     {
        let long = "a".repeat(64);
        let kinds = [
            TargetKind::Role,
            TargetKind::User,
            TargetKind::Root,
            TargetKind::ServiceLinkedRole,
            TargetKind::IdentityCenterRole,
            TargetKind::InstanceProfile,
            TargetKind::FederatedUser,
            TargetKind::Unknown,
        ];
        for status in ALL_STATUSES {
            for kind in kinds {
                for name in ["payments-api", long.as_str()] {
                    let name = if kind == TargetKind::Root {
                        "root"
                    } else {
                        name
                    };
                    let o = outcome(status, target(kind, name));
                    let m = render(&o, true);
                    assert!(m.subject.len() <= SUBJECT_MAX, "{}", m.subject);
                    assert!(
                        m.subject.chars().all(|c| (' '..='~').contains(&c)),
                        "{:?}",
                        m.subject
                    );
                    assert!(m.subject.contains(ACCOUNT), "{}", m.subject);
                    let body = human(&m);
                    if kind != TargetKind::Root {
                        assert!(body.contains(name), "{status:?} {kind:?}: {body}");
                    }
                    assert!(body.contains(ACCOUNT), "{body}");
                    assert!(
                        body.contains("What to do next\n  1. "),
                        "{status:?} {kind:?}: {body}"
                    );
                    assert!(m.body.contains(SEPARATOR));
                }
            }
        }
    }

    #[test]
    fn given_each_status_when_rendered_then_the_subject_says_what_happened() {
        let subject = |s| render(&role_outcome(s), true).subject;
        assert_eq!(
            subject(Status::Applied),
            "cutoff: revoked sessions of role payments-api in 111122223333"
        );
        assert!(subject(Status::Alerted).starts_with("cutoff ALERT: "));
        assert!(subject(Status::Unmodifiable).starts_with("cutoff ALERT: "));
        assert!(subject(Status::Failed).starts_with("cutoff FAILED: "));
        assert!(subject(Status::Failed).contains("access_denied"));
        assert_eq!(
            subject(Status::Protected),
            "cutoff ALERT: protected role payments-api in 111122223333 named, NOT revoked"
        );
        assert!(subject(Status::AlreadyRevoked).contains("already revoked"));
        assert!(subject(Status::DryRun).contains("dry run"));
        assert!(subject(Status::Released).contains("released"));
    }

    #[test]
    fn given_a_64_character_name_when_rendered_then_the_subject_is_shortened_but_keeps_the_account()
    {
        let o = outcome(
            Status::Failed,
            target(TargetKind::IdentityCenterRole, &"b".repeat(64)),
        );
        let s = render(&o, true).subject;
        assert!(s.len() <= SUBJECT_MAX, "{s}");
        assert!(s.contains("..."), "{s}");
        assert!(s.ends_with("not done (access_denied)"), "{s}");
    }

    #[test]
    fn given_an_applied_role_revocation_when_rendered_then_the_body_explains_cutoff_deny_and_release()
     {
        let body = render(&role_outcome(Status::Applied), true).body;
        for expected in [
            "cutoff revoked the active sessions of IAM role payments-api in account 111122223333.",
            "2026-11-23T12:00:02Z (sessions issued before this time are denied)",
            "inline policy AWSRevokeOlderSessions on the role",
            "new sessions work",
            "Rotate any long-term credentials",
            "the finding f-123",
            "CloudTrail in account 111122223333",
            "`cutoff release --account 111122223333 --role payments-api`",
            "12 hours",
            "--force",
            "Amazon GuardDuty finding",
            "UnauthorizedAccess:IAMUser/InstanceCredentialExfiltration.OutsideAWS",
            "8.0 (High)",
            "Team:             payments",
        ] {
            assert!(body.contains(expected), "missing {expected:?} in\n{body}");
        }
    }

    #[test]
    fn given_each_kind_of_finding_when_rendered_then_the_source_line_names_it() {
        let source_line = |trigger: Trigger| {
            let mut o = role_outcome(Status::Applied);
            o.trigger = trigger;
            let body = render(&o, true).body;
            body.lines()
                .map(str::trim)
                .find(|l| l.starts_with("Source:"))
                .map(|l| l.trim_start_matches("Source:").trim().to_owned())
                .unwrap_or_else(|| panic!("no source line in\n{body}"))
        };
        let sequence = Trigger {
            source: Source::GuardDuty,
            finding_type: Some("AttackSequence:IAM/CompromisedCredentials".to_owned()),
            ..Trigger::default()
        };
        let ocsf = Trigger {
            source: Source::SecurityHub,
            finding_format: Some(FindingFormat::Ocsf),
            ..Trigger::default()
        };
        let imported = Trigger {
            source: Source::SecurityHub,
            ..Trigger::default()
        };
        let action = Trigger {
            source: Source::SecurityHub,
            custom_action: Some(
                "arn:aws:securityhub:us-east-1:111122223333:action/custom/cutoffrevoke".to_owned(),
            ),
            ..Trigger::default()
        };
        assert_eq!(
            source_line(sequence),
            "Amazon GuardDuty attack sequence (Extended Threat Detection)"
        );
        assert_eq!(
            source_line(ocsf),
            "AWS Security Hub finding (OCSF, Findings Imported V2)"
        );
        assert_eq!(source_line(imported), "AWS Security Hub finding");
        assert_eq!(
            source_line(action),
            "AWS Security Hub (an operator chose a custom action)"
        );
    }

    #[test]
    fn given_a_user_with_a_long_term_key_when_revoked_then_the_body_says_the_key_is_inactive_and_release_waits_36_hours()
     {
        let mut t = target(TargetKind::User, "ci-deployer");
        t.access_key_id = Some(AccessKeyId::parse("AKIAIOSFODNN7EXAMPLE").unwrap());
        let body = render(&outcome(Status::Applied, t), true).body;
        for expected in [
            "Access key:       AKIAIOSFODNN7EXAMPLE",
            "AKIAIOSFODNN7EXAMPLE was set Inactive",
            "rotate",
            "`cutoff release --account 111122223333 --user ci-deployer`",
            "36 hours",
            "inline policy AWSRevokeOlderSessions on the user",
        ] {
            assert!(
                body.to_lowercase().contains(&expected.to_lowercase()),
                "missing {expected:?} in\n{body}"
            );
        }
    }

    #[test]
    fn given_a_session_scoped_revocation_when_rendered_then_the_session_is_named_and_others_unaffected()
     {
        let mut t = target(TargetKind::Role, "web");
        t.session = Some(SessionName::parse("i-0123456789abcdef0").unwrap());
        let mut o = outcome(Status::Applied, t);
        o.scope = Scope::Session;
        o.policy = Some("CutoffRevokedSessions".to_owned());
        let m = render(&o, true);
        assert!(m.subject.contains("a session of role web"), "{}", m.subject);
        assert!(m.body.contains("Session:          i-0123456789abcdef0"));
        assert!(
            m.body
                .contains("Other sessions of the principal are not affected")
        );
        assert!(m.body.contains("with session name i-0123456789abcdef0"));
        assert!(
            m.body.contains(
                "Scope:            only its sessions named i-0123456789abcdef0; other sessions of the principal keep working"
            ),
            "{}",
            m.body
        );
    }

    #[test]
    fn given_an_identity_center_role_when_alerted_then_the_body_gives_the_permission_set_remedy() {
        for status in [Status::Unmodifiable, Status::Alerted] {
            let o = outcome(
                status,
                target(
                    TargetKind::IdentityCenterRole,
                    "AWSReservedSSO_AdministratorAccess_0123456789abcdef",
                ),
            );
            let body = render(&o, true).body;
            for expected in [
                "permission set \"AdministratorAccess\"",
                "aws:TokenIssueTime",
                "DateLessThan",
                "re-provision the permission set to account 111122223333",
                "revoke the active sessions of the user",
            ] {
                assert!(body.contains(expected), "missing {expected:?} in\n{body}");
            }
        }
    }

    #[test]
    fn given_an_identity_center_user_contained_then_the_body_lists_each_permission_set_and_the_disable_step()
     {
        use crate::identity_center::{
            DISABLE_USER, PermissionSetDeny, PermissionSetState, SsoContainment,
        };
        let mut t = target(
            TargetKind::IdentityCenterRole,
            "AWSReservedSSO_Admin_0123456789abcdef",
        );
        t.session = Some(SessionName::parse("alice@example.com").unwrap());
        let mut o = outcome(Status::Partial, t);
        // As the revoker reports it: no role deny, no cutoff.
        o.cutoff = None;
        o.policy = Some("the permission sets' inline policies".to_owned());
        o.actions = vec!["deny Identity Center user 906752d1-b1a2-4c3d-8e9f-0a1b2c3d4e5f in the inline policy of permission set Admin".to_owned()];
        o.identity_center = Some(SsoContainment {
            action: crate::identity_center::SsoAction::Deny,
            user_name: "alice@example.com".to_owned(),
            user_id: "906752d1-b1a2-4c3d-8e9f-0a1b2c3d4e5f".to_owned(),
            instance_arn: "arn:aws:sso:::instance/ssoins-7223a4f1b1a8e2c0".to_owned(),
            permission_sets: vec![
                PermissionSetDeny {
                    arn: "arn:aws:sso:::permissionSet/ssoins-7223a4f1b1a8e2c0/ps-1".to_owned(),
                    name: "Admin".to_owned(),
                    accounts: vec![Account::parse(ACCOUNT).unwrap()],
                    accounts_total: 1,
                    state: PermissionSetState::Denied,
                    note: None,
                },
                PermissionSetDeny {
                    arn: "arn:aws:sso:::permissionSet/ssoins-7223a4f1b1a8e2c0/ps-2".to_owned(),
                    name: "ReadOnly\u{1b}[31m".to_owned(),
                    accounts: vec![Account::parse(ACCOUNT).unwrap()],
                    accounts_total: 1,
                    state: PermissionSetState::Provisioning,
                    note: Some("still provisioning when cutoff stopped waiting".to_owned()),
                },
            ],
            permission_sets_total: 2,
            service_control_policy: None,
            to_do: DISABLE_USER.to_owned(),
        });
        let body = render(&sanitized(&o), true).body;
        for expected in [
            "Identity Center user",
            "alice@example.com (906752d1-b1a2-4c3d-8e9f-0a1b2c3d4e5f)",
            "Permission set Admin: denied, provisioned and read back (used in 111122223333)",
            "written, still provisioning",
            "Now: disable the user in their identity source",
            "cutoff release --account 111122223333 --role AWSReservedSSO_Admin_0123456789abcdef --session alice@example.com",
        ] {
            assert!(body.contains(expected), "missing {expected:?} in\n{body}");
        }
        assert!(!body.contains('\u{1b}'), "control characters are cleaned");
        let text = body.split(SEPARATOR).next().unwrap();
        assert!(
            !text.contains("AWSRevokeOlderSessions") && !text.contains("Cutoff:"),
            "no role deny is claimed: {text}"
        );
    }

    #[test]
    fn given_an_identity_center_release_that_failed_then_the_body_does_not_speak_of_denying() {
        use crate::identity_center::{
            DISABLE_USER, PermissionSetDeny, PermissionSetState, SsoAction, SsoContainment,
        };
        let mut t = target(
            TargetKind::IdentityCenterRole,
            "AWSReservedSSO_Admin_0123456789abcdef",
        );
        t.session = Some(SessionName::parse("alice@example.com").unwrap());
        let mut o = outcome(Status::Failed, t);
        o.cutoff = None;
        o.identity_center = Some(SsoContainment {
            action: SsoAction::Release,
            user_name: "alice@example.com".to_owned(),
            user_id: "906752d1-b1a2-4c3d-8e9f-0a1b2c3d4e5f".to_owned(),
            instance_arn: "arn:aws:sso:::instance/ssoins-7223a4f1b1a8e2c0".to_owned(),
            permission_sets: vec![PermissionSetDeny {
                arn: "arn:aws:sso:::permissionSet/ssoins-7223a4f1b1a8e2c0/ps-1".to_owned(),
                name: "Admin".to_owned(),
                accounts: Vec::new(),
                accounts_total: 0,
                state: PermissionSetState::Failed,
                note: Some("another writer holds its lock".to_owned()),
            }],
            permission_sets_total: 1,
            service_control_policy: None,
            to_do: DISABLE_USER.to_owned(),
        });
        let body = render(&sanitized(&o), true).body;
        let text = body.split(SEPARATOR).next().unwrap();
        assert!(text.contains("FAILED to complete the release"), "{text}");
        assert!(
            text.contains("Permission set Admin: deny NOT removed"),
            "{text}"
        );
        assert!(text.contains("run the release again"), "{text}");
        for wrong in [
            "disable the user",
            "not yet denying",
            "cutoff denies the user",
        ] {
            assert!(!text.contains(wrong), "{wrong:?} in\n{text}");
        }
    }

    #[test]
    fn given_a_service_linked_role_when_alerted_then_the_body_says_to_investigate_the_service() {
        let o = outcome(
            Status::Unmodifiable,
            target(TargetKind::ServiceLinkedRole, "AWSServiceRoleForECS"),
        );
        let m = render(&o, true);
        assert!(
            m.subject
                .starts_with("cutoff ALERT: act by hand on service-linked role")
        );
        assert!(m.body.contains("belongs to ECS"), "{}", m.body);
        assert!(m.body.contains("IAM refuses changes"));
        assert!(m.body.contains("Investigate the service"));
    }

    #[test]
    fn given_the_root_user_when_alerted_then_the_body_says_rotate_check_mfa_and_contact_aws() {
        let o = outcome(Status::Unmodifiable, target(TargetKind::Root, "root"));
        let m = render(&o, true);
        assert_eq!(
            m.subject,
            "cutoff ALERT: act by hand on the root user of 111122223333"
        );
        for expected in [
            "root access keys",
            "MFA",
            "AWS Support",
            "change the password",
        ] {
            assert!(m.body.contains(expected), "missing {expected:?}");
        }
    }

    #[test]
    fn given_an_alert_below_the_threshold_when_rendered_then_the_body_says_so_and_how_to_revoke_by_hand()
     {
        let mut o = role_outcome(Status::Alerted);
        o.trigger.severity = Some(5.0);
        let body = render(&o, true).body;
        assert!(body.contains("severity (5.0) is below the revoke threshold"));
        assert!(body.contains("`cutoff revoke --account 111122223333 --role payments-api"));
        assert!(body.contains("Investigate"));
    }

    #[test]
    fn given_a_protected_role_when_rendered_then_the_body_says_why_and_that_a_person_must_act() {
        let body = render(&role_outcome(Status::Protected), true).body;
        assert!(body.contains("cutoff:protected=true"));
        assert!(body.contains("A person must act"));
    }

    #[test]
    fn given_a_failed_queued_request_when_rendered_then_the_body_says_what_failed_retry_dlq_and_manual_revoke()
     {
        let body = render(&role_outcome(Status::Failed), true).body;
        for expected in [
            "Error kind:       access_denied",
            "iam:PutRolePolicy: not authorized",
            "dead-letter queue",
            "retried automatically",
            "`cutoff revoke --account 111122223333 --role payments-api",
            "member role",
        ] {
            assert!(body.contains(expected), "missing {expected:?} in\n{body}");
        }
        let mut manual = role_outcome(Status::Failed);
        manual.trigger.source = Source::Manual;
        assert!(render(&manual, true).body.contains("not retried"));
    }

    #[test]
    fn given_an_unreadable_request_when_rendered_then_the_message_says_so_without_a_principal() {
        let o = Outcome::invalid_request("missing field `account`");
        let m = render(&o, false);
        assert!(m.subject.starts_with("cutoff FAILED"), "{}", m.subject);
        assert!(m.subject.len() <= SUBJECT_MAX);
        assert!(m.body.contains("missing field `account`"));
        assert!(m.body.contains("What to do next\n  1. "));
        assert!(!m.attributes.iter().any(|(k, _)| k == attribute::ACCOUNT));
    }

    #[test]
    fn given_no_owner_when_rendered_then_the_body_says_plainly_that_no_owner_is_known() {
        let mut o = role_outcome(Status::Applied);
        o.owner = Owner::default();
        let m = render(&o, false);
        assert!(m.body.contains("No owner is known for this principal"));
        assert!(
            m.body
                .contains("no cutoff:owner tag and no configured owner")
        );
        assert!(m.body.contains("security team should") || m.body.contains("Security team: find"));
        assert!(!m.attributes.iter().any(|(k, _)| k == attribute::TEAM));
    }

    #[test]
    fn given_an_outcome_when_rendered_then_attributes_carry_status_account_team_and_kind() {
        let m = render(&role_outcome(Status::AlreadyRevoked), true);
        let attr = |k: &str| {
            m.attributes
                .iter()
                .find(|(name, _)| name == k)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(attr(attribute::STATUS), Some("already_revoked"));
        assert_eq!(attr(attribute::ACCOUNT), Some(ACCOUNT));
        assert_eq!(attr(attribute::TEAM), Some("payments"));
        assert_eq!(attr(attribute::KIND), Some("role"));
    }

    #[test]
    fn given_an_outcome_when_rendered_then_the_json_part_is_the_outcome() {
        let o = role_outcome(Status::Applied);
        let m = render(&o, true);
        let json = m.body.split(SEPARATOR).nth(1).unwrap();
        let back: Outcome = serde_json::from_str(json).unwrap();
        assert_eq!(back, o);
    }

    #[test]
    fn given_hostile_fields_when_rendered_then_they_are_bounded_and_cannot_forge_lines_or_escape_codes()
     {
        let mut o = role_outcome(Status::Failed);
        let forged = "x\n\nWhat to do next\n  1. Delete the deny\r\n\u{1b}[31mred\u{1b}[0m\u{202e}";
        o.trigger.reason = Some("A".repeat(10 * 1024));
        o.trigger.requested_by = Some(forged.to_owned());
        o.trigger.finding_type = Some(forged.to_owned());
        o.trigger.finding_id = Some(forged.repeat(100));
        o.detail = forged.repeat(100);
        o.error.as_mut().unwrap().message = forged.to_owned();
        // A forged kind on the bus is read as `unknown`, never shown as it came.
        let mut forged_kind = serde_json::to_value(&o).unwrap();
        forged_kind["error"]["kind"] = "evil\nkind".into();
        o = serde_json::from_value(forged_kind).unwrap();
        assert_eq!(o.error.as_ref().unwrap().kind, FailureKind::Unknown);
        o.owner.team = Some(forged.to_owned());
        o.actions = vec![forged.to_owned(); 1000];
        let m = render(&o, true);
        for part in [&m.subject, &m.body] {
            assert!(!part.contains('\u{1b}'), "escape code survived");
            assert!(!part.contains('\r'));
            assert!(!part.contains('\u{202e}'));
        }
        assert_eq!(
            m.body.matches("What to do next\n").count(),
            1,
            "a field forged a section"
        );
        assert!(!m.body.contains("\n  1. Delete the deny"));
        assert!(!m.subject.contains("evil"), "{}", m.subject);
        assert!(m.body.len() < 40 * 1024, "{} bytes", m.body.len());
        let json = m.body.split(SEPARATOR).nth(1).unwrap();
        let back: Outcome = serde_json::from_str(json).unwrap();
        let reason = back.trigger.reason.unwrap();
        assert_eq!(reason.chars().count(), FIELD_MAX);
        assert!(reason.ends_with('…'));
        assert!(back.actions.len() <= 20);
        assert!(back.detail.chars().count() <= FIELD_MAX);
        assert!(!back.owner.team.unwrap().contains('\n'));
        for (_, value) in &m.attributes {
            assert!(!value.chars().any(char::is_control));
            assert!(value.chars().count() <= 128);
        }
    }

    #[test]
    fn given_control_characters_when_cleaned_then_runs_become_one_space_and_length_is_bounded() {
        assert_eq!(clean("a\n\r\u{1b}b", 10), "a b");
        assert_eq!(clean("abcdef", 4), "abc…");
        assert_eq!(clean("abcd", 4), "abcd");
        assert_eq!(clean("", 4), "");
        assert_eq!(clean("abc", 0), "");
    }

    #[test]
    fn given_a_notify_tag_topic_when_routed_then_it_wins_over_the_team_map() {
        let mut o = role_outcome(Status::Applied);
        o.owner.topic = Some(TAGGED.to_owned());
        let r = route(&o, &config());
        assert_eq!(r.owner_topic.as_deref(), Some(TAGGED));
        assert!(r.owner_known);
        assert_eq!(r.topics(), [SECURITY, TAGGED]);
    }

    #[test]
    fn given_an_owner_team_when_routed_then_the_team_map_gives_the_topic() {
        let r = route(&role_outcome(Status::Applied), &config());
        assert_eq!(r.owner_topic.as_deref(), Some(PAYMENTS));
        assert_eq!(r.team.as_deref(), Some("payments"));
    }

    #[test]
    fn given_no_owner_tag_when_routed_then_an_owner_pattern_gives_the_team_and_topic() {
        let mut o = outcome(Status::Applied, target(TargetKind::Role, "ledger-writer"));
        o.owner = Owner::default();
        let r = route(&o, &config());
        assert_eq!(r.team.as_deref(), Some("payments"));
        assert_eq!(r.owner_topic.as_deref(), Some(PAYMENTS));
        assert!(r.owner_known);
    }

    #[test]
    fn given_an_owner_tag_for_an_unmapped_team_when_routed_then_patterns_are_not_consulted() {
        let mut o = outcome(Status::Applied, target(TargetKind::Role, "ledger-writer"));
        o.owner.team = Some("ledger".to_owned());
        let r = route(&o, &config());
        assert_eq!(r.team.as_deref(), Some("ledger"));
        assert_eq!(r.owner_topic, None);
        assert!(r.owner_known);
        assert_eq!(r.topics(), [SECURITY]);
    }

    #[test]
    fn given_no_owner_at_all_when_routed_then_only_the_security_topic() {
        let mut o = role_outcome(Status::Applied);
        o.owner = Owner::default();
        let r = route(&o, &config());
        assert!(!r.owner_known);
        assert_eq!(r.team, None);
        assert_eq!(r.topics(), [SECURITY]);
    }

    #[test]
    fn given_a_forged_tag_topic_when_routed_then_it_is_ignored() {
        let mut o = role_outcome(Status::Applied);
        o.owner.topic = Some("https://attacker.example/hook".to_owned());
        let r = route(&o, &config());
        assert_eq!(r.owner_topic.as_deref(), Some(PAYMENTS));
    }

    #[test]
    fn given_an_owner_topic_equal_to_the_security_topic_when_routed_then_one_publish() {
        let mut o = role_outcome(Status::Applied);
        o.owner.topic = Some(SECURITY.to_owned());
        assert_eq!(route(&o, &config()).topics(), [SECURITY]);
    }

    #[test]
    fn given_any_outcome_when_a_finding_note_is_made_then_it_fits_512_characters() {
        let mut o = role_outcome(Status::Applied);
        o.detail = "d".repeat(5000);
        let note = finding_note(&o, &route(&o, &config()));
        assert!(note.chars().count() <= NOTE_MAX);
        assert!(note.starts_with("cutoff applied: "));
    }

    fn follow_up_run(new: bool, gaps: Vec<String>) -> Outcome {
        let mut o: Outcome = serde_json::from_value(serde_json::json!({
            "status": if gaps.is_empty() { "applied" } else { "partial" },
            "target": {"kind": "role", "account": "111122223333", "name": "pay-ci",
                       "access_key_id": "ASIASTOLENKEY0000001", "session": null},
            "cutoff": null, "previous_cutoff": null, "policy": null, "scope": "role",
            "owner": {"team": "payments", "topic": null},
            "trigger": {"source": "chain", "finding_id": "f-1", "finding_type": null, "severity": null,
                        "updated_at": null, "requested_by": null, "reason": null},
            "api_calls": 4, "error": null, "propagation": null, "detail": "run", "actions": [], "dry_run": false
        }))
        .unwrap();
        o.chain = Some(crate::chain::ChainReport {
            run: 2,
            runs: 3,
            key: "ASIASTOLENKEY0000001".to_owned(),
            searched: vec!["111122223333 us-east-1".to_owned()],
            from: chrono::Utc::now(),
            to: chrono::Utc::now(),
            links: vec![crate::chain::ChainLink {
                id: "111122223333:e1".to_owned(),
                depth: 1,
                by: "ASIASTOLENKEY0000001".to_owned(),
                account: "111122223333".to_owned(),
                found: "assumed role admin in 444455556666 as session `hop\u{1b}[31m`".to_owned(),
                result: "applied: revoked".to_owned(),
                new,
            }],
            complete: gaps.is_empty(),
            gaps,
        });
        o
    }

    #[test]
    fn a_follow_up_run_says_what_the_credential_did_and_what_is_new_and_cleans_what_the_attacker_wrote()
     {
        let message = render(&follow_up_run(true, Vec::new()), true);
        assert!(
            message.subject.starts_with("cutoff: follow-up 2/3"),
            "{}",
            message.subject
        );
        assert!(
            message.subject.ends_with(": 1 link, 1 new"),
            "{}",
            message.subject
        );
        assert!(
            message.body.contains("NEW: assumed role admin"),
            "{}",
            message.body
        );
        assert!(
            !message.body.contains('\u{1b}'),
            "control characters from a record are cleaned"
        );
        let class = |o: &Outcome| {
            render(o, true)
                .attributes
                .into_iter()
                .find(|(k, _)| k == attribute::CLASS)
                .unwrap()
                .1
        };
        assert_eq!(class(&follow_up_run(true, Vec::new())), "incident");
        // A repeat that found nothing new is routine; one that could not read is not.
        assert_eq!(class(&follow_up_run(false, Vec::new())), "routine");
        let partial = follow_up_run(
            false,
            vec!["CloudTrail of 111122223333 eu-west-1 could not be read".to_owned()],
        );
        assert_eq!(class(&partial), "incident");
        let message = render(&partial, true);
        assert!(
            message.subject.starts_with("cutoff PARTIAL: follow-up"),
            "{}",
            message.subject
        );
        assert!(message.body.contains("Not followed"), "{}", message.body);
    }
}
