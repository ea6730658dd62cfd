"""Pretraining configuration: typed dataclasses, YAML in and out, ``--set key=value`` overrides.

Defaults reproduce the official Endo-FM run (reference §3.1: ``train_ssl.py`` + ``scripts/train_clips32k.sh``),
so a config file only lists what differs. Sections:

- ``model``: backbone arch (``create_model`` name), constructor overrides, initial checkpoint, grad checkpointing;
- ``head``: DINO projection head sizes (§3.6);
- ``views``: temporal sampling and view sizes (§3.2);
- ``augment``: spatial/colour augmentation (§3.3) and the official quirks switches;
- ``data``: clip list (CSV ``path,-1`` or a folder of videos), batch size, workers;
- ``optim``: schedules, AdamW, clipping, EMA, loss temperatures (§3.5, §3.7);
- ``run``: seed, precision, checkpoint frequency, logging.

``load_config(path, overrides)`` returns a validated ``PretrainConfig``; ``save_config`` writes the resolved config
that a run directory keeps. Unknown keys are errors that name the key and the file, never silently ignored.
"""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, get_type_hints

from core_model.contract import IMAGENET_MEAN, IMAGENET_STD

__all__ = [
    "AugmentConfig",
    "ConfigError",
    "DataConfig",
    "HeadConfig",
    "ModelConfig",
    "OptimConfig",
    "PretrainConfig",
    "RunConfig",
    "ViewsConfig",
    "config_from_dict",
    "config_to_dict",
    "load_config",
    "save_config",
]


BUILTIN_CONFIGS = Path(__file__).resolve().parent / "configs"


class ConfigError(ValueError):
    """A config file or override is invalid; the message names the key (and file) and the reason."""


@dataclass
class ModelConfig:
    arch: str = "endofm_base"
    overrides: dict[str, Any] = field(default_factory=dict)  # passed to create_model(arch, **overrides)
    drop_path_rate: float | None = 0.1  # None: the arch's default
    # the weights the run starts from: "bundled" (resources/demo_model), a user's endo_fm.pth, an official
    # checkpoint.pth (student, teacher, centre, optimiser), a model directory or any layout the converter reads;
    # "scratch" or null: random initialisation (explicit, never a silent fallback)
    init_checkpoint: str | None = "bundled"
    init_head: bool = True  # also load DINO head weights when the checkpoint has matching ``head.*`` keys
    grad_checkpointing: bool = False


@dataclass
class HeadConfig:
    out_dim: int = 65536
    hidden_dim: int = 2048
    bottleneck_dim: int = 256
    nlayers: int = 3
    norm_last_layer: bool = True
    # BatchNorm in the hidden layers (DINO's use_bn_in_head; SyncBatchNorm under torchrun on GPUs)
    use_bn: bool = False


@dataclass
class ViewsConfig:
    global_size: int = 224
    local_size: int = 96
    global_frames: list[int] = field(default_factory=lambda: [8, 16])
    local_frames: list[int] = field(default_factory=lambda: [2, 2, 4, 4, 8, 8, 16, 16])
    global_offset: int = 5  # g1 spans [0, L-5], g2 spans [5, L]
    local_window_div: int = 8  # local window width w = L // 8
    # decoded window = sampling_rate * num_frames / target_fps seconds (256 frames at 30 fps)
    sampling_rate: int = 32
    num_frames: int = 8
    target_fps: float = 30.0


@dataclass
class AugmentConfig:
    official_quirks: bool = True  # crop: 10 attempts without early break, stale offsets; no clamping to [0,1]
    grayscale_bgr_quirk: bool = True  # grey = 0.299*ch2 + 0.587*ch1 + 0.114*ch0 applied to RGB (official)
    blur_solarize: bool = False  # False reproduces the official no-ops; True makes them work
    global_scale: list[float] = field(default_factory=lambda: [0.4, 1.0])
    local_scale: list[float] = field(default_factory=lambda: [0.05, 0.4])
    ratio: list[float] = field(default_factory=lambda: [3 / 4, 4 / 3])
    flip_p: float = 0.5
    jitter_p: float = 0.8
    brightness: float = 0.4
    contrast: float = 0.4
    saturation: float = 0.2
    grayscale_p: float = 0.2
    blur_p: list[float] = field(default_factory=lambda: [1.0, 0.1, 0.5])  # global1, global2, local
    blur_sigma: list[float] = field(default_factory=lambda: [0.1, 2.0])
    solarize_p: list[float] = field(default_factory=lambda: [0.0, 0.2, 0.0])  # global1, global2, local
    mean: list[float] = field(default_factory=lambda: list(IMAGENET_MEAN))
    std: list[float] = field(default_factory=lambda: list(IMAGENET_STD))


