"""The Celery app, configured from Django settings (CELERY_* names)."""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "alweb.settings.local")

app = Celery("alweb")
app.config_from_object("django.conf:settings", namespace="CELERY")


@app.on_configure.connect
def _configure_embedded_broker(sender: Celery, **kwargs: object) -> None:
    """The filesystem broker needs its folders; production brokers ignore this."""
    from django.conf import settings

    if str(settings.CELERY_BROKER_URL).startswith("filesystem://"):
        folder = settings.CELERY_BROKER_FOLDER
        (folder / "processed").mkdir(parents=True, exist_ok=True)
        sender.conf.broker_transport_options = {
            "data_folder_in": str(folder),
            "data_folder_out": str(folder),
            "processed_folder": str(folder / "processed"),
            # kombu's default is ./control relative to the working directory.
            "control_folder": str(folder / "control"),
            "store_processed": False,
        }


app.autodiscover_tasks()
