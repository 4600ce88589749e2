"""Reference backends on tiny random models built here, saved, and loaded the way real weights are.

Every model is randomly initialised from a small config (as transformers' and diffusers' own
tests do), written with ``save_pretrained`` into a temporary folder, then loaded and run by the
backend's real loader. Nothing is downloaded: tokenizers are built from vocab files written here.
Random weights say nothing about quality; these tests check the code path: loading, devices and
dtypes, pre/post-processing, output types and shapes, seeds, sharing and error messages.
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("diffusers")

from efe_langchain.backends.base import CAPABILITIES, Backend, BackendUnavailable  # noqa: E402
from efe_langchain.backends.reference import estimate_memory, estimate_placement, shared  # noqa: E402
from efe_langchain.backends.reference.blip import BlipCaptionBackend, BlipVqaBackend  # noqa: E402
from efe_langchain.backends.reference.config import (  # noqa: E402
    fetch_command,
    missing_weights_message,
    resolve_checkpoint,
)
from efe_langchain.backends.reference.devices import (  # noqa: E402
    dtype_name_for,
    parse_load_spec,
    validate_device,
)
from efe_langchain.backends.reference.diffusion import (  # noqa: E402
    ControlNetBackend,
    InpaintingBackend,
    InstructPix2PixBackend,
    StableDiffusionBackend,
)
from efe_langchain.backends.reference.dpt import DptDepthBackend, DptNormalBackend  # noqa: E402
from efe_langchain.backends.reference.grounding_dino import GroundingDinoBackend  # noqa: E402
from efe_langchain.backends.reference import memory  # noqa: E402
from efe_langchain.backends.reference.memory import count_parameters  # noqa: E402
from efe_langchain.backends.reference.sam import GroundedSamBackend, SamBackend  # noqa: E402
from efe_langchain.backends.reference.testing import (  # noqa: E402
    build_blip,
    build_dpt,
    build_grounding_dino,
    build_sam,
    build_sd_family,
)


# -- tiny models ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Every tiny model, saved once for the module (a few seconds in all)."""
    root = tmp_path_factory.mktemp("reference-models")
    return {
        "blip-caption": build_blip(root / "blip-caption", "BlipForConditionalGeneration", favourite="cat"),
        "blip-vqa": build_blip(root / "blip-vqa", "BlipForQuestionAnswering", favourite="yes"),
        "grounding-dino": build_grounding_dino(root / "grounding-dino"),
        "sam": build_sam(root / "sam"),
        "dpt": build_dpt(root / "dpt"),
        **{f"sd-{k}": v for k, v in build_sd_family(root / "sd").items()},
    }


@pytest.fixture(autouse=True)
def fresh_cache():
    shared.clear_cache()
    yield
    shared.clear_cache()


@pytest.fixture
def photo():
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8))


def loads_of(kind: str) -> int:
    return sum(n for key, n in shared.load_counts.items() if key[0] == kind)


def check_signatures(backend: Backend) -> None:
    """Each capability the backend claims exists under the documented parameter names."""
    import inspect
    import re

    for cap in backend.capabilities:
        assert cap in CAPABILITIES
        params = list(inspect.signature(getattr(backend, cap)).parameters)
        documented = re.sub(r"\[[^\]]*\]", "", CAPABILITIES[cap].split("(", 1)[1].split(") ->", 1)[0])
        names = [p.split(":")[0].split("=")[0].strip() for p in documented.split(",") if p.strip()]
        assert params == names, (cap, params, names)


# -- each backend through its loader --------------------------------------------------------------
def test_blip_caption_and_vqa(models, photo):
    captioner = BlipCaptionBackend(checkpoint=str(models["blip-caption"]))
    assert captioner.availability() == (True, captioner.label)
    assert str(models["blip-caption"]) in captioner.label and captioner.kind == "reference"
    assert "weights given by the user" in captioner.label  # not passed off as the GPT4Tools checkpoint
    caption = captioner.caption(photo)
    # The decoder bias makes "cat" the likeliest word: seeing it proves generate + decode ran.
    assert isinstance(caption, str) and caption.split()[0] == "cat"
    assert "[SEP]" not in caption and "[DEC]" not in caption

    vqa = BlipVqaBackend(checkpoint=str(models["blip-vqa"]))
    answer = vqa.vqa(photo, "what color is the car?")
    assert isinstance(answer, str) and answer.split()[0] == "yes"
    with pytest.raises(ValueError, match="question"):
        vqa.vqa(photo, "  ")
    check_signatures(captioner), check_signatures(vqa)


