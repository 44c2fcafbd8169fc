"""Which requests the served-feature log samples: decided by the request id alone.

A hash of the id, not a random draw: every worker, a replay of the log and a test agree on which
requests are in the sample, and the share holds over any large enough set of ids.
"""

from __future__ import annotations

import hashlib

_HASH_BYTES = 8


def sampled(request_id: str, share: float) -> bool:
    """Whether `request_id` falls in the sampled `share` (0: none, 1: every request)."""
    if share <= 0.0:
        return False
    if share >= 1.0:
        return True
    digest = hashlib.blake2b(request_id.encode(), digest_size=_HASH_BYTES).digest()
    return int.from_bytes(digest, "big") < share * 2 ** (8 * _HASH_BYTES)
