"""A Hugging Face Hub stand-in on 127.0.0.1 for download tests: the part of the Hub's HTTP API that
huggingface_hub's list_repo_tree and downloads use (the tree listing with sizes and hashes, HEAD and GET
of /{repo}/resolve/{revision}/{path} with ranges; a large file's GET redirects to /cdn/, as the Hub's
does to its storage), plus plain files under /raw/ for URL downloads.

Every request is logged as (method, path, Range header). A file named in `stall_after` sends that many
bytes of its first GET and then waits until `release` is set, so a test can kill the client mid-transfer
(keys are path endings, e.g. the file name).
"""
from __future__ import annotations

import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlparse

COMMIT = "0123456789abcdef0123456789abcdef01234567"


class FakeHub:
    def __init__(self, repos: dict[str, dict[str, bytes]], raw: dict[str, bytes] | None = None):
        self.repos, self.raw = repos, raw or {}
        self.log: list[tuple[str, str, str | None]] = []
        self.stall_after: dict[str, int] = {}
        self.sent = threading.Event()             # set once a stalled file's first bytes are out
        self.release = threading.Event()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()

    def gets(self, path_end: str) -> list[str | None]:
        """The Range headers of the GETs whose path ends with `path_end`."""
        return [rng for method, path, rng in self.log if method == "GET" and path.endswith(path_end)]

    def _tree(self, repo: str) -> list[dict]:
        return [{"type": "file", "path": p, "size": len(data), "oid": blob_id(data),
                 **({"lfs": {"oid": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": 134}}
                    if is_lfs(p) else {})} for p, data in sorted(self.repos[repo].items())]

    def _file(self, path: str) -> tuple[bytes, dict[str, str]] | None:
        """The bytes and the Hub's metadata headers of a resolve/, cdn/ or raw/ path, or None."""
        if path.startswith("/raw/") and path[5:] in self.raw:
            return self.raw[path[5:]], {}
        if path.startswith("/cdn/"):
            repo, _, rest = path[5:].partition("/resolve/")
            name = rest.partition("/")[2]                                    # after the revision
            return (self.repos[repo][name], {}) if repo in self.repos and name in self.repos[repo] else None
        for repo, files in self.repos.items():
            prefix = f"/{repo}/resolve/"
            if path.startswith(prefix):
                name = path[len(prefix):].split("/", 1)[1]
                if name in files:
                    data = files[name]
                    etag = hashlib.sha256(data).hexdigest() if is_lfs(name) else blob_id(data)
                    return data, {"X-Repo-Commit": COMMIT, "ETag": f'"{etag}"', "X-Linked-Etag": f'"{etag}"',
                                  "X-Linked-Size": str(len(data))}
        return None

    def _handler(self):
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_HEAD(self):
                self._serve(body=False)

            def do_GET(self):
                self._serve(body=True)

            def _serve(self, body: bool):
                path = unquote(urlparse(self.path).path)
                hub.log.append((self.command, path, self.headers.get("Range")))
                for repo in hub.repos:
                    if path.startswith(f"/api/models/{repo}/tree/") or path == f"/api/models/{repo}/revision/main":
                        listing = hub._tree(repo) if "/tree/" in path else \
                            {"id": repo, "sha": COMMIT, "siblings": [{"rfilename": f["path"]} for f in hub._tree(repo)]}
                        return self._send(200, json.dumps(listing).encode(), {"Content-Type": "application/json"}, body)
                found = hub._file(path)
                if found is None:
                    return self._send(404, b'{"error": "not found"}', {"X-Error-Code": "EntryNotFound"}, body)
                data, headers = found
                if body and "/resolve/" in path and is_lfs(path) and not path.startswith("/cdn/"):
                    return self._send(302, b"", {"Location": f"/cdn/{path.lstrip('/')}"}, body)
                start = int(self.headers["Range"].split("=")[1].split("-")[0]) if self.headers.get("Range") else 0
                headers = {**headers, "Accept-Ranges": "bytes"}
                if start:
                    headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
                stall = next((hub.stall_after.pop(k) for k in list(hub.stall_after) if path.endswith(k)), None) \
                    if body else None
                self._send(206 if start else 200, data[start:], headers, body, stall=stall)

            def _send(self, code, data, headers, body, stall=None):
                self.send_response(code)
                for k, v in {**headers, "Content-Length": str(len(data))}.items():
                    self.send_header(k, v)
                self.end_headers()
                if not body:
                    return
                if stall is not None:
                    self.wfile.write(data[:stall])
                    self.wfile.flush()
                    hub.sent.set()
                    hub.release.wait(60)
                    return
                self.wfile.write(data)

        return Handler


def is_lfs(path: str) -> bool:
    return path.endswith((".safetensors", ".pth", ".bin"))


def blob_id(data: bytes) -> str:
    """git's object id of a file's content, which the Hub lists for files outside LFS."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
