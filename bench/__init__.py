"""The benchmark: baselines and the sidecar in one run (`make bench` → `python -m bench.run`)."""
