"""``appliance simulate``: one scripted call through a complete in-process box.

Exit status: 0 when the scenario's expectations hold, 1 when they do not, 2 when
the scenario (or the practice it names) is wrong. The JSON report's shape is a
public contract (README, "The simulate report").
"""

from __future__ import annotations

import asyncio
import json
import logging
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any, Final

from appliance.app import Appliance
from appliance.call import CallResult
from appliance.clock import FixedClock
from appliance.config import Config
from appliance.errors import ApplianceError, ConfigError, LineError, ScenarioError, SlotTaken, StoreError
from appliance.events import CallEnded
from appliance.line.base import LineDriver
from appliance.line.sim.line import SimLine
from appliance.simulate.caller import CallerAudio, ScriptedCaller
from appliance.simulate.devices import device_line
from appliance.simulate.emergency_rule import EmergencyInstruction
from appliance.simulate.report import build_report, says
from appliance.simulate.scenario import NOT_ANSWERED, Scenario, SeededAppointment, device_of, load_scenario
from appliance.speech.loading import SpeechModels, load_speech
from appliance.speech.tts import Synthesizer
from appliance.store import appointments
from appliance.store.inbox import URGENCIES, messages_for_call

_LOGGER = logging.getLogger(__name__)
_OFFER_WAIT_S: Final = 5.0  # caller-ID quiet time and the simulator's own start
_RING_PERIOD_MAX_S: Final = 6.0  # the slowest simulated cadence
_READY_WAIT_S: Final = 30.0  # how long the report waits for the line to be ready again
EXIT_PASSED: Final = 0
EXIT_FAILED: Final = 1
EXIT_BAD_SCENARIO: Final = 2


async def simulate(
    scenario: Scenario,
    *,
    mode: str,
    config: Config,
    speech: SpeechModels | None = None,
) -> dict[str, Any]:
    """Run the scenario's call and return its report."""
    clock = FixedClock(scenario.now)
    config = with_languages(config, scenario)
    try:
        box = Appliance(config, clock=clock, speech=speech, practice_base=scenario.path.parent)
    except ConfigError as err:
        raise ScenarioError(f"{scenario.path}: practice {scenario.practice!r}: {err.detail}") from err
    try:
        seeded = _seed(box, scenario)
        audio = None
        if mode == "audio":
            assert speech is not None
            audio = CallerAudio(_caller_voice(scenario, speech, config), scenario.caller)
        device = device_of(scenario.line)
        line_facts: dict[str, Any] | None = None
        if device is None:
            line = SimLine()
            call = line.place_call(scenario.caller_id)
            caller = ScriptedCaller(scenario, call, audio=audio, silence_s=config.speech.endpoint.no_input_s)
            incoming = await anext(line.incoming())
            result = await box.answer(incoming, line_name="sim", text_mode=mode == "text", on_event=caller.observe)
        else:
            if mode != "audio":
                raise ScenarioError(f"{scenario.path}: line {scenario.line!r} carries audio only: use --audio")
            async with device_line(device, scenario.caller_id, scenario.line_faults, config.hangup) as (device_driver, device_caller):
                caller = ScriptedCaller(scenario, device_caller, audio=audio,
                                        silence_s=config.speech.endpoint.no_input_s)
                result = await _answer_on_device(box, scenario, device_driver, caller)
                line_facts = await _line_facts(scenario, device_driver, caller, result)
        if caller.failure is not None:
            raise caller.failure
        _pair_with_script(result, caller.said_before_transcript)
        cue = next((t for t in scenario.turns if t.emergency_cue), None)
        cue_transcript = next((i for i, t in enumerate(caller.turn_before_transcript) if cue is not None and t is cue), None)
        worker = box.outbox_worker()
        if worker is not None and result.appointment_id is not None:
            # What the core's worker would do next: send the booking to the practice's
            # cloud agenda, so the report says whether it got there (synced, conflict,
            # pending while the server is unreachable).
            await asyncio.to_thread(worker.run_once)
        booking = _booking(box, result, seeded)
        message = _message(box, result)
        load_s = speech.load_s if speech else {}
        # The instruction may be said in any language the call was offered in.
        number = box.practice.emergency_number
        offered = scenario.languages or (config.speech.language,)
        instruction = EmergencyInstruction(tuple(
            pattern for language in offered
            for pattern in EmergencyInstruction.from_templates(language, number).sentences))
        report = build_report(scenario, mode, result, booking, message, load_s, line_facts,
                              emergency_instruction=instruction, cue_transcript=cue_transcript,
                              appointments=_seeded_after(box, seeded))
        failures = report["expect"]["failures"] + language_failures(scenario, config.speech.language, report)
        report["expect"] = {"passed": not failures, "failures": failures}
        return report
    finally:
        box.close()


