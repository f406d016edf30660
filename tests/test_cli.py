"""The provisioning commands: a hoster's scripts create and change everything through them."""

from __future__ import annotations

import getpass
import json
import os
import shlex
import subprocess
import sys
from collections.abc import Iterator
from io import StringIO
from urllib.parse import quote

import pytest
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.utils import translation

from accounts.models import AuditEntry, Customer
from mailboxes.models import GIB, MIB, Domain, Mailbox, MailServer, Plan
from mailboxes.passwords import verify_password
from mailboxes.services import mailbox_change_plan, plan_create
from tests.factories import PASSWORD, make_customer, make_domain, make_mailbox, make_plan

ACTOR = f"cli:{getpass.getuser()}"
NEW_PASSWORD = "Quiet-Heron-7315"


@pytest.fixture(autouse=True)
def english() -> Iterator[None]:
    """The messages are asserted in English; an earlier test's request may have left German on."""
    with translation.override("en"):
        yield


def run(command_line: str, stdin: str = "") -> str:
    """Run ``manage.py <command_line>`` in this process and return what it printed."""
    out = StringIO()
    call_command(*shlex.split(command_line), stdin=StringIO(stdin), stdout=out, stderr=StringIO())
    return out.getvalue()


def cli_audit() -> list[str]:
    return list(
        AuditEntry.objects.filter(actor_name=ACTOR).order_by("id").values_list("action", flat=True)
    )


@pytest.fixture
def server(db: None) -> MailServer:
    return MailServer.objects.create(name="mx1")


@pytest.fixture
def domain(server: MailServer) -> Domain:
    return make_domain(name="example.com")


@pytest.fixture
def plan(db: None) -> Plan:
    return make_plan(name="IMAP Pro", default_quota_bytes=GIB, max_quota_bytes=10 * GIB)


# --- plan_create ----------------------------------------------------------------------------


def test_plan_create_reads_human_sizes_and_is_audited(db: None) -> None:
    out = run("plan_create 'IMAP 10G' --imap --quota 1G --max-quota 10G --price 4.90")

    plan = Plan.objects.get(name="IMAP 10G")
    assert plan.protocols == ["imap"]
    assert (plan.default_quota_bytes, plan.max_quota_bytes) == (GIB, 10 * GIB)
    assert str(plan.monthly_price) == "4.90"
    assert plan.backup_enabled
    assert "Created plan “IMAP 10G”: IMAP, quota 1.0\xa0GB (at most 10.0\xa0GB)" in out
    assert cli_audit() == ["plan.create"]


def test_plan_without_protocol_flags_allows_both_and_no_backup_turns_backups_off(db: None) -> None:
    data = json.loads(run("plan_create Cheap --quota 500M --no-backup --json"))

    plan = Plan.objects.get(pk=data["id"])
    assert plan.protocols == ["imap", "pop3"]
    assert plan.max_quota_bytes == plan.default_quota_bytes == 500 * MIB
    assert not plan.backup_enabled
    assert data["protocols"] == ["imap", "pop3"]


def test_plan_create_refuses_a_default_quota_above_the_largest(db: None) -> None:
    with pytest.raises(CommandError, match=r"default quota \(2.0\xa0GB\) is larger"):
        run("plan_create Odd --pop3 --quota 2G --max-quota 1G")
    assert not Plan.objects.exists()


def test_plan_create_refuses_a_duplicate_name(plan: Plan) -> None:
    with pytest.raises(CommandError, match="The plan “IMAP Pro” already exists"):
        run("plan_create 'IMAP Pro' --quota 1G")


def test_plan_create_rejects_a_size_it_cannot_read(db: None) -> None:
    with pytest.raises(CommandError, match="“2X” is not a size"):
        run("plan_create Odd --quota 2X")


def test_plan_create_checks_price_and_currency(db: None) -> None:
    with pytest.raises(CommandError) as exc:
        run("plan_create Odd --quota 1G --price -1 --currency euro")
    assert str(exc.value).splitlines() == [
        "The price must be zero or more.",
        "Give the currency as a three-letter code such as EUR.",
    ]
    with pytest.raises(CommandError, match="no more than 2 decimal places"):
        run("plan_create Odd --quota 1G --price 1.999")


