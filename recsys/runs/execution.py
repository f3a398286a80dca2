"""Execute one notebook with papermill: a progress line per cell, a quiet kernel, kernel errors caught.

:func:`execute_notebook` runs papermill with the engine :class:`QuietEngine` (registered as ``recsys``):

- the kernel talks to us over IPC sockets in a private temporary folder, not TCP, so ipykernel has no
  reason to warn that it "is running over TCP without encryption";
- the kernel is not sent SIGINT before its shutdown (jupyter_client's habit, which made a fast notebook's
  kernel log ``KeyboardInterrupt caught in kernel``);
- the kernel process's own stdout and stderr (its log: warnings, ``[IPKernelApp] ERROR`` lines) go to
  ``<notebook>.kernel.log`` beside the executed notebook instead of the terminal;
- after each code cell, ``progress(line)`` is called with the cell's number, elapsed seconds and the
  notebook's running total (nbclient's ``on_cell_execute``/``on_cell_executed`` hooks).

A notebook whose kernel log holds an error line (``ERROR``, ``CRITICAL``, a traceback) or whose outputs hold
a traceback printed to stderr (an exception in a thread) has failed even if every cell returned:
:class:`KernelError` names the line.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

__all__ = ["KernelError", "QuietEngine", "execute_notebook", "kernel_errors"]

ENGINE = "recsys"
_ERROR_MARKERS = ("] ERROR", "] CRITICAL", "Traceback (most recent call last)")


class KernelError(RuntimeError):
    """The kernel logged an error while the notebook ran (every cell may still have returned)."""

    def __init__(self, message: str, line: str) -> None:
        super().__init__(message)
        self.line = line


def _register() -> None:
    from jupyter_client.manager import AsyncKernelManager
    from papermill.clientwrap import PapermillNotebookClient
    from papermill.engines import NBClientEngine, papermill_engines
    from papermill.utils import merge_kwargs, remove_args

    class _KernelManager(AsyncKernelManager):
        """jupyter_client interrupts (SIGINT) a kernel before asking it to shut down; when the signal lands
        while the idle kernel handles a message, it logs ``KeyboardInterrupt caught in kernel``. Every cell
        has finished when we shut down, so the shutdown request alone is sent (a kernel that does not exit
        in time is still killed)."""

        async def _async_interrupt_kernel(self) -> None:
            if not self.shutting_down:
                await super()._async_interrupt_kernel()

    class _Engine(NBClientEngine):
        @classmethod
        def execute_managed_notebook(cls, nb_man: Any, kernel_name: str, log_output: bool = False,
                                     stdout_file: Any = None, stderr_file: Any = None, start_timeout: int = 60,
                                     execution_timeout: Any = None, **kwargs: Any) -> Any:
            kernel_log: Path = kwargs.pop("kernel_log")
            kwargs = remove_args(["input_path", "timeout", "startup_timeout"], **kwargs)
            final = merge_kwargs(kwargs, timeout=execution_timeout, startup_timeout=start_timeout,
                                 kernel_name=kernel_name, log_output=log_output, stdout_file=stdout_file,
                                 stderr_file=stderr_file)
            with tempfile.TemporaryDirectory(prefix="recsys-kernel-") as sockets, open(kernel_log, "w") as log:
                km = _KernelManager(kernel_name=kernel_name, transport="ipc", ip=str(Path(sockets) / "k"))
                client = PapermillNotebookClient(nb_man, km=km, **final)
                return client.execute(stdout=log, stderr=log)

    papermill_engines.register(ENGINE, _Engine)
    globals()["QuietEngine"] = _Engine


QuietEngine: Any = None
"""The papermill engine (a subclass of papermill's ``NBClientEngine``), set by the first :func:`execute_notebook`."""


def _register_tuple_translator(kernel_name: str = "python3") -> None:
    """papermill writes a tuple parameter as the *string* ``"(5, 10)"``; for our kernel it is
    written as a tuple literal (every other type as papermill's Python translator does)."""
    from papermill.translators import PythonTranslator, papermill_translators

    class _TupleTranslator(PythonTranslator):
        @classmethod
        def translate(cls, val: Any) -> str:
            if isinstance(val, tuple):
                items = ", ".join(cls.translate(v) for v in val)
                return f"({items},)" if len(val) == 1 else f"({items})"
            return super().translate(val)

        @classmethod
        def translate_list(cls, val: list[Any]) -> str:
            return "[" + ", ".join(cls.translate(v) for v in val) + "]"

    papermill_translators.register(kernel_name, _TupleTranslator)


def _cell_label(cell: Any, width: int = 48) -> str:
    """The cell's first non-empty source line (a comment says what it does), shortened."""
    for line in str(cell.get("source", "")).splitlines():
        text = line.strip().lstrip("#").strip()
        if text:
            return text if len(text) <= width else text[: width - 3] + "..."
    return ""


def kernel_errors(kernel_log: Path, notebook: Any | None = None) -> list[str]:
    """Error lines of the kernel's log and tracebacks the notebook's cells printed to stderr."""
    found = []
    if kernel_log.exists():
        found += [line.strip() for line in kernel_log.read_text(errors="replace").splitlines()
                  if any(marker in line for marker in _ERROR_MARKERS)]
    for index, cell in enumerate(getattr(notebook, "cells", []) or []):
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream" and output.get("name") == "stderr" \
                    and "Traceback (most recent call last)" in output.get("text", ""):
                found.append(f"cell {index}: a traceback printed to stderr: "
                             + output["text"].strip().splitlines()[-1])
    return found


def execute_notebook(notebook: Path, output: Path, parameters: Mapping[str, Any],
                     progress: Callable[[str], None] | None = None) -> Path:
    """Run ``notebook`` into ``output`` with ``parameters``; return the kernel log's path.

    Raises papermill's ``PapermillExecutionError`` when a cell raises, :class:`KernelError` when the kernel
    logged an error."""
    import nbformat
    import papermill

    if QuietEngine is None:
        _register()
    _register_tuple_translator()
    kernel_log = output.with_suffix(".kernel.log")
    code_cells = sum(1 for c in nbformat.read(notebook, 4).cells if c.cell_type == "code") + 1  # + injected
    started = time.perf_counter()
    clock: dict[str, float] = {}
    done = [0]

    def on_execute(cell: Any, cell_index: int) -> None:
        clock["cell"] = time.perf_counter()

    def on_executed(cell: Any, cell_index: int, execute_reply: Any) -> None:
        done[0] += 1
        if progress is not None:
            now = time.perf_counter()
            progress(f"    cell {done[0]:>2}/{code_cells} {now - clock.get('cell', now):6.1f} s "
                     f"(total {now - started:6.1f} s)  {_cell_label(cell)}")

    papermill.execute_notebook(
        str(notebook), str(output), parameters=dict(parameters), kernel_name="python3", cwd=str(notebook.parent),
        progress_bar=False, log_output=False, engine_name=ENGINE, kernel_log=kernel_log,
        on_cell_execute=on_execute, on_cell_executed=on_executed,
    )
    errors = kernel_errors(kernel_log, nbformat.read(output, 4))
    if errors:
        raise KernelError(f"{notebook.name}: the kernel reported an error: {errors[0]} "
                          f"(all {len(errors)} in {kernel_log})", errors[0])
    return kernel_log
