"""The screening notebook in a real JupyterLab, in headless Chromium: a person's keys land in the sheet.

A copy of the worked example (``reviewkit init --example ketamine``) is served by JupyterLab on
127.0.0.1 (a free port, a token, configuration and settings in the test's own folders, no
announcements or update checks). Chromium opens ``notebooks/screen.ipynb`` and is driven through the
Chrome DevTools Protocol (``websocket-client``): Run All, wait for the app's widgets, then type keys
into its *keys* box as a person does: **i** includes the record shown; **1** then **e** excludes the
next with the protocol's first reason. Both decisions must be in the screening CSV on disk.

Nothing leaves the machine: the browser resolves no host name but 127.0.0.1 and uses no proxy, and
every wait has a deadline; the server (with its kernel) and the browser are stopped in ``finally``.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pandas as pd
import pytest

from reviewkit.project import Project
from reviewkit.scaffold import init_project

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(120),  # a backstop: every wait below has its own, shorter, deadline
    pytest.mark.skipif(CHROMIUM is None, reason="chromium not found (Debian package 'chromium'; .ci/run installs it)"),
    pytest.mark.skipif(importlib.util.find_spec("jupyterlab") is None, reason="jupyterlab is not installed"),
    pytest.mark.skipif(importlib.util.find_spec("websocket") is None,
                       reason="websocket-client is not installed (the test extra has it)"),
]

REVIEWER = "reviewer2"  # the worked example's reviewer1 and final columns are complete; reviewer2's is empty
LOCAL = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # 127.0.0.1 directly, whatever the env says


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url: str, timeout: float = 2.0, method: str = "GET") -> bytes:
    assert url.startswith("http://127.0.0.1:"), url
    with LOCAL.open(urllib.request.Request(url, method=method), timeout=timeout) as response:
        return response.read()


class Gone(Exception):
    """A process the test started has exited: no point waiting any longer."""


def wait(what: str, check, timeout: float, every: float = 0.2, explain=lambda: ""):
    """Poll ``check()`` until it returns something true; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = check()
            if value:
                return value
        except Gone as exc:
            raise AssertionError(f"{exc} while waiting for {what}. {explain()}") from None
        except Exception:  # noqa: S110 (not there yet: a refused connection, an element not rendered)
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}. {explain()}")
        time.sleep(every)


class DevTools:
    """A Chrome DevTools Protocol session on one page target."""

    def __init__(self, ws_url: str):
        import websocket

        # No Origin header: Chromium refuses DevTools websockets from origins it was not told to allow.
        self.ws = websocket.create_connection(ws_url, timeout=10, suppress_origin=True)
        self.next_id = 0

    def call(self, method: str, **params):
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:  # events arrive in between; the answer carries our id
            message = json.loads(self.ws.recv())
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message["result"]

    def js(self, expression: str):
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression[:80]}: {result['exceptionDetails'].get('text')}")
        return result["result"].get("value")

    def type_key(self, key: str) -> None:
        """One key pressed and released, as a keyboard sends it to the focused element."""
        code = f"Digit{key}" if key.isdigit() else f"Key{key.upper()}"
        self.call("Input.dispatchKeyEvent", type="keyDown", key=key, code=code, text=key,
                  windowsVirtualKeyCode=ord(key.upper()))
        self.call("Input.dispatchKeyEvent", type="keyUp", key=key, code=code, windowsVirtualKeyCode=ord(key.upper()))

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.ws.close()


# JavaScript run in the page. The app's widgets: its key box is the ipywidgets Text labelled "keys";
# the record shown is the first .rk-meta line of the app (authors · journal year · record id).
KEY_BOX = ("[...document.querySelectorAll('.widget-text')]"
           ".filter(e => (e.querySelector('label') || {}).textContent === 'keys').map(e => e.querySelector('input'))[0]")
RECORD_ID = ("(() => { const m = document.querySelector('.rk-app .rk-meta'); if (!m) return null;"
             " const id = m.textContent.split('\\u00b7').map(s => s.trim()).find(s => /^[A-Za-z]+:\\S+$/.test(s));"
             " return id || null; })()")
