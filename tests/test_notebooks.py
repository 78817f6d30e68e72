"""The notebooks: committed without outputs, one repository URL that the Colab badges agree with, and every
notebook executed top to bottom on the CPU in smoke mode (a kernel of this interpreter), so they cannot rot.
Also the helpers of ``amp_jax.training.notebook_utils``."""

import json
import os
import pathlib
import re
import sys

import jax
import nbclient
import nbformat
import numpy as np
import pytest

from amp_jax.evaluation import video
from amp_jax.training import metrics_log, notebook_utils

PROJECT_ROOT = pathlib.Path(__file__).resolve().parent.parent
NOTEBOOK_DIR = PROJECT_ROOT / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
CELL_TIMEOUT_S = 600
REPO_URL_LINE = re.compile(r'^REPO_URL = "https://github\.com/([\w.-]+)/([\w.-]+)"', re.MULTILINE)
BADGE = re.compile(r"\(https://colab\.research\.google\.com/github/([\w.-]+)/([\w.-]+)/blob/main/notebooks/"
                   r"([\w.-]+\.ipynb)\)")


def _read(path: pathlib.Path):
    return nbformat.read(path, as_version=4)


def _repo(notebook) -> tuple[str, str]:
    """(owner, name) of the notebook's one ``REPO_URL = ...`` line, which must be in its first code cell."""
    code = [cell.source for cell in notebook.cells if cell.cell_type == "code"]
    matches = [m.groups() for source in code for m in REPO_URL_LINE.finditer(source)]
    assert len(matches) == 1, f"expected exactly one REPO_URL line, found {matches}"
    assert REPO_URL_LINE.search(code[0]), "REPO_URL belongs in the first code cell"
    return matches[0]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_valid_and_committed_without_outputs(path):
    notebook = _read(path)
    nbformat.validate(notebook)
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{path.name} cell {index}: clear the outputs before committing"
            assert cell.execution_count is None, f"{path.name} cell {index}: clear the execution count"
    assert "widgets" not in notebook.metadata, f"{path.name}: widget state stored in the metadata"


def test_one_repository_url_builds_every_badge():
    repos = {path.name: _repo(_read(path)) for path in NOTEBOOKS}
    assert len(set(repos.values())) == 1, f"the notebooks name different repositories: {repos}"
    owner, name = next(iter(repos.values()))
    readme_badges = BADGE.findall((PROJECT_ROOT / "README.md").read_text())
    # the README's badges name exactly the notebooks there are (so a notebook gone missing fails here too)
    assert {b[2] for b in readme_badges} == set(repos), "README.md needs one Open-in-Colab badge per notebook"
    for path in NOTEBOOKS:
        notebook_badges = BADGE.findall(_read(path).cells[0].source)
        assert [b[2] for b in notebook_badges] == [path.name], f"{path.name}: its first cell should carry its badge"
        for badge in readme_badges + notebook_badges:
            assert badge[:2] == (owner, name), f"badge {badge} does not match REPO_URL github.com/{owner}/{name}"


# ----------------------------------------------------------------------------------------------------------
# notebook_utils


def test_smoke_mode_reads_the_environment_variable():
    assert notebook_utils.smoke_mode({notebook_utils.SMOKE_ENV_VAR: "1"})
    assert notebook_utils.smoke_mode({notebook_utils.SMOKE_ENV_VAR: " True "})
    assert not notebook_utils.smoke_mode({notebook_utils.SMOKE_ENV_VAR: "0"})
    assert not notebook_utils.smoke_mode({})


def _fake_glob(paths):
    import fnmatch

    return lambda pattern: [p for p in paths if fnmatch.fnmatch(p, pattern)]


@pytest.mark.parametrize("environ, paths, expected", [
    ({"COLAB_TPU_ADDR": "10.0.0.2:8470"}, [], "tpu"),
    ({"TPU_NAME": "local"}, ["/dev/nvidia0"], "tpu"),
    ({}, ["/dev/accel0", "/dev/accel1"], "tpu"),  # TPU v2-v4 VM: no nvidia-smi, no env variable needed
    ({}, ["/dev/vfio/0", "/dev/vfio/vfio"], "tpu"),  # TPU v5e and later
    ({}, ["/dev/vfio/vfio"], "cpu"),  # the VFIO control file alone is no accelerator
    ({}, ["/dev/nvidiactl", "/dev/nvidia-uvm", "/dev/nvidia0"], "gpu"),
    ({}, ["/dev/nvidiactl", "/dev/nvidia-uvm"], "cpu"),  # driver without a GPU
    ({"COLAB_TPU_ADDR": ""}, [], "cpu"),
])
def test_detect_accelerator(environ, paths, expected):
    assert notebook_utils.detect_accelerator(environ, _fake_glob(paths)) == expected


