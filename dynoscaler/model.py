"""The capacity model in Python: the mirror of prometheus/rules/capacity.yml.

Both compute, per app/role and in the same order of operations:

    look-ahead     λ' = λ + max(dλ/dt, 0) · B          (rates only rise while dynos boot;
                                                         dλ/dt 0 on less than 1m of λ)
    offered load   a  = λ' · S                          (busy slots on average)
    β                 = z(1 − miss_ratio)               (normal quantile, see staffing_beta)
    margin         m  = min(β·√a, ln(1/miss_ratio)·S/(D − S))   (β·√a alone when S ≥ D)
    drain window   W  = D − S − B                       (time left to clear the backlog)
    drain             = Q·S / max(W, S)
    aged drain        = max(Q − λ·A, 0)·S / max(D − S − A, S)   (A the oldest job's age;
                                                         0 while unknown)
    horizon        h  = B + 10 s                        (until a later decision's dynos serve)
    just in time      = (Q + P + λ'·h)·S / (h + max(W, S)) + m
    slots             = max(drain, just in time); web roles (no queue): a / ρ, ρ the
                        utilisation per dyno within target_queue_time (web_utilisation,
                        prometheus/rules/web.yml), a + m without the setting
    load term         = ceil(max(a + m, drain, aged drain) / c)   (the need if λ' lasted,
                                                         and the backlog that waited; web: a / ρ)
    floor             = current count C while slots > 60% of C·c, else min(C, load term);
                        the load term when C is unknown
    cold-start reserve R = max(2·S₁₀ + 2·10 s, S₉₉ + 10 s)   (S₁₀: S pooled over 10 min;
                                                         S₉₉: 99th percentile over 1 h)
    cold-start window V = D − B − R                     (queue roles: the oldest job's age
                                                         up to which a dyno can wait)
    later cold start  = V > 0, Q + P = 0 and λ'·B < 1 (idle, sparse), or
                        C = 0, ceil(slots / c) ≤ 1 and oldest job's age < V (deferred)
    needed            = 0 on a later cold start, else
                        max(ceil(slots / c − 1e-9), floor), at least 1 while there is any work
    desired           = needed clamped to [min_dynos, max_dynos]
    immediate         = later cold start, or C = 0 (queue roles): no scale-down window
    late at max       = (Q + P)·S + max(λ·S − M·c, 0)·W > c·(M·W + N·B)   (queue roles;
                        M max_dynos, N = min(C, M) dynos running, 0 when unknown);
                        web roles λ·S > M·c. No look-ahead, no margin.
    unmeetable        = late at max, or S ≥ D, or (queue roles) W ≤ 0

The margin: β·√a keeps P(every slot busy) ≤ miss_ratio, far more than a
deadline needs when D ≫ S. In M/M/N, P(wait > t) ≤ e^(−(N − a)·t/S), so
N − a = ln(1/miss_ratio)·S/(D − S) slots already keep the share of jobs waiting
past D − S under miss_ratio.

Just in time: another decision follows 10 s later (5 s rule evaluation, then
5 s for ScaleRole up, which fires at once and which Alertmanager passes on at
once, to reach Heroku through the webhook) and its dynos boot in B, so dynos
asked for now need only serve the jobs there now and those arriving within h,
each within its deadline, i.e. within h + W. A burst is then absorbed by the
queue as far as the deadline allows instead of being provisioned as if its
arrival rate lasted; a lasting rate keeps the queue, and so this term, up.
Following the queue alone hunts, so a scale-down waits until the slots are at
most 60% of the current slots and then goes no lower than the load term.

The aged drain: the drain gives every waiting job the whole of W, as if it had
just arrived. After a spike most of the queue is nearly as old as its oldest
job, and a scale-down sized on W strands it (a 6-minute spike: 633 jobs late on
one seed). Of the Q waiting, λ·A arrived within the oldest's age A; the rest are
taken as old as it and must be done within what is left of its deadline. It
enters the load term only, so it holds dynos already serving (a scale-down
stops there) and asks for no more than are running, nor wakes a role at zero
(with the count unknown the load term is the floor, as before).

The unmeetable flag (the DeadlineUnmeetable page) asks whether jobs will be
late, not whether the sizing's margin fits: at max_dynos, in FIFO order and
with the work as a fluid, the job arriving t seconds from now (0 ≤ t ≤ W, λ
lasting) must start by t + D − S, when M dynos have done c·(M·(t + D − S − B)
+ N·B) slot-seconds (the boot still ahead of the M − N dynos not running);
ahead of it are (Q + P + λ·t)·S. Both sides are linear in t, so the worst job
is the one arriving now or the one at W: late at max above. The look-ahead and
the margin size dynos; a rise that may stop, or a margin above max_dynos, must
not page people. λ over 1m counts a burst enqueued at once as a rate for up to
a minute (deriv of the depth), which the alert's `for: 1m` outlasts.

When an input is unknown (no arrival rate; no processing time although work is
present; a source or the exporter down) the model does not guess: it holds at
the current dyno count (raised to one dyno when work waits on a role at zero),
so missing data neither scales down nor scales up wildly. Scale-down
stabilisation is ScaleDownStabiliser's job; it lets an immediate count through.

Scale to zero (queue roles): while a cold start asked for later still meets the
deadline, an idle dyno is not needed to meet it. A role at zero lets a job wait
while it is younger than V: the next decision comes 5 s later and its data is
up to 5 s old, so its dyno is asked for within 10 s of the 20 (the rest for
Alertmanager, the webhook and the Heroku API), and boots and runs the job
before D even if it takes twice S₁₀, the mean of the last 10 minutes' jobs (the
deferral bets on one job's length, which varies: allowing for one S, it missed
1.2-1.4% of the simulated quiet night's jobs on two of six seeds; and the last
minute's S is the mean of a quiet role's last job or two, which swings with
them); a job as long as S₉₉, the 99th percentile of the last hour's jobs from
the duration histogram, still fits with the first 10 s (where one job in ten
is long, twice the mean is too short: 96.1% in time in the simulator). The
jobs arriving meanwhile share that dyno. A role with no jobs and λ'·B < 1 (the
next job expected later than a boot takes: idling until then costs more than
booting again) goes to min_dynos at once rather than after the window; at zero
the window has no dyno to keep and would only start one for a past need.
Unknown oldest age: no deferral. (At zero nothing completes: the rules give the
model the last S measured within 10m; the simulator does the same.)

A role with several queues is one RoleInputs, as the rules build it: λ and Q
are sums over the queues, S is the queues' S weighted by their completions.
"""