def test_grounding_dino_detect(models, photo):
    detector = GroundingDinoBackend(checkpoint=str(models["grounding-dino"]), box_threshold=0.0, text_threshold=0.0)
    found = detector.detect(photo, "a cat, a dog")
    assert len(found) == 10  # num_queries: every query passes a zero threshold
    for item in found:
        x0, y0, x1, y1 = item["box"]
        assert 0 <= x0 <= x1 <= photo.width and 0 <= y0 <= y1 <= photo.height
        assert 0.0 <= item["score"] <= 1.0 and isinstance(item["label"], str)
    assert [d["score"] for d in found] == sorted((d["score"] for d in found), reverse=True)
    strict = GroundingDinoBackend(checkpoint=str(models["grounding-dino"]), box_threshold=1.01)
    assert strict.detect(photo, "cat") == []
    with pytest.raises(ValueError, match="description"):
        detector.detect(photo, " . ")
    check_signatures(detector)


def test_sam_box_masks_and_segment_everything(models, photo):
    sam = SamBackend(checkpoint=str(models["sam"]), points_per_side=4, pred_iou_thresh=-1e9, stability_score_thresh=0.0)
    mask = sam.segment_box(photo, [5, 5, 40, 30])
    assert mask.dtype == bool and mask.shape == (48, 64)
    assert sam.segment_boxes(photo, []).shape == (0, 48, 64)
    # Boxes go through the decoder in chunks (bounded GPU memory) with the same masks as at once.
    boxes = [[i * 5, i * 3, 30 + i * 4, 20 + i * 3] for i in range(7)]
    chunked = SamBackend(checkpoint=str(models["sam"]), points_per_batch=3).segment_boxes(photo, boxes)
    assert chunked.shape == (7, 48, 64)
    assert np.mean(chunked != sam.segment_boxes(photo, boxes)) < 1e-3
    labels = sam.segment_all(photo)
    assert labels.dtype == np.int32 and labels.shape == (48, 64)
    assert labels.max() >= 1 and set(np.unique(labels)) <= set(range(labels.max() + 1))
    # SAM's default quality filters reject every mask of a random model: an empty map, not an error.
    strict = SamBackend(checkpoint=str(models["sam"]), points_per_side=4, pred_iou_thresh=1e9)
    assert strict.segment_all(photo).max() == 0
    check_signatures(sam)


def test_mask_boxes_and_nms():
    from efe_langchain.backends.reference.sam import _mask_boxes, _nms

    masks = torch.zeros(2, 10, 12, dtype=torch.bool)
    masks[0, 2:5, 3:7] = True
    masks[1, :, 11] = True
    assert _mask_boxes(masks).tolist() == [[3, 2, 7, 5], [11, 0, 12, 10]]
    boxes = np.array([[0, 0, 10, 10], [1, 1, 10, 10], [20, 20, 30, 30], [0, 0, 9, 9]], dtype=float)
    # 0 overlaps the better 1 at IoU 0.81 (> 0.7): dropped; 3 overlaps 1 at 0.65: kept.
    assert _nms(boxes, np.array([0.9, 0.95, 0.5, 0.1]), 0.7) == [1, 2, 3]


def test_grounded_sam_segment_object(models, photo):
    options = dict(detector=str(models["grounding-dino"]), checkpoint=str(models["sam"]))
    seg = GroundedSamBackend(box_threshold=0.0, text_threshold=0.0, **options)
    boxes = seg.find(photo, "cat")
    mask = seg.segment_object(photo, "cat")
    assert mask.dtype == bool and mask.shape == (48, 64) and len(boxes) == 10
    union = np.zeros_like(mask)
    for m in seg.sam.segment_boxes(photo, [b["box"] for b in boxes]):
        union |= m
    assert np.array_equal(mask, union)
    nothing = GroundedSamBackend(box_threshold=1.01, **options).segment_object(photo, "cat")
    assert nothing.shape == (48, 64) and not nothing.any()
    check_signatures(seg)


