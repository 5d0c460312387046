"""One exception tree for the whole box, each error with a stable string code.

    ApplianceError(code, detail)
    ├── ConfigError        bad configuration or practice file: the user must fix a file
    ├── ScenarioError      bad simulate scenario (file, line and problem in the message)
    ├── ModelError         a model file is missing, corrupt, or fails to load
    ├── StoreError         the SQLite store refused an operation
    │   └── SlotTaken      the slot was given to someone else in the meantime
    ├── LineError          the line driver lost its device or the call
    ├── SpeechError        recognition or synthesis failed for one utterance
    └── SyncError          the cloud agenda refused or could not be reached
        └── SyncConflict   the cloud has something else at that time (sync/adapter.py)

The code is what goes into call events and the web page; the message is for people.
Boundaries wrap foreign exceptions: ``raise SyncError("fhir-conflict", detail) from err``.
"""

from __future__ import annotations


class ApplianceError(Exception):
    """Base of every error the box raises on purpose."""

    default_code = "error"

    def __init__(self, code: str | None = None, detail: str = "") -> None:
        self.code = code or self.default_code
        self.detail = detail
        super().__init__(f"{self.code}: {detail}" if detail else self.code)


class ConfigError(ApplianceError):
    default_code = "config-invalid"

    def __init__(self, detail: str, code: str | None = None) -> None:
        super().__init__(code, detail)


class ScenarioError(ApplianceError):
    default_code = "scenario-invalid"

    def __init__(self, detail: str, code: str | None = None) -> None:
        super().__init__(code, detail)


class ModelError(ApplianceError):
    default_code = "model-error"


class StoreError(ApplianceError):
    default_code = "store-error"


class SlotTaken(StoreError):
    default_code = "slot-taken"


class LineError(ApplianceError):
    default_code = "line-error"


class SpeechError(ApplianceError):
    default_code = "speech-error"


class SyncError(ApplianceError):
    """``retry``: worth trying again later (unreachable, 5xx, 429), or refused for good."""

    default_code = "sync-error"

    def __init__(self, code: str | None = None, detail: str = "", *, retry: bool = False) -> None:
        super().__init__(code, detail)
        self.retry = retry
