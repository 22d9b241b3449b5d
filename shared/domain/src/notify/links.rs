//! Console links in a message: the finding, the principal in IAM, and CloudTrail's
//! event history filtered to the credential.
//!
//! A link is built only from values that validate (a region name, a 12-digit
//! account, an IAM name, an access key id, a finding id of the shape its service
//! gives), and every part is percent-encoded even so. A value that does not validate
//! (a finding id cut by [`super::sanitized`], an id from a forged finding, a region
//! that is not one) leaves its link out: a person clicks these, and a link built
//! from an attacker's text could lead anywhere.
//!
//! The URL forms, as public code that links to these pages uses them (none is in
//! AWS's API documentation; the consoles redirect `console.aws.amazon.com` to the
//! regional host):
//!
//! - GuardDuty: `…/guardduty/home?region=R#/findings?macros=current&fId=ID`.
//! - Security Hub (ASFF): `…/securityhub/home?region=R#/findings?search=Id%3D%255Coperator%255C%253AEQUALS%255C%253A<id>`,
//!   the id percent-encoded twice (the console decodes the search twice). Security
//!   Hub's OCSF findings (`Findings Imported V2`) get no link: the V2 console's search
//!   by the `metadata.uid` cutoff holds is not one cutoff has seen working.
//! - IAM: `…/iam/home#/roles/details/NAME`, `…/iam/home#/users/details/NAME`.
//! - CloudTrail: `…/cloudtrail/home?region=R#/events?AccessKeyId=K` (or `Username=`,
//!   a role session's user name being its session name). Event history holds the
//!   management events of one account and one region, for 90 days
//!   (<https://docs.aws.amazon.com/awscloudtrail/latest/userguide/view-cloudtrail-events.html>).
//!
//! The console host by partition: `console.aws.amazon.com` (aws),
//! `console.amazonaws.cn` (aws-cn), `console.amazonaws-us-gov.com` (aws-us-gov). The
//! isolated and sovereign partitions get no links (their consoles are not public).
//!
//! Every link opens in the account the reader is signed in to: IAM and CloudTrail
//! show the member account's principal and events only when the reader is signed in
//! to that account; GuardDuty and Security Hub show a member's finding in the
//! administrator account, where cutoff runs.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use crate::outcome::{FindingFormat, Outcome};
use crate::principal::{Partition, Target, TargetKind};
use crate::triage::Source;

/// Everything but RFC 3986's unreserved characters is encoded: a value can never
/// end a query parameter, start a fragment, or carry a second URL.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The longest Security Hub finding id (ASFF `Id`: "Maximum length of 512").
const SECURITY_HUB_ID_MAX: usize = 512;
/// GuardDuty's finding ids are 32 lowercase hex digits; anything alphanumeric up to
/// this length is accepted, anything else is no GuardDuty finding id.
const GUARDDUTY_ID_MAX: usize = 64;

/// The partition a region is in, for the regions whose console cutoff can link to.
/// None for a value that is no region name, and for the isolated and sovereign
/// partitions (`us-iso-east-1`, `eusc-de-east-1`, …), whose consoles are not public.
pub fn console_partition(region: &str) -> Option<Partition> {
    if !crate::chain::is_region_name(region) {
        return None;
    }
    let prefix = region.split('-').next().unwrap_or_default();
    let second = region.split('-').nth(1).unwrap_or_default();
    if second.starts_with("iso") || prefix == "eusc" {
        return None;
    }
    Some(match (prefix, second) {
        ("cn", _) => Partition::AwsCn,
        ("us", "gov") => Partition::AwsUsGov,
        _ => Partition::Aws,
    })
}

fn console_host(partition: Partition) -> Option<&'static str> {
    match partition {
        Partition::Aws => Some("console.aws.amazon.com"),
        Partition::AwsCn => Some("console.amazonaws.cn"),
        Partition::AwsUsGov => Some("console.amazonaws-us-gov.com"),
        _ => None,
    }
}

fn encode(value: &str) -> String {
    utf8_percent_encode(value, COMPONENT).to_string()
}

/// `https://<host>/<service>/home?region=<region>`, for a region with a public console.
fn regional(service: &str, region: &str) -> Option<String> {
    let host = console_host(console_partition(region)?)?;
    Some(format!(
        "https://{host}/{service}/home?region={}",
        encode(region)
    ))
}

/// The links of one message, each left out when what it needs does not validate.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConsoleLinks {
    /// The finding in GuardDuty's or Security Hub's console.
    pub finding: Option<String>,
    /// The principal's page in the IAM console.
    pub principal: Option<String>,
    /// CloudTrail's event history, filtered to the credential.
    pub cloudtrail: Option<String>,
}

impl ConsoleLinks {
    /// The links for `o`. `region` is where the finding and the credential's events
    /// are ([`super::Place::region`]); the IAM console is global, its partition that
    /// of `region`.
    pub fn for_outcome(o: &Outcome, region: Option<&str>) -> Self {
        let Some(region) = region else {
            return Self::default();
        };
        Self {
            finding: finding_link(o, region),
            principal: o.target.as_ref().and_then(|t| principal_link(t, region)),
            cloudtrail: o.target.as_ref().and_then(|t| cloudtrail_link(t, region)),
        }
    }

