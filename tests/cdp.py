"""Headless Chromium driven over its DevTools protocol (stdlib only: a minimal WebSocket
client), for tests that open a page the way a person's browser would.

    with Chromium(tmp_path) as browser:
        page = browser.open("file:///.../report.html")   # waits for the load event
        page.evaluate("document.title"); page.screenshot(path)
        page.console_errors, page.requests, page.exceptions

Debian's /usr/bin/chromium, run as root with --no-sandbox, no GPU, no background
networking, component updates, sync or first-run, on a fresh --user-data-dir.
"""
from __future__ import annotations

import base64
import json
import os
import re
import shutil
import socket
import struct
import subprocess
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

CHROMIUM = os.environ.get("CALLCUE_CHROMIUM", "/usr/bin/chromium")
FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--no-default-browser-check",
         "--disable-extensions", "--disable-default-apps", "--mute-audio", "--hide-scrollbars",
         "--metrics-recording-only", "--disable-domain-reliability", "--disable-client-side-phishing-detection",
         "--disable-features=Translate,OptimizationHints,MediaRouter,AutofillServerCommunication",
         "--remote-debugging-port=0", "--remote-allow-origins=*"]


def available() -> bool:
    return shutil.which(CHROMIUM) is not None or Path(CHROMIUM).is_file()


