"""The training run on the real A1 env at a tiny size: trains, checkpoints, resumes bit-exactly, stops cleanly."""

import json
import pathlib
import shutil

import jax
import numpy as np
import pytest
from conftest import TINY_RUN_OVERRIDES

from amp_jax import trainer
from amp_jax.checkpoint import CheckpointError, RunCheckpointer
from amp_jax.config import load_config
from amp_jax.metrics_log import format_progress

# The session's tiny run configuration (tests/conftest.py), so the compiled train step is shared; only host-side
# fields differ.
TINY = [*TINY_RUN_OVERRIDES, "train.num_iterations=4", "train.checkpoint_interval=2", "train.keep_checkpoints=3"]


@pytest.fixture(scope="module")
def cfg():
    return load_config(["a1_trot", "cpu.yaml"], TINY)


@pytest.fixture(scope="module")
def target(cfg):
    """An abstract train state, the restore target (nothing computed)."""
    setup = trainer.build(cfg)
    return jax.eval_shape(setup.init_fn, jax.random.key(0))


def restore(run_dir, target, cfg, step=None):
    with RunCheckpointer(run_dir, keep=cfg.train.keep_checkpoints, heavy_keys=trainer.HEAVY_KEYS) as ckpt:
        return ckpt.restore(target, step=step)


def leaves_equal(a, b):
    la, lb = jax.tree.leaves(jax.tree.map(np.asarray, a)), jax.tree.leaves(jax.tree.map(np.asarray, b))
    return len(la) == len(lb) and all(np.array_equal(x, y) for x, y in zip(la, lb))


@pytest.fixture(scope="module")
def straight_run(cfg, tmp_path_factory):
    return trainer.train(cfg, run_dir=tmp_path_factory.mktemp("straight") / "run", progress=False)


def test_a_run_leaves_config_metrics_and_checkpoints(straight_run, cfg, target):
    assert load_config(straight_run / "config.yaml") == cfg
    lines = [json.loads(line) for line in (straight_run / "metrics.jsonl").read_text().splitlines()]
    assert [line["iteration"] for line in lines] == [1, 2, 3, 4]
    for key in ("loss/total", "amp/d_expert", "amp/d_policy", "reward/task", "reward/amp", "optim/learning_rate"):
        assert all(np.isfinite(line[key]) for line in lines), key
    # The live progress line shows the discriminator scores, learning rate and std the train step reports.
    line = format_progress(4, 4, lines[-1]["env_steps"], 100.0, 0.0, lines[-1])
    for label in ("return", "task", "amp", "D(exp)", "D(pol)", "lr", "std"):
        assert f"| {label} " in line, (label, line)
    restored = restore(straight_run, target, cfg)
    assert restored.step == 4 and int(restored.state.iteration) == 4 and not restored.missing
    assert int(restored.state.replay_buffer.size) == min(256, 4 * 4 * 4)


def test_half_plus_resume_plus_half_is_bit_identical(straight_run, cfg, target, tmp_path):
    run = tmp_path / "resumed"
    trainer.train(cfg, run_dir=run, num_iterations=2, progress=False)
    assert restore(run, target, cfg).step == 2
    trainer.train(cfg, run_dir=run, resume=True, progress=False)
    a, b = restore(straight_run, target, cfg), restore(run, target, cfg)
    assert a.step == b.step == 4
    assert leaves_equal(a.state.params, b.state.params)
    assert leaves_equal(a.state.opt_state, b.state.opt_state)
    assert leaves_equal(a.state.normalizer, b.state.normalizer)
    assert leaves_equal(a.state.replay_buffer, b.state.replay_buffer)
    assert leaves_equal(jax.random.key_data(a.state.key), jax.random.key_data(b.state.key))


def test_resume_of_a_folder_without_checkpoints_is_a_clear_error(cfg, tmp_path):
    with pytest.raises(CheckpointError, match="not a run folder"):
        trainer.train(cfg, run_dir=tmp_path / "nothing", resume=True, progress=False)
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "config.yaml").write_text("{}")
    with pytest.raises(CheckpointError, match="no checkpoint found"):
        trainer.train(cfg, run_dir=tmp_path / "empty", resume=True, progress=False)


def test_a_corrupt_checkpoint_is_a_clear_error(straight_run, cfg, tmp_path):
    run = tmp_path / "corrupt"
    shutil.copytree(straight_run, run)
    newest = run / "checkpoints" / "4" / "state"
    for path in newest.rglob("*"):
        if path.is_file() and path.stat().st_size > 0:
            path.write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match=str(run / "checkpoints" / "4")):
        trainer.train(cfg, run_dir=run, resume=True, progress=False)


def _failing_build(monkeypatch, fail_at, make_failure=None, interrupt_before=False):
    """Makes call ``fail_at`` (1-based) of ``train_step`` return ``make_failure(state, metrics)``, or raise
    KeyboardInterrupt before it starts (as Ctrl-C does while the loop waits)."""
    real_build = trainer.build

    def build(cfg):
        setup = real_build(cfg)
        calls = {"n": 0}

        def train_step(state):
            calls["n"] += 1
            if interrupt_before and calls["n"] == fail_at:
                raise KeyboardInterrupt
            state, metrics = setup.train_step(state)
            if make_failure is not None and calls["n"] == fail_at:
                return make_failure(state, metrics)
            return state, metrics

        return trainer.Setup(setup.cfg, setup.env, setup.motion_library, setup.init_fn, train_step)

    monkeypatch.setattr(trainer, "build", build)


def test_nan_losses_stop_the_run_and_keep_the_last_good_checkpoint(cfg, target, monkeypatch, tmp_path):
    def nan_loss(state, metrics):
        return state, {**metrics, "loss/total": metrics["loss/total"] * np.nan}

    _failing_build(monkeypatch, 3, nan_loss)
    with pytest.raises(trainer.TrainingDivergedError, match="iteration 3: loss/total became non-finite.*step 2"):
        trainer.train(cfg, run_dir=tmp_path / "nan", progress=False)
    restored = restore(tmp_path / "nan", target, cfg)
    assert restored.step == 2
    assert all(np.all(np.isfinite(np.asarray(x))) for x in jax.tree.leaves(restored.state.params))


def test_ctrl_c_writes_a_checkpoint_that_resumes_exactly(straight_run, cfg, target, monkeypatch, tmp_path):
    run = tmp_path / "interrupted"
    with monkeypatch.context() as patch:
        _failing_build(patch, 4, interrupt_before=True)
        with pytest.raises(KeyboardInterrupt):
            trainer.train(cfg, run_dir=run, progress=False)
    # Three iterations were done; the periodic checkpoint was at 2, the interrupt wrote 3.
    assert restore(run, target, cfg).step == 3
    trainer.train(cfg, run_dir=run, resume=True, progress=False)
    assert leaves_equal(restore(run, target, cfg).state.params, restore(straight_run, target, cfg).state.params)


def test_backend_warning_names_the_remedy(cfg):
    assert trainer.backend_warning(cfg) is None
    big = load_config("a1_trot")
    message = trainer.backend_warning(big)
    assert jax.default_backend() == "cpu" and "5480 envs" in message and "cpu.yaml" in message


def test_new_run_dirs_are_unique(cfg, tmp_path):
    first = trainer.new_run_dir(cfg, "configs/a1_trot.yaml")
    assert first.name.startswith("a1_trot-") and first.parent == pathlib.Path(cfg.train.run_root)
