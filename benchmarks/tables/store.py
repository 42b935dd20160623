"""The result store: every trained model and every evaluation, kept under a key made of what makes its numbers.

    results/runs/models/<readable>-<hash>/   key.json, checkpoint.pt, config.json, log.jsonl, done.json
    results/runs/evals/<readable>-<hash>/    key.json, result.json, metrics.json, per_class.csv, test-server/

A model's key is its resolved training configuration: every TrainConfig field that changes the weights
(not the output folder, device, workers, progress, resume or logging; the precision `amp` included, the
memory format as asked, None meaning the device's choice), the recipe, the model config, the profile, and
the data's identity (root, split and a hash of the split's file list). An evaluation's key is its model's
key (or a released checkpoint's SHA-256), every EvalConfig setting (taken generically, so a new setting is
keyed without touching this file), the device type (which picks the fast path) and the data's identity.
Keys are canonical JSON hashed with SHA-256; `key.json` holds the readable key. A change means a new
entry; old entries stay.

Tables share models through the store: Table 1's model is Table 2's Person-Part ResNet-101, Table 3's is
Table 2's NYUDv2 ResNet-152, Table 9's 4-cascaded one is Table 2's NYUDv2 ResNet-50, so each trains once
(20 distinct models for Tables 1-9). Keys hold configuration, not code: after changing the training or
evaluation code, rerun with --fresh. Every entry records the code that made it (version,
dirty flag, hash of the uncommitted diff) in done.json / result.json.

What a launcher calls: `model_entry` (a model's key and folder), `is_trained` (is it finished),
`trained_model` (train it, resuming, unless finished); `eval_entry` / `evaluated` likewise for evaluations.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from refinenet import data
from refinenet.atomic import write_text_atomic
from refinenet.backbone_weights import is_matconvnet_file
from refinenet.checkpoint import CHECKPOINT_NAME
from refinenet.config import EvalConfig, TrainConfig, resolve
from refinenet.data.common import LabelValueError, is_standin
from refinenet.evaluate import evaluate, json_safe
from refinenet.model import RefineNetConfig
from refinenet.recipe import recipe_for
from refinenet.train import train
from refinenet.train_data import data_error_text
from refinenet.utils import resolve_device

STORE_FORMAT = 1  # bump when the meaning of stored entries changes
LATER_MODEL_FIELDS = ("resnet_form", "resnet_width", "fusion_upsample")  # RefineNetConfig fields newer than format 1
# TrainConfig fields that do not change the trained weights (bit-exact resume makes checkpointing one of them).
# `init_from` is a path: the key holds the initialising model's key instead (`model_entry(..., init=...)`).
# Recipe fields of the COCO stage (Table 4): they act through `init` and that model's own iterations, so models
# without a COCO stage keep the keys they had before the fields existed.
TRAIN_MACHINERY = {"out", "data_root", "device", "workers", "resume", "progress", "preflight", "checkpoint_every",
                   "log_every", "eval_every", "val_split", "init_from"}
STAGE_RECIPE_FIELDS = {"coco", "coco_iterations"}
# EvalConfig fields that say where things are or how the work is spread, not what is computed.
EVAL_MACHINERY = {"checkpoint", "data_root", "out", "save_predictions", "device", "workers", "progress"}


def canonical(value) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def key_hash(key: dict) -> str:
    return hashlib.sha256(canonical(key).encode()).hexdigest()[:16]


class EvaluationDataError(RuntimeError):
    """A file could not be read or written while evaluating (disk error, file changed under the run); the
    message names it. The model's checkpoint and every finished entry stay."""


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


@dataclass(frozen=True)
class Entry:
    """One folder of the store and the key that names it."""

    folder: Path
    key: dict

    @property
    def name(self) -> str:
        return self.folder.name

    def open(self) -> Path:
        """Create the folder with its key.json (a key that does not match the folder's is an error)."""
        path = self.folder / "key.json"
        if path.is_file() and json.loads(path.read_text()) != json.loads(canonical(self.key)):
            raise ValueError(f"{path} holds another key than the one its folder name stands for; remove {self.folder}")
        if not path.is_file():
            write_text_atomic(path, json.dumps(json.loads(canonical(self.key)), indent=1, sort_keys=True) + "\n")
        return self.folder

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