def test_dpt_depth_and_normal(models, photo):
    depth = DptDepthBackend(checkpoint=str(models["dpt"])).depth(photo)
    assert isinstance(depth, Image.Image) and depth.size == photo.size and depth.mode == "RGB"
    px = np.asarray(depth)
    assert np.array_equal(px[..., 0], px[..., 1]) and np.array_equal(px[..., 0], px[..., 2])
    assert px.max() >= 254  # scaled by its maximum (then truncated), as the depth pipeline does
    normal = DptNormalBackend(checkpoint=str(models["dpt"])).normal(photo)
    assert isinstance(normal, Image.Image) and normal.size == photo.size and normal.mode == "RGB"
    # z = 2*pi dominates a unit normal: the blue channel sits in the upper half everywhere.
    assert np.asarray(normal)[..., 2].min() >= 127


def test_sobel_matches_opencv():
    cv2 = pytest.importorskip("cv2")
    from efe_langchain.backends.reference.dpt import sobel

    depth = np.random.default_rng(1).random((37, 53)).astype(np.float32)
    assert np.allclose(sobel(depth, axis=1), cv2.Sobel(depth, cv2.CV_32F, 1, 0, ksize=3), atol=1e-5)
    assert np.allclose(sobel(depth, axis=0), cv2.Sobel(depth, cv2.CV_32F, 0, 1, ksize=3), atol=1e-5)


def test_text2image_is_seeded(models):
    sd = StableDiffusionBackend(base=str(models["sd-base"]), steps=2)
    a, b, c = sd.text2image("a cat", seed=1), sd.text2image("a cat", seed=1), sd.text2image("a cat", seed=2)
    assert isinstance(a, Image.Image) and a.size == (64, 64) and a.mode == "RGB"
    assert np.array_equal(np.asarray(a), np.asarray(b)) and not np.array_equal(np.asarray(a), np.asarray(c))
    assert a.info["seed"] == 1 and isinstance(sd.text2image("a cat").info["seed"], int)
    with pytest.raises(ValueError, match="prompt"):
        sd.text2image("")
    check_signatures(sd)


def test_controlnet_conditions(models, photo):
    cn = ControlNetBackend(base=str(models["sd-base"]), controlnet_canny=str(models["sd-canny"]),
                           conditions="canny", steps=2)  # fmt: skip
    assert cn.availability()[0] and cn.conditions == ("canny",)
    out = cn.controlnet("canny", photo, "a cat", seed=3)
    assert isinstance(out, Image.Image) and out.size == photo.size and out.info["seed"] == 3
    assert np.array_equal(np.asarray(out), np.asarray(cn.controlnet("canny", photo, "a cat", seed=3)))
    with pytest.raises(ValueError, match="unknown ControlNet condition"):
        cn.controlnet("thermal", photo, "a cat", seed=0)
    # A condition whose weights are absent: the message names the checkpoint and the fetch command.
    with pytest.raises(BackendUnavailable, match="fusing/stable-diffusion-v1-5-controlnet-hed.*hf download"):
        ControlNetBackend(base=str(models["sd-base"]), model_dir=str(models["sd-base"].parent), steps=2).controlnet(
            "hed", photo, "a cat"
        )
    check_signatures(cn)


def test_instruct_pix2pix(models, photo):
    ip2p = InstructPix2PixBackend(checkpoint=str(models["sd-instruct"]), steps=2)
    out = ip2p.instruct(photo, "make it red", seed=0)
    assert isinstance(out, Image.Image) and out.size == photo.size and out.info["seed"] == 0
    odd = photo.resize((50, 38))  # not a multiple of 8: the output still matches the input size
    assert ip2p.instruct(odd, "make it red", seed=0).size == (50, 38)
    check_signatures(ip2p)


def test_inpainting(models, photo):
    inpaint = InpaintingBackend(checkpoint=str(models["sd-inpaint"]), steps=2)
    mask = np.zeros((48, 64), dtype=bool)
    mask[10:30, 20:40] = True
    out = inpaint.inpaint(photo, mask, "background", seed=0)
    assert isinstance(out, Image.Image) and out.size == photo.size and out.info["seed"] == 0
    with pytest.raises(ValueError, match="must match"):
        inpaint.inpaint(photo, mask[:, :10], "background", seed=0)
    with pytest.raises(ValueError, match="empty"):
        inpaint.inpaint(photo, np.zeros_like(mask), "background", seed=0)
    check_signatures(inpaint)


