"""Recognise a TLS failure inside a client library's wrapped error, so plugins can say so plainly and stop retrying."""

from __future__ import annotations

import ssl

__all__ = ["tls_failure"]


def tls_failure(exc: BaseException) -> str | None:
    """The TLS problem behind ``exc`` (its own type, or in its cause/context chain) as one line, else None.

    >>> tls_failure(kombu.exceptions.OperationalError(...))   # raised from an ssl.SSLCertVerificationError
    'certificate verify failed: unable to get local issuer certificate'
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ssl.SSLCertVerificationError):
            return f"certificate verify failed: {current.verify_message}"
        if isinstance(current, ssl.SSLError):
            return current.reason or str(current)
        current = current.__cause__ or current.__context__
    return None
