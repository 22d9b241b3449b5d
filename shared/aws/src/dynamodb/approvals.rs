//! The approvals in the ledger table ([`cutoff_domain::approval`]): [`Approvals`], its
//! SDK implementation [`SdkApprovals`], `Option<SdkApprovals>` (None: the deployment
//! keeps no ledger, so nothing can be asked) and the in-memory [`fake::FakeApprovals`]
//! (feature `test-support`).
//!
//! Items, in one partition that `cutoff pending` and the sweeper read whole (an
//! approval is kept [`APPROVAL_RETENTION_DAYS`] past its expiry, so the partition holds
//! the open ones and the recently closed ones only):
//! - `pk = approval`, `sk = <approval id>`: `state` (`pending`, `approved`, `refused`,
//!   `expired`), `request` (the queued request as JSON: what an approval runs),
//!   `owner` (the principal's owner as JSON, read when it was asked), `created_at`
//!   (RFC 3339), `deadline` (epoch seconds: from then on it cannot be
//!   decided), `decided_by`, `decided_at`, `reason`, `notified` (its message went
//!   out), `run_finished` (an approved one: the revocation it allowed reported back;
//!   absent on items of earlier versions, read as finished), `claimed_by` and
//!   `claimed_at` (the sweep run that expired it), and
//!   `expires_at`, the table's TTL attribute: the deadline plus the retention. The
//!   deadline is not `expires_at`: DynamoDB's TTL may delete an item any time after
//!   that instant, before the sweeper could announce its expiry.
//!
//! Every change of state is one conditional write, so that two revokers, two operators
//! or two sweep runs cannot both win: asking (`attribute_not_exists`, or over an
//! expiry already announced), deciding (pending and before the deadline), finishing
//! an approved run or opening it again (that approval, its run not finished), expiring
//! (pending and past the deadline, or expired, unannounced and claimed longer than
//! [`EXPIRY_CLAIM_LEASE`] ago).

use std::collections::HashMap;
use std::future::Future;

use aws_sdk_dynamodb::types::AttributeValue;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use chrono::{DateTime, Utc};

use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;

use super::sdk::{QueryOrder, dynamodb_error, is_condition_failure, n, query_partition, s};
use crate::error::{AwsError, ErrorKind};
use cutoff_domain::approval::{Approval, ApprovalId, ApprovalState};
use cutoff_domain::outcome::RevocationRequest;
use cutoff_domain::principal::clean_text;

const OP_PUT_ITEM: &str = "dynamodb:PutItem";
const OP_GET_ITEM: &str = "dynamodb:GetItem";
const OP_UPDATE_ITEM: &str = "dynamodb:UpdateItem";
const OP_QUERY: &str = "dynamodb:Query";

/// The partition key of every approval.
pub const APPROVAL_PARTITION: &str = "approval";

/// How long an approval is kept after its deadline (DynamoDB TTL): long enough to
/// answer a late `cutoff approve` with who decided it, and to keep later updates of the
/// same finding from asking again; the audit trail keeps its outcomes for longer.
pub const APPROVAL_RETENTION_DAYS: i64 = 7;

/// How long a sweep run's claim on announcing an expiry holds: past it, a later run
/// announces an expiry whose message never went out. The sweeper's timeout (15 min).
pub const EXPIRY_CLAIM_LEASE: chrono::Duration = chrono::Duration::minutes(15);

/// What asking did.
#[derive(Debug, Clone, PartialEq)]
pub enum Asked {
    /// A new pending approval (or one over an expiry already announced).
    Created,
    /// The approval of that id, as it is: a redelivered message, or a later update of
    /// the same finding.
    Exists(Box<Approval>),
}

/// The approvals' partition, read.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Listed {
    pub approvals: Vec<Approval>,
    /// Items that cannot be read as an approval (damaged, forged, or written by a
    /// later version): their sort key and why. Reported, never dropped in silence: one
    /// may be a question nobody can answer any more.
    pub unreadable: Vec<String>,
}