def test_jax_requirement():
    assert notebook_utils.jax_requirement("gpu", "0.7.1") == "jax[cuda12]==0.7.1"
    assert notebook_utils.jax_requirement("tpu") == "jax[tpu]"
    assert notebook_utils.jax_requirement("cpu", "0.7.1") is None
    with pytest.raises(ValueError, match="'npu'"):
        notebook_utils.jax_requirement("npu")


@pytest.mark.parametrize("start, total, chunk", [(0, 7, 3), (0, 6, 3), (4, 7, 3), (3, 3, 3), (5, 3, 2), (0, 1, 50),
                                                 (2, 10, 1)])
def test_chunk_stops_visit_each_multiple_once_and_end_at_total(start, total, chunk):
    stops = notebook_utils.chunk_stops(start, total, chunk)
    expected = [i for i in range(start + 1, total + 1) if i % chunk == 0 or i == total]  # plain loop
    assert stops == expected


def test_chunk_stops_rejects_a_bad_chunk():
    with pytest.raises(ValueError, match="chunk = 0"):
        notebook_utils.chunk_stops(0, 5, 0)


def test_last_record_line_reports_the_newest_row():
    metrics = {"iteration": np.array([1.0, 2.0]), "env_steps": np.array([16.0, 32000.0]),
               "steps_per_second": np.array([np.nan, 1234.4]), "reward/task": np.array([0.5, 0.25])}
    assert notebook_utils.last_record_line(metrics) == ("iteration 2, 32,000 env steps, 1,234 steps/s, "
                                                        "reward/task 0.25")


def test_stale_modules_names_a_module_upgraded_under_the_running_process(monkeypatch):
    import types
    from importlib import metadata

    installed = metadata.version("numpy")
    assert notebook_utils.stale_modules(["numpy", "not_a_module_here"]) == []
    monkeypatch.setitem(sys.modules, "numpy", types.SimpleNamespace(__version__="0.0.1"))
    assert notebook_utils.stale_modules(["numpy"]) == [f"numpy 0.0.1 -> {installed}"]


def test_latest_checkpoint_step_of_a_run_and_of_no_run(tmp_path):
    assert notebook_utils.latest_checkpoint_step(PROJECT_ROOT / "pretrained" / "a1_trot_cpu") == 1019
    assert notebook_utils.latest_checkpoint_step(tmp_path / "nothing") is None


# ----------------------------------------------------------------------------------------------------------
# Executing the notebooks


@pytest.fixture(scope="module")
def kernel_dir(tmp_path_factory):
    """A kernel spec that starts an IPython kernel of this very interpreter (the test venv)."""
    root = tmp_path_factory.mktemp("kernels")
    spec_dir = root / "amp_jax_test"
    spec_dir.mkdir()
    spec = {"argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": "amp_jax test", "language": "python"}
    (spec_dir / "kernel.json").write_text(json.dumps(spec))
    return root


def execute(path: pathlib.Path, kernel_dir: pathlib.Path, work_dir: pathlib.Path, env: dict[str, str]):
    """Runs every cell of the notebook at ``path`` in a fresh kernel (cwd ``work_dir``, whose temporary folders are
    made inside ``work_dir`` too, so that a notebook's outputs leave nothing behind); returns it executed."""
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager

    notebook = _read(path)
    manager = KernelManager(kernel_name="amp_jax_test",
                            kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(kernel_dir)]))
    client = nbclient.NotebookClient(notebook, km=manager, timeout=CELL_TIMEOUT_S,
                                     resources={"metadata": {"path": str(work_dir)}})
    client.execute(env=dict(env, TMPDIR=str(work_dir)))
    return notebook


def kernel_env(**extra: str) -> dict[str, str]:
    """This process's environment (CPU only, headless GL) plus smoke mode and this session's JAX cache."""
    env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONUNBUFFERED="1", **extra)
    env[notebook_utils.SMOKE_ENV_VAR] = "1"
    cache = jax.config.jax_compilation_cache_dir
    if cache:
        env["JAX_COMPILATION_CACHE_DIR"] = str(cache)
    return env


