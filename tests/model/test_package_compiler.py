"""Choosing the C++ compiler for AOTInductor packages (model/package_compiler.py). The full check,
with a broken $CXX skipped for g++, runs in tests/model/test_block_packages.py."""
import os
import shutil

import pytest
import torch

from model.package_compiler import CompilerCheck, candidates, check

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


@needs_gxx
def test_a_remembered_compiler_needs_no_check(tmp_path):
    (tmp_path / "compiler").write_text(shutil.which("g++"))
    compilers = CompilerCheck(tmp_path, torch.device("cpu")).start()
    assert compilers._thread is None
    assert compilers.result() == (shutil.which("g++"), [])


def test_a_compiler_that_fails_says_why(tmp_path):
    broken = tmp_path / "broken"
    broken.write_text("#!/bin/sh\necho 'no such header' >&2\nexit 1\n")
    broken.chmod(0o755)
    why = check(str(broken), torch.device("cpu"))
    assert why is not None and why.startswith("exit status 1")