def test_the_plan_service_refuses_a_plan_without_protocols(db: None) -> None:
    with pytest.raises(ValidationError) as exc:
        plan_create(
            name="None",
            allows_imap=False,
            allows_pop3=False,
            default_quota_bytes=GIB,
            max_quota_bytes=GIB,
            actor="test",
        )
    assert exc.value.message_dict == {"allows_imap": ["A plan must allow IMAP, POP3 or both."]}


# --- mailserver_save ------------------------------------------------------------------------


def test_mailserver_save_creates_then_updates_only_what_is_given(db: None) -> None:
    run("mailserver_save mx2 --host mx2.example.net --imap-port 1143")
    run("mailserver_save mx2 --pop3-port 1110 --no-active")

    server = MailServer.objects.get(name="mx2")
    assert (server.hostname, server.imap_port, server.pop3_port) == ("mx2.example.net", 1143, 1110)
    assert server.master_password_env == "POSTAMT_MASTER_PASSWORD"
    assert not server.active
    update = AuditEntry.objects.get(action="mailserver.update")
    assert update.details == {
        "old": {"pop3_port": 110, "active": True},
        "new": {"pop3_port": 1110, "active": False},
    }
    assert cli_audit() == ["mailserver.create", "mailserver.update"]


def test_mailserver_save_sets_and_removes_a_capacity(db: None) -> None:
    run("mailserver_save mx2 --capacity 2T")
    assert MailServer.objects.get(name="mx2").capacity_bytes == 2 * 1024**4
    run("mailserver_save mx2 --capacity 0")
    assert MailServer.objects.get(name="mx2").capacity_bytes is None
    update = AuditEntry.objects.get(action="mailserver.update")
    assert update.details == {
        "old": {"capacity_bytes": 2 * 1024**4},
        "new": {"capacity_bytes": None},
    }
    with pytest.raises(CommandError, match="not a size"):
        run("mailserver_save mx2 --capacity lots")


def test_mailserver_save_run_again_unchanged_writes_no_audit_entry(db: None) -> None:
    run("mailserver_save mx2 --host 10.0.0.2")
    run("mailserver_save mx2 --host 10.0.0.2")

    assert cli_audit() == ["mailserver.create"]


def test_mailserver_save_warns_when_the_master_password_variable_is_unset(db: None) -> None:
    err = StringIO()
    variable = "CLI_TEST_UNSET_MASTER_PASSWORD"
    call_command(
        "mailserver_save", "mx2", "--master-password-env", variable, stdout=StringIO(), stderr=err
    )

    assert f"Warning: {variable} is not set here" in err.getvalue()
    assert MailServer.objects.get(name="mx2").master_password_env == variable


def test_mailserver_save_sets_the_tls_ports(db: None) -> None:
    run("mailserver_save mx2 --imaps-port 10993 --pop3s-port 10995")
    server = MailServer.objects.get(name="mx2")
    assert (server.imap_port, server.imaps_port, server.pop3s_port) == (143, 10993, 10995)
    with pytest.raises(CommandError, match="The POP3S port must be between 1 and 65535."):
        run("mailserver_save mx2 --pop3s-port 0")


def test_mailserver_save_lists_every_problem_on_its_own_line(db: None) -> None:
    with pytest.raises(CommandError) as exc:
        run("mailserver_save 'mx 2' --imap-port 70000 --master-password-env A-B")

    assert str(exc.value).splitlines() == [
        "“mx 2” is not a valid server name: use letters, digits, - and _.",
        "The IMAP port must be between 1 and 65535.",
        "“A-B” is not an environment variable name.",
    ]
    assert not MailServer.objects.exists()


# --- customer_create ------------------------------------------------------------------------


def test_customer_create_prints_the_new_id(db: None) -> None:
    out = run("customer_create --name 'Acme GmbH' --email it@acme.example --language de")

    customer = Customer.objects.get()
    assert out == f"{customer.pk}\n"
    assert customer.name == "Acme GmbH"
    assert customer.contact_email == "it@acme.example"
    assert customer.language == "de"
    assert cli_audit() == ["customer.create"]


