//! Roles and inline policies written straight to moto, for the tests and the bench.
//!
//! moto's IAM is not thread-safe: a `CreateRole` that scans the roles (for a duplicate
//! name) while another request adds one fails with HTTP 500 ("dictionary changed size
//! during iteration") before it changes anything. Seeding many roles concurrently
//! therefore retries moto's 500s.

use aws_sdk_iam::config::http::HttpResponse;
use aws_sdk_iam::error::SdkError;
use aws_sdk_iam::operation::create_role::CreateRoleError;
use aws_sdk_iam::operation::put_role_policy::PutRolePolicyError;
use aws_sdk_iam::types::Tag;

/// The trust policy of the roles created here (moto does not evaluate it).
pub const TRUST: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;

/// Attempts of one call before giving up on moto's races.
pub const ATTEMPTS: u32 = 8;

fn is_moto_500<E>(e: &SdkError<E, HttpResponse>) -> bool {
    e.raw_response().is_some_and(|r| r.status().as_u16() == 500)
}

/// Creates role `name` with `tags`; the number of moto 500s retried.
pub async fn create_role(
    iam: &aws_sdk_iam::Client,
    name: &str,
    tags: &[(&str, &str)],
) -> Result<u64, SdkError<CreateRoleError, HttpResponse>> {
    let mut retries = 0;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let mut call = iam
            .create_role()
            .role_name(name)
            .assume_role_policy_document(TRUST);
        for (key, value) in tags {
            call = call.tags(
                Tag::builder()
                    .key(*key)
                    .value(*value)
                    .build()
                    .expect("a tag with a key and a value"),
            );
        }
        match call.send().await {
            Ok(_) => return Ok(retries),
            Err(e) if is_moto_500(&e) && attempt < ATTEMPTS => retries += 1,
            // A retried create whose first attempt got through after all.
            Err(e)
                if attempt > 1
                    && e.as_service_error()
                        .is_some_and(|s| s.is_entity_already_exists_exception()) =>
            {
                return Ok(retries);
            }
            Err(e) => return Err(e),
        }
    }
}

/// Puts inline policy `policy` on `role`; the number of moto 500s retried.
pub async fn put_role_policy(
    iam: &aws_sdk_iam::Client,
    role: &str,
    policy: &str,
    document: &str,
) -> Result<u64, SdkError<PutRolePolicyError, HttpResponse>> {
    let mut retries = 0;
    let mut attempt = 0;
    loop {
        attempt += 1;
        match iam
            .put_role_policy()
            .role_name(role)
            .policy_name(policy)
            .policy_document(document)
            .send()
            .await
        {
            Ok(_) => return Ok(retries),
            Err(e) if is_moto_500(&e) && attempt < ATTEMPTS => retries += 1,
            Err(e) => return Err(e),
        }
    }
}

/// The role-wide cutoff cutoff's inline policy on `role` holds now, if the policy is there
/// and readable.
pub async fn role_wide_cutoff(
    iam: &aws_sdk_iam::Client,
    role: &str,
) -> Option<cutoff_domain::policy::Cutoff> {
    let out = iam
        .get_role_policy()
        .role_name(role)
        .policy_name(cutoff_domain::policy::ROLE_WIDE_POLICY_NAME)
        .send()
        .await
        .ok()?;
    cutoff_domain::policy::PolicyDocument::parse(out.policy_document())
        .ok()?
        .role_wide_cutoff()
}
