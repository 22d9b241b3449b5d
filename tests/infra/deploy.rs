//! A deploy that works as users run it (issue [9]): what a fresh account can create,
//! and what the parameters change.

use serde_json::Value;

use crate::resolve::scalar_text;
use crate::trust::responder;

const FUNCTIONS: [(&str, &str); 4] = [
    ("IntakeFunction", "IntakeReservedConcurrency"),
    ("RevokerFunction", "RevokerReservedConcurrency"),
    ("NotifierFunction", "NotifierReservedConcurrency"),
    ("SweeperFunction", "SweeperReservedConcurrency"),
];

fn reserved(stack: &crate::resolve::Stack, function: &str) -> Option<u32> {
    match &stack.properties(function)["ReservedConcurrentExecutions"] {
        Value::Null => None,
        v => Some(scalar_text(v).parse().unwrap()),
    }
}

#[test]
fn every_function_reserves_the_concurrency_its_parameter_says_and_zero_reserves_none() {
    // Defaults: the revoker and sweeper, which call IAM, are bounded; intake and the
    // notifier share the pool. 110 is the smallest account quota that deploys them.
    let defaults = responder(&[]);
    let got: Vec<Option<u32>> = FUNCTIONS
        .iter()
        .map(|(f, _)| reserved(&defaults, f))
        .collect();
    assert_eq!(got, [None, Some(5), None, Some(5)]);

    // Each parameter moves its own function only.
    for (i, (function, parameter)) in FUNCTIONS.iter().enumerate() {
        let stack = responder(&[(parameter, "7")]);
        assert_eq!(reserved(&stack, function), Some(7), "{parameter}");
        for (j, (other, _)) in FUNCTIONS.iter().enumerate() {
            if i != j {
                assert_eq!(reserved(&stack, other), got[j], "{parameter} moved {other}");
            }
        }
    }

    // A new account with a quota of 10 reserves nothing. 0 must not reach Lambda: a
    // reserved concurrency of 0 would throttle every invocation.
    let none = responder(&FUNCTIONS.map(|(_, p)| (p, "0")));
    for (function, _) in FUNCTIONS {
        assert_eq!(reserved(&none, function), None, "{function}");
    }
}

#[test]
fn a_fresh_account_without_security_hub_deploys_nothing_of_security_hub() {
    // Without Security Hub enabled, AWS refuses to create an action target, so the
    // default stack creates none of it; opting in creates the action, its rule, the
    // notifier's permission to mark findings, and the output.
    let security_hub = |stack: &crate::resolve::Stack| {
        let mut found = stack.resources_of_type("AWS::SecurityHub::ActionTarget");
        found.extend(
            stack
                .resources_of_type("AWS::Events::Rule")
                .into_iter()
                .filter(|r| r.starts_with("SecurityHub")),
        );
        let notifier = stack.role_policy("NotifierRole").to_string();
        if notifier.contains("securityhub:") {
            found.push("NotifierRole securityhub grant".to_owned());
        }
        found
    };
    assert_eq!(security_hub(&responder(&[])), Vec::<String>::new());
    let opted_in = security_hub(&responder(&[("SecurityHubCustomAction", "true")]));
    assert_eq!(
        opted_in,
        [
            "SecurityHubActionTarget",
            "SecurityHubActionRule",
            "NotifierRole securityhub grant"
        ]
    );
}
