//! Finding the deployed cutoff stack: the one `--stack` (or `CUTOFF_STACK`) names, else
//! the only cutoff stack in the region. Its outputs say where the operator path is
//! (`OperatorUrl`), so `cutoff revoke|release|status|history` reach the deployment
//! without anyone copying a URL around.
//!
//! A stack is cutoff's when it has the outputs only infra/template.yaml has together
//! (`NamePrefix`, `RevokerFunctionArn`, `OperatorUrl`); the forwarder, member-role and
//! break-glass stacks have none of them. Two cutoff stacks in one region (a staging
//! and a production deployment) are never chosen between: the operator names one.

use std::collections::BTreeMap;

use aws_config::SdkConfig;
use aws_sdk_cloudformation::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use cutoff_domain::principal::{clean_text, excerpt};

use crate::operator::OperatorUrl;

/// The outputs that, together, make a stack cutoff's.
const MARKER_OUTPUTS: [&str; 3] = ["NamePrefix", "RevokerFunctionArn", "OperatorUrl"];

/// Pages of `DescribeStacks` read before giving up: a runaway NextToken must not hang.
const MAX_PAGES: usize = 50;

/// A deployed stack: its name and outputs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeployedStack {
    pub name: String,
    /// `arn:<partition>:cloudformation:<region>:<account>:stack/<name>/<id>`.
    pub stack_id: String,
    pub outputs: BTreeMap<String, String>,
}

impl DeployedStack {
    fn is_cutoff(&self) -> bool {
        MARKER_OUTPUTS.iter().all(|k| self.outputs.contains_key(*k))
    }

    /// The stack's output `OperatorUrl`, checked against the stack itself: a Lambda
    /// function URL (`https://<id>.lambda-url.<region>.on.aws/`) in the stack's own
    /// region, and the output `RevokerFunctionArn` a function of the stack's partition,
    /// region and account. A stack whose outputs point elsewhere is not trusted with
    /// the operator's signed request (a plain HTTP URL on this machine, a local
    /// stand-in, is the one exception).
    pub fn operator_url(&self) -> Result<OperatorUrl, String> {
        let source = format!("stack {} output OperatorUrl", self.name);
        let url = OperatorUrl::parse_from(
            &source,
            self.output("OperatorUrl").map_err(|e| e.to_string())?,
        )?;
        if url.is_loopback() {
            return Ok(url);
        }
        let bad = |why: String| format!("stack {}: {why}; not used", self.name);
        // arn:<partition>:cloudformation:<region>:<account>:stack/...
        let stack: Vec<&str> = self.stack_id.splitn(6, ':').collect();
        let [_, partition, "cloudformation", region, account, _] = stack[..] else {
            return Err(bad(format!(
                "its id {} is not a stack ARN",
                excerpt(&self.stack_id)
            )));
        };
        if url.lambda_url_region() != Some(region) {
            return Err(bad(format!(
                "its OperatorUrl {} is not a Lambda function URL in the stack's region {region}",
                excerpt(url.as_str())
            )));
        }
        let function = self
            .output("RevokerFunctionArn")
            .map_err(|e| e.to_string())?;
        let arn: Vec<&str> = function.splitn(7, ':').collect();
        let expected = ["arn", partition, "lambda", region, account, "function"];
        if arn.len() != 7 || arn[..6] != expected {
            return Err(bad(format!(
                "its RevokerFunctionArn {} is not a function of the stack's account {account} in {region}",
                excerpt(function)
            )));
        }
        Ok(url)
    }

    /// An output's value, or why the stack cannot serve.
    pub fn output(&self, key: &str) -> Result<&str, StackError> {
        self.outputs
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| StackError::NotCutoff {
                name: self.name.clone(),
                missing: key.to_owned(),
            })
    }
}

/// Why no stack was found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StackError {
    #[error(
        "no cutoff stack in {region}: give --stack NAME (or set CUTOFF_STACK), or --url with the stack output OperatorUrl; --direct acts from this machine when the stack itself is broken"
    )]
    NoneFound { region: String },
    #[error(
        "{} cutoff stacks in {region} ({}): give --stack NAME (or set CUTOFF_STACK)",
        names.len(),
        names.join(", ")
    )]
    Several { region: String, names: Vec<String> },
    #[error(
        "no stack {name} in {region}: check --stack (or CUTOFF_STACK) and --region; `aws cloudformation describe-stacks` lists them"
    )]
    NotFound { name: String, region: String },
    #[error(
        "stack {name} has no output {missing}: it is not cutoff's stack (infra/template.yaml), or an old one; give cutoff's --stack, or deploy the current template"
    )]
    NotCutoff { name: String, missing: String },
    #[error(
        "{0}; finding the stack needs cloudformation:DescribeStacks: give --url (the stack output OperatorUrl, or CUTOFF_OPERATOR_URL) instead"
    )]
    Unreadable(String),
}

