"""What the parser tests share: items joined where only the cut into reads differs.

How a stream is cut into reads is not behaviour: noise cut in two is still one
run of noise, audio cut in two is still the same audio.
"""

from __future__ import annotations

from appliance.line.at import AtItem, Garbage
from appliance.line.dle import Audio, DleItem


def merged_at(items: list[AtItem]) -> list[AtItem]:
    """Adjacent garbage joined."""
    out: list[AtItem] = []
    for item in items:
        if isinstance(item, Garbage) and out and isinstance(out[-1], Garbage):
            out[-1] = Garbage(out[-1].data + item.data)
        else:
            out.append(item)
    return out


def merged_dle(items: list[DleItem]) -> list[DleItem]:
    """Adjacent audio joined."""
    out: list[DleItem] = []
    for item in items:
        if isinstance(item, Audio) and out and isinstance(out[-1], Audio):
            out[-1] = Audio(out[-1].data + item.data)
        else:
            out.append(item)
    return out
