from django.db import migrations, models
from django.db.models import Q
from django.utils import timezone

ACTIVE = ["queued", "running"]


def fail_extra_active_restores(apps, schema_editor):  # type: ignore[no-untyped-def]
    """Before the constraint: where a mailbox has more than one restore under way, the
    oldest goes on and the others fail (they can be started again once it is done)."""
    RestoreJob = apps.get_model("backups", "RestoreJob")
    seen: set[int] = set()
    extra = []
    active = RestoreJob.objects.filter(status__in=ACTIVE, target_mailbox__isnull=False)
    for job_id, mailbox_id in active.order_by("created_at", "pk").values_list(
        "pk", "target_mailbox_id"
    ):
        if mailbox_id in seen:
            extra.append(job_id)
        seen.add(mailbox_id)
    RestoreJob.objects.filter(pk__in=extra).update(
        status="failed",
        finished_at=timezone.now(),
        claim="",
        error="stopped: one restore at a time per mailbox; start it again",
    )


class Migration(migrations.Migration):
    dependencies = [
        ("backups", "0007_final_backup"),
        ("mailboxes", "0014_merge_overview_self_service"),
    ]

    operations = [
        migrations.RunPython(fail_extra_active_restores, migrations.RunPython.noop),
        migrations.AddConstraint(
            model_name="restorejob",
            constraint=models.UniqueConstraint(
                condition=Q(status__in=ACTIVE),
                fields=("target_mailbox",),
                name="restorejob_one_active_per_mailbox",
            ),
        ),
    ]
