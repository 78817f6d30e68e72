"""Videos: a tracking camera keeps a moving body in view; MP4 and GIF files hold the rendered frames."""

import os
import subprocess
import sys

import imageio.v2 as imageio
import numpy as np
import pytest
from PIL import Image

from amp_jax import config
from amp_jax.evaluation import video

BOX_SCENE = """
<mujoco>
  <visual><global offwidth="64" offheight="48"/></visual>
  <worldbody>
    <light pos="0 0 4" dir="0 0 -1" directional="true"/>
    <geom type="plane" size="20 20 0.1" rgba="0.2 0.3 0.8 1"/>
    <geom type="box" pos="0 2 0.3" size="0.3 0.3 0.3" rgba="0 1 0 1"/>
    <body name="cart" pos="0 0 0.3">
      <freejoint/>
      <geom type="box" size="0.2 0.2 0.2" rgba="1 0 0 1"/>
    </body>
  </worldbody>
</mujoco>
"""


@pytest.fixture(scope="module")
def gl():
    problem = video.gl_problem()
    if problem is not None:
        print(f"rendering tests skipped: {problem}")
        pytest.skip(problem)


def red_centroid(frame: np.ndarray) -> np.ndarray:
    r, g, b = (frame[..., i].astype(int) for i in range(3))
    mask = (r > 120) & (g < 60) & (b < 60)
    assert mask.sum() > 20, "the tracked red box is not in view"
    return np.argwhere(mask).mean(axis=0)


def box_trajectory(steps: int = 12) -> np.ndarray:
    qpos = np.zeros((steps, 7))
    qpos[:, 0] = np.linspace(0.0, 4.0, steps)  # 4 m along x
    qpos[:, 2] = 0.3
    qpos[:, 3] = 1.0
    return qpos


def test_tracking_camera_follows_the_body(gl):
    qpos = box_trajectory()
    frames = video.render_frames(BOX_SCENE, qpos, width=160, height=120, body="cart")
    assert frames.shape == (12, 120, 160, 3) and frames.dtype == np.uint8
    centroids = np.array([red_centroid(f) for f in frames])
    # The box moves 4 m but stays at the same place in the image (within a few pixels).
    assert np.abs(centroids - centroids[0]).max() < 4.0
    # The fixed green box is in view at the start and drifts out of place as the camera follows the cart.
    assert not np.array_equal(frames[0], frames[-1])

    fixed = video.mujoco.MjvCamera()  # a free camera that stays put: the box leaves its place in the image
    fixed.lookat[:] = (0.0, 0.0, 0.3)
    fixed.distance, fixed.azimuth, fixed.elevation = 3.0, 90.0, -20.0
    still = video.render_frames(BOX_SCENE, qpos[:4], width=160, height=120, camera=fixed)
    assert abs(red_centroid(still[3])[1] - red_centroid(still[0])[1]) > 10.0


def test_mp4_and_gif_round_trip(gl, tmp_path):
    qpos = box_trajectory(10)
    mp4 = video.render_video(BOX_SCENE, qpos, tmp_path / "out" / "cart.mp4", fps=20, width=160, height=120, body=1)
    gif = video.render_video(BOX_SCENE, qpos, tmp_path / "cart.gif", fps=20, width=160, height=120, body=1)
    with video.ffmpeg_subprocess():
        reader = imageio.get_reader(mp4)
        mp4_frames = [frame for frame in reader]
        assert reader.get_meta_data()["fps"] == pytest.approx(20.0)
        reader.close()
    assert len(mp4_frames) == 10 and mp4_frames[0].shape == (120, 160, 3)
    rendered = video.render_frames(BOX_SCENE, qpos, width=160, height=120, body=1)
    # Lossy H.264: close on average to what was rendered.
    assert np.abs(np.asarray(mp4_frames, float) - rendered).mean() < 8.0
    with Image.open(gif) as image:
        assert image.n_frames == 10 and image.size == (160, 120)
        assert image.info["duration"] == 50
    assert os.path.getsize(mp4) > 1000


def test_a1_scene_renders(gl):
    scene = config.PROJECT_ROOT / "mjcf" / "scene.xml"
    model = video.load_model(scene)
    qpos = np.tile(model.qpos0, (2, 1))
    qpos[1, 0] += 0.5
    frames = video.render_frames(model, qpos, width=128, height=96, body="trunk")
    assert frames.shape == (2, 96, 128, 3)
    assert frames.std() > 10.0  # robot, floor and sky, not a blank image


def test_bad_input_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match=r"qpos has shape \(3, 5\): expected \[T, nq = 7\]"):
        video.render_frames(BOX_SCENE, np.zeros((3, 5)))
    with pytest.raises(ValueError, match=r"unknown video type '.avi'"):
        video.write_video(np.zeros((2, 8, 8, 3), np.uint8), tmp_path / "x.avi", fps=10)
    with pytest.raises(ValueError, match=r"MP4 \(yuv420p\) needs an even width and height"):
        video.write_video(np.zeros((2, 9, 8, 3), np.uint8), tmp_path / "x.mp4", fps=10)
    with pytest.raises(FileNotFoundError, match=r"nope.xml: no such MJCF file"):
        video.load_model(tmp_path / "nope.xml")
    with pytest.raises(ValueError, match=r"tracking body 'nobody'"):
        video.tracking_camera(video.load_model(BOX_SCENE), "nobody")


def test_without_gl_the_error_says_how_to_get_videos():
    """With no usable GL (glfw and no display), rendering raises VideoUnavailableError naming the fix."""
    script = ("import numpy as np\nfrom amp_jax.evaluation import video\n"
              "try:\n    video.render_frames(video.BOX, np.zeros((1, 7)))\n"
              "except video.VideoUnavailableError as err:\n    print('UNAVAILABLE', err)\n").replace(
                  "video.BOX", repr(BOX_SCENE))
    env = {k: v for k, v in os.environ.items() if k != "DISPLAY"} | {"MUJOCO_GL": "glfw", "JAX_PLATFORMS": "cpu"}
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "UNAVAILABLE cannot render: no OpenGL context with MUJOCO_GL=glfw" in proc.stdout
    assert "MUJOCO_GL=egl (Debian: apt-get install libegl1 libgl1-mesa-dri)" in proc.stdout
    assert "MUJOCO_GL=osmesa (Debian: apt-get install libosmesa6)" in proc.stdout


def test_stills_are_the_frames_at_the_given_times(tmp_path):
    frames = np.zeros((30, 8, 10, 3), np.uint8)
    frames[:, 0, 0, 0] = np.arange(30)  # frame k carries its index in one pixel
    gif = video.write_video(frames, tmp_path / "clip.gif", fps=10.0)
    read = video.read_video(gif)
    assert read.shape == frames.shape and np.array_equal(read[:, 0, 0, 0], np.arange(30))
    paths = video.save_stills(read, 10.0, [0.0, 1.5, 99.0], tmp_path / "stills" / "a1")
    assert [p.name for p in paths] == ["a1_0s.png", "a1_1.5s.png", "a1_99s.png"]
    assert [int(np.asarray(Image.open(p))[0, 0, 0]) for p in paths] == [0, 15, 29]
