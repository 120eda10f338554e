"""Local AWS: a moto server on 127.0.0.1 serving S3, IAM, STS and Secrets Manager over real HTTP.

Code under test reaches it through boto3's own `AWS_ENDPOINT_URL`, unmodified.
"""

from __future__ import annotations

import logging
import urllib.request
from types import TracebackType

from moto.server import ThreadedMotoServer

TEST_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}
# moto's fixed account id: ARNs of roles it creates carry it.
ACCOUNT_ID = "123456789012"


class MotoServer:
    """Starts on a free port; `environment()` is what a process needs to talk to it."""

    def __init__(self, port: int = 0) -> None:
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        self.endpoint_url = ""

    def __enter__(self) -> MotoServer:
        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's server logs every request
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.endpoint_url = f"http://{host}:{port}"
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._server.stop()

    def environment(self) -> dict[str, str]:
        return {"AWS_ENDPOINT_URL": self.endpoint_url, **TEST_CREDENTIALS}

    def reset(self) -> None:
        """Forget every bucket, role and secret (moto's own reset endpoint)."""
        request = urllib.request.Request(f"{self.endpoint_url}/moto-api/reset", method="POST")  # noqa: S310
        # Our own loopback server, http by construction.
        with urllib.request.urlopen(request, timeout=10):  # noqa: S310
            pass
