"""warroom's exceptions form one tree, drawn in bot/errors.py (issue 17: a handler can say which
kind of failure it stands for, and a newcomer finds every kind in one place)."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import bot
from bot import errors
from bot.errors import ConfigError, ExternalError, UserError, WarroomError

# The emulator plays Slack (its errors are Slack's), the CLI entry point runs on import, and
# Alembic's revisions are not modules of the package.
NOT_WARROOM = ("bot.emulator", "bot.__main__", "bot.store.migrations")


def _exception_classes() -> list[type[BaseException]]:
    found = []
    for module_info in pkgutil.walk_packages(bot.__path__, "bot."):
        if module_info.name.startswith(NOT_WARROOM):
            continue
        module = importlib.import_module(module_info.name)
        for name, obj in vars(module).items():
            if (inspect.isclass(obj) and issubclass(obj, BaseException) and obj.__module__ == module.__name__
                    and not name.startswith("_")):
                found.append(obj)
    return found


def test_every_exception_class_of_bot_is_in_the_tree_and_drawn_in_errors_py() -> None:
    classes = _exception_classes()
    assert len(classes) > 20  # the walk reached the package, not an empty corner of it
    outside = sorted(f"{c.__module__}.{c.__name__}" for c in classes if not issubclass(c, WarroomError))
    assert outside == []
    undrawn = sorted(c.__name__ for c in classes if c.__name__ not in (errors.__doc__ or ""))
    assert undrawn == []


def test_the_tree_keeps_the_python_kind_so_existing_handlers_still_catch() -> None:
    from bot.actions import HostRefused, ParamError, PlaybookError
    from bot.actions.jsonpath import PathNotFound
    from bot.evals.promptfoo import PromptfooError
    from bot.slo.windows import WindowError

    assert issubclass(ParamError, UserError) and issubclass(ParamError, ValueError)
    assert issubclass(PlaybookError, ConfigError) and issubclass(PlaybookError, ValueError)
    assert issubclass(HostRefused, ConfigError) and issubclass(WindowError, ValueError)
    assert issubclass(PathNotFound, ExternalError) and issubclass(PathNotFound, LookupError)
    assert issubclass(PromptfooError, ExternalError) and issubclass(PromptfooError, RuntimeError)
    # An ExternalError carries the id the user and the log share, whoever raised it.
    assert PromptfooError("promptfoo eval exited 1").error_id.startswith("E")
