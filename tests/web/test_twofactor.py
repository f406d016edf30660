"""The second factor of staff logins: forced enrolment, the second step, recovery codes,
devices, the reset command; customers unaffected."""

from __future__ import annotations

import re
from io import StringIO

import pytest
from django.core.management import call_command
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django_otp.plugins.otp_static.models import StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice
from django_otp_webauthn.models import WebAuthnCredential

from accounts.models import AuditEntry, User
from mailboxes.models import Mailbox
from tests.audiences import customer, mailbox, owner, owner_client, plan, server
from tests.twofactor import current_code, login_unverified, totp_device

__all__ = ["customer", "mailbox", "owner", "owner_client", "plan", "server"]

pytestmark = pytest.mark.django_db

PASSWORD = "Staff-Pass-2041"
TWO_FACTOR = reverse("accounts:two_factor")


@pytest.fixture
def hanna(db: None) -> User:
    return User.objects.create_user("hanna", password=PASSWORD, is_staff=True)


def password_login(client: Client, user: User) -> None:
    response = client.post(
        reverse("accounts:login"), {"username": user.get_username(), "password": PASSWORD}
    )
    assert response.status_code == 302


def actions(user: User) -> list[str]:
    return list(
        AuditEntry.objects.filter(target_type="user", target_id=user.pk)
        .order_by("pk")
        .values_list("action", flat=True)
    )


def enrol(client: Client, user: User) -> list[str]:
    """Set up an authenticator app through the pages; returns the recovery codes shown."""
    client.get(reverse("accounts:two_factor_setup"))
    device = TOTPDevice.objects.get(user=user, confirmed=False)
    response = client.post(reverse("accounts:two_factor_setup"), {"code": current_code(device)})
    assert response["Location"] == reverse("accounts:two_factor_recovery_codes")
    page = client.get(response["Location"]).content.decode()
    return re.findall(r"<code>([a-z2-7-]{19})</code>", page)


# --- Staff without a second factor can do nothing else ---------------------------------------


def test_a_password_login_of_staff_leads_to_setting_up_a_second_factor(
    client: Client, hanna: User
) -> None:
    password_login(client, hanna)

    response = client.get(reverse("staff:dashboard"))
    assert response.status_code == 302
    assert response["Location"] == f"{TWO_FACTOR}?next=%2Fstaff%2F"
    response = client.get(response["Location"])
    assert response["Location"] == reverse("accounts:two_factor_setup") + "?next=%2Fstaff%2F"
    page = client.get(response["Location"]).content.decode()
    assert "<svg" in page  # the QR code
    secret = re.search(r'id="totp-secret">([A-Z2-7 ]+)<', page)
    assert secret is not None and len(secret.group(1).replace(" ", "")) == 32
    assert "Customers</a>" not in page  # no staff navigation before the second factor


def staff_routes() -> list[str]:
    """Every URL of the staff pages and the staff backup pages, ids filled with 1."""
    urls = []

    def walk(patterns: list, prefix: str, namespace: str) -> None:  # type: ignore[type-arg]
        for p in patterns:
            if isinstance(p, URLResolver):
                walk(p.url_patterns, prefix + str(p.pattern), namespace)
            elif isinstance(p, URLPattern):
                kwargs = {
                    k: 1 if "int" in type(c).__name__.lower() else "x"
                    for k, c in p.pattern.converters.items()
                }
                urls.append(reverse(f"{namespace}:{p.name}", kwargs=kwargs))

    for resolver in get_resolver().url_patterns:
        if isinstance(resolver, URLResolver) and resolver.namespace in ("staff", "staff_backups"):
            walk(resolver.url_patterns, "", resolver.namespace)
    return urls


def test_every_staff_page_sends_unverified_staff_to_the_second_step(
    client: Client, hanna: User
) -> None:
    totp_device(hanna)
    login_unverified(client, hanna)
    urls = staff_routes()
    assert len(urls) >= 15
    for url in urls:
        for method in (client.get, client.post):
            response = method(url)
            assert response.status_code in (302, 405), (url, response.status_code)
            if response.status_code == 302:
                assert response["Location"].startswith(TWO_FACTOR + "?next="), url


def test_htmx_requests_of_unverified_staff_are_sent_to_the_second_step_as_a_whole_page(
    client: Client, hanna: User
) -> None:
    login_unverified(client, hanna)
    response = client.get(reverse("staff:dashboard"), headers={"HX-Request": "true"})
    assert response["HX-Redirect"].startswith(TWO_FACTOR)


