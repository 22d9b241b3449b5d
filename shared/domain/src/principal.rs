//! IAM principal types, parsed at the boundary so an invalid value cannot exist.
//!
//! Every type here is built by `parse` (or `FromStr`/`TryFrom<String>` for serde) and
//! enforces the constraints IAM itself enforces: a value that IAM would reject is
//! rejected here, with an error that names the field and shows a bounded, escaped
//! excerpt of the input (never the whole input: findings can carry megabytes).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Why a value was rejected at the boundary.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what} {excerpt}: {why}")]
pub struct InvalidValue {
    /// The kind of value, e.g. "account id".
    pub what: &'static str,
    /// A bounded, escaped excerpt of the rejected input.
    pub excerpt: String,
    /// What rule it broke.
    pub why: &'static str,
}

impl InvalidValue {
    pub(crate) fn new(what: &'static str, input: &str, why: &'static str) -> Self {
        Self {
            what,
            excerpt: excerpt(input),
            why,
        }
    }
}

/// A printable, bounded rendering of untrusted text for error messages and logs:
/// at most 64 characters, escaped with Rust's debug quoting so control characters and
/// quotes cannot forge log lines.
pub fn excerpt(input: &str) -> String {
    const MAX: usize = 64;
    let mut cut: String = input.chars().take(MAX).collect();
    let truncated = cut.len() < input.len();
    if truncated {
        cut.push('…');
    }
    format!("{cut:?}")
}

/// `input` with control and invisible formatting characters (newlines, ANSI escapes,
/// bidirectional overrides, zero-width and filler characters) turned into spaces, a
/// run of them into one space, cut to at most `max` characters (the last one `…` when
/// cut). For any outside text that reaches a message, a log line or a terminal.
pub fn clean_text(input: &str, max: usize) -> String {
    let mut kept: Vec<char> = Vec::new();
    let mut last_replaced = false;
    for c in input.chars() {
        let replaced = is_unsafe_char(c);
        if replaced && last_replaced {
            continue;
        }
        last_replaced = replaced;
        kept.push(if replaced { ' ' } else { c });
        if kept.len() > max {
            kept.truncate(max.saturating_sub(1));
            if max > 0 {
                kept.push('…');
            }
            break;
        }
    }
    kept.into_iter().collect()
}

/// Control characters, and the invisible formatting characters that can hide or
/// reorder text: zero-width and bidirectional marks, embeddings, overrides and
/// isolates, soft hyphen, grapheme joiner, Mongolian vowel separator, Hangul fillers,
/// Khmer inherent vowels, interlinear annotations and tag characters.
pub fn is_unsafe_char(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{00AD}'
            | '\u{034F}'
            | '\u{061C}'
            | '\u{115F}'..='\u{1160}'
            | '\u{17B4}'..='\u{17B5}'
            | '\u{180E}'
            | '\u{200B}'..='\u{200F}'
            | '\u{2028}'..='\u{202E}'
            | '\u{2060}'..='\u{206F}'
            | '\u{3164}'
            | '\u{FEFF}'
            | '\u{FFA0}'
            | '\u{FFF9}'..='\u{FFFB}'
            | '\u{E0000}'..='\u{E007F}')
}