# -- one load per shared model --------------------------------------------------------------------
def test_controlnets_and_text2image_share_one_sd_base(models, photo):
    base = str(models["sd-base"])
    canny = ControlNetBackend(base=base, controlnet_canny=str(models["sd-canny"]), conditions=["canny"], steps=1)
    depth = ControlNetBackend(base=base, controlnet_depth=str(models["sd-depth"]), conditions=["depth"], steps=1)
    text2image = StableDiffusionBackend(base=base, steps=1)
    canny.controlnet("canny", photo, "a cat", seed=0)
    depth.controlnet("depth", photo, "a cat", seed=0)
    text2image.text2image("a cat", seed=0)
    assert loads_of("StableDiffusionPipeline") == 1 and loads_of("ControlNetModel") == 2
    unets = {id(canny.pipeline("canny").unet), id(depth.pipeline("depth").unet), id(text2image.pipe.unet)}
    assert len(unets) == 1
    # ...but each keeps its own scheduler: runs do not share per-run state.
    assert canny.pipeline("canny").scheduler is not text2image.pipe.scheduler


def test_detect_and_segment_share_grounding_dino_and_sam(models, photo):
    dino, sam = str(models["grounding-dino"]), str(models["sam"])
    detector = GroundingDinoBackend(checkpoint=dino)
    segmenter = SamBackend(checkpoint=sam)
    grounded = GroundedSamBackend(detector=dino, checkpoint=sam)
    detector.detect(photo, "cat"), segmenter.segment_box(photo, [0, 0, 20, 20]), grounded.segment_object(photo, "cat")
    assert loads_of("grounding-dino") == 1 and loads_of("sam") == 1
    assert grounded.detector[1] is detector.model and grounded.sam.model is segmenter.model


def test_remove_and_replace_share_one_inpainting_pipeline(models, photo):
    remove = InpaintingBackend(checkpoint=str(models["sd-inpaint"]), steps=1)
    replace = InpaintingBackend(checkpoint=str(models["sd-inpaint"]), steps=1)
    mask = np.ones((48, 64), dtype=bool)
    remove.inpaint(photo, mask, "background", seed=0), replace.inpaint(photo, mask, "a dog", seed=0)
    assert loads_of("StableDiffusionInpaintPipeline") == 1 and remove.pipe.unet is replace.pipe.unet


def test_inpainting_on_the_sd_base_reuses_it(models, photo):
    text2image = StableDiffusionBackend(base=str(models["sd-base"]), steps=1)
    inpaint = InpaintingBackend(checkpoint=str(models["sd-base"]), steps=1)
    text2image.load(), inpaint.inpaint(photo, np.ones((48, 64), dtype=bool), "a dog", seed=0)
    assert loads_of("StableDiffusionPipeline") == 1 and inpaint.pipe.unet is text2image.pipe.unet


def test_sd_relatives_share_byte_identical_text_encoder_and_vae(models, photo, tmp_path):
    import shutil

    text2image = StableDiffusionBackend(base=str(models["sd-base"]), steps=1)
    instruct = InstructPix2PixBackend(checkpoint=str(models["sd-instruct"]), steps=1)
    inpaint = InpaintingBackend(checkpoint=str(models["sd-inpaint"]), steps=1)
    text2image.load(), instruct.load(), inpaint.load()
    assert text2image.pipe.text_encoder is instruct.pipe.text_encoder is inpaint.pipe.text_encoder
    assert text2image.pipe.vae is instruct.pipe.vae is inpaint.pipe.vae
    assert loads_of("CLIPTextModel:text_encoder") == 1 and loads_of("AutoencoderKL:vae") == 1
    assert text2image.pipe.unet is not instruct.pipe.unet  # each keeps its own UNet
    # A checkpoint whose VAE differs by one weight gets its own VAE.
    changed = tmp_path / "sd-changed-vae"
    shutil.copytree(models["sd-base"], changed)
    from diffusers import AutoencoderKL

    vae = AutoencoderKL.from_pretrained(changed / "vae")
    with torch.no_grad():
        vae.decoder.conv_out.bias[0] += 1.0
    vae.save_pretrained(changed / "vae")
    other = StableDiffusionBackend(base=str(changed), steps=1)
    other.load()
    assert other.pipe.vae is not text2image.pipe.vae and other.pipe.text_encoder is text2image.pipe.text_encoder
    assert other.text2image("a cat", seed=0).size == (64, 64)


