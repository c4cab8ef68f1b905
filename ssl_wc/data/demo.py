"""A deterministic generator of a small SYNTHETIC dataset in the real WikiChurches formats.

``generate_demo(out_dir, n_annotated=32, n_pool=160, seed=0) -> DemoPaths`` writes::

    out_dir/README.txt            says SYNTHETIC DEMO DATA (``DEMO_LABEL``) and what is inside
    out_dir/building_parts.json   expert-style boxes on ``n_annotated`` images, 33 features
    out_dir/style_names.txt       ``Q-ID name`` lines
    out_dir/churches.json         churches of the annotated images and of a pool of
                                  ``n_pool`` further style-labelled images (imbalanced)
    out_dir/images/*.jpg          small non-square facades, parts drawn where boxed

Facade parts (windows, arches, portals, towers, ...) are drawn in distinct colours and
textures exactly at their boxes, so a model or an edge baseline has something to find;
like the real experts, only representative instances are boxed (a second window may be
drawn but not boxed). A few towers stand at the image edge so their boxes extend slightly
past ``[0, 1]`` and exercise clamping. One annotated image (``LEAK_TRAP``) belongs to a
church whose other photo is in the pool, to test that splits group by church.

The same arguments give byte-identical files on every run (seeded generators, fixed JPEG
settings, nothing time-dependent). No file is real WikiChurches data.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from ssl_wc.data.wikichurches import IMAGE_ID_RE, KNOWN_STYLE_NAMES, STUDY_STYLES

DEMO_LABEL = "SYNTHETIC DEMO DATA"
JPEG_QUALITY = 90

#: Feature ontology: name -> parent names (is-a relation, several parents allowed).
ONTOLOGY: dict[str, tuple[str, ...]] = {
    "Arcade": (), "Arch": (), "Archivolt": ("Arch",), "Blind": (),
    "Blind Arcade": ("Arcade", "Blind"), "Broken Pediment": ("Pediment",), "Buttress": (),
    "Column": (), "Dome": (), "Dwarf Gallery": ("Arcade",), "Frieze": (), "Gable": (),
    "Lombard Band": ("Blind Arcade", "Frieze"), "Oculus": ("Window",), "Pediment": ("Gable",),
    "Pilaster": (), "Pinnacle": (), "Pointed Arch": ("Arch",),
    "Pointed Arch Window": ("Pointed Arch", "Window"), "Portal": (),
    "Rose Window": ("Window",), "Round Arch": ("Arch",),
    "Round Arch Window": ("Round Arch", "Window"), "Segmental Arch": ("Arch",),
    "Segmental Arch Window": ("Segmental Arch", "Window"), "Spire": (), "Tower": (),
    "Tracery": (), "Tracery Rose Window": ("Rose Window", "Tracery"), "Tympanum": (),
    "Volute": (), "Window": (), "Zigzag Frieze": ("Frieze",),
}
FEATURES: tuple[str, ...] = tuple(sorted(ONTOLOGY))
LABEL: dict[str, int] = {name: i for i, name in enumerate(FEATURES)}

_ROM, _GOT, _REN, _BAR = STUDY_STYLES
#: Non-study styles in the pool, drawn like the study style they revive.
_OTHER_STYLES = {"Q186363": _GOT, "Q744373": _ROM, "Q54111": _REN, "Q695863": _GOT,
                 "Q245188": "modern"}
#: Shares of first styles: annotated images follow the real 51/49/22/17, the pool is
#: imbalanced like the real one (Renaissance about 4 %).
_ANNOTATED_SHARES = {_ROM: 51, _GOT: 49, _REN: 22, _BAR: 17}
_POOL_SHARES = {_ROM: 30, _GOT: 43, _REN: 4, _BAR: 15, "other": 8}
_SECOND_STYLE = {_ROM: _GOT, _GOT: _REN, _REN: _BAR, _BAR: _REN}
_COUNTRIES = [("Q183", "Germany", 51.0, 10.0), ("Q142", "France", 47.0, 2.5),
              ("Q38", "Italy", 43.0, 12.5), ("Q29", "Spain", 40.5, -3.7),
              ("Q40", "Austria", 47.5, 14.5), ("Q36", "Poland", 52.0, 19.0),
              ("Q31", "Belgium", 50.6, 4.6), ("Q55", "Netherlands", 52.2, 5.5)]
_ANNOTATED_QID0 = 99_100_000
_POOL_QID0 = 99_200_000

RGB = tuple[int, int, int]
Box = tuple[float, float, float, float]  # x0, y0, x1, y1 in pixels


@dataclass(frozen=True)
class DemoPaths:
    """Where ``generate_demo`` wrote each file, and which images are annotated or pool."""

    root: Path
    readme: Path
    building_parts: Path
    style_names: Path
    churches: Path
    images: Path
    annotated_ids: tuple[str, ...]
    pool_ids: tuple[str, ...]
    leak_trap: str


def is_demo_dir(path: str | Path) -> bool:
    """True when ``path`` holds a README.txt carrying ``DEMO_LABEL`` (a generated folder)."""
    readme = Path(path) / "README.txt"
    try:
        return DEMO_LABEL in readme.read_text(encoding="utf-8").splitlines()[0]
    except (OSError, IndexError, UnicodeDecodeError):
        return False


# --------------------------------------------------------------------------- drawing


def _shade(c: RGB, d: int) -> RGB:
    r, g, b = (min(255, max(0, v + d)) for v in c)
    return (r, g, b)


def _arch_top(box: Box, kind: str, n: int = 12) -> list[tuple[float, float]]:
    """Outline of an arched opening (round, pointed or segmental), clockwise from bottom left."""
    x0, y0, x1, y1 = box
    w = x1 - x0
    xc = (x0 + x1) / 2
    pts: list[tuple[float, float]] = [(x0, y1)]
    if kind == "pointed":
        ys = y0 + 0.866 * w
        pts += [(x1 + w * math.cos(a), ys - w * math.sin(a))
                for a in np.linspace(math.pi, 2 * math.pi / 3, n)]
        pts += [(x0 + w * math.cos(a), ys - w * math.sin(a))
                for a in np.linspace(math.pi / 3, 0, n)]
    elif kind == "segmental":
        rise = w * 0.2
        pts += [(xc - w / 2 * math.cos(t), y0 + rise - rise * math.sin(t))
                for t in np.linspace(0, math.pi, n)]
    else:
        r = w / 2
        pts += [(xc - r * math.cos(t), y0 + r - r * math.sin(t))
                for t in np.linspace(0, math.pi, n)]
    pts.append((x1, y1))
    return pts


@dataclass
class _Look:
    """Colours of one facade."""

    wall: RGB
    roof: RGB
    glass: RGB = (34, 44, 76)
    frame: RGB = (236, 230, 214)
    door: RGB = (92, 52, 30)
    spire: RGB = (70, 82, 92)


def _draw_window(d: ImageDraw.ImageDraw, b: Box, look: _Look, kind: str) -> None:
    x0, y0, x1, y1 = b
    d.polygon(_arch_top(b, kind), fill=look.frame)
    m = max(1.0, (x1 - x0) * 0.14)
    inner = (x0 + m, y0 + m, x1 - m, y1 - m)
    d.polygon(_arch_top(inner, kind), fill=look.glass)
    if kind == "pointed":  # tracery: mullion and a small circle
        xc = (x0 + x1) / 2
        d.line([(xc, inner[1] + (x1 - x0) * 0.5), (xc, y1 - m)], fill=look.frame, width=1)
        r = (x1 - x0) * 0.18
        cy = inner[1] + (x1 - x0) * 0.42
        d.ellipse((xc - r, cy - r, xc + r, cy + r), outline=look.frame, width=1)


def _draw_rose(d: ImageDraw.ImageDraw, b: Box, look: _Look, tracery: bool) -> None:
    x0, y0, x1, y1 = b
    d.ellipse(b, fill=look.frame)
    m = (x1 - x0) * 0.1
    d.ellipse((x0 + m, y0 + m, x1 - m, y1 - m), fill=(58, 36, 92) if tracery else look.glass)
    if tracery:
        xc, yc, r = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) / 2 - m
        for k in range(8):
            a = k * math.pi / 4
            d.line([(xc, yc), (xc + r * math.cos(a), yc + r * math.sin(a))], fill=look.frame)
        d.ellipse((xc - r / 3, yc - r / 3, xc + r / 3, yc + r / 3), outline=look.frame)


def _draw_archivolt(d: ImageDraw.ImageDraw, b: Box, look: _Look, kind: str) -> None:
    x0, y0, x1, y1 = b
    n = 3
    step = (x1 - x0) * 0.07
    for k in range(n):
        inner = (x0 + k * step, y0 + k * step, x1 - k * step, y1)
        d.polygon(_arch_top(inner, kind), fill=_shade(look.wall, -45 if k % 2 == 0 else 25))


def _draw_tympanum(d: ImageDraw.ImageDraw, b: Box, look: _Look, kind: str) -> None:
    x0, y0, x1, y1 = b
    d.polygon(_arch_top(b, kind), fill=(206, 178, 118))
    r = (x1 - x0) * 0.14
    xc, yc = (x0 + x1) / 2, y0 + (y1 - y0) * 0.6
    d.ellipse((xc - r, yc - r, xc + r, yc + r), fill=(150, 118, 70))
    d.line([(x0, y1), (x1, y1)], fill=_shade(look.wall, -60), width=2)


def _draw_band_of_arches(d: ImageDraw.ImageDraw, b: Box, colour: RGB, n: int,
                         fill: RGB | None = None) -> None:
    x0, y0, x1, y1 = b
    w = (x1 - x0) / n
    for k in range(n):
        cell = (x0 + k * w + 1, y0, x0 + (k + 1) * w - 1, y1)
        d.polygon(_arch_top(cell, "round", 8), fill=fill, outline=colour)


def _draw_dwarf_gallery(d: ImageDraw.ImageDraw, b: Box, look: _Look) -> None:
    x0, y0, x1, y1 = b
    d.rectangle(b, fill=(30, 28, 32))
    n = max(3, int((x1 - x0) / 7))
    for k in range(n + 1):
        x = x0 + k * (x1 - x0) / n
        d.rectangle((x - 1, y0, x + 1, y1), fill=look.frame)
    d.rectangle((x0, y0, x1, y0 + 1), fill=look.frame)


def _draw_zigzag(d: ImageDraw.ImageDraw, b: Box) -> None:
    x0, y0, x1, y1 = b
    d.rectangle(b, fill=(222, 206, 170))
    n = max(4, int((x1 - x0) / 6))
    pts = [(x0 + k * (x1 - x0) / n, y1 - 1 if k % 2 == 0 else y0 + 1) for k in range(n + 1)]
    d.line(pts, fill=(128, 38, 34), width=2)


def _draw_frieze(d: ImageDraw.ImageDraw, b: Box) -> None:
    x0, y0, x1, y1 = b
    d.rectangle(b, fill=(214, 196, 156))
    h = y1 - y0
    x = x0 + 1
    while x + h * 0.5 < x1:
        d.rectangle((x, y0 + h * 0.5, x + h * 0.35, y1 - 1), fill=(150, 128, 92))
        x += h * 0.7


def _draw_pilaster(d: ImageDraw.ImageDraw, b: Box, look: _Look) -> None:
    x0, y0, x1, y1 = b
    d.rectangle(b, fill=_shade(look.wall, 30))
    d.line([(x1 - 1, y0), (x1 - 1, y1)], fill=_shade(look.wall, -40))
    cap = max(2.0, (x1 - x0) * 0.5)
    d.rectangle((x0 - 1, y0, x1 + 1, y0 + cap), fill=_shade(look.wall, 45))
    d.rectangle((x0 - 1, y1 - cap, x1 + 1, y1), fill=_shade(look.wall, 45))


def _draw_column(d: ImageDraw.ImageDraw, b: Box, look: _Look) -> None:
    x0, y0, x1, y1 = b
    w = x1 - x0
    for k in range(max(1, round(w))):
        t = k / max(1.0, w - 1)
        v = int(245 - 110 * abs(t - 0.35))
        d.line([(x0 + k, y0), (x0 + k, y1)], fill=(v, v - 6, v - 16))
    cap = max(2.0, w * 0.45)
    d.rectangle((x0 - 1, y0, x1 + 1, y0 + cap), fill=(238, 232, 214))
    d.rectangle((x0 - 1, y1 - cap, x1 + 1, y1), fill=(210, 204, 188))


def _draw_buttress(d: ImageDraw.ImageDraw, b: Box, look: _Look) -> None:
    x0, y0, x1, y1 = b
    d.rectangle(b, fill=_shade(look.wall, -38))
    d.rectangle((x0, y0, x0 + (x1 - x0) * 0.35, y1), fill=_shade(look.wall, -62))
    for k in range(1, 3):
        y = y0 + k * (y1 - y0) / 3
        d.line([(x0, y), (x1, y)], fill=_shade(look.wall, 30), width=2)


def _draw_pinnacle(d: ImageDraw.ImageDraw, b: Box) -> None:
    x0, y0, x1, y1 = b
    d.polygon([(x0, y1), ((x0 + x1) / 2, y0), (x1, y1)], fill=(112, 106, 100),
              outline=(60, 56, 52))


def _draw_rect(d: ImageDraw.ImageDraw, b: Box, colour: RGB) -> None:
    d.rectangle(b, fill=colour)


def _draw_gable(d: ImageDraw.ImageDraw, b: Box, look: _Look) -> None:
    x0, y0, x1, y1 = b
    xc = (x0 + x1) / 2
    d.line([(x0, y1), (xc, y0), (x1, y1)], fill=(232, 226, 206), width=3)
    for t in (0.25, 0.5, 0.75):
        for xa, xb in ((x0, xc), (x1, xc)):
            x, y = xa + (xb - xa) * t, y1 + (y0 - y1) * t
            d.ellipse((x - 1.5, y - 3, x + 1.5, y), fill=(120, 112, 100))


def _draw_pediment(d: ImageDraw.ImageDraw, b: Box, look: _Look, broken: bool) -> None:
    x0, y0, x1, y1 = b
    xc = (x0 + x1) / 2
    t = max(2.0, (y1 - y0) * 0.22)
    d.polygon([(x0, y1), (xc, y0), (x1, y1)], fill=_shade(look.wall, 40))
    d.polygon([(x0 + 2 * t, y1 - t * 0.7), (xc, y0 + t * 1.4), (x1 - 2 * t, y1 - t * 0.7)],
              fill=_shade(look.wall, -25))
    if broken:
        gap = (x1 - x0) * 0.16
        d.rectangle((xc - gap, y0 - 1, xc + gap, y1 - t), fill=look.wall)


def _draw_volute(d: ImageDraw.ImageDraw, b: Box, look: _Look, right: bool) -> None:
    x0, y0, x1, y1 = b
    inner_x, outer_x = (x0, x1) if right else (x1, x0)
    d.polygon([(x0, y1), (x1, y1), (inner_x, y0)], fill=_shade(look.wall, 30))
    cx, cy = outer_x + (inner_x - outer_x) * 0.3, y1 - (y1 - y0) * 0.3
    r0 = min(x1 - x0, y1 - y0) * 0.28
    pts = [(cx + r0 * (1 - t / 14) * math.cos(t), cy + r0 * (1 - t / 14) * math.sin(t))
           for t in np.linspace(0, 12, 40)]
    d.line(pts, fill=(96, 70, 40), width=2)


def _draw_dome(d: ImageDraw.ImageDraw, b: Box) -> None:
    x0, y0, x1, y1 = b
    w = x1 - x0
    lantern = (x0 + w * 0.42, y0, x1 - w * 0.42, y0 + (y1 - y0) * 0.25)
    d.rectangle(lantern, fill=(92, 140, 124))
    d.chord((x0, y0 + (y1 - y0) * 0.22, x1, y1 + (y1 - y0) * 0.78), 180, 360,
            fill=(86, 142, 124))
    for k in range(1, 4):
        x = x0 + k * w / 4
        d.line([(x, y0 + (y1 - y0) * 0.3), (x, y1)], fill=(60, 100, 88))


def _draw_tower(d: ImageDraw.ImageDraw, b: Box, look: _Look) -> None:
    x0, y0, x1, y1 = b
    d.rectangle(b, fill=_shade(look.wall, -22))
    w = x1 - x0
    for k in range(2, int((y1 - y0) / max(4.0, w * 0.5))):  # courses
        y = y0 + k * max(4.0, w * 0.5)
        d.line([(x0, y), (x1, y)], fill=_shade(look.wall, -36))
    sw = max(2.0, w * 0.16)
    for yy in (y0 + (y1 - y0) * 0.12, y0 + (y1 - y0) * 0.4):
        xc = (x0 + x1) / 2
        d.rectangle((xc - sw / 2, yy, xc + sw / 2, yy + sw * 3), fill=(24, 24, 30))


def _draw_spire(d: ImageDraw.ImageDraw, b: Box, look: _Look) -> None:
    x0, y0, x1, y1 = b
    d.polygon([(x0, y1), ((x0 + x1) / 2, y0), (x1, y1)], fill=look.spire)
    d.line([((x0 + x1) / 2, y0), ((x0 + x1) / 2, y1)], fill=_shade(look.spire, 30))


# --------------------------------------------------------------------------- layout


@dataclass
class _Element:
    """A drawn part; ``name`` is its feature ("" for unlabelled parts such as doors)."""

    name: str
    box: Box
    paint: Callable[..., None]  # paint(draw, box, *args)
    args: tuple[Any, ...] = ()
    draw_box: Box | None = None  # where to paint, when it differs from the boxed area
    priority: float = 1.0
    repeat: str = ""  # elements sharing this key are instances of one repeated part
    group: str = ""  # elements sharing this key form one composite group
    forced: bool = False

    def draw(self, d: ImageDraw.ImageDraw) -> None:
        self.paint(d, self.draw_box or self.box, *self.args)


@dataclass
class _Facade:
    style: str  # a study style id or "modern"
    w: int
    h: int
    rng: np.random.Generator
    look: _Look
    elements: list[_Element] = field(default_factory=list)
    gable_h: float = 0.0

    def add(self, name: str, box: Box, paint: Callable[..., None], *args: Any,
            **kw: Any) -> None:
        self.elements.append(_Element(name, box, paint, args, **kw))

    def u(self, lo: float, hi: float) -> float:
        return float(self.rng.uniform(lo, hi))


_LOOKS: dict[str, tuple[RGB, RGB]] = {
    _ROM: ((198, 168, 126), (122, 62, 46)), _GOT: ((166, 162, 152), (84, 88, 96)),
    _REN: ((228, 214, 178), (150, 80, 60)), _BAR: ((236, 202, 150), (140, 70, 56)),
    "modern": ((204, 204, 200), (120, 120, 124)),
}


def _layout(f: _Facade, edge_tower: bool) -> tuple[float, float, float, float]:
    """Place the parts of one facade (no two boxed parts overlap); returns the wall."""
    w, h, st = f.w, f.h, f.style
    ground = h * f.u(0.88, 0.95)
    tower_side = ""
    if edge_tower or (st in (_ROM, _GOT) and f.u(0, 1) < 0.55) or f.u(0, 1) < 0.15:
        tower_side = "left" if f.u(0, 1) < 0.5 else "right"
    tw = w * f.u(0.17, 0.24)
    fx0, fx1 = w * f.u(0.07, 0.13), w * f.u(0.87, 0.93)
    if tower_side:
        out = w * f.u(0.012, 0.04) if edge_tower else -w * f.u(0.02, 0.05)
        if tower_side == "left":
            tb: Box = (-out, h * f.u(0.2, 0.3), -out + tw, ground)
            fx0 = tb[2]
        else:
            tb = (w + out - tw, h * f.u(0.2, 0.3), w + out, ground)
            fx1 = tb[0]
        spire_top = -h * f.u(0.01, 0.03) if edge_tower else h * f.u(0.02, 0.08)
        sb: Box = (tb[0] + tw * 0.05, spire_top, tb[2] - tw * 0.05, tb[1])
        f.add("Tower", tb, _draw_tower, f.look, priority=1.2,
              forced=edge_tower)
        if st != "modern":
            f.add("Spire", sb, _draw_spire, f.look, priority=1.1,
                  forced=edge_tower)
    fw = fx1 - fx0
    top = h * f.u(0.36, 0.48)
    v = ground - top  # height of the wall below the eaves
    xc = (fx0 + fx1) / 2
    f.gable_h = fw * 0.3 if st in (_ROM, _GOT) else 0.0
    arch = {_ROM: "round", _GOT: "pointed", _REN: "round", _BAR: "segmental"}.get(st, "")
    win_name = {"round": "Round Arch Window", "pointed": "Pointed Arch Window",
                "segmental": "Segmental Arch Window"}.get(arch, "")

    # portal: door with archivolt and tympanum (one composite group)
    ph = v * f.u(0.45, 0.55)
    pw = min(fw * f.u(0.22, 0.3), ph * 0.9)
    ptop = ground - ph
    door: Box = (xc - pw / 3, ground - ph * 0.7, xc + pw / 3, ground)
    if arch:
        kind = arch
        inner_w = pw * 0.58
        spring = ptop + pw * 0.21 + inner_w * (0.866 if kind == "pointed" else 0.5)
        ab: Box = (xc - pw / 2, ptop, xc + pw / 2, spring)
        tyb: Box = (xc - inner_w / 2, ptop + pw * 0.21, xc + inner_w / 2, spring)
        door = (tyb[0], spring, tyb[2], ground)
        jambs: Box = (ab[0], ab[1], ab[2], ground)
        f.add("Archivolt", ab, _draw_archivolt, f.look, kind, draw_box=jambs,
              priority=1.3, group="portal")
        f.add("Tympanum", tyb, _draw_tympanum, f.look, kind,
              priority=1.3, group="portal")
        if st == _GOT:  # a crocketed gable (wimperg) over the portal
            gb: Box = (ab[0] - pw * 0.04, ptop - v * 0.07, ab[2] + pw * 0.04, ptop)
            f.add("Gable", gb, _draw_gable, f.look, priority=1.3,
                  group="portal")
    f.add("", door, _draw_rect, f.look.door, priority=0)

    # lower windows, centred between the wall edge and the portal
    wh = ph * f.u(0.6, 0.75)
    ww = min(fw * f.u(0.09, 0.12), wh / 2.0)
    wy = ptop + ph * 0.05
    for k, cx in enumerate(((fx0 + xc - pw / 2) / 2, (fx1 + xc + pw / 2) / 2)):
        wb: Box = (cx - ww / 2, wy, cx + ww / 2, wy + wh)
        if arch:
            f.add(win_name, wb, _draw_window, f.look, arch,
                  priority=1.4 - 0.3 * k, repeat="win")
        else:
            f.add("", wb, _draw_rect, f.look.glass, priority=0)

    upper = (top + v * 0.1, ptop - v * 0.08)  # free band between eaves and portal
    uh = upper[1] - upper[0]
    if st == _GOT:
        r = min(fw * f.u(0.13, 0.17), uh * 0.5)
        rb: Box = (xc - r, upper[0], xc + r, upper[0] + 2 * r)
        f.add("Tracery Rose Window", rb, _draw_rose, f.look, True,
              priority=1.5)
        for x in (fx0, fx1 - fw * 0.06):
            bb: Box = (x, top + v * 0.06, x + fw * 0.06, ground)
            f.add("Buttress", bb, _draw_buttress, f.look, priority=1.1,
                  repeat="buttress")
            pb: Box = (x + fw * 0.005, top - fw * 0.12, x + fw * 0.055, top + v * 0.05)
            f.add("Pinnacle", pb, _draw_pinnacle, priority=1.0,
                  repeat="pinnacle")
    elif st == _ROM:
        lb: Box = (fx0 + fw * 0.04, top + 1, fx1 - fw * 0.04, top + v * 0.08)
        f.add("Lombard Band", lb, _draw_band_of_arches, _shade(f.look.wall, -70),
              max(5, int(fw / 14)), None, priority=1.4)
        band: Box = (xc - fw * 0.3, upper[0] + uh * 0.1, xc + fw * 0.3, upper[0] + uh * 0.55)
        if f.u(0, 1) < 0.5:
            f.add("Dwarf Gallery", band, _draw_dwarf_gallery, f.look,
                  priority=1.2)
        else:
            f.add("Blind Arcade", band, _draw_band_of_arches, _shade(f.look.wall, -60), 5,
                  _shade(f.look.wall, -18), priority=1.2)
        if f.u(0, 1) < 0.5:
            zb: Box = (fx0 + fw * 0.02, upper[0] + uh * 0.7, fx1 - fw * 0.02, upper[1])
            f.add("Zigzag Frieze", zb, _draw_zigzag, priority=0.9)
        orr = f.gable_h * 0.17
        ob: Box = (xc - orr, top - f.gable_h * 0.55, xc + orr, top - f.gable_h * 0.55 + 2 * orr)
        f.add("Oculus", ob, _draw_rose, f.look, False, priority=1.0)
    elif st in (_REN, _BAR):
        fb: Box = (fx0, top, fx1, top + v * 0.07)
        f.add("Frieze", fb, _draw_frieze, priority=0.8)
        pwid = fw * 0.045
        for k, x in enumerate((fx0 + fw * 0.03, xc - pw / 2 - pwid * 1.6,
                               xc + pw / 2 + pwid * 0.6, fx1 - fw * 0.03 - pwid)):
            pb = (x, top + v * 0.1, x + pwid, ground)
            if st == _BAR and k in (1, 2):
                f.add("Column", pb, _draw_column, f.look, priority=1.1,
                      repeat="column")
            else:
                f.add("Pilaster", pb, _draw_pilaster, f.look,
                      priority=1.2, repeat="pilaster")
        orr = min(fw * 0.07, uh * 0.45)
        ob = (xc - orr, upper[0], xc + orr, upper[0] + 2 * orr)
        f.add("Oculus", ob, _draw_rose, f.look, False, priority=1.0)
        # crowning pediment, volutes beside it, a dome behind it
        pw2 = fw * f.u(0.45, 0.6)
        ped_h = min(pw2 * 0.3, top * 0.3)
        pdb: Box = (xc - pw2 / 2, top - ped_h, xc + pw2 / 2, top)
        broken = st == _BAR
        f.add("Broken Pediment" if broken else "Pediment", pdb,
              _draw_pediment, f.look, broken, priority=1.3)
        if broken:
            vh = min(fw * 0.14, top * 0.5)
            for side in (-1, 1):
                x_in = xc + side * (pw2 / 2 + fw * 0.01)
                vb: Box = (min(x_in, x_in + side * fw * 0.14), top - vh,
                           max(x_in, x_in + side * fw * 0.14), top)
                f.add("Volute", vb, _draw_volute, f.look, side > 0,
                      priority=1.4, repeat="volute")
        dome_bottom = top - ped_h - 1
        dw = min(fw * f.u(0.3, 0.45), (dome_bottom - h * 0.04) / 0.62)
        if dw > fw * 0.15 and f.u(0, 1) < 0.7:
            db: Box = (xc - dw / 2, dome_bottom - dw * 0.62, xc + dw / 2, dome_bottom)
            f.add("Dome", db, _draw_dome, priority=1.0)
    return fx0, top, fx1, ground


def _render(f: _Facade, wall: tuple[float, float, float, float]) -> Image.Image:
    w, h = f.w, f.h
    rows = np.linspace(0, 1, h)[:, None, None]
    sky = np.array([150, 190, 230]) * (1 - rows) + np.array([214, 228, 240]) * rows
    arr = np.broadcast_to(sky, (h, w, 3)).copy()
    fx0, top, fx1, ground = wall
    arr[int(ground):, :, :] = (112, 116, 96)
    img = Image.fromarray(arr.astype(np.uint8), "RGB")
    d = ImageDraw.Draw(img)
    for e in f.elements:  # domes and towers behind the wall
        if e.name in ("Dome",):
            e.draw(d)
    gable_h = f.gable_h
    d.polygon([(fx0, ground), (fx0, top), ((fx0 + fx1) / 2, top - gable_h), (fx1, top),
               (fx1, ground)], fill=f.look.wall)
    if gable_h:
        d.line([(fx0 - 2, top + 1), ((fx0 + fx1) / 2, top - gable_h - 2), (fx1 + 2, top + 1)],
               fill=f.look.roof, width=3)
    course = max(5, h // 30)  # ashlar courses: a plain but not flat wall
    for y in range(int(top) + course, int(ground), course):
        d.line([(fx0, y), (fx1, y)], fill=_shade(f.look.wall, -12))
    for e in f.elements:
        if e.name != "Dome":
            e.draw(d)
    noise = f.rng.normal(0.0, 3.0, (h, w, 1))
    out = np.clip(np.asarray(img, dtype=np.float64) + noise, 0, 255).astype(np.uint8)
    return Image.fromarray(out, "RGB")


def _choose_boxes(f: _Facade) -> list[list[_Element]]:
    """Pick 1..8 representative boxed parts, as groups (the portal is one composite group)."""
    target = int(np.clip(round(f.rng.normal(4.5, 1.8)), 1, 8))
    cands = [e for e in f.elements if e.name]
    order = sorted(range(len(cands)),
                   key=lambda i: (not cands[i].forced, -(cands[i].priority + f.u(0, 0.8))))
    groups: list[list[_Element]] = []
    seen_repeat: dict[str, int] = {}
    seen_group: set[str] = set()
    n = 0
    for i in order:
        e = cands[i]
        if n >= target and not e.forced:
            break
        if e.group:
            if e.group in seen_group:
                continue
            members = [c for c in cands if c.group == e.group]
            if n + len(members) > max(target, 2) and not e.forced:
                continue
            seen_group.add(e.group)
            groups.append(members)
            n += len(members)
            continue
        if e.repeat:
            if seen_repeat.get(e.repeat, 0) >= (2 if f.u(0, 1) < 0.25 else 1):
                continue
            seen_repeat[e.repeat] = seen_repeat.get(e.repeat, 0) + 1
        groups.append([e])
        n += 1
    return groups


def _frac(box: Box, w: int, h: int) -> dict[str, float]:
    x0, y0, x1, y1 = box
    return {"left": round(x0 / w, 4), "top": round(y0 / h, 4),
            "width": max(round((x1 - x0) / w, 4), 0.001),
            "height": max(round((y1 - y0) / h, 4), 0.001)}


def _make_image(style: str, rng: np.random.Generator, edge_tower: bool
                ) -> tuple[bytes, list[list[_Element]], int, int]:
    w = int(rng.integers(160, 321))
    aspect = float(rng.choice([0.72, 0.8, 1.25, 1.33, 1.45]))
    h = round(w * aspect)
    wall, roof = _LOOKS[style]
    look = _Look(_shade(wall, int(rng.integers(-12, 13))), roof,
                 spire=(84, 140, 120) if style == _BAR else (70, 82, 92))
    f = _Facade(style, w, h, rng, look)
    rect = _layout(f, edge_tower)
    img = _render(f, rect)
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=JPEG_QUALITY, optimize=False, progressive=False,
             comment=f"{DEMO_LABEL} (ssl_wc.data.demo)".encode())
    return buf.getvalue(), _choose_boxes(f), w, h


# --------------------------------------------------------------------------- dataset


def _allocate(n: int, shares: dict[str, int]) -> list[str]:
    """``n`` labels in proportion to ``shares`` (largest remainder), in share order."""
    total = sum(shares.values())
    exact = {k: n * v / total for k, v in shares.items()}
    counts = {k: int(v) for k, v in exact.items()}
    rest = sorted(shares, key=lambda k: (-(exact[k] - counts[k]), list(shares).index(k)))
    for k in rest[: n - sum(counts.values())]:
        counts[k] += 1
    return [k for k in shares for _ in range(counts[k])]


def _church(qid: str, number: int, styles: list[str], rng: np.random.Generator
            ) -> dict[str, Any]:
    cid, cname, lat, lon = _COUNTRIES[int(rng.integers(len(_COUNTRIES)))]
    pick = float(rng.uniform(0, 1))
    year: int | list[int] | None = None
    if pick < 0.2:
        year = int(rng.integers(1050, 1800))
    elif pick < 0.3:
        y0 = int(rng.integers(1050, 1700))
        year = [y0, y0 + int(rng.integers(20, 250))]
    return {"id": qid, "name": f"Synthetic church {number}", "built_year": year,
            "styles": styles, "country": {"id": cid, "name": cname},
            "location": {"lat": round(lat + float(rng.uniform(-1.5, 1.5)), 4),
                         "lon": round(lon + float(rng.uniform(-1.5, 1.5)), 4)}}


def _draw_style(style_id: str) -> str:
    return style_id if style_id in STUDY_STYLES else _OTHER_STYLES.get(style_id, "modern")


def _prepare(out_dir: Path) -> Path:
    if out_dir.exists() and any(out_dir.iterdir()) and not is_demo_dir(out_dir):
        raise FileExistsError(f"{out_dir} is not empty and is not a generated demo folder; "
                              "choose an empty or new folder")
    images = out_dir / "images"
    images.mkdir(parents=True, exist_ok=True)
    for old in images.iterdir():  # a rerun replaces the images of an earlier demo
        if old.is_file() and IMAGE_ID_RE.match(old.name):
            old.unlink()
    return images


def generate_demo(out_dir: str | Path, n_annotated: int = 32, n_pool: int = 160,
                  seed: int = 0) -> DemoPaths:
    """Write the synthetic dataset to ``out_dir`` (created; an earlier demo is replaced)."""
    if n_annotated < 4 or n_pool < 2 or seed < 0:
        raise ValueError("need n_annotated >= 4 (one per study style), n_pool >= 2, seed >= 0")
    out = Path(out_dir)
    images_dir = _prepare(out)
    rng = np.random.default_rng([seed, 0])
    churches: dict[str, dict[str, Any]] = {}
    annotations: dict[str, Any] = {}

    ann_styles = _allocate(n_annotated, _ANNOTATED_SHARES)
    order = rng.permutation(n_annotated)
    two_style = {int(i) for i in order[:3]}
    leak_index = int(order[3])
    edge = {int(i) for i in order[4:4 + max(1, n_annotated // 8)]}
    ann_ids: list[str] = []
    leak_qid, leak_style = "", _ROM
    for pos in range(n_annotated):
        i = int(order[pos])
        primary = ann_styles[i]
        styles = [primary]
        if i in two_style:
            styles.append(_SECOND_STYLE[primary])
        qid = f"Q{_ANNOTATED_QID0 + i}"
        wd = 1 if i == leak_index else 0
        image_id = f"{qid}_wd{wd}.jpg"
        img_rng = np.random.default_rng([seed, 1, i])
        data, groups, _w, _h = _make_image(primary, img_rng, i in edge)
        (images_dir / image_id).write_bytes(data)
        annotations[image_id] = {"styles": styles, "bbox_groups": [
            {"group_label": LABEL["Portal"] if len(g) > 1 else LABEL[g[0].name],
             "elements": [{**_frac(e.box, _w, _h), "label": LABEL[e.name]} for e in g]}
            for g in groups]}
        churches[qid] = _church(qid, pos + 1, styles, img_rng)
        ann_ids.append(image_id)
        if i == leak_index:  # the same church's other photo sits in the pool
            leak_qid, leak_style = qid, primary

    pool_ids: list[str] = [f"{leak_qid}_wd0.jpg"]
    pool_styles = _allocate(n_pool - 1, _POOL_SHARES)
    pool_order = rng.permutation(len(pool_styles))
    first_draws = [(leak_style, leak_qid, 0)]
    number = n_annotated
    k = 0
    while k < len(pool_order):
        first = pool_styles[int(pool_order[k])]
        first_id = (list(_OTHER_STYLES)[int(rng.integers(len(_OTHER_STYLES)))]
                    if first == "other" else first)
        number += 1
        qid = f"Q{_POOL_QID0 + number}"
        styles = [first_id]
        if float(rng.uniform()) < 0.15:
            extra = list(STUDY_STYLES)[int(rng.integers(4))]
            if extra != first_id:
                styles.append(extra)
        n_photos = 2 if (float(rng.uniform()) < 0.12 and k + 1 < len(pool_order)) else 1
        for wd in range(n_photos):
            first_draws.append((first_id, qid, wd))
            pool_ids.append(f"{qid}_wd{wd}.jpg")
        k += n_photos
        churches[qid] = _church(qid, number, styles, np.random.default_rng([seed, 3, number]))
    for j, (style_id, qid, wd) in enumerate(first_draws):
        img_rng = np.random.default_rng([seed, 2, j])
        data, _g, _w, _h = _make_image(_draw_style(style_id), img_rng, False)
        (images_dir / f"{qid}_wd{wd}.jpg").write_bytes(data)

    meta = [{"name": n, "parents": [LABEL[p] for p in ONTOLOGY[n]]} for n in FEATURES]
    paths = DemoPaths(out, out / "README.txt", out / "building_parts.json",
                      out / "style_names.txt", out / "churches.json", images_dir,
                      tuple(ann_ids), tuple(pool_ids), f"{leak_qid}_wd1.jpg")
    _write_text(paths.building_parts, json.dumps({"meta": meta, "annotations": annotations},
                                                 indent=1, ensure_ascii=False))
    _write_text(paths.churches, json.dumps(dict(sorted(churches.items())), indent=1,
                                           ensure_ascii=False))
    _write_text(paths.style_names, "\n".join(f"{q} {n}" for q, n in KNOWN_STYLE_NAMES.items()))
    _write_text(paths.readme, _readme(paths, seed))
    return paths


def _write_text(path: Path, text: str) -> None:
    path.write_bytes((text.rstrip("\n") + "\n").encode("utf-8"))


def _readme(p: DemoPaths, seed: int) -> str:
    n_img = len(p.annotated_ids) + len(p.pool_ids)
    return f"""{DEMO_LABEL}: generated by ssl_wc.data.demo (seed {seed}); not WikiChurches data.

Synthetic stand-in for the WikiChurches files (Barz & Denzler 2021), in the same formats:

  building_parts.json  {len(p.annotated_ids)} annotated images, {len(FEATURES)} feature types
  churches.json        churches of the annotated images and of {len(p.pool_ids)} pool images
  style_names.txt      Wikidata style ids and names
  images/              {n_img} JPEG facades, parts drawn where boxed

Churches are named "Synthetic church N" and have made-up Q-ids; countries and style ids are
real Wikidata ids. Only representative instances of repeated parts are boxed. Image
{p.leak_trap} is annotated while {p.leak_trap.replace("_wd1", "_wd0")} of the same church is
in the pool: splits must keep every image of an annotated church out of training.
"""