impl StackError {
    /// An operator can fix it with an argument (exit 2), unlike an AWS failure.
    pub fn is_argument(&self) -> bool {
        !matches!(self, StackError::Unreadable(_))
    }
}

/// A stack name as CloudFormation allows it: a letter, then letters, digits and
/// hyphens, at most 128 characters.
pub fn parse_stack_name(flag: &str, input: &str) -> Result<String, String> {
    let ok = input.len() <= 128
        && input.starts_with(|c: char| c.is_ascii_alphabetic())
        && input
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if ok {
        Ok(input.to_owned())
    } else {
        Err(format!(
            "{flag} {}: expected a stack name (a letter, then letters, digits and hyphens)",
            excerpt(input)
        ))
    }
}

/// The stack to use among those the region has: the only cutoff stack.
pub fn choose(region: &str, stacks: Vec<DeployedStack>) -> Result<DeployedStack, StackError> {
    let mut cutoff: Vec<DeployedStack> = stacks.into_iter().filter(|s| s.is_cutoff()).collect();
    match cutoff.len() {
        0 => Err(StackError::NoneFound {
            region: region.to_owned(),
        }),
        1 => Ok(cutoff.remove(0)),
        _ => {
            let mut names: Vec<String> = cutoff.into_iter().map(|s| s.name).collect();
            names.sort();
            Err(StackError::Several {
                region: region.to_owned(),
                names,
            })
        }
    }
}

fn aws_error<E, R>(operation: &str, err: &SdkError<E, R>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let why = match (err.code(), err.message()) {
        (Some(code), Some(message)) => format!("{code}: {message}"),
        (Some(code), None) => code.to_owned(),
        _ => DisplayErrorContext(err).to_string(),
    };
    format!("{operation}: {}", clean_text(&why, 300))
}

fn deployed(stack: &aws_sdk_cloudformation::types::Stack) -> DeployedStack {
    DeployedStack {
        name: stack.stack_name().unwrap_or_default().to_owned(),
        stack_id: stack.stack_id().unwrap_or_default().to_owned(),
        outputs: stack
            .outputs()
            .iter()
            .filter_map(|o| Some((o.output_key()?.to_owned(), o.output_value()?.to_owned())))
            .collect(),
    }
}

