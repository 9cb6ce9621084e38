"""A PNG of one exploration: which segments were scored at which depth, coloured by their reward, the
frames shown, the frames the answer came from, and (for generated videos) where the needle really was."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from mmthink.methods.vca.tree import Tree


def draw(tree: Tree, path: Path, title: str = "", answer_times=(), truth: Optional[list] = None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib import cm, colors

    depth = max((s.depth for s in tree.segments), default=0)
    fig, ax = plt.subplots(figsize=(10, 1.6 + 0.55 * (depth + 2)))
    cmap, norm = plt.get_cmap("viridis"), colors.Normalize(0, 1)
    for s in tree.segments:
        ax.barh(s.depth, s.duration, left=s.start, height=0.8, color=cmap(norm(s.score)),
                edgecolor="red" if s.expanded else "white", linewidth=1.6 if s.expanded else 0.4)
        if s.duration > tree.duration / 40:
            ax.text(s.start + s.duration / 2, s.depth, f"{s.score * 100:.0f}", ha="center", va="center", fontsize=7,
                    color="white" if s.score < 0.6 else "black")
    row = depth + 1
    ax.vlines(sorted(tree.frames.values()), row - 0.35, row + 0.35, color="black", linewidth=0.8,
              label=f"frames shown ({len(tree.frames)})")
    if answer_times:
        ax.plot(answer_times, [row] * len(answer_times), "v", color="orange", markersize=6,
                label=f"answered from ({len(answer_times)})")
    if truth is not None:
        ax.axvspan(truth[0], truth[1], color="red", alpha=0.18, label="true interval")
    ax.set_yticks(list(range(depth + 1)) + [row], [f"depth {d}" for d in range(depth + 1)] + ["frames"])
    ax.set_ylim(row + 0.7, -0.7)
    ax.set_xlim(0, tree.duration)
    ax.set_xlabel("time (s)")
    ax.set_title(title, fontsize=9, loc="left")
    ax.legend(loc="upper right", fontsize=7, ncols=3, bbox_to_anchor=(1.0, -0.35 if depth < 2 else -0.2))
    fig.colorbar(cm.ScalarMappable(norm, cmap), ax=ax, pad=0.01, label="relevance (expanded: red edge)")
    fig.tight_layout()
    tmp = path.with_name(path.name + ".part.png")
    fig.savefig(tmp, dpi=110, bbox_inches="tight")
    plt.close(fig)
    tmp.replace(path)
