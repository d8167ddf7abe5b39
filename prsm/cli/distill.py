"""`prsm distill` and `jobs/distill.py`: arguments -> DistillSpec -> prepare, train, publish.

Its arguments are generated from DistillSpec, so it parses them itself (prsm/cli/__init__.py
hands `prsm distill ...` over whole)."""

from __future__ import annotations

import argparse
import sys

from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from prsm.distill.spec import DistillSpec
from prsm.errors import PRSMError
from prsm.services import Services

console = Console()
err = Console(stderr=True)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="prsm distill", description="Distil a registered teacher model into a smaller student."
    )
    for name, info in DistillSpec.model_fields.items():
        flag = "--" + name.replace("_", "-")
        if info.annotation is bool:
            p.add_argument(flag, action="store_true", help=info.description)
        else:
            default = "" if info.is_required() else f" (default: {info.default})"
            p.add_argument(
                flag, dest=name, required=info.is_required(), help=f"{info.description or ''}{default}"
            )
    return p


def spec_from(argv: list[str]) -> DistillSpec:
    args = {k: v for k, v in vars(parser().parse_args(argv)).items() if v is not None}
    try:
        return DistillSpec(**args)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "arguments"
        raise PRSMError(f"--{field.replace('_', '-')}: {first['msg']}", field) from None


def main(argv: list[str] | None = None) -> int:
    from transformers.utils import logging as hf_logging

    from prsm.distill.job import placement, prepare, publish, train_with_ray

    hf_logging.disable_progress_bar()  # ours show the job's progress; theirs would interleave
    services = None
    try:
        spec = spec_from(sys.argv[1:] if argv is None else argv)
        services = Services()
        # Before the teacher's data are generated: a job the cluster cannot place stops now.
        cpus = placement(spec, services.settings)
        console.print(
            f"training on {spec.workers} worker(s) of {cpus:g} CPU" + (" and 1 GPU" if spec.use_gpu else "")
        )
        with _bars() as bars:
            generating = bars.add_task("teacher data", total=None, visible=False)

            def generated(done: int, total: int, seconds: float) -> None:
                bars.update(generating, completed=done, total=total, visible=True)

            plan = prepare(spec, services, say=console.print, generation_progress=generated)
            training = bars.add_task(f"training {plan.run_name}", total=spec.steps)

            def trained(step: int, loss: float | None) -> None:
                label = f"training {plan.run_name}" + (f"  loss {loss:.3f}" if loss is not None else "")
                bars.update(training, completed=step, description=label)

            result = train_with_ray(plan, progress=trained, cpus=cpus)
            bars.update(training, completed=spec.steps)
        card = publish(plan, services, result, say=console.print)
    except SystemExit as exc:  # --help (0) or a usage error (2), already printed by argparse
        return int(exc.code or 0)
    except PRSMError as exc:  # an argument's error names its flag in its message
        err.print(f"[red]error:[/red] {exc.message if exc.message.startswith('--') else exc}")
        return 1
    finally:
        if services is not None:
            services.close()
    show(card)
    return 0


def _bars() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
    )


def show(card) -> None:
    e = card.evaluation
    table = Table(title=f"{card.id}: distilled from {e['teacher']} (held-out teacher text)")
    table.add_column("measure")
    table.add_column("value", justify="right")
    rows = [
        ("top-1 agreement with the teacher", f"{e['top1_agreement']:.3f}"),
        ("KL(teacher || student), nats/token", f"{e['kl']:.3f}"),
        ("perplexity on teacher text", f"{e['perplexity']:.2f}  (teacher {e['teacher_perplexity']:.2f})"),
        (
            "parameters",
            f"{e['student_parameters'] / 1e6:.1f}M / {e['teacher_parameters'] / 1e6:.1f}M "
            f"= {e['parameter_ratio']:.3f}",
        ),  # fmt: skip
        (
            "CPU generation speed",
            f"{e['student_tokens_per_s']:.1f} / {e['teacher_tokens_per_s']:.1f} tok/s "
            f"= {e['speed_ratio']:.2f}x",
        ),  # fmt: skip
    ]
    for row in rows:
        table.add_row(*row)
    console.print(table)
    console.print(
        f"registered {card.id}: weights {card.weights}, {card.price_per_1k_tokens} base units / 1k tokens"
    )
