"""Policy files: written by the trainer beside each checkpoint, read back without the training state or the trainer."""

import json
import os
import shutil
import subprocess
import sys

import jax
import numpy as np
import pytest

from amp_jax.config import PROJECT_ROOT
from amp_jax.training import import_gpu_run, params_file, policy_file, run_folder

OBS = np.random.default_rng(0).normal(scale=2.0, size=(16, 42)).astype(np.float32)
"""Policy observations ``[16, 42]``, wider than a walking robot's."""


def host_leaves(field, tree):
    """``{path: NumPy array}`` of ``tree``'s leaves, paths prefixed by ``field`` as in a policy file."""
    return {name: np.asarray(leaf) for name, leaf in params_file.leaf_paths(field, tree)}


def assert_bit_identical(actual, expected):
    assert actual.keys() == expected.keys()
    for name, array in expected.items():
        assert actual[name].dtype == array.dtype and actual[name].shape == array.shape, name
        assert actual[name].tobytes() == array.tobytes(), name


@pytest.fixture(scope="module")
def checkpoint(tiny_run_dir):
    """The tiny run's newest checkpoint restored through the trainer (what readers did before policy files)."""
    return run_folder.restore_checkpoint(tiny_run_dir, 2)


@pytest.fixture(scope="module")
def cfg(tiny_run_dir):
    return run_folder.load_run_config(tiny_run_dir)


def test_the_trainer_writes_a_policy_file_beside_every_checkpoint(tiny_run_dir, cfg):
    assert policy_file.policy_steps(tiny_run_dir) == run_folder.checkpoint_steps(tiny_run_dir) == [1, 2]
    assert sorted(p.name for p in (tiny_run_dir / policy_file.POLICY_SUBDIR).iterdir()) == ["1.npz", "2.npz"]
    saved = params_file.read_params_file(policy_file.policy_path(tiny_run_dir, 2))
    assert saved.iteration == 2 and saved.cfg == cfg
    assert {name.split("/")[0] for name in saved.arrays} == set(params_file.SAVED_FIELDS)
    assert policy_file.policy_path(tiny_run_dir, 2).stat().st_size < 200_000  # tiny networks: tens of kB


def test_the_rebuilt_tree_is_the_train_state_s_without_building_the_env(checkpoint, cfg):
    abstract = policy_file.abstract_saved_fields(cfg)
    assert [f.name for f in policy_file.SavedFields.__dataclass_fields__.values()] == list(params_file.SAVED_FIELDS)
    for field in params_file.SAVED_FIELDS:
        expected = {name: (leaf.shape, leaf.dtype)
                    for name, leaf in params_file.leaf_paths(field, getattr(checkpoint.state, field))}
        rebuilt = {name: (leaf.shape, leaf.dtype)
                   for name, leaf in params_file.leaf_paths(field, getattr(abstract, field))}
        assert rebuilt == expected, field


def test_a_policy_file_round_trips_the_checkpoint_s_parameters_bit_for_bit(tiny_run_dir, checkpoint, cfg, tmp_path):
    state = checkpoint.state
    written = policy_file.write_policy_file(tmp_path, 2, state, cfg)
    assert written == tmp_path / "policies" / "2.npz"
    assert sorted(p.name for p in written.parent.iterdir()) == ["2.npz"]  # no temporary file left
    for path in (policy_file.policy_path(tiny_run_dir, 2), written):  # the trainer's file, and one written here
        read = policy_file.read_policy_file(path)
        assert read.step == 2 and read.cfg == cfg
        assert_bit_identical(host_leaves("params", read.params), host_leaves("params", state.params))
        assert_bit_identical(host_leaves("normalizer", read.amp_normalizer),
                             host_leaves("normalizer", state.normalizer))

    policy = run_folder.load_run_policy(tiny_run_dir)
    assert policy.step == 2 and policy.cfg == cfg
    np.testing.assert_array_equal(policy.act(OBS), np.asarray(jax.jit(policy.policy_fn)(state.params, OBS)))


def _rewrite(source, path, change):
    """Writes the arrays of the policy file ``source`` to ``path`` after ``change(arrays)``."""
    with np.load(source) as data:
        arrays = {name: data[name] for name in data.files}
    change(arrays)
    with open(path, "wb") as f:
        np.savez(f, **arrays)
    return path


