//! The follow-up of a revocation (issue [11]): one run reads CloudTrail for what the
//! revoked key did ([`cutoff_domain::chain`]) and contains each link
//! ([`cutoff_domain::follow_up::containment`]): a minted session is revoked through
//! this same pipeline (scope, lock, protections, audit, its owner told), a created key
//! is set Inactive, the rest is reported. The run ends in an outcome of its own with a
//! [`ChainReport`], recorded in the ledger with the origin's audit trail.
//!
//! The task is only as trustworthy as whoever could invoke the revoker, so it is run
//! only for a key the ledger says cutoff revoked on that principal for that finding
//! (the key record the revocation wrote), and it acts only on what CloudTrail says the
//! key did.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use cutoff_aws::AccountAccess;
use cutoff_aws::IamPrincipal;
use cutoff_aws::cloudtrail::{HistoryAccess, Pacer, Query, read_history};
use cutoff_aws::dynamodb::{AuditEntry, Ledger, principal_key};
use cutoff_aws::retry::CallCounter;
use cutoff_aws::retrying::Retrying;
use cutoff_domain::chain::{
    Footprint, Hop, Limits, Lookup, Seen, Walk, regions_to_search, search_from,
};
use cutoff_domain::clock::Clock;
use cutoff_domain::event::{ManualAction, Scope};
use cutoff_domain::follow_up::{
    ChainLink, ChainReport, Containment, FollowUpTask, RUNS, containment,
};
use cutoff_domain::outcome::{FailureKind, Outcome, RevocationRequest, Status, StillWorks};
use cutoff_domain::principal::{AccessKeyId, Account, PrincipalName, Target, TargetKind};

use super::resolve::Purpose;
use super::{Record, Revoker, Stop, short_hash};
use crate::deny_writer::{DenyWriter, ReadBack};

/// What one run did: its own outcome, and the outcomes of what it revoked or
/// deactivated that changed something (each told to its owner).
#[derive(Debug)]
pub struct FollowedUp {
    pub outcome: Outcome,
    pub contained: Vec<Outcome>,
}

/// The audit entries of a follow-up are kept as `follow_up`.
pub const FOLLOW_UP_ACTION: &str = "follow_up";

/// One account and region's event history, as a run reads it.
struct Reader<H> {
    history: Retrying<H>,
    pacer: Pacer,
}

/// What a walk read, besides the links.
#[derive(Default)]
struct Reading {
    searched: BTreeSet<String>,
    gaps: Vec<String>,
    /// The user each key belongs to, where known (for a record that names none).
    users: HashMap<AccessKeyId, PrincipalName>,
}

