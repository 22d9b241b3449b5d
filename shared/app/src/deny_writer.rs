//! The one writer of cutoff's changes to a principal: every put, attach, detach and
//! delete of a deny policy (and the access keys a revocation sets Inactive), said in
//! words as it is done, and the read-back that shows a deny landed. The revoker and
//! the sweeper both write through it, so both say the same thing for the same change,
//! and a dry run of either writes nothing.
//!
//! What a write should contain is decided elsewhere (the merge and removal rules of
//! [`cutoff_domain::policy`], the plans of [`cutoff_domain::sweep_rules`]); this only
//! carries it out.

use std::time::Duration;

use cutoff_aws::{AccessKeys, AwsError, IamPrincipal, InlinePolicies, ManagedPolicies};
use cutoff_domain::policy::PolicyDocument;
use cutoff_domain::principal::{AccessKeyId, IamPath};

/// How a write is read back: IAM is eventually consistent, so a read right after a
/// write may not show it yet.
#[derive(Debug, Clone, Copy)]
pub struct ReadBack {
    /// Reads before the write is declared unverified.
    pub attempts: u32,
    /// The pause after the first read; the n-th pause is n times this.
    pub delay: Duration,
}

/// Writes to one principal's account through `client`, recording each change done.
pub struct DenyWriter<'a, C> {
    client: &'a C,
    dry_run: bool,
    read_back: ReadBack,
    /// What was done (or, in a dry run, would be), in order, in words.
    actions: Vec<String>,
}

impl<'a, C> DenyWriter<'a, C> {
    pub fn new(client: &'a C, dry_run: bool, read_back: ReadBack) -> Self {
        Self {
            client,
            dry_run,
            read_back,
            actions: Vec::new(),
        }
    }

    /// The client, for reads.
    pub fn client(&self) -> &'a C {
        self.client
    }

    pub fn dry_run(&self) -> bool {
        self.dry_run
    }

    pub fn into_actions(self) -> Vec<String> {
        self.actions
    }

    /// Makes the write unless this is a dry run (the write is not even built then),
    /// and records `action` once it is done: a write that failed is reported by its
    /// error, not listed as done.
    async fn change<F: Future<Output = Result<(), AwsError>>>(
        &mut self,
        action: String,
        write: impl FnOnce(&'a C) -> F,
    ) -> Result<(), AwsError> {
        if !self.dry_run {
            write(self.client).await?;
        }
        self.actions.push(action);
        Ok(())
    }

    /// Reads until `shows` accepts what is there, at most [`ReadBack::attempts`]
    /// times: `Ok(false)` when it never did. A dry run wrote nothing, so there is
    /// nothing to read back.
    async fn read_until<F: Future<Output = Result<bool, AwsError>>>(
        &self,
        shows: impl Fn() -> F,
    ) -> Result<bool, AwsError> {
        if self.dry_run {
            return Ok(true);
        }
        for attempt in 1..=self.read_back.attempts {
            if shows().await? {
                return Ok(true);
            }
            if attempt < self.read_back.attempts {
                tokio::time::sleep(self.read_back.delay * attempt).await;
            }
        }
        Ok(false)
    }
}

/// What a read-back found: the policy parsed, or None when it is absent. A policy
/// that is there but cannot be parsed is never accepted: it shows neither a deny nor
/// its removal.
fn accepted(text: Option<&str>, check: &impl Fn(Option<&PolicyDocument>) -> bool) -> bool {
    match text {
        None => check(None),
        Some(text) => PolicyDocument::parse(text).is_ok_and(|doc| check(Some(&doc))),
    }
}

impl<'a, C: InlinePolicies> DenyWriter<'a, C> {
    pub async fn put_inline(
        &mut self,
        principal: &IamPrincipal,
        name: &str,
        document: &str,
    ) -> Result<(), AwsError> {
        self.change(
            format!("put inline policy {name} on {principal}"),
            |client| client.put_inline_policy(principal, name, document),
        )
        .await
    }

    pub async fn delete_inline(
        &mut self,
        principal: &IamPrincipal,
        name: &str,
    ) -> Result<(), AwsError> {
        self.change(
            format!("delete inline policy {name} from {principal}"),
            |client| client.delete_inline_policy(principal, name),
        )
        .await
    }

    /// Reads inline policy `name` back until `check` accepts it (None: absent);
    /// `Ok(false)` when it never did.
    pub async fn inline_shows(
        &self,
        principal: &IamPrincipal,
        name: &str,
        check: impl Fn(Option<&PolicyDocument>) -> bool,
    ) -> Result<bool, AwsError> {
        let (client, check) = (self.client, &check);
        self.read_until(|| async move {
            let text = client.get_inline_policy(principal, name).await?;
            Ok(accepted(text.as_deref(), check))
        })
        .await
    }
}

