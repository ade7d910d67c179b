"""A JPEG's declared size, read from its frame header without decoding it.

A 693-byte JPEG can claim 13000x13000 pixels; decoding it (PIL in the workers, or
`torchvision.io.decode_jpeg` on the device, which has no limit of its own) allocates half a
gigabyte per frame before it finds the data missing. The frame extractors read the size here
first and reject the clip when it is over their cap (`FrameExtractor.max_pixels`)."""

from __future__ import annotations

#: start-of-frame markers (baseline, extended, progressive, lossless; Huffman or arithmetic):
#: every one carries precision, height and width right after its length
_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
#: markers without a length field
_STANDALONE = {0x01, 0xD8, *range(0xD0, 0xD8)}


def jpeg_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from the first start-of-frame header, or None when `data` is not a
    JPEG or has no frame header before its scan (its decode then fails on its own)."""
    if data[:2] != b"\xff\xd8":
        return None
    at, end = 2, len(data)
    while at + 4 <= end:
        if data[at] != 0xFF:
            return None
        marker = data[at + 1]
        if marker == 0xFF:  # fill byte before a marker
            at += 1
            continue
        if marker in _STANDALONE:
            at += 2
            continue
        if marker == 0xDA:  # start of scan: no frame header came first
            return None
        length = int.from_bytes(data[at + 2:at + 4], "big")
        if marker in _SOF:
            if at + 9 > end:
                return None
            height = int.from_bytes(data[at + 5:at + 7], "big")
            width = int.from_bytes(data[at + 7:at + 9], "big")
            return width, height
        at += 2 + length
    return None
