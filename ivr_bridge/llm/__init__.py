"""The LLM dialog: providers (OpenAI-compatible, Anthropic), heard-only memory, tools, turn loop.

Import from the submodules (``ivr_bridge.llm.dialog``, ``.factory``, ...); this package imports
nothing itself so a flow without an ``llm`` step never loads aiohttp clients or the Anthropic SDK.
"""
