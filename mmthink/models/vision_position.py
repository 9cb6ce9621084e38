"""Absolute 2-D positions in the image features of the tiny VLM.

Qwen2.5-VL's vision tower only has 2-D *rotary* attention: with random weights and one solid-coloured
cell per merged token, the same cell type gives the same feature wherever it is (cosine >= 0.997
measured), so a model cannot tell where the start or the goal is. Real towers learn positions in
pretraining; the tiny one gets them the way ViT/MAE do, from a fixed 2-D sine-cosine code added to
each patch embedding before the blocks, so the (frozen, random) blocks and merger bind what a cell
is to where it is.

The code has no weights: ``config.vision_position = "sincos2d"`` (with ``vision_position_scale``) is
saved in ``config.json`` by ``save_pretrained`` and :func:`install` re-adds the code after every
load through ``mmthink.models.loading.load_model``. A plain ``transformers`` load of such a folder
gives the stock model without the code; the state dict is Qwen2.5-VL's, unchanged.
"""

from __future__ import annotations

KINDS = ("sincos2d",)


def sincos_1d(positions, dim: int, base: float = 10000.0):
    """(P, dim): [sin(p w_i), cos(p w_i)] for w_i = 10000^(-2i/dim), i < dim/2 (the Transformer's code)."""
    import torch

    freqs = base ** (-torch.arange(dim // 2, dtype=torch.float32) * 2 / dim)
    angles = positions.float()[:, None] * freqs[None]
    return torch.cat([angles.sin(), angles.cos()], dim=-1)


def sincos_2d(rows, cols, dim: int, scale: float = 1.0):
    """(P, dim): half the channels code the row, half the column (MAE's 2-D code), divided by
    sqrt(dim / 2) so that each vector has norm ``scale``."""
    import torch

    code = torch.cat([sincos_1d(rows, dim // 2), sincos_1d(cols, dim // 2)], dim=-1)
    return code * (scale / (dim / 2) ** 0.5)


def patch_positions(grid_thw, merge: int):
    """(row, col) of every patch in the order Qwen2-VL's processor lays them out: frame by frame,
    merge window by merge window (raster), then the merge x merge patches of a window (raster)."""
    import torch

    rows, cols = [], []
    for t, h, w in grid_thw.tolist():
        r = torch.arange(h)[:, None].expand(h, w)
        c = torch.arange(w)[None, :].expand(h, w)
        for grid, out in ((r, rows), (c, cols)):
            windows = grid.reshape(h // merge, merge, w // merge, merge).permute(0, 2, 1, 3).flatten()
            out.append(windows.repeat(t))
    return torch.cat(rows), torch.cat(cols)


def install(model) -> None:
    """Add the configured position code to the patch embeddings of ``model``'s vision tower, before its
    blocks, as a ViT does (a no-op for models whose config asks for none, and when already installed)."""
    kind = getattr(model.config, "vision_position", None)
    visual = getattr(getattr(model, "model", None), "visual", None)
    if kind is None or visual is None or getattr(visual, "_mmthink_position", False):
        return
    if kind not in KINDS:
        raise ValueError(f"unknown config.vision_position {kind!r}; expected one of {KINDS}")
    merge, config, grids = visual.spatial_merge_size, model.config, []

    def remember_grid(module, args, kwargs):
        grids[:] = [kwargs["grid_thw"] if "grid_thw" in kwargs else args[1]]

    def add_code(module, args, output):
        rows, cols = patch_positions(grids[0], merge)
        scale = float(getattr(config, "vision_position_scale", 1.0))
        return output + sincos_2d(rows, cols, output.shape[-1], scale).to(output)

    visual.register_forward_pre_hook(remember_grid, with_kwargs=True)
    visual.patch_embed.register_forward_hook(add_code)
    visual._mmthink_position = True