/// The approvals: `dynamodb:PutItem`, `GetItem`, `UpdateItem` and `Query` on the
/// ledger table.
pub trait Approvals: Send + Sync {
    /// Whether approvals can be kept at all (a ledger is configured).
    fn enabled(&self) -> bool {
        true
    }

    /// Records `approval` (pending) unless one of its id is there already, open or
    /// closed; an expired one whose expiry was announced is asked again.
    fn ask(&self, approval: &Approval) -> impl Future<Output = Result<Asked, AwsError>> + Send;

    /// The approval `id`, if the ledger holds it (strongly consistent).
    fn get(
        &self,
        id: &ApprovalId,
    ) -> impl Future<Output = Result<Option<Approval>, AwsError>> + Send;

    /// Every approval the ledger holds, open and recently closed, and the items of
    /// its partition that cannot be read as one.
    fn list(&self) -> impl Future<Output = Result<Listed, AwsError>> + Send;

    /// Records that the approval's current message went out.
    fn mark_notified(&self, id: &ApprovalId) -> impl Future<Output = Result<(), AwsError>> + Send;

    /// Moves a pending approval whose deadline is after `at` to `to` (approved or
    /// refused), by `by`, with `reason`: true when it did, false when the approval was
    /// not open then (decided, expired, or not there).
    fn decide(
        &self,
        id: &ApprovalId,
        to: ApprovalState,
        by: &str,
        at: DateTime<Utc>,
        reason: Option<&str>,
    ) -> impl Future<Output = Result<bool, AwsError>> + Send;

    /// Puts the approval `by` approved at `at` back to pending, because the revocation
    /// it allowed failed or never reported back: it can be approved again until its
    /// deadline. `announced` says whether that is already told (the failed run's
    /// outcome says it) or still to be (the sweeper's). False when its state is no
    /// longer that approval with its run unfinished (nothing changed).
    fn reopen(
        &self,
        id: &ApprovalId,
        by: &str,
        at: DateTime<Utc>,
        announced: bool,
    ) -> impl Future<Output = Result<bool, AwsError>> + Send;

    /// Records that the revocation of the approval `by` approved at `at` reported back
    /// (its outcome is known; the operator's answer and the bus carry it next): the
    /// sweeper leaves it alone. False when its state is
    /// no longer that approval.
    fn finish_run(
        &self,
        id: &ApprovalId,
        by: &str,
        at: DateTime<Utc>,
    ) -> impl Future<Output = Result<bool, AwsError>> + Send;

    /// Claims the announcement of an expiry for `claimant` (a sweep run) at `now`:
    /// true for a pending approval past its deadline (it becomes expired, its expiry
    /// not yet announced), and for an expired one never announced whose claim is older
    /// than [`EXPIRY_CLAIM_LEASE`]; false otherwise (another run claimed it, or it is
    /// not due).
    fn claim_expiry(
        &self,
        id: &ApprovalId,
        claimant: &str,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<bool, AwsError>> + Send;
}

/// The approvals in the ledger table, through the SDK.
#[derive(Debug, Clone)]
pub struct SdkApprovals {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl SdkApprovals {
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    /// A client of `config` for the ledger table `table`.
    pub fn from_config(config: &aws_config::SdkConfig, table: impl Into<String>) -> Self {
        Self::new(aws_sdk_dynamodb::Client::new(config), table)
    }

    /// The table when one is configured; None (no approvals) otherwise.
    pub fn configured(config: &aws_config::SdkConfig, table: Option<&str>) -> Option<Self> {
        table.map(|t| Self::from_config(config, t))
    }

    fn context(&self, id: Option<&ApprovalId>) -> String {
        match id {
            Some(id) => format!("approval {id} on table `{}`", self.table),
            None => format!("approvals on table `{}`", self.table),
        }
    }

    /// The SDK's error, its DynamoDB codes placed as the ledger places them.
    fn error<E>(
        &self,
        err: &aws_smithy_runtime_api::client::result::SdkError<
            E,
            aws_smithy_runtime_api::client::orchestrator::HttpResponse,
        >,
        op: &'static str,
        id: Option<&ApprovalId>,
    ) -> AwsError
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        dynamodb_error(err, op, self.context(id))
    }

