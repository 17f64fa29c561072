"""`biomae review` at the API level (Starlette's test client, no browser): the token gate, no path
traversal, decisions saved at once and kept across restarts, filters, media, summary, export."""

from __future__ import annotations

import io
import json
import os
import re
import signal
import subprocess
import sys
import urllib.request

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

pytest.importorskip("starlette", reason="the review extra (pip install biomae[review])")
from starlette.testclient import TestClient  # noqa: E402

from biomae.cli import main  # noqa: E402
from biomae.review import media  # noqa: E402
from biomae.review.results import summary  # noqa: E402
from biomae.review.server import create_app  # noqa: E402
from biomae.review.store import ReviewError, ReviewStore, wilson_interval  # noqa: E402

TOKEN = "secret-token"


@pytest.fixture
def run_dir(example_path, tmp_path):
    """A `biomae annotate` folder: the bundled example, energy detector (11 events)."""
    out = tmp_path / "out"
    assert main(["annotate", str(example_path), "--out", str(out), "--detector", "energy"]) == 0
    return out


@pytest.fixture
def client(run_dir):
    return TestClient(create_app(ReviewStore(run_dir, reviewer="ana"), TOKEN))


def test_nothing_is_served_without_the_token(client):
    for path in ("/", "/app.js", "/api/events", "/api/meta", "/api/summary"):
        assert client.get(path).status_code == 403, path
        assert client.get(path, headers={"X-Review-Token": "wrong"}).status_code == 403, path
    first = client.get("/api/events").status_code
    assert first == 403
    assert client.get("/?token=" + TOKEN).status_code == 200  # sets the cookie
    assert client.get("/api/events").status_code == 200


def test_no_path_traversal(client, run_dir):
    client.headers["X-Review-Token"] = TOKEN
    probes = [
        "/api/audio/..%2F..%2F..%2F..%2Fetc%2Fpasswd",
        "/api/spec/../../../../etc/passwd",
        "/api/event/%2Fetc%2Fpasswd",
        "/api/audio/" + str(run_dir / "summary.csv"),
        "/static/..%2F..%2Fpyproject.toml",
        "/app.js/../../../pyproject.toml",
        "/..%2F..%2Fetc%2Fpasswd",
    ]
    for path in probes:
        response = client.get(path)
        assert response.status_code == 404, path
        assert "root:" not in response.text and "[project]" not in response.text


def test_decisions_are_saved_at_once_and_survive_a_restart(client, run_dir):
    client.headers["X-Review-Token"] = TOKEN
    ids = [e["event_id"] for e in client.get("/api/events").json()["events"]]
    assert ids[0] == "data/example:0" and len(ids) == 11
    assert client.post(f"/api/decide/{ids[0]}", json={"status": "accepted"}).status_code == 200
    assert client.post(f"/api/decide/{ids[1]}", json={"status": "rejected"}).status_code == 200
    relabelled = client.post(f"/api/decide/{ids[2]}", json={"label": "trill"}).json()
    assert relabelled["status"] == "accepted" and relabelled["changed"] == "label"
    moved = client.post(f"/api/decide/{ids[3]}", json={"end_s": 3.5, "high_hz": 9000}).json()
    assert moved["changed"] == "end_s;high_hz"
    added = client.post(
        "/api/add",
        json={
            "key": "data/example",
            "start_s": 9.1,
            "end_s": 9.4,
            "low_hz": 2000,
            "high_hz": 4000,
            "label": "missed",
        },  # fmt: skip
    ).json()
    assert added["event_id"] == "data/example:added-0" and added["status"] == "added"

    table = pd.read_csv(run_dir / "review.csv", keep_default_na=False).set_index("event_id")
    assert list(table["status"]) == ["accepted", "rejected", "accepted", "accepted", "added"]
    assert table.loc[ids[2], "label"] == "trill" and table.loc[ids[2], "orig_label"] == "call"
    assert table.loc[ids[3], "end_s"] == 3.5 and table.loc[ids[3], "orig_end_s"] != 3.5
    assert set(table["reviewer"]) == {"ana"} and all(table["updated_utc"])
    log = [json.loads(line) for line in (run_dir / "review.log.jsonl").read_text().splitlines()]
    assert [e["action"] for e in log] == ["decide"] * 4 + ["add"]

    again = ReviewStore(run_dir)  # a restarted server
    assert again.event(ids[2])["label"] == "trill" and again.event(ids[3])["end_s"] == 3.5
    assert again.events(reviewed="yes")["total"] == 5
    assert again.events(reviewed="no")["total"] == 7
    again.undo(ids[0])
    again.undo(added["event_id"])
    assert ReviewStore(run_dir).events(reviewed="yes")["total"] == 3


def test_a_bad_decision_is_refused_and_nothing_written(client, run_dir):
    client.headers["X-Review-Token"] = TOKEN
    response = client.post("/api/decide/data/example:0", json={"start_s": 5.0, "end_s": 4.0})
    assert response.status_code == 400 and "start < end" in response.json()["error"]
    response = client.post("/api/decide/data/example:0", json={"status": "maybe"})
    assert response.status_code == 400 and "accepted" in response.json()["error"]
    assert client.post("/api/decide/data/example:99", json={}).status_code == 404
    response = client.post("/api/decide/data/example:0", json=["accepted"])
    assert response.status_code == 400 and "JSON object" in response.json()["error"]
    assert client.post("/api/add", content=b"{not json").status_code == 400
    assert not (run_dir / "review.csv").exists()


def test_an_interrupted_save_keeps_the_previous_table(run_dir, monkeypatch):
    store = ReviewStore(run_dir)
    store.decide("data/example:0", "accepted")
    before = (run_dir / "review.csv").read_bytes()

    def crash(*args):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError):
        store.decide("data/example:1", "rejected")
    assert (run_dir / "review.csv").read_bytes() == before