def _flip_a_byte(source, path):
    raw = bytearray(source.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    path.write_bytes(bytes(raw))
    return path


HEAD_KERNEL = "params/actor/params/head/kernel"

DAMAGES = {
    "wrong shape": (lambda a: a.update({HEAD_KERNEL: np.zeros((3, 3), np.float32)}),
                    f"{HEAD_KERNEL} has shape (3, 3) dtype float32, expected shape (32, 12) dtype float32"),
    "wrong dtype": (lambda a: a.update({HEAD_KERNEL: a[HEAD_KERNEL].astype(np.float64)}),
                    f"{HEAD_KERNEL} has shape (32, 12) dtype float64, expected shape (32, 12) dtype float32"),
    "missing leaf": (lambda a: a.pop("normalizer/var"), "no array 'normalizer/var' (expected shape (43,))"),
    "extra leaf": (lambda a: a.update({"params/actor/params/hidden_9/bias": np.zeros(4, np.float32)}),
                   "arrays ['params/actor/params/hidden_9/bias'] fit no leaf"),
    "other format": (lambda a: a.update({params_file.FORMAT_KEY: np.asarray(2, np.int32)}),
                     "not a params file of format 1 (expected meta/format and meta/config_yaml in it; found format 2)"),
    "other networks": (lambda a: a.update({params_file.CONFIG_KEY: np.asarray(
        str(a[params_file.CONFIG_KEY]).replace("actor_hidden:\n  - 32\n  - 32", "actor_hidden:\n  - 64\n  - 32"))}),
                       "params/actor/params/hidden_0/bias has shape (32,) dtype float32, expected shape (64,)"),
}


@pytest.mark.parametrize("damage", sorted(DAMAGES))
def test_a_mismatched_policy_file_is_one_line_naming_the_file_and_the_leaf(tiny_run_dir, tmp_path, damage):
    change, expected = DAMAGES[damage]
    path = _rewrite(policy_file.policy_path(tiny_run_dir, 2), tmp_path / "2.npz", change)
    with pytest.raises(params_file.ParamsFileError) as caught:
        policy_file.read_policy_file(path)
    message = str(caught.value)
    assert "\n" not in message and message.startswith(f"{path}: ") and expected in message, message


def test_a_damaged_or_cut_policy_file_is_one_line_naming_the_file(tiny_run_dir, tmp_path):
    good = policy_file.policy_path(tiny_run_dir, 2)
    flipped = _flip_a_byte(good, tmp_path / "flipped.npz")
    cut = tmp_path / "cut.npz"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    for path, expected in ((flipped, "is unreadable, the file is damaged"), (cut, "not a readable .npz file")):
        with pytest.raises(params_file.ParamsFileError) as caught:
            policy_file.read_policy_file(path)
        message = str(caught.value)
        assert "\n" not in message and message.startswith(f"{path}: ") and expected in message, message
    with pytest.raises(params_file.ParamsFileError, match="no such file"):
        policy_file.read_policy_file(tmp_path / "missing.npz")


def test_a_damaged_policy_file_in_a_run_folder_stops_export_with_one_line(tiny_run_dir, tmp_path, capsys):
    from amp_jax.deploy import export_policy

    run = tmp_path / "run"
    shutil.copytree(tiny_run_dir, run, ignore=shutil.ignore_patterns("*.onnx", "*.png", "*.mp4", "*.gif"))
    _flip_a_byte(policy_file.policy_path(tiny_run_dir, 2), policy_file.policy_path(run, 2))
    renamed = _rewrite(policy_file.policy_path(tiny_run_dir, 1), policy_file.policy_path(run, 5), lambda a: None)
    capsys.readouterr()
    assert export_policy.main([str(run), "--out", str(tmp_path / "x.onnx")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"export_policy: {policy_file.policy_path(run, 5)}: holds iteration 1")
    renamed.unlink()
    assert export_policy.main([str(run), "--out", str(tmp_path / "x.onnx")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"export_policy: {policy_file.policy_path(run, 2)}: array ")
    assert not (tmp_path / "x.onnx").exists()


def test_reading_policies_and_importing_a_gpu_run_import_no_trainer(tiny_run_dir, tiny_run_policy, tmp_path):
    """In a fresh process: the policy of a trainer's run folder, and a GPU run's params file imported and read."""
    files = tmp_path / "files"
    files.mkdir()
    shutil.copy(policy_file.policy_path(tiny_run_dir, 2), files / import_gpu_run.PARAMS_FILE)
    shutil.copy(tiny_run_dir / "metrics.jsonl", files / import_gpu_run.METRICS_FILE)
    imported = tmp_path / "imported"
    code = "\n".join([
        "import json, sys",
        "import numpy as np",
        "from amp_jax.training import import_gpu_run, run_folder",
        f"obs = np.load({str(tmp_path / 'obs.npy')!r})",
        f"trained = run_folder.load_run_policy({str(tiny_run_dir)!r})",
        f"run_dir = import_gpu_run.import_gpu_run({str(files)!r}, {str(imported)!r})",
        "policy = run_folder.load_run_policy(run_dir)",
        f"np.save({str(tmp_path / 'actions.npy')!r}, np.stack([trained.act(obs), policy.act(obs)]))",
        "watched = ('amp_jax.training.trainer', 'amp_jax.agents.train_step', 'orbax.checkpoint')",
        "print(json.dumps({'steps': [trained.step, policy.step],",
        "                  'imported': sorted(m for m in watched if m in sys.modules)}))",
    ])
    np.save(tmp_path / "obs.npy", OBS)
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    done = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {"steps": [2, 2], "imported": []}
    actions = np.load(tmp_path / "actions.npy")
    np.testing.assert_array_equal(actions[0], tiny_run_policy.act(OBS))
    np.testing.assert_array_equal(actions[1], actions[0])
    assert sorted(p.relative_to(imported).as_posix() for p in imported.rglob("*") if p.is_file()) == [
        "config.yaml", "metrics.jsonl", "policies/2.npz"]


def test_a_run_folder_without_policy_files_loads_through_its_checkpoints(tiny_run_dir, tiny_run_policy, tmp_path,
                                                                         monkeypatch):
    older = tmp_path / "older"
    shutil.copytree(tiny_run_dir, older, ignore=shutil.ignore_patterns("policies"))
    policy = run_folder.load_run_policy(older)
    assert policy.step == 2 and policy.cfg == tiny_run_policy.cfg
    assert_bit_identical(host_leaves("params", policy.params), host_leaves("params", tiny_run_policy.params))
    assert_bit_identical(host_leaves("normalizer", policy.amp_normalizer),
                         host_leaves("normalizer", tiny_run_policy.amp_normalizer))

    # The conversion writes the missing files; the folder then reads them alone.
    assert policy_file.main([str(older)]) == 0
    assert policy_file.policy_steps(older) == [1, 2]
    assert policy_file.add_missing_policy_files(older) == []

    def no_checkpoint(*args, **kwargs):
        raise AssertionError("the checkpoint was restored although the step has a policy file")

    monkeypatch.setattr(run_folder, "restore_checkpoint", no_checkpoint)
    for step in (1, 2):
        converted, trained = run_folder.load_run_policy(older, step), run_folder.load_run_policy(tiny_run_dir, step)
        assert_bit_identical(host_leaves("params", converted.params), host_leaves("params", trained.params))
    # A step with a checkpoint but no policy file (written before them) still takes the checkpoint's path.
    policy_file.policy_path(older, 1).unlink()
    with pytest.raises(AssertionError, match="restored although"):
        run_folder.load_run_policy(older, 1)


def test_a_folder_with_neither_is_one_line(tiny_run_dir, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(tiny_run_dir / "config.yaml", run / "config.yaml")
    with pytest.raises(run_folder.RunFolderError,
                       match="no policy file in policies/ and no checkpoint in checkpoints/"):
        run_folder.load_run_policy(run)
    with pytest.raises(run_folder.RunFolderError, match=r"no policy file and no checkpoint of step 7 \(policy files: "
                                                        r"\[1, 2\]; checkpoints: \[1, 2\]\)"):
        run_folder.load_run_policy(tiny_run_dir, 7)


def test_a_resume_sets_the_newer_policy_files_aside(tiny_run_dir, tmp_path):
    from amp_jax.training import trainer

    run = tmp_path / "run"
    shutil.copytree(tiny_run_dir, run, ignore=shutil.ignore_patterns("*.onnx", "*.png", "*.mp4", "*.gif"))
    # a policy file whose checkpoint never finished (the process died during its background write)
    shutil.copy(policy_file.policy_path(run, 2), policy_file.policy_path(run, 3))
    cfg = run_folder.load_run_config(run)
    trainer.train(cfg, run_dir=run, resume=True, resume_step=1, num_iterations=1, progress=False)
    assert policy_file.policy_steps(run) == [1] == run_folder.checkpoint_steps(run)
    record = json.loads((run / "resumes.jsonl").read_text().splitlines()[-1])
    aside = record["set_aside"]["folder"]
    assert record["set_aside"]["steps"] == [2] and aside is not None
    assert sorted(p.name for p in (run / "set_aside").glob("*/policies/*")) == ["2.npz", "3.npz"]
    assert policy_file.policy_steps(aside) == [2, 3]
    # the resumed run ends at once, writing step 1's policy file again from the restored state
    rewritten = policy_file.read_policy_file(policy_file.policy_path(run, 1))
    original = policy_file.read_policy_file(policy_file.policy_path(tiny_run_dir, 1))
    assert rewritten.step == 1 == run_folder.load_run_policy(run).step
    assert_bit_identical(host_leaves("params", rewritten.params), host_leaves("params", original.params))


def test_a_resume_sets_aside_a_policy_file_whose_checkpoint_never_finished(tiny_run_dir, tmp_path):
    from amp_jax.training import trainer

    run = tmp_path / "run"
    shutil.copytree(tiny_run_dir, run, ignore=shutil.ignore_patterns("*.onnx", "*.png", "*.mp4", "*.gif"))
    shutil.copy(policy_file.policy_path(run, 2), policy_file.policy_path(run, 3))
    trainer.train(run_folder.load_run_config(run), run_dir=run, resume=True, num_iterations=2, progress=False)
    assert policy_file.policy_steps(run) == [1, 2] == run_folder.checkpoint_steps(run)
    record = json.loads((run / "resumes.jsonl").read_text().splitlines()[-1])
    assert record["from_step"] == 2 and record["set_aside"]["steps"] == []
    assert record["set_aside"]["folder"].endswith("-unfinished-checkpoint")
    assert policy_file.policy_steps(record["set_aside"]["folder"]) == [3]


def test_pruning_keeps_the_newest_files_and_a_write_in_progress_is_no_step(tmp_path):
    folder = tmp_path / policy_file.POLICY_SUBDIR
    folder.mkdir()
    for step in (1, 2, 10, 20, 30):
        (folder / f"{step}.npz").write_bytes(b"")
    (folder / ".40.npz.0f1e.tmp").write_bytes(b"")
    assert policy_file.policy_steps(tmp_path) == [1, 2, 10, 20, 30]
    assert policy_file.prune_policy_files(tmp_path, 3) == [1, 2]
    assert policy_file.policy_steps(tmp_path) == [10, 20, 30]
    assert policy_file.set_aside_policy_files(tmp_path, 10, tmp_path / "aside") == [20, 30]
    assert policy_file.policy_steps(tmp_path) == [10] and policy_file.policy_steps(tmp_path / "aside") == [20, 30]


def test_a_failed_write_leaves_the_previous_file_and_no_temporary(checkpoint, cfg, tmp_path, monkeypatch):
    path = policy_file.write_policy_file(tmp_path, 2, checkpoint.state, cfg)
    before = path.read_bytes()

    def disk_full(f, **arrays):
        f.write(b"half a file")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "savez", disk_full)
    with pytest.raises(OSError, match="No space left"):
        policy_file.write_policy_file(tmp_path, 2, checkpoint.state, cfg)
    assert path.read_bytes() == before
    assert sorted(p.name for p in path.parent.iterdir()) == ["2.npz"]
