"""The staff pages: access control, every form's happy and unhappy path, and German rendering."""

from __future__ import annotations

import re

import pytest
from django.http import HttpResponse
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from django.utils.html import strip_tags

from accounts.models import AuditEntry, Customer, User
from mailboxes.models import MIB, Domain, Mailbox, MailServer, Plan
from mailboxes.passwords import verify_password
from mailboxes.plan_changes import plan_change_request
from mailboxes.services import mailbox_suspend
from tests.factories import (
    PASSWORD,
    make_customer,
    make_domain,
    make_mailbox,
    make_plan,
    make_server,
)

pytestmark = pytest.mark.django_db

IP = "203.0.113.7"


@pytest.fixture
def server() -> MailServer:
    return make_server()


@pytest.fixture
def staff(client: Client) -> User:
    user = User.objects.create_user("hanna", password="Staff-Pass-2041", is_staff=True)
    client.force_login(user)
    return user


@pytest.fixture
def customer(server: MailServer) -> Customer:
    return make_customer("Bäckerei Müller")


@pytest.fixture
def domain(customer: Customer) -> Domain:
    return make_domain(customer, "baeckerei.example")


@pytest.fixture
def plan() -> Plan:
    return make_plan(protocol="imap", name="IMAP Standard")


@pytest.fixture
def mailbox(domain: Domain, plan: Plan) -> Mailbox:
    return make_mailbox("anna", domain=domain, plan=plan)


def staff_urls(customer: Customer, mailbox: Mailbox) -> list[str]:
    """Every staff URL, with real ids so a 404 cannot come from a missing object."""
    plan_request = plan_change_request(
        mailbox=mailbox, plan=make_plan(protocol="imap", name="Bigger"), actor="test"
    )
    return [
        reverse("staff:dashboard"),
        reverse("staff:customer_create"),
        reverse("staff:customer_detail", args=[customer.pk]),
        reverse("staff:domain_create", args=[customer.pk]),
        reverse("staff:mailbox_create", args=[customer.pk]),
        reverse("staff:mailbox_detail", args=[mailbox.pk]),
        reverse("staff:mailbox_password", args=[mailbox.pk]),
        reverse("staff:mailbox_quota", args=[mailbox.pk]),
        reverse("staff:mailbox_plan", args=[mailbox.pk]),
        reverse("staff:mailbox_suspend", args=[mailbox.pk]),
        reverse("staff:mailbox_reactivate", args=[mailbox.pk]),
        reverse("staff:mailbox_delete", args=[mailbox.pk]),
        reverse("staff:mailbox_refresh", args=[mailbox.pk]),
        reverse("staff:customer_user_create", args=[customer.pk]),
        reverse("staff:plan_request_approve", args=[plan_request.pk]),
        reverse("staff:plan_request_decline", args=[plan_request.pk]),
        reverse("staff:audit_log"),
    ]


def messages_text(response: HttpResponse) -> str:
    return " ".join(str(m) for m in response.context["messages"])


# --- Access ---------------------------------------------------------------------------------


def test_anonymous_is_sent_to_login_from_every_staff_url(
    client: Client, customer: Customer, mailbox: Mailbox
) -> None:
    for url in staff_urls(customer, mailbox):
        for method in (client.get, client.post):
            response = method(url)
            assert response.status_code == 302, url
            assert response["Location"].startswith(reverse("accounts:login") + "?next="), url
    assert Mailbox.objects.filter(pk=mailbox.pk, status="active").exists()


def test_non_staff_user_gets_404_on_every_staff_url(
    client: Client, customer: Customer, mailbox: Mailbox
) -> None:
    client.force_login(User.objects.create_user("kunde", password="x", customer=customer))
    for url in staff_urls(customer, mailbox):
        assert client.get(url).status_code == 404, url
        assert client.post(url).status_code == 404, url
    assert Mailbox.objects.filter(pk=mailbox.pk, status="active").exists()