from __future__ import annotations

import dataclasses
import math
from collections import deque
from dataclasses import dataclass

from dynoscaler.config import RoleSettings

# Abramowitz & Stegun 26.2.23: rational approximation of the normal quantile,
# |error| < 4.5e-4. PromQL has no inverse normal function; the rules use the
# same constants so both sides compute the same beta.
_C = (2.515517, 0.802853, 0.010328)
_D = (1.432788, 0.189269, 0.001308)
_MISS_RATIO_FLOOR = 1e-9
# ceil() must not turn 2.0000000000000004 slots per dyno into 3 dynos.
_CEIL_TOLERANCE = 1e-9
# Windows (seconds) the rules can stabilise over: a PromQL range is fixed text,
# so the rules keep one max_over_time per step and a role's scale_down_window is
# rounded up to the next step (0 means no stabilisation).
STABILISATION_WINDOWS = (0, 30, 60, 120, 180, 300, 600, 900, 1200, 1800, 3600)
# Seconds after which the next decision can act: one rule evaluation (5 s) and a
# scale-up's way to Heroku (5 s: ScaleRole up fires at once, Alertmanager's
# group_wait is 0, then the webhook calls the Heroku API). Dynos asked for now
# need only serve the jobs that arrive until a later decision's dynos have booted.
DECISION_DELAY = 10.0
# A scale-down waits until the need is at most this share of the current slots.
SCALE_DOWN_BAND = 0.6


@dataclass(frozen=True)
class RoleInputs:
    arrival_rate: float | None  # jobs (or requests) per second, λ; None when unknown
    processing_seconds: float | None  # mean processing time S; None when unknown
    backlog: float  # jobs waiting, Q
    in_progress: float = 0.0
    oldest_age_seconds: float | None = None  # oldest waiting job's age; None: unknown, no deferral
    # S pooled over the last 10 min (S₁₀), for the cold-start window; None: S
    processing_seconds_10m: float | None = None
    # the 99th percentile of S over the last hour (S₉₉, from the duration histogram)
    processing_seconds_p99: float | None = None
    arrival_rate_slope: float = 0.0  # dλ/dt (jobs/s per s), for the look-ahead over boot_time
    current_dynos: int | None = None  # formation now; what the model holds at on unknown inputs
    stale: bool = False  # a source of the role (or the exporter) is down: hold


