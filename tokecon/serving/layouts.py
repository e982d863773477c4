"""How a deployment splits its GPUs: tensor-parallel groups (the rest replicas), pipeline stages, or
data-parallel attention with experts over an expert-parallel group; which layouts a search tries
and which one the flags ask for."""

from __future__ import annotations


from tokecon.physics.specs import Model
from tokecon.records import record


@record
class Layout:
    """How a deployment splits its GPUs: ``tp``-way tensor parallel groups, or (``attention_dp``)
    data-parallel attention on every GPU with routed experts spread over ``ep`` GPUs."""

    tp: int
    ep: int = 1
    attention_dp: bool = False
    pp: int = 1

    def label(self, n_gpus: int) -> str:
        """The layout in words: ``TP8``, ``TP4, 2 replicas``, ``TP4 PP2``, ``EP8 + DP attention``."""
        if self.attention_dp:
            base, copies = f"EP{self.ep} + DP attention", n_gpus // self.ep
        else:
            base, copies = f"TP{self.tp}" + (f" PP{self.pp}" if self.pp > 1 else ""), n_gpus // (self.tp * self.pp)
        return base + (f", {copies} replicas" if copies > 1 else "")


def divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def candidate_layouts(model: Model, n_gpus: int) -> list[Layout]:
    """Every layout the frontier sweeps: TP degrees that divide the GPUs and the heads (the rest
    replicas); for mixture-of-experts models also attention-DP with every EP size dividing the GPUs."""
    out = [Layout(tp) for tp in divisors(n_gpus) if model.heads % tp == 0]
    if model.is_moe:
        out += [Layout(1, ep, True) for ep in divisors(n_gpus) if ep > 1]
    return out
