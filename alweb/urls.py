from __future__ import annotations

from django.contrib import admin
from django.urls import include, path

from alweb.queues import queues_view
from campaigns.media_views import media_item, media_signed

urlpatterns = [
    path("admin/queues/", queues_view, name="admin-queues"),  # before admin/: the admin would 404 it
    path("admin/", admin.site.urls),
    path("api/", include("campaigns.api.urls")),
    path("m/<str:token>/", media_signed, name="media-signed"),
    path("m/i/<int:item_id>/<str:signature>/", media_item, name="media-item"),
    path("labelstudio/", include("integrations.labelstudio.urls")),
    path("accounts/", include("django.contrib.auth.urls")),
    path("", include("campaigns.web.urls")),
]