@dataclass(frozen=True)
class Capacity:
    desired_dynos: int  # clamped to [min_dynos, max_dynos], before scale-down stabilisation
    needed_dynos: int  # the unclamped need
    required_slots: float
    unmeetable: bool  # jobs will be late even at max_dynos (or D - S - B <= 0, or S >= D)
    reasons: tuple[str, ...]  # human-readable, each term with its value
    holding: bool = False  # inputs unknown: desired is the current count (not clamped)
    immediate: bool = False  # desired applies at once, without scale-down stabilisation


def staffing_beta(miss_ratio: float) -> float:
    """Square-root staffing margin: the normal quantile z with P(Z > z) = miss_ratio."""
    p = min(max(miss_ratio, _MISS_RATIO_FLOOR), 0.5)
    t = math.sqrt(-2.0 * math.log(p))
    numerator = _C[0] + t * (_C[1] + _C[2] * t)  # Horner form, as the rules compute it
    denominator = 1.0 + t * (_D[0] + t * (_D[1] + _D[2] * t))
    return t - numerator / denominator


# ln(1/0.05): the queue-time target is the p95.
_QUEUE_TIME_LOG_ODDS = 2.995732273553991


def web_utilisation(policy: RoleSettings, s: float) -> float | None:
    """The utilisation per dyno ρ that keeps the p95 of queue time under
    target_queue_time and the share of waits past D − S under miss_ratio, as
    prometheus/rules/web.yml computes it: each dyno an M/M/c queue (random routing),
    P(wait > t) = ρ^k·e^(−c·(1−ρ)·t/S), k = √(2(c+1)) − 1 (Sakasegawa), solved for
    u = ln ρ by three Newton steps from 0. None without the setting or S."""
    if policy.target_queue_time is None or s <= 0:
        return None
    c = policy.concurrency
    k = math.sqrt(2 * (c + 1)) - 1
    targets = [(policy.target_queue_time, _QUEUE_TIME_LOG_ODDS)]
    if policy.target_deadline - s > 0:
        p = min(max(policy.miss_ratio, _MISS_RATIO_FLOOR), 0.5)
        targets.append((policy.target_deadline - s, -math.log(p)))
    found = []
    for wait, log_odds in targets:
        g = wait * (c / s)
        u = -log_odds / (g + k)
        for _ in range(2):
            u = u - (u * k - g * (1 - math.exp(u)) + log_odds) / (g * math.exp(u) + k)
        found.append(math.exp(u))
    return min(found)


def is_web_role(policy: RoleSettings) -> bool:
    """Web roles scale on router requests; they have no backlog to drain."""
    return policy.requests is not None and not policy.queues


def required_capacity(inputs: RoleInputs, policy: RoleSettings) -> Capacity:
    """Dynos the role needs to finish its jobs within policy.target_deadline."""
    capacity = _capacity(inputs, policy)
    if inputs.current_dynos == 0 and not is_web_role(policy):
        return dataclasses.replace(capacity, immediate=True)
    return capacity


def _capacity(inputs: RoleInputs, policy: RoleSettings) -> Capacity:
    rate = None if inputs.arrival_rate is None else max(inputs.arrival_rate, 0.0)
    backlog = max(inputs.backlog, 0.0)
    work = backlog > 0 or inputs.in_progress > 0 or (rate is not None and rate > 0)
    if inputs.stale or rate is None or (inputs.processing_seconds is None and work):
        return _hold(inputs, policy, work)
    if inputs.processing_seconds is None:  # idle: nothing arrives, waits or runs
        return _clamped(0, 0.0, False, ("idle: no arrivals, backlog or jobs in progress",), policy)
    return _model(inputs, policy, rate, backlog, work)


