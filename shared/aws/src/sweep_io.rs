//! What the sweeper needs besides IAM: the accounts of the Organization
//! ([`AccountDirectory`]), the queue of per-account tasks it fans out through
//! ([`SweepTasks`]), the run ledger that tells the last account's worker that the run
//! is complete ([`SweepLedger`]), and the summary event ([`SummaryBus`]), each with its
//! SDK implementation.
//!
//! # Why a ledger
//!
//! One invocation cannot sweep 1,000 accounts in Lambda's 15 minutes, so the planner
//! sends one task per account and workers sweep them in parallel. Someone has to say
//! when the run is over, with the totals. Each worker writes its account's record and
//! counts it done in one DynamoDB transaction, conditional on the record not being
//! there yet, so a redelivered task is counted once. The worker that sees the count
//! reach the total claims the summary with a conditional update naming its message;
//! one message wins the claim (its redelivery too, should the publish fail), reads
//! the records and publishes the summary.
//!
//! Items (table with string keys `pk` and `sk`, TTL attribute `expires_at`):
//! `pk = sweep#<run id>`, `sk = run` (total, done, started_at, dry_run, claimed_by) and
//! `sk = account#<id>` (the [`AccountRecord`] as JSON).

use std::collections::HashMap;
use std::future::Future;

use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem, Update};
use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::error::{bound, classify};
use super::ledger::{dynamodb_error, is_condition_failure, n, s};
use super::{AwsError, ErrorKind};
use cutoff_domain::principal::Account;
use cutoff_domain::summary::{AccountRecord, SweepSummary};

const OP_LIST_ACCOUNTS: &str = "organizations:ListAccounts";
const OP_SEND_TASKS: &str = "sqs:SendMessageBatch";
const OP_GET_ITEM: &str = "dynamodb:GetItem";
const OP_PUT_ITEM: &str = "dynamodb:PutItem";
const OP_TRANSACT: &str = "dynamodb:TransactWriteItems";
const OP_UPDATE_ITEM: &str = "dynamodb:UpdateItem";
const OP_QUERY: &str = "dynamodb:Query";

/// The `detail-type` of the summary event on the outcome bus.
pub const SUMMARY_DETAIL_TYPE: &str = "Sweep Summary";
/// How long run items are kept (DynamoDB TTL).
pub const RUN_RETENTION_DAYS: i64 = 30;

/// One account to sweep: the body of a sweep-queue message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SweepTask {
    pub run_id: String,
    pub account: Account,
    pub started_at: DateTime<Utc>,
    pub dry_run: bool,
}

/// A run as the ledger holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SweepRun {
    pub run_id: String,
    pub started_at: DateTime<Utc>,
    pub dry_run: bool,
    /// Accounts planned.
    pub total: u64,
}

/// What recording an account did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunProgress {
    /// False when the account was already recorded (a redelivered task).
    pub recorded: bool,
    pub done: u64,
    pub total: u64,
}

impl RunProgress {
    pub fn complete(&self) -> bool {
        self.done >= self.total
    }
}

/// `organizations:ListAccounts`.
pub trait AccountDirectory: Send + Sync {
    /// The active accounts of the Organization, every page (one call per page).
    fn active_accounts(&self) -> impl Future<Output = Result<Vec<Account>, AwsError>> + Send;
}

/// `SendMessageBatch` on the sweep queue (authorized as `sqs:SendMessage`).
pub trait SweepTasks: Send + Sync {
    /// Sends every task (10 per call); an entry the queue rejects is an error.
    fn send_tasks(&self, tasks: &[SweepTask]) -> impl Future<Output = Result<(), AwsError>> + Send;
}

/// `dynamodb:PutItem`, `UpdateItem`, `GetItem`, `Query` and a `TransactWriteItems` of
/// one Put and one Update (authorized as those two) on the sweep table.
pub trait SweepLedger: Send + Sync {
    /// Creates the run; false when it exists already (the schedule fired twice).
    fn start_run(&self, run: &SweepRun) -> impl Future<Output = Result<bool, AwsError>> + Send;

    /// Stores the account's record and counts it done, once per account.
    fn record_account(
        &self,
        run_id: &str,
        record: &AccountRecord,
    ) -> impl Future<Output = Result<RunProgress, AwsError>> + Send;

