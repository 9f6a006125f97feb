"""Sending mail through the configured SMTP server (PALIMPSEST_SMTP_*)."""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage

from infra.settings import Settings

SMTP_TIMEOUT = 30


class Mailer:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    @property
    def configured(self) -> bool:
        return self._settings.smtp_host is not None

    def send(self, to: str, subject: str, body: str) -> None:
        """Sends one plain-text message; raises OSError / smtplib.SMTPException on failure."""
        settings = self._settings
        assert settings.smtp_host is not None
        message = EmailMessage()
        message["From"] = settings.smtp_from
        message["To"] = to
        message["Subject"] = subject
        message.set_content(body)
        if settings.smtp_tls == "ssl":
            smtp: smtplib.SMTP = smtplib.SMTP_SSL(
                settings.smtp_host,
                settings.smtp_port,
                timeout=SMTP_TIMEOUT,
                context=ssl.create_default_context(),
            )
        else:
            smtp = smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=SMTP_TIMEOUT)
        with smtp:
            if settings.smtp_tls == "starttls":
                smtp.starttls(context=ssl.create_default_context())
            if settings.smtp_user:
                smtp.login(settings.smtp_user, settings.smtp_password or "")
            smtp.send_message(message)
