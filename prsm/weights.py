"""Model weights by CID: a model folder (safetensors, config, tokenizer) lives in the store as a
UnixFS directory; a card says `weights: ipfs://<CID>`; whoever loads it fetches the folder by CID
(every block verified), keeps it in the local model cache and loads it from there.

The shipped default model is imported on first use (`prepare_default`: `prsm models prepare`, the Serve
app's start, jobs/prepare_models.py): the packaged GGUF is converted once, the folder goes into
the store, pinned, with its provenance (a `model` artifact), and the default card points at its
CID from then on.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

from prsm.errors import InvalidInput, PRSMError
from prsm.storage.base import BlockStore, NotFound
from prsm.storage.cid import CID

SCHEME = "ipfs://"


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
    folder: Path, store: BlockStore, artifacts, creator: str, model_dir: Path | None = None, **provenance
) -> str:
    """Put a model folder in the store, pin it, register it as a `model` artifact; its CID.
    With `model_dir`, the folder also becomes the cache entry for that CID there (hard links:
    no second copy on disk)."""
    cid = store.put_dir(folder)
    store.pin(cid)
    artifacts.register(cid, "model", creator, **provenance)
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


def prepare_default(settings) -> tuple[str, Path]:
    """Make the default model loadable on this node: its card's weights reference and the local
    folder they load from. The card points at `ipfs://<CID>` afterwards (unless its owner
    pointed it elsewhere: that is left alone). The database must be upgraded."""
    from prsm.db.engine import make_engine, session_factory
    from prsm.registry import Registry
    from prsm.storage import open_store
    from prsm.storage.artifacts import Artifacts

    engine = make_engine(settings.resolved_database_url)
    sessions = session_factory(engine)
    store = open_store(settings)
    try:
        registry = Registry(sessions)
        registry.ensure_defaults()
        return _prepare_default(settings, registry, store, Artifacts(sessions, store))
    finally:
        store.close()
        engine.dispose()


def _prepare_default(settings, registry, store: BlockStore, artifacts) -> tuple[str, Path]:
    from prsm.backends.causal_lm import resolve_weights
    from prsm.registry import DEFAULT_MODEL_ID, DEFAULT_WEIGHTS

    card = registry.get(DEFAULT_MODEL_ID)
    model_dir = settings.resolved_model_dir
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
