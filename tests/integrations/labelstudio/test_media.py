"""Item images reach Label Studio through stable, signed per-item links served by a live alweb: a task's image
keeps loading however old the task is."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlparse

import pytest
import requests
from django.core.files.storage import default_storage

from campaigns.models import Item
from campaigns.services.media import project_revoke_media_links
from integrations.labelstudio import client as lsc
from integrations.labelstudio.client import LabelStudio
from integrations.labelstudio.sync import cycle_sync_to_labelstudio
from tests.integrations.labelstudio.builders import cold_cycle, ls_tasks, make_project

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_label_studio_loads_item_images_from_signed_urls(
    ls_live: Any, ls_pat_client: LabelStudio, settings: Any
) -> None:
    project = make_project("image_classification", n=3)
    cycle_sync_to_labelstudio(cycle=cold_cycle(project, budget=3))
    tasks = ls_tasks(ls_pat_client, project)
    assert len(tasks) == 3
    for task in tasks:
        url = task["data"]["image"]
        assert url.startswith(f"{ls_live.url}/m/i/")  # what LS hands to the annotator's browser
        item = Item.objects.get(pk=task["data"]["alweb_item"])
        response = requests.get(url, timeout=10)
        assert response.status_code == 200 and response.headers["content-type"] == "image/png"
        assert response.headers["access-control-allow-origin"] == "*"  # LS's editor loads it cross-origin
        with default_storage.open(item.media.name, "rb") as fh:
            assert response.content == fh.read()
        forged = url[:-6] + ("A" if url[-6] != "A" else "B") + url[-5:]
        assert requests.get(forged, timeout=10).status_code == 404

    # Label Studio's own server fetches one of the URLs (its import-from-URL reads the bytes over HTTP) and
    # stores the image it got: the same bytes come back from LS.
    url = tasks[0]["data"]["image"]
    item = Item.objects.get(pk=tasks[0]["data"]["alweb_item"])
    scratch = lsc.create_project(
        ls_pat_client, title="media fetch check", label_config='<View><Image name="image" value="$image"/></View>'
    )
    http = ls_pat_client._client_wrapper.httpx_client
    # A form post: LS downloads the URL server-side (its name must end like an image file to be taken as one).
    response = http.request(f"api/projects/{scratch.id}/import", method="POST", data={"url": url + "?as=image.png"})
    assert response.status_code == 201, response.text
    (fetched,) = lsc.iter_tasks(ls_pat_client, project_id=scratch.id, fields="task_only")
    stored = next(iter(fetched["data"].values()))
    assert urlparse(stored).path.startswith("/data/upload/")
    copy = lsc._raw(ls_pat_client, "GET", urlparse(stored).path.lstrip("/"))
    with default_storage.open(item.media.name, "rb") as fh:
        assert copy.content == fh.read()

    # Days later: expiring signatures are all too old, yet the task's image (as Label Studio hands it out now)
    # still loads; revoking the project's links stops it, and a resync is what hands out new ones.
    settings.ALWEB_MEDIA_URL_TTL = -1
    task = lsc._raw(ls_pat_client, "GET", f"api/tasks/{tasks[0]['id']}").json()
    assert requests.get(task["data"]["image"], timeout=10).status_code == 200
    project_revoke_media_links(project=project)
    assert requests.get(task["data"]["image"], timeout=10).status_code == 404
