#!/usr/bin/env python3
"""Rewrites bench/proto/<contract>.proto from snapshots/modules/<contract>.snap.

The build-script benchmark compiles the same messages with prost-build as
onex-build generates for each example contract. This keeps the two in step:
run it after a change to an example contract or to what onex-build derives,
then review the diff. Every struct becomes a message (fields in order),
every enum of unit variants a proto enum; the contract's event union (an
enum of tuple variants) has no proto counterpart.
"""
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
HEADER = """// The messages that onex-build generates for contracts/{name}.yaml (its named
// types, custom events and derived events), as Protocol Buffers, for the
// prost-build peer of the build-script benchmark. Contract types map to:
// uuid -> string, datetime -> google.protobuf.Timestamp, json ->
// google.protobuf.Value, list<T> -> repeated, map<T> -> map<string, T>,
// optional<T> -> optional. The benchmark renames the package per copy.
// Written by bench/proto/from_snapshots.py from snapshots/modules/{name}.snap.
syntax = "proto3";

package {name};

import "google/protobuf/struct.proto";
import "google/protobuf/timestamp.proto";
"""
SCALARS = {
    "::onex::uuid::Uuid": "string",
    "::std::string::String": "string",
    "::onex::chrono::DateTime<::onex::chrono::Utc>": "google.protobuf.Timestamp",
    "::onex::serde_json::Value": "google.protobuf.Value",
    "bool": "bool",
    "u32": "uint32",
    "u64": "uint64",
    "i32": "int32",
    "i64": "int64",
    "f32": "float",
    "f64": "double",
}


def proto_type(rust):
    """(label, type) of a Rust field type."""
    for wrapper, label in (("::std::option::Option<", "optional "), ("::std::vec::Vec<", "repeated ")):
        if rust.startswith(wrapper):
            return label, proto_type(rust[len(wrapper):-1])[1]
    prefix = "::std::collections::BTreeMap<::std::string::String,"
    if rust.startswith(prefix):
        return "", "map<string, %s>" % proto_type(rust[len(prefix):-1])[1]
    return "", SCALARS.get(rust, rust)


def macro_structs():
    """The struct body of every derived event onex's macros define
    (onex/src/event_set.rs), by macro name; `$output` stands for the
    operation's output type."""
    source = (ROOT / "onex/src/event_set.rs").read_text()
    found = re.finditer(
        r"^macro_rules! (\w+) \{(?:(?!macro_rules!).)*?pub struct \$name \{\n(.*?)^        \}", source, re.S | re.M
    )
    return {m.group(1): m.group(2).replace("$crate::", "::onex::") for m in found}


MACRO_STRUCTS = macro_structs()


def items(code):
    """(kind, name, body) of every top-level struct and enum, and of every
    derived event an onex macro defines, in order."""
    pattern = (
        r"^pub (struct|enum) (\w+) \{\n(.*?)^\}"
        r"|^::onex::(" + "|".join(MACRO_STRUCTS) + r")!\(\n(.*?)^\);"
    )
    for m in re.finditer(pattern, code, re.S | re.M):
        if m.group(1):
            yield m.group(1), m.group(2), m.group(3)
            continue
        args = re.sub(r'#\[doc\s*=\s*"(?:[^"\\]|\\.)*"\]', "", m.group(5))
        args = re.sub(r"\s+", "", args)
        name = re.match(r"(\w+)\(", args).group(1)
        # After the operation's name: the output type.
        output = re.search(r'\),"[^"]*",(.*?),\[', args)
        body = MACRO_STRUCTS[m.group(4)]
        if output:
            body = body.replace("$output", output.group(1))
        yield "struct", name, body


def convert(name):
    code = (ROOT / "snapshots/modules" / f"{name}.snap").read_text()
    out = [HEADER.format(name=name)]
    for kind, item, body in items(code):
        lines = [l.strip() for l in body.splitlines()]
        lines = [l for l in lines if l and not l.startswith(("///", "#["))]
        if kind == "struct":
            # rustfmt breaks long types over lines, with a trailing comma.
            joined = re.sub(r"\s+", "", "".join(lines)).replace(",>", ">")
            fields = re.findall(r"pub(?:\(crate\))?(\w+):(.*?),(?=pub|$)", joined)
            out.append(f"\nmessage {item} {{")
            for number, (field, rust) in enumerate(fields, 1):
                label, typ = proto_type(rust)
                out.append(f"  {label}{typ} {field.removeprefix('r#')} = {number};")
            out.append("}")
        elif all(re.fullmatch(r"\w+,", l) for l in lines):
            upper = re.sub(r"(?<!^)(?=[A-Z])", "_", item).upper()
            out.append(f"\nenum {item} {{")
            for number, variant in enumerate(lines):
                snake = re.sub(r"(?<!^)(?=[A-Z])", "_", variant[:-1]).upper()
                out.append(f"  {upper}_{snake} = {number};")
            out.append("}")
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    names = sys.argv[1:] or [p.stem for p in sorted((ROOT / "contracts").glob("*.yaml"))]
    for name in names:
        (ROOT / "bench/proto" / f"{name}.proto").write_text(convert(name))
