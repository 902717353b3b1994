"""bench/worker_threads.py: the rule picks the policy with the smallest worst-case regret, and a child process
really runs a workload under the policy's environment."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from bench import worker_threads


def _table(**cells: tuple[float, float]) -> dict[str, dict[str, dict[str, float]]]:
    """{policy: {"w": {"idle": a, "contended": b}}} from policy=(a, b)."""
    return {p: {"w": {"idle": a, "contended": b}} for p, (a, b) in cells.items()}


def test_the_smallest_worst_case_regret_wins_not_the_fastest_alone() -> None:
    # torch-default is the fastest alone on the host and four times slower beside another process.
    table = _table(**{"torch-default": (1.0, 4.0), "one-thread": (2.0, 2.0), "passive": (1.2, 1.5)})
    out = worker_threads.summarize(table)
    assert out["regret"] == pytest.approx({"torch-default": 4.0 / 1.5, "one-thread": 2.0, "passive": 1.2})
    assert out["chosen"] == "passive"
    assert out["contended_slowdown"]["torch-default"] == pytest.approx(4.0)
    assert out["idle_cost"] == pytest.approx({"torch-default": 1.0, "one-thread": 2.0, "passive": 1.2})


def test_regret_is_the_worst_cell_over_workloads() -> None:
    table = _table(**{"torch-default": (1.0, 1.0), "one-thread": (1.0, 1.0), "passive": (1.0, 1.0)})
    table["one-thread"]["v"] = {"idle": 3.0, "contended": 1.0}
    table["torch-default"]["v"] = table["passive"]["v"] = {"idle": 1.0, "contended": 1.0}
    out = worker_threads.summarize(table)
    assert out["regret"]["one-thread"] == pytest.approx(3.0)
    assert out["chosen"] in {"torch-default", "passive"}


def test_a_child_runs_the_folds_under_the_policys_thread_count() -> None:
    code = (
        "import sys; sys.argv = ['x', '--child', 'folds', '--scale', '1']; "
        "import runpy, torch; runpy.run_path('bench/worker_threads.py', run_name='__main__'); "
        "print(torch.get_num_threads())"
    )
    env = {**os.environ, "ALWEB_TORCH_THREADS": "1", "PYTHONPATH": "."}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    seconds, threads = out.stdout.split()[-2:]
    assert float(seconds) > 0 and threads == "1"
