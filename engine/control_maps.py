"""Control maps: what a control image becomes before a ControlNet sees it. Pure functions of a picture (no model but
the depth estimator, which is passed in); engine process only.

Every map is an RGB picture the size of the job's images: the control image is first cropped to the job's aspect
ratio and resized (:func:`fit_control`), then turned into a map by its mode:

- ``canny``: OpenCV's Canny edge detector (thresholds 100 and 200, A1111's defaults), white edges on black.
- ``lineart``: ink lines: a pixel darker than the blurred picture around it (a difference of Gaussians) becomes a
  white line on black, brighter the darker it is against its surroundings; flat areas stay black. Deterministic and
  model-free, a stand-in for the learned lineart annotators.
- ``scribble``: bold outlines of the main shapes: Canny edges of a strongly blurred picture, dilated into strokes a
  few pixels wide and made pure black and white, the way scribble ControlNets were trained (thick, rough lines).
- ``depth``: the depth estimator's relative depth, stretched to 0-255 with near bright and far dark.
- ``raw``: the picture as it is, for a map the member made elsewhere (edges, depth, a pose skeleton).
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np
from PIL import Image, ImageOps

CANNY_LOW = 100
CANNY_HIGH = 200
LINEART_SIGMA = 2.0
LINEART_FLOOR = 0.08
"""Line strengths below this fraction of the strongest line are dropped (paper grain, JPEG noise)."""
SCRIBBLE_SIGMA = 3.0
SCRIBBLE_LOW = 20
SCRIBBLE_HIGH = 60

DepthEstimator = Callable[[Image.Image], np.ndarray]
"""A picture in, its relative depth out (a float array of any size; larger is nearer)."""


def fit_control(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    """``image`` in RGB, cropped to the aspect ratio of ``size`` around its centre and resized to it."""
    return ImageOps.fit(image.convert("RGB"), size, Image.Resampling.LANCZOS)


def _gray(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("L"), dtype=np.uint8)


def _rgb(single: np.ndarray) -> Image.Image:
    """A one-channel uint8 array as an RGB picture (ControlNets take three channels)."""
    return Image.fromarray(np.repeat(single[:, :, None], 3, axis=2), "RGB")


def canny_map(image: Image.Image, low: int = CANNY_LOW, high: int = CANNY_HIGH) -> Image.Image:
    """White Canny edges on black."""
    return _rgb(cv2.Canny(_gray(image), low, high))


def lineart_map(image: Image.Image, sigma: float = LINEART_SIGMA) -> Image.Image:
    """White ink lines on black: how much darker each pixel is than its blurred surroundings, stretched to 0-255."""
    gray = _gray(image).astype(np.float32)
    blurred = cv2.GaussianBlur(gray, (0, 0), sigmaX=sigma)
    ink = np.clip(blurred - gray, 0.0, None)
    strongest = float(ink.max())
    if strongest <= 0.0:
        return _rgb(np.zeros(gray.shape, dtype=np.uint8))
    ink /= strongest
    ink[ink < LINEART_FLOOR] = 0.0
    return _rgb(np.round(np.sqrt(ink) * 255.0).astype(np.uint8))


def scribble_map(image: Image.Image, sigma: float = SCRIBBLE_SIGMA) -> Image.Image:
    """Bold white outlines on black: Canny edges of a blurred picture, dilated (wider on larger pictures), binary."""
    gray = cv2.GaussianBlur(_gray(image), (0, 0), sigmaX=sigma)
    edges = cv2.Canny(gray, SCRIBBLE_LOW, SCRIBBLE_HIGH)
    passes = max(1, round(min(edges.shape) / 256))
    strokes = cv2.dilate(edges, np.ones((3, 3), np.uint8), iterations=passes)
    return _rgb(np.where(strokes > 0, 255, 0).astype(np.uint8))


def depth_to_map(depth: np.ndarray, size: tuple[int, int]) -> Image.Image:
    """A relative depth array (larger is nearer) as a picture of ``size``: near white, far black, a flat one black."""
    values = np.asarray(depth, dtype=np.float32)
    low, high = float(values.min()), float(values.max())
    if not np.isfinite(low) or not np.isfinite(high) or high - low <= 1e-12:
        scaled = np.zeros(values.shape, dtype=np.uint8)
    else:
        scaled = np.round((values - low) / (high - low) * 255.0).astype(np.uint8)
    return _rgb(scaled).resize(size, Image.Resampling.BICUBIC)


def control_map(
    image: Image.Image, mode: str, size: tuple[int, int], depth: DepthEstimator | None = None
) -> Image.Image:
    """The ``mode`` map of ``image`` at ``size`` (width, height). Raises ValueError for an unknown mode, or for
    depth without an estimator."""
    fitted = fit_control(image, size)
    if mode == "canny":
        return canny_map(fitted)
    if mode == "lineart":
        return lineart_map(fitted)
    if mode == "scribble":
        return scribble_map(fitted)
    if mode == "raw":
        return fitted
    if mode == "depth":
        if depth is None:
            raise ValueError("control_mode=depth needs a depth estimator: set [depth] source in the configuration")
        return depth_to_map(depth(fitted), size)
    raise ValueError(f"control_mode={mode!r} is not one of: canny, depth, lineart, scribble, raw")
