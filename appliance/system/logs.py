"""Logging for the box: journald when systemd runs us, stderr otherwise, always redacted.

Phone numbers are masked in every record that reaches a handler, whatever its
level: the journal is readable by more people than the call log, and kept longer.
Transcripts and names are never logged at INFO in the first place; this filter is
the second line of defence for the numbers that slip into messages.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from typing import Final

# French numbers (0X XX XX XX XX, +33 X ...), and any run of 8+ digits with separators.
_PHONE: Final = re.compile(r"(?<!\w)(?:\+|00)?\d(?:[ .\-]?\d){7,14}(?!\w)")


def redact(text: str) -> str:
    return _PHONE.sub("[phone]", text)


class RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


def setup_logging(*, verbose: bool = False) -> None:
    root = logging.getLogger()
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    handler: logging.Handler
    if os.environ.get("JOURNAL_STREAM"):
        from systemd.journal import JournalHandler  # only under systemd

        handler = JournalHandler(SYSLOG_IDENTIFIER="appliance")
        handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S"))
    handler.addFilter(RedactingFilter())
    root.handlers[:] = [handler]
    for noisy in ("faster_whisper", "httpx", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
