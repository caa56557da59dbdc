"""A local Zoho CRM that speaks Zoho's wire format, for the demo and for tests.

Code that works against the sandbox should work against Zoho: it serves Zoho Accounts'
OAuth endpoints and the CRM v8 records, metadata and notification APIs with Zoho's
shapes, limits and failure modes, plus a control API under ``/__sandbox__/`` for tests.
"""

from __future__ import annotations

from .app import create_sandbox_app, sandbox_state
from .handle import SandboxHandle
from .server import SandboxServer, run_sandbox
from .state import SandboxState

__all__ = [
    "SandboxHandle",
    "SandboxServer",
    "SandboxState",
    "create_sandbox_app",
    "run_sandbox",
    "sandbox_state",
]
