"""The tempo check on the shipped trot's discriminator, against features built from the clip in NumPy."""

import json

import numpy as np
import pytest

from amp_jax.analysis import style
from amp_jax.config import PROJECT_ROOT
from amp_jax.evaluation import tempo_check
from amp_jax.motion import layout, library, loader

TROT = PROJECT_ROOT / "pretrained" / "a1_trot_cpu"


@pytest.fixture(scope="module")
def report():
    return tempo_check.tempo_check(TROT, rates=(0.5, 1.0, 2.0, 3.0))


def test_each_score_is_the_discriminator_on_the_clip_replayed_in_numpy(report):
    """trot0 at twice its rate, rebuilt from the file's frames: linear interpolation per column at the replayed
    times, the velocity features doubled; the run's discriminator on those equals the report's entry."""
    from amp_jax.training.run_folder import load_run_policy

    policy = load_run_policy(TROT)
    clip = loader.load_clip(PROJECT_ROOT / "motion_data" / "trot0.txt",
                            repair_threshold=policy.cfg.motion.velocity_repair_threshold)
    dt, rate, n = policy.cfg.env.control_dt, 2.0, style.SAMPLES_PER_CLIP
    times = np.linspace(0.0, 1.0, n) * (clip.duration - rate * dt)
    frame_times = np.arange(clip.num_frames) * clip.frame_duration

    def features(t):
        frames = np.stack([np.interp(t, frame_times, clip.frames[:, k]) for k in range(layout.FRAME_WIDTH)], -1)
        out = library.amp_features(frames)
        out[:, layout.AMP_RATES] *= rate
        return out

    pair = (features(times), features(times + rate * dt))
    want = style.discriminator_scores(policy.networks, policy.params, policy.amp_normalizer, policy.cfg, pair,
                                      pair)["d_policy"]
    assert report["clips"]["trot0"][2] == pytest.approx(want, abs=2e-3)


def test_the_shipped_trot_knows_its_clips_tempo(report, tmp_path, capsys):
    """Its discriminator scores both trot clips highest at their own rate, and twice or three times as fast far
    below (measured: +0.69 at 1x, -0.46 and -1.99 at 2x and 3x for trot0)."""
    assert list(report["clips"]) == ["trot0", "trot1"] and report["best_rate"] == 1.0
    for row in report["clips"].values():
        assert int(np.argmax(row)) == 1 and row[2] < row[1] - 0.5 and row[3] < row[2]
    assert tempo_check.main([str(TROT), "--rates", "1", "2", "--json", str(tmp_path / "t.json")]) == 0
    out = capsys.readouterr().out
    assert "highest at 1x: the clips' own tempo" in out and "trot0" in out
    assert json.loads((tmp_path / "t.json").read_text())["rates"] == [1.0, 2.0]


def test_bad_input_is_one_line(tmp_path, capsys):
    assert tempo_check.main([str(tmp_path / "no_run")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("tempo_check: ") and "no_run" in err and "\n" not in err
    with pytest.raises(SystemExit):
        tempo_check.main([str(TROT), "--rates", "0"])
    assert "expected rates in (0, 10]" in capsys.readouterr().err


def test_with_an_amp_window_each_replay_reaches_back_its_lags_at_the_replay_rate():
    """A run whose AMP observation holds the state 4 control steps back: trot0 at twice its rate, rebuilt in
    NumPy (each window's earlier state 2 · 4 · dt back in clip time, the whole window inside the clip), scores
    what the report gives, through a discriminator of that window's size."""
    import jax

    from amp_jax.agents import networks, normalizer
    from amp_jax.config import load_config

    cfg = load_config("a1_trot", ["env.amp_history_lags=[4]", "networks.disc_hidden=[16]"])
    nets = networks.make_networks(cfg.networks, 12)
    params = networks.init_params(nets, jax.random.key(3), 42, 48, 2 * layout.AMP_OBS_SIZE)
    stats = normalizer.init(2 * layout.AMP_OBS_SIZE, cfg.amp.normalizer_epsilon)
    motion = style.run_motion_library(cfg)
    scores = style.replay_rate_scores(nets, params, stats, cfg, motion, rates=(2.0,), samples_per_clip=64)
    clip = loader.load_clip(PROJECT_ROOT / "motion_data" / "trot0.txt",
                            repair_threshold=cfg.motion.velocity_repair_threshold)
    dt, rate = cfg.env.control_dt, 2.0
    reach = rate * 4 * dt
    times = reach + np.linspace(0.0, 1.0, 64) * (clip.duration - rate * dt - reach)
    frame_times = np.arange(clip.num_frames) * clip.frame_duration

    def window(t):
        parts = []
        for back in (0.0, reach):
            frames = np.stack([np.interp(t - back, frame_times, clip.frames[:, k])
                               for k in range(layout.FRAME_WIDTH)], -1)
            out = library.amp_features(frames)
            out[:, layout.AMP_RATES] *= rate
            parts.append(out)
        return np.concatenate(parts, -1)

    pair = (window(times), window(times + rate * dt))
    want = style.discriminator_scores(nets, params, stats, cfg, pair, pair)["d_policy"]
    assert motion.names[0] == "trot0" and scores.shape == (2, 1)
    assert scores[0, 0] == pytest.approx(want, abs=2e-3)
