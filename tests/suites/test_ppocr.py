"""PP-OCR, as rapidocr_onnxruntime ships it: detection, direction classification and
recognition, through macecl and through ONNX Runtime (CPU) on the same inputs.

The inputs are text rendered with OpenCV (the package ships no image), prepared as
rapidocr prepares them: BGR, ``(img / 255 - 0.5) / 0.5``, CHW; a recognition crop is
resized to height 48 and padded with zeros to the model width.
"""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
import rapidocr_onnxruntime

import macecl
from macecl.engine import Engine

from .conftest import assert_outputs_close, ort_session, run_macecl, run_ort, with_logits

MODELS = Path(rapidocr_onnxruntime.__file__).parent / "models"
DET = MODELS / "ch_PP-OCRv4_det_infer.onnx"
CLS = MODELS / "ch_ppocr_mobile_v2.0_cls_infer.onnx"
REC = MODELS / "ch_PP-OCRv4_rec_infer.onnx"

LINES = ["macecl 0.1.0 OpenCL", "PP-OCRv4 det+cls+rec", "Invoice No. 2024-0611",
         "Total: 1,234.56 EUR", "THE QUICK BROWN FOX", "jumps over 13 lazy dogs"]
FONTS = [cv2.FONT_HERSHEY_SIMPLEX, cv2.FONT_HERSHEY_DUPLEX, cv2.FONT_HERSHEY_COMPLEX,
         cv2.FONT_HERSHEY_TRIPLEX, cv2.FONT_HERSHEY_PLAIN]


def _normalize(bgr: np.ndarray) -> np.ndarray:
    """uint8 HxWx3 -> float32 1x3xHxW, as rapidocr normalizes (mean 0.5, std 0.5)."""
    chw = bgr.astype(np.float32).transpose(2, 0, 1) / 255.0
    return ((chw - 0.5) / 0.5)[None].astype(np.float32)


def page(height: int, width: int, seed: int) -> np.ndarray:
    """A page of dark text lines on a light, slightly uneven background (uint8 BGR)."""
    rng = np.random.default_rng(seed)
    image = np.full((height, width, 3), 235, np.uint8)
    image = np.clip(image + rng.normal(0, 6, image.shape), 0, 255).astype(np.uint8)
    y = 0
    for index in range(64):
        text = LINES[index % len(LINES)]
        scale = float(rng.uniform(0.6, 1.3)) * width / 640
        font = FONTS[index % len(FONTS)]
        (text_w, text_h), base = cv2.getTextSize(text, font, scale, 2)
        y += text_h + base + int(rng.integers(8, 24))
        if y >= height - base:
            break
        x = int(rng.integers(0, max(1, width - text_w)))
        color = tuple(int(c) for c in rng.integers(0, 80, 3))
        cv2.putText(image, text, (x, y), font, scale, color, 2, cv2.LINE_AA)
    return image


def line_crop(text: str, seed: int) -> np.ndarray:
    """One rendered text line, tightly cropped like a detected box (uint8 BGR)."""
    rng = np.random.default_rng(seed)
    font = FONTS[seed % len(FONTS)]
    (text_w, text_h), base = cv2.getTextSize(text, font, 1.0, 2)
    image = np.full((text_h + base + 12, text_w + 12, 3), 240, np.uint8)
    image = np.clip(image + rng.normal(0, 5, image.shape), 0, 255).astype(np.uint8)
    cv2.putText(image, text, (6, text_h + 6), font, 1.0, (20, 20, 20), 2, cv2.LINE_AA)
    return image


def crop_input(crop: np.ndarray, height: int, width: int) -> np.ndarray:
    """rapidocr's resize_norm_img: height fixed, width by aspect (at most ``width``), then
    normalized and padded with zeros on the right."""
    h, w = crop.shape[:2]
    resized_w = min(width, int(math.ceil(height * w / h)))
    resized = cv2.resize(crop, (resized_w, height))
    padded = np.zeros((1, 3, height, width), np.float32)
    padded[:, :, :, :resized_w] = _normalize(resized)
    return padded


def compare(context, model: Path, x: np.ndarray, directory: Path) -> None:
    """ONNX Runtime and macecl (input shape fixed at conversion) on ``x``. A model ending in
    Softmax runs as a copy that also returns the logits: cls's softmax is one-hot here."""
    proto = onnx.load(str(model))
    if with_logits(proto):
        model = directory / model.name
        onnx.save(proto, str(model))
    feeds = {"x": x}
    want = run_ort(model, feeds)
    got = run_macecl(context, model, feeds, input_shapes={"x": list(x.shape)})
    assert_outputs_close(got, want)


@pytest.mark.parametrize("height,width", [(640, 640), (320, 480)])
def test_det(height, width, shared_context, tmp_path):
    compare(shared_context, DET, _normalize(page(height, width, seed=height + width)), tmp_path)


def test_cls(shared_context, tmp_path):
    x = crop_input(line_crop("Invoice No. 2024-0611", 3), 48, 192)
    compare(shared_context, CLS, x, tmp_path)


def test_rec(shared_context, tmp_path):
    x = crop_input(line_crop("Total: 1,234.56 EUR", 2), 48, 320)
    compare(shared_context, REC, x, tmp_path)


def test_rec_two_widths_one_engine(shared_context):
    """One engine with the width left open plans again for a second width; both right."""
    engine = Engine(REC, context=shared_context)
    ort = ort_session(REC)
    try:
        for width, text in ((320, "THE QUICK BROWN FOX"), (160, "PP-OCRv4")):
            x = crop_input(line_crop(text, width), 48, width)
            want = dict(zip([o.name for o in ort.get_outputs()], ort.run(None, {"x": x})))
            assert_outputs_close(engine.run({"x": x}), want)
        assert engine.stats.plans == 2
    finally:
        engine.close()


def test_rec_character_metadata():
    """The character list rapidocr reads from the model is visible as in onnxruntime."""
    want = ort_session(REC).get_modelmeta().custom_metadata_map["character"]
    session = macecl.InferenceSession(REC)
    try:
        got = session.get_modelmeta().custom_metadata_map
    finally:
        session.engine.close()
    assert got["character"] == want
    assert len(want.splitlines()) > 6000