@dataclass
class DataConfig:
    path: str = ""  # CSV list (``path,-1``) or a folder scanned recursively for videos
    batch_size_per_gpu: int = 3
    num_workers: int = 10
    pin_memory: bool = True
    max_retries: int = 10  # other clips tried when one fails to decode, before the run stops


@dataclass
class OptimConfig:
    epochs: int = 100
    lr: float = 5e-4  # at batch 256; scaled by global batch / 256
    min_lr: float = 1e-6
    warmup_epochs: int = 10
    weight_decay: float = 0.04
    weight_decay_end: float = 0.4
    clip_grad: float = 3.0  # per-parameter; 0 disables
    freeze_last_layer: int = 1
    momentum_teacher: float = 0.996
    teacher_temp: float = 0.04
    warmup_teacher_temp: float = 0.04
    warmup_teacher_temp_epochs: int = 0
    student_temp: float = 0.1
    center_momentum: float = 0.9
    center_init: str = "zero"  # "zero" (official) or "first_batch" (the first batch's mean teacher output)
    centering: str = "center"  # "center" (official: momentum centre) or "sinkhorn" (Sinkhorn-Knopp, DINOv2)
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])


@dataclass
class RunConfig:
    seed: int = 0
    precision: str = (
        "auto"  # auto (bf16 if supported, else fp16 + scaler on GPU; fp32 on CPU) | bf16 | fp16 | fp32
    )
    device: str | None = None  # None: runtime.pick_device()
    num_threads: int | None = (
        None  # torch CPU threads for this run (None: torch's default); restored afterwards
    )
    saveckp_freq: int = 5  # also keep checkpoint{epoch:04}.pth every N epochs (0-based epoch % N == 0)
    teacher_train_mode: bool = True  # official quirk: the teacher's DropPath stays active
    log_every: int = 1  # progress event every N steps
    export_every_epoch: bool = False  # export the teacher after every epoch, not only at the end


