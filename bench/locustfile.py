"""The users of bench/load.py, run by locust (headless). The seeded plan (ids, session keys, tokens) comes from the
JSON file named by ALWEB_LOAD_PLAN.

Dashboard users hold a session cookie and do what a lead does on the pages: open the project list, a project page
and the cycle page, move the threshold slider (each step a GET of the cycle preview, as htmx sends it) and poll the
progress of the cycle being scored (the status partial, every 2 s while it works). API users hold a token and list
projects, read a cycle and page through the items. Any status but 200 is a failure named `HTTP <code>`; redirects
are not followed (a lost session would otherwise read as a 200 login page).
"""

from __future__ import annotations

import json
import os
import random
from typing import Any

from locust import HttpUser, between, task

PLAN: dict[str, Any] = json.loads(open(os.environ["ALWEB_LOAD_PLAN"]).read())  # noqa: SIM115 - read once at import
P, N = PLAN["project"], PLAN["cycle_number"]
SCORING = f"/projects/{PLAN['scoring_project']}/cycles/{PLAN['scoring_cycle_number']}/status/?seen=scoring"
_next_account = 0


def _account() -> int:
    """Accounts dealt round-robin, so every seeded account is in use."""
    global _next_account
    _next_account += 1
    return _next_account % len(PLAN["tokens"])


class _Checked(HttpUser):
    abstract = True

    def get(self, url: str, name: str, **kwargs: Any) -> None:
        with self.client.get(url, name=name, allow_redirects=False, catch_response=True, **kwargs) as response:
            if response.status_code != 200:
                response.failure(f"HTTP {response.status_code}")


class DashboardUser(_Checked):
    weight = 4
    wait_time = between(1, 3)

    def on_start(self) -> None:
        self.client.cookies.set("sessionid", PLAN["sessions"][_account()])

    @task(2)
    def project_list(self) -> None:
        self.get("/", "dashboard: project list")

    @task(2)
    def project_page(self) -> None:
        self.get(f"/projects/{P}/", "dashboard: project page")

    @task(2)
    def cycle_page(self) -> None:
        self.get(f"/projects/{P}/cycles/{N}/", "dashboard: cycle page")

    @task(6)
    def move_slider(self) -> None:
        lo, hi = PLAN["score_min"], PLAN["score_max"]
        threshold = lo + (hi - lo) * random.random()
        budget = random.choice([100, 500, 1000])
        self.get(
            f"/projects/{P}/cycles/{N}/preview/?threshold={threshold:.6f}&budget={budget}&strategy=topk",
            "dashboard: cycle preview (slider)",
            headers={"HX-Request": "true"},
        )

    @task(6)
    def poll_progress(self) -> None:
        self.get(SCORING, "dashboard: cycle progress poll", headers={"HX-Request": "true"})


class ApiUser(_Checked):
    weight = 1
    wait_time = between(1, 3)

    def on_start(self) -> None:
        self.client.headers["Authorization"] = f"Token {PLAN['tokens'][_account()]}"

    @task(2)
    def projects(self) -> None:
        self.get("/api/projects/", "api: project list")

    @task(2)
    def cycle(self) -> None:
        self.get(f"/api/projects/{P}/cycles/{PLAN['cycle_id']}/", "api: cycle detail")

    @task(2)
    def items(self) -> None:
        offset = random.randrange(0, 100) * 50
        self.get(f"/api/projects/{P}/items/?limit=50&offset={offset}", "api: items page")
