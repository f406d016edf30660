"""The SQL of the ``dovecot_users`` view, shared by its migration and the tests.

A view keeps Dovecot's queries independent of Django's table layout, and the same SQL works on
PostgreSQL and SQLite. ``active`` is 0/1 so both databases compare it alike.
"""

CREATE = """
CREATE VIEW dovecot_users AS
SELECT m.address AS username,
       m.password_hash AS password,
       m.protocol AS protocol,
       CASE WHEN m.status = 'active' THEN 1 ELSE 0 END AS active,
       m.quota_bytes AS quota_bytes,
       m.storage_path AS storage_path,
       s.name AS server
FROM mailboxes_mailbox m
JOIN mailboxes_mailserver s ON s.id = m.mail_server_id
"""
