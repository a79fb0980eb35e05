"""Debian's clickhouse-server 18.16 for the asynch wire tests: free ports, a generated config in a temp dir.

stop() and start() again keep the ports and the data directory, so a test can restart the server under a
connected client. The binary is required: if it is missing, start() fails and says how to install it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from tests.components import COMPONENT_PORTS, free_port

CLICKHOUSE_SERVER = Path(os.environ.get("CLICKHOUSE_SERVER_BIN", "/usr/sbin/clickhouse-server"))

_CONFIG = """<?xml version="1.0"?>
<yandex>
    <logger>
        <level>warning</level>
        <log>{dir}/log/server.log</log>
        <errorlog>{dir}/log/server.err.log</errorlog>
        <console>0</console>
    </logger>
    <listen_host>127.0.0.1</listen_host>
    <http_port>{http_port}</http_port>
    <tcp_port>{tcp_port}</tcp_port>
    <interserver_http_port>0</interserver_http_port>
    <path>{dir}/data/</path>
    <tmp_path>{dir}/tmp/</tmp_path>
    <user_files_path>{dir}/user_files/</user_files_path>
    <format_schema_path>{dir}/format_schemas/</format_schema_path>
    <users_config>{dir}/users.xml</users_config>
    <default_profile>default</default_profile>
    <default_database>default</default_database>
    <timezone>UTC</timezone>
    <mark_cache_size>67108864</mark_cache_size>
    <uncompressed_cache_size>67108864</uncompressed_cache_size>
    <max_concurrent_queries>100</max_concurrent_queries>
</yandex>
"""

_USERS = """<?xml version="1.0"?>
<yandex>
    <!-- an idle pooled connection holds up a stop until its poll_interval (default 10 s) runs out -->
    <profiles><default><poll_interval>1</poll_interval></default></profiles>
    <users>
        <default>
            <password></password>
            <networks><ip>127.0.0.1</ip><ip>::1</ip></networks>
            <profile>default</profile>
            <quota>default</quota>
        </default>
    </users>
    <quotas><default></default></quotas>
</yandex>
"""


@dataclass
class ClickHouseServer:
    """One clickhouse-server process; `url` is the asynch (native protocol) URL of its default database."""

    directory: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="ua-clickhouse-")))
    tcp_port: int = field(default_factory=free_port)
    http_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"clickhouse://default@127.0.0.1:{self.tcp_port}/default"

    def start(self, timeout: float = 20.0) -> ClickHouseServer:
        if not CLICKHOUSE_SERVER.exists():
            raise RuntimeError(
                f"{CLICKHOUSE_SERVER} not found: the asynch wire tests need Debian's clickhouse-server"
                " (apt-get install -y clickhouse-server), or set CLICKHOUSE_SERVER_BIN"
            )
        for sub in ("log", "data", "tmp", "user_files", "format_schemas"):
            (self.directory / sub).mkdir(parents=True, exist_ok=True)
        config = self.directory / "config.xml"
        config.write_text(
            _CONFIG.format(dir=self.directory, tcp_port=self.tcp_port, http_port=self.http_port)
        )
        (self.directory / "users.xml").write_text(_USERS)
        self.process = subprocess.Popen(
            [str(CLICKHOUSE_SERVER), f"--config-file={config}"],
            cwd=self.directory,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self._wait_for_ping(timeout)
        COMPONENT_PORTS[self.tcp_port] = COMPONENT_PORTS[self.http_port] = "clickhouse"
        return self

    def _wait_for_ping(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"clickhouse-server exited with {self.process.returncode}; see {self.directory}/log/"
                )
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}/ping", timeout=1) as reply:
                    if reply.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.05)
        self.stop()
        raise TimeoutError(
            f"clickhouse-server did not answer /ping within {timeout}s; see {self.directory}/log/"
        )

    def stop(self, timeout: float = 20.0) -> None:
        COMPONENT_PORTS.pop(self.tcp_port, None)
        COMPONENT_PORTS.pop(self.http_port, None)
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.process = None

    def remove(self) -> None:
        """Stop the server and delete its directory."""
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)
