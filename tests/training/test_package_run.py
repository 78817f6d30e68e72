"""Packaging a finished run: small, complete for evaluation and export, never half-written."""

import numpy as np
import pytest

from amp_jax.training import package_run, policy_file, run_folder


def test_a_package_holds_the_final_step_without_its_replay_buffer(tiny_run_dir, tiny_run_policy, tmp_path):
    out = package_run.package_run(tiny_run_dir, tmp_path / "shipped")
    assert package_run.checkpoint_steps(out) == [2] == package_run.checkpoint_steps(tiny_run_dir)[-1:]
    assert (tiny_run_dir / "checkpoints" / "2" / "heavy").is_dir()
    assert not (out / "checkpoints" / "2" / "heavy").exists()
    assert (out / "config.yaml").read_bytes() == (tiny_run_dir / "config.yaml").read_bytes()
    assert (out / "metrics.jsonl").read_bytes() == (tiny_run_dir / "metrics.jsonl").read_bytes()
    assert policy_file.policy_steps(out) == [2]
    assert policy_file.policy_path(out, 2).read_bytes() == policy_file.policy_path(tiny_run_dir, 2).read_bytes()
    policy = run_folder.load_run_policy(out)
    assert policy.step == tiny_run_policy.step
    obs = np.random.default_rng(0).normal(size=(8, 42)).astype(np.float32)
    np.testing.assert_array_equal(policy.act(obs), tiny_run_policy.act(obs))
    assert [p.name for p in tmp_path.iterdir()] == ["shipped"]  # no staging folder left behind


def test_packaging_refuses_what_it_cannot_do(tiny_run_dir, tmp_path):
    (tmp_path / "exists").mkdir()
    with pytest.raises(package_run.PackageError, match="exists"):
        package_run.package_run(tiny_run_dir, tmp_path / "exists")
    with pytest.raises(package_run.PackageError, match="no complete step 7"):
        package_run.package_run(tiny_run_dir, tmp_path / "a", step=7)
    with pytest.raises(package_run.PackageError, match="no config.yaml"):
        package_run.package_run(tmp_path / "exists", tmp_path / "b")
    assert package_run.main([str(tmp_path / "exists"), str(tmp_path / "c")]) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exists"]


def test_a_corrupt_step_is_never_shipped_and_the_digest_travels(tiny_run_dir, tmp_path):
    import shutil

    out = package_run.package_run(tiny_run_dir, tmp_path / "shipped")
    assert (out / "checkpoints" / "2" / "digest.json").read_bytes() == (
        tiny_run_dir / "checkpoints" / "2" / "digest.json").read_bytes()
    run = tmp_path / "run"
    shutil.copytree(tiny_run_dir, run)
    victim = next(f for f in (run / "checkpoints" / "2" / "state").rglob("*") if f.is_file())
    victim.write_bytes(victim.read_bytes() + b"x")
    with pytest.raises(package_run.PackageError, match=rf"{victim.name}: its SHA-256 differs.*not packaged"):
        package_run.package_run(run, tmp_path / "bad")
    assert not (tmp_path / "bad").exists()


def test_a_package_is_readable_by_others_as_its_files_are(tiny_run_dir, tmp_path):
    import os
    import stat

    out = package_run.package_run(tiny_run_dir, tmp_path / "shared")
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(out.stat().st_mode) == 0o777 & ~umask


def test_a_run_without_policy_files_is_shipped_with_one_and_one_without_checkpoints_ships_its_policy(
        tiny_run_dir, tiny_run_policy, tmp_path):
    import shutil

    obs = np.random.default_rng(1).normal(size=(8, 42)).astype(np.float32)
    older = tmp_path / "older"  # written before policy files existed
    shutil.copytree(tiny_run_dir, older, ignore=shutil.ignore_patterns(policy_file.POLICY_SUBDIR))
    out = package_run.package_run(older, tmp_path / "from_older")
    assert policy_file.policy_steps(out) == [2] and package_run.checkpoint_steps(out) == [2]
    assert policy_file.policy_steps(older) == []  # the run folder itself is only read
    np.testing.assert_array_equal(policy_file.read_policy_file(policy_file.policy_path(out, 2)).params.actor["params"][
        "head"]["kernel"], tiny_run_policy.params.actor["params"]["head"]["kernel"])

    only_policies = tmp_path / "imported"  # e.g. a GPU run's import: no checkpoint
    shutil.copytree(tiny_run_dir, only_policies, ignore=shutil.ignore_patterns("checkpoints"))
    out = package_run.package_run(only_policies, tmp_path / "from_imported", step=1)
    assert policy_file.policy_steps(out) == [1] and package_run.checkpoint_steps(out) == []
    policy = run_folder.load_run_policy(out)
    assert policy.step == 1
    np.testing.assert_array_equal(policy.act(obs), run_folder.load_run_policy(tiny_run_dir, 1).act(obs))

    damaged = tmp_path / "damaged"
    shutil.copytree(tiny_run_dir, damaged)
    policy_file.policy_path(damaged, 2).write_bytes(b"not a zip")
    with pytest.raises(package_run.PackageError, match=r"2.npz: not a readable .npz file.*; not packaged"):
        package_run.package_run(damaged, tmp_path / "bad")
    assert not (tmp_path / "bad").exists()


def test_a_long_run_s_metrics_are_thinned_keeping_every_probe_record():
    import json

    lines = [json.dumps({"iteration": i, "reward/task": 0.001 * i, **({"probe/vx_rms": 0.5} if i % 20 == 0 else {})})
             + "\n" for i in range(1, 8270)]
    kept = package_run.thin_metrics(lines, max_records=2000)
    iterations = [json.loads(line)["iteration"] for line in kept]
    assert iterations == sorted(iterations) and set(kept) <= set(lines)  # lines unchanged, in order
    assert iterations[-1] == 8269  # the last record stays
    assert {i for i in range(1, 8270) if i % 20 == 0} <= set(iterations)  # every probe record
    assert {i for i in range(1, 8270) if i % 5 == 0} <= set(iterations)  # ceil(8269 / 2000) = 5
    assert len(kept) == 8269 // 5 + 1
    assert package_run.thin_metrics(lines[:2000], max_records=2000) == lines[:2000]  # short logs ship whole
