//! The sweeper Lambda's two inputs: the schedule (or an operator) asks for a sweep,
//! which *plans* it: one task per account on the sweep queue; and SQS batches of those
//! tasks, which *work*: each account is swept, its per-principal outcomes published,
//! its record written to the run ledger, and the last account's worker finishes the
//! run: its totals on the day's entry, and its summary published when the run changed
//! something or something failed ([`SweepSummary::should_publish`]). A quiet run is
//! recorded, logged and counted, and published nowhere. See [`cutoff_aws::dynamodb`]
//! for why a run ledger.
//!
//! With the daily digest on (`CUTOFF_SWEEP_DIGEST=daily`), planning a run also
//! claims the digest of the UTC day before; the first run of a day wins the claim and
//! publishes the digest of that day's runs ([`SweepDigest`]).
//!
//! Failures: an account that cannot be swept (member role refused, listing failed)
//! is recorded as failed and reported in the summary; it is not retried. A task whose
//! outcome or record cannot be written is reported as a batch item failure, so SQS
//! delivers it again (sweeping is idempotent and the record is written once), and
//! after `maxReceiveCount` it lands in the dead-letter queue, which alarms.

use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use aws_config::SdkConfig;
use lambda_runtime::LambdaEvent;

use super::{Failure, Handler, StartError};
use crate::config::{DigestSetting, SweepAccounts, SweeperConfig};
use crate::sweep_run::{SweepConfig, bounded, sweep_one};
use cutoff_aws::dynamodb::approvals::{Approvals, SdkApprovals};
use cutoff_aws::dynamodb::{SdkLedger, SdkSweepLedger, SweepLedger, SweepRun};
use cutoff_aws::eventbridge::{SdkOutcomeBus, SummaryBus};
use cutoff_aws::iam::paged::AuthorizationDetails;
use cutoff_aws::organizations::{AccountDirectory, SdkOrganizations};
use cutoff_aws::retry::RetryPolicy;
use cutoff_aws::retrying::Retrying;
use cutoff_aws::sqs::{SdkSweepQueue, SweepTask, SweepTasks};
use cutoff_aws::sts::{SdkAccountAccess, discover_home};
use cutoff_aws::{AccountAccess, AwsError, OutcomeBus};
use cutoff_domain::clock::Clock;
use cutoff_domain::clock::SystemClock;
use cutoff_domain::json::Payload;
use cutoff_domain::metrics::{
    ACCOUNTS_SWEPT, Function, HEARTBEAT, IAM_CALLS, OutcomeTally, Record, SWEEP_ERRORS,
};
use cutoff_domain::outcome::Status;
use cutoff_domain::principal::Account;
use cutoff_domain::summary::{AccountRecord, RunTotals, SweepDigest, SweepSummary};

/// Run ids are logged and used in keys and session names: letters, digits, `-`, `_`,
/// `.`, `:`, at most 64.
const MAX_RUN_ID: usize = 64;

/// An operator's or the schedule's request for a sweep.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SweepRequest {
    /// `sweep`.
    pub action: String,
    /// Sweep these accounts instead of the configured ones.
    #[serde(default)]
    pub accounts: Option<Vec<Account>>,
    #[serde(default)]
    pub dry_run: bool,
    /// A run id chosen by the caller (a retried schedule reuses it and is not
    /// planned twice).
    #[serde(default)]
    pub run_id: Option<String>,
}

/// What one invocation carried.
#[derive(Debug)]
pub enum SweeperInput {
    Tasks(SqsEvent),
    Plan(SweepRequest),
    Invalid(String),
}

