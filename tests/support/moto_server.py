"""moto's server (moto[server] 5.2.5, pinned in tests/support/sqs.rs) for the SQS tests, with
two fixes to moto, for tests only.

1. Speed: moto recomputes every queue attribute, the ApproximateNumberOf* counts included
(each a scan of the queue), for each message it sends (to read ContentBasedDeduplication) and
each message it receives (to read MessageRetentionPeriod), and GetQueueAttributes once per
attribute name: O(n) per message, so a queue of a few thousand messages takes seconds per
call. Here the counts are computed only for GetQueueAttributes, once per call. And
DeleteMessageBatch scans the whole queue twice per message; here once per batch. And the
server lists moto's package directory (a stat per module, ~180) under a global lock on every
request to find the service; here that listing is made once. And each message's visibility
check converts the clock through datetime objects (tens of microseconds, for every message of
the queue on every receive); here it reads time.time().

2. Races: moto's Queue.delete_message rebuilds the queue's message list and assigns it back without the
lock that Queue.add_message takes. Under concurrent deletes (the daemon deletes in batches,
several calls in flight, on moto's threaded server) one delete can undo another (a deleted
message comes back and runs again) and a message sent meanwhile can vanish from the list (a
message lost by the server, which would look like a lost message in the tests), and two
concurrent receives can hand out the same message. Here deletes and receives take the lock
that sends take (a long poll releases it while it waits). Usage: python moto_server.py -H 127.0.0.1 -p PORT
"""

import sys
import threading
import time

from moto import backends
from moto.core.utils import unix_time
from moto.server import main
from moto.sqs.models import Message, Queue, SQSBackend

_attributes = Queue.attributes.fget
_counting = threading.local()
_COUNTS = {
    "ApproximateNumberOfMessages",
    "ApproximateNumberOfMessagesDelayed",
    "ApproximateNumberOfMessagesNotVisible",
}


class _WithoutCounts:
    """A queue seen through this has BASE_ATTRIBUTES without the counts."""

    def __init__(self, queue):
        self._queue = queue
        self.BASE_ATTRIBUTES = [a for a in queue.BASE_ATTRIBUTES if a not in _COUNTS]

    def __getattr__(self, name):
        return getattr(self._queue, name)


def attributes(self):
    if getattr(_counting, "on", False):
        return _attributes(self)
    return _attributes(_WithoutCounts(self))


def get_queue_attributes(self, queue_name, attribute_names):
    queue = self.get_queue(queue_name)
    _counting.on = True
    try:
        all_attributes = _attributes(queue)
    finally:
        _counting.on = False
    if "All" in attribute_names:
        return all_attributes
    return {k: v for k, v in all_attributes.items() if k in attribute_names}


def is_message_valid_based_on_retention_period(self, queue_name, message):
    retention_period = int(self.get_queue(queue_name).message_retention_period)
    return retention_period + message.sent_timestamp / 1000 > unix_time()


_delete_message = Queue.delete_message


def delete_message(self, receipt_handle):
    with self._messages_lock:
        return _delete_message(self, receipt_handle)


def delete_message_batch(self, queue_name, receipts):
    queue = self.get_queue(queue_name)
    wanted = {r["ReceiptHandle"] for r in receipts}
    with queue._messages_lock:
        kept = []
        for message in queue._messages:
            if wanted.isdisjoint(message.all_receipt_handles):
                kept.append(message)
                continue
            queue.pending_messages.discard(message)
            queue.deleted_messages.update(message.all_receipt_handles)
        queue._messages = kept
    success, errors = [], []
    for r in receipts:
        if r["ReceiptHandle"] in queue.deleted_messages:
            success.append(r["Id"])
        else:
            errors.append(
                {
                    "Id": r["Id"],
                    "SenderFault": True,
                    "Code": "ReceiptHandleIsInvalid",
                    "Message": f'The input receipt handle "{r["ReceiptHandle"]}" is not a valid receipt handle.',
                }
            )
    return success, errors


_receive_message = SQSBackend.receive_message


def receive_message(self, queue_name, *args, **kwargs):
    with self.get_queue(queue_name)._messages_lock:
        return _receive_message(self, queue_name, *args, **kwargs)


Message.visible = property(lambda self: time.time() * 1000 > self.visible_at)
Message.delayed = property(lambda self: time.time() * 1000 < self.delayed_until)
_MODULES = tuple(backends.list_of_moto_modules())
backends.list_of_moto_modules = lambda: _MODULES
Queue.attributes = property(attributes)
SQSBackend.get_queue_attributes = get_queue_attributes
SQSBackend.is_message_valid_based_on_retention_period = (
    is_message_valid_based_on_retention_period
)
Queue.delete_message = delete_message
SQSBackend.delete_message_batch = delete_message_batch
SQSBackend.receive_message = receive_message

if __name__ == "__main__":
    sys.exit(main())
