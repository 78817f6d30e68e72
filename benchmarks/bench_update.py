"""Throughput of the AMP-PPO update (epochs × minibatches, discriminator and gradient penalty included).

Measures, in one run on one machine:

1. the fp32 matrix-multiply peak of the device (a large ``jnp.dot``, and ``torch.mm`` when torch is there; the
   larger one is the peak), in GFLOP/s;
2. this project's update (:func:`amp_jax.agents.train_step.make_update`, one jitted call) at the A1's shapes
   (policy obs 42, critic obs 48, 12 actions, AMP 43 × 2) and the reference's networks and PPO settings;
3. an equivalent PyTorch update written in the reference's style (separate expert forward for the gradient
   penalty, ``autograd.grad`` with ``create_graph``, NumPy float64 normaliser), if torch is installed.

Throughput is batch samples (num_envs × num_steps) per second of update. FLOPs are counted the reference's
way (per minibatch sample: actor and critic forward + backward = 3 forwards each; discriminator 12 forwards:
policy and expert forward + backward, and the penalty's second expert forward, input gradient and double
backward), 84.8 MFLOP per batch sample at the reference's shapes; and, for this update, as the matrix
products actually in its program (counted in the jaxpr of one minibatch gradient): it runs the expert
transitions through the discriminator once and computes no input gradients that nothing uses.

They are timed in interleaved rounds and the best of each is kept, so that load from other processes on
a shared machine hurts all three alike. Usage:
python benchmarks/bench_update.py [--num-envs 512] [--num-steps 24] [--repeats 3] [--no-torch]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from amp_jax.agents import distributed, networks, normalizer, optimizer, replay_buffer
from amp_jax.agents.train_step import Learner, PPOSamples, make_update
from amp_jax.config import Config, EnvConfig

STATE_OBS, PRIVILEGED_OBS, ACTIONS, AMP_FEATURES = 42, 48, 12, 43
EXPERT_POOL = 50_000
"""Expert transitions preloaded on the device; each minibatch indexes it at random (both implementations)."""


def dense_flops(sizes: list[int]) -> int:
    """Forward FLOPs of one sample through an MLP with layer sizes ``sizes`` (2 per multiply-add)."""
    return sum(2 * a * b for a, b in zip(sizes[:-1], sizes[1:]))


def reference_flops_per_sample(cfg: Config) -> float:
    """FLOPs per batch sample of the reference's update, over all epochs."""
    actor = dense_flops([STATE_OBS, *cfg.networks.actor_hidden, ACTIONS])
    critic = dense_flops([PRIVILEGED_OBS, *cfg.networks.critic_hidden, 1])
    disc = dense_flops([2 * AMP_FEATURES, *cfg.networks.disc_hidden, 1])
    return cfg.ppo.num_epochs * (3 * actor + 3 * critic + 12 * disc)


def _dot_flops(jaxpr) -> int:
    """Matrix-multiply FLOPs of a jaxpr, nested jaxprs included (2 per multiply-add)."""
    total = 0
    for eqn in jaxpr.eqns:
        if eqn.primitive.name == "dot_general":
            (lhs_contract, _), _ = eqn.params["dimension_numbers"]
            lhs_shape = eqn.invars[0].aval.shape
            total += 2 * int(np.prod(eqn.outvars[0].aval.shape)) * int(np.prod([lhs_shape[i] for i in lhs_contract]))
        for value in eqn.params.values():
            for sub in value if isinstance(value, (list, tuple)) else (value,):
                inner = getattr(sub, "jaxpr", sub)
                if hasattr(inner, "eqns"):
                    total += _dot_flops(inner)
    return total


def own_flops_per_sample(cfg: Config) -> float:
    """Matmul FLOPs per batch sample of this update, over all epochs: counted in the jaxpr of one minibatch
    gradient (the optimiser and normaliser add no matrix products)."""
    from amp_jax.agents.train_step import AMPSamples, amp_ppo_loss

    nets = networks.make_networks(cfg.networks, ACTIONS)
    params = networks.init_params(nets, jax.random.PRNGKey(0), STATE_OBS, PRIVILEGED_OBS, AMP_FEATURES)
    mb = cfg.minibatch_size
    ones = lambda *shape: jnp.ones(shape, jnp.float32)  # noqa: E731
    ppo = PPOSamples(state_obs=ones(mb, STATE_OBS), privileged_obs=ones(mb, PRIVILEGED_OBS),
                     action=ones(mb, ACTIONS), action_mean=ones(mb, ACTIONS), log_prob=ones(mb), value=ones(mb),
                     advantage=ones(mb), returns=ones(mb))
    amp = AMPSamples(*(ones(mb, AMP_FEATURES) for _ in range(4)))
    stats = normalizer.init(AMP_FEATURES, cfg.amp.normalizer_epsilon)
    grad = jax.grad(amp_ppo_loss, has_aux=True)
    jaxpr = jax.make_jaxpr(lambda p: grad(p, nets, cfg, ppo, amp, stats, p.action_std))(params).jaxpr
    return _dot_flops(jaxpr) / mb * cfg.ppo.num_epochs