def test_home_redirects_staff_to_the_dashboard(client: Client, staff: User) -> None:
    response = client.get(reverse("home"))
    assert response.status_code == 302
    assert response["Location"] == reverse("staff:dashboard")


def test_home_tells_other_users_there_is_nothing_yet(client: Client) -> None:
    client.force_login(User.objects.create_user("kunde", password="x"))
    response = client.get(reverse("home"))
    assert response.status_code == 200
    assert "Nothing here yet" in response.content.decode()


def test_login_page_renders_and_logs_staff_in(client: Client) -> None:
    User.objects.create_user("hanna", password="Staff-Pass-2041", is_staff=True)
    assert client.get(reverse("accounts:login")).status_code == 200
    response = client.post(
        reverse("accounts:login"), {"username": "hanna", "password": "Staff-Pass-2041"}
    )
    assert response.status_code == 302
    assert client.get(reverse("home"))["Location"] == reverse("staff:dashboard")


def test_post_only_staff_urls_refuse_get(client: Client, staff: User, mailbox: Mailbox) -> None:
    assert client.get(reverse("staff:mailbox_suspend", args=[mailbox.pk])).status_code == 405


# --- Dashboard and customers ----------------------------------------------------------------


def test_dashboard_counts_mailboxes_and_shows_servers(
    client: Client, staff: User, mailbox: Mailbox
) -> None:
    response = client.get(reverse("staff:dashboard"))
    assert response.status_code == 200
    html = response.content.decode()
    assert response.context["overview"].total.mailboxes == 1
    assert "Mail servers" in html
    assert mailbox.mail_server.name in html
    assert reverse("staff:customer_list") in html


def test_staff_can_create_a_customer(client: Client, staff: User) -> None:
    response = client.post(
        reverse("staff:customer_create"),
        {"name": "Acme GmbH", "contact_email": "it@acme.example", "language": "de"},
        REMOTE_ADDR=IP,
    )
    customer = Customer.objects.get(name="Acme GmbH")
    assert response.status_code == 302
    assert response["Location"] == reverse("staff:customer_detail", args=[customer.pk])
    assert (customer.contact_email, customer.language) == ("it@acme.example", "de")
    entry = AuditEntry.objects.get(action="customer.create", target_id=customer.pk)
    assert (entry.actor, entry.ip_address) == (staff, IP)


def test_customer_form_error_keeps_what_was_typed(client: Client, staff: User) -> None:
    response = client.post(
        reverse("staff:customer_create"),
        {"name": "Acme GmbH", "contact_email": "not-an-address", "language": "de"},
    )
    assert response.status_code == 400
    assert response.context["form"].errors["contact_email"]
    html = response.content.decode()
    assert 'value="Acme GmbH"' in html
    assert 'value="not-an-address"' in html
    assert not Customer.objects.exists()


def test_customer_page_shows_its_domains_and_mailboxes_only(
    client: Client, staff: User, customer: Customer, mailbox: Mailbox
) -> None:
    other = make_mailbox("bert", domain=make_domain(make_customer("Other AG"), "other.example"))
    response = client.get(reverse("staff:customer_detail", args=[customer.pk]))
    html = response.content.decode()
    assert "baeckerei.example" in html
    assert "anna@baeckerei.example" in html
    assert other.address not in html
    assert "other.example" not in html


def test_unknown_customer_is_404(client: Client, staff: User) -> None:
    assert client.get(reverse("staff:customer_detail", args=[987654])).status_code == 404


# --- Domains --------------------------------------------------------------------------------