class WebSocket:
    """Just enough RFC 6455 for the DevTools protocol: text frames, client masking."""

    def __init__(self, url: str, timeout: float = 30.0):
        m = re.match(r"ws://([^/:]+):(\d+)(/.*)", url)
        host, port, path = m.group(1), int(m.group(2)), m.group(3)
        self.sock = socket.create_connection((host, port), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
                           f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(1)
            if not chunk:
                raise ConnectionError("websocket handshake: connection closed")
            head += chunk
        if b" 101 " not in head.split(b"\r\n", 1)[0]:
            raise ConnectionError(f"websocket handshake refused: {head[:200]!r}")
        self.lock = threading.Lock()

    def _recv_exact(self, n: int) -> bytes:
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("websocket closed")
            buf += chunk
        return buf

    def send(self, text: str) -> None:
        data = text.encode()
        head = bytes([0x81])
        n = len(data)
        if n < 126:
            head += bytes([0x80 | n])
        elif n < 65536:
            head += bytes([0x80 | 126]) + struct.pack(">H", n)
        else:
            head += bytes([0x80 | 127]) + struct.pack(">Q", n)
        mask = os.urandom(4)
        body = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
        with self.lock:
            self.sock.sendall(head + mask + body)

    def recv(self) -> str:
        parts = []
        while True:
            b0, b1 = self._recv_exact(2)
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack(">H", self._recv_exact(2))[0]
            elif n == 127:
                n = struct.unpack(">Q", self._recv_exact(8))[0]
            data = self._recv_exact(n)
            op = b0 & 0x0F
            if op == 0x8:
                raise ConnectionError("websocket closed by the browser")
            if op in (0x9, 0xA):
                continue
            parts.append(data)
            if b0 & 0x80:
                return b"".join(parts).decode()

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


class Page:
    def __init__(self, ws_url: str):
        self.ws = WebSocket(ws_url)
        self.next_id = 0
        self.replies: dict[int, dict] = {}
        self.events: list[dict] = []
        self.cond = threading.Condition()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        for domain in ("Page", "Runtime", "Network", "Log"):
            self.call(f"{domain}.enable")

    def _read(self) -> None:
        try:
            while True:
                msg = json.loads(self.ws.recv())
                with self.cond:
                    if "id" in msg:
                        self.replies[msg["id"]] = msg
                    else:
                        self.events.append(msg)
                    self.cond.notify_all()
        except (ConnectionError, OSError, ValueError):
            with self.cond:
                self.cond.notify_all()

    def call(self, method: str, timeout: float = 60.0, **params) -> dict:
        with self.cond:
            self.next_id += 1
            mid = self.next_id
        self.ws.send(json.dumps({"id": mid, "method": method, "params": params}))
        with self.cond:
            if not self.cond.wait_for(lambda: mid in self.replies, timeout):
                raise TimeoutError(f"{method}: no reply within {timeout} s")
            reply = self.replies.pop(mid)
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return reply.get("result", {})

    def wait_event(self, method: str, timeout: float = 60.0) -> dict:
        with self.cond:
            if not self.cond.wait_for(lambda: any(e["method"] == method for e in self.events), timeout):
                raise TimeoutError(f"no {method} within {timeout} s")
            return next(e for e in self.events if e["method"] == method)

    def navigate(self, url: str, timeout: float = 60.0) -> None:
        with self.cond:
            self.events.clear()
        self.call("Page.navigate", url=url)
        self.wait_event("Page.loadEventFired", timeout)

    def evaluate(self, expression: str) -> Any:
        res = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in res:
            raise RuntimeError(f"evaluate {expression!r}: {res['exceptionDetails']}")
        return res["result"].get("value")

    def screenshot(self, path: Path, full_page: bool = False) -> Path:
        params: dict[str, Any] = {"format": "png"}
        if full_page:
            h = self.evaluate("document.documentElement.scrollHeight")
            w = self.evaluate("document.documentElement.scrollWidth")
            params.update(captureBeyondViewport=True, clip={"x": 0, "y": 0, "width": w, "height": min(h, 16000),
                                                            "scale": 1})
        data = self.call("Page.captureScreenshot", **params)["data"]
        Path(path).write_bytes(base64.b64decode(data))
        return Path(path)

    @property
    def requests(self) -> list[str]:
        with self.cond:
            return [e["params"]["request"]["url"] for e in self.events if e["method"] == "Network.requestWillBeSent"]

    @property
    def console_errors(self) -> list[str]:
        out = []
        with self.cond:
            for e in self.events:
                if e["method"] == "Runtime.consoleAPICalled" and e["params"]["type"] in ("error", "assert"):
                    out.append(" ".join(str(a.get("value", a.get("description"))) for a in e["params"]["args"]))
                elif e["method"] == "Log.entryAdded" and e["params"]["entry"]["level"] == "error":
                    out.append(e["params"]["entry"]["text"])
        return out

    @property
    def exceptions(self) -> list[str]:
        with self.cond:
            return [e["params"]["exceptionDetails"].get("text", "") + " " +
                    str(e["params"]["exceptionDetails"].get("exception", {}).get("description", ""))
                    for e in self.events if e["method"] == "Runtime.exceptionThrown"]

    def close(self) -> None:
        self.ws.close()


class Chromium:
    def __init__(self, workdir: Path, width: int = 1280, height: int = 900):
        self.workdir = Path(workdir)
        self.size = (width, height)
        self.proc: subprocess.Popen | None = None
        self.pages: list[Page] = []

    def __enter__(self) -> "Chromium":
        profile = self.workdir / "chromium-profile"
        profile.mkdir(parents=True, exist_ok=True)
        self.log = self.workdir / "chromium.log"
        self.proc = subprocess.Popen([CHROMIUM, *FLAGS, f"--user-data-dir={profile}",
                                      f"--window-size={self.size[0]},{self.size[1]}", "about:blank"],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=open(self.log, "wb"), start_new_session=True)
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not (port_file.exists() and port_file.read_text().strip()):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"chromium did not start: {self.log.read_text(errors='replace')[-2000:]}")
            time.sleep(0.05)
        self.port = int(port_file.read_text().split()[0])
        return self

    def open(self, url: str) -> Page:
        """A fresh tab (its events recorded from before the page loads) showing `url`."""
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}/json/new?about:blank", method="PUT")
        with urllib.request.urlopen(req, timeout=30) as r:
            target = json.loads(r.read())
        page = Page(target["webSocketDebuggerUrl"])
        page.call("Emulation.setDeviceMetricsOverride", width=self.size[0], height=self.size[1], deviceScaleFactor=1,
                  mobile=False)
        self.pages.append(page)
        page.navigate(url)
        return page

    def __exit__(self, *exc) -> None:
        for p in self.pages:
            p.close()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
