//! `cutoff approve`, `cutoff refuse` and `cutoff pending`: the approvals that
//! medium-severity findings ask for (`CUTOFF_MEDIUM_FINDINGS=ask`).
//!
//! Approving and refusing go through the deployed stack's operator path only (the
//! revoker's function URL, signed with the operator's credentials): the revoker
//! records the caller AWS verified as the approver, and refuses the request from
//! anywhere else. There is no `--direct` approval: the CLI acting with its own
//! credentials is not the operator path, and an approval that ran here would bypass
//! the checks the revoker makes (who may decide, one decision per approval).

use std::io::Write;

use anyhow::Context;
use clap::Args;
use cutoff_aws::config::load_sdk_config_with;
use cutoff_aws::dynamodb::approvals::{Approvals, SdkApprovals};
use cutoff_domain::approval::{Approval, ApprovalId, parse_action, stamp};
use cutoff_domain::event::manual::OperatorText;
use cutoff_domain::principal::clean_text;
use serde_json::{Value, json};

use crate::Exit;
use crate::revoke::{
    AwsArgs, Route, RouteArgs, operator_outcome, print_json, report_through_operator_path,
};

/// Approve a revocation a medium-severity finding asked for: cutoff runs it exactly
/// as the finding asked, and records you (the caller AWS verifies) as the approver.
///
/// Through the deployed stack only. Refused when the approval was already decided, has
/// expired, or is about the principal you are signed in as. Exits 0 when the
/// revocation reached an outcome, 1 when it failed or was refused, 2 for invalid
/// arguments.
#[derive(Debug, Args)]
pub struct ApproveArgs {
    /// The approval id the message gave (16 hexadecimal digits).
    #[arg(value_name = "ID")]
    id: String,
    /// Why (an incident id): recorded with the approval.
    #[arg(long, value_name = "TEXT")]
    reason: Option<String>,
    /// Print the outcome JSON instead of the human summary.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    route: RouteArgs,
    #[command(flatten)]
    aws: AwsArgs,
}

/// Refuse a revocation a medium-severity finding asked for: nothing is revoked, and
/// the refusal is recorded and announced to the owner and the security team.
///
/// Through the deployed stack only, with the same refusals as `approve`.
#[derive(Debug, Args)]
pub struct RefuseArgs {
    /// The approval id the message gave (16 hexadecimal digits).
    #[arg(value_name = "ID")]
    id: String,
    /// Why not (a known scanner, the owner's own test): recorded and announced.
    #[arg(long, value_name = "TEXT")]
    reason: Option<String>,
    /// Print the outcome JSON instead of the human summary.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    route: RouteArgs,
    #[command(flatten)]
    aws: AwsArgs,
}

/// List the approvals still open, soonest to expire first (through the stack, or with
/// --direct from the --ledger-table itself).
#[derive(Debug, Args)]
pub struct PendingArgs {
    /// Print the approvals as JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    route: RouteArgs,
    #[command(flatten)]
    aws: AwsArgs,
}

/// The request an approve or refuse sends, checked here first exactly as the revoker
/// will check it.
fn decision(action: &str, id: &str, reason: &Option<String>) -> Result<Value, String> {
    ApprovalId::parse(id).map_err(|e| format!("{e}"))?;
    if let Some(reason) = reason {
        OperatorText::parse(reason).map_err(|e| format!("--reason: {e}"))?;
    }
    let mut payload = json!({"action": action, "approval_id": id});
    if let Some(reason) = reason {
        payload["reason"] = json!(reason);
    }
    parse_action(payload.clone())?;
    Ok(payload)
}

async fn decide(
    action: &str,
    id: &str,
    reason: &Option<String>,
    json: bool,
    route: &RouteArgs,
    aws: &AwsArgs,
) -> anyhow::Result<Exit> {
    let payload = match decision(action, id, reason) {
        Ok(payload) => payload,
        Err(message) => return Ok(Exit::Invalid(message)),
    };
    let (url, stack) = match route.route() {
        Ok(Route::Stack { url, stack }) => (url, stack),
        Ok(Route::Direct) => {
            return Ok(Exit::Invalid(format!(
                "{action} goes through the deployed stack only (its operator path, where AWS vouches for who decides): it takes no --direct"
            )));
        }
        Err(message) => return Ok(Exit::Invalid(message)),
    };
    operator_outcome(aws, (url.as_deref(), stack.as_deref()), Ok(payload), json).await
}

