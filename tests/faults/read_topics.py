#!/usr/bin/env python3
"""Reads whole Kafka topics with confluent-kafka (a client this project did
not write) and prints each record as one JSON line:

    {"topic": ..., "partition": ..., "offset": ..., "timestamp": ...,
     "key": ..., "headers": {name: value, ...}, "value": ...}

`timestamp` is the record's Kafka timestamp in milliseconds (null when it
has none); key, header values and value are decoded as UTF-8.

Usage: read_topics.py --bootstrap HOST:PORT --topic T [--topic T ...]
                      [--timeout SECONDS]

Reads every partition of every given topic from offset 0 up to its end
(what it holds when the read reaches it). A topic that does not exist holds nothing: it
prints no records (the fault checker treats a missing outcome topic like an
empty one). Exits 1 when the ends are not reached within the timeout.
"""

import argparse
import json
import sys
import time
import uuid

from confluent_kafka import Consumer, KafkaError, TopicPartition


def decode(raw):
    if raw is None:
        return None
    return raw.decode("utf-8", errors="replace")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", action="append", required=True)
    parser.add_argument("--timeout", type=float, default=60.0)
    args = parser.parse_args()

    consumer = Consumer(
        {
            "bootstrap.servers": args.bootstrap,
            "group.id": "fault-read-" + uuid.uuid4().hex,
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "auto.offset.reset": "earliest",
            "session.timeout.ms": 6000,
        }
    )
    deadline = time.monotonic() + args.timeout

    # Every partition of every topic that exists, read until librdkafka
    # reports its end (the high watermark of the fetch responses; the
    # offsets ListOffsets answers are not used, as Tansu counts a batch of
    # several records as one there).
    partitions = []
    metadata = consumer.list_topics(timeout=10)
    for name in args.topic:
        topic = metadata.topics.get(name)
        if topic is None or topic.error is not None:
            continue
        partitions.extend((name, p) for p in sorted(topic.partitions))
    if not partitions:
        consumer.close()
        return 0

    consumer.assign([TopicPartition(t, p, 0) for (t, p) in partitions])
    at_end = set()
    while at_end != set(partitions):
        if time.monotonic() > deadline:
            print(
                f"timeout: {len(at_end)} of {len(partitions)} partitions read",
                file=sys.stderr,
            )
            consumer.close()
            return 1
        msg = consumer.poll(0.5)
        if msg is None:
            continue
        at = (msg.topic(), msg.partition())
        if msg.error():
            if msg.error().code() == KafkaError._PARTITION_EOF:
                at_end.add(at)
            else:
                print(f"error: {msg.error()}", file=sys.stderr)
            continue
        at_end.discard(at)
        kind, stamp = msg.timestamp()
        headers = {}
        for name, value in msg.headers() or []:
            headers[name] = decode(value)
        record = {
            "topic": msg.topic(),
            "partition": msg.partition(),
            "offset": msg.offset(),
            "timestamp": stamp if kind != 0 else None,
            "key": decode(msg.key()),
            "headers": headers,
            "value": decode(msg.value()),
        }
        print(json.dumps(record))
    consumer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
