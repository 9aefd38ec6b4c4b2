"""The download hub against a real local HTTP server serving the real dataset files (no internet)."""

import dataclasses
import io
import os
import re
import tarfile
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path

import pytest
from helpers import QuietHandler, Server

from divekit.core.errors import ChecksumError, ConfigError, DataError
from divekit.data import hub

TIME_MACHINE_SHA1 = "090b5e7e70c295757f55df93cb0a180b9691891a"


class Handler(QuietHandler):
    """Serves the data folder; `/404/...` answers 404, `/drop/<path>` closes the connection halfway."""

    def do_GET(self):
        if self.path.startswith("/404/"):
            self.send_error(404)
        elif self.path.startswith("/drop/"):
            data = (Path(self.directory) / urllib.parse.unquote(self.path[len("/drop/"):])).read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[: len(data) // 2])
            self.close_connection = True
        else:
            super().do_GET()


@pytest.fixture
def server(shared_data):
    srv = Server(shared_data, Handler)
    yield srv
    srv.stop()


@pytest.fixture(autouse=True)
def isolated_env(tmp_path, monkeypatch):
    """Never touch the user's cache, never use a mirror unless a test sets one."""
    monkeypatch.delenv("DIVEKIT_MIRROR", raising=False)
    monkeypatch.setenv("DIVEKIT_DATA", str(tmp_path / "env-data"))
    monkeypatch.setenv("DIVEKIT_CACHE", str(tmp_path / "env-cache"))


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError(f"unexpected network access: {args[0]}")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)


TIME_MACHINE = hub.DATA_HUB["time-machine"][0]


def files_in(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) if folder.exists() else []


# --- downloads ----------------------------------------------------------------------------------


def test_download_through_mirror_then_from_cache(server, tmp_path, monkeypatch):
    monkeypatch.setenv("DIVEKIT_MIRROR", server.url)
    (path,) = hub.fetch("time-machine", tmp_path / "data", progress=False)
    assert path == tmp_path / "data" / "timemachine.txt"
    assert hub.file_hash(path, "sha1") == TIME_MACHINE_SHA1
    assert files_in(tmp_path / "data") == ["timemachine.txt"]

    server.stop()
    monkeypatch.setattr(urllib.request, "urlopen", lambda *a, **k: pytest.fail("network used on a cache hit"))
    assert hub.fetch("time-machine", tmp_path / "data") == [path]


def test_mirror_can_be_a_file_url(shared_data, tmp_path, monkeypatch):
    monkeypatch.setenv("DIVEKIT_MIRROR", shared_data.as_uri())
    path = hub.fetch_file(hub.DATA_HUB["kaggle-house"][1], tmp_path, progress=False)
    assert hub.file_hash(path, "sha1") == "fa19780a7b011d9b009e8bff8e99922a8ee2eb90"


def test_hash_mismatch_raises_and_keeps_nothing(server, tmp_path):
    rf = dataclasses.replace(TIME_MACHINE, urls=(f"{server.url}/timemachine.txt",), hash="sha1:" + "0" * 40)
    with pytest.raises(ChecksumError) as info:
        hub.fetch_file(rf, tmp_path, progress=False)
    message = str(info.value)
    assert f"{server.url}/timemachine.txt" in message
    assert "sha1:" + "0" * 40 in message and TIME_MACHINE_SHA1 in message
    assert "not kept" in message
    assert files_in(tmp_path) == []


def test_connection_dropped_halfway_is_detected(server, tmp_path):
    rf = dataclasses.replace(TIME_MACHINE, urls=(f"{server.url}/drop/timemachine.txt",))
    with pytest.raises(DataError, match=r"connection closed after \d+ of 178979 bytes"):
        hub.fetch_file(rf, tmp_path, progress=False)
    assert files_in(tmp_path) == []


def test_all_urls_failing_explains_how_to_install_by_hand(server, tmp_path):
    url = f"{server.url}/404/timemachine.txt"
    rf = dataclasses.replace(TIME_MACHINE, urls=(url,))
    with pytest.raises(DataError) as info:
        hub.fetch_file(rf, tmp_path / "data", progress=False)
    message = str(info.value)
    assert not isinstance(info.value, ChecksumError)
    assert "timemachine.txt" in message and url in message and "404" in message
    assert f"sha1:{TIME_MACHINE_SHA1}" in message
    assert str((tmp_path / "data" / "timemachine.txt").absolute()) in message
    assert files_in(tmp_path / "data") == []


