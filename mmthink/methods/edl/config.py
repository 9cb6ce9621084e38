"""The recipe schema of ``mmthink train edl`` (consistent evidential deep learning)."""

from dataclasses import dataclass, field

from mmthink.config import choice
from mmthink.errors import UserError
from mmthink.runner.config import LoggingConfig


OBJECTIVES = ["edl_mse", "edl_log", "edl_digamma", "belief_matching", "reverse_kl", "postnet", "bootstrap_distill",
              "mixture_distill"]
# α = exp(logits) without the +1: the Bootstrap-Distill network needs α_k < 1 to fit near one-hot member
# predictions (with α >= 1 the off-class push saturates every logit and the fit collapses).
EXP_RAW = "exp_raw"
EVIDENCE_KINDS = ["softplus", "exp", "relu", EXP_RAW]


@dataclass
class EDLConfig:
    objective: str = "edl_digamma"  # one of OBJECTIVES
    hidden: int = 64  # MLP width (two hidden layers)
    epochs: int = 50  # per network (each member and the distilled net for bootstrap_distill)
    lr: float = 1e-3  # Adam
    batch_size: int = 64
    kl_anneal_epochs: int = 10  # edl_*: KL weight min(1, epoch / kl_anneal_epochs)
    members: int = 5  # bootstrap_distill: M bootstrap softmax classifiers
    evidence: str = "softplus"  # classic objectives: softplus | exp | relu (α = evidence + 1) | exp_raw
    distill_evidence: str = "exp_raw"  # bootstrap_distill's Dirichlet net: α = exp(logits), may be < 1
    bm_coef: float = 1.0  # belief_matching: KL weight (1 = exact ELBO)
    target_concentration: float = 100.0  # reverse_kl
    components_per_class: int = 1  # mixture_distill: K = this × classes (VB empties surplus components in our runs)
    mixture_prior: float = 1.0  # mixture_distill: each component's prior Dir(mixture_prior · 1)
    target_samples: int = 32  # mixture_distill: target draws per minibatch when distilling
    latent_dim: int = 4  # postnet: latent size of the class densities
    flow_layers: int = 4  # postnet: radial flow layers per class density (0 = a diagonal Gaussian)
    entropy_reg: float = 1e-5  # postnet: weight of the entropy bonus in the Bayesian loss
    seed: int = 0

    def check(self) -> None:
        choice("edl.objective", self.objective, OBJECTIVES)
        choice("edl.evidence", self.evidence, EVIDENCE_KINDS)
        choice("edl.distill_evidence", self.distill_evidence, EVIDENCE_KINDS)
        for key in ("hidden", "epochs", "batch_size", "members", "components_per_class", "target_samples",
                    "latent_dim"):
            if int(getattr(self, key)) < 1:
                raise UserError(f"recipe key 'edl.{key}' must be >= 1; got {getattr(self, key)}")
        for key in ("kl_anneal_epochs", "flow_layers", "entropy_reg"):
            if getattr(self, key) < 0:
                raise UserError(f"recipe key 'edl.{key}' must be >= 0; got {getattr(self, key)}")
        for key in ("lr", "bm_coef", "target_concentration", "mixture_prior"):
            if not float(getattr(self, key)) > 0:
                raise UserError(f"recipe key 'edl.{key}' must be > 0; got {getattr(self, key)}")


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
