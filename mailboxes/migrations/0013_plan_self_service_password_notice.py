from django.db import migrations, models


def offer_existing_plans(apps, schema_editor):
    """Plans that exist already stay in the portal, as before this field: the hoster takes out
    what should not be offered (``manage.py plan_offer NAME --withdraw``). New plans are
    offered only when marked."""
    apps.get_model("mailboxes", "Plan").objects.update(self_service=True)


class Migration(migrations.Migration):
    dependencies = [
        ("mailboxes", "0012_mailbox_list_indexes"),
    ]

    operations = [
        migrations.AddField(
            model_name="mailbox",
            name="password_notice_due",
            field=models.BooleanField(db_default=False, default=False, editable=False),
        ),
        migrations.AddField(
            model_name="plan",
            name="self_service",
            field=models.BooleanField(
                default=False,
                help_text="Customers may choose this plan for their mailboxes in the portal.",
                verbose_name="offered in the portal",
            ),
        ),
        migrations.RunPython(offer_existing_plans, migrations.RunPython.noop),
    ]
