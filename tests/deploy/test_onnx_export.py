"""ONNX export: onnxruntime reproduces the JAX mean action; metadata and the dynamic batch survive the file."""

import jax
import jax.numpy as jnp
import numpy as np
import onnx
import pytest

from amp_jax.deploy import onnx_export

OBS_DIM, ACTION_DIM, HIDDEN = 42, 12, (512, 256, 128)


def init_actor(key):
    """Random parameters of an MLP shaped like the actor, plus an observation normaliser."""
    sizes = (OBS_DIM, *HIDDEN, ACTION_DIM)
    layers = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        key, kw, kb = jax.random.split(key, 3)
        gain = 1.0 if fan_out == ACTION_DIM else 2.0  # He scaling in the ELU layers, unit gain at the output
        layers.append({"w": jax.random.normal(kw, (fan_in, fan_out)) * np.sqrt(gain / fan_in),
                       "b": 0.1 * jax.random.normal(kb, (fan_out,))})
    key, km, ks = jax.random.split(key, 3)
    normaliser = {"mean": jax.random.normal(km, (OBS_DIM,)), "std": jnp.exp(0.25 * jax.random.normal(ks, (OBS_DIM,)))}
    return {"layers": layers, "normaliser": normaliser}


def mean_action(params, obs):
    """Normalise, clip, then the ELU MLP: obs [B, 42] -> actions [B, 12]."""
    x = jnp.clip((obs - params["normaliser"]["mean"]) / params["normaliser"]["std"], -5.0, 5.0)
    for i, layer in enumerate(params["layers"]):
        x = x @ layer["w"] + layer["b"]
        if i < len(params["layers"]) - 1:
            x = jax.nn.elu(x)
    return x


def mean_action_numpy(params, obs):
    """The same policy in float64 NumPy, written independently of JAX."""
    p = jax.tree.map(lambda a: np.asarray(a, np.float64), params)
    x = np.clip((obs - p["normaliser"]["mean"]) / p["normaliser"]["std"], -5.0, 5.0)
    for i, layer in enumerate(p["layers"]):
        x = x @ layer["w"] + layer["b"]
        if i < len(p["layers"]) - 1:
            x = np.where(x > 0, x, np.expm1(np.minimum(x, 0)))
    return x


METADATA = {
    "observation_layout": ["base_lin_vel:3", "base_ang_vel:3", "projected_gravity:3", "commands:3",
                           "dof_pos:12", "dof_vel:12", "actions:6"],
    "action_scale": 0.25,
    "default_joint_angles": [0.0, 0.9, -1.8] * 4,
    "control_dt": 0.03,
    "joint_order": ["FL_hip", "FL_thigh", "FL_calf"],
    "note": "plain string",
}


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    params = init_actor(jax.random.PRNGKey(0))
    path = onnx_export.export_onnx(mean_action, params, OBS_DIM,
                                   tmp_path_factory.mktemp("onnx") / "sub" / "policy.onnx", METADATA)
    return params, path


@pytest.mark.parametrize("batch", [1, 7, 1000])
def test_onnxruntime_matches_jax(exported, batch):
    params, path = exported
    obs = np.random.default_rng(batch).normal(size=(batch, OBS_DIM)).astype(np.float32)
    onnx_actions = onnx_export.run_onnx(path, obs)
    jax_actions = np.asarray(jax.jit(mean_action)(params, obs))
    assert onnx_actions.shape == (batch, ACTION_DIM) and onnx_actions.dtype == np.float32
    np.testing.assert_allclose(onnx_actions, jax_actions, atol=1e-5, rtol=0)
    np.testing.assert_allclose(onnx_actions, mean_action_numpy(params, obs.astype(np.float64)), atol=1e-4, rtol=0)
    assert np.abs(jax_actions).max() > 0.1  # a real, non-degenerate output


def test_single_observation_and_reused_session(exported):
    params, path = exported
    session = onnx_export.load_session(path)
    obs = np.random.default_rng(5).normal(size=(OBS_DIM,)).astype(np.float32)
    np.testing.assert_allclose(onnx_export.run_onnx(session, obs), np.asarray(mean_action(params, obs[None]))[0],
                               atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match=r"obs has shape \(3, 41\): expected \[batch, 42\]"):
        onnx_export.run_onnx(session, np.zeros((3, 41), np.float32))


def test_graph_signature_and_metadata(exported):
    _, path = exported
    assert onnx_export.read_metadata(path) == METADATA
    model = onnx.load(str(path))
    (inp,), (out,) = model.graph.input, model.graph.output
    assert inp.name == "obs" and out.name == "actions"
    in_dims = [d.dim_param or d.dim_value for d in inp.type.tensor_type.shape.dim]
    out_dims = [d.dim_param or d.dim_value for d in out.type.tensor_type.shape.dim]
    assert in_dims == [onnx_export.BATCH_DIM, OBS_DIM] and out_dims == [onnx_export.BATCH_DIM, ACTION_DIM]
    assert inp.type.tensor_type.elem_type == onnx.TensorProto.FLOAT


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nope.onnx: no such ONNX file"):
        onnx_export.run_onnx(tmp_path / "nope.onnx", np.zeros((1, OBS_DIM), np.float32))


def test_mirror_equivariant_actor_exports_with_parity_and_stays_equivariant(tmp_path):
    """Both passes and the mirror's gathers go into the graph: onnxruntime answers a mirrored observation with the
    mirrored action."""
    import dataclasses

    from amp_jax.agents import networks
    from amp_jax.config import Config, EnvConfig, NetworkConfig, SymmetryConfig
    from amp_jax.envs import observations
    from amp_jax.training import policy_file

    cfg = Config(env=EnvConfig(gait_clock_hz=2.0), networks=NetworkConfig(actor_hidden=(32, 16)),
                 symmetry=SymmetryConfig(equivariant_networks=True))
    nets = policy_file.run_networks(cfg)
    s = observations.policy_obs_size(cfg.env)
    params = networks.init_params(nets, jax.random.key(0), s, observations.critic_obs_size(cfg.env),
                                  observations.amp_obs_size(cfg.env))
    path = onnx_export.export_onnx(networks.make_policy_fn(nets), params, s, tmp_path / "eq.onnx")
    session = onnx_export.load_session(path)
    obs = np.random.default_rng(1).normal(size=(9, s)).astype(np.float32)
    actions = onnx_export.run_onnx(session, obs)
    mirrored = onnx_export.run_onnx(session, nets.mirror.policy_obs(obs).astype(np.float32))
    np.testing.assert_allclose(actions, networks.policy_mean(nets, params, obs), atol=1e-5)
    np.testing.assert_allclose(mirrored, nets.mirror.action(actions), atol=1e-5)
    plain = networks.make_policy_fn(policy_file.run_networks(dataclasses.replace(cfg, symmetry=SymmetryConfig())))
    assert not np.allclose(plain(params, obs), actions, atol=1e-3)  # the graph holds more than the plain MLP
