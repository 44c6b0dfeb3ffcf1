"""Handlers that take their inputs by name and give their outputs by name, made into what
Gradio calls: a public endpoint whose parameters are named, and (fn, inputs) pairs."""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Callable

import gradio as gr


def named(names: tuple[str, ...], handler):
    """`handler(values: dict, *, special...)` as a function of one parameter per name, in that
    order, then the handler's keyword-only parameters (gr.Request and the like, which Gradio
    finds by their annotation and passes by position): what the endpoint's signature shows a
    script, which gradio_client calls by these names."""
    hints = typing.get_type_hints(handler)
    special = [
        inspect.Parameter(
            p.name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=p.default, annotation=hints.get(p.name)
        )
        for p in inspect.signature(handler).parameters.values()
        if p.kind == p.KEYWORD_ONLY
    ]
    count = len(names)

    def split(values: tuple, given: dict) -> tuple[dict, dict]:
        return dict(zip(names, values[:count])), {**dict(zip((p.name for p in special), values[count:])), **given}

    if inspect.isgeneratorfunction(handler):  # a streaming endpoint stays one

        def by_name(*values, **given):
            knobs, extra = split(values, given)
            yield from handler(knobs, **extra)

    else:

        def by_name(*values, **given):
            knobs, extra = split(values, given)
            return handler(knobs, **extra)

    parameters = [inspect.Parameter(n, inspect.Parameter.POSITIONAL_OR_KEYWORD) for n in names]
    by_name.__signature__ = inspect.Signature(parameters + special)
    by_name.__annotations__ = {p.name: p.annotation for p in special}
    by_name.__name__ = handler.__name__
    return by_name


def placed(names: tuple[str, ...], handler, component: Callable, updates: Callable[[dict], dict]) -> tuple:
    """Gradio's (fn, inputs) for `handler(values by name)`: its inputs the components of those
    names (`component(name)`), its named results placed on the page by `updates`."""

    @functools.wraps(handler)
    def fn(values: dict, **special):
        return updates(handler(values, **special)) or gr.skip()  # Gradio takes no empty dict

    return named(names, fn), [component(name) for name in names]