macro_rules! string_newtype {
    ($(#[$meta:meta])* $name:ident, $validate:path) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Parses and validates `input`.
            pub fn parse(input: &str) -> Result<Self, InvalidValue> {
                $validate(input)?;
                Ok(Self(input.to_owned()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl FromStr for $name {
            type Err = InvalidValue;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s)
            }
        }

        impl TryFrom<String> for $name {
            type Error = InvalidValue;
            fn try_from(s: String) -> Result<Self, Self::Error> {
                $validate(&s)?;
                Ok(Self(s))
            }
        }

        impl From<$name> for String {
            fn from(v: $name) -> String {
                v.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

fn validate_account(s: &str) -> Result<(), InvalidValue> {
    if s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err(InvalidValue::new(
            "account id",
            s,
            "an AWS account id is exactly 12 digits",
        ))
    }
}

/// IAM name characters: ASCII letters, digits and `_+=,.@-`.
fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'+' | b'=' | b',' | b'.' | b'@' | b'-')
}

fn validate_name(s: &str) -> Result<(), InvalidValue> {
    // IAM's character set would allow `..`; no real principal needs it, and it is the
    // classic traversal token, so a finding naming one is treated as hostile.
    if s.contains("..") {
        return Err(InvalidValue::new(
            "IAM name",
            s,
            "cutoff refuses names containing ..",
        ));
    }
    if s.is_empty() || s.len() > 64 {
        return Err(InvalidValue::new(
            "IAM name",
            s,
            "an IAM role or user name has 1 to 64 characters",
        ));
    }
    if !s.bytes().all(is_name_byte) {
        return Err(InvalidValue::new(
            "IAM name",
            s,
            "an IAM name uses only ASCII letters, digits and _+=,.@-",
        ));
    }
    Ok(())
}

fn validate_session(s: &str) -> Result<(), InvalidValue> {
    if s.len() < 2 || s.len() > 64 {
        return Err(InvalidValue::new(
            "session name",
            s,
            "a role session name has 2 to 64 characters",
        ));
    }
    if !s.bytes().all(is_name_byte) {
        return Err(InvalidValue::new(
            "session name",
            s,
            "a role session name uses only ASCII letters, digits and _+=,.@-",
        ));
    }
    Ok(())
}

/// Access key ids and unique ids (`AROA…`, `AIDA…`) share IAM's `[\w]{16,128}` rule.
fn validate_word_id(what: &'static str, s: &str) -> Result<(), InvalidValue> {
    if s.len() < 16 || s.len() > 128 {
        return Err(InvalidValue::new(what, s, "it has 16 to 128 characters"));
    }
    if !s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return Err(InvalidValue::new(
            what,
            s,
            "it uses only ASCII letters, digits and _",
        ));
    }
    Ok(())
}

fn validate_access_key_id(s: &str) -> Result<(), InvalidValue> {
    validate_word_id("access key id", s)
}

fn validate_unique_id(s: &str) -> Result<(), InvalidValue> {
    validate_word_id("IAM unique id", s)
}

fn validate_path(s: &str) -> Result<(), InvalidValue> {
    if s.is_empty() || s.len() > 512 {
        return Err(InvalidValue::new(
            "IAM path",
            s,
            "an IAM path has 1 to 512 characters",
        ));
    }
    if !s.starts_with('/') || !s.ends_with('/') {
        return Err(InvalidValue::new(
            "IAM path",
            s,
            "an IAM path starts and ends with /",
        ));
    }
    if !s.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
        return Err(InvalidValue::new(
            "IAM path",
            s,
            "an IAM path uses only printable ASCII without spaces",
        ));
    }
    if s.split('/')
        .any(|segment| segment == "." || segment == "..")
    {
        return Err(InvalidValue::new(
            "IAM path",
            s,
            "cutoff refuses paths with . or .. segments",
        ));
    }
    if s.contains("//") && s != "/" {
        return Err(InvalidValue::new(
            "IAM path",
            s,
            "an IAM path has no empty segments",
        ));
    }
    Ok(())
}

string_newtype!(
    /// An AWS account id: exactly 12 ASCII digits.
    Account,
    validate_account
);
string_newtype!(
    /// An IAM role, user or instance-profile name: ASCII `[A-Za-z0-9_+=,.@-]{1,64}`.
    PrincipalName,
    validate_name
);
string_newtype!(
    /// A role session name: ASCII `[A-Za-z0-9_+=,.@-]{2,64}`.
    SessionName,
    validate_session
);
string_newtype!(
    /// An access key id (`AKIA…` long-term, `ASIA…` temporary): `[A-Za-z0-9_]{16,128}`.
    AccessKeyId,
    validate_access_key_id
);
string_newtype!(
    /// An IAM unique id such as a RoleId (`AROA…`) or UserId (`AIDA…`).
    UniqueId,
    validate_unique_id
);
string_newtype!(
    /// An IAM path such as `/` or `/service/app/`.
    IamPath,
    validate_path
);

impl AccessKeyId {
    /// Long-term IAM user keys start with `AKIA`; only those can be deactivated.
    pub fn is_long_term(&self) -> bool {
        self.0.starts_with("AKIA")
    }

    /// Temporary STS credentials start with `ASIA`.
    pub fn is_temporary(&self) -> bool {
        self.0.starts_with("ASIA")
    }
}

impl IamPath {
    pub fn root() -> Self {
        Self("/".to_owned())
    }
}

const SERVICE_LINKED_PREFIX: &str = "AWSServiceRoleFor";
const SERVICE_LINKED_PATH: &str = "/aws-service-role/";
const IDENTITY_CENTER_PREFIX: &str = "AWSReservedSSO_";
const IDENTITY_CENTER_PATH: &str = "/aws-reserved/sso.amazonaws.com/";

/// What kind of role a role name (and, when known, its path) denotes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoleClass {
    /// An ordinary role cutoff may write a deny on.
    Ordinary,
    /// Created and owned by an AWS service; IAM refuses policy changes.
    ServiceLinked,
    /// Provisioned by IAM Identity Center from a permission set; changes are reverted.
    IdentityCenter,
}

