"""Rendering a session: the ``ansi`` text of one row and its ``rgb_array`` image.

:func:`row_text` is the one description of what a row shows (the counters, the last shown bundle with titles,
categories and prices, the shopper's response, or the partial bundle in compose mode); :func:`text_frame` draws
any text as an (H, W, 3) uint8 image of a size fixed per environment (:func:`frame_shape`), so that video
recorders (gymnasium's ``RecordVideo``, SB3's ``VecVideoRecorder``) and SB3's ``make_vec_env``, which asks for
``render_mode="rgb_array"``, get frames of one shape for a whole run. The text is drawn with Pillow's built-in
bitmap font (monospaced 6 x 11 pixels, the same pixels on every machine; Pillow comes with matplotlib), scaled
up twice; lines longer than the frame are cut, characters outside Latin-1 are drawn as ``?``.
"""

from __future__ import annotations

import numpy as np

__all__ = ["RENDER_MODES", "RENDER_FPS", "row_text", "frame_shape", "text_frame"]

RENDER_MODES = ("ansi", "rgb_array")
"""The render modes of the bundle envs (besides None)."""
RENDER_FPS = 4
"""Frames per second of recorded videos (``metadata["render_fps"]``): one shown bundle every quarter second."""

COLUMNS = 100
"""Characters per line of a frame (longer lines are cut)."""
_CELL = (6, 11)  # the bitmap font's character cell (width, height) in pixels
_SCALE = 2  # frames are drawn at the font's size, then scaled up by this factor (nearest neighbour)
_MARGIN = 4  # pixels around the text, before scaling
_BG, _FG = (250, 250, 247), (20, 20, 20)


def row_text(core, row: int, last: dict | None) -> str:
    """The ``ansi`` rendering of row ``row`` of a :class:`~bundlerl.env.session.SessionBatch`.

    :param last: the row's last step (``responded``, ``shown`` (K_max,) item ids, ``click``, ``n_bought``,
        ``revenue``), or None at a session start.
    :returns: at most ``K_max + 3`` lines, each ending in a newline.
    """
    config, cat = core.config, core.world.observable_catalog
    log, compose = core.log, core.compose
    lines = [f"[{config.name}] step {int(log.t[row])}/{config.horizon}  clicks {int(log.clicks[row])}"
             f"  items bought {int(log.items_bought[row])}  spent {log.spent[row]:.2f}"]
    if last is not None and last["responded"]:
        items = [int(i) for i in last["shown"] if i >= 0]
        if items:
            lines.append(f"shown bundle ({len(items)} items):")
            for i in items:
                lines.append(f"  - {cat.titles[i]}  ({cat.category_names[cat.category[i]]})  {cat.price[i]:.2f}")
        else:
            lines.append("shown: nothing (invalid action)")
        resp = "clicked" if last["click"] else "no click"
        if last["n_bought"]:
            resp += f", bought {last['n_bought']} item(s) for {last['revenue']:.2f}"
        lines.append(f"response: {resp}")
    elif compose.partial_len[row] > 0:
        lines.append("composing: " + ", ".join(str(cat.titles[i]) for i in compose.partial[row] if i >= 0))
    else:
        lines.append("session start")
    return "\n".join(lines) + "\n"


def frame_shape(n_lines: int, columns: int = COLUMNS) -> tuple[int, int, int]:
    """(H, W, 3): the shape of :func:`text_frame` images holding ``n_lines`` lines of ``columns`` characters."""
    w, h = _CELL
    return ((n_lines * h + 2 * _MARGIN) * _SCALE, (columns * w + 2 * _MARGIN) * _SCALE, 3)


def text_frame(text: str, n_lines: int, columns: int = COLUMNS) -> np.ndarray:
    """(H, W, 3) uint8 image of ``text`` (:func:`frame_shape`): its first ``n_lines`` lines, each cut to
    ``columns`` characters, dark on a light background."""
    from PIL import Image, ImageDraw, ImageFont

    w, h = _CELL
    H, W, _ = frame_shape(n_lines, columns)
    img = Image.new("RGB", (W // _SCALE, H // _SCALE), _BG)
    draw = ImageDraw.Draw(img)
    # the bitmap font: load_default_imagefont from Pillow 10.1 on, before that load_default returned it
    font = getattr(ImageFont, "load_default_imagefont", ImageFont.load_default)()
    for k, line in enumerate(text.splitlines()[:n_lines]):
        line = line[:columns].encode("latin-1", "replace").decode("latin-1")  # the bitmap font is Latin-1
        draw.text((_MARGIN, _MARGIN + k * h), line, font=font, fill=_FG)
    frame = np.asarray(img, dtype=np.uint8)
    return np.ascontiguousarray(frame.repeat(_SCALE, axis=0).repeat(_SCALE, axis=1))
