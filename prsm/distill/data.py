"""Distillation data: prompts, the teacher's continuations (generated once, cached in the store
by CID), the train / held-out split, and training batches.

A prompt set is JSONL, one object a line with a `prompt` (other fields are kept; when every
line also has a `completion`, that is the teacher's answer, as logged from traffic by the learning
loop, and nothing is generated): the built-in
science set ships with PRSM (`science_prompts.jsonl`: definitions, explanations, examples,
comparisons and calculations across physics, chemistry, biology, earth and space, mathematics),
any other is a CID in the store. The teacher answers each prompt (chat template, greedy, up to
`max_new_tokens`); the records (prompt ids, continuation ids, text) are stored as a `dataset`
artifact whose name is a digest of what made them (teacher weights, prompt set, length, template),
so the next job with the same teacher and prompts reuses them instead of generating again.
"""

from __future__ import annotations

import hashlib
import json
import time

import torch

from prsm.distill.spec import BUILTIN_DATA, BUILTIN_PROMPTS
from prsm.errors import InvalidInput, NotFound

GENERATION_VERSION = 1  # bump when the way continuations are made changes


def load_prompts(data: str, store, artifacts=None) -> tuple[list[dict], str]:
    """The prompt records and the CID of the prompt set (the built-in set is put in the store and
    recorded as a `dataset` artifact, so the data made from it can name it as a parent)."""
    raw = BUILTIN_PROMPTS.read_bytes() if data == BUILTIN_DATA else None
    if raw is not None:
        cid = store.put(raw)
        store.pin(cid)
        if artifacts is not None:
            artifacts.register(cid, "dataset", "prsm-foundation", licence="Apache-2.0", name=BUILTIN_DATA)
    else:
        cid = data
        try:
            raw = store.read(cid)
        except NotFound:
            raise InvalidInput(f"no data set {cid} in the store", "data") from None
    records = []
    for number, line in enumerate(raw.decode("utf-8", "replace").splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            raise InvalidInput(f"data set {cid}, line {number}: not JSON", "data") from None
        if not isinstance(record, dict) or not str(record.get("prompt", "")).strip():
            raise InvalidInput(f"data set {cid}, line {number}: no `prompt`", "data")
        if not isinstance(record.get("system") or "", str):
            raise InvalidInput(f"data set {cid}, line {number}: `system` is not a string", "data")
        records.append(record)
    if not records:
        raise InvalidInput(f"data set {cid} has no prompts", "data")
    return records, cid


def dataset_name(teacher_weights: str, prompts_cid: str, max_new_tokens: int) -> str:
    key = json.dumps([teacher_weights, prompts_cid, max_new_tokens, GENERATION_VERSION])
    return f"distill-data-{hashlib.sha256(key.encode()).hexdigest()[:16]}"


def teacher_dataset(
    teacher, tokenizer, teacher_weights: str, prompts: list[dict], prompts_cid: str, max_new_tokens: int,
    store, artifacts, creator: str, parents: list[str], batch_size: int = 16, progress=None,
) -> tuple[list[dict], str]:  # fmt: skip
    """The teacher's continuations of `prompts`: from the store if this exact data set was made
    before, else generated now and stored (a `dataset` artifact; `parents`: the registered
    prompt set and teacher weights). Returns the records and the data set's CID."""
    name = dataset_name(teacher_weights, prompts_cid, max_new_tokens)
    known = artifacts.find(name=name, kind="dataset")
    if known is not None:
        try:
            return [json.loads(line) for line in store.read(known["cid"]).splitlines()], known["cid"]
        except NotFound:
            pass  # recorded, but its bytes are gone (gc, another node's store): make it again
    if all(isinstance(p.get("completion"), str) for p in prompts):
        records = from_completions(tokenizer, prompts, max_new_tokens)  # the teacher's own logged answers
    else:
        records = generate(teacher, tokenizer, prompts, max_new_tokens, batch_size, progress)
    body = "".join(json.dumps(r, sort_keys=True) + "\n" for r in records).encode()
    cid = store.put(body)
    artifacts.register(cid, "dataset", creator, parents=parents, name=name)
    store.pin(cid)
    return records, cid


@torch.inference_mode()
def generate(teacher, tokenizer, prompts: list[dict], max_new_tokens: int, batch_size: int, progress=None):
    """Greedy continuations, `batch_size` prompts at a time (left padding)."""
    tokenizer.padding_side = "left"
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    records, started = [], time.perf_counter()
    for start in range(0, len(prompts), batch_size):
        batch = prompts[start : start + batch_size]
        ids = [prompt_ids(tokenizer, p["prompt"], p.get("system")) for p in batch]
        width = max(len(i) for i in ids)
        input_ids = torch.tensor([[pad] * (width - len(i)) + i for i in ids])
        attention = torch.tensor([[0] * (width - len(i)) + [1] * len(i) for i in ids])
        out = teacher.generate(
            input_ids=input_ids, attention_mask=attention, max_new_tokens=max_new_tokens,
            do_sample=False, pad_token_id=pad,
        )  # fmt: skip
        for record, prompt, row in zip(batch, ids, out[:, width:].tolist(), strict=True):
            continuation = _until_end(row, tokenizer.eos_token_id, pad)
            records.append({**record, "prompt_ids": prompt, "output_ids": continuation,
                            "text": tokenizer.decode(continuation, skip_special_tokens=True)})  # fmt: skip
        if progress is not None:
            progress(len(records), len(prompts), time.perf_counter() - started)
    return records


def from_completions(tokenizer, prompts: list[dict], max_new_tokens: int) -> list[dict]:
    """Records from prompts that carry the teacher's answer already (`completion`: what it
    answered in traffic, prsm/loop.py), cut to `max_new_tokens`: nothing is generated."""
    records = []
    for record in prompts:
        output = tokenizer.encode(record["completion"], add_special_tokens=False)[:max_new_tokens]
        if tokenizer.eos_token_id is not None and len(output) < max_new_tokens:
            output.append(tokenizer.eos_token_id)
        records.append({**record, "prompt_ids": prompt_ids(tokenizer, record["prompt"], record.get("system")), "output_ids": output,
                        "text": tokenizer.decode(output, skip_special_tokens=True)})  # fmt: skip
    return records


def prompt_ids(tokenizer, prompt: str, system: str | None = None) -> list[int]:
    """The prompt as the model sees it when served: through its chat template, after the system
    message it was given (a record's `system`: the loop's records carry the one NWTN sends, so a
    student learns from the prompt its teacher answered, not the template's default)."""
    if tokenizer.chat_template:
        messages = [{"role": "system", "content": system}] if system else []
        return tokenizer.apply_chat_template(
            [*messages, {"role": "user", "content": prompt}],
            add_generation_prompt=True,
            tokenize=True,
            return_dict=False,
        )
    return tokenizer.encode(prompt)


def _until_end(row: list[int], eos: int | None, pad: int) -> list[int]:
    """A continuation up to and including its end-of-sequence token."""
    for i, token in enumerate(row):
        if token == eos:
            return row[: i + 1]
    return [t for t in row if t != pad] if eos is None else row


def split(records: list[dict], held_out: float) -> tuple[list[dict], list[dict]]:
    """Train and held-out parts: the records ordered by a hash of their prompt, the first
    `held_out` share (at least one) held out. The same prompt set always splits the same way,
    in whatever order its lines come."""
    if len(records) < 2:
        raise InvalidInput(f"{len(records)} prompt cannot be split into train and held-out parts", "data")
    ranked = sorted(records, key=lambda r: hashlib.sha256(r["prompt"].encode()).digest())
    cut = min(len(ranked) - 1, max(1, round(held_out * len(ranked))))
    return ranked[cut:], ranked[:cut]


def sequences(records: list[dict], max_len: int) -> list[tuple[list[int], int]]:
    """(token ids, where the continuation starts) for each record with a continuation, cut to
    `max_len` tokens (the prompt is cut from the left if it alone is too long)."""
    out = []
    for r in records:
        if not r["output_ids"]:
            continue
        prompt = r["prompt_ids"][-(max_len // 2) :] if len(r["prompt_ids"]) >= max_len else r["prompt_ids"]
        ids = (prompt + r["output_ids"])[:max_len]
        out.append((ids, len(prompt)))
    return out


def batch(items: list[tuple[list[int], int]], pad: int) -> dict[str, torch.Tensor]:
    """Right-padded input ids, attention mask, and the loss mask over next-token positions:
    position i predicts token i + 1, counted only where that token is the teacher's output."""
    width = max(len(ids) for ids, _ in items)
    input_ids = torch.full((len(items), width), pad, dtype=torch.long)
    attention = torch.zeros((len(items), width), dtype=torch.long)
    loss_mask = torch.zeros((len(items), width - 1), dtype=torch.float32)
    for row, (ids, start) in enumerate(items):
        input_ids[row, : len(ids)] = torch.tensor(ids)
        attention[row, : len(ids)] = 1
        loss_mask[row, start - 1 : len(ids) - 1] = 1.0
    return {"input_ids": input_ids, "attention_mask": attention, "loss_mask": loss_mask}
