"""The daemon soak, long: one scheduler daemon with 200 entries per spawner and lock backend, under chaos.

The same driver as the CI test (``tests/soak/daemon.py``): entries every
minute, every 2 minutes and hourly, PARAMS- and CLASS-locked, failing,
timing-out and retried; chaos SIGKILLs workers and the scheduler, fills and
remounts read-only the data dir's tmpfs, restarts redis-server empty and
terminates database sessions; then the ledger of every slot. Configurations
run at once, each with its own data dir and store. Needs root (tmpfs),
redis-server and the local PostgreSQL. Prints one summary line per
configuration, a table for docs/reliability.md, and writes the reports as JSON.

    .venv/bin/python benchmarks/daemon_soak.py --minutes 20 --entries 200 \\
        --config prefork/pidfile --config prefork/redis --config prefork/database --config local/pidfile
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=int, default=20)
    parser.add_argument("--entries", type=int, default=200)
    parser.add_argument("--config", action="append", help="spawner/backend, e.g. prefork/redis (default: all six)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("daemon-soak.json"))
    args = parser.parse_args()
    import django

    django.setup()
    from tests.soak.daemon import BACKENDS, SPAWNERS, run_all

    configs = ([tuple(c.split("/", 1)) for c in args.config] if args.config
               else [(s, b) for s in SPAWNERS for b in BACKENDS])
    with tempfile.TemporaryDirectory(prefix="cronman-daemon-soak-") as base:
        reports = run_all(Path(base), configs, args.minutes, args.entries, args.seed, (6.0, 14.0),
                          artifacts=REPO / "test-artifacts" / "daemon-soak-long")
    for report in reports:
        print(report.summary(), flush=True)
    faults: Counter[str] = Counter()
    for report in reports:
        faults.update(report.faults)
    print("\n| configuration | slots | ran once | ran nothing (reason) | missed (reason) | duplicated | unexplained "
          "| faults |")
    print("|---|---|---|---|---|---|---|---|")
    for r in reports:
        injected = ", ".join(f"{n} {kind}" for kind, n in sorted(r.faults.items()))
        print(f"| {r.config} | {r.slots} | {r.ran} | {_reasons(r.not_run)} | {_reasons(r.missed)} "
              f"| {len(r.duplicated)} | {len(r.unexplained)} | {injected} |")
    total = sum(r.slots for r in reports)
    print(f"| all | {total} | {sum(r.ran for r in reports)} | {sum(sum(r.not_run.values()) for r in reports)} "
          f"| {sum(sum(r.missed.values()) for r in reports)} | {sum(len(r.duplicated) for r in reports)} "
          f"| {sum(len(r.unexplained) for r in reports)} | {sum(faults.values())} |")
    args.out.write_text(json.dumps([r.as_json() for r in reports], indent=2, default=str))
    sys.exit(0 if all(r.clean for r in reports) else 1)


def _reasons(counts: Counter[str]) -> str:
    """``N (n1 reason1, n2 reason2)``, or ``0``; one reason for every lock's name (``lock 'SoakLocked3' ...``)."""
    merged: Counter[str] = Counter()
    for reason, n in counts.items():
        merged[re.sub(r"lock '[^']*'", "its lock", reason)] += n
    total = sum(merged.values())
    return f"{total} ({', '.join(f'{n} {reason}' for reason, n in merged.most_common())})" if total else "0"


if __name__ == "__main__":
    main()
