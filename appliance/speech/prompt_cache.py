"""Prompt cache: what the box will likely say, synthesised ahead of time and kept on disk.

Kokoro needs about a second on two x86 cores (more on a Pi 5) before the first
sample of a sentence exists, and the caller hears that second as silence. Most
of what the box says is known before the phone rings: the greeting, the fixed
questions and confirmations, the practice's own lists, and the offers of today's
and the coming days' free slots. Those are synthesised while no call is in
progress and read back in milliseconds.

- ``PromptCache``: entries on disk keyed by a hash of (text, voice, model
  identity, sample rate), checksummed, written atomically, evicted least
  recently used under a size cap. A bad entry is a miss, never an error.
- ``CachedSynthesizer``: the ``Synthesizer`` a call speaks with; a hit plays
  with no model call. It writes to disk only the phrases it was told to expect
  (the warmer's), never a sentence made up during a call: those carry the
  caller's name, birth date and number, and call audio is not kept.
- The warmer: ``prompt_texts`` lists the replies worth having ready, in the
  secretary's own words; ``prompt_pieces`` cuts them exactly as ``AudioSpeaker``
  does; ``warm_prompts`` synthesises the missing ones one at a time while
  ``idle()`` says no call is in progress; ``keep_prompts_warm`` runs it from the
  core at start and every hour (the free slots change).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import re
import struct
import threading
import time
import unicodedata
import zlib
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Final

import numpy as np

from appliance.agenda.practice import Practice
from appliance.agenda.slots import Slot
from appliance.audio.framing import float32_to_int16, int16_to_float32
from appliance.dialogue.answers import answer_question
from appliance.dialogue.booking import ANY
from appliance.dialogue.conversation import AgendaView, templates
from appliance.dialogue.secretary import Secretary
from appliance.dialogue.speakable import WEEKDAY_NAMES
from appliance.dialogue.understand import WhenPreference, parse_when
from appliance.errors import ApplianceError
from appliance.speech.tts import Synthesizer, split_for_speech
from appliance.turns import Pressed

_LOGGER = logging.getLogger(__name__)

_FORMAT: Final = "prompt-cache/1"  # in every key: a new entry format starts from an empty cache
_MAGIC: Final = b"APC1"
_HEADER: Final = struct.Struct("<4sIII")  # magic, sample rate, samples, crc32 of the samples
_SUFFIX: Final = ".pcm"
_NAME: Final = re.compile(r"[0-9a-f]{64}")
_MEMORY_BYTES: Final = 16 * 2**20  # the hottest entries (greeting, questions) also kept in RAM: no SD read
_PLAN_SHARE: Final = 0.9  # the warmer fills at most this share of the cap, leaving room to rotate
_PAUSE_S: Final = 1.0  # how often a paused warmer asks whether the call is over
_EVERY_S: Final = 3600.0  # the free slots change as the day goes and bookings come in
_JOIN_S: Final = 10.0  # at shutdown the sentence being synthesised finishes first (1-3 s)
_NICE: Final = 19

# What a caller says to get each kind of offer: the secretary's own parser turns
# them into the same wishes as in a call. The earliest first: it is asked most.
_WISHES: Final = ("le plus tôt possible", "aujourd'hui", "demain", *WEEKDAY_NAMES, "cette semaine",
                  "la semaine prochaine")
# One question per practical topic; the answers come from the practice's settings.
_QUESTIONS: Final = (
    "Quels sont vos horaires ?",
    "Quelle est votre adresse ?",
    "Comment venir au cabinet ?",
    "Qu'est-ce qu'il faut apporter ?",
    "Combien coûte la consultation ?",
    "Vous prenez de nouveaux patients ?",
    "Quand est-ce que le cabinet est fermé pour les vacances ?",
)
# Templates written for the staff's inbox, never spoken.
_NOT_SPOKEN: Final = ("summary_", "why_")


def normalize_text(text: str) -> str:
    """The form a phrase is keyed and synthesised by: NFC, single spaces.

    The synthesiser's own rewriting collapses spaces anyway; synthesising the
    normalised form keeps "the same key" and "the same audio" one thing.
    """
    return unicodedata.normalize("NFC", " ".join(text.split()))


def prompt_key(text: str, *, voice: str, model: str, sample_rate: int) -> str:
    """sha256 of everything that decides the samples: text, voice, model identity, rate."""
    blob = json.dumps([_FORMAT, normalize_text(text), voice, model, sample_rate], ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class PromptCache:
    """Synthesised phrases on disk (int16 with a checksum), least recently used out first.

    One file per entry, ``<key>.pcm``: a 16-byte header (magic, sample rate,
    sample count, crc32) then little-endian int16 samples. Written to a temporary
    name and renamed, so a reader sees a whole entry or none; the checksum
    catches what a power cut or a worn SD card does anyway, so there is no fsync
    on the way. A file's mtime is its last use, so the order survives restarts.
    Safe to share between threads.
    """

    def __init__(self, directory: Path, *, max_bytes: int, memory_bytes: int = _MEMORY_BYTES) -> None:
        if max_bytes <= 0:
            raise ValueError(f"max_bytes must be positive, got {max_bytes}")
        self.directory = Path(directory)
        self.max_bytes = max_bytes
        self._memory_max = memory_bytes
        self._lock = threading.Lock()
        self._index: OrderedDict[str, int] = OrderedDict()  # key -> file size, least recently used first
        self._memory: OrderedDict[str, np.ndarray] = OrderedDict()
        self._memory_bytes = 0
        self._total = 0
        self._usable = True
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._scan()
        except OSError as err:
            # A box that cannot cache still answers, one second slower per sentence.
            _LOGGER.error("prompt cache in %s unusable (%s): every sentence is synthesised", self.directory, err)
            self._usable = False

    def __contains__(self, key: str) -> bool:
        with self._lock:
            return key in self._index

    def __len__(self) -> int:
        with self._lock:
            return len(self._index)

    @property
    def size_bytes(self) -> int:
        with self._lock:
            return self._total

    def size_of(self, key: str) -> int:
        """Bytes the entry takes on disk; 0 if there is none."""
        with self._lock:
            return self._index.get(key, 0)

    def get(self, key: str, *, rate: int, remember: bool = True) -> np.ndarray | None:
        """The entry's int16 samples (read-only), or None: absent, corrupt, or unreadable.

        A corrupt entry is deleted, so the miss that follows writes it again.
        ``remember=False`` leaves the RAM copy alone (the warmer checking entries).
        """
        with self._lock:
            pcm = self._memory.get(key)
            if pcm is not None:
                self._memory.move_to_end(key)
                self._index.move_to_end(key)
            elif key not in self._index:
                return None
            else:
                self._index.move_to_end(key)
        path = self._path(key)
        if pcm is None:
            pcm = self._read(path, rate)
            if pcm is None:
                self._forget(key)
                return None
            if remember:
                self._remember(key, pcm)
        try:
            os.utime(path)  # the last use, for the order after a restart
        except OSError:
            pass
        return pcm

    def put(self, key: str, pcm: np.ndarray, *, rate: int, remember: bool = True) -> bool:
        """Store int16 samples under ``key``; False if it could not (disk full, too big)."""
        if pcm.dtype != np.int16 or pcm.ndim != 1:
            raise TypeError(f"expected 1-d int16 samples, got {pcm.dtype} {pcm.shape}")
        payload = pcm.astype("<i2", copy=False).tobytes()
        size = _HEADER.size + len(payload)
        if not self._usable or size > self.max_bytes:
            return False
        path = self._path(key)
        tmp = path.with_name(f".{key}.{os.getpid()}.{threading.get_ident()}.tmp")
        try:
            with open(tmp, "wb") as out:
                out.write(_HEADER.pack(_MAGIC, rate, pcm.size, zlib.crc32(payload)))
                out.write(payload)
            # Renamed under the lock, so the index and the directory never disagree
            # (a rename is a metadata update: readers of other entries wait microseconds).
            with self._lock:
                os.replace(tmp, path)
                self._total += size - self._index.pop(key, 0)
                self._index[key] = size
                self._evict_locked()
        except OSError as err:
            _LOGGER.warning("prompt cache: cannot write an entry (%s)", err.strerror or err)
            try:
                tmp.unlink(missing_ok=True)
            except OSError:
                pass
            return False
        if remember:
            frozen = pcm.copy()
            frozen.flags.writeable = False
            self._remember(key, frozen)
        return True

    # -- inside ----------------------------------------------------------------
    def _path(self, key: str) -> Path:
        return self.directory / f"{key}{_SUFFIX}"

    def _scan(self) -> None:
        entries: list[tuple[float, str, int]] = []
        for path in self.directory.iterdir():
            if path.name.endswith(".tmp"):
                path.unlink(missing_ok=True)  # a write cut short by a crash
            elif path.suffix == _SUFFIX and _NAME.fullmatch(path.stem):
                stat = path.stat()
                entries.append((stat.st_mtime, path.stem, stat.st_size))
        with self._lock:
            for _, key, size in sorted(entries):
                self._index[key] = size
                self._total += size
            self._evict_locked()  # the cap may have been lowered since

    def _read(self, path: Path, rate: int) -> np.ndarray | None:
        try:
            data = path.read_bytes()
        except OSError:
            return None
        if len(data) < _HEADER.size:
            return None
        magic, stored_rate, count, crc = _HEADER.unpack_from(data)
        payload = memoryview(data)[_HEADER.size:]
        if magic != _MAGIC or stored_rate != rate or len(payload) != 2 * count or zlib.crc32(payload) != crc:
            _LOGGER.warning("prompt cache: a damaged entry was dropped; it will be synthesised again")
            return None
        pcm = np.frombuffer(payload, dtype="<i2").astype(np.int16)
        pcm.flags.writeable = False
        return pcm

    def _forget(self, key: str) -> None:
        with self._lock:
            self._total -= self._index.pop(key, 0)
            self._drop_memory_locked(key)
            try:
                self._path(key).unlink(missing_ok=True)
            except OSError:
                pass

    def _remember(self, key: str, pcm: np.ndarray) -> None:
        if pcm.nbytes > self._memory_max:
            return
        with self._lock:
            if key not in self._index:  # evicted meanwhile
                return
            self._drop_memory_locked(key)
            self._memory[key] = pcm
            self._memory_bytes += pcm.nbytes
            while self._memory_bytes > self._memory_max:
                _, old = self._memory.popitem(last=False)
                self._memory_bytes -= old.nbytes

    def _drop_memory_locked(self, key: str) -> None:
        old = self._memory.pop(key, None)
        if old is not None:
            self._memory_bytes -= old.nbytes

    def _evict_locked(self) -> None:
        while self._total > self.max_bytes and self._index:
            key, size = self._index.popitem(last=False)
            self._total -= size
            self._drop_memory_locked(key)
            try:
                self._path(key).unlink(missing_ok=True)
            except OSError:
                pass


class CachedSynthesizer:
    """A ``Synthesizer`` that answers from the prompt cache first.

    A hit costs a file read (or nothing, from RAM) and no model call. A miss is
    synthesised by ``inner``; it is written to disk only if it is one of the
    phrases ``expect`` announced. The samples are the int16 the cache holds
    either way, so a phrase sounds the same cached or not.
    """

    def __init__(self, inner: Synthesizer, cache: PromptCache, *, voice: str, model: str) -> None:
        self.inner = inner
        self.cache = cache
        self.sample_rate = inner.sample_rate
        self.voice = voice
        self.model = model
        """Everything besides text and voice that changes the samples (``loading``)."""
        self._expected: frozenset[str] = frozenset()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def key(self, text: str) -> str:
        return prompt_key(text, voice=self.voice, model=self.model, sample_rate=self.sample_rate)

    def expect(self, texts: Iterable[str]) -> None:
        """The phrases worth keeping (replacing the previous set): a miss on one is stored."""
        expected = frozenset(normalize_text(text) for text in texts)
        with self._lock:
            self._expected = expected

    def expects(self, text: str) -> bool:
        with self._lock:
            return normalize_text(text) in self._expected

    def synthesize(self, text: str) -> np.ndarray:
        spoken = normalize_text(text)
        key = self.key(spoken)
        pcm = self.cache.get(key, rate=self.sample_rate)
        with self._lock:
            if pcm is not None:
                self.hits += 1
            else:
                self.misses += 1
            keep = spoken in self._expected
        if pcm is None:
            pcm = float32_to_int16(self.inner.synthesize(spoken))
            if keep:
                self.cache.put(key, pcm, rate=self.sample_rate)
        return int16_to_float32(pcm)

    def prepare(self, text: str) -> bool:
        """Have ``text`` on disk, checked; True if it had to be synthesised now."""
        spoken = normalize_text(text)
        key = self.key(spoken)
        if self.cache.get(key, rate=self.sample_rate, remember=False) is not None:
            return False
        pcm = float32_to_int16(self.inner.synthesize(spoken))
        self.cache.put(key, pcm, rate=self.sample_rate, remember=False)  # RAM is for what calls use
        return True

    def warm_up(self) -> None:
        self.inner.warm_up()


# -- the phrases worth having ready ---------------------------------------------


def prompt_texts(
    practice: Practice, agenda: AgendaView, now: datetime, *, language: str = "fr", awaits_cloud: bool = False
) -> list[str]:
    """Whole replies as the secretary would say them today, the most useful first.

    The greeting; every template that needs no filling; the templates filled
    with the practice's own values (emergency numbers, the reason and doctor
    questions, the practical answers); then the offers of free slots for the
    wishes callers say most, for every reason and doctor, and for each slot
    offered the "noted" and "booked" sentences. Each comes from the secretary's
    own methods, so it is worded exactly as on a call.
    """
    t = templates(language)

    def secretary() -> Secretary:
        return Secretary(practice, agenda, now, None, language)  # no caller: no caller's data in any prompt

    texts = [secretary().greet().text]
    texts += [text for key, text in t.items() if _spoken_as_is(key, text)]
    texts.append(t["emergency"].format(number=practice.emergency_number))
    texts.append(t["emergency_suicide"].format(number=practice.emergency_number, own=t["line_suicide"]))
    texts += [answer.text for q in _QUESTIONS if (answer := answer_question(q, practice, now, t)) is not None]
    texts.append(secretary().booking_reply().text)  # which reason
    texts += [secretary().booking_reply(reason.id).text for reason in practice.reasons]  # which doctor

    wishes = [when for wish in _WISHES if (when := parse_when(wish, now)) is not None]
    searches = [(reason.id, ANY, when) for when in wishes for reason in practice.reasons]
    searches += [(reason.id, p.id, when) for when in wishes for reason in practice.reasons
                 for p in practice.practitioners_for(reason.id)]
    first_offer: dict[tuple[str, datetime], tuple[str, str, WhenPreference, int]] = {}
    for reason_id, who, when in searches:
        s = secretary()
        reply = s.booking_reply(reason_id, who, when)
        texts.append(reply.text)
        if reply.ask == "choice":
            for index, slot in enumerate(s.draft.offered):
                first_offer.setdefault(_slot_id(slot), (reason_id, who, when, index))
    for reason_id, who, when, index in first_offer.values():
        s = secretary()
        s.booking_reply(reason_id, who, when)
        texts.append(s.respond(Pressed(str(index + 1))).text)  # the caller keys the slot's number
        texts.append(s.booked(0, awaits_cloud=awaits_cloud).text)
    return [text for text in texts if text]


def prompt_pieces(texts: Iterable[str]) -> list[str]:
    """The pieces ``AudioSpeaker`` synthesises for these replies, once each, in order."""
    return list(dict.fromkeys(normalize_text(p) for text in texts for p in split_for_speech(text)))


def _spoken_as_is(key: str, text: str) -> bool:
    return "{" not in text and text.rstrip().endswith((".", "?", "!", "…")) and not key.startswith(_NOT_SPOKEN)


def _slot_id(slot: Slot) -> tuple[str, datetime]:
    return slot.practitioner_id, slot.start


# -- the warmer ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WarmReport:
    pieces: int
    """Phrases worth having ready this round."""
    ready: int
    """Of them, on disk at the end (cached before, or made now)."""
    synthesized: int
    failed: int
    left_out: int
    """Beyond what the size cap holds (``speech.prompt_cache_mb``)."""
    seconds: float
    finished: bool
    """False: stopped before the end (the box is shutting down)."""


def warm_prompts(
    prompts: CachedSynthesizer,
    texts: Callable[[], Sequence[str]],
    *,
    idle: Callable[[], bool],
    stop: threading.Event,
    pause_s: float = _PAUSE_S,
) -> WarmReport:
    """Synthesise the missing pieces of ``texts()``, one at a time, only while ``idle()``.

    Blocking: run it in a thread of its own. ``idle()`` is asked before every
    piece; while it says a call is in progress the warmer waits, so it never
    competes with a live call for the CPU (at worst the piece already started
    finishes). ``stop`` ends it within one piece.
    """
    started = time.monotonic()

    def wait_until_idle() -> bool:
        while not stop.is_set():
            if idle():
                return True
            stop.wait(pause_s)
        return False

    pieces: list[str] = []
    ready = synthesized = failed = 0
    plan_bytes, budget = 0, int(prompts.cache.max_bytes * _PLAN_SHARE)

    def report(finished: bool) -> WarmReport:
        return WarmReport(len(pieces), ready, synthesized, failed, len(pieces) - ready - failed if finished else 0,
                          time.monotonic() - started, finished)

    if not wait_until_idle():
        return report(False)
    pieces = prompt_pieces(texts())
    prompts.expect(pieces)
    for piece in pieces:
        if not wait_until_idle():
            return report(False)
        try:
            synthesized += prompts.prepare(piece)
        except ApplianceError as err:  # one sentence the model fails on; the call would fall back to espeak
            failed += 1
            _LOGGER.warning("prompt cache: a phrase could not be synthesised (%s)", err.code)
            continue
        size = prompts.cache.size_of(prompts.key(piece))
        if not size:
            failed += 1  # not written (disk full): already logged by the cache
            continue
        ready += 1
        plan_bytes += size
        if plan_bytes >= budget:
            # More would push out what was just made, the most useful first.
            _LOGGER.warning("prompt cache full: %d phrases left out; raise speech.prompt_cache_mb",
                            len(pieces) - ready - failed)
            break
    return report(True)


async def keep_prompts_warm(
    prompts: CachedSynthesizer,
    texts: Callable[[], Sequence[str]],
    *,
    idle: Callable[[], bool],
    every_s: float = _EVERY_S,
) -> None:
    """``warm_prompts`` at once and then every ``every_s``, until cancelled with the box.

    Each round runs in a thread of its own at the lowest priority, not in the
    loop's executor: a round takes minutes, the executor's threads serve calls,
    and a thread's priority cannot be raised back once lowered.
    """
    loop = asyncio.get_running_loop()
    while True:
        stop = threading.Event()
        done = loop.create_future()

        def work() -> None:
            _lower_priority()
            try:
                result = warm_prompts(prompts, texts, idle=idle, stop=stop)
                if result.finished:
                    _LOGGER.info("prompt cache: %d of %d phrases ready, %d synthesised in %.0f s",
                                 result.ready, result.pieces, result.synthesized, result.seconds)
            except Exception:  # a failed round must not take the core down; the next one tries again
                if not stop.is_set():
                    _LOGGER.exception("prompt cache: warming failed")
            finally:
                try:
                    loop.call_soon_threadsafe(lambda: done.done() or done.set_result(None))
                except RuntimeError:  # the loop is already closed
                    pass

        thread = threading.Thread(target=work, name="prompt-warmer", daemon=True)
        thread.start()
        try:
            await done
            await asyncio.sleep(every_s)
        except asyncio.CancelledError:
            stop.set()
            await asyncio.to_thread(thread.join, _JOIN_S)  # before the box closes the store under it
            raise


def _lower_priority() -> None:
    """Nice this thread only (Linux schedules threads as tasks): the event loop and
    the calls' threads keep theirs. onnxruntime's own pool threads are not
    affected; pausing during calls is what keeps the CPU for them."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), _NICE)
    except (AttributeError, OSError):  # not Linux, or not permitted: the pauses still hold
        pass
