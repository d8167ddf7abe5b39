"""Schema-constrained generation of a TaskPlan by a local causal LM.

The JSON skeleton is written by this code, never by the model; the model only fills the free
text of each instruction (a token that would break the string is masked out) and picks among
the valid options where the schema gives a choice: the capability, each dependency (only
earlier ids), and whether another sub-task follows. Whatever the weights, the result parses
and matches PlanSpec; plan limits and placeholder rules are checked afterwards as for any plan.
"""

from __future__ import annotations

import json

import torch
from transformers import LogitsProcessor, LogitsProcessorList, StoppingCriteria, StoppingCriteriaList

from prsm.types import Capability


class _MaskTokens(LogitsProcessor):
    def __init__(self, banned: list[int]):
        self.banned = torch.tensor(banned, dtype=torch.long)

    def __call__(self, input_ids, scores):
        scores[:, self.banned] = float("-inf")
        return scores


class _StopOnQuote(StoppingCriteria):
    def __init__(self, quote_ids: set[int], start: int):
        self.quote_ids, self.start = quote_ids, start

    def __call__(self, input_ids, scores, **kwargs) -> bool:
        return input_ids.shape[1] > self.start and int(input_ids[0, -1]) in self.quote_ids


class PlanDecoder:
    def __init__(self, model, tokenizer, max_tasks: int, max_instruction_tokens: int = 48):
        self.model, self.tokenizer = model, tokenizer
        self.max_tasks, self.max_instruction_tokens = max_tasks, max_instruction_tokens
        vocab = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
        texts = [tokenizer.convert_tokens_to_string([t]) if t is not None else "" for t in vocab]
        # Inside the instruction string the model may not start a new line or write an escape;
        # a token with a quote ends the string (the text after the quote is dropped). Braces
        # stay allowed: "{t1}" is how an instruction uses an earlier result.
        special = set(tokenizer.all_special_ids)
        self.banned = [i for i, t in enumerate(texts) if "\n" in t or "\\" in t or i in special]
        self.quotes = {i for i, t in enumerate(texts) if '"' in t and i not in self.banned}

    def encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(text, add_special_tokens=False)

    def free_text(self, ids: list[int]) -> str:
        inputs = torch.tensor([ids])
        with torch.inference_mode():
            out = self.model.generate(
                inputs,
                attention_mask=torch.ones_like(inputs),
                max_new_tokens=self.max_instruction_tokens,
                do_sample=False,
                logits_processor=LogitsProcessorList([_MaskTokens(self.banned)]),
                stopping_criteria=StoppingCriteriaList([_StopOnQuote(self.quotes, len(ids))]),
                pad_token_id=self.tokenizer.pad_token_id or self.tokenizer.eos_token_id,
            )
        text = self.tokenizer.decode(out[0, len(ids) :], skip_special_tokens=True)
        return text.split('"', 1)[0].strip()

    def choose(self, ids: list[int], options: list[str]) -> str:
        """The option the model finds most likely after `ids` (mean log-probability per token)."""
        encoded = [self.encode(o) for o in options]
        width = max(len(e) for e in encoded)
        pad = self.tokenizer.pad_token_id or self.tokenizer.eos_token_id or 0
        rows = [ids + e + [pad] * (width - len(e)) for e in encoded]
        mask = [[1] * (len(ids) + len(e)) + [0] * (width - len(e)) for e in encoded]
        with torch.inference_mode():
            logits = self.model(input_ids=torch.tensor(rows), attention_mask=torch.tensor(mask)).logits
        logprobs = torch.log_softmax(logits.float(), dim=-1)
        scores = []
        for row, e in enumerate(encoded):
            positions = range(len(ids) - 1, len(ids) - 1 + len(e))
            total = sum(float(logprobs[row, p, tok]) for p, tok in zip(positions, e, strict=True))
            scores.append(total / len(e))
        return options[max(range(len(options)), key=scores.__getitem__)]

    def generate(self, messages: list[dict]) -> str:
        prompt = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        ids = self.encode(prompt)
        out = ""

        def emit(piece: str) -> None:
            nonlocal ids, out
            ids, out = ids + self.encode(piece), out + piece

        emit('{"tasks": [')
        for n in range(1, self.max_tasks + 1):
            emit(f'{", " if n > 1 else ""}{{"id": "t{n}", "instruction": "')
            emit(json.dumps(self.free_text(ids) or "answer the question")[1:])  # closes the string
            emit(', "capability": ')
            emit(self.choose(ids, [f'"{c}"' for c in Capability]))
            emit(', "depends_on": [')
            chosen: list[str] = []
            while True:
                earlier = [f"t{k}" for k in range(1, n) if f"t{k}" not in chosen]
                if not earlier:
                    break
                lead = ", " if chosen else ""
                pick = self.choose(ids, ["]"] + [f'{lead}"{k}"' for k in earlier])
                if pick == "]":
                    break
                emit(pick)
                chosen.append(pick.strip(', "'))
            emit("]}")
            if n == self.max_tasks or self.choose(ids, ["]}", ", {"]) == "]}":
                break
        emit("]}")
        return out
