"""The cost model: lm-eval's requests as it runs them, the throughput table, GPU-seconds per job, shards, runtimes."""
