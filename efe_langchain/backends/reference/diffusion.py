"""Stable Diffusion 1.5 and its relatives through diffusers, as GPT4Tools runs them.

Text2Image, the eight ControlNets (canny, mlsd, hed, scribble, openpose, seg, depth, normal),
InstructPix2Pix and inpainting (remove / replace). Every ControlNet pipeline is assembled from
ONE cached SD 1.5 base (its UNet, VAE and text encoder) plus a small cached ControlNetModel, so
eight conditions cost one base; InstructPix2Pix and inpainting bring their own UNet but reuse the
base's text encoder and VAE when their files are byte-identical (they are frozen in training). Each backend owns its scheduler (schedulers keep per-run state)
and a lock, so two tools can share the modules without sharing a run.

Generation takes a seed; the seed actually used (drawn at random when none is given, as GPT4Tools
does) is recorded in the returned image's ``info["seed"]``.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from PIL import Image

from efe_langchain.backends.reference.base import ReferenceBackend
from efe_langchain.backends.reference.config import CONTROLNET_CONDITIONS
from efe_langchain.backends.reference.shared import shared_model, weights_digest

__all__ = [
    "ControlNetBackend",
    "InpaintingBackend",
    "InstructPix2PixBackend",
    "StableDiffusionBackend",
    "load_controlnet",
    "load_sd_pipeline",
]

# GPT4Tools' prompt additions for generation
A_PROMPT = "best quality, extremely detailed"
N_PROMPT = (
    "longbody, lowres, bad anatomy, bad hands, missing fingers, extra digit, fewer digits, "
    "cropped, worst quality, low quality"
)
CONDITION_ALIASES = {"line": "mlsd", "pose": "openpose", "segmentation": "seg", "edge": "canny", "sketch": "scribble"}


# Parts every SD 1.x checkpoint GPT4Tools uses keeps frozen (InstructPix2Pix and inpainting train
# only the UNet): loaded once per content when the files are byte-identical.
SHAREABLE_PARTS = ("text_encoder", "vae")


def _shared_parts(location: str, device: str, dtype: str) -> dict:
    """Already-loaded (or now loaded, once) text encoder / VAE for a local pipeline folder."""
    folder = Path(location)
    try:
        index = json.loads((folder / "model_index.json").read_text())
    except (OSError, ValueError):
        return {}  # a hub id being downloaded: nothing to compare yet
    parts = {}
    for name in SHAREABLE_PARTS:
        entry = index.get(name)
        digest = weights_digest(folder / name) if isinstance(entry, list) and entry[0] else None
        if digest is None:
            continue
        library, class_name = entry

        def load(sub=folder / name, library=library, class_name=class_name):
            import importlib

            from efe_langchain.backends.reference.devices import torch_dtype

            cls = getattr(importlib.import_module(library), class_name)
            return cls.from_pretrained(sub, dtype=torch_dtype(dtype)).to(device).eval()

        parts[name] = shared_model(f"{class_name}:{name}", digest, device, dtype, load)
    return parts


def load_sd_pipeline(pipeline_class: str, location: str, device: str, dtype: str):
    """A diffusers pipeline of ``pipeline_class`` loaded from ``location``, cached process-wide;
    its text encoder and VAE are shared with every other pipeline that has the same files."""

    def load():
        import diffusers

        from efe_langchain.backends.reference.devices import torch_dtype

        parts = _shared_parts(location, device, dtype)
        pipe = getattr(diffusers, pipeline_class).from_pretrained(location, dtype=torch_dtype(dtype), **parts)
        return pipe.to(device)

    return shared_model(pipeline_class, location, device, dtype, load)


def load_controlnet(location: str, device: str, dtype: str):
    def load():
        from diffusers import ControlNetModel

        from efe_langchain.backends.reference.devices import torch_dtype

        return ControlNetModel.from_pretrained(location, dtype=torch_dtype(dtype)).to(device).eval()

    return shared_model("ControlNetModel", location, device, dtype, load)


def _finish(output, seed: int, size: tuple[int, int] | None = None) -> Image.Image:
    image = output.images[0]
    if size is not None and image.size != tuple(size):
        image = image.resize(size, Image.LANCZOS)
    image.info["seed"] = seed
    flagged = getattr(output, "nsfw_content_detected", None)
    if flagged and flagged[0]:
        image.info["nsfw"] = True  # the safety checker blacked it out; say so rather than show a void
    return image


class _Diffusion(ReferenceBackend):
    requires: ClassVar[tuple[str, ...]] = ("torch", "transformers", "diffusers")

    def __init__(self, device: str = "cpu", **options: Any) -> None:
        super().__init__(device, **options)
        self._run_lock = threading.Lock()

    def components(self, pipe) -> dict:
        """A pipeline's modules for building a sibling pipeline; the safety checker as configured."""
        parts = {k: v for k, v in pipe.components.items() if k not in ("scheduler", "image_encoder")}
        if not self.option("safety_checker", True):
            parts["safety_checker"] = None
            parts["feature_extractor"] = None
        parts["requires_safety_checker"] = parts.get("safety_checker") is not None
        return parts

    def steps(self, default: int) -> int:
        return int(self.option("steps", default))


