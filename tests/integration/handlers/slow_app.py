"""Test-only handler: the real API handler, made slow on demand to exceed the function timeout.

Put on PYTHONPATH beside the built function code by tests/integration/test_faults.py; never
built or shipped. A request with header `x-test-delay-s: N` sleeps N seconds before being handled.
"""

from __future__ import annotations

import time
from typing import Any

import app  # type: ignore[import-not-found]  # functions/api/app.py as Lambda imports it


def lambda_handler(event: dict[str, Any], context: Any) -> Any:
    delay = float((event.get("headers") or {}).get("x-test-delay-s") or 0)
    if delay:
        time.sleep(delay)
    return app.lambda_handler(event, context)
