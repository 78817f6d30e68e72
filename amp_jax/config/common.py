"""What every config section shares: the checkout's folders, the one error every bad value raises, and the form
of a section's checks."""

from __future__ import annotations

import pathlib
from typing import Any

PROJECT_ROOT = pathlib.Path(__file__).resolve().parents[2]
"""The checkout holding ``configs/``, ``motion_data/`` and ``mjcf/``."""

CONFIG_DIR = PROJECT_ROOT / "configs"


class ConfigError(ValueError):
    """A configuration value is unknown, mistyped, out of range or inconsistent."""

    def __init__(self, source: str, key: str, value: Any, expected: str):
        self.source, self.key, self.value, self.expected = source, key, value, expected
        super().__init__(f"{source}: {key} = {value!r}: expected {expected}")


Check = tuple[str, bool, str]
"""(field name, condition that must hold, what was expected)."""