/// Guesses what kind of role a name (and, when known, a path from an ARN) denotes.
/// Either signal is enough for a guess: findings carry only the name. A guess is for
/// triage and messages; anyone allowed `iam:CreateRole` can choose a name such as
/// `AWSReservedSSO_x`, so what cutoff may write is decided by
/// [`classify_role_path`] on the path IAM returns.
pub fn classify_role(name: &PrincipalName, path: Option<&IamPath>) -> RoleClass {
    let by_path = path.map(classify_role_path).unwrap_or(RoleClass::Ordinary);
    if by_path != RoleClass::Ordinary {
        by_path
    } else if name.as_str().starts_with(SERVICE_LINKED_PREFIX) {
        RoleClass::ServiceLinked
    } else if name.as_str().starts_with(IDENTITY_CENTER_PREFIX) {
        RoleClass::IdentityCenter
    } else {
        RoleClass::Ordinary
    }
}

/// What kind of role the path IAM returns (`GetRole`, account authorization details)
/// says it is. IAM reserves these paths: only the service, or IAM Identity Center, can
/// create roles under them.
pub fn classify_role_path(path: &IamPath) -> RoleClass {
    if path.as_str().starts_with(SERVICE_LINKED_PATH) {
        RoleClass::ServiceLinked
    } else if path.as_str().starts_with(IDENTITY_CENTER_PATH) {
        RoleClass::IdentityCenter
    } else {
        RoleClass::Ordinary
    }
}

/// AWS partitions. `aws`, `aws-cn` and `aws-us-gov` are the public ones; the isolated
/// and sovereign partitions are accepted too so that ARNs from them parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Partition {
    #[serde(rename = "aws")]
    Aws,
    #[serde(rename = "aws-cn")]
    AwsCn,
    #[serde(rename = "aws-us-gov")]
    AwsUsGov,
    #[serde(rename = "aws-iso")]
    AwsIso,
    #[serde(rename = "aws-iso-b")]
    AwsIsoB,
    #[serde(rename = "aws-iso-e")]
    AwsIsoE,
    #[serde(rename = "aws-iso-f")]
    AwsIsoF,
    #[serde(rename = "aws-eusc")]
    AwsEusc,
}

impl Partition {
    pub fn as_str(self) -> &'static str {
        match self {
            Partition::Aws => "aws",
            Partition::AwsCn => "aws-cn",
            Partition::AwsUsGov => "aws-us-gov",
            Partition::AwsIso => "aws-iso",
            Partition::AwsIsoB => "aws-iso-b",
            Partition::AwsIsoE => "aws-iso-e",
            Partition::AwsIsoF => "aws-iso-f",
            Partition::AwsEusc => "aws-eusc",
        }
    }

    pub fn parse(s: &str) -> Result<Self, InvalidValue> {
        Ok(match s {
            "aws" => Partition::Aws,
            "aws-cn" => Partition::AwsCn,
            "aws-us-gov" => Partition::AwsUsGov,
            "aws-iso" => Partition::AwsIso,
            "aws-iso-b" => Partition::AwsIsoB,
            "aws-iso-e" => Partition::AwsIsoE,
            "aws-iso-f" => Partition::AwsIsoF,
            "aws-eusc" => Partition::AwsEusc,
            _ => {
                return Err(InvalidValue::new(
                    "partition",
                    s,
                    "expected aws, aws-cn, aws-us-gov or an isolated partition",
                ));
            }
        })
    }
}

impl fmt::Display for Partition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What an IAM or STS ARN names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrincipalResource {
    Role {
        path: IamPath,
        name: PrincipalName,
    },
    User {
        path: IamPath,
        name: PrincipalName,
    },
    InstanceProfile {
        path: IamPath,
        name: PrincipalName,
    },
    /// `arn:aws:iam::123456789012:root`
    Root,
    /// `arn:aws:sts::123456789012:assumed-role/RoleName/session`
    AssumedRole {
        role: PrincipalName,
        session: SessionName,
    },
    /// `arn:aws:sts::123456789012:federated-user/name`
    FederatedUser {
        name: PrincipalName,
    },
}

/// A parsed IAM or STS principal ARN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrincipalArn {
    pub partition: Partition,
    pub account: Account,
    pub resource: PrincipalResource,
}

impl PrincipalArn {
    /// Parses `arn:<partition>:iam::<account>:(role|user|instance-profile)/<path…>/<name>`,
    /// `arn:<partition>:iam::<account>:root`, and the STS `assumed-role` and
    /// `federated-user` forms.
    pub fn parse(input: &str) -> Result<Self, InvalidValue> {
        const WHAT: &str = "principal ARN";
        if input.len() > 2048 {
            return Err(InvalidValue::new(
                WHAT,
                input,
                "an ARN has at most 2048 characters",
            ));
        }
        let mut parts = input.splitn(6, ':');
        let (Some(arn), Some(partition), Some(service), Some(region), Some(account), Some(rest)) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(InvalidValue::new(
                WHAT,
                input,
                "expected arn:<partition>:iam::<account>:<resource>",
            ));
        };
        if arn != "arn" {
            return Err(InvalidValue::new(WHAT, input, "an ARN starts with arn:"));
        }
        let partition = Partition::parse(partition)?;
        if !region.is_empty() {
            return Err(InvalidValue::new(
                WHAT,
                input,
                "IAM and STS principal ARNs have no region",
            ));
        }
        let account = Account::parse(account)?;
        let resource = match service {
            "iam" => parse_iam_resource(input, rest)?,
            "sts" => parse_sts_resource(input, rest)?,
            _ => {
                return Err(InvalidValue::new(
                    WHAT,
                    input,
                    "only iam and sts principal ARNs name a principal",
                ));
            }
        };
        Ok(Self {
            partition,
            account,
            resource,
        })
    }
}

