"""The sandbox collaborator: every process that runs code the ticket can influence starts here."""

from app.services.sandbox.base import SANDBOX_HOME, SANDBOX_TMP, SOCKET_DIR, Endpoint, Sandbox, SandboxCall
from app.services.sandbox.bwrap import BwrapSandbox
from app.services.sandbox.factory import build_sandbox
from app.services.sandbox.unsandboxed import Unsandboxed

__all__ = [
    "SANDBOX_HOME",
    "SANDBOX_TMP",
    "SOCKET_DIR",
    "BwrapSandbox",
    "Endpoint",
    "Sandbox",
    "SandboxCall",
    "Unsandboxed",
    "build_sandbox",
]
