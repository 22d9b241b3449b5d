"""Checks that bench/moto/sitecustomize.py leaves moto's answers as they were, and that
a FIFO batch groups as SQS's does: run by
`make bench` (before anything is measured) and by `make test`, with that directory on
PYTHONPATH, so that an upgrade of moto that breaks the patch stops the bench instead of
measuring another stand-in. Exits non-zero with what differs."""

import sys
import time

import boto3
import botocore.exceptions
from moto import mock_aws

import moto.dynamodb.models as dynamodb_models
import moto.sqs.models as sqs_models


def check(condition, what):
    if not condition:
        print(f"bench moto patch: {what}", file=sys.stderr)
        sys.exit(1)


def counts_of(sqs, url):
    return sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]


def main():
    check(
        dynamodb_models.copy.__name__ == "_NoTableCopy"
        and sqs_models.unix_time_millis.__name__ == "_unix_time_millis",
        "not applied (is bench/moto on PYTHONPATH?)",
    )
    millis = sqs_models.unix_time_millis()
    check(abs(millis - time.time() * 1000) < 1000, f"the clock reads {millis}")
    with mock_aws():
        ddb = boto3.client("dynamodb", region_name="us-east-1")
        ddb.create_table(
            TableName="t",
            KeySchema=[
                {"AttributeName": "pk", "KeyType": "HASH"},
                {"AttributeName": "sk", "KeyType": "RANGE"},
            ],
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "S"},
            ],
            BillingMode="PAY_PER_REQUEST",
        )
        ddb.put_item(
            TableName="t",
            Item={
                "pk": {"S": "a"},
                "sk": {"S": "1"},
                "m": {"M": {"x": {"N": "1"}}},
                "b": {"B": b"\x00\x01"},
                "l": {"L": [{"S": "q"}]},
            },
        )
        ddb.put_item(TableName="t", Item={"pk": {"S": "gone"}, "sk": {"S": "1"}})
        before = ddb.scan(TableName="t")["Items"]
        # Cancelled after an update, a put of a new item and a delete: all undone.
        try:
            ddb.transact_write_items(
                TransactItems=[
                    {"Update": {"TableName": "t", "Key": {"pk": {"S": "a"}, "sk": {"S": "1"}},
                                "UpdateExpression": "SET m.x = :v, n = :v",
                                "ExpressionAttributeValues": {":v": {"N": "2"}}}},
                    {"Put": {"TableName": "t", "Item": {"pk": {"S": "new"}, "sk": {"S": "1"}}}},
                    {"Delete": {"TableName": "t", "Key": {"pk": {"S": "gone"}, "sk": {"S": "1"}}}},
                    {"Put": {"TableName": "t", "Item": {"pk": {"S": "a"}, "sk": {"S": "2"}},
                             "ConditionExpression": "attribute_exists(pk)"}},
                ]
            )
            check(False, "a transaction whose condition fails was applied")
        except botocore.exceptions.ClientError as err:
            reasons = [r["Code"] for r in err.response.get("CancellationReasons", [])]
            check(
                err.response["Error"]["Code"] == "TransactionCanceledException"
                and reasons == ["None", "None", "None", "ConditionalCheckFailed"],
                f"cancelled as {err.response['Error']['Code']} {reasons}",
            )
        after = ddb.scan(TableName="t")["Items"]
        check(after == before, f"a cancelled transaction left {after}, not {before}")
        # Applied when every condition holds.
        ddb.transact_write_items(
            TransactItems=[
                {"Put": {"TableName": "t", "Item": {"pk": {"S": "new"}, "sk": {"S": "1"}},
                         "ConditionExpression": "attribute_not_exists(pk)"}},
                {"Delete": {"TableName": "t", "Key": {"pk": {"S": "gone"}, "sk": {"S": "1"}}}},
            ]
        )
        keys = sorted((i["pk"]["S"], i["sk"]["S"]) for i in ddb.scan(TableName="t")["Items"])
        check(keys == [("a", "1"), ("new", "1")], f"after a transaction: {keys}")

        sqs = boto3.client("sqs", region_name="us-east-1")
        url = sqs.create_queue(QueueName="t.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
        for dedup in ["d1", "d1", "d2"]:
            sqs.send_message(QueueUrl=url, MessageBody=dedup, MessageGroupId="g",
                             MessageDeduplicationId=dedup)
        counts = lambda: sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        check(counts()["ApproximateNumberOfMessages"] == "2", f"queued: {counts()}")
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=60)
        check([m["Body"] for m in got["Messages"]] == ["d1", "d2"], f"received {got}")
        now = counts()
        check(
            now["ApproximateNumberOfMessages"] == "0"
            and now["ApproximateNumberOfMessagesNotVisible"] == "2",
            f"in flight: {now}",
        )
        # A batch holds as many messages of one group as it can, each group in order.
        url = sqs.create_queue(QueueName="g.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
        for i in range(6):
            sqs.send_message(QueueUrl=url, MessageBody=f"{'ab'[i % 2]}{i}",
                             MessageGroupId="ab"[i % 2], MessageDeduplicationId=str(i))
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=4, VisibilityTimeout=60)
        bodies = [m["Body"] for m in got["Messages"]]
        check(bodies == ["a0", "a2", "a4", "b1"], f"a batch of interleaved groups: {bodies}")
        first_batch = got["Messages"]
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=4, VisibilityTimeout=60)
        check("Messages" not in got, f"both groups are in flight, yet: {got}")
        for message in first_batch:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        left = counts_of(sqs, url)
        check(
            left["ApproximateNumberOfMessages"] == "2"
            and left["ApproximateNumberOfMessagesNotVisible"] == "0",
            f"after deleting a batch: {left}",
        )
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=4, VisibilityTimeout=60)
        bodies = [m["Body"] for m in got["Messages"]]
        check(bodies == ["b3", "b5"], f"the rest of the groups: {bodies}")
    print("bench moto patch: moto answers as before (transactions, FIFO deduplication, counts),"
          " and a FIFO batch holds as many messages of one group as it can")


if __name__ == "__main__":
    main()
