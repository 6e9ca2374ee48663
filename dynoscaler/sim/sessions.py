"""The session bound: what a role that may scale to zero pays each time it wakes up.

Jobs k in arrival order: arrival a_k, processing time s_k, deadline a_k + D; B = boot_time.
A session is a maximal stretch of time with at least one dyno billed. Every job
runs for s_k contiguous seconds on one dyno, billed while it runs, so inside one
session. A session begins with a scale-up request and a dyno serves only B after
its request, so nothing runs in a session's first B seconds (except in a session
of dynos already serving at time 0). If a session's runs span I = [x, y] (first
start to last end), it is billed at least B + (y - x): at least one dyno at every
instant.

Job k fits I = [x, y] if a run inside [a_k, a_k + D] fits in I, that is
x <= h_k = a_k + D - s_k, y >= l_k = a_k + s_k and y - x >= s_k. If every job
of a set G fits I, then y - x >= L(G) = max(max_G s_k, max_G l_k - min_G h_k).

The sessions' spans I_1 < I_2 < ... are disjoint. Exchange: let a_i <= a_j, i fit
I_p and j fit I_q with q < p (so y_q <= x_p). If s_i <= s_j, i fits I_q:
x_q <= x_p <= h_i, y_q >= l_j >= l_i, y_q - x_q >= s_j >= s_i. Otherwise j fits
I_p: x_p <= h_i <= h_j, y_p >= y_q >= l_j, y_p - x_p >= s_i > s_j.
Greedy: give each job, in arrival order, the first session it fits that is not
before the previous job's. This never fails: if job k fits only sessions before
job k-1's, let q be the last session k fits and t the first job given a session
p > q. By the exchange, k does not fit p (q is the last), so t fits q; then
greedy gave t a session <= q unless job t-1's session is after q, but t is the
first job past q. So the jobs split into runs of consecutive jobs, one run per
session, every job fitting its session, and

    billed >= sum over runs of (B + L(run)) >= f(n),
    f(j) = min over i <= j of f(i - 1) + B + L(i..j),   f(0) = 0,

with no B for the first run when dynos serve from time 0. A session is also
billed at least its work / concurrency, but the reassigned runs are not the
jobs a session really ran, so that term is left to the fluid bound.

Two options bound the online policies of the simulator instead (online_bound.py):
- plan_length q: a policy that cannot tell a job's length before it ends, and
  keeps in time every job up to q long, starts each by h_k = a_k + D - max(s_k, q).
  The exchange still holds: a_i <= a_j and s_i > s_j give h_i <= h_j.
- sight (scrape interval, evaluation lag): a policy sees a job's end at the first
  scrape after it and decides lag later, so a session ending its runs at y is
  billed to e(y) >= y + lag. With x <= min h and y >= max(x + longest, end),
  e(y) - x >= max(longest + lag, e(end) - min h), and billed >= B + that per run.
"""

from __future__ import annotations

import numpy as np

Sight = tuple[float, float]  # (scrape interval, evaluation lag): when a policy sees an end


def session_bound(
    arrivals: np.ndarray,
    services: np.ndarray,
    deadline: float,
    boot_time: float,
    serving_at_start: bool = False,
    plan_length: float = 0.0,
    sight: Sight | None = None,
) -> float:
    """Fewest dyno-seconds of the sessions that can run these jobs in time: f(n), O(n^2).
    With plan_length or sight: of an online policy's sessions (the module's docstring)."""
    order = np.argsort(arrivals, kind="stable")
    s = np.asarray(services, dtype=float)[order]
    a = np.asarray(arrivals, dtype=float)[order]
    earliest_end, latest_start = a + s, a + deadline - np.maximum(s, plan_length)
    n = a.size
    best = np.zeros(n + 1)  # best[i]: jobs before i in sessions, each run's boot included
    boots = np.full(n, float(boot_time))
    if serving_at_start and n:
        boots[0] = 0.0
    # for runs i..j (i <= j): longest job, latest earliest end, earliest latest start
    longest, end, start = np.empty(n), np.empty(n), np.empty(n)
    for j in range(n):
        np.maximum(longest[:j], s[j], out=longest[:j])
        np.maximum(end[:j], earliest_end[j], out=end[:j])
        np.minimum(start[:j], latest_start[j], out=start[:j])
        longest[j], end[j], start[j] = s[j], earliest_end[j], latest_start[j]
        span = _span(longest[: j + 1], end[: j + 1], start[: j + 1], sight)
        best[j + 1] = (best[: j + 1] + boots[: j + 1] + span).min()
    return float(best[n])


def _span(longest: np.ndarray, end: np.ndarray, start: np.ndarray, sight: Sight | None):
    """The least billed time after the boot of sessions running these runs."""
    if sight is None:
        return np.maximum(longest, end - start)
    return np.maximum(longest + sight[1], seen_at(end, sight) - start)


def seen_at(times, sight: Sight):
    """When a policy decides on what happened at `times`: the first scrape after, then the lag."""
    scrape, lag = sight
    return scrape * (np.floor(np.divide(times, scrape)) + 1) + lag