impl<'a, C: ManagedPolicies> DenyWriter<'a, C> {
    /// Creates the managed policy or gives it a new default version.
    pub async fn put_managed(
        &mut self,
        path: &IamPath,
        name: &str,
        document: &str,
    ) -> Result<(), AwsError> {
        let arn = self.client.managed_policy_arn(path, name);
        self.change(format!("put managed policy {arn}"), async |client| {
            client
                .put_managed_policy(path, name, document)
                .await
                .map(drop)
        })
        .await
    }

    pub async fn attach(&mut self, principal: &IamPrincipal, arn: &str) -> Result<(), AwsError> {
        self.change(format!("attach {arn} to {principal}"), |client| {
            client.attach_policy(principal, arn)
        })
        .await
    }

    /// Detaches the managed policy from the principal and deletes it (a fallback is
    /// cutoff's own and attached to one principal only): two changes, each listed once
    /// done, since the detach alone already lifts the deny.
    pub async fn detach_and_delete(
        &mut self,
        principal: &IamPrincipal,
        arn: &str,
    ) -> Result<(), AwsError> {
        self.change(
            format!("detach managed policy {arn} from {principal}"),
            |client| client.detach_policy(principal, arn),
        )
        .await?;
        self.change(format!("delete managed policy {arn}"), |client| {
            client.delete_managed_policy(arn)
        })
        .await
    }

    /// Reads managed policy `arn` back until `check` accepts its default version
    /// (None: absent); `Ok(false)` when it never did.
    pub async fn managed_shows(
        &self,
        arn: &str,
        check: impl Fn(Option<&PolicyDocument>) -> bool,
    ) -> Result<bool, AwsError> {
        let (client, check) = (self.client, &check);
        self.read_until(|| async move {
            let policy = client.get_managed_policy(arn).await?;
            Ok(accepted(
                policy.as_ref().map(|p| p.document.as_str()),
                check,
            ))
        })
        .await
    }
}

