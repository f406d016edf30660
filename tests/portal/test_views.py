"""The customer portal, page by page: what the owner sees and can do, with and without htmx,
in English and German. Isolation from other customers is in test_portal_isolation.py."""

from __future__ import annotations

import re
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from django.core import mail
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.models import AuditEntry, Customer, User
from mailboxes.models import (
    MIB,
    FolderUsage,
    Mailbox,
    Plan,
    PlanChangeRequest,
    QuotaWarning,
    UsageSample,
)
from mailboxes.passwords import verify_password
from mailboxes.services import mailbox_request_refresh
from tests.audiences import OWNER_PASSWORD
from tests.factories import PASSWORD, make_mailbox

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}
IP = "198.51.100.23"
NEW_PASSWORD = "Quiet-Harbour-7359"


def measure(mailbox: Mailbox, used_mb: int, **extra: object) -> None:
    Mailbox.objects.filter(pk=mailbox.pk).update(
        used_bytes=used_mb * MIB,
        message_count=extra.pop("messages", 12),
        usage_checked_at=extra.pop("checked_at", timezone.now()),
        usage_state=extra.pop("state", Mailbox.UsageState.OK),
        **extra,
    )


def messages_text(response) -> str:  # type: ignore[no-untyped-def]
    return " ".join(str(m) for m in response.context["messages"])


# --- Logging in -----------------------------------------------------------------------------


def test_customer_logs_in_with_email_in_any_case_and_lands_on_the_portal(
    client: Client, owner: User, mailbox: Mailbox
) -> None:
    response = client.post(
        reverse("accounts:login"),
        {"username": "Inhaber@Example.ORG", "password": OWNER_PASSWORD},
        follow=True,
    )
    assert response.redirect_chain[-1][0] == reverse("portal:overview")
    assert "anna@baeckerei.example" in response.content.decode()


def test_wrong_password_does_not_log_in(client: Client, owner: User) -> None:
    response = client.post(
        reverse("accounts:login"), {"username": owner.email, "password": "wrong-one-123"}
    )
    assert response.status_code == 200
    assert "_auth_user_id" not in client.session


def test_staff_still_log_in_with_their_user_name(client: Client, staff: User) -> None:
    response = client.post(
        reverse("accounts:login"), {"username": "hanna", "password": "Staff-Pass-2041"}
    )
    assert response.status_code == 302
    assert client.get(reverse("home"))["Location"] == reverse("staff:dashboard")


def test_an_address_shared_by_two_users_logs_nobody_in_by_email(client: Client) -> None:
    User.objects.create_user("eins", email="shared@example.org", password=OWNER_PASSWORD)
    User.objects.create_user("zwei", email="shared@example.org", password=OWNER_PASSWORD)
    client.post(
        reverse("accounts:login"), {"username": "shared@example.org", "password": OWNER_PASSWORD}
    )
    assert "_auth_user_id" not in client.session


def test_login_page_offers_a_password_reset(client: Client) -> None:
    html = client.get(reverse("accounts:login")).content.decode()
    assert reverse("accounts:password_reset") in html
    assert "Email address or user name" in html


def test_invited_user_sets_a_password_through_forgot_password(
    client: Client, customer: Customer, mailbox: Mailbox
) -> None:
    """An unusable password (invitation not used, or expired) can still ask for a link."""
    user = User.objects.create_user("neu@example.org", email="neu@example.org", customer=customer)
    assert not user.has_usable_password()
    response = client.post(reverse("accounts:password_reset"), {"email": "Neu@Example.org"})
    assert response.status_code == 302
    assert len(mail.outbox) == 1
    link = re.search(r"https?://[^\s]+/password/reset/[^\s]+/", mail.outbox[0].body)
    assert link, mail.outbox[0].body
    path = urlsplit(link.group(0)).path
    form_page = client.get(path, follow=True)
    assert form_page.status_code == 200
    response = client.post(
        form_page.redirect_chain[-1][0],
        {"new_password1": "Sunny-Meadow-4471", "new_password2": "Sunny-Meadow-4471"},
        follow=True,
    )
    assert "Your password is saved and you are logged in." in response.content.decode()
    user.refresh_from_db()
    assert user.check_password("Sunny-Meadow-4471")
    assert client.get(reverse("portal:overview")).status_code == 200


