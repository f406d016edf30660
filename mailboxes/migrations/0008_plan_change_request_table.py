from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('mailboxes', '0007_plan_change_request_moved'),
        ('accounts', '0004_plan_change_request_moved'),
    ]

    operations = [
        migrations.AlterModelTable(name='planchangerequest', table=None),
    ]