impl fmt::Display for PrincipalArn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (p, a) = (self.partition, &self.account);
        match &self.resource {
            PrincipalResource::Role { path, name } => {
                write!(f, "arn:{p}:iam::{a}:role{path}{name}")
            }
            PrincipalResource::User { path, name } => {
                write!(f, "arn:{p}:iam::{a}:user{path}{name}")
            }
            PrincipalResource::InstanceProfile { path, name } => {
                write!(f, "arn:{p}:iam::{a}:instance-profile{path}{name}")
            }
            PrincipalResource::Root => write!(f, "arn:{p}:iam::{a}:root"),
            PrincipalResource::AssumedRole { role, session } => {
                write!(f, "arn:{p}:sts::{a}:assumed-role/{role}/{session}")
            }
            PrincipalResource::FederatedUser { name } => {
                write!(f, "arn:{p}:sts::{a}:federated-user/{name}")
            }
        }
    }
}

/// Splits `kind/<path…>/name` into the path (with its slashes) and the name.
fn split_path_name(
    input: &str,
    after_kind: &str,
) -> Result<(IamPath, PrincipalName), InvalidValue> {
    // `after_kind` is everything after `role`, starting with `/`.
    let Some(last_slash) = after_kind.rfind('/') else {
        return Err(InvalidValue::new(
            "principal ARN",
            input,
            "expected <kind>/<path>/<name>",
        ));
    };
    let (path, name) = after_kind.split_at(last_slash + 1);
    Ok((IamPath::parse(path)?, PrincipalName::parse(name)?))
}

fn parse_iam_resource(input: &str, rest: &str) -> Result<PrincipalResource, InvalidValue> {
    if rest == "root" {
        return Ok(PrincipalResource::Root);
    }
    let (kind, after) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => {
            return Err(InvalidValue::new(
                "principal ARN",
                input,
                "expected role/, user/, instance-profile/ or root",
            ));
        }
    };
    let (path, name) = split_path_name(input, after)?;
    match kind {
        "role" => Ok(PrincipalResource::Role { path, name }),
        "user" => Ok(PrincipalResource::User { path, name }),
        "instance-profile" => Ok(PrincipalResource::InstanceProfile { path, name }),
        _ => Err(InvalidValue::new(
            "principal ARN",
            input,
            "expected role/, user/, instance-profile/ or root",
        )),
    }
}

fn parse_sts_resource(input: &str, rest: &str) -> Result<PrincipalResource, InvalidValue> {
    let mut segments = rest.split('/');
    match (
        segments.next(),
        segments.next(),
        segments.next(),
        segments.next(),
    ) {
        (Some("assumed-role"), Some(role), Some(session), None) => {
            Ok(PrincipalResource::AssumedRole {
                role: PrincipalName::parse(role)?,
                session: SessionName::parse(session)?,
            })
        }
        (Some("federated-user"), Some(name), None, None) => Ok(PrincipalResource::FederatedUser {
            name: PrincipalName::parse(name)?,
        }),
        _ => Err(InvalidValue::new(
            "principal ARN",
            input,
            "expected assumed-role/<role>/<session> or federated-user/<name>",
        )),
    }
}

/// A role or an IAM user: the two principals that take inline policies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PrincipalType {
    Role,
    User,
}

impl PrincipalType {
    /// The longest a temporary credential of this principal can live: the one
    /// session-length rule every cutoff and every sweep is computed from.
    pub const fn max_session(self) -> chrono::Duration {
        match self {
            PrincipalType::Role => ROLE_MAX_SESSION,
            PrincipalType::User => USER_MAX_SESSION,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            PrincipalType::Role => "role",
            PrincipalType::User => "user",
        }
    }
}

/// The kind of principal a decision or request is about (DESIGN §2 principals table).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetKind {
    Role,
    User,
    Root,
    ServiceLinkedRole,
    IdentityCenterRole,
    InstanceProfile,
    FederatedUser,
    Unknown,
}