@pytest.mark.parametrize("language", ["en", "de"])
def test_a_login_password_has_the_same_minimum_as_a_mailbox_password(
    owner_client: Client, customer: Customer, mailbox: Mailbox, language: str
) -> None:
    """One rule on every page that asks for a password: the choose-password page said 8
    characters while the mailbox password form says 10."""
    from django.contrib.auth.tokens import default_token_generator
    from django.utils.encoding import force_bytes
    from django.utils.http import urlsafe_base64_encode

    Customer.objects.filter(pk=customer.pk).update(language=language)
    user = User.objects.create_user("neu@example.org", email="neu@example.org", customer=customer)
    uid = urlsafe_base64_encode(force_bytes(user.pk))
    token = default_token_generator.make_token(user)
    link = reverse("accounts:password_reset_confirm", args=[uid, token])
    accept = {"HTTP_ACCEPT_LANGUAGE": "en"}
    client = Client()  # not logged in: the page speaks the customer's language all the same
    page = client.get(link, follow=True, **accept)
    ten = {"en": "at least 10 characters", "de": "mindestens 10 Zeichen"}[language]
    assert ten in page.content.decode()
    assert ten.replace("10", "8") not in page.content.decode()
    nine = "Sunny-447"
    refused = client.post(
        page.redirect_chain[-1][0], {"new_password1": nine, "new_password2": nine}, **accept
    )
    assert refused.status_code == 200 and ten in refused.content.decode()
    user.refresh_from_db()
    assert not user.has_usable_password()
    owner_client.cookies.load({"django_language": language})
    mailbox_page = owner_client.get(reverse("portal:mailbox_detail", args=[mailbox.pk]))
    assert ten[0].upper() + ten[1:] in mailbox_page.content.decode()


def test_the_reset_link_is_on_site_url_whatever_host_the_request_names(
    client: Client, customer: Customer, settings
) -> None:
    """A forged Host header must not make the email carry the token to somebody else's
    server (ALLOWED_HOSTS may well be "*" behind a proxy)."""
    settings.SITE_URL = "https://mail.hoster.example"
    settings.ALLOWED_HOSTS = ["*"]
    User.objects.create_user("neu@example.org", email="neu@example.org", customer=customer)

    response = client.post(
        reverse("accounts:password_reset"), {"email": "neu@example.org"}, HTTP_HOST="evil.example"
    )

    assert response.status_code == 302
    [message] = mail.outbox
    html = message.alternatives[0][0]
    for text in (message.body, html):
        links = re.findall(r"https?://[^\s\"<]+", text)
        assert links and all(link.startswith("https://mail.hoster.example/") for link in links)
        assert "evil.example" not in text


def test_password_reset_pages_are_translated(client: Client) -> None:
    html = client.get(reverse("accounts:password_reset"), HTTP_ACCEPT_LANGUAGE="de").content
    assert "Passwort vergessen?" in html.decode()


# --- Overview -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("used_mb", "level", "label"),
    [
        (50, "ok", None),
        (80, "warn", "Filling up"),
        (94, "warn", "Filling up"),
        (95, "danger", "Almost full"),
        (100, "full", "Full"),
    ],
)
def test_overview_shows_usage_as_text_bar_and_level_words(
    owner_client: Client, mailbox: Mailbox, used_mb: int, level: str, label: str | None
) -> None:
    measure(mailbox, used_mb)
    html = owner_client.get(reverse("portal:overview")).content.decode()
    assert f"{used_mb}.0\xa0MB of 100.0\xa0MB ({used_mb}%)" in html
    assert f"usage-meter level-{level}" in html
    assert f'style="width: {used_mb}%"' in html
    if label:  # never colour alone: the level is also said in words
        assert f'<strong class="usage-label">{label}</strong>' in html
    assert "Last checked" in html


def test_overview_says_when_a_mailbox_was_never_measured(
    owner_client: Client, mailbox: Mailbox
) -> None:
    html = owner_client.get(reverse("portal:overview")).content.decode()
    assert "Not measured yet (quota 100.0\xa0MB)" in html


