"""What a `divekit` process loads before it needs it (issue 19): each check runs a fresh interpreter."""

import json
import subprocess
import sys

HEAVY = ("torch", "torch._dynamo", "matplotlib", "pandas", "IPython", "sympy")


def loaded_after(code: str) -> list[str]:
    """The HEAVY modules loaded once `code` has run in a fresh interpreter."""
    probe = f"import sys\n{code}\nprint(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    return eval(out.strip().splitlines()[-1])


def test_import_divekit_loads_nothing_heavy():
    assert loaded_after("import divekit") == []


def test_the_whole_cli_parser_builds_without_torch():
    # `divekit --help` and usage errors: every verb's flags, TrainConfig's included
    assert loaded_after("from divekit.cli import build_parser; build_parser()") == []


def test_a_training_run_loads_torch_but_not_dynamo_pandas_or_matplotlib(tmp_path):
    run = (f"from divekit.cli import main\nassert main(['train', 'softmax-regression', '--data', 'digits', "
           f"'--epochs', '1', '--no-plot', '--no-progress', '--out', {str(tmp_path)!r}]) == 0")
    assert loaded_after(run) == ["torch"]


def test_lazy_names_are_the_real_ones():
    import divekit as dk
    from divekit.train import api

    assert dk.train is api.train and dk.fit is api.fit  # not the divekit.train subpackage
    assert set(dk.__all__) == set(dk._EXPORTS) and set(dk.__all__) <= set(dir(dk))
    assert all(getattr(dk, name) is not None for name in dk.__all__)


def test_the_command_flushes_its_output_before_it_exits():
    # divekit.cli.entry leaves through os._exit, which skips the interpreter's flush of stdout
    proc = subprocess.run([sys.executable, "-m", "divekit", "list", "datasets", "--json"], capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stderr
    assert "digits" in json.loads(proc.stdout.strip().splitlines()[-1])["datasets"]
    bad = subprocess.run([sys.executable, "-m", "divekit", "train", "no-such-model", "--data", "digits"],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "no-such-model" in bad.stderr


def test_the_wait_policy_is_passive_only_while_another_program_is_busy(tmp_path, monkeypatch):
    from divekit.core import host

    stat = tmp_path / "stat"
    stat.write_text("cpu  100 0 100 800 0 0 0 0 0 0\n")

    def sleep(_):  # meanwhile another program used 60 of the 200 ticks: 0.3 of the CPU time
        stat.write_text("cpu  150 0 110 940 0 0 0 0 0 0\n")

    monkeypatch.setattr(host.time, "sleep", sleep)
    monkeypatch.setattr(host.os, "cpu_count", lambda: 2)
    assert abs(host.busy_elsewhere(stat=str(stat)) - 0.6) < 1e-9  # cores' worth
    assert host.busy_elsewhere(stat=str(tmp_path / "absent")) == 0.0
    assert host.choose_wait_policy(0.6) == "PASSIVE" and host.choose_wait_policy(0.1) is None


def test_a_wait_policy_the_user_set_is_kept():
    code = "import os; os.environ['OMP_WAIT_POLICY'] = 'ACTIVE'\nimport divekit\nprint(divekit.WAIT_POLICY)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["ACTIVE"]