def outputs_of(notebook, output_type: str | None = None) -> list:
    return [out for cell in notebook.cells if cell.cell_type == "code" for out in cell.outputs
            if output_type is None or out.output_type == output_type]


def text_of(notebook) -> str:
    return "".join(out.get("text", "") for out in outputs_of(notebook, "stream"))


def mime_count(notebook, mime: str) -> int:
    return sum(mime in out.get("data", {}) for out in outputs_of(notebook) if "data" in out)


def html_videos(notebook) -> int:
    return sum("<video" in out["data"].get("text/html", "") for out in outputs_of(notebook) if "data" in out)


@pytest.mark.slow
def test_train_notebook_runs_in_smoke_mode_and_matches_an_uninterrupted_run(kernel_dir, tmp_path, tiny_run_dir):
    run_root = tmp_path / "runs"
    notebook = execute(NOTEBOOK_DIR / "train_a1_amp.ipynb", kernel_dir, tmp_path,
                       kernel_env(AMP_JAX_RUN_ROOT=str(run_root)))
    assert not outputs_of(notebook, "error")
    text = text_of(notebook)
    assert "amp_jax is installed here: nothing to install" in text
    assert "accelerator: cpu" in text and "on cpu" in text

    run_dir = run_root / "a1_trot-notebook"
    # Two chunks of one iteration, the second resumed from the first's checkpoint, equal the conftest's run of
    # the same config in one go: every logged training metric is bit-identical.
    chunked, whole = metrics_log.read_metrics(run_dir), metrics_log.read_metrics(tiny_run_dir)
    np.testing.assert_array_equal(chunked["iteration"], [1, 2])
    timing = {"wall_time", "steps_per_second"}
    assert set(chunked) == set(whole)
    for name in sorted(set(whole) - timing):
        np.testing.assert_array_equal(chunked[name], whole[name], err_msg=name)

    # The live learning curves (one display, updated after each chunk), then the evaluation's three plots.
    assert mime_count(notebook, "image/png") >= 4
    evaluation = json.loads((run_dir / "evaluation.json").read_text())
    assert evaluation["problems"].keys() <= {"video"}
    assert evaluation["duration_s"] == pytest.approx(0.6, abs=1e-6)
    assert (run_dir / "policy.onnx").is_file() and f"ONNX policy: {run_dir / 'policy.onnx'}" in text
    if video.gl_problem() is None:
        assert (run_dir / "policy.mp4").is_file() and html_videos(notebook) == 1
    else:
        assert "to get videos:" in text


@pytest.mark.slow
@pytest.mark.parametrize("gl", ["as set", "disable"], ids=["gl", "no_gl"])
def test_motion_notebook_runs_in_smoke_mode(kernel_dir, tmp_path, gl):
    """With and without an OpenGL for MuJoCo (``MUJOCO_GL=disable``: no context can be made)."""
    env = kernel_env() if gl == "as set" else kernel_env(MUJOCO_GL="disable")
    notebook = execute(NOTEBOOK_DIR / "motion_data.ipynb", kernel_dir, tmp_path, env)
    assert not outputs_of(notebook, "error")
    text = text_of(notebook)
    # The clip table and the contact table list all six clips of a1_amp; trot0's duty factors are the gait
    # module's, recomputed here.
    from amp_jax.analysis import gait
    from amp_jax.motion.loader import load_clip

    for name in ("trot0", "trot1", "pace0", "pace1", "leftturn0", "rightturn0"):
        assert len(re.findall(rf"^{name}\s", text, re.MULTILINE)) == 2, name
    trot0 = load_clip(PROJECT_ROOT / "motion_data" / "trot0.txt")
    duty = gait.duty_factors(gait.contacts_from_heights(gait.clip_foot_heights(trot0.frames)))
    assert re.search(rf"^trot0\s+{' '.join(f'{d:.2f}' for d in duty)}\s", text, re.MULTILINE)
    assert mime_count(notebook, "image/png") == 4  # the features of two clips, the contacts, the foot heights
    videos = list(tmp_path.glob("amp_jax_clips_*/trot0.mp4"))  # written in the kernel's temporary folder
    if gl == "as set" and video.gl_problem() is None:
        assert html_videos(notebook) == 1 and len(videos) == 1
    else:
        assert html_videos(notebook) == 0 and not videos
        assert "no video: " in text and f"to get videos: {video.HOW_TO_GET_VIDEOS}" in text