    /// An update of approval `id` that moves its `state` (`#state`: a reserved word).
    fn change_state(&self, id: &ApprovalId) -> UpdateItemFluentBuilder {
        self.client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(APPROVAL_PARTITION))
            .key("sk", s(id.as_str()))
            .expression_attribute_names("#state", "state")
    }

    /// Sends a conditional `update` of approval `id`: true when it applied, false when
    /// its condition did not hold.
    async fn applied(
        &self,
        id: &ApprovalId,
        update: UpdateItemFluentBuilder,
    ) -> Result<bool, AwsError> {
        match update.send().await {
            Ok(_) => Ok(true),
            Err(e) if condition_failed(&e) => Ok(false),
            Err(e) => Err(self.error(&e, OP_UPDATE_ITEM, Some(id))),
        }
    }
}

/// The condition that names the approval `by` made at `at` (`:approved`, `:by`, `:at`).
const APPROVAL_BY: &str = "#state = :approved AND decided_by = :by AND decided_at = :at";

/// `update` with the values of [`APPROVAL_BY`].
fn approval_by(
    update: UpdateItemFluentBuilder,
    by: &str,
    at: DateTime<Utc>,
) -> UpdateItemFluentBuilder {
    update
        .expression_attribute_values(":approved", s(ApprovalState::Approved.as_str()))
        .expression_attribute_values(":by", s(by))
        .expression_attribute_values(":at", s(at.to_rfc3339()))
}

fn condition_failed<E: ProvideErrorMetadata>(
    err: &aws_smithy_runtime_api::client::result::SdkError<
        E,
        aws_smithy_runtime_api::client::orchestrator::HttpResponse,
    >,
) -> bool {
    is_condition_failure(err.as_service_error().and_then(ProvideErrorMetadata::code))
}

/// The item of `approval`, whole.
fn item_of(approval: &Approval) -> Result<HashMap<String, AttributeValue>, String> {
    let request = serde_json::to_string(&approval.request).map_err(|e| e.to_string())?;
    let owner = serde_json::to_string(&approval.owner).map_err(|e| e.to_string())?;
    let retention = approval.expires_at + chrono::Duration::days(APPROVAL_RETENTION_DAYS);
    let mut item = HashMap::from([
        ("pk".to_owned(), s(APPROVAL_PARTITION)),
        ("sk".to_owned(), s(approval.id.as_str())),
        ("state".to_owned(), s(approval.state.as_str())),
        ("request".to_owned(), s(request)),
        ("owner".to_owned(), s(owner)),
        ("created_at".to_owned(), s(approval.created_at.to_rfc3339())),
        ("deadline".to_owned(), n(approval.expires_at.timestamp())),
        (
            "notified".to_owned(),
            AttributeValue::Bool(approval.notified),
        ),
        ("expires_at".to_owned(), n(retention.timestamp())),
    ]);
    for (key, value) in [
        ("decided_by", approval.decided_by.clone()),
        ("decided_at", approval.decided_at.map(|t| t.to_rfc3339())),
        ("reason", approval.reason.clone()),
    ] {
        if let Some(value) = value {
            item.insert(key.to_owned(), s(value));
        }
    }
    Ok(item)
}