def _model(
    inputs: RoleInputs, policy: RoleSettings, rate: float, backlog: float, work: bool
) -> Capacity:
    s = max(inputs.processing_seconds, 0.0)
    deadline, boot, c = policy.target_deadline, policy.boot_time, policy.concurrency
    ahead = rate + max(inputs.arrival_rate_slope, 0.0) * boot
    load = ahead * s
    beta = staffing_beta(policy.miss_ratio)
    margin = _margin(load, s, beta, policy)
    window = deadline - s - boot
    drain = backlog * s / max(window, s) if s > 0 else 0.0
    aged = _aged_drain_slots(inputs, deadline, rate, backlog, s)
    web = is_web_role(policy)
    utilisation = web_utilisation(policy, s) if web else None
    load_slots = load + margin if utilisation is None else load / utilisation
    horizon = boot + DECISION_DELAY
    jobs = backlog + inputs.in_progress
    soon = (jobs + ahead * horizon) * s / (horizon + max(window, s))
    slots = load_slots if web else max(drain, soon + margin)
    floor = _scale_down_floor(slots, _dynos(max(load_slots, drain, aged), c, work), inputs, c)
    up = _dynos(slots, c, work)
    cold_window = _cold_start_window(inputs, policy, s)
    later = _cold_start_later(inputs, policy, cold_window, ahead, jobs, up)
    needed = 0 if later else max(up, floor)
    late = _late_at_max(inputs, policy, rate, s, jobs, window)
    no_window = window <= 0 and not web
    unmeetable = late is not None or s >= deadline or no_window
    reasons = (
        f"arrival rate λ={rate:.4g}/s, look-ahead over boot {boot:g}s λ'={ahead:.4g}/s",
        f"processing time S={s:.4g}s, offered load a=λ'·S={load:.4g}",
        f"margin min(β·√a, ln(1/miss ratio)·S/(D-S))={margin:.4g} "
        f"(β={beta:.4g}, miss ratio {policy.miss_ratio:g})",
        f"backlog Q={backlog:g}, drain window W=D-S-B={window:.4g}s, drain slots={drain:.4g}",
        f"slots={slots:.4g} ("
        + (
            f"a/ρ, utilisation ρ={utilisation:.4g}"
            if utilisation is not None
            else "a+margin"
            if web
            else f"max(drain, (Q+P+λ'·h)·S/(h+W)+margin), h={horizon:g}s"
        )
        + f"), concurrency {c}: needed {needed} dyno(s) (scale-down floor {floor})",
    )
    if later:
        reasons += (later,)
    if unmeetable:
        reasons += (_unmeetable_reason(late, s, window, no_window, policy),)
    return _clamped(needed, slots, unmeetable, reasons, policy, immediate=later is not None)


def _aged_drain_slots(
    inputs: RoleInputs, deadline: float, rate: float, backlog: float, s: float
) -> float:
    """Slots the jobs older than λ explains need on dynos already serving: the
    max(Q − λ·A, 0) waiting beyond the λ·A that arrived within the oldest job's age A,
    taken as old as it, within what is left of its deadline: Q_old·S / max(D − S − A, S)
    (0 while A is unknown)."""
    age = inputs.oldest_age_seconds
    if s <= 0 or age is None:
        return 0.0
    return max(backlog - rate * age, 0.0) * s / max(deadline - s - age, s)


def _cold_start_window(inputs: RoleInputs, policy: RoleSettings, s: float) -> float:
    """V = D − B − R, R = max(2·S₁₀ + 2·DECISION_DELAY, S₉₉ + DECISION_DELAY): a job
    twice S₁₀ long with time for the decision and the API, one as long as S₉₉ with time
    for the decision (S where S₁₀ is unknown; the first term alone without S₉₉)."""
    pooled = s if inputs.processing_seconds_10m is None else inputs.processing_seconds_10m
    reserve = 2 * pooled + 2 * DECISION_DELAY
    if inputs.processing_seconds_p99 is not None:
        reserve = max(reserve, inputs.processing_seconds_p99 + DECISION_DELAY)
    return policy.target_deadline - policy.boot_time - reserve


def _cold_start_later(
    inputs: RoleInputs, policy: RoleSettings, spare: float, ahead: float, jobs: float, up: int
) -> str | None:
    """Why a queue role needs no dyno now (None: it does): a cold start that a later
    decision asks for still meets the deadline, with the oldest job younger than the
    cold-start window `spare` (_cold_start_window: age + B + R < D), and
    - nothing waits or runs and arrivals are sparse (λ'·B < 1): an idle dyno would
      wait longer for the next job (1/λ') than a new one takes to boot; or
    - the role is at zero and one dyno will do: the waiting jobs share one session.
    """
    if is_web_role(policy):
        return None
    expected = ahead * policy.boot_time
    if jobs <= 0 and expected < 1 and spare > 0:
        return f"idle, λ'·B={expected:.3g} < 1: no dyno until a job arrives (no window)"
    age = inputs.oldest_age_seconds
    if inputs.current_dynos == 0 and up <= 1 and age is not None and age < spare:
        return f"cold start deferred: oldest job {age:.4g}s old, a dyno from {spare:.4g}s"
    return None


def _scale_down_floor(slots: float, load_need: int, inputs: RoleInputs, c: int) -> int:
    """The fewest dynos a scale-down may go to: hold the current count while the slots
    are above SCALE_DOWN_BAND of its slots, else no fewer than the load term's need
    (nor more than the current count; the load term's need when the count is unknown)."""
    current = inputs.current_dynos
    if current is None:
        return load_need
    if slots > SCALE_DOWN_BAND * current * c:
        return current
    return min(current, load_need)