def test_other_dtype_or_device_is_another_load(models, photo):
    a = DptDepthBackend(checkpoint=str(models["dpt"]))
    b = DptDepthBackend(checkpoint=str(models["dpt"]), dtype="bfloat16")
    a.load(), b.load()
    assert loads_of("dpt") == 2 and b.model.dtype == torch.bfloat16 and a.model.dtype == torch.float32


# -- weights location and messages ----------------------------------------------------------------
def test_weights_found_under_efe_model_dir_by_hub_id(models, photo, tmp_path, monkeypatch):
    target = tmp_path / "Salesforce" / "blip-image-captioning-base"
    target.parent.mkdir(parents=True)
    target.symlink_to(models["blip-caption"], target_is_directory=True)
    monkeypatch.setenv("EFE_MODEL_DIR", str(tmp_path))
    captioner = BlipCaptionBackend()  # no options: the default checkpoint, found by its hub id
    assert captioner.missing() == [] and "Salesforce/blip-image-captioning-base" in captioner.label
    assert "GPT4Tools reference checkpoint" in captioner.label
    assert captioner.caption(photo).startswith("cat")
    assert resolve_checkpoint("blip-caption") == str(target)


def test_missing_weights_say_which_and_how(tmp_path, monkeypatch):
    monkeypatch.setenv("EFE_MODEL_DIR", str(tmp_path))
    monkeypatch.delenv("EFE_ALLOW_DOWNLOAD", raising=False)
    sam = SamBackend(checkpoint="efe-tests/no-such-sam")
    ok, why = sam.availability()
    assert not ok and "efe-tests/no-such-sam" in why
    assert f"hf download efe-tests/no-such-sam --local-dir {tmp_path}/efe-tests/no-such-sam" in why
    with pytest.raises(BackendUnavailable, match="no-such-sam"):
        sam.load()
    # A folder that is not there is reported as a folder, not as a hub id to download.
    ok, why = SamBackend(checkpoint=str(tmp_path / "my-sam")).availability()
    assert not ok and why.startswith(f"no model folder at {tmp_path}/my-sam") and "hf download" not in why
    # A withdrawn repo is fetched from its mirror into the folder named after the original id.
    command = fetch_command("sd15", tmp_path)
    assert command.startswith(f"hf download stable-diffusion-v1-5/stable-diffusion-v1-5 --local-dir {tmp_path}/runwayml/")
    assert "runwayml/stable-diffusion-v1-5" in missing_weights_message("sd15", tmp_path)
    # Only with the user's consent does a hub id count as loadable (from_pretrained downloads it).
    assert resolve_checkpoint("sam", tmp_path, allow_download=True) == "facebook/sam-vit-huge"


def test_devices_and_dtypes():
    assert parse_load_spec("Text2Box_cuda:0,Segmenting_cuda:0,Inpainting_cuda:1") == {
        "Text2Box": "cuda:0", "Segmenting": "cuda:0", "Inpainting": "cuda:1"}  # fmt: skip
    assert validate_device("CUDA") == "cuda:0" and dtype_name_for("cuda:1") == "float16" and dtype_name_for("cpu") == "float32"
    with pytest.raises(ValueError, match="unknown device"):
        parse_load_spec("Text2Box_gpu0")
    with pytest.raises(ValueError, match="Name_device"):
        parse_load_spec("Text2Box")
    with pytest.raises(ValueError, match="unknown dtype"):
        SamBackend(dtype="float8")


def test_reference_backend_table_names_real_classes():
    import importlib

    from efe_langchain.backends.reference.devices import REFERENCE_BACKENDS
    from efe_langchain.backends.reference.memory import TOOL_CHECKPOINTS

    for load_name, paths in REFERENCE_BACKENDS.items():
        for path in paths:
            module, _, name = path.rpartition(".")
            cls = getattr(importlib.import_module(module), name)
            assert issubclass(cls, Backend) and cls.kind == "reference" and cls.capabilities and cls.name, path
        assert load_name in TOOL_CHECKPOINTS  # every reference tool has a memory estimate


