"""LLM plumbing: providers (OpenAI-compatible, Anthropic), heard-only memory, tools, settings.

Nothing here knows about calls: the dialog that drives a call with a model lives with the other
dialogs (``ivr_bridge.dialog.llm_dialog``). Import from the submodules (``.factory``,
``.history``, ...); this package imports nothing itself, so a flow without an ``llm`` step never
loads aiohttp clients or the Anthropic SDK.
"""