def test_customer_create_json_describes_the_customer(db: None) -> None:
    data = json.loads(run("customer_create --name Acme --email a@acme.example --json"))

    assert data == {
        "id": Customer.objects.get().pk,
        "name": "Acme",
        "contact_email": "a@acme.example",
        "language": "en",
    }


def test_customer_create_reports_each_bad_field(db: None) -> None:
    with pytest.raises(CommandError) as exc:
        run("customer_create --name ' ' --email not-an-address")

    assert str(exc.value).splitlines() == [
        "Enter the customer's name.",
        "Enter a valid contact email address.",
    ]
    assert not Customer.objects.exists()


def test_customer_create_refuses_an_unknown_language(db: None) -> None:
    with pytest.raises(CommandError, match="invalid choice: 'fr'"):
        run("customer_create --name Acme --email a@acme.example --language fr")


# --- domain_create --------------------------------------------------------------------------


def test_domain_create_accepts_idn_and_prints_both_forms(server: MailServer) -> None:
    customer = make_customer()

    out = run(f"domain_create Müller.example --customer {customer.pk}")

    domain = Domain.objects.get()
    assert domain.name == "xn--mller-kva.example"
    assert domain.customer == customer
    assert domain.mail_server == server
    assert "xn--mller-kva.example (müller.example)" in out
    assert cli_audit() == ["domain.create"]


def test_domain_create_finds_the_customer_by_contact_email_and_the_server_by_name(
    server: MailServer,
) -> None:
    other = MailServer.objects.create(name="mx2")
    customer = make_customer()

    email = customer.contact_email.upper()
    data = json.loads(run(f"domain_create example.net --customer {email} --server mx2 --json"))

    assert data["customer_id"] == customer.pk
    assert data["server"] == "mx2"
    assert Domain.objects.get(name="example.net").mail_server == other


@pytest.mark.parametrize(
    ("customer", "message"),
    [
        ("987654", "There is no customer with the id 987654."),
        ("nobody@example.org", "There is no customer with the contact email nobody@example.org."),
    ],
)
def test_domain_create_names_an_unknown_customer(
    server: MailServer, customer: str, message: str
) -> None:
    with pytest.raises(CommandError) as exc:
        run(f"domain_create example.net --customer {customer}")
    assert str(exc.value) == message


def test_domain_create_asks_for_an_id_when_an_email_names_two_customers(
    server: MailServer,
) -> None:
    first = make_customer()
    second = make_customer()
    Customer.objects.filter(pk=second.pk).update(contact_email=first.contact_email)

    with pytest.raises(CommandError, match=f"give an id: {first.pk}, {second.pk}"):
        run(f"domain_create example.net --customer {first.contact_email}")


def test_domain_create_names_an_unknown_server(server: MailServer) -> None:
    customer = make_customer()
    with pytest.raises(CommandError, match="There is no mail server “mx9”. Servers: mx1."):
        run(f"domain_create example.net --customer {customer.pk} --server mx9")


def test_domain_create_refuses_a_duplicate(domain: Domain) -> None:
    with pytest.raises(CommandError, match="The domain “EXAMPLE.com” already exists."):
        run(f"domain_create EXAMPLE.com --customer {domain.customer_id}")


# --- mailbox_create -------------------------------------------------------------------------


def test_mailbox_create_prints_a_generated_password_that_works(domain: Domain, plan: Plan) -> None:
    out = run("mailbox_create Anna@example.com --plan 'IMAP Pro'")

    mailbox = Mailbox.objects.get()
    assert mailbox.address == "anna@example.com"
    assert (mailbox.protocol, mailbox.quota_bytes) == ("imap", GIB)
    summary, password_line = out.splitlines()
    assert summary == "Created mailbox anna@example.com: IMAP, 1.0\xa0GB, plan “IMAP Pro”, active."
    password = password_line.removeprefix("Password (shown only now): ")
    assert verify_password(mailbox.password_hash, password)
    entry = AuditEntry.objects.get(action="mailbox.create")
    assert entry.actor_name == ACTOR
    assert entry.customer == domain.customer


