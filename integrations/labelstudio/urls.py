"""URLs Label Studio calls. Included under /labelstudio/ by alweb.urls."""

from __future__ import annotations

from django.urls import URLPattern, path

from integrations.labelstudio import views

ML_ENDPOINTS = {
    "health": views.ml_health,
    "setup": views.ml_setup,
    "predict": views.ml_predict_view,
    "webhook": views.ml_webhook,
}

urlpatterns: list[URLPattern] = [
    path("webhook/<int:project_id>/", views.labelstudio_webhook, name="labelstudio-webhook"),
    # The ML backend URL registered in LS is the root; LS appends "/health", "/setup", "/predict", "/webhook".
    path("ml/<int:project_id>", views.ml_health, name="labelstudio-ml-root"),
]
for _name, _view in ML_ENDPOINTS.items():
    # With and without a trailing slash: LS joins without one, a person typing the URL may add one.
    urlpatterns += [
        path(f"ml/<int:project_id>/{_name}", _view, name=f"labelstudio-ml-{_name}"),
        path(f"ml/<int:project_id>/{_name}/", _view),
    ]
