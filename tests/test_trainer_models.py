"""trainer.backbones / trainer.model / trainer.weights.

Every backbone runs at its input size; the head is derived from the default boxes for any anchor spec;
postprocess is bounded; the RetinaFace MobileNet v1 x0.25 checkpoint maps by name; torchvision's ImageNet
weights fail clearly offline; freezing counts; trainer/ stays free of fiftyone and pymongo.
"""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from trainer.backbones import BACKBONES, DEFAULT_IMAGE_SIZES
from trainer.model import HEADS, SSD, SSD512_ANCHORS, build_ssd
from trainer.priors import AnchorSpec
from trainer.weights import PretrainedWeightsError, freeze, load_pretrained

SEED = 0
NUM_CLASSES = 4  # three object classes + background
PROJECT_ROOT = Path(__file__).resolve().parents[1]
RETINAFACE_WEIGHTS = (Path(__file__).resolve().parents[2] / "shared" / "data" / "weights"
                      / "mobilenetv1-x0.25-imagenet")

# map sides at each backbone's default input size (DEFAULT_IMAGE_SIZES)
EXPECTED_MAP_SIDES = {
    "vgg16": [38, 19, 10, 5, 3, 1],  # SSD300, Fig. 2 of the SSD paper
    "mobilenet_v1": [19, 10, 5, 3, 2, 1],  # MobileNet-SSD 300: conv11, conv13, 4 extras
    "mobilenet_v2": [19, 10, 5, 3, 2, 1],
    "mobilenet_v2_fpn": [40, 20, 10, 5, 3],  # P3..P7 at 320
    "mobilenet_v3_large": [20, 10, 5, 3, 2, 1],  # torchvision's ssdlite320
    "tiny": [16, 8, 4, 2],  # strides 4..32 at 64
}
KNOWN_DEFAULT_BOX_COUNTS = {"vgg16": 8732, "mobilenet_v3_large": 3234}  # SSD paper; torchvision ssdlite320


def fitted_like_spec(num_layers: int) -> AnchorSpec:
    """What `curate anchors --fit` might write: uneven scales, asymmetric ratios (no inverse pairs),
    a different number of boxes per layer, no extra square box."""
    ratio_pool = (0.45, 1.0, 1.6, 2.7, 0.8)
    scales = tuple(round(0.06 + 0.9 * (k / num_layers) ** 1.3, 4) for k in range(num_layers + 1))
    ratios = tuple(ratio_pool[:2 + k % 3] for k in range(num_layers))
    return AnchorSpec(scales=scales, aspect_ratios=ratios, extra_square=False)


ANCHOR_SPECS = {"ssd_paper": lambda n: AnchorSpec.ssd_paper(num_layers=n), "fitted": fitted_like_spec}


