"""The recipe schema of VCA (``mmthink video-explore``, ``mmthink eval vca``): the VLM backend and the search."""

from dataclasses import dataclass, field
from typing import List, Optional

from mmthink.config import choice
from mmthink.errors import UserError
from mmthink.models.config import ModelConfig

BACKENDS = ("hf", "openai", "scripted")  # a local HF VLM, an OpenAI-compatible endpoint, a scorer of known behaviour
STRATEGIES = ("vca", "uniform", "cluster")  # the agent; uniform frames; VideoTree-style k-means over frames


@dataclass
class BackendConfig:
    kind: str = "hf"  # hf | openai | scripted
    model: ModelConfig = field(default_factory=lambda: ModelConfig(name="tiny-qwen2.5-vl"))  # kind hf
    endpoint: Optional[str] = None  # kind openai: base URL, e.g. http://localhost:8000/v1 (mmthink serve, vLLM)
    model_name: Optional[str] = None  # kind openai: the model name sent (default: model.name)
    api_key_env: str = "MMTHINK_API_KEY"  # kind openai: environment variable holding the key
    max_new_tokens: int = 160
    greedy: bool = True  # greedy decoding (a re-run is then exact); false: sample at ``temperature``
    temperature: float = 1.0
    image_side: int = 448  # longest side of each frame sent, in pixels (smaller frames are sent as they are)
    device: str = "auto"  # kind hf: cpu, cuda or auto
    cache: Optional[str] = None  # JSONL of replies by (backend, model, prompt, frames); null: <output_dir>/replies.jsonl
    # kind scripted: perceives frames through the row's truth (mmthink data video), wrong with probability
    # ``noise`` per frame; ``malformed`` is the probability a reply is garbled (to exercise the parser)
    noise: float = 0.0
    malformed: float = 0.0


@dataclass
class SearchConfig:
    initial_frames: int = 8  # N uniform frames bound the N-1 root segments
    frames_per_expansion: int = 8  # M frames sampled inside an expanded segment
    memory: int = 8  # top-K segments by reward kept; their boundary frames answer
    sufficiency: float = 0.6  # stop when the VLM's "enough to answer" score reaches this
    max_expansions: int = 5  # search steps after the root call
    frame_budget: int = 20  # unique frames decoded and shown to the VLM over the whole exploration
    min_duration: float = 2.0  # seconds: a shorter segment is a leaf
    history: int = 6  # exploration-history lines shown per call (the latest)


@dataclass
class EvalSettings:
    strategies: List[str] = field(default_factory=lambda: ["vca", "uniform"])  # vca | uniform | cluster
    limit: Optional[int] = None  # the first N rows
    save_trees: bool = True  # one tree JSON (and timeline PNG) per row under <out>/trees


@dataclass
class VCARecipe:
    method: str = "vca"
    output_dir: str = "runs/vca"
    seed: int = 0
    folder_fps: float = 1.0  # a folder of frames without timestamps.txt: frames per second
    backend: BackendConfig = field(default_factory=BackendConfig)
    search: SearchConfig = field(default_factory=SearchConfig)
    eval: EvalSettings = field(default_factory=EvalSettings)

    def check(self, world_size: int = 1) -> None:
        if self.method != "vca":
            raise UserError(f"this recipe is for method '{self.method}', not 'vca'")
        b, s = self.backend, self.search
        choice("backend.kind", b.kind, list(BACKENDS))
        if b.kind == "openai" and not b.endpoint:
            raise UserError("recipe key 'backend.endpoint' is required with backend.kind=openai "
                            "(e.g. http://localhost:8000/v1)")
        for key in ("noise", "malformed"):
            if not 0.0 <= getattr(b, key) <= 1.0:
                raise UserError(f"recipe key 'backend.{key}' must be in [0, 1]; got {getattr(b, key)}")
        if b.temperature > 2.0:
            raise UserError(f"recipe key 'backend.temperature' must be in (0, 2]; got {b.temperature}")
        for key in ("max_new_tokens", "image_side"):
            if getattr(b, key) < 1:
                raise UserError(f"recipe key 'backend.{key}' must be >= 1; got {getattr(b, key)}")
        if s.initial_frames < 2:
            raise UserError(f"recipe key 'search.initial_frames' must be >= 2 (two frames bound a segment); "
                            f"got {s.initial_frames}")
        for key in ("frames_per_expansion", "memory", "frame_budget"):
            if getattr(s, key) < 1:
                raise UserError(f"recipe key 'search.{key}' must be >= 1; got {getattr(s, key)}")
        for key in ("max_expansions", "history"):
            if getattr(s, key) < 0:
                raise UserError(f"recipe key 'search.{key}' must be >= 0; got {getattr(s, key)}")
        if s.frame_budget < s.initial_frames:
            raise UserError(f"recipe key 'search.frame_budget' ({s.frame_budget}) must be at least "
                            f"search.initial_frames ({s.initial_frames})")
        if not 0.0 <= s.sufficiency <= 1.0:
            raise UserError(f"recipe key 'search.sufficiency' must be in [0, 1]; got {s.sufficiency}")
        if s.min_duration < 0 or self.folder_fps <= 0:
            raise UserError("recipe keys 'search.min_duration' (>= 0) and 'folder_fps' (> 0) are out of range")
        if not self.eval.strategies:
            raise UserError("recipe key 'eval.strategies' must name at least one of " + ", ".join(STRATEGIES))
        for name in self.eval.strategies:
            choice("eval.strategies", name, list(STRATEGIES))
        if b.kind == "hf":
            b.model.check("backend.model")
