"""Randomly initialised reference models written as checkpoint folders, offline.

For tests (``size="tiny"``: kilobytes, CPU, seconds) and for GPU memory/latency benchmarks
(``size="full"``: the published architectures, e.g. SAM ViT-H and SD 1.5 with its safety checker,
so that memory measured on them is the memory of the real checkpoints). Folders are written with
``save_pretrained`` and laid out like the hub repos, so backends load them through their real
loaders. Tokenizers are built from vocab files written here (no hub); their small vocabularies
index into the models' embedding tables, which is all random weights need.
"""

from __future__ import annotations

import json
from pathlib import Path

__all__ = [
    "WORDS",
    "bert_tokenizer",
    "build_blip",
    "build_dpt",
    "build_grounding_dino",
    "build_sam",
    "build_sd_family",
    "clip_tokenizer",
]

WORDS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[DEC]", ".", "?", ",", "a", "cat", "dog",
         "the", "red", "car", "what", "is", "color", "yes", "no", "in", "picture"]  # fmt: skip


def _check(size: str) -> bool:
    if size not in ("tiny", "full"):
        raise ValueError(f"size must be 'tiny' or 'full', not {size!r}")
    return size == "full"


def _save(model, folder: Path, full: bool) -> None:
    # Full-size folders are written in fp16 (what a GPU loads) to halve disk and write time.
    (model.half() if full else model).save_pretrained(folder)


def bert_tokenizer(folder: Path, **kwargs):
    from transformers import BertTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.txt").write_text("\n".join(WORDS) + "\n")
    return BertTokenizer(vocab=str(folder / "vocab.txt"), **kwargs)


def clip_tokenizer(folder: Path):
    """A byte-level BPE CLIP tokenizer: every byte symbol plus two merges ("cat</w>")."""
    from transformers import CLIPTokenizer

    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    chars = [chr(b) for b in bs] + [chr(256 + i) for i in range(256 - len(bs))]
    vocab = {c: i for i, c in enumerate(chars)}
    vocab.update({c + "</w>": len(chars) + i for i, c in enumerate(chars)})
    for token in ("ca", "cat</w>", "<|startoftext|>", "<|endoftext|>"):
        vocab[token] = len(vocab)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\nc a\nca t</w>\n")
    return CLIPTokenizer(vocab=str(folder / "vocab.json"), merges=str(folder / "merges.txt"), model_max_length=77)


def build_blip(folder: Path, model_class: str, favourite: str | None = None, size: str = "tiny") -> Path:
    """BLIP (base when full); ``favourite`` biases the decoder towards one word so that decoding
    shows through the output of a random model."""
    import torch
    import transformers
    from transformers import BlipConfig, BlipImageProcessor, BlipProcessor

    full = _check(size)
    tok = bert_tokenizer(folder, bos_token="[DEC]")
    ids = dict(bos_token_id=tok.bos_token_id, sep_token_id=tok.sep_token_id, eos_token_id=tok.sep_token_id,
               pad_token_id=tok.pad_token_id)  # fmt: skip
    if full:
        config = BlipConfig(text_config=dict(vocab_size=30524, **ids))  # blip-*-base: ViT-B/16 at 384, BERT-base
        side = 384
    else:
        text = dict(vocab_size=len(WORDS), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                    intermediate_size=32, encoder_hidden_size=16, max_position_embeddings=32, **ids)  # fmt: skip
        vision = dict(image_size=32, patch_size=8, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32)
        config = BlipConfig(text_config=text, vision_config=vision, projection_dim=16)
        side = 32
    torch.manual_seed(0)
    model = getattr(transformers, model_class)(config).eval()
    if favourite:
        with torch.no_grad():
            model.text_decoder.cls.predictions.bias[tok.convert_tokens_to_ids(favourite)] = 50.0
    _save(model, folder, full)
    BlipProcessor(image_processor=BlipImageProcessor(size={"height": side, "width": side}), tokenizer=tok).save_pretrained(folder)
    return folder


