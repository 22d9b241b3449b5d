"""Two of moto's costs that grow with the data, where AWS's do not, made constant for
`make bench`, and one of SQS's documented behaviours that moto lacks (the bench's moto
only: `make test` runs moto as installed).

Python imports this module at start-up when its directory is on PYTHONPATH, which the
bench harness sets for the moto it starts. Neither change alters what moto answers;
bench/moto/check_patches.py (run by `make bench` before anything is measured, and by
`make test`) checks that on the cases that matter.

1. SQS: every SendMessage reads the queue's attributes (to learn whether it
   deduplicates by content), and moto computes them all, three approximate message
   counts included, each walking every message of the queue and asking the clock for
   each through datetime arithmetic. A FIFO SendMessage into a queue holding 1,000
   messages took 135 ms here against 13 ms into an empty one. The clock is read here
   with time.time(), which gives the same milliseconds since the epoch.
2. DynamoDB: before a TransactWriteItems moto deep-copies every table the transaction
   names, to put it back if the transaction is cancelled: 10 ms against an empty table,
   103 ms against one of 1,000 items (PutItem stays at 7 to 10 ms). Here only the items
   the transaction names are copied, and on a cancellation each is put back as it was
   (or removed, if it was absent), which leaves the table as moto's own rollback does.
3. SQS FIFO: "When receiving messages from a FIFO queue with multiple message group
   IDs, Amazon SQS first attempts to return as many messages with the same message
   group ID as possible" (the SQS developer guide, FIFO queue logic). moto returns the
   oldest visible messages whatever their groups, so a batch of a queue whose groups
   interleave holds ten groups where SQS's holds one. Before each receive, the queue's
   messages are ordered by the age of their group's oldest message, each group's own
   order kept: the only order FIFO promises is within a group.
"""

import copy
import time

import moto.core.utils as _core_utils
import moto.dynamodb.models as _dynamodb_models
import moto.sqs.models as _sqs_models
from moto.dynamodb.models.table import Table as _Table


def _unix_time_millis(dt=None):
    if dt is None:
        return time.time() * 1000.0
    return _core_utils.unix_time_millis(dt)


_sqs_models.unix_time_millis = _unix_time_millis


class _NoTableCopy:
    """`copy` as moto's DynamoDB module sees it: a table is not copied (the live table
    is its own "backup"; _transact_write_items restores the items it touched)."""

    @staticmethod
    def deepcopy(value, memo=None):
        if isinstance(value, _Table):
            return value
        return copy.deepcopy(value, memo)


_dynamodb_models.copy = _NoTableCopy
_transact_write_items = _dynamodb_models.DynamoDBBackend.transact_write_items


def _named_items(backend, transact_items):
    """(table name, key, the item now or None) for each item the transaction names."""
    named = []
    for entry in transact_items:
        if len(entry) != 1:
            continue
        op_type, op = next(iter(entry.items()))
        table = backend.tables.get(op.get("TableName") if isinstance(op, dict) else None)
        if table is None:
            continue
        if op_type == "Put":
            attrs = op.get("Item", {})
            key = {table.hash_key_attr: attrs.get(table.hash_key_attr)}
            if table.range_key_attr is not None:
                key[table.range_key_attr] = attrs.get(table.range_key_attr)
        else:
            key = op.get("Key")
        if not isinstance(key, dict) or any(v is None for v in key.values()):
            continue
        try:
            current = backend.get_item(table.name, key)
        except Exception:  # an invalid key: moto's own call reports it
            continue
        named.append((table.name, key, copy.deepcopy(current)))
    return named


def _put_back(backend, table_name, key, before):
    """The item of `key` as it was before the transaction (absent if it was): set in
    the table's storage directly, as moto's restored copy of the table would hold it."""
    table = backend.tables[table_name]
    hash_value, range_value = backend.get_keys_value(table, key)
    if range_value:
        partition = table.items[hash_value]
        if before is None:
            partition.pop(range_value, None)
            if not partition:
                del table.items[hash_value]
        else:
            partition[range_value] = before
    elif before is None:
        table.items.pop(hash_value, None)
    else:
        table.items[hash_value] = before


def transact_write_items(self, transact_items):
    named = _named_items(self, transact_items)
    try:
        return _transact_write_items(self, transact_items)
    except Exception:
        for table_name, key, before in reversed(named):
            _put_back(self, table_name, key, before)
        raise


_dynamodb_models.DynamoDBBackend.transact_write_items = transact_write_items


_receive_message = _sqs_models.SQSBackend.receive_message


def receive_message(self, queue_name, *args, **kwargs):
    queue = self.get_queue(queue_name)
    if queue.fifo_queue:
        with queue._messages_lock:
            oldest = {}
            for position, message in enumerate(queue._messages):
                oldest.setdefault(message.group_id, position)
            # A stable sort (within a group the order of arrival stays), into a new
            # list swapped in at once: moto's server is threaded and some of its
            # paths read the list without the lock, and a list being sorted in place
            # reads as empty.
            queue._messages = sorted(
                queue._messages, key=lambda message: oldest[message.group_id]
            )
    return _receive_message(self, queue_name, *args, **kwargs)


_sqs_models.SQSBackend.receive_message = receive_message

_delete_message = _sqs_models.Queue.delete_message


def delete_message(self, receipt_handle):
    # Under the queue's lock (a reentrant one), as its appends are: moto's delete
    # rebuilds the list and swaps it in, which could otherwise drop a message appended
    # or re-order a receive made meanwhile.
    with self._messages_lock:
        return _delete_message(self, receipt_handle)


_sqs_models.Queue.delete_message = delete_message
