"""Property-based CLI fuzzing: `train`, `eval`, `predict` and `summary` with real option names and junk
values never show a traceback, exit 0 or 2, and write nothing outside a temporary folder."""

import argparse
import contextlib
import io
import os
import subprocess
from pathlib import Path

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from divekit.cli import build_parser, main  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
VERBS = ("train", "eval", "predict", "summary")
SLOW = {"--compile"}  # torch.compile would compile a model per example: left out to keep the test fast
RUNS = {"examples": 0, "exit 0": 0}  # invocations made and how many succeeded, for the report at the end


def _options(verb: str) -> dict[str, argparse.Action]:
    """The verb's options as its argparse parser declares them: flag -> action."""
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)).choices[verb]
    return {a.option_strings[-1]: a for a in sub._actions if a.option_strings and a.option_strings[-1] != "--help"
            and a.option_strings[-1] not in SLOW}


OPTIONS = {verb: _options(verb) for verb in VERBS}
names = st.sampled_from(["mlp", "softmax-regression", "linear-regression", "lenet", "nosuch", "MLP", "mlp "])
datasets = st.sampled_from(["digits", "synthetic-linear", "nosuch", "csv:empty.csv", "folder:empty", "csv:", ""])
paths = st.sampled_from(["run", "empty", "empty.csv", "empty.txt", "empty.json", "nope/x", "/proc/forbidden",
                         "", ".", "ünïcødé", "a b"])
junk = st.one_of(
    st.integers(-3, 40).map(str), st.floats(-2, 2).map(str), st.sampled_from(["", "-1", "0", "1e9", "nan", "inf"]),
    st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=6), names, datasets, paths,
    st.sampled_from(["a=1", "=", "num_hiddens=-1", "k=[1,", "gamma=0.5", "test_acc", "valid_loss", "1,8,8", "cuda:x"]),
)


@st.composite
def invocations(draw):
    verb = draw(st.sampled_from(VERBS))
    argv = [verb]
    if verb in ("train", "summary"):
        argv.append(draw(names))
    elif verb in ("eval", "predict"):
        argv.append(draw(paths))
        if verb == "predict":
            argv += draw(st.lists(paths, min_size=1, max_size=2))
    for _ in range(draw(st.integers(0, 4))):
        flag = draw(st.sampled_from(sorted(OPTIONS[verb])))
        action = OPTIONS[verb][flag]
        argv.append(flag)
        if action.nargs != 0:
            argv.append(draw(junk))
    if verb == "train":  # whatever was drawn, training stays tiny
        argv += ["--data", draw(st.sampled_from(["digits", "synthetic-linear"])), "--epochs", "1", "--no-progress"]
    return argv


def _repo_files() -> set[str]:
    out = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all", "--ignored"], cwd=REPO,
                         capture_output=True, text=True, check=True).stdout
    return {line for line in out.splitlines() if ".hypothesis/" not in line}  # hypothesis' own cache


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
    """A working folder with a finished run, empty files and DIVEKIT_DATA inside it."""
    root = tmp_path_factory.mktemp("fuzz")
    for name in ("empty.csv", "empty.txt", "empty.json"):
        (root / name).write_text("")
    (root / "empty").mkdir()
    old_cwd, old_data = os.getcwd(), os.environ.get("DIVEKIT_DATA")
    os.chdir(root)
    os.environ["DIVEKIT_DATA"] = str(root / "data")
    try:
        assert main(["train", "softmax-regression", "--data", "digits", "--epochs", "1", "--out", "run",
                     "--no-progress"]) == 0
        yield root
    finally:
        os.chdir(old_cwd)
        if old_data is None:
            os.environ.pop("DIVEKIT_DATA", None)
        else:
            os.environ["DIVEKIT_DATA"] = old_data


def test_cli_misuse_never_tracebacks(sandbox, capsys):
    before = _repo_files()

    @settings(max_examples=80, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow])
    @given(invocations())
    def check(argv):
        RUNS["examples"] += 1
        err, out = io.StringIO(), io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
            try:
                code = main(argv)
            except SystemExit as e:  # argparse: usage errors (2) and --help (0)
                code = e.code
        text = err.getvalue()
        assert "Traceback" not in text, (argv, text)
        assert code in (0, 2), (argv, code, text)
        RUNS["exit 0"] += code == 0
        if code == 2:
            assert text.startswith("divekit: error: ") and text.count("divekit: error: ") == 1, (argv, text)

    check()
    assert _repo_files() == before  # nothing written into the repository
    with capsys.disabled():
        print(f"\ncli fuzz: {RUNS['examples']} invocations, {RUNS['exit 0']} of them exit 0")
    assert RUNS["examples"] >= 60
