//! What the ledger keeps on a principal's lock item besides the lease: the idempotency
//! marks of the findings applied to it and the records of the keys revoked on it.
//!
//! They live on the lock item so that taking the lock (one conditional `UpdateItem`
//! answering with the item) also says "applied before?" and "which keys are covered?",
//! and giving it back (one transaction with the audit entries) records the new ones:
//! two ledger calls per revocation, where separate items cost five to seven. Only the
//! lock's holder rewrites them, so a rewrite from the state read when the lock was
//! taken loses nothing.
//!
//! The item must stay well under DynamoDB's 400 KB: each map keeps its newest
//! [`MAX_MARKS`] / [`MAX_KEY_RECORDS`] entries. Dropping one is safe in both cases: a
//! finding whose mark is gone is weighed again by the skip rule (the deny already
//! covers it, so nothing is written), and a key whose record is gone is no longer known
//! to be covered (a later finding naming it writes a later cutoff rather than skip).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use cutoff_domain::coverage::KeyRecord;

/// The most idempotency marks kept on one principal (marks live one hour).
pub const MAX_MARKS: usize = 200;

/// The most key records kept on one principal (records live [`super::KEY_RECORD_DAYS`]).
pub const MAX_KEY_RECORDS: usize = 200;

/// A finding applied to the principal: the audit entry that says how, until when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mark {
    /// The principal whose trail holds the entry ([`super::AuditEntry::principal`]).
    pub trail: String,
    /// The entry's sort key in that trail ([`super::AuditEntry::sort_key`]).
    pub entry: String,
    pub until: DateTime<Utc>,
}

/// A principal's marks and key records, as read with its lock.
///
/// The skip rule trusts a finding's first activity only when it can see every record
/// that bears on it (a record saying the finding began with another key stops it), so
/// the state says when its records may be missing some: never written by this version
/// (`keys_since` unset: a principal new to the ledger, or whose records the version
/// before kept in `keys#` items), or some dropped (`keys_incomplete_until`: a record
/// evicted past the cap, one a closing could not write, one unreadable), until the
/// last of those would have expired.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PrincipalState {
    /// By the digest of the finding's idempotency key.
    pub marks: BTreeMap<String, Mark>,
    /// By [`KeyRecord::sort_key`], with when the record expires.
    pub keys: BTreeMap<String, (KeyRecord, DateTime<Utc>)>,
    /// Since when this version keeps every key record of the principal here.
    pub keys_since: Option<DateTime<Utc>>,
    /// Until when some record may be missing.
    pub keys_incomplete_until: Option<DateTime<Utc>>,
}

impl PrincipalState {
    /// Without what expired by `now` (DynamoDB's TTL removes nothing inside an item, and
    /// removes whole items late).
    pub fn pruned(mut self, now: DateTime<Utc>) -> Self {
        self.marks.retain(|_, mark| mark.until > now);
        self.keys.retain(|_, (_, until)| *until > now);
        self.keys_incomplete_until = self.keys_incomplete_until.filter(|t| *t > now);
        self
    }

    /// The mark of `digest` if it holds at `now`.
    pub fn mark(&self, digest: &str, now: DateTime<Utc>) -> Option<&Mark> {
        self.marks.get(digest).filter(|mark| mark.until > now)
    }

    /// The key records that hold at `now`.
    pub fn key_records(&self, now: DateTime<Utc>) -> Vec<KeyRecord> {
        self.keys
            .values()
            .filter(|(_, until)| *until > now)
            .map(|(record, _)| record.clone())
            .collect()
    }

    /// Marks `digest` applied by the entry `entry` of `trail` until `until` (a later
    /// mark of the same digest replaces it).
    pub fn set_mark(&mut self, digest: String, trail: String, entry: String, until: DateTime<Utc>) {
        self.marks.insert(
            digest,
            Mark {
                trail,
                entry,
                until,
            },
        );
        // A dropped mark only means a redelivery is weighed again by the skip rule.
        keep_newest(&mut self.marks, MAX_MARKS, |mark| mark.until);
    }

    /// Records `record` until `until`, replacing the record of the same sort key. A
    /// record evicted past the cap leaves the records incomplete until it would have
    /// expired.
    pub fn set_key(&mut self, record: KeyRecord, until: DateTime<Utc>) {
        self.keys.insert(record.sort_key(), (record, until));
        if let Some(evicted) = keep_newest(&mut self.keys, MAX_KEY_RECORDS, |(_, until)| *until) {
            self.incomplete_until(evicted);
        }
    }

    /// Some record may be missing until `until`.
    pub fn incomplete_until(&mut self, until: DateTime<Utc>) {
        self.keys_incomplete_until =
            Some(self.keys_incomplete_until.map_or(until, |t| t.max(until)));
    }

