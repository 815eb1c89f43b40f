"""roam's one Inductor heuristic (model/inductor_choices.py): row reductions up to the limit are
persistent (one pass over the row); the decision is checked directly on the CPU, the generated
kernel on a GPU."""
import threading

import pytest
import sympy
import torch
from torch._inductor import config
from torch._inductor.choices import InductorChoices
from torch._inductor.runtime.hints import ReductionHint
from torch._inductor.sizevars import SizeVarAllocator
from torch._inductor.virtualized import V

from model.inductor_choices import PersistentRows, persistent_row_reductions


class Graph:
    """What the heuristic reads of the graph being compiled: its size variables."""
    def __init__(self):
        self.sizevars = SizeVarAllocator()


class Reduction:
    def __init__(self, numel: int, hint: ReductionHint = ReductionHint.INNER, rows: int = 4680):
        self.reduction_numel, self.numel, self.hint = sympy.Integer(numel), sympy.Integer(rows * numel), hint

    def get_reduction_hint(self) -> ReductionHint:
        return self.hint


def decide(choices, numel: int, hint=ReductionHint.INNER, cooperative=False) -> bool:
    with V.set_graph_handler(Graph()):
        return choices.should_use_persistent_reduction(Reduction(numel, hint), cooperative)


def test_rows_of_the_dit_width_become_persistent_where_pytorch_loops():
    assert not decide(InductorChoices(), 1536)              # PyTorch: loop over a 1536-wide row
    assert decide(PersistentRows(2048), 1536)
    assert decide(PersistentRows(2048), 1536, ReductionHint.DEFAULT)
    assert decide(PersistentRows(2048), 2048)


def test_wider_rows_and_cooperative_reductions_keep_pytorchs_choice():
    assert not decide(PersistentRows(2048), 4096)
    assert not decide(PersistentRows(2048), 1536, cooperative=True)
    assert decide(PersistentRows(2048), 512) == decide(InductorChoices(), 512)


def test_the_choice_reaches_the_compiling_thread_and_its_cache_key():
    seen = []

    def compiling_thread():               # as play's generation thread, which compiles in its warm-up
        assert not persistent_row_reductions(0)
        before = V.choices
        assert persistent_row_reductions(1536)
        seen.extend([before, V.choices, config.inductor_choices_class])
        config.inductor_choices_class = None
    thread = threading.Thread(target=compiling_thread)
    thread.start()
    thread.join()
    before, after, factory = seen
    assert not isinstance(before, PersistentRows)
    assert isinstance(after, PersistentRows) and after.limit == 1536
    assert factory().uuid() == after.uuid() != PersistentRows(2048).uuid()


@pytest.mark.gpu
def test_a_1536_wide_layer_norm_compiles_to_one_persistent_kernel():
    from torch._inductor.utils import run_and_get_code
    x = torch.randn(4680, 1536, device="cuda", dtype=torch.bfloat16)
    result = {}

    def compile_on_a_fresh_thread():      # leaves this thread's heuristics as they were
        persistent_row_reductions(2048)
        torch._dynamo.reset()
        result["out"], result["code"] = run_and_get_code(
            torch.compile(lambda t: torch.nn.functional.layer_norm(t, (1536,)) * 2), x)
        config.inductor_choices_class = None
        torch._dynamo.reset()
    thread = threading.Thread(target=compile_on_a_fresh_thread)
    thread.start()
    thread.join()
    out, code = result["out"], result["code"]
    torch.testing.assert_close(out, torch.nn.functional.layer_norm(x, (1536,)) * 2)
    assert "triton_per_" in "".join(code) and "triton_red_" not in "".join(code)
