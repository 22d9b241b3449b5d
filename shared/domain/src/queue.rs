//! How a revocation request is keyed on the FIFO request queue: its message group
//! (one principal's requests in order, one revoker at a time) and its deduplication id.

use sha2::{Digest, Sha256};

use crate::outcome::RevocationRequest;

/// `account/kind/name`: one principal's requests are ordered and handled by one
/// revoker at a time.
pub fn group_id(request: &RevocationRequest) -> String {
    let t = &request.target;
    format!("{}/{}/{}", t.account, t.kind, t.name)
}

/// The finding id and its `updatedAt`, with everything else the request says about
/// whom it revokes: a re-emitted finding is dropped by SQS within its five-minute
/// window, an updated one is not. The source, the product, the scope, the session, the
/// key and the unique id are in it too: a finding id is chosen by whoever imports a
/// finding into Security Hub, and a forged finding reusing a GuardDuty finding's id and
/// update time must not make SQS drop the real one as its duplicate. Hashed, because
/// SQS allows 128 characters and finding ids are up to 512; each field is
/// length-prefixed, so that no two requests hash the same text.
pub fn deduplication_id(request: &RevocationRequest, body: &str) -> String {
    let mut hasher = Sha256::new();
    let mut field = |value: &str| {
        hasher.update((value.len() as u64).to_be_bytes());
        hasher.update(value.as_bytes());
    };
    match &request.trigger.finding_id {
        Some(id) => {
            let t = &request.target;
            let updated = request
                .trigger
                .updated_at
                .map(|t| t.to_rfc3339())
                .unwrap_or_default();
            for value in [
                request.trigger.source.as_str(),
                request.trigger.product_arn.as_deref().unwrap_or(""),
                id,
                &updated,
                &group_id(request),
                request.scope.as_str(),
                t.session.as_ref().map_or("", |s| s.as_str()),
                t.access_key_id.as_ref().map_or("", |k| k.as_str()),
                request
                    .expected_unique_id
                    .as_ref()
                    .map_or("", |u| u.as_str()),
            ] {
                field(value);
            }
            // A request that only asks is not the revocation of the same finding: a
            // forged ask sent first must not make SQS drop the real revocation as its
            // duplicate. (Only then: every other request keeps the id it had.)
            if request.needs_approval {
                field("needs approval");
            }
        }
        // No finding (a manual request): the content itself.
        None => field(body),
    }
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::triage::Source;
    use serde_json::json;

    #[test]
    fn a_security_hub_finding_reusing_a_guardduty_finding_id_cannot_shadow_its_revocation() {
        // Whoever imports a finding into Security Hub chooses its Id and UpdatedAt. One
        // that copies those of GuardDuty's finding about the attacker's session (and
        // names a unique id the revoker will refuse) must not share its deduplication
        // id, or SQS would drop GuardDuty's real request as its duplicate.
        let real: RevocationRequest = serde_json::from_value(json!({
            "action": "revoke",
            "target": {"kind": "role", "account": "111122223333", "name": "payments-api",
                       "access_key_id": "ASIAZXCVBNMASDFGHJKL"},
            "scope": "role",
            "trigger": {"source": "guardduty", "finding_id": "f1",
                        "updated_at": "2026-11-23T11:56:00Z"},
            "expected_unique_id": "AROAZXCVBNMASDFGHJKLQ"
        }))
        .unwrap();
        let id = |r: &RevocationRequest| deduplication_id(r, "");
        let mut forged = real.clone();
        forged.trigger.source = Source::SecurityHub;
        forged.trigger.product_arn =
            Some("arn:aws:securityhub:us-east-1:111122223333:product/111122223333/default".into());
        forged.expected_unique_id =
            Some(crate::principal::UniqueId::parse("AROAFORGEDFORGEDFORGE").unwrap());
        assert_ne!(id(&real), id(&forged));
        for change in [
            |r: &mut RevocationRequest| r.trigger.source = Source::SecurityHub,
            |r: &mut RevocationRequest| {
                r.expected_unique_id =
                    Some(crate::principal::UniqueId::parse("AROAOTHEROTHEROTHERO").unwrap())
            },
            |r: &mut RevocationRequest| r.target.access_key_id = None,
            |r: &mut RevocationRequest| r.scope = crate::event::Scope::Session,
            // A forged ask sent first must not shadow the real revocation.
            |r: &mut RevocationRequest| r.needs_approval = true,
        ] {
            let mut other = real.clone();
            change(&mut other);
            assert_ne!(id(&real), id(&other), "{other:?}");
        }
        assert_eq!(
            id(&real),
            id(&real.clone()),
            "a re-emitted finding still matches"
        );
    }
}
