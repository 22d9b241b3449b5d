//! The `Message` of an SNS `Publish` with `MessageStructure=json`: one body per
//! subscription protocol.
//!
//! # What AWS documents
//!
//! SNS `Publish` (<https://docs.aws.amazon.com/sns/latest/api/API_Publish.html>):
//!
//! - With `MessageStructure` set to `json`, `Message` must be a syntactically valid
//!   JSON object with at least a top-level key `default` whose value is a string;
//!   other top-level keys name a transport protocol (`http`, `https`, `email`,
//!   `email-json`, `sqs`, `lambda`, `sms`, `application`, `firehose`, …) and carry
//!   that protocol's message. A subscriber whose protocol has no key gets `default`.
//! - Keys of supported protocols must have simple JSON string values; the values are
//!   unescaped before use, and re-escaped for outbound JSON notifications. A
//!   non-string value makes SNS ignore the key.
//! - The values' length is bounded only by the message's: a message is UTF-8 and at
//!   most 256 KB, 262,144 bytes (not characters), and with several protocols the
//!   whole JSON object counts.
//! - `Subject` is the subject line of e-mail deliveries (and is included in the JSON
//!   that other endpoints receive); it applies with or without a message structure.
//!   It is under 100 characters, with no line breaks or control characters.
//!
//! # What each subscriber gets
//!
//! | key | who | what |
//! |---|---|---|
//! | `https` | Amazon Q Developer in chat applications (its subscription is protocol `https`), **and any other HTTPS webhook on the topic** | the custom notification ([`super::chat`]), JSON |
//! | `email` | e-mail subscriptions | the plain text, as before |
//! | `default` | everything else: `sqs`, `lambda`, `email-json`, `http`, `sms`, `firehose`, … | the same plain text, its outcome JSON after the separator line |
//!
//! So an HTTPS endpoint other than the chat service receives the chat notification
//! too (inside SNS's usual envelope, as `Message`), not the plain text; an HTTP one
//! receives the plain text. A queue or a function that parsed the plain text's
//! outcome JSON keeps doing so.
//!
//! # Staying under 256 KiB
//!
//! Every outside string is cut to 512 characters ([`super::sanitized`]), but a
//! follow-up may list 100 links of five such strings, in both the text and its JSON,
//! in characters of up to four bytes, and the text goes out twice (`default`,
//! `email`). SNS counts the message attributes (names, types, values) toward the same
//! 262,144 bytes (`MessageAttributeValue`), so the bodies get what the attributes and
//! a 1 KiB margin leave. [`message_structure`] shrinks in this order until the whole
//! fits: the
//! chat description to its essentials (headline, region, request id, links), then
//! the `email` key is left out (e-mail falls back to `default`, the same text),
//! then the text loses its outcome JSON, then its end. Each cut says so in the
//! message.

use serde_json::{Map, Value};

use super::{SEPARATOR, SnsMessage};

/// SNS's limit on a message, in bytes of UTF-8, the JSON structure included.
pub const SNS_MESSAGE_MAX_BYTES: usize = 262_144;

/// The protocol keys cutoff writes.
pub mod key {
    pub const DEFAULT: &str = "default";
    pub const EMAIL: &str = "email";
    /// The chat service's subscription (and any other HTTPS subscription).
    pub const HTTPS: &str = "https";
}

const JSON_LEFT_OUT: &str = "\n[The outcome JSON is left out: with it this message would exceed SNS's 256 KiB. A revocation's outcome is in cutoff's audit trail (`cutoff history`).]\n";
const TEXT_CUT: &str = "\n[… cut here: the whole message would exceed SNS's 256 KiB. A revocation's outcome is in cutoff's audit trail (`cutoff history`).]\n";

fn structure(default: &str, email: Option<&str>, chat: &str) -> String {
    let mut map = Map::new();
    map.insert(key::DEFAULT.to_owned(), Value::String(default.to_owned()));
    if let Some(email) = email {
        map.insert(key::EMAIL.to_owned(), Value::String(email.to_owned()));
    }
    map.insert(key::HTTPS.to_owned(), Value::String(chat.to_owned()));
    // A map of strings: serialising cannot fail.
    serde_json::to_string(&Value::Object(map)).unwrap_or_default()
}

