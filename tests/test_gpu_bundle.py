"""The GPU bundle: its wheels bring what the bare GPU machine lacks, and the CPU rehearsal of the GPU run
(``benchmarks/gpu/run.sh --tiny``) ends in a run folder the evaluation tools take, holding the parameters it saved."""

import ast
import dataclasses
import importlib
import importlib.metadata
import json
import os
import pathlib
import re
import subprocess
import sys

import numpy as np
import pytest
from flax import struct
from packaging.requirements import Requirement

from amp_jax.config import load_config
from amp_jax.training import import_gpu_run, params_file

PROJECT_ROOT = pathlib.Path(__file__).resolve().parent.parent
GPU_DIR = PROJECT_ROOT / "benchmarks" / "gpu"
SCANNED_SOURCES = (*sorted((PROJECT_ROOT / "amp_jax").rglob("*.py")), *sorted(GPU_DIR.glob("*.py")),
                   PROJECT_ROOT / "benchmarks" / "bench_env.py", PROJECT_ROOT / "benchmarks" / "bench_update.py")
"""amp_jax, the GPU run and the benchmark modules it reuses."""
LOCAL_MODULES = {"amp_jax", "bench_env", "bench_update", "gpu_run"}
CPU_SIDE_ONLY = {
    "jax2onnx": "the ONNX export (amp_jax.deploy.onnx_export) runs back on the CPU machine, after import_gpu_run",
    "imageio_ffmpeg": "videos are encoded back on the CPU machine (the encoder's wheel alone is 68 MB)",
}
"""Third-party modules amp_jax imports (lazily) that the GPU run never needs, and why."""
NOT_CARRIED = {
    "mujoco-studio": "mujoco's interactive viewer (12.2 MiB); training imports only mujoco's core",
    "glfw": "the viewer's windows",
    "pyopengl": "the viewer's OpenGL calls; the GPU run renders nothing",
}
"""Requirements of bundled wheels left out of the bundle so that it and the checkout fit one 64 MiB transfer."""


def listed(name: str) -> list[str]:
    """The entries of a list file in benchmarks/gpu/ (comments and blank lines dropped)."""
    lines = (line.split("#", 1)[0].strip() for line in (GPU_DIR / name).read_text().splitlines())
    return [line for line in lines if line]


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


BUNDLE = {canonical(entry.split("==")[0]) for entry in listed("wheels.txt")}
MACHINE = {canonical(entry) for entry in listed("machine_packages.txt")}


def third_party_imports(paths) -> dict[str, list[str]]:
    """Top-level module → the files importing it, over every import statement (also inside functions)."""
    found: dict[str, list[str]] = {}
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.partition(".")[0]
                if top not in sys.stdlib_module_names and top not in LOCAL_MODULES and top != "__future__":
                    found.setdefault(top, []).append(str(path.relative_to(PROJECT_ROOT)))
    return found


def uncovered(modules) -> dict[str, list[str]]:
    """Modules (top-level names) of which no providing distribution is on the machine or in the bundle; a module
    not installed here is taken to come from the distribution of its own name."""
    providers = importlib.metadata.packages_distributions()
    return {m: providers.get(m, [m]) for m in modules
            if not any(canonical(d) in BUNDLE | MACHINE for d in providers.get(m, [m]))}


def test_the_wheel_list_pins_each_distribution_once_and_the_scripts_read_it():
    entries = listed("wheels.txt")
    assert all(re.fullmatch(r"[A-Za-z0-9._-]+==[0-9][A-Za-z0-9.]*", e) for e in entries), entries
    assert len(BUNDLE) == len(entries)
    assert not BUNDLE & MACHINE, "a distribution is both bundled and said to be on the machine"
    assert "wheels.txt" in (GPU_DIR / "fetch_wheels.sh").read_text()
    assert "wheels/*.whl" in (GPU_DIR / "run.sh").read_text()
    assert "benchmarks/gpu/wheels/" in (PROJECT_ROOT / ".gitignore").read_text().splitlines()


def test_every_module_the_gpu_run_imports_is_on_the_machine_or_in_the_bundle():
    imports = third_party_imports(SCANNED_SOURCES)
    assert {"jax", "mujoco", "brax", "tensorboardX"} <= imports.keys()  # the scan sees what it must
    missing = {m: d for m, d in uncovered(imports).items() if m not in CPU_SIDE_ONLY}
    assert not missing, f"imported by {[imports[m] for m in missing]}: add their wheels to wheels.txt: {missing}"


