"""The authority: the only place that signs task tokens.

It orchestrates the core: verifies the initiator's assertion or the parent token and the holder's
DPoP proof, applies the rules of a hop, asks policy, records the decision durably in the audit log,
and only then signs. Every refusal is recorded too, with its machine code and the input that
failed, because denials are evidence. If recording fails nothing is issued (fail closed).

:class:`Authority` is the facade; each job lives in its own module of this package.
"""

from __future__ import annotations

from authchain.authority.facade import Authority
from authchain.authority.issuance import IssuedToken

__all__ = ["Authority", "IssuedToken"]