def test_customers_need_no_second_factor_and_never_see_its_pages(
    owner_client: Client, mailbox: Mailbox
) -> None:
    assert owner_client.get(reverse("portal:overview")).status_code == 200
    for name in ("two_factor", "two_factor_setup", "two_factor_enrolled"):
        assert owner_client.get(reverse(f"accounts:{name}")).status_code == 404
    # The devices and recovery-code pages are staff pages: 404 for a customer too.
    assert owner_client.get(reverse("accounts:two_factor_devices")).status_code == 404
    response = owner_client.post(reverse("otp_webauthn:credential-registration-begin"))
    assert response.status_code == 403


# --- Enrolment ---------------------------------------------------------------------------------


def test_enrolment_confirms_the_app_shows_recovery_codes_once_and_is_audited(
    client: Client, hanna: User
) -> None:
    password_login(client, hanna)
    codes = enrol(client, hanna)

    assert len(codes) == 10 and len(set(codes)) == 10
    assert TOTPDevice.objects.get(user=hanna).confirmed
    download = client.get(reverse("accounts:two_factor_recovery_codes") + "?download=1")
    assert download["Content-Disposition"].startswith("attachment")
    assert all(code in download.content.decode() for code in codes)
    assert "no-store" in download["Cache-Control"]

    response = client.post(reverse("accounts:two_factor_recovery_codes"), {"next": "/staff/"})
    assert response["Location"] == "/staff/"
    assert client.get(reverse("staff:dashboard")).status_code == 200
    # Shown once: the page now sends to the devices list.
    response = client.get(reverse("accounts:two_factor_recovery_codes"))
    assert response["Location"] == reverse("accounts:two_factor_devices")
    assert actions(hanna) == ["twofactor.enrol", "twofactor.recovery_codes"]


def test_a_wrong_code_does_not_confirm_the_app(client: Client, hanna: User) -> None:
    password_login(client, hanna)
    client.get(reverse("accounts:two_factor_setup"))
    response = client.post(reverse("accounts:two_factor_setup"), {"code": "000000"})
    assert response.status_code == 400
    assert "This code is not right" in response.content.decode()
    assert not TOTPDevice.objects.filter(user=hanna, confirmed=True).exists()
    assert client.get(reverse("staff:dashboard")).status_code == 302


def test_a_password_alone_cannot_add_a_device_to_an_account_that_has_one(
    client: Client, hanna: User
) -> None:
    totp_device(hanna)
    password_login(client, hanna)
    response = client.get(reverse("accounts:two_factor_setup"))
    assert response["Location"].startswith(TWO_FACTOR)
    response = client.post(reverse("accounts:two_factor_setup"), {"code": "123456"})
    assert response["Location"].startswith(TWO_FACTOR)
    assert TOTPDevice.objects.filter(user=hanna).count() == 1
    response = client.post(reverse("otp_webauthn:credential-registration-begin"))
    assert response.status_code == 403


# --- The second step ---------------------------------------------------------------------------


def test_the_app_code_lets_staff_in_and_goes_where_they_were_going(
    client: Client, hanna: User
) -> None:
    device = totp_device(hanna)
    password_login(client, hanna)
    response = client.post(TWO_FACTOR, {"code": current_code(device), "next": "/staff/audit/"})
    assert response["Location"] == "/staff/audit/"
    assert client.get(reverse("staff:audit_log")).status_code == 200


def test_the_second_step_refuses_to_send_anyone_to_another_site(
    client: Client, hanna: User
) -> None:
    device = totp_device(hanna)
    password_login(client, hanna)
    response = client.post(
        TWO_FACTOR, {"code": current_code(device), "next": "https://evil.example/"}
    )
    assert response["Location"] == reverse("staff:dashboard")


def test_a_code_is_accepted_only_once(client: Client, hanna: User) -> None:
    device = totp_device(hanna)
    code = current_code(device)
    password_login(client, hanna)
    assert client.post(TWO_FACTOR, {"code": code}).status_code == 302

    other = Client()
    password_login(other, hanna)
    assert other.post(TWO_FACTOR, {"code": code}).status_code == 400


def test_wrong_codes_are_throttled_like_logins(
    client: Client, hanna: User, settings: object
) -> None:
    settings.LOGIN_FAILURES_PER_ACCOUNT = 3  # type: ignore[attr-defined]
    device = totp_device(hanna)
    password_login(client, hanna)
    for _ in range(3):
        assert client.post(TWO_FACTOR, {"code": "000000"}).status_code == 400
    TOTPDevice.objects.filter(pk=device.pk).update(throttling_failure_count=0)
    response = client.post(TWO_FACTOR, {"code": current_code(device)})
    assert response.status_code == 429
    assert "Too many wrong codes" in response.content.decode()
    assert client.get(reverse("staff:dashboard")).status_code == 302


