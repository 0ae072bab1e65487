"""Crash test: SIGKILL the server under load; every 202 survives and is applied exactly once.

A real `opencdp serve` process on a real store, real HTTP load from threads in this process,
then a restart on the same store. Requests answered with an error must not be stored.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from tests.support.batches import batch
from tests.support.server import free_port

pytestmark = pytest.mark.slow


def _start(data_dir: Path, database_url: str, port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "OPENCDP_LOG_LEVEL": "WARNING"}
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "opencdp.cli",
            "serve",
            "--port",
            str(port),
            "--data-dir",
            str(data_dir),
            "--database-url",
            database_url,
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _wait_ready(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError("server did not become ready")


def test_sigkill_under_load_loses_nothing_accepted(tmp_path: Path, database_url: str) -> None:
    data_dir = tmp_path / "data"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = _start(data_dir, database_url, port)
    try:
        _wait_ready(url)
        creds = json.loads((data_dir / "credentials.json").read_text())
        auth = (creds["api_key"], creds["api_secret"])
        accepted: dict[str, int] = {}
        rejected: set[str] = set()
        lock = threading.Lock()
        stop = threading.Event()

        def load(worker: int) -> None:
            with httpx.Client(base_url=url, auth=auth, timeout=5) as client:
                i = 0
                while not stop.is_set() and i < 5000:
                    i += 1
                    sid = f"w{worker}-{i}-{uuid.uuid4().hex[:6]}"
                    bulk = i % 3 == 0
                    n_events = 1 + i % 4
                    body = batch(
                        customer_id=f"u{worker}-{i % 7}", events=n_events, source_request_id=sid
                    )
                    bad = i % 11 == 0
                    if bad:
                        body["events"][0]["event_type"] = 12345  # invalid: must not be stored
                    try:
                        if bulk:
                            r = client.post("/v2/bulkevents", json=[body])
                        else:
                            r = client.post("/v2/events", json=body)
                    except httpx.HTTPError:
                        if stop.is_set():
                            return
                        continue
                    with lock:
                        if r.status_code == 202:
                            accepted[sid] = n_events
                        elif 400 <= r.status_code < 500:
                            rejected.add(sid)

        threads = [threading.Thread(target=load, args=(w,)) for w in range(8)]
        for t in threads:
            t.start()
        time.sleep(2.5)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        stop.set()
        for t in threads:
            t.join()
        assert len(accepted) > 100, "the load did not get going"
        assert rejected, "no invalid batch was sent"

        proc = _start(data_dir, database_url, port)
        _wait_ready(url)
        engine = sa.create_engine(database_url)
        deadline = time.monotonic() + 60
        with engine.connect() as conn:
            while True:
                pending = conn.execute(
                    sa.text("SELECT count(*) FROM inbox WHERE NOT processed")
                ).scalar_one()
                conn.commit()
                if pending == 0:
                    break
                assert time.monotonic() < deadline, f"{pending} batches never processed"
                time.sleep(0.2)
            stored = {
                r[0]: r[1]
                for r in conn.execute(
                    sa.text(
                        "SELECT i.source_request_id, count(e.id) FROM inbox i "
                        "LEFT JOIN events e ON e.batch_id = i.id GROUP BY i.source_request_id"
                    )
                )
            }
        engine.dispose()
        missing = [sid for sid in accepted if sid not in stored]
        assert not missing, f"{len(missing)} accepted batches lost, e.g. {missing[:3]}"
        wrong = {sid: (n, stored[sid]) for sid, n in accepted.items() if stored[sid] != n}
        assert not wrong, f"events applied a wrong number of times: {list(wrong.items())[:3]}"
        assert not (rejected & stored.keys()), "a rejected batch was stored"
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(10)
