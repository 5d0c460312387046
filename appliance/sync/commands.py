"""``appliance sync status|check|push|pull|retry``: the outbox and the cloud agenda from a console.

What the staff's page shows, for the person installing the box: is the cloud
agenda reachable, how much is waiting, what is dead, and a way to send or fetch
now instead of waiting for the core's next pass.
"""

from __future__ import annotations

from collections.abc import Callable

from appliance.config import Config
from appliance.store import Store
from appliance.store.outbox import outbox_entries, revive, sync_status


def run_sync_command(config: Config, action: str, echo: Callable[[str], None]) -> int:
    from appliance.app import Appliance

    if action == "status":
        # Only the store: this must answer even when the configuration's server is down.
        with Store.open(config.db_path) as store:
            status = sync_status(store)
            dead = outbox_entries(store, state="dead")
        reach = "" if not config.sync.enabled else (" (reachable)" if status.online else " (not reachable at the last try)")
        echo(f"cloud agenda:   {config.sync.adapter}{reach}")
        echo(f"waiting:        {status.backlog} change(s)")
        echo(f"dead letters:   {status.dead}")
        for entry in dead:
            echo(f"  #{entry.id} {entry.kind} ({entry.aggregate_key}), {entry.attempts} attempt(s): {entry.last_error}")
        echo(f"conflicts:      {status.conflicts} (appointments to call back; see the inbox)")
        echo(f"last success:   {status.last_success_at or 'never'}")
        if status.last_error:
            echo(f"last error:     {status.last_error} at {status.last_error_at}")
        return 0 if status.dead == 0 else 3
    if action == "retry":
        # The cause of the dead letters is fixed (a practitioner mapped, a password
        # changed): give each another round of attempts; the core's worker sends them.
        with Store.open(config.db_path) as store:
            revived = sum(revive(store, entry.id) for entry in outbox_entries(store, state="dead"))
        echo(f"{revived} dead letter(s) will be tried again")
        return 0
    box = Appliance(config)
    try:
        worker = box.outbox_worker()
        if worker is None or box.cloud is None:
            echo("no cloud agenda is configured ([sync] adapter = \"none\")")
            return 2
        match action:
            case "check":
                echo(box.cloud.check())
            case "push":
                result = worker.drain()
                echo(
                    f"sent {result.sent}, already there {result.already_there}, conflicts {result.conflicts},"
                    f" to retry {result.retried}, dead {result.dead}"
                )
                return 0 if result.retried == result.dead == 0 else 3
            case "pull":
                changed = worker.pull_once()
                if changed is None:
                    echo(f"pull failed: {sync_status(box.store).last_error}")
                    return 3
                echo(f"pulled: {changed} change(s) applied")
        return 0
    finally:
        box.close()
