"""Exceptions that OpenLFR raises on purpose, each with a message a user can act on."""


class OpenLFRError(Exception):
    """Base class of every error OpenLFR raises deliberately."""


class ImageError(OpenLFRError):
    """An image could not be read: corrupt, truncated, empty, too large or of an unknown kind."""


class ModelMissingError(OpenLFRError):
    """A model file or the package that ships it is not installed."""


class NotFoundError(OpenLFRError):
    """A named watchlist, subject or other record does not exist."""


class PolicyError(OpenLFRError):
    """An action breaks the configured policy (unknown category, expired entry...)."""
