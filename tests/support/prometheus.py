"""Reading a sidecar's Prometheus endpoint in tests: every sample, by name and labels."""

from __future__ import annotations

import urllib.request

from prometheus_client.parser import text_string_to_metric_families

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(address: str) -> Samples:
    """`(name, sorted labels) → value` for every sample the endpoint serves now."""
    with urllib.request.urlopen(f"http://{address}/metrics", timeout=10) as answer:
        text = answer.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def series(address: str, name: str, label: str = "") -> dict[str, float]:
    """The samples of `name`, keyed by the value of `label` ("" for an unlabelled one)."""
    return {
        dict(labels).get(label, ""): value
        for (sample, labels), value in scrape(address).items()
        if sample == name
    }


def value(address: str, name: str) -> float:
    """The sum of the samples of `name` (the value of an unlabelled one)."""
    return sum(series(address, name).values())
