"""The second factor every staff user must pass after the password: an authenticator app
(TOTP), a security key (WebAuthn) or a one-time recovery code.

``services`` changes devices (each change audited), ``views`` and ``forms`` are the pages
under /accounts/two-factor/, ``web.access.staff_required`` is what enforces it."""