def test_mailbox_create_reads_the_password_from_stdin_and_does_not_print_it(
    domain: Domain, plan: Plan
) -> None:
    out = run(
        "mailbox_create anna@example.com --plan 'IMAP Pro' --quota 1.5G --password-stdin",
        stdin=f"{NEW_PASSWORD}\nignored second line\n",
    )

    mailbox = Mailbox.objects.get()
    assert verify_password(mailbox.password_hash, NEW_PASSWORD)
    assert mailbox.quota_bytes == 3 * GIB // 2
    assert NEW_PASSWORD not in out
    assert "Password" not in out


def test_mailbox_create_json_includes_a_generated_password(domain: Domain, plan: Plan) -> None:
    data = json.loads(run("mailbox_create anna@example.com --plan 'IMAP Pro' --json"))

    mailbox = Mailbox.objects.get()
    assert data["address"] == "anna@example.com"
    assert data["id"] == mailbox.pk
    assert verify_password(mailbox.password_hash, data["password"])


def test_mailbox_create_on_an_idn_domain_shows_the_login(server: MailServer, plan: Plan) -> None:
    make_domain(name="müller.example")

    out = run("mailbox_create anna@MÜLLER.example --plan 'IMAP Pro' --password-stdin", NEW_PASSWORD)

    assert Mailbox.objects.get().address == "anna@xn--mller-kva.example"
    assert "anna@müller.example (login anna@xn--mller-kva.example)" in out


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ("anna@nowhere.example", "There is no domain “nowhere.example”"),
        ("anna", "“anna” is not a mailbox address such as anna@example.com."),
        ("anna@", "“anna@” is not a mailbox address"),
        ("'an na@example.com'", "“an na” is not a valid mailbox name"),
        ("anna@example.com --quota 11G", "“IMAP Pro” allows at most 10.0\xa0GB"),
        ("anna@example.com --quota lots", "“lots” is not a size"),
        ("anna@example.com --protocol pop3", "“IMAP Pro” does not include POP3."),
        ("anna@example.com --protocol smtp", "invalid choice: 'smtp'"),
    ],
)
def test_mailbox_create_refuses_bad_input(
    domain: Domain, plan: Plan, arguments: str, message: str
) -> None:
    with pytest.raises(CommandError, match=message):
        run(f"mailbox_create {arguments} --plan 'IMAP Pro'")
    assert not Mailbox.objects.exists()


def test_mailbox_create_names_an_unknown_plan_and_lists_the_plans(
    domain: Domain, plan: Plan
) -> None:
    with pytest.raises(CommandError, match="There is no plan “Gold”. Plans: IMAP Pro."):
        run("mailbox_create anna@example.com --plan Gold")


def test_mailbox_create_refuses_a_duplicate(domain: Domain, plan: Plan) -> None:
    make_mailbox("anna", domain=domain, plan=plan)

    with pytest.raises(CommandError, match="The mailbox anna@example.com already exists."):
        run("mailbox_create ANNA@example.com --plan 'IMAP Pro'")


def test_mailbox_create_lists_every_password_problem(domain: Domain, plan: Plan) -> None:
    with pytest.raises(CommandError) as exc:
        run("mailbox_create anna@example.com --plan 'IMAP Pro' --password-stdin", "anna 1\n")

    assert str(exc.value).splitlines() == [
        "The password must have at least 10 characters.",
        "The password must not contain spaces or control characters.",
        "The password must not contain the mailbox name.",
    ]


def test_mailbox_create_with_an_empty_stdin_says_so(domain: Domain, plan: Plan) -> None:
    with pytest.raises(CommandError, match="no password on standard input"):
        run("mailbox_create anna@example.com --plan 'IMAP Pro' --password-stdin")


@pytest.mark.parametrize("command", ["mailbox_create", "mailbox_set"])
@pytest.mark.parametrize("option", [f"--password {PASSWORD}", f"--password={PASSWORD}"])
def test_a_password_argument_is_refused_without_echoing_it(
    domain: Domain, plan: Plan, command: str, option: str
) -> None:
    with pytest.raises(CommandError, match="--password is not accepted") as exc:
        run(f"{command} anna@example.com --plan 'IMAP Pro' {option}")
    assert PASSWORD not in str(exc.value)
    assert not Mailbox.objects.exists()


