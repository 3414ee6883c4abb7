"""Test-only mitmproxy addon: server connections to one host go to a local address instead, and
every other server connection is refused, so a test that sends a client through mitmproxy as
HTTPS_PROXY with its real base URL (https://integrate.api.nvidia.com/v1) reaches a local
upstream and nothing else.

  mitmdump -s addon.py -s tests/e2e/resolve_addon.py --set connection_strategy=lazy \
    --set test_resolve=integrate.api.nvidia.com=127.0.0.1:8443 --set ssl_insecure=true

Only the address dialled changes, in mitmproxy's `server_connect` hook, which runs just
before a server connection is opened; it touches no /etc/hosts and no other process's name
resolution. With `connection_strategy=lazy` the connection is opened after the request has
been read, so the flow keeps its host (the addon under test sees integrate.api.nvidia.com,
and mitmproxy sends that name as SNI); with the default eager strategy mitmproxy dials at
CONNECT time and names the flow's request after the address it dialled (127.0.0.1).
"""

from __future__ import annotations

from typing import Any


class Resolve:
    def load(self, loader: Any) -> None:
        loader.add_option("test_resolve", str, "", "host=ip:port: connect to ip:port for host; refuse every other server")

    def server_connect(self, data: Any) -> None:
        from mitmproxy import ctx

        name, _, target = ctx.options.test_resolve.partition("=")
        host, port = data.server.address
        if name and host == name:
            ip, _, target_port = target.rpartition(":")
            data.server.address = (ip, int(target_port))
        else:
            data.server.error = f"the test allows no connection to {host}:{port}"


addons = [Resolve()]
