"""The GPU path against the real CuPy, on a machine without a GPU.

With CuPy and NVRTC installed (``pip install cupy-cuda13x nvidia-cuda-nvrtc``; CI does), these
run everywhere; without them they are skipped, saying so:

* every CUDA kernel of the package compiles with NVRTC for each element type it serves and
  for the GPU generations users have (sm_80: A100; sm_90: H100, H200), from the same source
  and with the same options as CuPy's ``RawKernel`` uses. Only CuPy's query of the device's
  architecture is bypassed: the architecture is given;
* everything the CuPy stand-in of the tests offers (``standin_cupy.py``, which mirrors what
  the package calls) exists in the installed CuPy, with the keyword arguments we pass.
"""

from __future__ import annotations

import inspect
import re

import numpy as np
import pytest

from mini_iformer.ops import cuda


def _cupy_compiler():
    try:
        import cupy
        from cupy.cuda import compiler
    except ImportError as exc:
        pytest.skip(f"CuPy is not installed ({exc}): pip install cupy-cuda13x")
    try:
        compiler._get_nvrtc_version()
    except Exception as exc:  # noqa: BLE001 - the NVRTC library is missing or does not load
        pytest.skip(f"NVRTC is not available ({type(exc).__name__}: {exc}): "
                    "pip install nvidia-cuda-nvrtc")
    return cupy, compiler


def _compile(source: str, arch: str, monkeypatch):
    """NVRTC's output for ``source``, compiled as RawKernel compiles it (CuPy adds -ftz=true
    and, here given, -arch=sm_<arch>)."""
    cupy, compiler = _cupy_compiler()
    monkeypatch.setattr(compiler, "_get_arch_for_options_for_nvrtc",
                        lambda arch=None: (f"-arch=sm_{arch}", "cubin"))
    binary, _ = compiler.compile_using_nvrtc(source, options=("-ftz=true",), arch=arch)
    return binary


@pytest.mark.parametrize("arch", ["80", "90"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", sorted(cuda.KERNELS))
def test_every_kernel_compiles_with_nvrtc(name, dtype, arch, monkeypatch):
    kernel = cuda.KERNELS[name]
    binary = _compile(cuda.source_for(kernel.source, np.dtype(dtype)), arch, monkeypatch)
    assert isinstance(binary, bytes) and name.encode() in binary  # an extern "C" symbol


def test_a_kernel_with_an_error_is_refused_naming_the_line(monkeypatch):
    cupy, _ = _cupy_compiler()
    kernel = cuda.KERNELS["gelu_forward"]
    source = cuda.source_for(kernel.source, np.float32).replace(
        "typedef float T;", "typedef float T;\nint broken = undeclared_name;")
    line = source[: source.index("undeclared_name")].count("\n") + 1
    with pytest.raises(cupy.cuda.compiler.CompileException,
                       match=rf"\({line}\).*undeclared_name|{line}.*undeclared"):
        _compile(source, "90", monkeypatch)


def _api(obj):
    return [n for n in vars(obj) if not n.startswith("_")]


def _keywords(fn) -> set[str] | None:
    """The named parameters of ``fn`` (not ``*args``/``**kwargs``: the stand-in's functions
    taken from NumPy pass everything on), or None where Python cannot tell (Cython)."""
    try:
        parameters = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return None
    return {p.name for p in parameters if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}


def test_the_stand_in_offers_nothing_that_cupy_lacks():
    import standin_cupy

    cupy, _ = _cupy_compiler()
    import cupyx.scipy.special

    pairs = [(standin_cupy.MODULE, cupy, "cupy"), (standin_cupy.MODULE.cuda, cupy.cuda, "cupy.cuda"),
             (standin_cupy.MODULE.cuda.runtime, cupy.cuda.runtime, "cupy.cuda.runtime"),
             (standin_cupy.SPECIAL, cupyx.scipy.special, "cupyx.scipy.special"),
             (standin_cupy.ndarray, cupy.ndarray, "cupy.ndarray"),
             (standin_cupy.Stream, cupy.cuda.Stream, "cupy.cuda.Stream"),
             (standin_cupy.Event, cupy.cuda.Event, "cupy.cuda.Event"),
             (standin_cupy.Device, cupy.cuda.Device, "cupy.cuda.Device")]
    missing, mismatched = [], []
    for ours, theirs, where in pairs:
        for name in _api(ours):
            if name in ("allocated_on", "held") or (where == "cupy" and name == "MODULE"):
                continue
            if not hasattr(theirs, name):
                missing.append(f"{where}.{name}")
                continue
            if name == "ndarray":  # (arrays are made by asarray and friends, not called)
                continue
            ours_kw, theirs_kw = _keywords(getattr(ours, name)), _keywords(getattr(theirs, name))
            if ours_kw is not None and theirs_kw is not None and not theirs_kw >= ours_kw - {"self"}:
                mismatched.append(f"{where}.{name}: {sorted(ours_kw - theirs_kw)}")
    assert not missing, f"the stand-in offers what CuPy lacks: {missing}"
    assert not mismatched, f"keywords CuPy does not take: {mismatched}"
    pool = cupy.get_default_memory_pool()
    assert all(hasattr(pool, n) for n in _api(type(standin_cupy._POOL)))
    assert hasattr(cupy.add, "at")


def test_every_cupy_name_the_package_writes_exists_in_cupy_and_in_the_stand_in():
    """Every ``cupy.<name>`` and ``cupy.cuda.<name>`` the package's source writes exists in
    the installed CuPy, and in the stand-in, so CPU runs exercise it too."""
    from pathlib import Path

    import standin_cupy

    cupy, _ = _cupy_compiler()
    root = Path(cuda.__file__).resolve().parents[1]
    used = set()
    for path in root.rglob("*.py"):
        used |= set(re.findall(r"\bcupy\.((?:cuda\.)?[A-Za-z_]+)", path.read_text()))
    assert used, "no CuPy names found: the pattern is wrong"

    def find(module, dotted):
        for part in dotted.split("."):
            module = getattr(module, part, None)
        return module

    assert not [u for u in sorted(used) if find(cupy, u) is None], "names CuPy lacks"
    assert not [u for u in sorted(used) if find(standin_cupy.MODULE, u) is None], (
        "names the stand-in lacks")


def test_each_kernel_is_made_as_the_launcher_makes_it():
    """``cuda.Kernel`` builds ``cupy.RawKernel(source, name)`` (which needs no GPU until its
    first launch): CuPy takes those arguments and compiles with NVRTC and no extra options,
    the compilation the tests above repeat."""
    cupy, _ = _cupy_compiler()
    for name, kernel in sorted(cuda.KERNELS.items()):
        made = cupy.RawKernel(cuda.source_for(kernel.source, np.float32), kernel.name)
        assert (made.name, made.backend, tuple(made.options)) == (name, "nvrtc", ())