class StableDiffusionBackend(_Diffusion):
    """Text to image with SD 1.5 (GPT4Tools Text2Image: 50 PNDM steps, guidance 7.5)."""

    name: ClassVar[str] = "stable-diffusion"
    describes: ClassVar[str] = "Stable Diffusion 1.5 text-to-image"
    capabilities: ClassVar[tuple[str, ...]] = ("text2image",)
    checkpoints: ClassVar[dict[str, str]] = {"base": "sd15"}

    def _load(self) -> None:
        from diffusers import StableDiffusionPipeline

        base = load_sd_pipeline("StableDiffusionPipeline", self.require("base"), self.device, self.dtype_name)
        scheduler = type(base.scheduler).from_config(base.scheduler.config)
        self.pipe = StableDiffusionPipeline(**self.components(base), scheduler=scheduler)

    def text2image(self, prompt: str, seed: int | None = None) -> Image.Image:
        prompt = str(prompt or "").strip()
        if not prompt:
            raise ValueError("text2image needs a prompt")
        self.load()
        generator, seed = self.generator(seed)
        with self._run_lock:
            out = self.pipe(
                f"{prompt}, {self.option('a_prompt', A_PROMPT)}",
                negative_prompt=self.option("n_prompt", N_PROMPT),
                num_inference_steps=self.steps(50),
                guidance_scale=float(self.option("guidance_scale", 7.5)),
                generator=generator,
            )
        return _finish(out, seed)


