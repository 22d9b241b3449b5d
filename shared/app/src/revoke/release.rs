//! Release: lift a deny an operator no longer wants, by the same writer and read-back
//! as the revocation. A cutoff still in effect (sessions issued before it may still be
//! alive) is kept unless the operator forces it.

use cutoff_aws::dynamodb::Ledger;
use cutoff_aws::{AccountAccess, IamApi};
use cutoff_domain::clock::Clock;
use cutoff_domain::event::Scope;
use cutoff_domain::outcome::{FailureKind, RevocationRequest, Status};
use cutoff_domain::policy::{self, ROLE_WIDE_POLICY_NAME, SESSION_POLICY_NAME, SessionPrincipal};
use cutoff_domain::sweep_rules::humanize;

use super::act::{Fallback, Run};
use super::resolve::Resolved;
use super::{Done, Record, Revoker, Stop};

impl<A: AccountAccess, K: Clock, L: Ledger> Revoker<A, K, L> {
    /// Removes the cutoff the request names (role-wide: inline and the managed
    /// fallbacks; session: that session's statement), and reads the removal back.
    pub(super) async fn release<C: IamApi>(
        &self,
        request: &RevocationRequest,
        resolved: Resolved<C>,
        record: &mut Record,
    ) -> Result<Done, Stop> {
        let target = &request.target;
        let Resolved {
            client,
            principal,
            info,
            ..
        } = resolved;
        let now = self.clock.now();
        let max_session = principal.kind.max_session();
        let mut run = Run::new(&client, &self.config, &self.clock, request.dry_run);
        let (policy_name, session) = match (request.scope, &target.session) {
            (Scope::Session, Some(s)) => (
                SESSION_POLICY_NAME,
                Some(SessionPrincipal {
                    role_id: info.unique_id.clone(),
                    session: s.clone(),
                }),
            ),
            (Scope::Session, None) => {
                return Err(Stop::failed(
                    FailureKind::InvalidRequest,
                    "scope session needs a session name",
                ));
            }
            (Scope::Role, _) => (ROLE_WIDE_POLICY_NAME, None),
        };
        let (_, inline) = run.read_policy(&principal, policy_name).await?;
        let inline_cutoff = inline.as_ref().and_then(|d| match &session {
            Some(s) => d.session_cutoff(s),
            None => d.role_wide_cutoff(),
        });
        // The managed fallback only ever holds role-wide denies.
        let managed = if session.is_none() {
            run.read_fallbacks(&principal).await?
        } else {
            Vec::new()
        };
        let managed_cutoff = managed
            .iter()
            .filter_map(|f| f.document.role_wide_cutoff())
            .max();
        let Some(latest) = inline_cutoff.max(managed_cutoff) else {
            let detail = format!(
                "{principal} in {} has no cutoff deny; nothing to release",
                target.account
            );
            return Ok(Done::said(Status::Released, detail, request.scope));
        };
        record.previous = Some(latest);
        let age = now - latest.as_datetime();
        if age < max_session && !request.force {
            return Err(Stop::failed(
                FailureKind::Refused,
                format!(
                    "the cutoff {latest} on {principal} is {} old and sessions issued before it can live up to {} h; releasing now could let a stolen session back in (release with force, `cutoff release --force`, to do it anyway)",
                    humanize(age),
                    max_session.num_hours()
                ),
            ));
        }
        let removed = async {
            if let Some(doc) = &inline {
                let (remaining, changed) = match &session {
                    Some(s) => {
                        let removal = policy::remove_session(doc, s);
                        let changed = !removal.removed.is_empty();
                        (removal.remaining, changed)
                    }
                    None => {
                        let removal = policy::remove_role_wide(doc);
                        let changed = removal.changed();
                        (removal.remaining, changed)
                    }
                };
                if changed {
                    match remaining {
                        Some(rest) => {
                            run.writer
                                .put_inline(&principal, policy_name, &rest.to_json())
                                .await?
                        }
                        None => run.writer.delete_inline(&principal, policy_name).await?,
                    }
                    run.verify_inline(&principal, policy_name, |doc| match (&session, doc) {
                        (_, None) => true,
                        (Some(s), Some(d)) => d.session_cutoff(s).is_none(),
                        (None, Some(d)) => d.role_wide_cutoff().is_none(),
                    })
                    .await?;
                }
            }
            for Fallback {
                arn,
                name,
                document,
            } in &managed
            {
                let removal = policy::remove_role_wide(document);
                if removal.changed() {
                    match removal.remaining {
                        Some(rest) => {
                            run.writer
                                .put_managed(&self.config.fallback_path, name, &rest.to_json())
                                .await?
                        }
                        None => run.writer.detach_and_delete(&principal, arn).await?,
                    }
                }
            }
            Ok::<(), Stop>(())
        }
        .await;
        record.actions = run.writer.into_actions();
        removed?;
        let (status, verb) = if request.dry_run {
            (Status::DryRun, "would release")
        } else {
            (Status::Released, "released")
        };
        let detail = format!(
            "{verb} the cutoff {latest} ({} old) on {principal} in {}",
            humanize(age),
            target.account
        );
        Ok(Done {
            previous: Some(latest),
            policy: Some(policy_name.to_owned()),
            ..Done::said(status, detail, request.scope)
        })
    }
}