def entry(store: Path, kind: str, readable: str, key: dict) -> Entry:
    return Entry(Path(store) / kind / f"{readable}-{key_hash(key)}", key)


def data_identity(dataset: str, root: Path, split: str) -> dict:
    """What data a number was computed on: the root, the split and a hash of its file list."""
    files = data.load_dataset(dataset, root, split)
    listed = "\n".join(f"{_relative(i, root)}\t{_relative(lab, root)}" for i, lab in files.pairs)
    return {"dataset": dataset, "root": str(Path(root).resolve()), "split": files.split, "items": len(files),
            "files_sha256": hashlib.sha256(listed.encode()).hexdigest(),
            "kind": "standin" if is_standin(root) else "real"}


def _relative(path: Path | None, root: Path) -> str:
    if path is None:
        return ""
    try:
        return str(Path(path).relative_to(root))
    except ValueError:
        return str(path)


# ---------------------------------------------------------------------------------------------
# Models


def model_entry(store: Path, cfg: TrainConfig, profile: str, data_id: dict, init: Entry | None = None) -> Entry:
    """The store entry of the model `cfg` trains (resolved as `train` resolves it: the recipe fills the gaps).
    `init`: the entry of the model whose weights start it (Table 4's COCO stage), its key part of this key."""
    resolved = resolve(cfg)
    train_fields = {f.name: getattr(resolved, f.name) for f in dataclasses.fields(resolved)
                    if f.name not in TRAIN_MACHINERY}
    shared = {f.name for f in dataclasses.fields(RefineNetConfig)} & set(train_fields)
    options = {name: train_fields[name] for name in shared}
    if is_matconvnet_file(resolved.backbone_weights):  # build_refinenet gives such a backbone the MSRA form
        options["resnet_form"] = "msra"
    model = RefineNetConfig(num_classes=data.dataset_info(cfg.dataset).num_classes, **options)
    # model options added after the store's format 1 enter a key only where they differ from their default, so
    # that models trained before them keep their keys
    model_key = {k: v for k, v in dataclasses.asdict(model).items()
                 if not (k in LATER_MODEL_FIELDS and v == getattr(RefineNetConfig, k))}
    key = {"format": STORE_FORMAT, "kind": "model", "profile": profile, "train": train_fields,
           "recipe": {k: v for k, v in recipe_for(resolved.profile, resolved.backbone_weights).to_dict().items()
                      if k not in TRAIN_MACHINERY | STAGE_RECIPE_FIELDS},
           "model": model_key, "data": data_id}
    if init is not None:
        key["init"] = {"model": init.name, "key": init.key}
    readable = (f"{cfg.dataset}-{resolved.backbone}-{resolved.variant}-pool{resolved.pooling_blocks}-{profile}"
                f"-it{resolved.iterations}-seed{resolved.seed}")
    if init is not None:
        readable += f"-from-{init.key['data']['dataset']}"
    return entry(store, "models", readable, key)


def is_trained(model: Entry) -> bool:
    """Whether the entry's model finished training (its done.json exists)."""
    return (model.folder / "done.json").is_file()


def trained_model(model: Entry, cfg: TrainConfig, stamp: dict) -> dict:
    """Train the entry's model (resuming an interrupted run) unless it is done; returns its done.json record:
    train_seconds (summed over every session, killed ones included), iterations, amp, precision, and the code
    that trained it."""
    folder = model.folder
    done = folder / "done.json"
    if is_trained(model):
        return json.loads(done.read_text())
    model.open()
    sessions = TrainSeconds(folder / "train_seconds.json")
    cfg = dataclasses.replace(cfg, out=folder, resume=(folder / CHECKPOINT_NAME).is_file(), preflight=False)
    try:
        train(cfg, on_iteration=sessions.tick)
    finally:
        sessions.save()
    config = json.loads((folder / "config.json").read_text())
    record = {"train_seconds": round(sessions.total, 1), "iterations": config["iterations"], "amp": config["amp"],
              "precision": config.get("precision", ""), "channels_last": config["channels_last"],
              "finished_at": now(), **stamp}
    write_text_atomic(done, json.dumps(record, indent=1) + "\n")
    return record