# --- mailbox_set ----------------------------------------------------------------------------


@pytest.fixture
def mailbox(domain: Domain, plan: Plan) -> Mailbox:
    return make_mailbox("anna", domain=domain, plan=plan)


def test_mailbox_set_password_from_stdin(mailbox: Mailbox) -> None:
    out = run("mailbox_set anna@example.com --password-stdin", NEW_PASSWORD + "\n")

    mailbox.refresh_from_db()
    assert verify_password(mailbox.password_hash, NEW_PASSWORD)
    assert NEW_PASSWORD not in out
    assert cli_audit() == ["mailbox.password"]


def test_mailbox_set_generate_password_prints_it_once(mailbox: Mailbox) -> None:
    out = run("mailbox_set anna@example.com --generate-password")

    password = out.splitlines()[-1].removeprefix("Password (shown only now): ")
    mailbox.refresh_from_db()
    assert verify_password(mailbox.password_hash, password)
    assert not verify_password(mailbox.password_hash, PASSWORD)


def test_mailbox_set_moves_to_a_plan_then_sets_a_quota_it_allows(mailbox: Mailbox) -> None:
    make_plan(name="Both", allows_pop3=True, max_quota_bytes=20 * GIB)

    out = run("mailbox_set anna@example.com --plan Both --protocol pop3 --quota 15G")

    mailbox.refresh_from_db()
    assert (mailbox.plan.name, mailbox.protocol, mailbox.quota_bytes) == ("Both", "pop3", 15 * GIB)
    assert out == "Changed mailbox anna@example.com: POP3, 15.0\xa0GB, plan “Both”, active.\n"
    assert cli_audit() == ["mailbox.plan", "mailbox.quota"]


def test_mailbox_set_suspends_and_reactivates(mailbox: Mailbox) -> None:
    run("mailbox_set anna@example.com --suspend")
    mailbox.refresh_from_db()
    assert mailbox.status == Mailbox.Status.SUSPENDED

    run("mailbox_set anna@example.com --reactivate")
    mailbox.refresh_from_db()
    assert mailbox.status == Mailbox.Status.ACTIVE
    assert cli_audit() == ["mailbox.suspend", "mailbox.reactivate"]


def test_mailbox_set_changes_nothing_when_one_change_fails(mailbox: Mailbox) -> None:
    with pytest.raises(CommandError, match="allows at most 10.0\xa0GB"):
        run("mailbox_set anna@example.com --suspend --quota 20G")

    mailbox.refresh_from_db()
    assert mailbox.status == Mailbox.Status.ACTIVE
    assert cli_audit() == []


def test_mailbox_set_refuses_a_protocol_the_plan_lacks(mailbox: Mailbox) -> None:
    with pytest.raises(CommandError, match="The plan “IMAP Pro” does not include POP3."):
        run("mailbox_set anna@example.com --protocol pop3")


def test_mailbox_set_says_when_a_mailbox_is_already_suspended(mailbox: Mailbox) -> None:
    run("mailbox_set anna@example.com --suspend")
    with pytest.raises(CommandError, match="anna@example.com is already suspended"):
        run("mailbox_set anna@example.com --suspend")


def test_mailbox_set_without_a_change_is_a_usage_error(mailbox: Mailbox) -> None:
    with pytest.raises(CommandError, match="Nothing to change") as exc:
        run("mailbox_set anna@example.com")
    assert exc.value.returncode == 2


def test_mailbox_set_names_an_unknown_mailbox(domain: Domain) -> None:
    with pytest.raises(CommandError, match="There is no mailbox bob@example.com."):
        run("mailbox_set bob@example.com --suspend")


# --- mailbox_delete -------------------------------------------------------------------------


def test_mailbox_delete_needs_yes(mailbox: Mailbox) -> None:
    with pytest.raises(CommandError, match="add --yes to confirm") as exc:
        run("mailbox_delete anna@example.com")

    assert exc.value.returncode == 2
    assert Mailbox.objects.filter(pk=mailbox.pk).exists()


