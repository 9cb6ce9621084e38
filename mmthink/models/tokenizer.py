"""The byte-level BPE tokenizer of the tiny presets, built in code and committed under assets/.

``build_tokenizer()`` trains it deterministically on a procedural corpus (English words, digits,
arithmetic, grid-world words, chat roles); ``python -m mmthink.models.tokenizer`` rewrites
``assets/tokenizer``. Digits are split one per token so that arithmetic stays learnable.
"""

from __future__ import annotations

import random
from contextlib import contextmanager
from pathlib import Path

from mmthink.paths import assets_dir


@contextmanager
def left_padded(tokenizer):
    """Pad on the left inside the block (decoder-only models continue from the last column), then
    restore the tokenizer's own side, also when the block raises."""
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    try:
        yield tokenizer
    finally:
        tokenizer.padding_side = side

VOCAB_SIZE = 2048
PAD, EOS = "<|endoftext|>", "<|im_end|>"
SPECIAL_TOKENS = [
    PAD,
    "<|im_start|>",
    EOS,
    # Qwen-VL's vision tokens, so that the same tokenizer serves tiny-qwen2.5-vl.
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
]

# ChatML, as Qwen uses it; a message's content is a string or a list of {"type": "text"|"image"} parts.
CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' }}"
    "{%- if message['content'] is string %}{{- message['content'] }}"
    "{%- else %}{%- for part in message['content'] %}"
    "{%- if part['type'] == 'image' %}{{- '<|vision_start|><|image_pad|><|vision_end|>' }}"
    "{%- else %}{{- part['text'] }}{%- endif %}"
    "{%- endfor %}{%- endif %}"
    "{{- '<|im_end|>\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)

_WORDS = (
    "the a an of to in on is are was be and or not it this that with for as by at from what which who how "
    "answer question solve step think reason image map grid start goal hole path move up down left right "
    "plan action sequence valid invalid correct wrong final therefore so then first next last because "
    "number sum total add subtract multiply divide equals equal result value find compute each many much "
    "apple apples book books coin coins cat dog bird tree car train ball box cup friend has have had gives "
    "left remaining more less than twice half per price cost buy sell spent earned day days week hour hours "
    "user assistant system you are a helpful reason verify check reflect explore continue alternative "
    "true false yes no option choice A B C D E boxed frac sqrt x y z n equation linear variable let "
    "red green blue yellow black white color square cell row column north south east west"
).split()


def _corpus(n_lines: int = 6000, seed: int = 0):
    rng = random.Random(seed)
    ops = ["+", "-", "*", "/", "=", "(", ")", "^"]
    for _ in range(n_lines):
        kind = rng.random()
        if kind < 0.5:
            words = [rng.choice(_WORDS) for _ in range(rng.randint(4, 16))]
            line = " ".join(words).capitalize() + rng.choice([".", "?", "!", ":"])
        elif kind < 0.8:
            terms = [str(rng.randint(0, 999)) for _ in range(rng.randint(2, 4))]
            line = f" {rng.choice(ops)} ".join(terms) + f" = {rng.randint(0, 9999)}"
        else:
            moves = ",".join(rng.choice("UDLR") for _ in range(rng.randint(1, 8)))
            line = f"The answer is \\boxed{{{moves}}}. Step {rng.randint(1, 9)}: x = {rng.randint(-50, 50)}"
        yield line


def build_tokenizer():
    """Train the BPE and wrap it as a ``PreTrainedTokenizerFast`` with the ChatML template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        min_frequency=2,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_corpus(), trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=EOS, pad_token=PAD)
    fast.chat_template = CHAT_TEMPLATE
    return fast


def tokenizer_path() -> Path:
    return assets_dir() / "tokenizer"


def load_tiny_tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(tokenizer_path()))


if __name__ == "__main__":
    out = tokenizer_path()
    build_tokenizer().save_pretrained(str(out))
    print(f"wrote {out}")
