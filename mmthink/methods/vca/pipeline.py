"""``mmthink video-explore`` (one video, one question) and ``mmthink eval vca`` (a JSONL of questions about
videos): open the video, explore it with the backend, answer, and save what was seen.

Per question the output holds the answer, the frames used, the exploration tree as JSON and a PNG
timeline; an evaluation adds accuracy, needle-interval IoU (rows with a truth), frames used, calls and
unreadable replies per strategy (VCA and the baselines at the same frame budget) in ``eval.json``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

from mmthink.data.rows import BadRow, load_rows, need
from mmthink.data.video import open_video
from mmthink.errors import UserError
from mmthink.methods.vca.backends import Backends
from mmthink.methods.vca.config import VCARecipe
from mmthink.methods.vca.explore import Result, cluster, explore, iou, uniform
from mmthink.methods.vca.prompts import LETTERS


def run_strategy(strategy: str, cfg: VCARecipe, video, backend, question: str, options: list) -> Result:
    s = cfg.search
    if strategy == "vca":
        return explore(video, backend, question, options, s, cfg.seed)
    if strategy == "uniform":
        return uniform(video, backend, question, options, s.frame_budget, cfg.seed)
    return cluster(video, backend, question, options, s.frame_budget, cfg.seed)


def save_result(result: Result, folder: Path, name: str, question: str, truth: Optional[dict] = None) -> dict:
    """``<name>.json`` (the result and, for VCA, its tree) and ``<name>.png`` (the timeline) in ``folder``."""
    from mmthink.methods.vca.timeline import draw

    folder.mkdir(parents=True, exist_ok=True)
    extra = {"question": question, "result": result.to_json()}
    files = {}
    if result.tree is not None:
        result.tree.save(folder / f"{name}.json", extra)
        needle = [truth["needle"]["start"], truth["needle"]["end"]] if truth else None
        draw(result.tree, folder / f"{name}.png", f"{question}\nanswer {result.answer} from "
             f"{len(result.answer_times)} frames; {result.frames_used} frames shown; stop: {result.stop}",
             result.answer_times, needle)
        files = {"tree": str(folder / f"{name}.json"), "timeline": str(folder / f"{name}.png")}
    return files


def video_explore(cfg: VCARecipe, video_path: str, question: str, options: list, out: Optional[str],
                  truth: Optional[dict] = None, timestamps: Optional[list] = None) -> dict:
    """One question about one video with VCA."""
    cfg.check()
    if not question.strip():
        raise UserError("--question is empty")
    if options and not 2 <= len(options) <= len(LETTERS):
        raise UserError(f"--options takes 2 to {len(LETTERS)} options; got {len(options)}")
    video = open_video(video_path, cfg.folder_fps, timestamps)
    folder = Path(out or cfg.output_dir)
    backends = Backends(cfg.backend, str(folder), cfg.seed)
    result = explore(video, backends.for_row(video, truth), question, options, cfg.search, cfg.seed)
    files = save_result(result, folder, "explore", question, truth)
    answer = result.answer or "(no answer could be read)"
    return {"answer": answer + (f" ({options[LETTERS.index(answer)]})" if options else ""),
            "frames_used": result.frames_used, "answer_frames_s": ", ".join(f"{t:.1f}" for t in result.answer_times),
            "calls": result.calls, "malformed_replies": result.malformed, "stop": result.stop, **files}


def _validate(row: dict) -> None:
    need(row, "video", str, nonempty=True)
    need(row, "question", str, nonempty=True)
    options = need(row, "options", list, nonempty=True)
    if not 2 <= len(options) <= len(LETTERS):
        raise BadRow("options", f"needs 2 to {len(LETTERS)} options, got {len(options)}")
    answer = need(row, "answer", str, nonempty=True)
    if answer not in LETTERS[: len(options)]:
        raise BadRow("answer", f"must be an option letter {LETTERS[0]}-{LETTERS[len(options) - 1]}, got {answer!r}")
    stamps = row.get("timestamps")
    if stamps is not None and not (isinstance(stamps, list) and stamps and all(
            isinstance(t, (int, float)) and not isinstance(t, bool) for t in stamps)):
        raise BadRow("timestamps", "must be a non-empty list of seconds")
    truth = row.get("truth")
    if truth is not None and not (isinstance(truth, dict) and isinstance(truth.get("needle"), dict)):
        raise BadRow("truth", "must be an object with a needle interval (as mmthink data video writes)")


def truth_for(video_path: str) -> Optional[dict]:
    """The truth of a video ``mmthink data video`` wrote, from the JSONL beside its videos/ folder."""
    p = Path(video_path).resolve()
    for data in sorted(p.parent.parent.glob("*.jsonl")):
        for line in data.read_text().splitlines():
            try:
                row = json.loads(line)
            except ValueError:
                continue
            if isinstance(row, dict) and (data.parent / str(row.get("video", ""))).resolve() == p:
                return row.get("truth")
    return None


def summarise(per_row: list, strategies: list) -> dict:
    metrics = {}
    for name in strategies:
        rows = [r for r in per_row if r["strategy"] == name]
        n = max(len(rows), 1)
        metrics[f"{name}/accuracy"] = sum(r["correct"] for r in rows) / n
        with_truth = [r for r in rows if r["iou"] is not None]
        if with_truth:
            metrics[f"{name}/needle_iou"] = sum(r["iou"] for r in with_truth) / len(with_truth)
            metrics[f"{name}/needle_seen"] = sum(r["needle_seen"] for r in with_truth) / len(with_truth)
        metrics[f"{name}/frames_used"] = sum(r["frames_used"] for r in rows) / n
        metrics[f"{name}/calls"] = sum(r["calls"] for r in rows) / n
        metrics[f"{name}/malformed_replies"] = sum(r["malformed"] for r in rows)
    return metrics


def evaluate(cfg: VCARecipe, checkpoint: Optional[str], data: str, out: Optional[str] = None) -> dict:
    """Every strategy of ``eval.strategies`` on every row; ``checkpoint`` (optional) is the VLM to use."""
    from mmthink.io import write_jsonl, write_text_atomic
    from mmthink.runner.tracking import Progress

    if checkpoint:
        cfg.backend.model.name = checkpoint
    cfg.check()
    rows = [dict(r) for r in load_rows(data, _validate, cfg.eval.limit)]
    base = Path(data).parent
    folder = Path(out or cfg.output_dir)
    folder.mkdir(parents=True, exist_ok=True)
    backends = Backends(cfg.backend, str(folder), cfg.seed)
    per_row = []
    progress = Progress(len(rows) * len(cfg.eval.strategies), mode="auto", every_s=30.0, desc="eval vca")
    for k, row in enumerate(rows):
        path = Path(row["video"]) if Path(row["video"]).is_absolute() else base / row["video"]
        video = open_video(path, cfg.folder_fps, row.get("timestamps"))
        truth = row.get("truth")
        needle = [truth["needle"]["start"], truth["needle"]["end"]] if truth else None
        rid = str(row.get("id", k))
        for name in cfg.eval.strategies:
            result = run_strategy(name, cfg, video, backends.for_row(video, truth), row["question"],
                                  [str(o) for o in row["options"]])
            if cfg.eval.save_trees:
                save_result(result, folder / "trees", f"{rid}-{name}", row["question"], truth)
            per_row.append({"id": rid, "strategy": name, "correct": result.answer == row["answer"],
                            "iou": iou(result.interval, needle) if needle else None,
                            "needle_seen": bool(needle) and any(needle[0] <= t < needle[1] for t in result.answer_times),
                            **result.to_json()})
            progress.update(len(per_row), f"row {k + 1}/{len(rows)}")
    progress.close()
    metrics = summarise(per_row, cfg.eval.strategies)
    write_jsonl(per_row, folder / "results.jsonl")
    report = {"data": str(data), "backend": backends.name, "rows": len(rows), "search": vars(cfg.search), **metrics}
    if backends.vlm is not None:
        report["cache"] = {"hits": backends.vlm.hits, "misses": backends.vlm.misses}
    write_text_atomic(folder / "eval.json", json.dumps(report, indent=2, default=str))
    return metrics