def test_mailbox_delete_removes_the_mailbox_and_is_audited(mailbox: Mailbox) -> None:
    out = run("mailbox_delete anna@example.com --yes")

    assert out == "Deleted mailbox anna@example.com.\n"
    assert not Mailbox.objects.exists()
    assert cli_audit() == ["mailbox.delete"]


# --- real processes: exit statuses ----------------------------------------------------------


def manage(command_line: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    """``python manage.py <command_line>`` in a new process, on the test database."""
    db = connection.settings_dict
    if connection.vendor != "postgresql":
        pytest.skip("a second process cannot see SQLite's in-memory test database")
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{quote(db['USER'])}:{quote(db['PASSWORD'] or '')}"
        f"@{db['HOST']}:{db['PORT']}/{db['NAME']}",
    }
    return subprocess.run(
        [sys.executable, "manage.py", *shlex.split(command_line)],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=settings.BASE_DIR,
        env=env,
        timeout=60,
    )


def test_cli_exit_statuses_success_bad_input_and_usage(transactional_db: None) -> None:
    MailServer.objects.create(name="mx1")
    make_domain(name="example.com")
    make_plan(name="IMAP Pro")

    created = manage(
        "mailbox_create anna@example.com --plan 'IMAP Pro' --password-stdin --json",
        NEW_PASSWORD + "\n",
    )
    duplicate = manage("mailbox_create anna@example.com --plan 'IMAP Pro'")
    bad_size = manage("mailbox_create bob@example.com --plan 'IMAP Pro' --quota 2X")

    assert created.returncode == 0, created.stderr
    assert json.loads(created.stdout)["address"] == "anna@example.com"
    assert verify_password(Mailbox.objects.get().password_hash, NEW_PASSWORD)
    assert AuditEntry.objects.get(action="mailbox.create").actor_name == ACTOR
    assert duplicate.returncode == 1
    assert "The mailbox anna@example.com already exists." in duplicate.stderr
    assert duplicate.stdout == ""
    assert bad_size.returncode == 2
    assert "argument --quota: “2X” is not a size" in bad_size.stderr


@pytest.mark.django_db
def test_the_demo_plans_allow_only_the_protocols_their_names_say() -> None:
    """``make run``'s seed: "IMAP Standard" refused nothing over POP3."""
    call_command("seed_demo", stdout=StringIO())
    pop3_box = Mailbox.objects.get(protocol="pop3")

    for plan in Plan.objects.all():
        for protocol in ("imap", "pop3"):
            assert plan.allows(protocol) == (protocol.upper() in plan.name), (plan, protocol)
        if not plan.allows("pop3"):
            with pytest.raises(ValidationError):
                mailbox_change_plan(mailbox=pop3_box, plan=plan, protocol="pop3", actor="t")


@pytest.mark.django_db
def test_storage_allowance_is_set_shown_and_enforced_from_the_command_line() -> None:
    customer = make_customer("Bäckerei Müller")
    domain = make_domain(customer, "baeckerei.example")
    make_mailbox("anna", domain=domain, quota_bytes=100 * MIB)
    out = StringIO()
    call_command("storage_allowance", "--customer", str(customer.pk), "150M", stdout=out)
    assert (
        out.getvalue().strip() == "Bäckerei Müller: 100.0\xa0MB of 150.0\xa0MB given to mailboxes."
    )
    with pytest.raises(CommandError, match="50.0\xa0MB of it is left"):
        call_command(
            "mailbox_create",
            "bert@baeckerei.example",
            "--plan",
            make_plan(max_quota_bytes=GIB).name,
            "--quota",
            "60M",
            stdout=StringIO(),
        )
    with pytest.raises(CommandError, match="already given"):
        call_command("storage_allowance", "--domain", "baeckerei.example", "10M")
    shown = StringIO()
    call_command("storage_allowance", "--domain", "baeckerei.example", "--json", stdout=shown)
    assert json.loads(shown.getvalue()) == {
        "name": "baeckerei.example",
        "allocated_bytes": 100 * MIB,
        "allowance_bytes": None,
    }
