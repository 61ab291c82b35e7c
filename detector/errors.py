"""Errors the detector reports to its caller as one readable line."""


class DetectorError(Exception):
    """Bad input or model: the message is one line a user can act on (missing file, not a video, bad model path)."""
