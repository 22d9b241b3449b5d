//! The ledger: one DynamoDB table that holds the audit trail (every request and its
//! outcome), the idempotency markers (a finding applied once within a window), and a
//! lock per principal that serializes read-modify-write on its deny policy.
//!
//! # Why a lock
//!
//! IAM has no conditional put: two writers that read a principal's policy before
//! either writes can each write a document built from the old read, and the later
//! write drops the earlier one's cutoff (or a statement someone added). SQS FIFO keeps
//! one principal's queued requests in order, but an operator's direct invoke or
//! `cutoff revoke`, and the sweeper, write outside the queue. Every writer takes the
//! principal's lease (a conditional put on `lock#…`) before reading and releases it
//! after verifying; a lease expires on its own (`expires_at`), so a crashed holder
//! blocks others for at most the lease.
//!
//! Items (string keys `pk`, `sk`; TTL attribute `expires_at`, epoch seconds):
//! - `pk = principal#<account>#<kind>#<name>`, `sk = <RFC 3339 time>#<request id>`:
//!   the audit entry (the outcome as JSON), newest last.
//! - `pk = dedupe#<key>`, `sk = dedupe`: a finding applied to a principal, until
//!   `expires_at`.
//! - `pk = lock#<account>#<kind>#<name>`, `sk = lock`: the lease holder until
//!   `expires_at`.
//! - `pk = keys#<account>#<kind>#<name>`, `sk = <access key id>`: a key revoked on the
//!   principal, with the cutoff that covers it and the finding that named it (the skip
//!   rule, [`cutoff_domain::coverage`]), until `expires_at`; a release drops them.
//! - `pk = breaker#<account>#<hour>`, `sk = breaker`: the automatic revocations of an
//!   account in one hour (`n`), the circuit breaker's count.
//! - `pk = sweep#<run id>`: sweep runs ([`super::sweep_io`]).

use std::collections::HashMap;
use std::future::Future;

use aws_sdk_dynamodb::types::AttributeValue;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::error::classify;
use super::{AwsError, ErrorKind};
use cutoff_domain::coverage::KeyRecord;
use cutoff_domain::outcome::Outcome;
use cutoff_domain::principal::{Account, Target, TargetKind};

const OP_PUT_ITEM: &str = "dynamodb:PutItem";
const OP_GET_ITEM: &str = "dynamodb:GetItem";
const OP_DELETE_ITEM: &str = "dynamodb:DeleteItem";
const OP_QUERY: &str = "dynamodb:Query";
const OP_UPDATE_ITEM: &str = "dynamodb:UpdateItem";

/// How long a key record is kept: past the longest a session can live (36 hours), a
/// record can no longer spare a write that matters.
pub const KEY_RECORD_DAYS: i64 = 2;

/// How long audit entries are kept (DynamoDB TTL); point-in-time recovery and the
/// function logs keep them longer.
pub const AUDIT_RETENTION_DAYS: i64 = 400;

/// One request and its outcome, as the audit trail keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// When the request ended.
    pub at: DateTime<Utc>,
    /// The Lambda request id or SQS message id (CLI: `cli-…`).
    pub request_id: String,
    /// `revoke`, `release` or `sweep`.
    pub action: String,
    /// Who or what asked, the finding, the target, the cutoff before and after, the
    /// result: all in the outcome.
    pub outcome: Outcome,
}

/// The principal a target names, as a key: `<account>#<kind>#<name>`. IAM names are
/// unique regardless of case (`Payments-API` is `payments-api`), so the name is
/// lowercased: a request spelling it differently takes the same lock and finds the same
/// key records and audit trail as the sweeper, which spells it as IAM does.
///
/// A role whose name only looks service-linked or like Identity Center's is a role:
/// its kind is `role` here, as the sweeper and a request naming it as a role name it.
pub fn principal_key(target: &Target) -> String {
    let kind = match target.kind {
        TargetKind::ServiceLinkedRole | TargetKind::IdentityCenterRole => TargetKind::Role,
        other => other,
    };
    principal_key_of(&target.account, kind.as_str(), target.name.as_str())
}

/// [`principal_key`] from its parts (`kind` as [`TargetKind::as_str`] spells it).
pub fn principal_key_of(account: &Account, kind: &str, name: &str) -> String {
    format!("{account}#{kind}#{}", name.to_ascii_lowercase())
}

