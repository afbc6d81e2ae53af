"""Schemathesis hooks for tests/test_schemathesis.py (loaded through SCHEMATHESIS_HOOKS).

The service checks e-mail addresses with email-validator, which refuses special-use domains
(RFC 6761: .test, .localhost, ...) that the "email" format allows and schemathesis generates.
The format's strategy leaves them out, so a valid address from the fuzzer is one the service
accepts.
"""

import schemathesis
from hypothesis import strategies as st

SPECIAL_USE = {"arpa", "invalid", "local", "localhost", "onion", "test"}


def _deliverable(address: str) -> bool:
    return address.rsplit(".", 1)[-1].lower() not in SPECIAL_USE


schemathesis.openapi.format("email", st.emails().filter(_deliverable))