/// The approval an item holds; why not, when it cannot be read.
fn approval_of(item: &HashMap<String, AttributeValue>) -> Result<Approval, String> {
    let text = |key: &str| item.get(key).and_then(|v| v.as_s().ok()).cloned();
    let time = |key: &str| -> Result<Option<DateTime<Utc>>, String> {
        text(key)
            .map(|t| {
                DateTime::parse_from_rfc3339(&t)
                    .map(|t| t.to_utc())
                    .map_err(|e| format!("{key}: {e}"))
            })
            .transpose()
    };
    let id = ApprovalId::parse(&text("sk").unwrap_or_default()).map_err(|e| e.to_string())?;
    let state = text("state")
        .as_deref()
        .and_then(ApprovalState::parse)
        .ok_or("no state it knows")?;
    let request: RevocationRequest = serde_json::from_str(&text("request").unwrap_or_default())
        .map_err(|e| format!("request: {e}"))?;
    let deadline = item
        .get("deadline")
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse::<i64>().ok())
        .and_then(|t| DateTime::from_timestamp(t, 0))
        .ok_or("no deadline")?;
    Ok(Approval {
        id,
        state,
        request,
        // An owner that cannot be read is no owner: the security topic hears anyway.
        owner: text("owner")
            .and_then(|o| serde_json::from_str(&o).ok())
            .unwrap_or_default(),
        created_at: time("created_at")?.ok_or("no created_at")?,
        expires_at: deadline,
        decided_by: text("decided_by"),
        decided_at: time("decided_at")?,
        reason: text("reason"),
        notified: item
            .get("notified")
            .and_then(|v| v.as_bool().ok())
            .copied()
            .unwrap_or(false),
        // Approved by an earlier version, which ran the revocation before answering:
        // finished, never reopened.
        run_finished: item
            .get("run_finished")
            .and_then(|v| v.as_bool().ok())
            .copied()
            .unwrap_or(true),
    })
}

