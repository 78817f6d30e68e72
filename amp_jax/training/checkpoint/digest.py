"""Digests of checkpoint step folders: SHA-256 of every file, written last, checked before a restore."""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import uuid
from collections.abc import Sequence
from typing import Any

from amp_jax.training.checkpoint.errors import CorruptCheckpointError

DIGEST_FILE = "digest.json"
"""Per step: SHA-256 of each of the step's files, written last."""
_HASH_CHUNK = 1 << 20


def _step_files(step_dir: pathlib.Path) -> list[pathlib.Path]:
    return sorted(p for p in step_dir.rglob("*") if p.is_file() and p.name != DIGEST_FILE)


def _sha256(path: pathlib.Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def step_digest(step_dir: str | os.PathLike) -> dict[str, Any]:
    """``{"algorithm": "sha256", "files": {relative path: hex digest}}`` of every file of a step folder."""
    step_dir = pathlib.Path(step_dir)
    return {"algorithm": "sha256",
            "files": {p.relative_to(step_dir).as_posix(): _sha256(p) for p in _step_files(step_dir)}}


def write_digest(step_dir: str | os.PathLike) -> pathlib.Path:
    """Seals a complete step folder: writes its :data:`DIGEST_FILE` (temporary name, then renamed)."""
    step_dir = pathlib.Path(step_dir)
    path = step_dir / DIGEST_FILE
    tmp = step_dir / f".{DIGEST_FILE}.{uuid.uuid4().hex}.tmp"
    tmp.write_text(json.dumps(step_digest(step_dir), indent=1, sort_keys=True) + "\n")
    os.replace(tmp, path)
    return path


def verify_step(step_dir: str | os.PathLike, *, skip: Sequence[str] = ()) -> bool:
    """Checks a step folder against its digest; False when it has none.

    ``skip``: top-level item folders not to check (a pruned ``heavy`` item is legitimately gone).

    Raises:
      CorruptCheckpointError: naming the step folder and the first file that is missing or differs.
    """
    step_dir = pathlib.Path(step_dir)
    path = step_dir / DIGEST_FILE
    if not path.is_file():
        return False
    try:
        recorded = json.loads(path.read_text())
        files = recorded["files"]
        if recorded.get("algorithm") != "sha256" or not isinstance(files, dict):
            raise ValueError("expected {'algorithm': 'sha256', 'files': {...}}")
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as err:
        raise CorruptCheckpointError(f"{path}: unreadable digest ({err}); the step cannot be verified") from None
    for name, expected in sorted(files.items()):
        if name.split("/", 1)[0] in skip:
            continue
        file = step_dir / name
        if not file.is_file():
            raise CorruptCheckpointError(f"{file}: missing (listed in {DIGEST_FILE}): the checkpoint is incomplete")
        try:
            actual = _sha256(file)
        except OSError as err:
            raise CorruptCheckpointError(f"{file}: cannot be read ({err.strerror})") from None
        if actual != expected:
            raise CorruptCheckpointError(f"{file}: its SHA-256 differs from the one in {DIGEST_FILE} (the file "
                                         "changed after the checkpoint was written): the checkpoint is corrupt")
    return True
