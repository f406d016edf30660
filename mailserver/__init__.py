"""The mail-server adapter: the only code that speaks IMAP, POP3 or the doveadm HTTP API, and
that renders Dovecot's configuration and runs its process. It imports no Postamt app."""
