"""Image URL -> alive? width x height: judge the first bytes of an image response (pure, Pillow).

Reads: the image URL, the first bytes of its body (a range request or a stream capped at
``metadata.images.max_probe_bytes``; image headers sit at the start, so a truncated body is fine), the
response's content type and whether the request succeeded.
Returns: an :class:`~pipeline.models.ImageProbe`: alive when the request succeeded and the bytes are an image
(Pillow identifies them, or the content type is ``image/*`` and the body is not a web page), with the pixel
size read from the header (Pillow; ``imagesize`` when Pillow needs more than the first bytes, as it does for
WebP), and a reason for people when it is not alive. Sizes are as stored, before any EXIF rotation.
Settings: none here; the fetch around it reads ``metadata.images.max_probe_bytes``.
"""

from __future__ import annotations

import warnings
from io import BytesIO

import imagesize  # type: ignore[import-untyped]

from pipeline.models import ImageProbe

__all__ = ["measure"]

_MARKUP_PREFIXES = (b"<!doctype html", b"<html", b"<head", b"<body", b"<!--", b"<?xml", b"{", b"[")


def measure(
    url: str, body: bytes, content_type: str | None, http_ok: bool, *, http_status: int | None = None
) -> ImageProbe:
    """Whether ``body`` (the first bytes of ``url``'s response) is a live image, and its pixel size."""
    mime = content_type.split(";", 1)[0].strip().lower() if content_type else None
    if not http_ok:
        reason = f"HTTP {http_status}" if http_status is not None else "the request failed"
        return ImageProbe(url=url, alive=False, content_type=mime, reason=reason)
    size, pillow_mime, problem = _read_header(body)
    if size is not None:
        if mime and _is_text(mime) and pillow_mime is None:
            # Only the size parser recognised it; a page that happens to parse as a size is no image.
            return ImageProbe(url=url, alive=False, content_type=mime, reason=f"content-type {mime}")
        return ImageProbe(
            url=url, alive=True, content_type=_type(mime, pillow_mime), width=size[0], height=size[1]
        )
    if mime and mime.startswith("image/"):
        if mime != "image/svg+xml" and _looks_like_markup(body):
            return ImageProbe(
                url=url, alive=False, content_type=mime, reason=f"content-type {mime} but the body is markup"
            )
        # Alive (an image type we cannot measure, such as SVG or AVIF without a plugin); size unknown.
        return ImageProbe(url=url, alive=True, content_type=mime, reason=problem)
    if not body:
        return ImageProbe(url=url, alive=False, content_type=mime, reason="empty body")
    if mime and mime != "application/octet-stream":
        return ImageProbe(url=url, alive=False, content_type=mime, reason=f"content-type {mime}")
    return ImageProbe(url=url, alive=False, content_type=mime, reason="not an image")


# Formats a web page serves as images; other Pillow plugins (Spider, PSD, …) are not tried on web bytes.
_WEB_FORMATS = ("PNG", "JPEG", "GIF", "WEBP", "BMP", "ICO", "TIFF", "AVIF")


def _read_header(body: bytes) -> tuple[tuple[int, int] | None, str | None, str]:
    """Pixel size and MIME type from an image's header, or why they could not be read."""
    if not body:
        return None, None, "empty body"
    from PIL import Image, UnidentifiedImageError  # here: a run that probes no image never imports Pillow

    try:
        with warnings.catch_warnings():
            # Pillow warns about what a cut-short body lacks (EXIF) and about huge sizes; neither matters for
            # reading a header, and nothing is decoded here.
            warnings.simplefilter("ignore")
            with Image.open(BytesIO(body), formats=_WEB_FORMATS) as image:
                return image.size, image.get_format_mimetype(), ""
    except Image.DecompressionBombError:
        problem = "image too large for Pillow"
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError):
        # Pillow raises these for bytes it cannot identify and for some formats (WebP) cut short.
        problem = "size unreadable from the first bytes"
    except Exception:  # a format plugin tripping over hostile bytes (seen: AttributeError) is no crash
        problem = "size unreadable from the first bytes"
    width, height = _header_size(body)
    if width > 0 and height > 0:
        return (width, height), None, ""
    return None, None, problem


def _header_size(body: bytes) -> tuple[int, int]:
    try:
        size = imagesize.get(BytesIO(body), exif_rotation=False)
    except Exception:  # imagesize on hostile bytes: any failure means "size unknown"
        return -1, -1
    return int(size[0]), int(size[1])


def _type(served: str | None, identified: str | None) -> str | None:
    """The served type when it names an image, else what Pillow identified (octet-stream says nothing)."""
    return served if served and served.startswith("image/") else identified or served


def _is_text(mime: str) -> bool:
    return mime.startswith("text/") or mime in {
        "application/xhtml+xml",
        "application/json",
        "application/xml",
    }


def _looks_like_markup(body: bytes) -> bool:
    return body[:64].lstrip().lower().startswith(_MARKUP_PREFIXES)
