"""PlanChangeRequest moves from accounts to mailboxes (plan changes are mailbox business).

The table stays where it is in this step (state only); 0008 gives it the mailboxes name.
"""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('accounts', '0003_plan_change_requests'),
        ('mailboxes', '0006_storage_purge'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name='PlanChangeRequest',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('from_plan_name', models.CharField(max_length=100, verbose_name='current plan')),
                        ('from_protocol', models.CharField(max_length=4, verbose_name='current protocol')),
                        ('protocol', models.CharField(max_length=4, verbose_name='requested protocol')),
                        ('note', models.TextField(blank=True, max_length=1000, verbose_name='message')),
                        ('status', models.CharField(choices=[('pending', 'waiting for approval'), ('approved', 'approved'), ('applied', 'applied at once'), ('declined', 'declined'), ('cancelled', 'withdrawn')], default='pending', max_length=10, verbose_name='status')),
                        ('requested_by_name', models.CharField(max_length=150, verbose_name='requested by')),
                        ('decided_by_name', models.CharField(blank=True, max_length=150, verbose_name='decided by')),
                        ('decided_at', models.DateTimeField(blank=True, null=True, verbose_name='decided')),
                        ('decision_note', models.TextField(blank=True, max_length=1000, verbose_name='reason')),
                        ('created_at', models.DateTimeField(auto_now_add=True, verbose_name='requested')),
                        ('customer', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='plan_change_requests', to='accounts.customer', verbose_name='customer')),
                        ('mailbox', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='plan_change_requests', to='mailboxes.mailbox', verbose_name='mailbox')),
                        ('plan', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='+', to='mailboxes.plan', verbose_name='requested plan')),
                        ('requested_by', models.ForeignKey(null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL, verbose_name='requested by')),
                    ],
                    options={
                        'db_table': 'accounts_planchangerequest',
                        'verbose_name': 'plan change request',
                        'verbose_name_plural': 'plan change requests',
                        'ordering': ['-created_at', '-id'],
                        'constraints': [models.UniqueConstraint(condition=models.Q(('status', 'pending')), fields=('mailbox',), name='planrequest_one_pending_per_mailbox')],
                    },
                ),
            ],
            database_operations=[],
        ),
    ]
