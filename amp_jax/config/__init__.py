"""Typed, frozen run configuration, loaded from YAML and validated: the sections and their fields
(:mod:`amp_jax.config.sections`,
:mod:`amp_jax.config.env_section`) and reading them from files and overrides (:mod:`amp_jax.config.loading`).

Everything a caller needs is importable from here: ``from amp_jax.config import Config, load_config``.
"""

from amp_jax.config.common import CONFIG_DIR, PROJECT_ROOT, ConfigError
from amp_jax.config.env_section import EnvConfig, RewardScales
from amp_jax.config.loading import dump_yaml, from_dict, load_config, parse_override, resolve_config_path, to_dict
from amp_jax.config.sections import (
    AMPConfig,
    Config,
    MotionConfig,
    NetworkConfig,
    PPOConfig,
    SymmetryConfig,
    TrainConfig,
)

__all__ = [
    "CONFIG_DIR", "PROJECT_ROOT", "AMPConfig", "Config", "ConfigError", "EnvConfig", "MotionConfig", "NetworkConfig",
    "PPOConfig", "RewardScales", "SymmetryConfig", "TrainConfig", "dump_yaml", "from_dict", "load_config",
    "parse_override", "resolve_config_path", "to_dict",
]