# -- memory estimates -----------------------------------------------------------------------------
def test_parameter_counts_from_headers_match_the_models(models):
    from diffusers import StableDiffusionPipeline
    from transformers import DPTForDepthEstimation, SamModel

    assert count_parameters(models["dpt"]) == DPTForDepthEstimation.from_pretrained(models["dpt"]).num_parameters()
    assert count_parameters(models["sam"]) == SamModel.from_pretrained(models["sam"]).num_parameters()
    pipe = StableDiffusionPipeline.from_pretrained(models["sd-base"])
    expected = sum(p.numel() for m in (pipe.unet, pipe.vae, pipe.text_encoder) for p in m.parameters())
    assert count_parameters(models["sd-base"]) == expected


def test_memory_estimates_without_loading(models, tmp_path, monkeypatch):
    monkeypatch.setenv("EFE_MODEL_DIR", str(tmp_path))  # no weights there: published counts
    canny = estimate_memory("CannyText2Image")
    gib = 1024**3
    assert 3.0 * gib < canny < 5.0 * gib  # SD 1.5 + ControlNet in fp16 + working memory
    assert estimate_memory("Generate Image Condition On Canny Image") == canny
    assert estimate_memory("CannyText2Image", device="cpu") > canny  # fp32 on CPU
    assert estimate_memory("Image2Canny") is None  # an annotator, not a reference model
    # A folder on disk is counted exactly: fp16 bytes of its parameters + working memory.
    sam_params = count_parameters(models["sam"])
    assert estimate_memory(str(models["sam"])) == sam_params * 2 + memory.WORKING_BYTES["transformers"]
    # ...and so is a known checkpoint found under $EFE_MODEL_DIR, with its own working set.
    (tmp_path / "facebook").mkdir()
    (tmp_path / "facebook" / "sam-vit-huge").symlink_to(models["sam"], target_is_directory=True)
    assert estimate_memory("Segmenting") == sam_params * 2 + memory.WORKING_BYTES_BY_CHECKPOINT["sam"]
    # Tools on one device share models: GroundingDINO and SAM are counted once for all three,
    # plus one CUDA context per GPU.
    placed = estimate_placement("Text2Box_cuda:0,Segmenting_cuda:0,ObjectSegmenting_cuda:0,Inpainting_cuda:1")
    context = memory.CUDA_CONTEXT_BYTES
    assert placed["cuda:0"] == estimate_memory("ObjectSegmenting") + context
    assert estimate_memory("ObjectSegmenting") < estimate_memory("Text2Box") + estimate_memory("Segmenting")
    assert placed["cuda:1"] == estimate_memory("Inpainting") + context
    assert estimate_placement("Text2Box_cpu") == {"cpu": estimate_memory("Text2Box", device="cpu")}
    # SD relatives on one device share their byte-identical text encoder and VAE (as loaded).
    for hub_id, key in (("runwayml/stable-diffusion-v1-5", "sd-base"), ("timbrooks/instruct-pix2pix", "sd-instruct")):
        (tmp_path / hub_id).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / hub_id).symlink_to(models[key], target_is_directory=True)
    shared_parts = count_parameters(models["sd-base"] / "text_encoder") + count_parameters(models["sd-base"] / "vae")
    both = estimate_placement("Text2Image_cuda:0,InstructPix2Pix_cuda:0")["cuda:0"]
    alone = estimate_memory("Text2Image") + estimate_memory("InstructPix2Pix") - memory.WORKING_BYTES["diffusers"]
    assert both == alone - 2 * shared_parts + context
    assert shared.loaded() == []  # nothing was loaded to estimate


def test_registry_rows_get_estimates_keyed_by_name():
    class Row:  # the fields of tools.registry.ToolInfo that the estimate reads
        def __init__(self, name, gpt4tools_name, load_name):
            self.name, self.gpt4tools_name, self.load_name = name, gpt4tools_name, load_name

    rows = [Row("detect_the_give_object", "Detect the Give Object", "Text2Box"),
            Row("edge_detection_on_image", "Edge Detection On Image", "Image2Canny")]  # fmt: skip
    assert estimate_memory(rows, device="cuda:0") == {"detect_the_give_object": estimate_memory("Text2Box")}


