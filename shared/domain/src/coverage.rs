//! The skip rule: whether the cutoff already on a principal kills the credential a
//! finding names, so that no new write is needed. Pure.
//!
//! A session is dead when the cutoff in force is after the moment it was *issued*.
//! The issue time is not in findings, but two things bound it:
//!
//! 1. **The key is on record.** When cutoff revokes a principal for a finding, the
//!    ledger records the finding's access key with the cutoff written. A key seen in
//!    use before a cutoff was issued before it: that cutoff covers it for as long as it
//!    stands (a release drops the records; a cutoff is never lowered).
//! 2. **The first activity.** A session is issued before it is first used, so a cutoff
//!    after the finding's first activity (`eventFirstSeen`) covers the session behind
//!    it, unless the finding has since named another key than the one the ledger saw
//!    it with: its first activity is then not this key's.
//!
//! A long-term (`AKIA…`) key is different: it mints sessions (`GetSessionToken`) at
//! any time until it is deactivated, so its first activity bounds none of them; only
//! its record (written once it was inactive and the cutoff after that) covers it.
//!
//! Never the last activity: a denied session keeps failing, GuardDuty keeps updating
//! the finding with a later `eventLastSeen`, and comparing with it would re-revoke the
//! principal on every update, cutting off the sessions its workload minted since.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::policy::Cutoff;
use crate::principal::AccessKeyId;

/// How much later than the moment it was minted a session's recorded issue time may be.
pub const ISSUE_TIME_SLACK: chrono::Duration = chrono::Duration::seconds(1);

/// An access key cutoff revoked a principal for, as the ledger keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRecord {
    pub access_key_id: AccessKeyId,
    /// The cutoff in force once the key was revoked (it covers the key).
    pub cutoff: Cutoff,
    /// A digest of the finding that named the key, if one did.
    pub finding: Option<String>,
    /// The key was only seen with the finding: the cutoff in force was older than the
    /// request and its coverage rested on the finding's own claim (its first activity),
    /// so the record vouches for nothing. It still tells that the finding began with
    /// this key, should it name another later.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub seen_only: bool,
}

impl KeyRecord {
    /// Where the ledger keeps the record among the principal's: one covering record per
    /// key, and one *seen* record per key and finding (so that each finding that began
    /// with a key is remembered, whichever names another key later).
    pub fn sort_key(&self) -> String {
        if self.seen_only {
            format!(
                "{}#seen#{}",
                self.access_key_id,
                self.finding.as_deref().unwrap_or("-")
            )
        } else {
            self.access_key_id.as_str().to_owned()
        }
    }
}

/// What a request brings to the rule.
#[derive(Debug, Clone, Copy, Default)]
pub struct Evidence<'a> {
    pub access_key_id: Option<&'a AccessKeyId>,
    /// The digest of the finding (the same as [`KeyRecord::finding`]).
    pub finding: Option<&'a str>,
    pub first_activity: Option<DateTime<Utc>>,
}

