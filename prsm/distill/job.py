"""A distillation job from start to marketplace: validate, make the data, train with Ray Train,
evaluate, store the student by CID, register its card.

    plan = prepare(spec, services)            # every check; the teacher's data made or found by CID
    result = train_with_ray(plan)             # TorchTrainer: resumes the run if it was killed
    card = publish(plan, services, result)    # evaluate, store, register: the router can use it

`jobs/distill.py` and `prsm distill` run the three in order.
"""

from __future__ import annotations

import math
import os
import shutil
import threading
from dataclasses import dataclass, field
from pathlib import Path

from prsm.distill import data
from prsm.distill.spec import PRESETS, DistillSpec, count_parameters, student_config
from prsm.errors import ClusterTooSmall, InvalidInput, NotFound, UnknownModel
from prsm.services import Services
from prsm.settings import Settings, apply_ray_env
from prsm.storage.artifacts import Artifacts
from prsm.types import ModelCard, ModelKind
from prsm.weights import cid_of_reference, import_folder, resolve_weights


@dataclass
class Plan:
    spec: DistillSpec
    settings: Settings
    teacher: ModelCard
    teacher_folder: Path
    name: str
    owner: str
    run_name: str
    student_overrides: dict
    teacher_parameters: int
    student_parameters: int
    prompts_cid: str
    data_cid: str
    train: list[dict] = field(repr=False)
    held_out: list[dict] = field(repr=False)
    pad: int = 0

    def train_config(self) -> dict:
        spec = self.spec
        return {
            "teacher_folder": str(self.teacher_folder),
            "teacher_weights": self.teacher.weights,
            "settings": self.settings.portable(),
            "student_overrides": self.student_overrides,
            "items": data.sequences(self.train, spec.max_len),
            "pad": self.pad,
            "loss": spec.loss,
            "temperature": spec.temperature,
            "beta": spec.beta,
            "ce_weight": spec.ce_weight,
            "steps": spec.steps,
            "batch_size": spec.batch_size,
            "lr": spec.lr,
            "seed": spec.seed,
            "checkpoint_every": spec.checkpoint_every,
            "threads": max(1, (os.cpu_count() or 1) // spec.workers),
        }


def fit_workers(spec: DistillSpec, free_per_node: list[dict[str, float]], total_cpus: float) -> float:
    """CPUs per training worker: the spec's, or the CPUs free now shared by its workers (one
    decimal), checked against what each node has free (a worker runs on one node). A job the
    cluster cannot place stops here, saying what it needs and what is free: Ray would otherwise
    wait for resources that never come (the Serve app holds part of every small cluster)."""
    free = sum(node.get("CPU", 0.0) for node in free_per_node)
    cpus = spec.cpus_per_worker or math.floor(10 * free / spec.workers) / 10
    gpus = 1 if spec.use_gpu else 0
    slots = 0
    for node in free_per_node:  # how many workers fit, node by node
        fits = int(node.get("CPU", 0.0) / cpus + 1e-9) if cpus > 0 else 0
        if gpus:
            fits = min(fits, int(node.get("GPU", 0.0)))
        slots += fits
    if cpus <= 0 or slots < spec.workers:
        gpu = f" and {spec.workers} GPU" if gpus else ""
        free_gpus = sum(node.get("GPU", 0.0) for node in free_per_node)
        raise ClusterTooSmall(
            f"the job needs {spec.workers} worker(s) of {cpus:g} CPU{gpu}; the cluster has {free:g} of "
            f"{total_cpus:g} CPU free" + (f" and {free_gpus:g} GPU" if gpus else "")
            + " (the Serve app's replicas hold part of it). Ask for less (--cpus-per-worker, "
            "--workers) or add a node.",
            "cpus_per_worker" if spec.cpus_per_worker else "workers",
        )  # fmt: skip
    return cpus


def _say(message: str) -> None:
    print(message, flush=True)


def prepare(spec: DistillSpec, services: Services, say=_say, generation_progress=None) -> Plan:
    """Every check that can fail before a worker starts, then the teacher's data (generated
    once, found by CID afterwards)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    services.db.upgrade()
    settings, registry, store, artifacts = (
        services.settings,
        services.registry,
        services.store,
        services.artifacts,
    )
    registry.ensure_defaults()
    try:
        teacher = registry.get(spec.teacher)
    except UnknownModel:
        raise InvalidInput(
            f"no model {spec.teacher!r} is registered: `prsm models list`", "teacher"
        ) from None
    if teacher.kind != ModelKind.TRANSFORMERS:
        raise InvalidInput(
            f"{spec.teacher} is a {teacher.kind} model: a teacher is a transformers model", "teacher"
        )
    run_name = spec.run_name()
    name = (
        spec.name
        or f"{spec.teacher}-{spec.student if spec.student in PRESETS else 'student'}-{run_name[-6:]}"
    )
    try:
        registry.get(name)
        raise InvalidInput(f"a model {name!r} is registered already: choose another --name", "name")
    except UnknownModel:
        pass
    teacher_folder = resolve_weights(teacher.weights or "", settings.resolved_model_dir, store)
    teacher_config = AutoConfig.from_pretrained(teacher_folder)
    tokenizer = AutoTokenizer.from_pretrained(teacher_folder)
    overrides = spec.student_overrides()
    config = student_config(teacher_config, overrides)
    if config.vocab_size != teacher_config.vocab_size or len(tokenizer) > config.vocab_size:
        raise InvalidInput(
            f"the student's vocabulary ({config.vocab_size} tokens) is not the teacher's "
            f"({teacher_config.vocab_size}): distillation compares next-token distributions over one "
            "vocabulary, so the student keeps the teacher's tokenizer",
            "student",
        )
    teacher_parameters, student_parameters = count_parameters(teacher_config), count_parameters(config)
    if student_parameters >= teacher_parameters:
        raise InvalidInput(
            f"the student ({student_parameters:,} parameters) is not smaller than the teacher "
            f"({teacher_parameters:,})",
            "student",
        )
    prompts, prompts_cid = data.load_prompts(spec.data, store, artifacts)
    say(
        f"teacher {spec.teacher} ({teacher_parameters / 1e6:.1f}M parameters) -> student {name} "
        f"({student_parameters / 1e6:.1f}M); {len(prompts)} prompts ({prompts_cid})"
    )
    teacher_model = None

    class LazyTeacher:  # loaded only if the data must be generated
        def generate(self, **kwargs):
            nonlocal teacher_model
            if teacher_model is None:
                teacher_model = AutoModelForCausalLM.from_pretrained(
                    teacher_folder, dtype=torch.float32
                ).eval()
            return teacher_model.generate(**kwargs)

    weights_cid = cid_of_reference(teacher.weights or "")
    owner = spec.owner or teacher.owner
    records, data_cid = data.teacher_dataset(
        LazyTeacher(), tokenizer, teacher.weights or "", prompts, prompts_cid, spec.max_new_tokens,
        store, artifacts, owner, registered(artifacts, [prompts_cid, weights_cid]), progress=generation_progress,
    )  # fmt: skip
    train, held_out = data.split(records, spec.held_out)
    if not data.sequences(train, spec.max_len):
        raise InvalidInput("the teacher answered none of the training prompts", "data")
    say(f"teacher data {data_cid}: {len(train)} train, {len(held_out)} held-out")
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    return Plan(spec, settings, teacher, teacher_folder, name, owner, run_name, overrides,
                teacher_parameters, student_parameters, prompts_cid, data_cid, train, held_out, pad)  # fmt: skip


@dataclass
class TrainResult:
    folder: Path  # the student as a transformers folder
    metrics: dict
    job_id: str | None


def connect(settings: Settings) -> None:
    """Join the cluster the job was submitted to (or RAY_ADDRESS, or `ray_address`), else start
    a local Ray."""
    import ray

    apply_ray_env()
    if not ray.is_initialized():
        address = os.environ.get("RAY_ADDRESS", settings.ray_address)
        if address in (None, "local"):
            # A Ray we start for this job runs its workers at normal priority: by default Ray
            # nices them to 15, and on a small machine every wake-up of Ray's own processes
            # then stalls both threads of a training step (measured: benchmarks/distill.py).
            os.environ.setdefault("RAY_worker_niceness", "0")
        ray.init(address=address, log_to_driver=True)


def placement(spec: DistillSpec, settings: Settings) -> float:
    """CPUs per worker that the cluster can place now (`fit_workers`); ClusterTooSmall if none.
    Called before the teacher's data are generated, so a job that cannot run says so at once."""
    import ray
    from ray._private.state import available_resources_per_node

    connect(settings)
    free = list(available_resources_per_node().values())
    return fit_workers(spec, free, ray.cluster_resources().get("CPU", 0))


def train_with_ray(plan: Plan, progress=None, cpus: float | None = None) -> TrainResult:
    """TorchTrainer with `workers` workers (DDP over gloo on CPU, NCCL on GPUs) of `cpus` CPUs
    each (default: `placement`). The run's name comes from the spec: fit() on an existing run
    restores its last checkpoint."""
    import ray
    from ray.train import CheckpointConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    from prsm.distill.train import FINAL, train_loop_per_worker

    spec = plan.spec
    cpus = cpus or placement(spec, plan.settings)
    actor = ray.remote(Progress).options(num_cpus=0).remote()
    config = {**plan.train_config(), "progress_actor": actor, "threads": max(1, int(cpus))}
    storage = plan.settings.resolved_distill_dir
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config=config,
        scaling_config=ScalingConfig(
            num_workers=spec.workers, use_gpu=spec.use_gpu, resources_per_worker={"CPU": cpus}
        ),
        run_config=RunConfig(
            name=plan.run_name, storage_path=str(storage), checkpoint_config=CheckpointConfig(num_to_keep=2)
        ),
    )
    done = threading.Event()
    if progress is not None:
        threading.Thread(target=_poll, args=(actor, progress, done), daemon=True).start()
    try:
        result = trainer.fit()
    finally:
        done.set()
    if result.error is not None:
        raise result.error
    target = Path(plan.settings.resolved_model_dir) / f"{plan.run_name}-student"
    shutil.rmtree(target, ignore_errors=True)
    with result.checkpoint.as_directory() as folder:
        shutil.copytree(Path(folder) / FINAL, target)
    return TrainResult(target, dict(result.metrics or {}), ray.get_runtime_context().get_job_id())


