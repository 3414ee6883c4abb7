"""deploy/: the HAProxy configuration and the cluster launcher's arguments (the running cluster:
tests/e2e/test_cluster_e2e.py)."""

import json
import os
import re
from pathlib import Path

import pytest

from deploy import cluster, haproxy
from tests.harness.haproxy import available

ROOT = Path(__file__).resolve().parent.parent
needs_haproxy = pytest.mark.skipif(not available(), reason="haproxy is not installed (make test installs it when run as root)")


def local(n: int = 2, **kwargs) -> str:
    return haproxy.config("127.0.0.1:8080", [f"127.0.0.1:{8081 + i}" for i in range(n)], **kwargs)


@needs_haproxy
@pytest.mark.parametrize("n", [1, 2, 16])
def test_haproxy_accepts_the_configuration(tmp_path, n):
    path = tmp_path / "haproxy.cfg"
    path.write_text(local(n, stats_socket=tmp_path / "s.sock"))
    haproxy.check(path)


@needs_haproxy
def test_haproxy_accepts_the_checked_in_example():
    haproxy.check(ROOT / "deploy" / "haproxy.cfg")


@needs_haproxy
def test_haproxy_refusal_is_reported(tmp_path):
    path = tmp_path / "bad.cfg"
    path.write_text(local().replace("balance hash", "balance nonsense"))
    with pytest.raises(haproxy.HAProxyError, match="balance only supports"):
        haproxy.check(path)


def test_checked_in_example_is_what_the_code_writes():
    # `python -m deploy.haproxy > deploy/haproxy.cfg` after changing deploy/haproxy.py
    assert (ROOT / "deploy" / "haproxy.cfg").read_text() == haproxy.example()


def test_the_key_picks_the_replica_on_a_consistent_ring():
    cfg = local()
    assert "balance hash var(txn.api_key)\n" in cfg
    assert "hash-type consistent\n" in cfg
    # Authorization (its scheme dropped) is set last, so it wins over x-api-key.
    sets = re.findall(r"http-request set-var\(txn\.api_key\) (.*)", cfg)
    assert sets == [
        "req.fhdr(x-api-key)",
        'req.fhdr(authorization),\'regsub("^bearer +","",i)\' if { req.fhdr(authorization) -m found }',
    ]
    assert re.findall(r"server (\S+) (\S+) id (\d+)", cfg) == [("replica1", "127.0.0.1:8081", "1"), ("replica2", "127.0.0.1:8082", "2")]


def test_nothing_buffers_a_stream():
    cfg = local()
    assert not re.search(r"^\s*(compression|option http-buffer-request|filter)\b", cfg, re.M)
    timeouts = dict(re.findall(r"^\s*timeout (server|client) (\d+)m$", cfg, re.M))
    assert int(timeouts["server"]) >= 10 and int(timeouts["client"]) >= 10


def test_replicas_are_checked_on_the_addons_health_endpoint():
    cfg = haproxy.config("fd@3", ["127.0.0.1:1"], checks=haproxy.Checks(inter_ms=100, fastinter_ms=50, fall=3, rise=1))
    assert "http-check send meth GET uri /normalize/health " in cfg
    assert "default-server check inter 100 fastinter 50 fall 3 rise 1 observe layer4" in cfg
    assert "bind fd@3\n" in cfg
    assert "stats socket" not in cfg


def test_haproxys_own_errors_are_openai_errors():
    bodies = dict(re.findall(r"http-error status (\d+) content-type application/json string '([^']*)'", local()))
    assert sorted(bodies) == ["502", "503", "504"]
    for body in bodies.values():
        error = json.loads(body)["error"]
        assert set(error) == {"message", "type", "param", "code"} and error["message"].startswith("openai-normalize: ")


def test_the_log_never_holds_a_key_or_a_query():
    cfg = local()
    log_format = re.search(r'log-format "([^"]*)"', cfg).group(1)
    fields = log_format.split()
    assert fields[-2:] == ["%HM", "%HP"]  # the path without its query string
    assert not {"%HU", "%HQ", "%r", "%{+Q}r", "%hr", "%hrl"} & set(fields)
    assert "sha2(256),bytes(0,4),hex" in log_format
    assert "capture request header" not in cfg


def test_no_replica_is_no_configuration():
    with pytest.raises(ValueError):
        haproxy.config("127.0.0.1:8080", [])


# -- the launcher's arguments ------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "host"),
    [
        ("https://integrate.api.nvidia.com", "integrate.api.nvidia.com"),
        ("http://127.0.0.1:8000", "127.0.0.1:8000"),
        ("http://[::1]:8000/", "[::1]:8000"),
    ],
)
def test_the_upstream_is_a_target(url, host):
    assert cluster.target_host(url) == host


@pytest.mark.parametrize("url", ["integrate.api.nvidia.com", "ftp://x", "http://"])
def test_a_bad_upstream_is_refused(url):
    with pytest.raises(cluster.ClusterError):
        cluster.target_host(url)


def test_replicas_run_lazy_in_reverse_mode():
    argv = cluster.replica_argv("https://integrate.api.nvidia.com", 8081, ["--set", "normalize_drop_params=x"])
    joined = " ".join(argv)
    assert "--mode reverse:https://integrate.api.nvidia.com --listen-host 127.0.0.1 --listen-port 8081" in joined
    assert "--set normalize_hosts=integrate.api.nvidia.com" in joined
    assert "--set connection_strategy=lazy" in joined
    assert argv[-2:] == ["--set", "normalize_drop_params=x"]


def test_defaults_one_replica_per_core_on_the_ports_after_haproxys():
    args = cluster.parse_args([])
    assert args.replicas == len(os.sched_getaffinity(0))
    assert (args.port, args.base_port, args.listen_host) == (8080, 8081, "127.0.0.1")
    args = cluster.parse_args(["-n", "3", "--port", "9000", "--", "--set", "normalize_models=m"])
    assert cluster.Cluster(args).ports == [9001, 9002, 9003]
    assert args.mitmdump == ["--set", "normalize_models=m"]


@pytest.mark.parametrize("argv", [["--replicas", "0"], ["--port", "8082", "--base-port", "8081", "-n", "2"], ["--upstream", "nowhere"]])
def test_bad_launcher_arguments_are_refused(argv):
    with pytest.raises(SystemExit):
        cluster.parse_args(argv)


def test_print_config(capsys, tmp_path):
    assert cluster.main(["-n", "2", "--run-dir", str(tmp_path), "--print-config"]) == 0
    assert capsys.readouterr().out == local(2, stats_socket=tmp_path / "haproxy.sock")