class ControlNetBackend(_Diffusion):
    """Condition image + prompt -> image (GPT4Tools XText2Image: UniPC, 20 steps, guidance 9).

    ``conditions`` (option) limits which ControlNets this instance must have weights for, so a
    user with only the canny ControlNet still gets a working canny tool; per-condition
    checkpoints are options named ``controlnet_<condition>``. The SD base is the ``base`` option.
    """

    name: ClassVar[str] = "controlnet"
    describes: ClassVar[str] = "ControlNet on Stable Diffusion 1.5"
    capabilities: ClassVar[tuple[str, ...]] = ("controlnet",)
    checkpoints: ClassVar[dict[str, str]] = {"base": "sd15"} | {
        f"controlnet_{c}": f"controlnet-{c}" for c in CONTROLNET_CONDITIONS
    }

    def __init__(self, device: str = "cpu", **options: Any) -> None:
        conditions = options.get("conditions") or CONTROLNET_CONDITIONS
        if isinstance(conditions, str):
            conditions = [c for c in conditions.replace(",", " ").split() if c]
        self.conditions = tuple(self.condition_name(c) for c in conditions)
        super().__init__(device, **options)
        self._pipes: dict[str, Any] = {}
        self._pipes_lock = threading.Lock()

    @staticmethod
    def condition_name(condition: str) -> str:
        name = CONDITION_ALIASES.get(str(condition).strip().lower(), str(condition).strip().lower())
        if name not in CONTROLNET_CONDITIONS:
            raise ValueError(f"unknown ControlNet condition {condition!r}: use one of {', '.join(CONTROLNET_CONDITIONS)}")
        return name

    def required_roles(self) -> list[str]:
        return ["base"] + [f"controlnet_{c}" for c in self.conditions]

    def checkpoint_names(self) -> list[str]:
        base, *nets = super().checkpoint_names()
        return [base, _brace(nets)] if nets else [base]

    def missing(self) -> list[str]:
        missing = super().missing()
        if self.options.get("conditions") or not missing:
            return missing
        # Serving every condition by default, the backend is usable when the base and at least
        # one ControlNet are here; a condition without weights says how to fetch them when used.
        base_missing = self.locate("base") is None
        have_any = any(self.locate(f"controlnet_{c}") is not None for c in self.conditions)
        if not base_missing and have_any:
            return []
        return missing[:1] if base_missing else missing

    def conditions_present(self) -> list[str]:
        """Conditions whose ControlNet weights are on this machine."""
        return [c for c in self.conditions if self.locate(f"controlnet_{c}") is not None]

    def _load(self) -> None:
        self.base = load_sd_pipeline("StableDiffusionPipeline", self.require("base"), self.device, self.dtype_name)

    def pipeline(self, condition: str):
        """The ControlNet pipeline for ``condition``: the shared base plus its ControlNetModel."""
        from diffusers import StableDiffusionControlNetPipeline, UniPCMultistepScheduler

        condition = self.condition_name(condition)
        self.load()
        with self._pipes_lock:
            if condition not in self._pipes:
                controlnet = load_controlnet(self.require(f"controlnet_{condition}"), self.device, self.dtype_name)
                self._pipes[condition] = StableDiffusionControlNetPipeline(
                    **self.components(self.base),
                    controlnet=controlnet,
                    scheduler=UniPCMultistepScheduler.from_config(self.base.scheduler.config),
                )
            return self._pipes[condition]

    def controlnet(self, condition: str, cond_image, prompt: str, seed: int | None = None) -> Image.Image:
        prompt = str(prompt or "").strip()
        if not prompt:
            raise ValueError("controlnet needs a description of the image to generate")
        cond_image = cond_image.convert("RGB")
        pipe = self.pipeline(condition)
        generator, seed = self.generator(seed)
        with self._run_lock:
            out = pipe(
                f"{prompt}, {self.option('a_prompt', A_PROMPT)}",
                cond_image,
                negative_prompt=self.option("n_prompt", N_PROMPT),
                num_inference_steps=self.steps(20),
                guidance_scale=float(self.option("guidance_scale", 9.0)),
                eta=0.0,
                generator=generator,
            )
        return _finish(out, seed, cond_image.size)


def _brace(names: list[str]) -> str:
    """``["x-canny", "x-hed"]`` -> ``"x-{canny,hed}"``: eight ControlNet ids in a readable label."""
    if len(names) < 2:
        return ", ".join(names)
    prefix = os.path.commonprefix(names)
    return f"{prefix}{{{','.join(n[len(prefix):] for n in names)}}}" if prefix else ", ".join(names)


ControlNetBackend.label = (
    f"{ControlNetBackend.describes} (runwayml/stable-diffusion-v1-5, "
    f"{_brace([f'fusing/stable-diffusion-v1-5-controlnet-{c}' for c in CONTROLNET_CONDITIONS])}; "
    "GPT4Tools reference checkpoint)"
)


