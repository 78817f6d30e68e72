"""Videos of trajectories: render ``qpos [T, nq]`` of an MJCF model with a tracking camera, write MP4 or GIF.

Rendering needs a headless OpenGL that MuJoCo can use, chosen by the ``MUJOCO_GL`` environment variable
*before* ``mujoco`` is first imported:

- ``MUJOCO_GL=egl`` (GPU or Mesa; Debian packages ``libegl1 libgl1-mesa-dri``), the default this module sets
  when it is imported before ``mujoco`` on a machine without a display;
- ``MUJOCO_GL=osmesa`` (software; Debian package ``libosmesa6``).

Without one, :func:`render_frames` raises :class:`VideoUnavailableError` saying how to get videos.
"""

from __future__ import annotations

import contextlib
import functools
import os
import pathlib
import sys
import warnings
from collections.abc import Iterator, Sequence

if "mujoco" not in sys.modules and sys.platform.startswith("linux") and not os.environ.get("DISPLAY"):
    os.environ.setdefault("MUJOCO_GL", "egl")

import mujoco  # noqa: E402
import numpy as np  # noqa: E402

HOW_TO_GET_VIDEOS = (
    "set MUJOCO_GL=egl (Debian: apt-get install libegl1 libgl1-mesa-dri) or MUJOCO_GL=osmesa "
    "(Debian: apt-get install libosmesa6) in the environment before Python starts"
)


class VideoUnavailableError(RuntimeError):
    """No headless OpenGL context could be made, so nothing can be rendered."""


def load_model(model: mujoco.MjModel | str | os.PathLike) -> mujoco.MjModel:
    """An ``MjModel`` as given, or compiled from an MJCF file path or an XML string."""
    if isinstance(model, mujoco.MjModel):
        return model
    text = str(model)
    if text.lstrip().startswith("<"):
        return mujoco.MjModel.from_xml_string(text)
    path = pathlib.Path(text)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such MJCF file")
    return mujoco.MjModel.from_xml_path(str(path))


def tracking_camera(model: mujoco.MjModel, body: str | int = 1, *, distance: float = 1.5, azimuth: float = 135.0,
                    elevation: float = -20.0) -> mujoco.MjvCamera:
    """A camera that follows ``body`` (name or id; default the first body, e.g. the trunk) at a fixed offset.

    ``azimuth`` and ``elevation`` are in degrees, ``distance`` in metres.
    """
    body_id = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, body) if isinstance(body, str) else int(body)
    if not 0 < body_id < model.nbody:
        raise ValueError(f"tracking body {body!r}: expected the name or id of a body other than the world")
    camera = mujoco.MjvCamera()
    camera.type = mujoco.mjtCamera.mjCAMERA_TRACKING
    camera.trackbodyid = body_id
    camera.distance, camera.azimuth, camera.elevation = distance, azimuth, elevation
    return camera


@functools.cache
def gl_problem() -> str | None:
    """None when an offscreen OpenGL context can be made here, else why not and how to fix it (checked once)."""
    probe = mujoco.MjModel.from_xml_string("<mujoco><worldbody><geom size='1'/></worldbody></mujoco>")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # glfw only warns when it has no display
            renderer = mujoco.Renderer(probe, height=8, width=8)
        try:
            renderer.render()
        finally:
            renderer.close()
    except Exception as err:  # the backends raise ImportError, RuntimeError, mujoco.FatalError, GLFWError, ...
        backend = os.environ.get("MUJOCO_GL", "<unset: glfw, needs a display>")
        return f"no OpenGL context with MUJOCO_GL={backend} ({type(err).__name__}: {err}); {HOW_TO_GET_VIDEOS}"
    return None


