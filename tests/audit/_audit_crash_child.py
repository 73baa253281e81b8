"""Child process of the SIGKILL test: appends forever from several threads and prints every
acknowledged append as it returns ("<index> <event id>"), so the parent knows what was promised."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from conftest import make_event  # noqa: E402

from authchain.audit.store.sqlite import SQLiteStore  # noqa: E402

store = SQLiteStore(sys.argv[1])
lock = threading.Lock()


def report(pairs: list[tuple[int, str]]) -> None:
    with lock:
        sys.stdout.write("".join(f"{index} {event_id}\n" for index, event_id in pairs))
        sys.stdout.flush()


def single() -> None:
    while True:
        event = make_event()
        report([(store.append(event), event.id)])


def batches() -> None:
    while True:
        events = [make_event() for _ in range(17)]
        report(list(zip(store.append_many(events), (e.id for e in events), strict=True)))


print("ready", flush=True)
threads = [threading.Thread(target=single, daemon=True) for _ in range(4)]
threads.append(threading.Thread(target=batches, daemon=True))
for t in threads:
    t.start()
threading.Event().wait()
