"""What can go wrong with a run folder's checkpoints."""

class CheckpointError(RuntimeError):
    """A run folder, a checkpoint or its contents is missing, unreadable or does not match the target."""


class CorruptCheckpointError(CheckpointError):
    """A checkpoint's files differ from its digest, are missing, or cannot be decoded."""