def test_a_recovery_code_works_once_and_its_use_is_audited(client: Client, hanna: User) -> None:
    password_login(client, hanna)
    codes = enrol(client, hanna)
    client.post(reverse("accounts:logout"))

    password_login(client, hanna)
    response = client.post(TWO_FACTOR, {"code": codes[0].upper()}, follow=True)
    assert "You used a recovery code: 9 are left" in response.content.decode()
    assert client.get(reverse("staff:dashboard")).status_code == 200
    entry = AuditEntry.objects.filter(action="twofactor.recovery_code_used").get()
    assert entry.actor == hanna and entry.details == {"left": 9}
    client.post(reverse("accounts:logout"))

    password_login(client, hanna)
    assert client.post(TWO_FACTOR, {"code": codes[0]}).status_code == 400
    assert StaticToken.objects.filter(device__user=hanna).count() == 9


def test_the_second_step_offers_a_security_key_to_those_who_have_one(
    client: Client, hanna: User
) -> None:
    totp_device(hanna)
    password_login(client, hanna)
    assert "passkey-verification-button" not in client.get(TWO_FACTOR).content.decode()
    WebAuthnCredential.objects.create(
        user=hanna, name="YubiKey", confirmed=True, credential_id=b"x", public_key=b"y"
    )
    page = client.get(TWO_FACTOR).content.decode()
    assert "passkey-verification-button" in page
    assert "otp_webauthn_auth.js" in page


# --- Devices -----------------------------------------------------------------------------------


def test_the_only_second_factor_cannot_be_removed(client: Client, hanna: User) -> None:
    client.force_login(hanna)  # verified, with one app
    device = TOTPDevice.objects.get(user=hanna)
    response = client.post(
        reverse("accounts:two_factor_devices"), {"device": device.persistent_id}, follow=True
    )
    assert "This is your only second factor" in response.content.decode()
    assert TOTPDevice.objects.filter(pk=device.pk).exists()


def test_removing_one_of_two_devices_is_audited(client: Client, hanna: User) -> None:
    client.force_login(hanna)
    spare = TOTPDevice.objects.create(user=hanna, name="Old phone", confirmed=True)
    page = client.get(reverse("accounts:two_factor_devices")).content.decode()
    assert "Old phone" in page and "used for this login" in page

    response = client.post(reverse("accounts:two_factor_devices"), {"device": spare.persistent_id})
    assert response.status_code == 302
    assert not TOTPDevice.objects.filter(pk=spare.pk).exists()
    entry = AuditEntry.objects.get(action="twofactor.remove")
    assert entry.details == {"device": "totp", "name": "Old phone"}


def test_another_users_device_cannot_be_removed(client: Client, hanna: User) -> None:
    client.force_login(hanna)
    TOTPDevice.objects.create(user=hanna, name="Spare", confirmed=True)
    other = User.objects.create_user("olaf", is_staff=True)
    theirs = TOTPDevice.objects.create(user=other, name="Olaf's", confirmed=True)
    response = client.post(reverse("accounts:two_factor_devices"), {"device": theirs.persistent_id})
    assert response.status_code == 404
    assert TOTPDevice.objects.filter(pk=theirs.pk).exists()


def test_new_recovery_codes_replace_the_old_ones(client: Client, hanna: User) -> None:
    password_login(client, hanna)
    old = enrol(client, hanna)
    client.post(reverse("accounts:two_factor_recovery_codes"))
    response = client.post(reverse("accounts:two_factor_recovery_codes"), {"new": "1"})
    page = client.get(response["Location"]).content.decode()
    new = re.findall(r"<code>([a-z2-7-]{19})</code>", page)
    assert len(new) == 10 and not set(new) & set(old)
    assert StaticToken.objects.filter(device__user=hanna).count() == 10


# --- The way back in ---------------------------------------------------------------------------


def test_staff_2fa_reset_removes_every_factor_and_the_next_login_sets_up_a_new_one(
    client: Client, hanna: User
) -> None:
    password_login(client, hanna)
    enrol(client, hanna)
    out = StringIO()
    call_command("staff_2fa_reset", "hanna", stdout=out)

    assert "2 second factors of hanna removed" in out.getvalue()
    assert not TOTPDevice.objects.filter(user=hanna).exists()
    assert not StaticToken.objects.filter(device__user=hanna).exists()
    entry = AuditEntry.objects.get(action="twofactor.reset")
    assert entry.actor_name.startswith("cli:") and entry.details == {"removed": 2}
    # The session that had passed no longer counts.
    response = client.get(reverse("staff:dashboard"))
    assert response["Location"].startswith(TWO_FACTOR)
    assert client.get(response["Location"])["Location"].startswith(
        reverse("accounts:two_factor_setup")
    )


def test_staff_2fa_reset_names_an_unknown_user(db: None) -> None:
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="no staff user nobody"):
        call_command("staff_2fa_reset", "nobody")
