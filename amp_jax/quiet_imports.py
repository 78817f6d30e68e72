"""Keeps dependency chatter that says nothing to a user of this project out of what the user reads.

Each filter is narrow, by module and message, so a dependency's real warnings stay visible:

- :func:`import_mjx`: MuJoCo's MJX prints ``Failed to import warp: ...`` and ``Failed to import mujoco_warp:
  ...`` to standard output when it is imported without the optional warp-lang package (its GPU backend, which
  this project does not use by default). Those two lines are dropped; anything else printed is passed on.
- :class:`MessageFilter` on the ``onnx_ir.serde`` logger: the ONNX converter logs "The value type for shape
  [...] is not known ... Skipping serialization" for each shape constant of the policy graph; the graph is
  checked by onnxruntime against the Flax policy afterwards, which is what would catch a real problem.
"""

from __future__ import annotations

import contextlib
import io
import logging
import sys

MJX_IMPORT_NOISE = ("Failed to import warp:", "Failed to import mujoco_warp:")
"""Starts of the lines MJX prints at import when warp-lang is absent."""

ONNX_SERDE_NOISE = "The value type for shape"
"""Start of the ONNX serialiser's message about untyped shape constants."""


class MessageFilter(logging.Filter):
    """Drops the records of one logger whose message starts with one of ``prefixes``."""

    def __init__(self, prefixes: tuple[str, ...]):
        super().__init__()
        self.prefixes = prefixes

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.getMessage()).startswith(self.prefixes)


def import_mjx():
    """``mujoco.mjx``, imported (once) without its warp-import lines on standard output."""
    if "mujoco.mjx" not in sys.modules:
        captured = io.StringIO()
        with contextlib.redirect_stdout(captured):
            import mujoco.mjx  # noqa: F401
        kept = [line for line in captured.getvalue().splitlines() if not line.startswith(MJX_IMPORT_NOISE)]
        if kept:
            print("\n".join(kept))
    return sys.modules["mujoco.mjx"]


def install_onnx_filter() -> None:
    """Adds (once) the :data:`ONNX_SERDE_NOISE` filter to the ``onnx_ir.serde`` logger."""
    serde = logging.getLogger("onnx_ir.serde")
    if not any(isinstance(f, MessageFilter) for f in serde.filters):
        serde.addFilter(MessageFilter((ONNX_SERDE_NOISE,)))
