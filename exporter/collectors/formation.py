"""Heroku formation (dynos per process type), polled in the background.

The Platform API allows about 4,500 requests an hour per token, so scrapes
never call it: a thread polls GET /apps/<app>/formation (heroku3, through
dynoscaler.heroku.client()) every `exporter.formation_interval` seconds per
app, and a scrape publishes the last result. After a failed poll the source is
down (dynoscaler_source_up 0) while the last values stay published; values
older than STALE_INTERVALS polls are left out, so the scaler never acts on them.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from typing import Any

from dynoscaler import heroku
from exporter.collectors import StaleRead, address
from exporter.metrics import Sample

STALE_INTERVALS = 3

_log = logging.getLogger(__name__)


class FormationSource:
    backends = ("heroku",)

    def __init__(self, apps: Sequence[str], interval: float, timeout: float) -> None:
        self.address = address(heroku.api_url())
        self.apps = list(apps)
        self.interval = interval
        self.connection = heroku.client(timeout=timeout)
        self._apps: dict[str, Any] = {}  # heroku3 App objects, fetched once
        self._samples: list[Sample] = []
        self._polled_at: float | None = None  # monotonic time of the last good poll
        self._error: str | None = "no formation read yet"
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="formation-poller", daemon=True)

    def start(self) -> None:
        """Read once before serving (so the first scrape has dynos), then in the background."""
        self.poll()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=self.interval + 1)

    def read(self) -> list[Sample]:
        with self._lock:
            fresh = (
                self._polled_at is not None
                and time.monotonic() - self._polled_at <= STALE_INTERVALS * self.interval
            )
            samples = self._samples if fresh else []
            if self._error is not None:
                raise StaleRead(self._error, samples)
            if not fresh:
                raise StaleRead(f"no formation read for {STALE_INTERVALS} intervals", [])
            return samples

    def poll(self) -> None:
        """Read every app's formation once; keep the result or the error."""
        try:
            samples = [sample for app in self.apps for sample in self._formation(app)]
        except Exception as error:  # any failure of the API or the client is a down source
            self._apps.clear()  # fetch the apps again: one may have been renamed or re-created
            with self._lock:
                self._error = f"{type(error).__name__}: {error}"
            return
        with self._lock:
            self._samples, self._polled_at, self._error = samples, time.monotonic(), None

    def _formation(self, app_name: str) -> list[Sample]:
        app = self._apps.get(app_name)
        if app is None:
            app = self._apps[app_name] = self.connection.app(app_name)
        samples = []
        for process in app.process_formation():
            labels = (app_name, process.type)
            samples.append(Sample("dynoscaler_dynos", labels, process.quantity))
            samples.append(Sample("dynoscaler_dyno_size_info", (*labels, process.size), 1))
        return samples

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.poll()