impl TargetKind {
    /// Kinds on which IAM lets cutoff write a deny. Every other kind is alert-only:
    /// root cannot be restricted by IAM policy, service-linked roles are unmodifiable,
    /// Identity Center roles are managed by permission sets, federated users have no
    /// principal to attach to, and instance profiles must be resolved to their role.
    pub fn is_revocable(self) -> bool {
        matches!(self, TargetKind::Role | TargetKind::User)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            TargetKind::Role => "role",
            TargetKind::User => "user",
            TargetKind::Root => "root",
            TargetKind::ServiceLinkedRole => "service_linked_role",
            TargetKind::IdentityCenterRole => "identity_center_role",
            TargetKind::InstanceProfile => "instance_profile",
            TargetKind::FederatedUser => "federated_user",
            TargetKind::Unknown => "unknown",
        }
    }

    /// Kinds that name an IAM role (an instance profile is resolved to one).
    pub fn is_role_like(self) -> bool {
        matches!(
            self,
            TargetKind::Role
                | TargetKind::ServiceLinkedRole
                | TargetKind::IdentityCenterRole
                | TargetKind::InstanceProfile
        )
    }

    /// The kind of a role with this name and path.
    pub fn of_role(name: &PrincipalName, path: Option<&IamPath>) -> Self {
        match classify_role(name, path) {
            RoleClass::Ordinary => TargetKind::Role,
            RoleClass::ServiceLinked => TargetKind::ServiceLinkedRole,
            RoleClass::IdentityCenter => TargetKind::IdentityCenterRole,
        }
    }
}

impl fmt::Display for TargetKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The principal a decision, request or outcome is about. Serializes to the `target`
/// object of the triage and outcome contracts.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Target {
    pub kind: TargetKind,
    pub account: Account,
    /// The bare name (last path segment).
    pub name: PrincipalName,
    pub access_key_id: Option<AccessKeyId>,
    pub session: Option<SessionName>,
}

impl Target {
    pub fn new(kind: TargetKind, account: Account, name: PrincipalName) -> Self {
        Self {
            kind,
            account,
            name,
            access_key_id: None,
            session: None,
        }
    }

    /// A role target, classified by name (service-linked and Identity Center roles get
    /// their own kinds).
    pub fn role(account: Account, name: PrincipalName) -> Self {
        let kind = TargetKind::of_role(&name, None);
        Self::new(kind, account, name)
    }

    /// The target an ARN names. Assumed-role ARNs name their role and session.
    pub fn from_arn(arn: &PrincipalArn) -> Self {
        let account = arn.account.clone();
        match &arn.resource {
            PrincipalResource::Role { path, name } => {
                Self::new(TargetKind::of_role(name, Some(path)), account, name.clone())
            }
            PrincipalResource::User { name, .. } => {
                Self::new(TargetKind::User, account, name.clone())
            }
            PrincipalResource::InstanceProfile { name, .. } => {
                Self::new(TargetKind::InstanceProfile, account, name.clone())
            }
            PrincipalResource::Root => Self::new(TargetKind::Root, account, root_name()),
            PrincipalResource::AssumedRole { role, session } => Self {
                session: Some(session.clone()),
                ..Self::role(account, role.clone())
            },
            PrincipalResource::FederatedUser { name } => {
                Self::new(TargetKind::FederatedUser, account, name.clone())
            }
        }
    }
}

/// The name cutoff gives the root user, which has no IAM name of its own.
pub fn root_name() -> PrincipalName {
    PrincipalName("root".to_owned())
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} in {}", self.kind, self.name, self.account)?;
        if let Some(session) = &self.session {
            write!(f, " (session {session})")?;
        }
        Ok(())
    }
}

/// A name pattern for protected principals: an exact name, or a prefix ending in `*`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct NamePattern(String);

impl NamePattern {
    pub fn parse(input: &str) -> Result<Self, InvalidValue> {
        let stem = input.strip_suffix('*').unwrap_or(input);
        if stem.contains('*') {
            return Err(InvalidValue::new(
                "name pattern",
                input,
                "only a single trailing * is supported",
            ));
        }
        if !stem.is_empty() {
            validate_name(stem)?;
        } else if !input.ends_with('*') {
            return Err(InvalidValue::new(
                "name pattern",
                input,
                "the pattern is empty",
            ));
        }
        Ok(Self(input.to_owned()))
    }

