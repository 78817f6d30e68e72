"""Checkpoints: bit-exact round trip, keep-last-K, heavy subtree in the newest two, digests and fallback,
interrupted saves, errors, and fuzzing of damaged checkpoints."""

import hashlib
import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import textwrap

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from amp_jax.training import checkpoint


@flax.struct.dataclass
class ToyState:
    """A small stand-in for the trainer's state: every kind of leaf a real one has."""

    params: dict
    opt_state: optax.OptState
    learning_rate: jax.Array
    key: jax.Array
    typed_key: jax.Array
    iteration: jax.Array
    replay_buffer: dict


def make_state(seed: int, buffer_rows: int = 64) -> ToyState:
    key = jax.random.PRNGKey(seed)
    k1, k2, k3, k4 = jax.random.split(key, 4)
    params = {"w": jax.random.normal(k1, (5, 3)), "b": jax.random.normal(k2, (3,))}
    tx = optax.chain(optax.clip_by_global_norm(1.0), optax.adam(1e-3))
    opt_state = tx.init(params)
    # One real update so the Adam moments and count are non-trivial.
    grads = jax.tree.map(lambda p: p * 0.5 + 0.1, params)
    _, opt_state = tx.update(grads, opt_state, params)
    return ToyState(
        params=params, opt_state=opt_state, learning_rate=jnp.float32(3e-4 * (seed + 1)), key=k3,
        typed_key=jax.random.key(seed + 7), iteration=jnp.int32(10 * seed),
        replay_buffer={"data": jax.random.normal(k4, (buffer_rows, 6)), "insert_index": jnp.int32(seed)},
    )


def leaves_equal_bitwise(a, b) -> bool:
    def as_bits(x):
        if isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
            x = jax.random.key_data(x)
        return np.asarray(x)
    la, ta = jax.tree.flatten(a)
    lb, tb = jax.tree.flatten(b)
    if ta != tb:
        return False
    return all(x.dtype == y.dtype and x.shape == y.shape and x.tobytes() == y.tobytes()
               for x, y in zip(map(as_bits, la), map(as_bits, lb)))


def test_round_trip_is_bit_exact(tmp_path):
    state = make_state(1)
    config = {"ppo": {"learning_rate": 1e-3}, "env": {"num_envs": 8}}
    assert checkpoint.save(tmp_path, 7, state, config_dict=config, keep=3)
    restored = checkpoint.restore(tmp_path, make_state(0))
    assert restored.step == 7 and restored.complete and restored.missing == ()
    assert restored.config == config
    assert type(restored.state) is ToyState
    assert leaves_equal_bitwise(restored.state, state)
    assert jax.dtypes.issubdtype(restored.state.typed_key.dtype, jax.dtypes.prng_key)
    # The restored optimiser state drives the next update exactly as the original does.
    tx = optax.chain(optax.clip_by_global_norm(1.0), optax.adam(1e-3))
    grads = jax.tree.map(jnp.ones_like, state.params)
    assert leaves_equal_bitwise(tx.update(grads, restored.state.opt_state, state.params),
                                tx.update(grads, state.opt_state, state.params))
    # Without heavy keys the whole state lives in the 'state' item.
    checkpoint.save(tmp_path / "flat", 1, state, heavy_keys=())
    flat = checkpoint.restore(tmp_path / "flat", make_state(0), heavy_keys=())
    assert flat.complete and leaves_equal_bitwise(flat.state, state)
    assert not (tmp_path / "flat" / "checkpoints" / "1" / "heavy").exists()
    # The restored PRNG keys draw the same numbers.
    np.testing.assert_array_equal(jax.random.normal(restored.state.typed_key, (4,)),
                                  jax.random.normal(state.typed_key, (4,)))


class ReversedBufferLayout:
    """A stand-in for a device layout: the buffer's rows are stored in reverse order (a permutation, as the
    devices' rings become one global ring); counts how often each direction ran."""

    def __init__(self):
        self.calls = {"to": 0, "from": 0}

    def _reversed(self, state):
        return state.replace(replay_buffer={**state.replay_buffer, "data": state.replay_buffer["data"][::-1]})

    def to_checkpoint(self, state):
        self.calls["to"] += 1
        return self._reversed(state)

    def from_checkpoint(self, state):
        self.calls["from"] += 1
        return self._reversed(state)


