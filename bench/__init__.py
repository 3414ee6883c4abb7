"""make bench and make load: the addon measured beside a streaming passthrough (run as python -m bench.bench / bench.load)."""
