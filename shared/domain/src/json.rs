//! JSON read strictly: a duplicate object key anywhere is noticed, never resolved.
//!
//! serde_json keeps the last of two equal keys without a word. EventBridge's rule
//! matching, IAM, or any other reader may pick the other one, so a document with two
//! `detail.accountId` values could be matched by a rule on one account and acted on by
//! cutoff in the other. Every outside input cutoff acts on (events, queue messages,
//! invocation payloads, policy documents) is read through here, and one with a
//! duplicate key is refused.
//!
//! serde_json's recursion limit (128 levels) still applies: it is enforced by its
//! deserializer, below these visitors.

use std::cell::RefCell;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::principal::excerpt;

/// Why text is not strict JSON.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StrictJsonError {
    #[error("not valid JSON: {0}")]
    NotJson(String),
    #[error(
        "duplicate key {key} in {path}: cutoff refuses input that readers could understand differently"
    )]
    DuplicateKey { key: String, path: String },
}

/// The first duplicate key found: its (escaped, bounded) name and where it was.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Duplicate {
    key: String,
    path: String,
}

/// Reads `text` as JSON, refusing duplicate keys.
pub fn from_str(text: &str) -> Result<Value, StrictJsonError> {
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let found = RefCell::new(None);
    let value = ValueSeed {
        found: &found,
        path: "$",
    }
    .deserialize(&mut deserializer)
    .map_err(|e| StrictJsonError::NotJson(bounded(&e.to_string())))?;
    deserializer
        .end()
        .map_err(|e| StrictJsonError::NotJson(bounded(&e.to_string())))?;
    match found.into_inner() {
        Some(Duplicate { key, path }) => Err(StrictJsonError::DuplicateKey { key, path }),
        None => Ok(value),
    }
}

/// Reads bytes as JSON, refusing duplicate keys (and text that is not UTF-8).
pub fn from_slice(bytes: &[u8]) -> Result<Value, StrictJsonError> {
    let text = std::str::from_utf8(bytes)
        .map_err(|_| StrictJsonError::NotJson("the input is not UTF-8".to_owned()))?;
    from_str(text)
}

/// A Lambda payload read strictly. Deserializing never fails on a duplicate key (the
/// runtime would then report an error and Lambda retry the event): the payload keeps
/// the value and says which key was duplicated, so the handler can refuse it with an
/// outcome or a log line.
#[derive(Debug, Clone, PartialEq)]
pub struct Payload {
    pub value: Value,
    duplicate: Option<StrictJsonError>,
}

impl Payload {
    /// A payload known to be strict (built in code, or already checked).
    pub fn new(value: Value) -> Self {
        Self {
            value,
            duplicate: None,
        }
    }

    /// The value, or the duplicate key that makes it unusable.
    pub fn into_strict(self) -> Result<Value, StrictJsonError> {
        match self.duplicate {
            Some(err) => Err(err),
            None => Ok(self.value),
        }
    }

    pub fn duplicate(&self) -> Option<&StrictJsonError> {
        self.duplicate.as_ref()
    }
}

/// A value built in code has no duplicate keys to hide.
impl From<Value> for Payload {
    fn from(value: Value) -> Self {
        Self::new(value)
    }
}

impl<'de> Deserialize<'de> for Payload {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let found = RefCell::new(None);
        let value = ValueSeed {
            found: &found,
            path: "$",
        }
        .deserialize(deserializer)?;
        Ok(Self {
            value,
            duplicate: found
                .into_inner()
                .map(|Duplicate { key, path }| StrictJsonError::DuplicateKey { key, path }),
        })
    }
}

impl Serialize for Payload {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.value.serialize(serializer)
    }
}

/// Builds a `Value`, noting the first duplicate key (the first of its values is kept:
/// it is never used, as a payload with a duplicate is refused whole).
struct ValueSeed<'a> {
    found: &'a RefCell<Option<Duplicate>>,
    /// Where this value is, for the message: `$.detail.accountId`.
    path: &'a str,
}