impl SweeperInput {
    /// SQS batches by their records' `eventSource`; an EventBridge scheduled event
    /// (its `id` becomes the run id); else a [`SweepRequest`].
    pub fn classify(payload: Value) -> Self {
        let is_sqs = super::is_sqs_batch(&payload);
        if is_sqs {
            return match serde_json::from_value::<SqsEvent>(payload) {
                Ok(event) => SweeperInput::Tasks(event),
                Err(e) => SweeperInput::Invalid(format!("an SQS batch that cannot be read: {e}")),
            };
        }
        if payload.get("detail-type").and_then(Value::as_str) == Some("Scheduled Event") {
            return SweeperInput::Plan(SweepRequest {
                action: "sweep".to_owned(),
                run_id: payload
                    .get("id")
                    .and_then(Value::as_str)
                    .map(|id| format!("schedule-{id}")),
                ..SweepRequest::default()
            });
        }
        match serde_json::from_value::<SweepRequest>(payload) {
            Ok(r) if r.action == "sweep" => SweeperInput::Plan(r),
            Ok(r) => SweeperInput::Invalid(format!(
                "action `{}` is not known; the sweeper takes {{\"action\":\"sweep\"}}",
                cutoff_domain::principal::excerpt(&r.action)
            )),
            Err(e) => SweeperInput::Invalid(format!(
                "not a sweep request ({e}); send {{\"action\":\"sweep\", \"accounts\":[…], \"dry_run\":true}}"
            )),
        }
    }
}

/// What planning did: the Lambda's answer to a schedule or an operator.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlanReport {
    pub run_id: String,
    pub accounts: usize,
    /// False when the run was planned before (a retried schedule): nothing sent,
    /// unless that plan never sent its tasks.
    pub planned: bool,
    /// Of a run planned before whose plan failed before its tasks were sent: the
    /// tasks this plan sent for it.
    #[serde(skip_serializing_if = "is_zero")]
    pub tasks_sent_again: usize,
    pub dry_run: bool,
    pub api_calls: u32,
    /// What became of the daily digest of the day before (with the digest on, for a
    /// newly planned run).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digest: Option<DigestReport>,
    /// The approvals this plan expired (with a ledger).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approvals: Option<crate::handler::approval::ExpiryReport>,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// The daily digest a plan tried to send.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DigestReport {
    /// The UTC day it is about.
    pub day: chrono::NaiveDate,
    pub result: DigestResult,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DigestResult {
    /// This run claimed and published it.
    Sent,
    /// Another run claimed it first (or it was sent already).
    Claimed,
    /// Claimed but not published: a later run takes it over once the claim is older
    /// than the lease (`DIGEST_CLAIM_LEASE`).
    Failed(String),
}

/// What a run's last account did with the run's summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SummaryFate {
    /// The run changed something or something failed: published.
    Published,
    /// Nothing changed, nothing failed: recorded and logged, not published.
    Quiet,
}

