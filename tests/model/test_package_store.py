"""Choosing the C++ compiler for AOTInductor packages (model/package_store.py). The builds
themselves, with a broken $CXX skipped for g++, run in tests/model/test_block_packages.py."""
import os
import shutil

import pytest

from model.package_store import PackageBuilder, candidates

needs_gxx = pytest.mark.skipif(shutil.which("g++") is None, reason="no g++ on PATH")


@needs_gxx
def test_cxx_comes_first_and_each_compiler_once(monkeypatch, tmp_path):
    alias = tmp_path / "my-g++"
    alias.symlink_to(shutil.which("g++"))
    monkeypatch.setenv("CXX", str(alias))
    found = candidates()
    assert found[0] == str(alias)
    assert shutil.which("g++") not in found                   # the same compiler as $CXX
    assert len({os.path.realpath(shutil.which(c) or c) for c in found}) == len(found)


def test_no_compiler_at_all_says_so(tmp_path, monkeypatch):
    monkeypatch.delenv("CXX", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    builder, reports = PackageBuilder(tmp_path / "blocks"), []
    for _ in range(2):                                        # e.g. a kiosk's warm-up after a worker restart
        builder.start({"packages": []}, reports.append)
        assert builder.wait(timeout=10)
    assert len(reports) == 2 and all("none found" in r and "set CXX to a working g++" in r for r in reports)
