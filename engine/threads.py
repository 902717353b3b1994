"""How many threads PyTorch gives each operator in a process: ``ALWEB_TORCH_THREADS``.

PyTorch's CPU build starts one OpenMP thread per core, and they spin while they wait for each other. That is the
fastest on a host the process has to itself; beside any other busy process, every parallel operator waits for
whichever of its threads the kernel has descheduled, and small operators pay that wait over and over (6.6 times
slower label-quality folds beside one spinning process on 2 cores: ``bench/worker_threads.py``). A worker is
rarely alone: a second worker process, the web server, Postgres. Two settings keep it fast there, chosen by that
benchmark (docs/benchmarks.md): OpenMP threads that sleep while they wait (``OMP_WAIT_POLICY=PASSIVE``, which
``alweb.celery`` sets before torch loads, unless the environment sets it), and the usable cores shared out among
the worker's processes (``cores``, the default of ``ALWEB_TORCH_THREADS``; a positive integer sets the number).
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

ENV = "ALWEB_TORCH_THREADS"
DEFAULT = "cores"
# What OMP_WAIT_POLICY is unless the environment says otherwise; OpenMP reads it once, when torch loads it.
WAIT_POLICY = "PASSIVE"
CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")


class ThreadsConfigError(ValueError):
    """``ALWEB_TORCH_THREADS`` is neither a positive integer nor ``cores``: said in plain words."""


def usable_cpus() -> int:
    """Cores this process may run on: its CPU affinity, capped by a cgroup v2 CPU quota (a container's --cpus)."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        quota, period = CGROUP_CPU_MAX.read_text().split()[:2]
        if quota != "max":
            cpus = min(cpus, max(1, int(quota) // int(period)))
    except (OSError, ValueError):
        pass  # no cgroup v2 file here (another OS, cgroup v1): the affinity is all we know
    return max(1, cpus)


def threads_for(value: str | None, *, processes: int, cpus: int) -> int:
    """The thread count `value` asks for in one of `processes` processes sharing `cpus` cores."""
    text = (value if value is not None and value.strip() else DEFAULT).strip().lower()
    if text == "cores":
        return max(1, cpus // max(1, processes))
    threads = int(text) if text.isdigit() else 0
    if threads < 1:
        raise ThreadsConfigError(f"{ENV}={value!r}: expected a positive integer or 'cores'")
    return threads


def prefer_passive_wait() -> None:
    """OpenMP threads that sleep while they wait, unless the environment chose; call before torch is imported."""
    if "OMP_WAIT_POLICY" not in os.environ and "torch" in sys.modules:
        # OpenMP has read its environment already: setting it now would claim a policy the process does not have.
        logging.getLogger(__name__).warning("torch was imported before alweb: OMP_WAIT_POLICY is left unset")
        return
    os.environ.setdefault("OMP_WAIT_POLICY", WAIT_POLICY)


def configure_threads(value: str | None, *, processes: int) -> int:
    """Set this process's PyTorch operator threads from `value` (``ALWEB_TORCH_THREADS``; `processes`: how many
    processes of this worker share the host's cores) and return the number."""
    import torch  # here, not at the top: the settings validate the value before anything may load torch

    threads = threads_for(value, processes=processes, cpus=usable_cpus())
    torch.set_num_threads(threads)
    return threads
