"""dlib's tiled image pyramid (``input_rgb_image_pyramid<pyramid_down<6>>``), in numpy: the
tensor the MMOD detector's network sees, and the map from its coordinates back to the image.

dlib (``dnn/input.h``, ``image_transforms/image_pyramid.h``) lays the pyramid levels out in
one image: each level is 5/6 the size of the one before (``floor(5/6 * rows)``, down to 5
rows), the first levels stacked in one column with ``padding`` (10) zero rows between them,
the rest going back up the right-hand side, all inside an ``outer_padding`` (11) zero border.
It first writes ``(pixel - mean) / 256`` into the first tile, then makes each next tile by a
bilinear resize of the previous one *in that scaled space* (``tt::resize_bilinear``), so the
padding is exactly 0, the mean colour.

>>> layout = tiled_layout(540, 960)          # rects per level, tensor size
>>> tiled = build_tiled(rgb, layout, mean)    # (3, rows, cols) float32
>>> box = layout.tensor_to_image(left, top, right, bottom)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

PYRAMID_N = 6  # pyramid_down<6>: each level 5/6 of the one before
MIN_LEVEL_ROWS = 5


def round_half_away(x: np.ndarray) -> np.ndarray:
    """Round to the nearest integer, halves away from zero (``std::round``): how dlib turns a
    ``drectangle`` into a ``rectangle``. -12.5 becomes -13 (checked against dlib's boxes at
    the image's left edge; ``floor(x + 0.5)`` would give -12)."""
    return np.copysign(np.floor(np.abs(x) + 0.5), x)


@dataclass(frozen=True)
class Rect:
    """dlib's ``rectangle``: inclusive integer corners."""

    left: int
    top: int
    right: int
    bottom: int

    @property
    def width(self) -> int:
        return self.right - self.left + 1

    @property
    def height(self) -> int:
        return self.bottom - self.top + 1

    def intersects(self, other: Rect) -> bool:
        return max(self.left, other.left) <= min(self.right, other.right) and max(
            self.top, other.top
        ) <= min(self.bottom, other.bottom)


@dataclass(frozen=True)
class TiledLayout:
    """Where each pyramid level sits in the tiled tensor (level 0 = the image itself)."""

    rects: tuple[Rect, ...]
    rows: int
    cols: int

    def tensor_to_image(
        self, left: np.ndarray, top: np.ndarray, right: np.ndarray, bottom: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """dlib's ``tiled_pyramid_to_image`` for boxes (float arrays, inclusive corners):
        each box goes to the level whose tile is nearest its centre, then up that many
        levels with ``pyramid_down<6>::point_up`` (``p * 6/5 + 0.3`` per level)."""
        cx = round_half_away((left + right) / 2)  # dpoint -> point rounds
        cy = round_half_away((top + bottom) / 2)
        best = np.full(cx.shape, np.inf)
        level = np.zeros(cx.shape, dtype=np.int64)
        inside = np.zeros(cx.shape, dtype=bool)
        for i, r in enumerate(self.rects):
            # nearest_rect: the first rect containing the point, else the nearest one.
            dx = np.clip(cx, r.left, r.right) - cx
            dy = np.clip(cy, r.top, r.bottom) - cy
            dist = np.sqrt(dx * dx + dy * dy)
            take = ~inside & ((dist == 0) | (dist < best))
            level[take] = i
            best[take] = dist[take]
            inside |= dist == 0
        origin_x = np.array([r.left for r in self.rects], dtype=np.float64)[level]
        origin_y = np.array([r.top for r in self.rects], dtype=np.float64)[level]
        out = [left - origin_x, top - origin_y, right - origin_x, bottom - origin_y]
        ratio = PYRAMID_N / (PYRAMID_N - 1.0)
        for _ in range(int(level.max(initial=0))):
            up = level > 0
            out = [np.where(up, v * ratio + 0.3, v) for v in out]
            level = level - 1
        return out[0], out[1], out[2], out[3]


@lru_cache(maxsize=16)
def tiled_layout(rows: int, cols: int, padding: int = 10, outer_padding: int = 11) -> TiledLayout:
    """``impl::compute_tiled_image_pyramid_details`` for an image of ``rows`` x ``cols``."""
    if rows * cols == 0:
        return TiledLayout((), 0, 0)
    sizes = [(cols, rows)]
    nr, nc = rows, cols
    rate = (PYRAMID_N - 1.0) / PYRAMID_N
    while True:
        nr, nc = math.floor(rate * nr), math.floor(rate * nc)
        if nr * nc == 0 or nr < MIN_LEVEL_ROWS:
            break
        sizes.append((nc, nr))

    total_height = sum(h + padding for _, h in sizes) - 2 * padding
    first_w, first_h = sizes[0]
    height = 0
    prev_width = 0
    for w, h in sizes:
        # The first column goes on until the next level fits beside the previous one and
        # half the remaining height is used: the rest then climbs back up the right side.
        if w <= first_w - prev_width - padding and (height - first_h) * 2 >= (
            total_height - first_h
        ):
            break
        height += h + padding
        prev_width = w
    height -= padding
    width = first_w

    rects: list[Rect] = []
    y = outer_padding
    i = 0
    while y < height + outer_padding and i < len(sizes):
        w, h = sizes[i]
        rects.append(Rect(outer_padding, y, outer_padding + w - 1, y + h - 1))
        y += h + padding
        i += 1
    y -= padding
    while i < len(sizes):
        w, h = sizes[i]
        right, bottom = outer_padding + width - 1, y - 1
        rect = Rect(right - (w - 1), bottom - (h - 1), right, bottom)
        if rects[0].intersects(rect):  # the last levels would overlap the image: dropped
            break
        rects.append(rect)
        y -= h + padding
        i += 1
    return TiledLayout(tuple(rects), height + 2 * outer_padding, width + 2 * outer_padding)


@dataclass(frozen=True)
class _Resize:
    """Where each output pixel of dlib's bilinear ``resize_image`` (float images) samples its
    input, with dlib's own float arithmetic, so the result is dlib's to the last bit or two.

    dlib maps output index i to input position ``i * (n_in - 1) / (n_out - 1)`` (corners onto
    corners). Rows: the position is accumulated in double, ``y += scale``. Columns: four at a
    time in float32 SIMD lanes, each lane starting at ``float(-4 * scale + lane * scale)`` and
    adding ``float(4 * scale)`` per step, truncated to an index; the last columns (where the
    right neighbour of lane 3 would fall outside the input) go one by one in double. The float
    accumulation drifts by up to ~1e-4 of a pixel on a 960-pixel row, enough to move a
    truncation across an integer now and then: emulated rather than computed exactly.
    """

    top: np.ndarray
    bottom: np.ndarray
    tb_frac: np.ndarray  # float64, as dlib keeps it
    left: np.ndarray
    right: np.ndarray
    lr_frac: np.ndarray  # float32
    simd_cols: int  # columns [0, simd_cols) take the SIMD path


@lru_cache(maxsize=256)
def _resize_plan(in_rows: int, in_cols: int, rows: int, cols: int) -> _Resize:
    y_scale = (in_rows - 1) / max(rows - 1, 1)
    steps = np.full(rows + 1, y_scale)
    steps[0] = -y_scale
    y = np.cumsum(steps)[1:]  # sequential double additions, like dlib's loop
    top = np.floor(y).astype(np.intp)
    bottom = np.minimum(top + 1, in_rows - 1)
    tb_frac = y - top

    x_scale = (in_cols - 1) / max(cols - 1, 1)
    blocks = cols // 4 + 2
    lanes = np.empty((4, blocks + 1), dtype=np.float32)
    lanes[:, 0] = (-4 * x_scale + np.arange(4) * x_scale).astype(np.float32)
    lanes[:, 1:] = np.float32(4 * x_scale)
    lanes = np.cumsum(lanes, axis=1, dtype=np.float32)[:, 1:]  # (lane, step)
    lane_left = np.trunc(lanes).astype(np.intp)
    stop = np.flatnonzero(lane_left[3] + 1 >= in_cols)
    simd_cols = 4 * int(stop[0]) if stop.size else 4 * blocks
    simd_cols = min(simd_cols, cols)
    left = np.empty(cols, dtype=np.intp)
    lr_frac = np.empty(cols, dtype=np.float32)
    xs = lanes.T.reshape(-1)[:simd_cols]
    left[:simd_cols] = lane_left.T.reshape(-1)[:simd_cols]
    lr_frac[:simd_cols] = xs - left[:simd_cols].astype(np.float32)
    x = -x_scale + simd_cols * x_scale
    for c in range(simd_cols, cols):
        x += x_scale
        left[c] = math.floor(x)
        lr_frac[c] = x - left[c]
    right = np.minimum(left + 1, in_cols - 1)
    return _Resize(top, bottom, tb_frac, left, right, lr_frac, simd_cols)


def resize_exact(src: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """dlib's bilinear ``resize_image`` of each plane of a ``(channels, rows, cols)`` float32
    array, with dlib's own arithmetic (four float32 weights summed in its order): equal to
    dlib's result bit for bit. Truncated to integers it is dlib's resize of a uint8 RGB image
    (``pyramid_up``), which is where the exactness matters; see ``resize_planes`` for speed."""
    plan = _resize_plan(src.shape[1], src.shape[2], rows, cols)
    upper, lower = src[:, plan.top, :], src[:, plan.bottom, :]
    n = plan.simd_cols
    out = np.empty((src.shape[0], rows, cols), dtype=np.float32)

    tb = plan.tb_frac.astype(np.float32)[:, None]
    inv_tb = (1 - plan.tb_frac).astype(np.float32)[:, None]
    lr = plan.lr_frac[None, :n]
    inv_lr = np.float32(1) - lr
    left, right = plan.left[:n], plan.right[:n]
    acc = (inv_tb * inv_lr) * upper[:, :, left]
    acc += (inv_tb * lr) * upper[:, :, right]
    acc += (tb * inv_lr) * lower[:, :, left]
    acc += (tb * lr) * lower[:, :, right]
    out[:, :, :n] = acc

    if n < cols:  # the last columns: float sums along each row, mixed in double
        lr = plan.lr_frac[None, n:]
        inv_lr = np.float32(1) - lr
        left, right = plan.left[n:], plan.right[n:]
        up = inv_lr * upper[:, :, left] + lr * upper[:, :, right]
        down = inv_lr * lower[:, :, left] + lr * lower[:, :, right]
        tbd = plan.tb_frac[:, None]
        out[:, :, n:] = (1 - tbd) * up + tbd * down
    return out


def resize_planes(src: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """The same resize as ``resize_exact`` done separably, first along columns then rows:
    the same sample positions and weights, different float rounding (within about 1e-6 of
    dlib's values here), about four times faster. Used for the pyramid levels."""
    plan = _resize_plan(src.shape[1], src.shape[2], rows, cols)
    upper = src[:, plan.top, :]
    vert = src[:, plan.bottom, :]
    vert -= upper
    vert *= plan.tb_frac.astype(np.float32)[None, :, None]
    vert += upper
    left = vert[:, :, plan.left]
    out = vert[:, :, plan.right]
    out -= left
    out *= plan.lr_frac[None, None, :]
    out += left
    return out


def pyramid_up(rgb: np.ndarray) -> np.ndarray:
    """dlib's ``pyramid_up(img, pyramid_down<2>)`` of a uint8 RGB image, as the Python
    detector's ``upsample`` does it: the output is ``2 * rows + 1`` by ``2 * cols + 2`` (the
    image rectangle mapped up by ``(p + (1.25, 0.75)) * 2`` and rounded), filled by a
    bilinear resize truncated to integers."""
    rows, cols = rgb.shape[:2]
    planes = np.ascontiguousarray(rgb.transpose(2, 0, 1), dtype=np.float32)
    up = resize_exact(planes, 2 * rows + 1, 2 * cols + 2)
    return np.ascontiguousarray(np.trunc(up).astype(np.uint8).transpose(1, 2, 0))


def rect_down(box: np.ndarray, levels: int) -> np.ndarray:
    """``pyramid_down<2>::rect_down(rect, levels)`` for integer boxes ``(n, 4)`` as left, top,
    right, bottom (inclusive), rounded back to integers as dlib's rectangle does."""
    out = box.astype(np.float64)
    for _ in range(levels):
        out = out / 2.0 - np.array([1.25, 0.75, 1.25, 0.75])
    return round_half_away(out).astype(np.int64)


def build_tiled(rgb: np.ndarray, layout: TiledLayout, mean_rgb: np.ndarray) -> np.ndarray:
    """The ``(3, rows, cols)`` float32 tensor dlib's input layer makes from ``rgb``.

    Each level is written in place into its tile by ``cv2.remap`` from the previous tile, with
    maps holding dlib's sample positions (``_remap_maps``, kept per image size): OpenCV's
    float bilinear resampling, SIMD and threaded, about five times faster than numpy here and
    within about 2e-5 of it. Where this OpenCV rounds sample positions coarsely (older ones
    use 1/32 of a pixel) ``build_tiled_numpy`` does the work instead."""
    if not _remap_is_exact():
        return build_tiled_numpy(rgb, layout, mean_rgb)
    import cv2

    out = np.zeros((3, layout.rows, layout.cols), dtype=np.float32)
    if not layout.rects:
        return out
    r0 = layout.rects[0]
    for c in range(3):
        first = out[c, r0.top : r0.bottom + 1, r0.left : r0.right + 1]
        np.subtract(rgb[:, :, c], np.float32(mean_rgb[c]), out=first, casting="unsafe")
        first *= np.float32(1 / 256)
        prev = r0
        for r, (map_x, map_y) in zip(layout.rects[1:], _remap_maps(layout), strict=True):
            src = out[c, prev.top : prev.bottom + 1, prev.left : prev.right + 1]
            dst = out[c, r.top : r.bottom + 1, r.left : r.right + 1]
            got = cv2.remap(src, map_x, map_y, cv2.INTER_LINEAR, dst=dst)
            if not np.shares_memory(got, dst):  # OpenCV could not write into the tile
                dst[...] = got
            prev = r
    return out


@lru_cache(maxsize=16)
def _remap_maps(layout: TiledLayout) -> tuple[tuple[np.ndarray, np.ndarray], ...]:
    """For each level after the first, ``cv2.remap``'s maps: where each of its pixels samples
    the previous level (``_resize_plan``'s positions, as float32)."""
    maps = []
    for prev, r in zip(layout.rects, layout.rects[1:], strict=False):
        plan = _resize_plan(prev.height, prev.width, r.height, r.width)
        x = (plan.left + plan.lr_frac.astype(np.float64)).astype(np.float32)
        y = (plan.top + plan.tb_frac).astype(np.float32)
        maps.append(
            (
                np.ascontiguousarray(np.broadcast_to(x[None, :], (r.height, r.width))),
                np.ascontiguousarray(np.broadcast_to(y[:, None], (r.height, r.width))),
            )
        )
    return tuple(maps)


@lru_cache(maxsize=1)
def _remap_is_exact() -> bool:
    """Whether ``cv2.remap`` interpolates float images with float weights (OpenCV 4.11 and
    later) rather than in steps of 1/32 pixel: checked once on a random level."""
    import cv2

    plane = np.random.default_rng(0).random((1, 60, 90), dtype=np.float32)
    layout = TiledLayout((Rect(0, 0, 89, 59), Rect(0, 0, 74, 49)), 60, 90)
    map_x, map_y = _remap_maps(layout)[0]
    got = cv2.remap(plane[0], map_x, map_y, cv2.INTER_LINEAR)
    return float(np.abs(got - resize_planes(plane, 50, 75)[0]).max()) < 1e-4


def build_tiled_numpy(rgb: np.ndarray, layout: TiledLayout, mean_rgb: np.ndarray) -> np.ndarray:
    """``build_tiled`` in numpy only (``resize_planes`` for each level): the reference."""
    out = np.zeros((3, layout.rows, layout.cols), dtype=np.float32)
    if not layout.rects:
        return out
    r0 = layout.rects[0]
    level = rgb.astype(np.float32).transpose(2, 0, 1) - mean_rgb.astype(np.float32)[:, None, None]
    level *= np.float32(1 / 256)
    out[:, r0.top : r0.bottom + 1, r0.left : r0.right + 1] = level
    for r in layout.rects[1:]:
        level = resize_planes(level, r.height, r.width)
        out[:, r.top : r.bottom + 1, r.left : r.right + 1] = level
    return out
