"""What every reference backend shares: checkpoint options, the missing-weights report, dtype, seeds."""

from __future__ import annotations

import random
from typing import Any, ClassVar

from efe_langchain.backends.base import Backend, BackendUnavailable
from efe_langchain.backends.reference.config import (
    checkpoint_info,
    missing_weights_message,
    resolve_checkpoint,
)
from efe_langchain.backends.reference.devices import dtype_name_for, torch_dtype, validate_device

__all__ = ["ReferenceBackend"]

_DTYPES = ("float32", "float16", "bfloat16", "float64")


class ReferenceBackend(Backend):
    """A GPT4Tools reference checkpoint through transformers or diffusers.

    Options (all optional): one per entry of ``checkpoints`` naming a folder, a hub id or a key of
    ``config.CHECKPOINTS``; ``model_dir`` (else ``$EFE_MODEL_DIR``); ``dtype`` (else fp16 on
    CUDA, fp32 elsewhere); ``allow_download`` (else ``$EFE_ALLOW_DOWNLOAD``).
    """

    kind: ClassVar[str] = "reference"
    requires: ClassVar[tuple[str, ...]] = ("torch", "transformers")
    install_hint: ClassVar[str] = "pip install 'efe-langchain[reference]'"
    # option name -> default checkpoint key; the option overrides it
    checkpoints: ClassVar[dict[str, str]] = {}
    # what the model is, for the label; the checkpoint in use is appended
    describes: ClassVar[str] = ""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # The class label (shown before any instance exists) names the default checkpoints.
        if cls.describes and cls.checkpoints:
            defaults = [checkpoint_info(k).hub_id if checkpoint_info(k) else k for k in cls.checkpoints.values()]
            cls.label = f"{cls.describes} ({', '.join(defaults)}; GPT4Tools reference checkpoint)"

    def __init__(self, device: str = "cpu", **options: Any) -> None:
        super().__init__(validate_device(device), **options)
        self.dtype_name = str(options.get("dtype") or dtype_name_for(self.device)).replace("torch.", "")
        if self.dtype_name not in _DTYPES:
            raise ValueError(f"unknown dtype {self.dtype_name!r}: use one of {', '.join(_DTYPES)}")
        # The label names the checkpoint actually configured, not just the default one, and does
        # not call a user's own folder the GPT4Tools checkpoint.
        known = all(checkpoint_info(self.checkpoint_spec(role)) for role in self.required_roles())
        origin = "GPT4Tools reference checkpoint" if known else "weights given by the user"
        self.label = f"{self.describes} ({', '.join(self.checkpoint_names())}; {origin})"

    # -- checkpoints ----------------------------------------------------------------------------
    def checkpoint_spec(self, role: str = "checkpoint") -> str:
        return str(self.options.get(role) or self.checkpoints[role])

    def checkpoint_names(self) -> list[str]:
        names = []
        for role in self.required_roles():
            spec = self.checkpoint_spec(role)
            info = checkpoint_info(spec)
            names.append(info.hub_id if info else spec)
        return names

    def locate(self, role: str = "checkpoint") -> str | None:
        return resolve_checkpoint(
            self.checkpoint_spec(role), self.options.get("model_dir"), self.options.get("allow_download")
        )

    def require(self, role: str = "checkpoint") -> str:
        """The loadable location of a checkpoint, or BackendUnavailable saying how to fetch it."""
        where = self.locate(role)
        if where is None:
            raise BackendUnavailable(
                f"{self.name}: {missing_weights_message(self.checkpoint_spec(role), self.options.get('model_dir'))}"
            )
        return where

    def required_roles(self) -> list[str]:
        return list(self.checkpoints)

    def missing(self) -> list[str]:
        missing = super().missing()
        if missing:  # without the libraries there is no point in looking for weights
            return missing
        return [
            missing_weights_message(self.checkpoint_spec(role), self.options.get("model_dir"))
            for role in self.required_roles()
            if self.locate(role) is None
        ]

    def availability(self) -> tuple[bool, str]:
        missing = self.missing()
        if not missing:
            return True, self.label
        if any(m in self.requires for m in missing):
            return False, f"missing {', '.join(missing)}. {self.install_hint}"
        return False, "; ".join(missing)

    # -- torch helpers --------------------------------------------------------------------------
    @property
    def torch_dtype(self):
        return torch_dtype(self.dtype_name)

    @staticmethod
    def generator(seed: int | None):
        """A CPU generator: the same seed gives the same image on CPU and on any GPU."""
        import torch

        if seed is None:
            seed = random.randrange(2**31)
        return torch.Generator("cpu").manual_seed(int(seed)), int(seed)

    def option(self, name: str, default: Any) -> Any:
        value = self.options.get(name)
        return default if value is None else value