def test_staff_can_add_an_idn_domain_stored_as_punycode_and_shown_as_unicode(
    client: Client, staff: User, customer: Customer, server: MailServer
) -> None:
    response = client.post(
        reverse("staff:domain_create", args=[customer.pk]),
        {"name": "Bücher.example", "mail_server": server.pk},
        REMOTE_ADDR=IP,
    )
    assert response.status_code == 302
    domain = Domain.objects.get(customer=customer)
    assert (domain.name, domain.mail_server) == ("xn--bcher-kva.example", server)
    page = client.get(response["Location"])
    html = page.content.decode()
    assert "bücher.example" in html
    assert "Domain bücher.example added." in messages_text(page)
    entry = AuditEntry.objects.get(action="domain.create")
    assert (entry.actor, entry.ip_address) == (staff, IP)


def test_domain_without_a_chosen_server_goes_to_an_active_one(
    client: Client, staff: User, customer: Customer, server: MailServer
) -> None:
    client.post(reverse("staff:domain_create", args=[customer.pk]), {"name": "auto.example"})
    assert Domain.objects.get(name="auto.example").mail_server == server


def test_duplicate_domain_shows_the_error_and_keeps_the_input(
    client: Client, staff: User, customer: Customer, domain: Domain
) -> None:
    response = client.post(
        reverse("staff:domain_create", args=[customer.pk]), {"name": "baeckerei.example"}
    )
    assert response.status_code == 400
    assert "already exists" in str(response.context["domain_form"].errors["name"])
    assert 'value="baeckerei.example"' in response.content.decode()
    assert Domain.objects.count() == 1


def test_invalid_domain_name_is_a_400(client: Client, staff: User, customer: Customer) -> None:
    response = client.post(reverse("staff:domain_create", args=[customer.pk]), {"name": "nodot"})
    assert response.status_code == 400
    assert "not a valid domain name" in str(response.context["domain_form"].errors["name"])


# --- Creating mailboxes ---------------------------------------------------------------------


def mailbox_post(domain: Domain, plan: Plan, **overrides: object) -> dict[str, object]:
    data: dict[str, object] = {
        "domain": domain.pk,
        "local_part": "Bert.Meier",
        "password": PASSWORD,
        "plan": plan.pk,
        "protocol": "imap",
        "quota": "250",
    }
    data.update(overrides)
    return data


def test_staff_can_create_a_mailbox_with_quota_in_mb(
    client: Client, staff: User, customer: Customer, domain: Domain, plan: Plan
) -> None:
    response = client.post(
        reverse("staff:mailbox_create", args=[customer.pk]),
        mailbox_post(domain, plan),
        REMOTE_ADDR=IP,
    )
    mailbox = Mailbox.objects.get(address="bert.meier@baeckerei.example")
    assert response.status_code == 302
    assert response["Location"] == reverse("staff:mailbox_detail", args=[mailbox.pk])
    assert (mailbox.protocol, mailbox.plan, mailbox.quota_bytes) == ("imap", plan, 250 * MIB)
    assert verify_password(mailbox.password_hash, PASSWORD)
    entry = AuditEntry.objects.get(action="mailbox.create", target_id=mailbox.pk)
    assert (entry.actor, entry.actor_name, entry.ip_address) == (staff, "hanna", IP)
    assert entry.customer == customer
    page = client.get(response["Location"])
    assert PASSWORD not in page.content.decode()  # a chosen password is never echoed


def test_blank_quota_and_protocol_take_the_plans_defaults(
    client: Client, staff: User, customer: Customer, domain: Domain
) -> None:
    pop3 = make_plan(protocol="pop3")
    client.post(
        reverse("staff:mailbox_create", args=[customer.pk]),
        mailbox_post(domain, pop3, quota="", protocol=""),
    )
    mailbox = Mailbox.objects.get(local_part="bert.meier")
    assert (mailbox.protocol, mailbox.quota_bytes) == ("pop3", pop3.default_quota_bytes)


