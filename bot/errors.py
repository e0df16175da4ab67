"""warroom's exceptions: one tree, so a handler can say which kind of failure it stands for.

    WarroomError
    ├── UserError              shown to the user where they are (ephemeral, modal, thread)
    │   ├── NotFound
    │   ├── PermissionDenied
    │   ├── InvalidTransition
    │   ├── LinkNotValid       bot.signin: the sign-in link is unknown, used or expired
    │   ├── ParamError         bot.actions.params: a playbook parameter was refused
    │   └── GateCannotRun      bot.evals.gate: the eval gate cannot judge the bundle (exit 2)
    ├── ConfigError            a file or setting warroom reads is unusable: the operator fixes it
    │   ├── PlaybookError, TargetsError, RenderError, HostRefused      bot.actions
    │   ├── RunbookError       bot.runbooks
    │   ├── MatcherError       bot.matchers
    │   ├── SLOFileError       bot.slo.spec
    │   ├── WindowError        bot.slo.windows
    │   ├── YamlSyntaxError    bot.yamlsource
    │   ├── RedactionPatternError   bot.redact
    │   ├── EvalTargetError    bot.evals.target
    │   ├── EvalExportError    bot.evals.cases: eval files on disk could not be read back
    │   └── SocketModeRefused  bot.slack.socket_mode: Slack refused the app-level token
    ├── ExternalError          Slack or a control plane failed; logged with an id the user also sees
    │   ├── SlackCallError     bot.slack.client
    │   ├── SetupIncomplete    bot.slack.room
    │   ├── PathNotFound       bot.actions.jsonpath: a control plane's answer lacks a value a step saves
    │   └── PromptfooError     bot.evals.promptfoo
    ├── EffectError            bot.effects: an outbox effect warroom cannot perform
    │   ├── UnknownEffect      a stored row of a kind this version does not know
    │   ├── MalformedEffect    a stored row whose payload does not fit its kind
    │   └── HandlerSetError    at start-up: an effect kind with no handler, or with two
    ├── NotFlushed             bot.store.changeset: asked for a row its transaction dropped
    ├── BadRequest             bot.jsonbody: an HTTP request refused with its status and problems
    ├── Retry                  bot.worker: not yet; the outbox performs the effect again later
    ├── Deferred               bot.worker: not now and not a failure; due again after its delay
    │   └── RateLimited        bot.slack.budgets: Slack's rate limit for a call, counted or answered
    └── LeaseLost              bot.worker: another worker holds the outbox row now

Classes that are errors of a Python kind as well keep that base too (``PlaybookError`` is still a
``ValueError``, ``PathNotFound`` a ``LookupError``), so existing ``except ValueError`` keep working.
Each class lives next to the code that raises it; ``tests/test_errors.py`` checks that every
exception class in ``bot/`` is in this tree and drawn here. Not in it: the emulator's ``ApiError``
(it plays Slack, not warroom) and private control flow inside one module (``_StepFailed``).
"""

from __future__ import annotations

import secrets


class WarroomError(Exception):
    pass


class UserError(WarroomError):
    """A problem the user can fix; the message is written for them."""


class NotFound(UserError):
    """The incident, run or trace named does not exist."""


class PermissionDenied(UserError):
    """The user may not do this here."""


class InvalidTransition(UserError):
    """The incident's state does not allow this."""


class ConfigError(WarroomError):
    """A file or setting warroom reads is unusable; the message names it and the place."""


class ExternalError(WarroomError):
    """A call to Slack or a control plane failed after its retries."""

    def __init__(self, message: str, *, error_id: str | None = None) -> None:
        super().__init__(message)
        self.error_id = error_id or new_error_id()


def new_error_id() -> str:
    """A short token shown to the user and written to the log next to the traceback."""
    return "E" + secrets.token_hex(4).upper()
