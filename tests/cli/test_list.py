"""`divekit list` reads the catalog written from the registries: the two must agree, and listing loads no torch."""

import json
import subprocess
import sys

from divekit.cli import main
from divekit.cli.list import CATALOG


def test_the_catalog_is_the_registries():
    # in a fresh interpreter: the test suite registers test-only models in this one
    code = "import json; from divekit.cli.list import registered; print(json.dumps(registered()))"
    live = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                     check=True).stdout)
    catalog = json.loads(CATALOG.read_text())
    for kind in ("models", "datasets"):
        missing, stale = sorted(set(live[kind]) - set(catalog[kind])), sorted(set(catalog[kind]) - set(live[kind]))
        changed = sorted(n for n in set(live[kind]) & set(catalog[kind]) if live[kind][n] != catalog[kind][n])
        assert not (missing or stale or changed), (
            f"divekit/cli/catalog.json is out of date ({kind}: new {missing}, gone {stale}, redescribed {changed}); "
            "rewrite it: python -c \"from divekit.cli.list import write_catalog; write_catalog()\"")
    assert {"softmax-regression", "lenet", "resnet18", "gru", "transformer", "fast-rcnn", "dcgan"} <= set(
        catalog["models"])
    assert {"digits", "fashion-mnist", "cifar10", "time-machine", "fra-eng"} <= set(catalog["datasets"])


def test_list_filters_describes_and_loads_no_torch(capsys):
    assert main(["list", "models", "resnet*"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == ["resnet18", "resnet18-cifar", "resnet34", "resnet50"]
    assert "book 8.6" in lines[0]
    assert main(["list", "datasets", "--json"]) == 0
    assert "digits" in json.loads(capsys.readouterr().out)["datasets"]
    probe = ("import sys\nfrom divekit.cli import main\nmain(['list', 'models'])\nmain(['list', 'datasets'])\n"
             "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.split()[-1] == "False"