pub async fn approve(args: &ApproveArgs) -> anyhow::Result<Exit> {
    decide(
        "approve",
        &args.id,
        &args.reason,
        args.json,
        &args.route,
        &args.aws,
    )
    .await
}

pub async fn refuse(args: &RefuseArgs) -> anyhow::Result<Exit> {
    decide(
        "refuse",
        &args.id,
        &args.reason,
        args.json,
        &args.route,
        &args.aws,
    )
    .await
}

pub async fn pending(args: &PendingArgs) -> anyhow::Result<Exit> {
    let route = match args.route.route() {
        Ok(route) => route,
        Err(message) => return Ok(Exit::Invalid(message)),
    };
    let open: Vec<Approval> = match route {
        Route::Stack { url, stack } => {
            let answer = match report_through_operator_path(
                &args.aws,
                (url, stack),
                json!({"action": "pending"}),
                args.json,
            )
            .await?
            {
                Ok(answer) => answer,
                Err(exit) => return Ok(exit),
            };
            serde_json::from_value(answer.get("pending").cloned().unwrap_or(Value::Null))
                .context("the operator path answered something that is not a list of approvals")?
        }
        Route::Direct => {
            let aws = match args.aws.settings() {
                Ok(aws) => aws,
                Err(message) => return Ok(Exit::Invalid(message)),
            };
            let Some(table) = aws.ledger_table.clone() else {
                return Ok(Exit::Invalid(
                    "with --direct the approvals are read from the ledger itself: give --ledger-table or set CUTOFF_LEDGER_TABLE"
                        .to_owned(),
                ));
            };
            eprintln!(
                "cutoff: --direct: pending read from the ledger table {table} with your credentials, NOT through the deployed stack. Use it only when the stack itself is broken."
            );
            let sdk = match load_sdk_config_with(&aws.options).await {
                Ok(sdk) => sdk,
                Err(e) => return Ok(Exit::Invalid(e.to_string())),
            };
            let now = chrono::Utc::now();
            let mut open: Vec<Approval> = SdkApprovals::from_config(&sdk, table.as_str())
                .list()
                .await
                .with_context(|| format!("reading the approvals from the ledger table {table}"))?
                .approvals
                .into_iter()
                .filter(|a| a.is_open(now))
                .collect();
            open.sort_by(|a, b| a.expires_at.cmp(&b.expires_at).then(a.id.cmp(&b.id)));
            open
        }
    };
    if args.json {
        print_json(&json!({ "pending": open }))?;
        return Ok(Exit::Ok);
    }
    let mut out = String::new();
    match open.len() {
        0 => out.push_str("no approvals are open\n"),
        1 => out.push_str("1 approval open, soonest to expire first:\n"),
        n => out.push_str(&format!("{n} approvals open, soonest to expire first:\n")),
    }
    for a in &open {
        let t = &a.request.target;
        let finding = a
            .request
            .trigger
            .finding_id
            .as_deref()
            .map_or_else(String::new, |f| format!(", finding {}", clean_text(f, 100)));
        let severity = a
            .request
            .trigger
            .severity
            .map_or_else(String::new, |s| format!(", severity {s:.1}"));
        out.push_str(&format!(
            "{}  expires {}  {} {} in {}{}{}\n    cutoff approve {}   |   cutoff refuse {} --reason \"...\"\n",
            a.id,
            stamp(a.expires_at),
            t.kind,
            t.name,
            t.account,
            finding,
            severity,
            a.id,
            a.id
        ));
    }
    write!(std::io::stdout().lock(), "{out}").context("writing to standard output")?;
    Ok(Exit::Ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_approval_request_is_checked_before_anything_is_sent() {
        let ok = decision("approve", "0123456789abcdef", &Some("INC-9".into())).unwrap();
        assert_eq!(
            ok,
            json!({"action": "approve", "approval_id": "0123456789abcdef", "reason": "INC-9"})
        );
        let refuse = decision("refuse", "0123456789abcdef", &None).unwrap();
        assert_eq!(
            refuse,
            json!({"action": "refuse", "approval_id": "0123456789abcdef"})
        );
        for (id, reason) in [
            ("0123456789ABCDEF", None),
            ("payments-api", None),
            ("", None),
            ("0123456789abcdef", Some("line\nbreak".to_owned())),
            ("0123456789abcdef", Some("x".repeat(513))),
        ] {
            assert!(
                decision("approve", id, &reason).is_err(),
                "{id:?} {reason:?}"
            );
        }
    }
}