def test_an_empty_password_is_generated_and_shown_exactly_once(
    client: Client, staff: User, customer: Customer, domain: Domain, plan: Plan
) -> None:
    response = client.post(
        reverse("staff:mailbox_create", args=[customer.pk]),
        mailbox_post(domain, plan, password=""),
        follow=True,
    )
    mailbox = Mailbox.objects.get(local_part="bert.meier")
    shown = re.search(r'<code class="password">([A-Za-z0-9]+)</code>', response.content.decode())
    assert shown, "the generated password is shown"
    assert len(shown.group(1)) >= 16
    assert verify_password(mailbox.password_hash, shown.group(1))
    again = client.get(reverse("staff:mailbox_detail", args=[mailbox.pk]))
    assert shown.group(1) not in again.content.decode()


@pytest.mark.parametrize(
    ("overrides", "field", "text"),
    [
        ({"local_part": "Anna"}, "local_part", "already exists"),
        ({"local_part": "anna..b"}, "local_part", "not a valid mailbox name"),
        ({"local_part": "bad name!"}, "local_part", "not a valid mailbox name"),
        ({"quota": "20000"}, "quota", "allows at most 10.0\xa0GB"),
        ({"password": "short"}, "password", "at least 10 characters"),
        ({"protocol": "pop3"}, "protocol", "does not include POP3"),
    ],
)
def test_bad_mailbox_input_shows_the_error_and_keeps_what_was_typed(
    client: Client,
    staff: User,
    customer: Customer,
    domain: Domain,
    plan: Plan,
    mailbox: Mailbox,
    overrides: dict[str, str],
    field: str,
    text: str,
) -> None:
    data = mailbox_post(domain, plan, **overrides)
    response = client.post(reverse("staff:mailbox_create", args=[customer.pk]), data)
    assert response.status_code == 400
    form = response.context["mailbox_form"]
    assert text in " ".join(form.errors[field])
    html = response.content.decode()
    assert f'value="{data["local_part"]}"' in html
    assert f'value="{data["quota"]}"' in html
    assert f'<option value="{domain.pk}" selected>' in html
    assert f'<option value="{plan.pk}" selected>' in html
    assert f'value="{data["password"]}"' not in html  # passwords are never sent back
    assert Mailbox.objects.count() == 1


def test_mailbox_form_offers_only_this_customers_domains(
    client: Client, staff: User, customer: Customer, domain: Domain, plan: Plan
) -> None:
    foreign = make_domain(make_customer("Other AG"), "other.example")
    page = client.get(reverse("staff:customer_detail", args=[customer.pk]))
    assert "other.example" not in page.content.decode()
    response = client.post(
        reverse("staff:mailbox_create", args=[customer.pk]),
        mailbox_post(foreign, plan),
    )
    assert response.status_code == 400
    assert response.context["mailbox_form"].errors["domain"]
    assert not Mailbox.objects.exists()


def test_mailbox_on_an_idn_domain_is_shown_in_unicode(
    client: Client, staff: User, customer: Customer, plan: Plan
) -> None:
    idn = make_domain(customer, "bücher.example")
    response = client.post(
        reverse("staff:mailbox_create", args=[customer.pk]),
        mailbox_post(idn, plan, local_part="info"),
        follow=True,
    )
    assert Mailbox.objects.get().address == "info@xn--bcher-kva.example"
    html = response.content.decode()
    assert "info@bücher.example" in html
    # The login name, for the mail client (in parts that wrap only between them).
    assert "info@xn--bcher-kva.example" in strip_tags(html)


# --- One mailbox ----------------------------------------------------------------------------


def test_mailbox_page_shows_its_facts_and_history(
    client: Client, staff: User, mailbox: Mailbox
) -> None:
    response = client.get(reverse("staff:mailbox_detail", args=[mailbox.pk]))
    assert response.status_code == 200
    html = response.content.decode()
    assert "anna@baeckerei.example" in html
    assert "IMAP Standard" in html
    assert "100.0\xa0MB" in html
    assert "Not measured yet" in html
    assert "mailbox created" in html
    assert list(response.context["trail"]) == list(
        AuditEntry.objects.filter(target_type="mailbox", target_id=mailbox.pk)
    )