def test_falls_back_to_the_next_url(server, tmp_path):
    rf = dataclasses.replace(TIME_MACHINE, urls=(f"{server.url}/404/timemachine.txt", f"{server.url}/timemachine.txt"))
    path = hub.fetch_file(rf, tmp_path, progress=True)
    assert hub.file_hash(path, "sha1") == TIME_MACHINE_SHA1
    assert files_in(tmp_path) == ["timemachine.txt"]


def test_mismatch_on_one_mirror_then_good_url_succeeds(server, tmp_path, monkeypatch):
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "timemachine.txt").write_text("not the book")
    monkeypatch.setenv("DIVEKIT_MIRROR", (tmp_path / "bad").as_uri())
    rf = dataclasses.replace(TIME_MACHINE, urls=(f"{server.url}/timemachine.txt",))
    assert hub.file_hash(hub.fetch_file(rf, tmp_path / "data", progress=False), "sha1") == TIME_MACHINE_SHA1


def test_read_only_data_dir_says_so(tmp_path, no_network):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        with pytest.raises(DataError, match="not writable.*DIVEKIT_DATA.*--data-dir"):
            hub.fetch("time-machine", ro)
    finally:
        ro.chmod(0o755)
    assert files_in(ro) == []


# --- the table ----------------------------------------------------------------------------------


def test_unknown_dataset_suggests_a_name():
    with pytest.raises(DataError, match=r"'fashion-mnist'.*Known: .*time-machine"):
        hub.fetch("fashion-mnst")


def test_table_entries_are_well_formed():
    expected = {"fashion-mnist", "mnist", "time-machine", "fra-eng", "kaggle-house", "ptb", "airfoil",
                "banana-detection", "voc2012", "cifar10", "cifar10-tiny", "hotdog", "wikitext-2", "snli"}
    assert set(hub.DATA_HUB) == expected
    for name, files in hub.DATA_HUB.items():
        assert name == name.lower() and "_" not in name
        for rf in files:
            assert re.fullmatch(r"sha1:[0-9a-f]{40}|md5:[0-9a-f]{32}", rf.hash), rf
            assert rf.urls and all(u.startswith(("http://", "https://")) for u in rf.urls), rf
            assert not rf.path.startswith("/") and ".." not in rf.path.split("/")
            if rf.provides:
                assert rf.extract_to and rf.provides.startswith(rf.extract_to + "/")


def test_table_hashes_match_the_real_files(shared_data):
    checked = 0
    for files in hub.DATA_HUB.values():
        for rf in files:
            path = shared_data / rf.path
            if path.is_file():
                algo, want = hub.parse_hash(rf.hash)
                assert hub.file_hash(path, algo) == want, rf.path
                checked += 1
    assert checked >= 13  # 8 MNIST/Fashion-MNIST files, timemachine, 2 kaggle CSVs, ptb.zip, airfoil


def test_bad_hash_spec_is_refused():
    with pytest.raises(ValueError, match="sha1"):
        hub.RemoteFile("x.txt", ("http://example.org/x.txt",), "sha1:1234")