    /// IAM names are case-insensitive (`Cutoff-Member` is `cutoff-member`), so
    /// protection is too: a name in another casing must not slip through.
    pub fn matches(&self, name: &PrincipalName) -> bool {
        let name = name.as_str().to_ascii_lowercase();
        let pattern = self.0.to_ascii_lowercase();
        match pattern.strip_suffix('*') {
            Some(prefix) => name.starts_with(prefix),
            None => name == pattern,
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for NamePattern {
    type Error = InvalidValue;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<NamePattern> for String {
    fn from(p: NamePattern) -> String {
        p.0
    }
}

impl fmt::Display for NamePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An AWS Organizations id: `o-` and 10 to 32 lowercase letters or digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OrganizationId(String);

impl OrganizationId {
    pub fn parse(input: &str) -> Result<Self, InvalidValue> {
        let ok = input.strip_prefix("o-").is_some_and(|rest| {
            (10..=32).contains(&rest.len())
                && rest
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        });
        if ok {
            Ok(Self(input.to_owned()))
        } else {
            Err(InvalidValue::new(
                "organization id",
                input,
                "an Organizations id is o- and 10 to 32 lowercase letters or digits",
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for OrganizationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The accounts cutoff may reach into: its Organization, an explicit list, or both
/// (then an account must be on the list, and IAM also holds the member-role
/// assumption to the Organization). A deployment without either is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountScope {
    pub organization: Option<OrganizationId>,
    /// None: every account of the Organization.
    pub accounts: Option<Vec<Account>>,
}

impl AccountScope {
    /// Why cutoff must not reach into `account`, checked before any call. The home
    /// account is always in scope (cutoff acts there with its own role). Membership
    /// of the Organization cannot be checked without a call: the revoker's and
    /// sweeper's roles may assume the member role only with `aws:ResourceOrgID`
    /// equal to the Organization, so IAM refuses the rest.
    pub fn refuse(&self, account: &Account, home: &Account) -> Option<String> {
        if account == home {
            return None;
        }
        match &self.accounts {
            Some(list) if !list.contains(account) => Some(format!(
                "account {account} is not one of the {} accounts cutoff is configured for",
                list.len()
            )),
            _ => None,
        }
    }
}

/// A role or user cutoff never writes to, named by its exact ARN (the path is not
/// part of the match: IAM names are unique in an account whatever the path, and
/// compared without regard to case).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtectedArn {
    pub account: Account,
    /// True for a role ARN, false for a user ARN.
    pub role: bool,
    pub name: PrincipalName,
    arn: String,
}

impl ProtectedArn {
    pub fn parse(input: &str) -> Result<Self, InvalidValue> {
        let arn = PrincipalArn::parse(input)?;
        let (role, name) = match &arn.resource {
            PrincipalResource::Role { name, .. } => (true, name.clone()),
            PrincipalResource::User { name, .. } => (false, name.clone()),
            _ => {
                return Err(InvalidValue::new(
                    "protected principal ARN",
                    input,
                    "only role and user ARNs can be protected",
                ));
            }
        };
        Ok(Self {
            account: arn.account.clone(),
            role,
            name,
            arn: arn.to_string(),
        })
    }

    fn matches(&self, account: &Account, kind: TargetKind, name: &PrincipalName) -> bool {
        let kind_matches = if self.role {
            kind.is_role_like()
        } else {
            kind == TargetKind::User
        };
        kind_matches
            && &self.account == account
            && name.as_str().eq_ignore_ascii_case(self.name.as_str())
    }
}

impl fmt::Display for ProtectedArn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.arn)
    }
}

/// The principals cutoff never writes to: the member role (by its exact name, in every
/// account), the deployment's own roles and others the deployer names (by exact ARN),
/// and names or name patterns the deployer adds. There is no built-in prefix: anyone
/// allowed `iam:CreateRole` could name a role after it and make it unrevocable.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Protection {
    pub member_role: Option<PrincipalName>,
    pub arns: Vec<ProtectedArn>,
    pub patterns: Vec<NamePattern>,
}

impl Protection {
    /// Why the principal is protected, or None. Role-like kinds (an instance profile
    /// is checked again once resolved to its role) and users are told apart: a user
    /// named like the member role is not the member role.
    pub fn reason(
        &self,
        account: &Account,
        kind: TargetKind,
        name: &PrincipalName,
    ) -> Option<String> {
        if kind.is_role_like()
            && self
                .member_role
                .as_ref()
                .is_some_and(|m| m.as_str().eq_ignore_ascii_case(name.as_str()))
        {
            return Some("as cutoff's member role".to_owned());
        }
        if let Some(arn) = self.arns.iter().find(|a| a.matches(account, kind, name)) {
            return Some(format!("by its exact ARN {arn}"));
        }
        self.patterns
            .iter()
            .find(|p| p.matches(name))
            .map(|p| format!("by the name `{p}`"))
    }

    /// [`Protection::reason`] for a target.
    pub fn reason_for(&self, target: &Target) -> Option<String> {
        self.reason(&target.account, target.kind, &target.name)
    }

    /// Every rule, for people: `cutoff-member (member role), arn:…, break-glass-*`.
    pub fn describe(&self) -> Vec<String> {
        self.member_role
            .iter()
            .map(|m| format!("{m} (member role, every account)"))
            .chain(self.arns.iter().map(ToString::to_string))
            .chain(self.patterns.iter().map(ToString::to_string))
            .collect()
    }
}

/// The longest a role session can live (`MaxSessionDuration` tops out at 12 h).
pub const ROLE_MAX_SESSION: chrono::Duration = chrono::Duration::hours(12);
/// The longest `GetSessionToken` credentials of an IAM user can live.
pub const USER_MAX_SESSION: chrono::Duration = chrono::Duration::hours(36);

/// `arn:<partition>:sns:<region>:<account>:<topic>`.
pub fn is_sns_topic_arn(s: &str) -> bool {
    let parts: Vec<&str> = s.split(':').collect();
    parts.len() == 6
        && parts[0] == "arn"
        && Partition::parse(parts[1]).is_ok()
        && parts[2] == "sns"
        && !parts[3].is_empty()
        && Account::parse(parts[4]).is_ok()
        && !parts[5].is_empty()
        && parts[5].len() <= 256
        && parts[5]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_is_exactly_twelve_ascii_digits() {
        assert!(Account::parse("123456789012").is_ok());
        for bad in [
            "12345678901",
            "1234567890123",
            "12345678901a",
            "",
            " 23456789012",
            "１２３456789012",
        ] {
            assert!(Account::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn names_follow_the_iam_character_set_and_length() {
        for good in ["a", "payments-api", "A_b+c=d,e.f@g-h", &"x".repeat(64)] {
            assert!(PrincipalName::parse(good).is_ok(), "{good:?} rejected");
        }
        let too_long = "x".repeat(65);
        for bad in [
            "",
            "a/b",
            "..",
            "a..b",
            "../admin",
            "paymënts",
            "role name",
            "a\nb",
            "a*",
            too_long.as_str(),
            "a:b",
        ] {
            assert!(PrincipalName::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn session_names_need_two_characters() {
        assert!(SessionName::parse("i-0123456789abcdef0").is_ok());
        assert!(SessionName::parse("me@example.com").is_ok());
        assert!(SessionName::parse("a").is_err());
        assert!(SessionName::parse(&"s".repeat(65)).is_err());
        assert!(SessionName::parse("has space").is_err());
    }

    #[test]
    fn access_keys_follow_the_iam_pattern_and_know_their_kind() {
        let long = AccessKeyId::parse("AKIAIOSFODNN7EXAMPLE").unwrap();
        assert!(long.is_long_term() && !long.is_temporary());
        let temp = AccessKeyId::parse("ASIAIOSFODNN7EXAMPLE").unwrap();
        assert!(temp.is_temporary() && !temp.is_long_term());
        assert!(AccessKeyId::parse("AKIA123").is_err());
        assert!(AccessKeyId::parse("AKIA-IOSFODNN7EXAMPLE").is_err());
    }

    #[test]
    fn paths_start_and_end_with_a_slash() {
        assert!(IamPath::parse("/").is_ok());
        assert!(IamPath::parse("/service/app/").is_ok());
        assert!(IamPath::parse("service/").is_err());
        assert!(IamPath::parse("/service").is_err());
        assert!(IamPath::parse("/a b/").is_err());
        assert!(IamPath::parse("/a//b/").is_err());
        assert!(IamPath::parse("/a/../").is_err());
        assert!(IamPath::parse("/./").is_err());
    }

    #[test]
    fn role_arns_parse_in_every_partition_with_paths() {
        for partition in ["aws", "aws-cn", "aws-us-gov"] {
            let arn = format!("arn:{partition}:iam::123456789012:role/service/app-runner");
            let parsed = PrincipalArn::parse(&arn).unwrap();
            assert_eq!(parsed.partition.as_str(), partition);
            assert_eq!(
                parsed.resource,
                PrincipalResource::Role {
                    path: IamPath::parse("/service/").unwrap(),
                    name: PrincipalName::parse("app-runner").unwrap()
                }
            );
            assert_eq!(parsed.to_string(), arn, "display round-trips");
        }
    }

    #[test]
    fn user_instance_profile_root_and_sts_arns_parse() {
        let user = PrincipalArn::parse("arn:aws:iam::123456789012:user/alice").unwrap();
        assert!(matches!(user.resource, PrincipalResource::User { .. }));
        let ip = PrincipalArn::parse("arn:aws:iam::123456789012:instance-profile/web").unwrap();
        assert!(matches!(
            ip.resource,
            PrincipalResource::InstanceProfile { .. }
        ));
        let root = PrincipalArn::parse("arn:aws:iam::123456789012:root").unwrap();
        assert_eq!(root.resource, PrincipalResource::Root);
        let assumed = PrincipalArn::parse(
            "arn:aws:sts::123456789012:assumed-role/payments-api/i-0123456789abcdef0",
        )
        .unwrap();
        let target = Target::from_arn(&assumed);
        assert_eq!(target.kind, TargetKind::Role);
        assert_eq!(target.name.as_str(), "payments-api");
        assert_eq!(
            target.session.as_ref().map(SessionName::as_str),
            Some("i-0123456789abcdef0")
        );
        let fed = PrincipalArn::parse("arn:aws:sts::123456789012:federated-user/bob").unwrap();
        assert_eq!(Target::from_arn(&fed).kind, TargetKind::FederatedUser);
    }

    #[test]
    fn malformed_arns_are_rejected() {
        for bad in [
            "",
            "arn:aws:iam::123456789012",
            "arn:aws:iam::12345678901:role/x",
            "arn:aws:iam:us-east-1:123456789012:role/x",
            "arn:aws:s3:::bucket",
            "arn:aws-mars:iam::123456789012:role/x",
            "arn:aws:iam::123456789012:group/x",
            "arn:aws:iam::123456789012:role/",
            "arn:aws:iam::123456789012:role/a/../b",
            "arn:aws:iam::123456789012:role/paymënts",
            "arn:aws:sts::123456789012:assumed-role/r",
            "arn:aws:sts::123456789012:assumed-role/r/s/extra",
            "nra:aws:iam::123456789012:role/x",
        ] {
            assert!(PrincipalArn::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn service_linked_and_identity_center_roles_are_recognised_by_name_or_path() {
        let name = |s| PrincipalName::parse(s).unwrap();
        let path = |s| IamPath::parse(s).unwrap();
        assert_eq!(
            classify_role(&name("AWSServiceRoleForECS"), None),
            RoleClass::ServiceLinked
        );
        assert_eq!(
            classify_role(
                &name("custom"),
                Some(&path("/aws-service-role/ecs.amazonaws.com/"))
            ),
            RoleClass::ServiceLinked
        );
        assert_eq!(
            classify_role(&name("AWSReservedSSO_Admin_0123456789abcdef"), None),
            RoleClass::IdentityCenter
        );
        assert_eq!(
            classify_role(
                &name("x"),
                Some(&path("/aws-reserved/sso.amazonaws.com/eu-west-1/"))
            ),
            RoleClass::IdentityCenter
        );
        assert_eq!(
            classify_role(&name("payments-api"), Some(&path("/"))),
            RoleClass::Ordinary
        );
        let arn = PrincipalArn::parse(
            "arn:aws:iam::123456789012:role/aws-reserved/sso.amazonaws.com/eu-west-1/AWSReservedSSO_Admin_abc",
        )
        .unwrap();
        assert_eq!(Target::from_arn(&arn).kind, TargetKind::IdentityCenterRole);
    }

    #[test]
    fn name_patterns_match_exact_names_and_prefixes() {
        let exact = NamePattern::parse("cutoff-member").unwrap();
        let prefix = NamePattern::parse("cutoff-*").unwrap();
        let name = |s| PrincipalName::parse(s).unwrap();
        assert!(exact.matches(&name("cutoff-member")));
        assert!(!exact.matches(&name("cutoff-member2")));
        assert!(
            exact.matches(&name("Cutoff-Member")),
            "IAM names ignore case"
        );
        assert!(prefix.matches(&name("CUTOFF-revoker")));
        assert!(prefix.matches(&name("cutoff-revoker")));
        assert!(!prefix.matches(&name("payments")));
        assert!(NamePattern::parse("a*b*").is_err());
        assert!(NamePattern::parse("").is_err());
        assert!(NamePattern::parse("bad/name").is_err());
    }

    #[test]
    fn errors_show_a_bounded_escaped_excerpt() {
        let huge = "\n".repeat(1_000_000);
        let err = PrincipalName::parse(&huge).unwrap_err().to_string();
        assert!(
            err.len() < 600,
            "error message is bounded: {} bytes",
            err.len()
        );
        assert!(!err.contains('\n'), "control characters are escaped");
    }

    #[test]
    fn serde_rejects_invalid_values() {
        assert!(serde_json::from_str::<Account>("\"123\"").is_err());
        assert!(serde_json::from_str::<Account>("\"123456789012\"").is_ok());
        assert!(serde_json::from_str::<PrincipalName>("\"a/b\"").is_err());
    }

    #[test]
    fn sns_topic_arns_are_recognised() {
        assert!(is_sns_topic_arn(
            "arn:aws:sns:us-east-1:111122223333:payments-alerts"
        ));
        assert!(is_sns_topic_arn(
            "arn:aws-us-gov:sns:us-gov-west-1:111122223333:x.fifo"
        ));
        assert!(!is_sns_topic_arn("arn:aws:sqs:us-east-1:111122223333:q"));
        assert!(!is_sns_topic_arn("arn:aws:sns:us-east-1:1111:q"));
        assert!(!is_sns_topic_arn("arn:aws:sns:us-east-1:111122223333:a:b"));
    }
}
