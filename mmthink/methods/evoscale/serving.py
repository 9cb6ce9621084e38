"""``mmthink serve`` in EvoScale mode: a chat request runs the evolutionary loop and answers with its pick.

The server is in this mode when its checkpoint's run (or ``--recipe``) is an EvoScale recipe. A request's
last user message is the task; the recipe's K, M, T (``evo``) apply unless the request's ``evoscale``
object sets them. With ``evoscale.tests`` (Python asserts) every candidate's last code block is graded
in the sandbox (the fraction of asserts passed) and the answer is the best seen; without tests the loop
self-evolves (no scorer: a random K of the last iteration conditions the next, the answer is the last
iteration's first sample), as ``eval evoscale evo.scorer=none`` does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from mmthink.methods.evoscale import search
from mmthink.methods.evoscale.config import EvoScaleRecipe


class BadSetting(ValueError):
    """A request setting the mode refuses; ``param`` names the field (the server answers 400)."""

    def __init__(self, param: str, message: str):
        super().__init__(message)
        self.param = param


@dataclass
class Settings:
    k: int
    m: int
    t: int
    tests: Optional[str] = None
    timeout_s: float = 10.0


class EvoScaleMode:
    """What a served EvoScale checkpoint does with a chat request (``run``)."""

    name = "evoscale"

    def __init__(self, cfg: EvoScaleRecipe):
        self.cfg = cfg

    @property
    def max_new_tokens(self) -> int:
        return self.cfg.sampler.max_new_tokens

    def settings(self, k: Optional[int] = None, m: Optional[int] = None, t: Optional[int] = None,
                 tests: Optional[str] = None, timeout_s: Optional[float] = None) -> Settings:
        """The request's settings over the recipe's; BadSetting on a bad combination."""
        e = self.cfg.evo
        s = Settings(k if k is not None else e.k, m if m is not None else e.m, t if t is not None else e.t, tests,
                     timeout_s if timeout_s is not None else self.cfg.eval.timeout_s)
        if s.k > s.m:
            raise BadSetting("evoscale.k", f"k={s.k} conditioning outputs cannot exceed the m={s.m} samples of an "
                                           f"iteration")
        if tests is not None:
            from mmthink.tasks.code import instrument

            try:
                _, n = instrument(tests)
            except SyntaxError as err:
                raise BadSetting("evoscale.tests", f"the tests do not parse: {err}") from None
            if n == 0:
                raise BadSetting("evoscale.tests", "the tests hold no assert to grade candidates by")
        return s

    def run(self, task: str, sample: search.Sample, s: Settings, temperature: float, seed: int) -> dict:
        """The loop on one task; ``sample(prompts, n, temperature, seed) -> [[text] * n]``."""
        from mmthink.tasks import code

        def score(pairs):
            if s.tests is None:
                return [0.0] * len(pairs)  # self-evolve: nothing looks at a score
            return [code.execute(code.last_code_block(text), s.tests, s.timeout_s).score for _, text in pairs]

        use_scores = s.tests is not None
        problem = {"id": "request", "prompt": task}
        candidates = search.evolve([problem], lambda p: p["prompt"], sample, score, s.k, s.m, s.t, temperature, seed,
                                   search.BY_SCORE if use_scores else None, self.cfg.evo.show_scores,
                                   self.cfg.evo.max_chars)
        final = search.final_answers(candidates, use_scores)["request"]
        out = {"k": s.k, "m": s.m, "t": s.t, "scorer": "tests" if use_scores else "none", "samples": len(candidates),
               "answer": {"iteration": final.iteration, "index": int(final.id.rsplit("/", 1)[1])}}
        if use_scores:
            out["answer"]["score"] = final.score
            out["iteration_mean_score"] = search.per_iteration_mean(candidates)
            out["iteration_best_score"] = [max(c.score for c in candidates if c.iteration == i) for i in range(s.t)]
        return {"text": final.text, "evoscale": out}


def load(recipe: str) -> EvoScaleMode:
    """The mode of the EvoScale recipe at ``recipe`` (a run's resolved_config.yaml or a recipe file)."""
    from mmthink.config import load_recipe

    cfg = load_recipe(recipe, [], EvoScaleRecipe)
    cfg.check()
    return EvoScaleMode(cfg)