class InstructPix2PixBackend(_Diffusion):
    """Instruction editing (GPT4Tools InstructPix2Pix: Euler ancestral, 40 steps, image guidance 1.2)."""

    name: ClassVar[str] = "instruct-pix2pix"
    describes: ClassVar[str] = "InstructPix2Pix instruction editing"
    capabilities: ClassVar[tuple[str, ...]] = ("instruct",)
    checkpoints: ClassVar[dict[str, str]] = {"checkpoint": "instruct-pix2pix"}

    def _load(self) -> None:
        from diffusers import EulerAncestralDiscreteScheduler, StableDiffusionInstructPix2PixPipeline

        loaded = load_sd_pipeline("StableDiffusionInstructPix2PixPipeline", self.require(), self.device, self.dtype_name)
        self.pipe = StableDiffusionInstructPix2PixPipeline(
            **self.components(loaded), scheduler=EulerAncestralDiscreteScheduler.from_config(loaded.scheduler.config)
        )

    def instruct(self, image, instruction: str, seed: int | None = None) -> Image.Image:
        instruction = str(instruction or "").strip()
        if not instruction:
            raise ValueError("instruct needs an instruction")
        image = image.convert("RGB")
        self.load()
        generator, seed = self.generator(seed)
        with self._run_lock:
            out = self.pipe(
                instruction,
                image=image,
                num_inference_steps=self.steps(40),
                image_guidance_scale=float(self.option("image_guidance_scale", 1.2)),
                generator=generator,
            )
        return _finish(out, seed, image.size)


class InpaintingBackend(_Diffusion):
    """Mask + prompt -> image (GPT4Tools Inpainting: 512x512, 50 steps, resized back).

    Remove and replace both run on this one pipeline. Pointing the ``checkpoint`` option at the
    SD base folder reuses the base's modules (legacy 4-channel inpainting) instead of loading a
    second UNet; the default is the dedicated 9-channel inpainting checkpoint GPT4Tools uses.
    """

    name: ClassVar[str] = "sd-inpainting"
    describes: ClassVar[str] = "Stable Diffusion inpainting"
    capabilities: ClassVar[tuple[str, ...]] = ("inpaint",)
    checkpoints: ClassVar[dict[str, str]] = {"checkpoint": "sd-inpainting"}

    def _load(self) -> None:
        from diffusers import StableDiffusionInpaintPipeline

        where = self.require()
        try:
            index = json.loads((Path(where) / "model_index.json").read_text())
            plain_sd = index.get("_class_name") == "StableDiffusionPipeline"
        except (OSError, ValueError):
            plain_sd = False
        # When asked for the SD base itself, the base already cached for text2image / ControlNet
        # serves (same cache key); the dedicated inpainting checkpoint loads once for remove+replace.
        kind = "StableDiffusionPipeline" if plain_sd else "StableDiffusionInpaintPipeline"
        loaded = load_sd_pipeline(kind, where, self.device, self.dtype_name)
        scheduler = type(loaded.scheduler).from_config(loaded.scheduler.config)
        self.pipe = StableDiffusionInpaintPipeline(**self.components(loaded), scheduler=scheduler)

    def inpaint(self, image, mask: np.ndarray, prompt: str, seed: int | None = None) -> Image.Image:
        image = image.convert("RGB")
        mask = np.asarray(mask).astype(bool)
        if mask.shape != (image.height, image.width):
            raise ValueError(f"the mask is {mask.shape[::-1]} but the image is {image.size}: they must match")
        if not mask.any():
            raise ValueError("the mask is empty: nothing to inpaint")
        self.load()
        side = int(self.option("resolution", self.pipe.unet.config.sample_size * self.pipe.vae_scale_factor))
        mask_image = Image.fromarray(mask.astype(np.uint8) * 255)
        generator, seed = self.generator(seed)
        with self._run_lock:
            out = self.pipe(
                prompt=str(prompt or "background"),
                image=image.resize((side, side)),
                mask_image=mask_image.resize((side, side)),
                height=side,
                width=side,
                num_inference_steps=self.steps(50),
                generator=generator,
            )
        return _finish(out, seed, image.size)
