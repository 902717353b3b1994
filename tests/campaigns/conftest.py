"""Projects of each task type for the import tests (test_ingest, test_ingest_damaged)."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture
def text_project(make_project: Any) -> Any:
    return make_project(split_ratios={"train": 0.1, "valid": 0.2, "test": 0.2, "pool": 0.5})


@pytest.fixture
def image_project(make_project: Any) -> Any:
    return make_project(task_type="image_classification", labels=["cat", "dog"])


@pytest.fixture
def detection_project(make_project: Any) -> Any:
    return make_project(task_type="object_detection", labels=["car", "person"])
