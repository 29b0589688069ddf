"""Every error ivr-bridge raises, in one tree under ``IvrBridgeError``.

``except IvrBridgeError`` catches anything the project itself raises and nothing else; each
branch names what went wrong, not where. The modules that raise them re-export their own, so
``from ivr_bridge.speech.session import SpeechSessionError`` keeps working; this module imports
nothing from the project, so every layer can use it.

    IvrBridgeError
    ├── ConfigError                    a setting is missing or wrong (names the variable and fix)
    ├── ProtocolError                  a peer broke a wire protocol
    │   ├── TwilioProtocolError        Twilio Media Streams (frames in, messages judged by the sim)
    │   └── LmntProtocolError          LMNT speech sessions (either side of the socket)
    ├── AudioFormatError               audio we cannot play (WAV header, sample format)
    ├── VadError                       voice activity detection cannot run (a model missing)
    ├── SpeechError                    the speech path failed (session, synthesis)
    ├── RecognitionError               a recogniser is missing or failed
    ├── LLMError                       a model request failed (``ivr_bridge.llm.types``)
    ├── DialogError                    a flow file is broken (file:line) or failed at run time
    ├── CampaignError                  an outbound campaign cannot go on (contacts: file:line)
    ├── SharedStateError               the replicas' shared state (Redis) cannot be reached
    ├── SimulationError                the simulated caller cannot go on (bad script, TwiML, audio)
    ├── RecordError                    a call record cannot be kept, read or sent
    └── LoadTestError                  the load test could not run

Where the leaves live: ``config.ConfigError``; ``telephony.twilio.models.MalformedFrame`` and
``sim.protocol.ProtocolViolation`` (Twilio); ``speech.lmnt.protocol`` and
``speechserver.protocol.LmntRequestRefused`` (LMNT); ``audio.wav.WavFormatError``;
``audio.silero.SileroUnavailable``; ``speech.session.SpeechSessionError`` /
``SpeechSessionClosed`` and ``speechserver.synth.SynthesisError``;
``recognition.models.RecognizerUnavailable`` / ``GrammarError`` and
``stt.deepgram.DeepgramError``; ``llm.types.LLMError`` / ``LLMTimeout``;
``dialog.flow_loader.FlowError``, ``dialog.runner.FlowRuntimeError``,
``dialog.templates.TemplateRuntimeError``; ``sim.scenario.script.ScriptError``,
``sim.twilio.twiml.TwimlError``, ``sim.scenario.voice.AudioFileError``,
``sim.twilio.caller_side.CallEnded``, ``sim.twilio.relay.RelayError``; ``tester.dialing.DialError``;
``campaign.contacts.ContactsError``; ``loadtest.processes.ProcessStartError``.

``CallEnding`` is not an error and not under the root: it is the signal ``hangup()`` and
``transfer()`` raise inside a dialog so no step runs after the end. It derives from
``BaseException`` (like ``asyncio.CancelledError``), so a dialog's ``except Exception`` around
a step cannot swallow the end of the call.
"""

from __future__ import annotations


class IvrBridgeError(Exception):
    """Root of every error ivr-bridge raises."""


class ConfigError(IvrBridgeError):
    """A setting is missing or wrong; the message names the variable and the fix."""


class ProtocolError(IvrBridgeError):
    """A peer sent something its protocol does not allow."""


class TwilioProtocolError(ProtocolError):
    """Twilio Media Streams: a frame we cannot use, or a server message Twilio would reject."""


class LmntProtocolError(ProtocolError):
    """LMNT speech sessions: a message the protocol does not allow.

    ``error_type`` is the LMNT error type a server answers it with (``invalid_request_error``
    and friends); a client reading a bad server message leaves the default."""

    def __init__(self, message: str, error_type: str = "protocol_error") -> None:
        super().__init__(message)
        self.message = message
        self.error_type = error_type


class AudioFormatError(IvrBridgeError, ValueError):
    """Audio in a format the call cannot play."""


class VadError(IvrBridgeError):
    """Voice activity detection cannot run as configured (``IVR_VAD_CONFIRM``'s model missing);
    the message names the package to install."""


class SpeechError(IvrBridgeError):
    """The speech path failed: a speech session, or synthesis in the embedded server."""


class RecognitionError(IvrBridgeError):
    """A recogniser (grammar, transcription, a speech-to-text vendor) is missing or failed."""


class DialogError(IvrBridgeError):
    """A flow is broken: on load with ``file:line``, or at run time naming flow and step."""


class CampaignError(IvrBridgeError):
    """An outbound campaign cannot go on: a contacts file (``file:line: problem``), a schedule
    or calling hours that cannot work."""


class SharedStateError(IvrBridgeError):
    """The shared state several replicas use (``IVR_REDIS_URL``) cannot be reached or refused
    an operation; calls in progress go on, each on its own replica."""


class SimulationError(IvrBridgeError):
    """The simulated caller cannot go on: a script, TwiML answer or audio file it cannot use,
    or the stream ended while it waited."""


class RecordError(IvrBridgeError):
    """A call record cannot be kept, read or sent: a bad record file, an unusable store, an id
    that is not a CallSid."""


class LoadTestError(IvrBridgeError):
    """The load test could not start or measure what it needs."""


class CallEnding(BaseException):
    """Raised inside a dialog by ``hangup()``/``transfer()``: the call is over, stop the dialog.

    Not an ``Exception``, so ``except Exception`` in a dialog cannot swallow it."""
