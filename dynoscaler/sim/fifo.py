"""A FIFO of waiting jobs held as NumPy chunks (arrival time, processing time).

Jobs join at the back in per-tick chunks; the engine looks at the first n jobs,
starts some of them and hands back which ones it did not start, in order.
"""

from __future__ import annotations

from collections import deque

import numpy as np


class Fifo:
    def __init__(self) -> None:
        self._chunks: deque[tuple[np.ndarray, np.ndarray]] = deque()
        self._length = 0

    def __len__(self) -> int:
        return self._length

    def push(self, arrivals: np.ndarray, services: np.ndarray) -> None:
        if arrivals.size:
            self._chunks.append((arrivals, services))
            self._length += arrivals.size

    def head(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """The first n jobs (fewer if the queue is shorter), without removing them."""
        parts_a, parts_s, taken = [], [], 0
        for arrivals, services in self._chunks:
            if taken >= n:
                break
            parts_a.append(arrivals)
            parts_s.append(services)
            taken += arrivals.size
        if not parts_a:
            return np.empty(0), np.empty(0)
        if len(parts_a) > 1:
            merged = (np.concatenate(parts_a), np.concatenate(parts_s))
            for _ in parts_a:
                self._chunks.popleft()
            self._chunks.appendleft(merged)
        arrivals, services = self._chunks[0]
        return arrivals[:n], services[:n]

    def remove_from_head(self, started: np.ndarray) -> None:
        """Drop the jobs marked in `started` (a mask over the last head() result)."""
        arrivals, services = self._chunks.popleft()
        n = started.size
        count = int(np.count_nonzero(started))
        self._length -= count
        if count == n:  # all of them (the usual case): the rest of the chunk stays as it is
            kept_a, kept_s = arrivals[n:], services[n:]
        else:
            keep = ~started
            kept_a = np.concatenate((arrivals[:n][keep], arrivals[n:]))
            kept_s = np.concatenate((services[:n][keep], services[n:]))
        if kept_a.size:
            self._chunks.appendleft((kept_a, kept_s))

    def oldest_arrival(self) -> float | None:
        return float(self._chunks[0][0][0]) if self._chunks else None

    def drain(self) -> np.ndarray:
        """Arrival times of every waiting job (used once, at the end of a run)."""
        if not self._chunks:
            return np.empty(0)
        return np.concatenate([arrivals for arrivals, _ in self._chunks])
