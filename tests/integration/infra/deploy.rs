//! A deploy that works as users run it (issue [9]): what a fresh account can create,
//! and what the parameters change.

use serde_json::Value;

use super::resolve::scalar_text;
use super::trust::responder;

const FUNCTIONS: [(&str, &str); 4] = [
    ("IntakeFunction", "IntakeReservedConcurrency"),
    ("RevokerFunction", "RevokerReservedConcurrency"),
    ("NotifierFunction", "NotifierReservedConcurrency"),
    ("SweeperFunction", "SweeperReservedConcurrency"),
];

fn reserved(stack: &super::resolve::Stack, function: &str) -> Option<u32> {
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
    // notifier's permission to mark findings, and the output. The V2 opt-in creates its
    // rule and the notifier's permission to mark V2 findings, and no action.
    let security_hub = |stack: &super::resolve::Stack| {
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
    let v2 = security_hub(&responder(&[("SecurityHubV2", "true")]));
    assert_eq!(
        v2,
        [
            "SecurityHubV2FindingsRule",
            "NotifierRole securityhub grant"
        ]
    );
}

/// Every name the responder gives a resource, by resource id.
fn names(stack: &super::resolve::Stack) -> Vec<(String, String)> {
    const NAMED: [(&str, &str); 12] = [
        ("AWS::IAM::Role", "RoleName"),
        ("AWS::SQS::Queue", "QueueName"),
        ("AWS::Serverless::Function", "FunctionName"),
        ("AWS::SNS::Topic", "TopicName"),
        ("AWS::DynamoDB::Table", "TableName"),
        ("AWS::Events::EventBus", "Name"),
        ("AWS::Events::Rule", "Name"),
        ("AWS::Scheduler::Schedule", "Name"),
        ("AWS::CloudWatch::Alarm", "AlarmName"),
        ("AWS::KMS::Alias", "AliasName"),
        ("AWS::Logs::LogGroup", "LogGroupName"),
        ("AWS::SecurityHub::ActionTarget", "Id"),
    ];
    let mut out = Vec::new();
    for (kind, property) in NAMED {
        for id in stack.resources_of_type(kind) {
            let name = &stack.properties(&id)[property];
            assert!(!name.is_null(), "{id} ({kind}) has no {property}");
            out.push((id, scalar_text(name)));
        }
    }
    out
}

#[test]
fn a_staging_and_a_production_stack_share_no_name_in_one_account() {
    let all_on = [
        ("SecurityHubCustomAction", "true"),
        ("SecurityHubImported", "true"),
        ("SecurityHubV2", "true"),
        ("CloudTrailEventNames", "StopLogging"),
    ];
    let production = responder(&all_on);
    let mut staging_params = all_on.to_vec();
    staging_params.extend([
        ("NamePrefix", "cutoff-staging"),
        ("MemberRoleName", "cutoff-staging-member"),
        ("SecurityHubActionId", "cutoffstaging"),
    ]);
    let staging = responder(&staging_params);
    let production_names = names(&production);
    let staging_names = names(&staging);
    assert!(production_names.len() > 30, "{production_names:?}");
    assert_eq!(production_names.len(), staging_names.len());
    for (id, name) in &staging_names {
        assert!(
            !production_names.iter().any(|(_, n)| n == name),
            "{id}: {name} is taken by the production stack"
        );
    }
    // Each name comes from the prefix (bar the action id, its own parameter): a
    // resource named by hand would collide.
    for (id, name) in &staging_names {
        if id != "SecurityHubActionTarget" {
            assert!(name.contains("cutoff-staging"), "{id}: {name}");
        }
    }
    // What the code is told follows the stack's names.
    let env = &staging.properties("RevokerFunction")["Environment"]["Variables"];
    assert_eq!(env["CUTOFF_LEDGER_TABLE"], "cutoff-staging-ledger");
    assert_eq!(env["CUTOFF_MEMBER_ROLE_NAME"], "cutoff-staging-member");
    assert!(
        scalar_text(&env["CUTOFF_PROTECTED_ARNS"])
            .contains(":role/cutoff-staging-us-east-1-revoker"),
        "{env}"
    );
}

#[test]
fn the_member_role_trusts_the_revoker_and_sweeper_of_its_responders_prefix() {
    use super::resolve::ACCOUNT;
    let staging = responder(&[("NamePrefix", "cutoff-staging")]);
    let revoker = staging.arn("RevokerRole");
    let sweeper = staging.arn("SweeperRole");
    let trusted = |prefix: &str| {
        let member = super::trust::member("444455556666", &[("ResponderNamePrefix", prefix)]);
        let trust = member.trust_policy("MemberRole").to_string();
        (trust.contains(&revoker), trust.contains(&sweeper))
    };
    assert!(revoker.contains(&format!(":{ACCOUNT}:role/cutoff-staging-")));
    assert_eq!(trusted("cutoff-staging"), (true, true));
    assert_eq!(trusted("cutoff"), (false, false));
}

#[test]
fn the_member_role_name_is_one_parameter_with_one_default_in_both_templates() {
    let responder = super::resolve::load("template.yaml");
    let member = super::resolve::load("member-role.yaml");
    let default = &responder["Parameters"]["MemberRoleName"]["Default"];
    assert_eq!(default, &member["Parameters"]["MemberRoleName"]["Default"]);
    // Nowhere else is the name written out: everything refers to the parameter.
    let text = responder["Resources"].to_string() + &responder["Outputs"].to_string();
    assert!(
        !text.contains(default.as_str().unwrap()),
        "a literal member role name"
    );
    let stack = super::trust::responder(&[("MemberRoleName", "sec-member")]);
    for function in ["IntakeFunction", "RevokerFunction", "SweeperFunction"] {
        assert_eq!(
            stack.properties(function)["Environment"]["Variables"]["CUTOFF_MEMBER_ROLE_NAME"],
            "sec-member",
            "{function}"
        );
    }
    assert!(
        stack
            .role_policy("RevokerRole")
            .to_string()
            .contains(":role/sec-member")
    );
}

#[test]
fn a_redeploy_after_a_delete_reuses_the_retained_ledger_table() {
    let template = super::resolve::load("template.yaml");
    assert_eq!(
        template["Resources"]["LedgerTable"]["DeletionPolicy"],
        "Retain"
    );
    // What a delete keeps would block a redeploy under the same names: the ledger has
    // its parameter, the log groups are named in infra/README.md's redeploy steps;
    // anything else kept needs one or the other.
    let mut kept: Vec<(String, String)> = template["Resources"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, r)| r["DeletionPolicy"] == "Retain")
        .map(|(id, r)| (id.clone(), r["Type"].as_str().unwrap().to_owned()))
        .collect();
    kept.retain(|(id, kind)| id != "LedgerTable" && kind != "AWS::Logs::LogGroup");
    assert!(
        kept.is_empty(),
        "kept on delete, and not reusable: {kept:?}"
    );
    let readme =
        std::fs::read_to_string(cutoff_tests::workspace_root().join("infra/README.md")).unwrap();
    assert!(readme.contains("LedgerTableName=cutoff-ledger"));
    assert!(readme.contains("The log groups (`/aws/lambda/cutoff-*`) must be gone first"));
    let fresh = responder(&[]);
    assert_eq!(
        fresh.properties("LedgerTable")["TableName"],
        "cutoff-ledger"
    );
    let reused = responder(&[("LedgerTableName", "cutoff-ledger")]);
    assert!(
        !reused.exists("LedgerTable"),
        "a second table of that name would fail the deploy"
    );
    let table_arn = format!(
        "arn:aws:dynamodb:{}:{}:table/cutoff-ledger",
        super::resolve::REGION,
        super::resolve::ACCOUNT
    );
    for (function, role) in [
        ("RevokerFunction", "RevokerRole"),
        ("SweeperFunction", "SweeperRole"),
    ] {
        assert_eq!(
            reused.properties(function)["Environment"]["Variables"]["CUTOFF_LEDGER_TABLE"],
            "cutoff-ledger"
        );
        let granted = reused.role_policy(role);
        assert!(
            granted.to_string().contains(&table_arn),
            "{role} is not granted the reused table: {granted}"
        );
    }
}

