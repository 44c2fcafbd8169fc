"""Small JSON records the orchestration keeps beside its outputs (registrations, Bento builds,
what an incremental build or load covered), written so a crash never leaves half a file."""

from __future__ import annotations

import json
from pathlib import Path


def write_json_atomically(path: Path, value: object) -> None:
    """Write `value` as indented JSON to `path`: to a partial file first, renamed onto `path`, so
    a crash leaves the previous record whole."""
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(value, indent=1, sort_keys=True))
    partial.replace(path)
