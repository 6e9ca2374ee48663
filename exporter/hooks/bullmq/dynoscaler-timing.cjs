// dynoscaler's job timing for BullMQ workers (Node.js): each job's processing time
// and its time from enqueue to done, into the Redis hash dynoscaler's exporter reads
// beside the queue, `dynoscaler:timing:<queue>`, in the format of Python's
// exporter/timing.py (docs/exporter.md, "Job timing"):
//
//   le:<bound>        jobs whose processing time is at most <bound> seconds (not cumulative)
//   sum, count        their seconds and number; in_progress, the jobs running now
//   total:le:<bound>  jobs done within <bound> seconds of being ready (the job's
//                     `timestamp`, plus its `delay` for a delayed job), on the grid of
//                     every second to 10 min and every minute to a day
//   total:sum         their seconds
//
// Install it on each Worker, with a (non-blocking) ioredis connection to the queue's Redis:
//
//   const { timeJobs } = require('./dynoscaler-timing.cjs');  // or: import { timeJobs } from
//   const worker = new Worker('mail', processor, { connection });
//   timeJobs(worker, new IORedis(process.env.REDIS_URL));
//
// It listens to the worker's `active`, `completed` and `failed` events, so sandboxed
// processors are timed too; a job that fails is timed (each try). A failure to
// record is logged and never fails the job. Returns a function that stops timing.
'use strict';

const KEY_PREFIX = 'dynoscaler:timing:';
const DURATION_BOUNDS = [
  0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15, 20, 30, 45, 60, 90, 120, 180,
  300, 600,
];
const TOTAL_BOUNDS = [...new Set([
  ...DURATION_BOUNDS,
  ...Array.from({ length: 600 }, (_, i) => i + 1),
  ...Array.from({ length: (86400 - 660) / 60 + 1 }, (_, i) => 660 + 60 * i),
])].sort((a, b) => a - b);

// The field counting a time on `bounds`: the first bound at least `seconds`.
function field(prefix, bounds, seconds) {
  let low = 0;
  let high = bounds.length;
  while (low < high) {
    const middle = (low + high) >> 1;
    if (bounds[middle] >= seconds) high = middle;
    else low = middle + 1;
  }
  return `${prefix}${low === bounds.length ? '+Inf' : String(bounds[low])}`;
}

function timeJobs(worker, redis, log = console) {
  const key = KEY_PREFIX + worker.name;
  const running = new Map(); // job id -> { started, ready, counted }
  const warn = (error) => {
    log.warn(`dynoscaler timing: cannot record to ${key}: ${error.message}`);
    return false;
  };

  const onActive = (job) => {
    const counted = redis.hincrby(key, 'in_progress', 1).then(() => true, warn);
    const ready = job.timestamp + (job.delay || 0);
    running.set(job.id, { started: performance.now(), ready, counted });
  };
  const onDone = (job) => {
    const run = job && running.get(job.id);
    if (!run) return; // begun before timeJobs, or failed before it ran
    running.delete(job.id);
    const seconds = (performance.now() - run.started) / 1000;
    const total = Number.isFinite(run.ready) ? Math.max(0, (Date.now() - run.ready) / 1000) : null;
    run.counted.then((counted) => {
      const transaction = redis.multi()
        .hincrby(key, field('le:', DURATION_BOUNDS, seconds), 1)
        .hincrbyfloat(key, 'sum', seconds)
        .hincrby(key, 'count', 1);
      if (total !== null) {
        transaction.hincrby(key, field('total:le:', TOTAL_BOUNDS, total), 1)
          .hincrbyfloat(key, 'total:sum', total);
      }
      if (counted) transaction.hincrby(key, 'in_progress', -1);
      return transaction.exec();
    }).catch(warn);
  };

  worker.on('active', onActive);
  worker.on('completed', onDone);
  worker.on('failed', onDone);
  return () => {
    worker.off('active', onActive);
    worker.off('completed', onDone);
    worker.off('failed', onDone);
  };
}

module.exports = { timeJobs, field, DURATION_BOUNDS, TOTAL_BOUNDS };
