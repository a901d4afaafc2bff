"""The real nginx (Debian's package) in front of test server processes, configured with
deploy/nginx's files: the upstream templated for the test's ports, the proxy settings as they
are, in a server block on a spare port without TLS (the site file's TLS part needs a
certificate and a host name)."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
from pathlib import Path

import pytest

from infra.embedded_redis import free_port
from tests.support.procs import BASE_DIR, Process

DEPLOY_NGINX = BASE_DIR / "deploy" / "nginx"
_UPSTREAM_SERVER = re.compile(r"^(\s*)server 127\.0\.0\.1:\d+( [^;]*)?;\n", re.MULTILINE)


def nginx_binary() -> str:
    """nginx's path; skips the test where it is not installed, fails in CI (.ci/run installs
    it, as it installs Chromium)."""
    found = shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(p, os.X_OK)), None
    )
    if found:
        return found
    if os.environ.get("CI") == "true":
        pytest.fail("nginx is not installed: .ci/run installs Debian's nginx for this test")
    pytest.skip("nginx is not installed (Debian: apt-get install nginx)")


def upstream_for(ports: list[int]) -> str:
    """deploy/nginx/parley-upstream.conf with one ``server`` line per port (the first line's
    parameters: max_fails, fail_timeout)."""
    text = (DEPLOY_NGINX / "parley-upstream.conf").read_text()
    first = _UPSTREAM_SERVER.search(text)
    assert first, "parley-upstream.conf lists no server 127.0.0.1:PORT line"
    indent, params = first.group(1), first.group(2) or ""
    servers = "".join(f"{indent}server 127.0.0.1:{port}{params};\n" for port in ports)
    return text[: first.start()] + servers + _UPSTREAM_SERVER.sub("", text[first.start() :])


class Nginx(Process):
    """nginx -p DIR -c DIR/nginx.conf -g 'daemon off;', its pid file and logs in DIR."""

    def __init__(self, log_dir: Path, upstream_ports: list[int]) -> None:
        binary = nginx_binary()
        self.port = free_port()
        self.dir = log_dir / "nginx"
        self.dir.mkdir()
        for name in ("parley-proxy.conf", "parley-headers.conf"):
            shutil.copy(DEPLOY_NGINX / name, self.dir / name)
        (self.dir / "parley-upstream.conf").write_text(upstream_for(upstream_ports))
        temp = "".join(
            f"    {kind}_temp_path {self.dir / kind};\n"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        (self.dir / "nginx.conf").write_text(
            f"pid {self.dir / 'nginx.pid'};\n"
            f"error_log {self.dir / 'error.log'} info;\n"
            "worker_processes 1;\n"
            "events { worker_connections 4096; }\n"
            "http {\n"
            f"    access_log {self.dir / 'access.log'};\n{temp}"
            "    include parley-upstream.conf;\n"
            f"    server {{\n        listen 127.0.0.1:{self.port};\n"
            "        include parley-proxy.conf;\n    }\n"
            "}\n"
        )
        args = [binary, "-p", str(self.dir), "-c", str(self.dir / "nginx.conf")]
        super().__init__("nginx", [*args, "-g", "daemon off;"], dict(os.environ), log_dir)

    def ready(self) -> bool:
        with (
            contextlib.suppress(OSError),
            socket.create_connection(("127.0.0.1", self.port), timeout=0.5),
        ):
            return True
        return False

    def error_log(self) -> str:
        path = self.dir / "error.log"
        return path.read_text(errors="replace") if path.exists() else ""
