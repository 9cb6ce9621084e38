"""PPO's critic: a copy of the policy's transformer body with a scalar value head.

OpenRLHF (and so Satori) initialises the critic from a reward model; without one we start from the
policy's own weights and a zero head, so the first values are 0 and GAE starts from plain returns.
"""

from __future__ import annotations

import copy

from torch import nn


class ValueModel(nn.Module):
    def __init__(self, body: nn.Module, hidden_size: int):
        super().__init__()
        self.body = body
        self.head = nn.Linear(hidden_size, 1)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    @classmethod
    def from_policy(cls, policy) -> "ValueModel":
        plain = copy.deepcopy(getattr(policy, "module", policy))
        if hasattr(plain, "merge_and_unload"):  # a LoRA policy: the critic trains a full merged copy
            plain = plain.merge_and_unload()
        body = plain.model
        body.requires_grad_(True)
        hidden = plain.config.get_text_config().hidden_size
        return cls(body, hidden).to(next(body.parameters()).device)

    def forward(self, input_ids, attention_mask, position_ids):
        out = self.body(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, use_cache=False)
        return self.head(out.last_hidden_state).squeeze(-1).float()


def completion_values(critic, input_ids, attention_mask, position_ids, completion_len: int):
    """V(s_t) for each completion token t: the value read at the position before it, (n, T)."""
    values = critic(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids)
    return values[:, -completion_len - 1 : -1]
