"""The CLI's vocabulary: fixed choices as enums (so `--help` lists them) and a command group that
reports usage errors the way hsafeat reports every error, on one line: `hsafeat: error: …`."""
from __future__ import annotations

import contextlib
from collections.abc import Iterator
from enum import StrEnum
from typing import Any

import typer
from typer.core import TyperGroup

try:  # typer >= 0.26 vendors click
    from typer._click import exceptions as click_exceptions
except ImportError:  # pragma: no cover - older typer uses click itself
    from click import exceptions as click_exceptions  # type: ignore[no-redef]

EXIT_USAGE = 2


class Device(StrEnum):
    auto = "auto"  # the GPU when torch sees one, else the CPU
    cpu = "cpu"
    cuda = "cuda"


class Layout(StrEnum):
    list = "list"  # one fixed_size_list<float32> column per embedding
    wide = "wide"  # one float32 column per dimension


class DescUnits(StrEnum):
    standard = "standard"  # standardised as in pretraining (what the readout predicts)
    real = "real"          # value * std + mean, from the weights' desc_targets.json


class Engine(StrEnum):
    local = "local"
    ray = "ray"


def usage_line(error: Any) -> str:
    """click's usage error as one line, with where to look for help."""
    message = error.format_message().replace("Value error, ", "")
    ctx = getattr(error, "ctx", None)
    hint = f" (see {ctx.command_path} --help)" if ctx is not None else ""
    return f"hsafeat: error: {message.rstrip('.')}{hint}"


@contextlib.contextmanager
def usage_errors_on_one_line() -> Iterator[None]:
    no_args_help = getattr(click_exceptions, "NoArgsIsHelpError", ())  # `hsafeat` alone: the help text
    try:
        yield
    except click_exceptions.UsageError as error:
        if no_args_help and isinstance(error, no_args_help):
            raise
        typer.echo(usage_line(error), err=True)
        raise typer.Exit(error.exit_code or EXIT_USAGE) from None


class OneLineUsageErrors(TyperGroup):
    """Unknown options, bad choices and missing arguments print one line and exit 2, instead of
    click's boxed usage panel."""

    def make_context(self, *args: Any, **kwargs: Any) -> Any:
        with usage_errors_on_one_line():
            return super().make_context(*args, **kwargs)

    def invoke(self, ctx: Any) -> Any:  # parses the subcommand's options
        with usage_errors_on_one_line():
            return super().invoke(ctx)