def build_grounding_dino(folder: Path, size: str = "tiny") -> Path:
    """GroundingDINO (Swin-T + BERT-base, 900 queries: grounding-dino-tiny's shape when full)."""
    import torch
    from transformers import (BertConfig, GroundingDinoConfig, GroundingDinoForObjectDetection,
                              GroundingDinoImageProcessor, GroundingDinoProcessor, SwinConfig)  # fmt: skip

    full = _check(size)
    tok = bert_tokenizer(folder)
    if full:
        backbone = SwinConfig(window_size=7, image_size=224, embed_dim=96, depths=[2, 2, 6, 2], num_heads=[3, 6, 12, 24],
                              out_indices=[2, 3, 4])  # fmt: skip
        config = GroundingDinoConfig(backbone_config=backbone, text_config=BertConfig())
        processor = GroundingDinoImageProcessor()  # shortest edge 800, longest 1333
    else:
        backbone = SwinConfig(image_size=64, patch_size=4, embed_dim=8, depths=[1, 1, 1, 1], num_heads=[1, 1, 2, 2],
                              window_size=2, out_features=["stage2", "stage3", "stage4"])  # fmt: skip
        text = BertConfig(vocab_size=len(WORDS), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                          intermediate_size=32, max_position_embeddings=64)  # fmt: skip
        # d_model 32: the input projections use GroupNorm(32); three feature levels = the three stages.
        config = GroundingDinoConfig(backbone_config=backbone, text_config=text, d_model=32, encoder_layers=1,
                                     decoder_layers=2, encoder_ffn_dim=32, decoder_ffn_dim=32, encoder_attention_heads=2,
                                     decoder_attention_heads=2, num_queries=10, num_feature_levels=3, max_text_len=32,
                                     encoder_n_points=2, decoder_n_points=2)  # fmt: skip
        processor = GroundingDinoImageProcessor(size={"shortest_edge": 64, "longest_edge": 96})
    torch.manual_seed(0)
    _save(GroundingDinoForObjectDetection(config), folder, full)
    GroundingDinoProcessor(image_processor=processor, tokenizer=tok).save_pretrained(folder)
    return folder


def build_sam(folder: Path, size: str = "tiny") -> Path:
    """SAM (ViT-H when full: 32 layers, width 1280, 1024x1024 input)."""
    import torch
    from transformers import SamConfig, SamImageProcessor, SamModel, SamProcessor

    full = _check(size)
    if full:
        config = SamConfig(vision_config=dict(hidden_size=1280, num_hidden_layers=32, num_attention_heads=16,
                                              global_attn_indexes=[7, 15, 23, 31]))  # fmt: skip
        processor = SamImageProcessor()
    else:
        config = SamConfig(
            vision_config=dict(hidden_size=16, output_channels=16, num_hidden_layers=2, num_attention_heads=2, image_size=64,
                               patch_size=8, window_size=4, global_attn_indexes=[1], num_pos_feats=8, mlp_dim=32),
            prompt_encoder_config=dict(hidden_size=16, image_size=64, patch_size=8, mask_input_channels=4),
            mask_decoder_config=dict(hidden_size=16, mlp_dim=32, num_hidden_layers=2, num_attention_heads=2, iou_head_hidden_dim=16),
        )  # fmt: skip
        processor = SamImageProcessor(size={"longest_edge": 64}, pad_size={"height": 64, "width": 64},
                                      mask_size={"longest_edge": 16}, mask_pad_size={"height": 16, "width": 16})  # fmt: skip
    torch.manual_seed(0)
    _save(SamModel(config), folder, full)
    SamProcessor(image_processor=processor).save_pretrained(folder)
    return folder


def build_dpt(folder: Path, size: str = "tiny") -> Path:
    """DPT (dpt-large's ViT-L/16 at 384 when full)."""
    import torch
    from transformers import DPTConfig, DPTForDepthEstimation, DPTImageProcessor

    full = _check(size)
    if full:
        config = DPTConfig(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096,
                           backbone_out_indices=[5, 11, 17, 23], neck_hidden_sizes=[256, 512, 1024, 1024])  # fmt: skip
        processor = DPTImageProcessor(size={"height": 384, "width": 384}, keep_aspect_ratio=True, ensure_multiple_of=32)
    else:
        config = DPTConfig(image_size=32, patch_size=8, hidden_size=16, num_hidden_layers=4, num_attention_heads=2,
                           intermediate_size=32, backbone_out_indices=[0, 1, 2, 3], neck_hidden_sizes=[8, 8, 16, 16],
                           fusion_hidden_size=16, is_hybrid=False)  # fmt: skip
        processor = DPTImageProcessor(size={"height": 32, "width": 32}, keep_aspect_ratio=False)
    torch.manual_seed(0)
    _save(DPTForDepthEstimation(config), folder, full)
    processor.save_pretrained(folder)
    return folder


