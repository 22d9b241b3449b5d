//! Status: the deny state of a principal, resolved as a release resolves it (no
//! protection check: reading locks no one out) and read as a revocation reads it,
//! writing nothing.

use std::sync::Arc;

use cutoff_aws::dynamodb::Ledger;
use cutoff_aws::retry::CallCounter;
use cutoff_aws::{AccountAccess, PrincipalType};
use cutoff_domain::clock::Clock;
use cutoff_domain::outcome::{FailureKind, OutcomeError, Owner, RevocationRequest};
use cutoff_domain::policy::{Cutoff, ROLE_WIDE_POLICY_NAME, SESSION_POLICY_NAME};

use super::act::Run;
use super::resolve::Purpose;
use super::{DenyState, Record, Revoker, SessionDenyState, StatusReport, Stop};

impl<A: AccountAccess, K: Clock, L: Ledger> Revoker<A, K, L> {
    /// The deny state of a principal: cutoffs, where they live, their age, and
    /// whether they still matter.
    pub async fn status(&self, request: &RevocationRequest, request_id: &str) -> StatusReport {
        let calls: Arc<CallCounter> = Arc::default();
        let mut report = StatusReport {
            target: request.target.clone(),
            owner: Owner::default(),
            role_wide: None,
            sessions: Vec::new(),
            api_calls: 0,
            error: None,
        };
        let mut record = Record::default();
        let result = self
            .read_status(request, request_id, &calls, &mut record, &mut report)
            .await;
        report.owner = record.owner;
        report.api_calls = calls.get();
        if let Err(stop) = result {
            report.error = Some(OutcomeError {
                // A read refuses nothing for protection: a stop that is not a
                // failure is a kind of principal IAM cannot restrict.
                kind: stop.kind.unwrap_or(FailureKind::Unmodifiable),
                message: stop.message,
            });
        }
        report
    }

    async fn read_status(
        &self,
        request: &RevocationRequest,
        request_id: &str,
        calls: &Arc<CallCounter>,
        record: &mut Record,
        report: &mut StatusReport,
    ) -> Result<(), Stop> {
        // Reading is reaching into an account too: only the configured ones.
        self.refuse_account(request)?;
        let located = self
            .locate(request, request_id, calls, Purpose::LiftOrRead, record)
            .await?;
        let resolved = self
            .inspect(request, located, Purpose::LiftOrRead, record)
            .await?;
        let principal = &resolved.principal;
        let now = self.clock.now();
        let max_session = principal.kind.max_session();
        let state = |cutoff: Cutoff, policy: String| {
            let age = now - cutoff.as_datetime();
            DenyState {
                cutoff,
                policy,
                age_seconds: age.num_seconds(),
                still_effective: age < max_session,
            }
        };
        let run = Run::new(&resolved.client, &self.config, &self.clock, true);
        let (_, inline) = run.read_policy(principal, ROLE_WIDE_POLICY_NAME).await?;
        let mut role_wide = inline
            .and_then(|d| d.role_wide_cutoff())
            .map(|c| state(c, ROLE_WIDE_POLICY_NAME.to_owned()));
        for fallback in run.read_fallbacks(principal).await? {
            if let Some(c) = fallback.document.role_wide_cutoff()
                && role_wide.as_ref().is_none_or(|r| c > r.cutoff)
            {
                role_wide = Some(state(c, fallback.arn));
            }
        }
        report.role_wide = role_wide;
        if principal.kind == PrincipalType::Role {
            let (_, sessions) = run.read_policy(principal, SESSION_POLICY_NAME).await?;
            report.sessions = sessions
                .map(|d| d.session_cutoffs())
                .unwrap_or_default()
                .into_iter()
                .map(|(sp, c)| SessionDenyState {
                    userid: sp.to_string(),
                    deny: state(c, SESSION_POLICY_NAME.to_owned()),
                })
                .collect();
        }
        Ok(())
    }
}
