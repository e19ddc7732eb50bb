"""SHA-256 without OpenSSL's start-up cost.

``hashlib`` loads OpenSSL when imported, which costs a short-lived command
such as ``looop status`` or ``looop _ state`` more (3-4 ms) than the rest of
its answer. CPython's own built-in SHA-256 module computes the same digest
and loads in a fraction of that, so the world hash and the profile name take
their digests from here; ``hashlib`` is the fallback for a Python without it.
"""

from __future__ import annotations

TYPE_CHECKING = False  # not typing's: see above
if TYPE_CHECKING:
    from hashlib import _Hash

try:
    from _sha2 import sha256 as _sha256  # type: ignore[import-not-found,unused-ignore]  # 3.12+
except ImportError:
    try:
        from _sha256 import sha256 as _sha256  # type: ignore[import-not-found,no-redef,unused-ignore]
    except ImportError:
        from hashlib import sha256 as _sha256  # type: ignore[assignment,unused-ignore]


def sha256(data: bytes = b"") -> _Hash:
    """A new SHA-256 hash object, optionally fed ``data``."""
    return _sha256(data)  # type: ignore[no-any-return,unused-ignore]