impl<A, K, L> Revoker<A, K, L>
where
    A: AccountAccess + HistoryAccess,
    A::Client: cutoff_aws::PolicySimulator,
    K: Clock,
    L: Ledger,
{
    /// One run of a follow-up.
    /// One run of a follow-up. With `dry_run` (the deployment's `CUTOFF_DRY_RUN`),
    /// everything is read and computed and nothing written.
    pub async fn follow_up(
        &self,
        task: &FollowUpTask,
        request_id: &str,
        dry_run: bool,
    ) -> FollowedUp {
        let calls: Arc<CallCounter> = Arc::default();
        let request = RevocationRequest {
            action: ManualAction::Revoke,
            target: task.origin.clone(),
            scope: Scope::Role,
            trigger: task.trigger(format!("follow-up run {} of {RUNS}", task.run)),
            first_activity: task.first_activity,
            expected_unique_id: None,
            activity_region: task.activity_region.clone(),
            event_time: None,
            dry_run,
            force: false,
            needs_approval: false,
        };
        let (mut outcome, contained) = match self.admit(task, &request).await {
            Ok(key) => {
                let (report, owner, contained) =
                    self.run(task, &key, request_id, &calls, dry_run).await;
                let mut outcome = self.run_outcome(&request, report, &contained);
                outcome.owner = owner.unwrap_or_default();
                (outcome, contained)
            }
            Err(stop) => (
                self.report(&request, &calls, Record::default(), Err(stop)),
                Vec::new(),
            ),
        };
        outcome.api_calls = calls.get() + contained.iter().map(|o| o.api_calls).sum::<u32>();
        self.record_run(request_id, &outcome).await;
        FollowedUp { outcome, contained }
    }

    /// The task's checks, the account scope, and the ledger's word that cutoff revoked
    /// this key on this principal for this finding.
    async fn admit(
        &self,
        task: &FollowUpTask,
        request: &RevocationRequest,
    ) -> Result<AccessKeyId, Stop> {
        let now = self.clock.now();
        task.check(now)
            .map_err(|why| Stop::failed(FailureKind::InvalidRequest, why))?;
        self.refuse_account(request)?;
        let key = task
            .key()
            .cloned()
            .ok_or_else(|| Stop::failed(FailureKind::InvalidRequest, "no key to follow"))?;
        let records = self
            .ledger
            .state(&principal_key(&task.origin), now)
            .await
            .map(|state| state.key_records(now))
            .map_err(|e| {
                Stop::failed(
                    FailureKind::LedgerUnavailable,
                    format!("the ledger could not say whether cutoff revoked {key}: {e}"),
                )
            })?;
        let finding = short_hash(&task.finding_id);
        // A covering record says cutoff revoked this key on this principal (for this
        // finding or an earlier one about the same key: GuardDuty often raises
        // several). A record kept as *seen only* vouches for nothing (the cutoff in
        // force was older than the request, and coverage rested on the finding's own
        // claim).
        if records
            .iter()
            .any(|r| r.access_key_id == key && !r.seen_only)
        {
            return Ok(key);
        }
        if records
            .iter()
            .any(|r| r.access_key_id == key && r.finding.as_deref() == Some(finding.as_str()))
        {
            return Err(Stop::with(
                Status::Alerted,
                format!(
                    "key {key} is not followed: the deny on {} covers it only by the finding's own word (its first activity is before a cutoff already in force), which is not enough to act on what the key did; look at CloudTrail for it",
                    task.origin
                ),
            ));
        }
        Err(Stop::failed(
            FailureKind::Refused,
            format!(
                "the ledger records no revocation of key {key} on {}: a follow-up runs only after one",
                task.origin
            ),
        ))
    }

    /// The walk and what is done about each link.
    async fn run(
        &self,
        task: &FollowUpTask,
        key: &AccessKeyId,
        request_id: &str,
        calls: &Arc<CallCounter>,
        dry_run: bool,
    ) -> (
        ChainReport,
        Option<cutoff_domain::outcome::Owner>,
        Vec<Outcome>,
    ) {
        let now = self.clock.now();
        let from = search_from(
            task.first_activity.unwrap_or(now),
            cutoff_domain::chain::CredentialKind::of(key),
            now,
        );
        let started = tokio::time::Instant::now();
        let (walk, mut reading) = self.walk(task, key, request_id, calls).await;
        let (earlier, owner) = self.origin_history(task, key).await;
        let origin_user = (task.origin.kind == TargetKind::User).then_some(&task.origin.name);
        let mut links = Vec::new();
        let mut contained = Vec::new();
        for (i, hop) in walk.hops().iter().enumerate() {
            let caller =
                reading
                    .users
                    .get(&hop.by)
                    .or(if hop.by == *key { origin_user } else { None });
            let id = ChainLink::id_of(hop);
            let new = !earlier.contains(&id);
            let link = |result: String| ChainLink {
                new,
                id: id.clone(),
                depth: hop.depth,
                by: hop.by.to_string(),
                account: hop.account.to_string(),
                found: hop.found.describe(),
                result,
            };
            // The owner hears of a link when it is found, and again when containing it
            // fails or writes anything (a deny released or a key reactivated since).
            let tell = |o: &Outcome| {
                o.status != Status::AlreadyRevoked
                    && (new
                        || matches!(o.status, Status::Failed | Status::Partial)
                        || (!o.actions.is_empty() && !o.dry_run))
            };
            let mut containment = containment(hop, task, caller, now);
            // Containing comes after reading, within the function's time: what is left
            // is contained by the next run.
            if !matches!(containment, Containment::Report(_))
                && started.elapsed() >= self.config.follow_up_deadline
            {
                reading.gaps.push(format!(
                    "{}: not contained in this run (out of time); a later run contains it, or after the last one a person must",
                    hop.found.describe()
                ));
                containment =
                    Containment::Report("not contained in this run (out of time)".to_owned());
            }
            let outcome = match containment {
                Containment::Revoke(mut request) => {
                    request.dry_run = dry_run;
                    self.handle(&request, &format!("{request_id}-{i}")).await
                }
                Containment::Deactivate { account, user, key } => {
                    self.deactivate_created(task, hop, (&account, &user, &key), request_id, dry_run)
                        .await
                }
                Containment::Report(text) => {
                    links.push(link(format!("reported: {text}")));
                    continue;
                }
            };
            let result = self.said(&outcome, &mut reading.gaps);
            if tell(&outcome) {
                contained.push(outcome);
            }
            links.push(link(result));
        }
        if let Some(why) = walk.cut_short() {
            reading.gaps.push(why.to_owned());
        }
        let report = ChainReport {
            run: task.run,
            runs: RUNS,
            key: key.to_string(),
            searched: reading.searched.into_iter().collect(),
            from,
            to: now,
            links,
            complete: reading.gaps.is_empty(),
            gaps: reading.gaps,
        };
        (report, owner, contained)
    }

    /// What a containment's outcome says, for its link; a failure or a partial
    /// containment is a gap too.
    fn said(&self, outcome: &Outcome, gaps: &mut Vec<String>) -> String {
        if matches!(outcome.status, Status::Failed | Status::Partial) {
            gaps.push(format!(
                "{}: {}",
                outcome
                    .target
                    .as_ref()
                    .map_or_else(|| "?".to_owned(), |t| t.to_string()),
                outcome.detail
            ));
        }
        format!("{}: {}", outcome.status.as_str(), outcome.detail)
    }

    /// Reads CloudTrail down the chain from `key`.
    async fn walk(
        &self,
        task: &FollowUpTask,
        key: &AccessKeyId,
        request_id: &str,
        calls: &Arc<CallCounter>,
    ) -> (Walk, Reading) {
        let now = self.clock.now();
        let mut reading = Reading::default();
        if task.origin.kind == TargetKind::User {
            reading.users.insert(key.clone(), task.origin.name.clone());
        }
        let home_region = cutoff_domain::chain::iam_region(self.config.partition);
        let activity = task
            .activity_region
            .as_deref()
            .or(home_region)
            .unwrap_or_default();
        let regions = regions_to_search(self.config.partition, activity);
        if regions.is_empty() {
            reading.gaps.push(format!(
                "the partition {} has no known IAM region: CloudTrail was not read",
                self.config.partition
            ));
        }
        // One reader per account and region for the whole run: its member-role client
        // made once, and every call to it paced as one, whichever key it is for.
        let mut readers: HashMap<(Account, String), Reader<A::History>> = HashMap::new();
        let mut walk = Walk::new(key.clone(), task.origin.account.clone(), Limits::default());
        let started = tokio::time::Instant::now();
        while let Some(lookup) = walk.next_key() {
            if started.elapsed() >= self.config.follow_up_budget {
                reading.gaps.push(format!(
                    "the run read CloudTrail for its {} s and stopped with key {} and others unread (each run starts again from the finding's key): look in CloudTrail for what they did",
                    self.config.follow_up_budget.as_secs(),
                    lookup.key
                ));
                break;
            }
            // Each key from as long ago as it can have lived: a long-term key found on
            // the way is read over CloudTrail's whole history, not the session's 36 h.
            let from = search_from(
                task.first_activity.unwrap_or(now),
                cutoff_domain::chain::CredentialKind::of(&lookup.key),
                now,
            );
            if let Some(why) = self
                .config
                .accounts
                .as_ref()
                .and_then(|scope| scope.refuse(&lookup.account, self.access.home()))
            {
                reading.gaps.push(format!(
                    "key {} was used in account {}: {why}; its calls there were not read",
                    lookup.key, lookup.account
                ));
                continue;
            }
            let mut seen = Vec::new();
            for region in &regions {
                let reader = match readers.entry((lookup.account.clone(), region.region.clone())) {
                    std::collections::hash_map::Entry::Occupied(known) => known.into_mut(),
                    std::collections::hash_map::Entry::Vacant(new) => {
                        match self
                            .access
                            .history_for(&lookup.account, &region.region, request_id, calls)
                            .await
                        {
                            Ok(history) => new.insert(Reader {
                                history: Retrying::counting_into(
                                    history,
                                    self.config.retry,
                                    Arc::clone(calls),
                                ),
                                pacer: Pacer::default(),
                            }),
                            Err(e) => {
                                reading.gaps.push(format!(
                                    "CloudTrail of {} {} could not be read for key {}: {e}",
                                    lookup.account, region.region, lookup.key
                                ));
                                continue;
                            }
                        }
                    }
                };
                let mut queries =
                    vec![(Query::Key(lookup.key.clone()), region.event_names.clone())];
                // A user's session token: the `GetSessionToken` that minted it names the
                // long-term key behind it (the record is found by the key that made
                // the call, so by the call's name here).
                if lookup.depth == 0
                    && task.origin.kind == TargetKind::User
                    && lookup.key.is_temporary()
                {
                    queries.push((Query::EventName("GetSessionToken"), vec!["GetSessionToken"]));
                }
                for (query, names) in queries {
                    let read =
                        read_history(&reader.history, &query, from, now, &reader.pacer).await;
                    match read {
                        Ok(records) => {
                            reading
                                .searched
                                .insert(format!("{} {}", lookup.account, region.region));
                            for record in records.records {
                                if !record
                                    .event_name
                                    .as_deref()
                                    .is_some_and(|n| names.contains(&n))
                                {
                                    continue;
                                }
                                // By call name: only the call that minted this key, and
                                // only when the finding's own user made it. The finding
                                // says whose key this is; a call of another user that
                                // returned it is a contradiction to report, never a
                                // reason to deny that other user.
                                if let Query::EventName(_) = query {
                                    if record
                                        .response_elements
                                        .as_ref()
                                        .and_then(|r| r.pointer("/credentials/accessKeyId"))
                                        .and_then(|k| k.as_str())
                                        != Some(lookup.key.as_str())
                                    {
                                        continue;
                                    }
                                    if !made_by(&record, &task.origin) {
                                        reading.gaps.push(format!(
                                            "the GetSessionToken that returned key {} (event {}) was not made by {}: the key behind it is not deactivated; look at that event",
                                            lookup.key,
                                            record.event_id.as_deref().map(cutoff_domain::principal::excerpt).unwrap_or_default(),
                                            task.origin
                                        ));
                                        continue;
                                    }
                                }
                                match Seen::read(&record) {
                                    Ok(Some(s)) => seen.push(s),
                                    Ok(None) => {}
                                    Err(u) => reading.gaps.push(format!(
                                        "a record of {} could not be read (event {}): {}",
                                        lookup.key,
                                        u.event_id.as_deref().unwrap_or("without an id"),
                                        u.why
                                    )),
                                }
                            }
                            if records.unreadable > 0 {
                                reading.gaps.push(format!(
                                    "{} records of {query} in {} {} could not be read",
                                    records.unreadable, lookup.account, region.region
                                ));
                            }
                            if records.truncated {
                                reading.gaps.push(format!(
                                    "{query} made more calls in {} {} than cutoff reads ({} pages); CloudTrail answers newest first, so the oldest were not read: look at them there",
                                    lookup.account,
                                    region.region,
                                    cutoff_aws::cloudtrail::MAX_PAGES
                                ));
                            }
                        }
                        Err(e) => reading.gaps.push(format!(
                            "CloudTrail of {} {} could not be read for {query}: {e}",
                            lookup.account, region.region
                        )),
                    }
                }
            }
            remember_users(&mut reading.users, &lookup, &seen);
            walk.record(&lookup, seen);
        }
        (walk, reading)
    }

    /// The links earlier runs of this follow-up reported, and the origin's owner as its
    /// revocation found it (the run's message goes to them too).
    async fn origin_history(
        &self,
        task: &FollowUpTask,
        key: &AccessKeyId,
    ) -> (BTreeSet<String>, Option<cutoff_domain::outcome::Owner>) {
        let origin = &task.origin;
        let kind = match origin.kind {
            TargetKind::User => "user",
            _ => "role",
        };
        match self
            .ledger
            .history(&origin.account, kind, origin.name.as_str(), 50)
            .await
        {
            Ok(entries) => (
                entries
                    .iter()
                    .filter(|e| e.action == FOLLOW_UP_ACTION)
                    .filter_map(|e| e.outcome.chain.as_ref())
                    .filter(|c| c.key == key.as_str())
                    .flat_map(|c| c.links.iter().map(|l| l.id.clone()))
                    .collect(),
                entries
                    .iter()
                    .find(|e| {
                        e.action == ManualAction::Revoke.as_str()
                            && e.outcome
                                .target
                                .as_ref()
                                .and_then(|t| t.access_key_id.as_ref())
                                == Some(key)
                    })
                    .map(|e| e.outcome.owner.clone()),
            ),
            Err(e) => {
                tracing::warn!(error = %e, "earlier follow-ups could not be read: every link is reported as new");
                (BTreeSet::new(), None)
            }
        }
    }

    /// A key the stolen credential created, set Inactive: its user checked as a
    /// revocation's would be (account scope, protected names and tag, IAM's reserved
    /// paths), not denied.
    async fn deactivate_created(
        &self,
        task: &FollowUpTask,
        hop: &Hop,
        (account, user, key): (&Account, &PrincipalName, &AccessKeyId),
        request_id: &str,
        dry_run: bool,
    ) -> Outcome {
        let calls: Arc<CallCounter> = Arc::default();
        let request = RevocationRequest {
            action: ManualAction::Revoke,
            target: Target {
                access_key_id: Some(key.clone()),
                ..Target::new(TargetKind::User, account.clone(), user.clone())
            },
            scope: Scope::Role,
            trigger: task.trigger(cutoff_domain::follow_up::link_reason(hop, task)),
            first_activity: hop.at,
            expected_unique_id: None,
            activity_region: None,
            event_time: None,
            dry_run,
            force: false,
            needs_approval: false,
        };
        let mut record = Record::default();
        let result = async {
            self.refuse_account(&request)?;
            // A write like any other of the follow-up: its finding's breaker budget.
            self.pass_breaker(&request, &mut Vec::new()).await?;
            let located = self
                .locate(&request, request_id, &calls, Purpose::Revoke, &mut record)
                .await?;
            let resolved = self
                .inspect(&request, located, Purpose::Revoke, &mut record)
                .await?;
            self.set_inactive(
                &resolved.client,
                &resolved.principal,
                key,
                dry_run,
                &mut record,
            )
            .await
        }
        .await;
        let outcome = self.report(&request, &calls, record, result);
        self.audit(request_id, &request, &outcome).await;
        outcome
    }

    /// Sets `key` of `user` Inactive (and says so when it already was).
    async fn set_inactive<C: cutoff_aws::IamApi>(
        &self,
        client: &C,
        user: &IamPrincipal,
        key: &AccessKeyId,
        dry_run: bool,
        record: &mut Record,
    ) -> Result<super::Done, Stop> {
        let keys = client.list_access_keys(&user.name).await?;
        let Some(found) = keys.iter().find(|k| &k.id == key) else {
            return Err(Stop::failed(
                FailureKind::KeyNotFound,
                format!("{user} has no access key {key} (deleted since?)"),
            ));
        };
        if !found.active {
            return Ok(super::Done::said(
                Status::AlreadyRevoked,
                format!("access key {key} of {user} was already inactive"),
                Scope::Role,
            ));
        }
        let mut writer = DenyWriter::new(
            client,
            dry_run,
            ReadBack {
                attempts: self.config.verify_attempts,
                delay: self.config.verify_delay,
            },
        );
        let written = writer.deactivate_key(user, key).await;
        record.actions = writer.into_actions();
        written?;
        if dry_run {
            return Ok(super::Done::said(
                Status::DryRun,
                format!(
                    "access key {key} of {user}, created with the stolen credential, would be set Inactive (dry run)"
                ),
                Scope::Role,
            ));
        }
        Ok(super::Done::said(
            Status::Applied,
            format!(
                "access key {key} of {user}, created with the stolen credential, was set Inactive; the user is not denied (sessions the key minted are followed as links of their own)"
            ),
            Scope::Role,
        ))
    }

    /// The run's outcome: applied when every link found is contained or reported and
    /// everything was read; partial, with what was not, otherwise.
    fn run_outcome(
        &self,
        request: &RevocationRequest,
        report: ChainReport,
        contained: &[Outcome],
    ) -> Outcome {
        let mut outcome = Outcome::for_request(
            request,
            if request.dry_run {
                Status::DryRun
            } else {
                Status::Applied
            },
            "",
        );
        let new = report.new_links().count();
        let sessions = report
            .links
            .iter()
            .filter(|l| l.found.starts_with("assumed role"))
            .count();
        outcome.detail = format!(
            "follow-up run {} of {}: key {} was followed through CloudTrail ({}); {} links found ({new} new, {sessions} minted sessions){}",
            report.run,
            report.runs,
            report.key,
            if report.searched.is_empty() {
                "nothing could be read".to_owned()
            } else {
                report.searched.join(", ")
            },
            report.links.len(),
            if report.complete {
                String::new()
            } else {
                format!("; not everything was followed: {}", report.gaps.join("; "))
            }
        );
        outcome.actions = contained
            .iter()
            .flat_map(|o| o.actions.iter().cloned())
            .collect();
        if !report.complete {
            outcome.status = Status::Partial;
            outcome.still_works = report
                .gaps
                .iter()
                .map(|gap| StillWorks {
                    credential: format!("what key {} may have made", report.key),
                    why: gap.clone(),
                })
                .collect();
        }
        outcome.chain = Some(report);
        outcome
    }

    /// The run's audit entry, beside the origin's.
    async fn record_run(&self, request_id: &str, outcome: &Outcome) {
        let entry = AuditEntry {
            at: self.clock.now(),
            request_id: request_id.to_owned(),
            action: FOLLOW_UP_ACTION.to_owned(),
            outcome: outcome.clone(),
        };
        if let Err(e) = self.ledger.record(&entry).await {
            tracing::error!(error = %e, "follow-up audit entry not written (the outcome is still logged and published)");
        }
    }
}

