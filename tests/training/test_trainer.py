"""The training run on the real A1 env at a tiny size: trains, checkpoints, resumes bit-exactly, stops cleanly."""

import dataclasses
import json
import logging
import pathlib
import shutil
import time

import jax
import numpy as np
import pytest
from conftest import TINY_RUN_OVERRIDES

from amp_jax.config import PROJECT_ROOT, ConfigError, load_config
from amp_jax.training import stop_signals, trainer
from amp_jax.training.checkpoint import CheckpointError, RunCheckpointer
from amp_jax.training.metrics_log import format_progress

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
    # Each task-reward term is logged; both are positive, so their sum is the (clipped at 0) task reward.
    for line in lines:
        assert line["reward/tracking_lin_vel"] > 0 and line["reward/tracking_ang_vel"] > 0
        np.testing.assert_allclose(line["reward/tracking_lin_vel"] + line["reward/tracking_ang_vel"],
                                   line["reward/task"], rtol=1e-5)
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


def test_a_corrupt_newest_checkpoint_is_skipped_and_the_resume_from_the_one_before_is_exact(
        straight_run, cfg, target, tmp_path):
    run = tmp_path / "corrupt"
    shutil.copytree(straight_run, run)
    newest = run / "checkpoints" / "4" / "state"
    victim = max((p for p in newest.rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)
    raw = bytearray(victim.read_bytes())
    raw[len(raw) // 2] ^= 0x10  # one flipped bit: decodes fine, only the digest sees it
    victim.write_bytes(bytes(raw))
    trainer.train(cfg, run_dir=run, resume=True, progress=False)
    record = json.loads((run / "resumes.jsonl").read_text().splitlines()[-1])
    assert record["from_step"] == 2 and record["exact"] and record["verified"]
    assert record["skipped_corrupt"][0]["step"] == 4 and victim.name in record["skipped_corrupt"][0]["why"]
    assert (pathlib.Path(record["set_aside"]["folder"]) / "4" / "state").is_dir()  # kept, out of the way
    a, b = restore(straight_run, target, cfg), restore(run, target, cfg)
    assert b.step == 4 and leaves_equal(a.state.params, b.state.params)
    assert leaves_equal(a.state.replay_buffer, b.state.replay_buffer)
    lines = [json.loads(line)["iteration"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert lines == [1, 2, 3, 4]


def test_resume_from_a_named_step_sets_the_newer_ones_aside(straight_run, cfg, target, tmp_path):
    run = tmp_path / "named"
    shutil.copytree(straight_run, run)
    trainer.train(cfg, run_dir=run, resume=True, resume_step=2, progress=False)
    record = json.loads((run / "resumes.jsonl").read_text().splitlines()[-1])
    assert record["from_step"] == record["asked_step"] == 2 and record["set_aside"]["steps"] == [4]
    assert leaves_equal(restore(straight_run, target, cfg).state.params, restore(run, target, cfg).state.params)
    with pytest.raises(CheckpointError, match=r"no checkpoint for step 3"):
        trainer.train(cfg, run_dir=run, resume=True, resume_step=3, progress=False)


def test_resume_overrides_the_state_owns_apply_to_it_or_are_refused_before_anything_is_written(
        straight_run, tmp_path):
    from amp_jax.config import ConfigError

    run = tmp_path / "overrides"
    shutil.copytree(straight_run, run)
    before = (run / "config.yaml").read_bytes()
    reseeded = load_config(run / "config.yaml", ["train.seed=7"])
    with pytest.raises(ConfigError, match=r"train.seed = 7: expected no change on resume"):
        trainer.train(reseeded, run_dir=run, resume=True, resume_overrides=["train.seed=7"], progress=False)
    assert (run / "config.yaml").read_bytes() == before and not (run / "resumes.jsonl").exists()

    overrides = ["ppo.learning_rate=2e-4", "train.num_iterations=5"]
    changed = load_config(run / "config.yaml", overrides)
    trainer.train(changed, run_dir=run, resume=True, resume_overrides=overrides, progress=False)
    record = json.loads((run / "resumes.jsonl").read_text())
    assert record["overrides"] == overrides and record["applied"]["train.num_iterations"] == "from the config"
    assert "replaced by 0.0002" in record["applied"]["ppo.learning_rate"]
    fifth = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])
    assert fifth["iteration"] == 5
    # The adaptive schedule moves the rate by at most one factor of 1.5 per minibatch step from the override.
    steps = changed.ppo.num_epochs * changed.ppo.num_minibatches
    assert 2e-4 / 1.5 ** steps <= fifth["optim/learning_rate"] <= 2e-4 * 1.5 ** steps


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

        return trainer.Setup(setup.cfg, setup.env, setup.motion_library, setup.init_fn, train_step, setup.devices)

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


def test_a_build_is_shared_by_configs_that_differ_only_in_the_host_loop(cfg, tmp_path):
    setup = trainer.build(cfg)
    longer = dataclasses.replace(cfg, train=dataclasses.replace(
        cfg.train, num_iterations=9, checkpoint_interval=3, keep_checkpoints=1, time_limit_s=5.0,
        run_root=str(tmp_path), probe_interval=0))
    again = trainer.build(longer)
    assert again.train_step is setup.train_step and again.init_fn is setup.init_fn
    assert again.cfg is longer and again.probe is None  # the caller's config, and its probe_interval = 0
    reseeded = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, seed=cfg.train.seed + 1))
    assert trainer.build(reseeded).train_step is not setup.train_step  # the seed draws the env's randomisation