@pytest.fixture(scope="module", autouse=True)
def single_cpu_thread():
    """One intra-op thread while these tests run: the batches are tiny, and on a shared 2-core machine
    OpenMP threads spin against other processes (measured here: 41 s with 2 threads, 10 s with 1)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def default_models(single_cpu_thread) -> dict[str, SSD]:
    torch.manual_seed(SEED)
    return {name: build_ssd(name, num_classes=NUM_CLASSES, image_size=DEFAULT_IMAGE_SIZES[name])
            for name in BACKBONES}


@pytest.mark.parametrize("name", list(BACKBONES))
def test_every_backbone_runs_at_its_input_size(default_models, name):
    model = default_models[name]
    side = DEFAULT_IMAGE_SIZES[name]
    batch = 1 if name == "vgg16" else 2  # BatchNorm in train mode needs > 1 value per channel on 1x1 maps
    torch.manual_seed(SEED)
    cls_logits, loc = model(torch.rand(batch, 3, side, side))

    num_boxes = len(model.default_boxes)
    assert [h for h, w in model.default_boxes.feature_map_sizes] == EXPECTED_MAP_SIDES[name]
    assert cls_logits.shape == (batch, num_boxes, NUM_CLASSES)
    assert loc.shape == (batch, num_boxes, 4)
    assert torch.isfinite(cls_logits).all() and torch.isfinite(loc).all()
    assert num_boxes == KNOWN_DEFAULT_BOX_COUNTS.get(name, num_boxes)
    assert model.training  # the dry run gave the training mode back


def test_vgg16_at_512_gets_the_ssd512_extras_and_anchors():
    torch.manual_seed(SEED)
    model = build_ssd("vgg16", num_classes=NUM_CLASSES, image_size=512)
    assert [h for h, w in model.default_boxes.feature_map_sizes] == [64, 32, 16, 8, 4, 2, 1]
    assert model.default_boxes.spec == SSD512_ANCHORS
    assert len(model.default_boxes) == 24564  # the SSD paper's count for SSD512


@pytest.mark.parametrize("side", [32, 128])
def test_tiny_backbone_covers_32_to_128_pixels(side):
    torch.manual_seed(SEED)
    model = build_ssd("tiny", num_classes=NUM_CLASSES, image_size=side)
    cls_logits, loc = model(torch.rand(2, 3, side, side))
    assert [h for h, w in model.default_boxes.feature_map_sizes] == [side // 4, side // 8, side // 16,
                                                                     side // 32]
    assert cls_logits.shape[1] == loc.shape[1] == len(model.default_boxes)


@pytest.mark.parametrize("spec_name", list(ANCHOR_SPECS))
@pytest.mark.parametrize("name", list(BACKBONES))
def test_head_channels_come_from_the_default_boxes(default_models, name, spec_name):
    backbone = default_models[name].backbone
    spec = ANCHOR_SPECS[spec_name](len(backbone.out_channels))
    side = DEFAULT_IMAGE_SIZES[name]
    model = SSD(backbone=backbone, num_classes=NUM_CLASSES, anchor_spec=spec, image_size=(side, side),
                head="ssdlite" if name.startswith("mobilenet") else "ssd").eval()

    per_location = spec.boxes_per_location()
    assert model.head_channels() == [(boxes * NUM_CLASSES, boxes * 4) for boxes in per_location]
    with torch.no_grad():
        cls_logits, loc = model(torch.zeros(1, 3, side, side))
    sizes = model.default_boxes.feature_map_sizes
    expected = sum(boxes * h * w for boxes, (h, w) in zip(per_location, sizes))
    assert cls_logits.shape[1] == loc.shape[1] == len(model.default_boxes) == expected


@pytest.mark.parametrize("head", HEADS)
def test_both_heads_on_one_backbone(head):
    torch.manual_seed(SEED)
    model = build_ssd("tiny", num_classes=NUM_CLASSES, image_size=64, head=head).eval()
    depthwise = [m for m in model.classification_heads.modules()
                 if isinstance(m, torch.nn.Conv2d) and m.groups > 1 and m.groups == m.in_channels]
    assert bool(depthwise) == (head == "ssdlite")
    with torch.no_grad():
        cls_logits, _ = model(torch.zeros(1, 3, 64, 64))
    assert cls_logits.shape == (1, len(model.default_boxes), NUM_CLASSES)


def test_postprocess_returns_at_most_top_k_boxes_inside_the_image():
    torch.manual_seed(SEED)
    model = build_ssd("tiny", num_classes=NUM_CLASSES, image_size=64).eval()
    num_boxes = len(model.default_boxes)
    cls_logits = torch.randn(3, num_boxes, NUM_CLASSES)
    loc = torch.randn(3, num_boxes, 4) * 3  # large offsets push many boxes past the image edges
    top_k = 7
    detections = model.postprocess(cls_logits, loc, score_threshold=0.0, nms_iou=0.45, top_k=top_k)

    assert len(detections) == 3
    for found in detections:
        assert 0 < len(found["boxes"]) <= top_k
        assert found["boxes"].min() >= 0 and found["boxes"].max() <= 1
        assert ((found["labels"] >= 1) & (found["labels"] < NUM_CLASSES)).all()
        assert torch.all(found["scores"][:-1] >= found["scores"][1:])


def test_postprocess_decodes_a_confident_prior_onto_itself():
    model = build_ssd("tiny", num_classes=NUM_CLASSES, image_size=64).eval()
    num_boxes = len(model.default_boxes)
    prior_index, label, logit = 100, 2, 10.0
    cls_logits = torch.zeros(1, num_boxes, NUM_CLASSES)  # uniform: every class scores 1 / NUM_CLASSES
    cls_logits[0, prior_index, label] = logit
    detections = model.postprocess(cls_logits, torch.zeros(1, num_boxes, 4), score_threshold=0.5)[0]

    assert detections["labels"].tolist() == [label]
    assert detections["scores"].item() == pytest.approx(math.exp(logit) / (math.exp(logit) + NUM_CLASSES - 1))
    expected = model.default_boxes.xyxy()[prior_index].clamp(0, 1)
    assert torch.allclose(detections["boxes"][0], expected, atol=1e-6)


def test_dry_run_leaves_batchnorm_statistics_and_mode_alone():
    backbone = BACKBONES["tiny"]().train()
    before = {key: value.clone() for key, value in backbone.state_dict().items()}
    model = SSD(backbone=backbone, num_classes=NUM_CLASSES, anchor_spec=AnchorSpec.ssd_paper(num_layers=4),
                image_size=(64, 64))
    assert model.backbone.training
    assert all(torch.equal(before[key], value) for key, value in backbone.state_dict().items())


def test_mismatches_are_reported_clearly():
    with pytest.raises(ValueError, match="4 feature maps but the anchor spec has 6 layers"):
        build_ssd("tiny", num_classes=NUM_CLASSES, image_size=64, anchor_spec=AnchorSpec.ssd_paper())
    with pytest.raises(ValueError, match="did you mean 'mobilenet_v2'"):
        build_ssd("mobilenet_v2x", num_classes=NUM_CLASSES, image_size=300)
    model = build_ssd("tiny", num_classes=NUM_CLASSES, image_size=64)
    with pytest.raises(ValueError, match="built for 64x64"):
        model(torch.zeros(1, 3, 96, 96))
    with pytest.raises(ValueError, match="cannot take 64x64"):
        build_ssd("vgg16", num_classes=NUM_CLASSES, image_size=64)


@pytest.mark.parametrize("width_mult", [0.25, 0.5, 0.75, 1.0])
def test_mobilenet_v1_width_multiplier(width_mult):
    backbone = BACKBONES["mobilenet_v1"](width_mult=width_mult)
    assert backbone.out_channels[:2] == [int(512 * width_mult), int(1024 * width_mult)]
    assert len(backbone.body_blocks()) == 14  # one full conv + 13 depthwise-separable layers


def test_mobilenet_v1_width_outside_the_paper_range_is_refused():
    with pytest.raises(ValueError, match="0.25..1.0"):
        BACKBONES["mobilenet_v1"](width_mult=0.2)


def retinaface_file(name: str) -> Path:
    path = RETINAFACE_WEIGHTS / name
    if not path.is_file():
        print(f"skipping: {path} not found (../shared/data/weights is not present on this machine)")
        pytest.skip(f"RetinaFace checkpoint {path} not found (../shared/data/weights absent)")
    return path


@pytest.mark.realdata
def test_retinaface_mobilenet_v1_x025_imagenet_checkpoint_loads():
    path = retinaface_file("mobilenetV1X0.25_pretrain.tar")
    torch.manual_seed(SEED)
    model = build_ssd("mobilenet_v1", num_classes=NUM_CLASSES, image_size=300, width_mult=0.25,
                      pretrained_path=path)
    backbone = BACKBONES["mobilenet_v1"](width_mult=0.25)
    report = load_pretrained(backbone, path)
    print(report.summary())

    # 27 convs (1 full + 13 x (depthwise, pointwise)) and 27 BatchNorms x 5 tensors = 162
    assert report.matched == 162
    assert report.unexpected_keys == ("fc.weight", "fc.bias")  # the ImageNet classifier
    assert report.shape_mismatched == 0
    assert report.missing and all(key.startswith("extras.") for key in report.missing_keys)
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)["state_dict"]
    for loaded in (backbone, model.backbone):
        assert torch.equal(loaded.stage3[1][3].weight, checkpoint["module.stage3.1.3.weight"])
        assert torch.equal(loaded.stage1[0][1].running_var, checkpoint["module.stage1.0.1.running_var"])


@pytest.mark.realdata
def test_retinaface_detector_checkpoint_maps_through_its_body_prefix():
    path = retinaface_file("mobilenet0.25_Final.pth")
    report = load_pretrained(BACKBONES["mobilenet_v1"](width_mult=0.25), path)
    assert report.stripped_prefix == "body."
    assert report.matched == 162 and report.shape_mismatched == 0


@pytest.mark.realdata
def test_checkpoint_of_another_width_is_refused():
    path = retinaface_file("mobilenetV1X0.25_pretrain.tar")
    with pytest.raises(PretrainedWeightsError, match="width_mult"):
        load_pretrained(BACKBONES["mobilenet_v1"](width_mult=0.5), path)


def test_imagenet_weights_offline_give_an_error_naming_the_recipe_key_and_the_fix():
    backbone = BACKBONES["mobilenet_v2"]()  # its ImageNet file is the smallest torchvision has here
    try:
        report = load_pretrained(backbone, "imagenet")
    except PretrainedWeightsError as error:
        message = str(error)
        assert "model.pretrained" in message and "MobileNet_V2_Weights.IMAGENET1K_V1" in message
        assert "internet" in message and "local state-dict file" in message and "\"\" (empty)" in message
    else:
        pytest.skip(f"torchvision's ImageNet weights were available ({report.summary()}), so the "
                    "offline error cannot be exercised on this machine")


def test_imagenet_for_a_backbone_torchvision_lacks_points_to_a_local_file():
    with pytest.raises(PretrainedWeightsError, match="no torchvision weights.*mobilenetV1X0.25_pretrain"):
        build_ssd("mobilenet_v1", num_classes=NUM_CLASSES, image_size=300, pretrained_path="imagenet")


def test_missing_weights_file_names_the_recipe_key(tmp_path):
    with pytest.raises(PretrainedWeightsError, match="model.backbone_weights: weights file .* not found"):
        load_pretrained(BACKBONES["tiny"](), tmp_path / "absent.pth", recipe_key="model.backbone_weights")


def test_a_saved_state_dict_round_trips_with_data_parallel_prefixes(tmp_path):
    torch.manual_seed(SEED)
    source = BACKBONES["tiny"]()
    path = tmp_path / "tiny.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in source.state_dict().items()}, "epoch": 3}, path)
    target = BACKBONES["tiny"]()
    report = load_pretrained(target, path)
    assert report.matched == len(source.state_dict()) and report.missing == report.unexpected == 0
    assert torch.equal(target.stages[2][1][0].weight, source.stages[2][1][0].weight)


# tiny at width 1.0, parameters (convs have no bias under BatchNorm; BN has weight + bias):
STEM = 3 * 16 * 9 + 2 * 16  # 464
STAGE_1 = 16 * 32 * 9 + 2 * 32 + 32 * 32 * 9 + 2 * 32  # 13952
STAGE_2 = 32 * 64 * 9 + 2 * 64 + 64 * 64 * 9 + 2 * 64  # 55552


def test_freeze_by_depth_and_by_name_counts_parameters():
    torch.manual_seed(SEED)
    model = build_ssd("tiny", num_classes=NUM_CLASSES, image_size=64)
    total = sum(p.numel() for p in model.parameters())
    body = sum(p.numel() for p in model.backbone.parameters())  # tiny has no extra layers

    report = freeze(model, trainable_last_n=2)  # of stem + 4 stages, the last two train
    assert report.frozen_params == STEM + STAGE_1 + STAGE_2
    assert report.trainable_params == total - report.frozen_params
    assert not model.backbone.stem[0].weight.requires_grad
    assert model.backbone.stages[3][0][0].weight.requires_grad

    assert freeze(model, trainable_last_n=0).frozen_params == body
    assert freeze(model, trainable_last_n=5).frozen_params == 0  # calls do not accumulate
    assert freeze(model, names=["backbone.stem"]).frozen_params == STEM
    both = freeze(model, trainable_last_n=4, names=["classification_heads"])
    assert both.frozen_params == STEM + sum(p.numel() for p in model.classification_heads.parameters())


def test_freeze_keeps_extra_layers_trainable_and_rejects_unknown_names():
    model = build_ssd("mobilenet_v1", num_classes=NUM_CLASSES, image_size=300, width_mult=0.25)
    report = freeze(model, trainable_last_n=0)
    stages = sum(p.numel() for stage in (model.backbone.stage1, model.backbone.stage2, model.backbone.stage3)
                 for p in stage.parameters())
    assert report.frozen_params == stages
    assert all(p.requires_grad for p in model.backbone.extras.parameters())
    with pytest.raises(ValueError, match="did you mean backbone.stage1"):
        freeze(model, names=["backbone.stage_1"])
    with pytest.raises(ValueError, match="0..14"):
        freeze(model, trainable_last_n=15)


def test_trainer_imports_neither_fiftyone_nor_pymongo():
    code = ("import sys, trainer.model, trainer.backbones, trainer.weights; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'fiftyone', 'pymongo'}))")
    result = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
