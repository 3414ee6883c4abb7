"""Load, small: bench/load.py's harness at its --quick sizes (`make load` runs the full sizes).

Concurrent streams through one real mitmdump with the addon, every text exact; and
one long stream with the addon's default options while mitmdump's VmRSS is sampled,
which must stay flat after the warm-up. The harness starts and ends its own
upstream and mitmdump processes (bench/upstream.py, bench/bench.py's launcher).
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from bench import load

pytestmark = pytest.mark.e2e


def test_concurrent_streams_exact():
    """40 streams at once through one mitmdump: each text exactly the upstream's, one [DONE] each."""
    sizes = replace(load.QUICK, soak_events=0)
    out = load.run(sizes)
    summary = load.summary(out)
    print(summary)
    assert out.passed, summary
    assert out.load.ok == sizes.streams
    # The upstream released the responses only once every request was there.
    assert out.load.peak_open == sizes.streams, summary


def test_soak_memory_flat():
    """300,000 events in one stream, default normalize_keep_bytes: VmRSS within 20 MiB after the warm-up."""
    sizes = replace(load.QUICK, streams=0)
    out = load.run(sizes)
    summary = load.summary(out)
    print(summary)
    assert out.passed, summary
    assert len(out.soak.held()) >= load.SOAK_SAMPLES * 0.8, summary


def test_flatness_check_sees_growth():
    """The soak's verdict, on made-up samples: flat passes, steady growth fails, too few samples fail."""
    mib = 1024

    def result(rss_mib):
        res = load.SoakResult(events=100_000, limit_mib=20)
        res.samples = [("before", 0, 0.0, 70 * mib)] + [
            ("during", (i + 1) * 5_000, i * 0.1, int(r * mib)) for i, r in enumerate(rss_mib)
        ]
        return res

    warm_then_flat = [90, 95] + [80 + (i % 3) for i in range(18)]  # the warm-up's peak is not held against it
    assert result(warm_then_flat).flatness() is None
    growing = [80 + 1.5 * i for i in range(20)]
    assert "not flat" in result(growing).flatness()
    assert "cannot tell" in result([80, 80]).flatness()
