//! The whole flow on one machine: intake → SQS FIFO → revoker → outcome bus →
//! notifier → SNS, with the three function binaries on local Runtime APIs and moto
//! as SQS, EventBridge, SNS and IAM.
//!
//! What Lambda's event-source mappings do in AWS (poll the queue, invoke the
//! function with a batch, delete what succeeded; deliver bus events to the notifier)
//! is done here by [`Pipeline::drain_requests`] and [`Pipeline::drain_outcomes`]:
//! the functions themselves are untouched. The bus delivers outcomes to an SQS queue
//! through a real EventBridge rule, and SNS delivers notifications to SQS "inboxes"
//! through real subscriptions, so what the test reads is what the rule and the
//! topics really carried.

use std::collections::BTreeMap;

use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
use serde_json::{Value, json};

use crate::aws::{ACCOUNT, REGION, sdk_config};
use crate::moto::MotoServer;
use crate::runtime::{LocalLambda, function_binary};

pub const BUS: &str = "cutoff-outcomes";
pub const OWNER_TEAM: &str = "payments";
/// The Organization the pipeline's revoker is deployed for (a deployment always names one).
pub const ORGANIZATION_ID: &str = "o-a1b2c3d4e5";

/// The three functions and the resources between them.
pub struct Pipeline {
    pub endpoint: String,
    pub iam: aws_sdk_iam::Client,
    pub sqs: aws_sdk_sqs::Client,
    pub requests_url: String,
    pub outcomes_url: String,
    pub security_topic: String,
    pub payments_topic: String,
    /// Topic ARN → the URL of the SQS queue subscribed to it.
    pub inboxes: BTreeMap<String, String>,
    pub intake: LocalLambda,
    pub revoker: LocalLambda,
    pub notifier: LocalLambda,
    /// Revoker invocations made (one per SQS batch).
    pub revoker_batches: usize,
    /// CloudTrail's event history, as the revoker's follow-up reads it (moto serves
    /// no `LookupEvents`).
    pub event_history: crate::event_history::EventHistoryServer,
    /// moto's EventBridge Scheduler, where the revoker makes its follow-up schedules.
    pub scheduler: aws_sdk_scheduler::Client,
    pub follow_up_group: String,
    /// The revoker's environment, for another instance of it ([`Pipeline::another_revoker`]).
    revoker_env: Vec<(&'static str, String)>,
}

/// One request message as the revoker received it in a batch.
#[derive(Debug, Clone)]
pub struct DeliveredRequest {
    pub message_id: String,
    pub body: String,
    /// `ApproximateReceiveCount`: 1 on the first delivery.
    pub receive_count: u32,
    /// The revoker reported it as a batch item failure: it stays on the queue.
    pub failed: bool,
}

/// One revoker invocation with an SQS batch ([`Pipeline::deliver_request_batch`]).
#[derive(Debug, Clone)]
pub struct DeliveredBatch {
    pub messages: Vec<DeliveredRequest>,
    /// The revoker's answer (`batchItemFailures`).
    pub answer: Value,
    /// Wall-clock time before the receive, and after the revoker answered.
    pub started: chrono::DateTime<chrono::Utc>,
    pub finished: chrono::DateTime<chrono::Utc>,
}

/// One message as a subscriber of a topic received it.
#[derive(Debug, Clone)]
pub struct Notification {
    pub topic: String,
    pub subject: String,
    pub message: String,
    pub attributes: BTreeMap<String, String>,
}

fn queue_arn(name: &str) -> String {
    format!("arn:aws:sqs:{REGION}:{ACCOUNT}:{name}")
}

/// A received SQS message as Lambda's SQS event source hands it to a function: one
/// entry of the event's `Records`.
pub fn sqs_record(message: &aws_sdk_sqs::types::Message, queue_arn: &str) -> Value {
    let attributes: BTreeMap<String, String> = message
        .attributes
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k.as_str().to_owned(), v))
        .collect();
    json!({
        "messageId": message.message_id, "receiptHandle": message.receipt_handle,
        "body": message.body, "attributes": attributes, "messageAttributes": {},
        "md5OfBody": message.md5_of_body, "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn, "awsRegion": REGION
    })
}

