"""Wire protocols: thin front-ends that translate between a spec's wire format and the core.

The core never imports from here; :mod:`rtserver.server` plugs each protocol in as a
:class:`rtserver.components.Component`.
"""
