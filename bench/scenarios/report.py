"""Summaries of loadgen JSON files for the scenario scripts.

    python3 report.py row LABEL FILE STREAM       one table row for a stream
    python3 report.py get FILE STREAM PATH        one figure, e.g. latency_ms.p99
"""
import json
import sys


def stream(path, name):
    with open(path) as f:
        data = json.load(f)
    for s in data["streams"]:
        if s["name"] == name:
            return s
    sys.exit(f"report.py: no stream {name!r} in {path}")


def get(s, dotted):
    for part in dotted.split("."):
        s = s[part]
    return s


def main(argv):
    if argv[1] == "row":
        label, path, name = argv[2:5]
        s = stream(path, name)
        empty = {"p50": float("nan"), "p99": float("nan")}
        lat, ttfb = s["latency_ms"], s["ttfb_ms"]
        lat = lat if "p50" in lat else empty      # no 2xx response at all
        ttfb = ttfb if "p50" in ttfb else empty
        reasons = ",".join(f"{k}:{v}" for k, v in sorted(s["reasons"].items())) or "-"
        print(f"{label:<34} {s['ok']:>6} {s['rejected_429']:>5} {s['errors'] + s['other_status']:>4} "
              f"{lat['p50']:>9.1f} {lat['p99']:>9.1f} {ttfb['p99']:>9.1f} {s['output_tokens_per_s']:>9.0f}  {reasons}")
    elif argv[1] == "header":
        print(f"{'case':<34} {'ok':>6} {'429':>5} {'err':>4} {'p50_ms':>9} {'p99_ms':>9} "
              f"{'ttfb99':>9} {'tok/s':>9}  429 reasons")
    elif argv[1] == "get":
        print(get(stream(argv[2], argv[3]), argv[4]))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