/// Why the existing cutoff already covers the request, or None when it must write.
pub fn covered(
    existing: Option<Cutoff>,
    evidence: Evidence<'_>,
    records: &[KeyRecord],
) -> Option<String> {
    let existing = existing?;
    if let Some(key) = evidence.access_key_id
        && let Some(record) = records
            .iter()
            .find(|r| &r.access_key_id == key && !r.seen_only)
        && existing >= record.cutoff
    {
        return Some(format!(
            "access key {key} was revoked with the cutoff {}, which the cutoff in force ({existing}) still covers",
            record.cutoff
        ));
    }
    if evidence
        .access_key_id
        .is_some_and(AccessKeyId::is_long_term)
    {
        return None;
    }
    let first = evidence.first_activity?;
    let key_changed = match (evidence.finding, evidence.access_key_id) {
        (Some(finding), Some(key)) => records
            .iter()
            .any(|r| r.finding.as_deref() == Some(finding) && &r.access_key_id != key),
        _ => false,
    };
    if key_changed {
        return None;
    }
    // STS may record an issue time up to a second after the instant (the reason new
    // cutoffs carry a one-second margin): a first activity within that second of the
    // cutoff does not prove the session was issued before it.
    existing.covers(first + ISSUE_TIME_SLACK).then(|| {
        format!(
            "the finding's first activity ({}) is before the cutoff in force ({existing}): the session behind it was issued before and is denied",
            first.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().to_utc()
    }

    fn key(s: &str) -> AccessKeyId {
        AccessKeyId::parse(s).unwrap()
    }

    fn cutoff(s: &str) -> Cutoff {
        Cutoff::parse(s).unwrap()
    }

    const K1: &str = "ASIAAAAAAAAAAAAAAAA1";
    const K2: &str = "ASIAAAAAAAAAAAAAAAA2";

    fn record(k: &str, c: &str, finding: &str) -> KeyRecord {
        KeyRecord {
            access_key_id: key(k),
            cutoff: cutoff(c),
            finding: Some(finding.to_owned()),
            seen_only: false,
        }
    }

    #[test]
    fn nothing_in_force_covers_nothing() {
        let k = key(K1);
        let evidence = Evidence {
            access_key_id: Some(&k),
            finding: Some("f"),
            first_activity: Some(at("2026-11-23T11:00:00Z")),
        };
        assert!(covered(None, evidence, &[record(K1, "2026-11-23T12:00:00Z", "f")]).is_none());
    }

    #[test]
    fn a_recorded_key_is_covered_while_its_cutoff_stands_whatever_the_activity() {
        let k = key(K1);
        let evidence = Evidence {
            access_key_id: Some(&k),
            finding: Some("f"),
            // GuardDuty updated the finding: the first activity may even be unknown.
            first_activity: None,
        };
        let records = [record(K1, "2026-11-23T12:00:00Z", "f")];
        assert!(covered(Some(cutoff("2026-11-23T12:00:00Z")), evidence, &records).is_some());
        assert!(covered(Some(cutoff("2026-11-23T13:00:00Z")), evidence, &records).is_some());
        // A cutoff in force older than the key's (released and rewritten lower by a
        // person) no longer vouches for it.
        assert!(covered(Some(cutoff("2026-11-23T11:59:59Z")), evidence, &records).is_none());
    }

    #[test]
    fn a_first_activity_before_the_cutoff_is_covered_and_one_exactly_at_it_is_not() {
        let evidence = |t: &str| Evidence {
            access_key_id: None,
            finding: None,
            first_activity: Some(at(t)),
        };
        let c = Some(cutoff("2026-11-23T12:00:00Z"));
        assert!(covered(c, evidence("2026-11-23T11:59:58Z"), &[]).is_some());
        // Within the issue-time slack of the cutoff: not proven (see below).
        assert!(covered(c, evidence("2026-11-23T11:59:59Z"), &[]).is_none());
        assert!(covered(c, evidence("2026-11-23T12:00:00Z"), &[]).is_none());
        assert!(covered(c, evidence("2026-11-23T12:00:01Z"), &[]).is_none());
    }

    #[test]
    fn a_console_cutoff_with_a_fraction_counts_only_from_its_whole_second() {
        let evidence = |t: &str| Evidence {
            access_key_id: None,
            finding: None,
            first_activity: Some(at(t)),
        };
        let c = Some(cutoff("2026-11-23T12:00:00.900Z"));
        assert!(covered(c, evidence("2026-11-23T11:59:58.999Z"), &[]).is_some());
        // Between the whole second and the fraction: IAM might let it through.
        assert!(covered(c, evidence("2026-11-23T12:00:00.500Z"), &[]).is_none());
    }

    #[test]
    fn a_finding_that_now_names_another_key_is_not_covered_by_its_first_activity() {
        let c = Some(cutoff("2026-11-23T12:00:00Z"));
        let records = [record(K1, "2026-11-23T12:00:00Z", "f")];
        let k2 = key(K2);
        let same_finding = Evidence {
            access_key_id: Some(&k2),
            finding: Some("f"),
            first_activity: Some(at("2026-11-23T11:00:00Z")),
        };
        assert!(covered(c, same_finding, &records).is_none());
        // Another finding about K2, first seen before the cutoff: K2 was issued before.
        let other_finding = Evidence {
            finding: Some("g"),
            ..same_finding
        };
        assert!(covered(c, other_finding, &records).is_some());
    }

    #[test]
    fn a_long_term_keys_first_activity_covers_nothing_its_record_does() {
        // A leaked AKIA key first used at 09:00 can mint a session (GetSessionToken) at
        // 11:00, after a 10:00 cutoff: its first activity proves nothing about that
        // session.
        let k = key("AKIAAAAAAAAAAAAAAAA1");
        let evidence = Evidence {
            access_key_id: Some(&k),
            finding: Some("f"),
            first_activity: Some(at("2026-11-23T09:00:00Z")),
        };
        assert!(covered(Some(cutoff("2026-11-23T10:00:00Z")), evidence, &[]).is_none());
        // Once cutoff recorded it (inactive, and the cutoff after that), it is covered.
        let records = [record("AKIAAAAAAAAAAAAAAAA1", "2026-11-23T10:00:00Z", "f")];
        assert!(covered(Some(cutoff("2026-11-23T10:00:00Z")), evidence, &records).is_some());
    }

    #[test]
    fn a_first_activity_within_the_issue_time_slack_of_the_cutoff_is_not_covered() {
        let k = key(K1);
        let at_first = |first: &str| Evidence {
            access_key_id: Some(&k),
            finding: Some("f"),
            first_activity: Some(at(first)),
        };
        let existing = Some(cutoff("2026-11-23T12:00:00Z"));
        // Seen at 11:59:59.5: STS may have recorded 12:00:00, which DateLessThan allows.
        assert!(covered(existing, at_first("2026-11-23T11:59:59.500Z"), &[]).is_none());
        assert!(covered(existing, at_first("2026-11-23T11:59:59Z"), &[]).is_none());
        // A whole second and a hair before: certainly issued before 12:00:00.
        assert!(covered(existing, at_first("2026-11-23T11:59:58.999Z"), &[]).is_some());
    }

    #[test]
    fn a_key_only_seen_with_a_finding_vouches_for_nothing() {
        // A forged finding claimed an early first activity for the attacker's key; the
        // key was recorded as seen, not as covered: a real finding about it, first seen
        // after the cutoff, is not covered.
        let k = key(K1);
        let mut seen = record(K1, "2026-11-23T12:00:00Z", "forged");
        seen.seen_only = true;
        let real = Evidence {
            access_key_id: Some(&k),
            finding: Some("real"),
            first_activity: Some(at("2026-11-23T12:30:00Z")),
        };
        assert!(covered(Some(cutoff("2026-11-23T12:00:00Z")), real, &[seen.clone()]).is_none());
        // It still says what the forged finding began with.
        let k2 = key(K2);
        let same_finding_new_key = Evidence {
            access_key_id: Some(&k2),
            finding: Some("forged"),
            first_activity: Some(at("2026-11-23T11:00:00Z")),
        };
        assert!(
            covered(
                Some(cutoff("2026-11-23T12:00:00Z")),
                same_finding_new_key,
                &[seen]
            )
            .is_none()
        );
    }
}
