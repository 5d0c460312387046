"""A real FHIR R4 server for the sync tests: sekmet-fhir, from ``.venv-cloud``.

``fhir_server`` (session fixture) starts it once on a free 127.0.0.1 port in a
temporary directory, waits for ``/fhir/metadata``, and stops it at the end
(terminate, then kill). Tests share it and stay apart by creating their own
Practitioners, Schedules and Slots through ``FhirServer``, which plays "the
practice's staff" working directly in the cloud agenda.

Strict inbound validation is on, as a real server would have it; the simulator
is off, otherwise sekmet acts on new Appointments by itself two seconds later.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.ports import free_port

REPO = Path(__file__).resolve().parents[2]
SEKMET = REPO / ".venv-cloud" / "bin" / "sekmet"
_START_TIMEOUT_S = 30.0
_STOP_TIMEOUT_S = 5.0


@dataclass
class FhirServer:
    """The running server, and what the staff can do in it."""

    base_url: str
    client: httpx.Client

    def create(self, resource: dict[str, Any]) -> dict[str, Any]:
        response = self.client.post(f"{self.base_url}/{resource['resourceType']}", json=resource)
        assert response.status_code == 201, response.text
        return response.json()

    def read(self, reference: str) -> dict[str, Any]:
        response = self.client.get(f"{self.base_url}/{reference}")
        assert response.status_code == 200, response.text
        return response.json()

    def update(self, resource: dict[str, Any]) -> dict[str, Any]:
        body = {k: v for k, v in resource.items() if k != "meta"}
        response = self.client.put(f"{self.base_url}/{resource['resourceType']}/{resource['id']}", json=body)
        assert response.status_code == 200, response.text
        return response.json()

    def delete(self, reference: str) -> None:
        response = self.client.delete(f"{self.base_url}/{reference}")
        assert response.status_code in (200, 204), response.text

    def search(self, rtype: str, **params: str) -> list[dict[str, Any]]:
        response = self.client.get(f"{self.base_url}/{rtype}", params={**params, "_count": "1000"})
        assert response.status_code == 200, response.text
        return [entry["resource"] for entry in response.json().get("entry", [])]

    def practitioner(self, family: str = "Martin") -> str:
        """A new Practitioner: ``Practitioner/<id>``."""
        made = self.create({"resourceType": "Practitioner", "name": [{"family": family}]})
        return f"Practitioner/{made['id']}"

    def schedule(self, practitioner: str) -> str:
        made = self.create({"resourceType": "Schedule", "active": True, "actor": [{"reference": practitioner}]})
        return f"Schedule/{made['id']}"

    def free_slots(self, schedule: str, first: datetime, count: int, minutes: int = 15) -> list[dict[str, Any]]:
        """``count`` consecutive free Slots from ``first`` (aware)."""
        return [
            self.create({
                "resourceType": "Slot",
                "schedule": {"reference": schedule},
                "status": "free",
                "start": (first + timedelta(minutes=minutes * n)).isoformat(),
                "end": (first + timedelta(minutes=minutes * (n + 1))).isoformat(),
            })
            for n in range(count)
        ]

    def appointment(self, practitioner: str, start: datetime, end: datetime, status: str = "booked") -> dict[str, Any]:
        """An appointment the staff made in the cloud (no identifier of the box)."""
        return self.create({
            "resourceType": "Appointment",
            "status": status,
            "description": "Made at the reception desk",
            "start": start.isoformat(),
            "end": end.isoformat(),
            "participant": [{"actor": {"reference": practitioner}, "status": "accepted"}],
        })


@contextmanager
def running_fhir_server(workdir: Path) -> Iterator[FhirServer]:
    """Start sekmet in ``workdir``, yield once it answers, stop it however the block ends."""
    if not SEKMET.exists():
        pytest.fail(f"{SEKMET} is missing: run `make cloud-servers` to install the test FHIR server")
    port = free_port()
    base_url = f"http://127.0.0.1:{port}/fhir"
    settings = workdir / "settings.yaml"
    settings.write_text(
        f"base_url: {base_url}\n"
        "host: 127.0.0.1\n"
        f"port: {port}\n"
        f"data_dir: {workdir / 'data'}\n"
        "validation: {inbound: strict}\n"
        "simulator: {enabled: false}\n"
        "log_inbound: false\n"
    )
    log_path = workdir / "sekmet.log"
    with log_path.open("wb") as log, httpx.Client(timeout=5.0) as client:
        process = subprocess.Popen(
            [str(SEKMET), "serve", "-c", str(settings)], cwd=workdir, stdout=log, stderr=subprocess.STDOUT
        )
        try:
            _wait_ready(process, client, base_url, log_path)
            yield FhirServer(base_url=base_url, client=client)
        finally:
            process.terminate()
            try:
                process.wait(timeout=_STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_ready(process: subprocess.Popen[bytes], client: httpx.Client, base_url: str, log_path: Path) -> None:
    deadline = time.monotonic() + _START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"sekmet exited with {process.returncode} before answering:\n{log_path.read_text()[-2000:]}")
        try:
            if client.get(f"{base_url}/metadata").status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    pytest.fail(
        f"sekmet did not answer {base_url}/metadata within {_START_TIMEOUT_S:g} s "
        f"(is .venv-cloud complete? run `make cloud-servers`):\n{log_path.read_text()[-2000:]}"
    )


@pytest.fixture(scope="session")
def fhir_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FhirServer]:
    with running_fhir_server(tmp_path_factory.mktemp("fhir")) as server:
        yield server