    /// (label, link) of the links present, in the order a reader wants them.
    pub fn labelled(&self) -> Vec<(&'static str, &str)> {
        [
            ("Finding", self.finding.as_deref()),
            ("Principal in IAM", self.principal.as_deref()),
            ("CloudTrail", self.cloudtrail.as_deref()),
        ]
        .into_iter()
        .filter_map(|(label, link)| link.map(|l| (label, l)))
        .collect()
    }
}

fn is_guardduty_id(id: &str) -> bool {
    (1..=GUARDDUTY_ID_MAX).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// An ASFF finding id: what AWS's integrations write (ARNs, product-specific paths)
/// and nothing with spaces, quotes, angle brackets or other characters a link or a
/// chat message could be bent with.
fn is_security_hub_id(id: &str) -> bool {
    (1..=SECURITY_HUB_ID_MAX).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b":/._+=@,#-".contains(&b))
}

fn finding_link(o: &Outcome, region: &str) -> Option<String> {
    let id = o.trigger.finding_id.as_deref()?;
    match o.trigger.source {
        Source::GuardDuty if is_guardduty_id(id) => Some(format!(
            "{}#/findings?macros=current&fId={}",
            regional("guardduty", region)?,
            encode(id)
        )),
        Source::SecurityHub
            if o.trigger.finding_format != Some(FindingFormat::Ocsf) && is_security_hub_id(id) =>
        {
            Some(format!(
                "{}#/findings?search=Id%3D%255Coperator%255C%253AEQUALS%255C%253A{}",
                regional("securityhub", region)?,
                encode(&encode(id))
            ))
        }
        _ => None,
    }
}

fn principal_link(t: &Target, region: &str) -> Option<String> {
    let host = console_host(console_partition(region)?)?;
    let page = match t.kind {
        TargetKind::Role | TargetKind::ServiceLinkedRole | TargetKind::IdentityCenterRole => {
            "roles"
        }
        TargetKind::User => "users",
        // No IAM page of its own: the root user, federated users, instance profiles
        // (a role's), a principal of unknown kind.
        _ => return None,
    };
    Some(format!(
        "https://{host}/iam/home#/{page}/details/{}",
        encode(t.name.as_str())
    ))
}

