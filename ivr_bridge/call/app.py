"""Calls as apps: what runs on a call is an app, chosen per call from its start parameters.

An app is a dialog (it programs against ``CallControl`` and nothing else) plus what the call
needs to know about it before and after it runs: the voice its speech session opens with, and
how to apologise when the speech path fails (the words, and Twilio's own voice for them). The
scripted flow runner is the first app; an outbound reminder, the agent tester's caller persona
or a plain LLM agent are others. The server never knows which one it runs: it asks an
``AppResolver`` (by default an ``AppRegistry``) for the app of each call, and tests inject their
own apps the same way, without patching anything.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from ivr_bridge.call.control import CallControl
from ivr_bridge.call.outcomes import CallOutcome
from ivr_bridge.errors import IvrBridgeError

APOLOGY = "We're sorry, we are having technical difficulties. Please call again later. Goodbye."
APP_PARAMETER = "app"
"""The stream ``<Parameter>`` that names a call's app (absent: the registry's default)."""


class AppUnavailable(IvrBridgeError):
    """No app can serve this call (unknown app name, a flow that does not exist or is broken)."""


@dataclass(frozen=True, slots=True)
class FailurePolicy:
    """How a call apologises when it cannot go on (speech path down, a dialog crashed).

    The apology is said by Twilio (``<Say>`` from the after-stream request), since the call's
    own speech path may be what failed."""

    apology: str = APOLOGY
    say_voice: str | None = None
    """Twilio ``<Say voice>`` (e.g. ``Polly.Joanna``); None: Twilio's default."""
    say_language: str | None = None
    """Twilio ``<Say language>`` (e.g. ``en-GB``); None: Twilio's default."""

    def outcome(self) -> CallOutcome:
        """What the after-stream request answers for a call that failed."""
        return CallOutcome(
            "apologise",
            message=self.apology,
            say_voice=self.say_voice,
            say_language=self.say_language,
        )


DEFAULT_FAILURE = FailurePolicy()


class CallApp(Protocol):
    """What runs on one call."""

    @property
    def name(self) -> str:
        """For logs and metrics: ``flow:support_line``, ``reminder``..."""
        ...

    @property
    def voice(self) -> str | None:
        """Speech voice the call opens with; None: the bridge's default (``IVR_VOICE``)."""
        ...

    @property
    def language(self) -> str | None:
        """Language the speech session speaks (ISO 639-1, e.g. ``es``); None: the bridge's
        default (``IVR_LANGUAGE``)."""
        ...

    @property
    def failure(self) -> FailurePolicy: ...

    async def run(self, call: CallControl) -> None:
        """The conversation. Returns (or calls ``hangup``/``transfer``) when it is over."""
        ...


class AppResolver(Protocol):
    def resolve(self, parameters: Mapping[str, str]) -> CallApp:
        """The app for a call with these start parameters; raises ``AppUnavailable``."""
        ...

    def check(self, parameters: Mapping[str, str]) -> None:
        """Raise ``AppUnavailable`` now (at the voice webhook) if ``resolve`` would fail."""
        ...


AppFactory = Callable[[Mapping[str, str]], CallApp]
"""Builds the app for one call from its start parameters; raises ``AppUnavailable``."""


@dataclass
class AppRegistry:
    """Apps by name; the ``app`` start parameter picks one, else ``default``."""

    default: str
    factories: dict[str, AppFactory] = field(default_factory=dict)

    def add(self, name: str, factory: AppFactory) -> None:
        self.factories[name] = factory

    def resolve(self, parameters: Mapping[str, str]) -> CallApp:
        return self._factory(parameters)(parameters)

    def check(self, parameters: Mapping[str, str]) -> None:
        self.resolve(parameters)

    def _factory(self, parameters: Mapping[str, str]) -> AppFactory:
        name = parameters.get(APP_PARAMETER) or self.default
        factory = self.factories.get(name)
        if factory is None:
            known = ", ".join(sorted(self.factories)) or "none"
            raise AppUnavailable(f"no app named {name!r} (apps: {known})")
        return factory


@dataclass(frozen=True, slots=True)
class DialogApp:
    """An app made of a plain dialog function (what tests and small apps need)."""

    dialog: Callable[[CallControl], Awaitable[None]]
    name: str = "dialog"
    voice: str | None = None
    language: str | None = None
    failure: FailurePolicy = DEFAULT_FAILURE

    async def run(self, call: CallControl) -> None:
        await self.dialog(call)
