"""amp_jax: Adversarial Motion Priors for the Unitree A1, in JAX on MuJoCo XLA."""

__version__ = "0.1.0"