impl Approvals for SdkApprovals {
    async fn ask(&self, approval: &Approval) -> Result<Asked, AwsError> {
        let id = Some(&approval.id);
        let item = item_of(approval)
            .map_err(|e| AwsError::new(ErrorKind::Malformed, OP_PUT_ITEM, self.context(id), e))?;
        // Twice at most: an item that refused the put and is gone when read (TTL) is
        // put again.
        for _ in 0..2 {
            let result = self
                .client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(item.clone()))
                .condition_expression(
                    "attribute_not_exists(pk) OR (#state = :expired AND notified = :true)",
                )
                .expression_attribute_names("#state", "state")
                .expression_attribute_values(":expired", s(ApprovalState::Expired.as_str()))
                .expression_attribute_values(":true", AttributeValue::Bool(true))
                .send()
                .await;
            match result {
                Ok(_) => return Ok(Asked::Created),
                Err(e) if condition_failed(&e) => {
                    if let Some(existing) = self.get(&approval.id).await? {
                        return Ok(Asked::Exists(Box::new(existing)));
                    }
                }
                Err(e) => return Err(self.error(&e, OP_PUT_ITEM, id)),
            }
        }
        Err(AwsError::new(
            ErrorKind::Transient,
            OP_PUT_ITEM,
            self.context(id),
            "the approval refused the write and was gone when read, twice",
        ))
    }

    async fn get(&self, id: &ApprovalId) -> Result<Option<Approval>, AwsError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(APPROVAL_PARTITION))
            .key("sk", s(id.as_str()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| self.error(&e, OP_GET_ITEM, Some(id)))?;
        out.item().map(approval_of).transpose().map_err(|why| {
            AwsError::new(
                ErrorKind::Malformed,
                OP_GET_ITEM,
                self.context(Some(id)),
                why,
            )
        })
    }

    async fn list(&self) -> Result<Listed, AwsError> {
        let items = query_partition(
            &self.client,
            &self.table,
            APPROVAL_PARTITION.to_owned(),
            QueryOrder::Consistent,
        )
        .await
        .map_err(|e| self.error(&e, OP_QUERY, None))?;
        let mut listed = Listed::default();
        for item in &items {
            match approval_of(item) {
                Ok(approval) => listed.approvals.push(approval),
                Err(why) => {
                    let key = item.get("sk").and_then(|v| v.as_s().ok());
                    let key = key.map_or("(no sort key)", String::as_str);
                    tracing::warn!(sk = key, error = %why, "an approval item that cannot be read");
                    listed
                        .unreadable
                        .push(format!("{}: {why}", clean_text(key, 100)));
                }
            }
        }
        Ok(listed)
    }

    async fn mark_notified(&self, id: &ApprovalId) -> Result<(), AwsError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(APPROVAL_PARTITION))
            .key("sk", s(id.as_str()))
            .update_expression("SET notified = :true")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":true", AttributeValue::Bool(true))
            .send()
            .await;
        match result {
            // Gone (TTL): nothing left to mark.
            Err(e) if condition_failed(&e) => Ok(()),
            Err(e) => Err(self.error(&e, OP_UPDATE_ITEM, Some(id))),
            Ok(_) => Ok(()),
        }
    }

    async fn decide(
        &self,
        id: &ApprovalId,
        to: ApprovalState,
        by: &str,
        at: DateTime<Utc>,
        reason: Option<&str>,
    ) -> Result<bool, AwsError> {
        let mut update = self
            .change_state(id)
            .condition_expression("#state = :pending AND deadline > :now")
            .expression_attribute_values(":pending", s(ApprovalState::Pending.as_str()))
            .expression_attribute_values(":now", n(at.timestamp()))
            .expression_attribute_values(":to", s(to.as_str()))
            .expression_attribute_values(":by", s(by))
            .expression_attribute_values(":at", s(at.to_rfc3339()))
            // An approval's run has not reported back yet (a refusal runs nothing).
            .expression_attribute_values(
                ":finished",
                AttributeValue::Bool(to != ApprovalState::Approved),
            );
        update = match reason {
            Some(reason) => update
                .update_expression(
                    "SET #state = :to, decided_by = :by, decided_at = :at, run_finished = :finished, reason = :reason",
                )
                .expression_attribute_values(":reason", s(reason)),
            None => update.update_expression(
                "SET #state = :to, decided_by = :by, decided_at = :at, run_finished = :finished REMOVE reason",
            ),
        };
        self.applied(id, update).await
    }

    async fn reopen(
        &self,
        id: &ApprovalId,
        by: &str,
        at: DateTime<Utc>,
        announced: bool,
    ) -> Result<bool, AwsError> {
        let update = self
            .change_state(id)
            .condition_expression(format!("{APPROVAL_BY} AND run_finished = :false"))
            .update_expression(
                "SET #state = :pending, notified = :announced REMOVE decided_by, decided_at, reason, run_finished",
            )
            .expression_attribute_values(":pending", s(ApprovalState::Pending.as_str()))
            .expression_attribute_values(":false", AttributeValue::Bool(false))
            .expression_attribute_values(":announced", AttributeValue::Bool(announced));
        self.applied(id, approval_by(update, by, at)).await
    }

    async fn finish_run(
        &self,
        id: &ApprovalId,
        by: &str,
        at: DateTime<Utc>,
    ) -> Result<bool, AwsError> {
        let update = self
            .change_state(id)
            .condition_expression(APPROVAL_BY)
            .update_expression("SET run_finished = :true")
            .expression_attribute_values(":true", AttributeValue::Bool(true));
        self.applied(id, approval_by(update, by, at)).await
    }

    async fn claim_expiry(
        &self,
        id: &ApprovalId,
        claimant: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, AwsError> {
        let update = self
            .change_state(id)
            // Its expiry is not announced yet: `notified` said the question was.
            .update_expression(
                "SET #state = :expired, claimed_by = :me, claimed_at = :now, notified = :false",
            )
            .condition_expression(
                "(#state = :pending AND deadline <= :now) OR \
                 (#state = :expired AND notified = :false AND claimed_at < :stale)",
            )
            .expression_attribute_values(":pending", s(ApprovalState::Pending.as_str()))
            .expression_attribute_values(":expired", s(ApprovalState::Expired.as_str()))
            .expression_attribute_values(":false", AttributeValue::Bool(false))
            .expression_attribute_values(":me", s(claimant))
            .expression_attribute_values(":now", n(now.timestamp()))
            .expression_attribute_values(":stale", n((now - EXPIRY_CLAIM_LEASE).timestamp()));
        self.applied(id, update).await
    }
}

/// What an absent ledger answers to a write: nothing can be kept.
fn no_ledger(op: &'static str) -> AwsError {
    AwsError::new(
        ErrorKind::NotFound,
        op,
        "approvals",
        "this deployment keeps no ledger (CUTOFF_LEDGER_TABLE): no approval can be kept",
    )
}