def test_every_requirement_of_a_bundled_wheel_is_on_the_machine_or_in_the_bundle():
    environment = {"python_version": "3.12", "python_full_version": "3.12.3", "sys_platform": "linux",
                   "platform_system": "Linux", "platform_machine": "x86_64", "extra": ""}
    # Requirements are read from the installed copy of each bundled package, which speaks for the bundled wheel
    # only when it is the pinned version (a fresh install may resolve a newer release of an unpinned dependency).
    pins = {canonical(name): version for name, version in (entry.split("==") for entry in listed("wheels.txt"))}
    checked = {dist for dist in BUNDLE if importlib.metadata.version(dist) == pins[dist]}
    assert {"mujoco-mjx", "brax"} <= checked, sorted(BUNDLE - checked)
    problems = []
    for dist in sorted(checked):
        for text in importlib.metadata.requires(dist) or []:
            requirement = Requirement(text)
            if requirement.marker is not None and not requirement.marker.evaluate(environment):
                continue
            if canonical(requirement.name) not in BUNDLE | MACHINE | NOT_CARRIED.keys():
                problems.append(f"{dist} requires {text}")
    assert not problems, problems


@struct.dataclass
class _State:
    params: dict
    normalizer: dict
    learning_rate: np.ndarray
    iteration: np.ndarray
    env_state: np.ndarray


def _state(seed: int) -> _State:
    rng = np.random.default_rng(seed)
    return _State(params={"actor": {"kernel": rng.normal(size=(3, 2)).astype(np.float32)},
                          "action_std": rng.normal(size=2).astype(np.float32)},
                  normalizer={"mean": rng.normal(size=4).astype(np.float32), "count": np.float32(7.0)},
                  learning_rate=np.float32(3e-4), iteration=np.int32(12), env_state=np.full(5, seed))


def test_a_params_file_round_trips_its_arrays_bit_for_bit_and_refuses_a_misfit(tmp_path):
    cfg = load_config("a1_trot", ["env.num_envs=32"])
    path = params_file.write_params_file(tmp_path / "p.npz", _state(0), cfg)
    saved = params_file.read_params_file(path)
    assert saved.cfg == cfg and saved.iteration == 12
    assert sorted(saved.arrays) == ["iteration", "learning_rate", "normalizer/count", "normalizer/mean",
                                    "params/action_std", "params/actor/kernel"]
    filled = params_file.fill_state(_state(1), saved.arrays)
    for name, array in params_file.state_arrays(_state(0)).items():
        np.testing.assert_array_equal(params_file.state_arrays(filled)[name], array)
        assert params_file.state_arrays(filled)[name].dtype == array.dtype
    np.testing.assert_array_equal(filled.env_state, np.full(5, 1))  # the other fields stay the target's

    bad = dict(saved.arrays, **{"params/actor/kernel": np.zeros((2, 2), np.float32)})
    with pytest.raises(params_file.ParamsFileError, match="params/actor/kernel has shape"):
        params_file.fill_state(_state(1), bad)
    with pytest.raises(params_file.ParamsFileError, match="no array 'normalizer/mean'"):
        params_file.fill_state(_state(1), {k: v for k, v in saved.arrays.items() if k != "normalizer/mean"})
    np.savez(tmp_path / "other.npz", x=np.zeros(2))
    with pytest.raises(params_file.ParamsFileError, match="not a params file"):
        params_file.read_params_file(tmp_path / "other.npz")
    with pytest.raises(params_file.ParamsFileError, match="no such file"):
        params_file.read_params_file(tmp_path / "missing.npz")


def test_importing_refuses_missing_files_and_a_used_folder(tmp_path):
    (tmp_path / "files").mkdir()
    assert import_gpu_run.main([str(tmp_path / "files"), str(tmp_path / "run")]) == 1
    (tmp_path / "files" / import_gpu_run.PARAMS_FILE).write_bytes(b"")
    (tmp_path / "files" / import_gpu_run.METRICS_FILE).write_text("")
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "x").write_text("")
    with pytest.raises(import_gpu_run.GpuRunImportError, match="not empty"):
        import_gpu_run.import_gpu_run(tmp_path / "files", tmp_path / "used")
    assert not (tmp_path / "run").exists()


