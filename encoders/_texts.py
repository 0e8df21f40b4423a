"""Input checks shared by the encoders (kept free of heavy imports)."""

from __future__ import annotations

from typing import Sequence

from bundlerl.encoders.base import EncoderError


def check_texts(texts: Sequence[str]) -> list[str]:
    """Return ``texts`` as a list after checking every entry is a non-blank ``str``.

    Raises :class:`EncoderError` naming the first bad index (a bare string instead of a list
    is also an error, since encoding its characters one by one is never what was meant).
    """
    if isinstance(texts, (str, bytes)):
        raise EncoderError("encode() takes a sequence of strings, got a single string; wrap it in a list: [text]")
    try:
        texts = list(texts)
    except TypeError as err:
        raise EncoderError(f"encode() takes a sequence of strings, got {type(texts).__name__}") from err
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise EncoderError(f"text at index {i} is a {type(t).__name__}, not a str; convert or drop it before encoding")
        if not t.strip():
            raise EncoderError(f"text at index {i} is empty or whitespace only; drop it or give it a title before encoding")
    return texts
