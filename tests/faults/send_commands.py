#!/usr/bin/env python3
"""Sends many records with confluent-kafka (a client this project did not
write), in the order given, and fails unless the broker acknowledged every
one.

Reads one JSON object per line on stdin:

    {"topic": ..., "key": ..., "value": ..., "event_type": ...}

and sends each with the `event_type` and `message_category: COMMAND`
headers (an `event_type` of null leaves that header out). The producer is
idempotent, so the records of one key stay in the order given.

Usage: send_commands.py --bootstrap HOST:PORT
"""

import argparse
import json
import sys

from confluent_kafka import Producer


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bootstrap", required=True)
    args = parser.parse_args()

    producer = Producer(
        {
            "bootstrap.servers": args.bootstrap,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
        }
    )
    failures = []

    def report(error, message):
        if error is not None:
            failures.append(f"{message.topic()}/{message.key()}: {error}")

    sent = 0
    for line in sys.stdin:
        if not line.strip():
            continue
        record = json.loads(line)
        headers = [("message_category", b"COMMAND")]
        if record.get("event_type") is not None:
            headers.append(("event_type", record["event_type"].encode()))
        while True:
            try:
                producer.produce(
                    record["topic"],
                    key=record["key"].encode(),
                    value=record["value"].encode(),
                    headers=headers,
                    on_delivery=report,
                )
                break
            except BufferError:
                producer.poll(0.1)
        producer.poll(0)
        sent += 1
    remaining = producer.flush(60)
    if remaining or failures:
        print(
            f"{remaining} not delivered, {len(failures)} failed: {failures[:5]}",
            file=sys.stderr,
        )
        return 1
    print(sent)
    return 0


if __name__ == "__main__":
    sys.exit(main())