fn forwarder(responder_region: &str, extra: &[(&str, &str)]) -> super::resolve::Stack {
    let mut params = vec![("ResponderRegion", responder_region)];
    params.extend_from_slice(extra);
    super::resolve::Stack::new(&super::resolve::load("forwarder.yaml"), &params)
}

#[test]
fn the_forwarder_sends_findings_to_the_responders_default_bus_and_nowhere_else() {
    use super::resolve::{ACCOUNT, REGION};
    // The StackSet instance in the responder's own region creates nothing that
    // forwards (a rule sending the default bus to itself would loop).
    let home = forwarder(REGION, &[("CloudTrailEventNames", "StopLogging")]);
    let created: Vec<String> = super::resolve::load("forwarder.yaml")["Resources"]
        .as_object()
        .unwrap()
        .keys()
        .filter(|id| home.exists(id))
        .cloned()
        .collect();
    assert_eq!(created, ["Placeholder"]);

    let away = forwarder(
        "eu-west-1",
        &[
            ("CloudTrailEventNames", "StopLogging"),
            ("ForwardSecurityHubImported", "true"),
            ("ForwardSecurityHubV2", "true"),
        ],
    );
    let bus = format!("arn:aws:events:eu-west-1:{ACCOUNT}:event-bus/default");
    let rules = away.resources_of_type("AWS::Events::Rule");
    assert_eq!(rules.len(), 4, "{rules:?}");
    for rule in &rules {
        let props = away.properties(rule);
        assert_eq!(props["EventBusName"], "default", "{rule}");
        let targets = props["Targets"].as_array().unwrap();
        assert_eq!(targets.len(), 1, "{rule}");
        assert_eq!(targets[0]["Arn"], bus.as_str(), "{rule}");
        assert_eq!(targets[0]["RoleArn"], away.arn("ForwarderRole").as_str());
        assert!(!targets[0]["DeadLetterConfig"]["Arn"].is_null(), "{rule}");
        // Only AWS's own sources: an event anyone could put is never forwarded.
        let sources = props["EventPattern"]["source"].to_string();
        assert!(
            sources == r#"["aws.guardduty"]"#
                || sources == r#"["aws.securityhub"]"#
                || sources == r#"[{"prefix":"aws."}]"#,
            "{rule}: {sources}"
        );
    }
    // The role may put events on that one bus, and nothing else.
    let policy = away.role_policy("ForwarderRole");
    let statements = policy["Statement"].as_array().unwrap();
    assert_eq!(statements.len(), 1, "{policy}");
    assert_eq!(statements[0]["Action"], "events:PutEvents");
    assert_eq!(statements[0]["Resource"], bus.as_str());
    // Opt-ins stay off by default, and each brings its own rule.
    let plain = forwarder("eu-west-1", &[]);
    assert_eq!(
        plain.resources_of_type("AWS::Events::Rule"),
        ["ForwardGuardDuty"]
    );
    let v2 = forwarder("eu-west-1", &[("ForwardSecurityHubV2", "true")]);
    assert_eq!(
        v2.resources_of_type("AWS::Events::Rule"),
        ["ForwardGuardDuty", "ForwardSecurityHubV2Rule"]
    );
    assert_eq!(
        v2.properties("ForwardSecurityHubV2Rule")["EventPattern"],
        serde_json::json!({"source": ["aws.securityhub"], "detail-type": ["Findings Imported V2"]})
    );
    // In the responder's region, not even the V2 rule.
    assert!(
        forwarder(REGION, &[("ForwardSecurityHubV2", "true")])
            .resources_of_type("AWS::Events::Rule")
            .is_empty()
    );
    assert_ne!(REGION, "eu-west-1");
}

