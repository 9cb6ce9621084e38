"""``mmthink video-explore VIDEO --question ...``: VCA on one video (mounted by its registry row)."""

from __future__ import annotations

from typing import List, Optional

import typer

from mmthink.commands import RECIPE_OPTION, method_recipe, overrides, print_table, quiet_hub_bars, split_list, user_errors

EXPLORE_OVERRIDES = overrides("search.frames_per_expansion=4 backend.max_new_tokens=200")


@user_errors
def video_explore(
    video: str = typer.Argument(..., help="A video file (mp4, mkv, ...) or a folder of frames"),
    question: str = typer.Option(..., "--question", "-q", help="What to find out"),
    options: Optional[str] = typer.Option(None, "--options", help="Answer options, comma-separated (e.g. 3,5,7,9)"),
    backend: Optional[str] = typer.Option(None, "--backend", help="hf (a local VLM), openai (an endpoint) or "
                                          "scripted (generated videos only); default: the recipe's"),
    model: Optional[str] = typer.Option(None, "--model", help="Local VLM: preset, folder or hub id"),
    endpoint: Optional[str] = typer.Option(None, "--endpoint", help="OpenAI-compatible base URL, e.g. "
                                           "http://localhost:8000/v1"),
    model_name: Optional[str] = typer.Option(None, "--model-name", help="The model name sent to the endpoint"),
    timestamps: Optional[str] = typer.Option(None, "--timestamps", help="Only the frames at these seconds are "
                                             "candidates: 1.5,3,10 or a file of them (e.g. key frames)"),
    frame_budget: Optional[int] = typer.Option(None, "--frame-budget", help="Unique frames shown to the VLM "
                                               "(default: the recipe's, 20)"),
    recipe: Optional[str] = RECIPE_OPTION,
    out: Optional[str] = typer.Option(None, "--out", help="Folder for explore.json, explore.png and the reply "
                                      "cache (default: the recipe's output_dir)"),
    recipe_overrides: Optional[List[str]] = EXPLORE_OVERRIDES,
):
    """Explore a long video with a VLM's own curiosity (VCA) and answer a question from ~20 frames."""
    from mmthink.data.video import read_timestamps
    from mmthink.methods.vca.pipeline import truth_for, video_explore as run

    given = list(recipe_overrides or [])
    for key, value in (("backend.kind", backend), ("backend.model.name", model), ("backend.endpoint", endpoint),
                       ("backend.model_name", model_name), ("search.frame_budget", frame_budget)):
        if value is not None:
            given.append(f"{key}={value}")
    if endpoint is not None and backend is None:
        given.append("backend.kind=openai")
    cfg = method_recipe("vca", recipe, given)
    truth = truth_for(video) if cfg.backend.kind == "scripted" else None
    quiet_hub_bars()
    result = run(cfg, video, question, split_list(options, "--options") if options else [], out, truth,
                 read_timestamps(timestamps) if timestamps else None)
    print_table("video-explore", result)