impl<'de> DeserializeSeed<'de> for ValueSeed<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ValueSeed<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        self.deserialize(deserializer)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        let path = format!("{}[]", self.path);
        while let Some(item) = seq.next_element_seed(ValueSeed {
            found: self.found,
            path: &path,
        })? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut members = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let path = format!("{}.{}", self.path, bounded_key(&key));
            let value = map.next_value_seed(ValueSeed {
                found: self.found,
                path: &path,
            })?;
            if members.contains_key(&key) {
                let mut found = self.found.borrow_mut();
                if found.is_none() {
                    *found = Some(Duplicate {
                        key: excerpt(&key),
                        path: self.path.to_owned(),
                    });
                }
                continue;
            }
            members.insert(key, value);
        }
        Ok(Value::Object(members))
    }
}

/// A key as it appears in a path: printable and short (keys are outside text).
fn bounded_key(key: &str) -> String {
    crate::principal::clean_text(key, 40)
}

/// serde_json's messages are fixed phrases plus a position; the cap keeps one from
/// ever carrying a document.
fn bounded(message: &str) -> String {
    crate::principal::clean_text(message, 200)
}

/// Refuses duplicate keys when a value is read with serde into a type: for fields of
/// type `Value` inside otherwise typed documents (policy documents).
pub(crate) struct StrictValue(pub Value);

impl<'de> Deserialize<'de> for StrictValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let found = RefCell::new(None);
        let value = ValueSeed {
            found: &found,
            path: "$",
        }
        .deserialize(deserializer)?;
        match found.into_inner() {
            Some(Duplicate { key, path }) => Err(de::Error::custom(format_args!(
                "duplicate key {key} in {path}"
            ))),
            None => Ok(StrictValue(value)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_duplicate_key_anywhere_is_found_with_its_place() {
        let err = from_str(r#"{"detail":{"accountId":"111122223333","accountId":"444455556666"}}"#)
            .unwrap_err();
        assert_eq!(
            err,
            StrictJsonError::DuplicateKey {
                key: "\"accountId\"".to_owned(),
                path: "$.detail".to_owned()
            }
        );
        let err = from_str(r#"{"a":[{"b":1},{"c":1,"c":2}]}"#).unwrap_err();
        assert!(err.to_string().contains("$.a[]"), "{err}");
        assert!(
            from_str(r#"{"a":1,"A":2}"#).is_ok(),
            "keys are case-sensitive"
        );
    }

    #[test]
    fn strict_json_is_still_json() {
        assert_eq!(
            from_str(r#" {"a":[1,2.5,"x",null,true,{}]} "#).unwrap(),
            serde_json::json!({"a":[1,2.5,"x",null,true,{}]})
        );
        assert!(matches!(from_str("{"), Err(StrictJsonError::NotJson(_))));
        assert!(matches!(
            from_str("{} {}"),
            Err(StrictJsonError::NotJson(_))
        ));
        assert!(matches!(
            from_slice(&[0xff, 0xfe]),
            Err(StrictJsonError::NotJson(_))
        ));
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        assert!(matches!(from_str(&deep), Err(StrictJsonError::NotJson(_))));
    }

    #[test]
    fn a_payload_with_a_duplicate_key_deserializes_but_cannot_be_used() {
        let payload: Payload = serde_json::from_str(r#"{"action":"revoke","action":"release"}"#)
            .expect("a payload always deserializes");
        assert!(payload.duplicate().is_some());
        assert!(payload.into_strict().is_err());
        let payload: Payload = serde_json::from_str(r#"{"action":"revoke"}"#).unwrap();
        assert_eq!(payload.into_strict().unwrap()["action"], "revoke");
    }

    #[test]
    fn a_key_with_control_characters_cannot_forge_the_message() {
        let err = from_str("{\"a\\nb\":1,\"a\\nb\":2}")
            .unwrap_err()
            .to_string();
        assert!(!err.contains('\n'), "{err}");
    }
}
