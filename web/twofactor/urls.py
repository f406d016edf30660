"""/accounts/two-factor/...: the second step, setting one up, recovery codes, one's devices."""

from __future__ import annotations

from django.urls import path

from . import views

urlpatterns = [
    path("", views.verify, name="two_factor"),
    path("setup/", views.setup, name="two_factor_setup"),
    path("setup/done/", views.enrolled, name="two_factor_enrolled"),
    path("recovery-codes/", views.recovery_codes, name="two_factor_recovery_codes"),
    path("devices/", views.devices, name="two_factor_devices"),
]