# -- the user's path: weights under $EFE_MODEL_DIR, tools from the registry, files in the workspace --
@pytest.fixture
def model_dir(models, tmp_path, monkeypatch):
    """$EFE_MODEL_DIR laid out by hub id, as `hf download <id> --local-dir $EFE_MODEL_DIR/<id>` does."""
    layout = {
        "runwayml/stable-diffusion-v1-5": "sd-base",
        "runwayml/stable-diffusion-inpainting": "sd-inpaint",
        "timbrooks/instruct-pix2pix": "sd-instruct",
        "fusing/stable-diffusion-v1-5-controlnet-canny": "sd-canny",
        "fusing/stable-diffusion-v1-5-controlnet-depth": "sd-depth",
        "IDEA-Research/grounding-dino-tiny": "grounding-dino",
        "facebook/sam-vit-huge": "sam",
        "Salesforce/blip-image-captioning-base": "blip-caption",
        "Intel/dpt-large": "dpt",
    }
    root = tmp_path / "models"
    for hub_id, key in layout.items():
        (root / hub_id).parent.mkdir(parents=True, exist_ok=True)
        (root / hub_id).symlink_to(models[key], target_is_directory=True)
    monkeypatch.setenv("EFE_MODEL_DIR", str(root))
    registry = pytest.importorskip("efe_langchain.tools.registry")
    registry.clear_backend_cache()
    yield root
    registry.clear_backend_cache()


def test_registry_prefers_reference_backends_and_tools_write_to_the_workspace(model_dir, photo, tmp_path):
    from efe_langchain.tools.registry import load_tools
    from efe_langchain.workspace import Workspace

    ws = Workspace(tmp_path / "ws")
    fast = {"steps": 2}
    options = {"stable-diffusion": fast, "controlnet": fast, "sd-inpainting": fast, "instruct-pix2pix": fast,
               "grounded-sam": {"box_threshold": 0.0, "text_threshold": 0.0}}  # fmt: skip
    spec = ("Text2Image_cpu,CannyText2Image_cpu,DepthText2Image_cpu,LineText2Image_cpu,ImageCaptioning_cpu,"
            "Image2Depth_cpu,InstructPix2Pix_cpu,ImageEditing.remove_cpu")  # fmt: skip
    with pytest.warns(UserWarning, match="Generate Image Condition On Line Image"):  # no mlsd ControlNet here
        tools = {t.spec_load_name(): t for t in load_tools(spec, ws, options=options)}
    assert "LineText2Image" not in tools
    for tool in tools.values():
        assert all(b.kind == "reference" for b in tool.bind().values()), tool.name

    source = ws.add_image(photo, resize=False)
    outputs = {
        "Text2Image": tools["Text2Image"].invoke({"text": "a cat", "seed": 1}),
        "CannyText2Image": tools["CannyText2Image"].invoke({"image_path": source, "text": "a cat", "seed": 1}),
        "DepthText2Image": tools["DepthText2Image"].invoke({"image_path": source, "text": "a cat", "seed": 1}),
        "Image2Depth": tools["Image2Depth"].invoke({"image_path": source}),
        "InstructPix2Pix": tools["InstructPix2Pix"].invoke({"image_path": source, "text": "make it red", "seed": 1}),
    }
    sizes = {"Text2Image": (64, 64)}
    for load_name, rel in outputs.items():
        path = ws.root / rel
        assert path.is_file(), (load_name, rel)
        assert Image.open(path).size == sizes.get(load_name, photo.size)
    removed = tools["ImageEditing.remove"].invoke({"image_path": source, "text": "cat", "seed": 1})
    assert (ws.root / removed).is_file() and Image.open(ws.root / removed).size == photo.size
    assert tools["ImageCaptioning"].invoke({"image_path": source}).startswith("cat")
    # Three SD tools and the ControlNets ran on one SD base; the inpainting checkpoint is separate.
    assert loads_of("StableDiffusionPipeline") == 1 and loads_of("StableDiffusionInpaintPipeline") == 1
