"""`xlhost exp serve` driven in headless Chromium over the DevTools protocol.

Usage: dashboard_browser.py XLHOST PLUGIN_DIR WORKDIR
Two real tiny runs, one finished and one still training; the page must list both with
their status, draw two series when both are selected, advance the running run's curve
without a reload, show the differing config key in the compare view, and hide a run
behind a filter expression. A third, a finished memory model with its ablations: its
memory page must show a heatmap with reads, the most-read rows with their knowledge-file
text and the ablation table, and its inspect box the rows read for a typed prompt.
Issue 32: panels for every figure in sections (system ones included) with one x-axis, live
values of a running run, the compare table with differences highlighted, a seed group's band
and its sub-runs, grouping by a config key, tags/notes, a run from a second --out folder, and
the open run and panel layout kept in the URL.
Saves WORKDIR/dashboard.png, WORKDIR/seed_group.png and WORKDIR/memory.png.
"""
import base64
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

xlhost, plugin_dir, work = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
shutil.rmtree(work, ignore_errors=True)
work.mkdir(parents=True)
chromium = shutil.which("chromium")
if not chromium:
    sys.exit("chromium is not installed (scripts/setup.sh installs it)")
failures = []


def check(condition, message):
    print(("ok   " if condition else "FAIL ") + message, flush=True)
    if not condition:
        failures.append(message)


class DevTools:
    """The few frames of RFC 6455 the DevTools protocol needs: masked text out, text in."""

    def __init__(self, url):
        host, port, path = re.match(r"ws://([^:/]+):(\d+)(/.*)", url).groups()
        self.sock = socket.create_connection((host, int(port)), timeout=30)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                           f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            head += self.sock.recv(1)
        assert b" 101 " in head.split(b"\r\n")[0], head
        self.next_id = 0

    def _read(self, n):
        data = b""
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            if not chunk:
                raise ConnectionError("DevTools closed the connection")
            data += chunk
        return data

    def call(self, method, **params):
        self.next_id += 1
        payload = json.dumps({"id": self.next_id, "method": method, "params": params}).encode()
        mask = os.urandom(4)
        size = len(payload)
        header = bytes([0x81]) + (bytes([0x80 | size]) if size < 126 else bytes([0x80 | 126]) + size.to_bytes(2, "big")
                                  if size < 65536 else bytes([0x80 | 127]) + size.to_bytes(8, "big"))
        self.sock.sendall(header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))
        while True:
            first, second = self._read(2)
            size = second & 0x7F
            if size == 126:
                size = int.from_bytes(self._read(2), "big")
            elif size == 127:
                size = int.from_bytes(self._read(8), "big")
            message = json.loads(self._read(size))
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message["result"]

    def js(self, expression):
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression, seconds=20):
        deadline = time.time() + seconds
        while time.time() < deadline:
            try:
                if self.js(expression):
                    return True
            except RuntimeError:
                pass
            time.sleep(0.2)
        return False


def screenshot(page, name, **options):
    shot = page.call("Page.captureScreenshot", format="png", **options)
    (work / name).write_bytes(base64.b64decode(shot["data"]))
    print(f"screenshot: {work / name}")


def config(name, lr, steps, memory=False):
    path = work / f"{name}.json"
    model = {"dim": 32, "n_layers": 2, "n_heads": 4, "n_kv_heads": 2, "vocab_size": 259}
    if memory:
        model.update({"knowledge_num": 256, "knowledge_length": 64, "knowledge_dim": 16, "num_selected": 4,
                      "fusion_heads": 4, "fusion_mask": "causal"})
    path.write_text(json.dumps({
        "experiment": {"id": name, "description": f"lr {lr}"},
        "model": model,
        "data": {"train_path": str(work / "data/train.jsonl"), "val_path": str(work / "data/val.jsonl"), "seq_len": 32,
                 "cache_dir": str(work / "cache"), "knowledge_path": str(work / "data/knowledge.txt")},
        "eval": {"max_batches": 2, **({"facts_path": str(work / "data/facts.jsonl"), "max_facts": 20} if name == "finished" else {})},
        "train": {"batch_size": 4, "max_steps": steps, "lr": lr, "log_interval": 1, "threads": 1},
        "metrics": {"enabled": False}, "run": {"out_dir": str(work / "out")}}))
    return str(path)


subprocess.run([xlhost, "data", "synth", "--out", str(work / "data"), "--entities", "20", "--train-docs", "300",
                "--val-docs", "40"], check=True, capture_output=True)
plugin = str(plugin_dir / "model_original.so")
subprocess.run([xlhost, "run", "-p", plugin, "-c", config("finished", 3e-3, 20)], check=True, capture_output=True)
subprocess.run([xlhost, "run", "-p", str(plugin_dir / "model_memory.so"), "-c", config("memory", 3e-3, 20, memory=True)],
               check=True, capture_output=True)
