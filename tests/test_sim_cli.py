"""`dynoscaler simulate`: table, report files, timing line and clear errors."""

from __future__ import annotations

import pytest

from dynoscaler.cli import main

SCENARIO = """\
name: tiny
description: a short spike for the command-line test
duration: 600
role: {min_dynos: 1, max_dynos: 6, target_deadline: 120, boot_time: 20, concurrency: 2}
arrivals: {type: spike, base: 0.3, peak: 3, start: 200, duration: 60}
service: {type: lognormal, mean: 2.0, cv: 0.5}
policies: [dynoscaler, hirefire]
"""


@pytest.fixture
def tiny(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(SCENARIO)
    return str(path)


def test_report_writes_a_table_and_one_plot_per_scenario(tiny, tmp_path, capsys):
    out = tmp_path / "report"
    assert main(["simulate", "--scenario", tiny, "--report", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "### tiny" in printed
    assert "| dynoscaler | " in printed and "| hirefire | " in printed
    assert "Goals for dynoscaler: " in printed
    readme = (out / "README.md").read_text()
    assert f"`dynoscaler simulate --scenario {tiny} --report {out}`" in readme
    assert "![tiny](tiny.png)" in readme
    assert (out / "tiny.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_timing_prints_jobs_and_speed(tiny, capsys):
    assert main(["simulate", "--scenario", tiny, "--policy", "guv", "--timing"]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith("tiny / guv: ")
    assert "h simulated in" in line and "x real time" in line


def test_bad_input_is_a_message_and_exit_code_2(tmp_path, capsys):
    broken = tmp_path / "broken.yaml"
    broken.write_text("duration: ten\nrole: {}\narrivals: {type: constant, rate: 1}\n")
    assert main(["simulate", "--scenario", str(broken)]) == 2
    error = capsys.readouterr().err
    assert "broken.yaml: " in error
    assert "'service' is a required property" in error
    assert "duration: 'ten' is not of type 'number'" in error
    assert main(["simulate", "--scenario", "sine-wave", "--policy", "magic"]) == 2
    assert "unknown policy 'magic'" in capsys.readouterr().err
