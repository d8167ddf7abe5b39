"""A replayable workload whose sub-tasks repeat by kind with varied wording: definitions and
explanations (language-model sub-tasks, a few hot topics asked far more than the rest),
calculations and unit conversions (exact tools). Each topic's wordings are split: the `train`
ones are asked before the learning loop runs, the `held_out` ones only after it, so the student
is judged on variants it never saw. Seeded: the same arguments give the same queries.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

DEFINITION_TERMS = ("entropy", "osmosis", "a catalyst", "inertia", "an isotope", "photosynthesis")
DEFINITION_TRAIN = (
    "What is {t}?",
    "Define {t}.",
    "In one sentence, what is {t}?",
    "What does {t} mean?",
    "Can you tell me what {t} is?",
    "Describe {t} in a sentence.",
)
DEFINITION_HELD_OUT = (
    "Give a short definition of {t}.",
    "Explain briefly what {t} is.",
    "What is meant by {t}?",
    "Briefly define {t}.",
)
EXPLANATIONS = {
    "sky": (("Why is the sky blue?", "Explain why the sky looks blue.", "What makes the sky blue?"),
            ("Why does the sky appear blue?",)),
    "ice": (("Why does ice float on water?", "Explain why ice floats.", "Why is ice less dense than water?"),
            ("What makes ice float on water?",)),
    "metals": (("Why do metals conduct electricity?", "Explain why metals conduct electricity."),
               ("What lets metals conduct electricity?",)),
}  # fmt: skip
# The answer key: what each topic's answer should say, written by hand, neither model's words. The
# benchmark grades the teacher and the student against it alike (benchmarks/loop.py).
REFERENCES = {
    "entropy": "Entropy is a measure of the disorder or randomness of a system, the amount of its "
               "thermal energy not available to do work; it never decreases in an isolated system.",
    "osmosis": "Osmosis is the movement of water (a solvent) through a semipermeable membrane from a "
               "region of lower solute concentration to one of higher solute concentration.",
    "a catalyst": "A catalyst is a substance that speeds up a chemical reaction by lowering its "
                  "activation energy without being consumed by the reaction.",
    "inertia": "Inertia is the tendency of an object to resist changes in its motion: a body at rest "
               "stays at rest and a moving body keeps moving unless a force acts on it.",
    "an isotope": "Isotopes are atoms of the same element with the same number of protons but a "
                  "different number of neutrons, so a different mass number.",
    "photosynthesis": "Photosynthesis is the process by which plants, algae and some bacteria use light "
                      "energy to turn carbon dioxide and water into glucose and oxygen.",
    "sky": "The sky is blue because air molecules scatter the short blue wavelengths of sunlight much "
           "more than the longer red ones (Rayleigh scattering).",
    "ice": "Ice floats because water expands when it freezes: hydrogen bonds hold the molecules in an "
           "open lattice, so ice is less dense than liquid water.",
    "metals": "Metals conduct electricity because their outer electrons are delocalised and move freely "
              "through the lattice of metal ions, carrying charge.",
}  # fmt: skip
# Zipf-like popularity: the first topic is asked most.
WEIGHTS = (0.40, 0.20, 0.13, 0.10, 0.09, 0.08)
MIX = {"definition": 0.35, "explanation": 0.10, "calculation": 0.30, "conversion": 0.25}


@dataclass(frozen=True)
class Query:
    kind: str  # definition | explanation | calculation | conversion
    topic: str
    prompt: str


def query(rng: random.Random, held_out: bool) -> Query:
    kind = rng.choices(list(MIX), weights=list(MIX.values()))[0]
    if kind == "definition":
        term = rng.choices(DEFINITION_TERMS, weights=WEIGHTS)[0]
        wordings = DEFINITION_HELD_OUT if held_out else DEFINITION_TRAIN
        return Query(kind, term, rng.choice(wordings).format(t=term))
    if kind == "explanation":
        topic = rng.choices(list(EXPLANATIONS), weights=WEIGHTS[: len(EXPLANATIONS)])[0]
        train, held = EXPLANATIONS[topic]
        return Query(kind, topic, rng.choice(held if held_out else train))
    if kind == "calculation":
        a, b = rng.randint(2, 999), rng.randint(2, 999)
        return Query(kind, "arithmetic", rng.choice((f"What is {a} + {b}?", f"Compute {a} * {b}.")))
    n = rng.randint(1, 500)
    return Query(kind, "units", rng.choice((f"Convert {n} km to miles", f"Convert {n} kg to lb")))


def workload(n: int, held_out_from: int, seed: int = 14) -> list[Query]:
    """`n` queries; those from index `held_out_from` on use the held-out wordings."""
    rng = random.Random(seed)
    return [query(rng, i >= held_out_from) for i in range(n)]


def language_questions() -> list[tuple[str, str, bool]]:
    """(topic, prompt, held out) of every wording of every language-model topic: the router
    evaluation's set (the student saw only its own cluster's train wordings)."""
    out = [(t, w.format(t=t), w in DEFINITION_HELD_OUT) for t in DEFINITION_TERMS
           for w in DEFINITION_TRAIN + DEFINITION_HELD_OUT]  # fmt: skip
    out += [(topic, q, q in held) for topic, (train, held) in EXPLANATIONS.items() for q in train + held]
    return out