def test_customers_never_see_staff_only_fields(owner_client: Client, mailbox: Mailbox) -> None:
    measure(mailbox, 10, state=Mailbox.UsageState.STALE, usage_error="imap.internal:143 refused")
    for url in (
        reverse("portal:overview"),
        reverse("portal:mailbox_detail", args=[mailbox.pk]),
        reverse("portal:activity"),
    ):
        html = owner_client.get(url).content.decode()
        assert mailbox.storage_path not in html
        assert "imap.internal" not in html  # the measuring error, with a host name
        assert "Mail server" not in html
        assert "health" not in html.lower()
    detail = owner_client.get(reverse("portal:mailbox_detail", args=[mailbox.pk]))
    assert "out of date" in detail.content.decode()


def test_refresh_from_the_overview_card_with_htmx_returns_the_card(
    owner_client: Client, mailbox: Mailbox
) -> None:
    url = reverse("portal:mailbox_refresh", args=[mailbox.pk])
    response = owner_client.post(url, {"part": "card"}, REMOTE_ADDR=IP, **HTMX)
    html = response.content.decode()
    assert response.status_code == 200
    assert "<html" not in html
    assert f'id="mailbox-card-{mailbox.pk}"' in html
    assert "Refresh requested" in html
    assert 'hx-trigger="load delay:3s"' in html  # it reloads itself until measured
    mailbox.refresh_from_db()
    assert mailbox.refresh_requested_at is not None
    entry = AuditEntry.objects.get(action="mailbox.refresh", target_id=mailbox.pk)
    assert (entry.actor_name, entry.ip_address) == ("inhaber@example.org", IP)

    again = owner_client.post(url, {"part": "card"}, **HTMX).content.decode()
    assert "already requested; try again in a minute" in again
    assert AuditEntry.objects.filter(action="mailbox.refresh").count() == 1


def test_refresh_works_as_a_plain_form(owner_client: Client, mailbox: Mailbox) -> None:
    url = reverse("portal:mailbox_refresh", args=[mailbox.pk])
    response = owner_client.post(url, {"part": "card"})
    assert response["Location"] == reverse("portal:overview")
    response = owner_client.post(url, follow=True)
    assert response.redirect_chain[-1][0] == reverse("portal:mailbox_detail", args=[mailbox.pk])
    assert "already requested" in messages_text(response)


def test_card_stops_reloading_once_measured(owner_client: Client, mailbox: Mailbox) -> None:
    mailbox_request_refresh(mailbox=mailbox, actor="test")
    url = reverse("portal:mailbox_detail", args=[mailbox.pk]) + "?part=card"
    assert "load delay:3s" in owner_client.get(url, **HTMX).content.decode()
    measure(mailbox, 7, checked_at=timezone.now() + timedelta(seconds=1))
    card = owner_client.get(url, **HTMX).content.decode()
    assert "load delay:3s" not in card
    assert "7.0\xa0MB of 100.0\xa0MB (7%)" in card


def test_overview_lists_pending_plan_requests(
    owner_client: Client, pending_request: PlanChangeRequest
) -> None:
    html = owner_client.get(reverse("portal:overview")).content.decode()
    assert "Waiting for our answer" in html
    assert "IMAP Business" in html


# --- One mailbox ----------------------------------------------------------------------------


def test_mailbox_page_shows_folders_largest_first_chart_forecast_and_warnings(
    owner_client: Client, mailbox: Mailbox
) -> None:
    now = timezone.now()
    measure(mailbox, 40)
    for name, size in (("INBOX", 10), ("Sent", 25), ("Archiv/2024", 5)):
        FolderUsage.objects.create(
            mailbox=mailbox, name=name, message_count=3, size_bytes=size * MIB, measured_at=now
        )
    UsageSample.objects.bulk_create(
        UsageSample(
            mailbox=mailbox, taken_at=now - timedelta(days=10 - i), used_bytes=(30 + i) * MIB
        )
        for i in range(11)
    )
    QuotaWarning.objects.create(
        mailbox=mailbox,
        kind="warning",
        threshold=80,
        used_bytes=80 * MIB,
        quota_bytes=100 * MIB,
        recipient="inhaber@example.org",
        language="en",
        status="sent",
    )
    html = owner_client.get(reverse("portal:mailbox_detail", args=[mailbox.pk])).content.decode()
    assert html.index(">Sent<") < html.index(">INBOX<") < html.index(">Archiv/2024<")
    assert "<svg" in html and "<polyline" in html
    assert "Usage over the last 30 days" in html
    assert "?days=90" in html
    assert "full in about 60 days" in html
    assert "80% reached" in html
    assert "inhaber@example.org" in html