/// The approvals of a deployment that may have no ledger: None keeps none.
impl<T: Approvals> Approvals for Option<T> {
    fn enabled(&self) -> bool {
        self.as_ref().is_some_and(Approvals::enabled)
    }

    async fn ask(&self, approval: &Approval) -> Result<Asked, AwsError> {
        match self {
            Some(a) => a.ask(approval).await,
            None => Err(no_ledger("dynamodb:PutItem")),
        }
    }

    async fn get(&self, id: &ApprovalId) -> Result<Option<Approval>, AwsError> {
        match self {
            Some(a) => a.get(id).await,
            None => Ok(None),
        }
    }

    async fn list(&self) -> Result<Listed, AwsError> {
        match self {
            Some(a) => a.list().await,
            None => Ok(Listed::default()),
        }
    }

    async fn mark_notified(&self, id: &ApprovalId) -> Result<(), AwsError> {
        match self {
            Some(a) => a.mark_notified(id).await,
            None => Ok(()),
        }
    }

    async fn decide(
        &self,
        id: &ApprovalId,
        to: ApprovalState,
        by: &str,
        at: DateTime<Utc>,
        reason: Option<&str>,
    ) -> Result<bool, AwsError> {
        match self {
            Some(a) => a.decide(id, to, by, at, reason).await,
            None => Ok(false),
        }
    }

    async fn reopen(
        &self,
        id: &ApprovalId,
        by: &str,
        at: DateTime<Utc>,
        announced: bool,
    ) -> Result<bool, AwsError> {
        match self {
            Some(a) => a.reopen(id, by, at, announced).await,
            None => Ok(false),
        }
    }

    async fn finish_run(
        &self,
        id: &ApprovalId,
        by: &str,
        at: DateTime<Utc>,
    ) -> Result<bool, AwsError> {
        match self {
            Some(a) => a.finish_run(id, by, at).await,
            None => Ok(false),
        }
    }

    async fn claim_expiry(
        &self,
        id: &ApprovalId,
        claimant: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, AwsError> {
        match self {
            Some(a) => a.claim_expiry(id, claimant, now).await,
            None => Ok(false),
        }
    }
}

/// No approvals (the workflows' tests that do not ask, and a deployment without a
/// ledger).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoApprovals;

impl Approvals for NoApprovals {
    fn enabled(&self) -> bool {
        false
    }

    async fn ask(&self, _: &Approval) -> Result<Asked, AwsError> {
        Err(no_ledger("dynamodb:PutItem"))
    }

    async fn get(&self, _: &ApprovalId) -> Result<Option<Approval>, AwsError> {
        Ok(None)
    }

    async fn list(&self) -> Result<Listed, AwsError> {
        Ok(Listed::default())
    }

    async fn mark_notified(&self, _: &ApprovalId) -> Result<(), AwsError> {
        Ok(())
    }

    async fn decide(
        &self,
        _: &ApprovalId,
        _: ApprovalState,
        _: &str,
        _: DateTime<Utc>,
        _: Option<&str>,
    ) -> Result<bool, AwsError> {
        Ok(false)
    }

    async fn reopen(
        &self,
        _: &ApprovalId,
        _: &str,
        _: DateTime<Utc>,
        _: bool,
    ) -> Result<bool, AwsError> {
        Ok(false)
    }

    async fn finish_run(
        &self,
        _: &ApprovalId,
        _: &str,
        _: DateTime<Utc>,
    ) -> Result<bool, AwsError> {
        Ok(false)
    }

    async fn claim_expiry(
        &self,
        _: &ApprovalId,
        _: &str,
        _: DateTime<Utc>,
    ) -> Result<bool, AwsError> {
        Ok(false)
    }
}

impl<T: Approvals + ?Sized> Approvals for &T {
    fn enabled(&self) -> bool {
        (**self).enabled()
    }

    fn ask(&self, approval: &Approval) -> impl Future<Output = Result<Asked, AwsError>> + Send {
        (**self).ask(approval)
    }

    fn get(
        &self,
        id: &ApprovalId,
    ) -> impl Future<Output = Result<Option<Approval>, AwsError>> + Send {
        (**self).get(id)
    }

