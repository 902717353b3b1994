"""When a newly trained version becomes the project's champion (the version alweb scores with). Kept apart from
registry.py so that validating a project's settings does not import MLflow."""

from __future__ import annotations

# "always": every new version; "if_better": only if strictly better on the validation metric; "never": by hand.
CHAMPION_POLICIES = ("always", "if_better", "never")
