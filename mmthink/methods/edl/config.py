"""The recipe schema of ``mmthink train edl`` (consistent evidential deep learning)."""

from dataclasses import dataclass, field

from mmthink.config import choice
from mmthink.errors import UserError
from mmthink.methods.edl.train import EDLConfig
from mmthink.runner.config import LoggingConfig


@dataclass
class EDLData:
    # digits (scikit-learn's, train/test on 0-4, OOD 5-9) | synthetic (Gaussian blobs, no OOD) | text (files below)
    name: str = "digits"
    n: int = 600  # synthetic: training points (the test set has the same size, another seed)
    k: int = 3  # synthetic: classes
    d: int = 2  # synthetic: dimensions
    seed: int = 0
    train_file: str = ""  # text: JSONL rows {"text": str, "label": int}, labels 0..K-1
    test_file: str = ""  # text: same format, labels among the training file's
    ood_file: str = ""  # text: optional JSONL rows {"text": str} scored as out of distribution
    encoder: str = "all-minilm-l6-v2"  # text: HF encoder (preset name, local folder or cached hub id)
    max_length: int = 256  # text: tokens per text, longer ones truncated (256: sentence-transformers' MiniLM setting)
    encode_batch: int = 64  # text: texts per encoder forward
    normalize: bool = True  # text: L2-normalise the mean-pooled embeddings (as sentence-transformers does)
    cache: bool = True  # text: keep the embeddings on disk, keyed by file content, encoder and settings
    cache_dir: str = ""  # text: where the cached embeddings live ("" = output_dir/features); runs may share one


@dataclass
class EDLEval:
    n_bins: int = 10


@dataclass
class EDLRecipe:
    method: str = "edl"
    output_dir: str = "runs/edl"
    data: EDLData = field(default_factory=EDLData)
    edl: EDLConfig = field(default_factory=EDLConfig)
    eval: EDLEval = field(default_factory=EDLEval)
    logging: LoggingConfig = field(default_factory=LoggingConfig)

    def check(self, world_size: int = 1) -> None:
        if self.method != "edl":
            raise UserError(f"this recipe is for method '{self.method}', not 'edl'")
        choice("data.name", self.data.name, ["digits", "synthetic", "text"])
        if self.data.n < 2 or self.data.k < 2 or self.data.d < 1:
            raise UserError("recipe keys 'data.n' and 'data.k' must be >= 2 and 'data.d' >= 1")
        if self.data.name == "text":
            for key in ("train_file", "test_file"):
                if not getattr(self.data, key):
                    raise UserError(f"data.name=text needs recipe key 'data.{key}' (a JSONL file of text/label rows)")
            if self.data.max_length < 1 or self.data.encode_batch < 1:
                raise UserError("recipe keys 'data.max_length' and 'data.encode_batch' must be >= 1")
        self.edl.check()
        self.logging.check()
