"""What an online policy must pay on a role that scales to zero (issue 20, part 5).

The sessions bound (dynoscaler.sim.sessions) knows every job's length and starts
each session just in time for its jobs' true lengths. An online policy learns a
job's length only when the job ends, and sees the end only at a scrape. Two
bounds for narrower classes of policies, each the same dynamic programme:

- length-blind: policies that keep in time every job up to q long whatever the
  lengths turn out to be must start each job by its deadline less max(s, q); q
  is a quantile of the trace's own job lengths (0.99: the 1% a role's miss ratio
  lets go);
- seen idle: those policies that also stop a dyno only once a scrape showed it
  idle (every policy of the simulator; on Heroku a dyno stopped while it works
  has 30 s to finish) pay until the evaluation after the first scrape after
  their last job's end.

And what a policy of that class can reach (`deferring`): it boots a dyno when
the first waiting job, planned q long, must start (or once it is seen, if
later), serves every job that arrives before a scrape shows the dyno idle, and
stops it at the evaluation after that scrape.

Neither bound needs a boot before a job can be seen when every job's latest start
less the boot is after the first scrape after its arrival plus the lag
(`foresight_free`): a run's latest start is its jobs' least, each no earlier
than the first job's.

    python -m dynoscaler.sim.online_bound quiet-night --seeds 1-20
"""

from __future__ import annotations

import argparse
import heapq
from dataclasses import dataclass

import numpy as np

from dynoscaler.sim import scenario as scenarios
from dynoscaler.sim.cli import seed_range
from dynoscaler.sim.engine import simulate
from dynoscaler.sim.lower_bound import due_jobs, lower_bound
from dynoscaler.sim.scenario import Scenario
from dynoscaler.sim.sessions import Sight, seen_at, session_bound


@dataclass(frozen=True)
class OnlineBound:
    clairvoyant: float  # lower_bound's dyno-seconds (the sessions bound on these roles)
    plan_length: float  # q: the length every job is planned for
    length_blind: float
    seen_idle: float
    foresight_free: bool  # no session of either bound boots before its first job is seen
    deferring: float  # the dyno-seconds of the deferring policy
    deferring_within: float  # its share of jobs within the deadline


def online_bound(
    scenario: Scenario, seed: int | None = None, quantile: float = 0.99
) -> OnlineBound | None:
    """The bounds on the scenario's trace; None where the sessions bound does not apply
    (min_dynos above 0, too many jobs, a role with sizes)."""
    role, observation = scenario.role, scenario.observation
    jobs = due_jobs(scenario, seed)
    clairvoyant = lower_bound(scenario, seed)
    if role.min_dynos > 0 or jobs is None or clairvoyant is None or not jobs[0].size:
        return None
    arrivals, services = jobs
    plan = float(np.quantile(services, quantile))
    sight = (observation.scrape_interval, observation.evaluation_lag)
    common = (arrivals, services, role.target_deadline, role.boot_time, scenario.initial_dynos > 0)
    blind = session_bound(*common, plan_length=plan)
    seen = session_bound(*common, plan_length=plan, sight=sight)
    latest_boot = arrivals + role.target_deadline - np.maximum(services, plan) - role.boot_time
    cost, within = deferring(*common[:4], role.concurrency, plan, sight)
    return OnlineBound(
        clairvoyant=clairvoyant.dyno_seconds,
        plan_length=plan,
        length_blind=max(blind, clairvoyant.dyno_seconds),
        seen_idle=max(seen, clairvoyant.dyno_seconds),
        foresight_free=bool(np.all(latest_boot >= seen_at(arrivals, sight))),
        deferring=cost,
        deferring_within=within,
    )


def deferring(
    arrivals: np.ndarray,
    services: np.ndarray,
    deadline: float,
    boot: float,
    concurrency: int,
    plan: float,
    sight: Sight,
) -> tuple[float, float]:
    """Dyno-seconds and share within the deadline of the deferring policy, one dyno of
    `concurrency` slots at a time (jobs in arrival order)."""
    a, s = np.asarray(arrivals, dtype=float), np.asarray(services, dtype=float)
    cost, late, i = 0.0, 0, 0
    while i < a.size:
        request = max(seen_at(a[i], sight), a[i] + deadline - plan - boot)
        free = [request + boot] * concurrency  # when each slot is next free
        last_end = free[0]
        while i < a.size and (a[i] < request + boot or a[i] < seen_at(last_end, sight) - sight[1]):
            start = max(a[i], heapq.heappop(free))
            heapq.heappush(free, start + s[i])
            last_end = max(last_end, start + s[i])
            late += start + s[i] - a[i] > deadline
            i += 1
        cost += seen_at(last_end, sight) - request
    return cost, 1.0 - late / a.size


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("scenario", help="a shipped scenario name or a YAML file")
    parser.add_argument("--seeds", type=seed_range, default=None, metavar="FIRST-LAST")
    parser.add_argument("--quantile", type=float, default=0.99, help="q's quantile (0.99)")
    parser.add_argument("--policy", action="append", help="policies to price against the bounds")
    args = parser.parse_args(argv)
    scenario = scenarios.load(args.scenario)
    policies = args.policy or ["dynoscaler"]
    print(_header(policies))
    for seed in args.seeds or (scenario.seed,):
        bound = online_bound(scenario, seed, args.quantile)
        if bound is None:
            print(f"| {seed} | no sessions bound for this role |")
            continue
        runs = [simulate(scenario, name, seed) for name in policies]
        print(_row(seed, bound, runs))
    return 0


def _header(policies: list[str]) -> str:
    columns = ["seed", "q (s)", "clairvoyant", "length-blind", "seen idle", "foresight-free"]
    columns += ["deferring: within, × clairvoyant"]
    columns += [f"{name}: within, × clairvoyant, × seen idle" for name in policies]
    return "| " + " | ".join(columns) + " |\n|" + "---:|" * len(columns)


def _row(seed: int, bound: OnlineBound, runs: list) -> str:
    cells = [
        str(seed),
        f"{bound.plan_length:.1f}",
        f"{bound.clairvoyant:,.0f}",
        f"{bound.length_blind:,.0f}",
        f"{bound.seen_idle:,.0f}",
        "yes" if bound.foresight_free else "no",
        f"{bound.deferring_within:.2%}, {bound.deferring / bound.clairvoyant:.3f}",
    ]
    cells += [
        f"{run.within_share:.2%}, {run.dyno_seconds / bound.clairvoyant:.3f}, "
        f"{run.dyno_seconds / bound.seen_idle:.3f}"
        for run in runs
    ]
    return "| " + " | ".join(cells) + " |"


if __name__ == "__main__":
    raise SystemExit(main())
