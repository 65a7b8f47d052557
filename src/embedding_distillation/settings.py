"""Project settings: only what differs from Kedro's defaults."""

from kedro.config import OmegaConfigLoader

from embedding_distillation.hooks import DistributedHook, DryRunHook

HOOKS = (DryRunHook(), DistributedHook())

CONFIG_LOADER_CLASS = OmegaConfigLoader
CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
    # An environment (conf/gpu, conf/local) overrides single keys of a parameter group
    # instead of replacing the whole group.
    "merge_strategy": {"parameters": "soft"},
}
