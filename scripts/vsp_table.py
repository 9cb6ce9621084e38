"""One table from ``mmthink eval mirage`` reports: the best constant answer (computed from the test
maps, in every planning report), then each model. Used by ``make demo``.

Usage: python scripts/vsp_table.py LABEL=runs/x/model/eval.json [LABEL=...]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    if not argv or any("=" not in a for a in argv):
        print("usage: python scripts/vsp_table.py LABEL=EVAL_JSON [LABEL=EVAL_JSON ...]", file=sys.stderr)
        return 2
    reports = []
    for arg in argv:
        label, _, path = arg.partition("=")
        if not Path(path).is_file():
            print(f"vsp_table: {path} not found", file=sys.stderr)
            return 2
        reports.append((label, json.loads(Path(path).read_text())))
    sizes = sorted({n for _, r in reports for n in r["by_n"]}, key=int)
    rows = []
    constant = reports[0][1].get("best_constant")
    if constant:
        rows.append((f"best constant answer {constant['plan']}", constant["accuracy"], {}, None))
    rows += [(label, r["overall"]["accuracy"], r["by_n"], r["overall"]["invalid_rate"]) for label, r in reports]
    width = max(len(r[0]) for r in rows)
    print(f"{'':{width}}  accuracy  " + "  ".join(f"{n}x{n}" for n in sizes) + "  invalid")
    for label, acc, by_n, invalid in rows:
        cells = "  ".join(f"{by_n[n]['accuracy']:.2f}" if n in by_n else "  - " for n in sizes)
        print(f"{label:{width}}  {acc:8.3f}  {cells}  {'' if invalid is None else f'{invalid:.3f}'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
