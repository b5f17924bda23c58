"""Render deploy/grafana/preview.png: the dashboard's panels drawn from real scraped series.

Starts an emulator process and a sidecar process (`--metrics-listen`), drives a mixed load
through it (three actions, one in audit mode, a spread of scores, duplicates, missing, invalid
and expired tokens, annotations, and a spell of upstream faults and latency), scrapes
`/metrics` every second like Prometheus would, and computes what the dashboard's PromQL
computes (rates over a window, histogram_quantile) with matplotlib:

    .venv/bin/python deploy/grafana/render_preview.py [--duration 90] [--out preview.png]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import tempfile
import time
import urllib.request
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import grpc  # noqa: E402
import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402
from recaptcha.sidecar.v1 import sidecar_pb2 as pb  # noqa: E402
from recaptcha.sidecar.v1 import sidecar_pb2_grpc  # noqa: E402

from sidecar.emulator import EmulatorControl, mint_token  # noqa: E402
from tests.support.processes import emulator_process, sidecar_process  # noqa: E402

HERE = Path(__file__).resolve().parent
DASHBOARD = HERE / "recaptcha-sidecar.json"
POLICY = """policy:
  default: {threshold: 0.5}
  actions:
    login: {threshold: 0.5}
    signup: {threshold: 0.7, mode: audit}
    checkout: {threshold: 0.3}
