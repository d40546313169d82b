"""ExperimentHub: train, track, serve and retrain process-monitoring ML experiments behind plugins.

The public entry point is ``framework.ExperimentHub.ExperimentHub``. This package re-exports only the errors and
the version, so ``import framework`` stays cheap.
"""

from framework.errors import (
    ConfigError,
    ConflictError,
    DataValidationError,
    ExperimentNotFound,
    HubError,
    JobFailed,
    PluginError,
    PluginUnavailable,
)

__version__ = "0.1.0"

__all__ = [
    "ConfigError",
    "ConflictError",
    "DataValidationError",
    "ExperimentNotFound",
    "HubError",
    "JobFailed",
    "PluginError",
    "PluginUnavailable",
    "__version__",
]