def test_mailbox_page_shows_measured_usage(client: Client, staff: User, mailbox: Mailbox) -> None:
    Mailbox.objects.filter(pk=mailbox.pk).update(
        used_bytes=25 * MIB, message_count=3, usage_checked_at=timezone.now()
    )
    html = client.get(reverse("staff:mailbox_detail", args=[mailbox.pk])).content.decode()
    assert "25.0\xa0MB of 100.0\xa0MB (25%)" in html
    assert "3 messages" in html
    assert "Not measured yet" not in html


def test_mailbox_page_says_when_the_measurement_is_stale(
    client: Client, staff: User, mailbox: Mailbox
) -> None:
    Mailbox.objects.filter(pk=mailbox.pk).update(
        used_bytes=25 * MIB,
        usage_checked_at=timezone.now(),
        usage_state=Mailbox.UsageState.STALE,
        usage_error="connection refused",
    )
    html = client.get(reverse("staff:mailbox_detail", args=[mailbox.pk])).content.decode()
    assert ">stale<" in html
    assert "connection refused" in html


def test_staff_can_suspend_and_reactivate(client: Client, staff: User, mailbox: Mailbox) -> None:
    url = reverse("staff:mailbox_detail", args=[mailbox.pk])
    response = client.post(reverse("staff:mailbox_suspend", args=[mailbox.pk]), REMOTE_ADDR=IP)
    assert response["Location"] == url
    mailbox.refresh_from_db()
    assert mailbox.status == Mailbox.Status.SUSPENDED
    assert "Reactivate mailbox" in client.get(url).content.decode()

    client.post(reverse("staff:mailbox_reactivate", args=[mailbox.pk]))
    mailbox.refresh_from_db()
    assert mailbox.status == Mailbox.Status.ACTIVE
    actions = list(
        AuditEntry.objects.filter(target_id=mailbox.pk, actor=staff).values_list(
            "action", "ip_address"
        )
    )
    assert actions == [("mailbox.reactivate", "127.0.0.1"), ("mailbox.suspend", IP)]


def test_suspending_twice_shows_the_error(client: Client, staff: User, mailbox: Mailbox) -> None:
    mailbox_suspend(mailbox=mailbox, actor="test")
    response = client.post(reverse("staff:mailbox_suspend", args=[mailbox.pk]))
    assert response.status_code == 400
    assert "already suspended" in messages_text(response)


def test_delete_asks_first_then_deletes(
    client: Client, staff: User, customer: Customer, mailbox: Mailbox
) -> None:
    url = reverse("staff:mailbox_delete", args=[mailbox.pk])
    confirm = client.get(url)
    assert confirm.status_code == 200
    assert "This cannot be undone" in confirm.content.decode()
    assert Mailbox.objects.filter(pk=mailbox.pk).exists()

    response = client.post(url, REMOTE_ADDR=IP)
    assert response["Location"] == reverse("staff:customer_detail", args=[customer.pk])
    assert not Mailbox.objects.filter(pk=mailbox.pk).exists()
    entry = AuditEntry.objects.get(action="mailbox.delete", target_id=mailbox.pk)
    assert (entry.actor, entry.ip_address) == (staff, IP)
    assert client.get(reverse("staff:mailbox_detail", args=[mailbox.pk])).status_code == 404


def test_staff_can_set_a_chosen_password(client: Client, staff: User, mailbox: Mailbox) -> None:
    response = client.post(
        reverse("staff:mailbox_password", args=[mailbox.pk]),
        {"password": "Quiet-Heron-7712"},
        REMOTE_ADDR=IP,
    )
    assert response.status_code == 302
    mailbox.refresh_from_db()
    assert verify_password(mailbox.password_hash, "Quiet-Heron-7712")
    entry = AuditEntry.objects.get(action="mailbox.password")
    assert (entry.actor, entry.ip_address) == (staff, IP)