class Progress:
    """A tiny actor: rank 0 posts (step, loss) after every step; the driver polls."""

    def __init__(self):
        self.step, self.loss = 0, None

    def update(self, step: int, loss: float) -> None:
        self.step, self.loss = step, loss

    def get(self) -> tuple[int, float | None]:
        return self.step, self.loss


def _poll(actor, progress, done: threading.Event) -> None:
    import ray

    while not done.wait(0.5):
        try:
            progress(*ray.get(actor.get.remote(), timeout=5))
        except Exception:  # noqa: BLE001 (progress display only)
            continue


def registered(artifacts: Artifacts, cids: list[str | None]) -> list[str]:
    """The CIDs that are registered artifacts (a provenance parent must be one)."""
    known = []
    for cid in cids:
        if cid is None:
            continue
        try:
            artifacts.get(cid)
            known.append(cid)
        except NotFound:
            pass
    return known


def publish(plan: Plan, services: Services, result: TrainResult, say=_say) -> ModelCard:
    """Evaluate the student against the teacher on the held-out part, put its folder in the
    store (pinned, a `model` artifact whose parents are the teacher's weights and the data),
    and register its card: the teacher's capabilities, a lower price, the measured quality."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from prsm.distill.evaluate import evaluate

    tokenizer = AutoTokenizer.from_pretrained(plan.teacher_folder)
    teacher = AutoModelForCausalLM.from_pretrained(plan.teacher_folder, dtype=torch.float32).eval()
    student = AutoModelForCausalLM.from_pretrained(result.folder, dtype=torch.float32).eval()
    say("evaluating the student against the teacher on the held-out prompts")
    measured = evaluate(student, teacher, tokenizer, plan.held_out, plan.spec.max_len, plan.spec.speed_tokens)
    parents = registered(services.artifacts, [cid_of_reference(plan.teacher.weights or ""), plan.data_cid])
    cid = import_folder(
        result.folder, services.store, services.artifacts, plan.owner, services.settings.resolved_model_dir,
        parents=parents, licence=plan.teacher.licence, name=plan.name,
    )  # fmt: skip
    ratio = plan.student_parameters / plan.teacher_parameters
    price = plan.spec.price_per_1k_tokens
    if price is None:  # priced by size: a student costs what its share of the teacher's compute does
        price = (
            max(1, int(plan.teacher.price_per_1k_tokens * ratio)) if plan.teacher.price_per_1k_tokens else 0
        )
    evaluation = {
        **measured,
        "teacher": plan.teacher.id,
        "data_cid": plan.data_cid,
        "prompts_cid": plan.prompts_cid,
        "job_id": result.job_id,
        "run": plan.run_name,
        "loss": plan.spec.loss,
        "steps": result.metrics.get("step"),
        "resumed_from_step": result.metrics.get("resumed_from"),
        "final_train_loss": result.metrics.get("loss"),
    }
    card = ModelCard(
        id=plan.name,
        kind=ModelKind.TRANSFORMERS,
        description=f"Distilled from {plan.teacher.id}. {plan.teacher.description}",
        tags=plan.teacher.tags,
        owner=plan.owner,
        licence=plan.teacher.licence,
        price_per_1k_tokens=price,
        weights=f"ipfs://{cid}",
        teacher=plan.teacher.id,
        quality=measured["top1_agreement"],
        evaluation=evaluation,
    )
    return services.registry.register(card)
