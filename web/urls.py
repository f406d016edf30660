"""The front page, logging in and out, choosing a password through an emailed link, and the
addresses of pages that moved."""

from __future__ import annotations

from django.contrib.auth import views as auth_views
from django.urls import URLPattern, URLResolver, include, path, reverse_lazy

from .forms import ChoosePasswordForm, LoginForm, SetPasswordLinkForm
from .health import healthz
from .twofactor import urls as twofactor_urls
from .twofactor import webauthn as webauthn_urls
from .views import ChoosePasswordView, PasswordResetView, home, moved_backup_page

account_patterns: list[URLPattern | URLResolver] = [
    path(
        "login/",
        auth_views.LoginView.as_view(
            template_name="registration/login.html", authentication_form=LoginForm
        ),
        name="login",
    ),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    # Staff only: the second factor after the password (web/twofactor/).
    path("two-factor/", include(twofactor_urls)),
    path(
        "password/reset/",
        PasswordResetView.as_view(
            form_class=SetPasswordLinkForm,
            template_name="registration/password_reset_form.html",
            subject_template_name="emails/password_reset_subject.txt",
            email_template_name="emails/password_reset.txt",
            html_email_template_name="emails/password_reset.html",
            success_url=reverse_lazy("accounts:password_reset_done"),
        ),
        name="password_reset",
    ),
    path(
        "password/reset/sent/",
        auth_views.PasswordResetDoneView.as_view(
            template_name="registration/password_reset_done.html"
        ),
        name="password_reset_done",
    ),
    path(
        "password/reset/<uidb64>/<token>/",
        ChoosePasswordView.as_view(
            form_class=ChoosePasswordForm,
            template_name="registration/password_reset_confirm.html",
            success_url=reverse_lazy("accounts:password_reset_complete"),
            # The link proved who they are: log them in, so the next click is their mailboxes.
            post_reset_login=True,
        ),
        name="password_reset_confirm",
    ),
    path(
        "password/reset/done/",
        auth_views.PasswordResetCompleteView.as_view(
            template_name="registration/password_reset_complete.html"
        ),
        name="password_reset_complete",
    ),
]

urlpatterns = [
    path("", home, name="home"),
    # For load balancers and monitoring: no login (web/health.py).
    path("healthz", healthz, name="healthz"),
    path("accounts/", include((account_patterns, "accounts"))),
    path("accounts/webauthn/", include((webauthn_urls.urlpatterns, "otp_webauthn"))),
    # Before the staff and portal pages had a door each, backups lived under /backups/.
    path("backups/<path:rest>", moved_backup_page),
]
