"""Per-generation checkpoints of the bbpt searches: a killed run resumes after its last finished
generation (CMA-ES) or round (ABC-SMC) and spends no query twice on what it already knew.

A search hands ``save`` everything its loop needs — the CMA-ES object, its torch generator, the best
so far, the log — and gets it back from ``load``. Numpy's global random stream is saved alongside,
because ``cma`` draws its samples from it, and so are the box's query counters. The file is a pickle
(the CMA-ES object has no other format): it is read only from the run's own output folder.
"""
from __future__ import annotations

import pickle
import sys
from pathlib import Path
from typing import Optional

from mmthink.errors import UserError
from mmthink.io import write_bytes_atomic

STATE = "state.pkl"


class SearchCheckpoint:
    """``folder/state.pkl``, written atomically after every generation."""

    def __init__(self, folder: Path, box) -> None:
        self.folder, self.box = folder, box
        self.resumed_at: Optional[str] = None

    @property
    def path(self) -> Path:
        return self.folder / STATE

    def load(self) -> Optional[dict]:
        """The search's saved state (numpy's stream and the query counters restored), or None."""
        import numpy as np

        if not self.path.is_file():
            return None
        try:
            saved = pickle.loads(self.path.read_bytes())
            search = saved["search"]
        except Exception as e:  # a foreign or damaged file: say which, never a traceback
            raise UserError(f"{self.path} is not a readable bbpt search checkpoint ({type(e).__name__}); "
                            "delete it or set resume=never") from None
        np.random.set_state(saved["numpy_rng"])
        self.box.queries, self.box.calls = saved["queries"], saved["calls"]
        self.resumed_at = saved["where"]
        print(f"resumed the search from {self.path} after {self.resumed_at}", file=sys.stderr, flush=True)
        return search

    def save(self, search: dict, where: str) -> None:
        import numpy as np

        self.folder.mkdir(parents=True, exist_ok=True)
        blob = pickle.dumps({"search": search, "numpy_rng": np.random.get_state(), "queries": self.box.queries,
                             "calls": self.box.calls, "where": where})
        write_bytes_atomic(self.path, blob)
