"""The dynoscaler Prometheus exporter: queues, job timing, router traffic, dynos, policy."""