/// The bytes `text` takes as a JSON string's content (escapes included).
fn escaped_len(c: char) -> usize {
    match c {
        '"' | '\\' | '\n' | '\r' | '\t' | '\u{08}' | '\u{0C}' => 2,
        c if (c as u32) < 0x20 => 6,
        c => c.len_utf8(),
    }
}

/// The longest prefix of `text` (on a character boundary) whose escaped form takes
/// at most `room` bytes.
fn prefix_within(text: &str, room: usize) -> &str {
    let mut used = 0;
    for (i, c) in text.char_indices() {
        used += escaped_len(c);
        if used > room {
            return &text[..i];
        }
    }
    text
}

/// Bytes of the message attributes, as SNS counts them toward the message's limit
/// (each attribute's name, data type and value; <https://docs.aws.amazon.com/sns/latest/api/API_MessageAttributeValue.html>).
pub fn attributes_bytes(message: &SnsMessage) -> usize {
    message
        .attributes
        .iter()
        .map(|(name, value)| name.len() + "String".len() + value.len())
        .sum()
}

/// Kept free besides the attributes: the subject and whatever else SNS may count.
const MARGIN_BYTES: usize = 1024;

/// The `Message` for `message`: `{"default": text, "email": text, "https": chat}`,
/// with its attributes at most [`SNS_MESSAGE_MAX_BYTES`] bytes less a margin (see the
/// module documentation for what is given up, in order, when it would not fit).
pub fn message_structure(message: &SnsMessage) -> String {
    let budget = SNS_MESSAGE_MAX_BYTES.saturating_sub(attributes_bytes(message) + MARGIN_BYTES);
    let body = message.body.as_str();
    let whole = structure(body, Some(body), &message.chat.to_json());
    if whole.len() <= budget {
        return whole;
    }
    let chat = message.chat.compact().to_json();
    let compact = structure(body, Some(body), &chat);
    if compact.len() <= budget {
        return compact;
    }
    let alone = structure(body, None, &chat);
    if alone.len() <= budget {
        return alone;
    }
    let text = match body.split_once(SEPARATOR) {
        Some((text, _)) => format!("{}{JSON_LEFT_OUT}", text.trim_end()),
        None => body.to_owned(),
    };
    let without_json = structure(&text, None, &chat);
    if without_json.len() <= budget {
        return without_json;
    }
    let overhead = structure("", None, &chat).len();
    let note: usize = TEXT_CUT.chars().map(escaped_len).sum();
    let room = budget.saturating_sub(overhead + note);
    let cut = format!("{}{TEXT_CUT}", prefix_within(&text, room));
    structure(&cut, None, &chat)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_escaped_length_is_what_serde_json_writes() {
        for text in [
            "plain",
            "quote \" and \\ backslash",
            "new\nline\ttab\r\u{1}\u{1f}",
            "é ü ✓ 🔒 ｀",
        ] {
            let json = serde_json::to_string(text).unwrap();
            assert_eq!(
                text.chars().map(escaped_len).sum::<usize>(),
                json.len() - 2,
                "{text:?}"
            );
        }
        assert_eq!(prefix_within("ab\"cd", 3), "ab");
        assert_eq!(prefix_within("ab\"cd", 4), "ab\"");
        assert_eq!(prefix_within("🔒🔒", 5), "🔒");
        assert_eq!(prefix_within("", 5), "");
    }

    #[test]
    fn the_attributes_count_toward_the_limit_so_the_bodies_leave_room_for_them() {
        let outcome = crate::outcome::Outcome::invalid_request("x");
        let mut message = crate::notify::render(&outcome, false);
        // Text alone, longer than any budget: the last step, the cut, is what fits.
        message.body = "t".repeat(300_000);
        message
            .attributes
            .push(("cutoff_team".to_owned(), "x".repeat(256)));
        for extra in [0, 10_000, 100_000] {
            message
                .attributes
                .push(("cutoff_extra".to_owned(), "a".repeat(extra)));
            let whole = message_structure(&message).len() + attributes_bytes(&message);
            assert!(
                whole + MARGIN_BYTES <= SNS_MESSAGE_MAX_BYTES,
                "{extra}: {whole}"
            );
            // Not more is cut than needed: the budget is used.
            assert!(
                whole + MARGIN_BYTES > SNS_MESSAGE_MAX_BYTES - 16,
                "{extra}: {whole}"
            );
            message.attributes.pop();
        }
    }
}