    /// Claims the right to publish the summary of a complete run for `claimant` (the
    /// task's message id); true for the first claimant and for that claimant again
    /// (a redelivery after a failed publish), false for anyone else.
    fn claim_summary(
        &self,
        run_id: &str,
        claimant: &str,
    ) -> impl Future<Output = Result<bool, AwsError>> + Send;

    /// The run and every account record in it.
    fn run_records(
        &self,
        run_id: &str,
    ) -> impl Future<Output = Result<(SweepRun, Vec<AccountRecord>), AwsError>> + Send;
}

/// `events:PutEvents` of the summary on the outcome bus.
pub trait SummaryBus: Send + Sync {
    fn publish_summary(
        &self,
        summary: &SweepSummary,
    ) -> impl Future<Output = Result<(), AwsError>> + Send;
}

// ---------------------------------------------------------------------------------------
// Organizations
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
pub struct SdkOrganizations {
    client: aws_sdk_organizations::Client,
}

impl SdkOrganizations {
    pub fn new(client: aws_sdk_organizations::Client) -> Self {
        Self { client }
    }

    pub fn from_config(config: &aws_config::SdkConfig) -> Self {
        Self::new(aws_sdk_organizations::Client::new(config))
    }
}

impl AccountDirectory for SdkOrganizations {
    async fn active_accounts(&self) -> Result<Vec<Account>, AwsError> {
        let mut accounts = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let out = self
                .client
                .list_accounts()
                .set_next_token(token.clone())
                .send()
                .await
                .map_err(|e| classify(&e, OP_LIST_ACCOUNTS, "in the Organization".to_owned()))?;
            for account in out.accounts() {
                // `State` replaces the deprecated `Status`; either says ACTIVE.
                #[allow(deprecated)]
                let active = account
                    .state()
                    .map(|s| s.as_str() == "ACTIVE")
                    .or_else(|| account.status().map(|s| s.as_str() == "ACTIVE"))
                    .unwrap_or(false);
                if !active {
                    continue;
                }
                match account.id().map(Account::parse) {
                    Some(Ok(id)) => accounts.push(id),
                    _ => tracing::warn!(
                        id = account.id().unwrap_or_default(),
                        "organizations returned an account id that is not 12 digits; skipped"
                    ),
                }
            }
            match out.next_token() {
                Some(next) if token.as_deref() == Some(next) => {
                    return Err(AwsError::new(
                        ErrorKind::Malformed,
                        OP_LIST_ACCOUNTS,
                        "following pages",
                        "the response repeats the token of the request",
                    ));
                }
                Some(next) => token = Some(next.to_owned()),
                None => break,
            }
        }
        accounts.sort();
        accounts.dedup();
        Ok(accounts)
    }
}

// ---------------------------------------------------------------------------------------
// SQS
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
pub struct SdkSweepQueue {
    client: aws_sdk_sqs::Client,
    queue_url: String,
}

impl SdkSweepQueue {
    /// A client of `config` for the sweep queue at `queue_url`.
    pub fn from_config(config: &aws_config::SdkConfig, queue_url: impl Into<String>) -> Self {
        Self::new(aws_sdk_sqs::Client::new(config), queue_url)
    }

    pub fn new(client: aws_sdk_sqs::Client, queue_url: impl Into<String>) -> Self {
        Self {
            client,
            queue_url: queue_url.into(),
        }
    }
}