"""
WINDOW = 5.0  # seconds of the rate() window
Labels = tuple[tuple[str, str], ...]
Scrape = tuple[float, dict[str, dict[Labels, float]]]


def score_for(action: str, rng: random.Random) -> float:
    """Humans score high, a share of bots low; signup draws more bots (the audit case)."""
    bots = {"login": 0.15, "signup": 0.35, "checkout": 0.1}[action]
    if rng.random() < bots:
        return rng.choice((0.1, 0.1, 0.2, 0.3))
    return rng.choice((0.9, 0.9, 0.9, 0.7, 0.7, 0.6, 0.8))


async def drive(address: str, control: EmulatorControl, duration: float, rps: float) -> int:
    """The load: `rps` requests per second for `duration` seconds, faults in the middle."""
    rng = random.Random(7)
    sent = 0
    used: list[str] = []
    names: list[str] = []
    async with grpc.aio.insecure_channel(address) as channel:
        stub = sidecar_pb2_grpc.VerificationServiceStub(channel)

        async def one() -> None:
            action = rng.choices(("login", "signup", "checkout"), (6, 3, 2))[0]
            roll = rng.random()
            if roll < 0.04 and used:
                token = rng.choice(used)  # a replayed token
            elif roll < 0.06:
                token = ""
            elif roll < 0.08:
                token = "garbage-" + str(rng.random())
            elif roll < 0.09:
                token = mint_token(action=action, issued_at=time.time() - 300)
            else:
                token = mint_token(score=score_for(action, rng), action=action)
                used.append(token)
            try:
                answer = await stub.Assess(
                    pb.AssessRequest(token=token, expected_action=action), timeout=2
                )
                if answer.assessment_name and rng.random() < 0.05:
                    names.append(answer.assessment_name)
                    await stub.Annotate(
                        pb.AnnotateRequest(
                            assessment_name=answer.assessment_name,
                            annotation=pb.ANNOTATION_LEGITIMATE,
                        ),
                        timeout=2,
                    )
            except grpc.aio.AioRpcError:
                pass

        start = time.monotonic()
        phase = "calm"
        tasks: set[asyncio.Task[None]] = set()
        while (elapsed := time.monotonic() - start) < duration:
            wanted = "faults" if duration * 0.45 < elapsed < duration * 0.65 else "calm"
            if wanted != phase:
                phase = wanted
                if phase == "faults":
                    await control.set_faults(
                        "create", latency_ms=40, error_rate=0.2, error_code="UNAVAILABLE", seed=3
                    )
                else:
                    await control.clear_faults()
            task = asyncio.create_task(one())
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            sent += 1
            await asyncio.sleep(max(0.0, start + sent / rps - time.monotonic()))
        await asyncio.gather(*tasks)
    return sent


def scrape(address: str) -> dict[str, dict[Labels, float]]:
    with urllib.request.urlopen(f"http://{address}/metrics", timeout=5) as answer:
        text = answer.read().decode()
    samples: dict[str, dict[Labels, float]] = defaultdict(dict)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[sample.name][tuple(sorted(sample.labels.items()))] = sample.value
    return samples


async def scrape_every(address: str, into: list[Scrape], stop: asyncio.Event) -> None:
    while not stop.is_set():
        into.append((time.time(), await asyncio.to_thread(scrape, address)))
        await asyncio.sleep(1.0)


# --- What the PromQL does, on the scraped samples ------------------------------------------


def series(
    scrapes: list[Scrape], name: str, by: tuple[str, ...], where: Callable[[dict[str, str]], bool]
) -> tuple[list[float], dict[tuple[str, ...], list[float]]]:
    """`sum by (by) (name{where})` at every scrape (missing = 0)."""
    times = [t for t, _ in scrapes]
    out: dict[tuple[str, ...], list[float]] = defaultdict(lambda: [0.0] * len(scrapes))
    for i, (_, samples) in enumerate(scrapes):
        for labels, value in samples.get(name, {}).items():
            found = dict(labels)
            if where(found):
                out[tuple(found.get(k, "") for k in by)][i] += value
    return times, dict(out)


def rate(times: list[float], values: list[float]) -> tuple[list[float], list[float]]:
    """rate(x[WINDOW]) at each scrape that has a sample WINDOW seconds before it."""
    xs, ys = [], []
    for i, now in enumerate(times):
        j = next((k for k in range(i, -1, -1) if now - times[k] >= WINDOW), None)
        if j is None:
            continue
        xs.append(now - times[0])
        ys.append(max(0.0, values[i] - values[j]) / (now - times[j]))
    return xs, ys


def quantile(q: float, buckets: dict[float, float]) -> float | None:
    """histogram_quantile over cumulative bucket increases (le → count)."""
    bounds = sorted(buckets)
    total = buckets[bounds[-1]] if bounds else 0
    if total <= 0:
        return None
    rank = q * total
    previous_bound, previous_count = 0.0, 0.0
    for bound in bounds:
        count = buckets[bound]
        if count >= rank:
            if bound == float("inf"):
                return previous_bound
            width = count - previous_count
            return previous_bound + (bound - previous_bound) * ((rank - previous_count) / width)
        previous_bound, previous_count = bound, count
    return None


def quantile_over_time(
    scrapes: list[Scrape], name: str, q: float, where: Callable[[dict[str, str]], bool]
) -> tuple[list[float], list[float]]:
    times, by_le = series(scrapes, name, ("le",), where)
    xs, ys = [], []
    for i, now in enumerate(times):
        j = next((k for k in range(i, -1, -1) if now - times[k] >= WINDOW), None)
        if j is None:
            continue
        increase = {float(le[0]): values[i] - values[j] for le, values in by_le.items()}
        value = quantile(q, increase)
        if value is not None:
            xs.append(now - times[0])
            ys.append(value)
    return xs, ys


def panel_titles() -> list[str]:
    return [p["title"] for p in json.loads(DASHBOARD.read_text())["panels"] if p["type"] != "row"]


def render(scrapes: list[Scrape], out: Path, sent: int) -> None:
    everything: Callable[[dict[str, str]], bool] = lambda labels: True  # noqa: E731
    titles = set(panel_titles())
    fig, axes = plt.subplots(3, 3, figsize=(18, 12))
    fig.suptitle(
        f"recaptcha-sidecar dashboard preview: {sent} Assess calls in "
        f"{scrapes[-1][0] - scrapes[0][0]:.0f} s, scraped every second from --metrics-listen "
        f"(upstream faults in the shaded spell)",
        fontsize=13,
    )
    length = scrapes[-1][0] - scrapes[0][0]

    def shade(ax: Any) -> None:
        ax.axvspan(length * 0.45, length * 0.65, color="red", alpha=0.06)
        ax.set_xlabel("seconds")
        ax.grid(alpha=0.3)

    def stacked(ax: Any, title: str, name: str, by: tuple[str, ...], unit: str = "req/s") -> None:
        assert title in titles, title
        times, groups = series(scrapes, name, by, everything)
        xs: list[float] = []
        stacks, labels = [], []
        for key, values in sorted(groups.items()):
            xs, ys = rate(times, values)
            stacks.append(ys)
            labels.append(" ".join(key))
        if stacks:
            ax.stackplot(xs, *stacks, labels=labels, alpha=0.8)
        ax.set_title(title, fontsize=10)
        ax.set_ylabel(unit)
        ax.legend(fontsize=7, loc="upper left")
        shade(ax)

    stacked(axes[0][0], "Verdicts", "verdict_count_total", ("verdict",))
    stacked(axes[0][2], "Token statuses", "token_count_total", ("status",))

    ax = axes[0][1]
    title = "Would be denied in enforce mode (FAILED_AUDIT share) per action"
    assert title in titles
    times, audit = series(
        scrapes,
        "verdict_count_total",
        ("action",),
        lambda found: found["verdict"] == "FAILED_AUDIT",
    )
    _, total = series(scrapes, "verdict_count_total", ("action",), everything)
    for key, values in sorted(total.items()):
        xs, all_rate = rate(times, values)
        _, failed = rate(times, audit.get(key, [0.0] * len(times)))
        ax.plot(
            xs, [f / a if a else 0 for f, a in zip(failed, all_rate, strict=True)], label=key[0]
        )
    ax.set_title("FAILED_AUDIT share per action (would be denied in enforce mode)", fontsize=10)
    ax.yaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))
    ax.legend(fontsize=7)
    shade(ax)

    ax = axes[1][0]
    title = "Score distribution per action (dashboard range)"
    assert title in titles
    _, final = scrapes[-1]
    per_action: dict[str, dict[float, float]] = defaultdict(dict)
    for labels, value in final.get("risk_scores_bucket", {}).items():
        found = dict(labels)
        per_action[found["action"]][float(found["le"])] = value
    actions = sorted(per_action)
    width = 0.8 / max(1, len(actions))
    for n, action in enumerate(actions):
        cumulative = per_action[action]
        bounds = sorted(b for b in cumulative if b != float("inf"))
        counts = [
            cumulative[b] - (cumulative[bounds[i - 1]] if i else 0) for i, b in enumerate(bounds)
        ]
        ax.bar([i + n * width for i in range(len(bounds))], counts, width, label=action)
        ax.set_xticks(range(len(bounds)), [f"{b:.1f}" for b in bounds], fontsize=8)
    ax.set_title(title + " — score ≤ bucket", fontsize=10)
    ax.set_xlabel("score bucket (le)")
    ax.set_ylabel("assessments")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3, axis="y")

    def quantiles(
        ax: Any,
        title: str,
        name: str,
        where: Callable[[dict[str, str]], bool],
        qs: tuple[float, ...],
    ) -> None:
        assert title in titles, title
        for q in qs:
            xs, ys = quantile_over_time(scrapes, name, q, where)
            ax.plot(xs, [y * 1000 for y in ys], label=f"p{int(q * 100)}")
        ax.set_title(title, fontsize=10)
        ax.set_ylabel("ms")
        ax.legend(fontsize=7)
        shade(ax)

    quantiles(
        axes[1][1],
        "Upstream latency",
        "upstream_duration_seconds_bucket",
        lambda found: found.get("method") == "CreateAssessment",
        (0.5, 0.95, 0.99),
    )

    ax = axes[1][2]
    title = "Upstream attempts and errors by code"
    assert title in titles
    times, groups = series(scrapes, "upstream_attempts_total", ("method", "code"), everything)
    for key, values in sorted(groups.items()):
        ax.plot(*rate(times, values), label=" ".join(key))
    ax.set_title(title, fontsize=10)
    ax.set_ylabel("attempts/s")
    ax.legend(fontsize=7)
    shade(ax)

    quantiles(
        axes[2][0],
        "RPC latency",
        "rpc_server_call_duration_seconds_bucket",
        lambda found: found.get("rpc_method") == "Assess",
        (0.5, 0.99),
    )
    axes[2][0].set_title("RPC latency (Assess)", fontsize=10)

    stacked(axes[2][1], "Replay store", "replay_lookups_total", ("result",), "claims/s")

    ax = axes[2][2]
    breaker = series(scrapes, "upstream_breaker_state", ("breaker",), everything)
    depth = series(scrapes, "outbox_depth", (), everything)
    if breaker[1] or depth[1]:
        for key, values in breaker[1].items():
            ax.step(
                [t - breaker[0][0] for t in breaker[0]],
                values,
                label=f"breaker {key[0]} (0 closed, 2 open)",
            )
        for _, values in depth[1].items():
            ax.plot([t - depth[0][0] for t in depth[0]], values, label="outbox depth")
        ax.legend(fontsize=7)
        shade(ax)
    else:
        times, groups = series(scrapes, "rpc_server_active_requests", ("rpc_method",), everything)
        for key, values in sorted(groups.items()):
            ax.plot([t - times[0] for t in times], values, label=key[0])
        ax.legend(fontsize=7)
        ax.text(
            0.5,
            0.9,
            "breaker and outbox: no series in this run\n"
            "(registered by the retry layer and the outbox)",
            transform=ax.transAxes,
            ha="center",
            va="top",
            fontsize=8,
            color="gray",
        )
        shade(ax)
    ax.set_title("In flight / circuit breaker / outbox", fontsize=10)

    fig.tight_layout(rect=(0, 0, 1, 0.96))
    fig.savefig(out, dpi=80)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=90.0)
    parser.add_argument("--rps", type=float, default=80.0)
    parser.add_argument("--out", type=Path, default=HERE / "preview.png")
    args = parser.parse_args()

    emulator = emulator_process("--listen", "127.0.0.1:0")
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as config:
        config.write(POLICY)
        config.flush()
        sidecar = sidecar_process(
            "--listen",
            "127.0.0.1:0",
            "--project",
            "preview",
            "--site-key",
            "preview-key",
            "--upstream-endpoint",
            emulator.addresses()[0],
            "--upstream-plaintext",
            "--metrics-listen",
            "127.0.0.1:0",
            "--config",
            config.name,
            env={"RECAPTCHA_SIDECAR_ACCESS_LOG": "false"},
        )
    try:
        told = [json.loads(line) for line in sidecar.lines if '"metrics_listen"' in line]
        if not told:
            raise SystemExit(
                "the sidecar did not say where it serves metrics:\n" + sidecar.output()
            )
        metrics = told[0]["metrics_listen"]
        async with grpc.aio.insecure_channel(emulator.addresses()[0]) as channel:
            scrapes: list[Scrape] = []
            stop = asyncio.Event()
            scraper = asyncio.create_task(scrape_every(metrics, scrapes, stop))
            sent = await drive(
                sidecar.addresses()[0], EmulatorControl(channel), args.duration, args.rps
            )
            await asyncio.sleep(1.5)
            stop.set()
            await scraper
    finally:
        sidecar.terminate()
        emulator.terminate()
    render(scrapes, args.out, sent)
    print(f"{args.out}: {sent} calls, {len(scrapes)} scrapes")


if __name__ == "__main__":
    asyncio.run(main())
