"""`divekit notebooks`: the chapter notebooks ship with the package and copy out without losing edits."""

import json

import pytest

from divekit.apps.notebooks import copy_notebooks, notebook_files
from divekit.cli import main
from divekit.core.errors import DivekitError


def test_the_package_ships_its_notebooks():
    names = [p.name for p in notebook_files()]
    assert "03_softmax_regression.ipynb" in names
    assert names == sorted(names)
    for p in notebook_files():
        json.loads(p.read_text())  # each is a valid notebook file


def test_copy_keeps_existing_notebooks_unless_forced(tmp_path):
    copied = copy_notebooks(tmp_path / "nb")
    assert [p.name for p in copied] == [p.name for p in notebook_files()]
    edited = copied[0]
    edited.write_text("my edits")
    with pytest.raises(DivekitError, match="--force"):
        copy_notebooks(tmp_path / "nb")
    assert edited.read_text() == "my edits"
    copy_notebooks(tmp_path / "nb", overwrite=True)
    assert edited.read_bytes() == notebook_files()[0].read_bytes()


def test_cli_copies_and_reports_as_json(tmp_path, capsys):
    assert main(["notebooks", "--out", str(tmp_path / "out"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["notebooks"] == [p.name for p in notebook_files()]
    assert main(["notebooks", "--out", str(tmp_path / "out")]) == 2
    assert "already holds" in capsys.readouterr().err
