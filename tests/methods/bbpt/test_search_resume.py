"""A bbpt search killed after any generation resumes from its checkpoint to the very result of an
uninterrupted search: the same prompts, the same log, the same query count."""
import pytest
import torch

from mmthink.errors import UserError
from mmthink.methods.bbpt import algorithms as alg
from mmthink.methods.bbpt.resume import SearchCheckpoint

D_Z = 8  # the latent size of the conftest's ``problem``

SEARCHES = {
    "cma_ensemble": lambda obj, ckpt: alg.cma_ensemble(obj, D_Z, members=2, popsize=6, iters=5, eval_every=2, seed=1,
                                                       ckpt=ckpt),
    "cma_elbo": lambda obj, ckpt: alg.cma_elbo(obj, D_Z, popsize=6, iters=6, n_mc=2, n_samples=8, seed=0, ckpt=ckpt),
    "abc_smc": lambda obj, ckpt: alg.abc_smc(obj, D_Z, n_particles=4, popsize=6, max_batches=5, max_rounds=4, seed=0,
                                             ckpt=ckpt),
}


class Killed(Exception):
    pass


class DiesAfter(SearchCheckpoint):
    """Saves like the real one, then the process "dies" right after the n-th save."""

    def __init__(self, folder, box, n):
        super().__init__(folder, box)
        self.left = n

    def save(self, search, where):
        super().save(search, where)
        self.left -= 1
        if self.left == 0:
            raise Killed


def _objective(problem, fresh_box=True):
    A, box, texts, y = problem
    box = type(box)(box.target) if fresh_box else box  # a new box (the conftest's QuadBox) counts from 0
    return alg.Objective(box, A, texts, y, texts, y)


@pytest.mark.parametrize("name", SEARCHES)
@pytest.mark.parametrize("kill_after", [1, 2])
def test_a_killed_search_resumes_to_the_uninterrupted_result(problem, tmp_path, name, kill_after):
    import numpy as np

    np.random.seed(123)
    obj = _objective(problem)
    z_ref, w_ref, log_ref = SEARCHES[name](obj, None)
    ref_queries = obj.box.queries

    np.random.seed(123)
    obj = _objective(problem)
    with pytest.raises(Killed):
        SEARCHES[name](obj, DiesAfter(tmp_path, obj.box, kill_after))
    np.random.seed(999)  # the new process's stream differs: the checkpoint must restore cma's
    obj = _objective(problem)  # a fresh box counts from 0: the checkpoint restores the counters
    ckpt = SearchCheckpoint(tmp_path, obj.box)
    z, w, log = SEARCHES[name](obj, ckpt)
    assert ckpt.resumed_at is not None
    assert torch.equal(z, z_ref) and torch.equal(w, w_ref) and log == log_ref
    assert obj.box.queries == ref_queries


def test_a_damaged_checkpoint_is_one_line(problem, tmp_path):
    obj = _objective(problem)
    (tmp_path / "state.pkl").write_bytes(b"not a pickle")
    with pytest.raises(UserError, match="not a readable bbpt search checkpoint"):
        SEARCHES["cma_elbo"](obj, SearchCheckpoint(tmp_path, obj.box))