subprocess.run([xlhost, "eval", str(work / "out/memory"), "--ablate", "memory=all"], check=True, capture_output=True)
subprocess.run([xlhost, "run", "-p", plugin, "-c", config("group", 3e-3, 10), "--seeds", "2"], check=True, capture_output=True)
subprocess.run([xlhost, "eval", str(work / "out/finished"), "--task", str(work / "data/fact_choices.jsonl")], check=True,
               capture_output=True)
knowledge = set((work / "data/knowledge.txt").read_text().splitlines())
running = subprocess.Popen([xlhost, "run", "-p", plugin, "-c", config("running", 1e-4, 1000000)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
shutil.copytree(work / "out/finished", work / "elsewhere/out/copied")  # a run from a second --out folder
server = subprocess.Popen([xlhost, "exp", "serve", "--listen", "127.0.0.1:0", "--out", str(work / "out"),
                           "--out", str(work / "elsewhere/out")],
                          stdout=subprocess.PIPE, text=True, cwd=work)  # the project: the knowledge file is inside
browser = None
try:
    url = re.search(r"http://\S+/", server.stdout.readline()).group(0)
    log = work / "out/running/train.log"
    deadline = time.time() + 60
    while time.time() < deadline and (not log.exists() or len(log.read_text().splitlines()) < 3):
        time.sleep(0.2)
    browser = subprocess.Popen([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--remote-debugging-port=0",
                                f"--user-data-dir={work / 'chromium'}", "--window-size=1400,1800", "about:blank"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    endpoint = None
    for line in browser.stderr:
        m = re.search(r"DevTools listening on (ws://\S+)", line)
        if m:
            endpoint = m.group(1)
            break
    port = re.match(r"ws://[^:]+:(\d+)/", endpoint).group(1)
    pages = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list"))
    page = DevTools(next(p for p in pages if p["type"] == "page")["webSocketDebuggerUrl"])
    page.call("Page.enable")
    page.call("Page.navigate", url=url)
    check(page.wait_for("document.querySelectorAll('#runs tbody tr').length === 5"), "the page lists the five runs")
    statuses = dict(page.js("[...document.querySelectorAll('#runs tbody tr')].map(tr => [tr.dataset.id, tr.cells[4].textContent])"))
    check(statuses == {"finished": "completed", "running": "running", "memory": "completed", "group": "completed",
                       "copied": "completed"}, f"with their status: {statuses}")
    folder = page.js("document.querySelector('#runs tbody tr[data-id=copied]').lastElementChild.textContent")
    check(folder == str(work / "elsewhere/out"), f"a run from a second --out folder, with its folder shown: {folder!r}")
    group_loss = page.js("document.querySelector('#runs tbody tr[data-id=group]').cells[9].textContent")
    check(re.fullmatch(r"[\d.]+ ± [\d.e-]+", group_loss) is not None, f"a seed group's val loss with its spread: {group_loss!r}")
    scored = page.js("[...document.querySelectorAll('#runs tbody tr[data-id=finished] td')].map(td => td.textContent)")
    check(any(re.fullmatch(r"fact_choices\.jsonl \d+\.\d%", cell) for cell in scored),
          f"the finished run's benchmark (xlhost eval --task) in its row: {scored}")
    check(re.fullmatch(r"\d+\.\d%", scored[10]) is not None, f"fact recall in %, as the CLI shows it: {scored[10]!r}")

    page.js("window.loadedAt = performance.timeOrigin; "
            "document.querySelectorAll('#runs tbody tr:is([data-id=finished], [data-id=running]) input[type=checkbox]')"
            ".forEach(box => box.click()); true")
    check(page.wait_for("charts.loss && charts.loss.data.datasets.length === 2 && charts.loss.data.datasets.every(d => d.data.length > 0)"),
          "selecting both draws the loss panel with two series")
    # Issue 32: every logged figure at once, in sections; the system's among them.
    sections = page.js("[...document.querySelectorAll('#grid h3.section')].map(h => h.dataset.section)")
    check(sections[:2] == ["training", "system"], f"panels in sections, training and system first: {sections}")
    panels = page.js("[...document.querySelectorAll('#grid .panel')].map(p => p.dataset.metric)")
    check({"loss", "val_loss", "lr", "grad_norm", "tokens_per_s", "step_s", "data_s", "cpu_percent", "rss_mib"} <= set(panels),
          f"a panel for each figure: {panels}")
    system = page.js("({cpu: curves.finished.cpu_percent.every(v => v > 0), rss: curves.finished.rss_mib.every(v => v > 10)})")
    check(system == {"cpu": True, "rss": True}, f"the system panels have values (CPU %, resident MiB > 10): {system}")
    live = page.js("[...document.querySelector('#runs tbody tr[data-id=running]').cells].filter(c => c.className === 'live')"
                   ".map(c => c.textContent)")
    check(len(live) == 3 and all(re.fullmatch(r"[\d.]+", v) for v in live),
          f"the running run's steps, loss and tokens/s in the table while it trains: {live}")
    page.js("{ const x = document.getElementById('x'); x.value = 'tokens'; x.dispatchEvent(new Event('change')); } true")
    check(page.wait_for("charts.loss.data.datasets[0].data.at(-1).x === curves[view.sel[0]].tokens.at(-1)"),
          "the x-axis switches to tokens for every panel")
    page.js("{ const x = document.getElementById('x'); x.value = 'step'; x.dispatchEvent(new Event('change')); } true")
    page.js("document.querySelector('#grid h3[data-section=system]').click(); true")
    check(page.wait_for("!document.querySelector('#grid .panel[data-metric=rss_mib]') && view.collapsed.includes('system')"
                        " && decodeURIComponent(location.hash).includes('collapsed')"),
          "a section collapses, and the layout is kept in the URL")
    page.js("document.querySelector('#grid h3[data-section=system]').click(); true")
    first = page.js("curves.running.step.at(-1)")
    check(page.wait_for(f"curves.running.step.at(-1) > {first}", 30),
          f"the running run's last step advances from {first} without a reload")
    check(page.js("window.loadedAt === performance.timeOrigin"), "... in the same page load")
    check(page.wait_for("document.getElementById('compare').textContent.includes('train.lr')"),
          "the compare view shows the differing key train.lr")
    differs = page.js("[...document.querySelectorAll('#compare table.compare tr')].filter(tr => tr.cells[0].textContent === 'train.lr')"
                      ".map(tr => [...tr.cells].map(c => c.className))")
    check(len(differs) == 1 and "differs" in differs[0][2] and "differs" not in differs[0][1],
          f"... as a table, the second run's differing value highlighted: {differs}")
    check(page.js("document.querySelectorAll('#compare td.best').length") >= 1, "the best results are marked")
    page.js("const e = document.getElementById('expr'); e.value = 'train.lr<1e-3'; e.dispatchEvent(new Event('input')); true")
    rows = page.js("[...document.querySelectorAll('#runs tbody tr')].map(tr => tr.dataset.id)")
    check(rows == ["running"], f"the filter train.lr<1e-3 hides the other runs: {rows}")
    check("train.lr" in page.js("decodeURIComponent(location.hash)"), "the view is kept in the URL")
    page.js("document.getElementById('expr').value = ''; document.getElementById('expr').dispatchEvent(new Event('input')); true")
    page.js("document.querySelector('#runs tbody tr[data-id=finished] td:nth-child(2)').click(); true")
    check(page.wait_for("document.querySelector('#run code') && document.querySelector('#run code').textContent.includes('xlhost run')"
                        " && document.querySelector('#run button').textContent === 'copy'"),
          "a run's page shows its reproduction command with a copy button")
    # Issue 32: tags and a note, saved from the page into the run folder, kept across a reload.
    page.js("document.getElementById('tags').value = 'baseline, tiny'; document.getElementById('note').value = 'looks fine';"
            "document.getElementById('save-notes').click(); true")
    check(page.wait_for("document.getElementById('notes-saved').textContent === ' saved'"), "the page saves tags and a note")
    notes = json.loads((work / "out/finished/notes.json").read_text())
    check(notes == {"tags": ["baseline", "tiny"], "note": "looks fine"}, f"... into the run folder's notes.json: {notes}")
    try:
        urllib.request.urlopen(urllib.request.Request(url + "api/notes?id=finished", data=b'{"tags": [], "note": "x"}',
                                                      headers={"Content-Type": "application/json"}))
        forged = 200
    except urllib.error.HTTPError as e:
        forged = e.code
    check(forged == 403, f"a POST without the page's token is refused: {forged}")
    page.call("Page.reload")
    check(page.wait_for("document.getElementById('run-title').textContent === 'Run finished'"),
          "after a reload the open run is open again (kept in the URL)")
    check(page.wait_for("document.querySelector('#runs tbody tr[data-id=finished]') && "
                        "[...document.querySelector('#runs tbody tr[data-id=finished]').cells].some(c => c.textContent === 'baseline, tiny')"),
          "after a reload the runs table shows the tags")
    page.js("document.querySelector('#runs tbody tr[data-id=finished] td:nth-child(2)').click(); true")
    check(page.wait_for("document.getElementById('note') && document.getElementById('note').value === 'looks fine'"),
          "... and the run's page the note")
    screenshot(page, "dashboard.png")

    # Issue 32: a seed group draws the mean of its seeds with their min-max band.
    page.js("document.querySelectorAll('#runs tbody tr input[type=checkbox]').forEach(box => { if (box.checked) box.click(); });"
            "document.querySelector('#runs tbody tr[data-id=group] input[type=checkbox]').click(); true")
    check(page.wait_for("charts.loss && charts.loss.data.datasets.length === 3 && charts.loss.data.datasets[2].fill === '-1'"
                        " && charts.loss.data.datasets.every(d => d.data.length === 10)"),
          "a seed group's loss panel: the mean line and a min-max band over its 2 seeds")
    band = page.js("curves.group.loss.every((v, i) => curves.group.loss_min[i] <= v && v <= curves.group.loss_max[i])"
                   " && curves.group.seeds.length === 2 && curves.group.loss_min.some((v, i) => v < curves.group.loss_max[i])")
    check(band, "the mean lies within the band, which has width")
    page.js("document.querySelector('#runs tbody tr[data-id=group] button.expand').click(); true")
    check(page.wait_for("[...document.querySelectorAll('#runs tbody tr.seed')].map(tr => tr.dataset.id).join() === 'group-seed1337,group-seed1338'"),
          "the seed group expands to its two sub-runs")
    page.js("document.querySelector('#runs tbody tr[data-id=group-seed1338] input[type=checkbox]').click(); true")
    check(page.wait_for("charts.loss.data.datasets.length === 4 && curves['group-seed1338'].loss.length === 10"),
          "a sub-run's curve drawn beside its group's")
    screenshot(page, "seed_group.png")
    page.js("{ const g = document.getElementById('group'); g.value = 'train.lr'; g.dispatchEvent(new Event('input')); } true")
    heads = page.js("[...document.querySelectorAll('#runs tbody tr.group-head')].map(tr => tr.textContent)")
    check(len(heads) == 2 and heads[0].startswith("train.lr = 0.0001: 1 run") and heads[1].startswith("train.lr = 0.003: 4 runs"),
          f"grouped by train.lr: a line per value with its runs: {heads}")
    page.js("{ const g = document.getElementById('group'); g.value = ''; g.dispatchEvent(new Event('input')); } true")

    # Issue 29: the memory page of the memory run.
    page.js("document.querySelector('#runs tbody tr[data-id=memory] td:nth-child(2)').click(); true")
    check(page.wait_for("memoryPage && !document.getElementById('memory').hidden"), "the memory run opens its memory page")
    check(page.js("memoryPage.heatmap.flat().reduce((a, b) => a + b, 0)") == 20 * 4 * 32 * 4 * 2,
          "the heatmap holds every read: 20 steps x batch 4 x 32 tokens x 4 rows x 2 layers")
    top = page.js("[...document.querySelectorAll('#memory-top tr')].slice(1).map(tr => tr.cells[2].textContent)")
    texts = [t for t in top if not t.startswith("(padding")]  # rows past the knowledge file's lines
    check(len(texts) > 0 and all(t in knowledge for t in texts), f"the most-read rows show their knowledge lines: {top[:3]}")
    ablations = page.js("[...document.querySelectorAll('#memory-ablations tr')].slice(1).map(tr => tr.cells[0].textContent)")
    check(ablations == ["none", "off", "random", "shuffle"], f"the ablation table: {ablations}")
    page.js("document.getElementById('inspect-prompt').value = 'The capital of'; document.getElementById('inspect-go').click(); true")
    check(page.wait_for("inspection && inspection.prompt.length === 15 && document.querySelectorAll('#inspect-out tr').length > 30", 60),
          "the inspect box shows the rows read for each of the prompt's 15 tokens in both layers")
    read = page.js("inspection.prompt.flatMap(p => p.layers.flat()).map(r => r.text).filter(t => t)")
    check(len(read) > 0 and all(t in knowledge for t in read), f"... decoded to knowledge lines: {read[:2]}")
    page.js("document.querySelector('#runs tbody tr[data-id=memory] input[type=checkbox]').click(); true")
    check(page.wait_for("document.querySelector('#grid h3[data-section=memory]')"
                        " && document.querySelectorAll('#grid .panel[data-metric^=memory_]').length >= 3"),
          "the memory run's diagnostics get a section of panels of their own (memory)")
    page.js("document.getElementById('memory').scrollIntoView(); true")
    screenshot(page, "memory.png", captureBeyondViewport=True)
finally:
    for p in (browser, server, running):
        if p:
            p.send_signal(signal.SIGTERM if p is not browser else signal.SIGKILL)
            p.wait(timeout=30)

if failures:
    sys.exit(f"{len(failures)} check(s) failed")
print("all dashboard checks passed")