def render_frames(model: mujoco.MjModel | str | os.PathLike, qpos: np.ndarray, *, width: int = 640,
                  height: int = 480, camera: mujoco.MjvCamera | None = None, body: str | int = 1) -> np.ndarray:
    """RGB frames ``[T, height, width, 3]`` uint8 of the poses ``qpos [T, nq]``.

    Args:
      model: an ``MjModel``, an MJCF path or an MJCF string (include a floor and lights for a readable view).
      qpos: one pose per frame (kinematic replay: positions only, no simulation).
      camera: default: :func:`tracking_camera` on ``body``.
    Raises:
      VideoUnavailableError: no headless OpenGL (the message says how to get one).
    """
    model = load_model(model)
    qpos = np.asarray(qpos, dtype=np.float64)
    if qpos.ndim != 2 or qpos.shape[1] != model.nq:
        raise ValueError(f"qpos has shape {qpos.shape}: expected [T, nq = {model.nq}]")
    model.vis.global_.offwidth = max(model.vis.global_.offwidth, width)
    model.vis.global_.offheight = max(model.vis.global_.offheight, height)
    camera = camera if camera is not None else tracking_camera(model, body)
    data = mujoco.MjData(model)
    problem = gl_problem()
    if problem is not None:
        raise VideoUnavailableError(f"cannot render: {problem}")
    renderer = mujoco.Renderer(model, height=height, width=width)
    frames = np.empty((qpos.shape[0], height, width, 3), dtype=np.uint8)
    try:
        for t, pose in enumerate(qpos):
            data.qpos[:] = pose
            mujoco.mj_forward(model, data)
            renderer.update_scene(data, camera=camera)
            frames[t] = renderer.render()
    finally:
        renderer.close()
    return frames


@contextlib.contextmanager
def ffmpeg_subprocess() -> Iterator[None]:
    """Around a call that runs ffmpeg in a subprocess (imageio's MP4 reader and writer): JAX warns at every
    fork of its multithreaded process, but the child only execs ffmpeg (no Python, no JAX), the case where a
    fork is safe, so exactly that warning is silenced."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"os\.fork\(\) was called", category=RuntimeWarning)
        yield


def write_video(frames: np.ndarray | Sequence[np.ndarray], path: str | os.PathLike, fps: float) -> pathlib.Path:
    """Writes RGB frames ``[T, H, W, 3]`` uint8 as MP4 (H.264, ``.mp4``) or GIF (``.gif``)."""
    path = pathlib.Path(path)
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or len(frames) == 0:
        raise ValueError(f"frames have shape {frames.shape} dtype {frames.dtype}: expected [T>0, H, W, 3] uint8")
    if fps <= 0:
        raise ValueError(f"fps = {fps}: expected a positive frame rate")
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = path.suffix.lower()
    if suffix == ".mp4":
        import imageio.v2 as imageio

        if frames.shape[1] % 2 or frames.shape[2] % 2:
            raise ValueError(f"{path}: frames are {frames.shape[2]}x{frames.shape[1]}: MP4 (yuv420p) needs an even "
                             "width and height")
        # yuv420p plays in every browser and player; macro_block_size=1 keeps the size as it is.
        with ffmpeg_subprocess():
            imageio.mimwrite(path, list(frames), fps=fps, codec="libx264", pixelformat="yuv420p",
                             macro_block_size=1)
    elif suffix == ".gif":
        from PIL import Image

        images = [Image.fromarray(frame) for frame in frames]
        images[0].save(path, save_all=True, append_images=images[1:], duration=int(round(1000.0 / fps)), loop=0)
    else:
        raise ValueError(f"{path}: unknown video type {suffix!r} (expected .mp4 or .gif)")
    return path


def render_video(model: mujoco.MjModel | str | os.PathLike, qpos: np.ndarray, path: str | os.PathLike, *,
                 fps: float, width: int = 640, height: int = 480, body: str | int = 1,
                 camera: mujoco.MjvCamera | None = None) -> pathlib.Path:
    """Renders ``qpos [T, nq]`` with a tracking camera and writes it to ``path`` (``.mp4`` or ``.gif``).

    ``fps`` is the frame rate of the poses (1 / control period to play in real time).
    """
    frames = render_frames(model, qpos, width=width, height=height, camera=camera, body=body)
    return write_video(frames, path, fps)


def read_video(path: str | os.PathLike) -> np.ndarray:
    """The RGB frames ``[T, H, W, 3]`` uint8 of an MP4 or GIF file."""
    import imageio.v2 as imageio

    with ffmpeg_subprocess():
        frames = np.asarray(imageio.mimread(str(path), memtest=False))
    return frames[..., :3]


def save_stills(frames: np.ndarray, fps: float, times_s: Sequence[float], path_prefix: str | os.PathLike
                ) -> list[pathlib.Path]:
    """PNG files ``<path_prefix>_<t>s.png`` of the frames ``[T, H, W, 3]`` nearest to each time (s)."""
    from PIL import Image

    frames = np.asarray(frames)
    prefix = pathlib.Path(path_prefix)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    out = []
    for t in times_s:
        index = int(np.clip(round(t * fps), 0, len(frames) - 1))
        path = prefix.with_name(f"{prefix.name}_{t:g}s.png")
        Image.fromarray(frames[index]).save(path)
        out.append(path)
    return out