def test_data_and_cache_dir_resolution(tmp_path, monkeypatch):
    monkeypatch.delenv("DIVEKIT_DATA")
    monkeypatch.delenv("DIVEKIT_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert hub.data_dir() == tmp_path / "xdg" / "divekit" / "data"
    assert hub.cache_dir() == tmp_path / "xdg" / "divekit"
    monkeypatch.setenv("DIVEKIT_DATA", str(tmp_path / "d"))
    monkeypatch.setenv("DIVEKIT_CACHE", str(tmp_path / "c"))
    assert hub.data_dir() == tmp_path / "d"
    assert hub.data_dir(tmp_path / "o") == tmp_path / "o"
    assert hub.cache_dir() == tmp_path / "c" and (tmp_path / "c").is_dir()


# --- extraction ---------------------------------------------------------------------------------


def make_zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(zipfile.ZipInfo(name), data)
    return path


def make_tar(path: Path, members: list[tuple[tarfile.TarInfo, bytes]]) -> Path:
    with tarfile.open(path, "w:gz") as tf:
        for info, data in members:
            info.size = len(data) if info.isreg() else 0
            tf.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return path


def tar_entry(name: str, kind=tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, link
    return info


def test_extract_good_zip_and_tar(tmp_path):
    good_zip = make_zip(tmp_path / "a.zip", {"pkg/a.txt": b"alpha", "pkg/sub/b.txt": b"beta"})
    out = hub.extract(good_zip, tmp_path / "zip-out")
    assert files_in(out) == ["pkg", "pkg/a.txt", "pkg/sub", "pkg/sub/b.txt"]
    assert (out / "pkg/sub/b.txt").read_bytes() == b"beta"

    good_tar = make_tar(tmp_path / "a.tar.gz", [
        (tar_entry("pkg/a.txt"), b"alpha"),
        (tar_entry("pkg/link", tarfile.SYMTYPE, "a.txt"), b""),
    ])
    out = hub.extract(good_tar, tmp_path / "tar-out")
    assert files_in(out) == ["pkg", "pkg/a.txt", "pkg/link"]
    assert (out / "pkg/link").read_bytes() == b"alpha"


def test_extract_replaces_an_older_copy(tmp_path):
    (tmp_path / "out" / "pkg").mkdir(parents=True)
    (tmp_path / "out" / "pkg" / "stale.txt").write_text("old")
    hub.extract(make_zip(tmp_path / "a.zip", {"pkg/a.txt": b"new"}), tmp_path / "out")
    assert files_in(tmp_path / "out") == ["pkg", "pkg/a.txt"]


MALICIOUS_ZIPS = {
    "absolute": {"ok.txt": b"x", "/tmp/divekit-evil.txt": b"evil"},
    "dotdot": {"ok.txt": b"x", "../evil.txt": b"evil"},
    "nested-dotdot": {"pkg/../../evil.txt": b"evil"},
    "backslash-dotdot": {"..\\evil.txt": b"evil"},
}

MALICIOUS_TARS = {
    "absolute": [(tar_entry("/tmp/divekit-evil.txt"), b"evil")],
    "dotdot": [(tar_entry("ok.txt"), b"x"), (tar_entry("../evil.txt"), b"evil")],
    "symlink-out": [(tar_entry("link", tarfile.SYMTYPE, "../../outside"), b"")],
    "symlink-absolute": [(tar_entry("link", tarfile.SYMTYPE, "/etc"), b"")],
    "write-through-symlink": [(tar_entry("here", tarfile.SYMTYPE, "."), b""),
                              (tar_entry("here/up", tarfile.SYMTYPE, "../evil.txt"), b"")],
    "hardlink-out": [(tar_entry("hard", tarfile.LNKTYPE, "../evil.txt"), b"")],
    "device": [(tar_entry("dev", tarfile.CHRTYPE), b"")],
    "fifo": [(tar_entry("fifo", tarfile.FIFOTYPE), b"")],
}


@pytest.mark.parametrize("case", list(MALICIOUS_ZIPS) + [f"tar-{k}" for k in MALICIOUS_TARS])
def test_extract_refuses_malicious_archives(tmp_path, case):
    box = tmp_path / "box"
    box.mkdir()
    if case.startswith("tar-"):
        archive = make_tar(tmp_path / "evil.tar.gz", MALICIOUS_TARS[case[4:]])
    else:
        archive = make_zip(tmp_path / "evil.zip", MALICIOUS_ZIPS[case])
    with pytest.raises(DataError, match="refusing to extract"):
        hub.extract(archive, box / "target")
    assert files_in(box) == ["target"]  # nothing inside the target, nothing beside it
    assert not Path("/tmp/divekit-evil.txt").exists()


def test_failed_extraction_leaves_nothing_half_done(tmp_path):
    archive = make_zip(tmp_path / "a.zip", {"pkg/a.txt": b"alpha" * 100, "pkg/b.txt": b"beta" * 100})
    data = archive.read_bytes()
    archive.write_bytes(data.replace(b"beta" * 100, b"BETA" * 100))  # stored member: CRC now wrong
    with pytest.raises(DataError, match="cannot extract"):
        hub.extract(archive, tmp_path / "out")
    assert files_in(tmp_path / "out") == []


# --- size and ratio limits ---------------------------------------------------------------------

BOMB_BYTES = hub.RATIO_MIN_BYTES + (1 << 20)  # just past the size where the ratio limit applies


def deflated_zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def gz_tar(path: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz", compresslevel=1) as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


def make_archive(kind: str, path: Path, members: dict[str, bytes]) -> Path:
    return (deflated_zip if kind == "zip" else gz_tar)(path.with_suffix(".zip" if kind == "zip" else ".tar.gz"),
                                                       members)


@pytest.fixture
def target(tmp_path):
    """An existing extraction folder holding one file of the user's."""
    dest = tmp_path / "target"
    dest.mkdir()
    (dest / "keep.txt").write_text("mine")
    return dest


def no_staging(monkeypatch):
    monkeypatch.setattr(hub.tempfile, "mkdtemp", lambda *a, **k: pytest.fail("wrote before checking the headers"))


@pytest.mark.parametrize("kind", ["zip", "tar.gz"])
def test_ratio_bomb_is_refused_from_the_headers(tmp_path, target, monkeypatch, kind):
    archive = make_archive(kind, tmp_path / "bomb", {"readme.txt": b"hello", "zeros.bin": bytes(BOMB_BYTES)})
    assert archive.stat().st_size < 100_000
    no_staging(monkeypatch)
    with pytest.raises(DataError) as info:
        hub.extract(archive, target)
    message = str(info.value)
    assert message.startswith(f"refusing to extract {archive}: ") and "'zeros.bin'" in message
    assert "ratio limit of 200:1" in message and "nothing was extracted" in message
    assert "DIVEKIT_MAX_EXTRACT_RATIO" in message and "max_ratio=" in message
    assert files_in(target) == ["keep.txt"]


def test_many_small_zip_members_count_as_one_archive_for_the_ratio(tmp_path, target, monkeypatch):
    chunk = 1 << 20
    members = {f"part{i:02d}.bin": bytes(chunk) for i in range(hub.RATIO_MIN_BYTES // chunk + 1)}
    archive = deflated_zip(tmp_path / "many.zip", members)
    no_staging(monkeypatch)
    with pytest.raises(DataError, match=r"its members up to 'part16.bin' expand to 17\.0 MiB from .* ratio limit"):
        hub.extract(archive, target)
    assert files_in(target) == ["keep.txt"]


@pytest.mark.parametrize("kind, how", [("zip", "kwarg"), ("tar.gz", "env")])
def test_size_bomb_is_refused_from_the_headers(tmp_path, target, monkeypatch, kind, how):
    archive = make_archive(kind, tmp_path / "big", {"a.bin": os.urandom(3000), "b.bin": os.urandom(3000)})
    no_staging(monkeypatch)
    limit = {"max_bytes": 4096} if how == "kwarg" else {}
    if how == "env":
        monkeypatch.setenv("DIVEKIT_MAX_EXTRACT_BYTES", "4K")
    with pytest.raises(DataError) as info:
        hub.extract(archive, target, **limit)
    message = str(info.value)
    assert f"refusing to extract {archive}: its members up to 'b.bin' expand to 5.9 KiB" in message
    assert "size limit of 4.0 KiB" in message and "DIVEKIT_MAX_EXTRACT_BYTES" in message and "max_bytes=" in message
    assert files_in(target) == ["keep.txt"]


@pytest.mark.parametrize("kind", ["zip", "tar.gz"])
def test_lying_headers_are_stopped_while_writing(tmp_path, target, monkeypatch, kind):
    """With the header check out of the way (as if the headers declared less), the bytes written are counted."""
    archive = make_archive(kind, tmp_path / "liar", {"a.txt": b"fine", "big/b.bin": os.urandom(3 << 20)})
    monkeypatch.setattr(hub._Limits, "declare", lambda *args: None)
    with pytest.raises(DataError) as info:
        hub.extract(archive, target, max_bytes=2 << 20)
    message = str(info.value)
    assert message.startswith(f"stopped extracting {archive} at member 'big/b.bin': its data goes past 2.0 MiB")
    assert "nothing was kept" in message and "DIVEKIT_MAX_EXTRACT_BYTES" in message
    assert files_in(target) == ["keep.txt"]  # neither a.txt nor the staging folder is left


@pytest.mark.parametrize("kind", ["zip", "tar.gz"])
def test_archives_within_the_limits_extract(tmp_path, target, kind):
    text = b"the same line of a log file\n" * 40_000  # 1.1 MB, over 200:1, but small files are exempt
    archive = make_archive(kind, tmp_path / "ok", {"pkg/log.txt": text, "pkg/noise.bin": os.urandom(1 << 20)})
    hub.extract(archive, target, max_bytes=3 << 20)
    assert files_in(target) == ["keep.txt", "pkg", "pkg/log.txt", "pkg/noise.bin"]
    assert (target / "pkg/log.txt").read_bytes() == text


def test_limits_are_configurable_and_checked(tmp_path, target, monkeypatch):
    archive = make_archive("zip", tmp_path / "bomb", {"zeros.bin": bytes(BOMB_BYTES)})
    hub.extract(archive, target, max_ratio=5000)
    assert (target / "zeros.bin").stat().st_size == BOMB_BYTES
    monkeypatch.setenv("DIVEKIT_MAX_EXTRACT_RATIO", "5000")
    monkeypatch.setenv("DIVEKIT_MAX_EXTRACT_BYTES", "1GiB")
    hub.extract(archive, target)
    monkeypatch.setenv("DIVEKIT_MAX_EXTRACT_BYTES", "lots")
    with pytest.raises(ConfigError, match=r"DIVEKIT_MAX_EXTRACT_BYTES='lots' is not a positive size in bytes"):
        hub.extract(archive, target)
    with pytest.raises(ConfigError, match="max_ratio must be a positive compression ratio"):
        hub.extract(archive, target, max_bytes=1 << 30, max_ratio=0)


def test_official_archives_are_hash_checked_before_extracting(tmp_path, monkeypatch):
    """A tampered official archive (here a bomb in place of ptb.zip) is refused by its hash, never extracted."""
    served = tmp_path / "served"
    served.mkdir()
    deflated_zip(served / "ptb.zip", {"ptb/ptb.train.txt": bytes(BOMB_BYTES)})
    srv = Server(served, Handler)
    try:
        rf = dataclasses.replace(hub.DATA_HUB["ptb"][0], urls=(f"{srv.url}/ptb.zip",))
        monkeypatch.setitem(hub.DATA_HUB, "ptb", (rf,))
        monkeypatch.setattr(hub, "extract", lambda *a, **k: pytest.fail("extracted before the hash check"))
        with pytest.raises(ChecksumError, match="wrong hash for ptb.zip"):
            hub.fetch_extracted("ptb", data_dir=tmp_path / "data", progress=False)
    finally:
        srv.stop()
    assert files_in(tmp_path / "data") == []


# --- real archives and verify ------------------------------------------------------------------


def test_fra_eng_uses_the_extracted_copy_without_network(shared_data, no_network):
    folder = hub.fetch_extracted("fra-eng", data_dir=shared_data)
    assert folder == shared_data / "fra-eng"
    assert (folder / "fra.txt").read_text(encoding="utf-8").startswith("Go.\t")
    assert hub.fetch("fra-eng", shared_data) == [folder]


def test_ptb_extracts_into_the_data_dir(shared_data, tmp_path, no_network):
    data = tmp_path / "data"
    data.mkdir()
    (data / "ptb.zip").write_bytes((shared_data / "ptb.zip").read_bytes())
    folder = hub.fetch_extracted("ptb", data_dir=data)
    assert folder == data / "ptb"
    assert (folder / "ptb.train.txt").stat().st_size == 5101618
    assert [p.name for p in data.iterdir() if p.name.startswith(".")] == []


def test_read_only_data_dir_extracts_into_the_cache(shared_data, tmp_path, no_network):
    ro = tmp_path / "ro"
    ro.mkdir()
    (ro / "ptb.zip").write_bytes((shared_data / "ptb.zip").read_bytes())
    ro.chmod(0o555)
    try:
        folder = hub.fetch_extracted("ptb", data_dir=ro)
        assert folder == tmp_path / "env-cache" / "extracted" / "ptb"
        assert (folder / "ptb.valid.txt").is_file()
        assert files_in(ro) == ["ptb.zip"]
        assert hub.fetch_extracted("ptb", data_dir=ro) == folder  # found in the cache the second time
    finally:
        ro.chmod(0o755)


def test_verify_real_data(shared_data):
    status = {path: s for _, path, s in hub.verify(shared_data)}
    assert status["timemachine.txt"] == "ok"
    assert status["FashionMNIST/raw/train-images-idx3-ubyte.gz"] == "ok"
    assert status["banana-detection.zip"] == "missing"
    assert status["fra-eng.zip"] == "extracted (archive not kept)"
    assert not [s for s in status.values() if s.startswith("BAD")]


def test_verify_reports_a_corrupted_copy(shared_data, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "timemachine.txt").write_bytes((shared_data / "timemachine.txt").read_bytes()[:-1] + b"!")
    rows = {(name, path): s for name, path, s in hub.verify(data)}
    bad = rows[("time-machine", "timemachine.txt")]
    assert bad.startswith("BAD hash sha1:") and bad.endswith(f"expected sha1:{TIME_MACHINE_SHA1}")
    assert rows[("airfoil", "airfoil_self_noise.dat")] == "missing"
    assert os.listdir(data) == ["timemachine.txt"]