# The notebook's panel in JupyterLab's main area (window.jupyterapp: --LabApp.expose_app_in_browser).
PANEL = ("[...window.jupyterapp.shell.widgets('main')]"
         ".find(w => w.sessionContext && (w.context || {}).path === 'notebooks/screen.ipynb')")
KERNEL_IDLE = (f"(() => {{ const p = {PANEL}; const s = p && p.sessionContext.session;"
               " return !!(s && s.kernel && s.kernel.status === 'idle')"
               " && document.querySelectorAll('.jp-Notebook .jp-Cell').length >= 3; })()")
PAGE_TEXT = "document.body ? document.body.innerText.slice(-1500) : ''"
KERNEL_STATE = (f"(() => {{ if (!window.jupyterapp) return 'no JupyterLab app'; const p = {PANEL};"
                " if (!p) return 'the notebook is not open'; const s = p.sessionContext.session;"
                " if (!s) return 'no session'; return s.kernel ? 'kernel ' + s.kernel.status : 'no kernel'; })()")


def stop(process: subprocess.Popen | None, seconds: float = 5.0) -> None:
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(seconds)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(seconds)


def kill_left_over(marker: str) -> None:
    """Processes whose command line names ``marker`` (this test's own runtime folder: the kernels the
    server started, in sessions of their own), if the server's shutdown left any; by process id."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            if marker.encode() in (proc / "cmdline").read_bytes():
                os.kill(int(proc.name), signal.SIGKILL)


def sheet(project: Path) -> pd.DataFrame:
    path = project / "data" / "screening" / "sample" / "title_abstract.csv"
    return pd.read_csv(path, dtype=str, keep_default_na=False).set_index("record_id")


def test_a_person_screens_two_records_with_the_keyboard_in_jupyterlab(tmp_path):
    project = init_project(tmp_path / "review", example="ketamine").root
    notebook = project / "notebooks" / "screen.ipynb"
    nb = json.loads(notebook.read_text(encoding="utf-8"))
    settings = nb["cells"][1]["source"]
    assert any('reviewer = "reviewer1"' in line for line in settings), settings
    # What a person does first: set the reviewer in the notebook's settings cell.
    nb["cells"][1]["source"] = [line.replace('"reviewer1"', f'"{REVIEWER}"', 1) for line in settings]
    notebook.write_text(json.dumps(nb, indent=1), encoding="utf-8")
    before = sheet(project)
    assert (before[REVIEWER] == "").all()
    reasons = Project.load(project).protocol().screening_reasons["title_abstract"]

    home, runtime = tmp_path / "jupyter", tmp_path / "jupyter-runtime"  # nothing of this machine's Jupyter set-up
    for folder in (home, runtime):
        folder.mkdir()
    port, token = free_port(), secrets.token_hex(16)
    env = {k: v for k, v in os.environ.items()
           if k not in ("REVIEWKIT_PROJECT", "JUPYTER_CONFIG_DIR", "JUPYTER_PATH", "JUPYTER_DATA_DIR")
           and "proxy" not in k.lower()}
    env.update(IPYTHONDIR=str(home / "ipython"), JUPYTER_CONFIG_DIR=str(home / "config"), JUPYTER_DATA_DIR=str(home / "data"),
               JUPYTER_RUNTIME_DIR=str(runtime), JUPYTERLAB_SETTINGS_DIR=str(home / "settings"),
               JUPYTERLAB_WORKSPACES_DIR=str(home / "workspaces"), PYTHONUNBUFFERED="1")
    server_cmd = [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ServerApp.ip=127.0.0.1",
                  f"--ServerApp.port={port}", "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}",
                  f"--ServerApp.root_dir={project}", "--LabApp.expose_app_in_browser=True",
                  "--LabApp.news_url=None", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
                  "--LabApp.extension_manager=readonly", "--ServerApp.terminals_enabled=False",
                  *(["--allow-root"] if os.geteuid() == 0 else [])]
    profile = tmp_path / "chromium-profile"
    browser_cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--no-default-browser-check",
                   "--disable-background-networking", "--disable-component-update", "--disable-sync",
                   "--disable-extensions", "--disable-default-apps", "--no-proxy-server",
                   "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
                   f"--user-data-dir={profile}", "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0",
                   "--window-size=1280,1000", "about:blank"]
    base = f"http://127.0.0.1:{port}"
    server = browser = page = None
    log = tmp_path / "jupyter.log"
    started = time.monotonic()
    try:
        with log.open("wb") as out:
            server = subprocess.Popen(server_cmd, cwd=project, env=env, stdout=out, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL)
        browser = subprocess.Popen(browser_cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                   stdin=subprocess.DEVNULL)

        def server_log() -> str:
            return "JupyterLab said: " + log.read_text(errors="replace")[-2000:]

        def up() -> bool:
            if server.poll() is not None:
                raise Gone(f"JupyterLab exited with status {server.returncode}")
            return json.loads(get(f"{base}/api/status?token={token}")).get("started") is not None

        wait("JupyterLab to answer", up, 30, every=0.3, explain=server_log)
        def devtools_port() -> str:
            if browser.poll() is not None:
                raise Gone(f"Chromium exited with status {browser.returncode}")
            return (profile / "DevToolsActivePort").read_text().split()[0]

        port_text = wait("Chromium's DevTools port", devtools_port, 15)
        targets = json.loads(get(f"http://127.0.0.1:{port_text}/json/list"))
        page = DevTools(next(t for t in targets if t["type"] == "page")["webSocketDebuggerUrl"])

        def page_text() -> str:
            with contextlib.suppress(Exception):
                return f"{page.js(KERNEL_STATE)}. The page ends: {page.js(PAGE_TEXT)}"
            return ""

        page.call("Page.navigate", url=f"{base}/lab/tree/notebooks/screen.ipynb?token={token}")
        wait("the notebook open with its kernel idle", lambda: page.js(KERNEL_IDLE), 30, explain=page_text)
        page.js(f"window.jupyterapp.shell.activateById(({PANEL}).id)")
        page.js("window.jupyterapp.commands.execute('notebook:run-all-cells')")  # Run All, as from the Run menu
        wait("the screening app's widgets", lambda: page.js(f"!!({KEY_BOX}) && !!({RECORD_ID})"), 40,
             explain=lambda: page_text() + " " + server_log())

        first = page.js(RECORD_ID)
        assert first in before.index and before.at[first, REVIEWER] == ""
        page.js(f"({KEY_BOX}).focus()")  # a person clicks the keys box once
        page.type_key("i")
        decided = wait(f"include of {first} in the CSV", lambda: sheet(project).at[first, REVIEWER] == "include", 15)
        assert decided
        second = wait("the next record", lambda: (lambda rid: rid if rid and rid != first else None)(page.js(RECORD_ID)),
                      15, explain=page_text)
        assert second in before.index
        page.js(f"({KEY_BOX}).focus()")
        page.type_key("1")  # the protocol's first exclusion reason ...
        page.type_key("e")  # ... then exclude
        wait(f"exclusion of {second} in the CSV", lambda: sheet(project).at[second, REVIEWER] == "exclude", 15,
             explain=page_text)
        elapsed = time.monotonic() - started

        after = sheet(project)
        row = after.loc[second]
        # The reason goes to exclusion_reason, or to notes when reviewer1's different reason is there already.
        assert row["exclusion_reason"] == reasons[0] or f"{REVIEWER}: " in row["notes"] and reasons[0] in row["notes"], \
            dict(row)
        # Exactly those two cells of the reviewer's column changed; every other person's entry is as it was.
        changed = after[REVIEWER] != before[REVIEWER]
        assert sorted(after.index[changed]) == sorted([first, second])
        for column in ("reviewer1", "final"):
            assert after[column].equals(before[column]), column
        # The app's progress line, redrawn after the write, counts both.
        wait("the progress line to count both decisions",
             lambda: f"as {REVIEWER}: 2 of {len(before)} screened, 1 included, 1 excluded"
             in page.js("document.querySelector('.rk-app').textContent"), 10, explain=page_text)
        print(f"screened two records in JupyterLab in {elapsed:.1f} s")
    finally:
        if page is not None:
            page.close()
        stop(browser)
        if server is not None and server.poll() is None:
            with contextlib.suppress(Exception):  # shuts its kernels down too
                get(f"{base}/api/shutdown?token={token}", timeout=5, method="POST")
            with contextlib.suppress(subprocess.TimeoutExpired):
                server.wait(10)
        stop(server)
        kill_left_over(str(runtime))