/// Filtered by what names the credential most narrowly: the access key (the stolen
/// credential itself), else the session name (a role session's user name in
/// CloudTrail), else a user's or the root user's name. A role with neither key nor
/// session has no user name of its own in CloudTrail: no link.
fn cloudtrail_link(t: &Target, region: &str) -> Option<String> {
    let filter = if let Some(key) = &t.access_key_id {
        format!("AccessKeyId={}", encode(key.as_str()))
    } else if let Some(session) = &t.session {
        format!("Username={}", encode(session.as_str()))
    } else {
        match t.kind {
            TargetKind::User | TargetKind::FederatedUser => {
                format!("Username={}", encode(t.name.as_str()))
            }
            TargetKind::Root => "Username=root".to_owned(),
            _ => return None,
        }
    };
    Some(format!(
        "{}#/events?{filter}",
        regional("cloudtrail", region)?
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::{Outcome, Status, Trigger};
    use crate::principal::{AccessKeyId, Account, PrincipalName, SessionName};

    fn role(name: &str) -> Target {
        Target::new(
            TargetKind::Role,
            Account::parse("111122223333").unwrap(),
            PrincipalName::parse(name).unwrap(),
        )
    }

    fn alert(target: Target, trigger: Trigger) -> Outcome {
        let mut o = Outcome::invalid_request("x");
        o.status = Status::Alerted;
        o.error = None;
        o.target = Some(target);
        o.trigger = trigger;
        o
    }

    #[test]
    fn each_partition_has_its_console_and_isolated_ones_have_none() {
        let host = |r: &str| console_partition(r).and_then(console_host);
        assert_eq!(host("eu-west-1"), Some("console.aws.amazon.com"));
        assert_eq!(host("cn-northwest-1"), Some("console.amazonaws.cn"));
        assert_eq!(host("us-gov-west-1"), Some("console.amazonaws-us-gov.com"));
        for none in [
            "us-iso-east-1",
            "us-isob-east-1",
            "eu-isoe-west-1",
            "us-isof-south-1",
            "eusc-de-east-1",
            "",
            "evil.example/x",
            "us-east-1#",
            "US-EAST-1",
        ] {
            assert_eq!(host(none), None, "{none:?}");
        }
    }

    #[test]
    fn a_guardduty_finding_links_to_its_page_in_the_findings_region() {
        let mut t = role("payments-api");
        t.access_key_id = Some(AccessKeyId::parse("ASIAZXCVBNMASDFGHJKL").unwrap());
        let o = alert(
            t,
            Trigger {
                source: Source::GuardDuty,
                finding_id: Some("455aa647b26d9310341733d58b9b7442".to_owned()),
                ..Trigger::default()
            },
        );
        let links = ConsoleLinks::for_outcome(&o, Some("eu-west-1"));
        assert_eq!(
            links.finding.as_deref(),
            Some(
                "https://console.aws.amazon.com/guardduty/home?region=eu-west-1#/findings?macros=current&fId=455aa647b26d9310341733d58b9b7442"
            )
        );
        assert_eq!(
            links.principal.as_deref(),
            Some("https://console.aws.amazon.com/iam/home#/roles/details/payments-api")
        );
        assert_eq!(
            links.cloudtrail.as_deref(),
            Some(
                "https://console.aws.amazon.com/cloudtrail/home?region=eu-west-1#/events?AccessKeyId=ASIAZXCVBNMASDFGHJKL"
            )
        );
        let cn = ConsoleLinks::for_outcome(&o, Some("cn-north-1"));
        assert!(
            cn.labelled()
                .iter()
                .all(|(_, l)| l.starts_with("https://console.amazonaws.cn/")),
            "{cn:?}"
        );
        assert_eq!(ConsoleLinks::for_outcome(&o, None), ConsoleLinks::default());
    }

    #[test]
    fn a_security_hub_finding_id_is_encoded_twice_and_an_ocsf_one_gets_no_link() {
        let id = "arn:aws:securityhub:us-east-1:111122223333:subscription/x/finding/1";
        let mut trigger = Trigger {
            source: Source::SecurityHub,
            finding_id: Some(id.to_owned()),
            ..Trigger::default()
        };
        let o = alert(role("r"), trigger.clone());
        let link = ConsoleLinks::for_outcome(&o, Some("us-east-1"))
            .finding
            .unwrap();
        assert_eq!(
            link,
            "https://console.aws.amazon.com/securityhub/home?region=us-east-1#/findings?search=Id%3D%255Coperator%255C%253AEQUALS%255C%253Aarn%253Aaws%253Asecurityhub%253Aus-east-1%253A111122223333%253Asubscription%252Fx%252Ffinding%252F1"
        );
        trigger.finding_format = Some(FindingFormat::Ocsf);
        let o = alert(role("r"), trigger);
        assert_eq!(
            ConsoleLinks::for_outcome(&o, Some("us-east-1")).finding,
            None
        );
    }

    #[test]
    fn hostile_finding_ids_get_no_link_and_names_are_encoded() {
        for id in [
            "x y",
            "https://evil.example/#",
            "a\"b",
            "<!channel>",
            "id…",
            "[x](https://evil.example)",
            "",
            &"a".repeat(65),
        ] {
            let o = alert(
                role("r"),
                Trigger {
                    source: Source::GuardDuty,
                    finding_id: Some(id.to_owned()),
                    ..Trigger::default()
                },
            );
            assert_eq!(
                ConsoleLinks::for_outcome(&o, Some("us-east-1")).finding,
                None,
                "{id:?}"
            );
        }
        let mut t = role("deploy+ci=1,a.b@c_d-e");
        t.session = Some(SessionName::parse("alice@example.com").unwrap());
        let links = ConsoleLinks::for_outcome(&alert(t, Trigger::default()), Some("us-east-1"));
        assert_eq!(
            links.principal.as_deref(),
            Some(
                "https://console.aws.amazon.com/iam/home#/roles/details/deploy%2Bci%3D1%2Ca.b%40c_d-e"
            )
        );
        assert_eq!(
            links.cloudtrail.as_deref(),
            Some(
                "https://console.aws.amazon.com/cloudtrail/home?region=us-east-1#/events?Username=alice%40example.com"
            )
        );
        // A finding from another source, or a role without key or session: no link.
        let links =
            ConsoleLinks::for_outcome(&alert(role("r"), Trigger::default()), Some("us-east-1"));
        assert_eq!((links.finding, links.cloudtrail), (None, None));
    }

    #[test]
    fn principals_without_an_iam_page_get_none_and_users_and_root_filter_by_name() {
        let account = Account::parse("111122223333").unwrap();
        let of = |kind, name: &str| {
            ConsoleLinks::for_outcome(
                &alert(
                    Target::new(kind, account.clone(), PrincipalName::parse(name).unwrap()),
                    Trigger::default(),
                ),
                Some("us-east-1"),
            )
        };
        let user = of(TargetKind::User, "ci-deployer");
        assert!(
            user.principal
                .unwrap()
                .ends_with("#/users/details/ci-deployer")
        );
        assert!(
            user.cloudtrail
                .unwrap()
                .ends_with("#/events?Username=ci-deployer")
        );
        let root = of(TargetKind::Root, "root");
        assert_eq!(root.principal, None);
        assert!(root.cloudtrail.unwrap().ends_with("#/events?Username=root"));
        for kind in [TargetKind::InstanceProfile, TargetKind::Unknown] {
            assert_eq!(of(kind, "x").principal, None, "{kind:?}");
        }
        assert!(
            of(
                TargetKind::IdentityCenterRole,
                "AWSReservedSSO_Admin_0123456789abcdef"
            )
            .principal
            .unwrap()
            .ends_with("#/roles/details/AWSReservedSSO_Admin_0123456789abcdef")
        );
    }
}
