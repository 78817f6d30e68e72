"""Export of the deterministic policy to ONNX, its metadata, and running it with onnxruntime.

The exported graph maps ``obs [B, obs_dim]`` float32 (input ``"obs"``, B dynamic) to
``actions [B, A]`` float32 (output ``"actions"``). Whatever the policy needs besides the network (the
observation normaliser, clipping) must be inside ``policy_fn``; the parameters become constants of the
graph. What a robot-side runner needs to use the actions (observation layout, action scale, default
joint angles, control period, joint order) travels in the model's ``metadata_props``, each value JSON
encoded.
"""

from __future__ import annotations

import json
import logging
import os
import pathlib
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import onnx
import onnxruntime

from amp_jax import quiet_imports

INPUT_NAME = "obs"
"""Name of the graph's input, ``[B, obs_dim]`` float32."""
OUTPUT_NAME = "actions"
"""Name of the graph's output, ``[B, A]`` float32."""
BATCH_DIM = "batch"
"""Symbolic name of the dynamic batch dimension."""
PARITY_TOLERANCE = 1e-5
"""Largest |onnxruntime − JAX| accepted by the check that runs after each export."""


class ExportError(RuntimeError):
    """The policy could not be converted, or the converted graph disagrees with JAX."""


def _converter():
    # The converter logs a traceback for each optional image-op plugin whose own dependency does not import
    # with this JAX; those plugins are never used by an MLP policy.
    logging.getLogger("jax2onnx.plugins.plugin_system").setLevel(logging.CRITICAL)
    quiet_imports.install_onnx_filter()
    import jax2onnx

    return jax2onnx


def _as_float32(x: Any) -> Any:
    x = jnp.asarray(x)
    return x.astype(jnp.float32) if jnp.issubdtype(x.dtype, jnp.floating) else x


def export_onnx(policy_fn: Callable[[Any, jax.Array], jax.Array], params: Any, obs_dim: int,
                path: str | os.PathLike, metadata: Mapping[str, Any] | None = None, *,
                check: bool = True, seed: int = 0) -> pathlib.Path:
    """Writes ``policy_fn(params, obs)`` as an ONNX model with a dynamic batch dimension.

    Args:
      policy_fn: ``(params, obs [B, obs_dim]) -> actions [B, A]``, deterministic (the mean action), jittable.
      params: the pytree ``policy_fn`` takes; baked into the graph as float32 constants.
      obs_dim: observation width.
      path: the ``.onnx`` file to write (parent folders are created).
      metadata: name → value (str, number, list, dict); stored JSON-encoded in ``metadata_props``.
      check: run the written file with onnxruntime on random observations and compare with JAX.
      seed: seed of those random observations.
    Returns:
      The path written.
    Raises:
      ExportError: the conversion failed, or the check found a difference above ``PARITY_TOLERANCE``.
    """
    path = pathlib.Path(path)
    params = jax.tree.map(_as_float32, params)

    def graph(obs):
        return policy_fn(params, obs)

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # the converter's use of JAX's older names
            model = _converter().to_onnx(graph, [(BATCH_DIM, int(obs_dim))], model_name="policy",
                                         input_names=[INPUT_NAME], output_names=[OUTPUT_NAME])
    except Exception as err:
        raise ExportError(f"{path}: converting the policy to ONNX failed: {type(err).__name__}: {err}") from err
    model.doc_string = "Deterministic policy: obs [batch, obs_dim] float32 -> actions [batch, A] float32."
    for key, value in (metadata or {}).items():
        entry = model.metadata_props.add()
        entry.key = str(key)
        entry.value = json.dumps(value)
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    if check:
        obs = np.random.default_rng(seed).normal(size=(16, obs_dim)).astype(np.float32)
        error = float(np.max(np.abs(run_onnx(path, obs) - np.asarray(jax.jit(graph)(obs)))))
        if not error <= PARITY_TOLERANCE:
            raise ExportError(f"{path}: onnxruntime differs from JAX by {error:.3g} on random observations "
                              f"(expected at most {PARITY_TOLERANCE})")
    return path


def read_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The ``metadata_props`` of an exported model, each value JSON-decoded (plain strings stay strings)."""
    model = onnx.load(str(path), load_external_data=False)
    out: dict[str, Any] = {}
    for entry in model.metadata_props:
        try:
            out[entry.key] = json.loads(entry.value)
        except json.JSONDecodeError:
            out[entry.key] = entry.value
    return out


def load_session(path: str | os.PathLike) -> onnxruntime.InferenceSession:
    """An onnxruntime CPU session of an exported policy (reuse it to run many batches)."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such ONNX file")
    return onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def run_onnx(path_or_session: str | os.PathLike | onnxruntime.InferenceSession, obs: np.ndarray) -> np.ndarray:
    """Actions ``[B, A]`` of the exported policy for observations ``obs`` ``[B, obs_dim]`` (or ``[obs_dim]``)."""
    session = (path_or_session if isinstance(path_or_session, onnxruntime.InferenceSession)
               else load_session(path_or_session))
    obs = np.asarray(obs, dtype=np.float32)
    single = obs.ndim == 1
    batch = obs[None] if single else obs
    expected = session.get_inputs()[0].shape[-1]
    if batch.ndim != 2 or batch.shape[-1] != expected:
        raise ValueError(f"obs has shape {obs.shape}: expected [batch, {expected}] or [{expected}]")
    actions = session.run([OUTPUT_NAME], {INPUT_NAME: batch})[0]
    return actions[0] if single else actions