def test_filters(run_dir):
    store = ReviewStore(run_dir)
    store.decide("data/example:0", "rejected")
    store.decide("data/example:1", label="trill")
    scores = store.table["score"]
    high = store.events(min_score=0.7)
    assert high["total"] == int((scores >= 0.7).sum()) and high["total"] > 0
    assert store.events(max_score=0.7)["total"] == int((scores <= 0.7).sum())
    assert [e["event_id"] for e in store.events(label="trill")["events"]] == ["data/example:1"]
    assert store.events(reviewed="rejected")["total"] == 1
    assert store.events(recording="data/example", offset=10, limit=5)["total"] == 11
    assert len(store.events(offset=10, limit=5)["events"]) == 1
    assert store.events(recording="elsewhere")["total"] == 0
    with pytest.raises(ReviewError, match="no recording"):
        store.add("elsewhere", start_s=0, end_s=1, low_hz=0, high_hz=1)


def test_spectrogram_and_clip(client):
    client.headers["X-Review-Token"] = TOKEN
    event = client.get("/api/event/data/example:2").json()
    view = event["view"]
    assert view["t0_s"] <= event["start_s"] - 0.99 and view["t1_s"] >= event["end_s"] + 0.99
    png = client.get("/api/spec/data/example:2")
    assert png.headers["content-type"] == "image/png" and png.content[:4] == b"\x89PNG"
    wav = client.get("/api/audio/data/example:2")
    audio, rate = sf.read(io.BytesIO(wav.content))
    assert rate == event["recording"]["sample_rate"] and view["slow"] == 1
    assert len(audio) == pytest.approx((view["t1_s"] - view["t0_s"]) * rate, abs=2)


def test_ultrasonic_clips_are_slowed_down_ten_times(tmp_path):
    path = tmp_path / "bat.wav"
    sf.write(path, np.random.default_rng(0).normal(0, 0.1, 192_000), 192_000)
    recording = {"path": str(path), "duration_s": 1.0, "sample_rate": 192_000}
    event = {"start_s": 0.4, "end_s": 0.41, "low_hz": 30e3, "high_hz": 50e3}
    audio, rate = sf.read(io.BytesIO(media.clip_wav(event, recording)))
    assert rate == 19_200 and len(audio) == 192_000  # every sample, played 10x slower


def test_summary_precision_with_a_wilson_interval(run_dir):
    low, high = wilson_interval(8, 10)
    assert (round(low, 3), round(high, 3)) == (0.49, 0.943)
    store = ReviewStore(run_dir)
    for i in range(4):
        store.decide(f"data/example:{i}", "accepted" if i else "rejected")
    store.add("data/example", start_s=9.1, end_s=9.4, low_hz=2000, high_hz=4000)
    result = summary(store)
    overall = result["overall"]
    assert (overall["reviewed"], overall["accepted"], overall["rejected"]) == (4, 3, 1)
    assert overall["added"] == 1 and overall["precision"] == 0.75
    assert (overall["precision_low"], overall["precision_high"]) == pytest.approx(
        wilson_interval(3, 4)
    )
    assert result["recordings"][0]["recording"] == "data/example"
    assert result["labels"] == [{"label": "call"} | overall]


def test_export_writes_the_reviewed_tables(run_dir, tmp_path, capsys):
    from biomae.annotations import read_annotations

    store = ReviewStore(run_dir)
    store.decide("data/example:0", "rejected")
    store.decide("data/example:1", label="trill", start_s=2.1)
    store.add("data/example", start_s=9.1, end_s=9.4, low_hz=2000, high_hz=4000, label="missed")
    dest = tmp_path / "reviewed"
    assert main(["review", str(run_dir), "--export", str(dest), "--format", "raven,csv"]) == 0
    table = read_annotations(dest / "data" / "example.selections.txt", "raven")
    assert len(table) == 11  # 11 detected - 1 rejected + 1 drawn
    assert "trill" in set(table["label"]) and "missed" in set(table["label"])
    assert 2.1 in set(table["start_s"].round(3))
    assert (dest / "data" / "example.events.csv").is_file() and (dest / "events.csv").is_file()
    only = tmp_path / "only"
    assert main(["review", str(run_dir), "--export", str(only), "--only-reviewed"]) == 0
    assert len(read_annotations(only / "data" / "example.selections.txt", "raven")) == 2
    assert main(["review", str(run_dir), "--summary"]) == 0
    assert "50.0% [" in capsys.readouterr().out  # 1 accepted, 1 rejected


def test_review_of_a_folder_that_is_no_run_is_refused(tmp_path, capsys):
    assert main(["review", str(tmp_path)]) == 2
    assert "summary.csv not found" in capsys.readouterr().err


def test_killing_the_server_loses_no_decision(run_dir):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    server = subprocess.Popen(
        [sys.executable, "-m", "biomae", "review", str(run_dir), "--no-browser"],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        url = ""
        for line in server.stdout:
            if match := re.search(r"http://127\.0\.0\.1:\d+/\?token=\S+", line):
                url = match[0]
                break
        base, token = url.split("/?token=")
        request = urllib.request.Request(
            base + "/api/decide/data/example:4",
            data=json.dumps({"status": "rejected"}).encode(),
            headers={"X-Review-Token": token, "Content-Type": "application/json"},
        )
        for _ in range(100):  # the server may still be starting
            try:
                urllib.request.urlopen(request, timeout=5).read()
                break
            except OSError:
                import time

                time.sleep(0.1)
        server.send_signal(signal.SIGKILL)
    finally:
        server.kill()
        server.wait()
    assert ReviewStore(run_dir).event("data/example:4")["status"] == "rejected"