def language_failures(scenario: Scenario, main_language: str, report: dict[str, Any]) -> list[str]:
    """The checks of ``[expect]`` about languages and the message's number and summary."""
    expect = scenario.expect
    failures: list[str] = []
    if expect.language is not None:
        changes = [e for e in report["events"] if e["kind"] == "language"]
        ended_in = changes[-1]["language"] if changes else main_language
        if ended_in != expect.language:
            failures.append(f"language: expected the call to end in {expect.language!r}, it ended in {ended_in!r}")
    message = report["message"]
    if expect.message_phone is not None:
        got = (message or {}).get("patient", {}).get("phone")
        if got != expect.message_phone.replace(" ", ""):
            failures.append(f"message_phone: expected {expect.message_phone!r}, got {got!r}")
    for words in expect.message_summary:
        if message is None or not says(message["summary"], words):
            failures.append(f"message_summary: the message's summary lacks {words!r}"
                            + ("" if message else " (no message was left)"))
    return failures


def with_languages(config: Config, scenario: Scenario) -> Config:
    """The configuration offering the scenario's ``languages`` (the practice's own first)."""
    if scenario.languages is None:
        return config
    if scenario.languages[0] != config.speech.language:
        raise ScenarioError(f"{scenario.path}: languages must start with the practice's own, "
                            f"{config.speech.language!r}")
    try:
        return replace(config, speech=replace(config.speech, languages=scenario.languages))
    except ConfigError as err:
        raise ScenarioError(f"{scenario.path}: languages: {err.detail}") from err


def _seed(box: Appliance, scenario: Scenario) -> list[tuple[SeededAppointment, int]]:
    """Book the scenario's ``[[appointment]]`` tables through the store, as real ones.

    The demo practice's invented agenda yields where a seeded appointment falls:
    its filler appointments there are cancelled (they are never synced), so the
    scenario's author need not know which demo slots happen to be taken.
    """
    seeded = []
    for wanted in scenario.appointments:
        where = f"{scenario.path}:{wanted.line}: [[appointment]]"
        try:
            practitioner = box.practice.practitioner(wanted.practitioner)
            reason = box.practice.reason(wanted.reason)
        except KeyError as err:
            raise ScenarioError(f"{where} the practice has no {err.args[0]}") from None
        start = wanted.start.astimezone(box.practice.tz)
        end = start + timedelta(minutes=reason.duration_min)
        for filler in appointments.appointments_between(box.store, start, end):
            if filler.origin == "seed" and filler.practitioner_id == practitioner.id:
                appointments.cancel(box.store, filler.id)
        request = appointments.BookingRequest(
            practitioner_id=practitioner.id, reason_id=reason.id, start=start, end=end,
            patient_last_name=wanted.last_name, patient_first_name=wanted.first_name,
            patient_birth_date=wanted.birth_date, patient_phone=wanted.phone, origin="staff",
        )  # fmt: skip
        try:
            seeded.append((wanted, appointments.book(box.store, box.practice, request).id))
        except SlotTaken:
            raise ScenarioError(f"{where} overlaps another appointment of the scenario") from None
        except StoreError as err:
            raise ScenarioError(f"{where} {err.detail}") from None
    return seeded