def test_an_empty_new_password_is_generated_and_shown(
    client: Client, staff: User, mailbox: Mailbox
) -> None:
    response = client.post(
        reverse("staff:mailbox_password", args=[mailbox.pk]), {"password": ""}, follow=True
    )
    shown = re.search(r'<code class="password">([A-Za-z0-9]+)</code>', response.content.decode())
    assert shown
    mailbox.refresh_from_db()
    assert verify_password(mailbox.password_hash, shown.group(1))
    assert not verify_password(mailbox.password_hash, PASSWORD)


def test_a_weak_password_is_refused(client: Client, staff: User, mailbox: Mailbox) -> None:
    response = client.post(
        reverse("staff:mailbox_password", args=[mailbox.pk]), {"password": "anna12345678"}
    )
    assert response.status_code == 400
    assert "must not contain the mailbox name" in " ".join(
        response.context["password_form"].errors["password"]
    )
    mailbox.refresh_from_db()
    assert verify_password(mailbox.password_hash, PASSWORD)


def test_staff_can_change_the_quota(client: Client, staff: User, mailbox: Mailbox) -> None:
    response = client.post(
        reverse("staff:mailbox_quota", args=[mailbox.pk]), {"quota": "512"}, REMOTE_ADDR=IP
    )
    assert response.status_code == 302
    mailbox.refresh_from_db()
    assert mailbox.quota_bytes == 512 * MIB
    entry = AuditEntry.objects.get(action="mailbox.quota")
    assert (entry.actor, entry.ip_address, entry.details) == (
        staff,
        IP,
        {"old": 100 * MIB, "new": 512 * MIB},
    )


@pytest.mark.parametrize(
    ("typed", "expected"), [("5G", 5 * 1024 * MIB), ("1.5 GB", 1536 * MIB), ("300m", 300 * MIB)]
)
def test_a_quota_can_be_typed_with_its_unit(
    client: Client, staff: User, mailbox: Mailbox, typed: str, expected: int
) -> None:
    response = client.post(reverse("staff:mailbox_quota", args=[mailbox.pk]), {"quota": typed})
    assert response.status_code == 302
    mailbox.refresh_from_db()
    assert mailbox.quota_bytes == expected
    page = client.get(reverse("staff:mailbox_detail", args=[mailbox.pk])).content.decode()
    assert re.search(r'<input[^>]*name="quota"[^>]*value="(5G|1536M|300M)"', page)


def test_a_quota_that_is_not_a_size_is_refused_with_an_example(
    client: Client, staff: User, mailbox: Mailbox
) -> None:
    response = client.post(reverse("staff:mailbox_quota", args=[mailbox.pk]), {"quota": "5X"})
    assert response.status_code == 400
    assert "for example 500M or 1.5G" in " ".join(response.context["quota_form"].errors["quota"])
    mailbox.refresh_from_db()
    assert mailbox.quota_bytes == 100 * MIB


def test_a_quota_above_the_plan_is_refused_and_kept_in_the_form(
    client: Client, staff: User, mailbox: Mailbox
) -> None:
    response = client.post(reverse("staff:mailbox_quota", args=[mailbox.pk]), {"quota": "99999"})
    assert response.status_code == 400
    assert "allows at most" in " ".join(response.context["quota_form"].errors["quota"])
    field = re.search(r'<input[^>]*name="quota"[^>]*>', response.content.decode())
    assert field
    assert 'value="99999"' in field.group(0)
    assert "autofocus" in field.group(0)  # the page may be long: the browser scrolls to it
    mailbox.refresh_from_db()
    assert mailbox.quota_bytes == 100 * MIB


