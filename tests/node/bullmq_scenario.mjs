// BullMQ (Node.js) fills and works one queue for tests/test_exporter_bullmq.py, in
// three steps; after each it prints BullMQ's own view as one JSON line and waits for
// a line on stdin (the test reads the exporter's figures in between).
//   node bullmq_scenario.mjs REDIS_URL QUEUE
import { createInterface } from 'node:readline';
import { Queue, Worker } from 'bullmq';
import IORedis from 'ioredis';

const [url, name] = process.argv.slice(2);
const connection = new IORedis(url, { maxRetriesPerRequest: null });
const queue = new Queue(name, { connection });
const input = createInterface({ input: process.stdin });
const lines = input[Symbol.asyncIterator]();
const sleep = (ms) => new Promise((done) => setTimeout(done, ms));

async function report(step, extra = {}) {
  const counts = await queue.getJobCounts(
    'wait', 'prioritized', 'delayed', 'active', 'completed', 'failed');
  console.log(JSON.stringify({ step, at: Date.now(), counts, ...extra }));
  await lines.next();
}

// Waiting: FIFO, prioritized, LIFO, a delayed job due in 300 ms, one due in a minute.
await queue.add('first', { n: 0 });
await sleep(1000);
await queue.add('high', { n: 1 }, { priority: 1 });
await queue.add('low', { n: 2 }, { priority: 9 });
await queue.add('last-in', { n: 3 }, { lifo: true });
const soon = await queue.add('soon', { n: 4 }, { delay: 300 });
await queue.add('later', { n: 5 }, { delay: 60_000 });
await sleep(500);
const waiting = await queue.getJobs(['wait', 'prioritized']);
const ready = [...waiting, soon].map((job) => job.timestamp + job.delay);
await report('waiting', { oldest_ready: Math.min(...ready) });

// A paused queue keeps its jobs (in `wait` since BullMQ 5): still waiting work.
await queue.pause();
await report('paused');
await queue.resume();

// Two running (concurrency 2), the job named `low` fails with no attempts left.
let release;
const released = new Promise((done) => { release = done; });
const worker = new Worker(name, async (job) => {
  await released;
  if (job.name === 'low') throw new Error('fails on purpose');
}, { connection, concurrency: 2, metrics: { maxDataPoints: 10 } });
while ((await queue.getJobCounts('active')).active < 2) await sleep(20);
await report('busy');

release();
const finished = async () => Object.values(await queue.getJobCounts('completed', 'failed'));
while ((await finished()).reduce((a, b) => a + b) < 5) await sleep(20);
await report('done');
await worker.close(true);  // its jobs are done: no need to wait out its blocking read
await queue.close();
await connection.quit();
input.close();