def test_the_layout_maps_the_state_on_save_and_back_on_restore(tmp_path):
    state = make_state(3)
    layout = ReversedBufferLayout()
    with checkpoint.RunCheckpointer(tmp_path, layout=layout) as ckpt:
        ckpt.save(4, state)
    assert layout.calls == {"to": 1, "from": 0}
    # On disk: the stored form (read back without the layout).
    stored = checkpoint.restore(tmp_path, make_state(0)).state
    np.testing.assert_array_equal(stored.replay_buffer["data"], np.asarray(state.replay_buffer["data"])[::-1])
    assert leaves_equal_bitwise(stored.params, state.params)
    # Through the layout: the state as it was held, bit for bit.
    with checkpoint.RunCheckpointer(tmp_path, layout=layout) as ckpt:
        restored = ckpt.restore(make_state(0))
    assert leaves_equal_bitwise(restored.state, state)
    assert layout.calls == {"to": 2, "from": 1}  # the target mapped to the stored form, the result back
    assert checkpoint.AS_STORED.to_checkpoint(state) is state and checkpoint.AS_STORED.from_checkpoint(state) is state


def test_rewritten_leaves_may_come_and_go_and_the_restore_stays_exact(tmp_path):
    """Per-step outputs whose set follows the config (the env's reward terms): a resume that switches a term on
    reads past the old one and starts the new one at zeros, without calling the restore inexact; elsewhere a
    changed tree is still an error naming the leaf."""
    saved = {"params": {"w": jnp.arange(6.0).reshape(2, 3)}, "metrics": {"reward/a": jnp.ones(4),
                                                                        "reward/b": jnp.full(4, 2.0)}}
    target = {"params": {"w": jnp.zeros((2, 3))}, "metrics": {"reward/a": jnp.zeros(4), "reward/c": jnp.zeros(4)}}
    with checkpoint.RunCheckpointer(tmp_path, heavy_keys=()) as ckpt:
        ckpt.save(3, saved)
    history = checkpoint.StateHistory(rewritten=("metrics",))
    with checkpoint.RunCheckpointer(tmp_path, heavy_keys=()) as ckpt:
        restored = ckpt.restore(target, history=history)
        with pytest.raises(checkpoint.CheckpointError, match="metrics/reward/c: missing from the checkpoint"):
            ckpt.restore(target)
        renamed = {"params": {"v": jnp.zeros((2, 3))}, "metrics": saved["metrics"]}
        with pytest.raises(checkpoint.CheckpointError, match="params/v: missing from the checkpoint"):
            ckpt.restore(renamed, history=history)
    np.testing.assert_array_equal(restored.state["params"]["w"], saved["params"]["w"])
    np.testing.assert_array_equal(restored.state["metrics"]["reward/a"], np.ones(4))
    np.testing.assert_array_equal(restored.state["metrics"]["reward/c"], np.zeros(4))
    assert sorted(restored.state["metrics"]) == ["reward/a", "reward/c"]
    assert restored.filled == () and restored.dropped == ("metrics/reward/b",) and restored.complete


def test_keep_last_k_and_heavy_only_in_the_newest_two(tmp_path):
    states = {step: make_state(step) for step in (1, 2, 3, 4, 5)}
    with checkpoint.RunCheckpointer(tmp_path, keep=3) as ckpt:
        for step, state in states.items():
            assert ckpt.save(step, state, config_dict={"step": step})
        assert not ckpt.save(5, states[5])  # an existing step is not written again
        ckpt.wait()
        assert ckpt.steps() == [3, 4, 5]
        assert [ckpt.has_heavy(s) for s in (3, 4, 5)] == [False, True, True]
    on_disk = sorted(int(p.name) for p in (tmp_path / "checkpoints").iterdir() if p.name.isdigit())
    assert on_disk == [3, 4, 5]
    assert not (tmp_path / "checkpoints" / "3" / "heavy").exists()

    newest = checkpoint.restore(tmp_path, make_state(0))
    assert newest.step == 5 and newest.complete
    assert leaves_equal_bitwise(newest.state, states[5])

    assert leaves_equal_bitwise(checkpoint.restore(tmp_path, make_state(0), step=4).state, states[4])
    # An older step restores everything but the buffer, keeps the target's buffer and says so.
    target = make_state(0)
    older = checkpoint.restore(tmp_path, target, step=3)
    assert older.step == 3 and not older.complete and older.missing == ("replay_buffer",)
    assert older.config == {"step": 3} and older.verified  # the digest skips the pruned item
    assert leaves_equal_bitwise(older.state.replace(replay_buffer=None), states[3].replace(replay_buffer=None))
    assert leaves_equal_bitwise(older.state.replay_buffer, target.replay_buffer)


