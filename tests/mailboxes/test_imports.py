"""The CSV import: every bad row found in one pass, all or nothing, the services' rules in bulk."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone, translation

from accounts.models import AuditEntry, Customer, User
from mailboxes import imports
from mailboxes.models import GIB, MIB, Domain, ImportJob, Mailbox, MailServer, Plan
from mailboxes.passwords import verify_password
from tests.factories import make_customer, make_domain, make_mailbox, make_plan, make_server

pytestmark = pytest.mark.django_db

HEADER = ",".join(imports.COLUMNS)
MUELLER = "Bäckerei Müller,inhaber@mueller.example,de,bäckerei-müller.de"
# Made with `doveadm pw -s SHA512-CRYPT -p secret` and `doveadm pw -s BLF-CRYPT -p secret`.
SHA512 = (
    "{SHA512-CRYPT}$6$wIf/ZHAVpas9oZ5Z$dZHFnTSjYy/vq9HGD.55NelcrSnPz2qaCjfe8tbjuKfpDmDXRfJYpsNjzjCX"
    "wZUGUJ4H//bceujkkWvGI6myF."
)
BLF = "{BLF-CRYPT}$2y$05$IuxirU4fzbww0hkFuFmy5eg3zxTY8ZnmdKGaDAkc7hLAWkjJcZGSG"
# A Django argon2 hash (p=8) with its prefix swapped, as docs/dovecot.md describes.
ARGON2 = (
    "{ARGON2ID}$argon2id$v=19$m=102400,t=2,p=8$93l/SPe88MRBIPdBP+tz2w$9klrTltMPYiD2yO39pj/9fJgrGp"
    "Df44XfByh27+F91g"
)


@pytest.fixture(autouse=True)
def english() -> Iterator[None]:
    with translation.override("en"):
        yield


@pytest.fixture
def server() -> MailServer:
    return make_server("mx1")


@pytest.fixture
def imap(server: MailServer) -> Plan:
    return make_plan(name="IMAP 10G", default_quota_bytes=2 * GIB, max_quota_bytes=10 * GIB)


@pytest.fixture
def pop3(server: MailServer) -> Plan:
    return make_plan(protocol="pop3", name="POP3 1G", max_quota_bytes=GIB)


def csv_bytes(*rows: str, header: str = HEADER, bom: bool = False, sep: str = ",") -> bytes:
    text = "\r\n".join([header, *rows]) + "\r\n"
    if sep != ",":
        text = text.replace(",", sep)
    return (("\ufeff" if bom else "") + text).encode()


def problems(checked: imports.Checked) -> list[tuple[int, str]]:
    return [(p.row, p.column) for p in checked.problems]


def run(data: bytes, actor: str = "test") -> imports.Result:
    checked = imports.check(data)
    assert checked.problems == []
    return imports.import_checked(checked=checked, file_name="x.csv", actor=actor)


# --- A good file ----------------------------------------------------------------------------


def test_a_file_creates_customers_domains_and_mailboxes_with_the_hashes_given(imap, pop3) -> None:
    data = csv_bytes(
        f"{MUELLER},,anna,imap,IMAP 10G,5G,,{SHA512}",
        f"Bäckerei Müller,,,bäckerei-müller.de,,laden,,POP3 1G,,,{BLF}",
        f'Acme GmbH,it@acme.example,en,acme.example,mx1,info,,IMAP 10G,,,"{ARGON2}"',
        "Leer AG,leer@example.org,,,,,,,,,",
        "Acme GmbH,,,acme-shop.example,,,,,,,",
    )

    checked = imports.check(data)
    assert checked.problems == []
    assert (len(checked.new_customers), len(checked.new_domains), len(checked.mailboxes)) == (
        3,
        3,
        3,
    )
    result = imports.import_checked(checked=checked, file_name="kunden.csv", actor="test")

    assert (result.customers, result.domains, result.mailboxes) == (3, 3, 3)
    assert result.generated == []
    mueller = Customer.objects.get(name="Bäckerei Müller")
    assert (mueller.contact_email, mueller.language) == ("inhaber@mueller.example", "de")
    anna = Mailbox.objects.get(address="anna@xn--bckerei-mller-bfb28a.de")
    assert anna.domain.customer == mueller
    assert (anna.protocol, anna.quota_bytes, anna.plan.name) == ("imap", 5 * GIB, "IMAP 10G")
    assert anna.password_hash == SHA512  # stored as given, not hashed again
    assert anna.mail_server.name == "mx1"
    assert anna.storage_path.startswith("xn--bckerei-mller-bfb28a.de/anna.")
    laden = Mailbox.objects.get(local_part="laden")
    assert (laden.protocol, laden.quota_bytes, laden.password_hash) == ("pop3", 10 * MIB, BLF)
    assert Mailbox.objects.get(local_part="info").password_hash == ARGON2
    assert verify_password(anna.password_hash, "secret")
    assert verify_password(laden.password_hash, "secret")
    assert Domain.objects.filter(name="acme-shop.example", customer__name="Acme GmbH").exists()
    assert Customer.objects.filter(name="Leer AG", domains=None).exists()


def test_an_import_is_audited_once_as_a_whole_and_per_created_object(imap) -> None:
    run(csv_bytes(f"Acme,it@acme.example,,acme.example,,info,,IMAP 10G,,,{SHA512}"), "cli:root")

    job = ImportJob.objects.get()
    whole = AuditEntry.objects.get(action="import.run")
    assert (whole.actor_name, whole.target_id) == ("cli:root", job.pk)
    assert whole.details == {
        "file": "x.csv",
        "rows": 1,
        "customers": 1,
        "domains": 1,
        "mailboxes": 1,
        "passwords_generated": 0,
        "passwords_hashed": 0,
    }
    customer = Customer.objects.get()
    mailbox = Mailbox.objects.get()
    entries = AuditEntry.objects.exclude(action="import.run")
    assert sorted(entries.values_list("action", "target_id", "customer_id", "target_repr")) == [
        ("customer.create", customer.pk, customer.pk, "Acme"),
        ("domain.create", mailbox.domain_id, customer.pk, "acme.example"),
        ("mailbox.create", mailbox.pk, customer.pk, "info@acme.example"),
    ]
    assert entries.get(action="mailbox.create").details == {
        "protocol": "imap",
        "quota_bytes": 2 * GIB,
        "plan": "IMAP 10G",
        "import": job.pk,
    }
    assert job.status == ImportJob.Status.DONE
    assert (job.customers, job.domains, job.mailboxes) == (1, 1, 1)


def test_utf8_with_bom_and_semicolons_is_read_like_plain_commas(imap) -> None:
    data = csv_bytes(
        "Müller & Söhne;post@müller.example;de;MÜLLER.example;;Anna.Schmidt;;IMAP 10G;;;" + SHA512,
        bom=True,
        sep=";",
    )

    run(data)

    mailbox = Mailbox.objects.get()
    assert mailbox.address == "anna.schmidt@xn--mller-kva.example"
    assert mailbox.display_address == "anna.schmidt@müller.example"
    assert mailbox.domain.customer.name == "Müller & Söhne"


def test_header_names_any_order_and_case_and_missing_columns_are_empty(imap) -> None:
    data = csv_bytes(
        "info@acme.example,IMAP 10G,Acme,it@acme.example",
        header="Mailbox,PLAN,Customer, contact_email ",
    )

    result = run(data)

    assert result.mailboxes == 1
    assert Mailbox.objects.get().address == "info@acme.example"
    assert len(result.generated) == 1


def test_mailboxes_without_a_password_get_a_generated_one_and_clear_ones_are_hashed(imap) -> None:
    data = csv_bytes(
        "Acme,it@acme.example,,acme.example,,info,,IMAP 10G,,,",
        "Acme,,,acme.example,,shop,,IMAP 10G,,Brave-Otter-2041,",
    )

    result = run(data)

    [(shown, login, password)] = result.generated
    assert (shown, login) == ("info@acme.example", "info@acme.example")
    info = Mailbox.objects.get(local_part="info")
    shop = Mailbox.objects.get(local_part="shop")
    assert info.password_hash.startswith("{ARGON2ID}$argon2id$")
    assert verify_password(info.password_hash, password)
    assert verify_password(shop.password_hash, "Brave-Otter-2041")
    assert "Brave-Otter-2041" not in shop.password_hash
    assert AuditEntry.objects.get(action="import.run").details["passwords_hashed"] == 1


def test_rows_may_add_to_an_existing_customer_and_domain(imap) -> None:
    customer = make_customer("Acme GmbH")
    domain = make_domain(customer, "acme.example")
    make_mailbox("old", domain=domain, plan=imap)

    result = run(
        csv_bytes(
            f"Acme GmbH,,,acme.example,,new,,IMAP 10G,,,{SHA512}",
            f"Acme GmbH,{customer.contact_email},en,acme-two.example,,info,,IMAP 10G,,,{SHA512}",
        )
    )

    assert (result.customers, result.domains, result.mailboxes) == (0, 1, 2)
    assert set(customer.domains.values_list("name", flat=True)) == {
        "acme.example",
        "acme-two.example",
    }
    assert Mailbox.objects.get(local_part="new").domain == domain


def test_new_domains_go_to_the_least_used_accepting_server(imap) -> None:
    busy = MailServer.objects.get(name="mx1")
    quiet = make_server("mx2")
    make_server("closed", active=False)
    make_mailbox("old", domain=make_domain(name="old.example"), plan=imap, mail_server=busy)
    rows = [f"A,a@example.org,,a.example,,u{i},,IMAP 10G,,,{SHA512}" for i in range(3)]

    run(csv_bytes(*rows))

    # Placed like mailboxes (tests/mailboxes/test_placement.py): mx2 has nothing allocated.
    assert Domain.objects.get(name="a.example").mail_server == quiet


# --- Bad rows -------------------------------------------------------------------------------


def test_every_bad_row_is_listed_with_its_line_column_and_reason_and_nothing_is_created(
    imap, pop3
) -> None:
    other = make_customer("Fremde AG")
    make_domain(other, "fremde.example")
    make_mailbox("taken", domain=make_domain(make_customer("Acme"), "acme.example"), plan=imap)
    make_server("closed", active=False)
    data = csv_bytes(
        f"Neu GmbH,neu@example.org,,neu.example,,anna,,IMAP 10G,,,{SHA512}",  # 2: fine
        f",x@example.org,,neu.example,,bob,,IMAP 10G,,,{SHA512}",  # 3: no customer
        f"Neu GmbH,,,neu.example,,an na,,IMAP 10G,,,{SHA512}",  # 4: local part
        f"Neu GmbH,,,neu.example,,carl,,Gold,,,{SHA512}",  # 5: unknown plan
        f"Neu GmbH,,,neu.example,,dora,,POP3 1G,5G,,{SHA512}",  # 6: quota above the plan's
        f"Neu GmbH,,,neu.example,,emil,imap,POP3 1G,,,{SHA512}",  # 7: protocol not in plan
        "Neu GmbH,,,neu.example,,fritz,,IMAP 10G,,12345,",  # 8: weak password
        f"Neu GmbH,,,neu.example,,gabi,,IMAP 10G,,Brave-Otter-2041,{SHA512}",  # 9: both
        "Neu GmbH,,,neu.example,,hans,,IMAP 10G,,,{SHA512-CRYPT}$6$abc$cutshort",  # 10: hash
        "Neu GmbH,,,neu.example,,ida,,IMAP 10G,,,{MD5-CRYPT}$1$abc$0123456789abcdef",  # 11
        f"Neu GmbH,,,neu.example,,anna,,IMAP 10G,,,{SHA512}",  # 12: twice in the file
        f"Acme,,,acme.example,,taken,,IMAP 10G,,,{SHA512}",  # 13: exists already
        f"Neu GmbH,,,fremde.example,,jan,,IMAP 10G,,,{SHA512}",  # 14: another's domain
        f"Neu GmbH,,,bad..domain,,kai,,IMAP 10G,,,{SHA512}",  # 15: not a domain
        f"Neu GmbH,other@example.org,,neu.example,,lea,,IMAP 10G,,,{SHA512}",  # 16: conflict
        f"Neu GmbH,,,neu.example,,mia,,IMAP 10G,1X,,{SHA512}",  # 17: not a size
        f"Neu GmbH,,,closed.example,closed,nina,,IMAP 10G,,,{SHA512}",  # 18: closed server
        f"Neu GmbH,,,neu.example,,,,IMAP 10G,,,{SHA512}",  # 19: settings but no mailbox
        f"Neu GmbH,,,neu.example,,otto,,IMAP 10G,,,{SHA512},extra",  # 20: too many fields
    )
    before = (Customer.objects.count(), Domain.objects.count(), Mailbox.objects.count())

    checked = imports.check(data)

    assert problems(checked) == [
        (3, "customer"),
        (4, "mailbox"),
        (5, "plan"),
        (6, "quota"),
        (7, "protocol"),
        (8, "password"),
        (8, "password"),
        (8, "password"),
        (9, "password"),
        (10, "password_hash"),
        (11, "password_hash"),
        (12, "mailbox"),
        (13, "mailbox"),
        (14, "domain"),
        (15, "domain"),
        (16, "contact_email"),
        (17, "quota"),
        (18, "server"),
        (19, "mailbox"),
        (20, ""),
    ]
    text = {(p.row, p.column): p.message for p in checked.problems}
    assert "not a valid mailbox name" in text[4, "mailbox"]
    assert text[5, "plan"] == "There is no plan “Gold”. Plans: IMAP 10G, POP3 1G."
    assert "allows at most 1.0\xa0GB" in text[6, "quota"]
    assert "does not include IMAP" in text[7, "protocol"]
    assert "not both" in text[9, "password"]
    assert "Dovecot would refuse every login with it" in text[10, "password_hash"]
    assert "{MD5-CRYPT} is not accepted" in text[11, "password_hash"]
    assert text[12, "mailbox"] == "The mailbox anna@neu.example is also in row 2."
    assert text[13, "mailbox"] == "The mailbox taken@acme.example already exists."
    assert text[14, "domain"] == "The domain fremde.example belongs to the customer “Fremde AG”."
    assert "neu@example.org" in text[16, "contact_email"] and "Row 2" in text[16, "contact_email"]
    assert "accepts no new mailboxes" in text[18, "server"]
    assert "12345" not in " ".join(p.message for p in checked.problems)  # no secrets echoed
    with pytest.raises(ValidationError):
        imports.import_checked(checked=checked, file_name="x.csv", actor="test")
    assert (Customer.objects.count(), Domain.objects.count(), Mailbox.objects.count()) == before


def test_a_new_customer_needs_a_valid_contact_email_and_language(imap) -> None:
    checked = imports.check(
        csv_bytes(
            f"Ohne,,,ohne.example,,info,,IMAP 10G,,,{SHA512}",
            f"Falsch,nicht-gültig,fr,falsch.example,,info,,IMAP 10G,,,{SHA512}",
        )
    )

    assert problems(checked) == [(2, "contact_email"), (3, "contact_email"), (3, "language")]
    assert "Unknown language “fr”" in checked.problems[2].message


def test_rows_that_only_repeat_a_customer_or_domain_are_duplicates(imap) -> None:
    make_customer("Acme")
    checked = imports.check(
        csv_bytes(
            "Acme,,,,,,,,,,",  # exists
            "Neu,neu@example.org,,,,,,,,,",
            "Neu,,,,,,,,,,",  # twice
            "Neu,,,neu.example,,,,,,,",
            "Neu,,,neu.example,,,,,,,",  # twice
        )
    )

    assert problems(checked) == [(2, "customer"), (4, "customer"), (6, "domain")]
    assert checked.problems[0].message == "The customer “Acme” already exists."


def test_a_customer_name_that_several_customers_share_cannot_be_imported_into(imap) -> None:
    make_customer("Müller")
    make_customer("Müller")

    checked = imports.check(csv_bytes(f"Müller,,,m.example,,info,,IMAP 10G,,,{SHA512}"))

    assert problems(checked) == [(2, "customer")]
    assert "2 customers are called “Müller”" in checked.problems[0].message


def test_an_address_and_its_punycode_are_the_same_mailbox(imap) -> None:
    checked = imports.check(
        csv_bytes(
            f"A,a@example.org,,bücher.example,,Info,,IMAP 10G,,,{SHA512}",
            f"A,,,xn--bcher-kva.example,,info,,IMAP 10G,,,{SHA512}",
            f"A,,,,,INFO@BÜCHER.example,,IMAP 10G,,,{SHA512}",
        )
    )

    assert problems(checked) == [(3, "mailbox"), (4, "mailbox")]
    assert checked.problems[0].message == "The mailbox info@bücher.example is also in row 2."


def test_line_numbers_count_blank_lines_and_quoted_line_breaks(imap) -> None:
    data = csv_bytes(
        "",
        f'"Acme\nGmbH",a@example.org,,acme.example,,info,,IMAP 10G,,,{SHA512}',
        f"Acme,a@example.org,,acme2.example,,in fo,,IMAP 10G,,,{SHA512}",
    )

    checked = imports.check(data)

    assert problems(checked) == [(5, "mailbox")]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "The file is empty"),
        (b"\xef\xbb\xbf\r\n", "The file is empty"),
        (b"customer,mailbox,passwort\r\nA,b,c\r\n", "Unknown columns: passwort."),
        (b"domain,mailbox\r\na.example,b\r\n", "The column “customer” is missing"),
        (b"customer,customer\r\nA,B\r\n", "Columns named twice: customer."),
        ("customer\r\nM\xfcller\r\n".encode("latin-1"), "not UTF-8 text (line 2)"),
        (b'customer\r\n"A\x00"\r\n', "Line 2 contains a NUL character"),
        (b'customer\r\nA\r\n"B\r\n', "Line 3 is not readable as CSV"),
        (b'customer\r\n"A"B\r\n', "Line 2 is not readable as CSV"),
    ],
)
def test_a_file_that_cannot_be_read_is_refused_as_a_whole(data: bytes, message: str) -> None:
    with pytest.raises(ValidationError) as exc:
        imports.check(data)
    assert message in " ".join(exc.value.messages)


def test_a_malformed_hash_is_refused_whichever_way_it_is_broken(imap) -> None:
    good_sha = SHA512.removeprefix("{SHA512-CRYPT}")
    broken = [
        "{SHA512-CRYPT}" + good_sha[:-1] + "2",  # an unused bit set: crypt never writes that
        "{SHA512-CRYPT}$6$rounds=999$abc$" + good_sha[-86:],  # too few rounds
        "{SHA512-CRYPT}$6$" + "a" * 17 + "$" + good_sha[-86:],  # salt longer than crypt reads
        "{BLF-CRYPT}$2x$05$IuxirU4fzbww0hkFuFmy5eg3zxTY8ZnmdKGaDAkc7hLAWkjJcZGSG",  # 2x
        "{BLF-CRYPT}$2y$05$IuxirU4fzbww0hkFuFmy5fg3zxTY8ZnmdKGaDAkc7hLAWkjJcZGSG",  # salt bits
        "{BLF-CRYPT}$2y$3$IuxirU4fzbww0hkFuFmy5eg3zxTY8ZnmdKGaDAkc7hLAWkjJcZGSG",  # cost
        "{ARGON2ID}$argon2id$v=19$m=1024,t=1,p=1$OKCrgUstbL4$YwmldrQFOR8wZjVs",  # 12-byte hash
        "{ARGON2ID}$argon2i$v=19$m=1024,t=1,p=1$OKCrgUstbL4$YwmldrQFOR8wZjVsYwmldr",  # argon2i
        "{PLAIN}secret",
        "secret",
        "",
    ]
    rows = [f'A,a@example.org,,a.example,,u{i},,IMAP 10G,,,"{h}"' for i, h in enumerate(broken)]

    checked = imports.check(csv_bytes(*rows))

    # The empty one is a mailbox without a password (one is generated), not a problem.
    assert [row for row, _column in problems(checked)] == list(range(2, 2 + len(broken) - 1))


def test_bare_crypt_hashes_and_lower_case_schemes_are_stored_with_dovecots_prefix(imap) -> None:
    bare = SHA512.removeprefix("{SHA512-CRYPT}")
    lower = "{blf-crypt}" + BLF.removeprefix("{BLF-CRYPT}")

    run(
        csv_bytes(
            f"A,a@example.org,,a.example,,u1,,IMAP 10G,,,{bare}",
            f"A,,,a.example,,u2,,IMAP 10G,,,{lower}",
        )
    )

    assert Mailbox.objects.get(local_part="u1").password_hash == SHA512
    assert Mailbox.objects.get(local_part="u2").password_hash == BLF


def test_a_mailbox_created_meanwhile_fails_the_whole_import(imap) -> None:
    checked = imports.check(
        csv_bytes(
            f"Acme,a@example.org,,acme.example,,one,,IMAP 10G,,,{SHA512}",
            f"Acme,,,acme.example,,two,,IMAP 10G,,,{SHA512}",
        )
    )
    make_domain(make_customer("Schneller"), "acme.example")  # between check and import

    with pytest.raises(ValidationError, match="created elsewhere while it was imported"):
        imports.import_checked(checked=checked, file_name="x.csv", actor="test")

    assert not Customer.objects.filter(name="Acme").exists()
    assert not Mailbox.objects.exists()
    assert ImportJob.objects.get().status == ImportJob.Status.FAILED


# --- Size -----------------------------------------------------------------------------------


def test_ten_thousand_rows_import_with_a_fixed_number_of_queries(
    imap, pop3, django_assert_max_num_queries
) -> None:
    rows = [
        f"Kunde {i // 100},k{i // 100}@example.org,de,kunde{i // 100}.example,,"
        f"user{i},,{'IMAP 10G' if i % 2 else 'POP3 1G'},,,{SHA512}"
        for i in range(10_000)
    ]
    data = csv_bytes(*rows)

    with django_assert_max_num_queries(60):
        result = run(data)

    assert (result.customers, result.domains, result.mailboxes) == (100, 100, 10_000)
    assert Mailbox.objects.count() == 10_000
    assert Mailbox.objects.filter(protocol="pop3").count() == 5_000
    assert AuditEntry.objects.filter(action="mailbox.create").count() == 10_000
    assert len(set(Mailbox.objects.values_list("storage_path", flat=True))) == 10_000


def test_a_file_over_the_row_limit_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(imports, "MAX_ROWS", 3)
    with pytest.raises(ValidationError, match="more than 3 rows"):
        imports.check(csv_bytes(*["A,a@example.org,,,,,,,,,"] * 4))


# --- Export ---------------------------------------------------------------------------------


def test_the_export_has_the_import_columns_without_secrets_and_imports_as_duplicates(
    imap,
) -> None:
    run(
        csv_bytes(
            f"{MUELLER},,anna,,IMAP 10G,5G,,{SHA512}",
            "Bäckerei Müller,,,leer.example,,,,,,,",
            "Leer AG,leer@example.org,,,,,,,,,",
        )
    )

    exported = "".join(imports.export_csv())

    assert HEADER == (  # the columns docs/cli.md describes
        "customer,contact_email,language,domain,server,mailbox,protocol,plan,quota,"
        "password,password_hash"
    )

    assert exported.startswith("\ufeff" + HEADER + "\r\n")
    assert exported.splitlines()[1:] == [  # domains in the order of their punycode
        "Bäckerei Müller,inhaber@mueller.example,de,leer.example,mx1,,,,,,",
        f"{MUELLER},mx1,anna,imap,IMAP 10G,{5 * GIB},,",
        "Leer AG,leer@example.org,en,,,,,,,,",
    ]
    again = imports.check(exported.encode())
    assert problems(again) == [(2, "domain"), (3, "mailbox"), (4, "customer")]


# --- Jobs -----------------------------------------------------------------------------------


@pytest.fixture
def staff() -> User:
    return User.objects.create_user("hanna", is_staff=True)


def make_job(staff: User, *rows: str) -> ImportJob:
    data = csv_bytes(*rows)
    checked = imports.check(data)
    return imports.job_create(
        data=data, file_name="k.csv", checked=checked, actor=staff, ip="10.0.0.1"
    )


def test_only_who_may_import_can_start_a_checked_file(imap, staff) -> None:
    job = make_job(staff, "Acme,a@example.org,,acme.example,,info,,IMAP 10G,,,")
    support = User.objects.create_user("sam", is_staff=True, staff_role="support")
    with pytest.raises(PermissionDenied):
        imports.job_confirm(job=job, actor=support, inline=True)
    job.refresh_from_db()
    assert job.status == "checked" and not Mailbox.objects.exists()


def test_a_queued_job_is_run_once_by_a_worker_and_keeps_the_passwords_for_one_download(
    imap, staff, sent_tasks, django_capture_on_commit_callbacks
) -> None:
    job = make_job(staff, "Acme,a@example.org,,acme.example,,info,,IMAP 10G,,,")
    assert (job.status, job.mailboxes, job.passwords_generated) == ("checked", 1, 1)

    with django_capture_on_commit_callbacks(execute=True):
        assert imports.job_confirm(job=job, actor="test", inline=False, ip="10.0.0.2")
        assert not imports.job_confirm(job=job, actor="test", inline=False)  # a second click
    assert sent_tasks == [("mailboxes.run_import", (job.pk,), {})]
    assert imports.run_job(job.pk) is not None
    assert imports.run_job(job.pk) is None  # delivered twice: nothing left to do

    job.refresh_from_db()
    assert job.status == ImportJob.Status.DONE
    assert job.content == b""  # the file is not kept once imported
    assert Mailbox.objects.count() == 1
    entry = AuditEntry.objects.get(action="import.run")
    assert (entry.actor, entry.ip_address) == (staff, "10.0.0.2")
    other = User.objects.create_user("otto", is_staff=True)
    assert imports.take_passwords(job=job, user=other) is None  # only for who ran it
    passwords = imports.take_passwords(job=job, user=staff)
    assert passwords is not None
    [header, line] = passwords.splitlines()
    assert header == "mailbox,login,password"
    password = line.split(",")[2]
    assert verify_password(Mailbox.objects.get().password_hash, password)
    assert imports.take_passwords(job=job, user=staff) is None  # once
    job.refresh_from_db()
    assert job.passwords == "" and job.passwords_taken_at is not None


def test_a_job_checks_again_and_fails_with_the_rows_the_database_now_refuses(
    imap, staff, sent_tasks
) -> None:
    job = make_job(staff, f"Acme,a@example.org,,acme.example,,info,,IMAP 10G,,,{SHA512}")
    make_domain(make_customer("Schneller"), "acme.example")

    imports.job_confirm(job=job, actor="test", inline=True)

    job.refresh_from_db()
    assert job.status == ImportJob.Status.FAILED
    assert job.problems == [
        [2, "domain", "The domain acme.example belongs to the customer “Schneller”."]
    ]
    assert not Customer.objects.filter(name="Acme").exists()


def test_a_job_whose_worker_died_is_taken_over_and_given_up_after_the_attempt_cap(
    imap, staff, sent_tasks, settings
) -> None:
    settings.JOB_MAX_ATTEMPTS = 3
    job = make_job(staff, f"Acme,a@example.org,,acme.example,,info,,IMAP 10G,,,{SHA512}")
    imports.job_confirm(job=job, actor="test", inline=False)
    stale = timezone.now() - timedelta(seconds=settings.IMPORT_STALE_SECONDS) - timedelta(seconds=1)
    ImportJob.objects.filter(pk=job.pk).update(status="running", attempts=1, heartbeat_at=stale)
    assert imports.pending_jobs() == [job.pk]

    assert imports.run_job(job.pk) is not None
    assert Mailbox.objects.count() == 1

    ImportJob.objects.filter(pk=job.pk).update(status="running", attempts=3, heartbeat_at=stale)
    assert imports.run_job(job.pk) is None
    job.refresh_from_db()
    assert job.status == ImportJob.Status.FAILED and "Gave up after 3 attempts" in job.error


def test_a_live_run_is_not_taken_over(imap, staff, sent_tasks) -> None:
    job = make_job(staff, f"Acme,a@example.org,,acme.example,,info,,IMAP 10G,,,{SHA512}")
    imports.job_confirm(job=job, actor="test", inline=False)
    ImportJob.objects.filter(pk=job.pk).update(status="running", heartbeat_at=timezone.now())

    assert imports.run_job(job.pk) is None
    assert imports.pending_jobs() == []
    assert not Mailbox.objects.exists()


def test_the_backstop_forgets_unconfirmed_files_and_untaken_passwords_after_a_day(
    imap, staff, sent_tasks
) -> None:
    waiting = make_job(staff, "Acme,a@example.org,,acme.example,,info,,IMAP 10G,,,")
    done = make_job(staff, "Beta,b@example.org,,beta.example,,info,,IMAP 10G,,,")
    imports.job_confirm(job=done, actor="test", inline=True)
    queued = make_job(staff, "Gamma,g@example.org,,,,,,,,,")
    imports.job_confirm(job=queued, actor="test", inline=False)
    just_queued = make_job(staff, "Delta,d@example.org,,,,,,,,,")
    ImportJob.objects.filter(pk=just_queued.pk).update(
        created_at=timezone.now() - timedelta(hours=2)
    )
    imports.job_confirm(
        job=just_queued, actor="test", inline=False
    )  # uploaded long ago, confirmed now
    day_ago = timezone.now() - imports.KEEP_FOR - timedelta(minutes=1)
    ImportJob.objects.filter(pk=waiting.pk).update(created_at=day_ago)
    ImportJob.objects.filter(pk=queued.pk).update(heartbeat_at=day_ago)
    ImportJob.objects.filter(pk=done.pk).update(finished_at=day_ago)

    assert imports.pending_jobs() == [queued.pk]  # its task was lost: send it again

    waiting.refresh_from_db()
    done.refresh_from_db()
    assert (waiting.status, waiting.content) == ("expired", b"")
    assert done.passwords == ""
    assert imports.job_confirm(job=waiting, actor="test", inline=True) is False


def test_an_import_keeps_to_the_customers_storage_allowance(imap) -> None:
    from mailboxes.services import storage_allowance_set

    customer = make_customer("Acme GmbH")
    make_domain(customer, "acme.example")
    storage_allowance_set(owner=customer, allowance_bytes=5 * GIB, actor="test")
    too_much = csv_bytes(
        f"Acme GmbH,,,acme.example,,a,,IMAP 10G,3G,,{SHA512}",
        f"Acme GmbH,,,acme.example,,b,,IMAP 10G,3G,,{SHA512}",
    )
    checked = imports.check(too_much)
    assert problems(checked) == [(2, "quota")]
    assert "5.0\xa0GB and 5.0\xa0GB of it is left" in checked.problems[0].message
    assert "need 6.0\xa0GB" in checked.problems[0].message
    run(csv_bytes(f"Acme GmbH,,,acme.example,,a,,IMAP 10G,3G,,{SHA512}"))
    assert Mailbox.objects.filter(domain__customer=customer).count() == 1


def test_only_administrators_import(imap) -> None:
    from django.core.exceptions import PermissionDenied

    support = User.objects.create_user("support", is_staff=True, staff_role="support")
    checked = imports.check(csv_bytes(f"{MUELLER},,anna,,IMAP 10G,,,{SHA512}"))
    with pytest.raises(PermissionDenied):
        imports.import_checked(checked=checked, file_name="x.csv", actor=support)
    assert not Mailbox.objects.exists()