def _unet(in_channels: int, full: bool):
    from diffusers import UNet2DConditionModel

    if full:  # SD 1.5
        return UNet2DConditionModel(sample_size=64, in_channels=in_channels, cross_attention_dim=768)
    return UNet2DConditionModel(block_out_channels=(4, 8), layers_per_block=1, sample_size=32, in_channels=in_channels,
                                out_channels=4, down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                                up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=32,
                                norm_num_groups=2)  # fmt: skip


def build_sd_family(root: Path, size: str = "tiny", parts=("base", "instruct", "inpaint", "canny", "depth")) -> dict[str, Path]:
    """SD base, InstructPix2Pix (8-channel UNet), inpainting (9-channel) and ControlNets
    (any other part name is a ControlNet). Full size: SD 1.5 with its CLIP safety checker."""
    import torch
    from diffusers import (AutoencoderKL, ControlNetModel, EulerAncestralDiscreteScheduler, PNDMScheduler,
                           StableDiffusionInpaintPipeline, StableDiffusionInstructPix2PixPipeline,
                           StableDiffusionPipeline)  # fmt: skip
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPTextConfig, CLIPTextModel

    full = _check(size)
    tok = clip_tokenizer(root / "clip-tokenizer")
    eos = tok.convert_tokens_to_ids("<|endoftext|>")
    ids = dict(bos_token_id=tok.convert_tokens_to_ids("<|startoftext|>"), eos_token_id=eos, pad_token_id=eos)
    torch.manual_seed(0)
    safety, features = None, None
    if full:
        from diffusers.pipelines.stable_diffusion.safety_checker import StableDiffusionSafetyChecker

        vae = AutoencoderKL(block_out_channels=(128, 256, 512, 512), layers_per_block=2, sample_size=512,
                            down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4)  # fmt: skip
        text_encoder = CLIPTextModel(CLIPTextConfig(vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                                                    num_attention_heads=12, hidden_act="quick_gelu", projection_dim=768, **ids))  # fmt: skip
        vision = dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16,
                      patch_size=14, image_size=224)  # fmt: skip
        safety = StableDiffusionSafetyChecker(CLIPConfig(vision_config=vision, projection_dim=768)).half()
        features = CLIPImageProcessor(crop_size={"height": 224, "width": 224}, size={"shortest_edge": 224})
        with torch.device("cpu"):  # schedulers keep numpy state: never on a default CUDA device
            scheduler = PNDMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                      skip_prk_steps=True, steps_offset=1)  # fmt: skip
        vae, text_encoder = vae.half(), text_encoder.half()
    else:
        vae = AutoencoderKL(block_out_channels=[4, 8], in_channels=3, out_channels=3, latent_channels=4, norm_num_groups=2,
                            down_block_types=["DownEncoderBlock2D"] * 2, up_block_types=["UpDecoderBlock2D"] * 2)  # fmt: skip
        text_encoder = CLIPTextModel(CLIPTextConfig(hidden_size=32, intermediate_size=64, num_attention_heads=4,
                                                    num_hidden_layers=2, vocab_size=len(tok), projection_dim=32, **ids))  # fmt: skip
        scheduler = PNDMScheduler(skip_prk_steps=True, steps_offset=1)
    common = dict(vae=vae, text_encoder=text_encoder, tokenizer=tok, safety_checker=safety, feature_extractor=features,
                  requires_safety_checker=safety is not None)  # fmt: skip
    paths = {k: root / k for k in parts}
    base_unet = None
    for part in parts:
        if part in ("base", "instruct", "inpaint"):
            unet = _unet({"base": 4, "instruct": 8, "inpaint": 9}[part], full)
            unet = unet.half() if full else unet
            base_unet = unet if part == "base" else base_unet
            if part == "base":
                StableDiffusionPipeline(unet=unet, scheduler=scheduler, **common).save_pretrained(paths[part])
            elif part == "instruct":
                with torch.device("cpu"):
                    sched = EulerAncestralDiscreteScheduler.from_config(scheduler.config)
                StableDiffusionInstructPix2PixPipeline(unet=unet, scheduler=sched, **common).save_pretrained(paths[part])
            else:
                StableDiffusionInpaintPipeline(unet=unet, scheduler=scheduler, **common).save_pretrained(paths[part])
            del unet
        elif full:
            controlnet = ControlNetModel.from_unet(base_unet if base_unet is not None else _unet(4, True))
            controlnet.half().save_pretrained(paths[part])
        else:
            ControlNetModel(block_out_channels=(4, 8), layers_per_block=1, in_channels=4, cross_attention_dim=32,
                            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                            conditioning_embedding_out_channels=(16, 32), norm_num_groups=2).save_pretrained(paths[part])  # fmt: skip
    return paths
