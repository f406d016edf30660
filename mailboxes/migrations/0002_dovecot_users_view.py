"""Formerly created the ``dovecot_users`` view; it now lives in mailboxes/dovecot_view.py and
is recreated after every migrate, so that later migrations can alter the tables beneath it."""
from django.db import migrations

from mailboxes.dovecot_view import drop


def drop_view(apps, schema_editor):
    drop(schema_editor.connection.alias)


class Migration(migrations.Migration):
    dependencies = [("mailboxes", "0001_initial")]

    operations = [migrations.RunPython(drop_view, migrations.RunPython.noop)]
