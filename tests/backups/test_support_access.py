"""Support looking into a customer's backups: only with the customer's grant, and every use of
the grant recorded for that customer (``backups.services``)."""

from __future__ import annotations

import pytest
from django.core.exceptions import PermissionDenied

from accounts import roles
from accounts.models import AuditEntry, StaffRole, User
from accounts.services import support_access_grant
from backups.models import DownloadJob
from backups.services import browse_snapshot, download_request
from tests.backups.helpers import make_snapshot, message

pytestmark = pytest.mark.django_db


@pytest.fixture
def snapshot(restore_side, mailbox):  # type: ignore[no-untyped-def]
    return make_snapshot(mailbox, {"INBOX": [(message("Rechnung"), [])]})


@pytest.fixture
def support() -> User:
    return User.objects.create_user("sam", is_staff=True, staff_role=StaffRole.SUPPORT)


def test_support_cannot_browse_or_download_without_a_grant(snapshot, support) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(roles.GrantRequired):
        browse_snapshot(snapshot=snapshot, folder="INBOX", page=None, actor=support)
    with pytest.raises(roles.GrantRequired):
        download_request(snapshot=snapshot, actor=support)
    assert not AuditEntry.objects.filter(action__startswith="backup.").exists()


def test_browsing_with_the_grant_is_recorded_as_a_use_of_it(  # type: ignore[no-untyped-def]
    snapshot, support, owner, customer
) -> None:
    grant = support_access_grant(customer=customer, hours=1, actor=owner)

    found = browse_snapshot(
        snapshot=snapshot, folder="INBOX", page=None, actor=support, ip="198.51.100.9"
    )

    assert [m.subject for m in found] == ["Rechnung"]
    entry = AuditEntry.objects.get(action="backup.browse_with_grant")
    assert (entry.actor, entry.customer) == (support, customer)
    assert entry.details["grant"] == grant.pk and entry.details["folder"] == "INBOX"
    assert not AuditEntry.objects.filter(action="backup.browse").exists()  # one entry per look


def test_browsing_with_the_grant_is_recorded_even_without_the_identity(  # type: ignore[no-untyped-def]
    snapshot, support, owner, customer, settings
) -> None:
    """Dates and sizes of the customer's mail are the customer's too."""
    settings.BACKUP_IDENTITY_FILE = ""
    support_access_grant(customer=customer, hours=1, actor=owner)

    browse_snapshot(snapshot=snapshot, folder="INBOX", page=None, actor=support)

    assert AuditEntry.objects.filter(action="backup.browse_with_grant").count() == 1


def test_downloading_with_the_grant_is_recorded_as_a_use_of_it(  # type: ignore[no-untyped-def]
    snapshot, support, owner, customer
) -> None:
    grant = support_access_grant(customer=customer, hours=1, actor=owner)

    job = download_request(snapshot=snapshot, actor=support)

    assert job.for_staff and DownloadJob.objects.filter(pk=job.pk).exists()
    entry = AuditEntry.objects.get(action="backup.download_with_grant")
    assert (entry.actor, entry.customer, entry.details["grant"]) == (support, customer, grant.pk)
    assert not AuditEntry.objects.filter(action="backup.download").exists()


def test_admins_need_no_grant_and_leave_the_usual_entries(snapshot, customer) -> None:  # type: ignore[no-untyped-def]
    admin = User.objects.create_user("ada", is_staff=True, staff_role=StaffRole.ADMIN)

    browse_snapshot(snapshot=snapshot, folder="INBOX", page=None, actor=admin)
    download_request(snapshot=snapshot, actor=admin)

    actions = set(
        AuditEntry.objects.filter(action__startswith="backup.").values_list("action", flat=True)
    )
    assert actions == {"backup.browse", "backup.download"}


def test_a_grant_does_not_open_the_door_to_auditors(snapshot, owner, customer) -> None:  # type: ignore[no-untyped-def]
    support_access_grant(customer=customer, hours=1, actor=owner)
    auditor = User.objects.create_user("udo", is_staff=True, staff_role=StaffRole.AUDITOR)
    with pytest.raises(PermissionDenied):
        browse_snapshot(snapshot=snapshot, folder="INBOX", page=None, actor=auditor)
    with pytest.raises(PermissionDenied):
        download_request(snapshot=snapshot, actor=auditor)