impl SweepTasks for SdkSweepQueue {
    async fn send_tasks(&self, tasks: &[SweepTask]) -> Result<(), AwsError> {
        let context = || format!("on queue `{}`", self.queue_url);
        for (chunk_index, chunk) in tasks.chunks(10).enumerate() {
            let mut entries = Vec::with_capacity(chunk.len());
            for (i, task) in chunk.iter().enumerate() {
                let body = serde_json::to_string(task).map_err(|e| {
                    AwsError::new(
                        ErrorKind::Malformed,
                        OP_SEND_TASKS,
                        context(),
                        e.to_string(),
                    )
                })?;
                let entry = SendMessageBatchRequestEntry::builder()
                    .id(format!("t{i}"))
                    .message_body(body)
                    .build()
                    .map_err(|e| {
                        AwsError::new(
                            ErrorKind::Malformed,
                            OP_SEND_TASKS,
                            context(),
                            e.to_string(),
                        )
                    })?;
                entries.push(entry);
            }
            let out = self
                .client
                .send_message_batch()
                .queue_url(&self.queue_url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| classify(&e, OP_SEND_TASKS, context()))?;
            if let Some(failed) = out.failed().first() {
                let kind = if failed.sender_fault() {
                    ErrorKind::Malformed
                } else {
                    ErrorKind::Transient
                };
                return Err(AwsError::new(
                    kind,
                    OP_SEND_TASKS,
                    context(),
                    bound(format!(
                        "{} of {} entries of batch {chunk_index} rejected: {}: {}",
                        out.failed().len(),
                        chunk.len(),
                        failed.code(),
                        failed.message().unwrap_or("no message")
                    )),
                ));
            }
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------
// DynamoDB
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
pub struct SdkSweepLedger {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl SdkSweepLedger {
    /// A client of `config` for the ledger table `table`.
    pub fn from_config(config: &aws_config::SdkConfig, table: impl Into<String>) -> Self {
        Self::new(aws_sdk_dynamodb::Client::new(config), table)
    }

    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    fn context(&self) -> String {
        format!("on table `{}`", self.table)
    }
}

fn run_key(run_id: &str) -> String {
    format!("sweep#{run_id}")
}

fn number(item: &HashMap<String, AttributeValue>, key: &str) -> Option<u64> {
    item.get(key)?.as_n().ok()?.parse().ok()
}

fn malformed(op: &'static str, context: String, message: impl Into<String>) -> AwsError {
    AwsError::new(ErrorKind::Malformed, op, context, message)
}

impl SdkSweepLedger {
    async fn progress(&self, run_id: &str) -> Result<(u64, u64), AwsError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(run_key(run_id)))
            .key("sk", s("run"))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| dynamodb_error(&e, OP_GET_ITEM, self.context()))?;
        let item = out.item().ok_or_else(|| {
            malformed(
                OP_GET_ITEM,
                self.context(),
                format!("run {run_id} is not in the table"),
            )
        })?;
        Ok((
            number(item, "done").unwrap_or(0),
            number(item, "total").unwrap_or(0),
        ))
    }
}

impl SweepLedger for SdkSweepLedger {
    async fn start_run(&self, run: &SweepRun) -> Result<bool, AwsError> {
        let expires = run.started_at + chrono::Duration::days(RUN_RETENTION_DAYS);
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(run_key(&run.run_id)))
            .item("sk", s("run"))
            .item("total", n(run.total))
            .item("done", n(0))
            .item("started_at", s(run.started_at.to_rfc3339()))
            .item("dry_run", AttributeValue::Bool(run.dry_run))
            .item("expires_at", n(expires.timestamp()))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if is_condition_failure(e.as_service_error().and_then(|e| e.code())) => {
                Ok(false)
            }
            Err(e) => Err(dynamodb_error(&e, OP_PUT_ITEM, self.context())),
        }
    }

    async fn record_account(
        &self,
        run_id: &str,
        record: &AccountRecord,
    ) -> Result<RunProgress, AwsError> {
        let json = serde_json::to_string(record)
            .map_err(|e| malformed(OP_TRANSACT, self.context(), e.to_string()))?;
        let put = Put::builder()
            .table_name(&self.table)
            .item("pk", s(run_key(run_id)))
            .item("sk", s(format!("account#{}", record.account)))
            .item("record", s(json))
            .item(
                "expires_at",
                n((Utc::now() + chrono::Duration::days(RUN_RETENTION_DAYS)).timestamp()),
            )
            .condition_expression("attribute_not_exists(sk)")
            .build()
            .map_err(|e| malformed(OP_TRANSACT, self.context(), e.to_string()))?;
        let update = Update::builder()
            .table_name(&self.table)
            .key("pk", s(run_key(run_id)))
            .key("sk", s("run"))
            .update_expression("ADD #done :one")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_names("#done", "done")
            .expression_attribute_values(":one", n(1))
            .build()
            .map_err(|e| malformed(OP_TRANSACT, self.context(), e.to_string()))?;
        let result = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().put(put).build())
            .transact_items(TransactWriteItem::builder().update(update).build())
            .send()
            .await;
        let recorded = match result {
            Ok(_) => true,
            Err(e) => {
                let reasons: Vec<Option<String>> = e
                    .as_service_error()
                    .and_then(|se| match se {
                        aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError::TransactionCanceledException(c) => Some(
                            c.cancellation_reasons()
                                .iter()
                                .map(|r| r.code().map(str::to_owned))
                                .collect(),
                        ),
                        _ => None,
                    })
                    .unwrap_or_default();
                match reasons.as_slice() {
                    // The record is there already: a redelivered task, counted before.
                    [Some(first), ..] if first == "ConditionalCheckFailed" => false,
                    [_, Some(second)] if second == "ConditionalCheckFailed" => {
                        return Err(malformed(
                            OP_TRANSACT,
                            self.context(),
                            format!("run {run_id} is not in the table"),
                        ));
                    }
                    _ => return Err(dynamodb_error(&e, OP_TRANSACT, self.context())),
                }
            }
        };
        let (done, total) = self.progress(run_id).await?;
        Ok(RunProgress {
            recorded,
            done,
            total,
        })
    }

    async fn claim_summary(&self, run_id: &str, claimant: &str) -> Result<bool, AwsError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(run_key(run_id)))
            .key("sk", s("run"))
            .update_expression("SET claimed_by = :me")
            .condition_expression(
                "attribute_exists(pk) AND #done >= #total AND (attribute_not_exists(claimed_by) OR claimed_by = :me)",
            )
            .expression_attribute_names("#done", "done")
            .expression_attribute_names("#total", "total")
            .expression_attribute_values(":me", s(claimant))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if is_condition_failure(e.as_service_error().and_then(|e| e.code())) => {
                Ok(false)
            }
            Err(e) => Err(dynamodb_error(&e, OP_UPDATE_ITEM, self.context())),
        }
    }

    async fn run_records(&self, run_id: &str) -> Result<(SweepRun, Vec<AccountRecord>), AwsError> {
        let mut run = None;
        let mut records = Vec::new();
        let mut start: Option<HashMap<String, AttributeValue>> = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk")
                .expression_attribute_values(":pk", s(run_key(run_id)))
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| dynamodb_error(&e, OP_QUERY, self.context()))?;
            for item in out.items() {
                let sk = item.get("sk").and_then(|v| v.as_s().ok());
                if sk.map(String::as_str) == Some("run") {
                    let started_at = item
                        .get("started_at")
                        .and_then(|v| v.as_s().ok())
                        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                        .map(|t| t.to_utc())
                        .ok_or_else(|| {
                            malformed(OP_QUERY, self.context(), "run item without started_at")
                        })?;
                    run = Some(SweepRun {
                        run_id: run_id.to_owned(),
                        started_at,
                        dry_run: item
                            .get("dry_run")
                            .and_then(|v| v.as_bool().ok())
                            .copied()
                            .unwrap_or(false),
                        total: number(item, "total").unwrap_or(0),
                    });
                } else if let Some(json) = item.get("record").and_then(|v| v.as_s().ok()) {
                    match serde_json::from_str::<AccountRecord>(json) {
                        Ok(r) => records.push(r),
                        Err(e) => {
                            tracing::warn!(run_id, error = %e, "unreadable account record skipped")
                        }
                    }
                }
            }
            match out.last_evaluated_key() {
                Some(key) if !key.is_empty() => start = Some(key.clone()),
                _ => break,
            }
        }
        let run = run.ok_or_else(|| {
            malformed(
                OP_QUERY,
                self.context(),
                format!("run {run_id} is not in the table"),
            )
        })?;
        Ok((run, records))
    }
}

// ---------------------------------------------------------------------------------------
// EventBridge
// ---------------------------------------------------------------------------------------

impl SummaryBus for super::messaging::SdkOutcomeBus {
    async fn publish_summary(&self, summary: &SweepSummary) -> Result<(), AwsError> {
        let detail = serde_json::to_string(summary).map_err(|e| {
            malformed(
                "events:PutEvents",
                self.bus_name().to_owned(),
                e.to_string(),
            )
        })?;
        self.put_one(SUMMARY_DETAIL_TYPE, detail).await
    }
}
