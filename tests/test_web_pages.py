"""The browser faces over plain HTTP: the pages with their policy, the console's views, the hashed assets."""

from __future__ import annotations

import re

from graph.http.web import CONTENT_SECURITY_POLICY
from tests.conftest import Gateway


async def test_the_console_and_graphiql_pages_and_their_assets(gateway: Gateway) -> None:
    http = gateway.client.http
    graphiql = await http.get("/graphql", headers={"accept": "text/html"})
    assert graphiql.status_code == 200 and graphiql.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    for path in ("/console", "/console/", "/console/jobs/anything"):
        page = await http.get(path)  # no token needed: the page asks for one
        assert page.status_code == 200 and '<div id="console">' in page.text, path
        assert page.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assets = re.findall(r'(?:src|href)="(/assets/[^"]+)"', page.text + graphiql.text)
    assert any(asset.endswith(".js") for asset in assets) and any(asset.endswith(".css") for asset in assets), assets
    for asset in assets:
        answer = await http.get(asset)
        assert answer.status_code == 200, asset
        assert "immutable" in answer.headers["cache-control"]
    assert (await http.get("/assets/no-such-file.js")).status_code == 404
    assert (await http.get("/assets/../web.py")).status_code == 404
