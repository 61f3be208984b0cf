"""The record formats every data backend produces and every later stage reads.

Instruction record (train.jsonl, one JSON object per line):
    {"id": str, "instruction": str, "input": str, "output": str, "lang": str, "source": str}

Evaluation record (held-out sets of the local tasks), the instruction record plus:
    multiple choice: {"choices": [str, ...], "label": int}   (choices[label] == output)
    generative:      the instruction record itself; "output" is the reference answer.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable

from maple.runtime.atomic import replacing

INSTRUCTION_FIELDS = ("id", "instruction", "input", "output", "lang", "source")


class RecordError(ValueError):
    """A record does not have the shape of INSTRUCTION_FIELDS."""


def check_record(record: dict) -> dict:
    missing = [f for f in INSTRUCTION_FIELDS if f not in record]
    if missing:
        raise RecordError(f"record {record.get('id', '?')!r} lacks fields {missing}")
    for field in INSTRUCTION_FIELDS:
        if not isinstance(record[field], str):
            raise RecordError(f"record {record['id']!r}: field {field!r} must be a string")
    return record


def write_jsonl(records: Iterable[dict], path: str | os.PathLike, default=None) -> None:
    """Write records atomically: a temporary file beside the target, renamed at the end. `default` serialises
    what JSON cannot (as json.dumps)."""
    with replacing(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        for record in records:
            f.write(json.dumps(record, ensure_ascii=False, sort_keys=True, default=default) + "\n")


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]
