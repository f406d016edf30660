"""PlanChangeRequest now lives in mailboxes (mailboxes 0007); its table is not touched here."""

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('accounts', '0003_plan_change_requests'),
        ('mailboxes', '0007_plan_change_request_moved'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.DeleteModel(name='PlanChangeRequest')],
            database_operations=[],
        ),
    ]
