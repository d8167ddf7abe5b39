"""The student against its teacher on held-out teacher text.

- top-1 agreement: how often the student's most likely next token is the teacher's, over the
  positions of the teacher's continuations;
- KL: KL(teacher || student) of the next-token distributions, nats per token;
- perplexity on teacher text: exp of the student's mean negative log-likelihood of the teacher's
  tokens (the teacher's own is reported beside it);
- parameter ratio and CPU generation speed ratio (student tokens/s over teacher tokens/s, greedy,
  one prompt at a time, a fixed number of new tokens).
"""

from __future__ import annotations

import math
import time

import torch
import torch.nn.functional as F

from prsm.distill.data import batch, prompt_ids, sequences


def parameters(model) -> int:
    return sum(p.numel() for p in model.parameters())


@torch.inference_mode()
def against_teacher(
    student, teacher, records: list[dict], max_len: int, pad: int, batch_size: int = 8
) -> dict:
    items = sequences(records, max_len)
    agree = kl = nll = teacher_nll = 0.0
    total = 0
    for start in range(0, len(items), batch_size):
        inputs = batch(items[start : start + batch_size], pad)
        args = {"input_ids": inputs["input_ids"], "attention_mask": inputs["attention_mask"]}
        s = F.log_softmax(student(**args).logits[:, :-1].float(), -1)
        t = F.log_softmax(teacher(**args).logits[:, :-1].float(), -1)
        mask = inputs["loss_mask"].bool()
        labels = inputs["input_ids"][:, 1:].unsqueeze(-1)
        agree += ((s.argmax(-1) == t.argmax(-1)) & mask).sum().item()
        kl += ((t.exp() * (t - s)).sum(-1) * mask).sum().item()
        nll -= (s.gather(-1, labels).squeeze(-1) * mask).sum().item()
        teacher_nll -= (t.gather(-1, labels).squeeze(-1) * mask).sum().item()
        total += int(mask.sum().item())
    if not total:
        raise ValueError("no held-out teacher tokens to evaluate on")
    return {
        "top1_agreement": agree / total,
        "kl": kl / total,
        "perplexity": math.exp(nll / total),
        "teacher_perplexity": math.exp(teacher_nll / total),
        "held_out_tokens": total,
        "held_out_sequences": len(items),
    }


@torch.inference_mode()
def generation_speed(model, tokenizer, prompts: list[str], new_tokens: int = 32) -> float:
    """Tokens per second, greedy, batch of one, exactly `new_tokens` new tokens a prompt."""
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    model.generate(
        input_ids=torch.tensor([prompt_ids(tokenizer, prompts[0])]),
        max_new_tokens=2,
        min_new_tokens=2,
        do_sample=False,
        pad_token_id=pad,
    )  # fmt: skip  (warm-up)
    started = time.perf_counter()
    for prompt in prompts:
        model.generate(
            input_ids=torch.tensor([prompt_ids(tokenizer, prompt)]), max_new_tokens=new_tokens,
            min_new_tokens=new_tokens, do_sample=False, pad_token_id=pad,
        )  # fmt: skip
    return len(prompts) * new_tokens / (time.perf_counter() - started)


def evaluate(
    student,
    teacher,
    tokenizer,
    held_out: list[dict],
    max_len: int,
    speed_tokens: int = 32,
    speed_prompts: int = 4,
) -> dict:
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    student.eval()
    result = against_teacher(student, teacher, held_out, max_len, pad)
    prompts = [r["prompt"] for r in held_out[:speed_prompts]]
    student_speed = generation_speed(student, tokenizer, prompts, speed_tokens)
    teacher_speed = generation_speed(teacher, tokenizer, prompts, speed_tokens)
    return {
        **result,
        "student_parameters": parameters(student),
        "teacher_parameters": parameters(teacher),
        "parameter_ratio": parameters(student) / parameters(teacher),
        "student_tokens_per_s": student_speed,
        "teacher_tokens_per_s": teacher_speed,
        "speed_ratio": student_speed / teacher_speed,
    }
