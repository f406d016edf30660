"""Where mail programs look for their settings. Outlook spells the path either way round, and
Thunderbird asks ``autoconfig.<domain>`` at ``/mail/…``: every spelling is listed."""

from __future__ import annotations

from django.urls import path

from . import views

app_name = "autoconfig"
urlpatterns = [
    path(".well-known/autoconfig/mail/config-v1.1.xml", views.thunderbird, name="thunderbird"),
    path("mail/config-v1.1.xml", views.thunderbird, name="thunderbird_host"),
    path("autodiscover/autodiscover.xml", views.autodiscover, name="autodiscover"),
    path("Autodiscover/Autodiscover.xml", views.autodiscover),
    path("autodiscover/autodiscover.json", views.autodiscover_json, name="autodiscover_json"),
    path("Autodiscover/Autodiscover.json", views.autodiscover_json),
    path("autodiscover/autodiscover.json/v1.0/<str:address>", views.autodiscover_json),
    path("Autodiscover/Autodiscover.json/v1.0/<str:address>", views.autodiscover_json),
    path("mail-profile/<str:token>/", views.profile_by_link, name="profile_link"),
]