def _seeded_after(box: Appliance, seeded: list[tuple[SeededAppointment, int]]) -> list[dict[str, Any]]:
    """The seeded appointments as the call left them (the report's ``appointments``)."""
    out = []
    for _, appointment_id in seeded:
        appt = appointments.get_appointment(box.store, appointment_id)
        assert appt is not None  # booked above, never deleted
        out.append({"id": appt.id, "status": appt.status, "start": appt.start.isoformat(),
                    "practitioner": appt.practitioner_id, "reason": appt.reason_id,
                    "patient": {"last_name": appt.patient_last_name, "first_name": appt.patient_first_name}})
    return out


async def _answer_on_device(box: Appliance, scenario: Scenario, line: LineDriver, caller: ScriptedCaller) -> CallResult:
    """The call as the box takes it from the device; an empty result if it never could."""
    rings = scenario.line_faults.abandon_at_ring
    try:
        # A caller who gives up while it rings may never be offered (no caller ID
        # yet), or be offered and gone when the box picks up: both are "not answered".
        async with asyncio.timeout(None if rings is None else _OFFER_WAIT_S + rings * _RING_PERIOD_MAX_S):
            incoming = await anext(line.incoming())
        return await box.answer(incoming, line_name=scenario.line, on_event=caller.observe)
    except (TimeoutError, LineError, StopAsyncIteration) as err:
        if rings is None:
            raise ScenarioError(f"{scenario.path}: the box could not answer on {scenario.line}: {err}") from None
        return CallResult(call_id="", outcome=NOT_ANSWERED, appointment_id=None, emergency=None)


async def _line_facts(scenario: Scenario, line: LineDriver, caller: ScriptedCaller, result: CallResult) -> dict[str, Any]:
    """What the report says of the line: why the call ended, how fast, and whether the line came back."""
    hangup_to_end = None
    if caller.hung_up_at is not None and caller.call_ended_at is not None:
        hangup_to_end = round(max(0.0, caller.call_ended_at - caller.hung_up_at), 2)
    ended = time.monotonic()
    ready_after = None
    while time.monotonic() - ended < _READY_WAIT_S:
        if line.health().ok:
            ready_after = round(time.monotonic() - ended, 2)
            break
        await asyncio.sleep(0.1)
    ends = [e for e in result.events if isinstance(e, CallEnded)]
    return {
        "name": scenario.line,
        "answered": result.outcome != NOT_ANSWERED,
        "end_reason": ends[-1].reason if ends else None,
        "hangup_to_end_s": hangup_to_end,
        "ready_after_s": ready_after,
        "health": line.health().detail,
    }


def _caller_voice(scenario: Scenario, speech: SpeechModels, config: Config) -> Synthesizer:
    voice = scenario.caller.voice
    if voice == config.speech.voice:
        raise ScenarioError(f"{scenario.path}: [caller] voice {voice!r} is the assistant's own; choose another")
    try:
        return speech.caller_voice(voice)
    except ConfigError as err:
        raise ScenarioError(f"{scenario.path}: [caller] voice {voice!r}: {err.detail}") from err


def _pair_with_script(result: CallResult, said: list[str | None]) -> None:
    """Caller turns: ``text`` is what the scenario said, ``asr_text`` what the box heard.

    The end-pointer may cut one sentence into two turns (a pause at a comma); both
    then carry the same scenario text.
    """
    heard = [t for t in result.turns if t.speaker == "caller" and t.asr_text is not None and not t.text.startswith("[")]
    for turn, text in zip(heard, said, strict=False):
        if text is not None:
            turn.text = text


