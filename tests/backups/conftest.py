from tests.backups.helpers import backup_keys, backup_settings, restore_side, s3_server, s3_settings

__all__ = ["backup_keys", "backup_settings", "restore_side", "s3_server", "s3_settings"]
