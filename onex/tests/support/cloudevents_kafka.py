#!/usr/bin/env python3
"""The CloudEvents Python SDK's Kafka binding (binary content mode), a
reader and writer of CloudEvents this project did not write.

    cloudevents_kafka.py convert
        reads records as kafka_read.py prints them (one JSON object per
        line on stdin), converts each with the SDK's `from_binary` and
        prints its attributes and data as one JSON line:
        {"attributes": {...}, "data": ...}

    cloudevents_kafka.py send --bootstrap HOST:PORT --topic TOPIC
            --attributes JSON --data JSON
        builds a CloudEvent with the SDK, turns it into a Kafka message
        with `to_binary` (ce_ headers, the JSON data as the value) and
        produces it with confluent-kafka.
"""

import argparse
import json
import sys

try:  # SDK 2.x keeps the 1.x API under cloudevents.v1
    from cloudevents.v1.http import CloudEvent
    from cloudevents.v1.kafka import KafkaMessage, from_binary, to_binary
except ImportError:  # SDK 1.x
    from cloudevents.http import CloudEvent
    from cloudevents.kafka import KafkaMessage, from_binary, to_binary


def encode(text):
    return None if text is None else text.encode("utf-8")


def convert():
    for line in sys.stdin:
        if not line.strip():
            continue
        record = json.loads(line)
        message = KafkaMessage(
            headers={k: encode(v) for k, v in record["headers"].items()},
            key=encode(record["key"]),
            value=encode(record["value"]),
        )
        event = from_binary(message, data_unmarshaller=json.loads)
        attributes = {
            name: value.decode("utf-8") if isinstance(value, bytes) else str(value)
            for name, value in event.get_attributes().items()
        }
        print(json.dumps({"attributes": attributes, "data": event.get_data()}), flush=True)
    return 0


def send(args):
    from confluent_kafka import Producer

    attributes = json.loads(args.attributes)
    attributes.setdefault("datacontenttype", "application/json")
    event = CloudEvent(attributes, json.loads(args.data))
    message = to_binary(event, data_marshaller=lambda d: json.dumps(d).encode("utf-8"))
    producer = Producer({"bootstrap.servers": args.bootstrap})
    errors = []
    producer.produce(
        args.topic,
        value=message.value,
        key=message.key,
        headers=list(message.headers.items()),
        on_delivery=lambda err, _msg: err and errors.append(err),
    )
    producer.flush(30)
    if errors:
        print(f"not delivered: {errors[0]}", file=sys.stderr)
        return 1
    return 0


def main():
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("convert")
    s = sub.add_parser("send")
    s.add_argument("--bootstrap", required=True)
    s.add_argument("--topic", required=True)
    s.add_argument("--attributes", required=True)
    s.add_argument("--data", required=True)
    args = parser.parse_args()
    return convert() if args.command == "convert" else send(args)


if __name__ == "__main__":
    sys.exit(main())
