"""Every alweb process picks OpenMP's passive wait before torch loads, and a bad ALWEB_TORCH_THREADS stops it at
start, naming the variable (engine.threads; the workers' own setting is tested with real workers in
tests/integration/test_worker_threads.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent


def _python(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in {"OMP_WAIT_POLICY", "ALWEB_TORCH_THREADS"}}
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env={**clean, **env}, cwd=ROOT, timeout=120
    )


def test_loading_alweb_chooses_the_passive_wait_before_torch_loads() -> None:
    out = _python(
        "import os, sys, django; import alweb; before = 'torch' in sys.modules; django.setup(); "
        "import torch; print(os.environ.get('OMP_WAIT_POLICY'), before)"
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[-2:] == ["PASSIVE", "False"]


def test_the_environment_keeps_its_own_wait_policy() -> None:
    out = _python("import os, alweb; print(os.environ['OMP_WAIT_POLICY'])", OMP_WAIT_POLICY="ACTIVE")
    assert out.stdout.split()[-1] == "ACTIVE"


def test_a_bad_thread_count_stops_the_process_naming_the_variable() -> None:
    out = _python("import django; django.setup()", ALWEB_TORCH_THREADS="zero")
    assert out.returncode != 0
    assert "ImproperlyConfigured: ALWEB_TORCH_THREADS='zero'" in out.stderr