def test_heavy_item_is_most_of_the_bytes(tmp_path):
    """The pruned checkpoints are small: the buffer's bytes live in the newest two steps only."""
    with checkpoint.RunCheckpointer(tmp_path, keep=3) as ckpt:
        for step in (1, 2, 3):
            ckpt.save(step, make_state(step, buffer_rows=40_000))

    def size(p: pathlib.Path) -> int:
        return sum(f.stat().st_size for f in p.rglob("*") if f.is_file())
    buffer_bytes = 40_000 * 6 * 4
    assert size(tmp_path / "checkpoints" / "2") > 0.5 * buffer_bytes  # compressed random floats stay large
    assert size(tmp_path / "checkpoints" / "1") < 0.05 * buffer_bytes


def test_errors_name_the_path(tmp_path):
    with pytest.raises(checkpoint.CheckpointError, match=r"no such run folder"):
        checkpoint.restore(tmp_path / "nope", make_state(0))
    (tmp_path / "empty" / "checkpoints").mkdir(parents=True)
    with pytest.raises(checkpoint.CheckpointError, match=r"empty/checkpoints: no checkpoint found"):
        checkpoint.restore(tmp_path / "empty", make_state(0))

    run = tmp_path / "run"
    checkpoint.save(run, 3, make_state(3))
    with pytest.raises(checkpoint.CheckpointError, match=r"no checkpoint for step 9 \(available: \[3\]\)"):
        checkpoint.restore(run, make_state(0), step=9)
    # A target with a different tree: names the leaf and the shapes.
    wrong_shape = make_state(0).replace(params={"w": jnp.zeros((5, 4)), "b": jnp.zeros(3)})
    with pytest.raises(checkpoint.CheckpointError, match=r"checkpoints/3/state: .*params/w: checkpoint has "
                                                         r"shape \(5, 3\) dtype float32, expected shape \(5, 4\)"):
        checkpoint.restore(run, wrong_shape)
    extra_leaf = make_state(0).replace(params={**make_state(0).params, "extra": jnp.zeros(2)})
    with pytest.raises(checkpoint.CheckpointError, match=r"params/extra: missing from the checkpoint"):
        checkpoint.restore(run, extra_leaf)
    wrong_dtype = make_state(0).replace(iteration=jnp.float32(0))
    with pytest.raises(checkpoint.CheckpointError, match=r"iteration: checkpoint has shape \(\) dtype int32"):
        checkpoint.restore(run, wrong_dtype)
    with pytest.raises(checkpoint.CheckpointError, match=r"heavy key 'buffer' is not a field"):
        checkpoint.save(run, 4, make_state(4), heavy_keys=("buffer",))


