"""The live page of `render --watch`: the output folder served on 127.0.0.1 (nothing listens
on other addresses), report.html with a few lines of script that ask `/framegen-status.json`
five times a second, show which shot is rendering or the last save's error line above the last
good frames, and reload the page when a render finishes. Without `--watch` report.html stays
a static file with no script."""

from __future__ import annotations

import errno
import json
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from ..errors import InvalidInput

SCRIPT = """<div id="framegen-live" style="position:fixed;top:0;left:0;right:0;z-index:10;padding:.5em 1em;
font:14px system-ui;background:#fff3cd;border-bottom:1px solid #e0c060;display:none"></div><script>
(() => {
  const bar = document.getElementById('framegen-live');
  let seen = null;
  async function poll() {
    try {
      const status = await (await fetch('/framegen-status.json', {cache: 'no-store'})).json();
      if (seen !== null && status.renders !== seen) { location.reload(); return; }
      seen = status.renders;
      bar.style.display = status.state === 'done' ? 'none' : 'block';
      bar.dataset.state = status.state;
      bar.textContent = status.state === 'error' ? status.error : `rendering ${status.shot || '…'}`;
    } catch (error) { bar.style.display = 'block'; bar.textContent = 'framegen --watch has stopped'; }
    setTimeout(poll, 200);
  }
  poll();
})();
</script>"""


class Status:
    """What the page shows: `renders` counts finished renders (the page reloads when it
    grows), `state` is rendering, done or error, with the shot or the error line."""

    def __init__(self):
        self.lock = threading.Lock()
        self.value = {"renders": 0, "state": "rendering", "shot": None, "error": None}
        self.folder: Path | None = None  # the output folder the page serves

    def update(self, **changes) -> None:
        with self.lock:
            self.value = {**self.value, **changes}

    def json(self) -> bytes:
        with self.lock:
            return json.dumps(self.value).encode()

    # the job's progress interface: which image renders now
    def image(self, name: str, total_steps: int, count: int = 1) -> None:
        self.update(state="rendering", shot=name if count == 1 else f"{name} (+{count - 1})")

    def step(self, step: int) -> None:
        pass


class Handler(SimpleHTTPRequestHandler):
    """The status, the page with its script, and the files of the output folder: the one
    `status.folder` names now (None until a storyboard has loaded: then the page alone)."""

    def __init__(self, *args, status: Status, **kwargs):
        self.status = status
        super().__init__(*args, directory=str(status.folder or EMPTY), **kwargs)

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        path = self.path.split("?")[0]
        if path == "/framegen-status.json":
            return self.send(self.status.json(), "application/json")
        if self.status.folder is None and path not in ("/", "/report.html"):
            return self.send_error(404)
        if path in ("/", "/report.html"):
            page = Path(self.directory) / "report.html"
            text = (
                page.read_text(encoding="utf-8") if page.is_file() else "<!doctype html><body><h1>framegen</h1></body>"
            )
            return self.send(text.replace("</body>", SCRIPT + "</body>").encode(), "text/html; charset=utf-8")
        return super().do_GET()

    def send(self, data: bytes, kind: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format, *args) -> None:  # quiet: the terminal is for framegen's lines
        pass


EMPTY = "/nonexistent-framegen-folder"  # what the handler is given before a folder is known: serves nothing


def serve(port: int, status: Status) -> ThreadingHTTPServer:
    """Serve `status.folder` on 127.0.0.1:`port` (0: any free port) in a thread, the port
    taken before anything renders; `.shutdown()` ends it. A port that cannot be had is one line."""
    try:
        server = ThreadingHTTPServer(("127.0.0.1", port), partial(Handler, status=status))
    except OSError as error:
        reason = "in use" if error.errno == errno.EADDRINUSE else (error.strerror or "unavailable").lower()
        raise InvalidInput(
            f"--port {port}: 127.0.0.1:{port} is {reason}; give another port, or --port 0 for any free one"
        ) from None
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server
