#!/usr/bin/env python3
"""Reads a Kafka topic from the beginning with confluent-kafka, a client this
project did not write, and prints each record as one JSON line:

    {"topic": ..., "partition": ..., "offset": ..., "key": ...,
     "headers": {name: value, ...}, "value": ...}

key, header values and value are decoded as UTF-8 (null when absent).

Usage: kafka_read.py --bootstrap HOST:PORT --topic TOPIC
                     [--expect N] [--timeout SECONDS]

Without --expect it stops at the end of every partition. With --expect it
reads until N records arrived (or the timeout passed), which covers records
still being written. Exits 2 when the topic does not exist before the
timeout.
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
    parser.add_argument("--topic", required=True)
    parser.add_argument("--expect", type=int, default=None)
    parser.add_argument("--timeout", type=float, default=30.0)
    args = parser.parse_args()

    consumer = Consumer(
        {
            "bootstrap.servers": args.bootstrap,
            "group.id": "kafka-read-" + uuid.uuid4().hex,
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "auto.offset.reset": "earliest",
            "session.timeout.ms": 6000,
        }
    )
    deadline = time.monotonic() + args.timeout

    partitions = None
    while partitions is None:
        metadata = consumer.list_topics(args.topic, timeout=5)
        topic = metadata.topics.get(args.topic)
        if topic is not None and topic.error is None and topic.partitions:
            partitions = sorted(topic.partitions)
        elif time.monotonic() > deadline:
            print(f"topic {args.topic} not found", file=sys.stderr)
            consumer.close()
            return 2
        else:
            time.sleep(0.2)

    consumer.assign(
        [TopicPartition(args.topic, p, 0) for p in partitions]
    )
    at_end = set()
    count = 0
    while True:
        if args.expect is not None and count >= args.expect:
            break
        if args.expect is None and at_end == set(partitions):
            break
        if time.monotonic() > deadline:
            break
        msg = consumer.poll(0.5)
        if msg is None:
            continue
        if msg.error():
            if msg.error().code() == KafkaError._PARTITION_EOF:
                at_end.add(msg.partition())
                continue
            print(f"error: {msg.error()}", file=sys.stderr)
            continue
        at_end.discard(msg.partition())
        headers = {}
        for name, value in msg.headers() or []:
            headers[name] = decode(value)
        record = {
            "topic": msg.topic(),
            "partition": msg.partition(),
            "offset": msg.offset(),
            "key": decode(msg.key()),
            "headers": headers,
            "value": decode(msg.value()),
        }
        print(json.dumps(record), flush=True)
        count += 1
    consumer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
