"""Every error ww_ray raises on purpose, under one base class, and the one mapping to CLI exit codes.

``WwRayError`` is the base. A bad input the user can fix (``ConfigError``, a zoo that cannot list
or load, an unusable cluster) makes a command exit with ``EXIT_USAGE``; ``report_error`` prints it
on stderr as ``ww-ray COMMAND: message``. ``ModelSkipped`` carries the reason a model is
deliberately not analysed: a sweep records it as status ``skipped`` rather than ``failed``.

>>> exit_code(ConfigError("zoos[0]: bad"))
2
>>> isinstance(CheckpointError("x"), ZooError) and isinstance(CheckpointError("x"), ValueError)
True
"""
from __future__ import annotations

import sys

# Exit status of every ww-ray command: 0 done (failed models are data), 1 done but a zoo could not be listed,
# 2 a bad input or an unusable cluster (nothing or little ran), 3 a sweep ran but analysed no model (every
# planned model failed or was skipped, at least one failed: e.g. the quickstart offline), 130 interrupted
# (run again to resume).
EXIT_OK, EXIT_ZOO_ERRORS, EXIT_USAGE, EXIT_ALL_FAILED, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


class WwRayError(Exception):
    """Base of every error ww_ray raises on purpose (a bad input, an unreachable zoo, an unusable cluster)."""


class ConfigError(WwRayError, ValueError):
    """A sweep config (or command-line value) that cannot be used; the message names the offending key."""


class ClusterError(WwRayError, RuntimeError):
    """The cluster cannot run a sweep (no CPUs, an unreachable address ...)."""


class ZooError(WwRayError, RuntimeError):
    """A zoo could not enumerate or load a model: an unknown model, a bad id, an unreadable metadata file."""


class ZooUnavailableError(ZooError):
    """A remote zoo (network download) cannot be reached; the message says how to work offline."""


class UnsafeIdError(ZooError, ValueError):
    """A model id or file name that could escape the cache or output folder."""


class CheckpointError(ZooError, ValueError):
    """A checkpoint could not be read: missing, not a checkpoint, unsafe, or holding no tensors."""


class ModelSkipped(ZooError):
    """A model left out on purpose; ``reason`` says why (for the status row)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class SpectrumUnavailable(WwRayError, RuntimeError):
    """A layer's weights could not be read again for a plot (no uri, unreachable, renamed layer ...)."""


def exit_code(exc: BaseException) -> int:
    """The exit status of a command that stopped on ``exc``."""
    if isinstance(exc, KeyboardInterrupt):
        return EXIT_INTERRUPTED
    if isinstance(exc, (WwRayError, ValueError, OSError)):
        return EXIT_USAGE
    raise TypeError(f"no exit status for an unexpected {type(exc).__name__}; let it propagate") from exc


def report_error(command: str, exc: BaseException) -> int:
    """Print ``ww-ray COMMAND: message`` on stderr; return the exit status for ``exc``."""
    message = str(exc) or type(exc).__name__
    print(f"ww-ray {command}: {message}", file=sys.stderr)
    return exit_code(exc)
