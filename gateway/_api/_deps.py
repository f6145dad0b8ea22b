"""What route handlers get injected: the runtime and the settings.

The providers are coroutines: FastAPI runs plain functions in its thread pool, a thread
hop per dependency on every request.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from .._runtime import Runtime
from .._settings import Settings


async def get_runtime(request: Request) -> Runtime:
    """The server's runtime (set by `create_app`)."""
    runtime: Runtime = request.app.state.runtime
    return runtime


async def get_settings(request: Request) -> Settings:
    """The server's settings (set by `create_app`)."""
    settings: Settings = request.app.state.settings
    return settings


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