#[test]
fn make_sam_build_tells_an_arm64_bootstrap_from_an_x86_64_one() {
    // tools/elf_machine.py is what `make sam-build` trusts to catch a bundle of the
    // wrong architecture (it would deploy, then fail every invocation). This test's own
    // binary is an ELF of this machine.
    let root = cutoff_tests::workspace_root();
    let run = |path: &std::path::Path, machine: &str| {
        std::process::Command::new(root.join(".venv/bin/python"))
            .arg(root.join("tools/elf_machine.py"))
            .arg(path)
            .arg(machine)
            .output()
            .unwrap()
    };
    let me = std::env::current_exe().unwrap();
    let (this, other) = if cfg!(target_arch = "aarch64") {
        ("aarch64", "x86-64")
    } else {
        ("x86-64", "aarch64")
    };
    assert!(run(&me, this).status.success());
    let wrong = run(&me, other);
    assert!(!wrong.status.success());
    assert!(
        String::from_utf8_lossy(&wrong.stdout).contains(&format!("built for {this}")),
        "{wrong:?}"
    );
    let script = root.join("tools/elf_machine.py");
    let not_elf = run(&script, this);
    assert!(!not_elf.status.success());
    assert!(String::from_utf8_lossy(&not_elf.stdout).contains("not an ELF"));
}

#[test]
fn sam_build_refuses_bundles_of_another_architecture_than_the_deploys() {
    // SAM does not tell make the template's Architecture: a build-<LogicalId> target
    // handed x86_64 bundles for an arm64 deploy would produce a stack whose every
    // invocation fails. The target refuses unless ARCHITECTURE agrees.
    let root = cutoff_tests::workspace_root();
    let dir = std::env::temp_dir().join(format!("cutoff-sam-arch-{}", std::process::id()));
    let bundles = dir.join("lambda");
    let artifacts = dir.join("artifacts");
    std::fs::create_dir_all(bundles.join("intake")).unwrap();
    std::fs::create_dir_all(&artifacts).unwrap();
    std::fs::write(bundles.join("intake/bootstrap"), b"x86_64 bundle").unwrap();
    std::fs::write(bundles.join("ARCH"), "x86_64\n").unwrap();
    let make = |architecture: Option<&str>| {
        let mut command = std::process::Command::new("make");
        command
            .current_dir(root)
            .args([
                "--no-print-directory",
                "-o",
                "bundles",
                "build-IntakeFunction",
            ])
            .arg(format!("LAMBDA_DIR={}", bundles.display()))
            .env("ARTIFACTS_DIR", &artifacts)
            .env_remove("ARCHITECTURE")
            .env_remove("MAKEFLAGS");
        if let Some(a) = architecture {
            command.env("ARCHITECTURE", a);
        }
        command.output().unwrap()
    };
    let refused = make(None);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stdout)
            .contains("the bundles are x86_64, the deploy expects arm64"),
        "{refused:?}"
    );
    assert!(!artifacts.join("bootstrap").exists());
    let agreed = make(Some("x86_64"));
    assert!(agreed.status.success(), "{agreed:?}");
    assert_eq!(
        std::fs::read(artifacts.join("bootstrap")).unwrap(),
        b"x86_64 bundle"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