impl Pipeline {
    /// Creates the resources in `moto` (names prefixed with `prefix`, so pipelines can
    /// share a server) and starts the functions.
    pub async fn start(moto: &MotoServer, prefix: &str, extra_env: &[(&str, &str)]) -> Pipeline {
        let endpoint = moto.endpoint().to_owned();
        let config = sdk_config(&endpoint).await;
        let sqs = aws_sdk_sqs::Client::new(&config);
        let sns = aws_sdk_sns::Client::new(&config);
        let events = aws_sdk_eventbridge::Client::new(&config);
        let iam = aws_sdk_iam::Client::new(&config);

        let requests_name = format!("{prefix}-requests.fifo");
        let requests_url = sqs
            .create_queue()
            .queue_name(&requests_name)
            .attributes(QueueAttributeName::FifoQueue, "true")
            .attributes(QueueAttributeName::VisibilityTimeout, "0")
            .send()
            .await
            .expect("create the request queue")
            .queue_url
            .expect("queue url");
        let outcomes_name = format!("{prefix}-outcomes");
        let outcomes_url = sqs
            .create_queue()
            .queue_name(&outcomes_name)
            .send()
            .await
            .expect("create the outcome queue")
            .queue_url
            .expect("queue url");

        let bus = format!("{prefix}-{BUS}");
        events
            .create_event_bus()
            .name(&bus)
            .send()
            .await
            .expect("create the outcome bus");
        let rule = format!("{prefix}-outcomes-to-notifier");
        events
            .put_rule()
            .name(&rule)
            .event_bus_name(&bus)
            .event_pattern(r#"{"source":["cutoff"],"detail-type":["Revocation Outcome"]}"#)
            .send()
            .await
            .expect("put the outcome rule");
        events
            .put_targets()
            .rule(&rule)
            .event_bus_name(&bus)
            .targets(
                aws_sdk_eventbridge::types::Target::builder()
                    .id("notifier")
                    .arn(queue_arn(&outcomes_name))
                    .build()
                    .expect("target"),
            )
            .send()
            .await
            .expect("put the outcome target");

        let mut inboxes = BTreeMap::new();
        let mut topics = Vec::new();
        for team in ["security", OWNER_TEAM] {
            let topic = sns
                .create_topic()
                .name(format!("{prefix}-{team}-alerts"))
                .send()
                .await
                .expect("create topic")
                .topic_arn
                .expect("topic arn");
            let inbox_name = format!("{prefix}-{team}-inbox");
            let inbox = sqs
                .create_queue()
                .queue_name(&inbox_name)
                .send()
                .await
                .expect("create inbox")
                .queue_url
                .expect("queue url");
            sns.subscribe()
                .topic_arn(&topic)
                .protocol("sqs")
                .endpoint(queue_arn(&inbox_name))
                .send()
                .await
                .expect("subscribe inbox");
            inboxes.insert(topic.clone(), inbox);
            topics.push(topic);
        }
        let (security_topic, payments_topic) = (topics[0].clone(), topics[1].clone());

        // The follow-up: the revoker's schedules go to moto's Scheduler (which stores
        // them and fires none: [`Pipeline::fire_follow_ups`] does what it would), its
        // lookups to the event history stand-in.
        let event_history = crate::event_history::EventHistoryServer::start(&endpoint);
        let scheduler = aws_sdk_scheduler::Client::new(&config);
        let follow_up_group = format!("{prefix}-follow-ups");
        scheduler
            .create_schedule_group()
            .name(&follow_up_group)
            .send()
            .await
            .expect("create the follow-up schedule group");

        let aws_env = |extra: &[(&'static str, String)]| {
            let mut env: Vec<(&'static str, String)> = vec![
                ("AWS_ENDPOINT_URL", endpoint.clone()),
                ("AWS_ACCESS_KEY_ID", "testing".to_owned()),
                ("AWS_SECRET_ACCESS_KEY", "testing".to_owned()),
                ("AWS_REGION", REGION.to_owned()),
                ("CUTOFF_OUTCOME_BUS", bus.clone()),
                ("RUST_LOG", "info".to_owned()),
            ];
            env.extend(extra.iter().cloned());
            for (k, v) in extra_env {
                let key: &'static str = Box::leak(k.to_string().into_boxed_str());
                env.push((key, v.to_string()));
            }
            env
        };
        let intake = LocalLambda::start(
            "cutoff-intake",
            &function_binary("intake"),
            &aws_env(&[("CUTOFF_REQUEST_QUEUE_URL", requests_url.clone())]),
        );
        let revoker_env = aws_env(&[
            ("CUTOFF_HOME_ACCOUNT", ACCOUNT.to_owned()),
            ("CUTOFF_PARTITION", "aws".to_owned()),
            ("CUTOFF_EXTERNAL_ID", "cutoff-demo-external-id".to_owned()),
            ("CUTOFF_MAX_RECEIVES", "3".to_owned()),
            ("CUTOFF_ORGANIZATION_ID", ORGANIZATION_ID.to_owned()),
            ("CUTOFF_FOLLOW_UP_GROUP", follow_up_group.clone()),
            (
                "CUTOFF_FOLLOW_UP_ROLE_ARN",
                format!("arn:aws:iam::{ACCOUNT}:role/{prefix}-follow-up-scheduler"),
            ),
            (
                "AWS_ENDPOINT_URL_CLOUDTRAIL",
                event_history.endpoint().to_owned(),
            ),
        ]);
        let revoker =
            LocalLambda::start("cutoff-revoker", &function_binary("revoker"), &revoker_env);
        let notifier = LocalLambda::start(
            "cutoff-notifier",
            &function_binary("notifier"),
            &aws_env(&[
                ("CUTOFF_SECURITY_TOPIC_ARN", security_topic.clone()),
                (
                    "CUTOFF_TEAM_TOPICS",
                    format!("{OWNER_TEAM}={payments_topic}"),
                ),
                ("CUTOFF_UPDATE_SECURITY_HUB", "false".to_owned()),
            ]),
        );
        Pipeline {
            endpoint,
            iam,
            sqs,
            requests_url,
            outcomes_url,
            security_topic,
            payments_topic,
            inboxes,
            intake,
            revoker,
            notifier,
            revoker_batches: 0,
            event_history,
            scheduler,
            follow_up_group,
            revoker_env,
        }
    }

    /// Another instance of the pipeline's revoker, configured alike (Lambda runs as many
    /// as it needs): the one an operator's function URL request reaches.
    pub fn another_revoker(&self) -> LocalLambda {
        LocalLambda::start(
            "cutoff-revoker",
            &function_binary("revoker"),
            &self.revoker_env,
        )
    }

    /// The follow-up schedules the revoker made: (name, `at(…)` expression, target
    /// ARN, input).
    pub async fn follow_up_schedules(&self) -> Vec<(String, String, String, String)> {
        let listed = self
            .scheduler
            .list_schedules()
            .group_name(&self.follow_up_group)
            .send()
            .await
            .expect("list the follow-up schedules");
        let mut out = Vec::new();
        for summary in listed.schedules() {
            let name = summary.name().unwrap_or_default().to_owned();
            let schedule = self
                .scheduler
                .get_schedule()
                .group_name(&self.follow_up_group)
                .name(&name)
                .send()
                .await
                .expect("get a follow-up schedule");
            let target = schedule.target().expect("a target");
            out.push((
                name,
                schedule
                    .schedule_expression()
                    .unwrap_or_default()
                    .to_owned(),
                target.arn().to_owned(),
                target.input().unwrap_or_default().to_owned(),
            ));
        }
        out.sort();
        out
    }

    /// Does what Scheduler does when run `run` of each follow-up is due: invokes the
    /// revoker with the schedule's input. Returns the revoker's answers.
    pub async fn fire_follow_ups(&mut self, run: u8) -> Vec<Value> {
        let due: Vec<String> = self
            .follow_up_schedules()
            .await
            .into_iter()
            .filter(|(name, ..)| name.ends_with(&format!("-{run}")))
            .map(|(.., input)| input)
            .collect();
        due.iter()
            .map(|input| {
                let payload: Value = serde_json::from_str(input).expect("the input is JSON");
                self.revoker.invoke(&payload)
            })
            .collect()
    }

    /// Sends one EventBridge event to intake; returns its report.
    pub fn send_event(&mut self, event: &Value) -> Value {
        self.intake.invoke(event)
    }

    /// Does what the SQS event-source mapping does: receives batches of up to ten
    /// messages from the FIFO queue, invokes the revoker with each, and deletes the
    /// messages that did not fail. Stops when the queue is empty or after
    /// `max_batches`. Returns the revoker's answers.
    pub async fn drain_requests(&mut self, max_batches: usize) -> Vec<Value> {
        let mut answers = Vec::new();
        for _ in 0..max_batches {
            let Some(batch) = self.deliver_request_batch().await else {
                break;
            };
            answers.push(batch.answer);
        }
        answers
    }

    /// One turn of the SQS event-source mapping: receives up to ten messages from the
    /// FIFO queue, invokes the revoker with them, and deletes the messages that did not
    /// fail (the failed ones become visible again at once: the queue's visibility
    /// timeout is 0, so the next turn receives them again, as Lambda would after the
    /// timeout). `None` when the queue had nothing to receive.
    pub async fn deliver_request_batch(&mut self) -> Option<DeliveredBatch> {
        let started = chrono::Utc::now();
        let received = self
            .sqs
            .receive_message()
            .queue_url(&self.requests_url)
            .max_number_of_messages(10)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .send()
            .await
            .expect("receive requests");
        let messages = received.messages.unwrap_or_default();
        if messages.is_empty() {
            return None;
        }
        let arn = queue_arn("requests.fifo");
        let records: Vec<Value> = messages.iter().map(|m| sqs_record(m, &arn)).collect();
        let answer = self.revoker.invoke(&json!({ "Records": records }));
        let finished = chrono::Utc::now();
        self.revoker_batches += 1;
        let failed: Vec<&str> = answer["batchItemFailures"]
            .as_array()
            .map(|f| {
                f.iter()
                    .filter_map(|x| x["itemIdentifier"].as_str())
                    .collect()
            })
            .unwrap_or_default();
        let mut delivered = Vec::new();
        for m in &messages {
            let message_id = m.message_id.clone().unwrap_or_default();
            let is_failed = failed.contains(&message_id.as_str());
            if !is_failed {
                self.sqs
                    .delete_message()
                    .queue_url(&self.requests_url)
                    .receipt_handle(m.receipt_handle.clone().unwrap_or_default())
                    .send()
                    .await
                    .expect("delete request");
            }
            let receive_count = m
                .attributes
                .as_ref()
                .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
                .and_then(|c| c.parse().ok())
                .unwrap_or(1);
            delivered.push(DeliveredRequest {
                message_id,
                body: m.body.clone().unwrap_or_default(),
                receive_count,
                failed: is_failed,
            });
        }
        Some(DeliveredBatch {
            messages: delivered,
            answer,
            started,
            finished,
        })
    }

    /// Delivers every outcome event the bus rule queued to the notifier; returns the
    /// events (as EventBridge delivered them) and the notifier's answers.
    pub async fn drain_outcomes(&mut self) -> Vec<(Value, Value)> {
        let mut delivered = Vec::new();
        loop {
            let received = self
                .sqs
                .receive_message()
                .queue_url(&self.outcomes_url)
                .max_number_of_messages(10)
                .send()
                .await
                .expect("receive outcomes");
            let messages = received.messages.unwrap_or_default();
            if messages.is_empty() {
                return delivered;
            }
            for m in messages {
                let event: Value =
                    serde_json::from_str(m.body.as_deref().unwrap_or("null")).expect("event JSON");
                let answer = self.notifier.invoke(&event);
                self.sqs
                    .delete_message()
                    .queue_url(&self.outcomes_url)
                    .receipt_handle(m.receipt_handle.unwrap_or_default())
                    .send()
                    .await
                    .expect("delete outcome");
                delivered.push((event, answer));
            }
        }
    }

    /// Everything a topic's subscriber has received so far (and consumes it).
    pub async fn inbox(&self, topic: &str) -> Vec<Notification> {
        let url = &self.inboxes[topic];
        let mut out = Vec::new();
        loop {
            let received = self
                .sqs
                .receive_message()
                .queue_url(url)
                .max_number_of_messages(10)
                .send()
                .await
                .expect("receive inbox");
            let messages = received.messages.unwrap_or_default();
            if messages.is_empty() {
                return out;
            }
            for m in messages {
                let envelope: Value = serde_json::from_str(m.body.as_deref().unwrap_or("null"))
                    .expect("SNS envelope");
                let attributes = envelope["MessageAttributes"]
                    .as_object()
                    .map(|a| {
                        a.iter()
                            .map(|(k, v)| {
                                (
                                    k.clone(),
                                    v["Value"].as_str().unwrap_or_default().to_owned(),
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                out.push(Notification {
                    topic: topic.to_owned(),
                    subject: envelope["Subject"].as_str().unwrap_or_default().to_owned(),
                    message: envelope["Message"].as_str().unwrap_or_default().to_owned(),
                    attributes,
                });
                self.sqs
                    .delete_message()
                    .queue_url(url)
                    .receipt_handle(m.receipt_handle.unwrap_or_default())
                    .send()
                    .await
                    .expect("delete inbox message");
            }
        }
    }

    /// Creates a role tagged with its owner team.
    /// Creates a role (tagged with its owner team); its RoleId, which a finding
    /// about its sessions names (`principalId` is `<RoleId>:<session>`).
    pub async fn create_role(&self, name: &str, owner: Option<&str>) -> String {
        let tags: Vec<(&str, &str)> = owner
            .map(|team| ("cutoff:owner", team))
            .into_iter()
            .collect();
        crate::seed::create_role(&self.iam, name, &tags)
            .await
            .expect("create role");
        self.role_id(name).await
    }

    /// The RoleId IAM gave a role.
    pub async fn role_id(&self, name: &str) -> String {
        self.iam
            .get_role()
            .role_name(name)
            .send()
            .await
            .expect("get role")
            .role
            .expect("a role")
            .role_id
    }
}