impl<'a, C: AccessKeys> DenyWriter<'a, C> {
    /// Sets a user's access key Inactive: a long-term key is never stopped by the
    /// `TokenIssueTime` deny.
    pub async fn deactivate_key(
        &mut self,
        user: &IamPrincipal,
        key: &AccessKeyId,
    ) -> Result<(), AwsError> {
        self.change(
            format!("set access key {key} of {user} Inactive"),
            |client| client.deactivate_access_key(&user.name, key),
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cutoff_aws::ErrorKind;
    use cutoff_aws::iam::fake::FakeIam;
    use cutoff_domain::policy::{Cutoff, ROLE_WIDE_POLICY_NAME, merge_role_wide};

    const ACCOUNT: &str = "111122223333";

    fn read_back() -> ReadBack {
        ReadBack {
            attempts: 3,
            delay: Duration::from_millis(100),
        }
    }

    fn setup() -> (FakeIam, IamPrincipal) {
        let iam = FakeIam::new(ACCOUNT);
        iam.add_role("payments-api", "/", &[]).add_user("ci", &[]);
        iam.add_access_key("ci", "AKIAEXAMPLEKEY000001");
        let role = IamPrincipal::role(
            cutoff_domain::principal::PrincipalName::parse("payments-api").unwrap(),
        );
        (iam, role)
    }

    fn deny_at(seconds: i64) -> (Cutoff, String) {
        let cutoff = Cutoff::at_or_after(
            chrono::DateTime::from_timestamp(1_795_000_000 + seconds, 0).unwrap(),
        );
        (cutoff, merge_role_wide(None, cutoff).document.to_json())
    }

    #[tokio::test(start_paused = true)]
    async fn a_dry_run_lists_every_change_and_makes_none() {
        let (iam, role) = setup();
        let user =
            IamPrincipal::user(cutoff_domain::principal::PrincipalName::parse("ci").unwrap());
        let key = AccessKeyId::parse("AKIAEXAMPLEKEY000001").unwrap();
        let path = IamPath::parse("/cutoff/").unwrap();
        let (_, document) = deny_at(0);
        let mut writer = DenyWriter::new(&iam, true, read_back());
        writer
            .put_inline(&role, ROLE_WIDE_POLICY_NAME, &document)
            .await
            .unwrap();
        writer
            .put_managed(&path, "cutoff-revoke-role-payments-api", &document)
            .await
            .unwrap();
        writer
            .attach(&role, "arn:aws:iam::111122223333:policy/cutoff/x")
            .await
            .unwrap();
        writer
            .detach_and_delete(&role, "arn:aws:iam::111122223333:policy/cutoff/x")
            .await
            .unwrap();
        writer
            .delete_inline(&role, ROLE_WIDE_POLICY_NAME)
            .await
            .unwrap();
        writer.deactivate_key(&user, &key).await.unwrap();
        // Nothing was written, so a read-back has nothing to wait for.
        assert!(
            writer
                .inline_shows(&role, ROLE_WIDE_POLICY_NAME, |d| d.is_some())
                .await
                .unwrap()
        );
        let actions = writer.into_actions();
        assert_eq!(actions.len(), 7, "{actions:?}");
        assert!(
            iam.calls()
                .iter()
                .all(|c| c.starts_with("Get") || c.starts_with("List")),
            "{:?}",
            iam.calls()
        );
        assert_eq!(iam.inline(&role, ROLE_WIDE_POLICY_NAME), None);
        assert_eq!(
            iam.key_status("ci", "AKIAEXAMPLEKEY000001").as_deref(),
            Some("Active")
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_write_that_failed_is_not_listed_as_done() {
        let (iam, role) = setup();
        let (_, document) = deny_at(0);
        iam.fail("PutRolePolicy", &[ErrorKind::Quota]);
        let mut writer = DenyWriter::new(&iam, false, read_back());
        let err = writer
            .put_inline(&role, ROLE_WIDE_POLICY_NAME, &document)
            .await
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::Quota);
        writer
            .put_inline(&role, ROLE_WIDE_POLICY_NAME, &document)
            .await
            .unwrap();
        assert_eq!(
            writer.into_actions(),
            [format!(
                "put inline policy {ROLE_WIDE_POLICY_NAME} on {role}"
            )]
        );
        assert_eq!(iam.inline(&role, ROLE_WIDE_POLICY_NAME), Some(document));
    }

    #[tokio::test(start_paused = true)]
    async fn a_detach_that_worked_is_listed_when_the_delete_after_it_fails() {
        let (iam, role) = setup();
        let path = IamPath::parse("/cutoff/").unwrap();
        let (_, document) = deny_at(0);
        let mut writer = DenyWriter::new(&iam, false, read_back());
        writer
            .put_managed(&path, "cutoff-revoke-role-payments-api", &document)
            .await
            .unwrap();
        let arn = iam.managed_policy_arn(&path, "cutoff-revoke-role-payments-api");
        writer.attach(&role, &arn).await.unwrap();
        iam.fail("DeletePolicy", &[ErrorKind::AccessDenied]);
        let err = writer.detach_and_delete(&role, &arn).await.unwrap_err();
        assert_eq!(err.kind, ErrorKind::AccessDenied);
        let actions = writer.into_actions();
        // The detach alone lifted the deny: it is listed, the delete is not.
        assert_eq!(
            actions.last().map(String::as_str),
            Some(format!("detach managed policy {arn} from {role}").as_str()),
            "{actions:?}"
        );
        assert!(
            !actions.iter().any(|a| a.starts_with("delete")),
            "{actions:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_read_back_waits_out_stale_reads_and_gives_up_after_its_attempts() {
        let (iam, role) = setup();
        let (older, stale) = deny_at(0);
        let (newer, fresh) = deny_at(60);
        assert!(newer > older);
        let mut writer = DenyWriter::new(&iam, false, read_back());
        writer
            .put_inline(&role, ROLE_WIDE_POLICY_NAME, &fresh)
            .await
            .unwrap();
        let shows_newer = |d: Option<&PolicyDocument>| {
            d.and_then(PolicyDocument::role_wide_cutoff)
                .is_some_and(|c| c >= newer)
        };
        // Two stale reads, then the write: seen on the third and last attempt.
        iam.stale_reads(ROLE_WIDE_POLICY_NAME, &[Some(&stale), None]);
        assert!(
            writer
                .inline_shows(&role, ROLE_WIDE_POLICY_NAME, shows_newer)
                .await
                .unwrap()
        );
        // Three stale reads: never seen.
        iam.stale_reads(
            ROLE_WIDE_POLICY_NAME,
            &[Some(&stale), Some(&stale), Some(&stale)],
        );
        assert!(
            !writer
                .inline_shows(&role, ROLE_WIDE_POLICY_NAME, shows_newer)
                .await
                .unwrap()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_policy_that_cannot_be_parsed_shows_neither_a_deny_nor_its_removal() {
        let (iam, role) = setup();
        iam.set_inline(&role, ROLE_WIDE_POLICY_NAME, "{not json");
        let writer = DenyWriter::new(&iam, false, read_back());
        // A release's check accepts an absent policy: garbage must not pass for one.
        let removed = |d: Option<&PolicyDocument>| d.is_none_or(|d| d.role_wide_cutoff().is_none());
        assert!(
            !writer
                .inline_shows(&role, ROLE_WIDE_POLICY_NAME, removed)
                .await
                .unwrap()
        );
        iam.state()
            .roles
            .get_mut("payments-api")
            .unwrap()
            .inline
            .clear();
        assert!(
            writer
                .inline_shows(&role, ROLE_WIDE_POLICY_NAME, removed)
                .await
                .unwrap()
        );
    }
}