@dataclass
class PretrainConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    head: HeadConfig = field(default_factory=HeadConfig)
    views: ViewsConfig = field(default_factory=ViewsConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    run: RunConfig = field(default_factory=RunConfig)

    def validate(self) -> None:
        v, a, o = self.views, self.augment, self.optim
        if len(v.global_frames) != 2:
            raise ConfigError(f"views.global_frames: need exactly 2 global views, got {v.global_frames}")
        if any(k < 1 for k in [*v.global_frames, *v.local_frames]):
            raise ConfigError("views: every view needs at least 1 frame")
        if v.global_size < 16 or (v.local_frames and v.local_size < 16):
            raise ConfigError("views: global_size/local_size must be at least one 16-px patch")
        for name in ("global_scale", "local_scale", "ratio", "blur_sigma"):
            lo_hi = getattr(a, name)
            if len(lo_hi) != 2 or not 0 < lo_hi[0] <= lo_hi[1]:
                raise ConfigError(f"augment.{name}: need [low, high] with 0 < low <= high, got {lo_hi}")
        for name in ("blur_p", "solarize_p"):
            if len(getattr(a, name)) != 3:
                raise ConfigError(f"augment.{name}: need 3 probabilities (global1, global2, local)")
        if self.data.batch_size_per_gpu < 1:
            raise ConfigError("data.batch_size_per_gpu must be >= 1")
        if o.epochs < 1:
            raise ConfigError("optim.epochs must be >= 1")
        if not 0 <= o.warmup_epochs <= o.epochs:
            raise ConfigError("optim.warmup_epochs must be within [0, epochs]")
        if self.run.precision not in ("auto", "bf16", "fp16", "fp32"):
            raise ConfigError(f"run.precision: one of auto, bf16, fp16, fp32; got {self.run.precision!r}")
        if self.run.num_threads is not None and self.run.num_threads < 1:
            raise ConfigError("run.num_threads must be >= 1 (or null for torch's default)")
        if self.head.nlayers < 1:
            raise ConfigError("head.nlayers must be >= 1")

    @property
    def n_views(self) -> int:
        return 2 + len(self.views.local_frames)


# ---------------------------------------------------------------------------------------------------- dict <-> dataclass


def _convert(value: Any, typ: Any, key: str) -> Any:
    """Coerce a YAML value to the field's annotated type (ints to floats, tuples to lists); reject mismatches."""
    origin = getattr(typ, "__origin__", None)
    args = getattr(typ, "__args__", ())
    if value is None:
        if type(None) in args or typ is Any:
            return None
        raise ConfigError(f"{key}: may not be null")
    if typ is Any:
        return value
    if origin is None and type(None) in args:  # X | None (types.UnionType)
        inner = [t for t in args if t is not type(None)][0]
        return _convert(value, inner, key)
    if str(type(typ)) == "<class 'types.UnionType'>":
        inner = [t for t in typ.__args__ if t is not type(None)][0]
        return _convert(value, inner, key)
    if origin is list:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        return [_convert(x, args[0], f"{key}[{i}]") for i, x in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {value!r}")
        return dict(value)
    if typ is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true/false, got {value!r}")
        return value
    if typ is float:
        if isinstance(value, str):  # YAML 1.1 reads "1e-5" (no dot) as a string
            try:
                return float(value)
            except ValueError:
                raise ConfigError(f"{key}: expected a number, got {value!r}") from None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        return float(value)
    if typ is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        return value
    if typ is str:
        if not isinstance(value, str | int | float):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return str(value)
    return value


def _build(cls: type, data: dict[str, Any], prefix: str) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix or 'config'}: expected a mapping, got {data!r}")
    hints = get_type_hints(cls)
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"unknown key(s) {', '.join(prefix + k for k in unknown)}; known: {sorted(names)}")
    kwargs = {}
    for f in fields(cls):
        if f.name not in data:
            continue
        typ = hints[f.name]
        if dataclasses.is_dataclass(typ):
            kwargs[f.name] = _build(typ, data[f.name] or {}, f"{prefix}{f.name}.")
        else:
            kwargs[f.name] = _convert(data[f.name], typ, prefix + f.name)
    return cls(**kwargs)


def config_from_dict(data: dict[str, Any]) -> PretrainConfig:
    cfg = _build(PretrainConfig, data or {}, "")
    cfg.validate()
    return cfg


def config_to_dict(cfg: PretrainConfig) -> dict[str, Any]:
    return asdict(cfg)


def _apply_override(data: dict[str, Any], item: str) -> None:
    import yaml

    if "=" not in item:
        raise ConfigError(f"--set {item!r}: expected key=value, e.g. optim.lr=1e-4")
    key, raw = item.split("=", 1)
    parts = key.strip().split(".")
    node = data
    for p in parts[:-1]:
        node = node.setdefault(p, {})
        if not isinstance(node, dict):
            raise ConfigError(f"--set {item!r}: {p!r} is not a section")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        raise ConfigError(f"--set {item!r}: cannot parse value: {exc}") from exc
    node[parts[-1]] = value


def load_config(path: str | Path | None, overrides: list[str] | None = None) -> PretrainConfig:
    """Read a YAML config (a path, or the name of a built-in one in ``configs/`` such as ``demo_tiny``; defaults
    when ``path`` is None) and apply ``key=value`` overrides."""
    import yaml

    data: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        if not p.is_file() and (BUILTIN_CONFIGS / f"{path}.yaml").is_file():
            p = BUILTIN_CONFIGS / f"{path}.yaml"  # a built-in config by name, e.g. "demo_tiny"
        if not p.is_file():
            raise ConfigError(f"{p}: config file not found")
        try:
            data = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{p}: not valid YAML: {exc}") from exc
        if not isinstance(data, dict):
            raise ConfigError(f"{p}: expected a mapping at the top level")
    for item in overrides or []:
        _apply_override(data, item)
    try:
        return config_from_dict(data)
    except ConfigError as exc:
        where = f"{path}: " if path is not None else ""
        raise ConfigError(f"{where}{exc}") from None


def save_config(cfg: PretrainConfig, path: str | Path) -> Path:
    import yaml

    p = Path(path)
    p.write_text(yaml.safe_dump(config_to_dict(cfg), sort_keys=False), encoding="utf-8")
    return p
