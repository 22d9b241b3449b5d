//! The ledger table through the SDK: [`SdkLedger`] (and [`ConfiguredLedger`], the
//! table when one is configured) and [`SdkSweepLedger`], the sweep runs in it.

use std::collections::HashMap;
use std::sync::Arc;

use aws_sdk_dynamodb::types::{
    AttributeValue, Delete, Put, ReturnValue, TransactWriteItem, Update,
};
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use chrono::{DateTime, Utc};

use super::{
    AUDIT_RETENTION_DAYS, AuditEntry, DIGEST_CLAIM_LEASE, KEY_RECORD_DAYS, Ledger, Mark, NoLedger,
    PrincipalState, RUN_RETENTION_DAYS, RunProgress, SweepLedger, SweepRun, principal_key_of,
};
use crate::error::{AwsError, ErrorKind, classify};
use chrono::NaiveDate;
use cutoff_domain::coverage::KeyRecord;
use cutoff_domain::principal::Account;
use cutoff_domain::summary::{AccountRecord, DayRun, RunTotals};

const OP_PUT_ITEM: &str = "dynamodb:PutItem";
const OP_GET_ITEM: &str = "dynamodb:GetItem";
const OP_QUERY: &str = "dynamodb:Query";
const OP_UPDATE_ITEM: &str = "dynamodb:UpdateItem";
const OP_TRANSACT: &str = "dynamodb:TransactWriteItems";
const OP_DELETE_ITEM: &str = "dynamodb:DeleteItem";

/// The partition key of the table's format item ([`Ledger::legacy_window`]).
pub const FORMAT_PK: &str = "ledger#format";

/// The ledger table, through the SDK.
#[derive(Debug, Clone)]
pub struct SdkLedger {
    client: aws_sdk_dynamodb::Client,
    table: String,
    /// Until when the version before may have left key records (`None`: never), read
    /// once per process ([`Ledger::legacy_window`]).
    legacy_until: Arc<tokio::sync::OnceCell<Option<DateTime<Utc>>>>,
}

impl SdkLedger {
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
            legacy_until: Arc::default(),
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

    /// Every item of one partition ([`query_partition`]).
    async fn query_partition(
        &self,
        pk: String,
        order: QueryOrder,
    ) -> Result<Vec<HashMap<String, AttributeValue>>, AwsError> {
        query_partition(&self.client, &self.table, pk, order)
            .await
            .map_err(|e| self.error(&e, OP_QUERY))
    }
}