def _margin(load: float, s: float, beta: float, policy: RoleSettings) -> float:
    """Spare slots above the offered load: min(β·√a, ln(1/miss_ratio)·S/(D − S))."""
    square_root = beta * math.sqrt(load)
    slack = policy.target_deadline - s
    if slack <= 0:
        return square_root
    p = min(max(policy.miss_ratio, _MISS_RATIO_FLOOR), 0.5)
    return min(square_root, -math.log(p) * s / slack)


def _dynos(slots: float, concurrency: int, work: bool) -> int:
    """ceil(slots / c), at least 1 while there is any work."""
    needed = math.ceil(slots / concurrency - _CEIL_TOLERANCE)
    return max(needed, 1) if work else needed


def _late_at_max(
    inputs: RoleInputs, policy: RoleSettings, rate: float, s: float, jobs: float, window: float
) -> tuple[float, float] | None:
    """(work due, work max_dynos can do) in slot-seconds where jobs will be late even at
    max_dynos, else None. Queue roles: the work ahead of the job arriving now or W from
    now, (Q + P)·S + max(λ·S − M·c, 0)·W, against what M dynos do before it must start,
    c·(M·W + N·B), N = min(current, M) running (0 unknown), the others booting first.
    Web roles (no queue): the offered load λ·S against M·c slots."""
    slots = policy.max_dynos * policy.concurrency
    if is_web_role(policy):
        due, possible = rate * s, slots
    else:
        running = min(inputs.current_dynos or 0, policy.max_dynos)
        due = jobs * s + max(rate * s - slots, 0.0) * window
        possible = policy.concurrency * (policy.max_dynos * window + running * policy.boot_time)
    return (due, possible) if due > possible else None


def _unmeetable_reason(
    late: tuple[float, float] | None,
    s: float,
    window: float,
    no_window: bool,
    policy: RoleSettings,
) -> str:
    deadline = policy.target_deadline
    if s >= deadline:
        return f"deadline unmeetable: processing time {s:.4g}s ≥ deadline {deadline:g}s"
    if no_window:
        return f"deadline unmeetable: D-S-B={window:.4g}s leaves no time to boot and drain"
    due, possible = late
    if is_web_role(policy):
        return f"deadline unmeetable: offered load {due:.4g} slots, max_dynos has {possible:g}"
    return (
        f"deadline unmeetable: {due:.4g} slot-seconds of work ahead, "
        f"max_dynos {policy.max_dynos} can do {possible:.4g} in time"
    )


def _clamped(
    needed: int,
    slots: float,
    unmeetable: bool,
    reasons: tuple[str, ...],
    policy: RoleSettings,
    immediate: bool = False,
) -> Capacity:
    desired = min(max(needed, policy.min_dynos), policy.max_dynos)
    return Capacity(desired, needed, slots, unmeetable, reasons, immediate=immediate)


def _hold(inputs: RoleInputs, policy: RoleSettings, work: bool) -> Capacity:
    current = policy.min_dynos if inputs.current_dynos is None else inputs.current_dynos
    desired = max(current, min(1, policy.max_dynos)) if work else current
    if inputs.stale:
        missing = "inputs stale"
    elif inputs.arrival_rate is None:
        missing = "arrival rate unknown"
    else:
        missing = "processing time unknown"
    reason = f"{missing}: holding at the current {current} dyno(s)"
    if desired != current:
        reason += ", raised to 1 because work is waiting"
    return Capacity(desired, desired, 0.0, False, (reason,), holding=True)


def rules_window(seconds: float) -> float:
    """The stabilisation window the rules use for a role's scale_down_window."""
    return next((w for w in STABILISATION_WINDOWS if w >= seconds), STABILISATION_WINDOWS[-1])


class ScaleDownStabiliser:
    """Max of the desired counts over the last window_seconds (both ends included).

    Scale-up is immediate (the newest count is in the window); scale-down waits
    until every count in the window is lower. Pass rules_window(scale_down_window)
    to match the PromQL rules exactly.
    """

    def __init__(self, window_seconds: float) -> None:
        self.window_seconds = window_seconds
        self._history: deque[tuple[float, int]] = deque()

    def update(self, now: float, capacity: Capacity) -> int:
        """The desired count to act on now; capacity.immediate skips the window."""
        self._history.append((now, capacity.desired_dynos))
        while self._history[0][0] < now - self.window_seconds:
            self._history.popleft()
        if capacity.immediate:
            return capacity.desired_dynos
        return max(count for _, count in self._history)