impl SummaryFate {
    pub fn as_str(self) -> &'static str {
        match self {
            SummaryFate::Published => "published",
            SummaryFate::Quiet => "quiet",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    #[error("invalid sweep request: {0}")]
    Invalid(String),
    #[error("{0}")]
    Aws(#[from] AwsError),
}

impl SweepError {
    /// Whether Lambda's retry may succeed: an AWS call that failed for a passing
    /// reason. An invalid request never will.
    pub fn is_retryable(&self) -> bool {
        matches!(self, SweepError::Aws(e) if e.is_retryable())
    }
}

/// The sweeper's parts: account access, where the accounts come from, the queue, the
/// ledger, the bus, the rules.
pub struct Sweeper<
    A,
    D,
    Q,
    L,
    B,
    K,
    P = cutoff_aws::dynamodb::NoLedger,
    R = cutoff_aws::dynamodb::approvals::NoApprovals,
> {
    pub access: A,
    /// Principal locks, shared with the revoker.
    pub locks: P,
    pub directory: D,
    pub queue: Q,
    pub ledger: L,
    pub bus: B,
    pub clock: K,
    pub config: SweepConfig,
    pub accounts: SweepAccounts,
    /// The accounts cutoff may reach into at all (None: no list to check, as in the
    /// CLI acting with the operator's own credentials).
    pub scope: Option<cutoff_domain::principal::AccountScope>,
    pub home: Account,
    pub concurrency: usize,
    pub retry: RetryPolicy,
    /// The daily digest of the runs (off unless configured).
    pub digest: DigestSetting,
    /// The approvals medium-severity findings asked for: each plan expires those past
    /// their deadline ([`crate::handler::approval::expire_approvals`]).
    pub approvals: R,
}

/// What one task did, for the log line.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TaskReport {
    pub message_id: String,
    pub run_id: String,
    pub account: Option<String>,
    pub record: Option<AccountRecord>,
    /// When this task finished the run: whether its summary went out.
    pub summary: Option<SummaryFate>,
    pub error: Option<String>,
    /// The outcomes of the account's sweep, for the metrics.
    #[serde(skip)]
    pub outcomes: OutcomeTally,
}

#[derive(Debug)]
pub struct WorkResult {
    pub response: SqsBatchResponse,
    pub tasks: Vec<TaskReport>,
}

fn valid_run_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_RUN_ID
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

impl<A, D, Q, L, B, K, P, R> Sweeper<A, D, Q, L, B, K, P, R>
where
    P: cutoff_aws::dynamodb::Ledger,
    R: Approvals,
    A: AccountAccess,
    A::Client: AuthorizationDetails,
    D: AccountDirectory,
    Q: SweepTasks,
    L: SweepLedger,
    B: OutcomeBus + SummaryBus,
    K: Clock,
{
    /// Plans a run: the accounts, the run in the ledger, one task per account.
    pub async fn plan(
        &self,
        request: &SweepRequest,
        request_id: &str,
    ) -> Result<PlanReport, SweepError> {
        let directory = Retrying::new(&self.directory, self.retry);
        let (ledger, bus, queue) = (
            directory.alongside(&self.ledger),
            directory.alongside(&self.bus),
            directory.alongside(&self.queue),
        );
        let run_id = request
            .run_id
            .clone()
            .unwrap_or_else(|| format!("run-{request_id}"));
        if !valid_run_id(&run_id) {
            return Err(SweepError::Invalid(format!(
                "run id `{}` must be 1 to {MAX_RUN_ID} letters, digits, `-`, `_`, `.` or `:`",
                cutoff_domain::principal::excerpt(&run_id)
            )));
        }
        let accounts = match (&request.accounts, &self.accounts) {
            (Some(list), _) => {
                let mut list = list.clone();
                list.sort();
                list.dedup();
                list
            }
            (None, SweepAccounts::Home) => vec![self.home.clone()],
            (None, SweepAccounts::Listed(list)) => list.clone(),
            (None, SweepAccounts::Organization) => directory.active_accounts().await?,
        };
        if let Some(why) = accounts.iter().find_map(|a| self.refuse_account(a)) {
            return Err(SweepError::Invalid(why));
        }
        let dry_run = request.dry_run || self.config.dry_run;
        let started_at = self.clock.now();
        let run = SweepRun {
            run_id: run_id.clone(),
            started_at,
            dry_run,
            total: accounts.len() as u64,
            tasks_sent: false,
        };
        let created = ledger.start_run(&run).await?;
        if !created {
            // Planned before: by a plan that sent its tasks (the schedule fired twice),
            // or by one that failed or stopped before it had (Lambda retries it with
            // the same request id, so the same run id): then its tasks go now, as it
            // planned them, to the accounts that have not reported.
            let (planned, records) = ledger.run_records(&run_id).await?;
            let mut sent_again = 0;
            if !planned.tasks_sent {
                let reported: Vec<&Account> = records.iter().map(|r| &r.account).collect();
                let tasks: Vec<SweepTask> = accounts
                    .iter()
                    .filter(|a| !reported.contains(a))
                    .map(|account| SweepTask {
                        run_id: run_id.clone(),
                        account: account.clone(),
                        started_at: planned.started_at,
                        dry_run: planned.dry_run,
                    })
                    .collect();
                if !tasks.is_empty() {
                    queue.send_tasks(&tasks).await?;
                }
                ledger.tasks_sent(&run_id).await?;
                sent_again = tasks.len();
                tracing::warn!(run_id = %run_id, tasks = sent_again, "a run planned before without its tasks: sent now");
            }
            return Ok(PlanReport {
                run_id,
                accounts: accounts.len(),
                planned: false,
                tasks_sent_again: sent_again,
                dry_run: planned.dry_run,
                api_calls: directory.calls(),
                digest: None,
                approvals: None,
            });
        }
        if accounts.is_empty() {
            // Nothing to fan out: the run is complete now (and quiet: nothing to say).
            self.finish_run(&ledger, &bus, &run, &[]).await?;
        } else {
            let tasks: Vec<SweepTask> = accounts
                .iter()
                .map(|account| SweepTask {
                    run_id: run_id.clone(),
                    account: account.clone(),
                    started_at,
                    dry_run,
                })
                .collect();
            // Tasks already sent are sent again on a retry: the ledger counts each
            // account once.
            queue.send_tasks(&tasks).await?;
        }
        ledger.tasks_sent(&run_id).await?;
        // After the run's own work: the digest never holds a sweep up, and its failure
        // does not fail the plan (a later run takes the claim over).
        let digest = match self.digest {
            DigestSetting::Off => None,
            DigestSetting::Daily => Some(self.send_digest(&ledger, &bus, &run).await),
        };
        Ok(PlanReport {
            run_id,
            accounts: accounts.len(),
            planned: true,
            tasks_sent_again: 0,
            dry_run,
            api_calls: directory.calls(),
            digest,
            approvals: None,
        })
    }

    /// Ends a run whose every account reported: its totals on its day's entry (what
    /// the digest adds up), then its summary, published only when the run changed
    /// something or something failed. Logged either way.
    async fn finish_run<LL: SweepLedger, BB: SummaryBus>(
        &self,
        ledger: &LL,
        bus: &BB,
        run: &SweepRun,
        records: &[AccountRecord],
    ) -> Result<SummaryFate, AwsError> {
        let summary = SweepSummary::from_records(
            &run.run_id,
            run.started_at,
            self.clock.now(),
            run.total,
            run.dry_run,
            records,
        );
        ledger.finish_run(run, &RunTotals::of(&summary)).await?;
        let fate = if summary.should_publish() {
            bus.publish_summary(&summary).await?;
            SummaryFate::Published
        } else {
            SummaryFate::Quiet
        };
        tracing::info!(
            target: "cutoff::sweep",
            run_id = %summary.run_id,
            summary = fate.as_str(),
            dry_run = summary.dry_run,
            accounts = summary.accounts,
            accounts_reported = summary.accounts_reported,
            accounts_failed = summary.accounts_failed,
            principals_scanned = summary.principals_scanned,
            cutoffs_moved = summary.cutoffs_moved,
            statements_removed = summary.statements_removed,
            policies_deleted = summary.policies_deleted,
            principals_failed = summary.principals_failed,
            duration_ms = summary.duration_ms,
            "sweep run finished"
        );
        Ok(fate)
    }

    /// Sends the digest of the UTC day before `run` started, if `run` is the first to
    /// claim it. A failure is logged and reported, never raised: the sweep is planned
    /// already, and a later run takes an unsent claim over.
    async fn send_digest<LL: SweepLedger, BB: SummaryBus>(
        &self,
        ledger: &LL,
        bus: &BB,
        run: &SweepRun,
    ) -> DigestReport {
        let now = run.started_at;
        // The day before the first day chrono knows cannot come up; the day itself
        // is then as good as any.
        let day = run.day().pred_opt().unwrap_or_else(|| run.day());
        let sent: Result<bool, AwsError> = async {
            if !ledger.claim_digest(day, &run.run_id, now).await? {
                return Ok(false);
            }
            let runs = ledger.day_runs(day).await?;
            let digest = SweepDigest::of_day(day, &runs, now, &run.run_id);
            bus.publish_digest(&digest).await?;
            if let Err(e) = ledger.digest_sent(day, &run.run_id).await {
                tracing::warn!(%day, error = %e, "the digest went out but is not marked sent; a later run may send it again once the claim is stale");
            }
            tracing::info!(target: "cutoff::sweep", %day, runs = digest.runs, quiet_runs = digest.quiet_runs, changes = digest.changes, failures = digest.failures, "sweep digest sent");
            Ok(true)
        }
        .await;
        let result = match sent {
            Ok(true) => DigestResult::Sent,
            Ok(false) => DigestResult::Claimed,
            Err(e) => {
                tracing::error!(%day, error = %e, "sweep digest not sent; a later run tries again once the claim is stale");
                DigestResult::Failed(e.to_string())
            }
        };
        DigestReport { day, result }
    }

    /// Expires the approvals past their deadline and announces each once (see
    /// [`crate::handler::approval::expire_approvals`]); None without a ledger. Its outcomes are
    /// logged and counted here.
    async fn expire_approvals(
        &self,
        request_id: &str,
    ) -> Option<crate::handler::approval::ExpiryReport> {
        if !self.approvals.enabled() {
            return None;
        }
        let bus = Retrying::new(&self.bus, self.retry);
        let (report, outcomes) = crate::handler::approval::expire_approvals(
            &self.approvals,
            &bus,
            &self.locks,
            self.clock.now(),
            &format!("expire-{request_id}"),
        )
        .await;
        if !outcomes.is_empty() {
            let tally: OutcomeTally = outcomes.iter().collect();
            crate::metrics::emit(
                &tally.records(Function::Sweeper),
                self.clock.now(),
                request_id,
            );
        }
        Some(report)
    }

    /// Why an account must not be swept, checked before any call.
    fn refuse_account(&self, account: &Account) -> Option<String> {
        self.scope
            .as_ref()?
            .refuse(account, &self.home)
            .map(|why| format!("{why}; it is not swept"))
    }

    /// Works an SQS batch of tasks, `concurrency` accounts at once.
    pub async fn work(&self, event: &SqsEvent) -> WorkResult {
        let mut failures = Vec::new();
        let mut reports = Vec::new();
        let mut tasks = Vec::new();
        for message in &event.records {
            let message_id = message.message_id.clone().unwrap_or_default();
            let task = message
                .body
                .as_deref()
                .ok_or_else(|| "the message has no body".to_owned())
                .and_then(|b| {
                    serde_json::from_str::<SweepTask>(b)
                        .map_err(|e| format!("not a sweep task: {e}"))
                })
                .and_then(|t| {
                    if valid_run_id(&t.run_id) {
                        Ok(t)
                    } else {
                        Err("the task's run id is not valid".to_owned())
                    }
                });
            // The queue is only as trustworthy as whoever could send to it: a task for
            // an account outside cutoff's scope is refused (and not retried).
            let task = task.and_then(|t| match self.refuse_account(&t.account) {
                Some(why) => Err(why),
                None => Ok(t),
            });
            match task {
                Ok(task) => tasks.push((message_id, task)),
                Err(why) => {
                    tracing::error!(message_id, error = %why, "sweep task rejected; it goes to the dead-letter queue after its last receive");
                    failures.push(message_id.clone());
                    reports.push(TaskReport {
                        message_id,
                        run_id: String::new(),
                        account: None,
                        record: None,
                        summary: None,
                        error: Some(why),
                        outcomes: OutcomeTally::default(),
                    });
                }
            }
        }
        // Collected first: a future that holds the closure instead cannot be proven
        // `Send` for every lifetime of its argument (a limitation of the compiler).
        let work: Vec<_> = tasks
            .iter()
            .map(|(id, task)| self.work_one(id, task))
            .collect();
        for (report, ok) in bounded(work, self.concurrency).await {
            if !ok {
                failures.push(report.message_id.clone());
            }
            reports.push(report);
        }
        let mut response = SqsBatchResponse::default();
        response.batch_item_failures = failures
            .into_iter()
            .map(|id| {
                let mut failure = BatchItemFailure::default();
                failure.item_identifier = id;
                failure
            })
            .collect();
        WorkResult {
            response,
            tasks: reports,
        }
    }

    /// Sweeps one account, publishes its owners' outcomes, records it, and publishes
    /// the summary if it was the last. False when the task must be retried.
    async fn work_one(&self, message_id: &str, task: &SweepTask) -> (TaskReport, bool) {
        let mut config = self.config.clone();
        config.dry_run = config.dry_run || task.dry_run;
        let report = sweep_one(
            &self.access,
            &self.locks,
            &task.account,
            &config,
            &self.clock,
            &task.run_id,
        )
        .await;
        let record = AccountRecord::from_report(&report);
        let mut out = TaskReport {
            message_id: message_id.to_owned(),
            run_id: task.run_id.clone(),
            account: Some(task.account.to_string()),
            record: Some(record.clone()),
            summary: None,
            error: None,
            outcomes: report.outcomes.iter().collect(),
        };
        let bus = Retrying::new(&self.bus, self.retry);
        let ledger = bus.alongside(&self.ledger);
        // Owners hear about cutoffs moved on their principals (and failures to);
        // removals of expired statements go in the summary only.
        let for_owners: Vec<_> = report
            .outcomes
            .iter()
            .filter(|o| {
                o.status == Status::Failed || (o.status == Status::Applied && o.cutoff.is_some())
            })
            .cloned()
            // The run's id is the request id its owners' messages name.
            .map(|mut o| {
                o.request_id.get_or_insert_with(|| task.run_id.clone());
                o
            })
            .collect();
        let result: Result<Option<SummaryFate>, AwsError> = async {
            if !for_owners.is_empty() {
                bus.publish(&for_owners).await?;
            }
            let progress = ledger.record_account(&task.run_id, &record).await?;
            if !progress.complete() {
                return Ok(None);
            }
            // The claim names this message: another worker that sees the run complete
            // (a redelivered task of another account) cannot take it, and this
            // message, redelivered after a failed publish, can take it again.
            let claimed = ledger.claim_summary(&task.run_id, message_id).await?;
            if !claimed {
                return Ok(None);
            }
            let (run, records) = ledger.run_records(&task.run_id).await?;
            self.finish_run(&ledger, &bus, &run, &records)
                .await
                .map(Some)
        }
        .await;
        match result {
            Ok(fate) => {
                out.summary = fate;
                (out, true)
            }
            Err(e) => {
                tracing::error!(run_id = %task.run_id, account = %task.account, error = %e, "sweep task not recorded; it will be retried");
                out.error = Some(e.to_string());
                (out, false)
            }
        }
    }

    /// Handles whatever the invocation carried; the Lambda's answer.
    pub async fn dispatch(
        &self,
        payload: impl Into<cutoff_domain::json::Payload>,
        request_id: &str,
    ) -> Result<Value, SweepError> {
        let payload = payload
            .into()
            .into_strict()
            .map_err(|e| SweepError::Invalid(e.to_string()))?;
        match SweeperInput::classify(payload) {
            SweeperInput::Tasks(event) => {
                let result = self.work(&event).await;
                for task in &result.tasks {
                    tracing::info!(
                        target: "cutoff::sweep",
                        task = %serde_json::to_string(task).unwrap_or_default(),
                        "sweep task"
                    );
                }
                crate::metrics::emit(&work_records(&result), self.clock.now(), request_id);
                serde_json::to_value(&result.response)
                    .map_err(|e| SweepError::Invalid(e.to_string()))
            }
            SweeperInput::Plan(request) => {
                let planned = self.plan(&request, request_id).await;
                // Whether or not the run could be planned: an approval past its deadline
                // is expired and announced on every schedule.
                let approvals = self.expire_approvals(request_id).await;
                let mut report = planned?;
                report.approvals = approvals;
                tracing::info!(
                    target: "cutoff::sweep",
                    run_id = %report.run_id,
                    accounts = report.accounts,
                    planned = report.planned,
                    dry_run = report.dry_run,
                    api_calls = report.api_calls,
                    digest = report.digest.as_ref().map(|d| serde_json::to_string(d).unwrap_or_default()),
                    "sweep planned"
                );
                // The heartbeat the silent-pipeline alarm waits for: a run was planned
                // (or, retried, found planned already), so the schedule fired and the
                // sweeper could start and reach its queue and ledger.
                crate::metrics::emit(
                    &[Record::of(Function::Sweeper).value(&HEARTBEAT, 1)],
                    self.clock.now(),
                    request_id,
                );
                serde_json::to_value(&report).map_err(|e| SweepError::Invalid(e.to_string()))
            }
            SweeperInput::Invalid(why) => Err(SweepError::Invalid(why)),
        }
    }
}

/// What a batch of sweep tasks counts: the accounts swept, the errors (an account that
/// could not be swept, each principal whose change failed, a task refused), the IAM
/// calls, and the sweep's outcomes by status.
pub fn work_records(result: &WorkResult) -> Vec<Record> {
    let mut outcomes = OutcomeTally::default();
    let (mut swept, mut errors, mut calls) = (0, 0, 0);
    for task in &result.tasks {
        outcomes.merge(&task.outcomes);
        match &task.record {
            Some(record) => {
                swept += 1;
                errors += u64::from(record.error.is_some()) + record.principals_failed;
                calls += record.api_calls;
            }
            None => errors += 1,
        }
    }
    let mut records = outcomes.records(Function::Sweeper);
    records.push(
        Record::of(Function::Sweeper)
            .value(&ACCOUNTS_SWEPT, swept)
            .value(&SWEEP_ERRORS, errors)
            .value(&IAM_CALLS, calls),
    );
    records
}

/// The deployed sweeper, with the SDK's clients.
pub type DeployedSweeper = Sweeper<
    SdkAccountAccess,
    SdkOrganizations,
    SdkSweepQueue,
    SdkSweepLedger,
    SdkOutcomeBus,
    SystemClock,
    SdkLedger,
    SdkApprovals,
>;

impl DeployedSweeper {
    /// Settings from the environment (the revoker's, and the sweep's own), clients
    /// from `sdk`; the home account and partition from `CUTOFF_HOME_ACCOUNT` or, unset,
    /// STS `GetCallerIdentity`.
    pub async fn from_env(sdk: &SdkConfig) -> Result<Self, StartError> {
        let config = SweeperConfig::from_env()?;
        let (home, partition) = match config.revoker.home.clone() {
            Some(home) => home,
            None => discover_home(sdk).await?,
        };
        Ok(Sweeper {
            locks: SdkLedger::from_config(sdk, config.ledger_table.clone()),
            access: SdkAccountAccess::new(
                sdk,
                home.clone(),
                partition,
                config.revoker.member_role_name.clone(),
                config.revoker.external_id.clone(),
            ),
            directory: SdkOrganizations::from_config(sdk),
            queue: SdkSweepQueue::from_config(sdk, config.queue_url.clone()),
            ledger: SdkSweepLedger::from_config(sdk, config.ledger_table.clone()),
            bus: SdkOutcomeBus::from_config(sdk, config.revoker.outcome_bus.clone()),
            clock: SystemClock,
            config: SweepConfig {
                rules: config.rules(),
                dry_run: config.revoker.dry_run,
                ..SweepConfig::default()
            },
            accounts: config.accounts.clone(),
            scope: Some(config.revoker.accounts.clone()),
            home,
            concurrency: config.concurrency,
            retry: RetryPolicy::default(),
            digest: config.digest,
            // The approvals are in the ledger, which the sweeper always has.
            approvals: SdkApprovals::from_config(sdk, config.ledger_table.clone()),
        })
    }
}

impl<A, D, Q, L, B, K, P, R> Handler for Sweeper<A, D, Q, L, B, K, P, R>
where
    P: cutoff_aws::dynamodb::Ledger,
    R: Approvals,
    A: AccountAccess,
    A::Client: AuthorizationDetails,
    D: AccountDirectory,
    Q: SweepTasks,
    L: SweepLedger,
    B: OutcomeBus + SummaryBus,
    K: Clock,
{
    const FUNCTION: Function = Function::Sweeper;

    async fn handle(&self, event: LambdaEvent<Payload>) -> Result<Value, Failure> {
        self.dispatch(event.payload, &event.context.request_id)
            .await
            .map_err(|e| {
                if e.is_retryable() {
                    Failure::retry(e)
                } else {
                    Failure::refused(e)
                }
            })
    }
}

#[cfg(test)]
mod tests;
