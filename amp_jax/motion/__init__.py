"""Expert motion data: host-side loading and validation (``loader``), device-side sampling (``library``)."""

from amp_jax.motion.library import (
    MotionLibrary,
    amp_features,
    frame_at,
    sample_expert_transitions,
    sample_frames,
    slerp,
)
from amp_jax.motion.loader import Clip, MotionDataError, Repair, load_clip, load_motion_library

__all__ = [
    "Clip", "MotionDataError", "MotionLibrary", "Repair", "amp_features", "frame_at", "load_clip",
    "load_motion_library", "sample_expert_transitions", "sample_frames", "slerp",
]