    /// Whether the records are all there at `now`: kept by this version, none dropped
    /// that could still count.
    pub fn keys_complete(&self, now: DateTime<Utc>) -> bool {
        self.keys_since.is_some() && self.keys_incomplete_until.is_none_or(|t| t <= now)
    }

    /// Drops every key record: the principal's cutoff was released.
    pub fn drop_keys(&mut self) {
        self.keys.clear();
    }

    /// Nothing in it counts any more (the item can go).
    pub fn is_empty(&self) -> bool {
        self.marks.is_empty() && self.keys.is_empty() && self.keys_incomplete_until.is_none()
    }

    /// When the last thing in it expires: the item's time to live.
    pub fn expires_at(&self) -> Option<DateTime<Utc>> {
        let marks = self.marks.values().map(|mark| mark.until);
        let keys = self.keys.values().map(|(_, until)| *until);
        marks.chain(keys).chain(self.keys_incomplete_until).max()
    }
}

/// Keeps the `cap` entries of `map` that expire last (ties: the greater key stays, so
/// the choice does not depend on the order they came in); when it drops some, the
/// latest time one of them would have expired.
fn keep_newest<V>(
    map: &mut BTreeMap<String, V>,
    cap: usize,
    until: impl Fn(&V) -> DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    if map.len() <= cap {
        return None;
    }
    let mut order: Vec<(DateTime<Utc>, String)> =
        map.iter().map(|(k, v)| (until(v), k.clone())).collect();
    order.sort();
    let mut latest = None;
    for (t, key) in order.into_iter().take(map.len() - cap) {
        map.remove(&key);
        latest = Some(t);
    }
    latest
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use cutoff_domain::policy::Cutoff;
    use cutoff_domain::principal::AccessKeyId;

    fn at(minute: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 1, 9, 0, 0).unwrap() + chrono::Duration::minutes(minute)
    }

    fn record(key: &str, seen_only: bool) -> KeyRecord {
        KeyRecord {
            access_key_id: AccessKeyId::parse(key).unwrap(),
            cutoff: Cutoff::at_or_after(at(0)),
            finding: Some("f1".to_owned()),
            seen_only,
        }
    }

    #[test]
    fn a_mark_holds_until_its_time_and_not_at_it() {
        let mut state = PrincipalState::default();
        state.set_mark("d1".into(), "p".into(), "entry-1".into(), at(60));
        assert_eq!(
            state.mark("d1", at(59)).map(|m| m.entry.as_str()),
            Some("entry-1")
        );
        assert_eq!(state.mark("d1", at(60)), None);
        assert_eq!(state.mark("d2", at(0)), None);
        assert!(state.clone().pruned(at(60)).is_empty());
        assert!(!state.pruned(at(59)).is_empty());
    }

    #[test]
    fn a_key_record_replaces_its_own_sort_key_and_a_seen_record_stands_beside_it() {
        let mut state = PrincipalState::default();
        state.set_key(record("ASIAEXAMPLE000000001", false), at(10));
        state.set_key(record("ASIAEXAMPLE000000001", true), at(20));
        state.set_key(record("ASIAEXAMPLE000000001", false), at(30));
        assert_eq!(state.keys.len(), 2, "one covering and one seen record");
        assert_eq!(
            state.key_records(at(25)).len(),
            1,
            "the seen record expired"
        );
        assert_eq!(state.expires_at(), Some(at(30)));
        state.drop_keys();
        assert!(state.keys.is_empty());
    }

    #[test]
    fn the_item_keeps_the_newest_marks_and_records_up_to_its_caps() {
        let mut state = PrincipalState::default();
        for i in 0..(MAX_MARKS + 5) {
            state.set_mark(format!("d{i}"), "p".into(), format!("e{i}"), at(i as i64));
        }
        assert_eq!(state.marks.len(), MAX_MARKS);
        for i in 0..5 {
            assert!(!state.marks.contains_key(&format!("d{i}")), "the oldest go");
        }
        assert!(state.marks.contains_key(&format!("d{}", MAX_MARKS + 4)));
        for i in 0..(MAX_KEY_RECORDS + 1) {
            let key = format!("ASIAEXAMPLE{i:09}");
            state.set_key(record(&key, false), at(i as i64));
        }
        assert_eq!(state.keys.len(), MAX_KEY_RECORDS);
        assert!(!state.keys.contains_key("ASIAEXAMPLE000000000"));
        // The evicted record would have held until minute 0: until then the records
        // are not all there, and the skip rule must not trust a first activity.
        state.keys_since = Some(at(-10));
        assert_eq!(state.keys_incomplete_until, Some(at(0)));
        assert!(!state.keys_complete(at(0) - chrono::Duration::seconds(1)));
        assert!(state.keys_complete(at(0)));
        assert_eq!(state.expires_at(), Some(at((MAX_MARKS + 4) as i64)));
        assert!(
            !PrincipalState::default().keys_complete(at(0)),
            "never kept here"
        );
    }
}
