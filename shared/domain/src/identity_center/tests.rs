#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;

const ALICE: &str = "906752c4e2-6c7cd5b2-1051-70b2-1d66-2a5b36ecd0a2";
const BOB: &str = "b8e1f3a0-5c2d-4e6f-8a9b-0c1d2e3f4a5b";

fn user(id: &str) -> IdentityStoreUserId {
    IdentityStoreUserId::parse(id).unwrap()
}

#[test]
fn a_user_id_is_the_identity_stores_shape_and_nothing_else() {
    for good in [ALICE, BOB] {
        assert_eq!(user(good).as_str(), good);
    }
    assert_eq!(
        user(&BOB.to_ascii_uppercase()),
        user(BOB),
        "one user, one spelling"
    );
    for bad in [
        "",
        "alice@example.com",
        "6c7cd5b2-1051-70b2-1d66-2a5b36ecd0a",   // short
        "6c7cd5b2-1051-70b2-1d66-2a5b36ecd0a2x", // long
        "906752c4eg-6c7cd5b2-1051-70b2-1d66-2a5b36ecd0a2",
        "6c7cd5b2_1051_70b2_1d66_2a5b36ecd0a2",
        "*",
        "6c7cd5b2-1051-70b2-1d66-2a5b36ecd0\n2",
    ] {
        assert!(IdentityStoreUserId::parse(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn a_permission_set_session_names_its_permission_set_and_user() {
    let role = PrincipalName::parse("AWSReservedSSO_Data_Admin_0123456789abcdef").unwrap();
    let session = SessionName::parse("alice@example.com").unwrap();
    assert_eq!(
        sso_session(&role, &session),
        Some(SsoSession {
            permission_set: "Data_Admin".to_owned(),
            user_name: "alice@example.com".to_owned(),
        })
    );
    for not_one in [
        "AWSReservedSSO_Admin",
        "AWSReservedSSO__0123456789abcdef",
        "AWSReservedSSO_Admin_0123456789abcdeg",
        "AWSReservedSSO_Admin_0123456789abcde",
        "Admin_0123456789abcdef",
    ] {
        let role = PrincipalName::parse(not_one).unwrap();
        assert_eq!(sso_session(&role, &session), None, "{not_one}");
    }
}

#[test]
fn the_deny_is_added_beside_what_is_there_once_and_removed_alone() {
    let existing = r#"{"Version":"2012-10-17","Statement":{"Sid":"ReadBilling","Effect":"Allow","Action":"aws-portal:View*","Resource":"*"}}"#;
    let InlineChange::Put(with_alice) = add_user_deny(Some(existing), &user(ALICE)).unwrap() else {
        panic!()
    };
    assert!(with_alice.contains("ReadBilling"));
    assert!(denies_user(&with_alice, &user(ALICE)));
    assert!(!denies_user(&with_alice, &user(BOB)));
    assert_eq!(
        add_user_deny(Some(&with_alice), &user(ALICE)).unwrap(),
        InlineChange::Unchanged
    );
    let InlineChange::Put(with_both) = add_user_deny(Some(&with_alice), &user(BOB)).unwrap() else {
        panic!()
    };
    let InlineChange::Put(without_alice) =
        remove_user_deny(Some(&with_both), &user(ALICE)).unwrap()
    else {
        panic!()
    };
    assert!(!denies_user(&without_alice, &user(ALICE)));
    assert!(denies_user(&without_alice, &user(BOB)));
    assert!(without_alice.contains("ReadBilling"));
    assert_eq!(
        remove_user_deny(Some(existing), &user(ALICE)).unwrap(),
        InlineChange::Unchanged
    );
    // A permission set without an inline policy gets one; the last deny removed
    // deletes it.
    let InlineChange::Put(only) = add_user_deny(None, &user(ALICE)).unwrap() else {
        panic!()
    };
    assert_eq!(
        remove_user_deny(Some(&only), &user(ALICE)).unwrap(),
        InlineChange::Delete
    );
}

#[test]
fn a_statement_wearing_cutoffs_sid_is_replaced_by_the_deny() {
    // Someone put an Allow under the Sid cutoff uses for this user.
    let planted = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Sid":"{}","Effect":"Allow","Action":"*","Resource":"*"}}]}}"#,
        sid(&user(ALICE))
    );
    assert!(!denies_user(&planted, &user(ALICE)));
    let InlineChange::Put(fixed) = add_user_deny(Some(&planted), &user(ALICE)).unwrap() else {
        panic!()
    };
    assert!(denies_user(&fixed, &user(ALICE)));
    assert!(!fixed.contains("\"Allow\""), "{fixed}");
}

#[test]
fn what_cannot_be_read_is_never_overwritten_and_what_would_not_fit_is_refused() {
    for unreadable in [
        "not json",
        "[1]",
        r#"{"Statement":"x"}"#,
        r#"{"Statement":[],"Statement":[]}"#,
    ] {
        assert!(
            matches!(
                add_user_deny(Some(unreadable), &user(ALICE)),
                Err(InlineError::Unreadable(_))
            ),
            "{unreadable}"
        );
    }
    // IAM's role budget counts no whitespace: a policy padded with spaces still fits
    // it, while the API's raw limit is counted with them.
    let big_statement = |n: usize| {
        format!(
            r#"{{"Sid":"Big{n}","Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::{}/*"}}"#,
            "b".repeat(900)
        )
    };
    let statements: Vec<String> = (0..11).map(big_statement).collect();
    let near_full = format!(
        r#"{{"Version":"2012-10-17","Statement":[{}]}}"#,
        statements.join(",")
    );
    assert!(matches!(
        add_user_deny(Some(&near_full), &user(ALICE)),
        Err(InlineError::TooLarge {
            limit: PROVISIONED_ROLE_INLINE_MAX,
            ..
        })
    ));
    let padded = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Sid":"Pad","Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::{}"}}]}}"#,
        " ".repeat(33_000)
    );
    assert!(matches!(
        add_user_deny(Some(&padded), &user(ALICE)),
        Err(InlineError::TooLarge {
            limit: PERMISSION_SET_INLINE_MAX,
            ..
        })
    ));
}

/// The SCP as the template creates it: the placeholder only.
fn fresh_scp() -> String {
    json!({"Version": "2012-10-17", "Statement": [scp_placeholder()]}).to_string()
}

#[test]
fn the_scp_variant_replaces_its_placeholder_keeps_every_user_and_gets_it_back_when_empty() {
    let alice = user("906752d1-b1a2-4c3d-8e9f-0a1b2c3d4e5f");
    let bob = user("90675abc-0000-4c3d-8e9f-0a1b2c3d4e5f");
    let InlineChange::Put(one) = scp_with_user_denied(&fresh_scp(), &alice).unwrap() else {
        panic!("alice is added")
    };
    assert!(denies_user(&one, &alice));
    assert!(
        !one.contains(SCP_PLACEHOLDER_SID),
        "the placeholder goes: {one}"
    );
    assert_eq!(
        scp_with_user_denied(&one, &alice).unwrap(),
        InlineChange::Unchanged
    );
    let InlineChange::Put(two) = scp_with_user_denied(&one, &bob).unwrap() else {
        panic!("bob is added")
    };
    assert!(denies_user(&two, &alice) && denies_user(&two, &bob));
    let InlineChange::Put(back) = scp_without_user(&two, &alice).unwrap() else {
        panic!("alice is removed")
    };
    assert!(!denies_user(&back, &alice) && denies_user(&back, &bob));
    let InlineChange::Put(empty) = scp_without_user(&back, &bob).unwrap() else {
        panic!("bob is removed")
    };
    // Never an empty policy (AWS refuses it), never an Allow (it would widen an
    // allow-list Organization): the placeholder deny that matches nobody.
    let parsed: Value = serde_json::from_str(&empty).unwrap();
    assert_eq!(parsed["Statement"], json!([scp_placeholder()]));
    assert_eq!(
        scp_without_user(&empty, &bob).unwrap(),
        InlineChange::Unchanged
    );
}

#[test]
fn the_scp_variant_refuses_what_would_not_fit_in_5120_characters() {
    let mut scp = fresh_scp();
    let mut added = 0;
    let refused = loop {
        let id = format!("{:08x}-b1a2-4c3d-8e9f-0a1b2c3d4e5f", added);
        match scp_with_user_denied(&scp, &user(&id)) {
            Ok(InlineChange::Put(next)) => {
                assert!(next.chars().count() <= SCP_MAX);
                scp = next;
                added += 1;
            }
            Ok(other) => panic!("{other:?}"),
            Err(e) => break e,
        }
    };
    assert!(added > 10, "room for {added} users only");
    assert!(
        matches!(refused, InlineError::TooLarge { limit: SCP_MAX, .. }),
        "{refused:?}"
    );
}
