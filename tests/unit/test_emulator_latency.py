"""The emulator's latency knobs: a fixed part and a uniform jitter (the bench's realistic
upstream answers in 50-150 ms, as Google over the internet)."""

from __future__ import annotations

import pytest

from sidecar.emulator.faults import Faults


def test_jitter_is_a_knob_of_its_own_and_makes_the_upstream_faulty() -> None:
    faults = Faults.from_knobs({"latency_ms": 50, "latency_jitter_ms": 100})
    assert (faults.latency_ms, faults.latency_jitter_ms) == (50, 100)
    assert faults.active, "a jittered upstream is not the healthy fast path"
    assert Faults.from_knobs({"latency_jitter_ms": 1}).active
    assert faults.to_json()["latency_jitter_ms"] == 100
    with pytest.raises(ValueError, match="latency_jitter_ms"):
        Faults.from_knobs({"latency_jitter_ms": -1})
