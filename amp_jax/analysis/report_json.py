"""Reports as strict JSON: measures that do not exist (a cost of transport without distance) are NaN in the
analysis and ``null`` in the files."""

from __future__ import annotations

import math
from typing import Any


def json_ready(value: Any) -> Any:
    """``value`` (nested dicts, lists, tuples, numbers, strings) with NaN and infinities replaced by None."""
    if isinstance(value, dict):
        return {k: json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
