"""One SMS in TS 27.005 text mode, GSM 03.38 when the text allows it, UCS2 otherwise.

telephony.md 2.5: ``AT+CMGF=1``, the charset, ``AT+CSMP``, then ``AT+CMGS`` with
the ``"> "`` prompt, the body and Ctrl-Z; ``+CMGS: <mr>`` comes seconds later.
Text outside the plain part of GSM 03.38 (accents, ``@``, ``$``...) goes as UCS2,
number and body in UTF-16BE hex, and ``AT+CSCS="GSM"`` is restored afterwards
because URC numbers (+CLIP) are printed in the current charset.
"""

from __future__ import annotations

import contextlib
import re
from typing import Final

from appliance.errors import LineError
from appliance.line.gsm_at import AtChannel
from appliance.line.profile import GsmSms

_SMS_PROMPT_TIMEOUT_S: Final = 5.0
_SMS_RESULT_TIMEOUT_S: Final = 60.0  # +CMGS comes seconds later, after the network acknowledges
_CMGS_REF: Final = re.compile(r"^\+CMGS:\s*(\d+)")
_SMS_NUMBER: Final = re.compile(r"^\+?[0-9]{3,20}$")
# Characters whose GSM 03.38 code is their ASCII code: safe to type in CSCS="GSM".
# Anything else (accents, @, $, _, brackets) goes as UCS2 (telephony.md 2.5).
_GSM_PLAIN: Final = frozenset(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 !\"#%&'()*+,-./:;<=>?\n\r"
)
_GSM_MAX_CHARS: Final = 160
_UCS2_MAX_CHARS: Final = 70  # one part; longer needs concatenation (PDU mode), not done here


async def send_sms(channel: AtChannel, sms: GsmSms, number: str, text: str) -> int:
    """Send one SMS; the message reference (-1 if the module gave none)."""
    if not _SMS_NUMBER.match(number):
        raise LineError("sms-number-invalid", "not a phone number")
    ucs2 = not set(text) <= _GSM_PLAIN
    limit = _UCS2_MAX_CHARS if ucs2 else _GSM_MAX_CHARS
    if not text or len(text) > limit:
        raise LineError("sms-too-long", f"{len(text)} characters; one part holds 1-{limit}")
    await _expect_ok(channel, sms.text_mode)
    await _expect_ok(channel, sms.ucs2_charset if ucs2 else sms.gsm_charset)
    try:
        await _expect_ok(channel, sms.ucs2_parameters if ucs2 else sms.gsm_parameters)
        if ucs2:
            number, text = _ucs2_hex(number), _ucs2_hex(text)
        final, info = await channel.submit_sms(
            number, text, prompt_timeout_s=_SMS_PROMPT_TIMEOUT_S, result_timeout_s=_SMS_RESULT_TIMEOUT_S
        )
    finally:
        if ucs2:
            with contextlib.suppress(LineError):
                await channel.command(sms.gsm_charset)
    if final.code != "OK":
        raise LineError("sms-refused", final.text)
    for line in info:
        if match := _CMGS_REF.match(line):
            return int(match.group(1))
    return -1


async def _expect_ok(channel: AtChannel, cmd: str) -> None:
    final, _ = await channel.command(cmd)
    if final.code != "OK":
        raise LineError("sms-refused", f"{cmd} answered {final.text}")


def _ucs2_hex(text: str) -> str:
    """Text as AT+CSCS="UCS2" wants it: UTF-16BE in upper-case hex (callpilot send_sms)."""
    return text.encode("utf-16-be").hex().upper()