class TrainSeconds:
    """The training time of a model's sessions, in train_seconds.json. The current session's time is written
    at its end and, so that a session killed without warning (SIGKILL, a node lost) still counts, at most
    `every` seconds apart while it trains."""

    def __init__(self, path: Path, every: float = 30.0):
        self.path, self.every = path, every
        self.earlier = self._read()
        self.start = self.saved = time.perf_counter()

    def _read(self) -> float:
        try:
            return float(json.loads(self.path.read_text())["seconds"])
        except (OSError, ValueError, KeyError, TypeError):
            return 0.0

    @property
    def total(self) -> float:
        return self.earlier + time.perf_counter() - self.start

    def tick(self, iteration: int | None = None) -> None:
        if time.perf_counter() - self.saved >= self.every:
            self.save()

    def save(self) -> None:
        self.saved = time.perf_counter()
        write_text_atomic(self.path, json.dumps({"seconds": self.total}))


# ---------------------------------------------------------------------------------------------
# Evaluations


def eval_entry(store: Path, model_ref: dict, cfg: EvalConfig, data_id: dict, test_server: tuple | None) -> Entry:
    """The store entry of evaluating `model_ref` ({"model": <entry name>, "trained_at": ...} or
    {"released": <file name>, "sha256": ...}) as `cfg` says, plus the test-server files (`test_server` =
    (split, format)) where asked. The folder's readable part is derived from the key alone."""
    settings = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in EVAL_MACHINERY}
    if not cfg.crf:
        settings.pop("crf_params", None)  # unused without the CRF
    key = {"format": STORE_FORMAT, "kind": "eval", "model": model_ref, "eval": settings, "data": data_id,
           "device_type": resolve_device(cfg.device).type, "test_server": test_server}
    source = model_ref["released"].removesuffix(".pth.tar") if "released" in model_ref else \
        model_ref["model"].rsplit("-", 1)[0]  # the model entry's readable part
    scales = "msc" if len(cfg.scales) > 1 else "ss"
    return entry(store, "evals", f"{source}-{data_id['split']}-{scales}{'-crf' if cfg.crf else ''}", key)


def evaluated(ev: Entry, cfg: EvalConfig, test_server: tuple | None, stamp: dict) -> dict:
    """Evaluate unless the entry holds the result; returns result.json: result, eval_seconds, finished_at and
    the code, device and torch that measured it."""
    path = ev.folder / "result.json"
    if path.is_file():
        return json.loads(path.read_text())
    folder = ev.open()
    start = time.perf_counter()
    try:
        result = evaluate(dataclasses.replace(cfg, out=folder))
        seconds = round(time.perf_counter() - start, 1)
        if test_server is not None:
            # Tables 4 and 5 are test-server results: write the submission files beside the val scores.
            split, fmt = test_server
            evaluate(dataclasses.replace(cfg, split=split, out=None, save_predictions=folder / "test-server",
                                         format=fmt))
            result["test_server_files"] = str(folder / "test-server")
    except (OSError, LabelValueError) as err:  # unreadable / changed files, a full disk
        raise EvaluationDataError(f"{data_error_text(err)}; evaluation stopped, the checkpoint {cfg.checkpoint} "
                                  "and every finished model and evaluation are kept: rerun to resume") from err
    record = {"result": json_safe(result), "eval_seconds": seconds, "finished_at": now(), **stamp}
    write_text_atomic(path, json.dumps(record, indent=1) + "\n")
    return record