def matmul_peak(size: int = 4096):
    """A callable timing one fp32 ``size × size`` matrix product; returns its GFLOP/s."""
    a = jax.random.normal(jax.random.PRNGKey(0), (size, size), jnp.float32)
    b = jax.random.normal(jax.random.PRNGKey(1), (size, size), jnp.float32)
    dot = jax.jit(jnp.dot)
    dot(a, b).block_until_ready()
    return lambda: 2 * size ** 3 / min(_timed(lambda: dot(a, b).block_until_ready()) for _ in range(3)) / 1e9


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def synthetic_inputs(cfg: Config, seed: int = 0) -> dict[str, np.ndarray]:
    """A batch of PPO samples, a filled replay buffer's contents and an expert pool (float32 NumPy)."""
    rng = np.random.default_rng(seed)
    batch = cfg.batch_size
    f32 = lambda *shape: rng.normal(size=shape).astype(np.float32)  # noqa: E731
    return dict(state_obs=f32(batch, STATE_OBS), privileged_obs=f32(batch, PRIVILEGED_OBS),
                action=f32(batch, ACTIONS), action_mean=0.1 * f32(batch, ACTIONS), log_prob=f32(batch) - 15.0,
                value=f32(batch), advantage=f32(batch), returns=f32(batch),
                buffer_s=f32(batch * 4, AMP_FEATURES), buffer_next=f32(batch * 4, AMP_FEATURES),
                expert_s=f32(EXPERT_POOL, AMP_FEATURES), expert_next=f32(EXPERT_POOL, AMP_FEATURES))


def jax_update(cfg: Config, data: dict[str, np.ndarray]):
    """This project's update, compiled and warmed up, as a blocking zero-argument callable."""
    nets = networks.make_networks(cfg.networks, ACTIONS)
    opt = optimizer.make_optimizer(cfg.ppo, cfg.amp)
    expert_s, expert_next = jnp.asarray(data["expert_s"]), jnp.asarray(data["expert_next"])

    def sample_expert(key, batch):
        index = jax.random.randint(key, (batch,), 0, EXPERT_POOL)
        return expert_s[index], expert_next[index]

    update = jax.jit(distributed.on_one_device(make_update(nets, opt, cfg, sample_expert, distributed.DeviceAxis(1))))
    params = networks.init_params(nets, jax.random.PRNGKey(1), STATE_OBS, PRIVILEGED_OBS, AMP_FEATURES)
    learner = Learner(params=params, opt_state=opt.init(params),
                      normalizer=normalizer.init(AMP_FEATURES, cfg.amp.normalizer_epsilon))
    samples = PPOSamples(**{k: jnp.asarray(data[k]) for k in (
        "state_obs", "privileged_obs", "action", "action_mean", "log_prob", "value", "advantage", "returns")})
    buffer = replay_buffer.insert(replay_buffer.init(cfg.amp.replay_buffer_size, AMP_FEATURES),
                                  jnp.asarray(data["buffer_s"]), jnp.asarray(data["buffer_next"]))
    old_std = params.action_std
    key = jax.random.PRNGKey(2)

    compiled = update.lower(learner, samples, buffer, old_std, key).compile()
    run = lambda: jax.block_until_ready(compiled(learner, samples, buffer, old_std, key))  # noqa: E731
    run()
    return run


def torch_matmul_peak(size: int = 4096):
    """Like :func:`matmul_peak`, with ``torch.mm`` (its own BLAS)."""
    import torch

    a, b = torch.randn(size, size), torch.randn(size, size)
    torch.mm(a, b)
    return lambda: 2 * size ** 3 / min(_timed(lambda: torch.mm(a, b)) for _ in range(3)) / 1e9


