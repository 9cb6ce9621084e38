"""What Tango is scored by: the generator's accuracy on held-out problems (greedy), and the verifier on
the step-labelled set (greedy): ProcessBench F1 of the earliest wrong step it names, and the balanced
accuracy of its final verdict. Both also judge any JSONL of solutions (``eval.verifier_only``)."""

from __future__ import annotations

from mmthink.methods.tango.formats import generator_format_score, generator_prompt, parse_judgment, verifier_prompt
from mmthink.metrics.process import balanced_accuracy, processbench_f1
from mmthink.tasks.grading import grade


def _greedy(model, tokenizer, prompts: list, max_new_tokens: int, batch_size: int, chat: bool) -> list:
    from mmthink.ops.sampler import LocalSampler

    was = model.training
    model.eval()
    try:
        texts = LocalSampler(model, tokenizer, batch_size, chat).sample(prompts, 1, max_new_tokens, 0.0)
    finally:
        model.train(was)
    return [t[0] for t in texts]


def generator_scores(model, tokenizer, rows: list, max_new_tokens: int, batch_size: int = 16,
                     chat: bool = True) -> tuple[dict, list]:
    texts = _greedy(model, tokenizer, [generator_prompt(r["question"]) for r in rows], max_new_tokens, batch_size,
                    chat)
    correct = [grade(t, r["answer"]) for t, r in zip(texts, rows)]
    fmt = [generator_format_score(t) for t in texts]
    metrics = {"generator/accuracy": sum(correct) / len(rows), "generator/format": sum(fmt) / len(rows),
               "generator/n": float(len(rows))}
    return metrics, [{"question": r["question"], "answer": r["answer"], "completion": t, "correct": c}
                     for r, t, c in zip(rows, texts, correct)]


def verifier_scores(model, tokenizer, rows: list, max_new_tokens: int, batch_size: int = 16,
                    chat: bool = True) -> tuple[dict, list]:
    """Judge each row's ``solution``; with ``label`` (earliest wrong step, −1 when none) the F1, with
    ``correct`` the balanced accuracy of the final verdict."""
    texts = _greedy(model, tokenizer, [verifier_prompt(r.get("question") or r.get("problem", ""), r["solution"])
                                       for r in rows], max_new_tokens, batch_size, chat)
    judgments = [parse_judgment(t) for t in texts]
    metrics = {"verifier/has_final": sum(j.final is not None for j in judgments) / len(rows),
               "verifier/n": float(len(rows))}
    if all("label" in r for r in rows):
        pb = processbench_f1([j.first_error for j in judgments], [int(r["label"]) for r in rows])
        metrics.update({"verifier/f1": pb["f1"], "verifier/error_acc": pb["error_acc"],
                        "verifier/correct_acc": pb["correct_acc"]})
    if all("correct" in r for r in rows):
        metrics["verifier/balanced_acc"] = balanced_accuracy([j.final for j in judgments],
                                                             [bool(r["correct"]) for r in rows])
    return metrics, [{**{k: r[k] for k in ("id", "label", "correct") if k in r}, "judgment": t,
                      "first_error": j.first_error, "final": j.final} for r, t, j in zip(rows, texts, judgments)]
