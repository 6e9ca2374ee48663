# frozen_string_literal: true

# dynoscaler's job timing for Sidekiq (6, 7 and 8): a server middleware recording
# each job's processing time and its time from enqueue to done into the Redis
# hash dynoscaler's exporter reads beside the queue, `dynoscaler:timing:<queue>`,
# in the format of Python's exporter/timing.py (docs/exporter.md, "Job timing"):
#
#   le:<bound>        jobs whose processing time is at most <bound> seconds (not cumulative)
#   sum, count        their seconds and number; in_progress, the jobs running now
#   total:le:<bound>  jobs done within <bound> seconds of their `enqueued_at`, on the
#                     grid of every second to 10 min and every minute to a day
#   total:sum         their seconds
#
# Install it in the Sidekiq server (config/initializers/sidekiq.rb):
#
#   require_relative "dynoscaler_timing"   # wherever you keep this file
#   Sidekiq.configure_server do |config|
#     config.server_middleware { |chain| chain.add Dynoscaler::SidekiqTiming }
#   end
#
# Each job costs two round trips on Sidekiq's own Redis pool. A job that fails is
# timed too (each try: Sidekiq sets `enqueued_at` again when a retry or a scheduled
# job is enqueued). A failure to record is logged and never fails the job.
module Dynoscaler
  class SidekiqTiming
    KEY_PREFIX = "dynoscaler:timing:"
    DURATION_BOUNDS = [
      0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15, 20, 30, 45, 60, 90, 120,
      180, 300, 600
    ].freeze
    TOTAL_BOUNDS = (DURATION_BOUNDS + (1..600).to_a + (660..86_400).step(60).to_a).uniq.sort.freeze
    MILLISECONDS_FROM = 1e11 # an enqueued_at above this is in milliseconds (Sidekiq 8)

    def call(_worker, job, queue)
      key = KEY_PREFIX + queue.to_s
      counted = record(key) { |redis| redis.hincrby(key, "in_progress", 1) }
      started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
      begin
        yield
      ensure
        seconds = Process.clock_gettime(Process::CLOCK_MONOTONIC) - started
        finish(key, seconds, total_seconds(job), counted)
      end
    end

    # The field counting a time on `bounds`: the first bound at least `seconds`.
    def self.field(prefix, bounds, seconds)
      bound = bounds.bsearch { |b| b >= seconds }
      return "#{prefix}+Inf" if bound.nil?

      "#{prefix}#{bound == bound.to_i ? bound.to_i : bound}"
    end

    private

    def finish(key, seconds, total, counted)
      record(key) do |redis|
        redis.multi do |transaction|
          transaction.hincrby(key, self.class.field("le:", DURATION_BOUNDS, seconds), 1)
          transaction.hincrbyfloat(key, "sum", seconds)
          transaction.hincrby(key, "count", 1)
          unless total.nil?
            transaction.hincrby(key, self.class.field("total:le:", TOTAL_BOUNDS, total), 1)
            transaction.hincrbyfloat(key, "total:sum", total)
          end
          transaction.hincrby(key, "in_progress", -1) if counted
        end
      end
    end

    # Seconds since the job was enqueued (0 when the enqueuer's clock is ahead), or nil.
    def total_seconds(job)
      enqueued = job["enqueued_at"]
      return nil unless enqueued.is_a?(Numeric)

      enqueued /= 1000.0 if enqueued > MILLISECONDS_FROM
      [Time.now.to_f - enqueued, 0.0].max
    end

    def record(key)
      Sidekiq.redis { |redis| yield redis }
      true
    rescue StandardError => e
      Sidekiq.logger.warn("dynoscaler timing: cannot record to #{key}: #{e.class}: #{e.message}")
      false
    end
  end
end
