"""Every line of model/ and scenes/ that makes or reshapes a tensor says its shape (`# [B, F, C, h, w]`);
benchmarks/code_metrics.py defines which lines those are."""
from benchmarks.code_metrics import REPO, SHAPED_DIRS, source_files, tensor_lines


def test_tensor_lines_carry_shape_comments():
    missing = [f"{path.relative_to(REPO)}:{line}" for path in source_files()
               if path.relative_to(REPO).parts[0] in SHAPED_DIRS for line, shaped in tensor_lines(path) if not shaped]
    assert not missing, "tensor lines without a shape comment (# [..]):\n" + "\n".join(missing)
