"""The cluster soak, long: three scheduler hosts under chaos for N minutes per shared backend.

The same driver as the CI test (``tests/soak/cluster.py``): 50 entries every
minute, SIGKILLed and restarted schedulers, CLASS-locked workers SIGSTOPped
past the lock TTL, redis-server restarted empty or database sessions
terminated; then the ledger of every slot. Needs redis-server and the local
PostgreSQL (127.0.0.1:5432) and MariaDB (127.0.0.1:3306, root). Prints one summary line per backend and writes
the reports as JSON.

    .venv/bin/python benchmarks/cluster_soak.py --minutes 10 [--backend redis|database|mariadb ...]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=int, default=10)
    parser.add_argument("--backend", action="append", choices=["redis", "database", "mariadb"])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("cluster-soak.json"))
    args = parser.parse_args()
    import django

    django.setup()
    from tests.soak.cluster import run_soak, write_report

    failed = False
    for backend in args.backend or ["redis", "database", "mariadb"]:
        with tempfile.TemporaryDirectory(prefix=f"cronman-soak-{backend}-") as base:
            report = run_soak(Path(base), backend, args.minutes, seed=args.seed)
        print(report.summary(), flush=True)
        write_report(report, args.out.with_name(f"{args.out.stem}-{backend}{args.out.suffix}"))
        failed |= bool(report.duplicated or report.unexplained or report.locks_left or report.processes_left
                       or (backend != "redis" and report.stale_writes))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
