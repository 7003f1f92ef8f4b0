"""Errors a user can cause, each carrying one sentence that says what went wrong.

The CLI and the web server turn these into an exit code or an HTTP status; anything that is
not an ``InkdigitsError`` is a bug in inkdigits and is allowed to show a traceback.
"""

from __future__ import annotations


class InkdigitsError(Exception):
    """Base class: the message is one sentence meant for the person at the keyboard."""

    exit_code = 2


class BadImageError(InkdigitsError):
    """The input cannot be read as an image (missing, not an image, truncated, too large)."""


class NotAnImageError(BadImageError):
    """The input is empty or in no image format we read (as opposed to a damaged image)."""


class ImageTooLargeError(BadImageError):
    """The image's header declares more pixels than we are willing to decode."""


class NoDigitError(InkdigitsError):
    """The image was read, but holds no ink that could be a digit."""

    exit_code = 1


class ModelError(InkdigitsError):
    """A model file is missing, unreadable, or not an inkdigits model."""


class DataError(InkdigitsError):
    """A dataset file is missing, corrupt, or cannot be fetched."""
