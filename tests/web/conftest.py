"""The backup pages' tests need the backup keys of tests/backups/ as well."""

from tests.backups.helpers import backup_keys, backup_settings, restore_side

__all__ = ["backup_keys", "backup_settings", "restore_side"]