/// Whether `record` is a call of `origin` (a user): its name, in its account.
fn made_by(record: &cutoff_domain::event::CloudTrailEvent, origin: &Target) -> bool {
    let Some(identity) = record.user_identity.as_ref() else {
        return false;
    };
    identity.identity_type.as_deref() == Some("IAMUser")
        && identity
            .user_name
            .as_deref()
            .is_some_and(|n| n.eq_ignore_ascii_case(origin.name.as_str()))
        && identity
            .account_id
            .as_deref()
            .or(record.recipient_account_id.as_deref())
            .is_some_and(|a| a == origin.account.as_str())
}

/// The user behind each key a link minted, for the records of that key that name
/// none.
fn remember_users(users: &mut HashMap<AccessKeyId, PrincipalName>, lookup: &Lookup, seen: &[Seen]) {
    let caller = users.get(&lookup.key).cloned();
    for s in seen {
        match &s.found {
            Footprint::SessionToken {
                user,
                access_key_id,
                with_key,
            } => {
                if let Some(user) = user.clone().or_else(|| caller.clone()) {
                    users.insert(access_key_id.clone(), user.clone());
                    users.insert(with_key.clone(), user);
                }
            }
            Footprint::AccessKey {
                user,
                access_key_id,
            } => {
                if let Some(user) = user.clone().or_else(|| caller.clone()) {
                    users.insert(access_key_id.clone(), user);
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests;