def test_chart_range_with_htmx_returns_only_the_usage_block(
    owner_client: Client, mailbox: Mailbox
) -> None:
    url = reverse("portal:mailbox_detail", args=[mailbox.pk])
    response = owner_client.get(url + "?days=90", **HTMX)
    html = response.content.decode()
    assert "<html" not in html
    assert f'id="usage-{mailbox.pk}"' in html
    assert "Usage over the last 90 days" in html
    # The same URL without htmx is the full page, with the 90-day chart.
    full = owner_client.get(url + "?days=90").content.decode()
    assert "<html" in full and "Usage over the last 90 days" in full
    # Anything else falls back to 30 days rather than an error.
    assert "last 30 days" in owner_client.get(url + "?days=7000").content.decode()


def test_mailbox_page_explains_pop3_and_imap(owner_client: Client, mailbox: Mailbox) -> None:
    html = owner_client.get(reverse("portal:mailbox_detail", args=[mailbox.pk])).content.decode()
    assert "POP3 or IMAP: what is the difference?" in html
    for point in ("Several devices", "Sent mail", "Backups", "Storage", "Price"):
        assert point in html
    assert "This mailbox uses IMAP." in html


def test_mailbox_page_links_its_backups(owner_client: Client, mailbox: Mailbox) -> None:
    html = owner_client.get(reverse("portal:mailbox_detail", args=[mailbox.pk])).content.decode()
    assert f'id="backups-{mailbox.pk}"' in html


def test_usage_history_downloads_as_csv(owner_client: Client, mailbox: Mailbox) -> None:
    UsageSample.objects.create(
        mailbox=mailbox, taken_at=timezone.now(), used_bytes=1234, message_count=2
    )
    response = owner_client.get(reverse("portal:mailbox_usage_csv", args=[mailbox.pk]))
    assert response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    lines = response.content.decode().splitlines()
    assert lines[0] == "time_utc,used_bytes,messages,quota_bytes"
    assert lines[1].endswith(f",1234,2,{100 * MIB}")


# --- Changing the password ------------------------------------------------------------------


def test_owner_changes_a_mailbox_password(
    owner_client: Client, owner: User, mailbox: Mailbox
) -> None:
    url = reverse("portal:mailbox_password", args=[mailbox.pk])
    response = owner_client.post(
        url,
        {
            "password": NEW_PASSWORD,
            "password_again": NEW_PASSWORD,
            "current_password": OWNER_PASSWORD,
        },
        REMOTE_ADDR=IP,
    )
    assert response["Location"] == reverse("portal:mailbox_detail", args=[mailbox.pk])
    mailbox.refresh_from_db()
    assert verify_password(mailbox.password_hash, NEW_PASSWORD)
    entry = AuditEntry.objects.get(action="mailbox.password", target_id=mailbox.pk)
    assert (entry.actor, entry.ip_address, entry.customer) == (owner, IP, mailbox.customer)
    page = owner_client.get(response["Location"]).content.decode()
    assert "Use the new one in your mail programs now" in page
    assert NEW_PASSWORD not in page


@pytest.mark.parametrize(
    ("password", "again", "field", "text"),
    [
        ("short", "short", "password", "at least 10 characters"),
        ("anna-Secret-2041", "anna-Secret-2041", "password", "must not contain the mailbox name"),
        ("12345678901234", "12345678901234", "password", "entirely numeric"),
        (NEW_PASSWORD, NEW_PASSWORD + "x", "password_again", "not the same"),
    ],
)
def test_bad_passwords_are_refused_with_the_rule(
    owner_client: Client, mailbox: Mailbox, password: str, again: str, field: str, text: str
) -> None:
    url = reverse("portal:mailbox_password", args=[mailbox.pk])
    response = owner_client.post(
        url, {"password": password, "password_again": again, "current_password": OWNER_PASSWORD}
    )
    assert response.status_code == 400
    assert text in " ".join(response.context["password_form"].errors[field])
    assert password not in response.content.decode()
    mailbox.refresh_from_db()
    assert verify_password(mailbox.password_hash, PASSWORD)


