"""Tracking set-up when MLFLOW_TRACKING_URI names a server that does not answer."""

from __future__ import annotations

import os
import socket

import pytest

from pipeline import tracking


def closed_port() -> int:
    """A loopback port nothing listens on (bound, read, released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def no_http_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in tracking.HTTP_DEFAULTS:
        monkeypatch.delenv(name, raising=False)


def test_setup_fails_before_any_request_naming_the_uri(
    clean_mlflow, monkeypatch: pytest.MonkeyPatch, no_http_settings
) -> None:
    uri = f"http://127.0.0.1:{closed_port()}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)

    with pytest.raises(tracking.TrackingUnavailable) as raised:
        tracking.setup("stance-classifier")
    assert str(raised.value) == (
        f"MLflow tracking server {uri} (MLFLOW_TRACKING_URI) is unreachable: connection "
        "refused. Start it (or point MLFLOW_TRACKING_URI at a running server, or unset it "
        "to log to the embedded store mlflow.db) and run the stage again."
    )
    # MLflow's own retries, for a server lost later in the stage: seconds, not minutes.
    for name, value in tracking.HTTP_DEFAULTS.items():
        assert os.environ[name] == value


def test_settings_from_the_environment_are_kept(
    clean_mlflow, monkeypatch: pytest.MonkeyPatch, no_http_settings
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{closed_port()}")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "5")
    with pytest.raises(tracking.TrackingUnavailable):
        tracking.setup("stance-classifier")
    assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "5"


def test_no_server_configured_means_nothing_to_probe(clean_mlflow, monkeypatch) -> None:
    assert tracking.server_uri() is None and tracking.server_unreachable() is None
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///elsewhere.db")
    assert tracking.server_uri() is None and tracking.server_unreachable() is None


def test_messages_never_show_a_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "https://user:secret@tracking.example:8443/mlflow")
    assert tracking.server_label() == (
        "MLflow tracking server https://tracking.example:8443/mlflow (MLFLOW_TRACKING_URI)"
    )
