"""Canonical JSON for the IR: byte-identical for equal pipelines, and loadable back."""

from __future__ import annotations

import json
from typing import Any

from pipec.ir.model import Pipeline


def to_json(pipeline: Pipeline) -> str:
    """Sorted keys, two-space indent, every field present, one trailing newline."""
    data = pipeline.model_dump(mode="json")
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def from_json(text: str) -> Pipeline:
    """Load (and validate) a pipeline from its JSON form."""
    return Pipeline.model_validate_json(text)


def json_schema() -> dict[str, Any]:
    """The JSON Schema of the IR document."""
    return Pipeline.model_json_schema()
