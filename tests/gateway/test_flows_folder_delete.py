"""A flow that comes from the flows folder cannot be deleted over the API (409): its file
would bring it back on the next start. Removing the file deletes it."""

from __future__ import annotations

import httpx
import pytest

from tests.gateway._flows import sleepy_flow
from tests.gateway.conftest import LiveServer
from tests.polling import eventually

pytestmark = pytest.mark.integration


async def test_delete_of_a_folder_flow_is_refused(
    api: httpx.AsyncClient, live_server: LiveServer, namespace: str
) -> None:
    path = live_server.flows_dir / f"{namespace}.yaml"
    path.write_text(sleepy_flow(namespace, "from-file"))
    url = f"/api/v1/flows/{namespace}/from-file"

    async def status_is(wanted: int) -> bool:
        return (await api.get(url)).status_code == wanted

    await eventually(lambda: status_is(200), what="flow loaded from the folder")
    refused = await api.delete(url)
    assert refused.status_code == 409, refused.text
    message = refused.json()["message"]
    assert message == (
        f"flow {namespace}.from-file comes from the flows folder ({path}): delete the file instead"
    )
    assert await status_is(200)  # still there

    path.unlink()
    await eventually(lambda: status_is(404), what="flow deleted with its file")
