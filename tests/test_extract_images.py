"""Tests for pipeline.extract.images.measure: real image bytes made with Pillow, whole and truncated."""

from __future__ import annotations

import random
from io import BytesIO

import pytest
from PIL import Image

from pipeline.extract.images import measure

URL = "https://cdn.example/share.img"


def image_bytes(fmt: str, size: tuple[int, int] = (640, 360)) -> bytes:
    """A noisy image (so it is far larger than the bytes a probe keeps) saved in ``fmt``."""
    mode = "P" if fmt == "GIF" else "RGB"  # a palette image saves as GIF without slow quantising
    noise = random.Random(7).randbytes(size[0] * size[1] * len(mode))
    out = BytesIO()
    Image.frombytes(mode, size, noise).save(out, fmt)
    return out.getvalue()


@pytest.mark.parametrize(
    ("fmt", "mime"),
    [("PNG", "image/png"), ("JPEG", "image/jpeg"), ("GIF", "image/gif"), ("WEBP", "image/webp")],
)
def test_whole_image_is_alive_with_its_size(fmt: str, mime: str) -> None:
    """A whole image served with its type is alive, with the pixel size from its header."""
    probe = measure(URL, image_bytes(fmt), mime, True)

    assert (probe.alive, probe.width, probe.height, probe.content_type, probe.reason) == (
        True,
        640,
        360,
        mime,
        "",
    )


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "GIF", "WEBP"])
def test_first_few_hundred_bytes_are_enough(fmt: str) -> None:
    """A body cut to its first 512 bytes (a capped stream) still gives the real size."""
    body = image_bytes(fmt, (1200, 630))
    assert len(body) > 100 * 512

    probe = measure(URL, body[:512], "image/" + fmt.lower(), True)

    assert (probe.alive, probe.width, probe.height) == (True, 1200, 630)


def test_image_without_content_type_is_identified_by_pillow() -> None:
    """An image served as application/octet-stream is alive when Pillow identifies it, and typed by it."""
    probe = measure(URL, image_bytes("PNG", (50, 40)), "application/octet-stream", True)

    assert (probe.alive, probe.width, probe.height, probe.content_type) == (True, 50, 40, "image/png")


def test_image_content_type_without_a_measurable_header_is_alive_without_size() -> None:
    """An ``image/*`` body that cannot be measured (here SVG) is alive, with no size."""
    probe = measure(
        URL, b'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 4 4"/>', "image/svg+xml", True
    )

    assert (probe.alive, probe.width, probe.height) == (True, None, None)


def test_html_body_is_not_an_image() -> None:
    """An HTML page (a soft 404 for an image URL) is not alive; the reason names its content type."""
    probe = measure(
        URL, b"<!DOCTYPE html><html><head><title>Not found</title></head></html>", "text/html", True
    )

    assert (probe.alive, probe.reason) == (False, "content-type text/html")


def test_html_body_claiming_to_be_an_image_is_not_an_image() -> None:
    """A body that is markup is not alive even when the server calls it image/jpeg."""
    probe = measure(URL, b"<html><body>Error</body></html>", "image/jpeg; charset=utf-8", True)

    assert probe.alive is False
    assert probe.content_type == "image/jpeg"
    assert "markup" in probe.reason


def test_bytes_that_are_no_image_are_not_alive() -> None:
    """Bytes no reader recognises, with no image type, are ``not an image``."""
    probe = measure(URL, b"PK\x03\x04 a zip archive, not a picture", "application/octet-stream", True)

    assert (probe.alive, probe.reason) == (False, "not an image")


def test_failed_request_is_not_alive_and_says_its_status() -> None:
    """A failed request is not alive whatever the body; the reason carries the HTTP status."""
    probe = measure(URL, image_bytes("PNG", (10, 10)), "image/png", False, http_status=404)

    assert (probe.alive, probe.reason, probe.width) == (False, "HTTP 404", None)