/// Every item of one partition of `table`, page after page: `NewestFirst` stops once
/// `limit` items are read (the audit trail, sorted by time); `Consistent` reads them all
/// with a strongly consistent read (the key records, just written by another run; a
/// sweep run's records; a day's runs). The SDK's error as it came: each caller names
/// the operation (`OP_QUERY`) in its own error, as it names every call it makes.
pub(super) async fn query_partition(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    pk: String,
    order: QueryOrder,
) -> Result<Vec<HashMap<String, AttributeValue>>, QueryFailure> {
    let mut items = Vec::new();
    let mut start: Option<HashMap<String, AttributeValue>> = None;
    loop {
        let query = client
            .query()
            .table_name(table)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", s(pk.clone()))
            .set_exclusive_start_key(start.take());
        let query = match order {
            QueryOrder::NewestFirst { limit } => query
                .scan_index_forward(false)
                .limit(i32::try_from(limit.min(1000)).unwrap_or(1000)),
            QueryOrder::Consistent => query.consistent_read(true),
        };
        let out = query.send().await?;
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

/// How a `Query` call fails.
pub(super) type QueryFailure = aws_smithy_runtime_api::client::result::SdkError<
    aws_sdk_dynamodb::operation::query::QueryError,
    aws_smithy_runtime_api::client::orchestrator::HttpResponse,
>;

/// How [`query_partition`] reads a partition.
#[derive(Debug, Clone, Copy)]
pub(super) enum QueryOrder {
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

/// The lease is free: nobody holds it, the holder asks again, it ran out, or it is a
/// lease of the version before (no `lease_until`, its end in `expires_at`) that ran out.
const LEASE_FREE: &str = "attribute_not_exists(holder) OR holder = :me OR lease_until < :now \
     OR (attribute_not_exists(lease_until) AND expires_at < :now)";

fn epoch(item: &HashMap<String, AttributeValue>, key: &str) -> Option<DateTime<Utc>> {
    let seconds = item.get(key)?.as_n().ok()?.parse::<i64>().ok()?;
    DateTime::from_timestamp(seconds, 0)
}

/// The marks and key records of a principal's item; an entry that cannot be read is
/// skipped (it then spares nothing, which is the safe side).
fn state_of(item: &HashMap<String, AttributeValue>) -> PrincipalState {
    let mut state = PrincipalState::default();
    if let Some(Ok(marks)) = item.get("marks").map(AttributeValue::as_m) {
        for (digest, mark) in marks {
            let Ok(mark) = mark.as_m() else { continue };
            let (Some(trail), Some(entry), Some(until)) = (
                mark.get("trail").and_then(|v| v.as_s().ok()),
                mark.get("entry").and_then(|v| v.as_s().ok()),
                epoch(mark, "until"),
            ) else {
                continue;
            };
            state.marks.insert(
                digest.clone(),
                Mark {
                    trail: trail.clone(),
                    entry: entry.clone(),
                    until,
                },
            );
        }
    }
    if let Some(Ok(keys)) = item.get("keys").map(AttributeValue::as_m) {
        for (sort_key, held) in keys {
            let Ok(held) = held.as_m() else { continue };
            let record = held
                .get("record")
                .and_then(|v| v.as_s().ok())
                .and_then(|json| serde_json::from_str::<KeyRecord>(json).ok());
            match (record, epoch(held, "until")) {
                // Kept under the key it names itself by, whatever the map says.
                (Some(record), Some(until)) if record.sort_key() == *sort_key => {
                    state.keys.insert(sort_key.clone(), (record, until));
                }
                // Missing, it must not let a first activity count: incomplete for as
                // long as anything in the item lives.
                _ => {
                    tracing::warn!("a key record that cannot be read was skipped");
                    let until = epoch(item, "expires_at")
                        .unwrap_or_else(|| Utc::now() + chrono::Duration::days(KEY_RECORD_DAYS));
                    state.incomplete_until(until);
                }
            }
        }
    }
    state.keys_since = epoch(item, "keys_since");
    if let Some(until) = epoch(item, "keys_incomplete_until") {
        state.incomplete_until(until);
    }
    state
}

fn marks_value(state: &PrincipalState) -> AttributeValue {
    AttributeValue::M(
        state
            .marks
            .iter()
            .map(|(digest, mark)| {
                let fields = HashMap::from([
                    ("trail".to_owned(), s(mark.trail.clone())),
                    ("entry".to_owned(), s(mark.entry.clone())),
                    ("until".to_owned(), n(mark.until.timestamp())),
                ]);
                (digest.clone(), AttributeValue::M(fields))
            })
            .collect(),
    )
}

fn keys_value(state: &PrincipalState) -> Result<AttributeValue, serde_json::Error> {
    let mut keys = HashMap::new();
    for (sort_key, (record, until)) in &state.keys {
        let fields = HashMap::from([
            ("record".to_owned(), s(serde_json::to_string(record)?)),
            ("until".to_owned(), n(until.timestamp())),
        ]);
        keys.insert(sort_key.clone(), AttributeValue::M(fields));
    }
    Ok(AttributeValue::M(keys))
}

impl SdkLedger {
    fn malformed(&self, op: &'static str, e: impl ToString) -> AwsError {
        AwsError::new(ErrorKind::Malformed, op, self.context(), e.to_string())
    }

    /// The audit entry as the trail keeps it.
    fn entry_put(&self, entry: &AuditEntry) -> Result<Put, AwsError> {
        let json = serde_json::to_string(entry).map_err(|e| self.malformed(OP_TRANSACT, e))?;
        let expires = entry.at + chrono::Duration::days(AUDIT_RETENTION_DAYS);
        Put::builder()
            .table_name(&self.table)
            .item("pk", s(format!("principal#{}", entry.principal())))
            .item("sk", s(entry.sort_key()))
            .item("entry", s(json))
            .item("expires_at", n(expires.timestamp()))
            .build()
            .map_err(|e| self.malformed(OP_TRANSACT, e))
    }

    /// The principal's item rewritten from `state` with the lease given back, or
    /// deleted when nothing in it counts any more; only while `holder` holds it.
    fn closing(
        &self,
        principal: &str,
        holder: &str,
        state: &PrincipalState,
    ) -> Result<TransactWriteItem, AwsError> {
        let pk = s(format!("lock#{principal}"));
        let Some(expires) = state.expires_at() else {
            let delete = Delete::builder()
                .table_name(&self.table)
                .key("pk", pk)
                .key("sk", s("lock"))
                .condition_expression("holder = :me")
                .expression_attribute_values(":me", s(holder))
                .build()
                .map_err(|e| self.malformed(OP_TRANSACT, e))?;
            return Ok(TransactWriteItem::builder().delete(delete).build());
        };
        let mut set = "SET #marks = :marks, #keys = :keys, expires_at = :expires".to_owned();
        let mut remove = "REMOVE holder, lease_until".to_owned();
        let mut values = vec![];
        for (name, value) in [
            ("keys_since", state.keys_since),
            ("keys_incomplete_until", state.keys_incomplete_until),
        ] {
            match value {
                Some(t) => {
                    set.push_str(&format!(", {name} = :{name}"));
                    values.push((format!(":{name}"), n(t.timestamp())));
                }
                None => remove.push_str(&format!(", {name}")),
            }
        }
        let update = Update::builder()
            .table_name(&self.table)
            .key("pk", pk)
            .key("sk", s("lock"))
            .update_expression(format!("{set} {remove}"))
            .set_expression_attribute_values(Some(values.into_iter().collect()))
            // KEYS is one of DynamoDB's reserved words: both maps go by placeholder.
            .expression_attribute_names("#marks", "marks")
            .expression_attribute_names("#keys", "keys")
            .condition_expression("holder = :me")
            .expression_attribute_values(":me", s(holder))
            .expression_attribute_values(":marks", marks_value(state))
            .expression_attribute_values(
                ":keys",
                keys_value(state).map_err(|e| self.malformed(OP_TRANSACT, e))?,
            )
            .expression_attribute_values(":expires", n(expires.timestamp()))
            .build()
            .map_err(|e| self.malformed(OP_TRANSACT, e))?;
        Ok(TransactWriteItem::builder().update(update).build())
    }
}

impl SdkLedger {
    /// The table's format item: until when the version before may have left key
    /// records. The first process of this version writes it: from then, for as long
    /// as a record lives (the table may have been the version before's: nothing in it
    /// says otherwise, but a deployer who knows it was not can write `legacy_until` 0).
    async fn read_format(&self, now: DateTime<Utc>) -> Result<Option<DateTime<Utc>>, AwsError> {
        let key = || {
            HashMap::from([
                ("pk".to_owned(), s(FORMAT_PK)),
                ("sk".to_owned(), s("format")),
            ])
        };
        let get = || async {
            let out = self
                .client
                .get_item()
                .table_name(&self.table)
                .set_key(Some(key()))
                .consistent_read(true)
                .send()
                .await
                .map_err(|e| self.error(&e, OP_GET_ITEM))?;
            Ok::<_, AwsError>(out.item().map(|item| epoch(item, "legacy_until")))
        };
        if let Some(until) = get().await? {
            return Ok(until.filter(|t| t.timestamp() > 0));
        }
        let until = now + chrono::Duration::days(KEY_RECORD_DAYS);
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(key()))
            .item("first_run", n(now.timestamp()))
            .item("legacy_until", n(until.timestamp()))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        match put {
            Ok(_) => Ok(Some(until)),
            // Another process wrote it first: its word holds.
            Err(e) if is_condition_failure(e.as_service_error().and_then(|e| e.code())) => {
                Ok(get().await?.flatten().filter(|t| t.timestamp() > 0))
            }
            Err(e) => Err(self.error(&e, OP_PUT_ITEM)),
        }
    }
}

/// A closing's idempotency token: its principal, holder and entries (at most 36
/// characters, as DynamoDB takes them).
fn closing_token(principal: &str, holder: &str, entries: &[AuditEntry]) -> String {
    use sha2::{Digest, Sha256};
    let mut hash = Sha256::new();
    for part in [principal, holder] {
        hash.update(part.as_bytes());
        hash.update([0]);
    }
    for entry in entries {
        hash.update(entry.sort_key().as_bytes());
        hash.update([0]);
    }
    hash.finalize()
        .iter()
        .take(18)
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl Ledger for SdkLedger {
    async fn acquire(
        &self,
        principal: &str,
        holder: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Option<PrincipalState>, AwsError> {
        // The item lives at least as long as anything a holder can have put in it
        // (marks live an hour, key records two days), so that TTL cannot take it, and
        // the lease with it, while it is held; closing sets it to its contents' end.
        let keep = until + chrono::Duration::days(KEY_RECORD_DAYS);
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(format!("lock#{principal}")))
            .key("sk", s("lock"))
            .update_expression("SET holder = :me, lease_until = :until, expires_at = :keep")
            .condition_expression(LEASE_FREE)
            .expression_attribute_values(":now", n(now.timestamp()))
            .expression_attribute_values(":me", s(holder))
            .expression_attribute_values(":until", n(until.timestamp()))
            .expression_attribute_values(":keep", n(keep.timestamp()))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        match result {
            Ok(out) => Ok(Some(
                out.attributes()
                    .map(state_of)
                    .unwrap_or_default()
                    .pruned(now),
            )),
            Err(e) if is_condition_failure(e.as_service_error().and_then(|e| e.code())) => Ok(None),
            // The holder's closing transaction is writing the item: it is held, not
            // unreachable (an error here would have the caller write without it).
            Err(e)
                if e.as_service_error().and_then(|e| e.code())
                    == Some("TransactionConflictException") =>
            {
                Ok(None)
            }
            Err(e) => Err(self.error(&e, OP_UPDATE_ITEM)),
        }
    }

    async fn release(&self, principal: &str, holder: &str) -> Result<(), AwsError> {
        // An item that holds nothing but the lease goes (as the version before
        // deleted it, so that a rollback finds no lease in it); one with marks or
        // records keeps them.
        let deleted = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(format!("lock#{principal}")))
            .key("sk", s("lock"))
            .condition_expression(
                "holder = :me AND attribute_not_exists(#marks) AND attribute_not_exists(#keys) \
                 AND attribute_not_exists(keys_incomplete_until)",
            )
            .expression_attribute_names("#marks", "marks")
            .expression_attribute_names("#keys", "keys")
            .expression_attribute_values(":me", s(holder))
            .send()
            .await;
        match deleted {
            Ok(_) => return Ok(()),
            Err(e) if is_condition_failure(e.as_service_error().and_then(|e| e.code())) => {}
            Err(e) => return Err(self.error(&e, OP_DELETE_ITEM)),
        }
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(format!("lock#{principal}")))
            .key("sk", s("lock"))
            .update_expression("REMOVE holder, lease_until")
            .condition_expression("holder = :me")
            .expression_attribute_values(":me", s(holder))
            .send()
            .await;
        match result {
            // Not ours any more (expired and taken): nothing to give back.
            Err(e) if is_condition_failure(e.as_service_error().and_then(|e| e.code())) => Ok(()),
            Err(e) => Err(self.error(&e, OP_UPDATE_ITEM)),
            Ok(_) => Ok(()),
        }
    }

    async fn close(
        &self,
        principal: &str,
        holder: &str,
        state: &PrincipalState,
        entries: &[AuditEntry],
    ) -> Result<bool, AwsError> {
        let mut items = Vec::with_capacity(entries.len() + 1);
        for entry in entries {
            items.push(
                TransactWriteItem::builder()
                    .put(self.entry_put(entry)?)
                    .build(),
            );
        }
        let lease_at = items.len();
        items.push(self.closing(principal, holder, state)?);
        // The same closing tried again (its answer lost) is not applied twice: DynamoDB
        // answers a repeated token within ten minutes with the first outcome.
        let token = closing_token(principal, holder, entries);
        let result = self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .client_request_token(token)
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) => {
                let codes = cancellation_codes(&e);
                if codes.get(lease_at).and_then(Option::as_deref) == Some("ConditionalCheckFailed")
                {
                    return Ok(false);
                }
                let mut error = self.error(&e, OP_TRANSACT);
                // A write on the item while the transaction ran (a waiter asking for
                // the lease) cancels it; so does throttling: both pass on a retry.
                if codes
                    .iter()
                    .flatten()
                    .any(|c| matches!(c.as_str(), "TransactionConflict" | "ThrottlingError"))
                {
                    error.kind = ErrorKind::Transient;
                }
                Err(error)
            }
        }
    }

    async fn state(&self, principal: &str, now: DateTime<Utc>) -> Result<PrincipalState, AwsError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(format!("lock#{principal}")))
            .key("sk", s("lock"))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| self.error(&e, OP_GET_ITEM))?;
        Ok(out.item().map(state_of).unwrap_or_default().pruned(now))
    }

    async fn legacy_window(&self, now: DateTime<Utc>) -> Result<bool, AwsError> {
        // One read per process, even when a batch's principals ask at once (the
        // others wait for it); a failed read is tried again by the next request.
        let until = *self
            .legacy_until
            .get_or_try_init(|| self.read_format(now))
            .await?;
        Ok(until.is_some_and(|t| t > now))
    }

    async fn legacy_keys(
        &self,
        principal: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<(KeyRecord, DateTime<Utc>)>, AwsError> {
        let items = self
            .query_partition(format!("keys#{principal}"), QueryOrder::Consistent)
            .await?;
        let mut records = Vec::new();
        for item in &items {
            let until = epoch(item, "expires_at");
            let record = item
                .get("record")
                .and_then(|v| v.as_s().ok())
                .and_then(|json| serde_json::from_str::<KeyRecord>(json).ok());
            match (record, until) {
                (Some(record), Some(until)) if until > now => records.push((record, until)),
                (Some(_), Some(_)) => {}
                _ => {
                    return Err(self.malformed(
                        OP_QUERY,
                        format!("a key record of the version before on {principal} cannot be read"),
                    ));
                }
            }
        }
        Ok(records)
    }

    async fn mark_incomplete(&self, principal: &str, until: DateTime<Utc>) -> Result<(), AwsError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(format!("lock#{principal}")))
            .key("sk", s("lock"))
            .update_expression(
                "SET keys_incomplete_until = :until, expires_at = if_not_exists(expires_at, :until)",
            )
            .condition_expression(
                "attribute_not_exists(keys_incomplete_until) OR keys_incomplete_until < :until",
            )
            .expression_attribute_values(":until", n(until.timestamp()))
            .send()
            .await;
        match result {
            // A later time is there already.
            Err(e) if is_condition_failure(e.as_service_error().and_then(|e| e.code())) => Ok(()),
            Err(e) => Err(self.error(&e, OP_UPDATE_ITEM)),
            Ok(_) => Ok(()),
        }
    }

    async fn entry(&self, principal: &str, sort_key: &str) -> Result<Option<AuditEntry>, AwsError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(format!("principal#{principal}")))
            .key("sk", s(sort_key))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| self.error(&e, OP_GET_ITEM))?;
        Ok(out.item().and_then(entry_of))
    }

    async fn record(&self, entry: &AuditEntry) -> Result<(), AwsError> {
        let put = self.entry_put(entry)?;
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(put.item().clone()))
            .send()
            .await
            .map(drop)
            .map_err(|e| self.error(&e, OP_PUT_ITEM))
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
    ) -> Result<Option<PrincipalState>, AwsError> {
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

    async fn close(
        &self,
        principal: &str,
        holder: &str,
        state: &PrincipalState,
        entries: &[AuditEntry],
    ) -> Result<bool, AwsError> {
        match self {
            ConfiguredLedger::None => Ok(true),
            ConfiguredLedger::Table(t) => t.close(principal, holder, state, entries).await,
        }
    }

    async fn state(&self, principal: &str, now: DateTime<Utc>) -> Result<PrincipalState, AwsError> {
        match self {
            ConfiguredLedger::None => Ok(PrincipalState::default()),
            ConfiguredLedger::Table(t) => t.state(principal, now).await,
        }
    }

    async fn legacy_window(&self, now: DateTime<Utc>) -> Result<bool, AwsError> {
        match self {
            ConfiguredLedger::None => Ok(false),
            ConfiguredLedger::Table(t) => t.legacy_window(now).await,
        }
    }

    async fn legacy_keys(
        &self,
        principal: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<(KeyRecord, DateTime<Utc>)>, AwsError> {
        match self {
            ConfiguredLedger::None => Ok(Vec::new()),
            ConfiguredLedger::Table(t) => t.legacy_keys(principal, now).await,
        }
    }

    async fn mark_incomplete(&self, principal: &str, until: DateTime<Utc>) -> Result<(), AwsError> {
        match self {
            ConfiguredLedger::None => Ok(()),
            ConfiguredLedger::Table(t) => t.mark_incomplete(principal, until).await,
        }
    }

    async fn entry(&self, principal: &str, sort_key: &str) -> Result<Option<AuditEntry>, AwsError> {
        match self {
            ConfiguredLedger::None => Ok(None),
            ConfiguredLedger::Table(t) => t.entry(principal, sort_key).await,
        }
    }

    async fn record(&self, entry: &AuditEntry) -> Result<(), AwsError> {
        match self {
            ConfiguredLedger::None => Ok(()),
            ConfiguredLedger::Table(t) => t.record(entry).await,
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

// ---------------------------------------------------------------------------------------
// Sweep runs
// ---------------------------------------------------------------------------------------

/// The runs of the sweep in the ledger table, through the SDK.
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

/// The partition of a UTC day's runs.
fn day_key(day: NaiveDate) -> String {
    format!("sweepday#{}", day.format("%Y-%m-%d"))
}

fn day_run_key(run_id: &str) -> String {
    format!("run#{run_id}")
}

fn digest_key(day: NaiveDate) -> String {
    format!("digest#{}", day.format("%Y-%m-%d"))
}

/// The cancellation reasons' codes of a failed transaction, in the order of its
/// items; empty for any other error.
fn cancellation_codes(
    e: &aws_smithy_runtime_api::client::result::SdkError<
        aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError,
        aws_smithy_runtime_api::client::orchestrator::HttpResponse,
    >,
) -> Vec<Option<String>> {
    e.as_service_error()
        .and_then(|se| match se {
            aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError::TransactionCanceledException(c) => Some(
                c.cancellation_reasons()
                    .iter()
                    .map(|r| r.code().map(str::to_owned))
                    .collect(),
            ),
            _ => None,
        })
        .unwrap_or_default()
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
    /// The run item and its day's entry, in one transaction: a run is listed under its
    /// day exactly when it exists.
    async fn start_run(&self, run: &SweepRun) -> Result<bool, AwsError> {
        let expires = run.started_at + chrono::Duration::days(RUN_RETENTION_DAYS);
        let malformed_put = |e: aws_sdk_dynamodb::error::BuildError| {
            malformed(OP_TRANSACT, self.context(), e.to_string())
        };
        let put_run = Put::builder()
            .table_name(&self.table)
            .item("pk", s(run_key(&run.run_id)))
            .item("sk", s("run"))
            .item("total", n(run.total))
            .item("done", n(0))
            .item("started_at", s(run.started_at.to_rfc3339()))
            .item("dry_run", AttributeValue::Bool(run.dry_run))
            .item("tasks_sent", AttributeValue::Bool(run.tasks_sent))
            .item("expires_at", n(expires.timestamp()))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(malformed_put)?;
        let put_day = Put::builder()
            .table_name(&self.table)
            .item("pk", s(day_key(run.day())))
            .item("sk", s(day_run_key(&run.run_id)))
            .item("total", n(run.total))
            .item("started_at", s(run.started_at.to_rfc3339()))
            .item("dry_run", AttributeValue::Bool(run.dry_run))
            .item("expires_at", n(expires.timestamp()))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(malformed_put)?;
        let result = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().put(put_run).build())
            .transact_items(TransactWriteItem::builder().put(put_day).build())
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            // Planned before (the schedule fired twice, a retried invoke).
            Err(e)
                if cancellation_codes(&e)
                    .iter()
                    .any(|c| c.as_deref() == Some("ConditionalCheckFailed")) =>
            {
                Ok(false)
            }
            Err(e) => Err(dynamodb_error(&e, OP_TRANSACT, self.context())),
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
                let reasons = cancellation_codes(&e);
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

    async fn tasks_sent(&self, run_id: &str) -> Result<(), AwsError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(run_key(run_id)))
            .key("sk", s("run"))
            .update_expression("SET tasks_sent = :true")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":true", AttributeValue::Bool(true))
            .send()
            .await
            .map_err(|e| dynamodb_error(&e, OP_UPDATE_ITEM, self.context()))?;
        Ok(())
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
        let items = query_partition(
            &self.client,
            &self.table,
            run_key(run_id),
            QueryOrder::Consistent,
        )
        .await
        .map_err(|e| dynamodb_error(&e, OP_QUERY, self.context()))?;
        for item in &items {
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
                    // Planned by an earlier version, which sent its tasks before it
                    // answered (or not at all: nothing tells).
                    tasks_sent: item
                        .get("tasks_sent")
                        .and_then(|v| v.as_bool().ok())
                        .copied()
                        .unwrap_or(true),
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
        let run = run.ok_or_else(|| {
            malformed(
                OP_QUERY,
                self.context(),
                format!("run {run_id} is not in the table"),
            )
        })?;
        Ok((run, records))
    }

    async fn finish_run(&self, run: &SweepRun, totals: &RunTotals) -> Result<(), AwsError> {
        let json = serde_json::to_string(totals)
            .map_err(|e| malformed(OP_UPDATE_ITEM, self.context(), e.to_string()))?;
        let expires = run.started_at + chrono::Duration::days(RUN_RETENTION_DAYS);
        // What the run item says is written only where the entry lacks it: a run planned
        // by a version without the day index gets a whole entry here.
        self.client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(day_key(run.day())))
            .key("sk", s(day_run_key(&run.run_id)))
            .update_expression(
                "SET totals = :totals, started_at = if_not_exists(started_at, :started), \
                 #total = if_not_exists(#total, :total), dry_run = if_not_exists(dry_run, :dry), \
                 expires_at = if_not_exists(expires_at, :expires)",
            )
            .expression_attribute_names("#total", "total")
            .expression_attribute_values(":totals", s(json))
            .expression_attribute_values(":started", s(run.started_at.to_rfc3339()))
            .expression_attribute_values(":total", n(run.total))
            .expression_attribute_values(":dry", AttributeValue::Bool(run.dry_run))
            .expression_attribute_values(":expires", n(expires.timestamp()))
            .send()
            .await
            .map(drop)
            .map_err(|e| dynamodb_error(&e, OP_UPDATE_ITEM, self.context()))
    }

    async fn claim_digest(
        &self,
        day: NaiveDate,
        claimant: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, AwsError> {
        let expires = now + chrono::Duration::days(RUN_RETENTION_DAYS);
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(digest_key(day)))
            .key("sk", s("digest"))
            .update_expression(
                "SET claimed_by = :me, claimed_at = :now, sent = :false, expires_at = :expires",
            )
            .condition_expression(
                "attribute_not_exists(pk) OR (sent = :false AND (claimed_by = :me OR claimed_at < :stale))",
            )
            .expression_attribute_values(":me", s(claimant))
            .expression_attribute_values(":now", n(now.timestamp()))
            .expression_attribute_values(":stale", n((now - DIGEST_CLAIM_LEASE).timestamp()))
            .expression_attribute_values(":false", AttributeValue::Bool(false))
            .expression_attribute_values(":expires", n(expires.timestamp()))
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

    async fn digest_sent(&self, day: NaiveDate, claimant: &str) -> Result<(), AwsError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(digest_key(day)))
            .key("sk", s("digest"))
            .update_expression("SET sent = :true")
            .condition_expression("claimed_by = :me")
            .expression_attribute_values(":me", s(claimant))
            .expression_attribute_values(":true", AttributeValue::Bool(true))
            .send()
            .await;
        match result {
            // Taken over meanwhile: the new claimant marks it.
            Err(e) if is_condition_failure(e.as_service_error().and_then(|e| e.code())) => Ok(()),
            Err(e) => Err(dynamodb_error(&e, OP_UPDATE_ITEM, self.context())),
            Ok(_) => Ok(()),
        }
    }

    async fn day_runs(&self, day: NaiveDate) -> Result<Vec<DayRun>, AwsError> {
        let items = query_partition(
            &self.client,
            &self.table,
            day_key(day),
            QueryOrder::Consistent,
        )
        .await
        .map_err(|e| dynamodb_error(&e, OP_QUERY, self.context()))?;
        let runs = items
            .iter()
            .filter_map(|item| {
                let run = day_run_of(item);
                if run.is_none() {
                    tracing::warn!(day = %day, "an unreadable day entry was skipped");
                }
                run
            })
            .collect();
        Ok(runs)
    }
}

/// A day entry as [`SdkSweepLedger::day_runs`] reads it; None when it has no run id or
/// start time. Totals that cannot be read leave the run unfinished, as it then looks.
fn day_run_of(item: &HashMap<String, AttributeValue>) -> Option<DayRun> {
    let run_id = item
        .get("sk")?
        .as_s()
        .ok()?
        .strip_prefix("run#")?
        .to_owned();
    let started_at = item
        .get("started_at")
        .and_then(|v| v.as_s().ok())
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())?
        .to_utc();
    Some(DayRun {
        run_id,
        started_at,
        dry_run: item
            .get("dry_run")
            .and_then(|v| v.as_bool().ok())
            .copied()
            .unwrap_or(false),
        accounts: number(item, "total").unwrap_or(0),
        totals: item
            .get("totals")
            .and_then(|v| v.as_s().ok())
            .and_then(|json| serde_json::from_str(json).ok()),
    })
}