def _booking(box: Appliance, result: CallResult, seeded: list[tuple[SeededAppointment, int]]) -> dict[str, Any] | None:
    """The appointment the call booked, or else the seeded one it moved; None if neither."""
    appointment_id = result.appointment_id
    if appointment_id is None:
        moved = [i for wanted, i in seeded if _moved(box, wanted, i)]
        if not moved:
            return None
        appointment_id = moved[0]
    appt = appointments.get_appointment(box.store, appointment_id)
    practitioner = box.practice.practitioner(appt.practitioner_id)
    return {
        "id": appt.id,
        "start": appt.start.isoformat(),
        "end": appt.end.isoformat(),
        "practitioner": appt.practitioner_id,
        "practitioner_name": practitioner.display_name,
        "reason": appt.reason_id,
        "patient": {
            "last_name": appt.patient_last_name,
            "first_name": appt.patient_first_name,
            "birth_date": appt.patient_birth_date.isoformat() if appt.patient_birth_date else None,
            "phone": appt.patient_phone,
        },
        "sync_state": appt.sync_state,
    }


def _moved(box: Appliance, wanted: SeededAppointment, appointment_id: int) -> bool:
    appt = appointments.get_appointment(box.store, appointment_id)
    return appt is not None and appt.status == "booked" and appt.start != wanted.start


def _message(box: Appliance, result: CallResult) -> dict[str, Any] | None:
    """The call's most urgent message for the staff, as the inbox holds it."""
    stored = messages_for_call(box.store, result.call_id)
    if not stored:
        return None
    first = min(stored, key=lambda m: URGENCIES.index(m.urgency))
    return {
        "category": first.category,
        "urgency": first.urgency,
        "summary": first.summary,
        "transcript": first.transcript,
        "patient": first.patient,
    }


def run(
    scenario_path: Path,
    *,
    mode: str,
    json_out: Path | None,
    data_dir: Path | None,
    base_config: Config,
    speech: SpeechModels | None = None,
    echo: Callable[[str], None],
    complain: Callable[[str], None],
) -> int:
    """The CLI's simulate: load, run, print, write JSON; returns the exit status."""
    try:
        scenario = load_scenario(scenario_path)
    except ScenarioError as err:
        complain(err.detail)
        return EXIT_BAD_SCENARIO
    with tempfile.TemporaryDirectory(prefix="appliance-sim-") as tmp:
        config = replace(base_config, data_dir=data_dir or Path(tmp), practice=scenario.practice)
        try:
            if mode == "audio" and speech is None:
                echo("loading speech models…")
                speech = load_speech(config.models, config.speech)
            report = asyncio.run(simulate(scenario, mode=mode, config=config, speech=speech))
        except ScenarioError as err:
            complain(err.detail)
            return EXIT_BAD_SCENARIO
        except ApplianceError as err:
            complain(str(err))
            return EXIT_FAILED
    _print(report, echo)
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(report, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    return EXIT_PASSED if report["expect"]["passed"] else EXIT_FAILED


def _print(report: dict[str, Any], echo: Any) -> None:
    echo(f"== {report['title']} ({report['mode']})")
    for turn in report["turns"]:
        if turn["speaker"] == "caller":
            echo(f"  caller    > {turn['text'] or '(silence)'}")
            if turn["asr_text"] and turn["asr_text"] != turn["text"]:
                echo(f"      heard > {turn['asr_text']}")
        else:
            latency = f" ({turn['latency_ms']} ms)" if turn["latency_ms"] is not None else ""
            echo(f"  assistant < {turn['text']}  [ask: {turn['ask']}]{latency}")
    echo(f"outcome: {report['outcome']}")
    if report["booking"]:
        b = report["booking"]
        echo(f"booking: {b['start']} with {b['practitioner_name']} ({b['reason']}), sync {b['sync_state']}")
    m = report["metrics"]
    if m["latency_ms"]:
        echo(f"latency: p50 {m['latency_p50_ms']} ms, p95 {m['latency_p95_ms']} ms over {len(m['latency_ms'])} turns")
    if report["expect"]["passed"]:
        echo("expectations: passed")
    else:
        echo("expectations: FAILED")
        for failure in report["expect"]["failures"]:
            echo(f"  - {failure}")
