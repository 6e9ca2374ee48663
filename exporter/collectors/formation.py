"""Heroku formation (dynos per process type), polled in the background.

The Platform API allows about 4,500 requests an hour per token, so scrapes
never call it: a thread polls GET /apps/<app>/formation (heroku3, through
dynoscaler.heroku.client()) every `exporter.formation_interval` seconds per
app, and a scrape publishes the last result. The source feeds every configured
role of those apps; after a failed read of an app, that app's roles are down
(dynoscaler_source_up 0, so the rules hold them) while its last values stay
published; each app's values older than STALE_INTERVALS polls are left out, so
the scaler never acts on them, and one failing app does not hide the others.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from dynoscaler import heroku
from exporter.collectors import Feed, StaleRead, address
from exporter.metrics import Sample

STALE_INTERVALS = 3


@dataclass
class _AppFormation:
    samples: list[Sample] = field(default_factory=list)
    polled_at: float | None = None  # monotonic time of the last good read
    error: str | None = "no formation read yet"


class FormationSource:
    def __init__(self, roles: Sequence[tuple[str, str]], interval: float, timeout: float) -> None:
        """`roles`: the (app, role) pairs of the settings; their apps are polled."""
        self.address = address(heroku.api_url())
        self.feeds = tuple(sorted(Feed("heroku", app, role) for app, role in set(roles)))
        apps = dict.fromkeys(app for app, _ in roles)  # settings order, each app once
        self.interval = interval
        self.connection = heroku.client(timeout=timeout)
        self._apps: dict[str, Any] = {}  # heroku3 App objects, fetched once
        self._formations = {app: _AppFormation() for app in apps}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="formation-poller", daemon=True)

    def start(self) -> None:
        """Read once before serving (so the first scrape has dynos), then in the background."""
        self.poll()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=self.interval + 1)

    def read(self) -> list[Sample]:
        """Every app's last fresh formation; StaleRead naming the roles of failed apps."""
        oldest = time.monotonic() - STALE_INTERVALS * self.interval
        samples, errors = [], {}
        with self._lock:
            for app, formation in self._formations.items():
                fresh = formation.polled_at is not None and formation.polled_at >= oldest
                samples += formation.samples if fresh else []
                if formation.error is not None:
                    errors[app] = formation.error
                elif not fresh:
                    errors[app] = f"no formation read for {STALE_INTERVALS} intervals"
        if errors:
            message = "; ".join(f"{app}: {error}" for app, error in errors.items())
            down = frozenset((feed.app, feed.role) for feed in self.feeds if feed.app in errors)
            raise StaleRead(message, samples, down)
        return samples

    def poll(self) -> None:
        """Read every app's formation once; keep each app's result or error."""
        for app in self._formations:
            try:
                samples = self._formation(app)
            except Exception as error:  # any failure of the API or the client: that app is down
                self._apps.pop(app, None)  # fetch it again: it may have been re-created
                with self._lock:
                    self._formations[app].error = f"{type(error).__name__}: {error}"
                continue
            with self._lock:
                self._formations[app] = _AppFormation(samples, time.monotonic(), None)

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
