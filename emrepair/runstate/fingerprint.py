"""A stable hash of everything that decides a run's output, so that a different run refuses to continue it."""

from __future__ import annotations

import hashlib
import json
from typing import Any


def run_fingerprint(fields: dict[str, Any]) -> str:
    """The hex sha256 of ``fields`` as canonical JSON (sorted keys, no whitespace)."""
    text = json.dumps(fields, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()