def test_password_form_with_htmx_answers_in_place(owner_client: Client, mailbox: Mailbox) -> None:
    url = reverse("portal:mailbox_password", args=[mailbox.pk])
    bad = owner_client.post(
        url,
        {"password": "short", "password_again": "short", "current_password": OWNER_PASSWORD},
        **HTMX,
    )
    assert bad.status_code == 422  # swapped in by htmx; the same without htmx is a 400 page
    assert "<html" not in bad.content.decode()
    assert "at least 10 characters" in bad.content.decode()
    good = owner_client.post(
        url,
        {
            "password": NEW_PASSWORD,
            "password_again": NEW_PASSWORD,
            "current_password": OWNER_PASSWORD,
        },
        **HTMX,
    )
    html = good.content.decode()
    assert good.status_code == 200
    assert f'id="password-{mailbox.pk}"' in html
    assert "Use the new one in your mail programs now" in html
    assert NEW_PASSWORD not in html


# --- Plans ----------------------------------------------------------------------------------


def test_plan_page_compares_plans_and_explains_the_protocols(
    owner_client: Client, mailbox: Mailbox, bigger_plan: Plan
) -> None:
    html = owner_client.get(reverse("portal:mailbox_plan", args=[mailbox.pk])).content.decode()
    assert "IMAP Business" in html and "IMAP Standard" in html
    assert "POP3 or IMAP: what is the difference?" in html
    assert "current" in html


def test_owner_asks_for_another_plan_and_can_withdraw(
    owner_client: Client, owner: User, mailbox: Mailbox, bigger_plan: Plan
) -> None:
    url = reverse("portal:mailbox_plan", args=[mailbox.pk])
    response = owner_client.post(
        url,
        {"plan": bigger_plan.pk, "protocol": "", "note": "Wir brauchen mehr Platz"},
        follow=True,
    )
    plan_request = PlanChangeRequest.objects.get()
    assert (plan_request.status, plan_request.plan, plan_request.protocol) == (
        "pending",
        bigger_plan,
        "imap",
    )
    assert (plan_request.requested_by, plan_request.note) == (owner, "Wir brauchen mehr Platz")
    assert "we have your request" in messages_text(response)
    mailbox.refresh_from_db()
    assert mailbox.plan.name == "IMAP Standard"  # staff decide

    again = owner_client.get(url).content.decode()
    assert "You already asked" in again

    owner_client.post(reverse("portal:plan_request_cancel", args=[plan_request.pk]))
    plan_request.refresh_from_db()
    assert plan_request.status == "cancelled"
    assert AuditEntry.objects.filter(action="plan_request.cancel", actor=owner).exists()


def test_asking_for_the_current_plan_is_refused(owner_client: Client, mailbox: Mailbox) -> None:
    response = owner_client.post(
        reverse("portal:mailbox_plan", args=[mailbox.pk]), {"plan": mailbox.plan_id}
    )
    assert response.status_code == 400
    assert "already has this plan" in str(response.context["form"].errors)


def test_self_service_plan_changes_apply_at_once(
    owner_client: Client, mailbox: Mailbox, bigger_plan: Plan, settings: object
) -> None:
    settings.POSTAMT_SELF_SERVICE_PLAN_CHANGES = ["IMAP Business"]  # type: ignore[attr-defined]
    page = owner_client.get(reverse("portal:mailbox_plan", args=[mailbox.pk])).content.decode()
    assert "applies at once" in page
    response = owner_client.post(
        reverse("portal:mailbox_plan", args=[mailbox.pk]),
        {"plan": bigger_plan.pk, "protocol": "pop3"},
        follow=True,
    )
    assert "Done:" in messages_text(response)
    mailbox.refresh_from_db()
    assert (mailbox.plan, mailbox.protocol) == (bigger_plan, "pop3")
    assert PlanChangeRequest.objects.get().status == "applied"


# --- Settings and activity ------------------------------------------------------------------


def test_owner_changes_notification_settings(
    owner_client: Client, owner: User, customer: Customer
) -> None:
    page = owner_client.get(reverse("portal:settings")).content.decode()
    assert customer.contact_email in page
    response = owner_client.post(
        reverse("portal:settings"),
        {"contact_email": "buero@example.net", "language": "de", "only_full_warnings": "on"},
        REMOTE_ADDR=IP,
    )
    assert response["Location"] == reverse("portal:settings")
    customer.refresh_from_db()
    assert (customer.contact_email, customer.language) == ("buero@example.net", "de")
    assert (customer.only_full_warnings, customer.copy_warnings_to_mailbox) == (True, False)
    entry = AuditEntry.objects.get(action="customer.notifications")
    assert (entry.actor, entry.ip_address) == (owner, IP)
    assert set(entry.details["new"]) == {"contact_email", "language", "only_full_warnings"}


