"""The distillation data's prompts: a record's `system` message goes before its instruction, as
NWTN sent it to the teacher (prsm/loop.py's records carry it), and a bad one is refused."""

from __future__ import annotations

import json

import pytest

from prsm.distill.data import from_completions, load_prompts, prompt_ids
from prsm.errors import InvalidInput


class Template:
    """A tokenizer whose chat template writes each message as 'role:content|', a byte a token."""

    chat_template = "role:content|"
    eos_token_id = 0

    def apply_chat_template(self, messages, add_generation_prompt, tokenize, return_dict):
        text = "".join(f"{m['role']}:{m['content']}|" for m in messages) + "assistant:"
        return list(text.encode())

    def encode(self, text, add_special_tokens=False):
        return list(text.encode())

    def decode(self, ids, skip_special_tokens=True):
        return bytes(i for i in ids if i).decode()


def test_the_system_message_comes_first_and_is_left_out_when_absent():
    tok = Template()
    assert (
        bytes(prompt_ids(tok, "Define entropy.", "Be brief."))
        == b"system:Be brief.|user:Define entropy.|assistant:"
    )
    assert bytes(prompt_ids(tok, "Define entropy.")) == b"user:Define entropy.|assistant:"
    (record,) = from_completions(tok, [{"prompt": "Q", "system": "S", "completion": "A"}], 8)
    assert bytes(record["prompt_ids"]).startswith(b"system:S|user:Q|") and record["output_ids"] == [65, 0]


def test_a_system_message_that_is_not_text_is_refused(services):
    good = services.store.put(json.dumps({"prompt": "Q", "system": None}).encode() + b"\n")
    assert load_prompts(good, services.store)[0] == [{"prompt": "Q", "system": None}]
    bad = services.store.put(json.dumps({"prompt": "Q", "system": ["S"]}).encode() + b"\n")
    with pytest.raises(InvalidInput) as info:
        load_prompts(bad, services.store)
    assert info.value.field == "data" and "`system`" in str(info.value)