/// The stack `name` names, or (without a name) the only cutoff stack of the region.
pub async fn find(sdk: &SdkConfig, name: Option<&str>) -> Result<DeployedStack, StackError> {
    let region = sdk.region().map_or("the region", |r| r.as_ref()).to_owned();
    let cfn = aws_sdk_cloudformation::Client::new(sdk);
    if let Some(name) = name {
        let out = match cfn.describe_stacks().stack_name(name).send().await {
            Ok(out) => out,
            // CloudFormation says "Stack with id <name> does not exist" (ValidationError).
            Err(e) if e.message().is_some_and(|m| m.contains("does not exist")) => {
                return Err(StackError::NotFound {
                    name: name.to_owned(),
                    region,
                });
            }
            Err(e) => {
                return Err(StackError::Unreadable(aws_error(
                    "cloudformation:DescribeStacks",
                    &e,
                )));
            }
        };
        let stack = out
            .stacks()
            .first()
            .map(deployed)
            .ok_or(StackError::NotFound {
                name: name.to_owned(),
                region,
            })?;
        // A stack of another application is not used for its OperatorUrl alone.
        for key in MARKER_OUTPUTS {
            stack.output(key)?;
        }
        return Ok(stack);
    }
    let mut stacks = Vec::new();
    let mut token: Option<String> = None;
    for _ in 0..MAX_PAGES {
        let out = cfn
            .describe_stacks()
            .set_next_token(token.take())
            .send()
            .await
            .map_err(|e| StackError::Unreadable(aws_error("cloudformation:DescribeStacks", &e)))?;
        stacks.extend(out.stacks().iter().map(deployed));
        match out.next_token() {
            Some(next) if !next.is_empty() => token = Some(next.to_owned()),
            _ => return choose(&region, stacks),
        }
    }
    Err(StackError::Unreadable(format!(
        "cloudformation:DescribeStacks: more than {MAX_PAGES} pages of stacks in {region}"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stack(name: &str, outputs: &[&str]) -> DeployedStack {
        DeployedStack {
            name: name.to_owned(),
            stack_id: format!("arn:aws:cloudformation:eu-west-1:111122223333:stack/{name}/1"),
            outputs: outputs
                .iter()
                .map(|k| ((*k).to_owned(), format!("value of {k}")))
                .collect(),
        }
    }

    const CUTOFF: [&str; 4] = [
        "NamePrefix",
        "RevokerFunctionArn",
        "OperatorUrl",
        "LedgerTableName",
    ];

    #[test]
    fn the_only_cutoff_stack_is_chosen_and_other_stacks_do_not_count() {
        let chosen = choose(
            "eu-west-1",
            vec![
                stack("network", &["VpcId"]),
                stack("cutoff-forwarder", &["ForwarderDeadLetterQueueUrl"]),
                // A stack with one of the markers only is not cutoff's.
                stack("other-app", &["OperatorUrl"]),
                stack("cutoff-prod", &CUTOFF),
            ],
        )
        .unwrap();
        assert_eq!(chosen.name, "cutoff-prod");
        assert_eq!(
            chosen.output("OperatorUrl").unwrap(),
            "value of OperatorUrl"
        );
    }

    #[test]
    fn none_or_several_cutoff_stacks_are_never_guessed_between() {
        let none = choose("eu-west-1", vec![stack("network", &["VpcId"])]).unwrap_err();
        assert_eq!(
            none,
            StackError::NoneFound {
                region: "eu-west-1".into()
            }
        );
        assert!(none.to_string().contains("--stack") && none.to_string().contains("--direct"));
        assert!(none.is_argument());
        let several = choose(
            "eu-west-1",
            vec![
                stack("cutoff-staging", &CUTOFF),
                stack("cutoff-prod", &CUTOFF),
            ],
        )
        .unwrap_err();
        assert_eq!(
            several.to_string(),
            "2 cutoff stacks in eu-west-1 (cutoff-prod, cutoff-staging): give --stack NAME (or set CUTOFF_STACK)"
        );
        assert!(!StackError::Unreadable("denied".into()).is_argument());
    }

    #[test]
    fn a_missing_or_empty_output_says_which() {
        let mut s = stack("cutoff", &CUTOFF);
        s.outputs.insert("OperatorUrl".into(), String::new());
        let err = s.output("OperatorUrl").unwrap_err();
        assert!(err.to_string().contains("no output OperatorUrl"), "{err}");
    }

    #[test]
    fn the_operator_url_must_be_a_function_url_of_the_stacks_own_region_and_account() {
        let with = |url: &str, function: &str| {
            let mut s = stack("cutoff", &CUTOFF);
            s.outputs.insert("OperatorUrl".into(), url.into());
            s.outputs
                .insert("RevokerFunctionArn".into(), function.into());
            s.operator_url()
        };
        let function = "arn:aws:lambda:eu-west-1:111122223333:function:cutoff-revoker";
        let good = "https://abcdef0123.lambda-url.eu-west-1.on.aws/";
        assert_eq!(with(good, function).unwrap().as_str(), good);
        // A local stand-in on this machine.
        assert!(with("http://127.0.0.1:9000/", function).is_ok());
        for (url, function, says) in [
            (
                "https://revoker.example.com/",
                function,
                "not a Lambda function URL",
            ),
            (
                "https://abcdef0123.lambda-url.us-east-1.on.aws/",
                function,
                "stack's region eu-west-1",
            ),
            (
                "https://abcdef0123.lambda-url.eu-west-1.on.aws.evil.example/",
                function,
                "not a Lambda function URL",
            ),
            (
                "http://abcdef0123.lambda-url.eu-west-1.on.aws/",
                function,
                "HTTPS",
            ),
            (
                good,
                "arn:aws:lambda:eu-west-1:999999999999:function:cutoff-revoker",
                "account 111122223333",
            ),
            (
                good,
                "arn:aws:lambda:us-east-1:111122223333:function:cutoff-revoker",
                "account 111122223333",
            ),
            (
                good,
                "arn:aws-cn:lambda:eu-west-1:111122223333:function:x",
                "not a function",
            ),
            (
                good,
                "arn:aws:lambda:eu-west-1:111122223333:layer:x",
                "not a function",
            ),
        ] {
            let err = with(url, function).unwrap_err();
            assert!(err.contains(says), "{url} {function}: {err}");
        }
        let mut odd = stack("cutoff", &CUTOFF);
        odd.stack_id = "cutoff".into();
        odd.outputs.insert("OperatorUrl".into(), good.into());
        assert!(odd.operator_url().unwrap_err().contains("not a stack ARN"));
    }

    #[test]
    fn stack_names_are_checked_before_any_call() {
        assert_eq!(
            parse_stack_name("--stack", "cutoff-prod").unwrap(),
            "cutoff-prod"
        );
        for bad in [
            "",
            "1cutoff",
            "cutoff_prod",
            "cutoff prod",
            &"a".repeat(129),
        ] {
            assert!(parse_stack_name("--stack", bad).is_err(), "{bad:?}");
        }
    }
}