def test_the_training_configs_come_from_the_command_line_and_are_checked_before_anything_runs(tmp_path, capsys,
                                                                                                 monkeypatch):
    monkeypatch.syspath_prepend(str(GPU_DIR))
    gpu_run = importlib.import_module("gpu_run")
    out = tmp_path / "out"
    args = gpu_run.parse_args(["--out", str(out), "--config", "a1_amp_cpu", "--config", "forward_commands",
                               "--train-only"])
    plan = gpu_run.chosen_plan(args)
    assert (plan.name, plan.train_configs, args.train_only) == ("gpu", ("a1_amp_cpu", "forward_commands"), True)
    assert plan.train_overrides == ()  # the configs' own sizes: not the default's 16384 envs
    default = gpu_run.chosen_plan(gpu_run.parse_args(["--out", str(out)]))
    assert (default.train_configs, default.train_overrides) == (("a1_trot",), ("env.num_envs=16384",))
    # a phase process rebuilds the same plan from the arguments the orchestrator gives it; the rehearsal's configs
    # stay toy-sized
    phase_args = gpu_run.parse_args(["--phase", "train", "--plan", "tiny", "--config", "a1_amp_cpu"])
    assert gpu_run.chosen_plan(phase_args) == dataclasses.replace(gpu_run.TINY_PLAN, train_configs=("a1_amp_cpu",))
    assert "env.num_envs=4" in gpu_run.TINY_PLAN.train_overrides

    assert gpu_run.main(["--out", str(out), "--config", "a1_amp_cpu", "--config", "no_such_config"]) == 2
    error = capsys.readouterr().err
    assert "no_such_config" in error and error.count("\n") == 1
    assert not out.exists()  # refused before anything was written


@pytest.mark.slow
@pytest.mark.heavy  # run it before a session on the GPU machine: python -m pytest -m heavy tests/test_gpu_bundle.py
@pytest.mark.timeout(900)
def test_the_tiny_rehearsal_brings_back_files_that_become_an_evaluable_run(tmp_path):
    from amp_jax.training import run_folder

    out = tmp_path / "out"
    env = dict(os.environ, PYTHON=sys.executable, JAX_PLATFORMS="cpu")
    cache = os.environ.get("AMP_JAX_TEST_CACHE", str(pathlib.Path.home() / ".cache" / "amp_jax_jit"))
    env.setdefault("JAX_COMPILATION_CACHE_DIR", cache)  # the suite's: the tiny train step is compiled there already
    done = subprocess.run(["bash", str(GPU_DIR / "run.sh"), "--tiny", "--out", str(out)], env=env,
                          capture_output=True, text=True, timeout=840)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]

    summary = json.loads((out / import_gpu_run.SUMMARY_FILE).read_text())
    assert sorted(summary["files"]) == sorted([import_gpu_run.SUMMARY_FILE, import_gpu_run.LOG_FILE,
                                               import_gpu_run.METRICS_FILE, import_gpu_run.PARAMS_FILE])
    assert {name: phase["status"] for name, phase in summary["phases"].items()} == dict.fromkeys(
        ("smoke", "env", "update", "train"), "ok")
    phases = {name: phase["results"] for name, phase in summary["phases"].items()}
    assert summary["versions"]["jax"] and phases["env"]["results"][0]["env_steps_per_s"] > 0
    assert phases["update"]["results"][0]["samples_per_s"] > 0 and phases["train"]["iterations"] == 2
    imported = {m for results in phases.values() for m in results["imported_packages"]} - LOCAL_MODULES
    assert not imported & CPU_SIDE_ONLY.keys()
    assert not uncovered(imported), "the run imported modules neither on the machine nor in the bundle"

    run_dir = import_gpu_run.import_gpu_run(out, tmp_path / "run")
    policy = run_folder.load_run_policy(run_dir)
    saved = params_file.read_params_file(out / import_gpu_run.PARAMS_FILE)
    assert policy.step == saved.iteration == 2 and policy.cfg == saved.cfg
    restored = dict(params_file.leaf_paths("params", policy.params))
    assert restored.keys() == {k for k in saved.arrays if k.startswith("params/")}
    for name, array in restored.items():
        np.testing.assert_array_equal(array, saved.arrays[name])
    assert (run_dir / "metrics.jsonl").read_text() == (out / import_gpu_run.METRICS_FILE).read_text()
