"""How many CPU threads the agent's workers give to numerical work.

torch starts one intra-op thread per core by default. On a CPU-only site that shares its
machine, that oversubscribes the cores: inference ran 2-3x slower than in-process, with p99
spikes of seconds, until the threads were capped. ``POLLEN_AGENT_TORCH_THREADS`` caps them in
the gpu and infer workers; unset keeps torch's default, which suits a dedicated machine.

The io worker does no model work (presigning, decoding, thumbnails; it never imports torch),
and its parallelism is its pool of threads, so its numerical libraries get one thread each.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping

from pollen_agent.errors import UserError

TORCH_THREADS_ENV = "POLLEN_AGENT_TORCH_THREADS"
# Read once by OpenMP, MKL and OpenBLAS when each loads (torch's intra-op pool follows them).
LIBRARY_THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def torch_threads(environ: Mapping[str, str] = os.environ) -> int | None:
    """The configured thread count, or None for torch's default; a bad value is refused."""
    raw = environ.get(TORCH_THREADS_ENV, "").strip()
    if not raw:
        return None
    if not raw.isdigit() or int(raw) < 1:
        raise UserError(
            f"{TORCH_THREADS_ENV} must be a whole number of threads, 1 or more (it is {raw!r}). "
            "Leave it unset to keep torch's default of one thread per core.",
            code="bad_config",
        )
    return int(raw)


def worker_environment(kind: str, environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """The environment to start the ``io``, ``gpu`` or ``infer`` worker process with."""
    env = dict(environ)
    if kind == "io":
        env.pop(TORCH_THREADS_ENV, None)
        env.update(dict.fromkeys(LIBRARY_THREAD_VARS, "1"))
        return env
    threads = torch_threads(environ)
    if threads is not None:
        env.update(dict.fromkeys(LIBRARY_THREAD_VARS, str(threads)))
    return env


def apply_torch_threads(environ: Mapping[str, str] = os.environ) -> int | None:
    """Set torch's thread pools in this process, before it does any torch work.

    Does nothing (and imports nothing) when the setting is unset. Returns the count applied.
    """
    threads = torch_threads(environ)
    if threads is None:
        return None
    import torch

    torch.set_num_threads(threads)
    # torch refuses to resize the inter-op pool once inter-op work has started in this process;
    # then the intra-op pool above, where the model's arithmetic runs, is what matters.
    with contextlib.suppress(RuntimeError):
        torch.set_num_interop_threads(threads)
    return threads