    fn list(&self) -> impl Future<Output = Result<Listed, AwsError>> + Send {
        (**self).list()
    }

    fn mark_notified(&self, id: &ApprovalId) -> impl Future<Output = Result<(), AwsError>> + Send {
        (**self).mark_notified(id)
    }

    fn decide(
        &self,
        id: &ApprovalId,
        to: ApprovalState,
        by: &str,
        at: DateTime<Utc>,
        reason: Option<&str>,
    ) -> impl Future<Output = Result<bool, AwsError>> + Send {
        (**self).decide(id, to, by, at, reason)
    }

    fn reopen(
        &self,
        id: &ApprovalId,
        by: &str,
        at: DateTime<Utc>,
        announced: bool,
    ) -> impl Future<Output = Result<bool, AwsError>> + Send {
        (**self).reopen(id, by, at, announced)
    }

    fn finish_run(
        &self,
        id: &ApprovalId,
        by: &str,
        at: DateTime<Utc>,
    ) -> impl Future<Output = Result<bool, AwsError>> + Send {
        (**self).finish_run(id, by, at)
    }

    fn claim_expiry(
        &self,
        id: &ApprovalId,
        claimant: &str,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<bool, AwsError>> + Send {
        (**self).claim_expiry(id, claimant, now)
    }
}

/// The in-memory approvals, with the same conditions as the table's.
#[cfg(any(test, feature = "test-support"))]
pub mod fake {
    use std::collections::BTreeMap;
    use std::sync::{Arc, Mutex, MutexGuard};

    use super::*;
    use crate::error::InjectedFailures;

    /// Approvals in memory; fails on demand (`fail("ask", …)`).
    #[derive(Debug, Clone, Default)]
    pub struct FakeApprovals(pub Arc<Mutex<FakeApprovalsState>>);

    #[derive(Debug, Default)]
    pub struct FakeApprovalsState {
        pub approvals: BTreeMap<ApprovalId, Approval>,
        /// The sweep run that claimed an expiry, and when.
        pub claims: BTreeMap<ApprovalId, (String, DateTime<Utc>)>,
        /// What `list` reports as unreadable items (a test's damaged item).
        pub unreadable: Vec<String>,
        /// Every conditional write that changed something, in order: (method, id).
        pub writes: Vec<(&'static str, ApprovalId)>,
        pub failures: InjectedFailures,
    }

    impl FakeApprovals {
        pub fn state(&self) -> MutexGuard<'_, FakeApprovalsState> {
            self.0.lock().unwrap_or_else(|p| p.into_inner())
        }

        pub fn fail(&self, action: &'static str, kinds: &[ErrorKind]) {
            self.state().failures.plan(action, kinds);
        }

        /// The approval `id`, as held.
        pub fn approval(&self, id: &ApprovalId) -> Option<Approval> {
            self.state().approvals.get(id).cloned()
        }

        /// Puts `approval` as it is (a test's seed, or a forged item).
        pub fn insert(&self, approval: Approval) {
            self.state().approvals.insert(approval.id.clone(), approval);
        }

        fn begin(
            &self,
            action: &'static str,
        ) -> Result<MutexGuard<'_, FakeApprovalsState>, AwsError> {
            let mut state = self.state();
            state.failures.take(action, "in the fake approvals")?;
            Ok(state)
        }
    }

    /// Whether `a` is the approval `by` made at `at`. The table compares the decision's
    /// time as it stored it (RFC 3339, whole seconds and below as given).
    fn is_approval_by(a: &Approval, by: &str, at: DateTime<Utc>) -> bool {
        a.state == ApprovalState::Approved
            && a.decided_by.as_deref() == Some(by)
            && a.decided_at.map(|t| t.to_rfc3339()) == Some(at.to_rfc3339())
    }

    impl Approvals for FakeApprovals {
        async fn ask(&self, approval: &Approval) -> Result<Asked, AwsError> {
            let mut state = self.begin("ask")?;
            match state.approvals.get(&approval.id) {
                Some(existing)
                    if !(existing.state == ApprovalState::Expired && existing.notified) =>
                {
                    Ok(Asked::Exists(Box::new(existing.clone())))
                }
                _ => {
                    state
                        .approvals
                        .insert(approval.id.clone(), approval.clone());
                    state.claims.remove(&approval.id);
                    state.writes.push(("ask", approval.id.clone()));
                    Ok(Asked::Created)
                }
            }
        }

