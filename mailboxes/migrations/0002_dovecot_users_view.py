"""The ``dovecot_users`` view: the only thing Dovecot reads from Postamt's database."""
from django.db import migrations

from ._dovecot_view import CREATE


class Migration(migrations.Migration):
    dependencies = [("mailboxes", "0001_initial")]

    operations = [migrations.RunSQL(CREATE, "DROP VIEW dovecot_users")]
