"""What a query costs: the quote held before it runs, the charge captured after, and the split.

Quote (an upper bound, so a query can always pay what it used): the orchestration fee plus, for
each sub-task, the price of the dearest model the router could pick, at the longest input the
sub-task can have (its instruction with every earlier result filled in) and the longest answer
allowed. Charge: the fee plus, for each answered sub-task, the model's price of the measured
usage (tokens in and out for language models, the flat per-call price for tools). A charge is
never more than the quote: past it (a tokenizer that counts more than the estimate), every part
is scaled down and the user pays the quote.

Split of a model's charge: owner / node operator / treasury, default 80 / 15 / 5 %. The owner
is paid for the model's quality (most of the value), the operator for the compute it ran on,
the treasury funds the protocol (settlement gas). The orchestration fee is NWTN's own compute:
operator and treasury, with the treasury's share. A distilled student (card with a `teacher`)
pays a royalty out of its owner's share to the teacher's owner, default 10 % of that share, one
generation deep. A peer node's model: the peer is owed what it charged this node, the rest is
this node's federation fee (operator and treasury). Integer rounding leftovers go to the
treasury, so the parts always sum to the charge exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

from prsm.errors import InvalidInput
from prsm.ftns.ledger import TREASURY
from prsm.settings import Settings
from prsm.types import PLACEHOLDER, ModelCard, ModelKind, TaskPlan

BPS = 10_000
TEMPLATE_TOKENS = 48  # chat template and system prompt around an instruction


@dataclass(frozen=True)
class Shares:
    """How a charge is split; the defaults are the settings' (prsm/settings.py)."""

    owner_bps: int
    operator_bps: int
    treasury_bps: int
    royalty_bps: int  # of the owner's part, to the teacher's owner
    operator_account: str

    @classmethod
    def from_settings(cls, settings: Settings) -> Shares:
        return cls(
            settings.owner_share_bps,
            settings.operator_share_bps,
            settings.treasury_share_bps,
            settings.royalty_bps,
            settings.operator_account,
        )

    def __post_init__(self) -> None:
        parts = (self.owner_bps, self.operator_bps, self.treasury_bps, self.royalty_bps)
        if any(p < 0 for p in parts) or self.owner_bps + self.operator_bps + self.treasury_bps != BPS:
            raise InvalidInput(
                "owner, operator and treasury shares must be >= 0 and sum to 10000 bps", "shares"
            )
        if self.royalty_bps > BPS:
            raise InvalidInput("the royalty is a share of the owner's part: at most 10000 bps", "royalty_bps")


def estimate_tokens(text: str) -> int:
    """An upper estimate of a text's tokens: BPE tokenizers average 3-4 bytes a token on English;
    2 bytes a token leaves room for numbers and symbols."""
    return len(text.encode()) // 2 + 1


def call_cost(card: ModelCard, tokens_in: int, tokens_out: int) -> int:
    per_token = -(-card.price_per_1k_tokens * (tokens_in + tokens_out) // 1000)  # rounded up
    return card.price_per_call + per_token


def quote(plan: TaskPlan, candidates: dict[str, list[ModelCard]], max_new_tokens: int, fee: int) -> int:
    """The most a query can cost: the fee, and for each sub-task the dearest of the models that
    may run it (`candidates[task.key]`: the ones the router ranked and NWTN would try, not the
    whole registry, so one dear card elsewhere prices no one out) at its longest input and answer."""
    total = fee
    for task in plan.tasks:
        refs = len(PLACEHOLDER.findall(task.instruction))
        tokens_in = estimate_tokens(task.instruction) + TEMPLATE_TOKENS + refs * max_new_tokens
        total += max(
            (call_cost(c, tokens_in, max_new_tokens) for c in candidates.get(task.key, ())), default=0
        )
    return total


def split(
    costs: list[tuple[ModelCard, int] | tuple[ModelCard, int, int | None]], fee: int, cap: int, shares: Shares,
    cards: dict[str, ModelCard],
) -> dict[str, int]:  # fmt: skip
    """{account: amount} for a charge of each (card, cost) plus the fee, at most `cap` in all.

    A peer node's model (kind `peer`) comes as (card, cost, what the peer charged this node):
    the peer's account is owed exactly that (so both nodes' ledgers agree), and the rest of the
    cost is this node's federation fee, split between operator and treasury like the query fee."""
    items = []
    for card, cost, *rest in costs:
        owed = min(rest[0] or 0, cost) if rest and card.kind == ModelKind.PEER else 0
        items.append((card, cost, owed))
    total = fee + sum(c for _, c, _ in items)
    if total > cap:  # scale every part down (floor); the leftover lands at the treasury below
        owed_total = sum(o for *_, o in items)
        if owed_total > cap:  # cannot happen with a quote at the agreed prices; bounded anyway
            items = [(card, c * cap // total, o * cap // owed_total) for card, c, o in items]
            fee = fee * cap // total
        else:  # what peers charged is paid whole; the rest shares what is left of the cap
            free, room = total - owed_total, cap - owed_total
            items = [(card, o + (c - o) * room // free, o) for card, c, o in items]
            fee = fee * room // free
        total = cap
    parts: dict[str, int] = {}

    def pay(account: str, amount: int) -> None:
        if amount > 0:
            parts[account] = parts.get(account, 0) + amount

    for card, cost, owed in items:
        if card.kind == ModelKind.PEER:
            pay(card.owner, owed)
            pay(shares.operator_account, (cost - owed) * (BPS - shares.treasury_bps) // BPS)
            continue
        owner = cost * shares.owner_bps // BPS
        teacher = cards.get(card.teacher) if card.teacher else None
        if teacher is not None and teacher.owner != card.owner:
            royalty = owner * shares.royalty_bps // BPS
            pay(teacher.owner, royalty)
            owner -= royalty
        pay(card.owner, owner)
        pay(shares.operator_account, cost * shares.operator_bps // BPS)
    pay(shares.operator_account, fee * (BPS - shares.treasury_bps) // BPS)
    pay(TREASURY, total - sum(parts.values()))
    return parts