def test_staff_can_move_a_mailbox_to_another_plan_and_protocol(
    client: Client, staff: User, mailbox: Mailbox
) -> None:
    pop3 = make_plan(protocol="pop3")
    response = client.post(
        reverse("staff:mailbox_plan", args=[mailbox.pk]), {"plan": pop3.pk, "protocol": ""}
    )
    assert response.status_code == 302
    mailbox.refresh_from_db()
    assert (mailbox.plan, mailbox.protocol, mailbox.quota_bytes) == (pop3, "pop3", 100 * MIB)
    assert AuditEntry.objects.filter(action="mailbox.plan", actor=staff).exists()


def test_a_protocol_the_plan_lacks_is_refused(
    client: Client, staff: User, mailbox: Mailbox, plan: Plan
) -> None:
    pop3 = make_plan(protocol="pop3")
    response = client.post(
        reverse("staff:mailbox_plan", args=[mailbox.pk]), {"plan": pop3.pk, "protocol": "imap"}
    )
    assert response.status_code == 400
    assert "does not include IMAP" in " ".join(response.context["plan_form"].errors["protocol"])
    mailbox.refresh_from_db()
    assert mailbox.plan == plan


def test_unknown_mailbox_is_404(client: Client, staff: User) -> None:
    assert client.get(reverse("staff:mailbox_detail", args=[987654])).status_code == 404
    assert client.post(reverse("staff:mailbox_suspend", args=[987654])).status_code == 404


# --- Audit log ------------------------------------------------------------------------------


def test_audit_log_lists_recent_entries(client: Client, staff: User, mailbox: Mailbox) -> None:
    client.post(reverse("staff:mailbox_suspend", args=[mailbox.pk]), REMOTE_ADDR=IP)
    response = client.get(reverse("staff:audit_log"))
    assert response.status_code == 200
    html = response.content.decode()
    assert "mailbox suspended" in html
    assert "customer created" in html
    assert IP in html
    assert "Bäckerei Müller" in html


def test_audit_log_pages_through_older_entries(client: Client, staff: User) -> None:
    from accounts.audit import record

    for i in range(55):
        record("customer.note", staff, actor="test", note=i)
    first = client.get(reverse("staff:audit_log")).content.decode()
    assert "Page 1 of 2" in first and 'href="?page=2"' in first
    second = client.get(reverse("staff:audit_log"), {"page": 2}).content.decode()
    assert "Page 2 of 2" in second and 'href="?page=1"' in second


# --- Languages ------------------------------------------------------------------------------


def test_pages_are_german_for_a_german_browser(
    client: Client, staff: User, mailbox: Mailbox
) -> None:
    html = client.get(reverse("staff:dashboard"), HTTP_ACCEPT_LANGUAGE="de").content.decode()
    assert '<html lang="de">' in html
    assert "Kunden" in html
    assert "Neuer Kunde" in html
    detail = client.get(
        reverse("staff:mailbox_detail", args=[mailbox.pk]), HTTP_ACCEPT_LANGUAGE="de"
    )
    assert "Postfach sperren" in detail.content.decode()


def test_service_errors_are_german_too(
    client: Client, staff: User, customer: Customer, domain: Domain, plan: Plan, mailbox: Mailbox
) -> None:
    response = client.post(
        reverse("staff:mailbox_create", args=[customer.pk]),
        mailbox_post(domain, plan, local_part="anna"),
        HTTP_ACCEPT_LANGUAGE="de",
    )
    assert response.status_code == 400
    assert "existiert bereits" in response.content.decode()


def test_language_switcher_changes_the_language(client: Client, staff: User) -> None:
    dashboard = reverse("staff:dashboard")
    response = client.post(reverse("set_language"), {"language": "de", "next": dashboard})
    assert response["Location"] == dashboard
    assert "Neuer Kunde" in client.get(dashboard).content.decode()
    client.post(reverse("set_language"), {"language": "en", "next": dashboard})
    assert "New customer" in client.get(dashboard).content.decode()


def test_login_page_is_german_for_a_german_browser(client: Client) -> None:
    html = client.get(reverse("accounts:login"), HTTP_ACCEPT_LANGUAGE="de").content.decode()
    assert "Anmelden" in html