/// `lock#`, `dedupe#`, `principal#` keys, and what the ledger can do.
pub trait Ledger: Send + Sync {
    /// Whether there is a ledger at all ([`NoLedger`] says no).
    fn enabled(&self) -> bool {
        true
    }

    /// Takes the lease on `principal` for `holder` until `until`; false when someone
    /// else holds an unexpired lease. Taking a lease the holder already has renews it.
    fn acquire(
        &self,
        principal: &str,
        holder: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> impl Future<Output = Result<bool, AwsError>> + Send;

    /// Gives the lease back if `holder` still has it.
    fn release(
        &self,
        principal: &str,
        holder: &str,
    ) -> impl Future<Output = Result<(), AwsError>> + Send;

    /// The entry that applied `dedupe_key` if it has not expired at `now`.
    fn applied(
        &self,
        dedupe_key: &str,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Option<AuditEntry>, AwsError>> + Send;

    /// Writes the audit entry and, with `dedupe`, marks that key applied until the
    /// given time.
    fn record(
        &self,
        entry: &AuditEntry,
        dedupe: Option<(&str, DateTime<Utc>)>,
    ) -> impl Future<Output = Result<(), AwsError>> + Send;

    /// The newest `limit` entries for a principal, newest first.
    fn history(
        &self,
        account: &Account,
        kind: &str,
        name: &str,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<AuditEntry>, AwsError>> + Send;

    /// The keys revoked on `principal` whose records have not expired at `now`.
    fn key_records(
        &self,
        principal: &str,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Vec<KeyRecord>, AwsError>> + Send;

    /// Records (or replaces) a key revoked on `principal`, until `until`.
    fn record_key(
        &self,
        principal: &str,
        record: &KeyRecord,
        until: DateTime<Utc>,
    ) -> impl Future<Output = Result<(), AwsError>> + Send;

    /// Drops every key record of `principal`: its cutoff was released.
    fn drop_keys(&self, principal: &str) -> impl Future<Output = Result<(), AwsError>> + Send;

    /// Counts one more in `bucket` unless it already holds `cap`; false when full. The
    /// count expires at `until`.
    fn take_slot(
        &self,
        bucket: &str,
        cap: u32,
        until: DateTime<Utc>,
    ) -> impl Future<Output = Result<bool, AwsError>> + Send;
}

/// No ledger: no lock, no dedupe, no audit beyond the logs (the CLI without a table,
/// tests of the workflow alone).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoLedger;

impl Ledger for NoLedger {
    fn enabled(&self) -> bool {
        false
    }

    async fn acquire(
        &self,
        _: &str,
        _: &str,
        _: DateTime<Utc>,
        _: DateTime<Utc>,
    ) -> Result<bool, AwsError> {
        Ok(true)
    }

    async fn release(&self, _: &str, _: &str) -> Result<(), AwsError> {
        Ok(())
    }

    async fn applied(&self, _: &str, _: DateTime<Utc>) -> Result<Option<AuditEntry>, AwsError> {
        Ok(None)
    }

    async fn record(
        &self,
        _: &AuditEntry,
        _: Option<(&str, DateTime<Utc>)>,
    ) -> Result<(), AwsError> {
        Ok(())
    }

    async fn history(
        &self,
        _: &Account,
        _: &str,
        _: &str,
        _: usize,
    ) -> Result<Vec<AuditEntry>, AwsError> {
        Ok(Vec::new())
    }

    async fn key_records(&self, _: &str, _: DateTime<Utc>) -> Result<Vec<KeyRecord>, AwsError> {
        Ok(Vec::new())
    }

    async fn record_key(&self, _: &str, _: &KeyRecord, _: DateTime<Utc>) -> Result<(), AwsError> {
        Ok(())
    }

    async fn drop_keys(&self, _: &str) -> Result<(), AwsError> {
        Ok(())
    }

    async fn take_slot(&self, _: &str, _: u32, _: DateTime<Utc>) -> Result<bool, AwsError> {
        Ok(true)
    }
}

/// The ledger table, through the SDK.
#[derive(Debug, Clone)]
pub struct SdkLedger {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl SdkLedger {
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    pub fn from_config(config: &aws_config::SdkConfig, table: impl Into<String>) -> Self {
        Self::new(aws_sdk_dynamodb::Client::new(config), table)
    }

    fn context(&self) -> String {
        format!("on table `{}`", self.table)
    }

    fn error<E>(
        &self,
        err: &aws_smithy_runtime_api::client::result::SdkError<
            E,
            aws_smithy_runtime_api::client::orchestrator::HttpResponse,
        >,
        op: &'static str,
    ) -> AwsError
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        dynamodb_error(err, op, self.context())
    }

    /// Every item of one partition, page after page: `NewestFirst` stops once `limit`
    /// items are read (the audit trail, sorted by time); `Consistent` reads them all
    /// with a strongly consistent read (the key records, just written by another run).
    async fn query_partition(
        &self,
        pk: String,
        order: QueryOrder,
    ) -> Result<Vec<HashMap<String, AttributeValue>>, AwsError> {
        let mut items = Vec::new();
        let mut start: Option<HashMap<String, AttributeValue>> = None;
        loop {
            let query = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk")
                .expression_attribute_values(":pk", s(pk.clone()))
                .set_exclusive_start_key(start.take());
            let query = match order {
                QueryOrder::NewestFirst { limit } => query
                    .scan_index_forward(false)
                    .limit(i32::try_from(limit.min(1000)).unwrap_or(1000)),
                QueryOrder::Consistent => query.consistent_read(true),
            };
            let out = query.send().await.map_err(|e| self.error(&e, OP_QUERY))?;
            items.extend(out.items().iter().cloned());
            let enough = match order {
                QueryOrder::NewestFirst { limit } => items.len() >= limit,
                QueryOrder::Consistent => false,
            };
            match out.last_evaluated_key() {
                Some(key) if !key.is_empty() && !enough => start = Some(key.clone()),
                _ => break,
            }
        }
        Ok(items)
    }
}

/// How [`SdkLedger::query_partition`] reads a partition.
#[derive(Debug, Clone, Copy)]
enum QueryOrder {
    NewestFirst { limit: usize },
    Consistent,
}

/// [`classify`], with DynamoDB's own codes placed: its throttling (provisioned or
/// account request limits), transaction conflicts (retryable) and a missing table.
pub(super) fn dynamodb_error<E>(
    err: &aws_smithy_runtime_api::client::result::SdkError<
        E,
        aws_smithy_runtime_api::client::orchestrator::HttpResponse,
    >,
    op: &'static str,
    context: String,
) -> AwsError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let mut out = classify(err, op, context);
    if let Some(code) = err.as_service_error().and_then(ProvideErrorMetadata::code) {
        match code {
            "ProvisionedThroughputExceededException"
            | "RequestLimitExceeded"
            | "ThrottlingException" => out.kind = ErrorKind::Throttled,
            "TransactionConflictException" => out.kind = ErrorKind::Transient,
            "ResourceNotFoundException" => out.kind = ErrorKind::NotFound,
            _ => {}
        }
    }
    out
}

pub(super) fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

pub(super) fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

pub(super) fn is_condition_failure(code: Option<&str>) -> bool {
    code == Some("ConditionalCheckFailedException")
}

fn entry_of(item: &HashMap<String, AttributeValue>) -> Option<AuditEntry> {
    let json = item.get("entry")?.as_s().ok()?;
    match serde_json::from_str(json) {
        Ok(entry) => Some(entry),
        Err(e) => {
            tracing::warn!(error = %e, "an audit entry that cannot be read was skipped");
            None
        }
    }
}

impl Ledger for SdkLedger {
    async fn acquire(
        &self,
        principal: &str,
        holder: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool, AwsError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(format!("lock#{principal}")))
            .item("sk", s("lock"))
            .item("holder", s(holder))
            .item("expires_at", n(until.timestamp()))
            .condition_expression("attribute_not_exists(pk) OR expires_at < :now OR holder = :me")
            .expression_attribute_values(":now", n(now.timestamp()))
            .expression_attribute_values(":me", s(holder))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if is_condition_failure(e.as_service_error().and_then(|e| e.code())) => {
                Ok(false)
            }
            Err(e) => Err(self.error(&e, OP_PUT_ITEM)),
        }
    }

    async fn release(&self, principal: &str, holder: &str) -> Result<(), AwsError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(format!("lock#{principal}")))
            .key("sk", s("lock"))
            .condition_expression("holder = :me")
            .expression_attribute_values(":me", s(holder))
            .send()
            .await;
        match result {
            // Not ours any more (expired and taken): nothing to give back.
            Err(e) if is_condition_failure(e.as_service_error().and_then(|e| e.code())) => Ok(()),
            Err(e) => Err(self.error(&e, OP_DELETE_ITEM)),
            Ok(_) => Ok(()),
        }
    }

    async fn applied(
        &self,
        dedupe_key: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<AuditEntry>, AwsError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(format!("dedupe#{dedupe_key}")))
            .key("sk", s("dedupe"))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| self.error(&e, OP_GET_ITEM))?;
        let Some(item) = out.item() else {
            return Ok(None);
        };
        // TTL deletes lazily: an expired marker still read is no marker.
        let expires = item
            .get("expires_at")
            .and_then(|v| v.as_n().ok())
            .and_then(|v| v.parse::<i64>().ok())
            .unwrap_or(0);
        if expires <= now.timestamp() {
            return Ok(None);
        }
        Ok(entry_of(item))
    }

    async fn record(
        &self,
        entry: &AuditEntry,
        dedupe: Option<(&str, DateTime<Utc>)>,
    ) -> Result<(), AwsError> {
        let json = serde_json::to_string(entry).map_err(|e| {
            AwsError::new(
                ErrorKind::Malformed,
                OP_PUT_ITEM,
                self.context(),
                e.to_string(),
            )
        })?;
        let principal = entry
            .outcome
            .target
            .as_ref()
            .map_or_else(|| "unknown".to_owned(), principal_key);
        let expires = entry.at + chrono::Duration::days(AUDIT_RETENTION_DAYS);
        self.client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(format!("principal#{principal}")))
            .item(
                "sk",
                s(format!(
                    "{}#{}",
                    entry
                        .at
                        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                    entry.request_id
                )),
            )
            .item("entry", s(json.clone()))
            .item("expires_at", n(expires.timestamp()))
            .send()
            .await
            .map_err(|e| self.error(&e, OP_PUT_ITEM))?;
        if let Some((key, until)) = dedupe {
            self.client
                .put_item()
                .table_name(&self.table)
                .item("pk", s(format!("dedupe#{key}")))
                .item("sk", s("dedupe"))
                .item("entry", s(json))
                .item("expires_at", n(until.timestamp()))
                .send()
                .await
                .map_err(|e| self.error(&e, OP_PUT_ITEM))?;
        }
        Ok(())
    }

    async fn history(
        &self,
        account: &Account,
        kind: &str,
        name: &str,
        limit: usize,
    ) -> Result<Vec<AuditEntry>, AwsError> {
        let limit = limit.max(1);
        let items = self
            .query_partition(
                format!("principal#{}", principal_key_of(account, kind, name)),
                QueryOrder::NewestFirst { limit },
            )
            .await?;
        let mut entries: Vec<AuditEntry> = items.iter().filter_map(entry_of).collect();
        entries.truncate(limit);
        Ok(entries)
    }

    async fn key_records(
        &self,
        principal: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<KeyRecord>, AwsError> {
        let items = self
            .query_partition(format!("keys#{principal}"), QueryOrder::Consistent)
            .await?;
        let records = items
            .iter()
            .filter_map(|item| {
                // TTL deletes lazily: an expired record read is no record.
                let expires = item
                    .get("expires_at")
                    .and_then(|v| v.as_n().ok())
                    .and_then(|v| v.parse::<i64>().ok())
                    .unwrap_or(0);
                if expires <= now.timestamp() {
                    return None;
                }
                let json = item.get("record")?.as_s().ok()?;
                serde_json::from_str::<KeyRecord>(json).ok()
            })
            .collect();
        Ok(records)
    }

    async fn record_key(
        &self,
        principal: &str,
        record: &KeyRecord,
        until: DateTime<Utc>,
    ) -> Result<(), AwsError> {
        let json = serde_json::to_string(record).map_err(|e| {
            AwsError::new(
                ErrorKind::Malformed,
                OP_PUT_ITEM,
                self.context(),
                e.to_string(),
            )
        })?;
        self.client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(format!("keys#{principal}")))
            .item("sk", s(record.sort_key()))
            .item("record", s(json))
            .item("expires_at", n(until.timestamp()))
            .send()
            .await
            .map(drop)
            .map_err(|e| self.error(&e, OP_PUT_ITEM))
    }

    async fn drop_keys(&self, principal: &str) -> Result<(), AwsError> {
        let records = self
            .key_records(principal, DateTime::<Utc>::MIN_UTC)
            .await?;
        for record in records {
            self.client
                .delete_item()
                .table_name(&self.table)
                .key("pk", s(format!("keys#{principal}")))
                .key("sk", s(record.sort_key()))
                .send()
                .await
                .map_err(|e| self.error(&e, OP_DELETE_ITEM))?;
        }
        Ok(())
    }

    async fn take_slot(
        &self,
        bucket: &str,
        cap: u32,
        until: DateTime<Utc>,
    ) -> Result<bool, AwsError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(format!("breaker#{bucket}")))
            .key("sk", s("breaker"))
            .update_expression("ADD n :one SET expires_at = :until")
            .condition_expression("attribute_not_exists(n) OR n < :cap")
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":cap", n(cap))
            .expression_attribute_values(":until", n(until.timestamp()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if is_condition_failure(e.as_service_error().and_then(|e| e.code())) => {
                Ok(false)
            }
            Err(e) => Err(self.error(&e, OP_UPDATE_ITEM)),
        }
    }
}