@pytest.mark.parametrize("damage", ["truncate", "garble"])
def test_corrupt_checkpoint_is_a_clear_error(tmp_path, damage):
    checkpoint.save(tmp_path, 2, make_state(2, buffer_rows=4096))
    data_files = [f for f in (tmp_path / "checkpoints" / "2" / "state").rglob("*")
                  if f.is_file() and f.stat().st_size > 0]
    assert data_files
    for f in data_files:
        raw = f.read_bytes()
        f.write_bytes(raw[: len(raw) // 3] if damage == "truncate" else bytes(b ^ 0x5A for b in raw))
    with pytest.raises(checkpoint.CorruptCheckpointError, match=r"checkpoints/2/state/.*: the checkpoint is corrupt"):
        checkpoint.restore(tmp_path, make_state(0))
    # Without its digest, the same damage is still caught where the decoder notices it.
    (tmp_path / "checkpoints" / "2" / checkpoint.DIGEST_FILE).unlink()
    with pytest.raises(checkpoint.CorruptCheckpointError, match=r"checkpoints/2: the checkpoint is unreadable"):
        checkpoint.restore(tmp_path, make_state(0))


def _data_files(step_dir: pathlib.Path) -> list[pathlib.Path]:
    return sorted(f for f in step_dir.rglob("*") if f.is_file() and f.name != checkpoint.DIGEST_FILE)


def test_every_saved_step_is_sealed_with_the_digest_of_its_files(tmp_path):
    with checkpoint.RunCheckpointer(tmp_path, keep=3) as ckpt:
        ckpt.save(1, make_state(1))
        ckpt.save(2, make_state(2))
    for step in (1, 2):
        step_dir = tmp_path / "checkpoints" / str(step)
        recorded = json.loads((step_dir / checkpoint.DIGEST_FILE).read_text())
        files = {f.relative_to(step_dir).as_posix(): hashlib.sha256(f.read_bytes()).hexdigest()
                 for f in _data_files(step_dir)}  # independent of the module's chunked hashing
        assert recorded == {"algorithm": "sha256", "files": files} and any(n.startswith("state/") for n in files)
        assert checkpoint.verify_step(step_dir)


def test_a_single_flipped_byte_is_caught_and_named(tmp_path):
    """The defect this guards against: a flipped byte in a raw array chunk decodes without complaint."""
    state = make_state(2, buffer_rows=4096)
    checkpoint.save(tmp_path, 2, state)
    step_dir = tmp_path / "checkpoints" / "2"
    victim = max((f for f in _data_files(step_dir) if f.parts[-3:-1] != ("config",)), key=lambda f: f.stat().st_size)
    raw = bytearray(victim.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    victim.write_bytes(bytes(raw))
    with pytest.raises(checkpoint.CorruptCheckpointError, match=rf"{victim.name}: its SHA-256 differs"):
        checkpoint.restore(tmp_path, make_state(0, buffer_rows=4096))


def test_restore_newest_intact_steps_back_past_a_corrupt_step_and_set_aside_moves_it(tmp_path):
    states = {step: make_state(step) for step in (1, 2, 3)}
    with checkpoint.RunCheckpointer(tmp_path, keep=3) as ckpt:
        for step, state in states.items():
            ckpt.save(step, state)
    (tmp_path / "checkpoints" / "3" / "state" / "_METADATA").write_text("{}")  # damaged
    with checkpoint.RunCheckpointer(tmp_path, keep=3) as ckpt:
        restored = ckpt.restore_newest_intact(make_state(0))
        assert restored.step == 2 and restored.complete  # the previous step kept its replay buffer too
        assert [s for s, _ in restored.skipped] == [3] and "_METADATA" in restored.skipped[0][1]
        assert leaves_equal_bitwise(restored.state, states[2])
        folder = ckpt.set_aside([3], "corrupt")
        assert ckpt.steps() == [1, 2]
    assert (folder / "3" / "state").is_dir() and folder.parent == tmp_path / checkpoint.SET_ASIDE_SUBDIR
    for step in (1, 2):  # every step corrupt: the error says so
        (tmp_path / "checkpoints" / str(step) / checkpoint.DIGEST_FILE).write_text("not json")
    with pytest.raises(checkpoint.CorruptCheckpointError, match=r"all 2 checkpoints are corrupt"):
        checkpoint.RunCheckpointer(tmp_path).restore_newest_intact(make_state(0))


@pytest.mark.parametrize("process", [0, 1])
def test_set_aside_moves_steps_between_two_barriers_that_every_process_reaches(tmp_path, monkeypatch, process):
    """In a two-process resume, a step renamed while the other process still listed the folder made that process
    fail (FileNotFoundError on checkpoints/<step>): every process calls set_aside, process 0 renames only after the
    first barrier, and no process returns (and reads the folder again) before the second."""
    from amp_jax.training.checkpoint import manager

    with checkpoint.RunCheckpointer(tmp_path, keep=3) as ckpt:
        for step in (1, 2, 3):
            ckpt.save(step, make_state(step))
    step_folders = lambda: sorted(p.name for p in (tmp_path / "checkpoints").iterdir() if p.name.isdigit())  # noqa: E731
    seen = []
    monkeypatch.setattr(manager, "sync_processes", lambda name: seen.append((name, step_folders())))
    monkeypatch.setattr(jax, "process_index", lambda: process)
    with checkpoint.RunCheckpointer(tmp_path, keep=3) as ckpt:
        folder = ckpt.set_aside([2, 3], "after-step-1")
        remaining = ckpt.steps()
    assert len(seen) == 2 and seen[0][0] != seen[1][0]
    assert seen[0][1] == ["1", "2", "3"]  # nothing moved before every process is there
    if process == 0:
        assert seen[1][1] == ["1"] and remaining == [1]
        assert sorted(p.name for p in folder.iterdir()) == ["2", "3"]
    else:  # the other processes move nothing and find the folder as process 0 left it
        assert folder is None and seen[1][1] == ["1", "2", "3"] and remaining == [1, 2, 3]


def test_a_step_without_digest_restores_unverified(tmp_path, caplog):
    checkpoint.save(tmp_path, 1, make_state(1))
    (tmp_path / "checkpoints" / "1" / checkpoint.DIGEST_FILE).unlink()
    restored = checkpoint.restore(tmp_path, make_state(0))
    assert not restored.verified and leaves_equal_bitwise(restored.state, make_state(1))
    assert "restored without verifying its files" in caplog.text


@pytest.fixture(scope="module")
def sealed_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("sealed") / "run"
    checkpoint.save(run, 1, make_state(1, buffer_rows=256))
    return run


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_fuzz_damaged_checkpoints_fail_cleanly_or_restore_exactly(sealed_run, tmp_path_factory, data):
    """Random truncations and byte flips of any file of a sealed step: the project's error, or (where the
    damage touched nothing restored, e.g. a flip that re-flips) the exact state. Never another exception."""
    run = tmp_path_factory.mktemp("fuzz") / "run"
    shutil.copytree(sealed_run, run)
    step_dir = run / "checkpoints" / "1"
    files = sorted(f for f in step_dir.rglob("*") if f.is_file())
    victim = data.draw(st.sampled_from(files), label="file")
    raw = bytearray(victim.read_bytes())
    if data.draw(st.booleans(), label="truncate") or not raw:
        raw = raw[: data.draw(st.integers(0, max(len(raw) - 1, 0)), label="length")]
    else:
        for _ in range(data.draw(st.integers(1, 4), label="flips")):
            raw[data.draw(st.integers(0, len(raw) - 1), label="at")] ^= data.draw(st.integers(1, 255), label="mask")
    victim.write_bytes(bytes(raw))
    try:
        restored = checkpoint.restore(run, make_state(0, buffer_rows=256))
    except checkpoint.CheckpointError as err:
        assert str(step_dir) in str(err)
        return
    assert leaves_equal_bitwise(restored.state, make_state(1, buffer_rows=256))


def test_leftover_temporary_folder_is_ignored_and_cleaned(tmp_path):
    checkpoint.save(tmp_path, 1, make_state(1))
    # What a save cut short leaves behind: a temporary step folder holding part of the files.
    partial = tmp_path / "checkpoints" / "2.orbax-checkpoint-tmp"
    shutil.copytree(tmp_path / "checkpoints" / "1", partial)
    for f in partial.rglob("*"):
        if f.is_file():
            f.write_bytes(f.read_bytes()[:7])
    assert checkpoint.latest_step(tmp_path) == 1
    restored = checkpoint.restore(tmp_path, make_state(0))
    assert restored.step == 1 and leaves_equal_bitwise(restored.state, make_state(1))
    assert not partial.exists()  # opening the run folder removed it


_KILLED_SAVER = textwrap.dedent("""
    import os, signal, sys
    sys.path.insert(0, {tests!r})
    import jax, jax.numpy as jnp
    from amp_jax.training import checkpoint
    from test_checkpoint import make_state
    ckpt = checkpoint.RunCheckpointer({run!r}, keep=3)
    ckpt.save(1, make_state(1))
    ckpt.wait()
    big = make_state(2, buffer_rows=3_000_000)  # ~72 MB: the background write takes a while
    ckpt.save(2, big)
    os.kill(os.getpid(), signal.SIGKILL)  # die while the background save is writing
""")


def test_save_killed_part_way_leaves_previous_checkpoint(tmp_path):
    run = tmp_path / "run"
    script = _KILLED_SAVER.format(tests=str(pathlib.Path(__file__).parent), run=str(run))
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    leftovers = [p.name for p in (run / "checkpoints").iterdir() if "tmp" in p.name]
    assert checkpoint.latest_step(run) in (1, 2)
    restored = checkpoint.restore(run, make_state(0), step=1)
    assert leaves_equal_bitwise(restored.state.replace(replay_buffer=None), make_state(1).replace(replay_buffer=None))
    if checkpoint.latest_step(run) == 1:
        # The killed save never became a checkpoint; step 1 still holds everything.
        assert restored.complete and leaves_equal_bitwise(restored.state, make_state(1))
        assert leftovers, "expected the killed save's temporary folder"
    assert not [p for p in (run / "checkpoints").iterdir() if "tmp" in p.name]
