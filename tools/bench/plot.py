#!/usr/bin/python3
"""Charts from atlas-bench JSON (docs/atlas-bench.md): PNG files for docs/benchmarks.md.

  tools/bench/plot.py percentiles OUT.png RUN.json [RUN.json ...]   latency percentiles per zone
  tools/bench/plot.py mean-by-zone OUT.png RUN.json [RUN.json ...]  mean latency per zone, grouped
  tools/bench/plot.py timeline OUT.png RUN.json                     p50/p99 per zone over time
  tools/bench/plot.py throughput OUT.png RUN.json [RUN.json ...]    ops/s against connections

Each RUN.json is one `atlas-bench --json` output; its label is the file name without .json
(name files after the system or configuration: wpaxos.json, etcd.json, ...). atlas-bench keeps
percentiles, not samples, so the "CDF" is drawn through min, p50, p90, p99, p99.9 and max.
Needs matplotlib (Debian: python3-matplotlib; installed on first use when run as root).
"""
import json
import os
import subprocess
import sys


def matplotlib_pyplot():
    try:
        import matplotlib
    except ImportError:
        if os.geteuid() != 0:
            sys.exit("plot.py: needs python3-matplotlib (sudo apt-get install python3-matplotlib)")
        subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends",
                        "python3-matplotlib"], check=True, stdout=subprocess.DEVNULL)
        import matplotlib
    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt
    return plt


def load(path):
    with open(path) as f:
        run = json.load(f)
    run["label"] = os.path.splitext(os.path.basename(path))[0]
    return run


PERCENTILES = [("min", 0.0), ("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("p999", 0.999),
               ("max", 1.0)]


def percentiles(out, runs, plt):
    zones = list(runs[0]["zones"])
    fig, axes = plt.subplots(1, len(zones), figsize=(3.2 * len(zones), 3.4), sharey=True,
                             squeeze=False)
    for ax, zone in zip(axes[0], zones):
        for run in runs:
            lat = run["zones"].get(zone, {}).get("latency_us")
            if not lat:
                continue
            xs = [lat[k] / 1000 for k, _ in PERCENTILES]
            ax.plot(xs, [q for _, q in PERCENTILES], marker="o", label=run["label"])
        ax.set_title(zone)
        ax.set_xscale("log")
        ax.set_xlabel("latency (ms)")
        ax.grid(True, alpha=0.3)
    axes[0][0].set_ylabel("fraction of requests")
    axes[0][-1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)


def mean_by_zone(out, runs, plt):
    zones = list(runs[0]["zones"])
    width = 0.8 / len(runs)
    fig, ax = plt.subplots(figsize=(1.6 * len(zones) + 2, 3.6))
    for i, run in enumerate(runs):
        means = [run["zones"].get(z, {}).get("latency_us", {}).get("mean", 0) / 1000 for z in zones]
        ax.bar([x + i * width for x in range(len(zones))], means, width, label=run["label"])
    ax.set_xticks([x + width * (len(runs) - 1) / 2 for x in range(len(zones))], zones)
    ax.set_ylabel("mean latency (ms)")
    ax.legend(fontsize=8)
    ax.grid(True, axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=110)


def timeline(out, runs, plt):
    run = runs[0]
    series = run["series"]
    step = float(series.get("interval_s", 1))
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 5), sharex=True)
    for zone, s in series["zones"].items():
        t = [i * step for i in range(len(s["p50_us"]))]
        # Seconds without requests from a zone (idle under shift) leave a gap, not a zero.
        idle = [n == 0 for n in s.get("ops", [1] * len(t))]
        nan = float("nan")
        top.plot(t, [nan if i else v / 1000 for v, i in zip(s["p50_us"], idle)], label=zone)
        bottom.plot(t, [nan if i else v / 1000 for v, i in zip(s["p99_us"], idle)], label=zone)
    hot = series.get("hot_zone")
    if hot:  # shade the seconds where the hot zone changed
        for i in range(1, len(hot)):
            if hot[i] != hot[i - 1]:
                for ax in (top, bottom):
                    ax.axvline(i * step, color="grey", linestyle=":", linewidth=1)
    top.set_ylabel("p50 (ms)")
    bottom.set_ylabel("p99 (ms)")
    bottom.set_xlabel("time (s)")
    for ax in (top, bottom):
        ax.set_yscale("log")
        ax.grid(True, alpha=0.3)
    top.legend(fontsize=8, ncol=5)
    top.set_title(run["label"])
    fig.tight_layout()
    fig.savefig(out, dpi=110)


def throughput(out, runs, plt):
    groups = {}
    for run in runs:
        system = run.get("system", run["label"])
        groups.setdefault(system, []).append((run["connections"] * len(run["zones"]),
                                              run["ops_per_sec"]))
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    for system, points in sorted(groups.items()):
        points.sort()
        ax.plot([c for c, _ in points], [o for _, o in points], marker="o", label=system)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("connections")
    ax.set_ylabel("ops/s")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)


def main():
    kinds = {"percentiles": percentiles, "mean-by-zone": mean_by_zone, "timeline": timeline,
             "throughput": throughput}
    if len(sys.argv) < 4 or sys.argv[1] not in kinds:
        sys.exit(__doc__)
    runs = [load(p) for p in sys.argv[3:]]
    kinds[sys.argv[1]](sys.argv[2], runs, matplotlib_pyplot())
    print(f"wrote {sys.argv[2]}")


if __name__ == "__main__":
    main()