/// A ledger chosen at start-up: the table when one is configured, none otherwise.
#[derive(Debug, Clone)]
pub enum ConfiguredLedger {
    None,
    Table(SdkLedger),
}

impl ConfiguredLedger {
    pub fn from_config(config: &aws_config::SdkConfig, table: Option<&str>) -> Self {
        match table {
            Some(t) => ConfiguredLedger::Table(SdkLedger::from_config(config, t)),
            None => ConfiguredLedger::None,
        }
    }
}

impl Ledger for ConfiguredLedger {
    fn enabled(&self) -> bool {
        matches!(self, ConfiguredLedger::Table(_))
    }

    async fn acquire(
        &self,
        principal: &str,
        holder: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool, AwsError> {
        match self {
            ConfiguredLedger::None => NoLedger.acquire(principal, holder, now, until).await,
            ConfiguredLedger::Table(t) => t.acquire(principal, holder, now, until).await,
        }
    }

    async fn release(&self, principal: &str, holder: &str) -> Result<(), AwsError> {
        match self {
            ConfiguredLedger::None => Ok(()),
            ConfiguredLedger::Table(t) => t.release(principal, holder).await,
        }
    }

    async fn applied(
        &self,
        dedupe_key: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<AuditEntry>, AwsError> {
        match self {
            ConfiguredLedger::None => Ok(None),
            ConfiguredLedger::Table(t) => t.applied(dedupe_key, now).await,
        }
    }

    async fn record(
        &self,
        entry: &AuditEntry,
        dedupe: Option<(&str, DateTime<Utc>)>,
    ) -> Result<(), AwsError> {
        match self {
            ConfiguredLedger::None => Ok(()),
            ConfiguredLedger::Table(t) => t.record(entry, dedupe).await,
        }
    }

    async fn history(
        &self,
        account: &Account,
        kind: &str,
        name: &str,
        limit: usize,
    ) -> Result<Vec<AuditEntry>, AwsError> {
        match self {
            ConfiguredLedger::None => Ok(Vec::new()),
            ConfiguredLedger::Table(t) => t.history(account, kind, name, limit).await,
        }
    }

    async fn key_records(
        &self,
        principal: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<KeyRecord>, AwsError> {
        match self {
            ConfiguredLedger::None => Ok(Vec::new()),
            ConfiguredLedger::Table(t) => t.key_records(principal, now).await,
        }
    }

    async fn record_key(
        &self,
        principal: &str,
        record: &KeyRecord,
        until: DateTime<Utc>,
    ) -> Result<(), AwsError> {
        match self {
            ConfiguredLedger::None => Ok(()),
            ConfiguredLedger::Table(t) => t.record_key(principal, record, until).await,
        }
    }

    async fn drop_keys(&self, principal: &str) -> Result<(), AwsError> {
        match self {
            ConfiguredLedger::None => Ok(()),
            ConfiguredLedger::Table(t) => t.drop_keys(principal).await,
        }
    }

    async fn take_slot(
        &self,
        bucket: &str,
        cap: u32,
        until: DateTime<Utc>,
    ) -> Result<bool, AwsError> {
        match self {
            ConfiguredLedger::None => Ok(true),
            ConfiguredLedger::Table(t) => t.take_slot(bucket, cap, until).await,
        }
    }
}
