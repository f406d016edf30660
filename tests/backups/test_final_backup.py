"""Deleting a mailbox after one last backup: deleted once it is stored, kept if it fails."""

from __future__ import annotations

import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from accounts.models import AuditEntry, User
from backups import services
from backups.models import BackupJob, JobStatus, Repository
from mailboxes.models import Mailbox
from mailboxes.services import mailbox_suspend
from tests.factories import make_mailbox, make_plan

pytestmark = pytest.mark.django_db


def test_the_mailbox_waits_for_its_backup_then_goes(
    backup_settings, sent_tasks, django_capture_on_commit_callbacks
):
    anna = make_mailbox("anna")
    with django_capture_on_commit_callbacks(execute=True):
        job = services.mailbox_delete_after_backup(mailbox=anna, actor="test")

    assert job.delete_mailbox_after and Mailbox.objects.filter(pk=anna.pk).exists()
    assert ("backups.backup_mailbox", (job.pk,), {}) in sent_tasks
    assert AuditEntry.objects.filter(action="mailbox.delete_after_backup").exists()
    assert services.delete_after_final_backup(job.pk) is False  # not stored yet

    BackupJob.objects.filter(pk=job.pk).update(status=JobStatus.DONE)
    assert services.pending_final_deletions() == [job.pk]
    assert services.delete_after_final_backup(job.pk) is True
    assert not Mailbox.objects.filter(pk=anna.pk).exists()
    assert Repository.objects.get(pk=job.repository_id).mailbox is None  # its backups stay
    assert services.delete_after_final_backup(job.pk) is False  # twice: nothing more
    assert services.pending_final_deletions() == []
    deleted = AuditEntry.objects.get(action="mailbox.delete")
    assert deleted.actor_name == "final backup (test)"


def test_a_failed_backup_keeps_the_mailbox(backup_settings):
    anna = make_mailbox("anna")
    job = services.mailbox_delete_after_backup(mailbox=anna, actor="test")
    BackupJob.objects.filter(pk=job.pk).update(status=JobStatus.FAILED)
    assert services.delete_after_final_backup(job.pk) is False
    assert services.pending_final_deletions() == []
    assert Mailbox.objects.filter(pk=anna.pk).exists()


def test_only_who_may_delete_and_only_what_can_be_backed_up(backup_settings):
    anna = make_mailbox("anna")
    support = User.objects.create_user("sam", is_staff=True, staff_role="support")
    with pytest.raises(PermissionDenied):
        services.mailbox_delete_after_backup(mailbox=anna, actor=support)
    pop = make_mailbox("pop", domain=anna.domain, plan=make_plan(protocol="pop3"), protocol="pop3")
    with pytest.raises(ValidationError, match="does not include backups"):
        services.mailbox_delete_after_backup(mailbox=pop, actor="test")
    mailbox_suspend(mailbox=anna, actor="test")
    with pytest.raises(ValidationError, match="reactivate it first"):
        services.mailbox_delete_after_backup(mailbox=anna, actor="test")
    assert not BackupJob.objects.exists()


def test_the_staff_delete_page_backs_up_first_when_ticked(client, staff, backup_settings):
    from django.urls import reverse

    client.force_login(staff)
    anna = make_mailbox("anna")
    page = client.get(reverse("staff:mailbox_delete", args=[anna.pk])).content.decode()
    assert 'name="final_backup"' in page
    response = client.post(reverse("staff:mailbox_delete", args=[anna.pk]), {"final_backup": "1"})
    job = BackupJob.objects.get()
    assert response["Location"] == reverse("staff_backups:backup_job", args=[job.pk])
    assert Mailbox.objects.filter(pk=anna.pk).exists()

    pop = make_mailbox("pop", domain=anna.domain, plan=make_plan(protocol="pop3"), protocol="pop3")
    page = client.get(reverse("staff:mailbox_delete", args=[pop.pk])).content.decode()
    assert 'name="final_backup"' not in page  # its plan has no backups: nothing to offer