def test_an_edited_clip_is_read_afresh_by_the_next_build(cfg, tmp_path):
    clip = tmp_path / "trot0.txt"
    shutil.copy(cfg.motion.resolved_files()[0], clip)
    own = dataclasses.replace(cfg, motion=dataclasses.replace(cfg.motion, files=(str(clip),)))
    first = trainer.build(own, probe=False)
    assert trainer.build(own, probe=False).train_step is first.train_step
    data = json.loads(clip.read_text())
    data["Frames"] = data["Frames"][: len(data["Frames"]) // 2]
    clip.write_text(json.dumps(data))
    edited = trainer.build(own, probe=False)
    assert edited.train_step is not first.train_step
    assert int(edited.motion_library.num_frames[0]) < int(first.motion_library.num_frames[0])


def test_a_build_reads_its_clips_once_and_logs_each_repair_once(cfg, tmp_path, caplog):
    """The clips and their mirror images for reference-state starts come from one read of the files."""
    clip = tmp_path / "rightturn0.txt"  # frame 91 holds an implausible angular velocity, repaired on loading
    shutil.copy(PROJECT_ROOT / "motion_data" / "rightturn0.txt", clip)
    own = dataclasses.replace(cfg, motion=dataclasses.replace(cfg.motion, files=(str(clip),)),
                              symmetry=dataclasses.replace(cfg.symmetry, reference_state_init=True))
    with caplog.at_level(logging.WARNING, logger="amp_jax.motion.loader"):
        setup = trainer.build(own, probe=False)
    repairs = [r for r in caplog.records if r.getMessage().startswith("repaired motion data")]
    assert len(repairs) == 1 and "frame 91" in repairs[0].getMessage()
    assert int(setup.motion_library.num_clips) == 1  # the discriminator's clips: the file's own


def test_reversed_clips_join_the_expert_data_and_the_reference_state_starts(cfg):
    own = dataclasses.replace(cfg, motion=dataclasses.replace(cfg.motion, files=cfg.motion.files[:1],
                                                              reversed_clip_weight=0.5),
                              symmetry=dataclasses.replace(cfg.symmetry, reference_state_init=True))
    setup = trainer.build(own, probe=False)
    assert setup.motion_library.names == ("trot0", "trot0_reversed")
    np.testing.assert_allclose(np.asarray(setup.motion_library.weights), [2 / 3, 1 / 3], rtol=1e-6)
    assert setup.env.motion_library.names == ("trot0", "trot0_reversed", "trot0_mirrored", "trot0_reversed_mirrored")


def test_tempo_negatives_reach_the_a1_iteration_from_the_command_line(cfg):
    """``--set amp.tempo_negative_rates=[2,3] --set amp.tempo_negative_weight=1`` builds an iteration that draws
    the clips replayed at those rates and logs their score and term (traced, not compiled: the numbers are the
    library's and the point-mass tests')."""
    own = load_config(["a1_trot", "cpu.yaml"], [*TINY, "amp.tempo_negative_rates=[2.0,3.0]",
                                                "amp.tempo_negative_weight=1.0"])
    assert own.amp.tempo_negative_rates == (2.0, 3.0) and own.amp.tempo_negatives and not cfg.amp.tempo_negatives
    setup = trainer.build(own, probe=False)
    state = jax.eval_shape(setup.init_fn, jax.random.key(0))
    _, metrics = jax.eval_shape(setup.train_step, state)
    assert {"amp/d_tempo", "loss/tempo", "amp/d_expert", "loss/discriminator"} <= set(metrics)


def test_equivariant_networks_need_a_gait_clock_and_then_build_the_a1_iteration():
    """``--set symmetry.equivariant_networks=true`` alone is refused in one line (the symmetric stance would be a
    fixed point); with the overlay ``equivariant.yaml``, which brings the clock, the iteration builds (traced, not
    compiled)."""
    alone = load_config(["a1_trot", "cpu.yaml"], [*TINY, "symmetry.equivariant_networks=true"])
    with pytest.raises(ConfigError, match=r"symmetry.equivariant_networks = True: expected off, or "
                                          r"env.gait_clock_hz > 0"):
        trainer.build(alone, probe=False)
    own = load_config(["a1_trot", "cpu.yaml", "equivariant.yaml"], TINY)
    assert own.symmetry.equivariant_networks and own.env.gait_clock_hz == 2.0 and not own.symmetry.ppo_augmentation
    setup = trainer.build(own, probe=False)
    state = jax.eval_shape(setup.init_fn, jax.random.key(0))
    _, metrics = jax.eval_shape(setup.train_step, state)
    assert "policy/mean_std" in metrics


def test_new_run_dirs_are_unique(cfg, tmp_path):
    first = trainer.new_run_dir(cfg, "configs/a1_trot.yaml")
    assert first.name.startswith("a1_trot-") and first.parent == pathlib.Path(cfg.train.run_root)


def test_time_limit_stops_between_iterations_with_a_checkpoint_that_resumes_exactly(
        straight_run, cfg, target, monkeypatch, tmp_path):
    # A fake wall clock: one second passes at each reading. The run starts at 0 s and reads the clock before
    # each iteration (1 s, 2 s, 3 s): a 2.5 s budget lets two iterations through, then stops the run.
    ticks = iter(range(1000))
    monkeypatch.setattr(trainer, "_clock", lambda: float(next(ticks)))
    run = tmp_path / "budget"
    limited = load_config(["a1_trot", "cpu.yaml"], [*TINY, "train.time_limit_s=2.5"])
    trainer.train(limited, run_dir=run, progress=False)
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [line["iteration"] for line in lines] == [1, 2]
    final = restore(run, target, cfg)
    assert final.step == 2 and int(final.state.iteration) == 2 and not final.missing  # replay buffer included
    monkeypatch.setattr(trainer, "_clock", time.monotonic)
    trainer.train(cfg, run_dir=run, resume=True, progress=False)  # no budget: the remaining two iterations
    a, b = restore(straight_run, target, cfg), restore(run, target, cfg)
    assert a.step == b.step == 4
    assert leaves_equal(a.state.params, b.state.params) and leaves_equal(a.state.normalizer, b.state.normalizer)
    assert [json.loads(x)["iteration"] for x in (run / "metrics.jsonl").read_text().splitlines()] == [1, 2, 3, 4]


def test_minutes_flag_must_be_positive():
    import subprocess
    import sys

    from amp_jax.config import PROJECT_ROOT

    done = subprocess.run([sys.executable, "train.py", "--minutes", "-1"], cwd=PROJECT_ROOT, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == ["train.py: --minutes -1.0: expected a positive number of minutes"]


def test_the_cpu_recipe_validates_and_is_what_the_results_page_runs():
    from amp_jax.config import PROJECT_ROOT

    layered, alone = load_config(["a1_trot", "a1_trot_cpu"]), load_config("a1_trot_cpu")
    assert layered == alone
    assert alone.motion.files == ("motion_data/trot0.txt", "motion_data/trot1.txt")
    assert alone.train.time_limit_s > 0 and alone.train.probe_interval > 0
    assert alone.env.num_envs <= trainer.CPU_ENV_WARNING_THRESHOLD  # no accelerator warning for the CPU recipe
    results = (PROJECT_ROOT / "docs" / "RESULTS.md").read_text()
    assert "train.py --config a1_trot.yaml --config a1_trot_cpu.yaml" in results


def test_sigterm_checkpoints_the_latest_iteration_and_resumes_exactly(straight_run, cfg, target, monkeypatch,
                                                                      tmp_path):
    import signal

    run = tmp_path / "terminated"
    real_build = trainer.build

    def build(cfg):  # SIGTERM arrives while iteration 3 runs
        setup = real_build(cfg)
        calls = {"n": 0}

        def train_step(state):
            calls["n"] += 1
            if calls["n"] == 3:
                stop_signals.handle_stop_signal(signal.SIGTERM)
            return setup.train_step(state)

        return trainer.Setup(setup.cfg, setup.env, setup.motion_library, setup.init_fn, train_step, setup.devices)

    with monkeypatch.context() as patch:
        patch.setattr(trainer, "build", build)
        with pytest.raises(stop_signals.StopSignal) as stopped:
            trainer.train(cfg, run_dir=run, progress=False)
    assert stopped.value.exit_code == 143 and stopped.value.reason == "SIGTERM"
    # The iteration in flight finished and was logged; the checkpoint holds it.
    assert restore(run, target, cfg).step == 3
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 3
    trainer.train(cfg, run_dir=run, resume=True, progress=False)
    assert leaves_equal(restore(run, target, cfg).state.params, restore(straight_run, target, cfg).state.params)
    straight = [json.loads(x) for x in (straight_run / "metrics.jsonl").read_text().splitlines()]
    resumed = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in resumed] == [1, 2, 3, 4]
    assert [r["loss/total"] for r in resumed] == [r["loss/total"] for r in straight]


def test_ctrl_c_between_iterations_labels_the_checkpoint_with_the_state_it_holds(straight_run, cfg, target,
                                                                                 monkeypatch, tmp_path):
    run = tmp_path / "between"
    calls = {"n": 0}
    real_check = trainer._nonfinite_metrics

    def check(metrics):  # Ctrl-C lands after iteration 3 returned, before the loop counted it
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real_check(metrics)

    with monkeypatch.context() as patch:
        patch.setattr(trainer, "_nonfinite_metrics", check)
        with pytest.raises(KeyboardInterrupt):
            trainer.train(cfg, run_dir=run, progress=False)
    saved = restore(run, target, cfg)
    assert saved.step == 3 == int(saved.state.iteration)
    trainer.train(cfg, run_dir=run, resume=True, progress=False)
    assert leaves_equal(restore(run, target, cfg).state.params, restore(straight_run, target, cfg).state.params)


def test_a_failed_resume_leaves_the_run_folder_untouched(straight_run, tmp_path):
    run = tmp_path / "copy"
    shutil.copytree(straight_run, run)
    before = (run / "config.yaml").read_bytes()
    wider = load_config(run / "config.yaml", ["networks.actor_hidden=[64, 64]"])
    with pytest.raises(CheckpointError):
        trainer.train(wider, run_dir=run, resume=True, progress=False)
    assert (run / "config.yaml").read_bytes() == before


def test_an_oversized_replay_buffer_is_refused_at_once(tmp_path):
    from amp_jax.config import ConfigError

    huge = load_config(["a1_trot", "cpu.yaml"], [*TINY, "amp.replay_buffer_size=10000000000"])
    start = time.monotonic()
    with pytest.raises(ConfigError, match=r"amp.replay_buffer_size = 10000000000: .*replay buffer needs 3.44e\+03 GB"):
        trainer.train(huge, run_dir=tmp_path / "huge", progress=False)
    assert time.monotonic() - start < 1.0
    assert not (tmp_path / "huge").exists()


def test_a_malformed_clip_through_train_py_is_one_line_and_no_run_folder(tmp_path):
    import subprocess
    import sys

    from amp_jax.config import PROJECT_ROOT

    bad = tmp_path / "bad.txt"
    bad.write_text('{"LoopMode": "Wrap", "FrameDuration": 0.021, "Frames": [[0.0, 1.0]]}')
    done = subprocess.run([sys.executable, "train.py", "--config", "a1_trot.yaml", "--config", "cpu.yaml",
                           "--set", f"motion.files=[{bad}]", "--run-dir", str(tmp_path / "run")],
                          cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"train.py: {bad}"), done.stderr
    assert not (tmp_path / "run").exists()


def test_the_complex_reward_baseline_trains_with_every_term_logged_and_no_discriminator(tmp_path):
    """configs/complex_reward.yaml on the tiny run: each term reaches the metrics, the task reward is their clipped
    sum plus the termination term, nothing of the motion prior is logged, and the discriminator, its normaliser and
    the replay buffer stay as initialised."""
    from amp_jax.envs import rewards

    cfg = load_config(["a1_trot", "cpu.yaml", "complex_reward.yaml"], [*TINY, "train.num_iterations=2"])
    assert not cfg.amp.enabled and cfg.env.rsi_probability == 0.0
    run = trainer.train(cfg, run_dir=tmp_path / "complex", progress=False)
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    terms = [name for name, scale in cfg.env.reward_scales.as_dict().items() if scale != 0]
    assert set(terms) == set(rewards.LEGGED_GYM_TERMS)  # every legged_gym term is on
    for line in lines:
        assert {f"reward/{name}" for name in terms} <= set(line)
        assert not any(key.startswith("amp/") for key in line) and "reward/amp" not in line
        assert all(np.isfinite(line[f"reward/{name}"]) for name in terms)
        # Penalties are negative, the tracking terms positive (per-step means of the scaled terms).
        assert line["reward/tracking_lin_vel"] > 0 and line["reward/lin_vel_z"] <= 0 and line["reward/torques"] < 0
    setup = trainer.build(cfg, probe=False)
    initial = trainer.initial_state(setup)
    final = restore(run, jax.eval_shape(setup.init_fn, jax.random.key(0)), cfg).state
    assert leaves_equal(final.params.discriminator, initial.params.discriminator)
    assert leaves_equal((final.normalizer, final.replay_buffer), (initial.normalizer, initial.replay_buffer))
    assert not leaves_equal(final.params.actor, initial.params.actor)


def test_hooks_see_every_iteration_s_state_and_their_metrics_are_logged_with_it(straight_run, cfg, tmp_path):
    seen = []

    def count(iteration, state):
        seen.append((iteration, int(state.iteration)))
        return {"hook/twice": 2.0 * iteration} if iteration % 2 == 0 else None

    run = trainer.train(cfg, run_dir=tmp_path / "run", progress=False, hooks=[count])
    assert seen == [(1, 1), (2, 2), (3, 3), (4, 4)]
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [line.get("hook/twice") for line in lines] == [None, 4.0, None, 8.0]
    # a hook only adds: the run's own records are the straight run's
    straight = [json.loads(line) for line in (straight_run / "metrics.jsonl").read_text().splitlines()]
    assert [line["loss/total"] for line in lines] == [line["loss/total"] for line in straight]


def test_the_probe_runs_as_a_hook_every_probe_interval_iterations(cfg):
    setup = trainer.build(cfg, probe=False)
    assert trainer.probe_hook(setup) is None
    calls = []

    def probe(params):
        calls.append(params)
        return {"probe/x": 1.0}

    every_third = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, probe_interval=3))
    hook = trainer.probe_hook(dataclasses.replace(setup, cfg=every_third, probe=probe))
    state = jax.eval_shape(setup.init_fn, jax.random.key(0))
    assert [hook(i, state) for i in range(1, 7)] == [None, None, {"probe/x": 1.0}, None, None, {"probe/x": 1.0}]
    assert len(calls) == 2 and all(params is state.params for params in calls)