def torch_update(cfg: Config, data: dict[str, np.ndarray]):
    """The PyTorch update, warmed up, as a zero-argument callable."""
    import torch
    from torch import nn

    torch.set_num_threads(os.cpu_count() or 1)
    torch.manual_seed(0)

    def mlp(sizes, act):
        layers = []
        for a, b in zip(sizes[:-2], sizes[1:-1]):
            layers += [nn.Linear(a, b), act()]
        return nn.Sequential(*layers, nn.Linear(sizes[-2], sizes[-1]))

    actor = mlp([STATE_OBS, *cfg.networks.actor_hidden, ACTIONS], nn.ELU)
    critic = mlp([PRIVILEGED_OBS, *cfg.networks.critic_hidden, 1], nn.ELU)
    std = nn.Parameter(torch.full((ACTIONS,), cfg.networks.init_std))
    trunk = mlp([2 * AMP_FEATURES, *cfg.networks.disc_hidden, 1], lambda: nn.LeakyReLU(0.01))[:-1]
    head = nn.Linear(cfg.networks.disc_hidden[-1], 1)
    ac_params = [*actor.parameters(), *critic.parameters(), std]
    opt = torch.optim.Adam([{"params": ac_params, "weight_decay": 0.0},
                            {"params": trunk.parameters(), "weight_decay": cfg.amp.disc_trunk_weight_decay},
                            {"params": head.parameters(), "weight_decay": cfg.amp.disc_head_weight_decay}],
                           lr=cfg.ppo.learning_rate)
    min_std = torch.as_tensor(networks.make_networks(cfg.networks, ACTIONS).min_std)
    t = {k: torch.as_tensor(v) for k, v in data.items()}
    ppo, batch, mb = cfg.ppo, cfg.batch_size, cfg.minibatch_size
    norm_mean, norm_var, norm_count = np.zeros(AMP_FEATURES), np.ones(AMP_FEATURES), cfg.amp.normalizer_epsilon

    def normalize(x):
        m, v = torch.as_tensor(norm_mean, dtype=torch.float32), torch.as_tensor(norm_var, dtype=torch.float32)
        return torch.clamp((x - m) / torch.sqrt(v + cfg.amp.normalizer_epsilon), -cfg.amp.normalizer_clip,
                           cfg.amp.normalizer_clip)

    def merge(x):
        nonlocal norm_mean, norm_var, norm_count
        x = x.numpy().astype(np.float64)
        b_mean, b_var, n = x.mean(0), x.var(0), x.shape[0]
        delta, total = b_mean - norm_mean, norm_count + n
        m2 = norm_var * norm_count + b_var * n + delta ** 2 * norm_count * n / total
        norm_mean, norm_var, norm_count = norm_mean + delta * n / total, m2 / total, total

    def disc(x):
        return head(trunk(x))

    def update():
        lr = cfg.ppo.learning_rate
        old_std = std.detach().clone()
        for _ in range(ppo.num_epochs):
            perm = torch.randperm(batch)
            for i in range(ppo.num_minibatches):
                idx = perm[i * mb:(i + 1) * mb]
                mu = actor(t["state_obs"][idx])
                dist = torch.distributions.Normal(mu, std)
                log_prob = dist.log_prob(t["action"][idx]).sum(-1)
                entropy = dist.entropy().sum(-1).mean()
                value = critic(t["privileged_obs"][idx])[:, 0]
                with torch.no_grad():
                    mu_old = t["action_mean"][idx]
                    kl = torch.sum(torch.log(std / old_std + 1e-5)
                                   + (old_std ** 2 + (mu_old - mu) ** 2) / (2 * std ** 2) - 0.5, -1).mean()
                    if kl > 2 * ppo.desired_kl:
                        lr = max(ppo.learning_rate_min, lr / 1.5)
                    elif 0 < kl < ppo.desired_kl / 2:
                        lr = min(ppo.learning_rate_max, lr * 1.5)
                    for group in opt.param_groups:
                        group["lr"] = lr
                ratio = torch.exp(log_prob - t["log_prob"][idx])
                adv = t["advantage"][idx]
                surrogate = torch.max(-adv * ratio, -adv * torch.clamp(ratio, 1 - ppo.clip_epsilon,
                                                                       1 + ppo.clip_epsilon)).mean()
                v_old, ret = t["value"][idx], t["returns"][idx]
                v_clip = v_old + (value - v_old).clamp(-ppo.value_clip, ppo.value_clip)
                value_loss = torch.max((value - ret) ** 2, (v_clip - ret) ** 2).mean()
                b_idx = torch.randint(0, t["buffer_s"].shape[0], (mb,))
                e_idx = torch.randint(0, EXPERT_POOL, (mb,))
                p_s, p_n = t["buffer_s"][b_idx], t["buffer_next"][b_idx]
                e_s, e_n = t["expert_s"][e_idx], t["expert_next"][e_idx]
                with torch.no_grad():
                    x_p = torch.cat([normalize(p_s), normalize(p_n)], -1)
                    x_e = torch.cat([normalize(e_s), normalize(e_n)], -1)
                d_p, d_e = disc(x_p), disc(x_e)
                disc_loss = 0.5 * (((d_e - 1) ** 2).mean() + ((d_p + 1) ** 2).mean())
                x_gp = x_e.clone().requires_grad_(True)
                d_gp = disc(x_gp)
                grad = torch.autograd.grad(d_gp, x_gp, torch.ones_like(d_gp), create_graph=True,
                                           retain_graph=True)[0]
                grad_pen = cfg.amp.grad_penalty_coef * grad.norm(2, dim=1).pow(2).mean()
                loss = (surrogate + ppo.value_coef * value_loss - ppo.entropy_coef * entropy
                        + disc_loss + grad_pen)
                opt.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(ac_params, ppo.max_grad_norm)
                opt.step()
                with torch.no_grad():
                    std.copy_(torch.maximum(std, min_std))
                merge(p_s)
                merge(e_s)

    update()
    return update


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--num-envs", type=int, default=512)
    parser.add_argument("--num-steps", type=int, default=24)
    parser.add_argument("--repeats", type=int, default=3, help="rounds of (peak, JAX, PyTorch), interleaved")
    parser.add_argument("--no-torch", action="store_true")
    args = parser.parse_args()

    base = Config()
    cfg = dataclasses.replace(base, env=EnvConfig(num_envs=args.num_envs),
                              ppo=dataclasses.replace(base.ppo, num_steps=args.num_steps))
    data = synthetic_inputs(cfg)
    ref_flops = reference_flops_per_sample(cfg)
    own_flops = own_flops_per_sample(cfg)
    print(f"device: {jax.devices()[0].device_kind} ×{len(jax.devices())}, {os.cpu_count()} CPU threads, "
          f"load average {os.getloadavg()[0]:.1f}; batch {cfg.batch_size} = {args.num_envs} envs × "
          f"{args.num_steps} steps, {cfg.ppo.num_epochs} epochs × {cfg.ppo.num_minibatches} minibatches of "
          f"{cfg.minibatch_size}")
    print(f"FLOPs per batch sample (all epochs): reference {ref_flops / 1e6:.1f} M, this update "
          f"{own_flops / 1e6:.1f} M of matrix products in its jaxpr")

    peak = matmul_peak()
    runs = {"JAX": jax_update(cfg, data)}
    if not args.no_torch:
        try:
            import torch
            runs[f"PyTorch {torch.__version__} ({os.cpu_count()} threads)"] = torch_update(cfg, data)
        except ImportError:
            print("PyTorch not installed (pip install 'amp_jax[bench]'): skipped")
    peak_probes = {"jnp.dot": peak}
    if len(runs) == 2:
        peak_probes["torch.mm"] = torch_matmul_peak()
    peaks, times = {name: [] for name in peak_probes}, {name: [] for name in runs}
    for _ in range(args.repeats):
        for name, probe in peak_probes.items():
            peaks[name].append(probe())
        for name, run in runs.items():
            times[name].append(_timed(run))
    for name, values in peaks.items():
        print(f"fp32 matmul peak (4096² {name}, best of {len(values) * 3}): {max(values):.0f} GFLOP/s "
              f"(rounds: {', '.join(f'{p:.0f}' for p in values)})")
    best_peak = max(max(values) for values in peaks.values())
    print(f"peak used below: the larger, {best_peak:.0f} GFLOP/s")
    rates = {}
    for name, ts in times.items():
        best = min(ts)
        rates[name] = cfg.batch_size / best
        gflops = ref_flops * rates[name] / 1e9
        executed = f"; executed {own_flops * rates[name] / 1e9 / best_peak:.0%} of peak" if name == "JAX" else ""
        print(f"{name} update: best {best:.3f} s (rounds: {', '.join(f'{t:.2f}' for t in ts)}) → "
              f"{rates[name]:,.0f} samples/s; reference FLOPs at {gflops:.0f} GFLOP/s = {gflops / best_peak:.0%} "
              f"of peak{executed}")
    if len(rates) == 2:
        jax_rate, torch_rate = rates.values()
        print(f"JAX / PyTorch: {jax_rate / torch_rate:.2f}×")


if __name__ == "__main__":
    main()
