"""SSD default boxes ("priors", "anchors"): one generator for every model and every anchor spec.

The spec is the form ``curate anchors --fit`` writes into a recipe:

* ``scales``: L + 1 box sizes relative to the input height (SSD's s_k; widths are converted so that a
  ratio-1 box is square in pixels on a non-square input). Layer k uses ``scales[k]`` for its
  ratio boxes and, with ``extra_square``, ``sqrt(scales[k] * scales[k + 1])`` for one more square box.
* ``aspect_ratios``: per layer, the explicit width/height ratios (``(1.0, 2.0, 0.5)``); unlike
  torchvision's ``[2]`` shorthand, a ratio and its inverse are both listed, so fitted sets can be
  asymmetric.
* ``steps``: per layer, the pixel stride between box centres; by default the input size divided by the
  feature-map size (so centres are ``(j + 0.5) * step``).

Boxes are ``cx, cy, w, h`` relative to the input (``[0, 1]``). Order: layer, then row ``i``, column ``j``,
then box type (ratio boxes in the listed order, then the extra square). The SSD head's output is laid out
the same way (``[B, A * C, H, W]`` -> ``[B, H, W, A, C]`` -> ``[B, H * W * A, C]``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch


@dataclass(frozen=True)
class AnchorSpec:
    scales: tuple[float, ...]
    aspect_ratios: tuple[tuple[float, ...], ...]
    extra_square: bool = True

    def __post_init__(self) -> None:
        if len(self.scales) != len(self.aspect_ratios) + 1:
            raise ValueError(f"anchors: {len(self.aspect_ratios)} layers of aspect ratios need "
                             f"{len(self.aspect_ratios) + 1} scales (one per layer plus one), got "
                             f"{len(self.scales)}")
        values = [*self.scales, *(r for rs in self.aspect_ratios for r in rs)]
        if not all(math.isfinite(v) and v > 0 for v in values):
            raise ValueError("anchors: scales and aspect ratios must be positive finite numbers")
        if any(len(rs) == 0 for rs in self.aspect_ratios) and not self.extra_square:
            raise ValueError("anchors: a layer with no aspect ratios needs extra_square")

    @property
    def num_layers(self) -> int:
        return len(self.aspect_ratios)

    def boxes_per_location(self) -> list[int]:
        return [len(rs) + int(self.extra_square) for rs in self.aspect_ratios]

    def shapes(self, layer: int) -> list[tuple[float, float]]:
        """Relative (w, h) of each box type of ``layer``, in output order."""
        s = self.scales[layer]
        shapes = [(s * math.sqrt(r), s / math.sqrt(r)) for r in self.aspect_ratios[layer]]
        if self.extra_square:
            extra = math.sqrt(s * self.scales[layer + 1])
            shapes.append((extra, extra))
        return shapes

    @classmethod
    def ssd_paper(cls, num_layers: int = 6, s_min: float = 0.2, s_max: float = 0.9,
                  first_scale: float = 0.1) -> AnchorSpec:
        """The SSD paper's scales (``first_scale``, then linear from s_min to s_max, plus one for the
        last extra box) and ratios {1, 2, 1/2}, with {3, 1/3} on all but the first and last two layers."""
        step = (s_max - s_min) / max(num_layers - 2, 1)
        scales = (first_scale, *(s_min + step * k for k in range(num_layers)))
        ratios = tuple((1.0, 2.0, 0.5, 3.0, 1.0 / 3.0) if 0 < k < num_layers - 2 else (1.0, 2.0, 0.5)
                       for k in range(num_layers))
        return cls(tuple(round(v, 6) for v in scales), ratios)


class DefaultBoxes:
    """Default boxes for given feature-map sizes; ``.cxcywh`` is an ``[N, 4]`` tensor."""

    def __init__(self, *, spec: AnchorSpec, image_size: tuple[int, int],
                 feature_map_sizes: Sequence[tuple[int, int]], steps: Sequence[float] | None = None,
                 clip: bool = True):
        if len(feature_map_sizes) != spec.num_layers:
            raise ValueError(f"anchors: the model has {len(feature_map_sizes)} feature maps but the "
                             f"anchor spec has {spec.num_layers} layers; fit or write one per map")
        self.spec = spec
        self.image_size = tuple(image_size)  # (height, width) in pixels
        self.feature_map_sizes = [tuple(s) for s in feature_map_sizes]
        if steps and len(steps) != spec.num_layers:
            raise ValueError(f"anchors: {len(steps)} steps for {spec.num_layers} feature maps; give one "
                             "per map or none (derived from the map sizes)")
        self.steps = list(steps) if steps else None
        self.cxcywh = self._generate(clip)

    def boxes_per_location(self) -> list[int]:
        return self.spec.boxes_per_location()

    def __len__(self) -> int:
        return self.cxcywh.shape[0]

    def _generate(self, clip: bool) -> torch.Tensor:
        image_h, image_w = self.image_size
        layers = []
        for k, (fh, fw) in enumerate(self.feature_map_sizes):
            step_y = self.steps[k] / image_h if self.steps else 1.0 / fh
            step_x = self.steps[k] / image_w if self.steps else 1.0 / fw
            cy = (torch.arange(fh, dtype=torch.float32) + 0.5) * step_y
            cx = (torch.arange(fw, dtype=torch.float32) + 0.5) * step_x
            grid_y, grid_x = torch.meshgrid(cy, cx, indexing="ij")
            centres = torch.stack([grid_x, grid_y], dim=-1).reshape(-1, 1, 2)
            # relative w is scaled by the image's aspect so a "square" box is square in pixels
            aspect = image_h / image_w
            wh = torch.tensor([(w * aspect, h) if aspect != 1 else (w, h)
                               for w, h in self.spec.shapes(k)], dtype=torch.float32)
            wh = wh.reshape(1, -1, 2).expand(centres.shape[0], -1, -1)
            layers.append(torch.cat([centres.expand(-1, wh.shape[1], -1), wh], dim=-1).reshape(-1, 4))
        boxes = torch.cat(layers)
        # As in ssd.pytorch: clip clamps cx, cy, w, h (not the corners) to [0, 1].
        return boxes.clamp(0.0, 1.0) if clip else boxes

    def xyxy(self) -> torch.Tensor:
        """Relative corners ``x0, y0, x1, y1``."""
        cxcy, wh = self.cxcywh[:, :2], self.cxcywh[:, 2:]
        return torch.cat([cxcy - wh / 2, cxcy + wh / 2], dim=1)