@pytest.mark.parametrize(("htmx", "status"), [(True, 422), (False, 400)], ids=["htmx", "plain"])
def test_contact_address_must_not_be_one_of_the_customers_mailboxes(
    owner_client: Client, mailbox: Mailbox, customer: Customer, htmx: bool, status: int
) -> None:
    response = owner_client.post(
        reverse("portal:settings"),
        {"contact_email": "Anna@baeckerei.example", "language": "en"},
        **(HTMX if htmx else {}),
    )
    assert response.status_code == status
    html = response.content.decode()
    assert "one of your own mailboxes" in html
    assert ("<html" in html) is not htmx  # the form's partial for htmx, else the whole page
    customer.refresh_from_db()
    assert customer.contact_email != "Anna@baeckerei.example"


def test_settings_with_htmx_confirm_in_place(owner_client: Client, customer: Customer) -> None:
    response = owner_client.post(
        reverse("portal:settings"),
        {"contact_email": "neu@example.net", "language": "en", "copy_warnings_to_mailbox": "on"},
        **HTMX,
    )
    assert response.status_code == 200
    assert "Your settings are saved." in response.content.decode()
    customer.refresh_from_db()
    assert customer.copy_warnings_to_mailbox


def test_activity_shows_every_staff_action_by_role_without_name_or_ip(
    owner_client: Client, mailbox: Mailbox, staff: User
) -> None:
    mailbox_request_refresh(mailbox=mailbox, actor=staff, ip="10.9.8.7")
    html = owner_client.get(reverse("portal:activity")).content.decode()
    assert "usage measured on request" in html
    assert "Administrator" in html and "hanna" not in html
    assert "provider" in html
    assert "mailbox created" in html
    assert "10.9.8.7" not in html


# --- German ---------------------------------------------------------------------------------


def test_overview_in_german(owner_client: Client, mailbox: Mailbox) -> None:
    measure(mailbox, 96)
    owner_client.post(reverse("set_language"), {"language": "de", "next": "/"})
    html = owner_client.get(reverse("portal:overview")).content.decode()
    assert '<html lang="de">' in html
    assert "Ihre Postfächer" in html
    assert (
        "96,0\xa0MB von 100,0\xa0MB (96\xa0%)" in html
        or "96,0\xa0MB von 100,0\xa0MB (96 %)" in html
    )
    assert "Fast voll" in html
    assert "Jetzt aktualisieren" in html


def test_mailbox_page_in_german(owner_client: Client, mailbox: Mailbox) -> None:
    mailbox.customer.language = "de"
    mailbox.customer.save()
    html = owner_client.get(reverse("portal:mailbox_detail", args=[mailbox.pk])).content.decode()
    assert "POP3 oder IMAP" in html
    assert "Passwort des Postfachs ändern" in html
    assert "Not measured" not in html


def test_second_mailbox_of_the_same_customer_is_listed(
    owner_client: Client, mailbox: Mailbox
) -> None:
    second = make_mailbox("bert", domain=mailbox.domain, plan=mailbox.plan)
    html = owner_client.get(reverse("portal:overview")).content.decode()
    assert second.display_address in html and mailbox.display_address in html


def test_pages_follow_the_customers_language_not_the_browser(
    owner_client: Client, mailbox: Mailbox
) -> None:
    mailbox.customer.language = "de"
    mailbox.customer.save()

    html = owner_client.get(reverse("portal:overview"), HTTP_ACCEPT_LANGUAGE="en").content
    assert '<html lang="de">' in html.decode()

    owner_client.post(reverse("set_language"), {"language": "en", "next": "/"})
    html = owner_client.get(reverse("portal:overview"), HTTP_ACCEPT_LANGUAGE="de").content
    assert '<html lang="en">' in html.decode()  # the switcher's choice wins


def test_staff_pages_follow_the_browser(client: Client) -> None:
    client.force_login(User.objects.create_user("ops", password="x-Staff-2041", is_staff=True))

    html = client.get(reverse("staff:dashboard"), HTTP_ACCEPT_LANGUAGE="de").content.decode()

    assert '<html lang="de">' in html