        async fn get(&self, id: &ApprovalId) -> Result<Option<Approval>, AwsError> {
            let state = self.begin("get")?;
            Ok(state.approvals.get(id).cloned())
        }

        async fn list(&self) -> Result<Listed, AwsError> {
            let state = self.begin("list")?;
            Ok(Listed {
                approvals: state.approvals.values().cloned().collect(),
                unreadable: state.unreadable.clone(),
            })
        }

        async fn mark_notified(&self, id: &ApprovalId) -> Result<(), AwsError> {
            let mut state = self.begin("mark_notified")?;
            if let Some(a) = state.approvals.get_mut(id) {
                a.notified = true;
                state.writes.push(("mark_notified", id.clone()));
            }
            Ok(())
        }

        async fn decide(
            &self,
            id: &ApprovalId,
            to: ApprovalState,
            by: &str,
            at: DateTime<Utc>,
            reason: Option<&str>,
        ) -> Result<bool, AwsError> {
            let mut state = self.begin("decide")?;
            // The table compares whole seconds.
            let Some(a) = state.approvals.get_mut(id).filter(|a| {
                a.state == ApprovalState::Pending && a.expires_at.timestamp() > at.timestamp()
            }) else {
                return Ok(false);
            };
            a.state = to;
            a.decided_by = Some(by.to_owned());
            a.decided_at = Some(at);
            a.reason = reason.map(str::to_owned);
            a.run_finished = to != ApprovalState::Approved;
            state.writes.push(("decide", id.clone()));
            Ok(true)
        }

        async fn reopen(
            &self,
            id: &ApprovalId,
            by: &str,
            at: DateTime<Utc>,
            announced: bool,
        ) -> Result<bool, AwsError> {
            let mut state = self.begin("reopen")?;
            let Some(a) = state
                .approvals
                .get_mut(id)
                .filter(|a| is_approval_by(a, by, at) && !a.run_finished)
            else {
                return Ok(false);
            };
            a.state = ApprovalState::Pending;
            a.decided_by = None;
            a.decided_at = None;
            a.reason = None;
            a.notified = announced;
            // As the table reads an item without the attribute.
            a.run_finished = true;
            state.writes.push(("reopen", id.clone()));
            Ok(true)
        }

        async fn finish_run(
            &self,
            id: &ApprovalId,
            by: &str,
            at: DateTime<Utc>,
        ) -> Result<bool, AwsError> {
            let mut state = self.begin("finish_run")?;
            let Some(a) = state
                .approvals
                .get_mut(id)
                .filter(|a| is_approval_by(a, by, at))
            else {
                return Ok(false);
            };
            a.run_finished = true;
            state.writes.push(("finish_run", id.clone()));
            Ok(true)
        }

        async fn claim_expiry(
            &self,
            id: &ApprovalId,
            claimant: &str,
            now: DateTime<Utc>,
        ) -> Result<bool, AwsError> {
            let mut state = self.begin("claim_expiry")?;
            let stale = (now - EXPIRY_CLAIM_LEASE).timestamp();
            let claimed_at = state.claims.get(id).map(|(_, at)| at.timestamp());
            let Some(a) = state.approvals.get_mut(id) else {
                return Ok(false);
            };
            let due =
                a.state == ApprovalState::Pending && a.expires_at.timestamp() <= now.timestamp();
            let stale_claim = a.state == ApprovalState::Expired
                && !a.notified
                && claimed_at.is_some_and(|at| at < stale);
            if !(due || stale_claim) {
                return Ok(false);
            }
            a.state = ApprovalState::Expired;
            a.notified = false;
            state.claims.insert(id.clone(), (claimant.to_owned(), now));
            state.writes.push(("claim_expiry", id.clone()));
            Ok(true)
        }
    }
}
