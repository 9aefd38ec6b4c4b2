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
    start = ("cpu  200 0 200 1600 0 0 0 0 0 0\ncpu0 100 0 100 800 0 0 0 0 0 0\n"
             "cpu1 100 0 100 800 0 0 0 0 0 0\ncpu2 0 0 0 0 0 0 0 0 0 0\nintr 1 2 3\n")
    stat.write_text(start)

    def sleep(_):  # meanwhile another program used 60 of cpu0's 100 ticks, and cpu2 (not ours) ran flat out
        stat.write_text("cpu  350 0 210 1640 0 0 0 0 0 0\ncpu0 150 0 110 840 0 0 0 0 0 0\n"
                        "cpu1 100 0 100 900 0 0 0 0 0 0\ncpu2 100 0 0 0 0 0 0 0 0 0\nintr 1 2 3\n")

    monkeypatch.setattr(host.time, "sleep", sleep)
    monkeypatch.setattr(host, "_allowed_cpus", lambda: {0, 1})
    assert abs(host.busy_elsewhere(stat=str(stat)) - 0.6) < 1e-9  # cores' worth, on the CPUs we may use
    monkeypatch.setattr(host, "_allowed_cpus", lambda: {0, 1, 2})
    stat.write_text(start)
    assert abs(host.busy_elsewhere(stat=str(stat)) - 1.6) < 1e-9
    assert host.busy_elsewhere(stat=str(tmp_path / "absent")) == 0.0
    assert host.choose_wait_policy(0.6) == "PASSIVE" and host.choose_wait_policy(0.1) is None


def test_torchrun_ranks_do_not_measure_each_other():
    # torchrun sets OMP_NUM_THREADS; ranks importing divekit together would count each other as busy
    code = ("import os; os.environ['OMP_NUM_THREADS'] = '1'\nimport divekit\n"
            "from divekit.core import host\nprint(host.WAIT_POLICY, host.BUSY_CORES)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["None", "0.0"]


def test_a_wait_policy_the_user_set_is_kept():
    code = "import os; os.environ['OMP_WAIT_POLICY'] = 'ACTIVE'\nimport divekit\nprint(divekit.WAIT_POLICY)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["ACTIVE"]


def test_a_profiled_command_exits_normally_so_the_profile_is_written(tmp_path):
    # os._exit would skip cProfile's dump at exit (and coverage's)
    out = tmp_path / "list.prof"
    proc = subprocess.run([sys.executable, "-m", "cProfile", "-o", str(out), "-m", "divekit", "list", "datasets"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert out.stat().st_size > 0 and "digits" in proc.stdout
