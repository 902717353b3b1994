"""ALWEB_TORCH_THREADS and the OpenMP wait policy (engine.threads): parsing, the host's usable cores, the effect."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import torch

from engine import threads
from engine.threads import ThreadsConfigError, configure_threads, prefer_passive_wait, threads_for, usable_cpus


def test_cores_shares_the_usable_cores_among_the_workers_processes() -> None:
    assert threads_for("cores", processes=1, cpus=8) == 8
    assert threads_for("cores", processes=3, cpus=8) == 2
    assert threads_for("cores", processes=16, cpus=8) == 1  # never zero
    assert threads_for(None, processes=2, cpus=8) == 4  # the default is `cores`
    assert threads_for(" Cores ", processes=1, cpus=2) == 2


def test_a_number_is_taken_as_it_is() -> None:
    assert threads_for("1", processes=4, cpus=8) == 1
    assert threads_for("12", processes=4, cpus=8) == 12


@pytest.mark.parametrize("value", ["0", "-2", "two", "1.5", "auto"])
def test_anything_else_is_refused_naming_the_variable(value: str) -> None:
    with pytest.raises(ThreadsConfigError, match=r"ALWEB_TORCH_THREADS=.*positive integer or 'cores'"):
        threads_for(value, processes=1, cpus=2)


def test_usable_cores_are_capped_by_a_cgroup_quota(tmp_path: Path, monkeypatch: Any) -> None:
    affinity = len(os.sched_getaffinity(0))
    cpu_max = tmp_path / "cpu.max"
    monkeypatch.setattr(threads, "CGROUP_CPU_MAX", cpu_max)
    assert usable_cpus() == affinity  # no file: the affinity
    cpu_max.write_text("max 100000\n")
    assert usable_cpus() == affinity  # no quota
    cpu_max.write_text("150000 100000\n")  # docker --cpus 1.5: one whole core
    assert usable_cpus() == 1
    cpu_max.write_text("50000 100000\n")  # half a core still runs one thread
    assert usable_cpus() == 1


def test_configure_sets_torchs_threads() -> None:
    before = torch.get_num_threads()
    try:
        assert configure_threads("1", processes=1) == 1
        assert torch.get_num_threads() == 1
        assert configure_threads("cores", processes=1) == usable_cpus()
        assert torch.get_num_threads() == usable_cpus()
    finally:
        torch.set_num_threads(before)


def test_the_passive_wait_is_a_default_the_environment_overrides(monkeypatch: Any) -> None:
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    prefer_passive_wait()
    assert os.environ["OMP_WAIT_POLICY"] == "ACTIVE"


def test_too_late_to_choose_a_wait_policy_says_so(monkeypatch: Any, caplog: Any) -> None:
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)  # torch is imported in this process already
    prefer_passive_wait()
    assert "OMP_WAIT_POLICY" not in os.environ
    assert "left unset" in caplog.text
