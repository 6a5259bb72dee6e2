"""Caption one image and turn each token's attention map into a heat-map over the visitor's own image."""
from __future__ import annotations

import numpy as np
from PIL import Image

from core.inputs import InputError, parse_int_in_range
from models.captioner import Captioner, CaptionResult

MAX_BEAM = 10


def parse_beam(value) -> int:
    return parse_int_in_range(value, "beam size", 1, MAX_BEAM)


def caption(captioner: Captioner, image: Image.Image, beam_size) -> CaptionResult:
    beam = parse_beam(beam_size)
    result = captioner.caption(image, beam_size=beam)
    if not result.tokens:
        raise InputError("The model produced no words for this image; try another image or beam size.")
    return result


def heat_on_image(attention: np.ndarray, size: tuple[int, int], square_box: tuple[float, float, float, float]) -> np.ndarray:
    """(H, W) map in [0, 1] over the image of `size` (W, H): the (g, g) grid map, upsampled over the square the
    model saw, cropped to where the image lies in that square, scaled to its maximum."""
    w, h = size
    x0, y0, x1, y1 = square_box
    side_w, side_h = max(1, round(w / (x1 - x0))), max(1, round(h / (y1 - y0)))
    grid = Image.fromarray(attention.astype(np.float32), mode="F").resize((side_w, side_h), Image.BILINEAR)
    left, top = round(x0 * side_w), round(y0 * side_h)
    heat = np.asarray(grid.crop((left, top, left + w, top + h)), dtype=np.float32)  # (H, W)
    peak = heat.max()
    return heat / peak if peak > 0 else heat


def token_heats(captioner: Captioner, image: Image.Image, result: CaptionResult) -> list[np.ndarray]:
    box = captioner.square_box(image.size)
    return [heat_on_image(a, image.size, box) for a in result.attention]
