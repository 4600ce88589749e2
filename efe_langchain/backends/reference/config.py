"""Where reference weights live: the GPT4Tools checkpoints, their local folders and how to fetch them.

A checkpoint is named by a key of ``CHECKPOINTS`` (``"sd15"``), a hub id
(``"runwayml/stable-diffusion-v1-5"``) or a local folder. ``resolve_checkpoint`` turns any of
these into a local folder without touching the network: an explicit folder, then
``$EFE_MODEL_DIR/<hub id>`` (or ``$EFE_MODEL_DIR/<repo name>``), then the Hugging Face cache.
Downloading at run time happens only when the user opts in (``EFE_ALLOW_DOWNLOAD=1`` or the
``allow_download`` option), because a silent multi-GB download inside a chat turn is worse than a
clear message saying which command fetches what.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "CHECKPOINTS",
    "CONTROLNET_CONDITIONS",
    "Checkpoint",
    "checkpoint_info",
    "fetch_command",
    "missing_weights_message",
    "model_dir",
    "resolve_checkpoint",
    "download_allowed",
]


@dataclass(frozen=True)
class Checkpoint:
    """One published checkpoint the GPT4Tools reference implementation loads."""

    key: str
    hub_id: str  # the id GPT4Tools names (tools.json)
    library: str  # "transformers" or "diffusers"
    # Parameter count of what we load, used for memory estimates when the weights are not on
    # disk: num_parameters() of the published architectures, checked against full-size builds
    # in benchmarks/bench_reference_gpu.py (all within 0.1%).
    params: int
    fetch_id: str = ""  # where the weights can be fetched today, when the original repo is gone
    fetch_args: str = ""  # extra `hf download` arguments that skip files we never load
    note: str = ""

    @property
    def source(self) -> str:
        return self.fetch_id or self.hub_id


# Diffusers repos of SD 1.5 also hold multi-GB single-file checkpoints and EMA weights that the
# pipeline never reads; these patterns keep a fetch to the files `from_pretrained` loads.
# (`hf download` takes one pattern per flag.)
_SD_FILES = '--include "*.json" --include "*.txt" --include "*/*.safetensors" --exclude "*non_ema*" --exclude "*.fp16.*"'

_CN = "fusing/stable-diffusion-v1-5-controlnet-{}"
CONTROLNET_CONDITIONS = ("canny", "mlsd", "hed", "scribble", "openpose", "seg", "depth", "normal")

CHECKPOINTS: dict[str, Checkpoint] = {
    c.key: c
    for c in [
        # BLIP ties its decoder's output layer to the word embeddings: counted once (the hub's
        # model cards count them twice, 23.4 M more).
        Checkpoint("blip-caption", "Salesforce/blip-image-captioning-base", "transformers", 223_971_644),
        Checkpoint("blip-vqa", "Salesforce/blip-vqa-base", "transformers", 361_230_140),
        Checkpoint(
            "grounding-dino",
            "IDEA-Research/grounding-dino-tiny",
            "transformers",
            172_249_090,
            note="the transformers port of GroundingDINO Swin-T OGC, the checkpoint GPT4Tools loads",
        ),
        Checkpoint("sam", "facebook/sam-vit-huge", "transformers", 641_090_608, note="SAM ViT-H"),
        Checkpoint(
            "sd15",
            "runwayml/stable-diffusion-v1-5",
            "diffusers",
            # UNet 859.5M + VAE 83.7M + CLIP text encoder 123.1M + safety checker 304.3M
            1_370_617_427,
            fetch_id="stable-diffusion-v1-5/stable-diffusion-v1-5",
            fetch_args=_SD_FILES,
            note="runwayml's repo was withdrawn; stable-diffusion-v1-5/ is its official mirror",
        ),
        Checkpoint(
            "sd-inpainting",
            "runwayml/stable-diffusion-inpainting",
            "diffusers",
            1_370_617_427 + 5 * 320 * 9,  # conv_in takes image latents + mask: 9 channels
            fetch_id="stable-diffusion-v1-5/stable-diffusion-inpainting",
            fetch_args=_SD_FILES,
            note="runwayml's repo was withdrawn; stable-diffusion-v1-5/ is its official mirror",
        ),
        Checkpoint(
            "instruct-pix2pix",
            "timbrooks/instruct-pix2pix",
            "diffusers",
            1_370_617_427 + 4 * 320 * 9,  # conv_in takes noisy + image latents: 8 channels
            fetch_args=_SD_FILES,
        ),
        Checkpoint("dpt-large", "Intel/dpt-large", "transformers", 342_751_073, note="the depth-estimation pipeline's default"),
        Checkpoint("dpt-hybrid", "Intel/dpt-hybrid-midas", "transformers", 123_146_049),
    ]
    + [Checkpoint(f"controlnet-{c}", _CN.format(c), "diffusers", 361_279_657) for c in CONTROLNET_CONDITIONS]
}

_BY_HUB_ID = {c.hub_id.lower(): c for c in CHECKPOINTS.values()} | {
    c.fetch_id.lower(): c for c in CHECKPOINTS.values() if c.fetch_id
}


def checkpoint_info(spec: str) -> Checkpoint | None:
    """The known checkpoint a key or hub id names (None for a folder or an unknown id)."""
    return CHECKPOINTS.get(spec) or _BY_HUB_ID.get(str(spec).lower())


def model_dir(explicit: str | os.PathLike | None = None) -> Path | None:
    """The folder that holds reference weights: an explicit option, else ``$EFE_MODEL_DIR``."""
    value = explicit if explicit is not None else os.environ.get("EFE_MODEL_DIR")
    return Path(value).expanduser() if value else None


def download_allowed(explicit: bool | None = None) -> bool:
    if explicit is not None:
        return bool(explicit)
    return os.environ.get("EFE_ALLOW_DOWNLOAD", "").strip().lower() in {"1", "true", "yes"}


def _is_model_folder(path: Path) -> bool:
    return path.is_dir() and ((path / "config.json").is_file() or (path / "model_index.json").is_file())


def _looks_like_path(spec: str) -> bool:
    """Hub ids are ``owner/name``; anything else with a path shape is a folder the user meant."""
    return spec.startswith(("/", "./", "../", "~")) or spec.count("/") > 1 or "\\" in spec


def _hub_ids(spec: str) -> list[str]:
    info = checkpoint_info(spec)
    if info is None and _looks_like_path(spec):
        return []
    ids = [info.hub_id, info.fetch_id] if info else [spec]
    return [i for i in ids if i and "/" in i]


def _from_hf_cache(repo_id: str) -> Path | None:
    try:
        from huggingface_hub import snapshot_download

        # local_files_only: only the cache is consulted; no request leaves the machine.
        path = Path(snapshot_download(repo_id, local_files_only=True))
    except Exception:  # not cached, or an id the hub library rejects
        return None
    return path if _is_model_folder(path) else None


def resolve_checkpoint(
    spec: str,
    model_dir_option: str | os.PathLike | None = None,
    allow_download: bool | None = None,
) -> str | None:
    """A loadable location for ``spec``: a local folder, or the hub id if downloads are allowed.

    None means the weights are not here; ``missing_weights_message`` says how to fetch them.
    """
    spec = str(spec)
    as_path = Path(spec).expanduser()
    if _is_model_folder(as_path):
        return str(as_path)
    root = model_dir(model_dir_option)
    ids = _hub_ids(spec)
    if root is not None:
        for repo_id in ids:
            for candidate in (root / repo_id, root / repo_id.split("/")[-1]):
                if _is_model_folder(candidate):
                    return str(candidate)
    for repo_id in ids:
        cached = _from_hf_cache(repo_id)
        if cached is not None:
            return str(cached)
    if download_allowed(allow_download) and ids:
        return ids[-1] if checkpoint_info(spec) and checkpoint_info(spec).fetch_id else ids[0]
    return None


def fetch_command(spec: str, model_dir_option: str | os.PathLike | None = None) -> str:
    """The shell command that puts ``spec``'s weights where ``resolve_checkpoint`` looks first."""
    info = checkpoint_info(spec)
    source = info.source if info else spec
    local_name = info.hub_id if info else spec
    root = model_dir(model_dir_option)
    target = f"{root}/{local_name}" if root is not None else f"$EFE_MODEL_DIR/{local_name}"
    extra = f" {info.fetch_args}" if info and info.fetch_args else ""
    return f"hf download {source} --local-dir {target}{extra}"


def missing_weights_message(spec: str, model_dir_option: str | os.PathLike | None = None) -> str:
    info = checkpoint_info(spec)
    if info is None and _looks_like_path(str(spec)):
        return f"no model folder at {spec} (a folder with config.json or model_index.json, as save_pretrained writes)"
    name = info.hub_id if info else spec
    root = model_dir(model_dir_option)
    where = f"{root}/{name}" if root is not None else "$EFE_MODEL_DIR (unset)"
    note = f" ({info.note})" if info and info.note else ""
    return (
        f"weights of {name}{note} not found in {where} nor in the Hugging Face cache; "
        f"fetch them with: {fetch_command(spec, model_dir_option)} "
        "(or set EFE_ALLOW_DOWNLOAD=1 to let the first use download them)"
    )
