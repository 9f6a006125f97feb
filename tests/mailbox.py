"""A real SMTP server (aiosmtpd) on a free port that keeps what it receives, for tests."""

from __future__ import annotations

import email
import email.policy
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from aiosmtpd.controller import Controller

from tests.live_server import free_port


@dataclass(frozen=True)
class Mail:
    to: list[str]
    subject: str
    body: str

    def link(self) -> str:
        found = re.search(r"https?://\S+", self.body)
        assert found, self.body
        return found.group(0)


@dataclass
class Mailbox:
    port: int = field(default_factory=free_port)
    received: list[Mail] = field(default_factory=list)
    _arrived: threading.Condition = field(default_factory=threading.Condition)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        mail = Mail(list(envelope.rcpt_tos), str(message["Subject"]), message.get_content())
        with self._arrived:
            self.received.append(mail)
            self._arrived.notify_all()
        return "250 Message accepted for delivery"

    def wait_for(self, to: str, subject_word: str, timeout: float = 20) -> Mail:
        """The first message to `to` whose subject holds `subject_word`, taken out of the box."""
        deadline = time.monotonic() + timeout
        with self._arrived:
            while True:
                for mail in self.received:
                    if to in mail.to and subject_word.lower() in mail.subject.lower():
                        self.received.remove(mail)
                        return mail
                left = deadline - time.monotonic()
                assert left > 0, f"no mail to {to} about {subject_word!r}: {self.received}"
                self._arrived.wait(left)

    def start(self) -> tuple[Mailbox, Controller]:
        controller = Controller(self, hostname="127.0.0.1", port=self.port)
        controller.start()
        return self, controller
