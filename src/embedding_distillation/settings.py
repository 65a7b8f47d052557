"""Project settings: only what differs from Kedro's defaults."""

import warnings

from kedro.config import OmegaConfigLoader

from embedding_distillation.hooks import ConfigCheckHook, DistributedHook
from embedding_distillation.run_versions import PinSavedVersionsHook
from embedding_distillation.session import ProjectSession

# Kedro 1.7 registers its resolvers with an OmegaConf call that newer OmegaConf deprecates: six
# warnings of 15 lines each on every run, about Kedro's code, not the project's.
warnings.filterwarnings(
    "ignore", message=r"register_new_resolver\(\) is deprecated", category=UserWarning
)

# PinSavedVersionsHook: a node reads what its own run saved, not a concurrent run's newer save.
HOOKS = (ConfigCheckHook(), DistributedHook(), PinSavedVersionsHook())

# Tells the pipeline registry the run's students (env and --params included), and hands
# `kedro run --params dry_run=true` to the dry run: every check, the plan, no node runs.
SESSION_CLASS = ProjectSession

CONFIG_LOADER_CLASS = OmegaConfigLoader
CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
    # An environment (conf/gpu, conf/local) overrides single keys of a parameter group
    # instead of replacing the whole group.
    "merge_strategy": {"parameters": "soft"},
}
